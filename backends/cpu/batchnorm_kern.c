/*
 * batchnorm_kern.c - batch norm's tasks (batchnorm.h) and the kernels they
 * run on one segment of a channel plane: the portable loops, and one
 * vector body (batchnorm_kern.h) compiled for AVX2 and for AVX-512. Every
 * path does the same lanes and operations, so the bits do not depend on
 * the one tc__cpu_isa() picks. The fused slots' epilogue (batchnorm.c's
 * header) runs in the same kernels: ReLU, residual add, ReLU mask bits.
 */
#include <stddef.h>
#include <string.h>

#include "batchnorm.h"
#include "cpu_simd.h"

/* Bits [e, e+16) of a mask plane (e + 16 <= the plane's length): reads
 * only the plane's bytes that hold them. */
static inline unsigned mask16(const uint8_t *mp, int64_t e) {
  const uint8_t *b = mp + (e >> 3);
  unsigned sh = (unsigned)(e & 7), w = b[0] | (unsigned)b[1] << 8;
  if (sh)
    w = (w | (unsigned)b[2] << 16) >> sh;
  return w & 0xffffu;
}

/* Bit e of a mask plane. */
static inline int mask_bit(const uint8_t *mp, int64_t e) {
  return mp[e >> 3] >> (e & 7) & 1;
}

/* Sets bits [e0, n) of a mask plane from y > 0; e0 is a multiple of 8
 * (the bytes from e0 / 8 on are written whole). */
static void mask_tail(uint8_t *mp, int64_t e0, int64_t n, const float *y) {
  for (int64_t e = e0; e < n; e++) {
    if ((e & 7) == 0)
      mp[e >> 3] = 0;
    if (y[e] > 0.f)
      mp[e >> 3] |= (uint8_t)(1u << (e & 7));
  }
}

/* ---- the fused epilogue kernels' scalar rule, over [e0, n): the portable
 * path and the vector variants' tails (relu_fwd's cpu_relu1: NaN stays
 * NaN, -0 gives +0; relu_bwd's mask y > 0, false for NaN). ---- */

/* y = relu((x - mu)*al + sh [+ z]), and mask bits when mk; e0 a multiple
 * of 8 */
static inline void apply_relu_scalar(const float *x, const float *z, float *y,
                                     uint8_t *mk, int64_t e0, int64_t n,
                                     float mu, float al, float sh) {
  for (int64_t e = e0; e < n; e++) {
    float v = (x[e] - mu) * al + sh;
    if (z)
      v = v + z[e];
    y[e] = cpu_relu1(v);
  }
  if (mk)
    mask_tail(mk, e0, n, y);
}

/* g = dy masked by ry > 0 (or bit mb + i of mask plane mp) into lanes 0,
 * 1, ... from element i0: l1 += g, l2 += g*(x - mu); g into gout if set */
static inline void grad_relu_scalar(const float *dy, const float *ry,
                                    const uint8_t *mp, int64_t mb,
                                    const float *x, int64_t i0, int64_t len,
                                    double mu, double *l1, double *l2,
                                    float *gout) {
  for (int64_t i = i0, l = 0; i < len; i++, l++) {
    float g = (mp ? mask_bit(mp, mb + i) : ry[i] > 0.f) ? dy[i] : 0.f;
    if (gout)
      gout[i] = g;
    l1[l] += g;
    l2[l] += g * (x[i] - mu);
  }
}

/* g as above; dx (+)= (g - gm - (x - mu)*k) * sc; dres (+)= g if set */
static inline void dx_relu_scalar(const float *x, const float *dy,
                                  const float *ry, const uint8_t *mp, float *dx,
                                  float *dres, int64_t e0, int64_t n, float mu,
                                  float k, float gm, float sc, int acc,
                                  int accr) {
  for (int64_t e = e0; e < n; e++) {
    float g = (mp ? mask_bit(mp, e) : ry[e] > 0.f) ? dy[e] : 0.f;
    if (dres)
      dres[e] = accr ? dres[e] + g : g;
    float v = (g - gm - (x[e] - mu) * k) * sc;
    dx[e] = acc ? dx[e] + v : v;
  }
}

static void chunk_range(const bn_job *j, int64_t k, int64_t *m0, int64_t *m1) {
  *m0 = j->m * k / j->chunks;
  *m1 = j->m * (k + 1) / j->chunks;
}

/* ---- segment kernels, one body per vector width ---- */
#if CPU_X86
#define CPU_SIMD_VL 8
#include "cpu_simd.h"
#define BNK(name) name##_avx2
#include "batchnorm_kern.h"

#define CPU_SIMD_VL 16
#include "cpu_simd.h"
#define BNK(name) name##_512
#include "batchnorm_kern.h"
#endif

/* Adds segment p[0, len) into the lanes: l1 += p - shift, l2 += (p -
 * shift)^2. */
static void stats_seg(int isa, const float *restrict p, int64_t len,
                      double shift, double *restrict l1, double *restrict l2) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512 && len >= 16) {
    stats_seg_512(p, len, shift, l1, l2);
    return;
  }
  if (isa >= CPU_ISA_AVX2 && len >= 16) {
    stats_seg_avx2(p, len, shift, l1, l2);
    return;
  }
#else
  (void)isa;
#endif
  int64_t i = 0;
  for (; i + BN_LANES <= len; i += BN_LANES)
    for (int l = 0; l < BN_LANES; l++) {
      double d = p[i + l] - shift;
      l1[l] += d;
      l2[l] += d * d;
    }
  for (int l = 0; i < len; i++, l++) {
    double d = p[i] - shift;
    l1[l] += d;
    l2[l] += d * d;
  }
}

/* l1 += dy, l2 += dy * (x - mu) over one segment. */
static void grad_seg(int isa, const float *restrict dy, const float *restrict x,
                     int64_t len, double mu, double *restrict l1,
                     double *restrict l2) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512 && len >= 16) {
    grad_seg_512(dy, x, len, mu, l1, l2);
    return;
  }
  if (isa >= CPU_ISA_AVX2 && len >= 16) {
    grad_seg_avx2(dy, x, len, mu, l1, l2);
    return;
  }
#else
  (void)isa;
#endif
  int64_t i = 0;
  for (; i + BN_LANES <= len; i += BN_LANES)
    for (int l = 0; l < BN_LANES; l++) {
      l1[l] += dy[i + l];
      l2[l] += dy[i + l] * (x[i + l] - mu);
    }
  for (int l = 0; i < len; i++, l++) {
    l1[l] += dy[i];
    l2[l] += dy[i] * (x[i] - mu);
  }
}

/* y = (x - mu)*al + sh over one plane; x may be y */
static void apply_seg(int isa, const float *x, float *y, int64_t s, float mu,
                      float al, float sh) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512) {
    apply_512(x, y, s, mu, al, sh);
    return;
  }
  if (isa >= CPU_ISA_AVX2) {
    apply_avx2(x, y, s, mu, al, sh);
    return;
  }
#else
  (void)isa;
#endif
  for (int64_t e = 0; e < s; e++)
    y[e] = (x[e] - mu) * al + sh;
}

/* dx (+)= (dy - gm - (x - mu)*k) * sc over one plane; dy may be dx */
static void dx_seg(int isa, const float *x, const float *dy, float *dx,
                   int64_t s, float mu, float k, float gm, float sc, int acc) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512) {
    dx_512(x, dy, dx, s, mu, k, gm, sc, acc);
    return;
  }
  if (isa >= CPU_ISA_AVX2) {
    dx_avx2(x, dy, dx, s, mu, k, gm, sc, acc);
    return;
  }
#else
  (void)isa;
#endif
  if (acc)
    for (int64_t e = 0; e < s; e++)
      dx[e] += (dy[e] - gm - (x[e] - mu) * k) * sc;
  else
    for (int64_t e = 0; e < s; e++)
      dx[e] = (dy[e] - gm - (x[e] - mu) * k) * sc;
}

/* y = relu((x - mu)*al + sh [+ z]) over one plane; x may be y; the
 * plane's mask bits (y > 0) into mk when it is not NULL */
static void apply_relu_seg(int isa, const float *x, const float *z, float *y,
                           uint8_t *mk, int64_t s, float mu, float al,
                           float sh) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512) {
    apply_relu_512(x, z, y, mk, s, mu, al, sh);
    return;
  }
  if (isa >= CPU_ISA_AVX2) {
    apply_relu_avx2(x, z, y, mk, s, mu, al, sh);
    return;
  }
#else
  (void)isa;
#endif
  apply_relu_scalar(x, z, y, mk, 0, s, mu, al, sh);
}

/* grad_seg with dy masked by ry > 0, or by bits mb, mb+1, ... of mask
 * plane mp when mp is not NULL; the masked dy also goes to gout when it is
 * not NULL. */
static void grad_seg_relu(int isa, const float *restrict dy,
                          const float *restrict ry, const uint8_t *mp,
                          int64_t mb, const float *restrict x, int64_t len,
                          double mu, double *restrict l1, double *restrict l2,
                          float *restrict gout) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512 && len >= 16) {
    grad_seg_relu_512(dy, ry, mp, mb, x, len, mu, l1, l2, gout);
    return;
  }
  if (isa >= CPU_ISA_AVX2 && len >= 16) {
    grad_seg_relu_avx2(dy, ry, mp, mb, x, len, mu, l1, l2, gout);
    return;
  }
#else
  (void)isa;
#endif
  int64_t i = 0;
  for (; i + BN_LANES <= len; i += BN_LANES)
    grad_relu_scalar(dy, ry, mp, mb, x, i, i + BN_LANES, mu, l1, l2, gout);
  grad_relu_scalar(dy, ry, mp, mb, x, i, len, mu, l1, l2, gout);
}

/* dx_seg with dy masked by ry > 0 (or mask plane mp's bits when it is not
 * NULL), the masked dy (+)= into dres if set */
static void dx_relu_seg(int isa, const float *x, const float *dy,
                        const float *ry, const uint8_t *mp, float *dx,
                        float *dres, int64_t s, float mu, float k, float gm,
                        float sc, int acc, int accr) {
#if CPU_X86
  if (isa >= CPU_ISA_AVX512) {
    dx_relu_512(x, dy, ry, mp, dx, dres, s, mu, k, gm, sc, acc, accr);
    return;
  }
  if (isa >= CPU_ISA_AVX2) {
    dx_relu_avx2(x, dy, ry, mp, dx, dres, s, mu, k, gm, sc, acc, accr);
    return;
  }
#else
  (void)isa;
#endif
  dx_relu_scalar(x, dy, ry, mp, dx, dres, 0, s, mu, k, gm, sc, acc, accr);
}

/* Reduction task t: chunk t / groups of the block's channel group
 * t % groups, image by image. Per channel, forward: l1 += x - shift,
 * l2 += (x - shift)^2 with shift the channel's first value; backward:
 * l1 += dy, l2 += dy*(x - save_mean). The lanes are combined in order. */
void tc__cpu_bn_sums_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  int64_t k = t / j->groups, q0 = t % j->groups * j->gsize;
  int64_t nq = min64(j->gsize, j->cb - q0), s = a->spatial, m0, m1;
  chunk_range(j, k, &m0, &m1);
  double l1[BN_GROUP_MAX][BN_LANES], l2[BN_GROUP_MAX][BN_LANES];
  double ref[BN_GROUP_MAX];
  memset(l1, 0, (size_t)nq * sizeof l1[0]);
  memset(l2, 0, (size_t)nq * sizeof l2[0]);
  for (int64_t q = 0; q < nq; q++) {
    int64_t ci = j->c0 + q0 + q;
    ref[q] = j->bwd ? (double)a->save_mean[ci] : (double)a->x[ci * s];
  }
  const float *x = a->x, *dy = a->dy;
  for (int64_t m = m0, len; m < m1; m += len) {
    int64_t i = m / s, e = m % s;
    len = min64(s - e, m1 - m);
    int64_t off = (i * a->c + j->c0 + q0) * s + e;
    /* the planes' mask bits (e is the segment's first) */
    const uint8_t *mp =
        j->mask ? j->mask + (i * a->c + j->c0 + q0) * j->mps : NULL;
    if (len == 1) { /* one value per plane (BatchNorm1d): lane 0 */
      for (int64_t q = 0; q < nq; q++, off += s) {
        if (j->bwd) {
          int on =
              mp ? mask_bit(mp + q * j->mps, e) : !j->ry || j->ry[off] > 0.f;
          float g = on ? dy[off] : 0.f;
          if (j->gout)
            j->gout[off] = g;
          l1[q][0] += g;
          l2[q][0] += g * (x[off] - ref[q]);
        } else {
          double d = x[off] - ref[q];
          l1[q][0] += d;
          l2[q][0] += d * d;
        }
      }
      continue;
    }
    for (int64_t q = 0; q < nq; q++, off += s) {
      if (j->bwd && (j->ry || mp))
        grad_seg_relu(j->isa, dy + off, j->ry ? j->ry + off : NULL,
                      mp ? mp + q * j->mps : NULL, e, x + off, len, ref[q],
                      l1[q], l2[q], j->gout ? j->gout + off : NULL);
      else if (j->bwd)
        grad_seg(j->isa, dy + off, x + off, len, ref[q], l1[q], l2[q]);
      else
        stats_seg(j->isa, x + off, len, ref[q], l1[q], l2[q]);
    }
  }
  for (int64_t q = 0; q < nq; q++) {
    double s1 = 0, s2 = 0;
    for (int l = 0; l < BN_LANES; l++)
      s1 += l1[q][l], s2 += l2[q][l];
    j->part[k * j->cb + q0 + q][0] = s1;
    j->part[k * j->cb + q0 + q][1] = s2;
  }
}

/* y = (x - mu)*alpha + shift over planes (image i, block channel q);
 * subtracting first keeps y accurate where x is near the mean. */
void tc__cpu_bn_apply_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  /* planes in order: each thread takes the planes its sums just read */
  int64_t p1 = min64((t + 1) * j->per_task, j->planes), s = a->spatial;
  if (s == 1) { /* planes of one value: walk (image, channel) directly */
    for (int64_t p = t * j->per_task, i = p / j->cb, q = p % j->cb; p < p1;
         p++) {
      int64_t off = i * a->c + j->c0 + q;
      float v = (a->x[off] - j->mu[q]) * j->alpha[q] + j->shift[q];
      if (j->res)
        v = v + j->res[off];
      a->y[off] = j->relu ? cpu_relu1(v) : v;
      if (j->mask)
        j->mask[off * j->mps] = v > 0.f; /* off: the plane here */
      if (++q == j->cb)
        q = 0, i++;
    }
    return;
  }
  for (int64_t p = t * j->per_task; p < p1; p++) {
    int64_t i = p / j->cb, q = p % j->cb;
    int64_t off = (i * a->c + j->c0 + q) * s;
    /* x may alias y (in place) */
    if (j->relu)
      apply_relu_seg(j->isa, a->x + off, j->res ? j->res + off : NULL,
                     a->y + off,
                     j->mask ? j->mask + (i * a->c + j->c0 + q) * j->mps : NULL,
                     s, j->mu[q], j->alpha[q], j->shift[q]);
    else
      apply_seg(j->isa, a->x + off, a->y + off, s, j->mu[q], j->alpha[q],
                j->shift[q]);
  }
}

/* dx (+)= (dy - gmean - (x - mu)*k) * scale over planes. */
void tc__cpu_bn_dx_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  /* planes in order: each thread takes the planes its sums just read */
  int64_t p1 = min64((t + 1) * j->per_task, j->planes), s = a->spatial;
  if (s == 1) { /* as in tc__cpu_bn_apply_task */
    for (int64_t p = t * j->per_task, i = p / j->cb, q = p % j->cb; p < p1;
         p++) {
      int64_t off = i * a->c + j->c0 + q;
      int on = j->mask ? j->mask[off * j->mps] & 1 : !j->ry || j->ry[off] > 0.f;
      float g = j->gout ? j->gout[off] : on ? a->dy[off] : 0.f;
      if (j->dres && !j->gout)
        j->dres[off] = j->acc_res ? j->dres[off] + g : g;
      float v =
          (g - j->gmean[q] - (a->x[off] - j->mu[q]) * j->k[q]) * j->scale[q];
      a->dx[off] = a->accumulate ? a->dx[off] + v : v;
      if (++q == j->cb)
        q = 0, i++;
    }
    return;
  }
  for (int64_t p = t * j->per_task; p < p1; p++) {
    int64_t i = p / j->cb, q = p % j->cb;
    int64_t off = (i * a->c + j->c0 + q) * s;
    /* dy may alias dx (in place) */
    if (j->gout)
      dx_seg(j->isa, a->x + off, j->gout + off, a->dx + off, s, j->mu[q],
             j->k[q], j->gmean[q], j->scale[q], a->accumulate);
    else if (j->ry || j->mask)
      dx_relu_seg(j->isa, a->x + off, a->dy + off, j->ry ? j->ry + off : NULL,
                  j->mask ? j->mask + (i * a->c + j->c0 + q) * j->mps : NULL,
                  a->dx + off, j->dres ? j->dres + off : NULL, s, j->mu[q],
                  j->k[q], j->gmean[q], j->scale[q], a->accumulate, j->acc_res);
    else
      dx_seg(j->isa, a->x + off, a->dy + off, a->dx + off, s, j->mu[q], j->k[q],
             j->gmean[q], j->scale[q], a->accumulate);
  }
}
