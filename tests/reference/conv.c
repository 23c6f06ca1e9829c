/*
 * conv.c - naive reference GEMM and direct 2-D convolution (see conv.h).
 * Loops follow the definitions literally; accumulation is in double so the
 * reference is more exact than any backend it checks.
 */
#include "conv.h"

#include <stdlib.h>

void ref_gemm(const tc_gemm_args *a) {
  for (int64_t b = 0; b < a->batch; b++) {
    const float *A = a->a + b * a->stride_a;
    const float *B = a->b + b * a->stride_b;
    float *C = a->c + b * a->stride_c;
    for (int64_t i = 0; i < a->m; i++) {
      for (int64_t j = 0; j < a->n; j++) {
        double s = 0;
        for (int64_t p = 0; p < a->k; p++) {
          double av = a->trans_a ? A[p * a->lda + i] : A[i * a->lda + p];
          double bv = a->trans_b ? B[j * a->ldb + p] : B[p * a->ldb + j];
          s += av * bv;
        }
        double c = a->alpha * s;
        if (a->beta != 0.f)
          c += (double)a->beta * C[i * a->ldc + j];
        C[i * a->ldc + j] = (float)c;
      }
    }
  }
}

int64_t ref_conv_out_size(int64_t in, int64_t kernel, int64_t stride,
                          int64_t pad, int64_t dil) {
  int64_t e = in + 2 * pad - dil * (kernel - 1) - 1;
  return e < 0 ? 0 : e / stride + 1;
}

/* Index helpers: x (n,c,h,w), w (k,c,r,s), y (n,k,oh,ow). */
#define XI(a, i, cc, y, x)                                                     \
  ((((i) * (a)->c + (cc)) * (a)->h + (y)) * (a)->w + (x))
#define WI(a, kk, cc, u, v)                                                    \
  ((((kk) * (a)->c + (cc)) * (a)->r + (u)) * (a)->s + (v))
#define YI(a, i, kk, p, q)                                                     \
  ((((i) * (a)->k + (kk)) * (a)->out_h + (p)) * (a)->out_w + (q))

/* Input row/column that output (p,q) and kernel tap (u,v) read, or -1. */
static int64_t in_pos(int64_t o, int64_t stride, int64_t pad, int64_t t,
                      int64_t dil, int64_t size) {
  int64_t v = o * stride - pad + t * dil;
  return v >= 0 && v < size ? v : -1;
}

void ref_conv2d_fwd(const tc_conv2d_args *a) {
  for (int64_t i = 0; i < a->n; i++)
    for (int64_t kk = 0; kk < a->k; kk++)
      for (int64_t p = 0; p < a->out_h; p++)
        for (int64_t q = 0; q < a->out_w; q++) {
          double s = a->bias ? a->bias[kk] : 0.0;
          for (int64_t cc = 0; cc < a->c; cc++)
            for (int64_t u = 0; u < a->r; u++) {
              int64_t y = in_pos(p, a->stride_h, a->pad_h, u, a->dil_h, a->h);
              if (y < 0)
                continue;
              for (int64_t v = 0; v < a->s; v++) {
                int64_t x = in_pos(q, a->stride_w, a->pad_w, v, a->dil_w, a->w);
                if (x < 0)
                  continue;
                s += (double)a->x[XI(a, i, cc, y, x)] *
                     a->wt[WI(a, kk, cc, u, v)];
              }
            }
          a->y[YI(a, i, kk, p, q)] = (float)s;
        }
}

/* The backward passes scatter from each (output, tap) pair into double
 * buffers, then write (or add) once, so accumulate adds a rounded sum. */
void ref_conv2d_bwd_data(const tc_conv2d_args *a) {
  int64_t nx = a->n * a->c * a->h * a->w;
  double *acc = calloc((size_t)(nx > 0 ? nx : 1), sizeof *acc);
  if (!acc)
    abort();
  for (int64_t i = 0; i < a->n; i++)
    for (int64_t kk = 0; kk < a->k; kk++)
      for (int64_t p = 0; p < a->out_h; p++)
        for (int64_t q = 0; q < a->out_w; q++) {
          double g = a->dy[YI(a, i, kk, p, q)];
          for (int64_t cc = 0; cc < a->c; cc++)
            for (int64_t u = 0; u < a->r; u++) {
              int64_t y = in_pos(p, a->stride_h, a->pad_h, u, a->dil_h, a->h);
              if (y < 0)
                continue;
              for (int64_t v = 0; v < a->s; v++) {
                int64_t x = in_pos(q, a->stride_w, a->pad_w, v, a->dil_w, a->w);
                if (x >= 0)
                  acc[XI(a, i, cc, y, x)] += g * a->wt[WI(a, kk, cc, u, v)];
              }
            }
        }
  for (int64_t e = 0; e < nx; e++)
    a->dx[e] = (float)(a->accumulate ? a->dx[e] + acc[e] : acc[e]);
  free(acc);
}

void ref_conv2d_bwd_filter(const tc_conv2d_args *a) {
  int64_t nw = a->k * a->c * a->r * a->s;
  double *acc = calloc((size_t)nw, sizeof *acc);
  if (!acc)
    abort();
  for (int64_t i = 0; i < a->n; i++)
    for (int64_t kk = 0; kk < a->k; kk++)
      for (int64_t p = 0; p < a->out_h; p++)
        for (int64_t q = 0; q < a->out_w; q++) {
          double g = a->dy[YI(a, i, kk, p, q)];
          for (int64_t cc = 0; cc < a->c; cc++)
            for (int64_t u = 0; u < a->r; u++) {
              int64_t y = in_pos(p, a->stride_h, a->pad_h, u, a->dil_h, a->h);
              if (y < 0)
                continue;
              for (int64_t v = 0; v < a->s; v++) {
                int64_t x = in_pos(q, a->stride_w, a->pad_w, v, a->dil_w, a->w);
                if (x >= 0)
                  acc[WI(a, kk, cc, u, v)] += g * a->x[XI(a, i, cc, y, x)];
              }
            }
        }
  for (int64_t e = 0; e < nw; e++)
    a->dw[e] = (float)(a->accumulate ? a->dw[e] + acc[e] : acc[e]);
  free(acc);
}

void ref_conv2d_bwd_bias(const tc_conv2d_args *a) {
  for (int64_t kk = 0; kk < a->k; kk++) {
    double s = 0;
    for (int64_t i = 0; i < a->n; i++)
      for (int64_t p = 0; p < a->out_h; p++)
        for (int64_t q = 0; q < a->out_w; q++)
          s += a->dy[YI(a, i, kk, p, q)];
    a->db[kk] = (float)(a->accumulate ? a->db[kk] + s : s);
  }
}
