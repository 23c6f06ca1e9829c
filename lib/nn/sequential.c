/*
 * sequential.c - the Sequential container: children run in order, each
 * named in the state dict by its given name. Its output is its last
 * child's (no copy). It owns one gradient buffer per inner boundary:
 * grads[i] holds d(loss)/d(output of child i), i < n-1.
 */
#include "nn_internal.h"

typedef struct seq_layer {
  tc_layer base;
  tc_tensor **grads; /* nchildren - 1 */
  int64_t ngrads;
} seq_layer;

tc_status nn_chain_infer(tc_layer *const *ch, int64_t nch,
                         const int64_t *in_shape, int in_ndim,
                         const char *fn) {
  const int64_t *shape = in_shape;
  int ndim = in_ndim;
  for (int64_t i = 0; i < nch; i++) {
    tc_status st = nn_infer(ch[i], shape, ndim, fn);
    if (st != TC_OK)
      return st;
    shape = ch[i]->out_shape;
    ndim = ch[i]->out_ndim;
  }
  return TC_OK;
}

static tc_status seq_infer(tc_layer *l, const char *fn) {
  seq_layer *s = (seq_layer *)l;
  tc_status st = nn_chain_infer(l->children, l->nchildren, l->in_shape,
                                l->in_ndim, fn);
  if (st != TC_OK)
    return st;
  const tc_layer *last = l->nchildren ? l->children[l->nchildren - 1] : l;
  const int64_t *shape = l->nchildren ? last->out_shape : l->in_shape;
  l->out_ndim = l->nchildren ? last->out_ndim : l->in_ndim;
  memcpy(l->out_shape, shape, sizeof l->out_shape);
  if (!s->grads && l->nchildren > 1) {
    s->grads = tc__calloc((size_t)(l->nchildren - 1), sizeof *s->grads);
    if (!s->grads)
      return tc__oom(fn);
    s->ngrads = l->nchildren - 1;
  }
  return TC_OK;
}

static tc_status seq_plan(tc_layer *l, int64_t n) {
  seq_layer *s = (seq_layer *)l;
  for (int64_t i = 0; i < l->nchildren; i++) {
    tc_layer *c = l->children[i];
    tc_status st = nn_plan(c, n);
    if (st == TC_OK && i < s->ngrads) {
      int64_t shape[TC_MAX_DIMS];
      shape[0] = n;
      memcpy(shape + 1, c->out_shape, (size_t)c->out_ndim * sizeof *shape);
      st = nn_ensure(&s->grads[i], nn_be(l), shape, c->out_ndim + 1,
                     TC_FLOAT32);
    }
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

static tc_status seq_forward(tc_layer *l, tc_tensor *x) {
  tc_tensor *cur = x;
  for (int64_t i = 0; i < l->nchildren; i++) {
    tc_status st = nn_forward(l->children[i], cur);
    if (st != TC_OK)
      return st;
    cur = l->children[i]->y;
  }
  l->y = cur;
  return TC_OK;
}

static tc_status seq_backward(tc_layer *l, const tc_tensor *dy,
                              tc_tensor *dx, int acc) {
  seq_layer *s = (seq_layer *)l;
  if (l->nchildren == 0)
    return nn_pass_grad(nn_be(l), dy, dx, acc);
  const tc_tensor *g = dy;
  for (int64_t i = l->nchildren - 1; i >= 0; i--) {
    tc_tensor *din = i > 0 ? s->grads[i - 1] : dx;
    tc_status st = nn_backward(l->children[i], g, din, i > 0 ? 0 : acc);
    if (st != TC_OK)
      return st;
    g = din;
  }
  return TC_OK;
}

static void seq_release(tc_layer *l) {
  seq_layer *s = (seq_layer *)l;
  for (int64_t i = 0; i < s->ngrads; i++)
    tc_tensor_destroy(s->grads[i]);
  tc__free(s->grads);
}

static const nn_kind seq_kind = {
    .name = "sequential", .infer = seq_infer, .plan = seq_plan,
    .forward = seq_forward, .backward = seq_backward,
    .release = seq_release,
};

TC_API tc_status tc_sequential_create(tc_layer **out) {
  return nn_layer_alloc(out, &seq_kind, sizeof(seq_layer),
                        "tc_sequential_create");
}

TC_API tc_status tc_sequential_add(tc_layer *seq, const char *name,
                                   tc_layer *layer) {
  static const char fn[] = "tc_sequential_add";
  tc_status st = TC_OK;
  if (!seq)
    st = tc__error(TC_EINVAL, "%s: argument 'seq' is NULL", fn);
  else if (seq->kind != &seq_kind)
    st = tc__error(TC_EINVAL, "%s: layer is a %s, not a sequential", fn,
                   seq->kind->name);
  else if (seq->model || (seq->parent && seq->parent->model))
    st = tc__error(TC_ESTATE, "%s: the sequential is already in a model",
                   fn);
  if (st != TC_OK) {
    if (layer && !layer->parent && !layer->model && layer != seq)
      nn_layer_free(layer);
    return st;
  }
  return nn_add_child(seq, name, layer, fn);
}

TC_API int64_t tc_sequential_size(const tc_layer *seq) {
  return seq && seq->kind == &seq_kind ? seq->nchildren : -1;
}
