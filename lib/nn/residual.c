/*
 * residual.c - the CIFAR basic block and the plain block:
 *   y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
 * conv1: 3x3, stride s, pad 1; conv2: 3x3, pad 1; no biases. Shortcuts:
 *  - identity when the shape is kept (every option but NONE);
 *  - option A, as PyTorch CIFAR ResNets write it: F.pad the new channels (at
 * the end) then MaxPool2d(kernel s, stride s) - done as pool then
 * channel-offset add;
 *  - option A, subsample: F.pad the new channels (at the end), then
 *    x[:, :, ::s, ::s] (a common variant);
 *  - option B: child "shortcut" = Sequential(conv1x1 stride s, BN);
 *  - NONE: the plain block (no addition).
 * Children: conv1, bn1, conv2, bn2 [, shortcut] (PyTorch's order; ReLU has
 * no state so it is not a child). Both ReLUs run in place: the first on
 * bn1's output (conv2's input, which the ReLU's backward reads), the sum
 * and the second on bn2's output, which becomes the block's output y (no
 * BatchNorm backward reads its own output). Where the backend has the
 * fused batchnorm_relu_* slots, bn1 applies its ReLU itself, bn2 adds the
 * identity shortcut (or none) and applies the last ReLU, and in backward
 * both batch norms take the gradient through their ReLU, bn2 writing it
 * to the shortcut's destination too: the same bits, fewer passes over
 * memory (nn_bn_fuse_*). Gradients (N, out, OH, OW) ga,
 * gb (ping-ponged through the main path) and gs (wrt the sum) are views of
 * the model's gradient slots 0-2 at this depth. Option A max: the argmax
 * (N, in, OH, OW) is kept for backward; the pooled input (a forward
 * temporary) and its gradient use gradient slot 3. Where each of these
 * lives in an inference-arena forward, and when a child's output is
 * freed, is the plan's (plan.c): the block only says when it has
 * consumed a value (tc__nn_consumed) or is done with a temporary.
 */
#include "../options.h"
#include "nn_internal.h"

enum { C1 = 0, B1 = 1, C2 = 2, B2 = 3, SC = 4 };

typedef struct res_layer {
  tc_layer base;
  int64_t in_c, out_c, stride;
  int shortcut;   /* tc_shortcut */
  int identity;   /* shortcut is x itself */
  int64_t ch_off; /* option A: first channel x lands in (0: pad at end) */
  tc_tensor ga, gb, gs, pool_view; /* slot views (never destroyed) */
  tc_tensor *argmax;
} res_layer;

static int uses_pool(const res_layer *r) {
  return r->shortcut == TC_SHORTCUT_A_MAXPOOL && !r->identity && r->stride > 1;
}

/* What the shortcut is, from the options and the shapes. */
enum {
  SK_NONE,       /* the plain block */
  SK_IDENTITY,   /* x itself (the shape is kept) */
  SK_PROJECTION, /* option B: the "shortcut" child */
  SK_PAD,        /* option A: x subsampled, channels padded */
  SK_POOL_PAD    /* option A: x max-pooled, channels padded */
};

static int shortcut_kind(const res_layer *r) {
  if (r->shortcut == TC_SHORTCUT_NONE)
    return SK_NONE;
  if (r->identity)
    return SK_IDENTITY;
  if (r->base.nchildren > SC)
    return SK_PROJECTION;
  return uses_pool(r) ? SK_POOL_PAD : SK_PAD;
}

static tc_status res_infer(tc_layer *l, const char *fn) {
  res_layer *r = (res_layer *)l;
  char p[256], s[96];
  if (l->in_ndim != 3 || l->in_shape[0] != r->in_c)
    return tc__error(TC_ESHAPE,
                     "%s: %s (residual block %lld->%lld) "
                     "expects input (N, %lld, H, W), got per-sample %s",
                     fn, tc__nn_path(l, p, sizeof p), (long long)r->in_c,
                     (long long)r->out_c, (long long)r->in_c,
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  tc_status st = tc__nn_chain_infer(l->children, 4, l->in_shape, 3, fn);
  if (st != TC_OK)
    return st;
  l->out_ndim = 3;
  memcpy(l->out_shape, l->children[B2]->out_shape, sizeof l->out_shape);
  int64_t oh = l->out_shape[1], ow = l->out_shape[2];
  int64_t sh = oh, sw = ow; /* the shortcut's spatial size */
  if (l->nchildren > SC) {
    if ((st = tc__nn_infer(l->children[SC], l->in_shape, 3, fn)) != TC_OK)
      return st;
    sh = l->children[SC]->out_shape[1];
    sw = l->children[SC]->out_shape[2];
  } else if (uses_pool(r)) {
    sh = l->in_shape[1] / r->stride;
    sw = l->in_shape[2] / r->stride;
  } else if (r->shortcut != TC_SHORTCUT_NONE) {
    sh = (l->in_shape[1] + r->stride - 1) / r->stride;
    sw = (l->in_shape[2] + r->stride - 1) / r->stride;
  }
  if (sh != oh || sw != ow)
    return tc__error(TC_ESHAPE,
                     "%s: %s: shortcut gives %lldx%lld, the "
                     "main path %lldx%lld (odd input size with stride %lld)",
                     fn, tc__nn_path(l, p, sizeof p), (long long)sh,
                     (long long)sw, (long long)oh, (long long)ow,
                     (long long)r->stride);
  return TC_OK;
}

static tc_status res_plan(tc_layer *l, int64_t n) {
  res_layer *r = (res_layer *)l;
  tc_status st = TC_OK;
  for (int64_t i = 0; i < l->nchildren && st == TC_OK; i++)
    st = tc__nn_plan(l->children[i], n);
  int64_t shape[4] = {n, l->out_shape[0], l->out_shape[1], l->out_shape[2]};
  int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
  for (int i = 0; i < 3 && st == TC_OK; i++)
    st = tc__nn_grad_request(l, i, numel);
  if (st == TC_OK && uses_pool(r)) {
    shape[1] = r->in_c;
    st = tc__nn_ensure(&r->argmax, tc__nn_be(l), shape, 4, TC_INT32);
    if (st == TC_OK)
      st = tc__nn_grad_request(l, 3, numel / r->out_c * r->in_c);
  }
  return st;
}

/* (N, C, OH, OW) view of gradient slot `slot` in `view`. */
static tc_tensor *res_grad(res_layer *r, int slot, tc_tensor *view, int64_t n,
                           int64_t c) {
  const tc_layer *l = &r->base;
  int64_t shape[4] = {n, c, l->out_shape[1], l->out_shape[2]};
  return tc__nn_grad_view(&r->base, slot, view, shape, 4, TC_FLOAT32);
}

static tc_pool2d_args pool_args(const res_layer *r, int64_t n) {
  const tc_layer *l = &r->base;
  tc_pool2d_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = n, a.c = r->in_c, a.h = l->in_shape[1], a.w = l->in_shape[2];
  a.kh = a.kw = a.stride_h = a.stride_w = r->stride;
  a.out_h = l->out_shape[1], a.out_w = l->out_shape[2];
  a.argmax = r->argmax ? (int32_t *)tc_tensor_data(r->argmax) : NULL;
  return a;
}

/* (N, in, OH, OW) block of the sum, strided over `x`-like or pooled
 * source: src strides given; dst is the (N, out, OH, OW) tensor at the
 * channel offset. */
static tc_copy4d_args pad_args(const res_layer *r, int64_t n,
                               const int64_t src_stride[4], int to_big) {
  const tc_layer *l = &r->base;
  int64_t oh = l->out_shape[1], ow = l->out_shape[2];
  int64_t big[4] = {r->out_c * oh * ow, oh * ow, ow, 1};
  tc_copy4d_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.shape[0] = n, a.shape[1] = r->in_c, a.shape[2] = oh, a.shape[3] = ow;
  memcpy(to_big ? a.dst_stride : a.src_stride, big, sizeof big);
  memcpy(to_big ? a.src_stride : a.dst_stride, src_stride, 4 * sizeof(int64_t));
  return a;
}

static tc_status relu_inplace(tc_backend *be, tc_tensor *t) {
  tc_eltwise_args a = {sizeof a, t->numel, 0.f, 0.f, nn_f(t), NULL, nn_f(t)};
  return be->iface->relu_fwd(be->ctx, &a);
}

/* ---- forward ---- */

/* The backend slots the forward needs, checked before any work. */
static tc_status forward_slots(const res_layer *r, tc_backend *be) {
  int sk = shortcut_kind(r);
  tc_status st = NN_SLOT(be, relu_fwd);
  if (st == TC_OK && sk != SK_NONE)
    st = NN_SLOT(be, add);
  if (st == TC_OK && (sk == SK_PAD || sk == SK_POOL_PAD))
    st = NN_SLOT(be, copy4d);
  if (st == TC_OK && sk == SK_POOL_PAD)
    st = NN_SLOT(be, maxpool2d_fwd);
  return st;
}

/* conv1, bn1 and its ReLU (fused into bn1 where the backend can, else in
 * place on bn1's output), conv2: the main path up to bn2. */
static tc_status main_path(tc_layer *l, tc_tensor *x) {
  tc_layer **c = l->children;
  tc_status st = tc__nn_forward(c[C1], x);
  if (st != TC_OK)
    return st;
  int fused = tc__nn_bn_fuse_forward(c[B1], NULL);
  if ((st = tc__nn_forward(c[B1], c[C1]->y)) != TC_OK)
    return st;
  tc__nn_consumed(l, c[C1]->y, c[B1]->y);
  if ((!fused && (st = relu_inplace(tc__nn_be(l), c[B1]->y)) != TC_OK) ||
      (st = tc__nn_forward(c[C2], c[B1]->y)) != TC_OK)
    return st;
  tc__nn_consumed(l, c[B1]->y, c[C2]->y);
  return TC_OK;
}

/* y += other (the same shape). */
static tc_status add_into_y(res_layer *r, const tc_tensor *other) {
  tc_layer *l = &r->base;
  tc_backend *be = tc__nn_be(l);
  tc_eltwise_args a = {sizeof a,   l->y->numel, 1.f,       1.f,
                       nn_f(l->y), nn_f(other), nn_f(l->y)};
  return be->iface->add(be->ctx, &a);
}

/* Option B: y += shortcut(x), the conv1x1 + BN child. */
static tc_status add_projection(res_layer *r, tc_tensor *x) {
  tc_layer *l = &r->base, *sc = l->children[SC];
  tc_status st = tc__nn_forward(sc, x);
  if (st != TC_OK)
    return st;
  st = add_into_y(r, sc->y);
  tc__nn_consumed(l, sc->y, l->y);
  return st;
}

/* Option A: y[:, ch_off : ch_off + in] += src, an (N, in, OH, OW) block
 * read with src_stride (the padded channels add nothing). */
static tc_status add_padded(res_layer *r, int64_t n,
                            const int64_t src_stride[4], const float *src) {
  tc_layer *l = &r->base;
  tc_backend *be = tc__nn_be(l);
  tc_copy4d_args a = pad_args(r, n, src_stride, 1);
  a.src = src;
  a.dst = nn_f(l->y) + r->ch_off * l->out_shape[1] * l->out_shape[2];
  a.accumulate = 1;
  return be->iface->copy4d(be->ctx, &a);
}

/* Option A, subsample: the padded x[:, :, ::s, ::s]. */
static tc_status add_subsampled(res_layer *r, const tc_tensor *x) {
  const tc_layer *l = &r->base;
  int64_t h = l->in_shape[1], w = l->in_shape[2];
  int64_t xs[4] = {r->in_c * h * w, h * w, r->stride * w, r->stride};
  return add_padded(r, x->shape[0], xs, nn_f(x));
}

/* Option A, max pooling: the padded MaxPool2d(s, s)(x). The pooled input
 * is a forward temporary (gradient slot 3, which backward reuses for its
 * gradient); the argmax is kept for backward. */
static tc_status add_pooled(res_layer *r, const tc_tensor *x) {
  tc_layer *l = &r->base;
  tc_backend *be = tc__nn_be(l);
  int64_t n = x->shape[0], oh = l->out_shape[1], ow = l->out_shape[2];
  int64_t shape[4] = {n, r->in_c, oh, ow};
  tc_tensor *pooled, *am;
  tc_status st =
      tc__nn_temp(l, 3, &r->pool_view, shape, 4, TC_FLOAT32, &pooled);
  if (st != TC_OK || (st = tc__nn_saved(l, r->argmax, &am)) != TC_OK)
    return st;
  tc_pool2d_args pa = pool_args(r, n);
  pa.argmax = am ? (int32_t *)tc_tensor_data(am) : NULL;
  pa.x = nn_f(x);
  pa.y = nn_f(pooled);
  st = be->iface->maxpool2d_fwd(be->ctx, &pa);
  tc__nn_temp_done(l, am);
  if (st == TC_OK) {
    int64_t ps[4] = {r->in_c * oh * ow, oh * ow, ow, 1};
    st = add_padded(r, n, ps, nn_f(pooled));
  }
  tc__nn_temp_done(l, pooled);
  return st;
}

/* y += shortcut(x), whichever kind it is. */
static tc_status add_shortcut(res_layer *r, tc_tensor *x) {
  switch (shortcut_kind(r)) {
  case SK_IDENTITY:
    return add_into_y(r, x);
  case SK_PROJECTION:
    return add_projection(r, x);
  case SK_PAD:
    return add_subsampled(r, x);
  case SK_POOL_PAD:
    return add_pooled(r, x);
  default: /* SK_NONE */
    return TC_OK;
  }
}

/* Asks bn2 to add the shortcut and apply the last ReLU in its own pass,
 * which it can when the shortcut is x itself or absent (the others are
 * computed after bn2) and the backend has the fused slots; returns
 * whether it will. */
static int fuse_tail(res_layer *r, tc_tensor *x) {
  int sk = shortcut_kind(r);
  if (sk != SK_NONE && sk != SK_IDENTITY)
    return 0;
  return tc__nn_bn_fuse_forward(r->base.children[B2],
                                sk == SK_IDENTITY ? x : NULL);
}

/* The unfused tail: y = relu(y + shortcut(x)) in place, as separate ops. */
static tc_status sum_relu(res_layer *r, tc_tensor *x) {
  tc_status st = add_shortcut(r, x);
  return st == TC_OK ? relu_inplace(tc__nn_be(&r->base), r->base.y) : st;
}

/* The main path, then bn2 whose output becomes the block's y, then the sum
 * and the last ReLU in place: in bn2's pass (fused) or after it. */
static tc_status res_forward(tc_layer *l, tc_tensor *x) {
  res_layer *r = (res_layer *)l;
  tc_layer **c = l->children;
  tc_status st = forward_slots(r, tc__nn_be(l));
  if (st != TC_OK || (st = main_path(l, x)) != TC_OK)
    return st;
  int fused = fuse_tail(r, x);
  if ((st = tc__nn_forward(c[B2], c[C2]->y)) != TC_OK)
    return st;
  tc__nn_consumed(l, c[C2]->y, c[B2]->y);
  l->y = c[B2]->y;
  return fused ? TC_OK : sum_relu(r, x);
}

/* ---- backward ---- */

/* The shortcut's share of the input gradient, before the main path's. */
static tc_status shortcut_backward(res_layer *r, const tc_tensor *gs,
                                   tc_tensor *dx, int acc) {
  tc_layer *l = &r->base;
  tc_backend *be = tc__nn_be(l);
  int sk = shortcut_kind(r);
  if (sk == SK_PROJECTION)
    return tc__nn_backward(l->children[SC], gs, dx, acc);
  if (!dx || sk == SK_NONE)
    return TC_OK;
  if (sk == SK_IDENTITY)
    return tc__nn_pass_grad(be, gs, dx, acc);
  int64_t n = dx->shape[0], h = l->in_shape[1], w = l->in_shape[2];
  int64_t off = r->ch_off * l->out_shape[1] * l->out_shape[2];
  tc_status st = NN_SLOT(be, copy4d);
  if (st != TC_OK)
    return st;
  if (sk == SK_POOL_PAD) {
    if ((st = NN_SLOT(be, maxpool2d_bwd)) != TC_OK)
      return st;
    int64_t oh = l->out_shape[1], ow = l->out_shape[2];
    int64_t ps[4] = {r->in_c * oh * ow, oh * ow, ow, 1};
    tc_tensor *dpooled = res_grad(r, 3, &r->pool_view, n, r->in_c);
    tc_copy4d_args a = pad_args(r, n, ps, 0);
    a.src = nn_f(gs) + off;
    a.dst = nn_f(dpooled);
    if ((st = be->iface->copy4d(be->ctx, &a)) != TC_OK)
      return st;
    tc_pool2d_args pa = pool_args(r, n);
    pa.x = nn_f(l->x);
    pa.dy = nn_f(dpooled);
    pa.dx = nn_f(dx);
    pa.accumulate = acc;
    return be->iface->maxpool2d_bwd(be->ctx, &pa);
  }
  if (!acc && (st = tc__nn_fill(be, nn_f(dx), dx->numel, 0.f)) != TC_OK)
    return st;
  int64_t xs[4] = {r->in_c * h * w, h * w, r->stride * w, r->stride};
  tc_copy4d_args a = pad_args(r, n, xs, 0);
  a.src = nn_f(gs) + off;
  a.dst = nn_f(dx);
  a.accumulate = 1;
  return be->iface->copy4d(be->ctx, &a);
}

static tc_status res_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                              int acc) {
  res_layer *r = (res_layer *)l;
  tc_backend *be = tc__nn_be(l);
  tc_layer **c = l->children;
  tc_status st = NN_SLOT(be, relu_bwd);
  if (st != TC_OK)
    return st;
  int64_t n = dy->shape[0];
  tc_tensor *gs = res_grad(r, 2, &r->gs, n, r->out_c);
  tc_tensor *ga = res_grad(r, 0, &r->ga, n, r->out_c);
  tc_tensor *gb = res_grad(r, 1, &r->gb, n, r->out_c);
  int has_short = r->shortcut != TC_SHORTCUT_NONE;
  /* the last ReLU's gradient gs goes into bn2's backward pass, which also
   * writes it where the shortcut wants it: straight into dx for the
   * identity, else into gs for the shortcut's backward */
  tc_tensor *gdst = !has_short ? NULL : r->identity ? dx : gs;
  if (tc__nn_bn_fuse_backward(c[B2], l->y, gdst, r->identity ? acc : 0)) {
    if ((st = tc__nn_backward(c[B2], dy, ga, 0)) != TC_OK)
      return st;
    if (has_short && !r->identity &&
        (st = shortcut_backward(r, gs, dx, acc)) != TC_OK)
      return st;
  } else {
    tc_eltwise_args e = {sizeof e,   dy->numel, 0.f,     0.f,
                         nn_f(l->y), nn_f(dy),  nn_f(gs)};
    if ((st = be->iface->relu_bwd(be->ctx, &e)) != TC_OK)
      return st;
    if (has_short && (st = shortcut_backward(r, gs, dx, acc)) != TC_OK)
      return st;
    if ((st = tc__nn_backward(c[B2], gs, ga, 0)) != TC_OK)
      return st;
  }
  if ((st = tc__nn_backward(c[C2], ga, gb, 0)) != TC_OK)
    return st;
  /* the first ReLU's output is bn1's output (in place) */
  tc_tensor *g1 = gb;
  if (tc__nn_bn_fuse_backward(c[B1], c[B1]->y, NULL, 0)) {
    if ((st = tc__nn_backward(c[B1], gb, ga, 0)) != TC_OK)
      return st;
    g1 = ga;
  } else {
    tc_eltwise_args e = {sizeof e,       gb->numel, 0.f,     0.f,
                         nn_f(c[B1]->y), nn_f(gb),  nn_f(ga)};
    if ((st = be->iface->relu_bwd(be->ctx, &e)) != TC_OK ||
        (st = tc__nn_backward(c[B1], ga, gb, 0)) != TC_OK)
      return st;
  }
  return tc__nn_backward(c[C1], g1, dx, has_short && dx ? 1 : acc);
}

static void res_release(tc_layer *l) {
  tc_tensor_destroy(((res_layer *)l)->argmax);
}

static void res_describe(const tc_layer *l, nn_desc *d) {
  const res_layer *r = (const res_layer *)l;
  d->in_c = r->in_c, d->out_c = r->out_c, d->stride = r->stride;
  d->shortcut = r->shortcut, d->identity = r->identity;
}

static const nn_kind res_kind = {
    .name = "residual_block",
    .infer = res_infer,
    .plan = res_plan,
    .forward = res_forward,
    .backward = res_backward,
    .release = res_release,
    .describe = res_describe,
};

static const tc_residual_options res_defaults = TC_RESIDUAL_OPTIONS_INIT;

TC_API tc_status tc_residual_options_init(tc_residual_options *o,
                                          size_t struct_size) {
  return tc__options_init(o, struct_size, &res_defaults, sizeof *o,
                          TC__SIZE0_RESIDUAL_OPTIONS,
                          "tc_residual_options_init");
}

static tc_status conv3(tc_layer **out, int64_t in, int64_t outc, int64_t k,
                       int64_t stride, int64_t pad) {
  tc_conv2d_options o = TC_CONV2D_OPTIONS_INIT;
  o.stride_h = o.stride_w = stride;
  o.pad_h = o.pad_w = pad;
  o.bias = 0;
  return tc_conv2d_create(out, in, outc, k, &o);
}

TC_API tc_status tc_residual_block_create(tc_layer **out, int64_t in_channels,
                                          int64_t out_channels, int64_t stride,
                                          const tc_residual_options *opts) {
  static const char fn[] = "tc_residual_block_create";
  TC__CHECK_NULL(out, fn);
  tc_residual_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &res_defaults,
                                    TC__SIZE0_RESIDUAL_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (in_channels < 1 || out_channels < 1 || stride < 1 || o.shortcut < 0 ||
      o.shortcut > TC_SHORTCUT_NONE ||
      (o.shortcut <= TC_SHORTCUT_A_SUBSAMPLE && out_channels < in_channels))
    return tc__error(TC_EINVAL,
                     "%s: channels %lld->%lld and stride %lld "
                     "must be >= 1 (option A cannot shrink channels), "
                     "shortcut %d must be a tc_shortcut",
                     fn, (long long)in_channels, (long long)out_channels,
                     (long long)stride, (int)o.shortcut);
  tc_layer *l, *child = NULL;
  if ((st = tc__nn_layer_alloc(&l, &res_kind, sizeof(res_layer), fn)) != TC_OK)
    return st;
  res_layer *r = (res_layer *)l;
  r->in_c = in_channels, r->out_c = out_channels, r->stride = stride;
  r->shortcut = o.shortcut;
  r->identity = o.shortcut != TC_SHORTCUT_NONE && in_channels == out_channels &&
                stride == 1;
  r->ch_off = 0; /* F.pad(x, (0,0,0,0,0,out-in)): new channels last */
  static const char *names[4] = {"conv1", "bn1", "conv2", "bn2"};
  for (int i = 0; i < 4; i++) {
    if (i == 0)
      st = conv3(&child, in_channels, out_channels, 3, stride, 1);
    else if (i == 2)
      st = conv3(&child, out_channels, out_channels, 3, 1, 1);
    else
      st = tc_batchnorm2d_create(&child, out_channels, NULL);
    if (st == TC_OK)
      st = tc__nn_add_child(l, names[i], child, fn);
    if (st != TC_OK)
      goto fail;
  }
  if (o.shortcut == TC_SHORTCUT_B && !r->identity) {
    tc_layer *seq;
    if ((st = tc_sequential_create(&seq)) != TC_OK)
      goto fail;
    if ((st = tc__nn_add_child(l, "shortcut", seq, fn)) != TC_OK)
      goto fail;
    if ((st = conv3(&child, in_channels, out_channels, 1, stride, 0)) !=
            TC_OK ||
        (st = tc_sequential_add(seq, "0", child)) != TC_OK ||
        (st = tc_batchnorm2d_create(&child, out_channels, NULL)) != TC_OK ||
        (st = tc_sequential_add(seq, "1", child)) != TC_OK)
      goto fail;
  }
  *out = l;
  return TC_OK;
fail:
  tc__nn_layer_free(l);
  return st;
}
