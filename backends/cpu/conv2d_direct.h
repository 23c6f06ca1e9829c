/*
 * conv2d_direct.h - private to the CPU backend: SIMD kernels for stride-1
 * convolution on a "flattened padded grid" (conv2d.c explains the layout),
 * picked at run time by CPU features.
 */
#ifndef TINYCNN_CONV2D_DIRECT_H
#define TINYCNN_CONV2D_DIRECT_H

#include <stdint.h>

/* Largest r*s the kernels take (offset tables live on the stack). */
#define CONVD_MAX_RS 64
/* fwd sums at most about this many products in one register before adding
 * them to the output (then the next input channels) */
#define CONVD_CHAIN 32

typedef struct convd_kernels {
  const char *name;
  /* fwd: fkt output channels per block; nq is a multiple of ft */
  int64_t fkt, ft;
  /* wgrad: wkt output channels x wno kernel offsets per register tile,
   * wvl positions per step */
  int64_t wkt, wno, wvl;
  /* out[(kb*fkt + j)*ldo + q] = sum over ci < cin, t < nrs of
   *   wp[((kb*cin + ci)*nrs + t)*fkt + j] * in[ci*ps + q + off[t]]
   * for kb < nkb, j < fkt, q < nq (a multiple of ft), added to out
   * when add (else stored); the sum runs in blocks of
   * max(1, CONVD_CHAIN / nrs) input channels. */
  void (*fwd)(const float *in, int64_t cin, int64_t ps, const int64_t *off,
              int64_t nrs, const float *wp, int64_t nkb, float *out,
              int64_t ldo, int64_t nq, int add);
  /* part[(kk*c + ci)*prs + pidx[t]] += sum over images i < nimg, q < nq of
   *   dy[i*dys + kk*ldd + q] * x[i*xs + ci*ps + q + off[t]]
   * for kk < k, ci < c, t < nrs; dy has rows up to a multiple of wkt and
   * off entries up to a multiple of wno (extra ones are read, not used);
   * nq is a multiple of wvl. */
  void (*wgrad)(const float *x, int64_t xs, int64_t ps, const float *dy,
                int64_t dys, int64_t ldd, int64_t nimg, int64_t c, int64_t k,
                const int64_t *off, int64_t nrs, int64_t nq,
                const int64_t *pidx, int64_t prs, float *part);
  /* even[m] = src[2m], odd[m] = src[2m+1] for m < n */
  void (*deint2)(const float *src, int64_t n, float *even, float *odd);
  /* dst[2m] = even[m], dst[2m+1] = odd[m] for m < n (added when add) */
  void (*inter2)(const float *even, const float *odd, int64_t n, float *dst,
                 int add);
} convd_kernels;

/* The best kernels for cpu_isa() (so TINYCNN_CPU_ISA can lower them), or
 * NULL (below AVX2+FMA: use im2col). */
const convd_kernels *cpu_convd_kernels(void);

#endif /* TINYCNN_CONV2D_DIRECT_H */
