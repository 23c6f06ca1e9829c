/*
 * model.c - a model: a layer tree placed on a backend. Creation checks the
 * shapes, names every parameter and buffer as PyTorch names the same module
 * tree, places parameters in one flat arena and gradients in another (each
 * tensor a view at its offset, in named_parameters() order, unpadded, so
 * the arena equals torch.cat([p.flatten() for p in model.parameters()])),
 * creates buffers, and draws the default initialisation. Forward plans the
 * activations for a new batch size (buffers only grow, so alternating batch
 * sizes settle with no allocation); backward runs the tree in reverse.
 *
 * Memory: two plans.
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
#include <stddef.h>
#include <stdio.h>

#include "nn_internal.h"

typedef struct nn_entry {
  char *name;
  tc_tensor *t;
  tc_tensor *g;
} nn_entry;

typedef struct nn_gslot {
  tc_tensor *t;
  int64_t need; /* floats asked for by this plan */
} nn_gslot;

typedef struct nn_aslot {
  tc_tensor *t;
  int used;
} nn_aslot;

struct tc_model {
  tc_backend *be;
  tc_layer *root;
  int64_t in_shape[NN_SAMPLE_DIMS];
  int in_ndim;
  tc_model_options o;
  tc_tensor *params, *grads; /* 1-D arenas */
  nn_entry *p, *b, *s;       /* parameters, buffers, state (borrowed) */
  int64_t np, nb, ns;
  tc_tensor *ws;            /* shared convolution workspace */
  size_t ws_bytes;          /* the running forward's need */
  size_t ws_full, ws_arena; /* each plan's need */
  tc_tensor *out_grad, *in_grad;
  int64_t batch;      /* the last forward's batch size, 0: none */
  int64_t full_batch; /* batch the layers are planned for, 0: none */
  int64_t full_cap;   /* largest full plan so far (buffers fit it) */
  nn_gslot *gslot;    /* gradient slots, [depth * NN_GRAD_SLOTS + i] */
  int64_t ngslot;
  nn_aslot *aslot; /* inference arena */
  int64_t naslot, arena_floats, arena_batch;
  int arena_on;   /* an arena forward is running */
  int last_arena; /* the last forward ran in the arena */
  int training, forwarded;
  uint64_t seed, rng_offset;
  /* profiling: the profiled layers (not Sequential) in pre-order */
  tc_layer **prof;
  char **prof_names;
  int64_t nprof;
  int profiling;
  double prof_inner; /* see tc__nn_model_prof_inner */
  /* data parallelism (lib/dist): called after each layer with parameters
   * has finished its backward; the communicator of synchronised batch
   * norms (NULL: local statistics) */
  nn_grad_hook grad_hook;
  void *grad_hook_user;
  tc_comm *sync_bn;
  tc_tensor *pred; /* tc_model_predict's classes on the device, int32 */
};

/* ---- for layers ---- */

tc_backend *tc__nn_model_backend(const tc_model *m) {
  return m->be;
}
int tc__nn_model_training(const tc_model *m) {
  return m->training;
}

void *tc__nn_model_workspace(const tc_model *m, size_t *out_bytes) {
  *out_bytes = m->ws ? m->ws_bytes : 0;
  return m->ws ? tc_tensor_data(m->ws) : NULL;
}

void tc__nn_model_dropout_rng(tc_model *m, int64_t units, uint64_t *seed,
                              uint64_t *offset) {
  *seed = m->seed;
  *offset = m->rng_offset;
  /* whole Philox blocks, so each forward starts on a block boundary */
  m->rng_offset += ((uint64_t)units + 3) & ~(uint64_t)3;
}

double *tc__nn_model_prof_inner(tc_model *m) {
  return &m->prof_inner;
}

void tc__nn_model_set_grad_hook(tc_model *m, nn_grad_hook fn, void *user) {
  m->grad_hook = fn;
  m->grad_hook_user = user;
}

void tc__nn_model_grad_ready(tc_model *m, tc_layer *l) {
  if (m->grad_hook)
    m->grad_hook(m->grad_hook_user, l);
}

void tc__nn_model_set_sync_bn(tc_model *m, tc_comm *comm) {
  if (m->sync_bn == comm)
    return;
  m->sync_bn = comm;
  /* plans depend on it (a synchronised batch norm does not fuse the ReLU
   * after it, which then needs its own output): plan again */
  m->full_batch = 0;
  m->arena_batch = 0;
  m->forwarded = 0;
}

tc_comm *tc__nn_model_sync_bn(const tc_model *m) {
  return m->sync_bn;
}

tc_layer *tc__nn_model_root(const tc_model *m) {
  return m->root;
}

int64_t tc__nn_model_layers(const tc_model *m, tc_layer *const **out_layers,
                            char *const **out_names) {
  *out_layers = m->prof;
  *out_names = m->prof_names;
  return m->nprof;
}

int tc__nn_model_input_shape(const tc_model *m, int64_t *shape) {
  memcpy(shape, m->in_shape, (size_t)m->in_ndim * sizeof *shape);
  return m->in_ndim;
}

static int64_t depth_of(const tc_layer *l) {
  int64_t d = 0;
  for (const tc_layer *p = l->parent; p; p = p->parent)
    d++;
  return d;
}

tc_status tc__nn_grad_request(tc_layer *l, int slot, int64_t numel) {
  tc_model *m = l->model;
  int64_t key = depth_of(l) * NN_GRAD_SLOTS + slot;
  if (key >= m->ngslot) {
    int64_t n = key + NN_GRAD_SLOTS;
    nn_gslot *g = tc__calloc((size_t)n, sizeof *g);
    if (!g)
      return tc__oom("tc_model_forward");
    if (m->ngslot)
      memcpy(g, m->gslot, (size_t)m->ngslot * sizeof *g);
    tc__free(m->gslot);
    m->gslot = g;
    m->ngslot = n;
  }
  if (numel > m->gslot[key].need)
    m->gslot[key].need = numel;
  return TC_OK;
}

tc_tensor *tc__nn_grad_view(tc_layer *l, int slot, tc_tensor *view,
                            const int64_t *shape, int ndim, tc_dtype dtype) {
  const tc_model *m = l->model;
  int64_t key = depth_of(l) * NN_GRAD_SLOTS + slot;
  /* the plan asked for this slot at this size */
  tc__nn_view_set(view, m->gslot[key].t, shape, ndim, dtype);
  return view;
}

int tc__nn_model_arena(const tc_model *m) {
  return m->arena_on;
}

tc_status tc__nn_arena_acquire(tc_model *m, tc_tensor **out) {
  for (int64_t i = 0; i < m->naslot; i++)
    if (!m->aslot[i].used) {
      m->aslot[i].used = 1;
      *out = m->aslot[i].t;
      return TC_OK;
    }
  /* one more live at once than ever before: grow (a steady state with the
   * same forward never gets here) */
  nn_aslot *a = tc__calloc((size_t)m->naslot + 1, sizeof *a);
  if (!a)
    return tc__oom("tc_model_forward");
  if (m->naslot)
    memcpy(a, m->aslot, (size_t)m->naslot * sizeof *a);
  tc_status st =
      tc_tensor_create(&a[m->naslot].t, m->be, &m->arena_floats, 1, TC_FLOAT32);
  if (st != TC_OK) {
    tc__free(a);
    return st;
  }
  tc__free(m->aslot);
  m->aslot = a;
  m->aslot[m->naslot].used = 1;
  *out = m->aslot[m->naslot++].t;
  return TC_OK;
}

void tc__nn_arena_release(tc_model *m, const tc_tensor *t) {
  for (int64_t i = 0; i < m->naslot; i++)
    if (m->aslot[i].t->storage == t->storage)
      m->aslot[i].used = 0;
}

/* ---- tree walks ---- */

typedef tc_status (*walk_fn)(tc_layer *l, void *arg);

static tc_status walk(tc_layer *l, walk_fn fn, void *arg) {
  tc_status st = fn(l, arg);
  for (int64_t i = 0; i < l->nchildren && st == TC_OK; i++)
    st = walk(l->children[i], fn, arg);
  return st;
}

typedef struct count_arg {
  tc_model *m;
  int64_t floats;
} count_arg;

static tc_status count_one(tc_layer *l, void *arg) {
  count_arg *c = arg;
  l->model = c->m;
  for (int i = 0; i < l->nparams; i++) {
    int64_t n = 1;
    for (int d = 0; d < l->pspec[i].ndim; d++)
      if (__builtin_mul_overflow(n, l->pspec[i].shape[d], &n) ||
          n > TC__MAX_NUMEL)
        return tc__error(TC_ESHAPE,
                         "tc_model_create: parameter '%s' of a layer is over "
                         "the tensor limit of 2^48 elements",
                         l->pspec[i].name);
    c->floats += n;
    if (c->floats > TC__MAX_NUMEL)
      return tc__error(TC_ESHAPE,
                       "tc_model_create: parameters total over the limit of "
                       "2^48 floats");
  }
  c->m->np += l->nparams;
  c->m->nb += l->nbuffers;
  return TC_OK;
}

/* "layers_2n.0.conv1.weight" */
static char *full_name(const tc_layer *l, const char *leaf) {
  char buf[1024];
  const tc_layer *chain[64];
  int n = 0;
  for (const tc_layer *p = l; p && p->name && n < 64; p = p->parent)
    chain[n++] = p;
  size_t used = 0;
  buf[0] = '\0';
  for (int i = n - 1; i >= 0; i--) {
    int w = snprintf(buf + used, sizeof buf - used, "%s.", chain[i]->name);
    if (w < 0 || (size_t)w >= sizeof buf - used)
      return NULL;
    used += (size_t)w;
  }
  int w = snprintf(buf + used, sizeof buf - used, "%s", leaf);
  if (w < 0 || (size_t)w >= sizeof buf - used)
    return NULL;
  return tc__strdup(buf);
}

typedef struct place_arg {
  tc_model *m;
  size_t offset; /* bytes into the arenas */
} place_arg;

static tc_status place_one(tc_layer *l, void *arg) {
  place_arg *pa = arg;
  tc_model *m = pa->m;
  static const char fn[] = "tc_model_create";
  tc_status st;
  for (int i = 0; i < l->nparams; i++) {
    nn_spec *sp = &l->pspec[i];
    nn_entry *e = &m->p[m->np];
    if (!(e->name = full_name(l, sp->name)))
      return tc__oom(fn);
    m->np++;
    if ((st = tc__nn_view_at(&l->param[i], m->params, pa->offset, sp->shape,
                             sp->ndim, TC_FLOAT32)) != TC_OK ||
        (st = tc__nn_view_at(&l->grad[i], m->grads, pa->offset, sp->shape,
                             sp->ndim, TC_FLOAT32)) != TC_OK)
      return st;
    e->t = l->param[i];
    e->g = l->grad[i];
    pa->offset += (size_t)l->param[i]->numel * sizeof(float);
    m->s[m->ns++] = *e;
  }
  for (int i = 0; i < l->nbuffers; i++) {
    nn_spec *sp = &l->bspec[i];
    nn_entry *e = &m->b[m->nb];
    if (!(e->name = full_name(l, sp->name)))
      return tc__oom(fn);
    m->nb++;
    if ((st = tc_tensor_create(&l->buffer[i], m->be, sp->shape, sp->ndim,
                               sp->dtype)) != TC_OK)
      return st;
    e->t = l->buffer[i];
    m->s[m->ns++] = *e;
  }
  return TC_OK;
}

static int profiled(const tc_layer *l) {
  return strcmp(l->kind->name, "sequential") != 0;
}

static tc_status prof_one(tc_layer *l, void *arg) {
  tc_model *m = arg;
  if (!profiled(l))
    return TC_OK;
  if (m->prof) {
    char *name = l->name ? full_name(l->parent, l->name) : tc__strdup("");
    if (!name)
      return tc__oom("tc_model_create");
    m->prof[m->nprof] = l;
    m->prof_names[m->nprof] = name;
  }
  m->nprof++;
  return TC_OK;
}

/* Lists the profiled layers and their module paths: a counting walk, then
 * a filling one. */
static tc_status prof_list(tc_model *m) {
  walk(m->root, prof_one, m);
  int64_t n = m->nprof;
  m->nprof = 0;
  if (!(m->prof = tc__calloc((size_t)n + 1, sizeof *m->prof)) ||
      !(m->prof_names = tc__calloc((size_t)n + 1, sizeof *m->prof_names)))
    return tc__oom("tc_model_create");
  return walk(m->root, prof_one, m);
}

static tc_status init_one(tc_layer *l, void *arg) {
  return l->kind->init ? l->kind->init(l, arg) : TC_OK;
}

static tc_status init_all(tc_model *m) {
  tc_rng rng;
  tc_rng_init(&rng, tc_get_seed(), TC_RNG_STREAM_INIT);
  return walk(m->root, init_one, &rng);
}

/* ---- lifecycle ---- */

static const tc_model_options model_defaults = TC_MODEL_OPTIONS_INIT;

TC_API tc_status tc_model_options_init(tc_model_options *o,
                                       size_t struct_size) {
  return tc__nn_options_init(o, &model_defaults, sizeof *o, struct_size,
                             "tc_model_options_init");
}

TC_API void tc_model_destroy(tc_model *m) {
  if (!m)
    return;
  tc__nn_layer_free(m->root);
  for (int64_t i = 0; i < m->np; i++)
    tc__free(m->p[i].name);
  for (int64_t i = 0; i < m->nb; i++)
    tc__free(m->b[i].name);
  tc__free(m->p);
  tc__free(m->b);
  tc__free(m->s);
  for (int64_t i = 0; m->prof_names && i < m->nprof; i++)
    tc__free(m->prof_names[i]);
  tc__free(m->prof_names);
  tc__free(m->prof);
  tc_tensor_destroy(m->params);
  tc_tensor_destroy(m->grads);
  tc_tensor_destroy(m->ws);
  tc_tensor_destroy(m->out_grad);
  tc_tensor_destroy(m->in_grad);
  tc_tensor_destroy(m->pred);
  for (int64_t i = 0; i < m->ngslot; i++)
    tc_tensor_destroy(m->gslot[i].t);
  tc__free(m->gslot);
  for (int64_t i = 0; i < m->naslot; i++)
    tc_tensor_destroy(m->aslot[i].t);
  tc__free(m->aslot);
  tc_backend_destroy(m->be);
  tc__free(m);
}

TC_API tc_status tc_model_create(tc_model **out, tc_backend *be, tc_layer *root,
                                 const int64_t *input_shape, int ndim,
                                 const tc_model_options *opts) {
  static const char fn[] = "tc_model_create";
  tc_status st = TC_OK;
  tc_model *m = NULL;
  if (root && (root->parent || root->model))
    /* not ours: it belongs to a container or another model */
    return tc__error(TC_EINVAL,
                     "%s: root layer is already in a container "
                     "or model",
                     fn);
  if (!out || !be || !root || (ndim > 0 && !input_shape)) {
    st = tc__error(TC_EINVAL,
                   "%s: out, be, root and input_shape must not "
                   "be NULL",
                   fn);
    goto fail;
  }
  if (ndim < 1 || ndim > NN_SAMPLE_DIMS) {
    st = tc__error(TC_EINVAL,
                   "%s: input has %d dimensions per sample, "
                   "expected 1 to %d",
                   fn, ndim, NN_SAMPLE_DIMS);
    goto fail;
  }
  m = tc__calloc(1, sizeof *m);
  if (!m) {
    st = tc__oom(fn);
    goto fail;
  }
  if ((st = tc__nn_options(&m->o, &model_defaults, sizeof m->o, opts, fn)) !=
      TC_OK)
    goto fail;
  tc__backend_retain(be);
  m->be = be;
  m->root = root;
  root = NULL; /* m owns it now */
  m->training = 1;
  m->seed = tc_get_seed();
  m->in_ndim = ndim;
  memcpy(m->in_shape, input_shape, (size_t)ndim * sizeof *input_shape);
  if ((st = tc__nn_infer(m->root, input_shape, ndim, fn)) != TC_OK)
    goto fail;
  count_arg c = {m, 0};
  st = walk(m->root, count_one, &c);
  int64_t np = m->np, nb = m->nb;
  m->np = m->nb = 0;
  if (st != TC_OK)
    goto fail;
  if (!(m->p = tc__calloc((size_t)np + 1, sizeof *m->p)) ||
      !(m->b = tc__calloc((size_t)nb + 1, sizeof *m->b)) ||
      !(m->s = tc__calloc((size_t)(np + nb) + 1, sizeof *m->s))) {
    st = tc__oom(fn);
    goto fail;
  }
  if ((st = tc_tensor_create(&m->params, be, &c.floats, 1, TC_FLOAT32)) !=
          TC_OK ||
      (st = tc_tensor_create(&m->grads, be, &c.floats, 1, TC_FLOAT32)) != TC_OK)
    goto fail;
  place_arg pa = {m, 0};
  if ((st = walk(m->root, place_one, &pa)) != TC_OK ||
      (st = prof_list(m)) != TC_OK)
    goto fail;
  if ((st = init_all(m)) != TC_OK)
    goto fail;
  *out = m;
  return TC_OK;
fail:
  tc_model_destroy(m);
  tc__nn_layer_free(root); /* NULL once m owns it */
  return st;
}

/* ---- planning, forward, backward ---- */

typedef struct ws_arg {
  int64_t n;
  size_t max;
} ws_arg;

static tc_status ws_one(tc_layer *l, void *arg) {
  if (!l->kind->workspace)
    return TC_OK;
  ws_arg *w = arg;
  size_t bytes = 0;
  tc_status st = l->kind->workspace(l, w->n, &bytes);
  if (st == TC_OK && bytes > w->max)
    w->max = bytes;
  return st;
}

/* The shared workspace for batch n (grows only); its need in *need. */
static tc_status plan_ws(tc_model *m, int64_t n, size_t *need) {
  ws_arg w = {n, 0};
  tc_status st = walk(m->root, ws_one, &w);
  if (st == TC_OK && w.max > 0) {
    int64_t floats = (int64_t)((w.max + 3) / 4);
    st = tc__nn_ensure(&m->ws, m->be, &floats, 1, TC_FLOAT32);
  }
  if (st == TC_OK)
    *need = w.max;
  return st;
}

/* The full plan (see the top): per-layer buffers, then gradient slots. */
static tc_status plan_full(tc_model *m, int64_t n) {
  m->full_batch = 0;
  for (int64_t i = 0; i < m->ngslot; i++)
    m->gslot[i].need = 0;
  tc_status st = tc__nn_plan(m->root, n);
  for (int64_t i = 0; i < m->ngslot && st == TC_OK; i++)
    if (m->gslot[i].need > 0)
      st = tc__nn_ensure(&m->gslot[i].t, m->be, &m->gslot[i].need, 1,
                         TC_FLOAT32);
  if (st == TC_OK)
    st = plan_ws(m, n, &m->ws_full);
  if (st != TC_OK)
    return st;
  m->full_batch = n;
  if (n > m->full_cap)
    m->full_cap = n;
  return TC_OK;
}

static tc_status max_out(tc_layer *l, void *arg) {
  int64_t numel = 1, *max = arg;
  for (int d = 0; d < l->out_ndim; d++)
    numel *= l->out_shape[d];
  if (numel > *max)
    *max = numel;
  return TC_OK;
}

/* The inference arena for batch n: slots of the largest activation (every
 * layer's output, hence also a pooled shortcut or a max-pool argmax). */
static tc_status plan_arena(tc_model *m, int64_t n) {
  m->arena_batch = 0;
  int64_t per = 1;
  walk(m->root, max_out, &per);
  m->arena_floats = per * n;
  tc_status st = TC_OK;
  for (int64_t i = 0; i < m->naslot && st == TC_OK; i++)
    st = tc__nn_ensure(&m->aslot[i].t, m->be, &m->arena_floats, 1, TC_FLOAT32);
  if (st == TC_OK)
    st = plan_ws(m, n, &m->ws_arena);
  if (st == TC_OK)
    m->arena_batch = n;
  return st;
}

/* The model-owned output (and input) gradient for batch n. */
static tc_status plan_io(tc_model *m, int64_t n) {
  int64_t shape[TC_MAX_DIMS];
  int nd = tc__nn_batch_shape(shape, n, m->root->out_shape, m->root->out_ndim);
  tc_status st = tc__nn_ensure(&m->out_grad, m->be, shape, nd, TC_FLOAT32);
  if (st == TC_OK && m->o.input_grad) {
    nd = tc__nn_batch_shape(shape, n, m->in_shape, m->in_ndim);
    st = tc__nn_ensure(&m->in_grad, m->be, shape, nd, TC_FLOAT32);
  }
  m->batch = st == TC_OK ? n : 0;
  return st;
}

/* Runs the root in the full plan at batch n. */
static tc_status forward_full(tc_model *m, tc_tensor *x, int64_t n) {
  tc_status st = TC_OK;
  if (n != m->full_batch && (st = plan_full(m, n)) != TC_OK)
    return st;
  m->ws_bytes = m->ws_full;
  return tc__nn_forward(m->root, x);
}

static tc_status check_batch(const tc_model *m, const tc_tensor *t,
                             const int64_t *shape, int ndim, const char *what,
                             const char *fn) {
  char s1[96], s2[96];
  int ok = t->dtype == TC_FLOAT32 && t->ndim == ndim + 1;
  for (int i = 0; ok && i < ndim; i++)
    ok = t->shape[i + 1] == shape[i];
  if (!ok)
    return tc__error(TC_ESHAPE, "%s: %s has shape %s%s, expected (N, %s", fn,
                     what, tc__nn_shape_str(t->shape, t->ndim, s1, sizeof s1),
                     t->dtype == TC_FLOAT32 ? "" : " (not float32)",
                     tc__nn_shape_str(shape, ndim, s2, sizeof s2) + 1);
  if (t->shape[0] < 1)
    return tc__error(TC_ESHAPE, "%s: %s has an empty batch", fn, what);
  if (tc_tensor_backend(t)->iface != m->be->iface)
    return tc__error(TC_EINVAL,
                     "%s: %s lives on backend '%s', the model on "
                     "'%s'",
                     fn, what, tc_backend_name(tc_tensor_backend(t)),
                     tc_backend_name(m->be));
  return TC_OK;
}

TC_API tc_status tc_model_forward(tc_model *m, tc_tensor *x, tc_tensor **out) {
  static const char fn[] = "tc_model_forward";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(x, fn);
  TC__CHECK_NULL(out, fn);
  tc_status st = check_batch(m, x, m->in_shape, m->in_ndim, "input", fn);
  if (st != TC_OK)
    return st;
  int64_t n = x->shape[0];
  m->forwarded = 0;
  if (n != m->batch && (st = plan_io(m, n)) != TC_OK)
    return st;
  int arena = !m->training && n > m->full_cap;
  if (arena) {
    if (n != m->arena_batch && (st = plan_arena(m, n)) != TC_OK)
      return st;
    /* the last forward's output is no longer valid: every slot is free */
    for (int64_t i = 0; i < m->naslot; i++)
      m->aslot[i].used = 0;
    m->ws_bytes = m->ws_arena;
    m->arena_on = 1;
    st = tc__nn_forward(m->root, x);
    m->arena_on = 0;
  } else {
    st = forward_full(m, x, n);
  }
  if (st != TC_OK)
    return st;
  m->forwarded = 1;
  m->last_arena = arena;
  *out = m->root->y;
  return TC_OK;
}

TC_API tc_status tc_model_backward(tc_model *m, const tc_tensor *dy) {
  static const char fn[] = "tc_model_backward";
  TC__CHECK_NULL(m, fn);
  if (!m->forwarded)
    return tc__error(TC_ESTATE,
                     "%s: no successful forward to "
                     "back-propagate through",
                     fn);
  /* NULL: the gradient a loss wrote into tc_model_output_grad() */
  if (!dy)
    dy = m->out_grad;
  tc_status st = check_batch(m, dy, m->root->out_shape, m->root->out_ndim,
                             "output gradient", fn);
  if (st != TC_OK)
    return st;
  if (dy->shape[0] != m->batch)
    return tc__error(TC_ESHAPE,
                     "%s: output gradient has batch %lld, the "
                     "forward had %lld",
                     fn, (long long)dy->shape[0], (long long)m->batch);
  if (m->last_arena) {
    /* the arena kept nothing for backward: the same forward again in the
     * full plan (see the top) */
    m->forwarded = 0;
    if ((st = forward_full(m, m->root->x, m->batch)) != TC_OK)
      return st;
    m->forwarded = 1;
    m->last_arena = 0;
  }
  m->ws_bytes = m->ws_full;
  return tc__nn_backward(m->root, dy, m->o.input_grad ? m->in_grad : NULL, 0);
}

/* Row-wise argmax of `y` (n, classes) into host `out`: the backend's
 * argmax slot into the model's int32 buffer, else on a host copy. */
static tc_status predict_argmax(tc_model *m, const tc_tensor *y, int64_t n,
                                int32_t *out) {
  int64_t classes = y->numel / n;
  if (TC__HAS_SLOT(m->be->iface, argmax)) {
    tc_status st;
    if (!m->pred || m->pred->numel < n) {
      tc_tensor *t = NULL;
      if ((st = tc_tensor_create(&t, m->be, &n, 1, TC_INT32)) != TC_OK)
        return st;
      tc_tensor_destroy(m->pred);
      m->pred = t;
    }
    int32_t *pred = tc_tensor_data(m->pred);
    tc_argmax_args a = {sizeof a, n, classes, nn_f(y), NULL, pred, NULL};
    if ((st = m->be->iface->argmax(m->be->ctx, &a)) != TC_OK)
      return st;
    return m->be->iface->copy_d2h(m->be->ctx, out, pred,
                                  (size_t)n * sizeof *out);
  }
  size_t bytes = (size_t)y->numel * sizeof(float);
  float *h = tc__malloc(bytes);
  if (!h)
    return tc__oom("tc_model_predict");
  tc_status st = tc_tensor_copy_to_host(y, h, bytes);
  for (int64_t i = 0; st == TC_OK && i < n; i++) {
    const float *row = h + i * classes;
    int64_t best = 0; /* the first maximum, as torch.argmax */
    for (int64_t j = 1; j < classes; j++)
      if (row[j] > row[best])
        best = j;
    out[i] = (int32_t)best;
  }
  tc__free(h);
  return st;
}

TC_API tc_status tc_model_predict(tc_model *m, tc_tensor *x,
                                  int32_t *out_classes, int64_t n) {
  static const char fn[] = "tc_model_predict";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(x, fn);
  TC__CHECK_NULL(out_classes, fn);
  if (m->root->out_ndim != 1)
    return tc__error(TC_ESHAPE,
                     "%s: the model's output is not (N, classes) "
                     "but has %d per-sample dimensions",
                     fn, m->root->out_ndim);
  tc_status st = check_batch(m, x, m->in_shape, m->in_ndim, "input", fn);
  if (st != TC_OK)
    return st;
  if (n != x->shape[0])
    return tc__error(TC_ESHAPE,
                     "%s: out_classes has room for %lld "
                     "classes, the batch holds %lld images",
                     fn, (long long)n, (long long)x->shape[0]);
  /* evaluation mode for this call only: no dropout, running statistics
   * (a training-mode forward would also update them) */
  int training = m->training;
  m->training = 0;
  tc_tensor *y = NULL;
  st = tc_model_forward(m, x, &y);
  m->training = training;
  if (st != TC_OK)
    return st;
  return predict_argmax(m, y, n, out_classes);
}

TC_API tc_tensor *tc_model_output_grad(tc_model *m) {
  return m && m->batch ? m->out_grad : NULL;
}

TC_API tc_tensor *tc_model_input_grad(tc_model *m) {
  return m && m->batch ? m->in_grad : NULL;
}

TC_API int tc_model_output_shape(const tc_model *m,
                                 int64_t shape[TC_MAX_DIMS]) {
  if (!m || !shape)
    return -1;
  memset(shape, 0, TC_MAX_DIMS * sizeof *shape);
  memcpy(shape, m->root->out_shape, (size_t)m->root->out_ndim * sizeof *shape);
  return m->root->out_ndim;
}

/* ---- modes and state ---- */

TC_API tc_status tc_model_set_training(tc_model *m, int training) {
  TC__CHECK_NULL(m, "tc_model_set_training");
  m->training = training != 0;
  return TC_OK;
}

TC_API int tc_model_is_training(const tc_model *m) {
  return m ? m->training : -1;
}

TC_API tc_status tc_model_zero_grad(tc_model *m) {
  TC__CHECK_NULL(m, "tc_model_zero_grad");
  if (m->grads->numel == 0)
    return TC_OK;
  return m->be->iface->memset(m->be->ctx, tc_tensor_data(m->grads), 0,
                              (size_t)m->grads->numel * sizeof(float));
}

TC_API tc_status tc_model_reset_parameters(tc_model *m) {
  TC__CHECK_NULL(m, "tc_model_reset_parameters");
  return init_all(m);
}

TC_API int64_t tc_model_num_params(const tc_model *m) {
  return m ? m->np : -1;
}
TC_API int64_t tc_model_num_buffers(const tc_model *m) {
  return m ? m->nb : -1;
}
TC_API int64_t tc_model_num_state(const tc_model *m) {
  return m ? m->ns : -1;
}

static tc_status check_index(const tc_model *m, int64_t i, int64_t n,
                             const char *fn) {
  if (!m)
    return tc__error(TC_EINVAL, "%s: argument 'm' is NULL", fn);
  if (i < 0 || i >= n)
    return tc__error(TC_EINVAL, "%s: index %lld out of range [0, %lld)", fn,
                     (long long)i, (long long)n);
  return TC_OK;
}

TC_API tc_status tc_model_get_param(tc_model *m, int64_t i,
                                    const char **out_name,
                                    tc_tensor **out_param,
                                    tc_tensor **out_grad) {
  tc_status st = check_index(m, i, m ? m->np : 0, "tc_model_get_param");
  if (st != TC_OK)
    return st;
  if (out_name)
    *out_name = m->p[i].name;
  if (out_param)
    *out_param = m->p[i].t;
  if (out_grad)
    *out_grad = m->p[i].g;
  return TC_OK;
}

TC_API tc_status tc_model_get_buffer(tc_model *m, int64_t i,
                                     const char **out_name,
                                     tc_tensor **out_buffer) {
  tc_status st = check_index(m, i, m ? m->nb : 0, "tc_model_get_buffer");
  if (st != TC_OK)
    return st;
  if (out_name)
    *out_name = m->b[i].name;
  if (out_buffer)
    *out_buffer = m->b[i].t;
  return TC_OK;
}

TC_API tc_status tc_model_get_state(tc_model *m, int64_t i,
                                    const char **out_name,
                                    tc_tensor **out_tensor) {
  tc_status st = check_index(m, i, m ? m->ns : 0, "tc_model_get_state");
  if (st != TC_OK)
    return st;
  if (out_name)
    *out_name = m->s[i].name;
  if (out_tensor)
    *out_tensor = m->s[i].t;
  return TC_OK;
}

TC_API tc_status tc_model_find_state(tc_model *m, const char *name,
                                     tc_tensor **out_tensor) {
  static const char fn[] = "tc_model_find_state";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(name, fn);
  TC__CHECK_NULL(out_tensor, fn);
  for (int64_t i = 0; i < m->ns; i++)
    if (strcmp(m->s[i].name, name) == 0) {
      *out_tensor = m->s[i].t;
      return TC_OK;
    }
  return tc__error(TC_ENOTFOUND, "%s: no state entry named '%s'", fn, name);
}

TC_API tc_tensor *tc_model_params_flat(tc_model *m) {
  return m ? m->params : NULL;
}
TC_API tc_tensor *tc_model_grads_flat(tc_model *m) {
  return m ? m->grads : NULL;
}
TC_API tc_backend *tc_model_backend(const tc_model *m) {
  return m ? m->be : NULL;
}

TC_API uint64_t tc_model_get_rng_offset(const tc_model *m) {
  return m ? m->rng_offset : 0;
}
TC_API tc_status tc_model_set_rng_offset(tc_model *m, uint64_t offset) {
  TC__CHECK_NULL(m, "tc_model_set_rng_offset");
  m->rng_offset = offset;
  return TC_OK;
}
TC_API uint64_t tc_model_get_seed(const tc_model *m) {
  return m ? m->seed : 0;
}
TC_API tc_status tc_model_set_seed(tc_model *m, uint64_t seed) {
  TC__CHECK_NULL(m, "tc_model_set_seed");
  m->seed = seed;
  return TC_OK;
}

/* ---- profiling ---- */

TC_API tc_status tc_model_set_profiling(tc_model *m, int on) {
  TC__CHECK_NULL(m, "tc_model_set_profiling");
  m->profiling = on != 0;
  for (int64_t i = 0; i < m->nprof; i++)
    m->prof[i]->prof_on = m->profiling;
  return TC_OK;
}

TC_API int tc_model_is_profiling(const tc_model *m) {
  return m ? m->profiling : -1;
}

TC_API tc_status tc_model_reset_profile(tc_model *m) {
  TC__CHECK_NULL(m, "tc_model_reset_profile");
  for (int64_t i = 0; i < m->nprof; i++) {
    tc_layer *l = m->prof[i];
    l->prof_seconds[0] = l->prof_seconds[1] = 0.0;
    l->prof_calls[0] = l->prof_calls[1] = 0;
  }
  m->prof_inner = 0.0;
  return TC_OK;
}

TC_API int64_t tc_model_profile_count(const tc_model *m) {
  return m ? m->nprof : -1;
}

TC_API tc_status tc_model_get_profile(const tc_model *m, int64_t i,
                                      tc_layer_profile *out) {
  static const char fn[] = "tc_model_get_profile";
  TC__CHECK_NULL(out, fn);
  tc_status st = check_index(m, i, m ? m->nprof : 0, fn);
  if (st != TC_OK)
    return st;
  size_t size = out->struct_size;
  size_t min = offsetof(tc_layer_profile, kind) + sizeof out->kind;
  if (size < min)
    return tc__error(TC_EINVAL,
                     "%s: out->struct_size %zu is too small "
                     "(at least %zu)",
                     fn, size, min);
  if (size > sizeof *out)
    return tc__error(TC_EVERSION,
                     "%s: out->struct_size %zu is larger than "
                     "this library's %zu (header newer than library)",
                     fn, size, sizeof *out);
  const tc_layer *l = m->prof[i];
  tc_layer_profile p = {.struct_size = size};
  p.name = m->prof_names[i];
  p.kind = l->kind->name;
  p.forward_seconds = l->prof_seconds[0];
  p.backward_seconds = l->prof_seconds[1];
  p.forward_calls = l->prof_calls[0];
  p.backward_calls = l->prof_calls[1];
  memcpy(out, &p, size);
  return TC_OK;
}
