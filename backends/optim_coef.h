/*
 * optim_coef.h - the per-step coefficients of the optimizer updates, derived
 * once on the host in double exactly as torch.optim does from Python
 * floats. Shared by every backend so their updates agree bit for bit
 * (backends/cpu/optim.c, backends/cuda/optim.cu). Header-only: each
 * backend is its own build (the CUDA one a separate module).
 */
#ifndef TC_BACKENDS_OPTIM_COEF_H
#define TC_BACKENDS_OPTIM_COEF_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <tinycnn_backend.h>

/* The double a float hyper-parameter was written as: the shortest decimal
 * that rounds to it (0.999f -> 0.999). PyTorch forms 1 - beta2 and the
 * bias corrections from the Python double; from the float itself, 1 - 0.999f
 * differs from 1 - 0.999 by 1.3e-5 relative, which exp_avg_sq would carry.
 * snprintf and strtod share the locale, so the round trip holds in any. */
static inline double tc_optim_hyper(float f) {
  char buf[32];
  if (!isfinite(f) || f == 0.f)
    return f;
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
    double d = strtod(buf, NULL);
    if ((float)d == f)
      return d;
  }
  return f;
}

/* What an Adam/AdamW element update needs besides the buffers. */
typedef struct tc_adam_coef {
  float wd, decay; /* Adam: grad += wd*param; AdamW: param *= decay */
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float bc2_sqrt, eps, neg_step_size;
  int mode_wd; /* 0 none, 1 L2 into the gradient, 2 decoupled */
} tc_adam_coef;

static inline tc_adam_coef tc_adam_coef_of(const tc_adam_args *a) {
  tc_adam_coef k;
  double lr = tc_optim_hyper(a->lr), wd = tc_optim_hyper(a->weight_decay);
  double beta1 = tc_optim_hyper(a->beta1), beta2 = tc_optim_hyper(a->beta2);
  k.mode_wd = wd == 0.0 ? 0 : a->decoupled ? 2 : 1;
  k.wd = a->weight_decay;
  k.decay = (float)(1.0 - lr * wd);
  k.beta1 = a->beta1;
  k.one_minus_beta1 = (float)(1.0 - beta1);
  k.beta2 = a->beta2;
  k.one_minus_beta2 = (float)(1.0 - beta2);
  double step = (double)a->step;
  double bc1 = 1.0 - pow(beta1, step);
  double bc2 = 1.0 - pow(beta2, step);
  k.bc2_sqrt = (float)sqrt(bc2);
  k.neg_step_size = (float)-(lr / bc1);
  k.eps = a->eps;
  return k;
}

#endif
