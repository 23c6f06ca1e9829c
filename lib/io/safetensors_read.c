/*
 * safetensors_read.c - a validating safetensors reader.
 *
 * Nothing in the header is trusted before all of it is checked: the size
 * is bounded before allocating, the text must be strict UTF-8 without NUL
 * holding exactly one JSON object, keys may not repeat at any level, the
 * integers of shapes and offsets are parsed exactly from their JSON tokens
 * (cJSON turns numbers into doubles, which lose precision above 2^53), the
 * dtype must be known, and the tensors sorted by offset must tile the byte
 * buffer exactly up to the end of the file. cJSON's tree is dropped once
 * its content is copied into the reader, so the reader's memory goes
 * through the library's allocator.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io_internal.h"

#define MAX_HEADER 100000000ull
#define MAX_RANK 64

typedef struct st_entry {
  char *name;
  tc_st_dtype dtype;
  int ndim;
  int64_t shape[MAX_RANK];
  uint64_t begin, end; /* relative to the byte buffer, end exclusive */
} st_entry;

typedef struct st_meta {
  char *key, *val;
} st_meta;

struct tc_safetensors {
  int fd;                   /* -1 for a buffer */
  const unsigned char *mem; /* the whole file image (buffer mode) */
  uint64_t file_size;
  uint64_t data_start; /* 8 + N */
  int64_t n;
  st_entry *e; /* sorted by name */
  int64_t nmeta;
  st_meta *m; /* sorted by key */
};

static const struct {
  const char *name;
  int bits;
} dtypes[] = {
    [TC_ST_BOOL] = {"BOOL", 8},       [TC_ST_U8] = {"U8", 8},
    [TC_ST_I8] = {"I8", 8},           [TC_ST_I16] = {"I16", 16},
    [TC_ST_U16] = {"U16", 16},        [TC_ST_F16] = {"F16", 16},
    [TC_ST_BF16] = {"BF16", 16},      [TC_ST_I32] = {"I32", 32},
    [TC_ST_U32] = {"U32", 32},        [TC_ST_F32] = {"F32", 32},
    [TC_ST_F64] = {"F64", 64},        [TC_ST_I64] = {"I64", 64},
    [TC_ST_U64] = {"U64", 64},        [TC_ST_F8_E5M2] = {"F8_E5M2", 8},
    [TC_ST_F8_E4M3] = {"F8_E4M3", 8}, [TC_ST_F8_E8M0] = {"F8_E8M0", 8},
    [TC_ST_F6_E2M3] = {"F6_E2M3", 6}, [TC_ST_F6_E3M2] = {"F6_E3M2", 6},
    [TC_ST_F4] = {"F4", 4},           [TC_ST_C64] = {"C64", 64},
};
#define NDTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

TC_API const char *tc_st_dtype_name(tc_st_dtype d) {
  return (int)d >= 0 && (int)d < NDTYPES ? dtypes[d].name : NULL;
}

TC_API int tc_st_dtype_bits(tc_st_dtype d) {
  return (int)d >= 0 && (int)d < NDTYPES ? dtypes[d].bits : 0;
}

static const cJSON *field(const cJSON *obj, const char *key) {
  for (const cJSON *c = obj->child; c; c = c->next)
    if (strcmp(c->string, key) == 0)
      return c;
  return NULL;
}

static tc_status parse_entry(const unsigned char *s, const tc__json_tokens *tk,
                             const cJSON *obj, st_entry *e, const char *fn) {
  const char *name = obj->string;
  if (!cJSON_IsObject(obj))
    return tc__error(TC_EFORMAT, "%s: tensor '%.200s' is not an object", fn,
                     name);
  const cJSON *dt = field(obj, "dtype"), *sh = field(obj, "shape"),
              *off = field(obj, "data_offsets");
  if (!dt || !sh || !off)
    return tc__error(TC_EFORMAT, "%s: tensor '%.200s' lacks '%s'", fn, name,
                     !dt   ? "dtype"
                     : !sh ? "shape"
                           : "data_offsets");
  if (!cJSON_IsString(dt))
    return tc__error(TC_EFORMAT, "%s: tensor '%.200s': dtype is not a string",
                     fn, name);
  int d = -1;
  for (int k = 0; k < NDTYPES; k++)
    if (strcmp(dt->valuestring, dtypes[k].name) == 0)
      d = k;
  if (d < 0)
    return tc__error(TC_EFORMAT,
                     "%s: tensor '%.200s': unknown dtype "
                     "'%.40s'",
                     fn, name, dt->valuestring);
  e->dtype = (tc_st_dtype)d;
  if (!cJSON_IsArray(sh) || !cJSON_IsArray(off))
    return tc__error(TC_EFORMAT,
                     "%s: tensor '%.200s': shape or data_offsets "
                     "is not an array",
                     fn, name);
  int rank = cJSON_GetArraySize(sh);
  if (rank > MAX_RANK)
    return tc__error(TC_EUNSUPPORTED, "%s: tensor '%.200s' has rank %d > %d",
                     fn, name, rank, MAX_RANK);
  e->ndim = rank;
  uint64_t numel = 1;
  int overflow = 0;
  int i = 0;
  for (const cJSON *c = sh->child; c; c = c->next, i++) {
    uint64_t v;
    tc_status st = tc__json_u64(s, tk, c, &v, "shape entry", name, fn);
    if (st != TC_OK)
      return st;
    if (v > (uint64_t)INT64_MAX)
      return tc__error(TC_EFORMAT, "%s: tensor '%.200s': size %llu too large",
                       fn, name, (unsigned long long)v);
    e->shape[i] = (int64_t)v;
    if (__builtin_mul_overflow(numel, v, &numel))
      overflow = 1; /* a later 0 does not rescue it, as in the reference */
  }
  if (cJSON_GetArraySize(off) != 2)
    return tc__error(TC_EFORMAT,
                     "%s: tensor '%.200s': data_offsets needs 2 "
                     "entries",
                     fn, name);
  tc_status st =
      tc__json_u64(s, tk, off->child, &e->begin, "begin offset", name, fn);
  if (st == TC_OK)
    st = tc__json_u64(s, tk, off->child->next, &e->end, "end offset", name, fn);
  if (st != TC_OK)
    return st;
  uint64_t bits;
  if (overflow ||
      __builtin_mul_overflow(numel, (uint64_t)dtypes[d].bits, &bits))
    return tc__error(TC_EFORMAT, "%s: tensor '%.200s': size overflows 64 bits",
                     fn, name);
  if (bits % 8 != 0)
    return tc__error(TC_EFORMAT,
                     "%s: tensor '%.200s': %llu elements of %s "
                     "are not a whole number of bytes",
                     fn, name, (unsigned long long)numel, dtypes[d].name);
  if (e->end < e->begin)
    return tc__error(TC_EFORMAT,
                     "%s: tensor '%.200s': end offset %llu < "
                     "begin %llu",
                     fn, name, (unsigned long long)e->end,
                     (unsigned long long)e->begin);
  if (e->end - e->begin != bits / 8)
    return tc__error(TC_EFORMAT,
                     "%s: tensor '%.200s': %llu bytes between its "
                     "offsets, its shape and dtype need %llu",
                     fn, name, (unsigned long long)(e->end - e->begin),
                     (unsigned long long)(bits / 8));
  e->name = tc__strdup(name);
  return e->name ? TC_OK : tc__oom(fn);
}

static int cmp_offsets(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

static int cmp_meta(const void *a, const void *b) {
  return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

TC_API void tc_safetensors_destroy(tc_safetensors *st) {
  if (!st)
    return;
  if (st->fd >= 0)
    tc__sys.close(st->fd);
  for (int64_t i = 0; i < st->n; i++)
    tc__free(st->e[i].name);
  tc__free(st->e);
  for (int64_t i = 0; i < st->nmeta; i++) {
    tc__free(st->m[i].key);
    tc__free(st->m[i].val);
  }
  tc__free(st->m);
  tc__free(st);
}

/* Parses and checks header `h` (N bytes) of a file of `file_size` bytes,
 * filling st's entries and metadata. */
static tc_status parse_header(tc_safetensors *st, const unsigned char *h,
                              size_t N, uint64_t file_size, const char *fn) {
  tc__json_tokens tk = {0};
  cJSON *root = NULL;
  tc_status s;
  if (memchr(h, 0, N))
    return tc__error(TC_EFORMAT, "%s: NUL byte inside the header", fn);
  if (!tc__utf8_valid(h, N))
    return tc__error(TC_EFORMAT, "%s: header is not valid UTF-8", fn);
  if ((s = tc__json_scan(h, N, &tk, fn)) != TC_OK)
    goto fail;
  const char *end = NULL;
  root = cJSON_ParseWithLengthOpts((const char *)h, N, &end, 0);
  if (!root) {
    /* cJSON's failure may be an allocation: we cannot tell, say both */
    s = tc__error(TC_EFORMAT,
                  "%s: header is not valid JSON (or out of "
                  "memory) near byte %td",
                  fn, end ? end - (const char *)h : (ptrdiff_t)-1);
    goto fail;
  }
  for (const char *p = end; p < (const char *)h + N; p++)
    if (!tc__json_is_ws((unsigned char)*p)) {
      s = tc__error(TC_EFORMAT, "%s: bytes after the header's JSON object", fn);
      goto fail;
    }
  if (!cJSON_IsObject(root)) {
    s = tc__error(TC_EFORMAT, "%s: header is not a JSON object", fn);
    goto fail;
  }
  size_t numbers = 0;
  if ((s = tc__json_walk(root, &numbers, fn)) != TC_OK)
    goto fail;
  if (numbers != tk.n) {
    s = tc__error(TC_EFORMAT, "%s: header numbers out of step (%zu vs %zu)", fn,
                  numbers, tk.n);
    goto fail;
  }
  int64_t count = 0;
  const cJSON *meta = NULL;
  for (const cJSON *c = root->child; c; c = c->next) {
    if (strcmp(c->string, "__metadata__") == 0)
      meta = c;
    else
      count++;
  }
  if (meta && !cJSON_IsNull(meta)) {
    if (!cJSON_IsObject(meta)) {
      s = tc__error(TC_EFORMAT, "%s: __metadata__ is not an object", fn);
      goto fail;
    }
    int64_t k = cJSON_GetArraySize(meta);
    st->m = tc__calloc(k ? (size_t)k : 1, sizeof *st->m);
    if (!st->m) {
      s = tc__oom(fn);
      goto fail;
    }
    for (const cJSON *c = meta->child; c; c = c->next) {
      if (!cJSON_IsString(c)) {
        s = tc__error(TC_EFORMAT,
                      "%s: __metadata__ value of '%.200s' is not "
                      "a string",
                      fn, c->string);
        goto fail;
      }
      st_meta *m = &st->m[st->nmeta++];
      m->key = tc__strdup(c->string);
      m->val = tc__strdup(c->valuestring);
      if (!m->key || !m->val) {
        s = tc__oom(fn);
        goto fail;
      }
    }
    qsort(st->m, (size_t)st->nmeta, sizeof *st->m, cmp_meta);
  }
  st->e = tc__calloc(count ? (size_t)count : 1, sizeof *st->e);
  if (!st->e) {
    s = tc__oom(fn);
    goto fail;
  }
  for (const cJSON *c = root->child; c; c = c->next) {
    if (c == meta)
      continue;
    if ((s = parse_entry(h, &tk, c, &st->e[st->n], fn)) != TC_OK)
      goto fail;
    st->n++;
  }
  cJSON_Delete(root);
  root = NULL;
  qsort(st->e, (size_t)st->n, sizeof *st->e, cmp_offsets);
  uint64_t pos = 0;
  for (int64_t i = 0; i < st->n; i++) {
    if (st->e[i].begin != pos) {
      s = tc__error(TC_EFORMAT,
                    "%s: tensor '%.200s' begins at %llu, expected "
                    "%llu (a gap or an overlap in the byte buffer)",
                    fn, st->e[i].name, (unsigned long long)st->e[i].begin,
                    (unsigned long long)pos);
      goto fail;
    }
    pos = st->e[i].end;
  }
  uint64_t total;
  if (__builtin_add_overflow(pos, st->data_start, &total) ||
      total != file_size) {
    s = tc__error(TC_EFORMAT,
                  "%s: tensors cover %llu bytes after the header "
                  "but the file has %llu",
                  fn, (unsigned long long)pos,
                  (unsigned long long)(file_size - st->data_start));
    goto fail;
  }
  qsort(st->e, (size_t)st->n, sizeof *st->e, cmp_names);
  tc__free(tk.start);
  tc__free(tk.len);
  return TC_OK;
fail:
  cJSON_Delete(root);
  tc__free(tk.start);
  tc__free(tk.len);
  return s;
}

static tc_status check_prefix(const unsigned char *b8, uint64_t size,
                              uint64_t *N, const char *fn) {
  if (size < 8)
    return tc__error(TC_EFORMAT,
                     "%s: file of %llu bytes is shorter than the "
                     "8-byte header length",
                     fn, (unsigned long long)size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | b8[i];
  if (n > MAX_HEADER)
    return tc__error(TC_EFORMAT, "%s: header length %llu exceeds %llu", fn,
                     (unsigned long long)n, (unsigned long long)MAX_HEADER);
  if (n + 8 > size) /* n <= 1e8: no overflow */
    return tc__error(TC_EFORMAT,
                     "%s: header length %llu runs past the end of "
                     "the file (%llu bytes)",
                     fn, (unsigned long long)n, (unsigned long long)size);
  *N = n;
  return TC_OK;
}

static tc_status pread_all(int fd, void *dst, size_t n, uint64_t off,
                           const char *fn) {
  char *p = dst;
  while (n > 0) {
    ssize_t r = tc__sys.pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return tc__error(TC_EIO, "%s: read failed: %s", fn, strerror(errno));
    if (r == 0)
      return tc__error(TC_EIO, "%s: file shrank while reading", fn);
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return TC_OK;
}

TC_API tc_status tc_safetensors_create(tc_safetensors **out, const char *path) {
  static const char fn[] = "tc_safetensors_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(path, fn);
  unsigned char *h = NULL;
  tc_status s;
  tc_safetensors *st = tc__calloc(1, sizeof *st);
  if (!st)
    return tc__oom(fn);
  st->fd = -1;
  if ((s = tc__open_regular(path, &st->fd, &st->file_size, fn)) != TC_OK)
    goto fail;
  unsigned char b8[8] = {0};
  uint64_t N = 0;
  if (st->file_size >= 8 && (s = pread_all(st->fd, b8, 8, 0, fn)) != TC_OK)
    goto fail;
  if ((s = check_prefix(b8, st->file_size, &N, fn)) != TC_OK)
    goto fail;
  st->data_start = 8 + N;
  h = tc__malloc(N ? N : 1);
  if (!h) {
    s = tc__oom(fn);
    goto fail;
  }
  if ((s = pread_all(st->fd, h, N, 8, fn)) != TC_OK)
    goto fail;
  if ((s = parse_header(st, h, N, st->file_size, fn)) != TC_OK)
    goto fail;
  tc__free(h);
  *out = st;
  return TC_OK;
fail:
  tc__free(h);
  tc_safetensors_destroy(st);
  return s;
}

TC_API tc_status tc_safetensors_create_from_buffer(tc_safetensors **out,
                                                   const void *data,
                                                   size_t size) {
  static const char fn[] = "tc_safetensors_create_from_buffer";
  TC__CHECK_NULL(out, fn);
  if (!data && size > 0)
    return tc__error(TC_EINVAL, "%s: argument 'data' is NULL", fn);
  tc_safetensors *st = tc__calloc(1, sizeof *st);
  if (!st)
    return tc__oom(fn);
  st->fd = -1;
  st->mem = data;
  st->file_size = size;
  uint64_t N = 0;
  tc_status s = check_prefix(data, size, &N, fn);
  if (s == TC_OK) {
    st->data_start = 8 + N;
    s = parse_header(st, st->mem + 8, N, size, fn);
  }
  if (s != TC_OK) {
    tc_safetensors_destroy(st);
    return s;
  }
  *out = st;
  return TC_OK;
}

TC_API int64_t tc_safetensors_count(const tc_safetensors *st) {
  return st ? st->n : -1;
}

TC_API const char *tc_safetensors_name(const tc_safetensors *st, int64_t i) {
  return st && i >= 0 && i < st->n ? st->e[i].name : NULL;
}

static const st_entry *find(const tc_safetensors *st, const char *name) {
  int64_t lo = 0, hi = st->n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(st->e[mid].name, name);
    if (c == 0)
      return &st->e[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

TC_API tc_status tc_safetensors_info(const tc_safetensors *st, const char *name,
                                     tc_st_dtype *out_dtype, int64_t *shape,
                                     int max_dims, int *out_ndim) {
  static const char fn[] = "tc_safetensors_info";
  TC__CHECK_NULL(st, fn);
  TC__CHECK_NULL(name, fn);
  if (max_dims < 0 || (max_dims > 0 && !shape))
    return tc__error(TC_EINVAL, "%s: shape NULL or max_dims %d < 0", fn,
                     max_dims);
  const st_entry *e = find(st, name);
  if (!e)
    return tc__error(TC_ENOTFOUND, "%s: no tensor '%.200s'", fn, name);
  if (out_dtype)
    *out_dtype = e->dtype;
  for (int i = 0; i < e->ndim && i < max_dims; i++)
    shape[i] = e->shape[i];
  if (out_ndim)
    *out_ndim = e->ndim;
  return TC_OK;
}

TC_API tc_status tc_safetensors_read_raw(tc_safetensors *st, const char *name,
                                         void *dst, size_t bytes) {
  static const char fn[] = "tc_safetensors_read_raw";
  TC__CHECK_NULL(st, fn);
  TC__CHECK_NULL(name, fn);
  const st_entry *e = find(st, name);
  if (!e)
    return tc__error(TC_ENOTFOUND, "%s: no tensor '%.200s'", fn, name);
  uint64_t n = e->end - e->begin;
  if (n != bytes)
    return tc__error(TC_ESHAPE,
                     "%s: tensor '%.200s' holds %llu bytes, buffer "
                     "has %zu",
                     fn, name, (unsigned long long)n, bytes);
  if (n == 0)
    return TC_OK;
  TC__CHECK_NULL(dst, fn);
  if (st->mem) {
    memcpy(dst, st->mem + st->data_start + e->begin, n);
    return TC_OK;
  }
  return pread_all(st->fd, dst, n, st->data_start + e->begin, fn);
}

TC_API tc_status tc_safetensors_read(tc_safetensors *st, const char *name,
                                     tc_tensor *dst) {
  static const char fn[] = "tc_safetensors_read";
  TC__CHECK_NULL(st, fn);
  TC__CHECK_NULL(name, fn);
  TC__CHECK_NULL(dst, fn);
  const st_entry *e = find(st, name);
  if (!e)
    return tc__error(TC_ENOTFOUND, "%s: no tensor '%.200s'", fn, name);
  tc_dtype want;
  switch (e->dtype) {
  case TC_ST_F32:
    want = TC_FLOAT32;
    break;
  case TC_ST_I32:
    want = TC_INT32;
    break;
  case TC_ST_I64:
    want = TC_INT64;
    break;
  default:
    return tc__error(TC_EUNSUPPORTED,
                     "%s: tensor '%.200s' has dtype %s, "
                     "which no tensor type holds",
                     fn, name, dtypes[e->dtype].name);
  }
  int64_t shape[TC_MAX_DIMS];
  int nd = tc_tensor_shape(dst, shape);
  int same = nd == e->ndim && tc_tensor_dtype(dst) == want;
  for (int i = 0; same && i < nd; i++)
    same = shape[i] == e->shape[i];
  if (!same)
    return tc__error(TC_ESHAPE,
                     "%s: tensor '%.200s' (%s, rank %d) does not "
                     "match the destination (rank %d)",
                     fn, name, dtypes[e->dtype].name, e->ndim, nd);
  size_t bytes = (size_t)(e->end - e->begin);
  void *tmp = tc__malloc(bytes ? bytes : 1);
  if (!tmp)
    return tc__oom(fn);
  tc_status s = tc_safetensors_read_raw(st, name, tmp, bytes);
  if (s == TC_OK)
    s = tc_tensor_copy_from_host(dst, tmp, bytes);
  tc__free(tmp);
  return s;
}

static int64_t find_meta(const tc_safetensors *st, const char *key) {
  int64_t lo = 0, hi = st->nmeta;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(st->m[mid].key, key);
    if (c == 0)
      return mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

TC_API const char *tc_safetensors_metadata(const tc_safetensors *st,
                                           const char *key) {
  if (!st || !key)
    return NULL;
  int64_t i = find_meta(st, key);
  return i < 0 ? NULL : st->m[i].val;
}

TC_API int64_t tc_safetensors_metadata_count(const tc_safetensors *st) {
  return st ? st->nmeta : -1;
}

TC_API const char *tc_safetensors_metadata_key(const tc_safetensors *st,
                                               int64_t i) {
  return st && i >= 0 && i < st->nmeta ? st->m[i].key : NULL;
}

TC_API tc_status tc_safetensors_metadata_i64(const tc_safetensors *st,
                                             const char *key, int64_t *out) {
  static const char fn[] = "tc_safetensors_metadata_i64";
  TC__CHECK_NULL(st, fn);
  TC__CHECK_NULL(key, fn);
  TC__CHECK_NULL(out, fn);
  const char *v = tc_safetensors_metadata(st, key);
  if (!v)
    return tc__error(TC_ENOTFOUND, "%s: no metadata '%.200s'", fn, key);
  const char *p = v;
  int neg = *p == '-';
  if (neg)
    p++;
  if (!*p)
    return tc__error(TC_EFORMAT, "%s: '%.200s' = '%.40s' is not an integer", fn,
                     key, v);
  uint64_t mag = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9' || __builtin_mul_overflow(mag, 10u, &mag) ||
        __builtin_add_overflow(mag, (uint64_t)(*p - '0'), &mag) ||
        mag > (uint64_t)INT64_MAX + (uint64_t)neg)
      return tc__error(TC_EFORMAT, "%s: '%.200s' = '%.40s' is not an int64", fn,
                       key, v);
  }
  *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  return TC_OK;
}
