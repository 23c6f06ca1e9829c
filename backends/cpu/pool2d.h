/*
 * pool2d.h - what pool2d.c (checks, the general windows, average and
 * global pooling, the op entry points) and pool2d_k2.c (max pooling's 2x2
 * stride-2 fast paths) share.
 */
#ifndef TINYCNN_CPU_POOL2D_H
#define TINYCNN_CPU_POOL2D_H

#include "cpu.h"

typedef struct pool_job {
  const tc_pool2d_args *a;
  int64_t planes, per_task; /* planes per task */
  int64_t hw, ohw;
  atomic_int bad; /* maxpool backward: an argmax out of range */
  int k2;         /* 2x2 windows, stride 2, no padding */
  int avx2;
  /* k2 with AVX-512, full windows only (out_w == w/2) and w <= 32: `g`
   * row pairs (2w floats each, consecutive in the plane) are done at once,
   * their <= 64 floats in 4 registers, one output per lane (0 = off).
   * Lane l = k*(w/2) + c is the window at row pair k, column c. */
  int g;
  int32_t lane_base[16]; /* its top-left cell: 2w*k + 2c */
  int32_t perm[4][16];   /* its 4 cells (raster order) as permutex2var
                          * indices into registers 0-1 (or 2-3) */
  uint16_t perm_hi[4];   /* lanes whose cell lies in registers 2-3 */
  int32_t inv[4][16];    /* backward: float 16r+i of the group comes from
                          * lane inv & 15 of the top (bottom) even / odd
                          * cell vector, odd when inv & 16 */
  uint16_t inv_top[4];   /* floats of register r in a top row */
} pool_job;

static inline int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}
static inline int64_t max64(int64_t x, int64_t y) {
  return x > y ? x : y;
}

/* Window of output (oh, ow): real cells [h0,h1) x [w0,w1). */
#define POOL_WINDOW(a, oh, ow)                                                 \
  int64_t hs_ = (oh) * (a)->stride_h - (a)->pad_h;                             \
  int64_t ws_ = (ow) * (a)->stride_w - (a)->pad_w;                             \
  int64_t h0 = max64(hs_, 0), h1 = min64(hs_ + (a)->kh, (a)->h);               \
  int64_t w0 = max64(ws_, 0), w1 = min64(ws_ + (a)->kw, (a)->w)

/* One output of max pooling, windows clipped to the input (pool2d.c). */
void tc__cpu_maxpool_one(const tc_pool2d_args *a, const float *restrict x,
                         float *restrict y, int32_t *restrict am, int64_t oh,
                         int64_t ow);

/* ---- pool2d_k2.c: 2x2 windows, stride 2, no padding ---- */
void tc__cpu_max2_plan(pool_job *j);
/* forward task over per_task planes (j->k2) */
void tc__cpu_maxpool2_fwd_task(void *arg, int64_t t);
/* one plane of the backward, dx overwritten; 0 when an argmax lies
 * outside its window (the plane is then to be done the general way) */
int tc__cpu_max2_bwd_plane(const pool_job *j, float *restrict dx,
                           const float *restrict dy,
                           const int32_t *restrict am);

#endif /* TINYCNN_CPU_POOL2D_H */
