/*
 * test_gradcheck.c - every layer's backward (input and parameter
 * gradients) against double-sided finite differences of
 * L = sum(r * y) with r fixed and random, in float32 on small cases.
 *
 * Step and tolerance: for layers that are linear or piecewise linear in
 * what is perturbed (conv, linear, pooling, ReLU, dropout, flatten,
 * shortcuts) the central difference is exact but for rounding, so the
 * step is large (h = 1e-2) to shrink the rounding error (~ eps32 * |L| /
 * h); inputs keep every ReLU argument and every max-pool candidate more
 * than h away from a kink (|x| >= 0.05, distinct values 0.03 apart). Where
 * the function curves (BatchNorm, and whole blocks containing it) h =
 * 4e-3 balances truncation (~h^2 * |f'''| ~ 1e-5 relative) against
 * rounding (~2e-4 absolute). Each element is estimated at h and h/2;
 * where the two disagree a kink lies within the step and the element is
 * skipped (at most 5% of them, counted and printed). The gradients are
 * compared with the suites' relative error (floored at 1% of the largest
 * gradient) at 1e-2, or 2e-2 for whole blocks and nets: there the h/2
 * estimate of a sum over many float32 outputs that all move carries
 * rounding of up to ~9e-3 of the largest gradient (measured; a larger
 * step trades it for curvature, which the kink filter then mistakes for
 * kinks). The worst error of each case is printed.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
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

enum { X_UNIFORM, X_MARGIN, X_DISTINCT };

static double loss_of(tc_model *m, tc_tensor *x, const float *r, int64_t ny,
                      uint64_t off, float *y) {
  NU_OK(tc_model_set_rng_offset(m, off)); /* the same dropout masks */
  tc_tensor *out;
  NU_OK(tc_model_forward(m, x, &out));
  nu_get(out, y);
  double l = 0;
  for (int64_t i = 0; i < ny; i++)
    l += (double)r[i] * y[i];
  return l;
}

static void fill_x(float *x, int64_t n, int kind, uint64_t seed) {
  tu_fill_uniform(x, (size_t)n, seed, -1.f, 1.f);
  if (kind == X_MARGIN)
    for (int64_t i = 0; i < n; i++)
      x[i] = (x[i] < 0 ? -0.05f : 0.05f) + 0.95f * x[i];
  if (kind == X_DISTINCT) {
    /* a permutation of 0.03 * k, centred: distinct, spaced 0.03 */
    for (int64_t i = 0; i < n; i++)
      x[i] = 0.03f * (float)i - 0.015f * (float)n;
    tc_rng r;
    tc_rng_init(&r, seed, TC_RNG_STREAM_USER);
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)tc_rng_below(&r, (uint64_t)(i + 1));
      float t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
  }
}

/* The two estimates (steps h, h/2) of a smooth function agree to
 * O(h^2) plus rounding (~1e-4 here); a kink crossed by the larger step
 * makes them differ by O(1). Both are estimates of the function, so the
 * test cannot excuse a wrong analytic gradient this way; it only drops
 * the element from the comparison, and few may be dropped. */
static int kinked(const double d[2]) {
  double scale = fmax(fmax(fabs(d[0]), fabs(d[1])), 1e-1);
  return fabs(d[0] - d[1]) > 5e-3 * scale;
}

/* Checks the model's input and parameter gradients at batch n. */
static void gradcheck_tol(const char *what, tc_layer *root,
                          const int64_t *shape, int ndim, int64_t n, int xkind,
                          double h, int training, double tol) {
  tc_model *m = nu_model(be, root, shape, ndim, 1);
  NU_OK(tc_model_set_training(m, training));
  int64_t xs[TC_MAX_DIMS] = {n}, os[TC_MAX_DIMS], nx = n, ny = n;
  memcpy(xs + 1, shape, (size_t)ndim * sizeof *shape);
  for (int i = 0; i < ndim; i++)
    nx *= shape[i];
  int ondim = tc_model_output_shape(m, os);
  for (int i = 0; i < ondim; i++)
    ny *= os[i];
  float *x = malloc((size_t)nx * 4), *y = malloc((size_t)ny * 4);
  float *r = malloc((size_t)ny * 4);
  fill_x(x, nx, xkind, 11);
  tu_fill_uniform(r, (size_t)ny, 12, -1.f, 1.f);
  tc_tensor *xt = nu_tensor(be, xs, ndim + 1, x);
  uint64_t off = tc_model_get_rng_offset(m);

  /* analytic */
  NU_OK(tc_model_zero_grad(m));
  loss_of(m, xt, r, ny, off, y);
  NU_OK(tc_tensor_copy_from_host(tc_model_output_grad(m), r, (size_t)ny * 4));
  NU_OK(tc_model_backward(m, tc_model_output_grad(m)));
  float *dx = malloc((size_t)nx * 4), *ndx = malloc((size_t)nx * 4);
  nu_get(tc_model_input_grad(m), dx);
  tc_tensor *pf = tc_model_params_flat(m);
  int64_t np = tc_tensor_numel(pf);
  float *p = malloc((size_t)(np + 1) * 4), *dp = malloc((size_t)(np + 1) * 4);
  float *ndp = malloc((size_t)(np + 1) * 4);
  nu_get(pf, p);
  nu_get(tc_model_grads_flat(m), dp);

  /* numeric: central differences at h and h/2; where they disagree a
   * kink (ReLU, max) lies within h and the element is skipped */
  int64_t skipped = 0;
  for (int64_t i = 0; i < nx; i++) {
    double d[2];
    for (int k = 0; k < 2; k++) {
      float keep = x[i], hk = (float)(k ? h / 2 : h);
      x[i] = keep + hk;
      NU_OK(tc_tensor_copy_from_host(xt, x, (size_t)nx * 4));
      double lp = loss_of(m, xt, r, ny, off, y);
      x[i] = keep - hk;
      NU_OK(tc_tensor_copy_from_host(xt, x, (size_t)nx * 4));
      double lm = loss_of(m, xt, r, ny, off, y);
      x[i] = keep;
      d[k] = (lp - lm) / (2.0 * hk);
    }
    ndx[i] = (float)d[1];
    if (kinked(d)) {
      ndx[i] = dx[i];
      skipped++;
    }
  }
  NU_OK(tc_tensor_copy_from_host(xt, x, (size_t)nx * 4));
  for (int64_t j = 0; j < np; j++) {
    double d[2];
    for (int k = 0; k < 2; k++) {
      float keep = p[j], hk = (float)(k ? h / 2 : h);
      p[j] = keep + hk;
      NU_OK(tc_tensor_copy_from_host(pf, p, (size_t)np * 4));
      double lp = loss_of(m, xt, r, ny, off, y);
      p[j] = keep - hk;
      NU_OK(tc_tensor_copy_from_host(pf, p, (size_t)np * 4));
      double lm = loss_of(m, xt, r, ny, off, y);
      p[j] = keep;
      d[k] = (lp - lm) / (2.0 * hk);
    }
    ndp[j] = (float)d[1];
    if (kinked(d)) {
      ndp[j] = dp[j];
      skipped++;
    }
  }
  double ex = tu_max_rel_err(dx, ndx, (size_t)nx);
  double ep = np ? tu_max_rel_err(dp, ndp, (size_t)np) : 0;
  printf("gradcheck %-28s h=%.0e  dx err %.2e (%lld)  dparam err %.2e "
         "(%lld)  kinks skipped %lld\n",
         what, h, ex, (long long)nx, ep, (long long)np, (long long)skipped);
  ck_assert_msg(ex <= tol, "%s: input gradient rel err %g", what, ex);
  ck_assert_msg(ep <= tol, "%s: parameter gradient rel err %g", what, ep);
  /* a kink explains a few elements, never a systematic error */
  ck_assert_msg(skipped * 20 <= nx + np, "%s: %lld of %lld skipped", what,
                (long long)skipped, (long long)(nx + np));
  free(x), free(y), free(r), free(dx), free(ndx), free(p), free(dp);
  free(ndp);
  tc_tensor_destroy(xt);
  tc_model_destroy(m);
}

static void gradcheck(const char *what, tc_layer *root, const int64_t *shape,
                      int ndim, int64_t n, int xkind, double h, int training) {
  gradcheck_tol(what, root, shape, ndim, n, xkind, h, training, 1e-2);
}

START_TEST(test_conv2d) {
  tc_layer *l;
  tc_conv2d_options o = TC_CONV2D_OPTIONS_INIT;
  o.stride_h = o.stride_w = 2;
  o.pad_h = o.pad_w = 1;
  NU_OK(tc_conv2d_create(&l, 2, 3, 3, &o));
  int64_t s[3] = {2, 5, 5};
  gradcheck("conv2d s2 p1 bias", l, s, 3, 2, X_UNIFORM, 1e-2, 1);
  o = (tc_conv2d_options)TC_CONV2D_OPTIONS_INIT;
  o.dilation_h = o.dilation_w = 2;
  o.kernel_w = 2;
  o.stride_w = 2;
  o.pad_h = 1;
  o.bias = 0;
  NU_OK(tc_conv2d_create(&l, 2, 2, 3, &o));
  int64_t s2[3] = {2, 6, 6};
  gradcheck("conv2d 3x2 dil2 nobias", l, s2, 3, 2, X_UNIFORM, 1e-2, 1);
}
END_TEST

START_TEST(test_linear) {
  tc_layer *l;
  NU_OK(tc_linear_create(&l, 5, 4, NULL));
  int64_t s = 5, s2[2] = {2, 5};
  gradcheck("linear", l, &s, 1, 3, X_UNIFORM, 1e-2, 1);
  NU_OK(tc_linear_create(&l, 5, 3, NULL));
  gradcheck("linear on (N,2,5)", l, s2, 2, 3, X_UNIFORM, 1e-2, 1);
}
END_TEST

START_TEST(test_batchnorm) {
  tc_layer *l;
  int64_t s[3] = {3, 2, 2}, s1 = 4, s13[2] = {2, 3};
  NU_OK(tc_batchnorm2d_create(&l, 3, NULL));
  gradcheck("batchnorm2d train", l, s, 3, 4, X_UNIFORM, 4e-3, 1);
  NU_OK(tc_batchnorm2d_create(&l, 3, NULL));
  gradcheck("batchnorm2d eval", l, s, 3, 4, X_UNIFORM, 1e-2, 0);
  tc_batchnorm_options o = TC_BATCHNORM_OPTIONS_INIT;
  o.affine = 0;
  NU_OK(tc_batchnorm2d_create(&l, 3, &o));
  gradcheck("batchnorm2d no affine", l, s, 3, 4, X_UNIFORM, 4e-3, 1);
  o = (tc_batchnorm_options)TC_BATCHNORM_OPTIONS_INIT;
  o.track_running_stats = 0;
  NU_OK(tc_batchnorm2d_create(&l, 3, &o));
  gradcheck("batchnorm2d no tracking eval", l, s, 3, 4, X_UNIFORM, 4e-3, 0);
  NU_OK(tc_batchnorm1d_create(&l, 4, NULL));
  gradcheck("batchnorm1d (N,C)", l, &s1, 1, 6, X_UNIFORM, 4e-3, 1);
  NU_OK(tc_batchnorm1d_create(&l, 2, NULL));
  gradcheck("batchnorm1d (N,C,L)", l, s13, 2, 3, X_UNIFORM, 4e-3, 1);
}
END_TEST

START_TEST(test_pooling) {
  tc_layer *l;
  int64_t s[3] = {2, 4, 4}, s5[3] = {2, 5, 5};
  NU_OK(tc_maxpool2d_create(&l, 2, NULL));
  gradcheck("maxpool2d k2", l, s, 3, 2, X_DISTINCT, 1e-2, 1);
  tc_pool2d_options o = TC_POOL2D_OPTIONS_INIT;
  o.stride_h = o.stride_w = 2;
  o.pad_h = o.pad_w = 1;
  o.ceil_mode = 1;
  NU_OK(tc_maxpool2d_create(&l, 3, &o));
  gradcheck("maxpool2d k3 s2 p1 ceil", l, s5, 3, 2, X_DISTINCT, 1e-2, 1);
  NU_OK(tc_avgpool2d_create(&l, 3, &o));
  gradcheck("avgpool2d k3 s2 p1 ceil", l, s5, 3, 2, X_UNIFORM, 1e-2, 1);
  o.count_include_pad = 0;
  NU_OK(tc_avgpool2d_create(&l, 3, &o));
  gradcheck("avgpool2d exclude pad", l, s5, 3, 2, X_UNIFORM, 1e-2, 1);
  NU_OK(tc_global_avgpool2d_create(&l));
  gradcheck("global avgpool", l, s, 3, 2, X_UNIFORM, 1e-2, 1);
}
END_TEST

START_TEST(test_elementwise) {
  tc_layer *l;
  int64_t s[3] = {3, 2, 2};
  NU_OK(tc_relu_create(&l));
  gradcheck("relu", l, s, 3, 2, X_MARGIN, 1e-2, 1);
  NU_OK(tc_dropout_create(&l, 0.4f));
  gradcheck("dropout p=0.4", l, s, 3, 3, X_UNIFORM, 1e-2, 1);
  NU_OK(tc_dropout2d_create(&l, 0.5f));
  gradcheck("dropout2d p=0.5", l, s, 3, 4, X_UNIFORM, 1e-2, 1);
  NU_OK(tc_dropout_create(&l, 0.4f));
  gradcheck("dropout eval", l, s, 3, 2, X_UNIFORM, 1e-2, 0);
  tc_layer *seq;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flatten", l));
  NU_OK(tc_identity_create(&l));
  NU_OK(tc_sequential_add(seq, "id", l));
  NU_OK(tc_linear_create(&l, 12, 3, NULL));
  NU_OK(tc_sequential_add(seq, "fc", l));
  gradcheck("flatten+identity+linear", seq, s, 3, 2, X_UNIFORM, 1e-2, 1);
}
END_TEST

static void block(const char *what, int shortcut, int64_t cin, int64_t cout,
                  int64_t stride) {
  tc_residual_options o = TC_RESIDUAL_OPTIONS_INIT;
  o.shortcut = shortcut;
  tc_layer *l;
  NU_OK(tc_residual_block_create(&l, cin, cout, stride, &o));
  int64_t s[3] = {cin, 4, 4};
  gradcheck_tol(what, l, s, 3, 2, X_UNIFORM, 4e-3, 1, 2e-2);
}

START_TEST(test_residual) {
  block("block identity", TC_SHORTCUT_A_MAXPOOL, 3, 3, 1);
  block("block A maxpool", TC_SHORTCUT_A_MAXPOOL, 2, 4, 2);
  block("block A subsample", TC_SHORTCUT_A_SUBSAMPLE, 2, 4, 2);
  block("block B", TC_SHORTCUT_B, 2, 4, 2);
  block("block plain", TC_SHORTCUT_NONE, 2, 4, 2);
}
END_TEST

START_TEST(test_small_net) {
  tc_layer *net, *l;
  NU_OK(tc_sequential_create(&net));
  tc_conv2d_options c = TC_CONV2D_OPTIONS_INIT;
  c.pad_h = c.pad_w = 1;
  NU_OK(tc_conv2d_create(&l, 1, 3, 3, &c));
  NU_OK(tc_sequential_add(net, "conv1", l));
  NU_OK(tc_batchnorm2d_create(&l, 3, NULL));
  NU_OK(tc_sequential_add(net, "bn1", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(net, "relu1", l));
  NU_OK(tc_maxpool2d_create(&l, 2, NULL));
  NU_OK(tc_sequential_add(net, "pool1", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(net, "flatten", l));
  NU_OK(tc_linear_create(&l, 12, 5, NULL));
  NU_OK(tc_sequential_add(net, "fc1", l));
  NU_OK(tc_batchnorm1d_create(&l, 5, NULL));
  NU_OK(tc_sequential_add(net, "bn2", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(net, "relu2", l));
  NU_OK(tc_dropout_create(&l, 0.2f));
  NU_OK(tc_sequential_add(net, "drop", l));
  NU_OK(tc_linear_create(&l, 5, 3, NULL));
  NU_OK(tc_sequential_add(net, "fc2", l));
  int64_t s[3] = {1, 4, 4};
  gradcheck_tol("small LeNet-like net", net, s, 3, 4, X_UNIFORM, 4e-3, 1, 2e-2);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gradcheck");
  TCase *tc = tcase_create("gradcheck");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_conv2d);
  tcase_add_test(tc, test_linear);
  tcase_add_test(tc, test_batchnorm);
  tcase_add_test(tc, test_pooling);
  tcase_add_test(tc, test_elementwise);
  tcase_add_test(tc, test_residual);
  tcase_add_test(tc, test_small_net);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
