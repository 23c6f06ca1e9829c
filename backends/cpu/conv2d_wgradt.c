/*
 * conv2d_wgradt.c - the weight gradient of stride-1 convolutions with the
 * output channels in the vector lanes (conv2d_driver.c, wg_lanes): AVX-512
 * for 3x3 layers whose k is a multiple of 16, AVX2 for any r x s whose k
 * is a multiple of 16 (two ymm vectors per channel block). The two are
 * written separately, not as one body per width: their tiles differ
 * (AVX-512: all 9 taps of a 3x3 kernel at constant displacements for
 * 16*kv channels; AVX2: up to 6 taps of any kernel from an offset table
 * for 16 channels).
 *
 * The position-vector kernels (conv2d_direct_kern.h) put positions in the
 * lanes, so every (channel, tap) tile ends in a horizontal sum; on 8x8
 * images a tile is only 8 images x 4 vectors long (more images no longer
 * fit in L1) and those sums cost 30 % of it. Here dy is transposed per
 * image to (position, channel), one vector holds 16 output channels, and
 * x is broadcast: acc[tap][channels] += dy[p][channels] * x[p + off[tap]].
 * No horizontal sums, one stream of dy vectors and scalar x loads from L1:
 * 2 loads + 9 broadcasts per 18 FMAs, FMA-bound (ResNet 8x8 layers 1.25x
 * faster). x comes in the padded-row layout (conv2d_driver.c's phase planes,
 * rows of ws >= ow + 1 floats with zeros between rows, above and below)
 * so a tap that leaves the image reads a zero; only real positions run.
 * Every lane sums its products in the order images, rows, columns: a
 * function of the shapes only.
 */
#include <stdint.h>

#include "conv2d_direct.h"
#include "cpu.h"
#include "cpu_simd.h"

#if CPU_X86

/* One 16x16 block: d[j*ldd + i] = s[i*lds + j]. */
CPU_AVX512 static inline void tr16(const float *s, int64_t lds, float *d,
                                   int64_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++)
    r[i] = _mm512_loadu_ps(s + i * lds);
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    __m512d c = _mm512_castps_pd(t[4 * i + 1]);
    __m512d e = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
  }
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 4; i++) {
      t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
      t[8 * h + 4 + i] =
          _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0xdd);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
  }
  for (int i = 0; i < 16; i++)
    _mm512_storeu_ps(d + i * ldd, r[i]);
}

CPU_AVX512 void tc__convd_transpose512(const float *src, int64_t k, int64_t np,
                                       float *dst) {
  for (int64_t kk = 0; kk < k; kk += 16)
    for (int64_t p = 0; p < np; p += 16)
      tr16(src + kk * np + p, np, dst + p * k + kk, k);
}

/* One tile: input channels ci .. ci+nc-1, output channels k0 .. k0 +
 * 16*kv - 1 (nc, kv constants after inlining: nc*9*kv <= 18 registers).
 * Tap t = 3*di + dj reads x at di*ws + dj from the position: three row
 * pointers and constant displacements, no offset table in the loop. */
CPU_AVX512 static inline __attribute__((always_inline)) void
wgt_tile(const float *x, int64_t xs, int64_t ps, int64_t ws, const float *dyt,
         int64_t dts, int64_t nimg, int64_t c, int64_t k, int64_t oh,
         int64_t ow, float *part, int64_t ci, int64_t k0, const int nc,
         const int kv) {
  __m512 acc[2][9][2];
  for (int cc = 0; cc < nc; cc++)
    for (int t = 0; t < 9; t++)
      for (int v = 0; v < kv; v++)
        acc[cc][t][v] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nimg; i++) {
    const float *xi = x + i * xs + ci * ps, *di = dyt + i * dts + k0;
    for (int64_t u = 0; u < oh; u++) {
      const float *xr = xi + u * ws, *dr = di + u * ow * k;
      for (int64_t q = 0; q < ow; q++) {
        __m512 d0 = _mm512_loadu_ps(dr + q * k);
        __m512 d1 = kv == 2 ? _mm512_loadu_ps(dr + q * k + 16) : d0;
#pragma GCC unroll 2
        for (int cc = 0; cc < nc; cc++)
#pragma GCC unroll 9
          for (int t = 0; t < 9; t++) {
            __m512 xv = _mm512_set1_ps(xr[cc * ps + q + t / 3 * ws + t % 3]);
            acc[cc][t][0] = _mm512_fmadd_ps(d0, xv, acc[cc][t][0]);
            if (kv == 2)
              acc[cc][t][1] = _mm512_fmadd_ps(d1, xv, acc[cc][t][1]);
          }
      }
    }
  }
  float s[16];
  for (int cc = 0; cc < nc; cc++)
    for (int t = 0; t < 9; t++)
      for (int v = 0; v < kv; v++) {
        _mm512_storeu_ps(s, acc[cc][t][v]);
        float *pp = part + ((k0 + 16 * v) * c + ci + cc) * 9 + t;
        for (int l = 0; l < 16; l++)
          pp[l * c * 9] += s[l];
      }
}

CPU_AVX512 void tc__convd_wgradt512(const float *x, int64_t xs, int64_t ps,
                                    int64_t ws, const float *dyt, int64_t dts,
                                    int64_t nimg, int64_t c, int64_t k,
                                    int64_t oh, int64_t ow, int64_t r,
                                    int64_t s, float *part) {
  (void)r, (void)s; /* 3x3 only */
  int64_t k2 = k - k % 32;
  for (int64_t ci = 0; ci < c; ci++)
    for (int64_t k0 = 0; k0 < k2; k0 += 32)
      wgt_tile(x, xs, ps, ws, dyt, dts, nimg, c, k, oh, ow, part, ci, k0, 1, 2);
  if (k2 == k)
    return;
  /* a last block of 16 channels: two input channels per tile so 18
   * accumulators still hide the FMA latency */
  int64_t ci = 0;
  for (; ci + 2 <= c; ci += 2)
    wgt_tile(x, xs, ps, ws, dyt, dts, nimg, c, k, oh, ow, part, ci, k2, 2, 1);
  if (ci < c)
    wgt_tile(x, xs, ps, ws, dyt, dts, nimg, c, k, oh, ow, part, ci, k2, 1, 1);
}

/* ---- AVX2: 16 channels (two ymm) x up to 6 taps per tile ----
 * LeNet's 5x5 conv2 (k = 16 on 10x10 outputs): the position kernels sum
 * 136 grid positions per image for 100 real ones and end every tile in
 * horizontal sums; here only real positions run and dy is read once per
 * position for the tile's taps (2 loads + nt broadcasts per 2*nt FMAs). */
/* One 8x8 block: d[j*ldd + i] = s[i*lds + j]. */
CPU_AVX2 static inline void tr8(const float *s, int64_t lds, float *d,
                                int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; i++)
    r[i] = _mm256_loadu_ps(s + i * lds);
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm256_permute2f128_ps(r[i], r[4 + i], 0x20);
    t[4 + i] = _mm256_permute2f128_ps(r[i], r[4 + i], 0x31);
  }
  for (int i = 0; i < 8; i++)
    _mm256_storeu_ps(d + i * ldd, t[i]);
}

/* dst[p*k + kk] = src[kk*np + p]: any k, np */
CPU_AVX2 void tc__convd_transpose256(const float *src, int64_t k, int64_t np,
                                     float *dst) {
  int64_t p8 = np - np % 8, k8 = k - k % 8;
  for (int64_t kk = 0; kk < k8; kk += 8) {
    for (int64_t p = 0; p < p8; p += 8)
      tr8(src + kk * np + p, np, dst + p * k + kk, k);
    for (int64_t p = p8; p < np; p++)
      for (int64_t j = 0; j < 8; j++)
        dst[p * k + kk + j] = src[(kk + j) * np + p];
  }
  for (int64_t kk = k8; kk < k; kk++)
    for (int64_t p = 0; p < np; p++)
      dst[p * k + kk] = src[kk * np + p];
}

/* Taps tp[0..nt) (x displacements dsp) of input channel ci, channels k0
 * .. k0 + 15 (nt constant after inlining: 2*nt <= 12 registers). */
CPU_AVX2 static inline __attribute__((always_inline)) void
wgt256_tile(const float *x, int64_t xs, int64_t ps, int64_t ws,
            const float *dyt, int64_t dts, int64_t nimg, int64_t c, int64_t k,
            int64_t oh, int64_t ow, int64_t rs, float *part, int64_t ci,
            int64_t k0, const int64_t *dsp, const int64_t *tp, const int nt) {
  __m256 acc[6][2];
  int64_t d[6];
#pragma GCC unroll 6
  for (int t = 0; t < nt; t++) {
    acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    d[t] = dsp[t];
  }
  for (int64_t i = 0; i < nimg; i++) {
    const float *xi = x + i * xs + ci * ps, *di = dyt + i * dts + k0;
    for (int64_t u = 0; u < oh; u++) {
      const float *xr = xi + u * ws, *dr = di + u * ow * k;
      for (int64_t q = 0; q < ow; q++) {
        __m256 d0 = _mm256_loadu_ps(dr + q * k);
        __m256 d1 = _mm256_loadu_ps(dr + q * k + 8);
#pragma GCC unroll 6
        for (int t = 0; t < nt; t++) {
          __m256 xv = _mm256_broadcast_ss(xr + q + d[t]);
          acc[t][0] = _mm256_fmadd_ps(d0, xv, acc[t][0]);
          acc[t][1] = _mm256_fmadd_ps(d1, xv, acc[t][1]);
        }
      }
    }
  }
  float sv[8];
#pragma GCC unroll 6
  for (int t = 0; t < nt; t++)
#pragma GCC unroll 2
    for (int v = 0; v < 2; v++) {
      _mm256_storeu_ps(sv, acc[t][v]);
      float *pp = part + ((k0 + 8 * v) * c + ci) * rs + tp[t];
      for (int l = 0; l < 8; l++)
        pp[l * c * rs] += sv[l];
    }
}

/* part[(kk*c + ci)*r*s + di*s + dj] += sum over images i < nimg, rows
 * u < oh, columns v < ow of dyt[i*dts + (u*ow + v)*k + kk] *
 * x[i*xs + ci*ps + (u + di)*ws + v + dj], k a multiple of 16. The taps
 * go in tiles of whole tap rows, up to 6 taps (s = 5: one row; s = 3:
 * two, then one). */
CPU_AVX2 void tc__convd_wgradt256(const float *x, int64_t xs, int64_t ps,
                                  int64_t ws, const float *dyt, int64_t dts,
                                  int64_t nimg, int64_t c, int64_t k,
                                  int64_t oh, int64_t ow, int64_t r, int64_t s,
                                  float *part) {
  int64_t rs = r * s, rows = s <= 6 ? 6 / s : 1;
  for (int64_t ci = 0; ci < c; ci++)
    for (int64_t k0 = 0; k0 < k; k0 += 16)
      for (int64_t di = 0; di < r; di += rows)
        for (int64_t dj = 0; dj < s; dj += 6) {
          int64_t dsp[6], tp[6];
          int nt = 0;
          for (int64_t a = di; a < di + rows && a < r; a++)
            for (int64_t b = dj; b < dj + 6 && b < s; b++, nt++)
              dsp[nt] = a * ws + b, tp[nt] = a * s + b;
          switch (nt) {
#define WGT256_CASE(n)                                                         \
  case n:                                                                      \
    wgt256_tile(x, xs, ps, ws, dyt, dts, nimg, c, k, oh, ow, rs, part, ci, k0, \
                dsp, tp, n);                                                   \
    break;
            WGT256_CASE(1)
            WGT256_CASE(2)
            WGT256_CASE(3)
            WGT256_CASE(4)
            WGT256_CASE(5)
            WGT256_CASE(6)
#undef WGT256_CASE
          }
        }
}

/* One tile of the lanes forward: output row u, columns v0 .. v0+nt-1,
 * channels k0 .. k0+15 (nt constant after inlining: 2*nt <= 12
 * accumulators), into out (P, k) plus bias. */
CPU_AVX2 static inline __attribute__((always_inline)) void
fwt256_tile(const float *x, int64_t ps, const int64_t *off, int64_t rs,
            const float *wl, int64_t c, int64_t k, const float *bias,
            float *out, int64_t k0, int64_t p0, const int nt) {
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int j = 0; j < nt; j++)
    acc[j][0] = acc[j][1] = _mm256_setzero_ps();
  for (int64_t ci = 0; ci < c; ci++) {
    const float *xc = x + ci * ps, *w = wl + ci * rs * k + k0;
    for (int64_t t = 0; t < rs; t++, w += k) {
      __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
      const float *xp = xc + off[t];
#pragma GCC unroll 6
      for (int j = 0; j < nt; j++) {
        __m256 xv = _mm256_broadcast_ss(xp + j);
        acc[j][0] = _mm256_fmadd_ps(w0, xv, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(w1, xv, acc[j][1]);
      }
    }
  }
  __m256 b0 = _mm256_setzero_ps(), b1 = b0;
  if (bias)
    b0 = _mm256_loadu_ps(bias + k0), b1 = _mm256_loadu_ps(bias + k0 + 8);
#pragma GCC unroll 6
  for (int j = 0; j < nt; j++) {
    float *o = out + (p0 + j) * k + k0;
    _mm256_storeu_ps(o, bias ? _mm256_add_ps(acc[j][0], b0) : acc[j][0]);
    _mm256_storeu_ps(o + 8, bias ? _mm256_add_ps(acc[j][1], b1) : acc[j][1]);
  }
}

/* out[(u*ow + v)*k + kk] = sum over ci < c, taps t < rs of
 * wl[(ci*rs + t)*k + kk] * x[ci*ps + u*ws + v + off[t]] (+ bias[kk]),
 * k a multiple of 16, one register chain per output (c*rs products): the
 * forward of a stride-1 layer with the output channels in the lanes, only
 * real positions (the position kernels also run ws - ow junk columns a
 * row: LeNet's conv2 136 for 100). Tiles of up to 6 columns of a row. */
CPU_AVX2 void tc__convd_fwdt256(const float *x, int64_t ps, int64_t ws,
                                const int64_t *off, int64_t rs, const float *wl,
                                int64_t c, int64_t k, int64_t oh, int64_t ow,
                                const float *bias, float *out) {
  for (int64_t k0 = 0; k0 < k; k0 += 16)
    for (int64_t u = 0; u < oh; u++)
      for (int64_t v = 0; v < ow;) {
        /* equal tiles: 10 columns as 5 + 5, not 6 + 4 */
        int64_t left = ow - v, ntiles = (left + 5) / 6;
        int nt = (int)((left + ntiles - 1) / ntiles);
        const float *xr = x + u * ws + v;
        int64_t p0 = u * ow + v;
        switch (nt) {
#define FWT256_CASE(n)                                                         \
  case n:                                                                      \
    fwt256_tile(xr, ps, off, rs, wl, c, k, bias, out, k0, p0, n);              \
    break;
          FWT256_CASE(1)
          FWT256_CASE(2)
          FWT256_CASE(3)
          FWT256_CASE(4)
          FWT256_CASE(5)
          FWT256_CASE(6)
#undef FWT256_CASE
        }
        v += nt;
      }
}

#endif /* CPU_X86 */
