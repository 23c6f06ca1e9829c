/*
 * loss.c - naive reference losses and argmax (see loss.h).
 */
#include "loss.h"

#include <math.h>

enum { XENT, NLL, MSE };

static int bad_label(const tc_loss_args *a, int64_t i) {
  return a->labels[i] < 0 || a->labels[i] >= a->classes;
}

/* REDUCTION_NONE is not a slot's job (the contract); others are invalid. */
static tc_status check_reduction(const tc_loss_args *a) {
  if (a->reduction == TC_REDUCTION_NONE)
    return TC_EUNSUPPORTED;
  return a->reduction == TC_REDUCTION_MEAN || a->reduction == TC_REDUCTION_SUM
             ? TC_OK
             : TC_EINVAL;
}

static tc_status labelled(const tc_loss_args *a, int kind) {
  if (check_reduction(a) != TC_OK)
    return check_reduction(a);
  int any_bad = 0;
  for (int64_t i = 0; i < a->n; i++)
    any_bad |= bad_label(a, i);
  if (any_bad && !a->label_error)
    return TC_EINVAL;
  if (a->label_error)
    *a->label_error = any_bad;
  int64_t C = a->classes;
  double ls = a->label_smoothing, total = 0;
  double scale = a->reduction == TC_REDUCTION_MEAN ? 1.0 / (double)a->n : 1.0;
  for (int64_t i = 0; i < a->n; i++) {
    const float *x = a->logits + i * C;
    float *g = a->dlogits ? a->dlogits + i * C : NULL;
    if (bad_label(a, i)) {
      total = NAN;
      for (int64_t j = 0; g && j < C; j++)
        g[j] = NAN;
      continue;
    }
    double mx = -INFINITY, s = 0; /* log-sum-exp, shifted by the max */
    for (int64_t j = 0; j < C; j++)
      mx = fmax(mx, x[j]);
    for (int64_t j = 0; kind == XENT && j < C; j++)
      s += exp(x[j] - mx);
    for (int64_t j = 0; j < C; j++) {
      double q = (1 - ls) * (j == a->labels[i]) + ls / (double)C;
      double lp = kind == XENT ? x[j] - mx - log(s) : x[j];
      total -= q * lp;
      double p = kind == XENT ? exp(x[j] - mx) / s : 0.0;
      if (g)
        g[j] = (float)((p - q) * scale * a->grad_scale);
    }
  }
  *a->loss = (float)(total * scale);
  return TC_OK;
}

tc_status ref_softmax_xent(const tc_loss_args *a) {
  return labelled(a, XENT);
}

tc_status ref_nll(const tc_loss_args *a) {
  return labelled(a, NLL);
}

tc_status ref_mse(const tc_loss_args *a) {
  if (check_reduction(a) != TC_OK)
    return check_reduction(a);
  int64_t nl = a->n * a->classes;
  double scale = a->reduction == TC_REDUCTION_MEAN ? 1.0 / (double)nl : 1.0;
  double total = 0;
  for (int64_t i = 0; i < nl; i++) {
    double d = (double)a->logits[i] - (double)a->target[i];
    total += d * d;
    if (a->dlogits)
      a->dlogits[i] = (float)(2 * d * scale * a->grad_scale);
  }
  *a->loss = (float)(total * scale);
  return TC_OK;
}

void ref_argmax(const tc_argmax_args *a) {
  int64_t correct = 0;
  for (int64_t i = 0; i < a->n; i++) {
    const float *s = a->scores + i * a->classes;
    int64_t best = 0;
    for (int64_t j = 1; j < a->classes && !isnan(s[best]); j++)
      if (isnan(s[j]) || s[j] > s[best])
        best = j;
    if (a->pred)
      a->pred[i] = (int32_t)best;
    if (a->labels)
      correct += a->labels[i] == best;
  }
  if (a->host_correct && a->labels)
    *a->host_correct = correct;
}
