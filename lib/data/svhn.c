/*
 * svhn.c - SVHN's cropped-digit .mat files through libmatio: `X` uint8
 * (32,32,3,N) in MATLAB's column-major order and `y` (N,1) numeric with
 * labels 1..10, 10 meaning the digit 0. Both variables' class, rank and
 * dims are checked from their headers (Mat_VarReadInfo) before the one
 * allocation; X is then read straight into the dataset and each 32x32
 * plane transposed in place to row-major (C,H,W), H being MATLAB's first
 * dimension, as torchvision's np.transpose(X, (3, 2, 0, 1)) gives.
 * matio's own messages go to the tinycnn log callback at debug level, not
 * to stderr.
 */
#include <math.h>
#include <matio.h>
#include <pthread.h>
#include <string.h>

#include "data_internal.h"

#define SVHN_SIDE 32
#define SVHN_PLANE (SVHN_SIDE * SVHN_SIDE)
#define SVHN_PIXELS (3 * SVHN_PLANE)

static void matio_log(int level, char *message) {
  (void)level;
  tc__log(TC_LOG_DEBUG, "matio: %s", message ? message : "");
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void init_matio_log(void) {
  Mat_LogInitFunc("tinycnn", matio_log);
}

static int is_numeric_class(enum matio_classes c) {
  return c == MAT_C_DOUBLE || c == MAT_C_SINGLE || c == MAT_C_INT8 ||
         c == MAT_C_UINT8 || c == MAT_C_INT16 || c == MAT_C_UINT16 ||
         c == MAT_C_INT32 || c == MAT_C_UINT32 || c == MAT_C_INT64 ||
         c == MAT_C_UINT64;
}

/* Element k of a numeric buffer of class c, as a double. */
static double numeric_at(const void *buf, enum matio_classes c, size_t k) {
  switch (c) {
  case MAT_C_DOUBLE:
    return ((const double *)buf)[k];
  case MAT_C_SINGLE:
    return ((const float *)buf)[k];
  case MAT_C_INT8:
    return ((const int8_t *)buf)[k];
  case MAT_C_UINT8:
    return ((const uint8_t *)buf)[k];
  case MAT_C_INT16:
    return ((const int16_t *)buf)[k];
  case MAT_C_UINT16:
    return ((const uint16_t *)buf)[k];
  case MAT_C_INT32:
    return ((const int32_t *)buf)[k];
  case MAT_C_UINT32:
    return ((const uint32_t *)buf)[k];
  case MAT_C_INT64:
    return (double)((const int64_t *)buf)[k];
  case MAT_C_UINT64:
    return (double)((const uint64_t *)buf)[k];
  default:
    return -1;
  }
}

static void transpose_planes(uint8_t *px) {
  for (int ch = 0; ch < 3; ch++) {
    uint8_t *p = px + ch * SVHN_PLANE; /* (W,H) column-major -> (H,W) */
    for (int r = 0; r < SVHN_SIDE; r++)
      for (int c = r + 1; c < SVHN_SIDE; c++) {
        uint8_t t = p[r * SVHN_SIDE + c];
        p[r * SVHN_SIDE + c] = p[c * SVHN_SIDE + r];
        p[c * SVHN_SIDE + r] = t;
      }
  }
}

TC_API tc_status tc_dataset_load_svhn(tc_dataset **out, const char *mat_path) {
  static const char fn[] = "tc_dataset_load_svhn";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(mat_path, fn);
  uint64_t fsize;
  tc_status st = tc__file_size(mat_path, &fsize, fn);
  if (st != TC_OK)
    return st;
  pthread_once(&log_once, init_matio_log);
  mat_t *mat = Mat_Open(mat_path, MAT_ACC_RDONLY);
  if (!mat)
    return tc__error(TC_EFORMAT, "%s: '%s' is not a readable MAT file", fn,
                     mat_path);
  matvar_t *x = NULL, *y = NULL;
  tc_dataset *ds = NULL;
  void *ybuf = NULL;
  x = Mat_VarReadInfo(mat, "X");
  y = Mat_VarReadInfo(mat, "y");
  if (!x || !y) {
    st = tc__error(TC_EFORMAT, "%s: '%s' has no variable '%s'", fn, mat_path,
                   x ? "y" : "X");
    goto fail;
  }
  if (x->class_type != MAT_C_UINT8 || x->isComplex || x->isLogical ||
      x->rank != 4 || x->dims[0] != SVHN_SIDE || x->dims[1] != SVHN_SIDE ||
      x->dims[2] != 3 || x->dims[3] < 1) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': X must be real uint8 of dims (32,32,3,N) "
                   "(class %d, rank %d)",
                   fn, mat_path, (int)x->class_type, x->rank);
    goto fail;
  }
  size_t n = x->dims[3];
  if ((uint64_t)n * SVHN_PIXELS >= TC__DATA_MAX_BYTES ||
      (uint64_t)n * SVHN_PIXELS > fsize * TC__DEFLATE_MAX_RATIO + 4096) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': X claims %zu images, more than the %llu-byte "
                   "file can hold",
                   fn, mat_path, n, (unsigned long long)fsize);
    goto fail;
  }
  if (!is_numeric_class(y->class_type) || y->isComplex || y->rank != 2 ||
      !((y->dims[0] == n && y->dims[1] == 1) ||
        (y->dims[0] == 1 && y->dims[1] == n))) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': y must be real numeric of dims (%zu,1) to match "
                   "X (class %d, rank %d)",
                   fn, mat_path, n, (int)y->class_type, y->rank);
    goto fail;
  }
  st = tc__dataset_alloc(&ds, (int64_t)n, 3, SVHN_SIDE, SVHN_SIDE, 10, fn);
  if (st != TC_OK)
    goto fail;
  size_t ysize = Mat_SizeOfClass(y->class_type);
  ybuf = tc__malloc(ysize * n);
  if (!ybuf) {
    st = tc__oom(fn);
    goto fail;
  }
  int start[4] = {0, 0, 0, 0}, stride[4] = {1, 1, 1, 1};
  int xedge[4] = {SVHN_SIDE, SVHN_SIDE, 3, (int)n};
  int yedge[2] = {(int)y->dims[0], (int)y->dims[1]};
  if (Mat_VarReadData(mat, x, ds->pixels, start, stride, xedge) != 0 ||
      Mat_VarReadData(mat, y, ybuf, start, stride, yedge) != 0) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': cannot read the data of X or y "
                   "(truncated or corrupt)",
                   fn, mat_path);
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    double v = numeric_at(ybuf, y->class_type, i);
    if (!(v >= 0 && v <= 10) || v != floor(v)) {
      st = tc__error(TC_EFORMAT,
                     "%s: '%s': label %g of sample %zu is not an "
                     "integer in 0..10",
                     fn, mat_path, v, i);
      goto fail;
    }
    ds->labels[i] = v == 10 ? 0 : (int32_t)v;
  }
  for (size_t i = 0; i < n; i++)
    transpose_planes(ds->pixels + i * SVHN_PIXELS);
  tc__free(ybuf);
  Mat_VarFree(x);
  Mat_VarFree(y);
  Mat_Close(mat);
  *out = ds;
  return TC_OK;
fail:
  tc__free(ybuf);
  tc_dataset_destroy(ds);
  Mat_VarFree(x);
  Mat_VarFree(y);
  Mat_Close(mat);
  return st;
}
