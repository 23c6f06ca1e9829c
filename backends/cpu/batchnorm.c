/*
 * batchnorm.c - the CPU backend's batch normalisation over (n, spatial) per
 * channel (torch.nn.BatchNorm1d/2d): training forward, inference forward
 * and the training-mode backward. x, y, dy, dx: (n,c,spatial). This file
 * holds the op entry points, their checks, the split of the work and the
 * per-channel coefficients; the tasks and their kernels are in
 * batchnorm_kern.c.
 *
 *  train:  mean, biased var over the n*spatial values of each channel (in
 *          double); save_mean = mean, save_invstd = 1/sqrt(var + eps);
 *          y = (x - mean) * invstd * gamma + beta; when given,
 *          running_mean = (1-m)*running_mean + m*mean and
 *          running_var = (1-m)*running_var + m*var*M/(M-1), M = n*spatial.
 *          M == 1 is an error, as in PyTorch's training mode.
 *  infer:  y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
 *  bwd:    with xhat = (x - save_mean) * save_invstd,
 *          dbeta = sum dy, dgamma = sum dy*xhat,
 *          dx = gamma*invstd * (dy - dbeta/M - xhat*dgamma/M).
 * gamma/beta NULL mean affine off (1 and 0); dgamma/dbeta NULL are not
 * written. `accumulate` adds into dx, dgamma and dbeta.
 *
 * The fused slots (batchnorm_relu_*) run the same passes with an epilogue:
 * forward y = relu(y + residual), backward dy taken as (y > 0) ? dy : 0
 * and stored into dresidual. Their elementwise operations are those of the
 * separate relu/add slots in the same order, so the bits are the same; the
 * ReLU and the residual add cost no pass of their own.
 *
 * Work: channels are taken in blocks. Within a block, the M values of a
 * channel are split into `chunks` fixed ranges of (image, spatial) and the
 * channels into `groups`; a task sums one range of one group, walking
 * image by image over the group's planes, so it reads memory in order
 * (a walk channel by channel jumps a plane stride at each image, which
 * defeats the hardware prefetch). Partial sums go to the caller's stack
 * and are combined in chunk order; then the elementwise pass runs over
 * (image, channel) planes in order: the pool gives each thread one
 * contiguous run of tasks, so a thread applies the images its sums just
 * read (the last planes first, as before, sent them to the other core).
 * Chunk and group counts depend only on the shapes, so results are the
 * same bits whatever the thread count, and nothing here allocates. The
 * forward sums data shifted by the channel's first value, which lies near
 * the mean, so that s2 - s1^2/M does not cancel even for a large mean.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../op_check.h"
#include "batchnorm.h"

/* tc__cpu_parallel_for, or the tasks in order here for a small forward. */
static void bn_run(void *ctx, const tc_batchnorm_args *a, int bwd,
                   int64_t tasks, cpu_task_fn fn, void *arg) {
  if (!bwd && a->n * a->c * a->spatial <= BN_SERIAL_MAX) {
    for (int64_t t = 0; t < tasks; t++)
      fn(arg, t);
    return;
  }
  tc__cpu_parallel_for(ctx, tasks, fn, arg);
}

static void bn_job_init(bn_job *j, const tc_batchnorm_args *a, int bwd) {
  memset(j, 0, sizeof *j);
  j->a = a;
  j->isa = tc__cpu_isa();
  j->m = a->n * a->spatial;
  j->bwd = bwd;
}

/* The split of block [c0, c0+cb): a function of the shapes only. Chunks
 * first (they keep a task's walk contiguous), then channel groups for the
 * tasks still wanted or for the lanes' limit. */
static void bn_block_split(bn_job *j) {
  int64_t cb = j->cb, t = j->m * cb / BN_TASK_ELEMS;
  t = t < 1 ? 1 : min64(t, BN_TARGET_TASKS);
  int64_t k = min64(min64(t, BN_PART_MAX / cb), j->m / BN_CHUNK_MIN);
  j->chunks = k < 1 ? 1 : k;
  int64_t g = (t + j->chunks - 1) / j->chunks;
  if (g < (cb + BN_GROUP_MAX - 1) / BN_GROUP_MAX)
    g = (cb + BN_GROUP_MAX - 1) / BN_GROUP_MAX;
  g = min64(g, cb);
  j->gsize = (cb + g - 1) / g;
  j->groups = (cb + j->gsize - 1) / j->gsize;
}

/* Runs the reduction over block [c0, c0+cb); then, for each block channel
 * q, s[q] = the two sums over all chunks, in chunk order. */
static void bn_block_sums(void *ctx, bn_job *j, double (*part)[2],
                          double (*sums)[2]) {
  bn_block_split(j);
  j->part = part;
  bn_run(ctx, j->a, j->bwd, j->chunks * j->groups, tc__cpu_bn_sums_task, j);
  for (int64_t q = 0; q < j->cb; q++) {
    double s1 = 0, s2 = 0;
    for (int64_t k = 0; k < j->chunks; k++)
      s1 += part[k * j->cb + q][0], s2 += part[k * j->cb + q][1];
    sums[q][0] = s1, sums[q][1] = s2;
  }
}

/* From channel ci's mean and sum of squared deviations: the saved and
 * running statistics, and the coefficients of y = (x - mu)*alpha + shift. */
static void bn_fwd_coef(const bn_job *j, int64_t ci, double mean, double m2,
                        float *mu, float *alpha, float *shift) {
  const tc_batchnorm_args *a = j->a;
  double mom = a->momentum, unbias = (double)j->m / (double)(j->m - 1);
  double var = m2 / (double)j->m;
  double invstd = 1.0 / sqrt(var + (double)a->eps);
  a->save_mean[ci] = (float)mean;
  a->save_invstd[ci] = (float)invstd;
  if (a->running_mean)
    a->running_mean[ci] =
        (float)((1.0 - mom) * a->running_mean[ci] + mom * mean);
  if (a->running_var)
    a->running_var[ci] =
        (float)((1.0 - mom) * a->running_var[ci] + mom * var * unbias);
  double g = a->gamma ? a->gamma[ci] : 1.0;
  double b = a->beta ? a->beta[ci] : 0.0;
  *mu = (float)mean;
  *alpha = (float)(invstd * g);
  *shift = (float)b;
}

/* From channel ci's sums: dgamma, dbeta and the coefficients of
 * dx (+)= (dy - gmean - (x - mu)*k) * scale. */
static void bn_bwd_coef(const bn_job *j, int64_t ci, double sdy, double sdx,
                        float *mu, float *k, float *gmean, float *scale) {
  const tc_batchnorm_args *a = j->a;
  double is = a->save_invstd[ci];
  double g = a->gamma ? a->gamma[ci] : 1.0;
  double dg = sdx * is;
  if (a->dgamma)
    a->dgamma[ci] = (float)(a->accumulate ? a->dgamma[ci] + dg : dg);
  if (a->dbeta)
    a->dbeta[ci] = (float)(a->accumulate ? a->dbeta[ci] + sdy : sdy);
  *mu = a->save_mean[ci];
  *k = (float)(sdx * is * is / (double)j->m);
  *gmean = (float)(sdy / (double)j->m);
  *scale = (float)(is * g);
}

static int64_t bn_apply_init(bn_job *j) {
  j->planes = j->a->n * j->cb;
  int64_t per = BN_APPLY_ELEMS / (j->a->spatial > 0 ? j->a->spatial : 1);
  j->per_task = per < 1 ? 1 : per;
  j->apply_tasks = (j->planes + j->per_task - 1) / j->per_task;
  return j->apply_tasks;
}

static tc_status bn_fwd_train(void *ctx, const tc_batchnorm_args *a,
                              const char *fn, int relu) {
  tc_status st = tc__check_batchnorm_args(ctx, a, fn,
                                          relu ? TC__OP_BATCHNORM_RELU_FWD_TRAIN
                                               : TC__OP_BATCHNORM_FWD_TRAIN);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK; /* nothing to normalise; running stats stay (PyTorch) */
  bn_job j;
  bn_job_init(&j, a, 0);
  j.relu = relu;
  j.res = relu ? a->residual : NULL;
  j.mask = relu ? a->relu_mask : NULL;
  j.mps = (a->spatial + 7) / 8;
  double part[BN_PART_MAX][2], sums[BN_BLOCK_C][2];
  float mu[BN_BLOCK_C], alpha[BN_BLOCK_C], shift[BN_BLOCK_C];
  j.mu = mu, j.alpha = alpha, j.shift = shift;
  double m = (double)j.m;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_BLOCK_C, a->c - j.c0);
    bn_block_sums(ctx, &j, part, sums);
    for (int64_t q = 0; q < j.cb; q++) {
      int64_t ci = j.c0 + q;
      double s1 = sums[q][0], s2 = sums[q][1];
      double mean = (double)a->x[ci * a->spatial] + s1 / m;
      double m2 = fmax(s2 - s1 * s1 / m, 0.0);
      bn_fwd_coef(&j, ci, mean, m2, &mu[q], &alpha[q], &shift[q]);
    }
    bn_run(ctx, a, 0, bn_apply_init(&j), tc__cpu_bn_apply_task, &j);
  }
  return TC_OK;
}

tc_status tc__cpu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_train(ctx, a, "cpu_batchnorm_fwd_train", 0);
}

tc_status tc__cpu_batchnorm_relu_fwd_train(void *ctx,
                                           const tc_batchnorm_args *a) {
  return bn_fwd_train(ctx, a, "cpu_batchnorm_relu_fwd_train", 1);
}

static tc_status bn_fwd_infer(void *ctx, const tc_batchnorm_args *a,
                              const char *fn, int relu) {
  tc_status st = tc__check_batchnorm_args(ctx, a, fn,
                                          relu ? TC__OP_BATCHNORM_RELU_FWD_INFER
                                               : TC__OP_BATCHNORM_FWD_INFER);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK;
  bn_job j;
  memset(&j, 0, sizeof j);
  j.a = a;
  j.isa = tc__cpu_isa();
  j.relu = relu;
  j.res = relu ? a->residual : NULL;
  float mu[BN_BLOCK_C], alpha[BN_BLOCK_C], shift[BN_BLOCK_C];
  j.mu = mu, j.alpha = alpha, j.shift = shift;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_BLOCK_C, a->c - j.c0);
    for (int64_t q = 0; q < j.cb; q++) {
      int64_t ci = j.c0 + q;
      double g = a->gamma ? a->gamma[ci] : 1.0;
      double b = a->beta ? a->beta[ci] : 0.0;
      double is = 1.0 / sqrt((double)a->running_var[ci] + (double)a->eps);
      mu[q] = a->running_mean[ci];
      alpha[q] = (float)(is * g);
      shift[q] = (float)b;
    }
    bn_run(ctx, a, 0, bn_apply_init(&j), tc__cpu_bn_apply_task, &j);
  }
  return TC_OK;
}

tc_status tc__cpu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_infer(ctx, a, "cpu_batchnorm_fwd_infer", 0);
}

tc_status tc__cpu_batchnorm_relu_fwd_infer(void *ctx,
                                           const tc_batchnorm_args *a) {
  return bn_fwd_infer(ctx, a, "cpu_batchnorm_relu_fwd_infer", 1);
}

static tc_status bn_bwd(void *ctx, const tc_batchnorm_args *a, const char *fn,
                        int relu) {
  tc_status st = tc__check_batchnorm_args(
      ctx, a, fn, relu ? TC__OP_BATCHNORM_RELU_BWD : TC__OP_BATCHNORM_BWD);
  if (st != TC_OK)
    return st;
  if (a->c == 0)
    return TC_OK;
  int64_t m = a->n * a->spatial;
  if (m == 0) { /* empty sums */
    for (int64_t ci = 0; ci < a->c && !a->accumulate; ci++) {
      if (a->dgamma)
        a->dgamma[ci] = 0.f;
      if (a->dbeta)
        a->dbeta[ci] = 0.f;
    }
    return TC_OK;
  }
  uint8_t *mask = relu ? a->relu_mask : NULL;
  bn_job j;
  bn_job_init(&j, a, 1);
  if (relu) {
    j.mask = mask;
    j.mps = (a->spatial + 7) / 8;
    j.ry = mask ? NULL : a->y;
    j.dres = a->dresidual;
    j.acc_res = a->accumulate_residual;
    if (j.dres && !j.acc_res)
      j.gout = j.dres;
  }
  double part[BN_PART_MAX][2], sums[BN_BLOCK_C][2];
  float mu[BN_BLOCK_C], kk[BN_BLOCK_C], gmean[BN_BLOCK_C], scale[BN_BLOCK_C];
  j.mu = mu, j.k = kk, j.gmean = gmean, j.scale = scale;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_BLOCK_C, a->c - j.c0);
    bn_block_sums(ctx, &j, part, sums);
    for (int64_t q = 0; q < j.cb; q++)
      bn_bwd_coef(&j, j.c0 + q, sums[q][0], sums[q][1], &mu[q], &kk[q],
                  &gmean[q], &scale[q]);
    bn_run(ctx, a, 1, bn_apply_init(&j), tc__cpu_bn_dx_task, &j);
  }
  return TC_OK;
}

tc_status tc__cpu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a) {
  return bn_bwd(ctx, a, "cpu_batchnorm_bwd", 0);
}

tc_status tc__cpu_batchnorm_relu_bwd(void *ctx, const tc_batchnorm_args *a) {
  return bn_bwd(ctx, a, "cpu_batchnorm_relu_bwd", 1);
}
