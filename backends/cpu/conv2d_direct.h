/*
 * conv2d_direct.h - private to the CPU backend: SIMD kernels for stride-1
 * convolution on a "flattened padded grid" (conv2d_driver.c explains the
 * layout), picked at run time by CPU features.
 */
#ifndef TINYCNN_CONV2D_DIRECT_H
#define TINYCNN_CONV2D_DIRECT_H

#include <stdint.h>

/* Largest r*s the kernels take (offset tables live on the stack). */
#define CONVD_MAX_RS 64
/* fwd sums at most about this many products in one register before adding
 * them to the output (then the next input channels). 1024 covers every
 * ResNet 3x3 layer up to 64 channels in one pass: 32 made ResNet-20
 * training 3.5 % slower (the output is re-read and re-written once per
 * block); its sums were closer to float64, while 1024 is as close as
 * PyTorch's own float32 (tests/test_parity.c measures both). */
#define CONVD_CHAIN 1024

/* out[(kb*kt + j)*ldo + q] = sum over ci < cin, t < nrs of
 *   wp[((kb*cin + ci)*nrs + t)*kt + j] * in[ci*ps + q + off[t]]
 * for kb < nkb, j < kt (the variant's channel tile), q < nq (a multiple of
 * the vector length), added to out when add (else stored); the sum runs
 * in blocks of max(1, CONVD_CHAIN / nrs) input channels. Every plane is
 * zero outside positions [lo, hi) and off is non-decreasing: a block of
 * positions leaves out the taps that read only zeros there (the padding
 * rows; "full" backward data of a 5x5 layer: half its products), which
 * changes no sum but the sign of an exact zero. lo = 0, hi = INT64_MAX:
 * every tap. */
typedef void (*convd_fwd_fn)(const float *in, int64_t cin, int64_t ps,
                             const int64_t *off, int64_t nrs, int64_t lo,
                             int64_t hi, const float *wp, int64_t nkb,
                             float *out, int64_t ldo, int64_t nq, int add);

/* Taps [*t0, *t1) of the non-decreasing off[0..nrs) that read a position
 * in [lo, hi) for some position of [q, q + n). */
static inline void convd_tap_range(const int64_t *off, int64_t nrs, int64_t q,
                                   int64_t n, int64_t lo, int64_t hi,
                                   int64_t *t0, int64_t *t1) {
  int64_t a = 0, b;
  if (nrs > 0 && q + n - 1 + off[0] >= lo && q + off[nrs - 1] < hi) {
    *t0 = 0, *t1 = nrs; /* the common case: every tap */
    return;
  }
  while (a < nrs && q + n - 1 + off[a] < lo)
    a++;
  for (b = a; b < nrs && q + off[b] < hi;)
    b++;
  *t0 = a, *t1 = b;
}

/* The dense variant (AVX-512, AVX2): in holds whole rows of width w, no side
 * padding; out[(kk)*ldo + q] for kk < nk, q < nq (any count) is
 *   sum over ci, t of wp[...] * in[ci*ps + q + off[t]] where the column
 *   (q mod w) + cs[t] lies in [0, w) (else that product is left out),
 * added to out when add, plus bias[kk] when bias is not NULL. */
typedef void (*convd_fwdm_fn)(const float *in, int64_t cin, int64_t ps,
                              const int64_t *off, const int64_t *cs,
                              int64_t nrs, int64_t w, const float *wp,
                              int64_t nk, const float *bias, float *out,
                              int64_t ldo, int64_t nq, int add);
/* part[(kk*c + ci)*prs + pidx[t]] += sum over images i < nimg, q < nq of
 *   dy[i*dys + kk*ldd + q] * x[i*xs + ci*ps + q + off[t]]
 * for kk < k, ci < c, t < nrs; dy has rows up to a multiple of the
 * variant's kt and off entries up to a multiple of its no (extra ones are
 * read, not used); nq is a multiple of the vector length. */
typedef void (*convd_wgrad_fn)(const float *x, int64_t xs, int64_t ps,
                               const float *dy, int64_t dys, int64_t ldd,
                               int64_t nimg, int64_t c, int64_t k,
                               const int64_t *off, int64_t nrs, int64_t nq,
                               const int64_t *pidx, int64_t prs, float *part);
/* The dense variant (AVX-512): x holds whole rows of width w, no side
 * padding, dy rows of nq positions (any count, read in place; needs
 * k >= the tile's kt); the product of tap t at position q is left out
 * unless bit q % VL of msk[mo[t] + q / VL] is set (mo entries up to a
 * multiple of the tile's taps are read). */
typedef void (*convd_wgradm_fn)(const float *x, int64_t xs, int64_t ps,
                                const float *dy, int64_t dys, int64_t ldd,
                                int64_t nimg, int64_t c, int64_t k,
                                const int64_t *off, const uint16_t *msk,
                                const int64_t *mo, int64_t nrs, int64_t nq,
                                const int64_t *pidx, int64_t prs, float *part);

/* One register tile shape: kt output channels x nv vectors (fwd) or
 * x nv taps (wgrad). */
typedef struct convd_fwd_var {
  int64_t kt, nv;
  convd_fwd_fn fn;
  convd_fwdm_fn fm; /* the same tile, dense (NULL: none) */
} convd_fwd_var;
typedef struct convd_wgrad_var {
  int64_t kt, nv;
  convd_wgrad_fn fn;
  convd_wgradm_fn fm; /* the same tile, dense (NULL: none) */
} convd_wgrad_var;

#define CONVD_MAX_VARS 6

enum { CONVD_ROWS_BIAS, CONVD_ROWS_COPY, CONVD_ROWS_ADD };

typedef struct convd_kernels {
  const char *name;
  int64_t vl; /* floats per vector: fwd and wgrad positions come in these */
  int nfwd, nwgrad;
  convd_fwd_var fwd[CONVD_MAX_VARS];
  convd_wgrad_var wgrad[CONVD_MAX_VARS];
  /* n rows of w floats: dst[i*ldd + j] = src[i*lds + j] + b (mode
   * CONVD_ROWS_BIAS), = src (CONVD_ROWS_COPY) or += src (CONVD_ROWS_ADD);
   * inline vector copies: the rows are short, a memcpy call costs more */
  void (*rows)(const float *src, int64_t lds, float *dst, int64_t ldd,
               int64_t n, int64_t w, float b, int mode);
  /* even[m] = src[2m], odd[m] = src[2m+1] for m < n */
  void (*deint2)(const float *src, int64_t n, float *even, float *odd);
  /* stride-2 phases of c planes of h rows of 2n floats (contiguous):
   * row i of plane cc's even columns to dst + cc*ps + (i%2)*pa + (i/2)*n,
   * its odd ones pb further on; rows in order (one call per image: the
   * rows are short) */
  void (*deint2p)(const float *src, int64_t c, int64_t h, int64_t n, float *dst,
                  int64_t ps, int64_t pa, int64_t pb);
  /* dst[2m] = even[m], dst[2m+1] = odd[m] for m < n (added when add) */
  void (*inter2)(const float *even, const float *odd, int64_t n, float *dst,
                 int add);
  /* conv2d_wgradt.c (NULL: none): the stride-1 weight gradient with the
   * output channels in the lanes,
   *   part[(kk*c + ci)*r*s + s*di + dj] += sum over images i < nimg, rows
   *   u < oh, columns v < ow of dyt[i*dts + (u*ow + v)*k + kk]
   *   * x[i*xs + ci*ps + (u + di)*ws + v + dj]
   * for kk < k (a multiple of 16; AVX-512: 3x3 only); and the transpose
   * it wants of dy: dst[p*k + kk] = src[kk*np + p] (AVX-512: k, np
   * multiples of 16; AVX2: k a multiple of 8). */
  void (*wgradt)(const float *x, int64_t xs, int64_t ps, int64_t ws,
                 const float *dyt, int64_t dts, int64_t nimg, int64_t c,
                 int64_t k, int64_t oh, int64_t ow, int64_t r, int64_t s,
                 float *part);
  void (*transpose)(const float *src, int64_t k, int64_t np, float *dst);
  /* AVX2 only (else NULL), conv2d_wgradt.c: the stride-1 forward with the
   * output channels in the lanes, only real positions, into (P, k):
   *   out[(u*ow + v)*k + kk] = sum over ci < c, t < rs of
   *   wl[(ci*rs + t)*k + kk] * x[ci*ps + u*ws + v + off[t]] (+ bias[kk])
   * for kk < k (a multiple of 16), u < oh, v < ow; one register chain per
   * output (callers keep c*rs <= CONVD_CHAIN). */
  void (*fwdt)(const float *x, int64_t ps, int64_t ws, const int64_t *off,
               int64_t rs, const float *wl, int64_t c, int64_t k, int64_t oh,
               int64_t ow, const float *bias, float *out);
} convd_kernels;

void tc__convd_wgradt512(const float *x, int64_t xs, int64_t ps, int64_t ws,
                         const float *dyt, int64_t dts, int64_t nimg, int64_t c,
                         int64_t k, int64_t oh, int64_t ow, int64_t r,
                         int64_t s, float *part);
void tc__convd_transpose512(const float *src, int64_t k, int64_t np,
                            float *dst);
void tc__convd_wgradt256(const float *x, int64_t xs, int64_t ps, int64_t ws,
                         const float *dyt, int64_t dts, int64_t nimg, int64_t c,
                         int64_t k, int64_t oh, int64_t ow, int64_t r,
                         int64_t s, float *part);
void tc__convd_transpose256(const float *src, int64_t k, int64_t np,
                            float *dst);
void tc__convd_fwdt256(const float *x, int64_t ps, int64_t ws,
                       const int64_t *off, int64_t rs, const float *wl,
                       int64_t c, int64_t k, int64_t oh, int64_t ow,
                       const float *bias, float *out);

/* The best kernels for tc__cpu_isa() (so TINYCNN_CPU_ISA can lower them), or
 * NULL (below AVX2+FMA: use im2col). */
const convd_kernels *tc__cpu_convd_kernels(void);

/* The tile that suits k output channels and nrs taps best (fewest wasted
 * products, then the larger tile); a function of the shapes only. */
const convd_fwd_var *tc__convd_pick_fwd(const convd_kernels *kn, int64_t k,
                                        int64_t nrs);
const convd_wgrad_var *tc__convd_pick_wgrad(const convd_kernels *kn, int64_t k,
                                            int64_t nrs);

#endif /* TINYCNN_CONV2D_DIRECT_H */
