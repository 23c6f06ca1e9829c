/*
 * flatten.c - Flatten (N, d1..dk) -> (N, d1*...*dk) and Identity. Neither
 * copies in forward: Flatten's output is an alias of its input's storage
 * with another shape (a tensor struct inside the layer, never destroyed),
 * Identity returns its input. Backward copies (or adds) dy into dx.
 */
#include "nn_internal.h"

typedef struct flatten_layer {
  tc_layer base;
  tc_tensor alias;
} flatten_layer;

static tc_status flatten_infer(tc_layer *l, const char *fn) {
  (void)fn;
  int64_t n = 1;
  for (int i = 0; i < l->in_ndim; i++)
    n *= l->in_shape[i];
  l->out_ndim = 1;
  l->out_shape[0] = n;
  return TC_OK;
}

static tc_status identity_infer(tc_layer *l, const char *fn) {
  (void)fn;
  l->out_ndim = l->in_ndim;
  memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
  return TC_OK;
}

static tc_status nothing_to_plan(tc_layer *l, int64_t n) {
  (void)l;
  (void)n;
  return TC_OK;
}

static tc_status flatten_forward(tc_layer *l, tc_tensor *x) {
  flatten_layer *f = (flatten_layer *)l;
  int64_t shape[2] = {x->shape[0], l->out_shape[0]};
  tc__nn_alias(&f->alias, x, shape, 2);
  l->y = &f->alias;
  return TC_OK;
}

static tc_status identity_forward(tc_layer *l, tc_tensor *x) {
  l->y = x;
  return TC_OK;
}

static tc_status pass_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                               int acc) {
  return tc__nn_pass_grad(tc__nn_be(l), dy, dx, acc);
}

static const nn_kind flatten_kind = {
    .name = "flatten",
    .infer = flatten_infer,
    .plan = nothing_to_plan,
    .forward = flatten_forward,
    .backward = pass_backward,
};
static const nn_kind identity_kind = {
    .name = "identity",
    .infer = identity_infer,
    .plan = nothing_to_plan,
    .forward = identity_forward,
    .backward = pass_backward,
};

TC_API tc_status tc_flatten_create(tc_layer **out) {
  return tc__nn_layer_alloc(out, &flatten_kind, sizeof(flatten_layer),
                            "tc_flatten_create");
}

TC_API tc_status tc_identity_create(tc_layer **out) {
  return tc__nn_layer_alloc(out, &identity_kind, sizeof(tc_layer),
                            "tc_identity_create");
}
