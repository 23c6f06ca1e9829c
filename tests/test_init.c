/*
 * test_init.c - torch.nn.init's initialisers: gains, fans, bounds, sample
 * moments (mean and variance of ~150k draws against the formula), the
 * determinism of the seeded stream, and errors.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "nn_util.h"
#include "testutil.h"

static tc_backend *be;
static void setup(void) {
  be = nu_cpu();
}
static void teardown(void) {
  tc_backend_destroy(be);
}

/* (64, 256, 3, 3): fan_in 2304, fan_out 576, 147456 values */
static const int64_t W[4] = {64, 256, 3, 3};
#define NW (64 * 256 * 9)

static void moments(tc_tensor *t, double *mean, double *var, double *maxabs) {
  float *h = malloc(NW * sizeof *h);
  nu_get(t, h);
  double s = 0, q = 0, m = 0;
  for (int i = 0; i < NW; i++) {
    s += h[i];
    m = fmax(m, fabs(h[i]));
  }
  s /= NW;
  for (int i = 0; i < NW; i++)
    q += (h[i] - s) * (h[i] - s);
  *mean = s;
  *var = q / (NW - 1);
  *maxabs = m;
  free(h);
}

/* The sample variance of NW draws is within 2% of the truth with
 * probability far beyond 6 sigma (its relative sd is ~0.4-0.6%). */
static void check(tc_tensor *t, double want_var, double bound) {
  double mean, var, mx;
  moments(t, &mean, &var, &mx);
  ck_assert_msg(fabs(var / want_var - 1) < 0.02, "var %g, want %g", var,
                want_var);
  ck_assert_msg(fabs(mean) < 6 * sqrt(want_var / NW), "mean %g", mean);
  if (bound > 0)
    ck_assert_msg(mx <= bound && mx > 0.99 * bound, "max %g, bound %g", mx,
                  bound);
}

START_TEST(test_gain_and_fans) {
  ck_assert_double_eq(tc_init_calculate_gain(TC_NONLINEARITY_LINEAR, 0), 1);
  ck_assert_double_eq_tol(tc_init_calculate_gain(TC_NONLINEARITY_RELU, 0),
                          sqrt(2.0), 1e-15);
  ck_assert_double_eq_tol(
      tc_init_calculate_gain(TC_NONLINEARITY_LEAKY_RELU, sqrt(5.0)),
      sqrt(1.0 / 3), 1e-15);
  ck_assert_double_eq_tol(tc_init_calculate_gain(TC_NONLINEARITY_TANH, 0),
                          5.0 / 3, 1e-15);
  ck_assert(tc_init_calculate_gain((tc_nonlinearity)99, 0) < 0);
  int64_t s[4] = {6, 3, 5, 5}, fi, fo;
  tc_tensor *t = nu_tensor(be, s, 4, NULL), *v = nu_tensor(be, s, 1, NULL);
  NU_OK(tc_init_fans(t, &fi, &fo));
  ck_assert_int_eq(fi, 75);
  ck_assert_int_eq(fo, 150);
  ck_assert_int_eq(tc_init_fans(v, &fi, &fo), TC_EINVAL);
  tc_rng r;
  tc_rng_init(&r, 0, TC_RNG_STREAM_INIT);
  ck_assert_int_eq(
      tc_init_kaiming_uniform(v, 0, TC_FAN_IN, TC_NONLINEARITY_RELU, &r),
      TC_EINVAL);
  ck_assert_int_eq(
      tc_init_kaiming_uniform(t, 0, TC_FAN_IN, TC_NONLINEARITY_RELU, NULL),
      TC_EINVAL);
  tc_tensor *it;
  NU_OK(tc_tensor_create(&it, be, s, 4, TC_INT32));
  ck_assert_int_eq(tc_init_normal(it, 0, 1, &r), TC_EINVAL);
  ck_assert_int_eq(tc_init_normal(t, 0, -1, &r), TC_EINVAL);
  ck_assert_int_eq(tc_init_uniform(t, 1, 0, &r), TC_EINVAL);
  tc_tensor_destroy(it);
  tc_tensor_destroy(t);
  tc_tensor_destroy(v);
}
END_TEST

START_TEST(test_distributions) {
  tc_tensor *t = nu_tensor(be, W, 4, NULL);
  tc_rng r;
  tc_rng_init(&r, 5, TC_RNG_STREAM_INIT);
  /* kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) (PyTorch's default) */
  NU_OK(tc_init_kaiming_uniform(t, sqrt(5.0), TC_FAN_IN,
                                TC_NONLINEARITY_LEAKY_RELU, &r));
  double b = 1 / sqrt(2304.0);
  check(t, b * b / 3, b);
  /* kaiming_normal(fan_out, relu): std sqrt(2 / fan_out) (He et al. 2015) */
  NU_OK(tc_init_kaiming_normal(t, 0, TC_FAN_OUT, TC_NONLINEARITY_RELU, &r));
  check(t, 2.0 / 576, 0);
  NU_OK(tc_init_kaiming_uniform(t, 0, TC_FAN_OUT, TC_NONLINEARITY_RELU, &r));
  b = sqrt(2.0) * sqrt(3.0 / 576);
  check(t, b * b / 3, b);
  /* xavier: 2 / (fan_in + fan_out) */
  NU_OK(tc_init_xavier_uniform(t, 1.0, &r));
  b = sqrt(6.0 / (2304 + 576));
  check(t, b * b / 3, b);
  NU_OK(tc_init_xavier_normal(t, 2.0, &r));
  check(t, 4 * 2.0 / (2304 + 576), 0);
  NU_OK(tc_init_normal(t, 0, 0.5, &r));
  check(t, 0.25, 0);
  NU_OK(tc_init_uniform(t, -2, 2, &r));
  check(t, 16.0 / 12, 2);
  NU_OK(tc_init_constant(t, 0.125));
  float h[9];
  int64_t s9 = 9;
  tc_tensor *small = nu_tensor(be, &s9, 1, NULL);
  NU_OK(tc_init_constant(small, -3));
  nu_get(small, h);
  for (int i = 0; i < 9; i++)
    ck_assert_float_eq(h[i], -3.f);
  tc_tensor_destroy(small);
  tc_tensor_destroy(t);
}
END_TEST

START_TEST(test_determinism) {
  int64_t s[2] = {10, 20};
  tc_tensor *a = nu_tensor(be, s, 2, NULL), *b = nu_tensor(be, s, 2, NULL);
  tc_rng r1, r2;
  tc_rng_init(&r1, 77, TC_RNG_STREAM_INIT);
  r2 = r1;
  NU_OK(tc_init_kaiming_normal(a, 0, TC_FAN_IN, TC_NONLINEARITY_RELU, &r1));
  NU_OK(tc_init_kaiming_normal(b, 0, TC_FAN_IN, TC_NONLINEARITY_RELU, &r2));
  float ha[200], hb[200];
  nu_get(a, ha);
  nu_get(b, hb);
  ck_assert(memcmp(ha, hb, sizeof ha) == 0);
  ck_assert_uint_eq(r1.offset, r2.offset);
  ck_assert_uint_gt(r1.offset, 0);
  /* the stream moved on: the next draw differs */
  NU_OK(tc_init_kaiming_normal(b, 0, TC_FAN_IN, TC_NONLINEARITY_RELU, &r2));
  nu_get(b, hb);
  ck_assert(memcmp(ha, hb, sizeof ha) != 0);
  tc_tensor_destroy(a);
  tc_tensor_destroy(b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("init");
  TCase *tc = tcase_create("init");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_gain_and_fans);
  tcase_add_test(tc, test_distributions);
  tcase_add_test(tc, test_determinism);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
