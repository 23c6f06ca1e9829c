/*
 * optim.cu - optimizer updates over flat parameter / gradient buffers:
 * SGD (momentum, dampening, Nesterov, weight decay) and Adam / AdamW
 * (optionally AMSGrad), with torch.optim's formulas (tinycnn_backend.h).
 * Bias corrections are computed once on the host in double.
 * param, grad, momentum_buf, exp_avg, exp_avg_sq, max_exp_avg_sq: (n).
 */
#include <math.h>

#include "cuda_be.h"

__global__ void k_sgd(float *param, const float *grad, float *buf, int64_t n,
                      float lr, float mu, float damp, float wd, int nesterov,
                      int first) {
  CU_FOR(i, n) {
    float g = grad[i];
    if (wd != 0.f)
      g += wd * param[i];
    if (buf) {
      float b = first ? g : mu * buf[i] + (1.f - damp) * g;
      buf[i] = b;
      g = nesterov ? g + mu * b : b;
    }
    param[i] -= lr * g;
  }
}

__global__ void k_adam(float *param, const float *grad, float *m, float *v,
                       float *vmax, int64_t n, float lr, float b1, float b2,
                       float eps, float wd, int decoupled, float step_size,
                       float bc2_sqrt) {
  CU_FOR(i, n) {
    float p = param[i], g = grad[i];
    if (decoupled)
      p *= 1.f - lr * wd;
    else if (wd != 0.f)
      g += wd * p;
    float mi = b1 * m[i] + (1.f - b1) * g;
    float vi = b2 * v[i] + (1.f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    if (vmax) {
      vi = fmaxf(vmax[i], vi);
      vmax[i] = vi;
    }
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    param[i] = p - step_size * mi / denom;
  }
}

tc_status cu_sgd_update(void *ctx, const tc_sgd_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!a)
    return cu_einval("sgd_update", "args is NULL");
  if (a->n < 0)
    return tc_backend_error(TC_EINVAL, "cuda sgd_update: n=%lld",
                            (long long)a->n);
  if (a->n == 0)
    return TC_OK;
  if (!a->param || !a->grad || (a->momentum != 0.f && !a->momentum_buf))
    return cu_einval("sgd_update", "param, grad or momentum_buf is NULL");
  tc_status st = cu_enter(c, "sgd_update");
  if (st != TC_OK)
    return st;
  k_sgd<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(
      a->param, a->grad, a->momentum != 0.f ? a->momentum_buf : NULL, a->n,
      a->lr, a->momentum, a->dampening, a->weight_decay, a->nesterov,
      a->first_step);
  return cu_launched("sgd_update");
}

tc_status cu_adam_update(void *ctx, const tc_adam_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!a)
    return cu_einval("adam_update", "args is NULL");
  if (a->n < 0 || a->step < 1)
    return tc_backend_error(TC_EINVAL, "cuda adam_update: n=%lld step=%lld "
                            "(step counts from 1)", (long long)a->n,
                            (long long)a->step);
  if (a->n == 0)
    return TC_OK;
  if (!a->param || !a->grad || !a->exp_avg || !a->exp_avg_sq ||
      (a->amsgrad && !a->max_exp_avg_sq))
    return cu_einval("adam_update", "a state buffer is NULL");
  tc_status st = cu_enter(c, "adam_update");
  if (st != TC_OK)
    return st;
  double bc1 = 1.0 - pow((double)a->beta1, (double)a->step);
  double bc2 = 1.0 - pow((double)a->beta2, (double)a->step);
  k_adam<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(
      a->param, a->grad, a->exp_avg, a->exp_avg_sq,
      a->amsgrad ? a->max_exp_avg_sq : NULL, a->n, a->lr, a->beta1,
      a->beta2, a->eps, a->weight_decay, a->decoupled,
      (float)(a->lr / bc1), (float)sqrt(bc2));
  return cu_launched("adam_update");
}
