/*
 * batchnorm.c - BatchNorm1d / BatchNorm2d (torch.nn semantics): batch
 * statistics in training (biased variance to normalise, unbiased into
 * running_var), running statistics in evaluation when tracked, momentum
 * including the cumulative average (momentum None: 1/num_batches_tracked).
 *   x, y: (N, C, spatial)   weight, bias, running_*: (C)
 * num_batches_tracked is a device TC_INT64 scalar, incremented in place
 * by the backend's counter_add after each training forward, so the step
 * needs no host round trip and a checkpoint that loads it is honoured.
 * The cumulative average (momentum None) needs the count on the host to
 * make the momentum, and backends without counter_add have no other way:
 * both read it, increment it and write it back (8 bytes each way, a wait
 * for the device). Backward in evaluation mode
 * (running statistics) is built from fwd_infer, bias_grad and a batched GEMM,
 * as the backend's batchnorm_bwd only knows the training formula. A training
 * forward while the model has a sync-bn communicator takes batchnorm_sync.c's
 * path (the global batch's statistics), and its backward follows; the fused
 * BatchNorm+ReLU paths are declined meanwhile, as that path has no ReLU.
 */
#include <math.h>

#include "../options.h"
#include "batchnorm_sync.h"

typedef struct bn_layer {
  tc_layer base;
  tc_batchnorm_options o;
  int64_t c;
  int dims;                           /* 1: BatchNorm1d, 2: BatchNorm2d */
  int used_batch_stats;               /* how the last forward normalised */
  tc_tensor *save_mean, *save_invstd; /* (C) */
  tc_tensor *zeros;                   /* (C) eval backward */
  tc_tensor *tmp;                     /* (N*C) eval backward */
  tc_tensor *xhat;                    /* like x, eval backward */
  tc_tensor *gscr;                    /* (2C) dweight, dbias of one backward */
  /* fused epilogue requested for the next forward / backward (residual.c) */
  int fuse_fwd, fuse_bwd, fuse_acc_res;
  const tc_tensor *fuse_res, *fuse_y;
  tc_tensor *fuse_dres;
  /* the ReLU's bits from the last fused training forward (backend API 3),
   * read by the fused backward instead of y: 1/32 of its bytes; mask_n is
   * that forward's batch (0: no valid mask) */
  tc_tensor *relu_mask;
  int64_t mask_n;
  nn_bn_sync sync; /* host state of the synchronised path */
  int used_sync;   /* the last forward took it */
} bn_layer;

/* The sync-bn communicator while the layer's model has one, else NULL. */
static tc_comm *bn_sync_comm(const tc_layer *l) {
  return l->model ? tc__nn_model_sync_bn(l->model) : NULL;
}

/* relu_mask sized for a batch of n: (n*C planes) x ceil(spatial/8) bytes,
 * held as floats. */
static tc_status bn_ensure_mask(bn_layer *b, int64_t n, int64_t spatial,
                                uint8_t **out) {
  int64_t bytes = n * b->c * ((spatial + 7) / 8);
  int64_t floats = (bytes + 3) / 4;
  tc_status st =
      tc__nn_ensure(&b->relu_mask, tc__nn_be(&b->base), &floats, 1, TC_FLOAT32);
  *out = st == TC_OK ? (uint8_t *)nn_f(b->relu_mask) : NULL;
  return st;
}

/* the slot a training-mode forward (or one without running statistics)
 * uses, and the evaluation one */
static int bn_uses_running(const bn_layer *b) {
  return !tc__nn_model_training(b->base.model) && b->o.track_running_stats;
}

int tc__nn_bn_fuse_forward(tc_layer *l, const tc_tensor *residual) {
  bn_layer *b = (bn_layer *)l;
  const tc_backend_iface *it = tc__nn_be(l)->iface;
  b->fuse_fwd = 0;
  if (!bn_sync_comm(l))
    b->fuse_fwd = bn_uses_running(b)
                      ? TC__HAS_SLOT(it, batchnorm_relu_fwd_infer)
                      : TC__HAS_SLOT(it, batchnorm_relu_fwd_train);
  b->fuse_res = residual;
  return b->fuse_fwd;
}

static const nn_kind bn2d_kind;

int tc__nn_bn_fusable(const tc_layer *l) {
  /* not BatchNorm1d: planes of one value take the fused kernels' scalar
   * paths, slower than a separate vectorised ReLU (LeNet-BN's fc layers:
   * 0.125 -> 0.18 ms per step each) */
  if (l->kind != &bn2d_kind || bn_sync_comm(l))
    return 0;
  const tc_backend_iface *it = tc__nn_be(l)->iface;
  return TC__HAS_SLOT(it, batchnorm_relu_fwd_train) &&
         TC__HAS_SLOT(it, batchnorm_relu_fwd_infer) &&
         TC__HAS_SLOT(it, batchnorm_relu_bwd);
}

int tc__nn_bn_fuse_backward(tc_layer *l, const tc_tensor *y, tc_tensor *dres,
                            int acc_res) {
  bn_layer *b = (bn_layer *)l;
  b->fuse_bwd = b->used_batch_stats && !b->used_sync && !bn_sync_comm(l) &&
                TC__HAS_SLOT(tc__nn_be(l)->iface, batchnorm_relu_bwd);
  b->fuse_y = y;
  b->fuse_dres = dres;
  b->fuse_acc_res = acc_res;
  return b->fuse_bwd;
}

static tc_status bn_infer(tc_layer *l, const char *fn) {
  bn_layer *b = (bn_layer *)l;
  char p[256], s[96];
  int ok =
      b->dims == 2 ? l->in_ndim == 3 : (l->in_ndim == 1 || l->in_ndim == 2);
  if (!ok || l->in_shape[0] != b->c)
    return tc__error(TC_ESHAPE,
                     "%s: %s (batchnorm%dd, %lld features) "
                     "expects input %s, got per-sample shape %s",
                     fn, tc__nn_path(l, p, sizeof p), b->dims, (long long)b->c,
                     b->dims == 2 ? "(N, C, H, W)" : "(N, C) or (N, C, L)",
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  l->out_ndim = l->in_ndim;
  memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
  return TC_OK;
}

static tc_status bn_init(tc_layer *l, tc_rng *rng) {
  (void)rng;
  bn_layer *b = (bn_layer *)l;
  tc_backend *be = tc__nn_be(l);
  /* the batch statistics are per channel: sized here so an inference
   * forward (no plan) without running statistics has them */
  tc_status st = tc__nn_ensure(&b->save_mean, be, &b->c, 1, TC_FLOAT32);
  if (st == TC_OK)
    st = tc__nn_ensure(&b->save_invstd, be, &b->c, 1, TC_FLOAT32);
  if (st == TC_OK && b->o.affine) {
    st = tc__nn_fill(be, nn_f(l->param[0]), b->c, 1.f);
    if (st == TC_OK)
      st = tc__nn_fill(be, nn_f(l->param[1]), b->c, 0.f);
  }
  if (st == TC_OK && b->o.track_running_stats) {
    st = tc__nn_fill(be, nn_f(l->buffer[0]), b->c, 0.f);
    if (st == TC_OK)
      st = tc__nn_fill(be, nn_f(l->buffer[1]), b->c, 1.f);
    if (st == TC_OK)
      st = be->iface->memset(be->ctx, tc_tensor_data(l->buffer[2]), 0, 8);
  }
  return st;
}

static tc_status bn_plan(tc_layer *l, int64_t n) {
  bn_layer *b = (bn_layer *)l;
  tc_status st = tc__nn_plan_output(l, n);
  if (st == TC_OK)
    st = tc__nn_ensure(&b->save_mean, tc__nn_be(l), &b->c, 1, TC_FLOAT32);
  if (st == TC_OK)
    st = tc__nn_ensure(&b->save_invstd, tc__nn_be(l), &b->c, 1, TC_FLOAT32);
  return st;
}

static int64_t spatial_of(const tc_layer *l) {
  int64_t s = 1;
  for (int i = 1; i < l->in_ndim; i++)
    s *= l->in_shape[i];
  return s;
}

static tc_batchnorm_args bn_args(bn_layer *b, int64_t n) {
  tc_layer *l = &b->base;
  tc_batchnorm_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = n, a.c = b->c, a.spatial = spatial_of(l);
  a.eps = b->o.eps;
  a.gamma = b->o.affine ? nn_f(l->param[0]) : NULL;
  a.beta = b->o.affine ? nn_f(l->param[1]) : NULL;
  a.save_mean = nn_f(b->save_mean);
  a.save_invstd = nn_f(b->save_invstd);
  return a;
}

static nn_bn_sync_args bn_sync_args(bn_layer *b, tc_comm *comm) {
  tc_layer *l = &b->base;
  nn_bn_sync_args a;
  memset(&a, 0, sizeof a);
  a.comm = comm;
  a.c = b->c, a.spatial = spatial_of(l);
  a.eps = b->o.eps, a.momentum = b->o.momentum;
  if (b->o.affine) {
    a.gamma = l->param[0], a.beta = l->param[1];
    a.dgamma = l->grad[0], a.dbeta = l->grad[1];
  }
  if (b->o.track_running_stats) {
    a.running_mean = l->buffer[0], a.running_var = l->buffer[1];
    a.nbt = l->buffer[2];
  }
  return a;
}

static tc_status bn_forward(tc_layer *l, tc_tensor *x) {
  bn_layer *b = (bn_layer *)l;
  tc_backend *be = tc__nn_be(l);
  int training = tc__nn_model_training(l->model);
  int track = b->o.track_running_stats;
  int64_t n = x->shape[0];
  tc_batchnorm_args a = bn_args(b, n);
  a.x = nn_f(x);
  a.y = nn_f(l->y);
  int fused = b->fuse_fwd;
  b->fuse_fwd = 0;
  if (fused)
    a.residual = b->fuse_res ? nn_f(b->fuse_res) : NULL;
  tc_status st;
  /* not fused: tc__nn_bn_fuse_forward declines while sync is on */
  tc_comm *comm = training ? bn_sync_comm(l) : NULL;
  if (comm && !fused) {
    nn_bn_sync_args sa = bn_sync_args(b, comm);
    b->used_sync = 0, b->mask_n = 0;
    st = tc__nn_bn_sync_forward(&b->sync, l, &sa, x, l->y);
    if (st == TC_OK)
      b->used_batch_stats = 1, b->used_sync = 1;
    return st;
  }
  b->used_sync = 0;
  if (!training && track) {
    if ((st = NN_SLOT(be, batchnorm_fwd_infer)) != TC_OK)
      return st;
    a.running_mean = nn_f(l->buffer[0]);
    a.running_var = nn_f(l->buffer[1]);
    st = fused ? be->iface->batchnorm_relu_fwd_infer(be->ctx, &a)
               : be->iface->batchnorm_fwd_infer(be->ctx, &a);
    if (st == TC_OK)
      b->used_batch_stats = 0, b->mask_n = 0;
    return st;
  }
  if ((st = NN_SLOT(be, batchnorm_fwd_train)) != TC_OK)
    return st;
  if (n * a.spatial <= 1) {
    char p[256];
    return tc__error(TC_ESHAPE,
                     "tc_model_forward: %s: batch statistics "
                     "need more than 1 value per channel (N=%lld, spatial "
                     "%lld)",
                     tc__nn_path(l, p, sizeof p), (long long)n,
                     (long long)a.spatial);
  }
  int64_t nbt = 0;
  a.momentum = b->o.momentum;
  /* on the device when the backend can and the momentum does not need the
   * count */
  int count_dev = training && track && b->o.momentum >= 0.f &&
                  TC__HAS_SLOT(be->iface, counter_add);
  if (training && track) {
    a.running_mean = nn_f(l->buffer[0]);
    a.running_var = nn_f(l->buffer[1]);
  }
  if (training && track && !count_dev) {
    st = be->iface->copy_d2h(be->ctx, &nbt, tc_tensor_data(l->buffer[2]),
                             sizeof nbt);
    if (st != TC_OK)
      return st;
    nbt++;
    if (b->o.momentum < 0.f)
      a.momentum = (float)(1.0 / (double)nbt);
  }
  b->mask_n = 0;
  if (fused && (st = bn_ensure_mask(b, n, a.spatial, &a.relu_mask)) != TC_OK)
    return st;
  st = fused ? be->iface->batchnorm_relu_fwd_train(be->ctx, &a)
             : be->iface->batchnorm_fwd_train(be->ctx, &a);
  if (st != TC_OK)
    return st;
  b->used_batch_stats = 1;
  b->mask_n = a.relu_mask ? n : 0;
  if (count_dev) {
    tc_counter_args ca = {sizeof ca, 1, 1,
                          (int64_t *)tc_tensor_data(l->buffer[2])};
    st = be->iface->counter_add(be->ctx, &ca);
  } else if (training && track) {
    st = be->iface->copy_h2d(be->ctx, tc_tensor_data(l->buffer[2]), &nbt,
                             sizeof nbt);
  }
  return st;
}

/* Evaluation-mode backward: y = (x - rm) * g / sqrt(rv + eps) + beta, so
 * dx = dy * g / sqrt(rv + eps), dbeta = sum dy, dgamma = sum dy * xhat. */
static tc_status bn_backward_eval(bn_layer *b, const tc_tensor *dy,
                                  tc_tensor *dx, int acc) {
  tc_layer *l = &b->base;
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, batchnorm_fwd_infer);
  if (st == TC_OK && b->o.affine)
    st = NN_SLOT(be, bias_grad);
  if (st == TC_OK && b->o.affine)
    st = NN_SLOT(be, gemm);
  if (st != TC_OK)
    return st;
  int64_t n = dy->shape[0];
  tc_batchnorm_args a = bn_args(b, n);
  if ((st = tc__nn_ensure(&b->zeros, be, &b->c, 1, TC_FLOAT32)) != TC_OK)
    return st;
  if ((st = tc__nn_fill(be, nn_f(b->zeros), b->c, 0.f)) != TC_OK)
    return st;
  a.running_var = nn_f(l->buffer[1]);
  if (b->o.affine) {
    int64_t nc = n * b->c;
    if ((st = tc__nn_ensure(&b->tmp, be, &nc, 1, TC_FLOAT32)) != TC_OK ||
        (st = tc__nn_ensure(&b->xhat, be, l->x->shape, l->x->ndim,
                            TC_FLOAT32)) != TC_OK)
      return st;
    tc_bias_args bg = {sizeof bg, n,    b->c,     a.spatial,
                       NULL,      NULL, nn_f(dy), nn_f(l->grad[1]),
                       1,         0};
    if ((st = be->iface->bias_grad(be->ctx, &bg)) != TC_OK)
      return st;
    tc_batchnorm_args h = a;
    h.gamma = h.beta = NULL;
    h.running_mean = nn_f(l->buffer[0]);
    h.x = nn_f(l->x);
    h.y = nn_f(b->xhat);
    if ((st = be->iface->batchnorm_fwd_infer(be->ctx, &h)) != TC_OK)
      return st;
    /* tmp[i] = dot(dy row i, xhat row i), rows of `spatial` floats */
    tc_gemm_args g;
    memset(&g, 0, sizeof g);
    g.struct_size = sizeof g;
    g.m = 1, g.n = 1, g.k = a.spatial, g.alpha = 1.f, g.beta = 0.f;
    g.a = nn_f(dy), g.lda = a.spatial, g.stride_a = a.spatial;
    g.b = nn_f(b->xhat), g.ldb = 1, g.stride_b = a.spatial;
    g.c = nn_f(b->tmp), g.ldc = 1, g.stride_c = 1;
    g.batch = nc;
    if ((st = be->iface->gemm(be->ctx, &g)) != TC_OK)
      return st;
    tc_bias_args gg = {sizeof gg,        n, b->c, 1, NULL, NULL, nn_f(b->tmp),
                       nn_f(l->grad[0]), 1, 0};
    if ((st = be->iface->bias_grad(be->ctx, &gg)) != TC_OK)
      return st;
  }
  if (!dx)
    return TC_OK;
  tc_tensor *target = dx;
  if (acc && (st = tc__nn_scratch(l, dx, &target)) != TC_OK)
    return st;
  a.beta = NULL;
  a.running_mean = nn_f(b->zeros);
  a.x = nn_f(dy);
  a.y = nn_f(target);
  if ((st = be->iface->batchnorm_fwd_infer(be->ctx, &a)) != TC_OK)
    return st;
  return acc ? tc__nn_pass_grad(be, target, dx, 1) : TC_OK;
}

static tc_status bn_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                             int acc) {
  bn_layer *b = (bn_layer *)l;
  int fused = b->fuse_bwd;
  b->fuse_bwd = 0;
  if (!b->used_batch_stats)
    return bn_backward_eval(b, dy, dx, acc);
  if (b->used_sync) {
    nn_bn_sync_args sa = bn_sync_args(b, bn_sync_comm(l));
    return tc__nn_bn_sync_backward(&b->sync, l, &sa, l->x, dy, dx, acc);
  }
  tc_backend *be = tc__nn_be(l);
  tc_status st = NN_SLOT(be, batchnorm_bwd);
  if (st != TC_OK)
    return st;
  tc_status (*bwd)(void *, const tc_batchnorm_args *) =
      fused ? be->iface->batchnorm_relu_bwd : be->iface->batchnorm_bwd;
  tc_tensor *target = dx;
  if (!dx) {
    /* the backend always writes dx; give it scratch */
    if ((st = tc__nn_scratch(l, dy, &target)) != TC_OK)
      return st;
    acc = 0;
  }
  tc_batchnorm_args a = bn_args(b, dy->shape[0]);
  a.x = nn_f(l->x);
  a.dy = nn_f(dy);
  a.dx = nn_f(target);
  a.dgamma = b->o.affine ? nn_f(l->grad[0]) : NULL;
  a.dbeta = b->o.affine ? nn_f(l->grad[1]) : NULL;
  a.accumulate = 1;
  if (fused) {
    a.y = (float *)nn_f(b->fuse_y);
    a.dresidual = b->fuse_dres ? nn_f(b->fuse_dres) : NULL;
    a.accumulate_residual = b->fuse_acc_res;
    if (b->mask_n == dy->shape[0])
      a.relu_mask = (uint8_t *)nn_f(b->relu_mask);
  }
  if (acc)
    return bwd(be->ctx, &a);
  /* one accumulate flag covers dx and the parameter gradients, which must
   * accumulate: dx is overwritten and the parameter gradients go through
   * scratch (2C floats), which beats clearing and re-reading all of dx */
  if (!b->o.affine) {
    a.accumulate = 0;
    return bwd(be->ctx, &a);
  }
  if ((st = NN_SLOT(be, axpy)) != TC_OK)
    return st;
  int64_t c2 = 2 * b->c;
  if ((st = tc__nn_ensure(&b->gscr, be, &c2, 1, TC_FLOAT32)) != TC_OK)
    return st;
  a.dgamma = nn_f(b->gscr);
  a.dbeta = nn_f(b->gscr) + b->c;
  a.accumulate = 0;
  if ((st = bwd(be->ctx, &a)) != TC_OK)
    return st;
  for (int i = 0; i < 2; i++) {
    tc_eltwise_args e = {
        sizeof e,        b->c, 1.f, 0.f, nn_f(b->gscr) + i * b->c, NULL,
        nn_f(l->grad[i])};
    if ((st = be->iface->axpy(be->ctx, &e)) != TC_OK)
      return st;
  }
  return TC_OK;
}

static void bn_release(tc_layer *l) {
  bn_layer *b = (bn_layer *)l;
  tc_tensor_destroy(b->save_mean);
  tc_tensor_destroy(b->save_invstd);
  tc_tensor_destroy(b->zeros);
  tc_tensor_destroy(b->tmp);
  tc_tensor_destroy(b->xhat);
  tc_tensor_destroy(b->gscr);
  tc_tensor_destroy(b->relu_mask);
  tc__nn_bn_sync_release(&b->sync);
}

static void bn_describe(const tc_layer *l, nn_desc *d) {
  const bn_layer *b = (const bn_layer *)l;
  d->in_c = d->out_c = b->c;
  d->eps = b->o.eps;
  d->affine = b->o.affine, d->track = b->o.track_running_stats;
}

static const nn_kind bn1d_kind = {
    .name = "batchnorm1d",
    .infer = bn_infer,
    .init = bn_init,
    .plan = bn_plan,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
    .produces = 1,
    .describe = bn_describe,
};
static const nn_kind bn2d_kind = {
    .name = "batchnorm2d",
    .infer = bn_infer,
    .init = bn_init,
    .plan = bn_plan,
    .forward = bn_forward,
    .backward = bn_backward,
    .release = bn_release,
    .produces = 1,
    .describe = bn_describe,
};

static const tc_batchnorm_options bn_defaults = TC_BATCHNORM_OPTIONS_INIT;

TC_API tc_status tc_batchnorm_options_init(tc_batchnorm_options *o,
                                           size_t struct_size) {
  return tc__options_init(o, struct_size, &bn_defaults, sizeof *o,
                          TC__SIZE0_BATCHNORM_OPTIONS,
                          "tc_batchnorm_options_init");
}

static tc_status bn_create(tc_layer **out, int64_t c,
                           const tc_batchnorm_options *opts, int dims,
                           const char *fn) {
  TC__CHECK_NULL(out, fn);
  tc_batchnorm_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &bn_defaults,
                                    TC__SIZE0_BATCHNORM_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (c < 1 || !(o.eps > 0.f) || !isfinite(o.eps) ||
      !((o.momentum >= 0.f && o.momentum <= 1.f) ||
        o.momentum == TC_BN_MOMENTUM_CUMULATIVE))
    return tc__error(TC_EINVAL,
                     "%s: num_features %lld must be >= 1, eps "
                     "%g > 0, momentum %g in [0, 1] or "
                     "TC_BN_MOMENTUM_CUMULATIVE",
                     fn, (long long)c, (double)o.eps, (double)o.momentum);
  tc_layer *l;
  st = tc__nn_layer_alloc(&l, dims == 2 ? &bn2d_kind : &bn1d_kind,
                          sizeof(bn_layer), fn);
  if (st != TC_OK)
    return st;
  bn_layer *b = (bn_layer *)l;
  b->o = o;
  b->c = c;
  b->dims = dims;
  if (o.affine) {
    tc__nn_declare_param(l, "weight", &c, 1);
    tc__nn_declare_param(l, "bias", &c, 1);
  }
  if (o.track_running_stats) {
    tc__nn_declare_buffer(l, "running_mean", &c, 1, TC_FLOAT32);
    tc__nn_declare_buffer(l, "running_var", &c, 1, TC_FLOAT32);
    tc__nn_declare_buffer(l, "num_batches_tracked", NULL, 0, TC_INT64);
  }
  *out = l;
  return TC_OK;
}

TC_API tc_status tc_batchnorm1d_create(tc_layer **out, int64_t num_features,
                                       const tc_batchnorm_options *opts) {
  return bn_create(out, num_features, opts, 1, "tc_batchnorm1d_create");
}

TC_API tc_status tc_batchnorm2d_create(tc_layer **out, int64_t num_features,
                                       const tc_batchnorm_options *opts) {
  return bn_create(out, num_features, opts, 2, "tc_batchnorm2d_create");
}

/* For the data-parallel wrapper's deterministic mode, which replays the
 * running-statistics updates itself (lib/dist/ddp.c). */
int tc__nn_bn_momentum(const tc_layer *l, float *out) {
  if (l->kind != &bn1d_kind && l->kind != &bn2d_kind)
    return 0;
  *out = ((const bn_layer *)l)->o.momentum;
  return 1;
}
