/*
 * loss.c - loss objects (cross-entropy from logits with label smoothing,
 * NLL, MSE) over the backend's fused loss slots, and accuracy counts.
 * A loss object owns a two-word device buffer (the value, then an int32
 * bad-label flag) and a host copy of the labels (to range-check them), so
 * computing a loss allocates nothing once a batch this large has been
 * seen. tc_loss_compute checks inputs for NaN/Inf before anything is
 * written and reads the value back (it waits for the device);
 * tc_loss_compute_async does neither: labels are range-checked by the
 * backend into the flag, and tc_loss_read reads value and
 * flag together later, so a training step can run without host waits.
 */
#include <math.h>

#include "../options.h"
#include "nn_internal.h"

struct tc_loss {
  tc_backend *be;
  tc_loss_kind kind;
  tc_loss_options o;
  tc_tensor *value; /* (2) device: float value, int32 bad-label flag */
  int32_t *labels;  /* host copy for the range check */
  int64_t labels_cap;
  int async_valid; /* the last compute was tc_loss_compute_async */
};

/* the flag word of l->value */
static int32_t *loss_flag(const tc_loss *l) {
  return (int32_t *)(void *)(nn_f(l->value) + 1);
}

static const tc_loss_options loss_defaults = TC_LOSS_OPTIONS_INIT;

TC_API tc_status tc_loss_options_init(tc_loss_options *o, size_t struct_size) {
  return tc__options_init(o, struct_size, &loss_defaults, sizeof *o,
                          TC__SIZE0_LOSS_OPTIONS, "tc_loss_options_init");
}

TC_API tc_status tc_loss_create(tc_loss **out, tc_backend *be,
                                tc_loss_kind kind,
                                const tc_loss_options *opts) {
  static const char fn[] = "tc_loss_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(be, fn);
  tc_loss_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &loss_defaults,
                                    TC__SIZE0_LOSS_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if ((int)kind < TC_LOSS_CROSS_ENTROPY || kind > TC_LOSS_MSE)
    return tc__error(TC_EINVAL, "%s: unknown loss kind %d", fn, (int)kind);
  if (o.reduction != TC_LOSS_MEAN && o.reduction != TC_LOSS_SUM)
    return tc__error(TC_EINVAL,
                     "%s: reduction %d must be TC_LOSS_MEAN or "
                     "TC_LOSS_SUM",
                     fn, (int)o.reduction);
  if (!(o.label_smoothing >= 0.f && o.label_smoothing <= 1.f) ||
      (o.label_smoothing != 0.f && kind != TC_LOSS_CROSS_ENTROPY))
    return tc__error(TC_EINVAL,
                     "%s: label_smoothing %g must be in [0, 1] "
                     "and only with cross-entropy",
                     fn, (double)o.label_smoothing);
  tc_loss *l = tc__calloc(1, sizeof *l);
  if (!l)
    return tc__oom(fn);
  int64_t two = 2;
  if ((st = tc_tensor_create(&l->value, be, &two, 1, TC_FLOAT32)) != TC_OK) {
    tc__free(l);
    return st;
  }
  if ((st = be->iface->memset(be->ctx, tc_tensor_data(l->value), 0,
                              2 * sizeof(float))) != TC_OK) {
    tc_tensor_destroy(l->value);
    tc__free(l);
    return st;
  }
  tc__backend_retain(be);
  l->be = be;
  l->kind = kind;
  l->o = o;
  *out = l;
  return TC_OK;
}

TC_API void tc_loss_destroy(tc_loss *l) {
  if (!l)
    return;
  tc_tensor_destroy(l->value);
  tc__free(l->labels);
  tc_backend_destroy(l->be);
  tc__free(l);
}

/* TC_ENUMERIC when `t` holds NaN or Inf (skipped without a reduce slot). */
static tc_status check_finite(tc_backend *be, const tc_tensor *t,
                              const char *what, const char *fn) {
  if (!TC__HAS_SLOT(be->iface, reduce) || t->numel == 0)
    return TC_OK;
  double bad = 0;
  tc_reduce_args a = {sizeof a, t->numel, TC_REDUCE_NONFINITE,
                      0,        nn_f(t),  &bad};
  tc_status st = be->iface->reduce(be->ctx, &a);
  if (st != TC_OK)
    return st;
  if (bad != 0)
    return tc__error(TC_ENUMERIC, "%s: %s holds %.0f NaN or Inf values", fn,
                     what, bad);
  return TC_OK;
}

static tc_status check_labels(tc_loss *l, const tc_tensor *labels, int64_t n,
                              int64_t classes, const char *fn) {
  if (labels->dtype != TC_INT32 || labels->numel != n)
    return tc__error(TC_ESHAPE,
                     "%s: labels must be int32 (N = %lld), got "
                     "%lld elements of dtype %d",
                     fn, (long long)n, (long long)labels->numel,
                     (int)labels->dtype);
  if (n > l->labels_cap) {
    int32_t *h = tc__malloc((size_t)n * sizeof *h);
    if (!h)
      return tc__oom(fn);
    tc__free(l->labels);
    l->labels = h;
    l->labels_cap = n;
  }
  tc_status st =
      tc_tensor_copy_to_host(labels, l->labels, (size_t)n * sizeof(int32_t));
  if (st != TC_OK)
    return st;
  for (int64_t i = 0; i < n; i++)
    if (l->labels[i] < 0 || l->labels[i] >= classes)
      return tc__error(TC_EINVAL, "%s: label[%lld] = %d is outside [0, %lld)",
                       fn, (long long)i, (int)l->labels[i], (long long)classes);
  return TC_OK;
}

/* The checks and the backend call shared by both entry points. async:
 * no finiteness checks, labels checked by the backend into the flag. */
static tc_status loss_run(tc_loss *l, const tc_tensor *input,
                          const tc_tensor *target, tc_tensor *grad, int async,
                          const char *fn) {
  tc_backend *be = l->be;
  if (input->dtype != TC_FLOAT32 || input->ndim < 1 || input->shape[0] < 1 ||
      input->numel < input->shape[0])
    return tc__error(TC_ESHAPE,
                     "%s: input must be float32 (N, C) with N, C "
                     ">= 1",
                     fn);
  int64_t n = input->shape[0], classes = input->numel / n;
  if (grad && (grad->dtype != TC_FLOAT32 || grad->numel != input->numel))
    return tc__error(TC_ESHAPE, "%s: grad has %lld elements, input %lld", fn,
                     (long long)grad->numel, (long long)input->numel);
  tc_status st;
  if (l->kind == TC_LOSS_MSE) {
    if (target->dtype != TC_FLOAT32 || target->numel != input->numel)
      return tc__error(TC_ESHAPE,
                       "%s: MSE target must be float32 with %lld "
                       "elements, got %lld",
                       fn, (long long)input->numel, (long long)target->numel);
    if (!async && (st = check_finite(be, target, "target", fn)) != TC_OK)
      return st;
  } else if (async) {
    if (target->dtype != TC_INT32 || target->numel != n)
      return tc__error(TC_ESHAPE,
                       "%s: labels must be int32 (N = %lld), got "
                       "%lld elements of dtype %d",
                       fn, (long long)n, (long long)target->numel,
                       (int)target->dtype);
  } else if ((st = check_labels(l, target, n, classes, fn)) != TC_OK) {
    return st;
  }
  if (!async && (st = check_finite(be, input, "input", fn)) != TC_OK)
    return st;
  tc_loss_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = n, a.classes = classes;
  a.reduction =
      l->o.reduction == TC_LOSS_SUM ? TC_REDUCTION_SUM : TC_REDUCTION_MEAN;
  a.label_smoothing = l->o.label_smoothing;
  a.logits = nn_f(input);
  if (l->kind == TC_LOSS_MSE)
    a.target = nn_f(target);
  else
    a.labels = (const int32_t *)tc_tensor_data((tc_tensor *)target);
  a.loss = nn_f(l->value);
  a.dlogits = nn_f(grad);
  a.grad_scale = 1.f;
  if (async && l->kind != TC_LOSS_MSE)
    a.label_error = loss_flag(l);
  switch (l->kind) {
  case TC_LOSS_CROSS_ENTROPY:
    if ((st = NN_SLOT(be, softmax_xent)) == TC_OK)
      st = be->iface->softmax_xent(be->ctx, &a);
    break;
  case TC_LOSS_NLL:
    if ((st = NN_SLOT(be, nll)) == TC_OK)
      st = be->iface->nll(be->ctx, &a);
    break;
  case TC_LOSS_MSE:
    if ((st = NN_SLOT(be, mse)) == TC_OK)
      st = be->iface->mse(be->ctx, &a);
    break;
  }
  return st;
}

TC_API tc_status tc_loss_compute(tc_loss *l, const tc_tensor *input,
                                 const tc_tensor *target, float *out_value,
                                 tc_tensor *grad) {
  static const char fn[] = "tc_loss_compute";
  TC__CHECK_NULL(l, fn);
  TC__CHECK_NULL(input, fn);
  TC__CHECK_NULL(target, fn);
  TC__CHECK_NULL(out_value, fn);
  l->async_valid = 0;
  tc_backend *be = l->be;
  tc_status st = loss_run(l, input, target, grad, 0, fn);
  if (st != TC_OK)
    return st;
  float v;
  if ((st = be->iface->copy_d2h(be->ctx, &v, nn_f(l->value), sizeof v)) !=
      TC_OK)
    return st;
  if (!isfinite(v))
    return tc__error(TC_ENUMERIC, "%s: the loss is %g (overflow)", fn,
                     (double)v);
  *out_value = v;
  return TC_OK;
}

TC_API tc_status tc_loss_compute_async(tc_loss *l, const tc_tensor *input,
                                       const tc_tensor *target,
                                       tc_tensor *out_loss, tc_tensor *grad) {
  static const char fn[] = "tc_loss_compute_async";
  TC__CHECK_NULL(l, fn);
  TC__CHECK_NULL(input, fn);
  TC__CHECK_NULL(target, fn);
  tc_backend *be = l->be;
  if (out_loss && (out_loss->dtype != TC_FLOAT32 || out_loss->numel != 1 ||
                   tc_tensor_backend(out_loss) != be))
    return tc__error(TC_ESHAPE,
                     "%s: out_loss must be a float32 tensor of 1 "
                     "element on the loss's backend",
                     fn);
  l->async_valid = 0;
  tc_status st = loss_run(l, input, target, grad, 1, fn);
  if (st == TC_OK && out_loss)
    st = be->iface->copy_d2d(be->ctx, tc_tensor_data(out_loss), nn_f(l->value),
                             sizeof(float));
  if (st == TC_OK)
    l->async_valid = 1;
  return st;
}

TC_API tc_status tc_loss_read(tc_loss *l, float *out_value) {
  static const char fn[] = "tc_loss_read";
  TC__CHECK_NULL(l, fn);
  TC__CHECK_NULL(out_value, fn);
  if (!l->async_valid)
    return tc__error(TC_ESTATE,
                     "%s: no tc_loss_compute_async since the "
                     "loss was created or last failed",
                     fn);
  tc_backend *be = l->be;
  float w[2];
  tc_status st = be->iface->copy_d2h(be->ctx, w, nn_f(l->value), sizeof w);
  if (st != TC_OK)
    return st;
  int32_t bad;
  memcpy(&bad, &w[1], sizeof bad);
  if (l->kind != TC_LOSS_MSE && bad)
    return tc__error(TC_EINVAL,
                     "%s: a label of the last batch is outside "
                     "[0, classes)",
                     fn);
  if (!isfinite(w[0]))
    return tc__error(TC_ENUMERIC,
                     "%s: the loss is %g (NaN or Inf in the "
                     "input or an overflow)",
                     fn, (double)w[0]);
  *out_value = w[0];
  return TC_OK;
}

TC_API tc_status tc_accuracy_count(const tc_tensor *scores,
                                   const tc_tensor *labels,
                                   int64_t *out_correct) {
  static const char fn[] = "tc_accuracy_count";
  TC__CHECK_NULL(scores, fn);
  TC__CHECK_NULL(labels, fn);
  TC__CHECK_NULL(out_correct, fn);
  if (scores->dtype != TC_FLOAT32 || scores->ndim < 1 || scores->shape[0] < 1 ||
      scores->numel < scores->shape[0])
    return tc__error(TC_ESHAPE, "%s: scores must be float32 (N, C)", fn);
  int64_t n = scores->shape[0];
  if (labels->dtype != TC_INT32 || labels->numel != n)
    return tc__error(TC_ESHAPE,
                     "%s: labels must be int32 with %lld "
                     "elements",
                     fn, (long long)n);
  tc_backend *be = tc_tensor_backend(scores);
  tc_status st = NN_SLOT(be, argmax);
  if (st != TC_OK)
    return st;
  int64_t correct = 0;
  tc_argmax_args a = {sizeof a,
                      n,
                      scores->numel / n,
                      nn_f(scores),
                      (const int32_t *)tc_tensor_data((tc_tensor *)labels),
                      NULL,
                      &correct};
  if ((st = be->iface->argmax(be->ctx, &a)) != TC_OK)
    return st;
  *out_correct = correct;
  return TC_OK;
}
