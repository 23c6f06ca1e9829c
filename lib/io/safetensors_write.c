/*
 * safetensors_write.c - collects tensors (host copies taken when added)
 * and `__metadata__` strings, then writes a safetensors file atomically
 * (atomic_file.c). Layout: the 8-byte length, the JSON header padded with
 * spaces to a multiple of 8 (so every tensor starts 8-byte aligned when
 * the file is mapped), `__metadata__` first, tensors sorted by name in the
 * header and in the byte buffer alike. The header is printed by hand:
 * integers must be exact and the output deterministic.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

#define MAX_RANK 64

typedef struct w_entry {
  char *name;
  tc_st_dtype dtype;
  int ndim;
  int64_t shape[MAX_RANK];
  void *data;
  size_t bytes;
} w_entry;

typedef struct w_meta {
  char *key, *val;
} w_meta;

struct tc_safetensors_writer {
  w_entry *e;
  size_t n, cap;
  w_meta *m;
  size_t nm, capm;
};

TC_API tc_status tc_safetensors_writer_create(tc_safetensors_writer **out) {
  static const char fn[] = "tc_safetensors_writer_create";
  TC__CHECK_NULL(out, fn);
  tc_safetensors_writer *w = tc__calloc(1, sizeof *w);
  if (!w)
    return tc__oom(fn);
  *out = w;
  return TC_OK;
}

TC_API void tc_safetensors_writer_destroy(tc_safetensors_writer *w) {
  if (!w)
    return;
  for (size_t i = 0; i < w->n; i++) {
    tc__free(w->e[i].name);
    tc__free(w->e[i].data);
  }
  for (size_t i = 0; i < w->nm; i++) {
    tc__free(w->m[i].key);
    tc__free(w->m[i].val);
  }
  tc__free(w->e);
  tc__free(w->m);
  tc__free(w);
}

/* Grows an array of `size`-byte items to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return 1;
  size_t nc = *cap ? *cap * 2 : 16;
  void *p = tc__calloc(nc, size);
  if (!p)
    return 0;
  if (n)
    memcpy(p, *arr, n * size);
  tc__free(*arr);
  *arr = p;
  *cap = nc;
  return 1;
}

static tc_status check_name(const tc_safetensors_writer *w, const char *name,
                            const char *fn) {
  size_t len = strlen(name);
  if (len == 0 || !tc__utf8_valid((const unsigned char *)name, len))
    return tc__error(TC_EINVAL, "%s: name is empty or not UTF-8", fn);
  if (strcmp(name, "__metadata__") == 0)
    return tc__error(TC_EINVAL, "%s: '__metadata__' is reserved", fn);
  for (size_t i = 0; i < w->n; i++)
    if (strcmp(w->e[i].name, name) == 0)
      return tc__error(TC_EINVAL, "%s: tensor '%.200s' added twice", fn, name);
  return TC_OK;
}

/* Adds an entry; takes ownership of `data` only on success. */
static tc_status add_entry(tc_safetensors_writer *w, const char *name,
                           tc_st_dtype dtype, const int64_t *shape, int ndim,
                           void *data, size_t bytes, const char *fn) {
  char *nm = tc__strdup(name);
  if (!nm || !grow((void **)&w->e, &w->cap, w->n, sizeof *w->e)) {
    tc__free(nm);
    return tc__oom(fn);
  }
  w_entry *e = &w->e[w->n++];
  memset(e, 0, sizeof *e);
  e->name = nm;
  e->dtype = dtype;
  e->ndim = ndim;
  if (ndim > 0)
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
  e->data = data;
  e->bytes = bytes;
  return TC_OK;
}

TC_API tc_status tc_safetensors_writer_add(tc_safetensors_writer *w,
                                           const char *name, tc_st_dtype dtype,
                                           const int64_t *shape, int ndim,
                                           const void *data, size_t bytes) {
  static const char fn[] = "tc_safetensors_writer_add";
  TC__CHECK_NULL(w, fn);
  TC__CHECK_NULL(name, fn);
  int bits = tc_st_dtype_bits(dtype);
  if (bits == 0)
    return tc__error(TC_EINVAL, "%s: unknown dtype %d", fn, (int)dtype);
  if (ndim < 0 || ndim > MAX_RANK || (ndim > 0 && !shape))
    return tc__error(TC_EINVAL, "%s: ndim %d (0 to %d, shape non-NULL)", fn,
                     ndim, MAX_RANK);
  uint64_t numel = 1, nbits;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return tc__error(TC_EINVAL, "%s: shape[%d] = %" PRId64 " < 0", fn, i,
                       shape[i]);
    if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
      return tc__error(TC_ESHAPE, "%s: element count overflows", fn);
  }
  if (__builtin_mul_overflow(numel, (uint64_t)bits, &nbits) || nbits % 8 ||
      nbits / 8 != bytes)
    return tc__error(TC_ESHAPE,
                     "%s: '%.200s' needs %llu bits, %zu bytes "
                     "given",
                     fn, name, (unsigned long long)nbits, bytes);
  if (bytes > 0 && !data)
    return tc__error(TC_EINVAL, "%s: argument 'data' is NULL", fn);
  tc_status st = check_name(w, name, fn);
  if (st != TC_OK)
    return st;
  void *copy = tc__malloc(bytes ? bytes : 1);
  if (!copy)
    return tc__oom(fn);
  if (bytes)
    memcpy(copy, data, bytes);
  st = add_entry(w, name, dtype, shape, ndim, copy, bytes, fn);
  if (st != TC_OK)
    tc__free(copy);
  return st;
}

TC_API tc_status tc_safetensors_writer_add_tensor(tc_safetensors_writer *w,
                                                  const char *name,
                                                  const tc_tensor *t) {
  static const char fn[] = "tc_safetensors_writer_add_tensor";
  TC__CHECK_NULL(w, fn);
  TC__CHECK_NULL(name, fn);
  TC__CHECK_NULL(t, fn);
  tc_st_dtype d;
  switch (tc_tensor_dtype(t)) {
  case TC_FLOAT32:
    d = TC_ST_F32;
    break;
  case TC_INT32:
    d = TC_ST_I32;
    break;
  case TC_INT64:
    d = TC_ST_I64;
    break;
  default:
    return tc__error(TC_EINVAL, "%s: unknown tensor dtype", fn);
  }
  tc_status st = check_name(w, name, fn);
  if (st != TC_OK)
    return st;
  int64_t shape[TC_MAX_DIMS];
  int nd = tc_tensor_shape(t, shape);
  size_t bytes = (size_t)tc_tensor_numel(t) * (size_t)(tc_st_dtype_bits(d) / 8);
  void *copy = tc__malloc(bytes ? bytes : 1);
  if (!copy)
    return tc__oom(fn);
  st = tc_tensor_copy_to_host(t, copy, bytes);
  if (st == TC_OK)
    st = add_entry(w, name, d, shape, nd, copy, bytes, fn);
  if (st != TC_OK)
    tc__free(copy);
  return st;
}

TC_API tc_status tc_safetensors_writer_add_metadata(tc_safetensors_writer *w,
                                                    const char *key,
                                                    const char *value) {
  static const char fn[] = "tc_safetensors_writer_add_metadata";
  TC__CHECK_NULL(w, fn);
  TC__CHECK_NULL(key, fn);
  TC__CHECK_NULL(value, fn);
  if (!tc__utf8_valid((const unsigned char *)key, strlen(key)) ||
      !tc__utf8_valid((const unsigned char *)value, strlen(value)))
    return tc__error(TC_EINVAL, "%s: key or value is not UTF-8", fn);
  for (size_t i = 0; i < w->nm; i++)
    if (strcmp(w->m[i].key, key) == 0)
      return tc__error(TC_EINVAL, "%s: metadata '%.200s' added twice", fn, key);
  char *k = tc__strdup(key), *v = tc__strdup(value);
  if (!k || !v || !grow((void **)&w->m, &w->capm, w->nm, sizeof *w->m)) {
    tc__free(k);
    tc__free(v);
    return tc__oom(fn);
  }
  w->m[w->nm].key = k;
  w->m[w->nm].val = v;
  w->nm++;
  return TC_OK;
}

static int cmp_entry_ptr(const void *a, const void *b) {
  return strcmp((*(w_entry *const *)a)->name, (*(w_entry *const *)b)->name);
}

static int cmp_meta_ptr(const void *a, const void *b) {
  return strcmp((*(w_meta *const *)a)->key, (*(w_meta *const *)b)->key);
}

TC_API tc_status tc_safetensors_writer_commit(tc_safetensors_writer *w,
                                              const char *path) {
  static const char fn[] = "tc_safetensors_writer_commit";
  TC__CHECK_NULL(w, fn);
  TC__CHECK_NULL(path, fn);
  tc_status st = TC_OK;
  tc__buf b = {0};
  tc__atomic_file af = {.fd = -1};
  w_entry **order = tc__calloc(w->n ? w->n : 1, sizeof *order);
  w_meta **morder = tc__calloc(w->nm ? w->nm : 1, sizeof *morder);
  if (!order || !morder) {
    st = tc__oom(fn);
    goto fail;
  }
  for (size_t i = 0; i < w->n; i++)
    order[i] = &w->e[i];
  for (size_t i = 0; i < w->nm; i++)
    morder[i] = &w->m[i];
  qsort(order, w->n, sizeof *order, cmp_entry_ptr);
  qsort(morder, w->nm, sizeof *morder, cmp_meta_ptr);

  /* header: 8 length bytes (filled in below), then the JSON */
  tc__buf_put(&b, "\0\0\0\0\0\0\0\0{", 9);
  int first = 1;
  if (w->nm) {
    tc__buf_puts(&b, "\"__metadata__\":{");
    for (size_t i = 0; i < w->nm; i++) {
      if (i)
        tc__buf_puts(&b, ",");
      tc__buf_json_string(&b, morder[i]->key);
      tc__buf_puts(&b, ":");
      tc__buf_json_string(&b, morder[i]->val);
    }
    tc__buf_puts(&b, "}");
    first = 0;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < w->n; i++) {
    const w_entry *e = order[i];
    char num[48];
    if (!first)
      tc__buf_puts(&b, ",");
    first = 0;
    tc__buf_json_string(&b, e->name);
    tc__buf_puts(&b, ":{\"dtype\":\"");
    tc__buf_puts(&b, tc_st_dtype_name(e->dtype));
    tc__buf_puts(&b, "\",\"shape\":[");
    for (int k = 0; k < e->ndim; k++) {
      snprintf(num, sizeof num, "%s%" PRId64, k ? "," : "", e->shape[k]);
      tc__buf_puts(&b, num);
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
             offset, offset + e->bytes);
    tc__buf_puts(&b, num);
    offset += e->bytes;
  }
  tc__buf_puts(&b, "}");
  while (!b.oom && (b.len - 8) % 8 != 0)
    tc__buf_puts(&b, " ");
  if (b.oom) {
    st = tc__oom(fn);
    goto fail;
  }
  uint64_t hlen = b.len - 8;
  if (hlen > 100000000u) {
    st = tc__error(TC_EINVAL,
                   "%s: header of %llu bytes exceeds the format's "
                   "100 MB bound",
                   fn, (unsigned long long)hlen);
    goto fail;
  }
  for (int i = 0; i < 8; i++)
    b.p[i] = (char)(hlen >> (8 * i) & 0xff);

  if ((st = tc__atomic_begin(&af, path, fn)) != TC_OK)
    goto fail;
  if ((st = tc__write_all(af.fd, b.p, b.len, fn)) != TC_OK)
    goto fail;
  for (size_t i = 0; i < w->n; i++)
    if ((st = tc__write_all(af.fd, order[i]->data, order[i]->bytes, fn)) !=
        TC_OK)
      goto fail;
  st = tc__atomic_commit(&af, fn);
  tc__free(b.p);
  tc__free(order);
  tc__free(morder);
  return st;
fail:
  if (af.tmp_path)
    tc__atomic_abort(&af);
  tc__free(b.p);
  tc__free(order);
  tc__free(morder);
  return st;
}
