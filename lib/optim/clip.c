/*
 * clip.c - gradient-norm clipping, torch.nn.utils.clip_grad_norm_ with the
 * L2 norm: the total norm over every gradient element, then one scale
 * max_norm / (norm + 1e-6) applied when it is below 1 (PyTorch clamps the
 * coefficient at 1). A non-finite norm is an error that changes nothing;
 * PyTorch would scale everything to NaN unless error_if_nonfinite is set.
 *
 * Sums of squares come from the backend's deterministic reduce (double);
 * scaling uses its scale slot in place (y = alpha * a with y == a).
 */
#include <math.h>

#include "optim_internal.h"

/* A list of float spans: gradient tensors, or an optimizer's runs. */
typedef struct span_list {
  int64_t count;
  void (*get)(const struct span_list *l, int64_t k, tc_backend **be,
              float **ptr, int64_t *n);
  tc_tensor *const *tensors; /* tensor list */
  tc_optimizer *opt;         /* or an optimizer's gradient runs */
} span_list;

static void tensor_span(const span_list *l, int64_t k, tc_backend **be,
                        float **ptr, int64_t *n) {
  tc_tensor *t = l->tensors[k];
  *be = t->storage->be;
  *ptr = tc_tensor_data(t);
  *n = t->numel;
}

static void run_span(const span_list *l, int64_t k, tc_backend **be,
                     float **ptr, int64_t *n) {
  const tc__opt_run *r = &l->opt->runs[k];
  *be = l->opt->be;
  *ptr = tc_tensor_data(l->opt->grads[r->first]);
  *n = r->numel;
}

static tc_status clip_spans(const span_list *l, double max_norm,
                            double *out_norm, const char *fn) {
  if (!(max_norm >= 0)) /* NaN fails too */
    return tc__error(TC_EINVAL, "%s: max_norm = %g, expected >= 0", fn,
                     max_norm);
  double sumsq = 0;
  for (int64_t k = 0; k < l->count; k++) {
    tc_backend *be;
    float *p;
    int64_t n;
    l->get(l, k, &be, &p, &n);
    if (n == 0)
      continue;
    if (!TC__HAS_SLOT(be->iface, reduce) || !TC__HAS_SLOT(be->iface, scale))
      return tc__error(TC_EUNSUPPORTED,
                       "%s: backend '%s' lacks reduce or scale", fn,
                       be->iface->name);
    double part = 0;
    tc_reduce_args a = {.struct_size = sizeof a,
                        .n = n,
                        .op = TC_REDUCE_SUMSQ,
                        .x = p,
                        .host_out = &part};
    tc_status st = be->iface->reduce(be->ctx, &a);
    if (st != TC_OK)
      return st;
    sumsq += part;
  }
  double norm = sqrt(sumsq);
  if (!isfinite(norm))
    return tc__error(TC_ENUMERIC,
                     "%s: the gradient norm is %g; gradients left unchanged",
                     fn, norm);
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (int64_t k = 0; k < l->count; k++) {
      tc_backend *be;
      float *p;
      int64_t n;
      l->get(l, k, &be, &p, &n);
      if (n == 0)
        continue;
      tc_eltwise_args a = {.struct_size = sizeof a,
                           .n = n,
                           .alpha = (float)coef,
                           .a = p,
                           .y = p};
      tc_status st = be->iface->scale(be->ctx, &a);
      if (st != TC_OK)
        return st;
    }
  }
  if (out_norm)
    *out_norm = norm;
  return TC_OK;
}

TC_API tc_status tc_clip_grad_norm(tc_tensor *const *grads, int64_t n,
                                   double max_norm, double *out_norm) {
  static const char fn[] = "tc_clip_grad_norm";
  TC__CHECK_NULL(grads, fn);
  TC__CHECK_NULL(out_norm, fn);
  if (n < 1)
    return tc__error(TC_EINVAL, "%s: n = %lld, expected >= 1", fn,
                     (long long)n);
  for (int64_t k = 0; k < n; k++) {
    if (!grads[k])
      return tc__error(TC_EINVAL, "%s: grads[%lld] is NULL", fn, (long long)k);
    if (grads[k]->dtype != TC_FLOAT32)
      return tc__error(TC_EINVAL, "%s: grads[%lld] is not float32", fn,
                       (long long)k);
  }
  span_list l = {n, tensor_span, grads, NULL};
  return clip_spans(&l, max_norm, out_norm, fn);
}

TC_API tc_status tc_optimizer_clip_grad_norm(tc_optimizer *opt, double max_norm,
                                             double *out_norm) {
  static const char fn[] = "tc_optimizer_clip_grad_norm";
  TC__CHECK_NULL(opt, fn);
  span_list l = {opt->n_runs, run_span, NULL, opt};
  return clip_spans(&l, max_norm, out_norm, fn);
}
