/*
 * tensor.c - tensors: a shape over reference-counted backend storage.
 * Views share storage; nothing here touches device memory except through
 * the backend table.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

size_t tc__dtype_size(tc_dtype dtype) {
  switch (dtype) {
  case TC_FLOAT32:
    return 4;
  case TC_INT32:
    return 4;
  case TC_INT64:
    return 8;
  }
  return 0;
}

tc_status tc__shape_numel(const int64_t *shape, int ndim, int64_t *out,
                          const char *fn) {
  if (ndim < 0 || ndim > TC_MAX_DIMS)
    return tc__error(TC_EINVAL, "%s: ndim = %d, expected 0 to %d", fn, ndim,
                     TC_MAX_DIMS);
  if (ndim > 0 && shape == NULL)
    return tc__error(TC_EINVAL, "%s: argument 'shape' is NULL", fn);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return tc__error(TC_EINVAL, "%s: shape[%d] = %lld is negative", fn, i,
                       (long long)shape[i]);
    /* cap at 2^48 elements: far beyond any memory, safe for byte sizes */
    if (__builtin_mul_overflow(n, shape[i], &n) || n > ((int64_t)1 << 48))
      return tc__error(TC_ESHAPE, "%s: element count overflows", fn);
  }
  *out = n;
  return TC_OK;
}

static tc_status check_tensor(const tc_tensor *t, const char *fn) {
  if (!t)
    return tc__error(TC_EINVAL, "%s: tensor is NULL", fn);
  return TC_OK;
}

TC_API tc_status tc_tensor_create(tc_tensor **out, tc_backend *be,
                                  const int64_t *shape, int ndim,
                                  tc_dtype dtype) {
  static const char fn[] = "tc_tensor_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(be, fn);
  int64_t numel;
  tc_status st = tc__shape_numel(shape, ndim, &numel, fn);
  if (st != TC_OK)
    return st;
  size_t esize = tc__dtype_size(dtype);
  if (esize == 0)
    return tc__error(TC_EINVAL, "%s: unknown dtype %d", fn, (int)dtype);
  size_t bytes = (size_t)numel * esize;

  tc_tensor *t = tc__calloc(1, sizeof *t);
  tc__storage *s = tc__calloc(1, sizeof *s);
  if (!t || !s) {
    tc__free(t);
    tc__free(s);
    return tc__oom(fn);
  }
  st = be->iface->alloc(be->ctx, &s->data, bytes);
  if (st == TC_OK && bytes > 0)
    st = be->iface->memset(be->ctx, s->data, 0, bytes);
  if (st != TC_OK) {
    if (s->data)
      be->iface->free(be->ctx, s->data);
    tc__free(t);
    tc__free(s);
    return st;
  }
  tc__backend_retain(be);
  s->be = be;
  s->bytes = bytes;
  atomic_init(&s->refcount, 1);
  t->storage = s;
  t->ndim = ndim;
  t->dtype = dtype;
  t->numel = numel;
  if (ndim > 0)
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  *out = t;
  return TC_OK;
}

TC_API void tc_tensor_destroy(tc_tensor *t) {
  if (!t)
    return;
  tc__storage *s = t->storage;
  if (atomic_fetch_sub(&s->refcount, 1) == 1) {
    tc_backend *be = s->be;
    be->iface->free(be->ctx, s->data);
    tc__free(s);
    tc_backend_destroy(be);
  }
  tc__free(t);
}

TC_API tc_status tc_tensor_view(tc_tensor **out, tc_tensor *t,
                                const int64_t *shape, int ndim) {
  static const char fn[] = "tc_tensor_view";
  TC__CHECK_NULL(out, fn);
  tc_status st = check_tensor(t, fn);
  if (st != TC_OK)
    return st;
  int64_t numel;
  if ((st = tc__shape_numel(shape, ndim, &numel, fn)) != TC_OK)
    return st;
  if (numel != t->numel)
    return tc__error(TC_ESHAPE, "%s: view has %lld elements, tensor has %lld",
                     fn, (long long)numel, (long long)t->numel);
  tc_tensor *v = tc__calloc(1, sizeof *v);
  if (!v)
    return tc__oom(fn);
  *v = *t;
  memset(v->shape, 0, sizeof v->shape);
  if (ndim > 0)
    memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
  v->ndim = ndim;
  atomic_fetch_add(&t->storage->refcount, 1);
  *out = v;
  return TC_OK;
}

TC_API tc_status tc_tensor_reshape(tc_tensor *t, const int64_t *shape,
                                   int ndim) {
  static const char fn[] = "tc_tensor_reshape";
  tc_status st = check_tensor(t, fn);
  if (st != TC_OK)
    return st;
  int64_t numel;
  if ((st = tc__shape_numel(shape, ndim, &numel, fn)) != TC_OK)
    return st;
  if (numel != t->numel)
    return tc__error(TC_ESHAPE,
                     "%s: new shape has %lld elements, tensor "
                     "has %lld",
                     fn, (long long)numel, (long long)t->numel);
  memset(t->shape, 0, sizeof t->shape);
  if (ndim > 0)
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  t->ndim = ndim;
  return TC_OK;
}

TC_API int tc_tensor_ndim(const tc_tensor *t) {
  return t ? t->ndim : -1;
}

TC_API int64_t tc_tensor_dim(const tc_tensor *t, int axis) {
  if (!t)
    return -1;
  if (axis < 0)
    axis += t->ndim;
  if (axis < 0 || axis >= t->ndim)
    return -1;
  return t->shape[axis];
}

TC_API int tc_tensor_shape(const tc_tensor *t, int64_t shape[TC_MAX_DIMS]) {
  if (!t || !shape)
    return -1;
  memcpy(shape, t->shape, sizeof t->shape);
  return t->ndim;
}

TC_API int64_t tc_tensor_numel(const tc_tensor *t) {
  return t ? t->numel : -1;
}

TC_API tc_dtype tc_tensor_dtype(const tc_tensor *t) {
  return t ? t->dtype : TC_FLOAT32;
}

TC_API tc_backend *tc_tensor_backend(const tc_tensor *t) {
  return t ? t->storage->be : NULL;
}

TC_API void *tc_tensor_data(tc_tensor *t) {
  return t ? (char *)t->storage->data + t->offset_bytes : NULL;
}

static size_t tensor_bytes(const tc_tensor *t) {
  return (size_t)t->numel * tc__dtype_size(t->dtype);
}

TC_API tc_status tc_tensor_copy_from_host(tc_tensor *t, const void *src,
                                          size_t bytes) {
  static const char fn[] = "tc_tensor_copy_from_host";
  tc_status st = check_tensor(t, fn);
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(src, fn);
  if (bytes != tensor_bytes(t))
    return tc__error(TC_ESHAPE, "%s: %zu bytes given, tensor holds %zu", fn,
                     bytes, tensor_bytes(t));
  if (bytes == 0)
    return TC_OK;
  tc_backend *be = t->storage->be;
  return be->iface->copy_h2d(be->ctx, tc_tensor_data(t), src, bytes);
}

TC_API tc_status tc_tensor_copy_to_host(const tc_tensor *t, void *dst,
                                        size_t bytes) {
  static const char fn[] = "tc_tensor_copy_to_host";
  tc_status st = check_tensor(t, fn);
  if (st != TC_OK)
    return st;
  TC__CHECK_NULL(dst, fn);
  if (bytes != tensor_bytes(t))
    return tc__error(TC_ESHAPE, "%s: buffer of %zu bytes, tensor holds %zu", fn,
                     bytes, tensor_bytes(t));
  if (bytes == 0)
    return TC_OK;
  tc_backend *be = t->storage->be;
  return be->iface->copy_d2h(be->ctx, dst, tc_tensor_data((tc_tensor *)t),
                             bytes);
}

TC_API tc_status tc_tensor_copy(tc_tensor *dst, const tc_tensor *src) {
  static const char fn[] = "tc_tensor_copy";
  tc_status st = check_tensor(dst, fn);
  if (st == TC_OK)
    st = check_tensor(src, fn);
  if (st != TC_OK)
    return st;
  if (dst->dtype != src->dtype || dst->numel != src->numel)
    return tc__error(TC_ESHAPE,
                     "%s: dtype or element count differ (%lld vs "
                     "%lld)",
                     fn, (long long)dst->numel, (long long)src->numel);
  size_t bytes = tensor_bytes(src);
  if (bytes == 0)
    return TC_OK;
  tc_backend *db = dst->storage->be, *sb = src->storage->be;
  void *d = tc_tensor_data(dst), *s = tc_tensor_data((tc_tensor *)src);
  if (db == sb)
    return db->iface->copy_d2d(db->ctx, d, s, bytes);
  if (db->iface == sb->iface) {
    /* two instances of one backend (two CUDA streams, maybe two devices):
     * the copy runs in the destination's order, so first wait for the
     * work queued on the source (which may still be writing it), and
     * after it for the destination's (so the source's next work cannot
     * overwrite it while the copy reads it) */
    st = sb->iface->synchronize(sb->ctx);
    if (st == TC_OK)
      st = db->iface->copy_d2d(db->ctx, d, s, bytes);
    if (st == TC_OK)
      st = db->iface->synchronize(db->ctx);
    return st;
  }
  /* across backends: stage through host memory */
  void *tmp = tc__malloc(bytes);
  if (!tmp)
    return tc__oom(fn);
  st = sb->iface->copy_d2h(sb->ctx, tmp, s, bytes);
  if (st == TC_OK)
    st = db->iface->copy_h2d(db->ctx, d, tmp, bytes);
  tc__free(tmp);
  return st;
}

TC_API tc_status tc_tensor_fill(tc_tensor *t, double value) {
  static const char fn[] = "tc_tensor_fill";
  tc_status st = check_tensor(t, fn);
  if (st != TC_OK)
    return st;
  if (t->numel == 0)
    return TC_OK;
  tc_backend *be = t->storage->be;
  if (t->dtype != TC_INT64 && !TC__HAS_SLOT(be->iface, fill))
    return tc__error(TC_EUNSUPPORTED, "%s: backend '%s' has no fill", fn,
                     be->iface->name);
  if (t->dtype == TC_INT64) {
    if (!(value >= -9.2e18 && value <= 9.2e18))
      return tc__error(TC_EINVAL, "%s: %g does not fit an int64 tensor", fn,
                       value);
    int64_t *tmp = tc__calloc((size_t)t->numel, sizeof *tmp);
    if (!tmp)
      return tc__oom(fn);
    for (int64_t i = 0; i < t->numel; i++)
      tmp[i] = (int64_t)value;
    st = be->iface->copy_h2d(be->ctx, tc_tensor_data(t), tmp,
                             (size_t)t->numel * sizeof *tmp);
    tc__free(tmp);
    return st;
  }
  if (t->dtype == TC_INT32) {
    if (!(value >= INT32_MIN && value <= INT32_MAX))
      return tc__error(TC_EINVAL, "%s: %g does not fit an int32 tensor", fn,
                       value);
    int32_t v = (int32_t)value;
    /* int32 fill passes the bit pattern through the float fill slot, which
     * copies alpha's bits unchanged */
    float f;
    memcpy(&f, &v, sizeof f);
    tc_eltwise_args a = {sizeof a, t->numel,         f, 0.f, NULL,
                         NULL,     tc_tensor_data(t)};
    return be->iface->fill(be->ctx, &a);
  }
  tc_eltwise_args a = {sizeof a, t->numel, (float)value,     0.f,
                       NULL,     NULL,     tc_tensor_data(t)};
  return be->iface->fill(be->ctx, &a);
}
