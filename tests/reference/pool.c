/*
 * pool.c - naive reference pooling (see pool.h). Written for clarity:
 * every window is visited cell by cell; backward contributions are summed
 * in a double copy of dx and rounded once.
 */
#include "pool.h"

#include <math.h>
#include <stdlib.h>

int64_t ref_pool_out_size(int64_t in, int64_t kernel, int64_t stride,
                          int64_t pad, int ceil_mode) {
  int64_t num = in + 2 * pad - kernel;
  int64_t out = (ceil_mode ? (num + stride - 1) / stride : num / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad)
    out--;
  return out;
}

/* Input row (column) of window position `o`, tap `t`. */
static int64_t in_pos(int64_t o, int64_t stride, int64_t pad, int64_t t) {
  return o * stride - pad + t;
}

static int is_real(const tc_pool2d_args *a, int64_t ih, int64_t iw) {
  return ih >= 0 && ih < a->h && iw >= 0 && iw < a->w;
}

void ref_maxpool2d_fwd(const tc_pool2d_args *a) {
  int64_t hw = a->h * a->w, ohw = a->out_h * a->out_w;
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        float m = -INFINITY;
        int64_t best = -1; /* stays -1 only for a window of padding alone */
        for (int64_t i = 0; i < a->kh; i++)
          for (int64_t j = 0; j < a->kw; j++) {
            int64_t ih = in_pos(oh, a->stride_h, a->pad_h, i);
            int64_t iw = in_pos(ow, a->stride_w, a->pad_w, j);
            if (!is_real(a, ih, iw))
              continue; /* padding is never chosen */
            float v = a->x[p * hw + ih * a->w + iw];
            if (best < 0 || v > m || isnan(v)) {
              m = v;
              best = ih * a->w + iw;
            }
          }
        int64_t o = p * ohw + oh * a->out_w + ow;
        a->y[o] = m;
        if (a->argmax)
          a->argmax[o] = (int32_t)best;
      }
}

/* dx = (accumulate ? dx : 0) + d, from the double sums d. */
static void store_dx(float *dx, const double *d, int64_t n, int accumulate) {
  for (int64_t i = 0; i < n; i++)
    dx[i] = (float)((accumulate ? (double)dx[i] : 0.0) + d[i]);
}

void ref_maxpool2d_bwd(const tc_pool2d_args *a) {
  int64_t hw = a->h * a->w, ohw = a->out_h * a->out_w, nx = a->n * a->c * hw;
  double *d = calloc((size_t)(nx ? nx : 1), sizeof *d);
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t o = 0; o < ohw; o++) {
      int32_t k = a->argmax[p * ohw + o];
      if (k >= 0 && k < hw)
        d[p * hw + k] += a->dy[p * ohw + o];
    }
  store_dx(a->dx, d, nx, a->accumulate);
  free(d);
}

/* The divisor of window (oh, ow): see pool.h. */
static int64_t avg_divisor(const tc_pool2d_args *a, int64_t oh, int64_t ow) {
  int64_t real = 0, padded = 0;
  for (int64_t i = 0; i < a->kh; i++)
    for (int64_t j = 0; j < a->kw; j++) {
      int64_t ih = in_pos(oh, a->stride_h, a->pad_h, i);
      int64_t iw = in_pos(ow, a->stride_w, a->pad_w, j);
      padded += ih >= -a->pad_h && ih < a->h + a->pad_h && iw >= -a->pad_w &&
                iw < a->w + a->pad_w;
      real += is_real(a, ih, iw);
    }
  return a->count_include_pad ? padded : real;
}

void ref_avgpool2d_fwd(const tc_pool2d_args *a) {
  int64_t hw = a->h * a->w, ohw = a->out_h * a->out_w;
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        double s = 0;
        for (int64_t i = 0; i < a->kh; i++)
          for (int64_t j = 0; j < a->kw; j++) {
            int64_t ih = in_pos(oh, a->stride_h, a->pad_h, i);
            int64_t iw = in_pos(ow, a->stride_w, a->pad_w, j);
            if (is_real(a, ih, iw))
              s += a->x[p * hw + ih * a->w + iw];
          }
        a->y[p * ohw + oh * a->out_w + ow] =
            (float)(s / (double)avg_divisor(a, oh, ow));
      }
}

void ref_avgpool2d_bwd(const tc_pool2d_args *a) {
  int64_t hw = a->h * a->w, ohw = a->out_h * a->out_w, nx = a->n * a->c * hw;
  double *d = calloc((size_t)(nx ? nx : 1), sizeof *d);
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        double g = (double)a->dy[p * ohw + oh * a->out_w + ow] /
                   (double)avg_divisor(a, oh, ow);
        for (int64_t i = 0; i < a->kh; i++)
          for (int64_t j = 0; j < a->kw; j++) {
            int64_t ih = in_pos(oh, a->stride_h, a->pad_h, i);
            int64_t iw = in_pos(ow, a->stride_w, a->pad_w, j);
            if (is_real(a, ih, iw))
              d[p * hw + ih * a->w + iw] += g;
          }
      }
  store_dx(a->dx, d, nx, a->accumulate);
  free(d);
}

void ref_global_avgpool_fwd(const tc_gap_args *a) {
  for (int64_t p = 0; p < a->n * a->c; p++) {
    double s = 0;
    for (int64_t e = 0; e < a->spatial; e++)
      s += a->x[p * a->spatial + e];
    a->y[p] = (float)(s / (double)a->spatial);
  }
}

void ref_global_avgpool_bwd(const tc_gap_args *a) {
  for (int64_t p = 0; p < a->n * a->c; p++)
    for (int64_t e = 0; e < a->spatial; e++) {
      float *dx = &a->dx[p * a->spatial + e];
      *dx = (float)((a->accumulate ? (double)*dx : 0.0) +
                    (double)a->dy[p] / (double)a->spatial);
    }
}
