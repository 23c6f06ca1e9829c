/*
 * test_cpu_reduce.c - the CPU backend's full reductions (sum, sum of
 * squares, max |x|, non-finite count) against the naive double
 * references of tests/reference/reduce.c: sizes from 1 to past the chunk
 * cap, the same bits with 1, 2 and 4 threads, NaN and Inf propagation and
 * counting, n = 0, argument errors.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/reduce.h"
#include "testutil.h"

#include "op_fixture.h"

static void setup(void) {
  op_open_cpu();
  ck_assert_ptr_nonnull(it->reduce);
}

static void teardown(void) {
  op_close();
}

static float *dalloc(size_t n) {
  return op_falloc(n);
}

static double reduce(const tc_backend_iface *ti, void *tctx, const float *x,
                     int64_t n, int op) {
  double out = -12345.0;
  tc_reduce_args a = {
      .struct_size = sizeof a, .n = n, .op = op, .x = x, .host_out = &out};
  ck_assert_int_eq(ti->reduce(tctx, &a), TC_OK);
  return out;
}

/* The reference (tests/reference/reduce.c) of op over x (n). */
static double want_reduce(const float *x, int64_t n, int op) {
  double out = -12345.0;
  tc_reduce_args a = {
      .struct_size = sizeof a, .n = n, .op = op, .x = x, .host_out = &out};
  ref_reduce(&a);
  return out;
}

static const int64_t sizes[] = {1,    2,    7,      8,      9,
                                8191, 8193, 100000, 524289, 1000003};

START_TEST(test_against_reference) {
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int64_t n = sizes[s];
    float *x = dalloc((size_t)n);
    tu_fill_uniform(x, (size_t)n, 40 + s, -1.f, 3.f);
    double mag = 0; /* sum |x| bounds the rounding of any order */
    for (int64_t i = 0; i < n; i++)
      mag += fabs((double)x[i]) * (1.0 + fabs((double)x[i]));
    for (int op = 0; op < 4; op++) {
      double got = reduce(it, ctx, x, n, op), want = want_reduce(x, n, op);
      if (op == TC_REDUCE_SUM || op == TC_REDUCE_SUMSQ)
        ck_assert_msg(fabs(got - want) <= 1e-11 * mag,
                      "n=%lld op %d: %.17g vs %.17g", (long long)n, op, got,
                      want);
      else
        ck_assert_msg(got == want, "n=%lld op %d: %.17g vs %.17g", (long long)n,
                      op, got, want);
    }
    it->free(ctx, x);
  }
}
END_TEST

/* The same bits whatever the thread count. */
START_TEST(test_thread_independent) {
  ck_assert_int_eq(tc_set_num_threads(4), TC_OK);
  const int64_t n = 777777;
  float *x = malloc((size_t)n * sizeof *x);
  tu_fill_uniform(x, (size_t)n, 5, -1.f, 1.f);
  for (int64_t i = 0; i < n; i += 1000)
    x[i] *= 1e4f; /* a wide range makes the order visible */
  static const int threads[] = {1, 2, 4};
  double res[3][4];
  for (int k = 0; k < 3; k++) {
    tc_backend *tb = op_create_cpu(threads[k]);
    for (int op = 0; op < 4; op++)
      res[k][op] = reduce(tc_backend_get_iface(tb), tc_backend_get_context(tb),
                          x, n, op);
    tc_backend_destroy(tb);
  }
  for (int k = 1; k < 3; k++)
    for (int op = 0; op < 4; op++)
      ck_assert_msg(memcmp(&res[k][op], &res[0][op], sizeof(double)) == 0,
                    "op %d: %d threads %.17g, 1 thread %.17g", op, threads[k],
                    res[k][op], res[0][op]);
  free(x);
}
END_TEST

/* NaN anywhere (first, middle or last chunk) reaches SUM, SUMSQ, MAXABS. */
START_TEST(test_nan_inf) {
  const int64_t n = 300001;
  float *x = dalloc((size_t)n);
  static const int64_t where[] = {0, 150000, 300000};
  for (size_t w = 0; w < 3; w++) {
    tu_fill_uniform(x, (size_t)n, 7, -1.f, 1.f);
    x[where[w]] = NAN;
    for (int op = 0; op < 3; op++)
      ck_assert_msg(isnan(reduce(it, ctx, x, n, op)), "op %d, NaN at %lld", op,
                    (long long)where[w]);
    ck_assert(reduce(it, ctx, x, n, TC_REDUCE_NONFINITE) == 1.0);
    /* Inf: SUM, SUMSQ and MAXABS become +inf (or -inf) */
    x[where[w]] = -INFINITY;
    ck_assert(reduce(it, ctx, x, n, TC_REDUCE_SUM) == -INFINITY);
    ck_assert(reduce(it, ctx, x, n, TC_REDUCE_SUMSQ) == INFINITY);
    ck_assert(reduce(it, ctx, x, n, TC_REDUCE_MAXABS) == INFINITY);
    ck_assert(reduce(it, ctx, x, n, TC_REDUCE_NONFINITE) == 1.0);
  }
  /* +inf and -inf in different chunks sum to NaN */
  x[0] = INFINITY;
  ck_assert(isnan(reduce(it, ctx, x, n, TC_REDUCE_SUM)));
  /* counting: NaNs of every sign and payload, both infinities; huge and
   * subnormal finite values are not counted */
  tu_fill_uniform(x, (size_t)n, 8, -1.f, 1.f);
  static const uint32_t bad[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u,
                                 0x7fffffffu, 0x7f800000u, 0xff800000u};
  int64_t count = 0;
  for (int64_t i = 3; i < n; i += 997) {
    memcpy(&x[i], &bad[count % 6], sizeof(float));
    count++;
  }
  x[1] = FLT_MAX, x[2] = -FLT_MIN / 8;
  ck_assert(reduce(it, ctx, x, n, TC_REDUCE_NONFINITE) == (double)count);
  ck_assert(reduce(it, ctx, x, n, TC_REDUCE_NONFINITE) ==
            want_reduce(x, n, TC_REDUCE_NONFINITE));
  /* FLT_MAX squared does not overflow the double sums */
  for (int64_t i = 0; i < 4; i++)
    x[i] = -FLT_MAX;
  double sq = reduce(it, ctx, x, 4, TC_REDUCE_SUMSQ);
  ck_assert(isfinite(sq) && sq == 4.0 * (double)FLT_MAX * (double)FLT_MAX);
  ck_assert(reduce(it, ctx, x, 4, TC_REDUCE_SUM) == -4.0 * (double)FLT_MAX);
  ck_assert(reduce(it, ctx, x, 4, TC_REDUCE_MAXABS) == (double)FLT_MAX);
  it->free(ctx, x);
}
END_TEST

START_TEST(test_empty) {
  for (int op = 0; op < 4; op++) {
    double out = 7.0;
    tc_reduce_args a = {
        .struct_size = sizeof a, .n = 0, .op = op, .host_out = &out};
    ck_assert_int_eq(it->reduce(ctx, &a), TC_OK);
    ck_assert(out == 0.0);
    ck_assert(want_reduce(NULL, 0, op) == 0.0);
  }
}
END_TEST

START_TEST(test_errors) {
  float x[4] = {1, 2, 3, 4};
  double out = 7.0;
  const tc_reduce_args ok = {.struct_size = sizeof ok,
                             .n = 4,
                             .op = TC_REDUCE_SUM,
                             .x = x,
                             .host_out = &out};
  tc_reduce_args a = ok;
  ck_assert_int_eq(it->reduce(ctx, NULL), TC_EINVAL);
  ck_assert_int_eq(it->reduce(NULL, &a), TC_EINVAL);
  a.struct_size = 8;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_EINVAL);
  a = ok, a.n = -1;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_EINVAL);
  ck_assert_str_ne(tc_last_error(), "");
  a = ok, a.op = -1;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_EINVAL);
  a = ok, a.op = 4;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_EINVAL);
  a = ok, a.x = NULL;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_EINVAL);
  a = ok, a.host_out = NULL;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_EINVAL);
  ck_assert(out == 7.0); /* failed calls leave the output alone */
  a = ok;
  ck_assert_int_eq(it->reduce(ctx, &a), TC_OK);
  ck_assert(out == 10.0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_reduce");
  TCase *tc = tcase_create("reduce");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_against_reference);
  tcase_add_test(tc, test_thread_independent);
  tcase_add_test(tc, test_nan_inf);
  tcase_add_test(tc, test_empty);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
