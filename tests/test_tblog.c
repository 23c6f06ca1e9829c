/*
 * test_tblog.c - training logs: CRC-32C and TFRecord's mask against known
 * answers, the TensorBoard event file (name, the known-answer record of
 * REFERENCE.md, and a decode of a whole written file with its CRCs,
 * values and the resume marker), the CSV log (content, resume), and the
 * progress display in plain, TTY and quiet modes.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libtinycnn.h>

#include "testutil.h"

static const char *tmpdir;

static void setup(void) {
  tmpdir = tu_tmpdir_create("tc_tb");
}

static void teardown(void) {
  tu_tmpdir_remove();
}

static size_t unhex(const char *h, unsigned char *out) {
  size_t n = 0;
  for (; h[0] && h[1]; h += 2) {
    if (*h == ' ') {
      h--;
      continue;
    }
    unsigned v;
    sscanf(h, "%2x", &v);
    out[n++] = (unsigned char)v;
  }
  return n;
}

START_TEST(test_crc32c_known_answers) {
  ck_assert_uint_eq(tc_crc32c(0, "123456789", 9), 0xE3069283u);
  ck_assert_uint_eq(tc_crc32c(0, "", 0), 0);
  /* incremental = one shot */
  uint32_t c = tc_crc32c(0, "1234", 4);
  ck_assert_uint_eq(tc_crc32c(c, "56789", 5), 0xE3069283u);
  /* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA */
  unsigned char z[32] = {0};
  ck_assert_uint_eq(tc_crc32c(0, z, 32), 0x8A9136AAu);
  uint32_t x = 0x12345678u;
  ck_assert_uint_eq(tc_crc32c_mask(x),
                    (uint32_t)(((x >> 15) | (x << 17)) + 0xA282EAD8u));
}
END_TEST

/* ---- a minimal TFRecord + Event decoder, independent of the writer ---- */

typedef struct ev {
  double wall;
  int64_t step;
  char version[32];
  char tag[64];
  float value;
  int has_value, session_start;
} ev;

static uint64_t varint(const unsigned char **p) {
  uint64_t v = 0;
  for (int s = 0;; s += 7) {
    unsigned char b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80))
      return v;
  }
}

static void decode_value(const unsigned char *p, const unsigned char *end,
                         ev *e) {
  while (p < end) {
    unsigned key = *p++;
    if (key == 0x0a) {
      uint64_t n = varint(&p);
      ck_assert_uint_lt(n, sizeof e->tag);
      memcpy(e->tag, p, n);
      e->tag[n] = 0;
      p += n;
    } else if (key == 0x15) {
      memcpy(&e->value, p, 4);
      p += 4;
      e->has_value = 1;
    } else {
      ck_abort_msg("unexpected Value key 0x%02x", key);
    }
  }
}

static void decode_event(const unsigned char *p, size_t n, ev *e) {
  const unsigned char *end = p + n;
  memset(e, 0, sizeof *e);
  while (p < end) {
    unsigned key = *p++;
    if (key == 0x09) {
      memcpy(&e->wall, p, 8);
      p += 8;
    } else if (key == 0x10) {
      e->step = (int64_t)varint(&p);
    } else if (key == 0x1a) {
      uint64_t k = varint(&p);
      memcpy(e->version, p, k);
      p += k;
    } else if (key == 0x2a) {
      uint64_t k = varint(&p);
      const unsigned char *se = p + k;
      ck_assert_int_eq(*p++, 0x0a);
      uint64_t vk = varint(&p);
      decode_value(p, p + vk, e);
      p = se;
    } else if (key == 0x3a) {
      uint64_t k = varint(&p);
      ck_assert_int_eq(k, 2);
      ck_assert_int_eq(p[0], 0x08);
      e->session_start = p[1] == 1;
      p += k;
    } else {
      ck_abort_msg("unexpected Event key 0x%02x", key);
    }
  }
}

/* Splits a file into records, checking both CRCs of each. */
static int decode_file(const unsigned char *b, size_t n, ev *out, int max) {
  int k = 0;
  size_t pos = 0;
  while (pos < n) {
    ck_assert_uint_ge(n - pos, 16);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
      len = len << 8 | b[pos + i];
    uint32_t lc, dc;
    memcpy(&lc, b + pos + 8, 4);
    ck_assert_uint_eq(lc, tc_crc32c_mask(tc_crc32c(0, b + pos, 8)));
    ck_assert_uint_le(len, n - pos - 16);
    memcpy(&dc, b + pos + 12 + len, 4);
    ck_assert_uint_eq(dc, tc_crc32c_mask(tc_crc32c(0, b + pos + 12, len)));
    ck_assert_int_lt(k, max);
    decode_event(b + pos + 12, len, &out[k++]);
    pos += 16 + len;
  }
  return k;
}

static char *event_file(void) {
  DIR *d = opendir(tmpdir);
  static char path[512];
  path[0] = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strstr(e->d_name, "tfevents"))
      snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
  closedir(d);
  return path;
}

START_TEST(test_tblog_known_answer) {
  tc_tblog *w;
  char dir[300];
  snprintf(dir, sizeof dir, "%s/runs/a", tmpdir); /* parents created */
  time_t before = time(NULL);
  ck_assert_int_eq(tc_tblog_create(&w, dir), TC_OK);
  const char *path = tc_tblog_path(w);
  const char *base = strrchr(path, '/') + 1;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  long long t;
  char hbuf[300];
  ck_assert_int_eq(sscanf(base, "events.out.tfevents.%10lld.%299s", &t, hbuf),
                   2);
  ck_assert_int_eq(base[20 + 10], '.'); /* exactly 10 digits */
  ck_assert(t >= (long long)before && t <= (long long)time(NULL));
  ck_assert_str_eq(hbuf, host);
  size_t n0;
  unsigned char *b0 = tu_slurp(path, &n0);
  free(b0);
  ck_assert_int_eq(tc_tblog_scalar_at(w, "train/loss", 100, 0.5, 1700000001.0),
                   TC_OK);
  ck_assert_int_eq(tc_tblog_flush(w), TC_OK);
  size_t n;
  unsigned char *b = tu_slurp(path, &n);
  unsigned char want[128];
  size_t wn = unhex("2000000000000000 29eda950 "
                    "0900004040fc54d94110642a130a110a0a747261696e2f6c6f7373"
                    "150000003f 7e6098ef",
                    want);
  ck_assert_uint_eq(n - n0, wn);
  ck_assert_mem_eq(b + n0, want, wn);
  free(b);
  tc_tblog_destroy(w);
  ck_assert_int_eq(tc_tblog_scalar(NULL, "x", 0, 0), TC_EINVAL);
}
END_TEST

START_TEST(test_tblog_decode_file) {
  tc_tblog *w;
  ck_assert_int_eq(tc_tblog_create(&w, tmpdir), TC_OK);
  for (int i = 0; i < 50; i++) {
    ck_assert_int_eq(tc_tblog_scalar(w, "train/loss", i, 2.0 / (i + 1)), TC_OK);
    ck_assert_int_eq(tc_tblog_scalar(w, "train/accuracy", i, i / 50.0), TC_OK);
  }
  ck_assert_int_eq(tc_tblog_resume(w, -1), TC_EINVAL);
  ck_assert_int_eq(tc_tblog_resume(w, INT64_MAX), TC_EINVAL);
  ck_assert_int_eq(tc_tblog_resume(w, 30), TC_OK);
  ck_assert_int_eq(tc_tblog_scalar(w, "train/loss", 30, -1.25), TC_OK);
  ck_assert_int_eq(tc_tblog_scalar(w, "", 1, 0), TC_EINVAL);
  tc_tblog_destroy(w);
  size_t n;
  unsigned char *b = tu_slurp(event_file(), &n);
  ev e[128];
  int k = decode_file(b, n, e, 128);
  free(b);
  ck_assert_int_eq(k, 1 + 100 + 1 + 1);
  ck_assert_str_eq(e[0].version, "brain.Event:2");
  ck_assert_int_eq(e[0].has_value, 0);
  double now = (double)time(NULL);
  for (int i = 0; i < 50; i++) {
    ev *l = &e[1 + 2 * i], *a = &e[2 + 2 * i];
    ck_assert_str_eq(l->tag, "train/loss");
    ck_assert_str_eq(a->tag, "train/accuracy");
    ck_assert_int_eq(l->step, i);
    ck_assert(l->value == (float)(2.0 / (i + 1)));
    ck_assert(a->value == (float)(i / 50.0));
    ck_assert(fabs(l->wall - now) < 120);
  }
  /* resumed from a checkpoint at step 30: its points stay (TensorBoard
   * keeps steps below the START's), the next run's start at 31 */
  ck_assert(e[101].session_start && e[101].step == 31 && !e[101].has_value);
  ck_assert(e[102].value == -1.25f && e[102].step == 30);
}
END_TEST

/* ---- CSV ---- */

START_TEST(test_csv_content_and_resume) {
  char path[300];
  snprintf(path, sizeof path, "%s/log.csv", tmpdir);
  tc_csvlog *c;
  ck_assert_int_eq(tc_csvlog_create(&c, path, -1), TC_OK);
  for (int s = 10; s <= 40; s += 10)
    ck_assert_int_eq(
        tc_csvlog_row(c, s / 20, s, "train", 0.25 * s, 0.5, 0.1, 1.5, 1000),
        TC_OK);
  ck_assert_int_eq(tc_csvlog_row(c, 1, 40, "val,x\"", NAN, 0.875, NAN, 2, 0),
                   TC_OK);
  tc_csvlog_destroy(c);
  size_t n;
  char *t = (char *)tu_slurp(path, &n);
  ck_assert_str_eq(t,
                   "epoch,step,split,loss,accuracy,lr,seconds,images_per_sec\n"
                   "0,10,train,2.5,0.5,0.1,1.5,1000\n"
                   "1,20,train,5,0.5,0.1,1.5,1000\n"
                   "1,30,train,7.5,0.5,0.1,1.5,1000\n"
                   "2,40,train,10,0.5,0.1,1.5,1000\n"
                   "1,40,\"val,x\"\"\",,0.875,,2,0\n");
  free(t);
  /* a crash left a torn row; resume from the checkpoint at step 30 */
  FILE *f = fopen(path, "ab");
  fputs("2,50,tra", f);
  fclose(f);
  /* the checkpoint at step 30 was written after its rows: they stay */
  ck_assert_int_eq(tc_csvlog_create(&c, path, 30), TC_OK);
  ck_assert_int_eq(tc_csvlog_row(c, 2, 31, "train", 1, 1, 1, 1, 1), TC_OK);
  tc_csvlog_destroy(c);
  t = (char *)tu_slurp(path, &n);
  ck_assert_str_eq(t,
                   "epoch,step,split,loss,accuracy,lr,seconds,images_per_sec\n"
                   "0,10,train,2.5,0.5,0.1,1.5,1000\n"
                   "1,20,train,5,0.5,0.1,1.5,1000\n"
                   "1,30,train,7.5,0.5,0.1,1.5,1000\n"
                   "2,31,train,1,1,1,1,1\n");
  free(t);
  /* resume with no file yet creates it with the header, and its
   * directories, as tc_tblog_create does */
  char p2[300];
  snprintf(p2, sizeof p2, "%s/sub/dir/new.csv", tmpdir);
  ck_assert_int_eq(tc_csvlog_create(&c, p2, 5), TC_OK);
  tc_csvlog_destroy(c);
  t = (char *)tu_slurp(p2, &n);
  ck_assert_str_eq(
      t, "epoch,step,split,loss,accuracy,lr,seconds,images_per_sec\n");
  free(t);
  /* a foreign file is not rewritten */
  f = fopen(p2, "wb");
  fputs("a,b\n1,2\n", f);
  fclose(f);
  ck_assert_int_eq(tc_csvlog_create(&c, p2, 5), TC_EFORMAT);
  t = (char *)tu_slurp(p2, &n);
  ck_assert_str_eq(t, "a,b\n1,2\n");
  free(t);
}
END_TEST

/* ---- progress ---- */

static char *run_progress(int quiet, int tty, int64_t total, int lines) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  tc_progress_options o = TC_PROGRESS_OPTIONS_INIT;
  o.quiet = quiet;
  o.tty = tty;
  o.lines_per_epoch = lines;
  o.min_redraw_seconds = 0;
  tc_progress *p;
  ck_assert_int_eq(tc_progress_create(&p, f, &o), TC_OK);
  ck_assert_int_eq(tc_progress_update(p, 1, 0, 0, 0), TC_ESTATE);
  for (int e = 1; e <= 2; e++) {
    ck_assert_int_eq(tc_progress_begin(p, e, 2, total), TC_OK);
    for (int64_t b = 1; b <= total; b++)
      ck_assert_int_eq(tc_progress_update(p, b, 0.5, 0.9, b * 64), TC_OK);
    ck_assert_int_eq(tc_progress_update(p, total + 1, 0, 0, 0), TC_EINVAL);
    ck_assert_int_eq(tc_progress_end(p), TC_OK);
  }
  tc_progress_destroy(p);
  fclose(f);
  return buf;
}

static int count_char(const char *s, char c) {
  int n = 0;
  for (; *s; s++)
    n += *s == c;
  return n;
}

START_TEST(test_progress_modes) {
  char *plain = run_progress(0, 0, 95, 10);
  ck_assert_int_eq(count_char(plain, '\n'), 20); /* 10 lines per epoch */
  ck_assert_int_eq(count_char(plain, '\r'), 0);
  ck_assert_ptr_nonnull(strstr(plain, "epoch 1/2  batch 10/95  loss 0.5000  "
                                      "acc 90.00%"));
  ck_assert_ptr_nonnull(strstr(plain, "epoch 2/2  batch 95/95"));
  ck_assert_ptr_nonnull(strstr(plain, "img/s  ETA "));
  free(plain);
  char *tty = run_progress(0, 1, 7, 10);
  ck_assert_int_eq(count_char(tty, '\r'), 14); /* every update redrawn */
  ck_assert_int_eq(count_char(tty, '\n'), 2);  /* one per epoch end */
  ck_assert_ptr_nonnull(strstr(tty, "batch 7/7"));
  free(tty);
  char *quiet = run_progress(1, 0, 50, 10);
  ck_assert_str_eq(quiet, "");
  free(quiet);
  tc_progress_options o;
  ck_assert_int_eq(tc_progress_options_init(&o, sizeof o), TC_OK);
  ck_assert_int_eq(o.lines_per_epoch, 10);
  ck_assert_int_eq(tc_progress_options_init(&o, sizeof o + 8), TC_EVERSION);
  /* no header ever had a struct this short (0.1.0 is the first release):
   * refused, not read; tests/test_options.c covers older, shorter structs */
  o.struct_size = offsetof(tc_progress_options, lines_per_epoch);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  tc_progress *p = NULL;
  ck_assert_int_eq(tc_progress_create(&p, f, &o), TC_EINVAL);
  ck_assert_ptr_null(p);
  /* the default lines_per_epoch */
  ck_assert_int_eq(tc_progress_options_init(&o, sizeof o), TC_OK);
  o.quiet = 0;
  o.tty = 0;
  ck_assert_int_eq(tc_progress_create(&p, f, &o), TC_OK);
  tc_progress_begin(p, 1, 0, 100);
  for (int b = 1; b <= 100; b++)
    tc_progress_update(p, b, 1, 1, b);
  tc_progress_destroy(p);
  fclose(f);
  ck_assert_int_eq(count_char(buf, '\n'), 10);
  ck_assert_ptr_nonnull(strstr(buf, "epoch 1  batch 100/100"));
  free(buf);
}
END_TEST

START_TEST(test_alloc_failures) {
  for (int persistent = 0; persistent < 2; persistent++) {
    tu_alloc_install();
    for (long k = 1;; k++) {
      long live = tu_alloc_live();
      tu_alloc_fail_at(k, persistent);
      tc_tblog *w = NULL;
      tc_status s = tc_tblog_create(&w, tmpdir);
      if (s == TC_OK)
        s = tc_tblog_scalar(w, "a", 1, 1);
      tc_tblog_destroy(w);
      if (!tu_alloc_failed()) {
        ck_assert_int_eq(s, TC_OK);
        ck_assert_int_eq(tu_alloc_live(), live);
        break;
      }
      ck_assert_int_eq(s, TC_ENOMEM);
      ck_assert_int_eq(tu_alloc_live(), live);
    }
    tu_alloc_fail_at(0, 0);
    tu_alloc_uninstall();
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("tblog");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_crc32c_known_answers);
  tcase_add_test(tc, test_tblog_known_answer);
  tcase_add_test(tc, test_tblog_decode_file);
  tcase_add_test(tc, test_csv_content_and_resume);
  tcase_add_test(tc, test_progress_modes);
  tcase_add_test(tc, test_alloc_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}
