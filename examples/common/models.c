/*
 * models.c - see models.h. Uses only the public API.
 */
#include "models.h"

#include <stdio.h>
#include <string.h>

#define TRY(call)                                                              \
  do {                                                                         \
    st = (call);                                                               \
    if (st != TC_OK)                                                           \
      goto fail;                                                               \
  } while (0)

/* Appends a freshly made layer; `make` returns a status and sets `l`. */
#define ADD(seq, name, make)                                                   \
  do {                                                                         \
    tc_layer *l_ = NULL;                                                       \
    st = (make);                                                               \
    if (st != TC_OK)                                                           \
      goto fail;                                                               \
    TRY(tc_sequential_add((seq), (name), l_));                                 \
  } while (0)

tc_status model_lenet(tc_layer **out, int with_bn) {
  tc_layer *net = NULL;
  tc_status st;
  TRY(tc_sequential_create(&net));
  ADD(net, "conv1", tc_conv2d_create(&l_, 3, 6, 5, NULL));
  if (with_bn)
    ADD(net, "bn1", tc_batchnorm2d_create(&l_, 6, NULL));
  ADD(net, "relu1", tc_relu_create(&l_));
  ADD(net, "pool1", tc_maxpool2d_create(&l_, 2, NULL));
  ADD(net, "conv2", tc_conv2d_create(&l_, 6, 16, 5, NULL));
  if (with_bn)
    ADD(net, "bn2", tc_batchnorm2d_create(&l_, 16, NULL));
  ADD(net, "relu2", tc_relu_create(&l_));
  ADD(net, "pool2", tc_maxpool2d_create(&l_, 2, NULL));
  ADD(net, "flatten", tc_flatten_create(&l_));
  ADD(net, "fc3", tc_linear_create(&l_, 400, 120, NULL));
  if (with_bn)
    ADD(net, "bn3", tc_batchnorm1d_create(&l_, 120, NULL));
  ADD(net, "relu3", tc_relu_create(&l_));
  ADD(net, "fc4", tc_linear_create(&l_, 120, 84, NULL));
  if (with_bn)
    ADD(net, "bn4", tc_batchnorm1d_create(&l_, 84, NULL));
  ADD(net, "relu4", tc_relu_create(&l_));
  ADD(net, "fc5", tc_linear_create(&l_, 84, 10, NULL));
  *out = net;
  return TC_OK;
fail:
  tc_layer_destroy(net);
  return st;
}

static tc_status stage(tc_layer **out, int64_t cin, int64_t cout,
                       int64_t stride, int n, int shortcut) {
  tc_layer *seq = NULL;
  tc_status st;
  tc_residual_options o = TC_RESIDUAL_OPTIONS_INIT;
  o.shortcut = shortcut;
  TRY(tc_sequential_create(&seq));
  for (int i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "%d", i);
    ADD(seq, name,
        tc_residual_block_create(&l_, i ? cout : cin, cout, i ? 1 : stride,
                                 &o));
  }
  *out = seq;
  return TC_OK;
fail:
  tc_layer_destroy(seq);
  return st;
}

tc_status model_resnet(tc_layer **out, int depth, int shortcut) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    return TC_EINVAL;
  int n = (depth - 2) / 6;
  tc_layer *net = NULL;
  tc_status st;
  tc_conv2d_options c = TC_CONV2D_OPTIONS_INIT;
  c.pad_h = c.pad_w = 1;
  c.bias = 0;
  tc_pool2d_options p = TC_POOL2D_OPTIONS_INIT;
  p.stride_h = p.stride_w = 1;
  TRY(tc_sequential_create(&net));
  ADD(net, "conv1", tc_conv2d_create(&l_, 3, 16, 3, &c));
  ADD(net, "bn1", tc_batchnorm2d_create(&l_, 16, NULL));
  ADD(net, "relu", tc_relu_create(&l_));
  ADD(net, "layers_2n", stage(&l_, 16, 16, 1, n, shortcut));
  ADD(net, "layers_4n", stage(&l_, 16, 32, 2, n, shortcut));
  ADD(net, "layers_6n", stage(&l_, 32, 64, 2, n, shortcut));
  ADD(net, "avg_pool", tc_avgpool2d_create(&l_, 8, &p));
  ADD(net, "flatten", tc_flatten_create(&l_));
  ADD(net, "fc_out", tc_linear_create(&l_, 64, 10, NULL));
  *out = net;
  return TC_OK;
fail:
  tc_layer_destroy(net);
  return st;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

tc_status model_resnet_init(tc_model *m, uint64_t seed) {
  /* a stream of its own so the default init's numbers are not reused */
  tc_rng rng;
  tc_rng_init(&rng, seed, TC_RNG_STREAM_USER + 1);
  int64_t n = tc_model_num_params(m);
  for (int64_t i = 0; i < n; i++) {
    const char *name;
    tc_tensor *p;
    tc_status st = tc_model_get_param(m, i, &name, &p, NULL);
    if (st != TC_OK)
      return st;
    int is_conv = ends_with(name, ".weight") && tc_tensor_ndim(p) == 4;
    int is_bn = tc_tensor_ndim(p) == 1 && (strstr(name, "bn") != NULL ||
                                           strstr(name, "shortcut.1") != NULL);
    if (is_conv)
      st = tc_init_kaiming_normal(p, 0.0, TC_FAN_OUT, TC_NONLINEARITY_RELU,
                                  &rng);
    else if (is_bn)
      st = tc_init_constant(p, ends_with(name, ".weight") ? 1.0 : 0.0);
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}
