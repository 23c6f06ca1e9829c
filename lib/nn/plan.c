/*
 * plan.c - where a model's activations, gradient temporaries and
 * workspace live: the one place that knows the plans, sizes their
 * buffers and decides which one a forward runs in. Model.c holds an
 * nn_plan and drives it (plan.h); layers and containers describe what
 * they need through nn_internal.h's "plan.c" functions and never pick or
 * free memory of the plan themselves.
 *
 * Memory: two plans, both sized per batch and growing only (alternating
 * batch sizes settle with no allocation).
 *  - The full plan (training, and evaluation at a batch it has held): each
 *    layer keeps what its backward reads (per-layer buffers); gradient
 *    temporaries are the model's gradient slots, NN_GRAD_SLOTS per nesting
 *    depth, each sized to its largest user, so a deep network holds a few
 *    activation-sized gradient buffers instead of several per layer; one
 *    convolution workspace serves every layer.
 *  - The inference arena (an evaluation forward at a batch larger than any
 *    full plan, e.g. an eval-only program): outputs go to interchangeable
 *    slots of the largest activation's size, released by the containers as
 *    soon as the consumer has run (a residual block keeps its input until
 *    the sum), so the peak is a handful of activations, not their sum. It
 *    is made lazily at the first such forward and grows only. A trainer's
 *    evaluation at a batch up to the training batch reuses the full plan;
 *    a larger one adds the (small) arena.
 * Backward after an arena forward first re-runs the forward on the same
 * input (tc_model_forward's contract keeps it alive and unchanged) in the
 * full plan: evaluation forwards change no state, so the bits are those of
 * a full-plan forward.
 */
#include "plan.h"

static nn_plan *plan_of(const tc_layer *l) {
  return tc__nn_model_plan(l->model);
}

/* ---- gradient slots ---- */

static int64_t depth_of(const tc_layer *l) {
  int64_t d = 0;
  for (const tc_layer *p = l->parent; p; p = p->parent)
    d++;
  return d;
}

tc_status tc__nn_grad_request(tc_layer *l, int slot, int64_t numel) {
  nn_plan *p = plan_of(l);
  int64_t key = depth_of(l) * NN_GRAD_SLOTS + slot;
  if (key >= p->ngslot) {
    int64_t n = key + NN_GRAD_SLOTS;
    nn_gslot *g = tc__calloc((size_t)n, sizeof *g);
    if (!g)
      return tc__oom("tc_model_forward");
    if (p->ngslot)
      memcpy(g, p->gslot, (size_t)p->ngslot * sizeof *g);
    tc__free(p->gslot);
    p->gslot = g;
    p->ngslot = n;
  }
  if (numel > p->gslot[key].need)
    p->gslot[key].need = numel;
  return TC_OK;
}

tc_tensor *tc__nn_grad_view(tc_layer *l, int slot, tc_tensor *view,
                            const int64_t *shape, int ndim, tc_dtype dtype) {
  const nn_plan *p = plan_of(l);
  int64_t key = depth_of(l) * NN_GRAD_SLOTS + slot;
  /* the plan asked for this slot at this size */
  tc__nn_view_set(view, p->gslot[key].t, shape, ndim, dtype);
  return view;
}

/* ---- the shared workspace ---- */

void *tc__nn_model_workspace(const tc_model *m, size_t *out_bytes) {
  const nn_plan *p = tc__nn_model_plan(m);
  *out_bytes = p->ws ? p->ws_bytes : 0;
  return p->ws ? tc_tensor_data(p->ws) : NULL;
}

/* The largest workspace any layer under l needs at batch n, into *max. */
static tc_status ws_max(tc_layer *l, int64_t n, size_t *max) {
  tc_status st = TC_OK;
  if (l->kind->workspace) {
    size_t bytes = 0;
    st = l->kind->workspace(l, n, &bytes);
    if (st == TC_OK && bytes > *max)
      *max = bytes;
  }
  for (int64_t i = 0; i < l->nchildren && st == TC_OK; i++)
    st = ws_max(l->children[i], n, max);
  return st;
}

/* The shared workspace for batch n (grows only); its need in *need. */
static tc_status plan_ws(nn_plan *p, tc_layer *root, int64_t n, size_t *need) {
  size_t max = 0;
  tc_status st = ws_max(root, n, &max);
  if (st == TC_OK && max > 0) {
    int64_t floats = (int64_t)((max + 3) / 4);
    st = tc__nn_ensure(&p->ws, tc__nn_be(root), &floats, 1, TC_FLOAT32);
  }
  if (st == TC_OK)
    *need = max;
  return st;
}

/* ---- the inference arena ---- */

/* A free arena slot (float, at least the largest activation of the batch);
 * allocates only the first time this many slots are live at once. */
static tc_status arena_acquire(nn_plan *p, tc_backend *be, tc_tensor **out) {
  for (int64_t i = 0; i < p->naslot; i++)
    if (!p->aslot[i].used) {
      p->aslot[i].used = 1;
      *out = p->aslot[i].t;
      return TC_OK;
    }
  /* one more live at once than ever before: grow (a steady state with the
   * same forward never gets here) */
  nn_aslot *a = tc__calloc((size_t)p->naslot + 1, sizeof *a);
  if (!a)
    return tc__oom("tc_model_forward");
  if (p->naslot)
    memcpy(a, p->aslot, (size_t)p->naslot * sizeof *a);
  tc_status st =
      tc_tensor_create(&a[p->naslot].t, be, &p->arena_floats, 1, TC_FLOAT32);
  if (st != TC_OK) {
    tc__free(a);
    return st;
  }
  tc__free(p->aslot);
  p->aslot = a;
  p->aslot[p->naslot].used = 1;
  *out = p->aslot[p->naslot++].t;
  return TC_OK;
}

/* Frees the slot holding `t`'s storage (no-op if `t` is not in a slot). */
static void arena_release(nn_plan *p, const tc_tensor *t) {
  for (int64_t i = 0; i < p->naslot; i++)
    if (p->aslot[i].t->storage == t->storage)
      p->aslot[i].used = 0;
}

/* ---- what layers and containers ask of the plan ---- */

tc_status tc__nn_ensure(tc_tensor **t, tc_backend *be, const int64_t *shape,
                        int ndim, tc_dtype dtype) {
  int64_t numel;
  tc_status st = tc__shape_numel(shape, ndim, &numel, "nn plan");
  if (st != TC_OK)
    return st;
  size_t bytes = (size_t)numel * tc__dtype_size(dtype);
  tc_tensor *cur = *t;
  if (cur && cur->offset_bytes == 0 && cur->storage->bytes >= bytes) {
    cur->ndim = ndim;
    cur->dtype = dtype;
    cur->numel = numel;
    memset(cur->shape, 0, sizeof cur->shape);
    memcpy(cur->shape, shape, (size_t)ndim * sizeof *shape);
    return TC_OK;
  }
  tc_tensor *nt;
  if ((st = tc_tensor_create(&nt, be, shape, ndim, dtype)) != TC_OK)
    return st;
  tc_tensor_destroy(cur);
  *t = nt;
  return TC_OK;
}

tc_status tc__nn_plan_output(tc_layer *l, int64_t n) {
  int64_t shape[TC_MAX_DIMS];
  int nd = tc__nn_batch_shape(shape, n, l->out_shape, l->out_ndim);
  tc_status st = tc__nn_ensure(&l->y_own, tc__nn_be(l), shape, nd, TC_FLOAT32);
  if (st == TC_OK)
    l->y = l->y_own;
  return st;
}

tc_status tc__nn_scratch(tc_layer *l, const tc_tensor *like, tc_tensor **out) {
  tc_status st = tc__nn_ensure(&l->scratch, tc__nn_be(l), like->shape,
                               like->ndim, TC_FLOAT32);
  if (st == TC_OK)
    *out = l->scratch;
  return st;
}

tc_status tc__nn_place_output(tc_layer *l, int64_t n) {
  if (!l->kind->produces)
    return TC_OK;
  nn_plan *p = plan_of(l);
  if (!p->arena_on) {
    l->y = l->y_own; /* an arena forward may have moved it */
    return TC_OK;
  }
  tc_tensor *slot;
  tc_status st = arena_acquire(p, tc__nn_be(l), &slot);
  if (st != TC_OK)
    return st;
  int64_t shape[TC_MAX_DIMS];
  int nd = tc__nn_batch_shape(shape, n, l->out_shape, l->out_ndim);
  tc__nn_view_set(&l->y_arena, slot, shape, nd, TC_FLOAT32);
  l->y = &l->y_arena;
  return TC_OK;
}

void tc__nn_consumed(tc_layer *l, const tc_tensor *t, const tc_tensor *live) {
  nn_plan *p = plan_of(l);
  /* the full plan keeps every output for backward; l's input is its
   * parent's to free; a consumer's output may alias its input (Flatten,
   * Dropout in evaluation) */
  if (!p->arena_on || t->storage == l->x->storage ||
      t->storage == live->storage)
    return;
  arena_release(p, t);
}

tc_status tc__nn_temp(tc_layer *l, int slot, tc_tensor *view,
                      const int64_t *shape, int ndim, tc_dtype dtype,
                      tc_tensor **out) {
  nn_plan *p = plan_of(l);
  if (!p->arena_on) {
    *out = tc__nn_grad_view(l, slot, view, shape, ndim, dtype);
    return TC_OK;
  }
  tc_tensor *t;
  tc_status st = arena_acquire(p, tc__nn_be(l), &t);
  if (st != TC_OK)
    return st;
  tc__nn_view_set(view, t, shape, ndim, dtype);
  *out = view;
  return TC_OK;
}

tc_status tc__nn_saved(tc_layer *l, tc_tensor *kept, tc_tensor **out) {
  nn_plan *p = plan_of(l);
  if (!p->arena_on) {
    *out = kept;
    return TC_OK;
  }
  return arena_acquire(p, tc__nn_be(l), out);
}

void tc__nn_temp_done(tc_layer *l, const tc_tensor *t) {
  nn_plan *p = plan_of(l);
  if (p->arena_on && t)
    arena_release(p, t);
}

int tc__nn_fused_relu(tc_layer *const *ch, int64_t i) {
  return i > 0 && tc__nn_is_relu(ch[i]) && tc__nn_bn_fusable(ch[i - 1]);
}

/* ---- the two plans ---- */

/* The full plan (see the top): per-layer buffers, then gradient slots. */
static tc_status plan_full(nn_plan *p, tc_layer *root, int64_t n) {
  p->full_batch = 0;
  for (int64_t i = 0; i < p->ngslot; i++)
    p->gslot[i].need = 0;
  tc_status st = tc__nn_plan(root, n);
  for (int64_t i = 0; i < p->ngslot && st == TC_OK; i++)
    if (p->gslot[i].need > 0)
      st = tc__nn_ensure(&p->gslot[i].t, tc__nn_be(root), &p->gslot[i].need, 1,
                         TC_FLOAT32);
  if (st == TC_OK)
    st = plan_ws(p, root, n, &p->ws_full);
  if (st != TC_OK)
    return st;
  p->full_batch = n;
  if (n > p->full_cap)
    p->full_cap = n;
  return TC_OK;
}

/* The largest per-sample output under l, into *max. */
static void max_out(const tc_layer *l, int64_t *max) {
  int64_t numel = 1;
  for (int d = 0; d < l->out_ndim; d++)
    numel *= l->out_shape[d];
  if (numel > *max)
    *max = numel;
  for (int64_t i = 0; i < l->nchildren; i++)
    max_out(l->children[i], max);
}

/* The inference arena for batch n: slots of the largest activation (every
 * layer's output, hence also a pooled shortcut or a max-pool argmax). */
static tc_status plan_arena(nn_plan *p, tc_layer *root, int64_t n) {
  p->arena_batch = 0;
  int64_t per = 1;
  max_out(root, &per);
  p->arena_floats = per * n;
  tc_status st = TC_OK;
  for (int64_t i = 0; i < p->naslot && st == TC_OK; i++)
    st = tc__nn_ensure(&p->aslot[i].t, tc__nn_be(root), &p->arena_floats, 1,
                       TC_FLOAT32);
  if (st == TC_OK)
    st = plan_ws(p, root, n, &p->ws_arena);
  if (st == TC_OK)
    p->arena_batch = n;
  return st;
}

/* Runs the root in the full plan at batch n. */
static tc_status forward_full(nn_plan *p, tc_layer *root, tc_tensor *x,
                              int64_t n) {
  tc_status st = TC_OK;
  if (n != p->full_batch && (st = plan_full(p, root, n)) != TC_OK)
    return st;
  p->ws_bytes = p->ws_full;
  return tc__nn_forward(root, x);
}

tc_status tc__nn_plan_forward(nn_plan *p, tc_layer *root, tc_tensor *x,
                              int training) {
  int64_t n = x->shape[0];
  int arena = !training && n > p->full_cap;
  tc_status st;
  if (arena) {
    if (n != p->arena_batch && (st = plan_arena(p, root, n)) != TC_OK)
      return st;
    /* the last forward's output is no longer valid: every slot is free */
    for (int64_t i = 0; i < p->naslot; i++)
      p->aslot[i].used = 0;
    p->ws_bytes = p->ws_arena;
    p->arena_on = 1;
    st = tc__nn_forward(root, x);
    p->arena_on = 0;
  } else {
    st = forward_full(p, root, x, n);
  }
  if (st == TC_OK)
    p->last_arena = arena;
  return st;
}

tc_status tc__nn_plan_backward_ready(nn_plan *p, tc_layer *root, int64_t n) {
  if (p->last_arena) {
    /* the arena kept nothing for backward: the same forward again in the
     * full plan (see the top) */
    tc_status st = forward_full(p, root, root->x, n);
    if (st != TC_OK)
      return st;
    p->last_arena = 0;
  }
  p->ws_bytes = p->ws_full;
  return TC_OK;
}

void tc__nn_plan_invalidate(nn_plan *p) {
  p->full_batch = 0;
  p->arena_batch = 0;
}

void tc__nn_plan_free(nn_plan *p) {
  tc_tensor_destroy(p->ws);
  for (int64_t i = 0; i < p->ngslot; i++)
    tc_tensor_destroy(p->gslot[i].t);
  tc__free(p->gslot);
  for (int64_t i = 0; i < p->naslot; i++)
    tc_tensor_destroy(p->aslot[i].t);
  tc__free(p->aslot);
}
