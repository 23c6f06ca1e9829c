/*
 * test_model.c - models as trees: PyTorch state-dict names and order for a
 * LeNet-5 (LeCun et al. 1998, with BN) and a small CIFAR ResNet (He et al.
 * 2016) tree, the flat parameter/gradient arenas (parameters are views),
 * deterministic default initialisation, batch-size changes, zero allocation in
 * a steady training step, bad input (clear errors, model still usable), and
 * fault injection on construction (every allocation failing in turn).
 */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"
#include "testutil.h"

static tc_backend *be;
static void setup(void) {
  be = nu_cpu();
}
static void teardown(void) {
  tc_backend_destroy(be);
}

#define TRY(call)                                                              \
  do {                                                                         \
    if ((st = (call)) != TC_OK)                                                \
      goto fail;                                                               \
  } while (0)

/* LeNet-5 (LeCun et al. 1998; 3x32x32 input) with BatchNorm; the layers without
 * state are named as in a Sequential, which PyTorch leaves out of the
 * state dict as well. */
static tc_status lenet(tc_layer **out, int bn) {
  tc_status st;
  tc_layer *net = NULL, *l;
  TRY(tc_sequential_create(&net));
  TRY(tc_conv2d_create(&l, 3, 6, 5, NULL));
  TRY(tc_sequential_add(net, "conv1", l));
  if (bn) {
    TRY(tc_batchnorm2d_create(&l, 6, NULL));
    TRY(tc_sequential_add(net, "bn1", l));
  }
  TRY(tc_relu_create(&l));
  TRY(tc_sequential_add(net, "relu1", l));
  TRY(tc_maxpool2d_create(&l, 2, NULL));
  TRY(tc_sequential_add(net, "pool1", l));
  TRY(tc_conv2d_create(&l, 6, 16, 5, NULL));
  TRY(tc_sequential_add(net, "conv2", l));
  if (bn) {
    TRY(tc_batchnorm2d_create(&l, 16, NULL));
    TRY(tc_sequential_add(net, "bn2", l));
  }
  TRY(tc_relu_create(&l));
  TRY(tc_sequential_add(net, "relu2", l));
  TRY(tc_maxpool2d_create(&l, 2, NULL));
  TRY(tc_sequential_add(net, "pool2", l));
  TRY(tc_flatten_create(&l));
  TRY(tc_sequential_add(net, "flatten", l));
  TRY(tc_linear_create(&l, 400, 120, NULL));
  TRY(tc_sequential_add(net, "fc3", l));
  if (bn) {
    TRY(tc_batchnorm1d_create(&l, 120, NULL));
    TRY(tc_sequential_add(net, "bn3", l));
  }
  TRY(tc_relu_create(&l));
  TRY(tc_sequential_add(net, "relu3", l));
  TRY(tc_linear_create(&l, 120, 84, NULL));
  TRY(tc_sequential_add(net, "fc4", l));
  TRY(tc_relu_create(&l));
  TRY(tc_sequential_add(net, "relu4", l));
  TRY(tc_dropout_create(&l, 0.25f));
  TRY(tc_sequential_add(net, "drop", l));
  TRY(tc_linear_create(&l, 84, 10, NULL));
  TRY(tc_sequential_add(net, "fc5", l));
  *out = net;
  return TC_OK;
fail:
  tc_layer_destroy(net);
  return st;
}

/* The CIFAR ResNet (He et al. 2016) with n blocks per stage (n = 3: ResNet-20).
 */
static tc_status resnet(tc_layer **out, int n, int shortcut) {
  tc_status st;
  tc_layer *net = NULL, *stage, *l;
  tc_conv2d_options c = TC_CONV2D_OPTIONS_INIT;
  c.pad_h = c.pad_w = 1;
  c.bias = 0;
  tc_residual_options r = TC_RESIDUAL_OPTIONS_INIT;
  r.shortcut = shortcut;
  TRY(tc_sequential_create(&net));
  TRY(tc_conv2d_create(&l, 3, 16, 3, &c));
  TRY(tc_sequential_add(net, "conv1", l));
  TRY(tc_batchnorm2d_create(&l, 16, NULL));
  TRY(tc_sequential_add(net, "bn1", l));
  TRY(tc_relu_create(&l));
  TRY(tc_sequential_add(net, "relu", l));
  static const char *names[3] = {"layers_2n", "layers_4n", "layers_6n"};
  for (int s = 0; s < 3; s++) {
    TRY(tc_sequential_create(&stage));
    TRY(tc_sequential_add(net, names[s], stage));
    for (int b = 0; b < n; b++) {
      char nm[16];
      snprintf(nm, sizeof nm, "%d", b);
      int64_t cout = 16 << s, cin = b == 0 && s > 0 ? cout / 2 : cout;
      TRY(tc_residual_block_create(&l, cin, cout, b == 0 && s > 0 ? 2 : 1, &r));
      TRY(tc_sequential_add(stage, nm, l));
    }
  }
  tc_pool2d_options p = TC_POOL2D_OPTIONS_INIT;
  p.stride_h = p.stride_w = 1;
  TRY(tc_avgpool2d_create(&l, 8, &p));
  TRY(tc_sequential_add(net, "avg_pool", l));
  TRY(tc_flatten_create(&l));
  TRY(tc_sequential_add(net, "flatten", l));
  TRY(tc_linear_create(&l, 64, 10, NULL));
  TRY(tc_sequential_add(net, "fc_out", l));
  *out = net;
  return TC_OK;
fail:
  tc_layer_destroy(net);
  return st;
}

static const int64_t img[3] = {3, 32, 32};

START_TEST(test_lenet_names) {
  tc_layer *net;
  NU_OK(lenet(&net, 1));
  tc_model *m = nu_model(be, net, img, 3, 0);
  static const char *want[] = {"conv1.weight",
                               "conv1.bias",
                               "bn1.weight",
                               "bn1.bias",
                               "bn1.running_mean",
                               "bn1.running_var",
                               "bn1.num_batches_tracked",
                               "conv2.weight",
                               "conv2.bias",
                               "bn2.weight",
                               "bn2.bias",
                               "bn2.running_mean",
                               "bn2.running_var",
                               "bn2.num_batches_tracked",
                               "fc3.weight",
                               "fc3.bias",
                               "bn3.weight",
                               "bn3.bias",
                               "bn3.running_mean",
                               "bn3.running_var",
                               "bn3.num_batches_tracked",
                               "fc4.weight",
                               "fc4.bias",
                               "fc5.weight",
                               "fc5.bias"};
  int n = (int)(sizeof want / sizeof *want);
  ck_assert_int_eq(tc_model_num_state(m), n);
  ck_assert_int_eq(tc_model_num_params(m), 16);
  ck_assert_int_eq(tc_model_num_buffers(m), 9);
  int ip = 0, ib = 0;
  for (int i = 0; i < n; i++) {
    const char *nm, *pn;
    tc_tensor *t, *pt;
    NU_OK(tc_model_get_state(m, i, &nm, &t));
    ck_assert_str_eq(nm, want[i]);
    if (strstr(nm, "running") || strstr(nm, "num_batches")) {
      NU_OK(tc_model_get_buffer(m, ib++, &pn, &pt));
    } else {
      NU_OK(tc_model_get_param(m, ip++, &pn, &pt, NULL));
    }
    ck_assert_str_eq(pn, nm);
    ck_assert_ptr_eq(pt, t);
  }
  ck_assert_int_eq(tc_model_get_param(m, 16, NULL, NULL, NULL), TC_EINVAL);
  tc_tensor *w;
  NU_OK(tc_model_find_state(m, "fc3.weight", &w));
  ck_assert_int_eq(tc_tensor_dim(w, 0), 120);
  ck_assert_int_eq(tc_tensor_dim(w, 1), 400);
  ck_assert_int_eq(tc_model_find_state(m, "fc3.gamma", &w), TC_ENOTFOUND);
  /* 456+6 + 12 + 2416 + 32 + 48120+120 + 240 + 10164 + 850 */
  ck_assert_int_eq(tc_tensor_numel(tc_model_params_flat(m)),
                   456 + 6 * 2 + 2416 + 16 * 2 + 48120 + 120 * 2 + 10164 + 850);
  tc_model_destroy(m);
}
END_TEST

START_TEST(test_resnet_names) {
  tc_layer *net;
  NU_OK(resnet(&net, 3, TC_SHORTCUT_A_MAXPOOL));
  tc_model *m = nu_model(be, net, img, 3, 0);
  /* ResNet-20: 0.27M parameters (He et al. 2016, table 6): 432 + 32 +
   * 6*2304 + 4608 + 5*9216 + 18432 + 5*36864 + 18*(2*C) BN + 650 */
  ck_assert_int_eq(tc_tensor_numel(tc_model_params_flat(m)), 269722);
  ck_assert_int_eq(tc_model_num_params(m), 1 + 2 + 9 * 6 + 2);
  const char *nm;
  NU_OK(tc_model_get_state(m, 6, &nm, NULL));
  ck_assert_str_eq(nm, "layers_2n.0.conv1.weight");
  NU_OK(tc_model_get_state(m, 11, &nm, NULL));
  ck_assert_str_eq(nm, "layers_2n.0.bn1.num_batches_tracked");
  int64_t last = tc_model_num_state(m) - 1;
  NU_OK(tc_model_get_state(m, last, &nm, NULL));
  ck_assert_str_eq(nm, "fc_out.bias");
  tc_tensor *t;
  NU_OK(tc_model_find_state(m, "layers_6n.2.bn2.running_var", &t));
  tc_model_destroy(m);

  /* option B: the projection is "shortcut.0" / "shortcut.1" */
  NU_OK(resnet(&net, 1, TC_SHORTCUT_B));
  m = nu_model(be, net, img, 3, 0);
  NU_OK(tc_model_find_state(m, "layers_4n.0.shortcut.0.weight", &t));
  ck_assert_int_eq(tc_tensor_dim(t, 2), 1);
  NU_OK(tc_model_find_state(m, "layers_4n.0.shortcut.1.running_mean", &t));
  ck_assert_int_eq(tc_model_find_state(m, "layers_2n.0.shortcut.0.weight", &t),
                   TC_ENOTFOUND);
  tc_model_destroy(m);
}
END_TEST

START_TEST(test_flat_arena) {
  tc_layer *net;
  NU_OK(lenet(&net, 1));
  tc_model *m = nu_model(be, net, img, 3, 0);
  tc_tensor *flat = tc_model_params_flat(m), *gflat = tc_model_grads_flat(m);
  ck_assert_int_eq(tc_tensor_ndim(flat), 1);
  ck_assert_int_eq(tc_tensor_numel(gflat), tc_tensor_numel(flat));
  char *base = tc_tensor_data(flat), *gbase = tc_tensor_data(gflat);
  int64_t off = 0;
  for (int64_t i = 0; i < tc_model_num_params(m); i++) {
    tc_tensor *p, *g;
    NU_OK(tc_model_get_param(m, i, NULL, &p, &g));
    ck_assert_ptr_eq(tc_tensor_data(p), base + off * 4);
    ck_assert_ptr_eq(tc_tensor_data(g), gbase + off * 4);
    off += tc_tensor_numel(p);
  }
  ck_assert_int_eq(off, tc_tensor_numel(flat));
  /* writing the arena is writing the parameters */
  NU_OK(tc_tensor_fill(flat, 0.25));
  float v[6];
  nu_read(m, "conv1.bias", v);
  ck_assert_float_eq(v[5], 0.25f);
  /* gradients start at zero */
  float *g = malloc((size_t)off * 4);
  nu_get(gflat, g);
  for (int64_t i = 0; i < off; i++)
    ck_assert_float_eq(g[i], 0.f);
  free(g);
  tc_model_destroy(m);
}
END_TEST

START_TEST(test_default_init) {
  tc_set_seed(123);
  tc_layer *net;
  NU_OK(lenet(&net, 1));
  tc_model *a = nu_model(be, net, img, 3, 0);
  NU_OK(lenet(&net, 1));
  tc_model *b = nu_model(be, net, img, 3, 0);
  int64_t n = tc_tensor_numel(tc_model_params_flat(a));
  float *pa = malloc((size_t)n * 4), *pb = malloc((size_t)n * 4);
  nu_get(tc_model_params_flat(a), pa);
  nu_get(tc_model_params_flat(b), pb);
  ck_assert(memcmp(pa, pb, (size_t)n * 4) == 0);
  tc_set_seed(124);
  NU_OK(tc_model_reset_parameters(b));
  nu_get(tc_model_params_flat(b), pb);
  ck_assert(memcmp(pa, pb, (size_t)n * 4) != 0);
  tc_set_seed(0);
  /* conv1.weight ~ U(-1/sqrt(75), 1/sqrt(75)); bias the same bound;
   * bn weight 1, bias 0 */
  float w[450], bias[6], g[6], be_[6], rv[6];
  nu_read(a, "conv1.weight", w);
  nu_read(a, "conv1.bias", bias);
  double bound = 1 / sqrt(75.0), mx = 0;
  for (int i = 0; i < 450; i++) {
    ck_assert(fabs(w[i]) <= bound);
    mx = fmax(mx, fabs(w[i]));
  }
  ck_assert(mx > 0.95 * bound);
  for (int i = 0; i < 6; i++)
    ck_assert(fabs(bias[i]) <= bound);
  nu_read(a, "bn1.weight", g);
  nu_read(a, "bn1.bias", be_);
  nu_read(a, "bn1.running_var", rv);
  for (int i = 0; i < 6; i++) {
    ck_assert_float_eq(g[i], 1.f);
    ck_assert_float_eq(be_[i], 0.f);
    ck_assert_float_eq(rv[i], 1.f);
  }
  free(pa);
  free(pb);
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

/* One training step: forward, cross-entropy, backward. */
static void step(tc_model *m, tc_loss *loss, tc_tensor *x, tc_tensor *lab,
                 float *out_loss) {
  tc_tensor *y;
  NU_OK(tc_model_zero_grad(m));
  NU_OK(tc_model_forward(m, x, &y));
  NU_OK(tc_loss_compute(loss, y, lab, out_loss, tc_model_output_grad(m)));
  NU_OK(tc_model_backward(m, tc_model_output_grad(m)));
}

static tc_tensor *random_images(int64_t n, uint64_t seed) {
  int64_t s[4] = {n, 3, 32, 32};
  float *d = malloc((size_t)(n * 3072) * 4);
  tu_fill_uniform(d, (size_t)(n * 3072), seed, -1.f, 1.f);
  tc_tensor *t = nu_tensor(be, s, 4, d);
  free(d);
  return t;
}

static void zero_alloc_case(tc_layer *net) {
  tc_model *m = nu_model(be, net, img, 3, 0);
  tc_loss *loss;
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  tc_tensor *x = random_images(8, 1);
  int32_t labd[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  tc_tensor *lab = nu_labels(be, 8, labd);
  float l0, l1;
  step(m, loss, x, lab, &l0);
  tu_alloc_fail_at(0, 0); /* resets the counter */
  step(m, loss, x, lab, &l1);
  int64_t correct;
  tc_tensor *y;
  NU_OK(tc_model_forward(m, x, &y));
  NU_OK(tc_accuracy_count(y, lab, &correct));
  ck_assert_int_eq(tu_alloc_count(), 0);
  ck_assert(isfinite(l0) && isfinite(l1));
  tc_loss_destroy(loss);
  tc_tensor_destroy(x);
  tc_tensor_destroy(lab);
  tc_model_destroy(m);
}

START_TEST(test_zero_alloc_steady_state) {
  tu_alloc_install();
  tc_backend *b2 = nu_cpu();
  tc_backend *save = be;
  be = b2;
  tc_layer *net;
  NU_OK(lenet(&net, 1));
  zero_alloc_case(net);
  NU_OK(resnet(&net, 1, TC_SHORTCUT_A_MAXPOOL));
  zero_alloc_case(net);
  NU_OK(resnet(&net, 1, TC_SHORTCUT_B));
  zero_alloc_case(net);
  be = save;
  tc_backend_destroy(b2);
  tu_alloc_uninstall();
}
END_TEST

START_TEST(test_batch_size_changes) {
  tc_layer *net;
  NU_OK(lenet(&net, 1));
  tc_model *m = nu_model(be, net, img, 3, 0);
  NU_OK(tc_model_set_training(m, 0));
  ck_assert_int_eq(tc_model_is_training(m), 0);
  tc_tensor *x4 = random_images(4, 9), *x2 = random_images(2, 9);
  float y4[40], y2[20], y4b[40];
  nu_forward(m, x4, NULL, y4);
  nu_forward(m, x2, NULL, y2);
  nu_forward(m, x4, NULL, y4b);
  /* the first two images of both batches are the same (GEMM blocking
   * may differ with the batch size: float rounding only) */
  TU_ASSERT_CLOSE(y2, y4, 20, 1e-5);
  TU_ASSERT_CLOSE(y4b, y4, 40, 0);
  ck_assert_int_eq(tc_tensor_dim(tc_model_output_grad(m), 0), 4);
  tc_tensor_destroy(x4);
  tc_tensor_destroy(x2);
  tc_model_destroy(m);
}
END_TEST

START_TEST(test_bad_input) {
  tc_layer *net, *l;
  /* channels that do not match: the message names the layer */
  NU_OK(lenet(&net, 0));
  int64_t gray[3] = {1, 32, 32};
  tc_model *m = NULL;
  ck_assert_int_eq(tc_model_create(&m, be, net, gray, 3, NULL), TC_ESHAPE);
  ck_assert_ptr_null(m);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "conv1"));
  /* a size that does not reach fc3 (28x28 gives 16x4x4 = 256, not 400) */
  NU_OK(lenet(&net, 0));
  int64_t small[3] = {3, 28, 28};
  ck_assert_int_eq(tc_model_create(&m, be, net, small, 3, NULL), TC_ESHAPE);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "fc3"));
  /* too small for the kernel; zero-size dimension */
  NU_OK(lenet(&net, 0));
  int64_t tiny[3] = {3, 4, 4};
  ck_assert_int_eq(tc_model_create(&m, be, net, tiny, 3, NULL), TC_ESHAPE);
  NU_OK(lenet(&net, 0));
  int64_t empty[3] = {3, 0, 32};
  ck_assert_int_eq(tc_model_create(&m, be, net, empty, 3, NULL), TC_ESHAPE);
  NU_OK(tc_sequential_create(&net));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(net, "a", l));
  NU_OK(tc_relu_create(&l));
  ck_assert_int_eq(tc_sequential_add(net, "a", l), TC_EINVAL);
  NU_OK(tc_relu_create(&l));
  ck_assert_int_eq(tc_sequential_add(net, "a.b", l), TC_EINVAL);
  NU_OK(tc_relu_create(&l));
  ck_assert_int_eq(tc_sequential_add(l, "x", net), TC_EINVAL);
  tc_layer_destroy(l);
  /* forward with wrong shapes, then a good forward still works */
  NU_OK(lenet(&net, 1));
  m = nu_model(be, net, img, 3, 0);
  tc_tensor *good = random_images(2, 3), *out;
  float before[20], after[20];
  nu_forward(m, good, NULL, before);
  int64_t s[4] = {2, 3, 28, 28}, s0[4] = {0, 3, 32, 32};
  tc_tensor *bad = nu_tensor(be, s, 4, NULL),
            *zero = nu_tensor(be, s0, 4, NULL);
  ck_assert_int_eq(tc_model_forward(m, bad, &out), TC_ESHAPE);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "input"));
  ck_assert_int_eq(tc_model_forward(m, zero, &out), TC_ESHAPE);
  /* rejected forwards leave the last good one in place */
  ck_assert_int_eq(tc_model_backward(m, bad), TC_ESHAPE);
  NU_OK(tc_model_set_training(m, 0));
  nu_forward(m, good, NULL, after);
  NU_OK(tc_model_set_training(m, 1));
  nu_forward(m, good, NULL, NULL);
  int64_t s10[2] = {3, 10};
  tc_tensor *dy = nu_tensor(be, s10, 2, NULL);
  ck_assert_int_eq(tc_model_backward(m, dy), TC_ESHAPE);
  tc_tensor_destroy(dy);
  tc_tensor_destroy(good);
  tc_tensor_destroy(bad);
  tc_tensor_destroy(zero);
  tc_model_destroy(m);
  ck_assert_int_eq(tc_model_create(&m, be, NULL, img, 3, NULL), TC_EINVAL);
}
END_TEST

/* Fails the k-th allocation of building and placing a model, for every k:
 * TC_ENOMEM and nothing leaked, until the build needs no k-th allocation. */
static void fault_case(int which, int persistent) {
  long base = tu_alloc_live();
  int k;
  for (k = 1; k < 100000; k++) {
    tu_alloc_fail_at(k, persistent);
    tc_layer *net = NULL;
    tc_model *m = NULL;
    tc_status st =
        which == 0 ? lenet(&net, 1)
                   : resnet(&net, 1,
                            which == 1 ? TC_SHORTCUT_A_MAXPOOL : TC_SHORTCUT_B);
    if (st == TC_OK)
      st = tc_model_create(&m, be, net, img, 3, NULL);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (!failed) {
      ck_assert_int_eq(st, TC_OK);
      tc_model_destroy(m);
      break;
    }
    ck_assert_msg(st == TC_ENOMEM, "k=%d: %s", k, tc_status_string(st));
    ck_assert_msg(tu_alloc_live() == base, "k=%d: %ld blocks leaked", k,
                  tu_alloc_live() - base);
  }
  ck_assert_int_gt(k, 20);
  ck_assert_int_eq(tu_alloc_live(), base);
}

START_TEST(test_fault_injection) {
  tu_alloc_install();
  tc_backend *b2 = nu_cpu();
  tc_backend *save = be;
  be = b2;
  for (int which = 0; which < 3; which++) {
    fault_case(which, 0);
    fault_case(which, 1);
  }
  be = save;
  tc_backend_destroy(b2);
  tu_alloc_uninstall();
}
END_TEST

/* Fails the k-th allocation of the first forward (planning): TC_ENOMEM,
 * then the same model plans and runs once memory is back. */
START_TEST(test_fault_injection_forward) {
  tu_alloc_install();
  tc_backend *b2 = nu_cpu();
  tc_backend *save = be;
  be = b2;
  tc_tensor *x = random_images(2, 4);
  float want[20], got[20];
  int k;
  tc_layer *net;
  NU_OK(resnet(&net, 1, TC_SHORTCUT_A_MAXPOOL));
  tc_model *ref = nu_model(be, net, img, 3, 0);
  nu_forward(ref, x, NULL, want);
  tc_model_destroy(ref);
  for (k = 1; k < 10000; k++) {
    NU_OK(resnet(&net, 1, TC_SHORTCUT_A_MAXPOOL));
    tc_model *m = nu_model(be, net, img, 3, 0);
    tc_tensor *y;
    tu_alloc_fail_at(k, 1);
    tc_status st = tc_model_forward(m, x, &y);
    int failed = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    ck_assert_int_eq(st, failed ? TC_ENOMEM : TC_OK);
    nu_forward(m, x, NULL, got);
    TU_ASSERT_CLOSE(got, want, 20, 0);
    tc_model_destroy(m);
    if (!failed)
      break;
  }
  ck_assert_int_gt(k, 10);
  tc_tensor_destroy(x);
  be = save;
  tc_backend_destroy(b2);
  tu_alloc_uninstall();
}
END_TEST

/* Finds the profile entry called `name`; -1 when none. */
static int64_t prof_find(tc_model *m, const char *name, tc_layer_profile *p) {
  for (int64_t i = 0; i < tc_model_profile_count(m); i++) {
    p->struct_size = sizeof *p;
    NU_OK(tc_model_get_profile(m, i, p));
    if (strcmp(p->name, name) == 0)
      return i;
  }
  return -1;
}

START_TEST(test_profile) {
  tc_layer *net;
  NU_OK(lenet(&net, 1));
  tc_model *m = nu_model(be, net, img, 3, 0);
  /* every LeNet layer but the root Sequential, in order */
  static const char *want[] = {
      "conv1",   "bn1", "relu1", "pool1", "conv2", "bn2",   "relu2", "pool2",
      "flatten", "fc3", "bn3",   "relu3", "fc4",   "relu4", "drop",  "fc5"};
  static const char *kinds[] = {
      "conv2d",  "batchnorm2d", "relu",        "maxpool2d",
      "conv2d",  "batchnorm2d", "relu",        "maxpool2d",
      "flatten", "linear",      "batchnorm1d", "relu",
      "linear",  "relu",        "dropout",     "linear"};
  int64_t n = tc_model_profile_count(m);
  ck_assert_int_eq(n, 16);
  ck_assert_int_eq(tc_model_is_profiling(m), 0);
  tc_loss *loss;
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  tc_tensor *x = random_images(4, 3);
  int32_t labd[4] = {0, 1, 2, 3};
  tc_tensor *lab = nu_labels(be, 4, labd);
  float l0;
  step(m, loss, x, lab, &l0); /* not profiled: nothing counted */
  tc_layer_profile p = TC_LAYER_PROFILE_INIT;
  for (int64_t i = 0; i < n; i++) {
    NU_OK(tc_model_get_profile(m, i, &p));
    ck_assert_str_eq(p.name, want[i]);
    ck_assert_int_eq(p.forward_calls + p.backward_calls, 0);
    ck_assert(p.forward_seconds == 0.0 && p.backward_seconds == 0.0);
  }
  NU_OK(tc_model_set_profiling(m, 1));
  ck_assert_int_eq(tc_model_is_profiling(m), 1);
  /* profiling allocates nothing in a steady step */
  tu_alloc_install();
  tu_alloc_fail_at(0, 0);
  step(m, loss, x, lab, &l0);
  step(m, loss, x, lab, &l0);
  ck_assert_int_eq(tu_alloc_count(), 0);
  tu_alloc_uninstall();
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    NU_OK(tc_model_get_profile(m, i, &p));
    ck_assert_str_eq(p.name, want[i]);
    ck_assert_str_eq(p.kind, kinds[i]);
    ck_assert_int_eq(p.forward_calls, 2);
    ck_assert_int_eq(p.backward_calls, 2);
    ck_assert(p.forward_seconds >= 0.0 && p.backward_seconds >= 0.0);
    total += p.forward_seconds + p.backward_seconds;
    /* layers with state are named as their state-dict entries */
    if (strcmp(p.kind, "conv2d") == 0 || strcmp(p.kind, "linear") == 0 ||
        strncmp(p.kind, "batchnorm", 9) == 0) {
      char nm[64];
      tc_tensor *t;
      snprintf(nm, sizeof nm, "%s.weight", p.name);
      NU_OK(tc_model_find_state(m, nm, &t));
    }
  }
  ck_assert(total > 0.0);
  /* off: totals kept, nothing added; evaluation counts forwards only */
  NU_OK(tc_model_set_profiling(m, 0));
  step(m, loss, x, lab, &l0);
  NU_OK(tc_model_get_profile(m, 0, &p));
  ck_assert_int_eq(p.forward_calls, 2);
  NU_OK(tc_model_reset_profile(m));
  NU_OK(tc_model_get_profile(m, 0, &p));
  ck_assert_int_eq(p.forward_calls, 0);
  ck_assert(p.forward_seconds == 0.0);
  NU_OK(tc_model_set_profiling(m, 7));
  NU_OK(tc_model_set_training(m, 0));
  tc_tensor *y;
  NU_OK(tc_model_forward(m, x, &y));
  NU_OK(tc_model_get_profile(m, n - 1, &p));
  ck_assert_int_eq(p.forward_calls, 1);
  ck_assert_int_eq(p.backward_calls, 0);

  /* an older caller's smaller struct: only its fields are written */
  tc_layer_profile small = {.forward_calls = -5, .backward_calls = -6};
  small.struct_size = offsetof(tc_layer_profile, forward_calls);
  NU_OK(tc_model_get_profile(m, 1, &small));
  ck_assert_str_eq(small.name, "bn1");
  ck_assert_int_eq(small.forward_calls, -5);
  ck_assert_int_eq(small.backward_calls, -6);
  ck_assert_uint_eq(small.struct_size,
                    offsetof(tc_layer_profile, forward_calls));
  /* errors */
  ck_assert_int_eq(tc_model_profile_count(NULL), -1);
  ck_assert_int_eq(tc_model_is_profiling(NULL), -1);
  ck_assert_int_eq(tc_model_set_profiling(NULL, 1), TC_EINVAL);
  ck_assert_int_eq(tc_model_reset_profile(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_model_get_profile(NULL, 0, &p), TC_EINVAL);
  ck_assert_int_eq(tc_model_get_profile(m, 0, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_model_get_profile(m, -1, &p), TC_EINVAL);
  ck_assert_int_eq(tc_model_get_profile(m, n, &p), TC_EINVAL);
  ck_assert(strstr(tc_last_error(), "out of range") != NULL);
  p.struct_size = sizeof(size_t);
  ck_assert_int_eq(tc_model_get_profile(m, 0, &p), TC_EINVAL);
  p.struct_size = sizeof p + 8;
  ck_assert_int_eq(tc_model_get_profile(m, 0, &p), TC_EVERSION);
  tc_loss_destroy(loss);
  tc_tensor_destroy(x);
  tc_tensor_destroy(lab);
  tc_model_destroy(m);

  /* ResNet: blocks are profiled (their own work), Sequentials are not */
  NU_OK(resnet(&net, 1, TC_SHORTCUT_B));
  m = nu_model(be, net, img, 3, 0);
  /* conv1 bn1 relu, 3 blocks of 5 (+2 for the projection), avg_pool,
   * flatten, fc_out */
  ck_assert_int_eq(tc_model_profile_count(m), 3 + 15 + 2 * 2 + 3);
  NU_OK(tc_model_set_profiling(m, 1));
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  x = random_images(2, 4);
  lab = nu_labels(be, 2, labd);
  step(m, loss, x, lab, &l0);
  ck_assert_int_eq(prof_find(m, "layers_2n.0", &p), 3);
  ck_assert_str_eq(p.kind, "residual_block");
  ck_assert_int_eq(p.forward_calls, 1);
  ck_assert_int_eq(prof_find(m, "layers_2n.0.conv1", &p), 4);
  ck_assert_int_eq(p.backward_calls, 1);
  ck_assert_int_ge(prof_find(m, "layers_4n.0.shortcut.1", &p), 0);
  ck_assert_str_eq(p.kind, "batchnorm2d");
  ck_assert_int_eq(p.backward_calls, 1);
  NU_OK(tc_model_find_state(m, "layers_4n.0.shortcut.1.running_var", &y));
  ck_assert_int_eq(prof_find(m, "layers_4n.0.shortcut", &p), -1);
  ck_assert_int_eq(prof_find(m, "layers_2n", &p), -1);
  ck_assert_int_eq(prof_find(m, "fc_out", &p), tc_model_profile_count(m) - 1);
  tc_loss_destroy(loss);
  tc_tensor_destroy(x);
  tc_tensor_destroy(lab);
  tc_model_destroy(m);
}
END_TEST

/* ---- memory: the inference arena and the gradient slots ---- */

static void copy_state(tc_model *dst, tc_model *src) {
  ck_assert_int_eq(tc_model_num_state(dst), tc_model_num_state(src));
  for (int64_t i = 0; i < tc_model_num_state(src); i++) {
    tc_tensor *a, *b;
    NU_OK(tc_model_get_state(dst, i, NULL, &a));
    NU_OK(tc_model_get_state(src, i, NULL, &b));
    NU_OK(tc_tensor_copy(a, b));
  }
}

static float *host_of(const tc_tensor *t) {
  float *h = malloc((size_t)tc_tensor_numel(t) * 4 + 4);
  nu_get(t, h);
  return h;
}

static void assert_same_bits(const tc_tensor *a, const tc_tensor *b,
                             const char *what) {
  ck_assert_int_eq(tc_tensor_numel(a), tc_tensor_numel(b));
  float *ha = host_of(a), *hb = host_of(b);
  ck_assert_msg(memcmp(ha, hb, (size_t)tc_tensor_numel(a) * 4) == 0,
                "%s differs", what);
  free(ha);
  free(hb);
}

static float *eval_out(tc_model *m, tc_tensor *x) {
  tc_tensor *y;
  NU_OK(tc_model_forward(m, x, &y));
  return host_of(y);
}

/* Evaluation after training (full plan at batch 4, arena at batch 6)
 * equals a fresh evaluation-only model's (arena at both); evaluating does
 * not disturb training; backward after an arena forward equals backward
 * after a full-plan forward. */
static void arena_case(tc_layer *(*make)(int), int variant) {
  tc_model *a = nu_model(be, make(variant), img, 3, 1);
  tc_model *b = nu_model(be, make(variant), img, 3, 1);
  tc_model *c = nu_model(be, make(variant), img, 3, 1);
  copy_state(b, a);
  copy_state(c, a);
  tc_loss *loss;
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  tc_tensor *x4 = random_images(4, 21), *x6 = random_images(6, 22);
  int32_t labd[4] = {1, 7, 3, 3};
  tc_tensor *lab = nu_labels(be, 4, labd);
  float la, lc;
  for (int i = 0; i < 2; i++) {
    step(a, loss, x4, lab, &la);
    step(c, loss, x4, lab, &lc);
    ck_assert(memcmp(&la, &lc, 4) == 0);
  }
  /* a trainer's evaluation, then a fresh model with its state */
  NU_OK(tc_model_set_training(a, 0));
  float *ya4 = eval_out(a, x4), *ya6 = eval_out(a, x6);
  copy_state(b, a);
  NU_OK(tc_model_set_training(b, 0));
  float *yb6 = eval_out(b, x6), *yb4 = eval_out(b, x4);
  ck_assert(memcmp(ya4, yb4, 40) == 0);
  ck_assert(memcmp(ya6, yb6, 60) == 0);
  /* training goes on as if nobody had evaluated */
  NU_OK(tc_model_set_training(a, 1));
  step(a, loss, x4, lab, &la);
  step(c, loss, x4, lab, &lc);
  ck_assert(memcmp(&la, &lc, 4) == 0);
  assert_same_bits(tc_model_params_flat(a), tc_model_params_flat(c),
                   "parameters after evaluating");
  assert_same_bits(tc_model_grads_flat(a), tc_model_grads_flat(c),
                   "gradients after evaluating");
  /* eval backward: b has only run arena forwards so far */
  float dyd[60];
  tu_fill_uniform(dyd, 60, 23, -1.f, 1.f);
  int64_t ds[2] = {6, 10};
  tc_tensor *dy = nu_tensor(be, ds, 2, dyd);
  float *grads[2], *dxs[2], *ys[2];
  for (int k = 0; k < 2; k++) {
    NU_OK(tc_model_zero_grad(b));
    ys[k] = eval_out(b, x6); /* k = 1: the full plan holds batch 6 now */
    NU_OK(tc_model_backward(b, dy));
    grads[k] = host_of(tc_model_grads_flat(b));
    dxs[k] = host_of(tc_model_input_grad(b));
  }
  ck_assert(memcmp(ys[0], ys[1], 60) == 0);
  ck_assert(memcmp(ys[0], yb6, 60) == 0);
  ck_assert(memcmp(grads[0], grads[1],
                   (size_t)tc_tensor_numel(tc_model_grads_flat(b)) * 4) == 0);
  ck_assert(memcmp(dxs[0], dxs[1], 6 * 3072 * 4) == 0);
  for (int k = 0; k < 2; k++) {
    free(grads[k]);
    free(dxs[k]);
    free(ys[k]);
  }
  free(ya4);
  free(ya6);
  free(yb4);
  free(yb6);
  tc_tensor_destroy(dy);
  tc_tensor_destroy(x4);
  tc_tensor_destroy(x6);
  tc_tensor_destroy(lab);
  tc_loss_destroy(loss);
  tc_model_destroy(a);
  tc_model_destroy(b);
  tc_model_destroy(c);
}

static tc_layer *make_lenet(int bn) {
  tc_layer *net;
  NU_OK(lenet(&net, bn));
  return net;
}

static tc_layer *make_resnet(int shortcut) {
  tc_layer *net;
  NU_OK(resnet(&net, 1, shortcut));
  return net;
}

START_TEST(test_eval_arena_matches_full) {
  arena_case(make_lenet, 0);
  arena_case(make_lenet, 1);
  arena_case(make_resnet, TC_SHORTCUT_A_MAXPOOL);
  arena_case(make_resnet, TC_SHORTCUT_A_SUBSAMPLE);
  arena_case(make_resnet, TC_SHORTCUT_B);
  arena_case(make_resnet, TC_SHORTCUT_NONE);
}
END_TEST

/* Live host bytes through a size-recording allocator. */
static size_t mem_live, mem_peak;
static long mem_count;

static void *mem_alloc(void *user, size_t size, size_t alignment) {
  (void)user;
  size_t al = alignment < 16 ? 16 : alignment;
  void *p = NULL;
  if (posix_memalign(&p, al, al + size) != 0)
    return NULL;
  size_t *h = (size_t *)((char *)p + al);
  h[-1] = al;
  h[-2] = size;
  mem_live += size;
  if (mem_live > mem_peak)
    mem_peak = mem_live;
  mem_count++;
  return h;
}

static void mem_free(void *user, void *ptr) {
  (void)user;
  if (!ptr)
    return;
  size_t *h = ptr;
  mem_live -= h[-2];
  free((char *)ptr - h[-1]);
}

/* Peak bytes of one training step or one evaluation (the model included),
 * and the allocations of two more steps (one at another batch size). */
static size_t peak_of(int train, long *later_allocs) {
  tc_backend *b2 = nu_cpu();
  tc_backend *save = be;
  be = b2;
  tc_tensor *x = random_images(16, 5), *x8 = random_images(8, 6);
  int32_t labd[16] = {0};
  tc_tensor *lab = nu_labels(be, 16, labd);
  tc_loss *loss;
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  size_t base = mem_live;
  mem_peak = mem_live;
  tc_model *m = nu_model(be, make_resnet(TC_SHORTCUT_A_MAXPOOL), img, 3, 0);
  float l;
  tc_tensor *y;
  NU_OK(tc_model_set_training(m, train));
  if (train)
    step(m, loss, x, lab, &l);
  else
    NU_OK(tc_model_forward(m, x, &y));
  size_t peak = mem_peak - base;
  if (!train)
    NU_OK(tc_model_forward(m, x8, &y)); /* a smaller batch fits */
  mem_count = 0;
  if (train) {
    step(m, loss, x, lab, &l);
  } else {
    NU_OK(tc_model_forward(m, x, &y));
    NU_OK(tc_model_forward(m, x8, &y));
    NU_OK(tc_model_forward(m, x, &y));
  }
  *later_allocs = mem_count;
  tc_model_destroy(m);
  tc_loss_destroy(loss);
  tc_tensor_destroy(x);
  tc_tensor_destroy(x8);
  tc_tensor_destroy(lab);
  be = save;
  tc_backend_destroy(b2);
  return peak;
}

START_TEST(test_inference_memory) {
  tc_allocator a = {sizeof a, mem_alloc, mem_free, NULL};
  mem_live = mem_peak = 0;
  ck_assert_int_eq(tc_set_allocator(&a), TC_OK);
  long allocs_train, allocs_eval;
  size_t train = peak_of(1, &allocs_train);
  size_t eval = peak_of(0, &allocs_eval);
  tc_set_allocator(NULL);
  /* the arena holds a few activations: ResNet-8 at batch 16 needs well
   * under half of what training keeps (the parameters are ~80 KB) */
  ck_assert_msg(2 * eval < train, "eval peak %zu, training peak %zu", eval,
                train);
  ck_assert_int_eq(allocs_train, 0);
  ck_assert_int_eq(allocs_eval, 0);
}
END_TEST

/* tc_model_backward(m, NULL) is the output gradient's buffer; and
 * tc_model_predict is the argmax of an evaluation forward, leaves the
 * mode alone and refuses a wrong count. */
START_TEST(test_backward_null_and_predict) {
  tc_model *a = nu_model(be, make_lenet(1), img, 3, 0);
  tc_model *b = nu_model(be, make_lenet(1), img, 3, 0);
  tc_tensor *x = random_images(4, 21), *y;
  int32_t labd[4] = {1, 2, 3, 4};
  tc_tensor *lab = nu_labels(be, 4, labd);
  tc_loss *loss;
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  float la, lb;
  tc_model_set_training(a, 0); /* no dropout: the same forward in both */
  tc_model_set_training(b, 0);
  step(a, loss, x, lab, &la);
  NU_OK(tc_model_zero_grad(b));
  NU_OK(tc_model_forward(b, x, &y));
  NU_OK(tc_loss_compute(loss, y, lab, &lb, tc_model_output_grad(b)));
  NU_OK(tc_model_backward(b, NULL));
  int64_t n = tc_tensor_numel(tc_model_grads_flat(a));
  float *ga = malloc((size_t)n * 4), *gb = malloc((size_t)n * 4);
  nu_get(tc_model_grads_flat(a), ga);
  nu_get(tc_model_grads_flat(b), gb);
  ck_assert_int_eq(memcmp(ga, gb, (size_t)n * 4), 0);
  free(ga);
  free(gb);
  ck_assert_int_eq(tc_model_backward(NULL, NULL), TC_EINVAL);

  /* predict: argmax of the evaluation output, first maximum on ties */
  tc_model_set_training(b, 1);
  int32_t cls[4] = {-1, -1, -1, -1};
  NU_OK(tc_model_predict(b, x, cls, 4));
  ck_assert_int_eq(tc_model_is_training(b), 1);
  tc_model_set_training(b, 0);
  float out[40];
  nu_forward(b, x, NULL, out);
  for (int i = 0; i < 4; i++) {
    int best = 0;
    for (int j = 1; j < 10; j++)
      if (out[i * 10 + j] > out[i * 10 + best])
        best = j;
    ck_assert_int_eq(cls[i], best);
  }
  ck_assert_int_eq(tc_model_predict(b, x, cls, 3), TC_ESHAPE);
  ck_assert_int_eq(tc_model_predict(b, x, NULL, 4), TC_EINVAL);
  ck_assert_int_eq(tc_model_predict(NULL, x, cls, 4), TC_EINVAL);
  /* the _INIT macros fill struct_size */
  tc_layer_profile p = TC_LAYER_PROFILE_INIT;
  tc_layer_summary ls = TC_LAYER_SUMMARY_INIT;
  tc_model_totals t = TC_MODEL_TOTALS_INIT;
  tc_allocator al = TC_ALLOCATOR_INIT;
  ck_assert_uint_eq(p.struct_size, sizeof p);
  ck_assert_uint_eq(ls.struct_size, sizeof ls);
  ck_assert_uint_eq(t.struct_size, sizeof t);
  ck_assert_uint_eq(al.struct_size, sizeof al);
  tc_loss_destroy(loss);
  tc_tensor_destroy(lab);
  tc_tensor_destroy(x);
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("model");
  TCase *tc = tcase_create("model");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_lenet_names);
  tcase_add_test(tc, test_resnet_names);
  tcase_add_test(tc, test_flat_arena);
  tcase_add_test(tc, test_default_init);
  tcase_add_test(tc, test_batch_size_changes);
  tcase_add_test(tc, test_bad_input);
  tcase_add_test(tc, test_zero_alloc_steady_state);
  tcase_add_test(tc, test_fault_injection);
  tcase_add_test(tc, test_fault_injection_forward);
  tcase_add_test(tc, test_profile);
  tcase_add_test(tc, test_eval_arena_matches_full);
  tcase_add_test(tc, test_inference_memory);
  tcase_add_test(tc, test_backward_null_and_predict);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
