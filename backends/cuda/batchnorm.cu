/*
 * batchnorm.cu - batch normalisation over (n, spatial) per channel:
 * training forward (batch statistics, saved mean and inverse std, running
 * statistics), inference forward, and backward.
 *
 * PyTorch's semantics: biased variance normalises, the unbiased one
 * (count/(count-1)) enters running_var; running = (1-m)*running + m*batch.
 * Statistics are two-pass (mean, then mean squared deviation) through
 * cu_channel_reduce, whose fixed-order sums make every run identical.
 * x, y, dy, dx: (n, c, sp); per-channel buffers: (c).
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

#define BN_DIM_MAX ((int64_t)1 << 40)
#define BN_TOTAL_MAX ((int64_t)1 << 50)

/* The CPU backend's checks (backends/cpu/batchnorm.c), in its order. */
static tc_status bn_check(void *ctx, const char *fn,
                          const tc_batchnorm_args *a) {
  /* the fields after `residual` belong to API version 2's fused slots,
   * which this backend leaves to the core: a version-1 caller's args end
   * there */
  const size_t v1 = offsetof(tc_batchnorm_args, residual);
  if (!a)
    return tc_backend_error(TC_EINVAL, "cuda %s: args is NULL", fn);
  if (a->struct_size < v1)
    return tc_backend_error(TC_EINVAL, "cuda %s: struct_size %zu < %zu", fn,
                            a->struct_size, v1);
  if (!ctx)
    return tc_backend_error(TC_EINVAL, "cuda %s: ctx is NULL", fn);
  int64_t m, total;
  if (a->n < 0 || a->c < 0 || a->spatial < 0 || a->n > BN_DIM_MAX ||
      a->c > BN_DIM_MAX || a->spatial > BN_DIM_MAX ||
      !cu_mul_ok(a->n, a->spatial, &m) || !cu_mul_ok(m, a->c, &total) ||
      total > BN_TOTAL_MAX)
    return tc_backend_error(TC_EINVAL, "cuda %s: bad size (n %lld, c %lld, "
                            "spatial %lld): need each >= 0 and the total to "
                            "fit", fn, (long long)a->n, (long long)a->c,
                            (long long)a->spatial);
  if (!(a->eps >= 0.f) || isinf(a->eps))
    return tc_backend_error(TC_EINVAL, "cuda %s: eps %g must be finite and "
                            ">= 0", fn, (double)a->eps);
  return TC_OK;
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

tc_status cu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  static const char fn[] = "batchnorm_fwd_train";
  tc_status st = bn_check(ctx, fn, a);
  if (st != TC_OK)
    return st;
  if (a->n * a->spatial == 1)
    return tc_backend_error(TC_EINVAL, "cuda %s: batch statistics need more "
                            "than 1 value per channel (n %lld, spatial "
                            "%lld)", fn, (long long)a->n,
                            (long long)a->spatial);
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK; /* nothing to normalise; running stats stay (PyTorch) */
  if (!a->x || !a->y || !a->save_mean || !a->save_invstd)
    return tc_backend_error(TC_EINVAL, "cuda %s: argument '%s' is NULL", fn,
                            !a->x           ? "x"
                            : !a->y         ? "y"
                            : !a->save_mean ? "save_mean"
                                            : "save_invstd");
  if ((st = cu_enter(c, "batchnorm_fwd_train")) != TC_OK)
    return st;
  return bn_batch_forward(c, a, 1);
}

tc_status cu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  static const char fn[] = "batchnorm_fwd_infer";
  tc_status st = bn_check(ctx, fn, a);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK;
  if (!a->x || !a->y || !a->running_mean || !a->running_var)
    return tc_backend_error(TC_EINVAL, "cuda %s: argument '%s' is NULL "
                            "(inference needs running statistics)", fn,
                            !a->x              ? "x"
                            : !a->y            ? "y"
                            : !a->running_mean ? "running_mean"
                                               : "running_var");
  if ((st = cu_enter(c, fn)) != TC_OK)
    return st;
  k_bn_apply<<<cu_blocks(a->n * a->c * a->spatial), CU_THREADS, 0,
               c->stream>>>(a->x, a->y, a->running_mean, a->running_var,
                            a->gamma, a->beta, a->n, a->c, a->spatial, 1,
                            a->eps);
  return cu_launched("batchnorm_fwd_infer");
}

tc_status cu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  static const char fn[] = "batchnorm_bwd";
  tc_status st = bn_check(ctx, fn, a);
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
  if (!a->x || !a->dy || !a->dx || !a->save_mean || !a->save_invstd)
    return tc_backend_error(TC_EINVAL, "cuda %s: argument '%s' is NULL", fn,
                            !a->x           ? "x"
                            : !a->dy        ? "dy"
                            : !a->dx        ? "dx"
                            : !a->save_mean ? "save_mean"
                                            : "save_invstd");
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
    st = cu_launched("batchnorm_bwd: dx");
  }
  if (st == TC_OK && (a->dgamma || a->dbeta)) {
    k_bn_bwd_params<<<cu_blocks(a->c), CU_THREADS, 0, c->stream>>>(
        sdy, sdyx, a->dgamma, a->dbeta, a->c, a->accumulate);
    st = cu_launched("batchnorm_bwd: dgamma/dbeta");
  }
  cu_release_block(c, sums);
  return st;
}
