/*
 * model.c - a model: a layer tree placed on a backend. Creation checks the
 * shapes, names every parameter and buffer as PyTorch names the same module
 * tree, places parameters in one flat arena and gradients in another (each
 * tensor a view at its offset, in named_parameters() order, unpadded, so
 * the arena equals torch.cat([p.flatten() for p in model.parameters()])),
 * creates buffers, and draws the default initialisation. Forward runs the
 * tree, backward runs it in reverse; where activations, gradient
 * temporaries and the workspace live, and which plan a forward runs in, is
 * plan.c's: the model holds its nn_plan and delegates to it.
 */
#include <stddef.h>
#include <stdio.h>

#include "../options.h"
#include "plan.h"

typedef struct nn_entry {
  char *name;
  tc_tensor *t;
  tc_tensor *g;
} nn_entry;

struct tc_model {
  tc_backend *be;
  tc_layer *root;
  int64_t in_shape[NN_SAMPLE_DIMS];
  int in_ndim;
  tc_model_options o;
  tc_tensor *params, *grads; /* 1-D arenas */
  nn_entry *p, *b, *s;       /* parameters, buffers, state (borrowed) */
  int64_t np, nb, ns;
  nn_plan plan; /* activations, gradient slots, workspace (plan.c) */
  tc_tensor *out_grad, *in_grad;
  int64_t batch; /* the last forward's batch size, 0: none */
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

nn_plan *tc__nn_model_plan(const tc_model *m) {
  /* layers reach the plan through their model (never a const object) */
  return (nn_plan *)&m->plan;
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
  tc__nn_plan_invalidate(&m->plan);
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
  return tc__options_init(o, struct_size, &model_defaults, sizeof *o,
                          TC__SIZE0_MODEL_OPTIONS, "tc_model_options_init");
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
  tc_tensor_destroy(m->out_grad);
  tc_tensor_destroy(m->in_grad);
  tc_tensor_destroy(m->pred);
  tc__nn_plan_free(&m->plan);
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
  if ((st = tc__options_accept(&m->o, sizeof m->o, opts, &model_defaults,
                               TC__SIZE0_MODEL_OPTIONS, fn)) != TC_OK)
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
  if ((st = tc__nn_plan_forward(&m->plan, m->root, x, m->training)) != TC_OK)
    return st;
  m->forwarded = 1;
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
  if ((st = tc__nn_plan_backward_ready(&m->plan, m->root, m->batch)) != TC_OK) {
    m->forwarded = 0;
    return st;
  }
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
