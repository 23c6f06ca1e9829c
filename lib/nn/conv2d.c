/*
 * conv2d.c - the Conv2d layer (torch.nn.Conv2d, groups = 1) over the
 * backend's conv2d slots. Parameters: weight (K,C,R,S), bias (K).
 * The workspace is the model's, shared by every convolution; its size is
 * asked for at planning time.
 */
#include "../options.h"
#include "nn_internal.h"

typedef struct conv_layer {
  tc_layer base;
  tc_conv2d_options o;
  int64_t in_c, out_c, kh, kw;
} conv_layer;

static tc_status conv_infer(tc_layer *l, const char *fn) {
  conv_layer *c = (conv_layer *)l;
  char p[256], s[96];
  if (l->in_ndim != 3 || l->in_shape[0] != c->in_c)
    return tc__error(TC_ESHAPE,
                     "%s: %s (conv2d %lld->%lld) expects input "
                     "(N, %lld, H, W), got (N, %s...)",
                     fn, tc__nn_path(l, p, sizeof p), (long long)c->in_c,
                     (long long)c->out_c, (long long)c->in_c,
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s) +
                         1);
  int64_t eh =
      l->in_shape[1] + 2 * c->o.pad_h - c->o.dilation_h * (c->kh - 1) - 1;
  int64_t ew =
      l->in_shape[2] + 2 * c->o.pad_w - c->o.dilation_w * (c->kw - 1) - 1;
  if (eh < 0 || ew < 0)
    return tc__error(TC_ESHAPE,
                     "%s: %s: kernel %lldx%lld does not fit the "
                     "padded input %s",
                     fn, tc__nn_path(l, p, sizeof p), (long long)c->kh,
                     (long long)c->kw,
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  l->out_ndim = 3;
  l->out_shape[0] = c->out_c;
  l->out_shape[1] = eh / c->o.stride_h + 1;
  l->out_shape[2] = ew / c->o.stride_w + 1;
  return TC_OK;
}

static tc_status conv_init(tc_layer *l, tc_rng *rng) {
  conv_layer *c = (conv_layer *)l;
  tc_status st = tc__nn_init_default_weight(l->param[0], rng);
  if (st == TC_OK && c->o.bias)
    st = tc__nn_init_default_bias(l->param[1], c->in_c * c->kh * c->kw, rng);
  return st;
}

static tc_conv2d_args conv_args(const conv_layer *c, int64_t n) {
  const tc_layer *l = &c->base;
  tc_conv2d_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = n;
  a.c = c->in_c, a.h = l->in_shape[1], a.w = l->in_shape[2];
  a.k = c->out_c, a.r = c->kh, a.s = c->kw;
  a.stride_h = c->o.stride_h, a.stride_w = c->o.stride_w;
  a.pad_h = c->o.pad_h, a.pad_w = c->o.pad_w;
  a.dil_h = c->o.dilation_h, a.dil_w = c->o.dilation_w;
  a.out_h = l->out_shape[1], a.out_w = l->out_shape[2];
  return a;
}

static tc_status conv_workspace(tc_layer *l, int64_t n, size_t *out) {
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, conv2d_workspace_size);
  if (st != TC_OK)
    return st;
  tc_conv2d_args a = conv_args((conv_layer *)l, n);
  return be->iface->conv2d_workspace_size(be->ctx, &a, out);
}

static tc_status conv_plan(tc_layer *l, int64_t n) {
  return tc__nn_plan_output(l, n);
}

static tc_status conv_forward(tc_layer *l, tc_tensor *x) {
  conv_layer *c = (conv_layer *)l;
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, conv2d_fwd);
  if (st != TC_OK)
    return st;
  tc_conv2d_args a = conv_args(c, x->shape[0]);
  a.x = nn_f(x);
  a.wt = nn_f(l->param[0]);
  a.bias = c->o.bias ? nn_f(l->param[1]) : NULL;
  a.y = nn_f(l->y);
  a.workspace = tc__nn_model_workspace(l->model, &a.workspace_size);
  return be->iface->conv2d_fwd(be->ctx, &a);
}

static tc_status conv_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                               int acc) {
  conv_layer *c = (conv_layer *)l;
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, conv2d_bwd_filter);
  if (st == TC_OK && c->o.bias)
    st = NN_SLOT(be, conv2d_bwd_bias);
  if (st == TC_OK && dx)
    st = NN_SLOT(be, conv2d_bwd_data);
  if (st != TC_OK)
    return st;
  tc_conv2d_args a = conv_args(c, dy->shape[0]);
  a.x = nn_f(l->x);
  a.wt = nn_f(l->param[0]);
  a.dy = nn_f(dy);
  a.workspace = tc__nn_model_workspace(l->model, &a.workspace_size);
  a.accumulate = 1; /* parameter gradients accumulate */
  a.dw = nn_f(l->grad[0]);
  if ((st = be->iface->conv2d_bwd_filter(be->ctx, &a)) != TC_OK)
    return st;
  if (c->o.bias) {
    a.db = nn_f(l->grad[1]);
    if ((st = be->iface->conv2d_bwd_bias(be->ctx, &a)) != TC_OK)
      return st;
  }
  if (!dx)
    return TC_OK;
  a.accumulate = acc;
  a.dx = nn_f(dx);
  return be->iface->conv2d_bwd_data(be->ctx, &a);
}

static void conv_describe(const tc_layer *l, nn_desc *d) {
  const conv_layer *c = (const conv_layer *)l;
  d->in_c = c->in_c, d->out_c = c->out_c, d->kh = c->kh, d->kw = c->kw;
  d->stride_h = c->o.stride_h, d->stride_w = c->o.stride_w;
  d->pad_h = c->o.pad_h, d->pad_w = c->o.pad_w;
  d->dil_h = c->o.dilation_h, d->dil_w = c->o.dilation_w;
  d->bias = c->o.bias;
}

static const nn_kind conv_kind = {
    .name = "conv2d",
    .infer = conv_infer,
    .init = conv_init,
    .plan = conv_plan,
    .forward = conv_forward,
    .backward = conv_backward,
    .workspace = conv_workspace,
    .produces = 1,
    .describe = conv_describe,
};

static const tc_conv2d_options conv_defaults = TC_CONV2D_OPTIONS_INIT;

TC_API tc_status tc_conv2d_options_init(tc_conv2d_options *o,
                                        size_t struct_size) {
  return tc__options_init(o, struct_size, &conv_defaults, sizeof *o,
                          TC__SIZE0_CONV2D_OPTIONS, "tc_conv2d_options_init");
}

TC_API tc_status tc_conv2d_create(tc_layer **out, int64_t in_channels,
                                  int64_t out_channels, int64_t kernel_size,
                                  const tc_conv2d_options *opts) {
  static const char fn[] = "tc_conv2d_create";
  TC__CHECK_NULL(out, fn);
  tc_conv2d_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &conv_defaults,
                                    TC__SIZE0_CONV2D_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  int64_t kw = o.kernel_w ? o.kernel_w : kernel_size;
  if (in_channels < 1 || out_channels < 1 || kernel_size < 1 || kw < 1 ||
      o.stride_h < 1 || o.stride_w < 1 || o.dilation_h < 1 ||
      o.dilation_w < 1 || o.pad_h < 0 || o.pad_w < 0 || o.kernel_w < 0)
    return tc__error(TC_EINVAL,
                     "%s: channels %lld->%lld, kernel %lldx%lld, "
                     "stride (%lld,%lld), dilation (%lld,%lld) must be >= 1 "
                     "and padding (%lld,%lld) >= 0",
                     fn, (long long)in_channels, (long long)out_channels,
                     (long long)kernel_size, (long long)kw,
                     (long long)o.stride_h, (long long)o.stride_w,
                     (long long)o.dilation_h, (long long)o.dilation_w,
                     (long long)o.pad_h, (long long)o.pad_w);
  tc_layer *l;
  if ((st = tc__nn_layer_alloc(&l, &conv_kind, sizeof(conv_layer), fn)) !=
      TC_OK)
    return st;
  conv_layer *c = (conv_layer *)l;
  c->o = o;
  c->in_c = in_channels, c->out_c = out_channels;
  c->kh = kernel_size, c->kw = kw;
  int64_t wshape[4] = {out_channels, in_channels, kernel_size, kw};
  tc__nn_declare_param(l, "weight", wshape, 4);
  if (o.bias)
    tc__nn_declare_param(l, "bias", &out_channels, 1);
  *out = l;
  return TC_OK;
}
