/*
 * conv2d_gemm.c - the CPU convolution's fallback (see conv2d.c's header):
 * per image, im2col + one OpenBLAS sgemm on the whole panel (forward and
 * weight gradient), or sgemm + col2im (backward data). A 1x1 kernel with
 * stride 1 and no padding uses the image as its own column matrix.
 */
#include <cblas.h>
#include <string.h>

#include "conv2d_geom.h"

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

/* ---- tasks (one unit: an image, or a wgrad chunk) ---- */

void tc__cpu_conv_fwd_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1;
  int fresh; /* im2col writes the whole col: no zeros to keep */
  float *col = tc__cpu_conv_task_units(g, g->n, t, &i0, &i1, &fresh);
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

void tc__cpu_conv_bwd_data_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t i0, i1;
  int fresh; /* im2col writes the whole col */
  float *col = tc__cpu_conv_task_units(g, g->n, t, &i0, &i1, &fresh);
  for (int64_t i = i0; i < i1; i++) {
    const float *dy = a->dy + i * g->k * g->P; /* (k,P) */
    float *dx = a->dx + i * g->c * g->hw;      /* (c,h,w) */
    if (g->direct) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)g->crs,
                  (blasint)g->P, (blasint)g->k, 1.f, a->wt, (blasint)g->crs, dy,
                  (blasint)g->P, a->accumulate ? 1.f : 0.f, dx, (blasint)g->P);
      continue;
    }
    /* col: (CRS,P) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)g->crs,
                (blasint)g->P, (blasint)g->k, 1.f, a->wt, (blasint)g->crs, dy,
                (blasint)g->P, 0.f, col, (blasint)g->P);
    if (!a->accumulate)
      memset(dx, 0, (size_t)(g->c * g->hw) * sizeof *dx);
    col2im_add(g, col, dx);
  }
}

/* Task t computes its chunks (see tc__cpu_conv_dwg_task); a chunk's partial is
 * the same whichever slot or thread computes it. */
void tc__cpu_conv_bwd_filter_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  int64_t kcrs = g->k * g->crs;
  int64_t j0, j1;
  int fresh; /* im2col writes the whole col */
  float *col = tc__cpu_conv_task_units(g, g->chunks, t, &j0, &j1, &fresh);
  for (int64_t j = j0; j < j1; j++) {
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
