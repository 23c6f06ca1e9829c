/*
 * optim.c - the CPU backend's optimizer updates over flat buffers: SGD
 * (momentum, dampening, Nesterov, weight decay) and Adam / AdamW (optionally
 * AMSGrad), with torch.optim's formulas (tinycnn_backend.h).
 *
 * Each element is computed in float with the operations, in the order, of
 * PyTorch's single-tensor path (foreach=False; torch 1.13, which wrote
 * tests/golden: exp_avg.mul_(beta1).add_(grad, alpha=1-beta1)), with the
 * scalar coefficients rounded to float as its CPU kernels round them.
 * PyTorch's kernels are built with FMA contraction, so on a CPU with FMA
 * every "a + alpha*b" is one fused operation there; we do the same (chosen
 * at run time), and so give torch's bits on the same machine. Scalars
 * derived from hyper-parameters (1 - beta, bias corrections) are computed
 * once, in double, as Python does. Elements are independent: work is split
 * into fixed chunks.
 * param, grad, momentum_buf, exp_avg, exp_avg_sq, max_exp_avg_sq: (n).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../op_check.h"
#include "../optim_coef.h"
#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#define OPTIM_FMA_DISPATCH 1
#define OPTIM_FMA_TARGET __attribute__((target("fma")))
#else
#define OPTIM_FMA_DISPATCH 0
#define OPTIM_FMA_TARGET
#endif

/* a*b + c, fused when `fused` (a constant in each instantiation) */
#define MADD(fused, a, b, c) ((fused) ? fmaf((a), (b), (c)) : (a) * (b) + (c))

static int use_fma(void) {
#if OPTIM_FMA_DISPATCH
  __builtin_cpu_init();
  return __builtin_cpu_supports("fma");
#elif defined(__FP_FAST_FMAF)
  return 1;
#else
  return 0;
#endif
}

/* Elements per task: large enough to amortise a task, fixed so the split
 * depends only on n. */
#define OPTIM_CHUNK ((int64_t)1 << 14)

static int64_t optim_chunks(int64_t n) {
  return (n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
}

/* ---- SGD ---- */

typedef struct sgd_job {
  const tc_sgd_args *a;
  float wd, mu, one_minus_damp, neg_lr;
  int use_wd, use_momentum, first, nesterov;
} sgd_job;

/* One chunk with the options as constants: the flags are tested once, not
 * per element, so the compiler vectorises each variant (the per-element
 * branches kept the momentum path scalar: 6x slower). */
static inline __attribute__((always_inline)) void
sgd_range(const sgd_job *j, int64_t i0, int64_t i1, const int fused,
          const int use_wd, const int use_momentum, const int first,
          const int nesterov) {
  const tc_sgd_args *a = j->a;
  float *restrict p = a->param;
  const float *restrict gr = a->grad;
  float *restrict buf = a->momentum_buf;
  const float wd = j->wd, mu = j->mu, omd = j->one_minus_damp,
              neg_lr = j->neg_lr;
  for (int64_t i = i0; i < i1; i++) {
    float g = gr[i];
    if (use_wd) /* grad.add(param, alpha=wd) */
      g = MADD(fused, p[i], wd, g);
    if (use_momentum) {
      /* first step: torch.clone(grad); then
       * buf.mul_(mu).add_(grad, alpha=1-dampening) */
      float b = first ? g : MADD(fused, g, omd, buf[i] * mu);
      buf[i] = b;
      g = nesterov ? MADD(fused, b, mu, g) : b;
    }
    p[i] = MADD(fused, g, neg_lr, p[i]); /* param.add_(grad, alpha=-lr) */
  }
}

static inline __attribute__((always_inline)) void
sgd_body(const sgd_job *j, int64_t task, const int fused) {
  const tc_sgd_args *a = j->a;
  int64_t i0 = task * OPTIM_CHUNK;
  int64_t i1 = i0 + OPTIM_CHUNK < a->n ? i0 + OPTIM_CHUNK : a->n;
#define SGD_CASE(wd, mo, fi, ne)                                               \
  case (wd) | (mo) << 1 | (fi) << 2 | (ne) << 3:                               \
    sgd_range(j, i0, i1, fused, wd, mo, fi, ne);                               \
    return
  /* without momentum, first and nesterov play no part */
  int code = j->use_wd | j->use_momentum << 1 |
             (j->use_momentum ? j->first << 2 | j->nesterov << 3 : 0);
  switch (code) {
    SGD_CASE(0, 0, 0, 0);
    SGD_CASE(1, 0, 0, 0);
    SGD_CASE(0, 1, 0, 0);
    SGD_CASE(1, 1, 0, 0);
    SGD_CASE(0, 1, 1, 0);
    SGD_CASE(1, 1, 1, 0);
    SGD_CASE(0, 1, 0, 1);
    SGD_CASE(1, 1, 0, 1);
    SGD_CASE(0, 1, 1, 1);
    SGD_CASE(1, 1, 1, 1);
  default:
    return;
  }
#undef SGD_CASE
}

static OPTIM_FMA_TARGET void sgd_task_fma(void *arg, int64_t task) {
  sgd_body(arg, task, 1);
}

static void sgd_task(void *arg, int64_t task) {
  sgd_body(arg, task, 0);
}

tc_status tc__cpu_sgd_update(void *ctx, const tc_sgd_args *a) {
  tc_status st = tc__check_sgd_args(ctx, a, "cpu_sgd_update");
  if (st != TC_OK || a->n == 0)
    return st;
  sgd_job j = {.a = a};
  j.wd = a->weight_decay;
  j.use_wd = a->weight_decay != 0.f;
  j.mu = a->momentum;
  j.use_momentum = a->momentum != 0.f;
  j.one_minus_damp = (float)(1.0 - tc_optim_hyper(a->dampening));
  j.neg_lr = -a->lr;
  j.first = a->first_step != 0;
  j.nesterov = a->nesterov != 0;
  tc__cpu_parallel_for(ctx, optim_chunks(a->n),
                       use_fma() ? sgd_task_fma : sgd_task, &j);
  return TC_OK;
}

/* ---- Adam / AdamW ---- */

typedef struct adam_job {
  const tc_adam_args *a;
  tc_adam_coef k;
} adam_job;

/* torch.maximum: NaN wins. */
static inline float max_nan(float a, float b) {
  return a != a ? a : (a > b ? a : b);
}

static inline __attribute__((always_inline)) void
adam_body(const adam_job *j, int64_t task, const int fused) {
  const tc_adam_args *a = j->a;
  int64_t i0 = task * OPTIM_CHUNK;
  int64_t i1 = i0 + OPTIM_CHUNK < a->n ? i0 + OPTIM_CHUNK : a->n;
  float *restrict p = a->param;
  const float *restrict gr = a->grad;
  float *restrict m = a->exp_avg;
  float *restrict v = a->exp_avg_sq;
  float *restrict vmax = a->amsgrad ? a->max_exp_avg_sq : NULL;
  for (int64_t i = i0; i < i1; i++) {
    float pi = p[i], g = gr[i];
    if (j->k.mode_wd == 2)
      pi = pi * j->k.decay; /* param.mul_(1 - lr*wd) */
    else if (j->k.mode_wd == 1)
      g = MADD(fused, pi, j->k.wd, g); /* grad.add(param, alpha=wd) */
    /* exp_avg.mul_(beta1).add_(grad, alpha=1-beta1) */
    float mi = MADD(fused, g, j->k.one_minus_beta1, m[i] * j->k.beta1);
    /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2) */
    float vi = MADD(fused, j->k.one_minus_beta2 * g, g, v[i] * j->k.beta2);
    m[i] = mi;
    v[i] = vi;
    if (vmax) { /* torch.maximum(max_exp_avg_sq, exp_avg_sq) */
      vi = max_nan(vmax[i], vi);
      vmax[i] = vi;
    }
    float denom = sqrtf(vi) / j->k.bc2_sqrt + j->k.eps;
    p[i] = pi + j->k.neg_step_size * mi / denom; /* addcdiv_(-step_size) */
  }
}

static OPTIM_FMA_TARGET void adam_task_fma(void *arg, int64_t task) {
  adam_body(arg, task, 1);
}

static void adam_task(void *arg, int64_t task) {
  adam_body(arg, task, 0);
}

tc_status tc__cpu_adam_update(void *ctx, const tc_adam_args *a) {
  tc_status st = tc__check_adam_args(ctx, a, "cpu_adam_update");
  if (st != TC_OK || a->n == 0)
    return st;
  adam_job j = {.a = a, .k = tc_adam_coef_of(a)};
  tc__cpu_parallel_for(ctx, optim_chunks(a->n),
                       use_fma() ? adam_task_fma : adam_task, &j);
  return TC_OK;
}
