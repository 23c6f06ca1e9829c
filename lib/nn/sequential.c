/*
 * sequential.c - the Sequential container: children run in order, each
 * named in the state dict by its given name. Its output is its last
 * child's (no copy). The gradients between children live in the two
 * gradient slots of the container's depth: each child writes the slot
 * its input gradient does not occupy, so two slots serve any length.
 * It tells the plan when each child's output has been consumed by the
 * next child (tc__nn_consumed), so that an inference-arena forward frees
 * it at once.
 *
 * A BatchNorm2d followed by a ReLU runs as one fused pass when the backend
 * has the batchnorm_relu_* slots (the same bits as the two layers): the
 * ReLU's output is the batch norm's, it gets no buffer of its own, and
 * its backward is the batch norm's (which reads the ReLU's outcome).
 */
#include "nn_internal.h"

typedef struct seq_layer {
  tc_layer base;
  tc_tensor gview[2]; /* views of the two gradient slots */
} seq_layer;

tc_status tc__nn_chain_infer(tc_layer *const *ch, int64_t nch,
                             const int64_t *in_shape, int in_ndim,
                             const char *fn) {
  const int64_t *shape = in_shape;
  int ndim = in_ndim;
  for (int64_t i = 0; i < nch; i++) {
    tc_status st = tc__nn_infer(ch[i], shape, ndim, fn);
    if (st != TC_OK)
      return st;
    shape = ch[i]->out_shape;
    ndim = ch[i]->out_ndim;
  }
  return TC_OK;
}

static tc_status seq_infer(tc_layer *l, const char *fn) {
  tc_status st = tc__nn_chain_infer(l->children, l->nchildren, l->in_shape,
                                    l->in_ndim, fn);
  if (st != TC_OK)
    return st;
  const tc_layer *last = l->nchildren ? l->children[l->nchildren - 1] : l;
  const int64_t *shape = l->nchildren ? last->out_shape : l->in_shape;
  l->out_ndim = l->nchildren ? last->out_ndim : l->in_ndim;
  memcpy(l->out_shape, shape, sizeof l->out_shape);
  return TC_OK;
}

static int64_t out_numel(const tc_layer *c, int64_t n) {
  int64_t numel = n;
  for (int d = 0; d < c->out_ndim; d++)
    numel *= c->out_shape[d];
  return numel;
}

/* Child i is a ReLU whose work the batch norm before it does (plan.c). */
static int fused_relu(const tc_layer *l, int64_t i) {
  return tc__nn_fused_relu(l->children, i);
}

static tc_status seq_plan(tc_layer *l, int64_t n) {
  for (int64_t i = 0; i < l->nchildren; i++) {
    tc_layer *c = l->children[i];
    tc_status st = TC_OK;
    if (fused_relu(l, i))
      c->batch = n; /* no output of its own */
    else
      st = tc__nn_plan(c, n);
    /* either slot may hold any child's output gradient */
    for (int slot = 0; slot < 2 && st == TC_OK && i < l->nchildren - 1; slot++)
      st = tc__nn_grad_request(l, slot, out_numel(c, n));
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

static tc_status seq_forward(tc_layer *l, tc_tensor *x) {
  tc_tensor *cur = x;
  for (int64_t i = 0; i < l->nchildren; i++) {
    tc_layer *c = l->children[i];
    if (fused_relu(l, i)) { /* done by the batch norm, in its output */
      c->x = c->y = cur;
      tc__nn_prof_count(c, 0);
      continue;
    }
    if (i + 1 < l->nchildren && fused_relu(l, i + 1))
      tc__nn_bn_fuse_forward(c, NULL); /* honoured: tc__nn_bn_fusable */
    tc_status st = tc__nn_forward(c, cur);
    if (st != TC_OK)
      return st;
    tc_tensor *next = c->y;
    tc__nn_consumed(l, cur, next);
    cur = next;
  }
  l->y = cur;
  return TC_OK;
}

static tc_status seq_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                              int acc) {
  seq_layer *s = (seq_layer *)l;
  if (l->nchildren == 0)
    return tc__nn_pass_grad(tc__nn_be(l), dy, dx, acc);
  const tc_tensor *g = dy;
  int gslot = -1; /* the slot g is in (-1: dy, the caller's) */
  int64_t n = dy->shape[0];
  for (int64_t i = l->nchildren - 1; i >= 0; i--) {
    tc_layer *c = l->children[i];
    /* a fused ReLU's gradient goes straight into the batch norm's
     * backward, unless that backward cannot take it (evaluation-mode
     * statistics): then the ReLU runs its own, on the shared output */
    if (fused_relu(l, i) &&
        tc__nn_bn_fuse_backward(l->children[i - 1], c->y, NULL, 0)) {
      tc__nn_prof_count(c, 1);
      continue;
    }
    tc_tensor *din = dx;
    int slot = gslot == 0 ? 1 : 0;
    if (i > 0) {
      const tc_layer *prev = l->children[i - 1];
      int64_t shape[TC_MAX_DIMS];
      int nd = tc__nn_batch_shape(shape, n, prev->out_shape, prev->out_ndim);
      din = tc__nn_grad_view(l, slot, &s->gview[slot], shape, nd, TC_FLOAT32);
    }
    tc_status st = tc__nn_backward(c, g, din, i > 0 ? 0 : acc);
    if (st != TC_OK)
      return st;
    g = din;
    gslot = i > 0 ? slot : -1;
  }
  return TC_OK;
}

static const nn_kind seq_kind = {
    .name = "sequential",
    .infer = seq_infer,
    .plan = seq_plan,
    .forward = seq_forward,
    .backward = seq_backward,
};

TC_API tc_status tc_sequential_create(tc_layer **out) {
  return tc__nn_layer_alloc(out, &seq_kind, sizeof(seq_layer),
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
    st = tc__error(TC_ESTATE, "%s: the sequential is already in a model", fn);
  if (st != TC_OK) {
    if (layer && !layer->parent && !layer->model && layer != seq)
      tc__nn_layer_free(layer);
    return st;
  }
  return tc__nn_add_child(seq, name, layer, fn);
}

TC_API int64_t tc_sequential_size(const tc_layer *seq) {
  return seq && seq->kind == &seq_kind ? seq->nchildren : -1;
}
