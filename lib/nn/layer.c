/*
 * layer.c - the generic layer object: allocation and destruction, children,
 * parameter/buffer declarations, option structs, names and shapes for
 * messages, tensor views, and the per-layer dispatch containers use to
 * drive a child (infer, plan, forward, backward, with profiling). Where a
 * layer's output and temporaries live is plan.c's.
 */
#include <stdio.h>
#include <time.h>

#include "nn_internal.h"

tc_status tc__nn_layer_alloc(tc_layer **out, const nn_kind *kind, size_t size,
                             const char *fn) {
  if (!out)
    return tc__error(TC_EINVAL, "%s: argument 'out' is NULL", fn);
  tc_layer *l = tc__calloc(1, size);
  if (!l)
    return tc__oom(fn);
  l->kind = kind;
  *out = l;
  return TC_OK;
}

void tc__nn_describe(const tc_layer *l, nn_desc *d) {
  memset(d, 0, sizeof *d);
  if (l->kind->describe)
    l->kind->describe(l, d);
}

void tc__nn_layer_free(tc_layer *l) {
  if (!l)
    return;
  for (int64_t i = 0; i < l->nchildren; i++)
    tc__nn_layer_free(l->children[i]);
  tc__free(l->children);
  if (l->kind->release)
    l->kind->release(l);
  for (int i = 0; i < NN_MAX_PARAMS; i++) {
    tc_tensor_destroy(l->param[i]);
    tc_tensor_destroy(l->grad[i]);
  }
  for (int i = 0; i < NN_MAX_BUFFERS; i++)
    tc_tensor_destroy(l->buffer[i]);
  tc_tensor_destroy(l->y_own);
  tc_tensor_destroy(l->scratch);
  tc__free(l->name);
  tc__free(l);
}

TC_API void tc_layer_destroy(tc_layer *l) {
  /* a layer inside a container or model belongs to it */
  if (!l || l->parent || l->model)
    return;
  tc__nn_layer_free(l);
}

TC_API const char *tc_layer_kind(const tc_layer *l) {
  return l ? l->kind->name : "";
}

static tc_status check_name(const tc_layer *parent, const char *name,
                            const char *fn) {
  if (!name || !*name || strchr(name, '.'))
    return tc__error(TC_EINVAL,
                     "%s: name '%s' must be non-empty and "
                     "without '.'",
                     fn, name ? name : "(null)");
  if (strlen(name) > 200)
    return tc__error(TC_EINVAL, "%s: name longer than 200 characters", fn);
  for (int64_t i = 0; i < parent->nchildren; i++)
    if (strcmp(parent->children[i]->name, name) == 0)
      return tc__error(TC_EINVAL, "%s: name '%s' is already used", fn, name);
  return TC_OK;
}

tc_status tc__nn_add_child(tc_layer *parent, const char *name, tc_layer *child,
                           const char *fn) {
  tc_status st = TC_OK;
  if (!child)
    return tc__error(TC_EINVAL, "%s: argument 'layer' is NULL", fn);
  if (child->parent || child->model || child == parent)
    /* not ours to destroy: it belongs to another container */
    return tc__error(TC_EINVAL,
                     "%s: layer already belongs to a container "
                     "or model",
                     fn);
  if ((st = check_name(parent, name, fn)) != TC_OK)
    goto fail;
  char *copy = tc__strdup(name);
  if (!copy) {
    st = tc__oom(fn);
    goto fail;
  }
  if (parent->nchildren == parent->cap_children) {
    int64_t cap = parent->cap_children ? 2 * parent->cap_children : 4;
    tc_layer **ch = tc__malloc((size_t)cap * sizeof *ch);
    if (!ch) {
      tc__free(copy);
      st = tc__oom(fn);
      goto fail;
    }
    if (parent->nchildren)
      memcpy(ch, parent->children, (size_t)parent->nchildren * sizeof *ch);
    tc__free(parent->children);
    parent->children = ch;
    parent->cap_children = cap;
  }
  child->name = copy;
  child->parent = parent;
  parent->children[parent->nchildren++] = child;
  return TC_OK;
fail:
  tc__nn_layer_free(child);
  return st;
}

void tc__nn_declare_param(tc_layer *l, const char *name, const int64_t *shape,
                          int ndim) {
  nn_spec *s = &l->pspec[l->nparams++];
  s->name = name;
  s->ndim = ndim;
  s->dtype = TC_FLOAT32;
  memcpy(s->shape, shape, (size_t)ndim * sizeof *shape);
}

void tc__nn_declare_buffer(tc_layer *l, const char *name, const int64_t *shape,
                           int ndim, tc_dtype dtype) {
  nn_spec *s = &l->bspec[l->nbuffers++];
  s->name = name;
  s->ndim = ndim;
  s->dtype = dtype;
  if (ndim)
    memcpy(s->shape, shape, (size_t)ndim * sizeof *shape);
}

const char *tc__nn_path(const tc_layer *l, char *buf, size_t size) {
  const tc_layer *chain[64];
  int n = 0;
  for (const tc_layer *p = l; p && p->name && n < 64; p = p->parent)
    chain[n++] = p;
  if (n == 0) {
    snprintf(buf, size, "<root %s>", l->kind->name);
    return buf;
  }
  size_t used = 0;
  buf[0] = '\0';
  for (int i = n - 1; i >= 0 && used < size; i--) {
    int w =
        snprintf(buf + used, size - used, "%s%s", chain[i]->name, i ? "." : "");
    if (w < 0)
      break;
    used += (size_t)w;
  }
  return buf;
}

const char *tc__nn_shape_str(const int64_t *shape, int ndim, char *buf,
                             size_t size) {
  size_t used = 0;
  int w = snprintf(buf, size, "(");
  used = w > 0 ? (size_t)w : 0;
  for (int i = 0; i < ndim && used < size; i++) {
    w = snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                 (long long)shape[i]);
    if (w < 0)
      break;
    used += (size_t)w;
  }
  if (used < size)
    snprintf(buf + used, size - used, ")");
  return buf;
}

tc_backend *tc__nn_be(const tc_layer *l) {
  return tc__nn_model_backend(l->model);
}

tc_status tc__nn_unsupported(const char *op) {
  return tc__error(TC_EUNSUPPORTED, "backend lacks the '%s' operation", op);
}

tc_status tc__nn_view_at(tc_tensor **out, tc_tensor *base, size_t offset,
                         const int64_t *shape, int ndim, tc_dtype dtype) {
  int64_t numel;
  tc_status st = tc__shape_numel(shape, ndim, &numel, "nn view");
  if (st != TC_OK)
    return st;
  tc_tensor *v = tc__calloc(1, sizeof *v);
  if (!v)
    return tc__oom("nn view");
  v->storage = base->storage;
  v->offset_bytes = base->offset_bytes + offset;
  v->ndim = ndim;
  v->dtype = dtype;
  v->numel = numel;
  if (ndim)
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
  atomic_fetch_add(&base->storage->refcount, 1);
  *out = v;
  return TC_OK;
}

void tc__nn_alias(tc_tensor *alias, const tc_tensor *x, const int64_t *shape,
                  int ndim) {
  alias->storage = x->storage;
  alias->offset_bytes = x->offset_bytes;
  alias->dtype = x->dtype;
  alias->ndim = ndim;
  memset(alias->shape, 0, sizeof alias->shape);
  memcpy(alias->shape, shape, (size_t)ndim * sizeof *shape);
  alias->numel = x->numel;
}

void tc__nn_view_set(tc_tensor *view, const tc_tensor *base,
                     const int64_t *shape, int ndim, tc_dtype dtype) {
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++)
    numel *= shape[i];
  view->storage = base->storage;
  view->offset_bytes = base->offset_bytes;
  view->dtype = dtype;
  view->ndim = ndim;
  memset(view->shape, 0, sizeof view->shape);
  memcpy(view->shape, shape, (size_t)ndim * sizeof *shape);
  view->numel = numel;
}

int tc__nn_batch_shape(int64_t *out, int64_t n, const int64_t *shape,
                       int ndim) {
  out[0] = n;
  memcpy(out + 1, shape, (size_t)ndim * sizeof *shape);
  return ndim + 1;
}

tc_status tc__nn_pass_grad(tc_backend *be, const tc_tensor *dy, tc_tensor *dx,
                           int acc) {
  if (!dx)
    return TC_OK;
  int64_t n = dx->numel;
  if (acc) {
    tc_status st = NN_SLOT(be, axpy);
    if (st != TC_OK)
      return st;
    tc_eltwise_args a = {sizeof a, n, 1.f, 0.f, nn_f(dy), NULL, nn_f(dx)};
    return be->iface->axpy(be->ctx, &a);
  }
  if (nn_f(dx) == nn_f(dy) || n == 0)
    return TC_OK;
  return be->iface->copy_d2d(be->ctx, nn_f(dx), nn_f(dy),
                             (size_t)n * sizeof(float));
}

tc_status tc__nn_fill(tc_backend *be, float *dst, int64_t n, float alpha) {
  if (n == 0)
    return TC_OK;
  if (alpha == 0.f)
    return be->iface->memset(be->ctx, dst, 0, (size_t)n * sizeof(float));
  if (TC__HAS_SLOT(be->iface, fill)) {
    tc_eltwise_args a = {sizeof a, n, alpha, 0.f, NULL, NULL, dst};
    return be->iface->fill(be->ctx, &a);
  }
  /* without a fill slot: copy from a host block (allocates nothing) */
  float block[256];
  for (int i = 0; i < 256; i++)
    block[i] = alpha;
  for (int64_t i = 0; i < n; i += 256) {
    int64_t k = n - i < 256 ? n - i : 256;
    tc_status st =
        be->iface->copy_h2d(be->ctx, dst + i, block, (size_t)k * sizeof(float));
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

tc_status tc__nn_infer(tc_layer *l, const int64_t *in_shape, int in_ndim,
                       const char *fn) {
  char p[256], s[96];
  if (in_ndim > NN_SAMPLE_DIMS)
    return tc__error(TC_ESHAPE,
                     "%s: %s: input has %d dimensions per "
                     "sample, at most %d",
                     fn, tc__nn_path(l, p, sizeof p), in_ndim, NN_SAMPLE_DIMS);
  memset(l->in_shape, 0, sizeof l->in_shape);
  memcpy(l->in_shape, in_shape, (size_t)in_ndim * sizeof *in_shape);
  l->in_ndim = in_ndim;
  for (int i = 0; i < in_ndim; i++)
    if (in_shape[i] < 1)
      return tc__error(TC_ESHAPE,
                       "%s: %s: input %s has an empty "
                       "dimension",
                       fn, tc__nn_path(l, p, sizeof p),
                       tc__nn_shape_str(in_shape, in_ndim, s, sizeof s));
  tc_status st = l->kind->infer(l, fn);
  if (st != TC_OK)
    return st;
  for (int i = 0; i < l->out_ndim; i++)
    if (l->out_shape[i] < 1)
      return tc__error(
          TC_ESHAPE, "%s: %s: output %s would be empty", fn,
          tc__nn_path(l, p, sizeof p),
          tc__nn_shape_str(l->out_shape, l->out_ndim, s, sizeof s));
  return TC_OK;
}

tc_status tc__nn_plan(tc_layer *l, int64_t n) {
  tc_status st = l->kind->plan(l, n);
  if (st == TC_OK)
    l->batch = n;
  return st;
}

/* The clock after the backend has finished its queued work. */
static tc_status prof_now(tc_backend *be, double *out) {
  tc_status st = be->iface->synchronize(be->ctx);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  *out = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  return st;
}

/* Runs the layer's forward (dir 0) or backward (dir 1) and adds its
 * exclusive time: the total less what nested profiled layers added to the
 * model's inner counter, which is then given the total for our parent. */
static tc_status prof_call(tc_layer *l, int dir, tc_tensor *x,
                           const tc_tensor *dy, tc_tensor *dx, int acc) {
  tc_backend *be = tc__nn_be(l);
  double *inner = tc__nn_model_prof_inner(l->model);
  double saved = *inner, t0, t1;
  *inner = 0.0;
  tc_status st = prof_now(be, &t0);
  if (st == TC_OK)
    st = dir ? l->kind->backward(l, dy, dx, acc) : l->kind->forward(l, x);
  tc_status st2 = prof_now(be, &t1);
  if (st == TC_OK)
    st = st2;
  double total = t1 - t0;
  l->prof_seconds[dir] += total - *inner;
  l->prof_calls[dir]++;
  *inner = saved + total;
  return st;
}

tc_status tc__nn_forward(tc_layer *l, tc_tensor *x) {
  l->x = x;
  tc_status st = tc__nn_place_output(l, x->shape[0]);
  if (st != TC_OK)
    return st;
  if (l->prof_on)
    return prof_call(l, 0, x, NULL, NULL, 0);
  return l->kind->forward(l, x);
}

void tc__nn_prof_count(tc_layer *l, int dir) {
  if (l->prof_on)
    l->prof_calls[dir]++;
}

tc_status tc__nn_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                          int acc) {
  tc_status st = l->prof_on ? prof_call(l, 1, NULL, dy, dx, acc)
                            : l->kind->backward(l, dy, dx, acc);
  if (st == TC_OK && l->nparams > 0 && l->model)
    tc__nn_model_grad_ready(l->model, l);
  return st;
}
