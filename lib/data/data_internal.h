/*
 * data_internal.h - what the files of lib/data share: the dataset's layout,
 * the transform pipeline's internal entry points (plan once, then run with
 * caller-owned scratch so the loader allocates nothing per batch), the
 * seeded permutation, and small file helpers.
 */
#ifndef TINYCNN_DATA_INTERNAL_H
#define TINYCNN_DATA_INTERNAL_H

#include <stdatomic.h>
#include <stdio.h>

#include "../internal.h"

/* A root owns pixels (n,C,H,W) and labels (n); a view owns only an index
 * list into its root, and holds a reference on it. */
struct tc_dataset {
  atomic_int refcount;
  struct tc_dataset *root; /* NULL for a root */
  int64_t n;
  int c, h, w, num_classes;
  size_t sample_bytes; /* C*H*W */
  uint8_t *pixels;     /* root: (n,C,H,W) */
  int32_t *labels;     /* root: (n) */
  int64_t *indices;    /* view: (n) indices into root */
};

/* The plausible-size bound for compressed input: deflate never expands
 * more than 1032:1 (zlib's technical notes), so a file of `compressed`
 * bytes cannot hold more than this many; a header claiming more lies. */
#define TC__DEFLATE_MAX_RATIO 1032u
/* Samples are addressed with 32-bit counters in the RNG layout, and no
 * supported file is anywhere near 2 GiB. */
#define TC__DATA_MAX_BYTES ((uint64_t)1 << 31)

/* A root with uninitialised pixels and labels (n,C,H,W), refcount 1. */
tc_status tc__dataset_alloc(tc_dataset **out, int64_t n, int c, int h, int w,
                            int num_classes, const char *fn);
void tc__dataset_retain(tc_dataset *ds);

static inline int64_t tc__dataset_root_index(const tc_dataset *ds, int64_t i) {
  return ds->root ? ds->indices[i] : i;
}
static inline const uint8_t *tc__dataset_pixels(const tc_dataset *ds,
                                                int64_t i) {
  const tc_dataset *r = ds->root ? ds->root : ds;
  return r->pixels + (size_t)tc__dataset_root_index(ds, i) * r->sample_bytes;
}
static inline int32_t tc__dataset_label(const tc_dataset *ds, int64_t i) {
  const tc_dataset *r = ds->root ? ds->root : ds;
  return r->labels[tc__dataset_root_index(ds, i)];
}

/* Fisher-Yates permutation of 0..n-1 into perm (n) with draws from r. */
void tc__permutation(int64_t *perm, int64_t n, tc_rng *r);

/* Size of a regular file: TC_EIO (named) when it cannot be opened/stat'd. */
tc_status tc__file_size(const char *path, uint64_t *out, const char *fn);

/* ---- transforms (transforms.c) ---- */
tc_status tc__transform_clone(tc_transform **out, const tc_transform *tf);
/* Output shape and the scratch (floats) tc__transform_run needs. */
tc_status tc__transform_plan(const tc_transform *tf, const int64_t in_chw[3],
                             int64_t out_chw[3], size_t *work_floats);
/* Runs a planned pipeline; cannot fail. pixels: in_chw; out: planned
 * shape; work: work_floats from the plan. */
void tc__transform_run(const tc_transform *tf, const uint8_t *pixels,
                       const int64_t in_chw[3], float *out, float *work,
                       uint64_t seed, uint64_t epoch, uint64_t index);

#endif
