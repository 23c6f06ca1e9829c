/*
 * activation.c - ReLU (any shape): y = max(x, 0); dx = (y > 0) ? dy : 0.
 * The backward uses the forward's output, which is > 0 exactly where the
 * input is. Accumulation goes through scratch (relu_bwd only overwrites).
 */
#include "nn_internal.h"

static tc_status relu_infer(tc_layer *l, const char *fn) {
  (void)fn;
  l->out_ndim = l->in_ndim;
  memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
  return TC_OK;
}

static tc_status relu_plan(tc_layer *l, int64_t n) {
  return tc__nn_plan_output(l, n);
}

static tc_status relu_forward(tc_layer *l, tc_tensor *x) {
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, relu_fwd);
  if (st != TC_OK)
    return st;
  tc_eltwise_args a = {sizeof a, x->numel, 0.f, 0.f, nn_f(x), NULL, nn_f(l->y)};
  return be->iface->relu_fwd(be->ctx, &a);
}

static tc_status relu_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                               int acc) {
  tc_backend *be = tc__nn_be(l);
  if (!dx)
    return TC_OK;
  tc_status st = NN_SLOT(be, relu_bwd);
  if (st != TC_OK)
    return st;
  tc_tensor *target = dx;
  if (acc && (st = tc__nn_scratch(l, dx, &target)) != TC_OK)
    return st;
  tc_eltwise_args a = {sizeof a,   dy->numel, 0.f,         0.f,
                       nn_f(l->y), nn_f(dy),  nn_f(target)};
  if ((st = be->iface->relu_bwd(be->ctx, &a)) != TC_OK)
    return st;
  return acc ? tc__nn_pass_grad(be, target, dx, 1) : TC_OK;
}

static const nn_kind relu_kind = {
    .name = "relu",
    .infer = relu_infer,
    .plan = relu_plan,
    .forward = relu_forward,
    .backward = relu_backward,
    .produces = 1,
};

int tc__nn_is_relu(const tc_layer *l) {
  return l->kind == &relu_kind;
}

TC_API tc_status tc_relu_create(tc_layer **out) {
  return tc__nn_layer_alloc(out, &relu_kind, sizeof(tc_layer),
                            "tc_relu_create");
}
