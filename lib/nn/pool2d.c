/*
 * pool2d.c - MaxPool2d, AvgPool2d (torch.nn semantics, dilation 1) and
 * global average pooling (AdaptiveAvgPool2d(1)) over the backend's pooling
 * slots. x: (N,C,H,W) -> y: (N,C,OH,OW); max pooling keeps the argmax
 * (N,C,OH,OW) of each window for its backward.
 */
#include "../options.h"
#include "nn_internal.h"

typedef struct pool_layer {
  tc_layer base;
  tc_pool2d_options o;
  int64_t kh, kw;
  int max; /* 1 max, 0 average, -1 global average */
  tc_tensor *argmax;
} pool_layer;

/* PyTorch's pooling output size (pooling_output_shape). */
static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p,
                        int ceil_mode) {
  int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
  if (num < 0)
    return 0;
  int64_t out = num / s + 1;
  if (ceil_mode && (out - 1) * s >= in + p)
    out--;
  return out;
}

static tc_status pool_infer(tc_layer *l, const char *fn) {
  pool_layer *pl = (pool_layer *)l;
  char p[256], s[96];
  if (l->in_ndim != 3)
    return tc__error(TC_ESHAPE,
                     "%s: %s (%s) expects input (N, C, H, W), "
                     "got per-sample shape %s",
                     fn, tc__nn_path(l, p, sizeof p), l->kind->name,
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  l->out_ndim = 3;
  l->out_shape[0] = l->in_shape[0];
  if (pl->max < 0) {
    l->out_shape[1] = l->out_shape[2] = 1;
    return TC_OK;
  }
  l->out_shape[1] = pool_out(l->in_shape[1], pl->kh, pl->o.stride_h,
                             pl->o.pad_h, pl->o.ceil_mode);
  l->out_shape[2] = pool_out(l->in_shape[2], pl->kw, pl->o.stride_w,
                             pl->o.pad_w, pl->o.ceil_mode);
  if (l->out_shape[1] < 1 || l->out_shape[2] < 1)
    return tc__error(TC_ESHAPE,
                     "%s: %s: kernel %lldx%lld gives an empty "
                     "output on input %s",
                     fn, tc__nn_path(l, p, sizeof p), (long long)pl->kh,
                     (long long)pl->kw,
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  return TC_OK;
}

static tc_status pool_plan(tc_layer *l, int64_t n) {
  pool_layer *pl = (pool_layer *)l;
  tc_status st = tc__nn_plan_output(l, n);
  if (st == TC_OK && pl->max > 0) {
    int64_t shape[4] = {n, l->out_shape[0], l->out_shape[1], l->out_shape[2]};
    st = tc__nn_ensure(&pl->argmax, tc__nn_be(l), shape, 4, TC_INT32);
  }
  return st;
}

static tc_pool2d_args pool_args(const pool_layer *pl, int64_t n) {
  const tc_layer *l = &pl->base;
  tc_pool2d_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = n, a.c = l->in_shape[0], a.h = l->in_shape[1], a.w = l->in_shape[2];
  a.kh = pl->kh, a.kw = pl->kw;
  a.stride_h = pl->o.stride_h, a.stride_w = pl->o.stride_w;
  a.pad_h = pl->o.pad_h, a.pad_w = pl->o.pad_w;
  a.out_h = l->out_shape[1], a.out_w = l->out_shape[2];
  a.count_include_pad = pl->o.count_include_pad;
  a.argmax = pl->argmax ? (int32_t *)tc_tensor_data(pl->argmax) : NULL;
  return a;
}

static tc_status pool_forward(tc_layer *l, tc_tensor *x) {
  pool_layer *pl = (pool_layer *)l;
  tc_backend *be = tc__nn_be(l);
  tc_status st;
  int64_t n = x->shape[0];
  if (pl->max < 0) {
    if ((st = NN_SLOT(be, global_avgpool_fwd)) != TC_OK)
      return st;
    tc_gap_args g = {
        sizeof g, n,          l->in_shape[0], l->in_shape[1] * l->in_shape[2],
        nn_f(x),  nn_f(l->y), NULL,           NULL,
        0,        0};
    return be->iface->global_avgpool_fwd(be->ctx, &g);
  }
  st = pl->max ? NN_SLOT(be, maxpool2d_fwd) : NN_SLOT(be, avgpool2d_fwd);
  if (st != TC_OK)
    return st;
  tc_pool2d_args a = pool_args(pl, n);
  a.x = nn_f(x);
  a.y = nn_f(l->y);
  if (!pl->max)
    return be->iface->avgpool2d_fwd(be->ctx, &a);
  /* the argmax backward reads (a temporary in an inference forward) */
  tc_tensor *am;
  if ((st = tc__nn_saved(l, pl->argmax, &am)) != TC_OK)
    return st;
  a.argmax = am ? (int32_t *)tc_tensor_data(am) : NULL;
  st = be->iface->maxpool2d_fwd(be->ctx, &a);
  tc__nn_temp_done(l, am);
  return st;
}

static tc_status pool_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                               int acc) {
  pool_layer *pl = (pool_layer *)l;
  tc_backend *be = tc__nn_be(l);
  if (!dx)
    return TC_OK; /* no parameters */
  tc_status st;
  int64_t n = dy->shape[0];
  if (pl->max < 0) {
    if ((st = NN_SLOT(be, global_avgpool_bwd)) != TC_OK)
      return st;
    tc_gap_args g = {
        sizeof g, n,    l->in_shape[0], l->in_shape[1] * l->in_shape[2],
        NULL,     NULL, nn_f(dy),       nn_f(dx),
        acc,      0};
    return be->iface->global_avgpool_bwd(be->ctx, &g);
  }
  st = pl->max ? NN_SLOT(be, maxpool2d_bwd) : NN_SLOT(be, avgpool2d_bwd);
  if (st != TC_OK)
    return st;
  tc_pool2d_args a = pool_args(pl, n);
  a.x = nn_f(l->x);
  a.dy = nn_f(dy);
  a.dx = nn_f(dx);
  a.accumulate = acc;
  return pl->max ? be->iface->maxpool2d_bwd(be->ctx, &a)
                 : be->iface->avgpool2d_bwd(be->ctx, &a);
}

static void pool_release(tc_layer *l) {
  tc_tensor_destroy(((pool_layer *)l)->argmax);
}

static void pool_describe(const tc_layer *l, nn_desc *d) {
  const pool_layer *pl = (const pool_layer *)l;
  d->kh = pl->kh, d->kw = pl->kw;
  d->stride_h = pl->o.stride_h, d->stride_w = pl->o.stride_w;
  d->pad_h = pl->o.pad_h, d->pad_w = pl->o.pad_w;
  d->ceil_mode = pl->o.ceil_mode;
  d->count_include_pad = pl->o.count_include_pad;
}

static const nn_kind maxpool_kind = {
    .name = "maxpool2d",
    .infer = pool_infer,
    .plan = pool_plan,
    .forward = pool_forward,
    .backward = pool_backward,
    .release = pool_release,
    .produces = 1,
    .describe = pool_describe,
};
static const nn_kind avgpool_kind = {
    .name = "avgpool2d",
    .infer = pool_infer,
    .plan = pool_plan,
    .forward = pool_forward,
    .backward = pool_backward,
    .release = pool_release,
    .produces = 1,
    .describe = pool_describe,
};
static const nn_kind gap_kind = {
    .name = "global_avgpool2d",
    .infer = pool_infer,
    .plan = pool_plan,
    .forward = pool_forward,
    .backward = pool_backward,
    .release = pool_release,
    .produces = 1,
    .describe = pool_describe,
};

static const tc_pool2d_options pool_defaults = TC_POOL2D_OPTIONS_INIT;

TC_API tc_status tc_pool2d_options_init(tc_pool2d_options *o,
                                        size_t struct_size) {
  return tc__options_init(o, struct_size, &pool_defaults, sizeof *o,
                          TC__SIZE0_POOL2D_OPTIONS, "tc_pool2d_options_init");
}

static tc_status pool_create(tc_layer **out, int64_t k,
                             const tc_pool2d_options *opts, int max,
                             const char *fn) {
  TC__CHECK_NULL(out, fn);
  tc_pool2d_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &pool_defaults,
                                    TC__SIZE0_POOL2D_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  int64_t kw = o.kernel_w ? o.kernel_w : k;
  if (o.stride_h == 0)
    o.stride_h = k;
  if (o.stride_w == 0)
    o.stride_w = kw;
  if (k < 1 || kw < 1 || o.stride_h < 1 || o.stride_w < 1 || o.pad_h < 0 ||
      o.pad_w < 0 || 2 * o.pad_h > k || 2 * o.pad_w > kw)
    return tc__error(TC_EINVAL,
                     "%s: kernel %lldx%lld and stride "
                     "(%lld,%lld) must be >= 1, padding (%lld,%lld) between "
                     "0 and half the kernel",
                     fn, (long long)k, (long long)kw, (long long)o.stride_h,
                     (long long)o.stride_w, (long long)o.pad_h,
                     (long long)o.pad_w);
  tc_layer *l;
  st = tc__nn_layer_alloc(&l, max ? &maxpool_kind : &avgpool_kind,
                          sizeof(pool_layer), fn);
  if (st != TC_OK)
    return st;
  pool_layer *pl = (pool_layer *)l;
  pl->o = o;
  pl->kh = k, pl->kw = kw;
  pl->max = max;
  *out = l;
  return TC_OK;
}

TC_API tc_status tc_maxpool2d_create(tc_layer **out, int64_t kernel_size,
                                     const tc_pool2d_options *opts) {
  return pool_create(out, kernel_size, opts, 1, "tc_maxpool2d_create");
}

TC_API tc_status tc_avgpool2d_create(tc_layer **out, int64_t kernel_size,
                                     const tc_pool2d_options *opts) {
  return pool_create(out, kernel_size, opts, 0, "tc_avgpool2d_create");
}

TC_API tc_status tc_global_avgpool2d_create(tc_layer **out) {
  static const char fn[] = "tc_global_avgpool2d_create";
  tc_layer *l;
  tc_status st = tc__nn_layer_alloc(&l, &gap_kind, sizeof(pool_layer), fn);
  if (st != TC_OK)
    return st;
  ((pool_layer *)l)->max = -1;
  *out = l;
  return TC_OK;
}
