/*
 * optim.cu - optimizer updates over flat parameter / gradient buffers:
 * SGD (momentum, dampening, Nesterov, weight decay) and Adam / AdamW
 * (optionally AMSGrad), with torch.optim's formulas (tinycnn_backend.h).
 *
 * Mirrors backends/cpu/optim.c operation by operation: torch 1.13's
 * single-tensor forms (exp_avg.mul_(beta1).add_(grad, alpha=1-beta1), ...),
 * every "a + alpha*b" that the CPU fuses done as one fmaf here, the rest
 * rounded step by step (the module is built with --fmad=false), and the
 * scalar coefficients computed on the host as the CPU computes them: in
 * double from tc_optim_hyper() (backends/optim_coef.h).
 * So on a CPU with FMA (which the CPU backend then uses) both backends give
 * the same bits. Residual differences: on a CPU without FMA the CPU rounds
 * twice where this fuses (last-bit differences); sqrtf and division are
 * IEEE-rounded on both (nvcc's default -prec-sqrt/-prec-div).
 * param, grad, momentum_buf, exp_avg, exp_avg_sq, max_exp_avg_sq: (n).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../optim_coef.h"
#include "cuda_be.h"


struct sgd_k {
  float wd, mu, one_minus_damp, neg_lr;
  int use_wd, use_momentum, first, nesterov;
};

__global__ void k_sgd(float *param, const float *grad, float *buf, int64_t n,
                      sgd_k j) {
  CU_FOR(i, n) {
    float g = grad[i];
    if (j.use_wd) /* grad.add(param, alpha=wd) */
      g = fmaf(param[i], j.wd, g);
    if (j.use_momentum) {
      /* first step: clone(grad); then buf.mul_(mu).add_(grad, 1-damp) */
      float b = j.first ? g : fmaf(g, j.one_minus_damp, buf[i] * j.mu);
      buf[i] = b;
      g = j.nesterov ? fmaf(b, j.mu, g) : b;
    }
    param[i] = fmaf(g, j.neg_lr, param[i]); /* param.add_(grad, -lr) */
  }
}

typedef tc_adam_coef adam_k;

__global__ void k_adam(float *param, const float *grad, float *m, float *v,
                       float *vmax, int64_t n, adam_k j) {
  CU_FOR(i, n) {
    float pi = param[i], g = grad[i];
    if (j.mode_wd == 2)
      pi = pi * j.decay; /* param.mul_(1 - lr*wd) */
    else if (j.mode_wd == 1)
      g = fmaf(pi, j.wd, g); /* grad.add(param, alpha=wd) */
    float mi = fmaf(g, j.one_minus_beta1, m[i] * j.beta1);
    float vi = fmaf(j.one_minus_beta2 * g, g, v[i] * j.beta2);
    m[i] = mi;
    v[i] = vi;
    if (vmax) { /* torch.maximum: NaN wins */
      float o = vmax[i];
      vi = o != o ? o : (o > vi ? o : vi);
      vmax[i] = vi;
    }
    float denom = sqrtf(vi) / j.bc2_sqrt + j.eps;
    param[i] = pi + j.neg_step_size * mi / denom; /* addcdiv_(-step_size) */
  }
}

tc_status cu_sgd_update(void *ctx, const tc_sgd_args *a) {
  static const char fn[] = "sgd_update";
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_sgd_args(ctx, a, CU_FN("sgd_update"));
  if (st != TC_OK || a->n == 0)
    return st;
  st = cu_enter(c, fn);
  if (st != TC_OK)
    return st;
  sgd_k j;
  j.wd = a->weight_decay;
  j.use_wd = a->weight_decay != 0.f;
  j.mu = a->momentum;
  j.use_momentum = a->momentum != 0.f;
  j.one_minus_damp = (float)(1.0 - tc_optim_hyper(a->dampening));
  j.neg_lr = -a->lr;
  j.first = a->first_step != 0;
  j.nesterov = a->nesterov != 0;
  k_sgd<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(
      a->param, a->grad, j.use_momentum ? a->momentum_buf : NULL, a->n, j);
  return cu_launched(fn);
}

tc_status cu_adam_update(void *ctx, const tc_adam_args *a) {
  static const char fn[] = "adam_update";
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_adam_args(ctx, a, CU_FN("adam_update"));
  if (st != TC_OK || a->n == 0)
    return st;
  st = cu_enter(c, fn);
  if (st != TC_OK)
    return st;
  adam_k j = tc_adam_coef_of(a);
  k_adam<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(
      a->param, a->grad, a->exp_avg, a->exp_avg_sq,
      a->amsgrad ? a->max_exp_avg_sq : NULL, a->n, j);
  return cu_launched(fn);
}
