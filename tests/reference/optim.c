/*
 * optim.c - naive reference optimizer steps (see optim.h), after the
 * single-tensor code paths of torch/optim/sgd.py and adam.py.
 */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The Python double a float hyper-parameter was written as: the shortest
 * decimal that rounds to it (0.999f -> 0.999), as docs/design.md says the
 * backends read them. torch forms 1 - beta and the bias corrections from
 * that double; from the float itself 1 - beta2 would be off by 1.3e-5
 * relative for beta2 = 0.999. */
static double hyper(float f) {
  char buf[32];
  for (int digits = 1; isfinite(f) && digits <= 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
    double d = strtod(buf, NULL);
    if ((float)d == f)
      return d;
  }
  return f;
}

void ref_sgd_update(const tc_sgd_args *a) {
  double lr = hyper(a->lr), mu = hyper(a->momentum);
  double damp = hyper(a->dampening), wd = hyper(a->weight_decay);
  for (int64_t i = 0; i < a->n; i++) {
    double p = a->param[i], g = a->grad[i];
    if (wd != 0)
      g += wd * p;
    if (mu != 0) {
      double buf = a->first_step ? g : mu * a->momentum_buf[i] + (1 - damp) * g;
      a->momentum_buf[i] = (float)buf;
      g = a->nesterov ? g + mu * buf : buf;
    }
    a->param[i] = (float)(p - lr * g);
  }
}

void ref_adam_update(const tc_adam_args *a) {
  double lr = hyper(a->lr), b1 = hyper(a->beta1), b2 = hyper(a->beta2);
  double eps = hyper(a->eps), wd = hyper(a->weight_decay);
  double step = (double)a->step;
  double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
  for (int64_t i = 0; i < a->n; i++) {
    double p = a->param[i], g = a->grad[i];
    if (a->decoupled)
      p *= 1 - lr * wd;
    else
      g += wd * p;
    double m = b1 * a->exp_avg[i] + (1 - b1) * g;
    double v = b2 * a->exp_avg_sq[i] + (1 - b2) * g * g;
    a->exp_avg[i] = (float)m;
    a->exp_avg_sq[i] = (float)v;
    if (a->amsgrad) {
      /* fmax would hide a NaN: keep it, as torch.maximum does */
      double vm = a->max_exp_avg_sq[i];
      v = isnan(v) || v > vm ? v : vm;
      a->max_exp_avg_sq[i] = (float)v;
    }
    double denom = sqrt(v) / sqrt(bc2) + eps;
    a->param[i] = (float)(p - lr / bc1 * m / denom);
  }
}
