/*
 * dataset.c - the dataset object: roots that own pixels and labels, views
 * (subsets) that own an index list and a reference on their root, the
 * accessors, and a file-size helper the format readers share. The format
 * readers themselves live in idx.c, cifar.c and svhn.c.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data_internal.h"

static tc_status check_dims(int64_t n, int c, int h, int w, int num_classes,
                            size_t *out_sample, const char *fn) {
  if (n < 1 || c < 1 || c > TC_DATASET_MAX_CHANNELS || h < 1 ||
      h > TC_DATASET_MAX_SIDE || w < 1 || w > TC_DATASET_MAX_SIDE ||
      num_classes < 1 || num_classes > TC_DATASET_MAX_CLASSES)
    return tc__error(TC_EINVAL,
                     "%s: sizes out of range (n %lld, C %d, H %d, W %d, "
                     "classes %d)",
                     fn, (long long)n, c, h, w, num_classes);
  size_t sample = (size_t)c * (size_t)h * (size_t)w, total;
  if (!tc__mul_size(sample, (size_t)n, &total) ||
      (uint64_t)total > ((uint64_t)1 << 40))
    return tc__error(TC_ESHAPE, "%s: %lld samples of %zu bytes overflow", fn,
                     (long long)n, sample);
  *out_sample = sample;
  return TC_OK;
}

tc_status tc__dataset_alloc(tc_dataset **out, int64_t n, int c, int h, int w,
                            int num_classes, const char *fn) {
  size_t sample = 0; /* set by check_dims; -O3 cannot tell */
  tc_status st = check_dims(n, c, h, w, num_classes, &sample, fn);
  if (st != TC_OK)
    return st;
  tc_dataset *ds = tc__calloc(1, sizeof *ds);
  if (!ds)
    return tc__oom(fn);
  ds->pixels = tc__malloc(sample * (size_t)n);
  ds->labels = tc__malloc(sizeof(int32_t) * (size_t)n);
  if (!ds->pixels || !ds->labels) {
    tc__free(ds->pixels);
    tc__free(ds->labels);
    tc__free(ds);
    return tc__oom(fn);
  }
  atomic_init(&ds->refcount, 1);
  ds->n = n;
  ds->c = c;
  ds->h = h;
  ds->w = w;
  ds->num_classes = num_classes;
  ds->sample_bytes = sample;
  *out = ds;
  return TC_OK;
}

void tc__dataset_retain(tc_dataset *ds) {
  atomic_fetch_add(&ds->refcount, 1);
}

TC_API tc_status tc_dataset_create(tc_dataset **out, int64_t n, int channels,
                                   int height, int width, int num_classes,
                                   const uint8_t *pixels,
                                   const int32_t *labels) {
  static const char fn[] = "tc_dataset_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(pixels, fn);
  TC__CHECK_NULL(labels, fn);
  size_t sample = 0; /* set by check_dims; -O3 cannot tell */
  tc_status st =
      check_dims(n, channels, height, width, num_classes, &sample, fn);
  if (st != TC_OK)
    return st;
  for (int64_t i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= num_classes)
      return tc__error(TC_EINVAL,
                       "%s: label %d of sample %lld is outside [0, %d)", fn,
                       (int)labels[i], (long long)i, num_classes);
  tc_dataset *ds;
  st = tc__dataset_alloc(&ds, n, channels, height, width, num_classes, fn);
  if (st != TC_OK)
    return st;
  memcpy(ds->pixels, pixels, sample * (size_t)n);
  memcpy(ds->labels, labels, sizeof(int32_t) * (size_t)n);
  *out = ds;
  return TC_OK;
}

TC_API void tc_dataset_destroy(tc_dataset *ds) {
  if (!ds || atomic_fetch_sub(&ds->refcount, 1) != 1)
    return;
  tc_dataset *root = ds->root;
  tc__free(ds->pixels);
  tc__free(ds->labels);
  tc__free(ds->indices);
  tc__free(ds);
  tc_dataset_destroy(root); /* a view's reference on its root */
}

TC_API int64_t tc_dataset_size(const tc_dataset *ds) {
  return ds ? ds->n : -1;
}
TC_API int tc_dataset_channels(const tc_dataset *ds) {
  return ds ? ds->c : -1;
}
TC_API int tc_dataset_height(const tc_dataset *ds) {
  return ds ? ds->h : -1;
}
TC_API int tc_dataset_width(const tc_dataset *ds) {
  return ds ? ds->w : -1;
}
TC_API int tc_dataset_num_classes(const tc_dataset *ds) {
  return ds ? ds->num_classes : -1;
}

TC_API tc_status tc_dataset_get(const tc_dataset *ds, int64_t index,
                                uint8_t *pixels, size_t bytes, int32_t *label) {
  static const char fn[] = "tc_dataset_get";
  TC__CHECK_NULL(ds, fn);
  if (index < 0 || index >= ds->n)
    return tc__error(TC_EINVAL, "%s: index %lld outside [0, %lld)", fn,
                     (long long)index, (long long)ds->n);
  if (pixels && bytes != ds->sample_bytes)
    return tc__error(TC_ESHAPE, "%s: %zu bytes given, a sample has %zu", fn,
                     bytes, ds->sample_bytes);
  if (pixels)
    memcpy(pixels, tc__dataset_pixels(ds, index), ds->sample_bytes);
  if (label)
    *label = tc__dataset_label(ds, index);
  return TC_OK;
}

TC_API tc_status tc_dataset_subset(tc_dataset **out, tc_dataset *ds,
                                   const int64_t *indices, int64_t count) {
  static const char fn[] = "tc_dataset_subset";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(ds, fn);
  TC__CHECK_NULL(indices, fn);
  if (count < 1)
    return tc__error(TC_EINVAL, "%s: count %lld < 1", fn, (long long)count);
  for (int64_t i = 0; i < count; i++)
    if (indices[i] < 0 || indices[i] >= ds->n)
      return tc__error(TC_EINVAL, "%s: indices[%lld] = %lld outside [0, %lld)",
                       fn, (long long)i, (long long)indices[i],
                       (long long)ds->n);
  tc_dataset *v = tc__calloc(1, sizeof *v);
  int64_t *idx = tc__calloc((size_t)count, sizeof *idx);
  if (!v || !idx) {
    tc__free(v);
    tc__free(idx);
    return tc__oom(fn);
  }
  /* views of views point straight at the root: one hop per access */
  for (int64_t i = 0; i < count; i++)
    idx[i] = tc__dataset_root_index(ds, indices[i]);
  tc_dataset *root = ds->root ? ds->root : ds;
  tc__dataset_retain(root);
  atomic_init(&v->refcount, 1);
  v->root = root;
  v->n = count;
  v->c = ds->c;
  v->h = ds->h;
  v->w = ds->w;
  v->num_classes = ds->num_classes;
  v->sample_bytes = ds->sample_bytes;
  v->indices = idx;
  *out = v;
  return TC_OK;
}

tc_status tc__file_size(const char *path, uint64_t *out, const char *fn) {
  int fd;
  tc_status st = tc__open_regular(path, &fd, out, fn);
  if (st == TC_OK)
    close(fd);
  return st;
}
