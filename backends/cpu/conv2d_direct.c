/*
 * conv2d_direct.c - SIMD kernels for the CPU backend's direct
 * convolutions (see conv2d.c for how they are used): AVX-512F and
 * AVX2+FMA builds of the same bodies (conv2d_direct_kern.h), picked by
 * cpu_isa() (TINYCNN_CPU_ISA lowers it). Below AVX2+FMA conv2d.c uses
 * im2col + GEMM.
 */
#include <immintrin.h>

#include "conv2d_direct.h"
#include "cpu.h"

/* ---- AVX2 + FMA: 16 ymm registers ---- */
#define KF(name) convd_avx2_##name
#define TGT __attribute__((target("avx2,fma")))
#define vf __m256
#define VL 8
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_BC(s) _mm256_set1_ps(s)
#define V_ZERO() _mm256_setzero_ps()
#define V_HSUM(v) convd_hsum256(v)
#define FKT 4
#define FNV 3
#define WKT 4
#define WNO 3

TGT static float convd_hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#include "conv2d_direct_kern.h"

/* Stride-2 (de)interleaving of rows, for both kernel sets. */
TGT static void convd_deint2(const float *src, int64_t n, float *even,
                             float *odd) {
  int64_t m = 0;
  for (; m + 8 <= n; m += 8) {
    __m256 a = _mm256_loadu_ps(src + 2 * m), b = _mm256_loadu_ps(src + 2 * m + 8);
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

static const convd_kernels convd_avx2 = {
    "avx2",           FKT,         VL,          WKT,
    WNO,              VL,          convd_avx2_fwd, convd_avx2_wgrad,
    convd_deint2,     convd_inter2};

#undef KF
#undef TGT
#undef vf
#undef VL
#undef V_LOAD
#undef V_STORE
#undef V_FMA
#undef V_ADD
#undef V_BC
#undef V_ZERO
#undef V_HSUM
#undef FKT
#undef FNV
#undef WKT
#undef WNO

/* ---- AVX-512F: 32 zmm registers ---- */
#define KF(name) convd_avx512_##name
#define TGT __attribute__((target("avx512f,avx2,fma")))
#define vf __m512
#define VL 16
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_BC(s) _mm512_set1_ps(s)
#define V_ZERO() _mm512_setzero_ps()
#define V_HSUM(v) convd_hsum512(v)
#define FKT 8
#define FNV 2
#define WKT 8
#define WNO 3

TGT static float convd_hsum512(__m512 v) {
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s =
      _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#include "conv2d_direct_kern.h"

static const convd_kernels convd_avx512 = {
    "avx512",     FKT,          VL,               WKT,
    WNO,          VL,           convd_avx512_fwd, convd_avx512_wgrad,
    convd_deint2, convd_inter2};

const convd_kernels *cpu_convd_kernels(void) {
  int isa = cpu_isa();
  if (isa >= CPU_ISA_AVX512)
    return &convd_avx512;
  if (isa >= CPU_ISA_AVX2)
    return &convd_avx2;
  return 0;
}
