/*
 * cpu_simd.h - the CPU backend's x86 vector vocabulary: the target
 * attributes of its two vector levels and, per vector width, one set of
 * macros, so that a kernel body is written once and compiled for each
 * level (batchnorm_kern.h, conv2d_direct_kern.h, gemm_kern.h).
 *
 *   CPU_AVX2    AVX2 + FMA: what tc__cpu_isa() >= CPU_ISA_AVX2 promises.
 *   CPU_AVX512  AVX-512 F, VL and BW (+ AVX2, FMA): what
 *               tc__cpu_isa() >= CPU_ISA_AVX512 promises.
 * A function with one of these attributes runs only after that check.
 *
 * The width set: define CPU_SIMD_VL as 8 (AVX2) or 16 (AVX-512) and
 * include this header (again for each width: the set is redefined each
 * time and CPU_SIMD_VL undefined); it defines
 *   TGT             the level's target attribute
 *   vf, VL          float vector and its lanes
 *   V_LOAD(p), V_STORE(p, v), V_ADD, V_SUB, V_MUL, V_MAX(a, b),
 *   V_FMA(a, b, c) = a*b + c (fused; only where a kernel says so),
 *   V_BC(s) broadcast, V_ZERO()
 *   V_RELU(v)       cpu_relu1 per lane: v where v > 0 or NaN, else +0
 *   vh, vd, VDL     VDL = VL/2 floats, and as many doubles;
 *   VH_LOAD(p), VH_STORE(p, h), VD_CVT(h) (widen to double),
 *   VD_LOAD, VD_STORE, VD_ADD, VD_SUB, VD_MUL, VD_BC
 *   vm, vhm         lane masks of a vf and of a vh;
 *   VM_GT0(v), VHM_GT0(h)   lanes > 0 (false for NaN)
 *   VM_BITS(mp, e)  lanes from bits [e, e+VL) of bit plane mp (e a
 *                   multiple of 8), VHM_BITS(b) lanes from the low VDL bits
 *   VM_STORE_BITS(mp, m)    the VL bits of m into bytes mp[0, VL/8)
 *   V_MASKZ(m, v), VH_MASKZ(m, h)   the lanes of m, +0 elsewhere
 * Every operation is the plain IEEE one (no contraction: meson builds with
 * -ffp-contract=off), so a body gives the same bits at either width when
 * it assigns elements to the same partial sums.
 */
#ifndef TINYCNN_CPU_SIMD_H
#define TINYCNN_CPU_SIMD_H

#include <stdint.h>
#include <string.h>

#include "cpu.h"

/* ReLU's rule, as torch.relu: x where x > 0 or NaN (a diverging model
 * shows NaN), else +0. For -0 we give +0 as before; PyTorch's clamp_min
 * (std::max(x, 0.f) returns x on a tie) gives -0. !(x <= 0) is true for
 * NaN. The vector form (V_RELU, eltwise.c) is the same unordered compare
 * and a mask, not max_ps, whose result for NaN or zero operands depends
 * on their order. */
static inline float cpu_relu1(float x) {
  return !(x <= 0.f) ? x : 0.f;
}

#if CPU_X86
#include <immintrin.h>

#define CPU_AVX2 __attribute__((target("avx2,fma")))
#define CPU_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma")))

/* AVX2 lane masks: all-ones lanes */
CPU_AVX2 static inline __m256 cpu_m8_bits(const uint8_t *mp, int64_t e) {
  const __m256i bit8 = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(
      _mm256_and_si256(_mm256_set1_epi32(mp[e >> 3]), bit8), bit8));
}

CPU_AVX2 static inline __m128 cpu_m4_bits(unsigned b) {
  const __m128i bit4 = _mm_setr_epi32(1, 2, 4, 8);
  return _mm_castsi128_ps(
      _mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32((int)b), bit4), bit4));
}

/* AVX-512: mask registers; bit planes are little-endian bytes */
CPU_AVX512 static inline __mmask16 cpu_m16_bits(const uint8_t *mp, int64_t e) {
  uint16_t b;
  memcpy(&b, mp + (e >> 3), 2);
  return (__mmask16)b;
}

CPU_AVX512 static inline void cpu_m16_store_bits(uint8_t *mp, __mmask16 m) {
  uint16_t b = (uint16_t)m;
  memcpy(mp, &b, 2);
}
#endif /* CPU_X86 */

#endif /* TINYCNN_CPU_SIMD_H */

/* ---- the width set (no include guard: once per width) ---- */
#if defined(CPU_SIMD_VL) && CPU_X86
#undef TGT
#undef vf
#undef VL
#undef V_LOAD
#undef V_STORE
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_MAX
#undef V_FMA
#undef V_BC
#undef V_ZERO
#undef V_RELU
#undef vh
#undef vd
#undef VDL
#undef VH_LOAD
#undef VH_STORE
#undef VD_CVT
#undef VD_LOAD
#undef VD_STORE
#undef VD_ADD
#undef VD_SUB
#undef VD_MUL
#undef VD_BC
#undef vm
#undef vhm
#undef VM_GT0
#undef VHM_GT0
#undef VM_BITS
#undef VHM_BITS
#undef VM_STORE_BITS
#undef V_MASKZ
#undef VH_MASKZ

#if CPU_SIMD_VL == 8
#define TGT CPU_AVX2
#define vf __m256
#define VL 8
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_SUB(a, b) _mm256_sub_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_BC(s) _mm256_set1_ps(s)
#define V_ZERO() _mm256_setzero_ps()
#define V_RELU(v)                                                              \
  _mm256_and_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ), v)
#define vh __m128
#define vd __m256d
#define VDL 4
#define VH_LOAD(p) _mm_loadu_ps(p)
#define VH_STORE(p, h) _mm_storeu_ps(p, h)
#define VD_CVT(h) _mm256_cvtps_pd(h)
#define VD_LOAD(p) _mm256_loadu_pd(p)
#define VD_STORE(p, v) _mm256_storeu_pd(p, v)
#define VD_ADD(a, b) _mm256_add_pd(a, b)
#define VD_SUB(a, b) _mm256_sub_pd(a, b)
#define VD_MUL(a, b) _mm256_mul_pd(a, b)
#define VD_BC(s) _mm256_set1_pd(s)
#define vm __m256
#define vhm __m128
#define VM_GT0(v) _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ)
#define VHM_GT0(h) _mm_cmp_ps(h, _mm_setzero_ps(), _CMP_GT_OQ)
#define VM_BITS(mp, e) cpu_m8_bits(mp, e)
#define VHM_BITS(b) cpu_m4_bits(b)
#define VM_STORE_BITS(mp, m) (*(mp) = (uint8_t)_mm256_movemask_ps(m))
#define V_MASKZ(m, v) _mm256_and_ps(m, v)
#define VH_MASKZ(m, h) _mm_and_ps(m, h)
#elif CPU_SIMD_VL == 16
#define TGT CPU_AVX512
#define vf __m512
#define VL 16
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_SUB(a, b) _mm512_sub_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_BC(s) _mm512_set1_ps(s)
#define V_ZERO() _mm512_setzero_ps()
#define V_RELU(v)                                                              \
  _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), \
                      v)
#define vh __m256
#define vd __m512d
#define VDL 8
#define VH_LOAD(p) _mm256_loadu_ps(p)
#define VH_STORE(p, h) _mm256_storeu_ps(p, h)
#define VD_CVT(h) _mm512_cvtps_pd(h)
#define VD_LOAD(p) _mm512_loadu_pd(p)
#define VD_STORE(p, v) _mm512_storeu_pd(p, v)
#define VD_ADD(a, b) _mm512_add_pd(a, b)
#define VD_SUB(a, b) _mm512_sub_pd(a, b)
#define VD_MUL(a, b) _mm512_mul_pd(a, b)
#define VD_BC(s) _mm512_set1_pd(s)
#define vm __mmask16
#define vhm __mmask8
#define VM_GT0(v) _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ)
#define VHM_GT0(h) _mm256_cmp_ps_mask(h, _mm256_setzero_ps(), _CMP_GT_OQ)
#define VM_BITS(mp, e) cpu_m16_bits(mp, e)
#define VHM_BITS(b) ((__mmask8)(b))
#define VM_STORE_BITS(mp, m) cpu_m16_store_bits(mp, m)
#define V_MASKZ(m, v) _mm512_maskz_mov_ps(m, v)
#define VH_MASKZ(m, h) _mm256_maskz_mov_ps(m, h)
#else
#error "CPU_SIMD_VL must be 8 or 16"
#endif
#undef CPU_SIMD_VL
#endif /* CPU_SIMD_VL */
