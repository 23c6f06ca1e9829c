/*
 * conv2d_direct.c - SIMD kernels for the CPU backend's direct
 * convolutions (see conv2d.c and conv2d_driver.c for how they are used):
 * AVX-512 and AVX2+FMA builds of the same bodies (conv2d_direct_kern.h, the
 * width set of cpu_simd.h), picked by
 * tc__cpu_isa() (TINYCNN_CPU_ISA lowers it). Below AVX2+FMA conv2d.c uses
 * im2col + GEMM.
 */
#include "conv2d_direct.h"
#include "cpu.h"
#include "cpu_simd.h"

/* ---- AVX2 + FMA: 16 ymm registers ---- */
#define CPU_SIMD_VL 8
#include "cpu_simd.h"
#define V_HSUM(v) convd_hsum256(v)
#define V_HSUMS(v, s) convd_hsums256(v, s)
#define V_LANE(m) ((m) % 2 * 4 + (m) / 2)
#define V_TILE_SUMS(fl, na, s) convd_avx2_tile_sums(fl, na, s)

TGT static inline float convd_hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* s[V_LANE(m)] = sum of the lanes of v[m], m < 8: a transpose-and-add
 * tree, 12 shuffles + 7 adds for all eight (one hsum alone takes 8). */
TGT static inline __attribute__((always_inline)) void
convd_hsums256(const __m256 *v, float *s) {
  __m256 w[4], y[2];
  for (int i = 0; i < 4; i++) /* [v(2i) halves | v(2i+1) halves] */
    w[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(v[2 * i], v[2 * i + 1], 0x31));
  for (int i = 0; i < 2; i++) {
    __m256d a = _mm256_castps_pd(w[2 * i]), b = _mm256_castps_pd(w[2 * i + 1]);
    y[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                         _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
  }
  _mm256_storeu_ps(
      s, _mm256_add_ps(_mm256_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm256_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1))));
}

/* Lane masks of the dense kernels: a mask is all-ones lanes ANDed with a
 * plain load (the dense planes have room for a whole vector past every
 * tap's reach, so the load stays inside them; masked-out lanes read
 * +0.0 whatever the memory holds); stores and reads of the output's last
 * vector use vmaskmovps (they may not touch memory past the tensor). */
#define VM __m256
#define VI __m256i
#define VM_COLS(c0, w) convd_cols256(c0, w)
#define VM_TAP(col, cs, w) convd_tap256(col, cs, w)
#define VM_LOAD(m, p) _mm256_and_ps(m, _mm256_loadu_ps(p))
#define VS __m256i
#define VS_FIRST(rest)                                                         \
  _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rest)),                           \
                     _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VS_LOAD(m, p) _mm256_maskload_ps(p, m)
#define VS_STORE(p, m, v) _mm256_maskstore_ps(p, m, v)

/* The column in a row of width w of each lane of positions c0 .. c0+7
 * (c0 < w). */
TGT static inline __m256i convd_cols256(int64_t c0, int64_t w) {
  __m256i wv = _mm256_set1_epi32((int)w), w1 = _mm256_set1_epi32((int)w - 1);
  __m256i col = _mm256_add_epi32(_mm256_set1_epi32((int)c0),
                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (;;) {
    __m256i m = _mm256_cmpgt_epi32(col, w1);
    if (!_mm256_movemask_epi8(m))
      return col;
    col = _mm256_sub_epi32(col, _mm256_and_si256(m, wv));
  }
}

/* All-ones lanes where 0 <= col + cs < w. */
TGT static inline __m256 convd_tap256(__m256i col, int64_t cs, int64_t w) {
  __m256i x = _mm256_add_epi32(col, _mm256_set1_epi32((int)cs));
  __m256i in =
      _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), x),
                       _mm256_cmpgt_epi32(x, _mm256_set1_epi32(-1)));
  return _mm256_castsi256_ps(in);
}

/* tiles: accumulators + loaded vectors + 1 <= 16 registers */
#define CONVD_SUMS_FN convd_avx2_tile_sums
#include "conv2d_direct_kern.h"
#define FKT 4
#define FNV 3
#define CONVD_FN convd_avx2_fwd_4x3
#include "conv2d_direct_kern.h"
#define FKT 6
#define FNV 2
#define CONVD_FN convd_avx2_fwd_6x2
#include "conv2d_direct_kern.h"
#define MKT 4
#define MNV 3
#define CONVD_FN convd_avx2_fwdm_4x3
#include "conv2d_direct_kern.h"
#define MKT 6
#define MNV 2
#define CONVD_FN convd_avx2_fwdm_6x2
#include "conv2d_direct_kern.h"
#define WKT 4
#define WNO 3
#define CONVD_FN convd_avx2_wgrad_4x3
#include "conv2d_direct_kern.h"
#define WKT 3
#define WNO 3
#define CONVD_FN convd_avx2_wgrad_3x3
#include "conv2d_direct_kern.h"
#define WKT 2
#define WNO 5
#define CONVD_FN convd_avx2_wgrad_2x5
#include "conv2d_direct_kern.h"
#define WKT 6
#define WNO 2
#define CONVD_FN convd_avx2_wgrad_6x2
#include "conv2d_direct_kern.h"

/* Stride-2 (de)interleaving of rows, for both kernel sets. */
TGT static void convd_deint2(const float *src, int64_t n, float *even,
                             float *odd) {
  int64_t m = 0;
  for (; m + 8 <= n; m += 8) {
    __m256 a = _mm256_loadu_ps(src + 2 * m),
           b = _mm256_loadu_ps(src + 2 * m + 8);
    __m256 lo = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    __m256 hi = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(even + m, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                   _mm256_castps_pd(lo), 0xd8)));
    _mm256_storeu_ps(odd + m, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                  _mm256_castps_pd(hi), 0xd8)));
  }
  for (; m < n; m++) {
    even[m] = src[2 * m];
    odd[m] = src[2 * m + 1];
  }
}

TGT static void convd_deint2p256(const float *src, int64_t c, int64_t h,
                                 int64_t n, float *dst, int64_t ps, int64_t pa,
                                 int64_t pb) {
  for (int64_t cc = 0; cc < c; cc++)
    for (int64_t i = 0; i < h; i++) {
      float *e = dst + cc * ps + (i % 2) * pa + (i / 2) * n;
      convd_deint2(src + (cc * h + i) * 2 * n, n, e, e + pb);
    }
}

TGT static void convd_inter2(const float *even, const float *odd, int64_t n,
                             float *dst, int add) {
  int64_t m = 0;
  for (; m + 8 <= n; m += 8) {
    __m256 e = _mm256_loadu_ps(even + m), o = _mm256_loadu_ps(odd + m);
    __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
    __m256 d0 = _mm256_permute2f128_ps(lo, hi, 0x20);
    __m256 d1 = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (add) {
      d0 = _mm256_add_ps(d0, _mm256_loadu_ps(dst + 2 * m));
      d1 = _mm256_add_ps(d1, _mm256_loadu_ps(dst + 2 * m + 8));
    }
    _mm256_storeu_ps(dst + 2 * m, d0);
    _mm256_storeu_ps(dst + 2 * m + 8, d1);
  }
  for (; m < n; m++) {
    dst[2 * m] = add ? dst[2 * m] + even[m] : even[m];
    dst[2 * m + 1] = add ? dst[2 * m + 1] + odd[m] : odd[m];
  }
}

TGT static void convd_rows256(const float *src, int64_t lds, float *dst,
                              int64_t ldd, int64_t n, int64_t w, float b,
                              int mode) {
  int64_t r = w % 8, wv = w - r;
  __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r),
                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 bv = _mm256_set1_ps(b);
  for (int64_t i = 0; i < n; i++) {
    const float *s = src + i * lds;
    float *d = dst + i * ldd;
    for (int64_t j = 0; j < wv; j += 8) {
      __m256 v = _mm256_loadu_ps(s + j);
      if (mode == CONVD_ROWS_BIAS)
        v = _mm256_add_ps(v, bv);
      else if (mode == CONVD_ROWS_ADD)
        v = _mm256_add_ps(_mm256_loadu_ps(d + j), v);
      _mm256_storeu_ps(d + j, v);
    }
    if (r) {
      __m256 v = _mm256_maskload_ps(s + wv, m);
      if (mode == CONVD_ROWS_BIAS)
        v = _mm256_add_ps(v, bv);
      else if (mode == CONVD_ROWS_ADD)
        v = _mm256_add_ps(_mm256_maskload_ps(d + wv, m), v);
      _mm256_maskstore_ps(d + wv, m, v);
    }
  }
}

static const convd_kernels convd_avx2 = {
    .name = "avx2",
    .vl = VL,
    .nfwd = 2,
    .nwgrad = 4,
    .fwd = {{4, 3, convd_avx2_fwd_4x3, convd_avx2_fwdm_4x3},
            {6, 2, convd_avx2_fwd_6x2, convd_avx2_fwdm_6x2}},
    .wgrad = {{4, 3, convd_avx2_wgrad_4x3, NULL},
              {3, 3, convd_avx2_wgrad_3x3, NULL},
              {2, 5, convd_avx2_wgrad_2x5, NULL},
              {6, 2, convd_avx2_wgrad_6x2, NULL}},
    .rows = convd_rows256,
    .deint2 = convd_deint2,
    .deint2p = convd_deint2p256,
    .inter2 = convd_inter2,
    .wgradt = tc__convd_wgradt256,
    .transpose = tc__convd_transpose256,
    .fwdt = tc__convd_fwdt256};

#undef V_HSUM
#undef V_HSUMS
#undef V_LANE
#undef V_TILE_SUMS
#undef VM
#undef VI
#undef VM_COLS
#undef VM_TAP
#undef VM_LOAD
#undef VS
#undef VS_FIRST
#undef VS_LOAD
#undef VS_STORE

/* ---- AVX-512F: 32 zmm registers ---- */
#define CPU_SIMD_VL 16
#include "cpu_simd.h"
#define V_HSUM(v) convd_hsum512(v)
#define V_HSUMS(v, s) convd_hsums512(v, s)
#define V_LANE(m) ((m) % 4 * 4 + (m) / 4)
#define V_TILE_SUMS(fl, na, s) convd_avx512_tile_sums(fl, na, s)

TGT static inline float convd_hsum512(__m512 v) {
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return convd_hsum256(_mm256_add_ps(lo, hi));
}

/* s[V_LANE(m)] = sum of the lanes of v[m], m < 16: a transpose-and-add
 * tree, 30 shuffles + 15 adds for all sixteen (one hsum alone takes 10). */
TGT static inline __attribute__((always_inline)) void
convd_hsums512(const __m512 *v, float *s) {
  __m512 w[8], x[4], y[2];
  for (int i = 0; i < 8; i++) /* [v(2i) 256-bit halves | v(2i+1) ...] */
    w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
  for (int i = 0; i < 4; i++) /* 128-bit block b: v(4i + b) */
    x[i] = _mm512_add_ps(
        _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
        _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int i = 0; i < 2; i++) {
    __m512d a = _mm512_castps_pd(x[2 * i]), b = _mm512_castps_pd(x[2 * i + 1]);
    y[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  _mm512_storeu_ps(
      s, _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1))));
}

/* lane masks of the dense kernels: mask registers */
#define VM __mmask16
#define VI __m512i
#define VM_COLS(c0, w) convd_cols512(c0, w)
#define VM_TAP(col, cs, w)                                                     \
  _mm512_cmplt_epu32_mask(_mm512_add_epi32(col, _mm512_set1_epi32((int)(cs))), \
                          _mm512_set1_epi32((int)(w)))
#define VM_LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define VS __mmask16
#define VS_FIRST(rest)                                                         \
  ((rest) >= VL ? (__mmask16)0xffff : (__mmask16)((1u << (rest)) - 1))
#define VS_LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define VS_STORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)

/* The column in a row of width w of each lane of positions c0 .. c0+15
 * (c0 < w). */
TGT static inline __m512i convd_cols512(int64_t c0, int64_t w) {
  __m512i wv = _mm512_set1_epi32((int)w);
  __m512i col = _mm512_add_epi32(
      _mm512_set1_epi32((int)c0),
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  for (__mmask16 m; (m = _mm512_cmpge_epi32_mask(col, wv));)
    col = _mm512_mask_sub_epi32(col, m, col, wv);
  return col;
}

/* tiles: accumulators + loaded vectors + 1 <= 32 registers */
#define CONVD_SUMS_FN convd_avx512_tile_sums
#include "conv2d_direct_kern.h"
#define FKT 8
#define FNV 2
#define CONVD_FN convd_avx512_fwd_8x2
#include "conv2d_direct_kern.h"
#define FKT 6
#define FNV 3
#define CONVD_FN convd_avx512_fwd_6x3
#include "conv2d_direct_kern.h"
#define MKT 8
#define MNV 2
#define CONVD_FN convd_avx512_fwdm_8x2
#include "conv2d_direct_kern.h"
#define MKT 6
#define MNV 3
#define CONVD_FN convd_avx512_fwdm_6x3
#include "conv2d_direct_kern.h"
#define WMKT 8
#define WMNO 3
#define CONVD_FN convd_avx512_wgradm_8x3
#include "conv2d_direct_kern.h"
#define WMKT 6
#define WMNO 4
#define CONVD_FN convd_avx512_wgradm_6x4
#include "conv2d_direct_kern.h"
#define WMKT 4
#define WMNO 5
#define CONVD_FN convd_avx512_wgradm_4x5
#include "conv2d_direct_kern.h"
#define WKT 8
#define WNO 3
#define CONVD_FN convd_avx512_wgrad_8x3
#include "conv2d_direct_kern.h"
#define WKT 6
#define WNO 4
#define CONVD_FN convd_avx512_wgrad_6x4
#include "conv2d_direct_kern.h"
#define WKT 4
#define WNO 5
#define CONVD_FN convd_avx512_wgrad_4x5
#include "conv2d_direct_kern.h"

/* rows: whole zmm vectors, then one ymm, then a masked rest (under 8):
 * masked stores are slower, so as few as possible */
TGT static void convd_rows512(const float *src, int64_t lds, float *dst,
                              int64_t ldd, int64_t n, int64_t w, float b,
                              int mode) {
  int64_t wv = w - w % 16, h8 = w % 16 >= 8, r = w % 8, wr = w - r;
  __mmask16 m = (__mmask16)((1u << r) - 1);
  __m512 bv = _mm512_set1_ps(b);
  for (int64_t i = 0; i < n; i++) {
    const float *s = src + i * lds;
    float *d = dst + i * ldd;
    for (int64_t j = 0; j < wv; j += 16) {
      __m512 v = _mm512_loadu_ps(s + j);
      if (mode == CONVD_ROWS_BIAS)
        v = _mm512_add_ps(v, bv);
      else if (mode == CONVD_ROWS_ADD)
        v = _mm512_add_ps(_mm512_loadu_ps(d + j), v);
      _mm512_storeu_ps(d + j, v);
    }
    if (h8) {
      __m256 v = _mm256_loadu_ps(s + wv);
      if (mode == CONVD_ROWS_BIAS)
        v = _mm256_add_ps(v, _mm512_castps512_ps256(bv));
      else if (mode == CONVD_ROWS_ADD)
        v = _mm256_add_ps(_mm256_loadu_ps(d + wv), v);
      _mm256_storeu_ps(d + wv, v);
    }
    if (r) {
      __m512 v = _mm512_maskz_loadu_ps(m, s + wr);
      if (mode == CONVD_ROWS_BIAS)
        v = _mm512_add_ps(v, bv);
      else if (mode == CONVD_ROWS_ADD)
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + wr), v);
      _mm512_mask_storeu_ps(d + wr, m, v);
    }
  }
}

/* deint2p with two-source permutes: 16 even and 16 odd floats per pair
 * of loads; a row's last n % 16 through masks */
TGT static void convd_deint2p512(const float *src, int64_t c, int64_t h,
                                 int64_t n, float *dst, int64_t ps, int64_t pa,
                                 int64_t pb) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                       22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                       23, 25, 27, 29, 31);
  int64_t nv = n - n % 16, r = n % 16;
  __mmask16 ma = (__mmask16)(r >= 8 ? 0xffffu : (1u << 2 * r) - 1);
  __mmask16 mb = (__mmask16)(r > 8 ? (1u << (2 * r - 16)) - 1 : 0);
  __mmask16 ms = (__mmask16)((1u << r) - 1);
  for (int64_t cc = 0; cc < c; cc++)
    for (int64_t i = 0; i < h; i++) {
      const float *s = src + (cc * h + i) * 2 * n;
      float *e = dst + cc * ps + (i % 2) * pa + (i / 2) * n, *o = e + pb;
      for (int64_t m = 0; m < nv; m += 16) {
        __m512 a = _mm512_loadu_ps(s + 2 * m);
        __m512 b = _mm512_loadu_ps(s + 2 * m + 16);
        _mm512_storeu_ps(e + m, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(o + m, _mm512_permutex2var_ps(a, io, b));
      }
      if (r) {
        __m512 a = _mm512_maskz_loadu_ps(ma, s + 2 * nv);
        __m512 b = _mm512_maskz_loadu_ps(mb, s + 2 * nv + 16);
        _mm512_mask_storeu_ps(e + nv, ms, _mm512_permutex2var_ps(a, ie, b));
        _mm512_mask_storeu_ps(o + nv, ms, _mm512_permutex2var_ps(a, io, b));
      }
    }
}

static const convd_kernels convd_avx512 = {
    .name = "avx512",
    .vl = VL,
    .nfwd = 2,
    .nwgrad = 3,
    .fwd = {{8, 2, convd_avx512_fwd_8x2, convd_avx512_fwdm_8x2},
            {6, 3, convd_avx512_fwd_6x3, convd_avx512_fwdm_6x3}},
    .wgrad = {{8, 3, convd_avx512_wgrad_8x3, convd_avx512_wgradm_8x3},
              {6, 4, convd_avx512_wgrad_6x4, convd_avx512_wgradm_6x4},
              {4, 5, convd_avx512_wgrad_4x5, convd_avx512_wgradm_4x5}},
    .rows = convd_rows512,
    .deint2 = convd_deint2,
    .deint2p = convd_deint2p512,
    .inter2 = convd_inter2,
    .wgradt = tc__convd_wgradt512,
    .transpose = tc__convd_transpose512};

const convd_kernels *tc__cpu_convd_kernels(void) {
  int isa = tc__cpu_isa();
  if (isa >= CPU_ISA_AVX512)
    return &convd_avx512;
  if (isa >= CPU_ISA_AVX2)
    return &convd_avx2;
  return 0;
}

/* Cost of a kt x nv tile over k channels, nrs taps, per position vector:
 * the FMAs issued (padding included) or the loads when they dominate,
 * plus loop overhead per step (fwd 2, wgrad 4 FMA slots: fitted to
 * timings on Zen 5); scaled by 64 to stay in integers. fwd runs nv
 * position vectors per step, wgrad nv taps. Measured (1 thread, AVX-512):
 * k = 6 with 25 taps runs 6x4 wgrad / 6x3 fwd 1.6x / 1.2x faster than
 * 8x3 / 8x2; k = 16 with 25 taps 4x5 wgrad ~5% faster than 8x3; k = 16
 * with 9 taps stays 8x3 / 8x2 (8x3 fwd was no faster). */
static int64_t tile_cost(int64_t k, int64_t nrs, int64_t kt, int64_t nv,
                         int wgrad) {
  int64_t nkb = (k + kt - 1) / kt, step = kt * nv > kt + nv ? kt * nv : kt + nv;
  if (wgrad)
    return 64 * nkb * ((nrs + nv - 1) / nv) * (step + 4);
  return 64 * nkb * nrs * (step + 2) / nv;
}

const convd_fwd_var *tc__convd_pick_fwd(const convd_kernels *kn, int64_t k,
                                        int64_t nrs) {
  int best = 0;
  for (int v = 1; v < kn->nfwd; v++)
    if (tile_cost(k, nrs, kn->fwd[v].kt, kn->fwd[v].nv, 0) <
        tile_cost(k, nrs, kn->fwd[best].kt, kn->fwd[best].nv, 0))
      best = v;
  return &kn->fwd[best];
}

const convd_wgrad_var *tc__convd_pick_wgrad(const convd_kernels *kn, int64_t k,
                                            int64_t nrs) {
  int best = 0;
  for (int v = 1; v < kn->nwgrad; v++)
    if (tile_cost(k, nrs, kn->wgrad[v].kt, kn->wgrad[v].nv, 1) <
        tile_cost(k, nrs, kn->wgrad[best].kt, kn->wgrad[best].nv, 1))
      best = v;
  return &kn->wgrad[best];
}
