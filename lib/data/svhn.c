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
 *
 * matio trusts the sizes in a v5 variable's header (it allocates the dims
 * and name arrays from them, and walks struct and cell fields), so a few
 * hostile bytes could make it allocate gigabytes (found by fuzzing).
 * Before matio sees a v5 file, mat5_prescan() checks every top-level
 * variable's header, inflating the first bytes of compressed ones: it must
 * lie inside the file and hold a numeric or char array of rank <= 32 with
 * a short name. v4 files are refused (they cannot hold 4-D X), and so are
 * v7.3 (HDF5) files: libhdf5 1.10 (Debian 12's) reads past a heap buffer
 * on a crafted file (found by fuzz_svhn), and the official SVHN files are
 * v5 anyway.
 */
#include <math.h>
#include <matio.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

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

/* ---- v5 header pre-scan ---- */

#define MAT5_HDR 128
#define MAT5_PEEK 256 /* enough for flags, 32 dims and a 255-byte name */
#define MAT5_MAX_DIMS_BYTES (4 * 32)
#define MAT5_MAX_NAME 255
#define MAT5_T_INT8 1
#define MAT5_T_INT32 5
#define MAT5_T_UINT32 6
#define MAT5_T_MATRIX 14
#define MAT5_T_COMPRESSED 15

static uint32_t get_u32(const unsigned char *p, int big) {
  return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                   (uint32_t)p[2] << 8 | p[3]
             : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[1] << 8 | p[0];
}

/* A sub-element tag at p: type and payload size, small format included
 * (size in the upper 16 bits of the first word). Returns the tag's bytes
 * plus padded payload, or 0 when it does not fit in `avail`. */
static uint64_t mat5_sub(const unsigned char *p, uint64_t avail, int big,
                         uint32_t *type, uint32_t *size) {
  if (avail < 8)
    return 0;
  uint32_t w = get_u32(p, big);
  if (w >> 16) { /* small element: 4 bytes of data inside the tag */
    *type = w & 0xffff;
    *size = w >> 16;
    return *size <= 4 ? 8 : 0;
  }
  *type = w;
  *size = get_u32(p + 4, big);
  uint64_t total = 8 + (((uint64_t)*size + 7) & ~(uint64_t)7);
  return total <= avail ? total : 0;
}

/* Checks a miMATRIX's contents (array flags, dims, name) of which `avail`
 * bytes are in `p`; `elem` is the element's declared size. */
static tc_status mat5_check_matrix(const unsigned char *p, uint64_t avail,
                                   uint64_t elem, int big, const char *path,
                                   uint64_t at, const char *fn) {
  uint32_t type, size;
  if (avail > elem)
    avail = elem;
  uint64_t used = mat5_sub(p, avail, big, &type, &size);
  if (!used || type != MAT5_T_UINT32 || size != 8)
    return tc__error(TC_EFORMAT,
                     "%s: '%s': variable at offset %llu has bad array flags",
                     fn, path, (unsigned long long)at);
  uint32_t cls = get_u32(p + 8, big) & 0xff;
  if (cls != MAT_C_CHAR && !(cls >= MAT_C_DOUBLE && cls <= MAT_C_UINT64))
    return tc__error(TC_EFORMAT,
                     "%s: '%s': variable at offset %llu has class %u (only "
                     "numeric and char arrays are read)",
                     fn, path, (unsigned long long)at, cls);
  uint64_t n = mat5_sub(p + used, avail - used, big, &type, &size);
  if (!n || type != MAT5_T_INT32 || size < 8 || size % 4 ||
      size > MAT5_MAX_DIMS_BYTES)
    return tc__error(TC_EFORMAT,
                     "%s: '%s': variable at offset %llu has bad dimensions "
                     "(%u bytes)",
                     fn, path, (unsigned long long)at, size);
  used += n;
  n = mat5_sub(p + used, avail - used, big, &type, &size);
  if (!n || type != MAT5_T_INT8 || size > MAT5_MAX_NAME)
    return tc__error(TC_EFORMAT,
                     "%s: '%s': variable at offset %llu has a bad name", fn,
                     path, (unsigned long long)at);
  return TC_OK;
}

/* The first bytes (up to MAT5_PEEK) a compressed element inflates to. */
static tc_status mat5_inflate_head(FILE *f, uint64_t csize, unsigned char *out,
                                   uint64_t *got, const char *path, uint64_t at,
                                   const char *fn) {
  z_stream z = {0};
  if (inflateInit(&z) != Z_OK)
    return tc__oom(fn);
  unsigned char in[4096];
  z.next_out = out;
  z.avail_out = MAT5_PEEK;
  int zr = Z_OK;
  while (z.avail_out > 0 && csize > 0 && zr == Z_OK) {
    size_t want = csize < sizeof in ? (size_t)csize : sizeof in;
    if (fread(in, 1, want, f) != want)
      break;
    csize -= want;
    z.next_in = in;
    z.avail_in = (uInt)want;
    while (z.avail_out > 0 && z.avail_in > 0 && zr == Z_OK)
      zr = inflate(&z, Z_NO_FLUSH);
  }
  *got = MAT5_PEEK - z.avail_out;
  inflateEnd(&z);
  if (zr != Z_OK && zr != Z_STREAM_END)
    return tc__error(TC_EFORMAT,
                     "%s: '%s': corrupt compressed variable at offset %llu", fn,
                     path, (unsigned long long)at);
  return TC_OK;
}

static tc_status mat5_prescan(const char *path, uint64_t fsize,
                              const char *fn) {
  FILE *f;
  tc_status st = tc__fopen_regular(path, &f, NULL, fn);
  if (st != TC_OK)
    return st;
  unsigned char hdr[MAT5_HDR], buf[MAT5_PEEK];
  if (fsize < MAT5_HDR || fread(hdr, 1, MAT5_HDR, f) != MAT5_HDR ||
      !((hdr[126] == 'I' && hdr[127] == 'M') ||
        (hdr[126] == 'M' && hdr[127] == 'I'))) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s' is not a MAT v5 file (v4 cannot hold "
                   "SVHN's 4-D X)",
                   fn, path);
    goto out;
  }
  int big = hdr[126] == 'M';
  unsigned version = big ? (unsigned)hdr[124] << 8 | hdr[125]
                         : (unsigned)hdr[125] << 8 | hdr[124];
  if (version == 0x0200) { /* v7.3: an HDF5 file (see the top) */
    st = tc__error(TC_EUNSUPPORTED,
                   "%s: '%s' is a MAT v7.3 (HDF5) file, which is not read: "
                   "libhdf5 is not safe on untrusted files; the official "
                   "SVHN files are MAT v5 (scipy.io.savemat writes v5)",
                   fn, path);
    goto out;
  }
  if (version != 0x0100) {
    st = tc__error(TC_EFORMAT, "%s: '%s': unknown MAT version 0x%04x", fn, path,
                   version);
    goto out;
  }
  for (uint64_t at = MAT5_HDR; at < fsize;) {
    unsigned char tag[8];
    if (fsize - at < 8 || fseek(f, (long)at, SEEK_SET) != 0 ||
        fread(tag, 1, 8, f) != 8) {
      st = tc__error(TC_EFORMAT, "%s: '%s': truncated at offset %llu", fn, path,
                     (unsigned long long)at);
      goto out;
    }
    uint32_t type = get_u32(tag, big);
    uint64_t size = get_u32(tag + 4, big);
    if (size > fsize - at - 8) {
      st =
          tc__error(TC_EFORMAT,
                    "%s: '%s': variable at offset %llu claims %llu bytes, "
                    "past the end of the file",
                    fn, path, (unsigned long long)at, (unsigned long long)size);
      goto out;
    }
    if (type == MAT5_T_MATRIX) {
      size_t want = size < MAT5_PEEK ? (size_t)size : MAT5_PEEK;
      if (fread(buf, 1, want, f) != want) {
        st = tc__error(TC_EIO, "%s: '%s': read error", fn, path);
        goto out;
      }
      st = mat5_check_matrix(buf, want, size, big, path, at, fn);
    } else if (type == MAT5_T_COMPRESSED) {
      uint64_t got;
      st = mat5_inflate_head(f, size, buf, &got, path, at, fn);
      if (st == TC_OK && (got < 8 || get_u32(buf, big) != MAT5_T_MATRIX))
        st = tc__error(TC_EFORMAT,
                       "%s: '%s': compressed variable at offset %llu is "
                       "not an array",
                       fn, path, (unsigned long long)at);
      if (st == TC_OK)
        st = mat5_check_matrix(buf + 8, got - 8, get_u32(buf + 4, big), big,
                               path, at, fn);
    }
    if (st != TC_OK)
      goto out;
    at += 8 + size; /* as matio walks: the size includes any padding */
  }
out:
  fclose(f);
  return st;
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
  st = mat5_prescan(mat_path, fsize, fn);
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
