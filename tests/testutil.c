/*
 * testutil.c - see testutil.h.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, mkstemp, nftw */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
  tc_rng r;
  tc_rng_init(&r, seed, TC_RNG_STREAM_USER + 7);
  for (size_t i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * tc_rng_uniform(&r);
}

/* Relative error with a floor: |got - want| / max(|want|, floor), the
 * floor being 1e-2 of the largest |want| so that values near zero in a
 * buffer of large ones are judged on the buffer's scale. */
double tu_max_rel_err(const float *got, const float *want, size_t n) {
  double scale = 0;
  for (size_t i = 0; i < n; i++)
    scale = fmax(scale, fabs((double)want[i]));
  double floor_ = fmax(scale * 1e-2, 1e-6), worst = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(got[i]) != isnan(want[i]))
      return INFINITY;
    double d = fabs((double)got[i] - (double)want[i]);
    double e = d / fmax(fabs((double)want[i]), floor_);
    if (e > worst)
      worst = e;
  }
  return worst;
}

static long live, count, fail_at;
static int persistent_fail, failed;

static void *count_alloc(void *user, size_t size, size_t alignment) {
  (void)user;
  count++;
  if (fail_at > 0 &&
      (count == fail_at || (persistent_fail && count > fail_at))) {
    failed = 1;
    return NULL;
  }
  void *p = NULL;
  if (posix_memalign(&p,
                     alignment < sizeof(void *) ? sizeof(void *) : alignment,
                     size ? size : 1) != 0)
    return NULL;
  live++;
  return p;
}

static void count_free(void *user, void *ptr) {
  (void)user;
  if (ptr) {
    live--;
    free(ptr);
  }
}

void tu_alloc_install(void) {
  tc_allocator a = {sizeof a, count_alloc, count_free, NULL};
  live = count = fail_at = 0;
  failed = 0;
  ck_assert_int_eq(tc_set_allocator(&a), TC_OK);
}

void tu_alloc_uninstall(void) {
  tc_set_allocator(NULL);
}

void tu_alloc_fail_at(long k, int persistent) {
  count = 0;
  fail_at = k;
  persistent_fail = persistent;
  failed = 0;
}

long tu_alloc_live(void) {
  return live;
}
long tu_alloc_count(void) {
  return count;
}
int tu_alloc_failed(void) {
  return failed;
}

/* ---- files ---- */

static char tmpdir_path[512];

static const char *tmp_base(void) {
  const char *b = getenv("TMPDIR");
  return b && *b ? b : "/tmp";
}

const char *tu_tmpdir_create(const char *prefix) {
  int n = snprintf(tmpdir_path, sizeof tmpdir_path, "%s/%s_XXXXXX", tmp_base(),
                   prefix);
  ck_assert(n > 0 && (size_t)n < sizeof tmpdir_path);
  ck_assert_msg(mkdtemp(tmpdir_path) != NULL, "mkdtemp %s: %s", tmpdir_path,
                strerror(errno));
  return tmpdir_path;
}

void tu_tmpdir_remove(void) {
  if (!tmpdir_path[0])
    return;
  ck_assert_msg(tu_rm_rf(tmpdir_path) == 0, "removing %s: %s", tmpdir_path,
                strerror(errno));
  tmpdir_path[0] = 0;
}

char *tu_tmppath(const char *name) {
  static char buf[4][1024];
  static int k;
  ck_assert_msg(tmpdir_path[0], "tu_tmppath without tu_tmpdir_create");
  k = (k + 1) % 4;
  return tu_path_join(buf[k], sizeof buf[k], tmpdir_path, name);
}

char *tu_path_join(char *buf, size_t size, const char *dir, const char *name) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  ck_assert_msg(n > 0 && (size_t)n < size, "path too long: %s/%s", dir, name);
  return buf;
}

char *tu_tmpfile(char *buf, size_t size, const char *prefix) {
  int n = snprintf(buf, size, "%s/%s_XXXXXX", tmp_base(), prefix);
  ck_assert(n > 0 && (size_t)n < size);
  int fd = mkstemp(buf);
  ck_assert_msg(fd >= 0, "mkstemp %s: %s", buf, strerror(errno));
  close(fd);
  return buf;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st, (void)ftw;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int tu_rm_rf(const char *path) {
  /* depth first (contents before their directory), links not followed */
  int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return r != 0 && errno == ENOENT ? 0 : r;
}

unsigned char *tu_read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *n = (size_t)-1;
    return NULL;
  }
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  long len = ftell(f);
  ck_assert_int_ge(len, 0);
  ck_assert_int_eq(fseek(f, 0, SEEK_SET), 0);
  unsigned char *b = malloc((size_t)len + 1);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  b[len] = 0;
  *n = (size_t)len;
  return b;
}

unsigned char *tu_slurp(const char *path, size_t *n) {
  unsigned char *b = tu_read_file(path, n);
  ck_assert_msg(b != NULL, "cannot open %s", path);
  return b;
}

void tu_write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

int tu_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed_n = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed_n ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* All state of `m` as host bytes, concatenated (for equality checks). */
unsigned char *tu_state_bytes(tc_model *m, size_t *n) {
  size_t total = 0;
  for (int64_t i = 0; i < tc_model_num_state(m); i++) {
    tc_tensor *t;
    tc_model_get_state(m, i, NULL, &t);
    total +=
        (size_t)tc_tensor_numel(t) * (tc_tensor_dtype(t) == TC_INT64 ? 8 : 4);
  }
  unsigned char *b = malloc(total + 1), *p = b;
  for (int64_t i = 0; i < tc_model_num_state(m); i++) {
    tc_tensor *t;
    tc_model_get_state(m, i, NULL, &t);
    size_t k =
        (size_t)tc_tensor_numel(t) * (tc_tensor_dtype(t) == TC_INT64 ? 8 : 4);
    ck_assert_int_eq(tc_tensor_copy_to_host(t, p, k), TC_OK);
    p += k;
  }
  *n = total;
  return b;
}
