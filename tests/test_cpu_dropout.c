/*
 * test_cpu_dropout.c - the CPU backend's dropout forward and backward
 * against the naive reference of tests/reference/dropout.c: the mask is
 * checked against the public Philox block function and tc_rng_uniform
 * (the documented stream rule), then for
 * reproducibility, offset shifts, keep rates, whole-channel groups, scaling,
 * p = 0 and p = 1, backward with accumulate, thread-count independence and
 * argument errors.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/dropout.h"
#include "testutil.h"

#include "op_fixture.h"

static void setup(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->dropout_fwd);
  ck_assert_ptr_nonnull(it->dropout_bwd);
}
static void teardown(void) {
  op_close();
}

static void *dalloc(size_t bytes) {
  return op_alloc(bytes);
}

/* The same decision through the public stream type. */
static int ref_keep_rng(uint64_t seed, uint64_t stream, uint64_t offset,
                        int64_t i, float p) {
  tc_rng r;
  tc_rng_init(&r, seed, stream);
  r.offset = offset + (uint64_t)i;
  return tc_rng_uniform(&r) >= p;
}

typedef struct dcase {
  int64_t n, group;
  float p;
  uint64_t seed, stream, offset;
} dcase;

/* Runs the forward on x (n) and checks mask and y against the reference
 * element by element (bit-exact: y = x * (1/(1-p)) or 0). */
static void check_fwd(const dcase *d, const float *x, float *y, uint8_t *mask) {
  tc_dropout_args a = {.struct_size = sizeof a,
                       .n = d->n,
                       .group = d->group,
                       .p = d->p,
                       .seed = d->seed,
                       .stream = d->stream,
                       .offset = d->offset,
                       .x = x,
                       .y = y,
                       .mask = mask};
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  int64_t units = d->n / d->group;
  float *wy = malloc((size_t)d->n * sizeof *wy);
  uint8_t *wm = malloc((size_t)units);
  tc_dropout_args r = a; /* the reference (Philox block function) */
  r.y = wy, r.mask = wm;
  ref_dropout_fwd(&r);
  for (int64_t u = 0; u < units; u++) {
    int keep = wm[u];
    /* per-element checks abort only on failure (cheap under ASan) */
    if (keep != ref_keep_rng(d->seed, d->stream, d->offset, u, d->p))
      ck_abort_msg("unit %lld: Philox and tc_rng_uniform disagree",
                   (long long)u);
    if (mask[u] != keep)
      ck_abort_msg("unit %lld: mask %d, want %d", (long long)u, mask[u], keep);
    for (int64_t k = u * d->group; k < (u + 1) * d->group; k++)
      if (memcmp(&y[k], &wy[k], sizeof wy[k]) != 0)
        ck_abort_msg("element %lld: y %.9g, want %.9g", (long long)k,
                     (double)y[k], (double)wy[k]);
  }
  free(wy), free(wm);
}

START_TEST(test_known_answer) {
  static const dcase cases[] = {
      {1, 1, 0.5f, 1, TC_RNG_STREAM_DROPOUT, 0},
      {7, 1, 0.3f, 42, TC_RNG_STREAM_DROPOUT, 3},
      {1001, 1, 0.25f, 0x123456789abcdefull, 4, 5},
      /* offsets past 2^32 (high counter word) and a stream with high bits */
      {333, 1, 0.7f, 9, 0x100000004ull, (1ull << 32) - 2},
      {40003, 1, 0.5f, 2024, TC_RNG_STREAM_DROPOUT, 12345678901ull},
      /* whole channels: (n=3, c=5, 7x7) as Dropout2d */
      {3 * 5 * 49, 49, 0.4f, 77, TC_RNG_STREAM_DROPOUT, 10},
      {2 * 64 * 300, 300, 0.5f, 5, TC_RNG_STREAM_DROPOUT, 1},
      {6, 6, 0.5f, 3, 4, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const dcase *d = &cases[c];
    float *x = dalloc((size_t)d->n * sizeof *x);
    float *y = dalloc((size_t)d->n * sizeof *y);
    uint8_t *mask = dalloc((size_t)(d->n / d->group) + 1);
    tu_fill_uniform(x, (size_t)d->n, 300 + c, -2.f, 2.f);
    mask[d->n / d->group] = 0xAB; /* guard */
    check_fwd(d, x, y, mask);
    ck_assert_uint_eq(mask[d->n / d->group], 0xAB);
    it->free(ctx, x), it->free(ctx, y), it->free(ctx, mask);
  }
}
END_TEST

/* A mask is a function of (seed, stream, offset + i) only. */
START_TEST(test_reproducible) {
  const int64_t n = 5000;
  float *x = dalloc(n * sizeof *x), *y = dalloc(n * sizeof *y);
  uint8_t *m1 = dalloc(n + 16), *m2 = dalloc(n + 16);
  tu_fill_uniform(x, (size_t)n, 1, -1.f, 1.f);
  tc_dropout_args a = {.struct_size = sizeof a,
                       .n = n,
                       .group = 1,
                       .p = 0.5f,
                       .seed = 11,
                       .stream = 4,
                       .offset = 100,
                       .x = x,
                       .y = y,
                       .mask = m1};
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  a.mask = m2;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(memcmp(m1, m2, (size_t)n), 0);
  /* another offset: a different mask */
  a.offset = 100 + (uint64_t)n;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  int64_t diff = 0;
  for (int64_t i = 0; i < n; i++)
    diff += m1[i] != m2[i];
  ck_assert_msg(diff > n / 4, "offset change: only %lld of %lld differ",
                (long long)diff, (long long)n);
  /* offset + 13 is the same stream shifted by 13 units */
  a.offset = 113;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(memcmp(m1 + 13, m2, (size_t)(n - 13)), 0);
  /* another seed or stream: different masks */
  a.offset = 100, a.seed = 12;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  ck_assert_int_ne(memcmp(m1, m2, (size_t)n), 0);
  a.seed = 11, a.stream = 5;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  ck_assert_int_ne(memcmp(m1, m2, (size_t)n), 0);
  /* the forward without a stored mask gives the same output */
  float *y2 = dalloc(n * sizeof *y2);
  a.stream = 4, a.mask = m2;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  a.mask = NULL, a.y = y2;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(memcmp(y, y2, (size_t)n * sizeof *y), 0);
  it->free(ctx, x), it->free(ctx, y), it->free(ctx, y2);
  it->free(ctx, m1), it->free(ctx, m2);
}
END_TEST

/* Keep rate 1-p within 6 standard deviations on 2e5 units; kept values
 * scaled by 1/(1-p), so the mean of y estimates the mean of x. */
START_TEST(test_keep_rate) {
  const int64_t n = 200000;
  static const float ps[] = {0.1f, 0.5f, 0.9f};
  float *x = dalloc(n * sizeof *x), *y = dalloc(n * sizeof *y);
  uint8_t *m = dalloc(n);
  for (int64_t i = 0; i < n; i++)
    x[i] = 1.f;
  for (size_t k = 0; k < 3; k++) {
    float p = ps[k];
    tc_dropout_args a = {.struct_size = sizeof a,
                         .n = n,
                         .group = 1,
                         .p = p,
                         .seed = 1234 + k,
                         .stream = TC_RNG_STREAM_DROPOUT,
                         .offset = 0,
                         .x = x,
                         .y = y,
                         .mask = m};
    ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
    int64_t kept = 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
      kept += m[i];
      sum += y[i];
      if (!(y[i] == 0.f || y[i] == 1.f / (1.f - p)))
        ck_abort_msg("p=%g: y[%lld] = %g", (double)p, (long long)i,
                     (double)y[i]);
    }
    double rate = (double)kept / (double)n;
    double sd = sqrt((double)p * (1.0 - p) / (double)n);
    ck_assert_msg(fabs(rate - (1.0 - p)) < 6 * sd,
                  "p=%g: keep rate %.5f, want %.5f +- %.5f", (double)p, rate,
                  1.0 - p, 6 * sd);
    ck_assert_msg(fabs(sum / (double)n - 1.0) < 6 * sd / (1.0 - p),
                  "p=%g: mean of y %.5f", (double)p, sum / (double)n);
  }
  it->free(ctx, x), it->free(ctx, y), it->free(ctx, m);
}
END_TEST

START_TEST(test_p_zero_and_one) {
  const int64_t n = 1003;
  float *x = dalloc(n * sizeof *x), *y = dalloc(n * sizeof *y);
  uint8_t *m = dalloc(n);
  tu_fill_uniform(x, (size_t)n, 5, -3.f, 3.f);
  x[0] = INFINITY, x[1] = -1e38f;
  tc_dropout_args a = {.struct_size = sizeof a,
                       .n = n,
                       .group = 1,
                       .p = 0.f,
                       .seed = 3,
                       .stream = 4,
                       .offset = 9,
                       .x = x,
                       .y = y,
                       .mask = m};
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  for (int64_t i = 0; i < n; i++)
    ck_assert_int_eq(m[i], 1);
  ck_assert_int_eq(memcmp(x, y, (size_t)n * sizeof *x), 0);
  a.p = 1.f;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
  for (int64_t i = 0; i < n; i++) {
    ck_assert_int_eq(m[i], 0);
    ck_assert(y[i] == 0.f); /* no 0 * inf, no division by zero */
  }
  /* backward: p = 1 gives zeros, p = 0 passes dy through */
  float *dx = dalloc(n * sizeof *dx);
  a.dy = x, a.dx = dx;
  ck_assert_int_eq(it->dropout_bwd(ctx, &a), TC_OK);
  for (int64_t i = 0; i < n; i++)
    ck_assert(dx[i] == 0.f);
  a.p = 0.f;
  memset(m, 1, (size_t)n);
  ck_assert_int_eq(it->dropout_bwd(ctx, &a), TC_OK);
  ck_assert_int_eq(memcmp(x, dx, (size_t)n * sizeof *x), 0);
  it->free(ctx, x), it->free(ctx, y), it->free(ctx, m), it->free(ctx, dx);
}
END_TEST

/* dx (+)= mask ? dy/(1-p) : 0, per unit of `group` elements. */
START_TEST(test_backward) {
  static const int64_t groups[] = {1, 3, 49, 1024};
  for (size_t g = 0; g < 4; g++) {
    int64_t group = groups[g], units = 2 * 7 + (int64_t)g * 1001;
    int64_t n = units * group;
    float p = 0.35f, scale = 1.f / (1.f - p);
    float *x = dalloc((size_t)n * sizeof *x), *y = dalloc((size_t)n * 4);
    float *dy = dalloc((size_t)n * 4), *dx = dalloc((size_t)n * 4);
    float *want = malloc((size_t)n * sizeof *want);
    uint8_t *m = dalloc((size_t)units);
    tu_fill_uniform(x, (size_t)n, 600 + g, -1.f, 1.f);
    tu_fill_uniform(dy, (size_t)n, 610 + g, -1.f, 1.f);
    tc_dropout_args a = {.struct_size = sizeof a,
                         .n = n,
                         .group = group,
                         .p = p,
                         .seed = 8,
                         .stream = 4,
                         .offset = 3,
                         .x = x,
                         .y = y,
                         .mask = m,
                         .dy = dy,
                         .dx = dx};
    ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_OK);
    for (int acc = 0; acc < 2; acc++) {
      tu_fill_uniform(dx, (size_t)n, 620 + g, -1.f, 1.f);
      memcpy(want, dx, (size_t)n * sizeof *want);
      a.accumulate = acc;
      tc_dropout_args r = a; /* with the backend's mask, as given */
      r.dx = want;
      ref_dropout_bwd(&r);
      ck_assert_int_eq(it->dropout_bwd(ctx, &a), TC_OK);
      TU_ASSERT_CLOSE(dx, want, (size_t)n, 1e-6);
    }
    /* the backward mask is the forward's: y = x * scale where kept */
    for (int64_t i = 0; i < n; i++)
      if (y[i] != (m[i / group] ? x[i] * scale : 0.f))
        ck_abort_msg("y[%lld] does not follow the mask", (long long)i);
    it->free(ctx, x), it->free(ctx, y), it->free(ctx, dy), it->free(ctx, dx);
    it->free(ctx, m);
    free(want);
  }
}
END_TEST

/* Same mask and output with 1 and 4 threads. */
START_TEST(test_thread_independent) {
  ck_assert_int_eq(tc_set_num_threads(4), TC_OK);
  const int64_t n = 100003;
  float *x = malloc(n * sizeof *x), *y[2];
  uint8_t *m[2];
  tu_fill_uniform(x, (size_t)n, 9, -1.f, 1.f);
  for (int k = 0; k < 2; k++) {
    tc_backend *tb = op_create_cpu(k ? 4 : 1);
    y[k] = malloc(n * sizeof *y[k]);
    m[k] = malloc(n);
    tc_dropout_args a = {.struct_size = sizeof a,
                         .n = n,
                         .group = 1,
                         .p = 0.2f,
                         .seed = 77,
                         .stream = 4,
                         .offset = 5,
                         .x = x,
                         .y = y[k],
                         .mask = m[k]};
    ck_assert_int_eq(
        tc_backend_get_iface(tb)->dropout_fwd(tc_backend_get_context(tb), &a),
        TC_OK);
    tc_backend_destroy(tb);
  }
  ck_assert_int_eq(memcmp(m[0], m[1], (size_t)n), 0);
  ck_assert_int_eq(memcmp(y[0], y[1], (size_t)n * sizeof *x), 0);
  free(x), free(y[0]), free(y[1]), free(m[0]), free(m[1]);
}
END_TEST

START_TEST(test_errors) {
  float x[12] = {0}, y[12] = {0};
  uint8_t m[12] = {0};
  const tc_dropout_args ok = {.struct_size = sizeof ok,
                              .n = 12,
                              .group = 3,
                              .p = 0.5f,
                              .x = x,
                              .y = y,
                              .mask = m,
                              .dy = x,
                              .dx = y};
  tc_status (*const fns[2])(void *, const tc_dropout_args *) = {
      it->dropout_fwd, it->dropout_bwd};
  for (int k = 0; k < 2; k++) {
    tc_dropout_args a = ok;
    ck_assert_int_eq(fns[k](ctx, NULL), TC_EINVAL);
    ck_assert_int_eq(fns[k](NULL, &a), TC_EINVAL);
    a.struct_size = 8;
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    a = ok, a.n = -3;
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    a = ok, a.group = 0;
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    a = ok, a.group = 5; /* does not divide 12 */
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    ck_assert_str_ne(tc_last_error(), "");
    a = ok, a.p = -0.1f;
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    a = ok, a.p = 1.5f;
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    a = ok, a.p = NAN;
    ck_assert_int_eq(fns[k](ctx, &a), TC_EINVAL);
    a = ok, a.n = 0, a.x = a.dy = NULL, a.y = a.dx = NULL, a.mask = NULL;
    ck_assert_int_eq(fns[k](ctx, &a), TC_OK); /* nothing to do */
  }
  tc_dropout_args a = ok;
  a.x = NULL;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_EINVAL);
  a = ok, a.y = NULL;
  ck_assert_int_eq(it->dropout_fwd(ctx, &a), TC_EINVAL);
  a = ok, a.mask = NULL;
  ck_assert_int_eq(it->dropout_bwd(ctx, &a), TC_EINVAL);
  a = ok, a.dy = NULL;
  ck_assert_int_eq(it->dropout_bwd(ctx, &a), TC_EINVAL);
  a = ok, a.dx = NULL;
  ck_assert_int_eq(it->dropout_bwd(ctx, &a), TC_EINVAL);
  for (int i = 0; i < 12; i++) {
    ck_assert(y[i] == 0.f);
    ck_assert_int_eq(m[i], 0);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_dropout");
  TCase *tc = tcase_create("dropout");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_known_answer);
  tcase_add_test(tc, test_reproducible);
  tcase_add_test(tc, test_keep_rate);
  tcase_add_test(tc, test_p_zero_and_one);
  tcase_add_test(tc, test_backward);
  tcase_add_test(tc, test_thread_independent);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
