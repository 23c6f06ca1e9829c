/*
 * pool2d.c - the CPU backend's pooling: max pooling with a saved argmax,
 * average pooling (torch.nn.MaxPool2d / AvgPool2d, dilation 1), and global
 * average pooling, forward and backward. NCHW, contiguous.
 *
 * Semantics follow PyTorch's CPU kernels exactly:
 *  - out_h/out_w come from the caller; they must be PyTorch's floor- or
 *    ceil-mode size, and pad <= kernel/2, so every window holds at least one
 *    real cell (PyTorch rejects the other cases too).
 *  - max: padded cells are never chosen; the first maximum in raster order
 *    wins; a NaN is taken as the maximum (PyTorch's `val > max || isnan`,
 *    so the last NaN of a window wins). argmax is the index in the h*w plane.
 *  - average: divisor = window clipped to the padded bounds [-pad, h+pad)
 *    when count_include_pad, else the number of real cells in the window
 *    (so a ceil-mode window that runs past the padded edge divides by less).
 *  - backward scatters dy through the same windows; without `accumulate`
 *    each dx plane is cleared first, as overlapping windows add into it.
 *
 * Work is split over (n*c) planes in blocks whose size depends only on the
 * shapes; every plane is computed by one task in a fixed order, so results
 * are the same bits whatever the thread count. Nothing here allocates.
 */
#include <math.h>
#include <string.h>

#include "../op_check.h"
#include "cpu.h"

/* Planes are grouped into tasks of at least this many elements (input plus
 * output) so small planes do not cost one task each. */
#define POOL_TASK_ELEMS 16384

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

static int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}
static int64_t max64(int64_t x, int64_t y) {
  return x > y ? x : y;
}

static void pool_job_init(pool_job *j, const tc_pool2d_args *a) {
  j->a = a;
  j->planes = a->n * a->c;
  j->hw = a->h * a->w;
  j->ohw = a->out_h * a->out_w;
  int64_t per = POOL_TASK_ELEMS / (j->hw + j->ohw);
  j->per_task = per < 1 ? 1 : per;
  atomic_init(&j->bad, 0);
  j->k2 = a->kh == 2 && a->kw == 2 && a->stride_h == 2 && a->stride_w == 2 &&
          a->pad_h == 0 && a->pad_w == 0;
  j->avx2 = tc__cpu_isa() >= CPU_ISA_AVX2;
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

static int64_t pool_tasks(const pool_job *j) {
  return (j->planes + j->per_task - 1) / j->per_task;
}

/* Window of output (oh, ow): real cells [h0,h1) x [w0,w1). */
#define POOL_WINDOW(a, oh, ow)                                                 \
  int64_t hs_ = (oh) * (a)->stride_h - (a)->pad_h;                             \
  int64_t ws_ = (ow) * (a)->stride_w - (a)->pad_w;                             \
  int64_t h0 = max64(hs_, 0), h1 = min64(hs_ + (a)->kh, (a)->h);               \
  int64_t w0 = max64(ws_, 0), w1 = min64(ws_ + (a)->kw, (a)->w)

/* One output of max pooling, windows clipped to the input. */
static void maxpool_one(const tc_pool2d_args *a, const float *restrict x,
                        float *restrict y, int32_t *restrict am, int64_t oh,
                        int64_t ow) {
  POOL_WINDOW(a, oh, ow);
  int64_t best = h0 * a->w + w0;
  float m = -INFINITY;
  for (int64_t ih = h0; ih < h1; ih++)
    for (int64_t iw = w0; iw < w1; iw++) {
      float v = x[ih * a->w + iw];
      if (v > m || isnan(v)) {
        m = v;
        best = ih * a->w + iw;
      }
    }
  y[oh * a->out_w + ow] = m;
  am[oh * a->out_w + ow] = (int32_t)best;
}

/* ---- 2x2 stride 2 without padding (LeNet, ResNet shortcut A) ----
 * Output (oh, ow) reads cells r0[2ow], r0[2ow+1], r1[2ow], r1[2ow+1] in
 * raster order with r0 = row 2oh, r1 = row 2oh+1, and keeps maxpool_one's
 * rule: a later cell wins when it is greater or NaN. Only full windows
 * (ow < w/2, oh < h/2) come here; a ceil-mode edge goes to maxpool_one. */
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
#include <immintrin.h>

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

/* max2_bwd_plane's row, 8 outputs a step, the last one masked; returns
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
#define POOL_AVX512                                                            \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma")))

static POOL_AVX512 inline __mmask16 first_bits(int64_t k) {
  return k >= 16  ? (__mmask16)0xFFFF
         : k <= 0 ? (__mmask16)0
                  : (__mmask16)((1u << k) - 1);
}

static POOL_AVX512 inline void max2_take16(__m512 v, __m512i i, __m512 *m,
                                           __m512i *b) {
  __mmask16 take = _mm512_cmp_ps_mask(v, *m, _CMP_GT_OQ) |
                   _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  *m = _mm512_mask_mov_ps(*m, take, v);
  *b = _mm512_mask_mov_epi32(*b, take, i);
}

/* One corner of every 2x2 window of up to 64 floats r0..r3: permutation p
 * over the pair (r0, r1), lanes in hi from (r2, r3) instead. */
static POOL_AVX512 inline __m512 max2_corner(__mmask16 hi, __m512i p, __m512 r0,
                                             __m512 r1, __m512 r2, __m512 r3) {
  return _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(r0, p, r1),
                              _mm512_permutex2var_ps(r2, p, r3));
}

/* Rows 0 .. fh-1 of a plane (full windows, out_w == w/2). */
static POOL_AVX512 void max2_plane_avx512(const pool_job *j,
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

/* max2_bwd_plane for a plane with w <= 32 (h, w even): returns 0 as soon
 * as an argmax lies outside its window. */
static POOL_AVX512 int max2_bwd_plane_avx512(const pool_job *j,
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

static void maxpool2_fwd_task(void *arg, int64_t t) {
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
          maxpool_one(a, x, y, am, oh, ow);
      continue;
    }
#endif
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      if (oh >= fh) { /* ceil mode: a last half window */
        for (int64_t ow = 0; ow < a->out_w; ow++)
          maxpool_one(a, x, y, am, oh, ow);
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
        maxpool_one(a, x, y, am, oh, ow);
    }
  }
}

/* Outputs whose windows lie inside the input horizontally are done a row
 * at a time: window cells outermost, outputs innermost, so the running
 * maxima of neighbouring outputs are independent (they pipeline). Each
 * output still sees its cells in raster order, so the result is that of
 * maxpool_one. */
static void maxpool_fwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t sw = a->stride_w, pw = a->pad_w, kw = a->kw, w = a->w;
  /* interior columns: ow*sw - pw >= 0 and ow*sw - pw + kw <= w */
  int64_t lo = min64((pw + sw - 1) / sw, a->out_w);
  int64_t hi =
      w + pw - kw < 0 ? lo : max64(min64((w + pw - kw) / sw + 1, a->out_w), lo);
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * j->hw;
    float *restrict y = a->y + p * j->ohw;
    int32_t *restrict am = a->argmax + p * j->ohw;
    for (int64_t oh = 0; oh < a->out_h; oh++) {
      for (int64_t ow = 0; ow < lo; ow++)
        maxpool_one(a, x, y, am, oh, ow);
      for (int64_t ow = hi; ow < a->out_w; ow++)
        maxpool_one(a, x, y, am, oh, ow);
      if (lo == hi)
        continue;
      int64_t hs = oh * a->stride_h - a->pad_h;
      int64_t h0 = max64(hs, 0), h1 = min64(hs + a->kh, a->h);
      float *restrict yr = y + oh * a->out_w;
      int32_t *restrict ar = am + oh * a->out_w;
      for (int64_t ow = lo; ow < hi; ow++) {
        yr[ow] = -INFINITY;
        ar[ow] = (int32_t)(h0 * w + ow * sw - pw);
      }
      for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t jw = 0; jw < kw; jw++) {
          int64_t off = ih * w - pw + jw; /* + ow*sw >= 0 */
          for (int64_t ow = lo; ow < hi; ow++) {
            float v = x[off + ow * sw], m = yr[ow];
            /* select by masks: compilers turn a ?: here into branches,
             * which mispredict on real data; a NaN is taken */
            uint32_t take = -(uint32_t)((v > m) | (v != v)), vb, mb;
            memcpy(&vb, &v, 4);
            memcpy(&mb, &m, 4);
            mb = (vb & take) | (mb & ~take);
            memcpy(&yr[ow], &mb, 4);
            int32_t idx = (int32_t)(off + ow * sw);
            ar[ow] =
                (int32_t)(((uint32_t)idx & take) | ((uint32_t)ar[ow] & ~take));
          }
        }
    }
  }
}

/* Backward pre-pass: every argmax must lie in the plane, or dx would be
 * written out of bounds; checked before anything is written. */
static void maxpool_check_task(void *arg, int64_t t) {
  pool_job *j = arg;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  const int32_t *am = j->a->argmax + t * j->per_task * j->ohw;
  int64_t n = (p1 - t * j->per_task) * j->ohw;
  /* one unsigned compare finds both sides; lanes keep it vectorisable */
  uint32_t hw = (uint32_t)j->hw, bad = 0, l[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      l[k] |= (uint32_t)am[i + k] >= hw;
  for (; i < n; i++)
    bad |= (uint32_t)am[i] >= hw;
  for (int k = 0; k < 8; k++)
    bad |= l[k];
  if (bad)
    atomic_store(&j->bad, 1);
}

/* 2x2 stride 2 windows tiling the plane (even h, w), dx overwritten: each
 * output's gradient goes to one of its four cells and the other three get
 * 0, so dx is written once, without clearing it first. Returns 0 (having
 * written part of the plane) when an argmax lies outside its own window;
 * the caller then does the plane the general way. */
static int max2_bwd_plane(const pool_job *j, float *restrict dx,
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

static void maxpool_bwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    float *restrict dx = a->dx + p * j->hw;
    const float *restrict dy = a->dy + p * j->ohw;
    const int32_t *restrict am = a->argmax + p * j->ohw;
    if (j->k2 && !a->accumulate && a->h == 2 * a->out_h &&
        a->w == 2 * a->out_w && max2_bwd_plane(j, dx, dy, am))
      continue;
    if (!a->accumulate)
      memset(dx, 0, (size_t)j->hw * sizeof *dx);
    for (int64_t o = 0; o < j->ohw; o++)
      dx[am[o]] += dy[o];
  }
}

/* PyTorch's divisor: the window clipped to the padded bounds, or the real
 * cells only. */
static int64_t avg_divisor(const tc_pool2d_args *a, int64_t oh, int64_t ow,
                           int64_t real) {
  if (!a->count_include_pad)
    return real;
  int64_t hs = oh * a->stride_h - a->pad_h, ws = ow * a->stride_w - a->pad_w;
  int64_t he = min64(hs + a->kh, a->h + a->pad_h);
  int64_t we = min64(ws + a->kw, a->w + a->pad_w);
  return (he - hs) * (we - ws);
}

static void avgpool_fwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * j->hw;
    float *restrict y = a->y + p * j->ohw;
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        POOL_WINDOW(a, oh, ow);
        int64_t real = (h1 - h0) * (w1 - w0);
        if (real <= 0) { /* cannot happen with checked sizes */
          y[oh * a->out_w + ow] = 0.f;
          continue;
        }
        double s = 0;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++)
            s += x[ih * a->w + iw];
        y[oh * a->out_w + ow] =
            (float)(s / (double)avg_divisor(a, oh, ow, real));
      }
  }
}

static void avgpool_bwd_task(void *arg, int64_t t) {
  const pool_job *j = arg;
  const tc_pool2d_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    float *restrict dx = a->dx + p * j->hw;
    const float *restrict dy = a->dy + p * j->ohw;
    if (!a->accumulate)
      memset(dx, 0, (size_t)j->hw * sizeof *dx);
    for (int64_t oh = 0; oh < a->out_h; oh++)
      for (int64_t ow = 0; ow < a->out_w; ow++) {
        POOL_WINDOW(a, oh, ow);
        int64_t real = (h1 - h0) * (w1 - w0);
        if (real <= 0)
          continue;
        float g = dy[oh * a->out_w + ow] / (float)avg_divisor(a, oh, ow, real);
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++)
            dx[ih * a->w + iw] += g;
      }
  }
}

tc_status tc__cpu_maxpool2d_fwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_maxpool2d_fwd", TC__OP_MAXPOOL2D_FWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j),
                       j.k2 ? maxpool2_fwd_task : maxpool_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_maxpool2d_bwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_maxpool2d_bwd", TC__OP_MAXPOOL2D_BWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), maxpool_check_task, &j);
  if (atomic_load(&j.bad))
    return tc__error(TC_EINVAL,
                     "cpu_maxpool2d_bwd: argmax holds an index outside the "
                     "%lldx%lld plane",
                     (long long)a->h, (long long)a->w);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), maxpool_bwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_avgpool2d_fwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_avgpool2d_fwd", TC__OP_AVGPOOL2D_FWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), avgpool_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_avgpool2d_bwd(void *ctx, const tc_pool2d_args *a) {
  tc_status st =
      tc__check_pool2d_args(ctx, a, "cpu_avgpool2d_bwd", TC__OP_AVGPOOL2D_BWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  pool_job j;
  pool_job_init(&j, a);
  tc__cpu_parallel_for(ctx, pool_tasks(&j), avgpool_bwd_task, &j);
  return TC_OK;
}

/* ---- global average pooling ---- */

typedef struct gap_job {
  const tc_gap_args *a;
  int64_t planes, per_task;
} gap_job;

static void gap_job_init(gap_job *j, const tc_gap_args *a) {
  j->a = a;
  j->planes = a->n * a->c;
  int64_t per = POOL_TASK_ELEMS / a->spatial;
  j->per_task = per < 1 ? 1 : per;
}

static void gap_fwd_task(void *arg, int64_t t) {
  const gap_job *j = arg;
  const tc_gap_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    const float *restrict x = a->x + p * a->spatial;
    double s = 0;
    for (int64_t i = 0; i < a->spatial; i++)
      s += x[i];
    a->y[p] = (float)(s / (double)a->spatial);
  }
}

static void gap_bwd_task(void *arg, int64_t t) {
  const gap_job *j = arg;
  const tc_gap_args *a = j->a;
  int64_t p1 = min64((t + 1) * j->per_task, j->planes);
  for (int64_t p = t * j->per_task; p < p1; p++) {
    float *restrict dx = a->dx + p * a->spatial;
    float g = a->dy[p] / (float)a->spatial;
    if (a->accumulate)
      for (int64_t i = 0; i < a->spatial; i++)
        dx[i] += g;
    else
      for (int64_t i = 0; i < a->spatial; i++)
        dx[i] = g;
  }
}

tc_status tc__cpu_global_avgpool_fwd(void *ctx, const tc_gap_args *a) {
  tc_status st = tc__check_gap_args(ctx, a, "cpu_global_avgpool_fwd",
                                    TC__OP_GLOBAL_AVGPOOL_FWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  gap_job j;
  gap_job_init(&j, a);
  tc__cpu_parallel_for(ctx, (j.planes + j.per_task - 1) / j.per_task,
                       gap_fwd_task, &j);
  return TC_OK;
}

tc_status tc__cpu_global_avgpool_bwd(void *ctx, const tc_gap_args *a) {
  tc_status st = tc__check_gap_args(ctx, a, "cpu_global_avgpool_bwd",
                                    TC__OP_GLOBAL_AVGPOOL_BWD);
  if (st != TC_OK || a->n == 0 || a->c == 0)
    return st;
  gap_job j;
  gap_job_init(&j, a);
  tc__cpu_parallel_for(ctx, (j.planes + j.per_task - 1) / j.per_task,
                       gap_bwd_task, &j);
  return TC_OK;
}
