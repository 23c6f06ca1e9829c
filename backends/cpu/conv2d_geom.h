/*
 * conv2d_geom.h - what the CPU convolution's files share: the problem's
 * geometry and buffer plan (conv_geom, filled by conv2d.c), the workspace
 * slot scheduling, and the tasks each method file runs.
 *   conv2d.c         op entry points, argument checks, geometry, workspace
 *   conv2d_driver.c  the direct path: padded / phase planes, dense paths,
 *                    weight packing, the fwd / bwd-data / wgrad tasks
 *   conv2d_gemm.c    the fallback: im2col / col2im + OpenBLAS sgemm
 *   conv2d_direct.c, conv2d_wgradt.c  the direct path's SIMD kernels
 */
#ifndef TINYCNN_CPU_CONV2D_GEOM_H
#define TINYCNN_CPU_CONV2D_GEOM_H

#include "conv2d_direct.h"
#include "cpu.h"

/* Most floats the bwd_filter partial sums may take (64 MiB): above it the
 * batch is cut into fewer chunks (still a function of the shapes only). */
#define CONV_PARTIAL_BUDGET ((int64_t)16 << 20)
/* The size limits (GEMM extents fit BLAS's int) are checked in
 * backends/op_check.c. */
/* Direct path limits: channels, image extent (keeps every buffer small). */
#define CONVD_MAX_CH 4096
#define CONVD_MAX_HW 1024
/* Largest stride the direct path takes (as stride*stride phases). */
#define CONVD_MAX_STRIDE 4
/* Direct wgrad: partial sums (fixed, like CPU_REDUCE_CHUNKS), and images
 * per kernel call: enough that one call sums >= this many positions. */
#define CONVD_CHUNKS 16
#define CONVD_MAX_G 16
#define CONVD_WG_POSITIONS 1024
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
  /* direct (stride-1 SIMD) path; all sizes in floats */
  const convd_kernels *kern;    /* NULL: im2col + GEMM */
  const convd_fwd_var *fv, *bv; /* fwd, bwd_data tiles */
  const convd_wgrad_var *wv;    /* wgrad tile */
  int64_t nph, Rm, Sm;          /* stride phases, most taps per phase */
  int64_t Hs, Ws, nqf, psf;     /* fwd/wgrad phase grid, fwd tiles */
  int64_t U0, V0, Uh, Uw;       /* bwd_data: first phase row/col, extent */
  int64_t Hq, Wq, nqb, psb;     /* bwd_data dy grid */
  int64_t nqw, psw, G;          /* wgrad tiles, images per kernel call */
  int64_t kpf, cpf, kpw;        /* channel counts rounded up to the tiles */
  /* dense fwd / bwd_data (stride 1, ow == w): planes of whole rows, the
   * kernel writes y / dx itself; plane stride, data offset in the plane,
   * kernel input offset from the plane start */
  int densef, denseb;
  int64_t dpsf, dfrf, dinf, dpsb, dfrb, dinb;
  /* dense wgrad: x in fwd's dense planes, dy read in place; position
   * vectors per image (the row-edge mask table has s rows of them) */
  int densew;
  int64_t dnqv;
  /* the weight gradient with output channels in the lanes
   * (conv2d_wgradt.c; AVX-512: dense 3x3 stride 1, k and P multiples of
   * 16, k >= 32; AVX2: stride 1, k a multiple of 16, s >= 4), x in the
   * padded-row planes of the position kernels, dy transposed */
  int wgt;
  /* fwd with the output channels in the lanes (AVX2, stride 1, k a
   * multiple of 16, s >= 4, c*r*s <= CONVD_CHAIN): x in the padded-row
   * planes, y through a (P, k) buffer in the slot's output rows */
  int fwt;
  /* dense fwd / wgrad with stride 2x2 and out = in/2 (dense2): x split
   * into its 4 phases (row, column parity), each a plane of whole oh x ow
   * rows; dnph planes per channel (1 or 4), column shifts dcs0 ..
   * dcs0 + dncs - 1 (the wgrad mask table's rows) */
  int dense2;
  int64_t dnph, dcs0, dncs;
  size_t fwd_shared, fwd_slot, bwd_shared, bwd_slot, wg_slot, wg_part;
  size_t min_ws; /* direct: every op needs the one-slot query */
  /* run time */
  int64_t slots;  /* col slices (buffers) in the workspace */
  int per_thread; /* one slice per pool thread: see task_units */
  char *cols;     /* first col slice */
  float *part;    /* chunks * (k*CRS) */
} conv_geom;

static inline size_t round64(size_t b) {
  return (b + 63) & ~(size_t)63;
}

static inline int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}

static inline int64_t roundup64(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

static inline int64_t max64(int64_t x, int64_t y) {
  return x > y ? x : y;
}

/* Images [first, last) of block t when n images are cut into `parts`. */
static inline void block_range(int64_t n, int64_t parts, int64_t t,
                               int64_t *first, int64_t *last) {
  *first = n * t / parts;
  *last = n * (t + 1) / parts;
}

static inline float *slot_col(const conv_geom *g, int64_t t) {
  return (float *)(g->cols + (size_t)t * g->col_bytes);
}

/* Tasks for an op over `units` (images, or weight-gradient chunks). */
static inline int64_t op_tasks(const conv_geom *g, int64_t units) {
  return g->per_thread ? units : g->slots;
}

/* conv2d.c */
float *tc__cpu_conv_task_units(const conv_geom *g, int64_t units, int64_t t,
                               int64_t *u0, int64_t *u1, int *fresh);

/* conv2d_driver.c: the direct path (g->kern set) */
void tc__cpu_conv_pack_fwd_weights(const conv_geom *g, float *wp);
void tc__cpu_conv_pack_bwd_weights(const conv_geom *g, float *wp);
void tc__cpu_conv_dfwd_task(void *arg, int64_t t);
void tc__cpu_conv_dbwd_task(void *arg, int64_t t);
void tc__cpu_conv_dwg_task(void *arg, int64_t t);

/* conv2d_gemm.c: im2col + GEMM (g->kern NULL) */
void tc__cpu_conv_fwd_task(void *arg, int64_t t);
void tc__cpu_conv_bwd_data_task(void *arg, int64_t t);
void tc__cpu_conv_bwd_filter_task(void *arg, int64_t t);

#endif /* TINYCNN_CPU_CONV2D_GEOM_H */
