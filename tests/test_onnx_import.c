/*
 * test_onnx_import.c - tc_model_create_from_onnx against PyTorch: the files of
 * tests/onnx/import/ (written by make_import_models.py with
 * torch.onnx.export: LeNet-5 with and without BN, BN folded into the Conv
 * or not, ResNet-8 with shortcuts A (max-pool, subsample) and B, a plain
 * net with average pooling and a Reshape) run on the fixed batch
 * input.bin and match the logits torch wrote (max |diff| <= 1e-4 * max(1,
 * max |logit|)); a LeNet-BN exported by tc_model_export_onnx comes back
 * with the same outputs; hostile files (truncated, an unknown operator, a
 * wrong initializer shape, a missing initializer, garbage) are refused
 * with the right code and a message naming the problem. Built only with
 * ONNX support (tests/meson.build).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../examples/common/models.h"
#include "nn_util.h"
#include "testutil.h"

#define BATCH 4
#define NIN (BATCH * 3 * 32 * 32)
#define TOL 1e-4

static tc_backend *be;

static void setup(void) {
  be = nu_cpu();
}
static void teardown(void) {
  tc_backend_destroy(be);
}

static const char *dir(void) {
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/tests/onnx/import", root ? root : "..");
  return buf;
}

/* The whole file `name` of dir() into a malloc'ed buffer; *n its size. */
static unsigned char *slurp(const char *name, size_t *n) {
  char path[4200];
  return tu_slurp(tu_path_join(path, sizeof path, dir(), name), n);
}

/* max |a - b| / max(1, max |b|) over n floats */
static double rel_diff(const float *a, const float *b, size_t n) {
  double d = 0, s = 1;
  for (size_t i = 0; i < n; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    s = fmax(s, fabs((double)b[i]));
  }
  return d / s;
}

static void run(tc_model *m, const float *x, float *y) {
  const int64_t shape[4] = {BATCH, 3, 32, 32};
  tc_tensor *t = nu_tensor(be, shape, 4, x);
  tc_tensor *out;
  NU_OK(tc_model_forward(m, t, &out));
  ck_assert_int_eq(tc_tensor_numel(out), BATCH * 10);
  nu_get(out, y);
  tc_tensor_destroy(t);
}

static const char *const models[] = {
    "lenet5",    "lenet5_bn", "lenet5_bn_folded",     "resnet8_a",
    "resnet8_b", "plain_avg", "resnet8_a_sub_folded", "resnet8_b_folded"};

START_TEST(test_torch_models) {
  const char *name = models[_i];
  size_t n;
  float *x = (float *)slurp("input.bin", &n);
  ck_assert_uint_eq(n, NIN * sizeof(float));
  char file[64];
  snprintf(file, sizeof file, "%s.out.bin", name);
  float *ref = (float *)slurp(file, &n);
  ck_assert_uint_eq(n, BATCH * 10 * sizeof(float));
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.onnx", dir(), name);
  tc_model *m = NULL;
  NU_OK(tc_model_create_from_onnx(&m, be, path, NULL));
  ck_assert_int_eq(tc_model_is_training(m), 0);
  float y[BATCH * 10];
  run(m, x, y);
  double d = rel_diff(y, ref, BATCH * 10);
  printf("%-22s max|diff|/scale %.2e\n", name, d);
  ck_assert_msg(d <= TOL, "%s: %.3e", name, d);
  tc_model_destroy(m);
  free(x);
  free(ref);
}
END_TEST

/* tinycnn -> ONNX -> tinycnn gives the same outputs. */
START_TEST(test_round_trip) {
  tc_layer *root;
  NU_OK(model_lenet(&root, 1));
  const int64_t in[3] = {3, 32, 32};
  tc_model *m = nu_model(be, root, in, 3, 0);
  /* batch norm statistics and affine parameters away from 0 and 1 */
  for (int64_t i = 0; i < tc_model_num_state(m); i++) {
    const char *nm;
    tc_tensor *t;
    NU_OK(tc_model_get_state(m, i, &nm, &t));
    if (strncmp(nm, "bn", 2) || strstr(nm, "num_batches"))
      continue;
    int64_t c = tc_tensor_numel(t);
    float v[128];
    for (int64_t k = 0; k < c; k++)
      v[k] = strstr(nm, "var") || strstr(nm, "weight")
                 ? 0.6f + 0.01f * (float)(k % 37)
                 : 0.05f * (float)((k % 11) - 5);
    NU_OK(tc_tensor_copy_from_host(t, v, (size_t)c * sizeof(float)));
  }
  NU_OK(tc_model_set_training(m, 0));
  size_t n;
  float *x = (float *)slurp("input.bin", &n);
  float want[BATCH * 10], got[BATCH * 10];
  run(m, x, want);
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_onnx_import");
  NU_OK(tc_model_export_onnx(m, path, NULL));
  tc_model *back = NULL;
  NU_OK(tc_model_create_from_onnx(&back, be, path, NULL));
  run(back, x, got);
  double d = rel_diff(got, want, BATCH * 10);
  printf("round trip lenet_bn     max|diff|/scale %.2e\n", d);
  ck_assert_msg(d <= 1e-6, "%.3e", d);
  /* a fixed batch in the file is accepted too */
  tc_onnx_options o = TC_ONNX_OPTIONS_INIT;
  o.dynamic_batch = 0, o.batch = BATCH;
  NU_OK(tc_model_export_onnx(m, path, &o));
  tc_model_destroy(back);
  NU_OK(tc_model_create_from_onnx(&back, be, path, NULL));
  run(back, x, got);
  ck_assert(rel_diff(got, want, BATCH * 10) <= 1e-6);
  unlink(path);
  tc_model_destroy(back);
  tc_model_destroy(m);
  free(x);
}
END_TEST

/* Replaces the only occurrence of `from` (len bytes) in b with `to`. */
static void patch(unsigned char *b, size_t n, const char *from, const char *to,
                  size_t len) {
  unsigned char *hit = NULL;
  for (size_t i = 0; i + len <= n; i++)
    if (!memcmp(b + i, from, len)) {
      ck_assert_msg(hit == NULL, "pattern found twice");
      hit = b + i;
    }
  ck_assert_msg(hit != NULL, "pattern not found");
  memcpy(hit, to, len);
}

static tc_status load_bytes(const unsigned char *b, size_t n) {
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_onnx_hostile");
  tu_write_file(path, b, n);
  tc_model *m = (tc_model *)&m; /* must stay as it is on failure */
  tc_model *before = m;
  tc_status st = tc_model_create_from_onnx(&m, be, path, NULL);
  if (st == TC_OK)
    tc_model_destroy(m);
  else
    ck_assert_ptr_eq(m, before);
  unlink(path);
  return st;
}

START_TEST(test_hostile) {
  size_t n;
  unsigned char *b = slurp("lenet5.onnx", &n);
  /* truncated anywhere: never a crash, mostly TC_EFORMAT */
  for (size_t cut = 1; cut < n; cut += n / 97 + 1)
    ck_assert_int_ne(load_bytes(b, cut), TC_OK);
  ck_assert_int_eq(load_bytes(b, n / 2), TC_EFORMAT);
  ck_assert_msg(strstr(tc_last_error(), "truncated"), "%s", tc_last_error());
  /* an operator it does not map: op_type "Relu" (field 4, length 4) of
   * the first Relu becomes "Selu" */
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  size_t at = 0;
  while (memcmp(c + at, "\x22\x04Relu", 6))
    at++;
  memcpy(c + at + 2, "Selu", 4);
  ck_assert_int_eq(load_bytes(c, n), TC_EUNSUPPORTED);
  ck_assert_msg(strstr(tc_last_error(), "'/relu1/Relu' (Selu)"), "%s",
                tc_last_error());
  /* a wrong initializer shape: fc3.weight dims (120, 400) -> (400, 120),
   * varints 08 78 08 90 03 -> 08 90 03 08 78 */
  memcpy(c, b, n);
  patch(c, n, "\x08\x78\x08\x90\x03", "\x08\x90\x03\x08\x78", 5);
  ck_assert_int_eq(load_bytes(c, n), TC_ESHAPE);
  ck_assert_msg(strstr(tc_last_error(), "/fc3/Gemm"), "%s", tc_last_error());
  /* a missing initializer: the tensor "fc5.bias" renamed "fc5.biaz" */
  memcpy(c, b, n);
  patch(c, n,
        "\x42\x08"
        "fc5.bias",
        "\x42\x08"
        "fc5.biaz",
        10);
  ck_assert_int_eq(load_bytes(c, n), TC_EFORMAT);
  ck_assert_msg(strstr(tc_last_error(), "fc5.bias"), "%s", tc_last_error());
  /* garbage, an empty file, a file beyond max_file_bytes */
  for (size_t i = 0; i < n; i++)
    c[i] = (unsigned char)(i * 131 + 7);
  ck_assert_int_ne(load_bytes(c, n), TC_OK);
  ck_assert_int_eq(load_bytes(c, 0), TC_EFORMAT);
  char path[4200];
  snprintf(path, sizeof path, "%s/lenet5.onnx", dir());
  tc_onnx_load_options o;
  ck_assert_int_eq(tc_onnx_load_options_init(&o, sizeof o), TC_OK);
  ck_assert_int_eq(o.max_file_bytes, (int64_t)1 << 30);
  ck_assert_int_eq(tc_onnx_load_options_init(&o, sizeof o + 8), TC_EVERSION);
  o.max_file_bytes = 1000;
  tc_model *m = NULL;
  ck_assert_int_eq(tc_model_create_from_onnx(&m, be, path, &o), TC_EFORMAT);
  ck_assert_int_eq(tc_model_create_from_onnx(NULL, be, path, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_model_create_from_onnx(&m, be, "/nonexistent.onnx", NULL),
                   TC_EIO);
  ck_assert_ptr_null(m);
  free(c);
  free(b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("onnx_import");
  TCase *tc = tcase_create("onnx_import");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_torch_models, 0,
                      (int)(sizeof models / sizeof models[0]));
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_hostile);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
