/*
 * export_models.c - writes, for tests/onnx/check_onnx.py, a few models as
 * ONNX (tc_model_export_onnx) next to tinycnn's own evaluation-mode
 * outputs on one batch of real MNIST test images, preprocessed as the
 * trainers do (pad to 32, grey to RGB, normalise 0.5/0.5).
 *
 * Usage: export_models OUTDIR MNIST_DIR
 * Writes OUTDIR/input.bin (float32 (64, 3, 32, 32)) and, per model NAME,
 * NAME.onnx and NAME.out.bin (float32 (64, 10)). Batch norms get running
 * statistics and affine parameters away from their defaults so the
 * exported BatchNormalization nodes matter.
 */
#include <libtinycnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../examples/common/models.h"

#define BATCH 64

#define CHECK(call)                                                            \
  do {                                                                         \
    tc_status st_ = (call);                                                    \
    if (st_ != TC_OK) {                                                        \
      fprintf(stderr, "export_models: %s: %s (%s)\n", #call, tc_last_error(),  \
              tc_status_string(st_));                                          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static void add(tc_layer *seq, const char *name, tc_layer *l) {
  CHECK(tc_sequential_add(seq, name, l));
}

/* Every other layer kind and shortcut in one small net: strided conv
 * without bias, BN without affine, padded average pooling without the
 * padding in the count, dropout, option A with slicing, the plain block,
 * global pooling, Linear + BatchNorm1d. */
static tc_layer *plain_net(void) {
  tc_layer *net, *l;
  CHECK(tc_sequential_create(&net));
  tc_conv2d_options co = TC_CONV2D_OPTIONS_INIT;
  co.stride_h = co.stride_w = 2;
  co.pad_h = co.pad_w = 1;
  co.bias = 0;
  CHECK(tc_conv2d_create(&l, 3, 8, 3, &co));
  add(net, "conv", l);
  tc_batchnorm_options bo = TC_BATCHNORM_OPTIONS_INIT;
  bo.affine = 0;
  CHECK(tc_batchnorm2d_create(&l, 8, &bo));
  add(net, "bn", l);
  CHECK(tc_relu_create(&l));
  add(net, "relu", l);
  tc_pool2d_options po = TC_POOL2D_OPTIONS_INIT;
  po.stride_h = po.stride_w = 1;
  po.pad_h = po.pad_w = 1;
  po.count_include_pad = 0;
  CHECK(tc_avgpool2d_create(&l, 3, &po));
  add(net, "avg", l);
  CHECK(tc_dropout2d_create(&l, 0.3f));
  add(net, "drop2d", l);
  tc_residual_options ro = TC_RESIDUAL_OPTIONS_INIT;
  ro.shortcut = TC_SHORTCUT_A_SUBSAMPLE;
  CHECK(tc_residual_block_create(&l, 8, 12, 2, &ro));
  add(net, "block_a", l);
  ro.shortcut = TC_SHORTCUT_NONE;
  CHECK(tc_residual_block_create(&l, 12, 12, 1, &ro));
  add(net, "block_plain", l);
  CHECK(tc_global_avgpool2d_create(&l));
  add(net, "gap", l);
  CHECK(tc_flatten_create(&l));
  add(net, "flatten", l);
  CHECK(tc_linear_create(&l, 12, 16, NULL));
  add(net, "fc1", l);
  CHECK(tc_batchnorm1d_create(&l, 16, NULL));
  add(net, "bn1d", l);
  CHECK(tc_relu_create(&l));
  add(net, "relu1", l);
  CHECK(tc_dropout_create(&l, 0.5f));
  add(net, "drop", l);
  CHECK(tc_linear_create(&l, 16, 10, NULL));
  add(net, "fc2", l);
  return net;
}

/* Running statistics and affine parameters of every batch norm: values
 * drawn from a fixed LCG, away from mean 0 / var 1 / weight 1 / bias 0. */
static void perturb_bn(tc_model *m) {
  uint32_t s = 12345;
  for (int64_t i = 0; i < tc_model_num_state(m); i++) {
    const char *name;
    tc_tensor *t;
    CHECK(tc_model_get_state(m, i, &name, &t));
    if (tc_tensor_dtype(t) != TC_FLOAT32 || tc_tensor_ndim(t) != 1)
      continue;
    const char *leaf = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
    int mean = !strcmp(leaf, "running_mean"),
        var = !strcmp(leaf, "running_var");
    int w = !strcmp(leaf, "weight"), b = !strcmp(leaf, "bias");
    int is_bn =
        mean || var ||
        ((w || b) && (strstr(name, "bn") || strstr(name, "shortcut.1")));
    if (!is_bn)
      continue;
    int64_t n = tc_tensor_numel(t);
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t k = 0; k < n; k++) {
      s = s * 1664525u + 1013904223u;
      float u = (float)(s >> 8) / 16777216.0f; /* [0, 1) */
      v[k] = mean  ? u - 0.5f
             : var ? 0.5f + 1.5f * u
             : w   ? 0.5f + u
                   : 0.4f * u - 0.2f;
    }
    CHECK(tc_tensor_copy_from_host(t, v, (size_t)n * sizeof *v));
    free(v);
  }
}

static void write_bin(const char *dir, const char *name, const tc_tensor *t) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  size_t n = (size_t)tc_tensor_numel(t);
  float *v = malloc(n * sizeof *v);
  CHECK(tc_tensor_copy_to_host(t, v, n * sizeof *v));
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(v, sizeof *v, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "export_models: cannot write %s\n", path);
    exit(1);
  }
  free(v);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: export_models OUTDIR MNIST_DIR\n");
    return 2;
  }
  const char *out = argv[1];
  tc_set_seed(7);
  tc_backend *be;
  CHECK(tc_backend_create(&be, "cpu"));
  tc_dataset *test, *sub;
  CHECK(tc_dataset_load_mnist(&test, argv[2], 0));
  int64_t idx[BATCH];
  for (int i = 0; i < BATCH; i++)
    idx[i] = i;
  CHECK(tc_dataset_subset(&sub, test, idx, BATCH));
  static const float half[3] = {0.5f, 0.5f, 0.5f};
  tc_transform *tf;
  CHECK(tc_transform_create(&tf));
  CHECK(tc_transform_add_to_float(tf));
  CHECK(tc_transform_add_pad(tf, 2, 2, 2, 2, 0.f));
  CHECK(tc_transform_add_gray_to_rgb(tf));
  CHECK(tc_transform_add_normalize(tf, 3, half, half));
  tc_loader_options lo;
  CHECK(tc_loader_options_init(&lo, sizeof lo));
  lo.batch_size = BATCH;
  lo.backend = be;
  lo.shuffle = 0;
  tc_loader *ld;
  CHECK(tc_loader_create(&ld, sub, tf, &lo));
  tc_tensor *x, *y;
  CHECK(tc_loader_next(ld, &x, &y));
  write_bin(out, "input.bin", x);

  static const char *names[] = {"lenet",      "lenet_bn",       "resnet20_A",
                                "resnet20_B", "resnet20_plain", "plain_net"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *name = names[i];
    tc_layer *root;
    if (!strncmp(name, "lenet", 5))
      CHECK(model_lenet(&root, strstr(name, "_bn") != NULL));
    else if (!strcmp(name, "plain_net"))
      root = plain_net();
    else
      CHECK(model_resnet(&root, 20,
                         name[9] == 'A'   ? TC_SHORTCUT_A_MAXPOOL
                         : name[9] == 'B' ? TC_SHORTCUT_B
                                          : TC_SHORTCUT_NONE));
    tc_model *m;
    const int64_t in[3] = {3, 32, 32};
    CHECK(tc_model_create(&m, be, root, in, 3, NULL));
    perturb_bn(m);
    CHECK(tc_model_set_training(m, 0));
    tc_tensor *logits;
    CHECK(tc_model_forward(m, x, &logits));
    char file[256];
    snprintf(file, sizeof file, "%s.out.bin", name);
    write_bin(out, file, logits);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.onnx", out, name);
    CHECK(tc_model_export_onnx(m, path, NULL));
    tc_model_destroy(m);
  }
  tc_loader_destroy(ld);
  tc_transform_destroy(tf);
  tc_dataset_destroy(sub);
  tc_dataset_destroy(test);
  tc_backend_destroy(be);
  return 0;
}
