/*
 * test_interop.c - state dicts cross between PyTorch and tinycnn:
 * a safetensors file written from a PyTorch LeNet-5 (BN) / ResNet-20
 * state_dict() loads into the same tinycnn model (tc_model_load) and gives
 * PyTorch's eval-mode logits; and the file tc_model_save() writes holds
 * exactly the names, dtypes, shapes and bytes of PyTorch's state dict, which
 * is what load_state_dict(strict=True) requires (the generator's --check
 * mode runs that load in PyTorch by hand). Goldens:
 * tests/golden/generate_interop.py.
 */
#include <unistd.h>

#include "../examples/common/models.h"
#include "golden_util.h"
#include "testutil.h"

static void golden_path(char *buf, size_t cap, const char *name) {
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  snprintf(buf, cap, "%s/tests/golden/%s.safetensors", root ? root : "..",
           name);
}

/* Same tensors (names, dtypes, shapes, bytes) in both files. */
static void same_state_dict(const char *a_path, const char *b_path) {
  tc_safetensors *a = NULL, *b = NULL;
  NU_OK(tc_safetensors_create(&a, a_path));
  NU_OK(tc_safetensors_create(&b, b_path));
  int64_t n = tc_safetensors_count(a);
  ck_assert_int_eq(n, tc_safetensors_count(b));
  for (int64_t i = 0; i < n; i++) {
    const char *name = tc_safetensors_name(a, i);
    tc_st_dtype da, db;
    int64_t sa[8], sb[8];
    int na, nb;
    NU_OK(tc_safetensors_info(a, name, &da, sa, 8, &na));
    ck_assert_msg(tc_safetensors_info(b, name, &db, sb, 8, &nb) == TC_OK,
                  "'%s' missing from %s", name, b_path);
    ck_assert_msg(da == db && na == nb &&
                      memcmp(sa, sb, sizeof(int64_t) * (size_t)na) == 0,
                  "'%s': dtype or shape differ", name);
    size_t bytes = (size_t)tc_st_dtype_bits(da) / 8;
    for (int d = 0; d < na; d++)
      bytes *= (size_t)sa[d];
    void *ba = malloc(bytes ? bytes : 1), *bb = malloc(bytes ? bytes : 1);
    NU_OK(tc_safetensors_read_raw(a, name, ba, bytes));
    NU_OK(tc_safetensors_read_raw(b, name, bb, bytes));
    ck_assert_msg(memcmp(ba, bb, bytes) == 0, "'%s': values differ", name);
    free(ba);
    free(bb);
  }
  tc_safetensors_destroy(a);
  tc_safetensors_destroy(b);
}

static void interop(const char *model, int resnet) {
  tc_backend *be = nu_cpu();
  tc_layer *root = NULL;
  if (resnet)
    NU_OK(model_resnet(&root, 20, TC_SHORTCUT_A_MAXPOOL));
  else
    NU_OK(model_lenet(&root, 1));
  const int64_t in_shape[3] = {3, 32, 32};
  tc_model *m = NULL;
  NU_OK(tc_model_create(&m, be, root, in_shape, 3, NULL));

  char torch_file[4096], name[128];
  snprintf(name, sizeof name, "interop_%s", model);
  golden_path(torch_file, sizeof torch_file, name);
  NU_OK(tc_model_load(m, torch_file));
  NU_OK(tc_model_set_training(m, 0));

  snprintf(name, sizeof name, "interop_%s_io", model);
  tc_safetensors *io = golden_open(name);
  tc_tensor *x = golden_tensor(io, be, "x"), *y = NULL;
  NU_OK(tc_model_forward(m, x, &y));
  golden_check(io, "y", y, "eval-mode logits");

  char saved[512];
  tu_tmpfile(saved, sizeof saved, "tc_interop");
  NU_OK(tc_model_save(m, saved, NULL));
  same_state_dict(torch_file, saved);
  same_state_dict(saved, torch_file);
  unlink(saved);
  fprintf(stderr, "%s: worst relative error %.3g\n", model, golden_worst);

  tc_tensor_destroy(x);
  tc_safetensors_destroy(io);
  tc_model_destroy(m);
  tc_backend_destroy(be);
}

START_TEST(test_lenet_bn) {
  interop("lenet_bn", 0);
}
END_TEST
START_TEST(test_resnet20) {
  interop("resnet20", 1);
}
END_TEST

/* A state dict of the other model is refused, naming the mismatches, and
 * leaves the model as it was. */
START_TEST(test_wrong_model) {
  tc_backend *be = nu_cpu();
  tc_layer *root = NULL;
  NU_OK(model_lenet(&root, 0));
  const int64_t in_shape[3] = {3, 32, 32};
  tc_model *m = NULL;
  NU_OK(tc_model_create(&m, be, root, in_shape, 3, NULL));
  tc_tensor *p = tc_model_params_flat(m);
  int64_t n = tc_tensor_numel(p);
  float *before = malloc(sizeof(float) * (size_t)n);
  float *after = malloc(sizeof(float) * (size_t)n);
  nu_get(p, before);
  char path[4096];
  golden_path(path, sizeof path, "interop_lenet_bn");
  ck_assert_int_eq(tc_model_load(m, path), TC_ESHAPE);
  ck_assert_msg(strstr(tc_last_error(), "bn1") != NULL, "%s", tc_last_error());
  nu_get(p, after);
  ck_assert(memcmp(before, after, sizeof(float) * (size_t)n) == 0);
  free(before);
  free(after);
  tc_model_destroy(m);
  tc_backend_destroy(be);
}
END_TEST

int main(void) {
  Suite *s = suite_create("interop");
  TCase *tc = tcase_create("state_dicts");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_lenet_bn);
  tcase_add_test(tc, test_resnet20);
  tcase_add_test(tc, test_wrong_model);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
