/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>

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

int tu_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed_n = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed_n ? EXIT_FAILURE : EXIT_SUCCESS;
}
