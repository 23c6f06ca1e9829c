/*
 * eltwise.c - the CPU backend's elementwise ops over n contiguous floats
 * (relu forward and backward, add, scale, axpy, fill), the per-channel bias
 * add and bias gradient, and the strided 4-D copy.
 *
 * Meanings are in tinycnn_backend.h beside each slot. As in the CUDA
 * backend: `fill` stores alpha's bit pattern (the core fills int32 tensors
 * through it) and a NULL `b` in `add` counts as zeros. In the elementwise
 * ops a buffer read and the buffer written must be the same (in place) or
 * disjoint; copy4d's src and dst must not overlap.
 *
 * Threading: elementwise work is cut into fixed blocks of ELT_BLOCK
 * elements, bias work into fixed blocks of rows or channels; every split
 * depends on the sizes only. bias_grad sums each channel in double in a
 * fixed order (images ascending, then the row in four interleaved lanes),
 * so its bits never depend on the thread count.
 */
#include <string.h>

#include "../op_check.h"
#include "cpu.h"
#include "cpu_simd.h"

/* Elements per task for the streaming ops (64 KiB of floats). */
#define ELT_BLOCK ((int64_t)16384)
/* bias_grad: about this many elements per channel block before it is worth
 * giving channels their own task. */
#define BIAS_GRAD_MIN_WORK ((int64_t)4096)

typedef enum elt_op {
  ELT_RELU_FWD,
  ELT_RELU_BWD,
  ELT_ADD,
  ELT_SCALE,
  ELT_AXPY,
  ELT_FILL
} elt_op;

typedef struct elt_job {
  const tc_eltwise_args *a;
  elt_op op;
  uint32_t bits; /* fill */
  int avx2;
} elt_job;

/* uint32 stores that may alias the float (or int32) data they overwrite */
typedef uint32_t __attribute__((may_alias)) elt_u32;

static void relu_fwd_range(const float *a, float *y, int64_t n) {
  if (a == y) {
    for (int64_t i = 0; i < n; i++)
      y[i] = cpu_relu1(y[i]);
    return;
  }
  const float *restrict pa = a;
  float *restrict py = y;
  for (int64_t i = 0; i < n; i++)
    py[i] = cpu_relu1(pa[i]);
}

/* a: forward output, b: dy; y may be either of them. a > 0 is false for
 * NaN: a NaN output passes no gradient, as PyTorch's threshold_backward. */
static void relu_bwd_range(const float *a, const float *b, float *y,
                           int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float bv = b[i]; /* read always: lets the compiler select, not branch */
    y[i] = a[i] > 0.f ? bv : 0.f;
  }
}

static void add_range(const float *a, const float *b, float *y, int64_t n,
                      float alpha, float beta) {
  if (!b) {
    for (int64_t i = 0; i < n; i++)
      y[i] = alpha * a[i];
  } else if (a != y && b != y) {
    const float *restrict pa = a, *restrict pb = b;
    float *restrict py = y;
    for (int64_t i = 0; i < n; i++)
      py[i] = alpha * pa[i] + beta * pb[i];
  } else {
    for (int64_t i = 0; i < n; i++)
      y[i] = alpha * a[i] + beta * b[i];
  }
}

static void scale_range(const float *a, float *y, int64_t n, float alpha) {
  if (a == y) {
    for (int64_t i = 0; i < n; i++)
      y[i] *= alpha;
    return;
  }
  const float *restrict pa = a;
  float *restrict py = y;
  for (int64_t i = 0; i < n; i++)
    py[i] = alpha * pa[i];
}

static void axpy_range(const float *a, float *y, int64_t n, float alpha) {
  if (a == y) {
    for (int64_t i = 0; i < n; i++)
      y[i] += alpha * y[i];
    return;
  }
  const float *restrict pa = a;
  float *restrict py = y;
  for (int64_t i = 0; i < n; i++)
    py[i] += alpha * pa[i];
}

/* ---- AVX2 variants: the same operations, element by element, as the
 * portable loops above (no FMA), so the bits do not depend on the path. Each
 * 8-wide block loads before it stores, so in-place calls stay correct. */
#if CPU_X86
#include <immintrin.h>

/* cpu_relu1 on 8 lanes: the lanes not <= 0 (NLE_UQ: true for NaN) are
 * kept, the others become +0; max_ps would return 0 for NaN. */
static CPU_AVX2 inline __m256 relu8(__m256 x) {
  return _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NLE_UQ), x);
}

static CPU_AVX2 void relu_fwd_avx2(const float *a, float *y, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 v0 = relu8(_mm256_loadu_ps(a + i));
    __m256 v1 = relu8(_mm256_loadu_ps(a + i + 8));
    __m256 v2 = relu8(_mm256_loadu_ps(a + i + 16));
    __m256 v3 = relu8(_mm256_loadu_ps(a + i + 24));
    _mm256_storeu_ps(y + i, v0);
    _mm256_storeu_ps(y + i + 8, v1);
    _mm256_storeu_ps(y + i + 16, v2);
    _mm256_storeu_ps(y + i + 24, v3);
  }
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, relu8(_mm256_loadu_ps(a + i)));
  for (; i < n; i++)
    y[i] = cpu_relu1(a[i]);
}

static CPU_AVX2 void relu_bwd_avx2(const float *a, const float *b, float *y,
                                   int64_t n) {
  __m256 z = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 m0 = _mm256_cmp_ps(_mm256_loadu_ps(a + i), z, _CMP_GT_OQ);
    __m256 m1 = _mm256_cmp_ps(_mm256_loadu_ps(a + i + 8), z, _CMP_GT_OQ);
    __m256 v0 = _mm256_and_ps(m0, _mm256_loadu_ps(b + i));
    __m256 v1 = _mm256_and_ps(m1, _mm256_loadu_ps(b + i + 8));
    _mm256_storeu_ps(y + i, v0);
    _mm256_storeu_ps(y + i + 8, v1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 m0 = _mm256_cmp_ps(_mm256_loadu_ps(a + i), z, _CMP_GT_OQ);
    _mm256_storeu_ps(y + i, _mm256_and_ps(m0, _mm256_loadu_ps(b + i)));
  }
  for (; i < n; i++) {
    float bv = b[i];
    y[i] = a[i] > 0.f ? bv : 0.f;
  }
}

static CPU_AVX2 void add_avx2(const float *a, const float *b, float *y,
                              int64_t n, float alpha, float beta) {
  __m256 al = _mm256_set1_ps(alpha), be = _mm256_set1_ps(beta);
  int64_t i = 0;
  if (!b) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_mul_ps(al, _mm256_loadu_ps(a + i)));
    for (; i < n; i++)
      y[i] = alpha * a[i];
    return;
  }
  for (; i + 8 <= n; i += 8) {
    __m256 va = _mm256_mul_ps(al, _mm256_loadu_ps(a + i));
    __m256 vb = _mm256_mul_ps(be, _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(y + i, _mm256_add_ps(va, vb));
  }
  for (; i < n; i++)
    y[i] = alpha * a[i] + beta * b[i];
}

static CPU_AVX2 void scale_avx2(const float *a, float *y, int64_t n,
                                float alpha) {
  __m256 al = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(al, _mm256_loadu_ps(a + i)));
  for (; i < n; i++)
    y[i] = alpha * a[i];
}

static CPU_AVX2 void axpy_avx2(const float *a, float *y, int64_t n,
                               float alpha) {
  __m256 al = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 t = _mm256_mul_ps(al, _mm256_loadu_ps(a + i));
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), t));
  }
  for (; i < n; i++)
    y[i] += alpha * a[i];
}

static CPU_AVX2 void fill_avx2(float *y, int64_t n, uint32_t bits) {
  __m256 v = _mm256_castsi256_ps(_mm256_set1_epi32((int)bits));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, v);
  elt_u32 *p = (elt_u32 *)(void *)y;
  for (; i < n; i++)
    p[i] = bits;
}

/* y[i] += b over one row */
static CPU_AVX2 void add_scalar_avx2(float *y, int64_t n, float b) {
  __m256 vb = _mm256_set1_ps(b);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), vb));
  for (; i < n; i++)
    y[i] += b;
}

/* d[i] += s[i] */
static CPU_AVX2 void acc_avx2(float *d, const float *s, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_loadu_ps(s + i)));
  for (; i < n; i++)
    d[i] += s[i];
}

/* row_sum's lanes: lane l sums x[i] for i % 4 == l in double, in order,
 * then (l0 + l1) + (l2 + l3); the same bits as the portable loop. */
static CPU_AVX2 double row_sum_avx2(const float *x, int64_t len) {
  __m256d s = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= len; i += 4)
    s = _mm256_add_pd(s, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
  double l[4];
  _mm256_storeu_pd(l, s);
  for (; i < len; i++)
    l[0] += x[i];
  return (l[0] + l[1]) + (l[2] + l[3]);
}
#endif

static void elt_task(void *arg, int64_t t) {
  const elt_job *j = arg;
  const tc_eltwise_args *a = j->a;
  int64_t lo = t * ELT_BLOCK;
  int64_t len = a->n - lo < ELT_BLOCK ? a->n - lo : ELT_BLOCK;
  const float *pa = a->a ? a->a + lo : NULL;
  const float *pb = a->b ? a->b + lo : NULL;
  float *py = a->y + lo;
#if CPU_X86
  if (j->avx2) {
    switch (j->op) {
    case ELT_RELU_FWD:
      relu_fwd_avx2(pa, py, len);
      return;
    case ELT_RELU_BWD:
      relu_bwd_avx2(pa, pb, py, len);
      return;
    case ELT_ADD:
      add_avx2(pa, pb, py, len, a->alpha, a->beta);
      return;
    case ELT_SCALE:
      scale_avx2(pa, py, len, a->alpha);
      return;
    case ELT_AXPY:
      axpy_avx2(pa, py, len, a->alpha);
      return;
    case ELT_FILL:
      if (j->bits == 0)
        memset(py, 0, (size_t)len * sizeof *py);
      else
        fill_avx2(py, len, j->bits);
      return;
    }
  }
#endif
  switch (j->op) {
  case ELT_RELU_FWD:
    relu_fwd_range(pa, py, len);
    break;
  case ELT_RELU_BWD:
    relu_bwd_range(pa, pb, py, len);
    break;
  case ELT_ADD:
    add_range(pa, pb, py, len, a->alpha, a->beta);
    break;
  case ELT_SCALE:
    scale_range(pa, py, len, a->alpha);
    break;
  case ELT_AXPY:
    axpy_range(pa, py, len, a->alpha);
    break;
  case ELT_FILL: {
    elt_u32 *p = (elt_u32 *)(void *)py;
    for (int64_t i = 0; i < len; i++)
      p[i] = j->bits;
    break;
  }
  }
}

/* Checks the args of an elementwise op and runs it. */
static tc_status elt_run(void *ctx, const tc_eltwise_args *a, elt_op op,
                         const char *fn, tc__op slot) {
  tc_status st = tc__check_eltwise_args(ctx, a, fn, slot);
  if (st != TC_OK || a->n == 0)
    return st;
  elt_job j = {a, op, 0, tc__cpu_isa() >= CPU_ISA_AVX2};
  if (op == ELT_FILL)
    memcpy(&j.bits, &a->alpha, sizeof j.bits);
  tc__cpu_parallel_for(ctx, (a->n + ELT_BLOCK - 1) / ELT_BLOCK, elt_task, &j);
  return TC_OK;
}

tc_status tc__cpu_relu_fwd(void *ctx, const tc_eltwise_args *a) {
  return elt_run(ctx, a, ELT_RELU_FWD, "cpu_relu_fwd", TC__OP_RELU_FWD);
}

tc_status tc__cpu_relu_bwd(void *ctx, const tc_eltwise_args *a) {
  return elt_run(ctx, a, ELT_RELU_BWD, "cpu_relu_bwd", TC__OP_RELU_BWD);
}

tc_status tc__cpu_add(void *ctx, const tc_eltwise_args *a) {
  return elt_run(ctx, a, ELT_ADD, "cpu_add", TC__OP_ADD);
}

tc_status tc__cpu_scale(void *ctx, const tc_eltwise_args *a) {
  return elt_run(ctx, a, ELT_SCALE, "cpu_scale", TC__OP_SCALE);
}

tc_status tc__cpu_axpy(void *ctx, const tc_eltwise_args *a) {
  return elt_run(ctx, a, ELT_AXPY, "cpu_axpy", TC__OP_AXPY);
}

tc_status tc__cpu_fill(void *ctx, const tc_eltwise_args *a) {
  return elt_run(ctx, a, ELT_FILL, "cpu_fill", TC__OP_FILL);
}

/* ---- per-channel bias ---------------------------------------------------
 * y, dy: (n,c,spatial)  bias, db: (c) */

typedef struct bias_job {
  const tc_bias_args *a;
  int64_t rows; /* n*c rows of `spatial` floats */
  int64_t per;  /* bias_add: rows per task; bias_grad: channels per task */
  int avx2;
} bias_job;

static void bias_add_task(void *arg, int64_t t) {
  const bias_job *j = arg;
  const tc_bias_args *a = j->a;
  int64_t r0 = t * j->per;
  int64_t r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  int64_t sp = a->spatial;
  for (int64_t r = r0; r < r1; r++) {
    float b = a->bias[r % a->c];
    float *restrict y = a->y + r * sp;
#if CPU_X86
    if (j->avx2) {
      add_scalar_avx2(y, sp, b);
      continue;
    }
#endif
    for (int64_t s = 0; s < sp; s++)
      y[s] += b;
  }
}

tc_status tc__cpu_bias_add(void *ctx, const tc_bias_args *a) {
  static const char fn[] = "cpu_bias_add";
  tc_status st = tc__check_bias_args(ctx, a, fn, TC__OP_BIAS_ADD);
  if (st != TC_OK || a->n * a->c * a->spatial == 0)
    return st;
  bias_job j = {a, a->n * a->c, 1, tc__cpu_isa() >= CPU_ISA_AVX2};
  j.per = ELT_BLOCK / a->spatial;
  if (j.per < 1)
    j.per = 1;
  tc__cpu_parallel_for(ctx, (j.rows + j.per - 1) / j.per, bias_add_task, &j);
  return TC_OK;
}

/* Sum of one row in double, four interleaved lanes combined in order. */
static double row_sum(const float *restrict x, int64_t len) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= len; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < len; i++)
    s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

/* Channels [c0, c0+per): image by image, each channel's row sum is added
 * to its double accumulator; memory is read row after row. */
static void bias_grad_task(void *arg, int64_t t) {
  const bias_job *j = arg;
  const tc_bias_args *a = j->a;
  int64_t c0 = t * j->per;
  int64_t cn = a->c - c0 < j->per ? a->c - c0 : j->per;
  int64_t sp = a->spatial;
  double acc[CPU_REDUCE_CHUNKS] = {0};
  for (int64_t i = 0; i < a->n; i++) {
    const float *dy = a->dy + (i * a->c + c0) * sp;
    if (sp == 1) {
      for (int64_t k = 0; k < cn; k++)
        acc[k] += dy[k];
    } else {
      for (int64_t k = 0; k < cn; k++)
#if CPU_X86
        acc[k] +=
            j->avx2 ? row_sum_avx2(dy + k * sp, sp) : row_sum(dy + k * sp, sp);
#else
        acc[k] += row_sum(dy + k * sp, sp);
#endif
    }
  }
  for (int64_t k = 0; k < cn; k++) {
    float s = (float)acc[k];
    a->db[c0 + k] = a->accumulate ? a->db[c0 + k] + s : s;
  }
}

tc_status tc__cpu_bias_grad(void *ctx, const tc_bias_args *a) {
  static const char fn[] = "cpu_bias_grad";
  tc_status st = tc__check_bias_args(ctx, a, fn, TC__OP_BIAS_GRAD);
  if (st != TC_OK || a->c == 0)
    return st;
  /* Channels per task: enough that a task reads BIAS_GRAD_MIN_WORK
   * elements, at most CPU_REDUCE_CHUNKS (the accumulator array). The split
   * follows from the sizes only and does not change any channel's order. */
  bias_job j = {a, a->n * a->c, 1, tc__cpu_isa() >= CPU_ISA_AVX2};
  int64_t per_channel = a->n * a->spatial;
  if (per_channel < BIAS_GRAD_MIN_WORK)
    j.per = per_channel > 0 ? BIAS_GRAD_MIN_WORK / per_channel : a->c;
  if (j.per > CPU_REDUCE_CHUNKS)
    j.per = CPU_REDUCE_CHUNKS;
  if (j.per < 1)
    j.per = 1;
  tc__cpu_parallel_for(ctx, (a->c + j.per - 1) / j.per, bias_grad_task, &j);
  return TC_OK;
}

/* ---- strided 4-D copy ---------------------------------------------------
 * dst[i0,i1,i2,i3] (+)= src[i0,i1,i2,i3], strides in elements. */

typedef struct copy_job {
  const tc_copy4d_args *a;
  int64_t rows; /* shape[0]*shape[1]*shape[2] rows of shape[3] */
  int64_t per;  /* rows per task */
  int avx2;
} copy_job;

static void copy4d_task(void *arg, int64_t t) {
  const copy_job *j = arg;
  const tc_copy4d_args *a = j->a;
  const int64_t *sh = a->shape, *ss = a->src_stride, *ds = a->dst_stride;
  int64_t r0 = t * j->per;
  int64_t r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  int64_t len = sh[3];
  for (int64_t r = r0; r < r1; r++) {
    int64_t i2 = r % sh[2], i1 = (r / sh[2]) % sh[1], i0 = r / (sh[2] * sh[1]);
    const float *s = a->src + i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
    float *d = a->dst + i0 * ds[0] + i1 * ds[1] + i2 * ds[2];
    if (ss[3] == 1 && ds[3] == 1) {
      const float *restrict sc = s;
      float *restrict dc = d;
      if (a->accumulate) {
#if CPU_X86
        if (j->avx2) {
          acc_avx2(dc, sc, len);
          continue;
        }
#endif
        for (int64_t i = 0; i < len; i++)
          dc[i] += sc[i];
      } else
        memcpy(dc, sc, (size_t)len * sizeof *dc);
    } else if (a->accumulate) {
      for (int64_t i = 0; i < len; i++)
        d[i * ds[3]] += s[i * ss[3]];
    } else {
      for (int64_t i = 0; i < len; i++)
        d[i * ds[3]] = s[i * ss[3]];
    }
  }
}

/* True when distinct indices reach distinct dst elements, so rows may be
 * written concurrently: sorted by |stride|, each dimension's stride must
 * pass the whole extent of the smaller ones. */
static int dst_injective(const tc_copy4d_args *a) {
  int64_t st[4], ext[4];
  int m = 0;
  for (int d = 0; d < 4; d++) {
    if (a->shape[d] <= 1)
      continue;
    int64_t s = a->dst_stride[d];
    if (s == INT64_MIN)
      return 0;
    st[m] = s < 0 ? -s : s;
    ext[m] = a->shape[d];
    m++;
  }
  for (int i = 1; i < m; i++) /* insertion sort by stride */
    for (int k = i; k > 0 && st[k] < st[k - 1]; k--) {
      int64_t t = st[k];
      st[k] = st[k - 1], st[k - 1] = t;
      t = ext[k];
      ext[k] = ext[k - 1], ext[k - 1] = t;
    }
  int64_t span = 0; /* largest offset reachable by the smaller dims */
  for (int i = 0; i < m; i++) {
    if (st[i] <= span)
      return 0;
    int64_t reach;
    if (__builtin_mul_overflow(st[i], ext[i] - 1, &reach) ||
        __builtin_add_overflow(span, reach, &span))
      return 0;
  }
  return 1;
}

tc_status tc__cpu_copy4d(void *ctx, const tc_copy4d_args *a) {
  tc_status st = tc__check_copy4d_args(ctx, a, "cpu_copy4d");
  if (st != TC_OK)
    return st;
  int64_t total = a->shape[0] * a->shape[1] * a->shape[2] * a->shape[3];
  if (total == 0)
    return TC_OK;
  copy_job j = {a, total / a->shape[3], 1, tc__cpu_isa() >= CPU_ISA_AVX2};
  j.per = ELT_BLOCK / a->shape[3];
  if (j.per < 1)
    j.per = 1;
  if (!dst_injective(a)) {
    /* repeated destinations: one task, rows in index order */
    copy4d_task(&(copy_job){a, j.rows, j.rows, j.avx2}, 0);
    return TC_OK;
  }
  tc__cpu_parallel_for(ctx, (j.rows + j.per - 1) / j.per, copy4d_task, &j);
  return TC_OK;
}

/* ---- counters ---- */

tc_status tc__cpu_counter_add(void *ctx, const tc_counter_args *a) {
  tc_status st = tc__check_counter_args(ctx, a, "cpu_counter_add");
  if (st != TC_OK)
    return st;
  for (int64_t i = 0; i < a->n; i++)
    a->x[i] = (int64_t)((uint64_t)a->x[i] + (uint64_t)a->delta);
  return TC_OK;
}
