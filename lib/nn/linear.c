/*
 * linear.c - the Linear layer (torch.nn.Linear): y = x W^T + b over the
 * last dimension, as GEMMs on the backend. Rows = every leading dimension.
 *   x: (rows, in)  W: (out, in)  b: (out)  y: (rows, out)
 */
#include "../options.h"
#include "nn_internal.h"

typedef struct linear_layer {
  tc_layer base;
  tc_linear_options o;
  int64_t in_f, out_f;
} linear_layer;

static tc_status linear_infer(tc_layer *l, const char *fn) {
  linear_layer *c = (linear_layer *)l;
  char p[256], s[96];
  if (l->in_ndim < 1 || l->in_shape[l->in_ndim - 1] != c->in_f)
    return tc__error(TC_ESHAPE,
                     "%s: %s (linear %lld->%lld) expects input "
                     "(N, ..., %lld), got per-sample shape %s",
                     fn, tc__nn_path(l, p, sizeof p), (long long)c->in_f,
                     (long long)c->out_f, (long long)c->in_f,
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  l->out_ndim = l->in_ndim;
  memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
  l->out_shape[l->out_ndim - 1] = c->out_f;
  return TC_OK;
}

static tc_status linear_init(tc_layer *l, tc_rng *rng) {
  linear_layer *c = (linear_layer *)l;
  tc_status st = tc__nn_init_default_weight(l->param[0], rng);
  if (st == TC_OK && c->o.bias)
    st = tc__nn_init_default_bias(l->param[1], c->in_f, rng);
  return st;
}

static tc_status linear_plan(tc_layer *l, int64_t n) {
  return tc__nn_plan_output(l, n);
}

static tc_gemm_args gemm(int ta, int tb, int64_t m, int64_t n, int64_t k,
                         const float *a, int64_t lda, const float *b,
                         int64_t ldb, float *c, float beta) {
  tc_gemm_args g;
  memset(&g, 0, sizeof g);
  g.struct_size = sizeof g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = m, g.n = n, g.k = k;
  g.alpha = 1.f, g.beta = beta;
  g.a = a, g.lda = lda, g.b = b, g.ldb = ldb, g.c = c, g.ldc = n;
  g.batch = 1;
  return g;
}

static tc_status linear_forward(tc_layer *l, tc_tensor *x) {
  linear_layer *c = (linear_layer *)l;
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, gemm);
  if (st == TC_OK && c->o.bias)
    st = NN_SLOT(be, bias_add);
  if (st != TC_OK)
    return st;
  int64_t rows = x->numel / c->in_f;
  if (rows == 0)
    return TC_OK;
  /* y (rows,out) = x (rows,in) * W^T (in,out) */
  tc_gemm_args g = gemm(0, 1, rows, c->out_f, c->in_f, nn_f(x), c->in_f,
                        nn_f(l->param[0]), c->in_f, nn_f(l->y), 0.f);
  if ((st = be->iface->gemm(be->ctx, &g)) != TC_OK || !c->o.bias)
    return st;
  tc_bias_args b = {sizeof b,   rows, c->out_f, 1, nn_f(l->param[1]),
                    nn_f(l->y), NULL, NULL,     0, 0};
  return be->iface->bias_add(be->ctx, &b);
}

static tc_status linear_backward(tc_layer *l, const tc_tensor *dy,
                                 tc_tensor *dx, int acc) {
  linear_layer *c = (linear_layer *)l;
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, gemm);
  if (st == TC_OK && c->o.bias)
    st = NN_SLOT(be, bias_grad);
  if (st != TC_OK)
    return st;
  int64_t rows = dy->numel / c->out_f;
  if (rows == 0)
    return dx && !acc ? tc__nn_fill(be, nn_f(dx), dx->numel, 0.f) : TC_OK;
  /* dW (out,in) += dy^T (out,rows) * x (rows,in) */
  tc_gemm_args g = gemm(1, 0, c->out_f, c->in_f, rows, nn_f(dy), c->out_f,
                        nn_f(l->x), c->in_f, nn_f(l->grad[0]), 1.f);
  if ((st = be->iface->gemm(be->ctx, &g)) != TC_OK)
    return st;
  if (c->o.bias) {
    tc_bias_args b = {sizeof b, rows,     c->out_f,         1, NULL,
                      NULL,     nn_f(dy), nn_f(l->grad[1]), 1, 0};
    if ((st = be->iface->bias_grad(be->ctx, &b)) != TC_OK)
      return st;
  }
  if (!dx)
    return TC_OK;
  /* dx (rows,in) (+)= dy (rows,out) * W (out,in) */
  g = gemm(0, 0, rows, c->in_f, c->out_f, nn_f(dy), c->out_f, nn_f(l->param[0]),
           c->in_f, nn_f(dx), acc ? 1.f : 0.f);
  return be->iface->gemm(be->ctx, &g);
}

static void linear_describe(const tc_layer *l, nn_desc *d) {
  const linear_layer *c = (const linear_layer *)l;
  d->in_c = c->in_f, d->out_c = c->out_f, d->bias = c->o.bias;
}

static const nn_kind linear_kind = {
    .name = "linear",
    .infer = linear_infer,
    .init = linear_init,
    .plan = linear_plan,
    .forward = linear_forward,
    .backward = linear_backward,
    .produces = 1,
    .describe = linear_describe,
};

static const tc_linear_options linear_defaults = TC_LINEAR_OPTIONS_INIT;

TC_API tc_status tc_linear_options_init(tc_linear_options *o,
                                        size_t struct_size) {
  return tc__options_init(o, struct_size, &linear_defaults, sizeof *o,
                          TC__SIZE0_LINEAR_OPTIONS, "tc_linear_options_init");
}

TC_API tc_status tc_linear_create(tc_layer **out, int64_t in_features,
                                  int64_t out_features,
                                  const tc_linear_options *opts) {
  static const char fn[] = "tc_linear_create";
  TC__CHECK_NULL(out, fn);
  tc_linear_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &linear_defaults,
                                    TC__SIZE0_LINEAR_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (in_features < 1 || out_features < 1)
    return tc__error(TC_EINVAL, "%s: features %lld->%lld must be >= 1", fn,
                     (long long)in_features, (long long)out_features);
  int64_t wn;
  if (__builtin_mul_overflow(in_features, out_features, &wn) ||
      wn > TC__MAX_NUMEL)
    return tc__error(TC_ESHAPE,
                     "%s: weight of %lld x %lld elements is over the tensor "
                     "limit of 2^48 elements",
                     fn, (long long)out_features, (long long)in_features);
  tc_layer *l;
  if ((st = tc__nn_layer_alloc(&l, &linear_kind, sizeof(linear_layer), fn)) !=
      TC_OK)
    return st;
  linear_layer *c = (linear_layer *)l;
  c->o = o;
  c->in_f = in_features, c->out_f = out_features;
  int64_t wshape[2] = {out_features, in_features};
  tc__nn_declare_param(l, "weight", wshape, 2);
  if (o.bias)
    tc__nn_declare_param(l, "bias", &out_features, 1);
  *out = l;
  return TC_OK;
}
