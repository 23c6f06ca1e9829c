/*
 * test_loss.c - losses against values computed here in double: cross-
 * entropy (mean, sum, label smoothing), NLL, MSE, their gradients, accuracy
 * counts; and bad input: NaN/Inf (TC_ENUMERIC, gradient left untouched),
 * labels out of range, wrong shapes, bad options.
 */
#include <check.h>
#include <math.h>

#include "nn_util.h"
#include "testutil.h"

static tc_backend *be;
static void setup(void) {
  be = nu_cpu();
}
static void teardown(void) {
  tc_backend_destroy(be);
}

static const float logits[6] = {1, 2, 3, 1, 1, 1};
static const int32_t labels[2] = {2, 0};

/* CE with smoothing eps over (2,3): loss and gradient in double */
static void xent_ref(double eps, int sum, double *loss, float *grad) {
  double total = 0, sc = sum ? 1.0 : 0.5;
  for (int n = 0; n < 2; n++) {
    const float *x = logits + 3 * n;
    double m = fmax(x[0], fmax(x[1], x[2]));
    double lse = m + log(exp(x[0] - m) + exp(x[1] - m) + exp(x[2] - m));
    for (int j = 0; j < 3; j++) {
      double q = (j == labels[n] ? 1 - eps : 0) + eps / 3;
      total += -q * (x[j] - lse);
      grad[3 * n + j] = (float)((exp(x[j] - lse) - q) * sc);
    }
  }
  *loss = total * sc;
}

static void xent_case(double eps, int sum) {
  tc_loss_options o = TC_LOSS_OPTIONS_INIT;
  o.label_smoothing = (float)eps;
  o.reduction = sum ? TC_LOSS_SUM : TC_LOSS_MEAN;
  tc_loss *l;
  NU_OK(tc_loss_create(&l, be, TC_LOSS_CROSS_ENTROPY, &o));
  int64_t s[2] = {2, 3};
  tc_tensor *x = nu_tensor(be, s, 2, logits), *g = nu_tensor(be, s, 2, NULL);
  tc_tensor *lab = nu_labels(be, 2, labels);
  float v, got[6], want[6];
  double ref;
  NU_OK(tc_loss_compute(l, x, lab, &v, g));
  xent_ref(eps, sum, &ref, want);
  nu_get(g, got);
  ck_assert_msg(fabs(v - ref) <= 1e-6 * fabs(ref), "%g vs %g", v, ref);
  TU_ASSERT_CLOSE(got, want, 6, 1e-5);
  /* without a gradient tensor: only the value */
  NU_OK(tc_loss_compute(l, x, lab, &v, NULL));
  ck_assert(fabs(v - ref) <= 1e-6 * fabs(ref));
  tc_tensor_destroy(x);
  tc_tensor_destroy(g);
  tc_tensor_destroy(lab);
  tc_loss_destroy(l);
}

START_TEST(test_cross_entropy) {
  /* hand value: row 0: log(1+e^-1+e^-2) = 0.40761; row 1: log 3 */
  double ref;
  float g[6];
  xent_ref(0, 0, &ref, g);
  ck_assert(fabs(ref - (0.4076059644 + log(3.0)) / 2) < 1e-9);
  xent_case(0, 0);
  xent_case(0, 1);
  xent_case(0.1, 0);
  xent_case(0.3, 1);
}
END_TEST

START_TEST(test_nll_mse) {
  int64_t s[2] = {2, 3};
  tc_tensor *x = nu_tensor(be, s, 2, logits), *g = nu_tensor(be, s, 2, NULL);
  tc_tensor *lab = nu_labels(be, 2, labels);
  tc_loss *l;
  float v, got[6];
  NU_OK(tc_loss_create(&l, be, TC_LOSS_NLL, NULL));
  NU_OK(tc_loss_compute(l, x, lab, &v, g));
  ck_assert_float_eq_tol(v, -(3.f + 1.f) / 2, 1e-6);
  nu_get(g, got);
  float wn[6] = {0, 0, -0.5f, -0.5f, 0, 0};
  TU_ASSERT_CLOSE(got, wn, 6, 1e-6);
  tc_loss_destroy(l);

  float t[6] = {0, 2, 5, 1, 0, -1};
  tc_tensor *tt = nu_tensor(be, s, 2, t);
  NU_OK(tc_loss_create(&l, be, TC_LOSS_MSE, NULL));
  NU_OK(tc_loss_compute(l, x, tt, &v, g));
  /* diffs 1, 0, -2, 0, 1, 2: sum of squares 10 over 6 elements */
  ck_assert_float_eq_tol(v, 10.f / 6, 1e-6);
  nu_get(g, got);
  float wm[6] = {2.f / 6, 0, -4.f / 6, 0, 2.f / 6, 4.f / 6};
  TU_ASSERT_CLOSE(got, wm, 6, 1e-6);
  tc_loss_destroy(l);
  tc_loss_options o = TC_LOSS_OPTIONS_INIT;
  o.reduction = TC_LOSS_SUM;
  NU_OK(tc_loss_create(&l, be, TC_LOSS_MSE, &o));
  NU_OK(tc_loss_compute(l, x, tt, &v, NULL));
  ck_assert_float_eq_tol(v, 10.f, 1e-6);
  tc_loss_destroy(l);
  tc_tensor_destroy(tt);
  tc_tensor_destroy(x);
  tc_tensor_destroy(g);
  tc_tensor_destroy(lab);
}
END_TEST

START_TEST(test_accuracy) {
  /* row 1 ties (1,1,1): the first maximum (class 0) counts */
  int64_t s[2] = {2, 3}, correct = -1;
  tc_tensor *x = nu_tensor(be, s, 2, logits);
  tc_tensor *lab = nu_labels(be, 2, labels);
  NU_OK(tc_accuracy_count(x, lab, &correct));
  ck_assert_int_eq(correct, 2);
  int32_t other[2] = {0, 1};
  tc_tensor *lab2 = nu_labels(be, 2, other);
  NU_OK(tc_accuracy_count(x, lab2, &correct));
  ck_assert_int_eq(correct, 0);
  tc_tensor *lab3 = nu_labels(be, 1, other);
  ck_assert_int_eq(tc_accuracy_count(x, lab3, &correct), TC_ESHAPE);
  tc_tensor_destroy(x);
  tc_tensor_destroy(lab);
  tc_tensor_destroy(lab2);
  tc_tensor_destroy(lab3);
}
END_TEST

START_TEST(test_bad_input) {
  int64_t s[2] = {2, 3};
  float bad[6] = {1, NAN, 3, 1, 1, 1}, sentinel[6] = {7, 7, 7, 7, 7, 7};
  tc_tensor *x = nu_tensor(be, s, 2, bad), *g = nu_tensor(be, s, 2, sentinel);
  tc_tensor *lab = nu_labels(be, 2, labels);
  tc_loss *l;
  NU_OK(tc_loss_create(&l, be, TC_LOSS_CROSS_ENTROPY, NULL));
  float v = 42, got[6];
  ck_assert_int_eq(tc_loss_compute(l, x, lab, &v, g), TC_ENUMERIC);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "NaN"));
  ck_assert_float_eq(v, 42);
  nu_get(g, got);
  TU_ASSERT_CLOSE(got, sentinel, 6, 0);
  bad[1] = INFINITY;
  NU_OK(tc_tensor_copy_from_host(x, bad, sizeof bad));
  ck_assert_int_eq(tc_loss_compute(l, x, lab, &v, g), TC_ENUMERIC);
  /* labels out of range */
  NU_OK(tc_tensor_copy_from_host(x, logits, sizeof logits));
  int32_t out_of_range[2] = {3, 0};
  tc_tensor *lab2 = nu_labels(be, 2, out_of_range);
  ck_assert_int_eq(tc_loss_compute(l, x, lab2, &v, g), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "label[0] = 3"));
  /* shapes */
  int64_t s4 = 4;
  tc_tensor *g4 = nu_tensor(be, &s4, 1, NULL);
  ck_assert_int_eq(tc_loss_compute(l, x, lab, &v, g4), TC_ESHAPE);
  ck_assert_int_eq(tc_loss_compute(l, x, x, &v, g), TC_ESHAPE);
  /* still fine afterwards */
  NU_OK(tc_loss_compute(l, x, lab, &v, g));
  tc_loss_destroy(l);
  /* MSE: NaN in the target */
  NU_OK(tc_loss_create(&l, be, TC_LOSS_MSE, NULL));
  float tb[6] = {0, 0, 0, 0, NAN, 0};
  tc_tensor *t = nu_tensor(be, s, 2, tb);
  ck_assert_int_eq(tc_loss_compute(l, x, t, &v, g), TC_ENUMERIC);
  tc_loss_destroy(l);
  /* options */
  tc_loss_options o = TC_LOSS_OPTIONS_INIT;
  o.label_smoothing = 0.1f;
  ck_assert_int_eq(tc_loss_create(&l, be, TC_LOSS_NLL, &o), TC_EINVAL);
  o.label_smoothing = 1.5f;
  ck_assert_int_eq(tc_loss_create(&l, be, TC_LOSS_CROSS_ENTROPY, &o),
                   TC_EINVAL);
  o = (tc_loss_options)TC_LOSS_OPTIONS_INIT;
  o.reduction = 2;
  ck_assert_int_eq(tc_loss_create(&l, be, TC_LOSS_MSE, &o), TC_EINVAL);
  ck_assert_int_eq(tc_loss_create(&l, be, (tc_loss_kind)9, NULL), TC_EINVAL);
  tc_tensor_destroy(t);
  tc_tensor_destroy(g4);
  tc_tensor_destroy(lab2);
  tc_tensor_destroy(x);
  tc_tensor_destroy(g);
  tc_tensor_destroy(lab);
}
END_TEST

int main(void) {
  Suite *s = suite_create("loss");
  TCase *tc = tcase_create("loss");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_cross_entropy);
  tcase_add_test(tc, test_nll_mse);
  tcase_add_test(tc, test_accuracy);
  tcase_add_test(tc, test_bad_input);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
