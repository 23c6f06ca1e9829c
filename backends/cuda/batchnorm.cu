/*
 * batchnorm.cu - batch normalisation over (n, spatial) per channel:
 * training forward (batch statistics, saved mean and inverse std, running
 * statistics), inference forward, and backward.
 *
 * PyTorch's semantics: biased variance normalises, the unbiased one
 * (count/(count-1)) enters running_var; running = (1-m)*running + m*batch.
 * Statistics are two-pass (mean, then mean squared deviation) through
 * cu_channel_reduce, whose fixed-order sums make every run identical.
 * The fused batchnorm_relu_* slots run the same kernels as the separate
 * slots and then an epilogue with relu_fwd's and add's arithmetic
 * (y = relu(bn + residual), the ReLU's bit mask), or, backward, a prologue with relu_bwd's rule (g = y > 0 ? dy : 0, from y or
 * the mask) before batchnorm_bwd's kernels: the separate slots' bits by
 * construction, minus their launches and the core's extra passes.
 * x, y, dy, dx, residual, dresidual: (n, c, sp); per-channel buffers: (c);
 * relu_mask: n*c planes of ceil(sp/8) bytes.
 */
#include <math.h>

#include <stddef.h>

#include "cuda_be.h"

/* Per channel: invstd from var; save_* and running statistics. */
__global__ void k_bn_finalize(const float *mean, const float *var,
                              float *invstd, int64_t c, int64_t count,
                              float eps, float momentum, float *save_mean,
                              float *save_invstd, float *running_mean,
                              float *running_var) {
  CU_FOR(ch, c) {
    float is = 1.f / sqrtf(var[ch] + eps);
    invstd[ch] = is;
    if (save_mean)
      save_mean[ch] = mean[ch];
    if (save_invstd)
      save_invstd[ch] = is;
    /* in double, as the CPU backend; each buffer on its own */
    double mom = (double)momentum;
    if (running_mean)
      running_mean[ch] = (float)((1.0 - mom) * (double)running_mean[ch] +
                                 mom * (double)mean[ch]);
    if (running_var) {
      double unbiased = (double)var[ch] * ((double)count /
                                           (double)(count - 1));
      running_var[ch] = (float)((1.0 - mom) * (double)running_var[ch] +
                                mom * unbiased);
    }
  }
}

/* y = (x - mean) * invstd * gamma + beta; use_var: invstd = 1/sqrt(v+eps) */
__global__ void k_bn_apply(const float *x, float *y, const float *mean,
                           const float *scale, const float *gamma,
                           const float *beta, int64_t n, int64_t c,
                           int64_t sp, int use_var, float eps) {
  int64_t total = n * c * sp;
  CU_FOR(i, total) {
    int64_t ch = (i / sp) % c;
    float is = use_var ? 1.f / sqrtf(scale[ch] + eps) : scale[ch];
    float v = (x[i] - mean[ch]) * is;
    if (gamma)
      v *= gamma[ch];
    if (beta)
      v += beta[ch];
    y[i] = v;
  }
}

__global__ void k_bn_bwd_dx(const float *x, const float *dy, float *dx,
                            const float *mean, const float *invstd,
                            const float *gamma, const float *sdy,
                            const float *sdyx, int64_t n, int64_t c,
                            int64_t sp, int accumulate) {
  int64_t total = n * c * sp;
  float inv_count = 1.f / (float)(n * sp);
  CU_FOR(i, total) {
    int64_t ch = (i / sp) % c;
    float is = invstd[ch];
    float xhat = (x[i] - mean[ch]) * is;
    float g = gamma ? gamma[ch] : 1.f;
    float v = g * is *
              (dy[i] - sdy[ch] * inv_count - xhat * sdyx[ch] * inv_count);
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

__global__ void k_bn_bwd_params(const float *sdy, const float *sdyx,
                                float *dgamma, float *dbeta, int64_t c,
                                int accumulate) {
  CU_FOR(ch, c) {
    if (dgamma)
      dgamma[ch] = accumulate ? dgamma[ch] + sdyx[ch] : sdyx[ch];
    if (dbeta)
      dbeta[ch] = accumulate ? dbeta[ch] + sdy[ch] : sdy[ch];
  }
}

/* Batch statistics, optional saves and running update, then y. */
static tc_status bn_batch_forward(cu_ctx *c, const tc_batchnorm_args *a,
                                  int track) {
  int64_t count = a->n * a->spatial;
  float *stats = NULL; /* mean (c), var (c), invstd (c) */
  tc_status st = cu_scratch(c, (void **)&stats,
                            (size_t)(3 * a->c) * sizeof(float));
  if (st != TC_OK)
    return st;
  float *mean = stats, *var = stats + a->c, *invstd = stats + 2 * a->c;
  float inv_count = 1.f / (float)count;
  st = cu_channel_reduce(c, CU_CH_SUM_X, a->n, a->c, a->spatial, a->x, NULL,
                         NULL, NULL, inv_count, 0, mean, NULL);
  if (st == TC_OK)
    st = cu_channel_reduce(c, CU_CH_SUM_SQDEV, a->n, a->c, a->spatial, a->x,
                           NULL, mean, NULL, inv_count, 0, var, NULL);
  if (st == TC_OK) {
    k_bn_finalize<<<cu_blocks(a->c), CU_THREADS, 0, c->stream>>>(
        mean, var, invstd, a->c, count, a->eps, a->momentum, a->save_mean,
        a->save_invstd, track ? a->running_mean : NULL,
        track ? a->running_var : NULL);
    st = cu_launched("batchnorm: statistics");
  }
  if (st == TC_OK) {
    k_bn_apply<<<cu_blocks(a->n * a->c * a->spatial), CU_THREADS, 0,
                 c->stream>>>(a->x, a->y, mean, invstd, a->gamma, a->beta,
                              a->n, a->c, a->spatial, 0, 0.f);
    st = cu_launched("batchnorm: normalise");
  }
  cu_release_block(c, stats);
  return st;
}

/* ---- the fused ReLU (and residual) ---------------------------------- */

/* y = relu(y + res) (res NULL: relu(y)), add's and relu_fwd's arithmetic */
__device__ inline float bn_relu1(float v, const float *res, int64_t i) {
  if (res)
    v = 1.f * v + 1.f * res[i];
  return cu_relu1(v);
}

__global__ void k_bn_relu(float *y, const float *res, int64_t total) {
  CU_FOR(i, total) y[i] = bn_relu1(y[i], res, i);
}

/* One thread per mask byte: its 8 values of a plane of sp, and the bits. */
__global__ void k_bn_relu_mask(float *y, const float *res, uint8_t *mask,
                               int64_t planes, int64_t sp) {
  int64_t mps = (sp + 7) / 8;
  CU_FOR(t, planes * mps) {
    int64_t pl = t / mps, e0 = (t % mps) * 8;
    int64_t e1 = e0 + 8 < sp ? e0 + 8 : sp;
    unsigned bits = 0;
    for (int64_t e = e0; e < e1; e++) {
      int64_t i = pl * sp + e;
      float v = bn_relu1(y[i], res, i);
      y[i] = v;
      bits |= (unsigned)(v > 0.f) << (e - e0);
    }
    mask[t] = (uint8_t)bits;
  }
}

static tc_status bn_relu_epilogue(cu_ctx *c, const tc_batchnorm_args *a) {
  int64_t total = a->n * a->c * a->spatial;
  uint8_t *mask = a->relu_mask;
  if (mask) {
    int64_t planes = a->n * a->c, mps = (a->spatial + 7) / 8;
    k_bn_relu_mask<<<cu_blocks(planes * mps), CU_THREADS, 0, c->stream>>>(
        a->y, a->residual, mask, planes, a->spatial);
  } else {
    k_bn_relu<<<cu_blocks(total), CU_THREADS, 0, c->stream>>>(a->y, a->residual,
                                                              total);
  }
  return cu_launched("batchnorm_relu: epilogue");
}

/* g = (y > 0) ? dy : 0 (relu_bwd's rule; from the mask when given) into g,
 * and into dres (added when acc_res) unless dres is NULL or is g. */
__global__ void k_bn_relu_grad(const float *dy, const float *y,
                               const uint8_t *mask, int64_t sp, int64_t total,
                               float *g, float *dres, int acc_res) {
  int64_t mps = (sp + 7) / 8;
  CU_FOR(i, total) {
    int on;
    if (mask) {
      int64_t pl = i / sp, e = i % sp;
      on = (mask[pl * mps + e / 8] >> (e % 8)) & 1;
    } else {
      on = y[i] > 0.f;
    }
    float v = on ? dy[i] : 0.f;
    if (g != dres)
      g[i] = v;
    if (dres)
      dres[i] = acc_res ? dres[i] + 1.f * v : v;
  }
}

static tc_status bn_fwd_train(void *ctx, const tc_batchnorm_args *a,
                              const char *fn, const char *who, int relu) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_batchnorm_args(
      ctx, a, who,
      relu ? TC__OP_BATCHNORM_RELU_FWD_TRAIN : TC__OP_BATCHNORM_FWD_TRAIN);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK; /* nothing to normalise; running stats stay (PyTorch) */
  if ((st = cu_enter(c, fn)) != TC_OK)
    return st;
  st = bn_batch_forward(c, a, 1);
  if (st == TC_OK && relu)
    st = bn_relu_epilogue(c, a);
  return st;
}

static tc_status bn_fwd_infer(void *ctx, const tc_batchnorm_args *a,
                              const char *fn, const char *who, int relu) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_batchnorm_args(
      ctx, a, who,
      relu ? TC__OP_BATCHNORM_RELU_FWD_INFER : TC__OP_BATCHNORM_FWD_INFER);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK;
  if ((st = cu_enter(c, fn)) != TC_OK)
    return st;
  k_bn_apply<<<cu_blocks(a->n * a->c * a->spatial), CU_THREADS, 0,
               c->stream>>>(a->x, a->y, a->running_mean, a->running_var,
                            a->gamma, a->beta, a->n, a->c, a->spatial, 1,
                            a->eps);
  st = cu_launched(fn);
  if (st == TC_OK && relu)
    st = bn_relu_epilogue(c, a);
  return st;
}

static tc_status bn_bwd(void *ctx, const tc_batchnorm_args *a, const char *fn,
                        const char *who) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_batchnorm_args(ctx, a, who, TC__OP_BATCHNORM_BWD);
  if (st != TC_OK || a->c == 0)
    return st;
  if (a->n * a->spatial == 0) { /* empty sums: zero (or keep) dgamma/dbeta */
    if (a->accumulate || (!a->dgamma && !a->dbeta))
      return TC_OK;
    if ((st = cu_enter(c, fn)) != TC_OK)
      return st;
    if (a->dgamma)
      st = cu_check(cudaMemsetAsync(a->dgamma, 0, (size_t)a->c *
                                    sizeof(float), c->stream), fn);
    if (st == TC_OK && a->dbeta)
      st = cu_check(cudaMemsetAsync(a->dbeta, 0, (size_t)a->c *
                                    sizeof(float), c->stream), fn);
    return st;
  }
  if ((st = cu_enter(c, fn)) != TC_OK)
    return st;
  float *sums = NULL; /* sum dy (c), sum dy*xhat (c) */
  if ((st = cu_scratch(c, (void **)&sums,
                       (size_t)(2 * a->c) * sizeof(float))) != TC_OK)
    return st;
  float *sdy = sums, *sdyx = sums + a->c;
  st = cu_channel_reduce(c, CU_CH_SUM_DY_XHAT, a->n, a->c, a->spatial, a->x,
                         a->dy, a->save_mean, a->save_invstd, 1.f, 0, sdy,
                         sdyx);
  if (st == TC_OK) {
    k_bn_bwd_dx<<<cu_blocks(a->n * a->c * a->spatial), CU_THREADS, 0,
                  c->stream>>>(a->x, a->dy, a->dx, a->save_mean,
                               a->save_invstd, a->gamma, sdy, sdyx, a->n,
                               a->c, a->spatial, a->accumulate);
    st = cu_launched(fn);
  }
  if (st == TC_OK && (a->dgamma || a->dbeta)) {
    k_bn_bwd_params<<<cu_blocks(a->c), CU_THREADS, 0, c->stream>>>(
        sdy, sdyx, a->dgamma, a->dbeta, a->c, a->accumulate);
    st = cu_launched(fn);
  }
  cu_release_block(c, sums);
  return st;
}

/* The fused backward: relu_bwd's gradient g, then batchnorm_bwd with
 * dy = g. g is written straight into dresidual when that is overwritten,
 * else into scratch. */
static tc_status bn_relu_bwd(void *ctx, const tc_batchnorm_args *a,
                             const char *fn, const char *who) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st =
      tc__check_batchnorm_args(ctx, a, who, TC__OP_BATCHNORM_RELU_BWD);
  if (st != TC_OK || a->c == 0)
    return st;
  if (a->n * a->spatial == 0)
    return bn_bwd(ctx, a, fn, who);
  uint8_t *mask = a->relu_mask;
  if ((st = cu_enter(c, fn)) != TC_OK)
    return st;
  int64_t total = a->n * a->c * a->spatial;
  float *g = NULL, *scratch = NULL;
  if (a->dresidual && !a->accumulate_residual) {
    g = a->dresidual;
  } else {
    if ((st = cu_scratch(c, (void **)&scratch,
                         (size_t)total * sizeof(float))) != TC_OK)
      return st;
    g = scratch;
  }
  k_bn_relu_grad<<<cu_blocks(total), CU_THREADS, 0, c->stream>>>(
      a->dy, mask ? NULL : a->y, mask, a->spatial, total, g, a->dresidual,
      a->accumulate_residual);
  st = cu_launched(fn);
  if (st == TC_OK) {
    tc_batchnorm_args b = *a;
    b.dy = g;
    st = bn_bwd(ctx, &b, fn, who);
  }
  cu_release_block(c, scratch);
  return st;
}

/* the slot's name for cu_enter and the like, and for the shared checks */
#define BN_NAMES(slot) slot, CU_FN(slot)

tc_status cu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_train(ctx, a, BN_NAMES("batchnorm_fwd_train"), 0);
}

tc_status cu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_infer(ctx, a, BN_NAMES("batchnorm_fwd_infer"), 0);
}

tc_status cu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a) {
  return bn_bwd(ctx, a, BN_NAMES("batchnorm_bwd"));
}

tc_status cu_batchnorm_relu_fwd_train(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_train(ctx, a, BN_NAMES("batchnorm_relu_fwd_train"), 1);
}

tc_status cu_batchnorm_relu_fwd_infer(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_infer(ctx, a, BN_NAMES("batchnorm_relu_fwd_infer"), 1);
}

tc_status cu_batchnorm_relu_bwd(void *ctx, const tc_batchnorm_args *a) {
  return bn_relu_bwd(ctx, a, BN_NAMES("batchnorm_relu_bwd"));
}
