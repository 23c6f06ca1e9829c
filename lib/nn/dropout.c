/*
 * dropout.c - Dropout and Dropout2d (torch.nn semantics). In training a
 * unit (an element, or a whole channel plane for Dropout2d) is kept when
 * its Philox uniform from (model seed, TC_RNG_STREAM_DROPOUT) at the
 * model's dropout offset is >= p, and scaled by 1/(1-p); each forward
 * reserves its units (rounded up to whole Philox blocks of 4) so masks are
 * reproducible and a restored offset resumes the same sequence. In
 * evaluation, or with p = 0, the output is the input itself (no copy).
 *   x, y: (N, ...)  mask: (units) bytes, units = numel / group
 */
#include "nn_internal.h"

typedef struct dropout_layer {
  tc_layer base;
  float p;
  int channels;    /* Dropout2d */
  int active;      /* the last forward dropped units */
  tc_tensor *mask; /* int32 storage holding `units` bytes */
} dropout_layer;

static int64_t group_of(const dropout_layer *d) {
  const tc_layer *l = &d->base;
  int64_t g = 1;
  if (d->channels)
    for (int i = 1; i < l->in_ndim; i++)
      g *= l->in_shape[i];
  return g;
}

static tc_status dropout_infer(tc_layer *l, const char *fn) {
  dropout_layer *d = (dropout_layer *)l;
  char p[256], s[96];
  if (d->channels && l->in_ndim < 2)
    return tc__error(TC_ESHAPE,
                     "%s: %s (dropout2d) expects input (N, C, "
                     "...), got per-sample shape %s",
                     fn, tc__nn_path(l, p, sizeof p),
                     tc__nn_shape_str(l->in_shape, l->in_ndim, s, sizeof s));
  l->out_ndim = l->in_ndim;
  memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
  return TC_OK;
}

static tc_status dropout_plan(tc_layer *l, int64_t n) {
  dropout_layer *d = (dropout_layer *)l;
  if (d->p == 0.f)
    return TC_OK;
  tc_status st = tc__nn_plan_output(l, n);
  if (st != TC_OK)
    return st;
  int64_t numel = n;
  for (int i = 0; i < l->in_ndim; i++)
    numel *= l->in_shape[i];
  int64_t words = (numel / group_of(d) + 3) / 4;
  return tc__nn_ensure(&d->mask, tc__nn_be(l), &words, 1, TC_INT32);
}

static tc_dropout_args dropout_args(const dropout_layer *d, int64_t n) {
  tc_dropout_args a;
  memset(&a, 0, sizeof a);
  a.struct_size = sizeof a;
  a.n = n;
  a.group = group_of(d);
  a.p = d->p;
  a.stream = TC_RNG_STREAM_DROPOUT;
  a.mask = (uint8_t *)tc_tensor_data(d->mask);
  return a;
}

static tc_status dropout_forward(tc_layer *l, tc_tensor *x) {
  dropout_layer *d = (dropout_layer *)l;
  tc_backend *be = tc__nn_be(l);
  d->active = 0;
  if (!tc__nn_model_training(l->model) || d->p == 0.f) {
    l->y = x;
    return TC_OK;
  }
  l->y = l->y_own;
  tc_dropout_args a = dropout_args(d, x->numel);
  if (d->p == 1.f) { /* every unit dropped; avoid 0 * inf */
    d->active = 1;
    tc_status st =
        be->iface->memset(be->ctx, a.mask, 0, (size_t)(a.n / a.group));
    return st == TC_OK ? tc__nn_fill(be, nn_f(l->y), x->numel, 0.f) : st;
  }
  tc_status st = NN_SLOT(be, dropout_fwd);
  if (st != TC_OK)
    return st;
  tc__nn_model_dropout_rng(l->model, a.n / a.group, &a.seed, &a.offset);
  a.x = nn_f(x);
  a.y = nn_f(l->y);
  if ((st = be->iface->dropout_fwd(be->ctx, &a)) == TC_OK)
    d->active = 1;
  return st;
}

static tc_status dropout_backward(tc_layer *l, const tc_tensor *dy,
                                  tc_tensor *dx, int acc) {
  dropout_layer *d = (dropout_layer *)l;
  tc_backend *be = tc__nn_be(l);
  if (!dx)
    return TC_OK;
  if (!d->active)
    return tc__nn_pass_grad(be, dy, dx, acc);
  if (d->p == 1.f)
    return acc ? TC_OK : tc__nn_fill(be, nn_f(dx), dx->numel, 0.f);
  tc_status st = NN_SLOT(be, dropout_bwd);
  if (st != TC_OK)
    return st;
  tc_dropout_args a = dropout_args(d, dy->numel);
  a.dy = nn_f(dy);
  a.dx = nn_f(dx);
  a.accumulate = acc;
  return be->iface->dropout_bwd(be->ctx, &a);
}

static void dropout_release(tc_layer *l) {
  tc_tensor_destroy(((dropout_layer *)l)->mask);
}

static void dropout_describe(const tc_layer *l, nn_desc *d) {
  d->p = ((const dropout_layer *)l)->p;
}

static const nn_kind dropout_kind = {
    .name = "dropout",
    .infer = dropout_infer,
    .plan = dropout_plan,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .release = dropout_release,
    .describe = dropout_describe,
};
static const nn_kind dropout2d_kind = {
    .name = "dropout2d",
    .infer = dropout_infer,
    .plan = dropout_plan,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .release = dropout_release,
    .describe = dropout_describe,
};

static tc_status dropout_create(tc_layer **out, float p, int channels,
                                const char *fn) {
  TC__CHECK_NULL(out, fn);
  if (!(p >= 0.f && p <= 1.f))
    return tc__error(TC_EINVAL, "%s: p = %g must be in [0, 1]", fn, (double)p);
  tc_layer *l;
  tc_status st =
      tc__nn_layer_alloc(&l, channels ? &dropout2d_kind : &dropout_kind,
                         sizeof(dropout_layer), fn);
  if (st != TC_OK)
    return st;
  ((dropout_layer *)l)->p = p;
  ((dropout_layer *)l)->channels = channels;
  *out = l;
  return TC_OK;
}

TC_API tc_status tc_dropout_create(tc_layer **out, float p) {
  return dropout_create(out, p, 0, "tc_dropout_create");
}

TC_API tc_status tc_dropout2d_create(tc_layer **out, float p) {
  return dropout_create(out, p, 1, "tc_dropout2d_create");
}
