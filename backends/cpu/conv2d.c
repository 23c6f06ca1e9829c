/*
 * conv2d.c - the CPU backend's 2-D convolution (groups = 1): forward,
 * backward-data, backward-filter, bias-grad and the workspace query.
 *
 * Method: per image, im2col + one OpenBLAS sgemm on the whole panel
 *   forward:   y_i (k,P)     = W (k,CRS) * col_i (CRS,P)   [+ bias]
 *   bwd data:  dcol_i (CRS,P) = W^T * dy_i (k,P); dx_i += col2im(dcol_i)
 *   bwd filt:  dW (k,CRS)   += dy_i (k,P) * col_i^T
 * with P = out_h*out_w and CRS = c*r*s, all NCHW and contiguous. A 1x1
 * kernel with stride 1 and no padding needs no im2col: the image is its own
 * column matrix. Images are split into contiguous blocks, one per pool
 * thread; each block owns one im2col slot of the caller's workspace. Nothing
 * here allocates.
 *
 * Determinism: bwd_filter sums over the batch in `chunks` fixed ranges of
 * images (the count depends on the shapes only, never on the thread count);
 * each chunk's partial dW is built in its own workspace slice, in image
 * order, and the partials are then added in chunk order. bwd_bias reduces
 * each channel in one task, in image order. So results are the same bits
 * with 1 or 64 threads.
 *
 * Workspace (bytes; every slice rounded up to 64 bytes):
 *   col   = 1x1/stride 1/pad 0 ? 0 : 4*CRS*P
 *   chunks = n == 0 ? 0 : min(n, CPU_REDUCE_CHUNKS,
 *                             max(1, CONV_PARTIAL_BUDGET / (k*CRS)))
 *   part  = chunks > 1 ? 4*chunks*k*CRS : 0
 *   size  = min(n, pool threads) * col + part
 * forward and bwd_data need at least one col slice, bwd_filter part plus one
 * col slice; a larger workspace lets more threads work at once. A workspace
 * that is too small, NULL or not float-aligned is TC_EINVAL.
 */
#include <cblas.h>
#include <string.h>

#include "cpu.h"

/* Most floats the bwd_filter partial sums may take (64 MiB): above it the
 * batch is cut into fewer chunks (still a function of the shapes only). */
#define CONV_PARTIAL_BUDGET ((int64_t)16 << 20)
/* Largest size accepted for any one dimension, and for the GEMM extents
 * (BLAS takes int). */
#define CONV_DIM_MAX ((int64_t)1 << 30)
#define CONV_GEMM_MAX ((int64_t)INT32_MAX)
/* Elements per task when the partial sums are combined. */
#define CONV_COMBINE_BLOCK 1024

typedef struct conv_geom {
  const tc_conv2d_args *a;
  int64_t n, c, h, w, k, r, s;
  int64_t sh, sw, ph, pw, dh, dw, oh, ow;
  int64_t hw, P, crs;
  int direct;        /* 1x1, stride 1, pad 0: x_i is its own col */
  int64_t chunks;    /* bwd_filter partial sums */
  size_t col_bytes;  /* one im2col slice (0 when direct) */
  size_t part_bytes; /* all partial sums (0 when chunks <= 1) */
  /* run time */
  int64_t slots; /* concurrent tasks, each with its own col slice */
  char *cols;    /* first col slice */
  float *part;   /* chunks * (k*CRS) */
} conv_geom;

static size_t round64(size_t b) {
  return (b + 63) & ~(size_t)63;
}

static int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}

/* Checks sizes and output extents (not pointers); fills g. */
static tc_status conv_geometry(void *ctx, const tc_conv2d_args *a,
                               const char *fn, conv_geom *g) {
  if (!ctx)
    return tc__error(TC_EINVAL, "%s: ctx is NULL", fn);
  if (!a)
    return tc__error(TC_EINVAL, "%s: args is NULL", fn);
  if (a->struct_size < sizeof(tc_conv2d_args))
    return tc__error(TC_EINVAL, "%s: struct_size %zu < %zu", fn, a->struct_size,
                     sizeof(tc_conv2d_args));
  if (a->n < 0 || a->c < 1 || a->h < 1 || a->w < 1 || a->k < 1 || a->r < 1 ||
      a->s < 1 || a->c > CONV_DIM_MAX || a->h > CONV_DIM_MAX ||
      a->w > CONV_DIM_MAX || a->k > CONV_DIM_MAX || a->r > CONV_DIM_MAX ||
      a->s > CONV_DIM_MAX)
    return tc__error(TC_EINVAL,
                     "%s: bad sizes x (%lld,%lld,%lld,%lld) w "
                     "(%lld,%lld,%lld,%lld): need n >= 0, others 1..2^30",
                     fn, (long long)a->n, (long long)a->c, (long long)a->h,
                     (long long)a->w, (long long)a->k, (long long)a->c,
                     (long long)a->r, (long long)a->s);
  if (a->stride_h < 1 || a->stride_w < 1 || a->dil_h < 1 || a->dil_w < 1 ||
      a->pad_h < 0 || a->pad_w < 0 || a->stride_h > CONV_DIM_MAX ||
      a->stride_w > CONV_DIM_MAX || a->dil_h > CONV_DIM_MAX ||
      a->dil_w > CONV_DIM_MAX || a->pad_h > CONV_DIM_MAX ||
      a->pad_w > CONV_DIM_MAX)
    return tc__error(TC_EINVAL,
                     "%s: bad stride (%lld,%lld), padding (%lld,%lld) or "
                     "dilation (%lld,%lld)",
                     fn, (long long)a->stride_h, (long long)a->stride_w,
                     (long long)a->pad_h, (long long)a->pad_w,
                     (long long)a->dil_h, (long long)a->dil_w);
  int64_t eh = a->h + 2 * a->pad_h - a->dil_h * (a->r - 1) - 1;
  int64_t ew = a->w + 2 * a->pad_w - a->dil_w * (a->s - 1) - 1;
  if (eh < 0 || ew < 0)
    return tc__error(TC_EINVAL,
                     "%s: kernel (%lld,%lld) dilated by (%lld,%lld) exceeds "
                     "the padded input (%lld,%lld)",
                     fn, (long long)a->r, (long long)a->s, (long long)a->dil_h,
                     (long long)a->dil_w, (long long)(a->h + 2 * a->pad_h),
                     (long long)(a->w + 2 * a->pad_w));
  eh = eh / a->stride_h + 1;
  ew = ew / a->stride_w + 1;
  if (a->out_h != eh || a->out_w != ew)
    return tc__error(TC_EINVAL, "%s: output (%lld,%lld), expected (%lld,%lld)",
                     fn, (long long)a->out_h, (long long)a->out_w,
                     (long long)eh, (long long)ew);
  memset(g, 0, sizeof *g);
  g->a = a;
  g->n = a->n, g->c = a->c, g->h = a->h, g->w = a->w;
  g->k = a->k, g->r = a->r, g->s = a->s;
  g->sh = a->stride_h, g->sw = a->stride_w, g->ph = a->pad_h;
  g->pw = a->pad_w, g->dh = a->dil_h, g->dw = a->dil_w;
  g->oh = eh, g->ow = ew;
  /* each extent is < 2^32 here, so hw and c*r cannot overflow */
  g->hw = g->h * g->w;
  int64_t kcrs;
  if (__builtin_mul_overflow(g->oh, g->ow, &g->P) ||
      __builtin_mul_overflow(g->c * g->r, g->s, &g->crs) ||
      __builtin_mul_overflow(g->k, g->crs, &kcrs) || g->hw > CONV_GEMM_MAX ||
      g->P > CONV_GEMM_MAX || g->crs > CONV_GEMM_MAX || kcrs > CONV_GEMM_MAX)
    return tc__error(TC_EINVAL,
                     "%s: problem too large (CRS %lld, P %lld): GEMM extents "
                     "must fit an int",
                     fn, (long long)(g->c * g->r), (long long)g->P);
  int64_t per_image = g->c * g->hw > g->k * g->P ? g->c * g->hw : g->k * g->P;
  int64_t total, col_elems;
  if (__builtin_mul_overflow(per_image, g->n, &total) || total > INT64_MAX / 4)
    return tc__error(TC_EINVAL, "%s: batch %lld too large", fn,
                     (long long)g->n);
  /* one im2col slice must be addressable in bytes */
  if (__builtin_mul_overflow(g->crs, g->P, &col_elems) ||
      col_elems > INT64_MAX / 8)
    return tc__error(TC_EINVAL, "%s: im2col panel (CRS %lld, P %lld) too large",
                     fn, (long long)g->crs, (long long)g->P);
  g->direct = g->r == 1 && g->s == 1 && g->sh == 1 && g->sw == 1 &&
              g->ph == 0 && g->pw == 0;
  g->col_bytes = g->direct ? 0 : round64((size_t)g->crs * (size_t)g->P * 4);
  int64_t by_mem = CONV_PARTIAL_BUDGET / kcrs;
  g->chunks = min64(min64(g->n, CPU_REDUCE_CHUNKS), by_mem > 1 ? by_mem : 1);
  g->part_bytes =
      g->chunks > 1 ? round64((size_t)g->chunks * (size_t)kcrs * 4) : 0;
  return TC_OK;
}

/* Places the im2col slices (after `reserve` bytes) and counts how many fit;
 * `tasks` bounds the useful concurrency. */
static tc_status conv_workspace(void *ctx, conv_geom *g, size_t reserve,
                                int64_t tasks, const char *fn) {
  const tc_conv2d_args *a = g->a;
  int64_t pool = cpu_pool_size(((cpu_ctx *)ctx)->pool);
  size_t need = reserve + g->col_bytes;
  if (need > 0 && (!a->workspace || a->workspace_size < need))
    return tc__error(TC_EINVAL,
                     "%s: workspace %zu bytes at %p, need at least %zu "
                     "(see conv2d_workspace_size)",
                     fn, a->workspace_size, a->workspace, need);
  /* the slices hold floats (backend alloc gives 64-byte alignment) */
  if (need > 0 && (uintptr_t)a->workspace % sizeof(float) != 0)
    return tc__error(TC_EINVAL, "%s: workspace %p is not float-aligned", fn,
                     a->workspace);
  int64_t fit = g->col_bytes
                    ? (int64_t)((a->workspace_size - reserve) / g->col_bytes)
                    : INT64_MAX;
  g->slots = min64(min64(tasks, pool), fit);
  if (g->slots < 1)
    g->slots = 1;
  g->part = reserve ? (float *)a->workspace : NULL;
  g->cols = a->workspace ? (char *)a->workspace + reserve : NULL;
  return TC_OK;
}

tc_status cpu_conv2d_workspace_size(void *ctx, const tc_conv2d_args *a,
                                    size_t *out_bytes) {
  static const char fn[] = "cpu_conv2d_workspace_size";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, &g);
  if (st != TC_OK)
    return st;
  if (!out_bytes)
    return tc__error(TC_EINVAL, "%s: argument 'out_bytes' is NULL", fn);
  int64_t slots = min64(g.n, cpu_pool_size(((cpu_ctx *)ctx)->pool));
  size_t cols, total;
  if (!tc__mul_size((size_t)slots, g.col_bytes, &cols) ||
      !tc__add_size(cols, g.part_bytes, &total))
    return tc__error(TC_EINVAL, "%s: workspace size overflows", fn);
  *out_bytes = total;
  return TC_OK;
}

/* ---- im2col / col2im -------------------------------------------------- */

/* Output columns [lo, hi) whose input column ow*sw + off lies in [0, w). */
static void col_range(int64_t off, int64_t sw, int64_t w, int64_t ow,
                      int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + sw - 1) / sw;
  int64_t h = w - 1 - off < 0 ? 0 : (w - 1 - off) / sw + 1;
  if (h > ow)
    h = ow;
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
}

/* x: (c,h,w) -> col: (c*r*s, oh*ow), zero where the window hits padding. */
static void im2col(const conv_geom *g, const float *x, float *col) {
  for (int64_t cc = 0; cc < g->c; cc++) {
    const float *xc = x + cc * g->hw;
    for (int64_t ki = 0; ki < g->r; ki++) {
      for (int64_t kj = 0; kj < g->s; kj++) {
        float *row = col + ((cc * g->r + ki) * g->s + kj) * g->P;
        int64_t off = kj * g->dw - g->pw, lo, hi;
        col_range(off, g->sw, g->w, g->ow, &lo, &hi);
        for (int64_t o = 0; o < g->oh; o++) {
          float *d = row + o * g->ow;
          int64_t ih = o * g->sh - g->ph + ki * g->dh;
          if (ih < 0 || ih >= g->h) {
            memset(d, 0, (size_t)g->ow * sizeof *d);
            continue;
          }
          /* input column of output q is q*sw + off (>= 0 for q >= lo) */
          const float *src = xc + ih * g->w;
          for (int64_t q = 0; q < lo; q++)
            d[q] = 0.f;
          if (g->sw == 1) {
            memcpy(d + lo, src + lo + off, (size_t)(hi - lo) * sizeof *d);
          } else {
            for (int64_t q = lo; q < hi; q++)
              d[q] = src[q * g->sw + off];
          }
          for (int64_t q = hi; q < g->ow; q++)
            d[q] = 0.f;
        }
      }
    }
  }
}

/* dx: (c,h,w) += col2im(col: (c*r*s, oh*ow)); padding entries are dropped. */
static void col2im_add(const conv_geom *g, const float *col, float *dx) {
  for (int64_t cc = 0; cc < g->c; cc++) {
    float *xc = dx + cc * g->hw;
    for (int64_t ki = 0; ki < g->r; ki++) {
      for (int64_t kj = 0; kj < g->s; kj++) {
        const float *row = col + ((cc * g->r + ki) * g->s + kj) * g->P;
        int64_t off = kj * g->dw - g->pw, lo, hi;
        col_range(off, g->sw, g->w, g->ow, &lo, &hi);
        for (int64_t o = 0; o < g->oh; o++) {
          int64_t ih = o * g->sh - g->ph + ki * g->dh;
          if (ih < 0 || ih >= g->h)
            continue;
          const float *d = row + o * g->ow;
          float *dst = xc + ih * g->w;
          if (g->sw == 1) {
            float *restrict dr = dst + lo + off; /* >= dst: lo+off >= 0 */
            const float *restrict sr = d + lo;
            for (int64_t q = 0; q < hi - lo; q++)
              dr[q] += sr[q];
          } else {
            for (int64_t q = lo; q < hi; q++)
              dst[q * g->sw + off] += d[q];
          }
        }
      }
    }
  }
}

/* Images [first, last) of block t when n images are cut into `parts`. */
static void block_range(int64_t n, int64_t parts, int64_t t, int64_t *first,
                        int64_t *last) {
  *first = n * t / parts;
  *last = n * (t + 1) / parts;
}

static float *slot_col(const conv_geom *g, int64_t t) {
  return (float *)(g->cols + (size_t)t * g->col_bytes);
}

/* ---- forward ----------------------------------------------------------- */

static void fwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1;
  block_range(g->n, g->slots, t, &i0, &i1);
  float *col = g->direct ? NULL : slot_col(g, t);
  for (int64_t i = i0; i < i1; i++) {
    const float *x = a->x + i * g->c * g->hw; /* (c,h,w) */
    float *y = a->y + i * g->k * g->P;        /* (k,P) */
    if (!g->direct) {
      im2col(g, x, col);
      x = col;
    }
    float beta = 0.f;
    if (a->bias) {
      for (int64_t kk = 0; kk < g->k; kk++)
        for (int64_t p = 0; p < g->P; p++)
          y[kk * g->P + p] = a->bias[kk];
      beta = 1.f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)g->k,
                (blasint)g->P, (blasint)g->crs, 1.f, a->wt, (blasint)g->crs, x,
                (blasint)g->P, beta, y, (blasint)g->P);
  }
}

tc_status cpu_conv2d_fwd(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_fwd";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, &g);
  if (st != TC_OK)
    return st;
  if (g.n == 0)
    return TC_OK;
  if (!a->x || !a->wt || !a->y)
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     !a->x    ? "x"
                     : !a->wt ? "wt"
                              : "y");
  if ((st = conv_workspace(ctx, &g, 0, g.n, fn)) != TC_OK)
    return st;
  cpu_parallel_for(ctx, g.slots, fwd_task, &g);
  return TC_OK;
}

/* ---- backward data ----------------------------------------------------- */

static void bwd_data_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1;
  block_range(g->n, g->slots, t, &i0, &i1);
  for (int64_t i = i0; i < i1; i++) {
    const float *dy = a->dy + i * g->k * g->P; /* (k,P) */
    float *dx = a->dx + i * g->c * g->hw;      /* (c,h,w) */
    if (g->direct) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)g->crs,
                  (blasint)g->P, (blasint)g->k, 1.f, a->wt, (blasint)g->crs, dy,
                  (blasint)g->P, a->accumulate ? 1.f : 0.f, dx, (blasint)g->P);
      continue;
    }
    float *col = slot_col(g, t); /* (CRS,P) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)g->crs,
                (blasint)g->P, (blasint)g->k, 1.f, a->wt, (blasint)g->crs, dy,
                (blasint)g->P, 0.f, col, (blasint)g->P);
    if (!a->accumulate)
      memset(dx, 0, (size_t)(g->c * g->hw) * sizeof *dx);
    col2im_add(g, col, dx);
  }
}

tc_status cpu_conv2d_bwd_data(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_data";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, &g);
  if (st != TC_OK)
    return st;
  if (g.n == 0)
    return TC_OK;
  if (!a->dy || !a->wt || !a->dx)
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     !a->dy   ? "dy"
                     : !a->wt ? "wt"
                              : "dx");
  if ((st = conv_workspace(ctx, &g, 0, g.n, fn)) != TC_OK)
    return st;
  cpu_parallel_for(ctx, g.slots, bwd_data_task, &g);
  return TC_OK;
}

/* ---- backward filter --------------------------------------------------- */

/* Slot t computes chunks t, t+slots, ...; a chunk's partial is the same
 * whichever slot computes it. */
static void bwd_filter_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t kcrs = g->k * g->crs;
  float *col = g->direct ? NULL : slot_col(g, t);
  for (int64_t j = t; j < g->chunks; j += g->slots) {
    int64_t i0, i1;
    block_range(g->n, g->chunks, j, &i0, &i1);
    /* one chunk: write dw directly (accumulating if asked) */
    float *dst = g->chunks > 1 ? g->part + j * kcrs : a->dw; /* (k,CRS) */
    float beta = g->chunks == 1 && a->accumulate ? 1.f : 0.f;
    for (int64_t i = i0; i < i1; i++, beta = 1.f) {
      const float *x = a->x + i * g->c * g->hw;  /* (c,h,w) */
      const float *dy = a->dy + i * g->k * g->P; /* (k,P) */
      if (!g->direct) {
        im2col(g, x, col);
        x = col;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)g->k,
                  (blasint)g->crs, (blasint)g->P, 1.f, dy, (blasint)g->P, x,
                  (blasint)g->P, beta, dst, (blasint)g->crs);
    }
  }
}

/* dw[e] = (accumulate ? dw[e] : 0) + (part_0[e] + part_1[e] + ...), for
 * block t of CONV_COMBINE_BLOCK elements; the order never varies. */
static void combine_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  int64_t kcrs = g->k * g->crs;
  int64_t e0 = t * CONV_COMBINE_BLOCK;
  int64_t m = min64(CONV_COMBINE_BLOCK, kcrs - e0);
  float sum[CONV_COMBINE_BLOCK];
  memcpy(sum, g->part + e0, (size_t)m * sizeof *sum);
  for (int64_t j = 1; j < g->chunks; j++) {
    const float *p = g->part + j * kcrs + e0;
    for (int64_t e = 0; e < m; e++)
      sum[e] += p[e];
  }
  float *dw = g->a->dw + e0;
  if (g->a->accumulate) {
    for (int64_t e = 0; e < m; e++)
      dw[e] += sum[e];
  } else {
    memcpy(dw, sum, (size_t)m * sizeof *dw);
  }
}

tc_status cpu_conv2d_bwd_filter(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_filter";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, &g);
  if (st != TC_OK)
    return st;
  if (!a->dw)
    return tc__error(TC_EINVAL, "%s: argument 'dw' is NULL", fn);
  int64_t kcrs = g.k * g.crs;
  if (g.n == 0) { /* an empty sum */
    if (!a->accumulate)
      memset(a->dw, 0, (size_t)kcrs * sizeof *a->dw);
    return TC_OK;
  }
  if (!a->x || !a->dy)
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     !a->x ? "x" : "dy");
  if ((st = conv_workspace(ctx, &g, g.part_bytes, g.chunks, fn)) != TC_OK)
    return st;
  cpu_parallel_for(ctx, g.slots, bwd_filter_task, &g);
  if (g.chunks > 1)
    cpu_parallel_for(ctx, (kcrs + CONV_COMBINE_BLOCK - 1) / CONV_COMBINE_BLOCK,
                     combine_task, &g);
  return TC_OK;
}

/* ---- bias grad --------------------------------------------------------- */

/* db[kk] (+)= sum over images (in order) of the image's channel sum; the
 * channel sum uses 8 fixed lanes so it vectorises without -ffast-math. */
static void bwd_bias_task(void *arg, int64_t kk) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  double total = 0;
  for (int64_t i = 0; i < g->n; i++) {
    const float *v = a->dy + (i * g->k + kk) * g->P; /* (P) */
    float lane[8] = {0};
    int64_t p = 0;
    for (; p + 8 <= g->P; p += 8)
      for (int l = 0; l < 8; l++)
        lane[l] += v[p + l];
    float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
              ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; p < g->P; p++)
      s += v[p];
    total += s;
  }
  a->db[kk] = a->accumulate ? a->db[kk] + (float)total : (float)total;
}

tc_status cpu_conv2d_bwd_bias(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_bias";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, &g);
  if (st != TC_OK)
    return st;
  if (!a->db)
    return tc__error(TC_EINVAL, "%s: argument 'db' is NULL", fn);
  if (g.n > 0 && !a->dy)
    return tc__error(TC_EINVAL, "%s: argument 'dy' is NULL", fn);
  cpu_parallel_for(ctx, g.k, bwd_bias_task, &g);
  return TC_OK;
}
