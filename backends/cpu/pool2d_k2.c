/*
 * pool2d_k2.c - max pooling's fast paths for 2x2 windows, stride 2, no
 * padding (LeNet, ResNet shortcut A), forward and backward: a portable
 * row loop, an AVX2 row kernel (even/odd columns split within a row) and
 * an AVX-512 plane kernel that packs several narrow row pairs into one
 * vector through permutation tables (tc__cpu_max2_plan). The AVX2 and
 * AVX-512 kernels are different algorithms, not one body at two widths
 * (the AVX-512 one needs two-source permutes and mask registers), so
 * each is written out. All take a window's cells in raster order with
 * tc__cpu_maxpool_one's rule, so every path gives the same outputs and argmax.
 */
#include <string.h>

#include "cpu_simd.h"
#include "pool2d.h"

/* The AVX-512 path's lane tables (pool_job's g, lane_base, perm, inv),
 * or j->g = 0 when that path does not apply. */
void tc__cpu_max2_plan(pool_job *j) {
  const tc_pool2d_args *a = j->a;
  j->g = 0;
  int64_t w = a->w, ow = a->w / 2;
  if (j->k2 && tc__cpu_isa() >= CPU_ISA_AVX512 && a->out_w == ow && w <= 32 &&
      a->h >= 2) {
    int g = (int)(32 / w); /* 2w*g <= 64 floats, so g*ow <= 16 lanes */
    j->g = g;
    const int32_t off[4] = {0, 1, (int32_t)w, (int32_t)w + 1};
    for (int q = 0; q < 4; q++)
      j->perm_hi[q] = 0;
    for (int l = 0; l < 16; l++) {
      int32_t k = (int32_t)(l / ow), c = (int32_t)(l % ow);
      int32_t b = l < g * ow ? (int32_t)(2 * w * k + 2 * c) : 0;
      j->lane_base[l] = b;
      for (int q = 0; q < 4; q++) {
        int32_t pos = l < g * ow ? b + off[q] : 0;
        j->perm[q][l] = pos & 31;
        if (pos >= 32)
          j->perm_hi[q] |= (uint16_t)(1u << l);
      }
    }
    for (int r = 0; r < 4; r++) {
      j->inv_top[r] = 0;
      for (int i = 0; i < 16; i++) {
        int32_t pos = 16 * r + i;
        int32_t k = pos / (int32_t)(2 * w), col = pos % (int32_t)(2 * w);
        int top = col < w;
        if (!top)
          col -= (int32_t)w;
        int32_t l = k * (int32_t)ow + col / 2;
        j->inv[r][i] = pos < 2 * w * g ? (l & 15) | (col & 1) << 4 : 0;
        if (top)
          j->inv_top[r] |= (uint16_t)(1u << i);
      }
    }
  }
}

/* ---- 2x2 stride 2 without padding (LeNet, ResNet shortcut A) ----
 * Output (oh, ow) reads cells r0[2ow], r0[2ow+1], r1[2ow], r1[2ow+1] in
 * raster order with r0 = row 2oh, r1 = row 2oh+1, and keeps
 * tc__cpu_maxpool_one's rule: a later cell wins when it is greater or NaN. Only
 * full windows (ow < w/2, oh < h/2) come here; a ceil-mode edge goes to
 * tc__cpu_maxpool_one. */
static inline void max2_take(float v, int32_t i, float *m, int32_t *b) {
  uint32_t take = -(uint32_t)((v > *m) | (v != v)), vb, mb;
  memcpy(&vb, &v, 4);
  memcpy(&mb, m, 4);
  mb = (vb & take) | (mb & ~take);
  memcpy(m, &mb, 4);
  *b = (int32_t)(((uint32_t)i & take) | ((uint32_t)*b & ~take));
}

static void max2_row(const float *restrict r0, const float *restrict r1,
                     float *restrict y, int32_t *restrict am, int64_t ow0,
                     int64_t ow1, int32_t base, int32_t w) {
  for (int64_t ow = ow0; ow < ow1; ow++) {
    int32_t i = base + 2 * (int32_t)ow;
    float m = r0[2 * ow];
    int32_t b = i;
    max2_take(r0[2 * ow + 1], i + 1, &m, &b);
    max2_take(r1[2 * ow], i + w, &m, &b);
    max2_take(r1[2 * ow + 1], i + w + 1, &m, &b);
    y[ow] = m;
    am[ow] = b;
  }
}

#if CPU_X86
static CPU_AVX2 inline void max2_take8(__m256 v, __m256i i, __m256 *m,
                                       __m256i *b) {
  __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *m, _CMP_GT_OQ),
                             _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  *m = _mm256_blendv_ps(*m, v, take);
  *b = _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(*b), _mm256_castsi256_ps(i), take));
}

static CPU_AVX2 inline __m256i mask_first(int64_t k) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)k),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* 8 outputs a step; the last step masks loads and stores to the row (a
 * masked load never touches memory outside its mask). */
static CPU_AVX2 void max2_row_avx2(const float *r0, const float *r1, float *y,
                                   int32_t *am, int64_t n, int32_t base,
                                   int32_t w) {
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), vw = _mm256_set1_epi32(w);
  for (int64_t ow = 0; ow < n; ow += 8) {
    int full = ow + 8 <= n;
    __m256 a0, a1, b0, b1;
    __m256i ml = mask_first(2 * (n - ow)), mh = mask_first(2 * (n - ow) - 8);
    if (full) {
      a0 = _mm256_loadu_ps(r0 + 2 * ow), a1 = _mm256_loadu_ps(r0 + 2 * ow + 8);
      b0 = _mm256_loadu_ps(r1 + 2 * ow), b1 = _mm256_loadu_ps(r1 + 2 * ow + 8);
    } else {
      a0 = _mm256_maskload_ps(r0 + 2 * ow, ml);
      a1 = _mm256_maskload_ps(r0 + 2 * ow + 8, mh);
      b0 = _mm256_maskload_ps(r1 + 2 * ow, ml);
      b1 = _mm256_maskload_ps(r1 + 2 * ow + 8, mh);
    }
    /* even/odd columns, back in order across the two 128-bit halves */
    __m256 te = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0x88)), 0xD8));
    __m256 to = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0xDD)), 0xD8));
    __m256 be = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0x88)), 0xD8));
    __m256 bo = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0xDD)), 0xD8));
    __m256i i0 =
        _mm256_add_epi32(_mm256_set1_epi32(base + 2 * (int32_t)ow), lane2);
    __m256 m = te;
    __m256i b = i0;
    max2_take8(to, _mm256_add_epi32(i0, one), &m, &b);
    __m256i i2 = _mm256_add_epi32(i0, vw);
    max2_take8(be, i2, &m, &b);
    max2_take8(bo, _mm256_add_epi32(i2, one), &m, &b);
    if (full) {
      _mm256_storeu_ps(y + ow, m);
      _mm256_storeu_si256((__m256i *)(void *)(am + ow), b);
    } else {
      __m256i mo = mask_first(n - ow);
      _mm256_maskstore_ps(y + ow, mo, m);
      _mm256_maskstore_epi32((int *)(am + ow), mo, b);
    }
  }
}

/* tc__cpu_max2_bwd_plane's row, 8 outputs a step, the last one masked; returns
 * the outputs done (all) and clears *ok when an argmax is outside its
 * window. */
static CPU_AVX2 int64_t max2_bwd_row_avx2(float *r0, float *r1, const float *g,
                                          const int32_t *am, int64_t n,
                                          int32_t base, int32_t w,
                                          uint32_t *ok) {
  const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), vw = _mm256_set1_epi32(w),
                vw1 = _mm256_set1_epi32(w + 1);
  __m256i all = _mm256_set1_epi32(-1);
  int64_t ow = 0;
  for (; ow < n; ow += 8) {
    int full = ow + 8 <= n;
    __m256i mo = mask_first(n - ow);
    __m256i raw =
        full ? _mm256_loadu_si256((const __m256i *)(const void *)(am + ow))
             : _mm256_maskload_epi32((const int *)(am + ow), mo);
    __m256i d = _mm256_sub_epi32(
        raw,
        _mm256_add_epi32(_mm256_set1_epi32(base + 2 * (int32_t)ow), lane2));
    __m256 v = full ? _mm256_loadu_ps(g + ow) : _mm256_maskload_ps(g + ow, mo);
    if (!full) /* lanes past the row count as matched */
      d = _mm256_blendv_epi8(_mm256_setzero_si256(), d, mo);
    __m256i c0 = _mm256_cmpeq_epi32(d, _mm256_setzero_si256());
    __m256i c1 = _mm256_cmpeq_epi32(d, one);
    __m256i c2 = _mm256_cmpeq_epi32(d, vw);
    __m256i c3 = _mm256_cmpeq_epi32(d, vw1);
    all = _mm256_and_si256(
        all, _mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3)));
    __m256 te = _mm256_and_ps(_mm256_castsi256_ps(c0), v);
    __m256 to = _mm256_and_ps(_mm256_castsi256_ps(c1), v);
    __m256 be = _mm256_and_ps(_mm256_castsi256_ps(c2), v);
    __m256 bo = _mm256_and_ps(_mm256_castsi256_ps(c3), v);
    /* interleave even and odd columns back into rows */
    __m256 tl = _mm256_unpacklo_ps(te, to), th = _mm256_unpackhi_ps(te, to);
    __m256 bl = _mm256_unpacklo_ps(be, bo), bh = _mm256_unpackhi_ps(be, bo);
    __m256 t0 = _mm256_permute2f128_ps(tl, th, 0x20);
    __m256 t1 = _mm256_permute2f128_ps(tl, th, 0x31);
    __m256 u0 = _mm256_permute2f128_ps(bl, bh, 0x20);
    __m256 u1 = _mm256_permute2f128_ps(bl, bh, 0x31);
    if (full) {
      _mm256_storeu_ps(r0 + 2 * ow, t0);
      _mm256_storeu_ps(r0 + 2 * ow + 8, t1);
      _mm256_storeu_ps(r1 + 2 * ow, u0);
      _mm256_storeu_ps(r1 + 2 * ow + 8, u1);
    } else {
      __m256i ml = mask_first(2 * (n - ow)), mh = mask_first(2 * (n - ow) - 8);
      _mm256_maskstore_ps(r0 + 2 * ow, ml, t0);
      _mm256_maskstore_ps(r0 + 2 * ow + 8, mh, t1);
      _mm256_maskstore_ps(r1 + 2 * ow, ml, u0);
      _mm256_maskstore_ps(r1 + 2 * ow + 8, mh, u1);
    }
  }
  if (_mm256_movemask_ps(_mm256_castsi256_ps(all)) != 0xFF)
    *ok = 0;
  return ow;
}

/* ---- 2x2 stride 2 with AVX-512: a group of j->g row pairs at a time,
 * so that narrow planes (LeNet's 28 and 10 columns) fill the lanes; each
 * output takes its cells in raster order with max2_take's rule, so the
 * results are those of max2_row. */
static CPU_AVX512 inline __mmask16 first_bits(int64_t k) {
  return k >= 16  ? (__mmask16)0xFFFF
         : k <= 0 ? (__mmask16)0
                  : (__mmask16)((1u << k) - 1);
}

static CPU_AVX512 inline void max2_take16(__m512 v, __m512i i, __m512 *m,
                                          __m512i *b) {
  __mmask16 take = _mm512_cmp_ps_mask(v, *m, _CMP_GT_OQ) |
                   _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  *m = _mm512_mask_mov_ps(*m, take, v);
  *b = _mm512_mask_mov_epi32(*b, take, i);
}

/* One corner of every 2x2 window of up to 64 floats r0..r3: permutation p
 * over the pair (r0, r1), lanes in hi from (r2, r3) instead. */
static CPU_AVX512 inline __m512 max2_corner(__mmask16 hi, __m512i p, __m512 r0,
                                            __m512 r1, __m512 r2, __m512 r3) {
  return _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(r0, p, r1),
                              _mm512_permutex2var_ps(r2, p, r3));
}

/* Rows 0 .. fh-1 of a plane (full windows, out_w == w/2). */
static CPU_AVX512 void max2_plane_avx512(const pool_job *j,
                                         const float *restrict x,
                                         float *restrict y,
                                         int32_t *restrict am, int64_t fh) {
  int64_t w = j->a->w, ow = w / 2, g = j->g;
  __m512i p0 = _mm512_loadu_si512(j->perm[0]),
          p1 = _mm512_loadu_si512(j->perm[1]);
  __m512i p2 = _mm512_loadu_si512(j->perm[2]),
          p3 = _mm512_loadu_si512(j->perm[3]);
  __m512i lb = _mm512_loadu_si512(j->lane_base);
  __m512i one = _mm512_set1_epi32(1), vw = _mm512_set1_epi32((int32_t)w);
  for (int64_t oh = 0; oh < fh; oh += g) {
    int64_t gv = fh - oh < g ? fh - oh : g, nf = 2 * w * gv;
    const float *src = x + 2 * w * oh;
    __m512 r0 = _mm512_maskz_loadu_ps(first_bits(nf), src);
    __m512 r1 = _mm512_maskz_loadu_ps(first_bits(nf - 16), src + 16);
    __m512 r2 = _mm512_maskz_loadu_ps(first_bits(nf - 32), src + 32);
    __m512 r3 = _mm512_maskz_loadu_ps(first_bits(nf - 48), src + 48);
    __m512 tl = max2_corner(j->perm_hi[0], p0, r0, r1, r2, r3);
    __m512 tr = max2_corner(j->perm_hi[1], p1, r0, r1, r2, r3);
    __m512 bl = max2_corner(j->perm_hi[2], p2, r0, r1, r2, r3);
    __m512 br = max2_corner(j->perm_hi[3], p3, r0, r1, r2, r3);
    __m512i i0 = _mm512_add_epi32(lb, _mm512_set1_epi32((int32_t)(2 * w * oh)));
    __m512 m = tl;
    __m512i b = i0;
    max2_take16(tr, _mm512_add_epi32(i0, one), &m, &b);
    __m512i i2 = _mm512_add_epi32(i0, vw);
    max2_take16(bl, i2, &m, &b);
    max2_take16(br, _mm512_add_epi32(i2, one), &m, &b);
    __mmask16 mo = first_bits(gv * ow);
    _mm512_mask_storeu_ps(y + ow * oh, mo, m);
    _mm512_mask_storeu_epi32(am + ow * oh, mo, b);
  }
}

/* tc__cpu_max2_bwd_plane for a plane with w <= 32 (h, w even): returns 0 as
 * soon as an argmax lies outside its window. */
static CPU_AVX512 int max2_bwd_plane_avx512(const pool_job *j,
                                            float *restrict dx,
                                            const float *restrict dy,
                                            const int32_t *restrict am) {
  int64_t w = j->a->w, ow = w / 2, g = j->g, fh = j->a->out_h;
  __m512i lb = _mm512_loadu_si512(j->lane_base);
  __m512i one = _mm512_set1_epi32(1), vw = _mm512_set1_epi32((int32_t)w),
          vw1 = _mm512_set1_epi32((int32_t)w + 1);
  __m512i v0 = _mm512_loadu_si512(j->inv[0]),
          v1 = _mm512_loadu_si512(j->inv[1]);
  __m512i v2 = _mm512_loadu_si512(j->inv[2]),
          v3 = _mm512_loadu_si512(j->inv[3]);
  for (int64_t oh = 0; oh < fh; oh += g) {
    int64_t gv = fh - oh < g ? fh - oh : g, nf = 2 * w * gv;
    __mmask16 ml = first_bits(gv * ow);
    __m512 gr = _mm512_maskz_loadu_ps(ml, dy + ow * oh);
    __m512i d = _mm512_sub_epi32(
        _mm512_maskz_loadu_epi32(ml, am + ow * oh),
        _mm512_add_epi32(lb, _mm512_set1_epi32((int32_t)(2 * w * oh))));
    __mmask16 c0 = _mm512_cmpeq_epi32_mask(d, _mm512_setzero_si512());
    __mmask16 c1 = _mm512_cmpeq_epi32_mask(d, one);
    __mmask16 c2 = _mm512_cmpeq_epi32_mask(d, vw);
    __mmask16 c3 = _mm512_cmpeq_epi32_mask(d, vw1);
    if ((__mmask16)((c0 | c1 | c2 | c3) & ml) != ml)
      return 0;
    __m512 te = _mm512_maskz_mov_ps(c0, gr), to = _mm512_maskz_mov_ps(c1, gr);
    __m512 be = _mm512_maskz_mov_ps(c2, gr), bo = _mm512_maskz_mov_ps(c3, gr);
    float *dst = dx + 2 * w * oh;
    _mm512_mask_storeu_ps(
        dst, first_bits(nf),
        _mm512_mask_blend_ps(j->inv_top[0], _mm512_permutex2var_ps(be, v0, bo),
                             _mm512_permutex2var_ps(te, v0, to)));
    _mm512_mask_storeu_ps(
        dst + 16, first_bits(nf - 16),
        _mm512_mask_blend_ps(j->inv_top[1], _mm512_permutex2var_ps(be, v1, bo),
                             _mm512_permutex2var_ps(te, v1, to)));
    _mm512_mask_storeu_ps(
        dst + 32, first_bits(nf - 32),
        _mm512_mask_blend_ps(j->inv_top[2], _mm512_permutex2var_ps(be, v2, bo),
                             _mm512_permutex2var_ps(te, v2, to)));
    _mm512_mask_storeu_ps(
        dst + 48, first_bits(nf - 48),
        _mm512_mask_blend_ps(j->inv_top[3], _mm512_permutex2var_ps(be, v3, bo),
                             _mm512_permutex2var_ps(te, v3, to)));
  }
  return 1;
}
#endif

void tc__cpu_maxpool2_fwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t w = a->w, fh = a->h / 2, fw = a->w / 2;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * j->hw;
    float *restrict y = a->y + p * j->ohw;
    int32_t *restrict am = a->argmax + p * j->ohw;
#if CPU_X86
    if (j->g) { /* out_w == fw: no half window on the right */
      max2_plane_avx512(j, x, y, am, fh);
      for (int64_t oh = fh; oh < a->out_h; oh++)
        for (int64_t ow = 0; ow < a->out_w; ow++)
          tc__cpu_maxpool_one(a, x, y, am, oh, ow);
      continue;
    }
#endif
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      if (oh >= fh) { /* ceil mode: a last half window */
        for (int64_t ow = 0; ow < a->out_w; ow++)
          tc__cpu_maxpool_one(a, x, y, am, oh, ow);
        continue;
      }
      const float *r0 = x + 2 * oh * w, *r1 = r0 + w;
      float *yr = y + oh * a->out_w;
      int32_t *ar = am + oh * a->out_w;
      int32_t base = (int32_t)(2 * oh * w);
#if CPU_X86
      if (j->avx2)
        max2_row_avx2(r0, r1, yr, ar, fw, base, (int32_t)w);
      else
#endif
        max2_row(r0, r1, yr, ar, 0, fw, base, (int32_t)w);
      for (int64_t ow = fw; ow < a->out_w; ow++)
        tc__cpu_maxpool_one(a, x, y, am, oh, ow);
    }
  }
}

/* 2x2 stride 2 windows tiling the plane (even h, w), dx overwritten: each
 * output's gradient goes to one of its four cells and the other three get
 * 0, so dx is written once, without clearing it first. Returns 0 (having
 * written part of the plane) when an argmax lies outside its own window;
 * the caller then does the plane the general way. */
int tc__cpu_max2_bwd_plane(const pool_job *j, float *restrict dx,
                           const float *restrict dy,
                           const int32_t *restrict am) {
  const tc_pool2d_args *a = j->a;
  int64_t w = a->w, ow_n = a->out_w;
  uint32_t ok = 1;
#if CPU_X86
  if (j->g)
    return max2_bwd_plane_avx512(j, dx, dy, am);
#endif
  for (int64_t oh = 0; oh < a->out_h; oh++) {
    float *r0 = dx + 2 * oh * w, *r1 = r0 + w;
    const float *g = dy + oh * ow_n;
    const int32_t *ar = am + oh * ow_n;
    int64_t ow = 0;
#if CPU_X86
    if (j->avx2)
      ow = max2_bwd_row_avx2(r0, r1, g, ar, ow_n, (int32_t)(2 * oh * w),
                             (int32_t)w, &ok);
#endif
    for (; ow < ow_n; ow++) {
      int32_t d = ar[ow] - (int32_t)(2 * oh * w + 2 * ow);
      float v = g[ow];
      r0[2 * ow] = d == 0 ? v : 0.f;
      r0[2 * ow + 1] = d == 1 ? v : 0.f;
      r1[2 * ow] = d == w ? v : 0.f;
      r1[2 * ow + 1] = d == w + 1 ? v : 0.f;
      ok &= d == 0 || d == 1 || d == w || d == w + 1;
    }
  }
  return (int)ok;
}
