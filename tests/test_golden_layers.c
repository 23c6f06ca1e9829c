/*
 * test_golden_layers.c - every layer, block and loss against PyTorch's
 * numbers: forward output, input gradient, parameter gradients and running
 * statistics, for the cases tests/golden/generate.py writes (stride,
 * padding, dilation, rectangular kernels, no bias, ceil_mode,
 * count_include_pad, BN train/eval/affine off/cumulative/untracked, option
 * A/B/plain blocks, cross-entropy mean/sum/label smoothing, NLL, MSE).
 * Tolerance: 1e-4 relative (golden_util.h).
 */
#include "golden_util.h"

static tc_layer *make_layer(const cJSON *c) {
  const char *kind = golden_str(c, "layer");
  tc_layer *l = NULL;
  if (!strcmp(kind, "conv2d")) {
    tc_conv2d_options o = TC_CONV2D_OPTIONS_INIT;
    o.stride_h = o.stride_w = (int64_t)golden_num(c, "stride");
    o.pad_h = o.pad_w = (int64_t)golden_num(c, "pad");
    o.dilation_h = o.dilation_w = (int64_t)golden_num(c, "dil");
    o.kernel_w = (int64_t)golden_num(c, "s");
    o.bias = (int32_t)golden_num(c, "bias");
    NU_OK(tc_conv2d_create(&l, (int64_t)golden_num(c, "c"),
                           (int64_t)golden_num(c, "k"),
                           (int64_t)golden_num(c, "r"), &o));
  } else if (!strcmp(kind, "linear")) {
    tc_linear_options o = TC_LINEAR_OPTIONS_INIT;
    o.bias = (int32_t)golden_num(c, "bias");
    NU_OK(tc_linear_create(&l, (int64_t)golden_num(c, "fin"),
                           (int64_t)golden_num(c, "fout"), &o));
  } else if (!strcmp(kind, "bn2d") || !strcmp(kind, "bn1d")) {
    tc_batchnorm_options o = TC_BATCHNORM_OPTIONS_INIT;
    double mom = golden_num(c, "momentum");
    o.momentum = mom < 0 ? TC_BN_MOMENTUM_CUMULATIVE : (float)mom;
    o.affine = (int32_t)golden_num(c, "affine");
    o.track_running_stats = (int32_t)golden_num(c, "track");
    int64_t ch = (int64_t)golden_num(c, "c");
    if (!strcmp(kind, "bn2d"))
      NU_OK(tc_batchnorm2d_create(&l, ch, &o));
    else
      NU_OK(tc_batchnorm1d_create(&l, ch, &o));
  } else if (!strcmp(kind, "pool")) {
    tc_pool2d_options o = TC_POOL2D_OPTIONS_INIT;
    o.stride_h = o.stride_w = (int64_t)golden_num(c, "stride");
    o.pad_h = o.pad_w = (int64_t)golden_num(c, "pad");
    o.ceil_mode = (int32_t)golden_num(c, "ceil");
    int64_t k = (int64_t)golden_num(c, "k");
    if (!strcmp(golden_str(c, "kind"), "max")) {
      NU_OK(tc_maxpool2d_create(&l, k, &o));
    } else {
      o.count_include_pad = (int32_t)golden_num(c, "inc");
      NU_OK(tc_avgpool2d_create(&l, k, &o));
    }
  } else if (!strcmp(kind, "gap")) {
    NU_OK(tc_global_avgpool2d_create(&l));
  } else if (!strcmp(kind, "block")) {
    tc_residual_options o = TC_RESIDUAL_OPTIONS_INIT;
    if (golden_num(c, "plain"))
      o.shortcut = TC_SHORTCUT_NONE;
    else if (!strcmp(golden_str(c, "shortcut"), "B"))
      o.shortcut = TC_SHORTCUT_B;
    else if (!strcmp(golden_str(c, "subsample"), "slice"))
      o.shortcut = TC_SHORTCUT_A_SUBSAMPLE;
    else
      o.shortcut = TC_SHORTCUT_A_MAXPOOL;
    NU_OK(tc_residual_block_create(&l, (int64_t)golden_num(c, "cin"),
                                   (int64_t)golden_num(c, "cout"),
                                   (int64_t)golden_num(c, "stride"), &o));
  } else {
    ck_abort_msg("unknown layer kind %s", kind);
  }
  return l;
}

static void layer_case(const char *name, int train) {
  tc_backend *be = nu_cpu();
  tc_safetensors *st = golden_open(name);
  cJSON *cfg = golden_config(st);
  tc_tensor *x = golden_tensor(st, be, "x");
  int64_t shape[TC_MAX_DIMS];
  int nd = tc_tensor_shape(x, shape);
  tc_model *m = nu_model(be, make_layer(cfg), shape + 1, nd - 1, 1);
  if (tc_model_num_state(m) > 0)
    golden_load_model(st, m);
  NU_OK(tc_model_set_training(m, train));
  tc_tensor *y = NULL;
  NU_OK(tc_model_forward(m, x, &y));
  golden_check(st, "y", y, "output");
  tc_tensor *dy = golden_tensor(st, be, "dy");
  NU_OK(tc_model_backward(m, dy));
  golden_check(st, "dx", tc_model_input_grad(m), "input gradient");
  for (int64_t i = 0; i < tc_model_num_params(m); i++) {
    const char *pname;
    tc_tensor *g;
    NU_OK(tc_model_get_param(m, i, &pname, NULL, &g));
    char key[256];
    snprintf(key, sizeof key, "g.%s", pname);
    golden_check(st, key, g, pname);
  }
  for (int64_t i = 0; i < tc_model_num_buffers(m); i++) {
    const char *bname;
    tc_tensor *b;
    NU_OK(tc_model_get_buffer(m, i, &bname, &b));
    char key[256];
    snprintf(key, sizeof key, "s.%s", bname);
    if (tc_tensor_dtype(b) == TC_INT64) {
      int64_t got = 0, want = 0;
      NU_OK(tc_tensor_copy_to_host(b, &got, sizeof got));
      NU_OK(tc_safetensors_read_raw(st, key, &want, sizeof want));
      ck_assert_int_eq(got, want);
    } else {
      golden_check(st, key, b, bname);
    }
  }
  tc_tensor_destroy(dy);
  tc_tensor_destroy(x);
  tc_model_destroy(m);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
  tc_backend_destroy(be);
}

static const char *const train_cases[] = {
    "conv2d_0",      "conv2d_1",        "conv2d_2",       "conv2d_3",
    "conv2d_4",      "linear_0",        "linear_1",       "bn2d_train",
    "bn2d_noaffine", "bn2d_cumulative", "bn1d_train",     "pool_0",
    "pool_1",        "pool_2",          "pool_3",         "pool_4",
    "pool_5",        "gap_0",           "block_identity", "block_A_maxpool",
    "block_A_slice", "block_B",         "block_plain"};
static const char *const eval_cases[] = {"bn2d_eval", "bn2d_notrack"};

START_TEST(test_layer_train) {
  layer_case(train_cases[_i], 1);
}
END_TEST
START_TEST(test_layer_eval) {
  layer_case(eval_cases[_i], 0);
}
END_TEST

static void loss_case(const char *name) {
  tc_backend *be = nu_cpu();
  tc_safetensors *st = golden_open(name);
  cJSON *cfg = golden_config(st);
  const char *kind = golden_str(cfg, "loss");
  tc_loss_options o = TC_LOSS_OPTIONS_INIT;
  o.reduction =
      !strcmp(golden_str(cfg, "reduction"), "sum") ? TC_LOSS_SUM : TC_LOSS_MEAN;
  tc_loss_kind k = TC_LOSS_CROSS_ENTROPY;
  if (!strcmp(kind, "cross_entropy"))
    o.label_smoothing = (float)golden_num(cfg, "label_smoothing");
  else
    k = !strcmp(kind, "nll") ? TC_LOSS_NLL : TC_LOSS_MSE;
  tc_loss *l = NULL;
  NU_OK(tc_loss_create(&l, be, k, &o));
  tc_tensor *x = golden_tensor(st, be, "x");
  tc_tensor *t = golden_tensor(st, be, k == TC_LOSS_MSE ? "target" : "labels");
  tc_tensor *dx = NULL;
  int64_t shape[TC_MAX_DIMS];
  int nd = tc_tensor_shape(x, shape);
  NU_OK(tc_tensor_create(&dx, be, shape, nd, TC_FLOAT32));
  float value = 0;
  NU_OK(tc_loss_compute(l, x, t, &value, dx));
  golden_check_value(st, "loss", value, name);
  golden_check(st, "dx", dx, "loss gradient");
  tc_tensor_destroy(dx);
  tc_tensor_destroy(t);
  tc_tensor_destroy(x);
  tc_loss_destroy(l);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
  tc_backend_destroy(be);
}

static const char *const loss_cases[] = {"xent_0", "xent_1", "xent_2", "nll_0",
                                         "mse_0"};
START_TEST(test_loss) {
  loss_case(loss_cases[_i]);
}
END_TEST

int main(void) {
  Suite *s = suite_create("golden_layers");
  TCase *tc = tcase_create("golden");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_layer_train, 0,
                      (int)(sizeof train_cases / sizeof *train_cases));
  tcase_add_loop_test(tc, test_layer_eval, 0,
                      (int)(sizeof eval_cases / sizeof *eval_cases));
  tcase_add_loop_test(tc, test_loss, 0,
                      (int)(sizeof loss_cases / sizeof *loss_cases));
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
