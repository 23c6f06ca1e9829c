/*
 * test_summary.c - the model summary against PyTorch: parameter and buffer
 * counts, forward multiply-adds per image and the state dict (names and
 * shapes) of the bundled models (LeNet-5 with and without BN, ResNet-20
 * and -56 with shortcuts A and B, the plain ResNet-20), from
 * tests/golden/model_counts.json (generate.py counts); the per-layer
 * entries add up to the totals; the text table (measuring call,
 * truncation); option struct sizes; and the ONNX exporter's refusals.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../examples/common/models.h"
#include "nn_util.h"
#include "testutil.h"

static tc_backend *be;
static cJSON *counts;

static void setup(void) {
  be = nu_cpu();
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  char path[4096];
  tu_path_join(path, sizeof path, root ? root : "..",
               "tests/golden/model_counts.json");
  size_t n;
  unsigned char *buf = tu_slurp(path, &n); /* NUL-terminated */
  counts = cJSON_Parse((const char *)buf);
  free(buf);
  ck_assert_ptr_nonnull(counts);
}

static void teardown(void) {
  cJSON_Delete(counts);
  tc_backend_destroy(be);
}

/* "lenet", "lenet_bn", "resnet20_A", "resnet56_B", "resnet20_plain" */
static tc_model *make(const char *name) {
  tc_layer *root = NULL;
  tc_status st;
  if (!strncmp(name, "lenet", 5)) {
    st = model_lenet(&root, strstr(name, "_bn") != NULL);
  } else {
    int depth = atoi(name + 6);
    const char *kind = strchr(name, '_') + 1;
    int sc = !strcmp(kind, "plain") ? TC_SHORTCUT_NONE
             : !strcmp(kind, "B")   ? TC_SHORTCUT_B
                                    : TC_SHORTCUT_A_MAXPOOL;
    st = model_resnet(&root, depth, sc);
  }
  ck_assert_int_eq(st, TC_OK);
  tc_model *m = NULL;
  const int64_t in[3] = {3, 32, 32};
  ck_assert_msg(tc_model_create(&m, be, root, in, 3, NULL) == TC_OK, "%s",
                tc_last_error());
  return m;
}

static int64_t num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  ck_assert_msg(cJSON_IsNumber(v), "no '%s'", key);
  return (int64_t)v->valuedouble;
}

static void check_model(const char *name) {
  const cJSON *want = cJSON_GetObjectItemCaseSensitive(counts, name);
  ck_assert_msg(want != NULL, "no golden counts for %s", name);
  tc_model *m = make(name);
  tc_model_totals t = TC_MODEL_TOTALS_INIT;
  ck_assert_int_eq(tc_model_get_totals(m, 128, &t), TC_OK);
  ck_assert_msg(t.params == num(want, "params"),
                "%s: params %lld, torch "
                "%lld",
                name, (long long)t.params, (long long)num(want, "params"));
  ck_assert_int_eq(t.buffers, num(want, "buffers"));
  ck_assert_msg(t.macs == num(want, "macs"), "%s: macs %lld, torch %lld", name,
                (long long)t.macs, (long long)num(want, "macs"));
  ck_assert_int_eq(t.params, tc_tensor_numel(tc_model_params_flat(m)));
  ck_assert_int_eq(t.input_bytes, 128 * 3 * 32 * 32 * 4);

  /* the state dict: PyTorch's names, order and shapes */
  const cJSON *state = cJSON_GetObjectItemCaseSensitive(want, "state");
  ck_assert_int_eq(tc_model_num_state(m), cJSON_GetArraySize(state));
  for (int64_t i = 0; i < tc_model_num_state(m); i++) {
    const char *sname;
    tc_tensor *tt;
    ck_assert_int_eq(tc_model_get_state(m, i, &sname, &tt), TC_OK);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(state, sname);
    ck_assert_msg(cJSON_IsArray(shape), "%s: torch has no '%s'", name, sname);
    ck_assert_int_eq(tc_tensor_ndim(tt), cJSON_GetArraySize(shape));
    for (int d = 0; d < tc_tensor_ndim(tt); d++)
      ck_assert_int_eq(tc_tensor_dim(tt, d),
                       (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble);
  }

  /* the per-layer entries add up to the totals */
  int64_t p = 0, b = 0, macs = 0, n = tc_model_profile_count(m);
  for (int64_t i = 0; i < n; i++) {
    tc_layer_summary s = TC_LAYER_SUMMARY_INIT;
    ck_assert_int_eq(tc_model_get_layer_summary(m, i, &s), TC_OK);
    ck_assert_int_ge(s.depth, 1);
    ck_assert_int_ge(s.out_ndim, 1);
    p += s.params, b += s.buffers, macs += s.macs;
  }
  ck_assert_int_eq(p, t.params);
  ck_assert_int_eq(b, t.buffers);
  ck_assert_int_eq(macs, t.macs);
  tc_model_destroy(m);
}

START_TEST(test_counts_lenet) {
  check_model("lenet");
  check_model("lenet_bn");
}
END_TEST

START_TEST(test_counts_resnet) {
  check_model("resnet20_A");
  check_model("resnet20_B");
  check_model("resnet20_plain");
  check_model("resnet56_A");
  check_model("resnet56_B");
}
END_TEST

/* The published figures: LeNet-5 651,720; ResNet-20 40.6 M; ResNet-56
 * 125.5 M multiply-adds per image. */
START_TEST(test_published_macs) {
  static const struct {
    const char *name;
    int64_t lo, hi;
  } cases[] = {{"lenet", 651720, 651720},
               {"resnet20_A", 40550000, 40650000},
               {"resnet56_A", 125450000, 125550000}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tc_model *m = make(cases[i].name);
    tc_model_totals t = {.struct_size = sizeof t};
    ck_assert_int_eq(tc_model_get_totals(m, 1, &t), TC_OK);
    ck_assert_msg(t.macs >= cases[i].lo && t.macs <= cases[i].hi, "%s: %lld",
                  cases[i].name, (long long)t.macs);
    tc_model_destroy(m);
  }
}
END_TEST

START_TEST(test_layer_entries) {
  tc_model *m = make("lenet");
  tc_layer_summary s = {.struct_size = sizeof s};
  ck_assert_int_eq(tc_model_get_layer_summary(m, 0, &s), TC_OK);
  ck_assert_str_eq(s.name, "conv1");
  ck_assert_str_eq(s.kind, "conv2d");
  ck_assert_int_eq(s.out_ndim, 3);
  ck_assert_int_eq(s.out_shape[0], 6);
  ck_assert_int_eq(s.out_shape[1], 28);
  ck_assert_int_eq(s.params, 6 * 3 * 25 + 6);
  ck_assert_int_eq(s.macs, 6 * 28 * 28 * 3 * 25);
  /* an older, shorter struct gets the fields it knows */
  tc_layer_summary small;
  memset(&small, 0x5a, sizeof small);
  small.struct_size = offsetof(tc_layer_summary, depth);
  ck_assert_int_eq(tc_model_get_layer_summary(m, 0, &small), TC_OK);
  ck_assert_str_eq(small.kind, "conv2d");
  ck_assert_int_eq(small.depth, 0x5a5a5a5a);
  /* errors */
  s.struct_size = sizeof s + 8;
  ck_assert_int_eq(tc_model_get_layer_summary(m, 0, &s), TC_EVERSION);
  s.struct_size = sizeof(size_t);
  ck_assert_int_eq(tc_model_get_layer_summary(m, 0, &s), TC_EINVAL);
  s.struct_size = sizeof s;
  ck_assert_int_eq(tc_model_get_layer_summary(m, 99, &s), TC_EINVAL);
  ck_assert_int_eq(tc_model_get_layer_summary(NULL, 0, &s), TC_EINVAL);
  tc_model_totals t = {.struct_size = sizeof t};
  ck_assert_int_eq(tc_model_get_totals(m, 0, &t), TC_EINVAL);
  tc_model_destroy(m);
}
END_TEST

START_TEST(test_text) {
  tc_model *m = make("resnet20_A");
  size_t len = 0;
  ck_assert_int_eq(tc_model_summary(m, 128, NULL, 0, &len), TC_OK);
  ck_assert_uint_gt(len, 1000);
  char *buf = malloc(len + 1);
  size_t len2 = 0;
  ck_assert_int_eq(tc_model_summary(m, 128, buf, len + 1, &len2), TC_OK);
  ck_assert_uint_eq(len2, len);
  ck_assert_uint_eq(strlen(buf), len);
  ck_assert_ptr_nonnull(strstr(buf, "Total params: 269,722\n"));
  ck_assert_ptr_nonnull(strstr(buf, "Mult-adds per image: 40,551,040"));
  ck_assert_ptr_nonnull(strstr(buf, "layers_4n.0.conv1 (conv2d)"));
  ck_assert_ptr_nonnull(strstr(buf, "(N, 64, 8, 8)"));
  /* cut: NUL-terminated, the full length still reported */
  char small[40];
  ck_assert_int_eq(tc_model_summary(m, 128, small, sizeof small, &len2), TC_OK);
  ck_assert_uint_eq(len2, len);
  ck_assert_uint_eq(strlen(small), sizeof small - 1);
  ck_assert_int_eq(strncmp(small, buf, sizeof small - 1), 0);
  ck_assert_int_eq(tc_model_summary(m, 128, NULL, 5, &len2), TC_EINVAL);
  ck_assert_int_eq(tc_model_summary(m, 0, buf, len + 1, &len2), TC_EINVAL);
  free(buf);
  tc_model_destroy(m);
}
END_TEST

/* ONNX: the option struct, and the layers that cannot be exported. */
START_TEST(test_onnx_refusals) {
  tc_onnx_options o;
  ck_assert_int_eq(tc_onnx_options_init(&o, sizeof o), TC_OK);
  ck_assert_int_eq(o.opset, 13);
  ck_assert_int_eq(o.dynamic_batch, 1);
  ck_assert_str_eq(o.input_name, "input");
  ck_assert_int_eq(tc_onnx_options_init(&o, sizeof o + 8), TC_EVERSION);

  tc_layer *net, *l;
  tc_batchnorm_options bo = TC_BATCHNORM_OPTIONS_INIT;
  bo.track_running_stats = 0;
  ck_assert_int_eq(tc_sequential_create(&net), TC_OK);
  ck_assert_int_eq(tc_conv2d_create(&l, 3, 4, 3, NULL), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "conv", l), TC_OK);
  ck_assert_int_eq(tc_batchnorm2d_create(&l, 4, &bo), TC_OK);
  ck_assert_int_eq(tc_sequential_add(net, "norm", l), TC_OK);
  tc_model *m;
  const int64_t in[3] = {3, 8, 8};
  ck_assert_int_eq(tc_model_create(&m, be, net, in, 3, NULL), TC_OK);
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_onnx");
  ck_assert_int_eq(tc_model_export_onnx(m, path, NULL), TC_EUNSUPPORTED);
  /* built with ONNX: the message names the layer; without: the build */
  ck_assert_msg(strstr(tc_last_error(), "'norm' (batchnorm2d)") ||
                    strstr(tc_last_error(), "without ONNX support"),
                "%s", tc_last_error());
  o.opset = 11;
  ck_assert_int_ne(tc_model_export_onnx(m, path, &o), TC_OK);
  ck_assert_int_eq(tc_model_export_onnx(NULL, path, NULL), TC_EINVAL);
  unlink(path);
  tc_model_destroy(m);
}
END_TEST

int main(void) {
  Suite *s = suite_create("summary");
  TCase *tc = tcase_create("summary");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_counts_lenet);
  tcase_add_test(tc, test_counts_resnet);
  tcase_add_test(tc, test_published_macs);
  tcase_add_test(tc, test_layer_entries);
  tcase_add_test(tc, test_text);
  tcase_add_test(tc, test_onnx_refusals);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
