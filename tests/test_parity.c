/*
 * test_parity.c - whole-model parity with PyTorch: LeNet-5 (LeCun et al. 1998,
 * with and without BatchNorm) and ResNet-20 (He et al. 2016, option A), built
 * through the public API (examples/common/models.c), loaded with the PyTorch
 * model's weights, give the same logits, loss and parameter gradients, and
 * the same weights and BN running statistics after two SGD steps (momentum
 * 0.9, weight decay), within 1e-4 relative. Golden files:
 * tests/golden/generate.py (model_*.safetensors).
 *
 * One stated exception: whole-model parameter gradients are compared within
 * GRAD_TOL. Summation order is all that differs there, and it matters: on
 * these very inputs PyTorch's own float32 gradients differ from its float64
 * ones by up to 1.45e-4 on the same metric (ResNet-20,
 * layers_6n.0.conv2.weight), because batch norm's backward subtracts
 * nearly equal sums. Logits and loss keep 1e-4.
 *
 * The state after two steps keeps 1e-4 against PyTorch's float32 result,
 * or, where the two float32 results differ by more (batch norm's biases,
 * which start at zero and so hold only summed gradients), must be within
 * 1e-4 of the float64 run of the same steps (r.<name>) or at most twice
 * as far from it as PyTorch's float32 result is.
 */
#define GRAD_TOL 3e-4
#define STATE_TOL 1e-4
#define STATE_REF_FACTOR 2.0
#include <math.h>

#include "golden_util.h"
#include "../examples/common/models.h"

/* Worst relative error of the weights or statistics after two steps (the
 * STATE_TOL criterion) over all state tensors checked so far. */
static double state_worst;

/* State tensor `name` after two steps against PyTorch's float32 result
 * s.<name>, within 1e-4; failing that, against the float64 run r.<name>:
 * it must then be no further from it than STATE_REF_FACTOR times PyTorch's
 * own float32 result is (nor than 1e-4). The biases of batch norm start at
 * zero, so after two steps they are sums of gradients and carry the
 * gradients' rounding noise (see GRAD_TOL): there two float32 results can
 * differ by more than 1e-4 while both are as close to the exact answer. */
static void state_check(tc_safetensors *st, const char *name,
                        const tc_tensor *t) {
  char key[256], rkey[256];
  snprintf(key, sizeof key, "s.%s", name);
  snprintf(rkey, sizeof rkey, "r.%s", name);
  int64_t n, nr;
  float *want = golden_floats(st, key, &n);
  float *ref = golden_floats(st, rkey, &nr);
  ck_assert_int_eq(n, nr);
  ck_assert_int_eq(tc_tensor_numel(t), n);
  float *have = malloc((size_t)(n ? n : 1) * sizeof *have);
  NU_OK(tc_tensor_copy_to_host(t, have, (size_t)n * sizeof *have));
  double e = tu_max_rel_err(have, want, (size_t)n);
  double e_ours = tu_max_rel_err(have, ref, (size_t)n);
  double e_torch = tu_max_rel_err(want, ref, (size_t)n);
  if (e > state_worst)
    state_worst = e;
  ck_assert_msg(e <= STATE_TOL ||
                    e_ours <= fmax(STATE_TOL, STATE_REF_FACTOR * e_torch),
                "%s: max rel err %.3g vs PyTorch float32 > %.0e, and %.3g "
                "vs float64 (PyTorch float32: %.3g)",
                name, e, STATE_TOL, e_ours, e_torch);
  free(have);
  free(ref);
  free(want);
}

static void parity(const char *golden, int resnet, int bn) {
  tc_backend *be = nu_cpu();
  tc_safetensors *st = golden_open(golden);
  cJSON *cfg = golden_config(st);
  tc_layer *root = NULL;
  if (resnet)
    NU_OK(model_resnet(&root, 20, TC_SHORTCUT_A_MAXPOOL));
  else
    NU_OK(model_lenet(&root, bn));
  int64_t in_shape[3] = {3, 32, 32};
  tc_model *m = NULL;
  NU_OK(tc_model_create(&m, be, root, in_shape, 3, NULL));
  golden_load_model(st, m);

  tc_tensor *x = golden_tensor(st, be, "x");
  tc_tensor *labels = golden_tensor(st, be, "labels");
  tc_loss *loss = NULL;
  NU_OK(tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  tc_sgd_options so = TC_SGD_OPTIONS_INIT;
  so.lr = (float)golden_num(cfg, "lr");
  so.momentum = (float)golden_num(cfg, "momentum");
  so.weight_decay = (float)golden_num(cfg, "weight_decay");
  tc_optimizer *opt = NULL;
  NU_OK(tc_optimizer_create_sgd_for_model(&opt, m, &so));

  for (int step = 0; step < 2; step++) {
    NU_OK(tc_model_zero_grad(m));
    tc_tensor *y = NULL;
    NU_OK(tc_model_forward(m, x, &y));
    float value = 0;
    NU_OK(tc_loss_compute(loss, y, labels, &value, tc_model_output_grad(m)));
    NU_OK(tc_model_backward(m, tc_model_output_grad(m)));
    if (step == 0) {
      golden_check(st, "y", y, "logits");
      golden_check_value(st, "loss", value, "loss");
      for (int64_t i = 0; i < tc_model_num_params(m); i++) {
        const char *name;
        tc_tensor *g;
        NU_OK(tc_model_get_param(m, i, &name, NULL, &g));
        char key[256];
        snprintf(key, sizeof key, "g.%s", name);
        int64_t n;
        float *want = golden_floats(st, key, &n);
        float wmax = 0;
        for (int64_t j = 0; j < n; j++)
          wmax = fmaxf(wmax, fabsf(want[j]));
        free(want);
        if (wmax < 1e-6f) {
          /* a bias right before batch norm: its gradient is zero in exact
           * arithmetic, so both sides hold rounding noise; compare it
           * absolutely */
          float *have = malloc(sizeof(float) * (size_t)n);
          nu_get(g, have);
          for (int64_t j = 0; j < n; j++)
            ck_assert_msg(fabsf(have[j]) < 1e-5f, "%s[%lld] = %g, not ~0", name,
                          (long long)j, (double)have[j]);
          free(have);
        } else {
          golden_check_tol(st, key, g, name, GRAD_TOL);
        }
      }
    }
    NU_OK(tc_optimizer_step(opt));
  }
  /* weights and running statistics after two steps */
  for (int64_t i = 0; i < tc_model_num_state(m); i++) {
    const char *name;
    tc_tensor *t;
    NU_OK(tc_model_get_state(m, i, &name, &t));
    char key[256];
    snprintf(key, sizeof key, "s.%s", name);
    if (tc_tensor_dtype(t) == TC_INT64) {
      int64_t got = 0, want = 0;
      NU_OK(tc_tensor_copy_to_host(t, &got, sizeof got));
      NU_OK(tc_safetensors_read_raw(st, key, &want, sizeof want));
      ck_assert_int_eq(got, want);
    } else {
      state_check(st, name, t);
    }
  }
  fprintf(stderr,
          "%s: worst relative error %.3g over logits, loss and "
          "gradients, %.3g over the state after 2 steps\n",
          golden, golden_worst, state_worst);
  tc_optimizer_destroy(opt);
  tc_loss_destroy(loss);
  tc_tensor_destroy(x);
  tc_tensor_destroy(labels);
  tc_model_destroy(m);
  cJSON_Delete(cfg);
  tc_safetensors_destroy(st);
  tc_backend_destroy(be);
}

START_TEST(test_lenet) {
  parity("model_lenet", 0, 0);
}
END_TEST
START_TEST(test_lenet_bn) {
  parity("model_lenet_bn", 0, 1);
}
END_TEST
START_TEST(test_resnet20) {
  parity("model_resnet20", 1, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("parity");
  TCase *tc = tcase_create("models");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_lenet);
  tcase_add_test(tc, test_lenet_bn);
  tcase_add_test(tc, test_resnet20);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
