/*
 * pool2d.cu - max and average pooling (torch.nn.MaxPool2d / AvgPool2d,
 * dilation 1) and global average pooling, forward and backward.
 *
 * Backward passes gather instead of scatter: each input pixel sums, in a
 * fixed order, the outputs whose window covers it, so overlapping windows
 * need no atomics and every run gives the same bits.
 * Max pooling: padding never wins, the first maximum wins, a NaN counts
 * as the maximum (`v > max || isnan(v)`: the last NaN wins), as PyTorch and
 * the CPU backend; argmax is the index in the h*w plane. Arguments are
 * checked as the CPU does; argmax *contents* are not (the CPU's range
 * check would cost a device sync here): an out-of-range index drops its dy.
 * Average pooling follows PyTorch's divisor: with count_include_pad the
 * window clipped to the padded input, else the in-image pixel count.
 * x: (n,c,h,w)  y, argmax, dy: (n,c,out_h,out_w)  dx: (n,c,h,w).
 */
#include <math.h>

#include "cuda_be.h"

typedef struct pool_geom {
  int64_t h, w, kh, kw, sh, sw, ph, pw, oh, ow;
} pool_geom;

/* The shared checks (backends/op_check.c) for slot `op`; fills g. */
static tc_status pool_check(void *ctx, const char *fn, tc__op op,
                            const tc_pool2d_args *a, pool_geom *g) {
  tc_status st = tc__check_pool2d_args(ctx, a, fn, op);
  if (st != TC_OK)
    return st;
  pool_geom t = {a->h,     a->w,     a->kh,    a->kw,    a->stride_h,
                 a->stride_w, a->pad_h, a->pad_w, a->out_h, a->out_w};
  *g = t;
  return TC_OK;
}

/* Outputs along one axis whose window [o*s - p, o*s - p + k) covers i. */
__device__ inline void covering(int64_t i, int64_t k, int64_t s, int64_t p,
                                int64_t o_n, int64_t *lo, int64_t *hi) {
  int64_t t = i + p - k + 1; /* o*s >= t */
  *lo = t <= 0 ? 0 : (t + s - 1) / s;
  int64_t h = (i + p) / s + 1; /* o*s <= i + p */
  *hi = h < o_n ? h : o_n;
}

__global__ void k_maxpool_fwd(const float *x, float *y, int32_t *argmax,
                              int64_t planes, pool_geom g) {
  int64_t total = planes * g.oh * g.ow;
  CU_FOR(i, total) {
    int64_t ow = i % g.ow, oh = (i / g.ow) % g.oh, pl = i / (g.oh * g.ow);
    const float *xp = x + pl * g.h * g.w;
    int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    /* PyTorch's rule (and the CPU's): `v > max || isnan(v)` from -inf, so
     * the first maximum wins, the last NaN wins, and an all -inf window
     * gives its first real cell */
    int64_t ih0 = h0 > 0 ? h0 : 0, iw0 = w0 > 0 ? w0 : 0;
    float best = -INFINITY;
    int64_t arg = ih0 * g.w + iw0;
    for (int64_t ih = ih0; ih < h0 + g.kh && ih < g.h; ih++)
      for (int64_t iw = iw0; iw < w0 + g.kw && iw < g.w; iw++) {
        float v = xp[ih * g.w + iw];
        if (v > best || v != v) {
          best = v;
          arg = ih * g.w + iw;
        }
      }
    y[i] = best;
    if (argmax)
      argmax[i] = (int32_t)arg;
  }
}

__global__ void k_maxpool_bwd(const float *dy, const int32_t *argmax,
                              float *dx, int64_t planes, pool_geom g,
                              int accumulate) {
  int64_t total = planes * g.h * g.w;
  CU_FOR(i, total) {
    int64_t iw = i % g.w, ih = (i / g.w) % g.h, pl = i / (g.h * g.w);
    int64_t me = ih * g.w + iw, oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.oh, &oh0, &oh1);
    covering(iw, g.kw, g.sw, g.pw, g.ow, &ow0, &ow1);
    const float *dyp = dy + pl * g.oh * g.ow;
    const int32_t *ap = argmax + pl * g.oh * g.ow;
    float sum = 0.f;
    for (int64_t oh = oh0; oh < oh1; oh++)
      for (int64_t ow = ow0; ow < ow1; ow++)
        if (ap[oh * g.ow + ow] == me)
          sum += dyp[oh * g.ow + ow];
    dx[i] = accumulate ? dx[i] + sum : sum;
  }
}

/* PyTorch's avg_pool2d divisor for output (oh, ow). */
__device__ inline float avg_divisor(int64_t oh, int64_t ow, pool_geom g,
                                    int include_pad) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = h0 + g.kh < g.h + g.ph ? h0 + g.kh : g.h + g.ph;
  int64_t w1 = w0 + g.kw < g.w + g.pw ? w0 + g.kw : g.w + g.pw;
  if (include_pad)
    return (float)((h1 - h0) * (w1 - w0));
  h0 = h0 > 0 ? h0 : 0;
  w0 = w0 > 0 ? w0 : 0;
  h1 = h1 < g.h ? h1 : g.h;
  w1 = w1 < g.w ? w1 : g.w;
  int64_t n = (h1 - h0) * (w1 - w0);
  return (float)(n > 0 ? n : 1);
}

/* Sums in double, as the CPU backend: the same result up to rounding
 * order (windows are small). */
__global__ void k_avgpool_fwd(const float *x, float *y, int64_t planes,
                              pool_geom g, int include_pad) {
  int64_t total = planes * g.oh * g.ow;
  CU_FOR(i, total) {
    int64_t ow = i % g.ow, oh = (i / g.ow) % g.oh, pl = i / (g.oh * g.ow);
    const float *xp = x + pl * g.h * g.w;
    int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    double sum = 0.0;
    for (int64_t ih = h0 > 0 ? h0 : 0; ih < h0 + g.kh && ih < g.h; ih++)
      for (int64_t iw = w0 > 0 ? w0 : 0; iw < w0 + g.kw && iw < g.w; iw++)
        sum += xp[ih * g.w + iw];
    y[i] = (float)(sum / (double)avg_divisor(oh, ow, g, include_pad));
  }
}

__global__ void k_avgpool_bwd(const float *dy, float *dx, int64_t planes,
                              pool_geom g, int include_pad, int accumulate) {
  int64_t total = planes * g.h * g.w;
  CU_FOR(i, total) {
    int64_t iw = i % g.w, ih = (i / g.w) % g.h, pl = i / (g.h * g.w);
    int64_t oh0, oh1, ow0, ow1;
    covering(ih, g.kh, g.sh, g.ph, g.oh, &oh0, &oh1);
    covering(iw, g.kw, g.sw, g.pw, g.ow, &ow0, &ow1);
    const float *dyp = dy + pl * g.oh * g.ow;
    float sum = 0.f;
    for (int64_t oh = oh0; oh < oh1; oh++)
      for (int64_t ow = ow0; ow < ow1; ow++)
        sum += dyp[oh * g.ow + ow] / avg_divisor(oh, ow, g, include_pad);
    dx[i] = accumulate ? dx[i] + sum : sum;
  }
}

/* One warp per (n, c) row: y = mean of its sp values. */
__global__ void k_gap_fwd(const float *x, float *y, int64_t rows,
                          int64_t sp) {
  int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  int lane = threadIdx.x & 31;
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
       r < rows; r += warps) {
    double s = 0.0; /* double, as the CPU backend */
    for (int64_t j = lane; j < sp; j += 32)
      s += (double)x[r * sp + j];
    s = cu_warp_reduce(s, cu_op_add());
    if (lane == 0)
      y[r] = (float)(s / (double)sp);
  }
}

__global__ void k_gap_bwd(const float *dy, float *dx, int64_t rows,
                          int64_t sp, int accumulate) {
  int64_t total = rows * sp;
  CU_FOR(i, total) {
    float v = dy[i / sp] / (float)sp;
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

tc_status cu_maxpool2d_fwd(void *ctx, const tc_pool2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  pool_geom g;
  tc_status st = pool_check(ctx, CU_FN("maxpool2d_fwd"),
                            TC__OP_MAXPOOL2D_FWD, a, &g);
  if (st != TC_OK || a->n * a->c == 0)
    return st;
  if ((st = cu_enter(c, "maxpool2d_fwd")) != TC_OK)
    return st;
  k_maxpool_fwd<<<cu_blocks(a->n * a->c * g.oh * g.ow), CU_THREADS, 0,
                  c->stream>>>(a->x, a->y, a->argmax, a->n * a->c, g);
  return cu_launched("maxpool2d_fwd");
}

tc_status cu_maxpool2d_bwd(void *ctx, const tc_pool2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  pool_geom g;
  tc_status st = pool_check(ctx, CU_FN("maxpool2d_bwd"),
                            TC__OP_MAXPOOL2D_BWD, a, &g);
  if (st != TC_OK || a->n * a->c == 0)
    return st;
  if ((st = cu_enter(c, "maxpool2d_bwd")) != TC_OK)
    return st;
  k_maxpool_bwd<<<cu_blocks(a->n * a->c * g.h * g.w), CU_THREADS, 0,
                  c->stream>>>(a->dy, a->argmax, a->dx, a->n * a->c, g,
                               a->accumulate);
  return cu_launched("maxpool2d_bwd");
}

tc_status cu_avgpool2d_fwd(void *ctx, const tc_pool2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  pool_geom g;
  tc_status st = pool_check(ctx, CU_FN("avgpool2d_fwd"),
                            TC__OP_AVGPOOL2D_FWD, a, &g);
  if (st != TC_OK || a->n * a->c == 0)
    return st;
  if ((st = cu_enter(c, "avgpool2d_fwd")) != TC_OK)
    return st;
  k_avgpool_fwd<<<cu_blocks(a->n * a->c * g.oh * g.ow), CU_THREADS, 0,
                  c->stream>>>(a->x, a->y, a->n * a->c, g,
                               a->count_include_pad);
  return cu_launched("avgpool2d_fwd");
}

tc_status cu_avgpool2d_bwd(void *ctx, const tc_pool2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  pool_geom g;
  tc_status st = pool_check(ctx, CU_FN("avgpool2d_bwd"),
                            TC__OP_AVGPOOL2D_BWD, a, &g);
  if (st != TC_OK || a->n * a->c == 0)
    return st;
  if ((st = cu_enter(c, "avgpool2d_bwd")) != TC_OK)
    return st;
  k_avgpool_bwd<<<cu_blocks(a->n * a->c * g.h * g.w), CU_THREADS, 0,
                  c->stream>>>(a->dy, a->dx, a->n * a->c, g,
                               a->count_include_pad, a->accumulate);
  return cu_launched("avgpool2d_bwd");
}

tc_status cu_global_avgpool_fwd(void *ctx, const tc_gap_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_gap_args(ctx, a, CU_FN("global_avgpool_fwd"),
                                    TC__OP_GLOBAL_AVGPOOL_FWD);
  if (st != TC_OK || a->n * a->c == 0)
    return st;
  if ((st = cu_enter(c, "global_avgpool_fwd")) != TC_OK)
    return st;
  k_gap_fwd<<<cu_blocks(a->n * a->c * 32), CU_THREADS, 0, c->stream>>>(
      a->x, a->y, a->n * a->c, a->spatial);
  return cu_launched("global_avgpool_fwd");
}

tc_status cu_global_avgpool_bwd(void *ctx, const tc_gap_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_gap_args(ctx, a, CU_FN("global_avgpool_bwd"),
                                    TC__OP_GLOBAL_AVGPOOL_BWD);
  if (st != TC_OK || a->n * a->c == 0)
    return st;
  if ((st = cu_enter(c, "global_avgpool_bwd")) != TC_OK)
    return st;
  k_gap_bwd<<<cu_blocks(a->n * a->c * a->spatial), CU_THREADS, 0,
              c->stream>>>(a->dy, a->dx, a->n * a->c, a->spatial,
                           a->accumulate);
  return cu_launched("global_avgpool_bwd");
}
