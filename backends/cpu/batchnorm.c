/*
 * batchnorm.c - the CPU backend's batch normalisation over (n, spatial) per
 * channel (torch.nn.BatchNorm1d/2d): training forward, inference forward
 * and the training-mode backward. x, y, dy, dx: (n,c,spatial).
 *
 *  train:  mean, biased var over the n*spatial values of each channel (in
 *          double); save_mean = mean, save_invstd = 1/sqrt(var + eps);
 *          y = (x - mean) * invstd * gamma + beta; when given,
 *          running_mean = (1-m)*running_mean + m*mean and
 *          running_var = (1-m)*running_var + m*var*M/(M-1), M = n*spatial.
 *          M == 1 is an error, as in PyTorch's training mode.
 *  infer:  y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
 *  bwd:    with xhat = (x - save_mean) * save_invstd,
 *          dbeta = sum dy, dgamma = sum dy*xhat,
 *          dx = gamma*invstd * (dy - dbeta/M - xhat*dgamma/M).
 * gamma/beta NULL mean affine off (1 and 0); dgamma/dbeta NULL are not
 * written. `accumulate` adds into dx, dgamma and dbeta.
 *
 * The fused slots (batchnorm_relu_*) run the same passes with an epilogue:
 * forward y = relu(y + residual), backward dy taken as (y > 0) ? dy : 0
 * and stored into dresidual. Their elementwise operations are those of the
 * separate relu/add slots in the same order, so the bits are the same; the
 * ReLU and the residual add cost no pass of their own.
 *
 * Work: channels are taken in blocks. Within a block, the M values of a
 * channel are split into `chunks` fixed ranges of (image, spatial) and the
 * channels into `groups`; a task sums one range of one group, walking
 * image by image over the group's planes, so it reads memory in order
 * (a walk channel by channel jumps a plane stride at each image, which
 * defeats the hardware prefetch). Partial sums go to the caller's stack
 * and are combined in chunk order; then the elementwise pass runs over
 * (image, channel) planes in order: the pool gives each thread one
 * contiguous run of tasks, so a thread applies the images its sums just
 * read (the last planes first, as before, sent them to the other core).
 * Chunk and group counts depend only on the shapes, so results are the
 * same bits whatever the thread count, and nothing here allocates. The
 * forward sums data shifted by the channel's first value, which lies near
 * the mean, so that s2 - s1^2/M does not cancel even for a large mean.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "../op_check.h"
#include "cpu.h"

/* Sizes are bounded by backends/op_check.c (n*c*spatial <= 2^50, far
 * beyond memory), which keeps the chunk arithmetic below exact. */
/* Channels per block (per-channel coefficients on the stack) and (chunk,
 * channel) partial sums per block (16 bytes each, on the stack). */
#define BN_BLOCK_C 512
#define BN_PART_MAX 1024
/* Reduction tasks: about one per BN_TASK_ELEMS values, at most
 * BN_TARGET_TASKS; a task's channel group holds at most BN_GROUP_MAX
 * channels (its lanes live on the task's stack); a chunk has at least
 * BN_CHUNK_MIN values of each channel. */
#define BN_TASK_ELEMS 8192
#define BN_TARGET_TASKS 64
#define BN_GROUP_MAX 32
#define BN_CHUNK_MIN 16
/* Independent partial sums per reduction (in a fixed order): breaks the
 * add latency chain. */
#define BN_LANES 16
/* Elements per task in the elementwise pass. */
#define BN_APPLY_ELEMS 8192
/* Up to this many values in all, a forward batch norm runs its tasks on
 * the calling thread: handing a pass of a few microseconds to the pool
 * costs about as much as the pass (LeNet-BN's fc layers, 15k and 11k
 * values: forward 0.045 -> 0.027 and 0.054 -> 0.018 ms). Not the backward:
 * the layer before then reads a dx one core wrote whole, and on a VM whose
 * cores share no cache its backward lost more than this won (LeNet-BN's
 * fc3 and fc4: +0.06 and +0.03 ms). The tasks and their order are the
 * same, so are the bits. */
#define BN_SERIAL_MAX 32768

typedef struct bn_job {
  const tc_batchnorm_args *a;
  int64_t m;             /* values per channel: n * spatial */
  int64_t c0, cb;        /* current channel block */
  int64_t chunks;        /* ranges of the m values, per block */
  int64_t groups, gsize; /* channel groups of gsize channels, per block */
  double (*part)[2];     /* [chunks][cb]: the two sums */
  int bwd;
  /* elementwise pass, per block channel */
  float *mu;                /* fwd, bwd: the mean subtracted */
  float *alpha, *shift;     /* fwd: y = (x - mu)*alpha + shift */
  float *k, *gmean, *scale; /* bwd */
  int64_t planes, per_task, apply_tasks;
  int isa;
  /* fused epilogue (batchnorm_relu_*): relu after the residual add;
   * backward: mask dy by the forward's output ry, copy it into dres */
  int relu, acc_res;
  const float *res, *ry;
  float *dres;
  /* dres when it is overwritten: the sums pass stores the masked dy there
   * and the dx pass reads it back instead of dy and ry (fewer streams) */
  float *gout;
  /* the ReLU's bits (relu_mask): forward writes them, backward reads
   * them instead of ry; mps bytes per (image, channel) plane */
  uint8_t *mask;
  int64_t mps;
} bn_job;

static int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}

/* tc__cpu_parallel_for, or the tasks in order here for a small forward. */
static void bn_run(void *ctx, const tc_batchnorm_args *a, int bwd,
                   int64_t tasks, cpu_task_fn fn, void *arg) {
  if (!bwd && a->n * a->c * a->spatial <= BN_SERIAL_MAX) {
    for (int64_t t = 0; t < tasks; t++)
      fn(arg, t);
    return;
  }
  tc__cpu_parallel_for(ctx, tasks, fn, arg);
}

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
 * path and the vector variants' tails (relu_fwd's max(v, 0): 0 for NaN,
 * +0 for -0; relu_bwd's mask y > 0, false for NaN). ---- */

/* y = relu((x - mu)*al + sh [+ z]), and mask bits when mk; e0 a multiple
 * of 8 */
static inline void apply_relu_scalar(const float *x, const float *z, float *y,
                                     uint8_t *mk, int64_t e0, int64_t n,
                                     float mu, float al, float sh) {
  for (int64_t e = e0; e < n; e++) {
    float v = (x[e] - mu) * al + sh;
    if (z)
      v = v + z[e];
    y[e] = v > 0.f ? v : 0.f;
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

static void bn_job_init(bn_job *j, const tc_batchnorm_args *a, int bwd) {
  memset(j, 0, sizeof *j);
  j->a = a;
  j->isa = tc__cpu_isa();
  j->m = a->n * a->spatial;
  j->bwd = bwd;
}

/* The split of block [c0, c0+cb): a function of the shapes only. Chunks
 * first (they keep a task's walk contiguous), then channel groups for the
 * tasks still wanted or for the lanes' limit. */
static void bn_block_split(bn_job *j) {
  int64_t cb = j->cb, t = j->m * cb / BN_TASK_ELEMS;
  t = t < 1 ? 1 : min64(t, BN_TARGET_TASKS);
  int64_t k = min64(min64(t, BN_PART_MAX / cb), j->m / BN_CHUNK_MIN);
  j->chunks = k < 1 ? 1 : k;
  int64_t g = (t + j->chunks - 1) / j->chunks;
  if (g < (cb + BN_GROUP_MAX - 1) / BN_GROUP_MAX)
    g = (cb + BN_GROUP_MAX - 1) / BN_GROUP_MAX;
  g = min64(g, cb);
  j->gsize = (cb + g - 1) / g;
  j->groups = (cb + j->gsize - 1) / j->gsize;
}

static void chunk_range(const bn_job *j, int64_t k, int64_t *m0, int64_t *m1) {
  *m0 = j->m * k / j->chunks;
  *m1 = j->m * (k + 1) / j->chunks;
}

/* ---- segment kernels. The AVX2 and AVX-512 variants do the same lanes
 * and operations (no FMA) as the portable loops, so the bits do not depend
 * on the path. A segment's element i goes to lane i % BN_LANES; the tail
 * continues from lane 0. */
#if CPU_X86
#include <immintrin.h>

#define CPU_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))

static CPU_AVX2 void stats_seg_avx2(const float *p, int64_t len, double shift,
                                    double *l1, double *l2) {
  __m256d s = _mm256_set1_pd(shift);
  __m256d a[4], b[4];
  for (int k = 0; k < 4; k++)
    a[k] = _mm256_loadu_pd(l1 + 4 * k), b[k] = _mm256_loadu_pd(l2 + 4 * k);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16)
    for (int k = 0; k < 4; k++) {
      __m256d d =
          _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i + 4 * k)), s);
      a[k] = _mm256_add_pd(a[k], d);
      b[k] = _mm256_add_pd(b[k], _mm256_mul_pd(d, d));
    }
  for (int k = 0; k < 4; k++)
    _mm256_storeu_pd(l1 + 4 * k, a[k]), _mm256_storeu_pd(l2 + 4 * k, b[k]);
  for (int l = 0; i < len; i++, l++) {
    double d = p[i] - shift;
    l1[l] += d;
    l2[l] += d * d;
  }
}

static CPU_AVX512 void stats_seg_512(const float *p, int64_t len, double shift,
                                     double *l1, double *l2) {
  __m512d s = _mm512_set1_pd(shift);
  __m512d a0 = _mm512_loadu_pd(l1), a1 = _mm512_loadu_pd(l1 + 8);
  __m512d b0 = _mm512_loadu_pd(l2), b1 = _mm512_loadu_pd(l2 + 8);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + i)), s);
    __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p + i + 8)), s);
    a0 = _mm512_add_pd(a0, d0);
    a1 = _mm512_add_pd(a1, d1);
    b0 = _mm512_add_pd(b0, _mm512_mul_pd(d0, d0));
    b1 = _mm512_add_pd(b1, _mm512_mul_pd(d1, d1));
  }
  _mm512_storeu_pd(l1, a0), _mm512_storeu_pd(l1 + 8, a1);
  _mm512_storeu_pd(l2, b0), _mm512_storeu_pd(l2 + 8, b1);
  for (int l = 0; i < len; i++, l++) {
    double d = p[i] - shift;
    l1[l] += d;
    l2[l] += d * d;
  }
}

static CPU_AVX2 void grad_seg_avx2(const float *dy, const float *x, int64_t len,
                                   double mu, double *l1, double *l2) {
  __m256d m = _mm256_set1_pd(mu);
  __m256d a[4], b[4];
  for (int k = 0; k < 4; k++)
    a[k] = _mm256_loadu_pd(l1 + 4 * k), b[k] = _mm256_loadu_pd(l2 + 4 * k);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16)
    for (int k = 0; k < 4; k++) {
      __m256d g = _mm256_cvtps_pd(_mm_loadu_ps(dy + i + 4 * k));
      __m256d xc =
          _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * k)), m);
      a[k] = _mm256_add_pd(a[k], g);
      b[k] = _mm256_add_pd(b[k], _mm256_mul_pd(g, xc));
    }
  for (int k = 0; k < 4; k++)
    _mm256_storeu_pd(l1 + 4 * k, a[k]), _mm256_storeu_pd(l2 + 4 * k, b[k]);
  for (int l = 0; i < len; i++, l++) {
    l1[l] += dy[i];
    l2[l] += dy[i] * (x[i] - mu);
  }
}

static CPU_AVX512 void grad_seg_512(const float *dy, const float *x,
                                    int64_t len, double mu, double *l1,
                                    double *l2) {
  __m512d m = _mm512_set1_pd(mu);
  __m512d a0 = _mm512_loadu_pd(l1), a1 = _mm512_loadu_pd(l1 + 8);
  __m512d b0 = _mm512_loadu_pd(l2), b1 = _mm512_loadu_pd(l2 + 8);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    __m512d g0 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i));
    __m512d g1 = _mm512_cvtps_pd(_mm256_loadu_ps(dy + i + 8));
    __m512d x0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), m);
    __m512d x1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)), m);
    a0 = _mm512_add_pd(a0, g0);
    a1 = _mm512_add_pd(a1, g1);
    b0 = _mm512_add_pd(b0, _mm512_mul_pd(g0, x0));
    b1 = _mm512_add_pd(b1, _mm512_mul_pd(g1, x1));
  }
  _mm512_storeu_pd(l1, a0), _mm512_storeu_pd(l1 + 8, a1);
  _mm512_storeu_pd(l2, b0), _mm512_storeu_pd(l2 + 8, b1);
  for (int l = 0; i < len; i++, l++) {
    l1[l] += dy[i];
    l2[l] += dy[i] * (x[i] - mu);
  }
}

/* y = (x - mu)*al + sh; x may be y */
static CPU_AVX2 void apply_avx2(const float *x, float *y, int64_t n, float mu,
                                float al, float sh) {
  __m256 vm = _mm256_set1_ps(mu), va = _mm256_set1_ps(al),
         vs = _mm256_set1_ps(sh);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + e), vm);
    _mm256_storeu_ps(y + e, _mm256_add_ps(_mm256_mul_ps(v, va), vs));
  }
  for (; e < n; e++)
    y[e] = (x[e] - mu) * al + sh;
}

static CPU_AVX512 void apply_512(const float *x, float *y, int64_t n, float mu,
                                 float al, float sh) {
  __m512 vm = _mm512_set1_ps(mu), va = _mm512_set1_ps(al),
         vs = _mm512_set1_ps(sh);
  int64_t e = 0;
  for (; e + 16 <= n; e += 16) {
    __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + e), vm);
    _mm512_storeu_ps(y + e, _mm512_add_ps(_mm512_mul_ps(v, va), vs));
  }
  for (; e < n; e++) /* scalar tail (as dx_512) */
    y[e] = (x[e] - mu) * al + sh;
}

/* dx (+)= (dy - gm - (x - mu)*k) * sc; dy may be dx */
static CPU_AVX2 void dx_avx2(const float *x, const float *dy, float *dx,
                             int64_t n, float mu, float k, float gm, float sc,
                             int acc) {
  __m256 vm = _mm256_set1_ps(mu), vk = _mm256_set1_ps(k),
         vg = _mm256_set1_ps(gm), vs = _mm256_set1_ps(sc);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 xc = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + e), vm), vk);
    __m256 t = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(dy + e), vg), xc);
    t = _mm256_mul_ps(t, vs);
    if (acc)
      t = _mm256_add_ps(_mm256_loadu_ps(dx + e), t);
    _mm256_storeu_ps(dx + e, t);
  }
  if (acc)
    for (; e < n; e++)
      dx[e] += (dy[e] - gm - (x[e] - mu) * k) * sc;
  else
    for (; e < n; e++)
      dx[e] = (dy[e] - gm - (x[e] - mu) * k) * sc;
}

static CPU_AVX512 void dx_512(const float *x, const float *dy, float *dx,
                              int64_t n, float mu, float k, float gm, float sc,
                              int acc) {
  __m512 vm = _mm512_set1_ps(mu), vk = _mm512_set1_ps(k),
         vg = _mm512_set1_ps(gm), vs = _mm512_set1_ps(sc);
  int64_t e = 0;
  for (; e + 16 <= n; e += 16) {
    __m512 xc = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + e), vm), vk);
    __m512 t = _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(dy + e), vg), xc);
    t = _mm512_mul_ps(t, vs);
    if (acc)
      t = _mm512_add_ps(_mm512_loadu_ps(dx + e), t);
    _mm512_storeu_ps(dx + e, t);
  }
  /* scalar tail: masked stores on every plane cost more here */
  if (acc)
    for (; e < n; e++)
      dx[e] += (dy[e] - gm - (x[e] - mu) * k) * sc;
  else
    for (; e < n; e++)
      dx[e] = (dy[e] - gm - (x[e] - mu) * k) * sc;
}

/* ---- fused epilogue kernels: the same operations as apply / grad_seg /
 * dx above plus relu_fwd's max(v, 0) (0 for NaN, +0 for -0), add's sum,
 * and relu_bwd's mask (y > 0, false for NaN). */
static CPU_AVX2 void apply_relu_avx2(const float *x, const float *z, float *y,
                                     uint8_t *mk, int64_t n, float mu, float al,
                                     float sh) {
  __m256 vm = _mm256_set1_ps(mu), va = _mm256_set1_ps(al),
         vs = _mm256_set1_ps(sh), v0 = _mm256_setzero_ps();
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + e), vm);
    v = _mm256_add_ps(_mm256_mul_ps(v, va), vs);
    if (z)
      v = _mm256_add_ps(v, _mm256_loadu_ps(z + e));
    _mm256_storeu_ps(y + e, _mm256_max_ps(v, v0));
    if (mk)
      mk[e >> 3] =
          (uint8_t)_mm256_movemask_ps(_mm256_cmp_ps(v, v0, _CMP_GT_OQ));
  }
  apply_relu_scalar(x, z, y, mk, e, n, mu, al, sh);
}

static CPU_AVX512 void apply_relu_512(const float *x, const float *z, float *y,
                                      uint8_t *mk, int64_t n, float mu,
                                      float al, float sh) {
  __m512 vm = _mm512_set1_ps(mu), va = _mm512_set1_ps(al),
         vs = _mm512_set1_ps(sh), v0 = _mm512_setzero_ps();
  int64_t e = 0;
  for (; e + 16 <= n; e += 16) {
    __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + e), vm);
    v = _mm512_add_ps(_mm512_mul_ps(v, va), vs);
    if (z)
      v = _mm512_add_ps(v, _mm512_loadu_ps(z + e));
    _mm512_storeu_ps(y + e, _mm512_max_ps(v, v0));
    if (mk) {
      uint16_t b = (uint16_t)_mm512_cmp_ps_mask(v, v0, _CMP_GT_OQ);
      memcpy(mk + (e >> 3), &b, 2);
    }
  }
  apply_relu_scalar(x, z, y, mk, e, n, mu, al, sh);
}

static CPU_AVX2 void grad_seg_relu_avx2(const float *dy, const float *ry,
                                        const uint8_t *mp, int64_t mb,
                                        const float *x, int64_t len, double mu,
                                        double *l1, double *l2, float *gout) {
  __m256d m = _mm256_set1_pd(mu);
  __m128 z = _mm_setzero_ps();
  __m128i bit4 = _mm_setr_epi32(1, 2, 4, 8);
  __m256d a[4], b[4];
  for (int k = 0; k < 4; k++)
    a[k] = _mm256_loadu_pd(l1 + 4 * k), b[k] = _mm256_loadu_pd(l2 + 4 * k);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    unsigned bits = mp ? mask16(mp, mb + i) : 0;
    for (int k = 0; k < 4; k++) {
      __m128 mk =
          mp ? _mm_castsi128_ps(_mm_cmpeq_epi32(
                   _mm_and_si128(_mm_set1_epi32((int)(bits >> 4 * k)), bit4),
                   bit4))
             : _mm_cmp_ps(_mm_loadu_ps(ry + i + 4 * k), z, _CMP_GT_OQ);
      __m128 gf = _mm_and_ps(mk, _mm_loadu_ps(dy + i + 4 * k));
      if (gout)
        _mm_storeu_ps(gout + i + 4 * k, gf);
      __m256d g = _mm256_cvtps_pd(gf);
      __m256d xc =
          _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i + 4 * k)), m);
      a[k] = _mm256_add_pd(a[k], g);
      b[k] = _mm256_add_pd(b[k], _mm256_mul_pd(g, xc));
    }
  }
  for (int k = 0; k < 4; k++)
    _mm256_storeu_pd(l1 + 4 * k, a[k]), _mm256_storeu_pd(l2 + 4 * k, b[k]);
  grad_relu_scalar(dy, ry, mp, mb, x, i, len, mu, l1, l2, gout);
}

static CPU_AVX512 void grad_seg_relu_512(const float *dy, const float *ry,
                                         const uint8_t *mp, int64_t mb,
                                         const float *x, int64_t len, double mu,
                                         double *l1, double *l2, float *gout) {
  __m512d m = _mm512_set1_pd(mu);
  __m256 z = _mm256_setzero_ps();
  __m512d a0 = _mm512_loadu_pd(l1), a1 = _mm512_loadu_pd(l1 + 8);
  __m512d b0 = _mm512_loadu_pd(l2), b1 = _mm512_loadu_pd(l2 + 8);
  int64_t i = 0;
  for (; i + 16 <= len; i += 16) {
    __mmask8 k0, k1;
    if (mp) {
      unsigned bits = mask16(mp, mb + i);
      k0 = (__mmask8)bits, k1 = (__mmask8)(bits >> 8);
    } else {
      k0 = _mm256_cmp_ps_mask(_mm256_loadu_ps(ry + i), z, _CMP_GT_OQ);
      k1 = _mm256_cmp_ps_mask(_mm256_loadu_ps(ry + i + 8), z, _CMP_GT_OQ);
    }
    __m256 f0 = _mm256_maskz_mov_ps(k0, _mm256_loadu_ps(dy + i));
    __m256 f1 = _mm256_maskz_mov_ps(k1, _mm256_loadu_ps(dy + i + 8));
    if (gout) {
      _mm256_storeu_ps(gout + i, f0);
      _mm256_storeu_ps(gout + i + 8, f1);
    }
    __m512d g0 = _mm512_cvtps_pd(f0);
    __m512d g1 = _mm512_cvtps_pd(f1);
    __m512d x0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), m);
    __m512d x1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)), m);
    a0 = _mm512_add_pd(a0, g0);
    a1 = _mm512_add_pd(a1, g1);
    b0 = _mm512_add_pd(b0, _mm512_mul_pd(g0, x0));
    b1 = _mm512_add_pd(b1, _mm512_mul_pd(g1, x1));
  }
  _mm512_storeu_pd(l1, a0), _mm512_storeu_pd(l1 + 8, a1);
  _mm512_storeu_pd(l2, b0), _mm512_storeu_pd(l2 + 8, b1);
  grad_relu_scalar(dy, ry, mp, mb, x, i, len, mu, l1, l2, gout);
}

/* g = (ry > 0) ? dy : 0; dx (+)= (g - gm - (x - mu)*k) * sc; dres (+)= g
 * when dres; dy may be dx */
static CPU_AVX2 void dx_relu_avx2(const float *x, const float *dy,
                                  const float *ry, const uint8_t *mp, float *dx,
                                  float *dres, int64_t n, float mu, float k,
                                  float gm, float sc, int acc, int accr) {
  __m256 vm = _mm256_set1_ps(mu), vk = _mm256_set1_ps(k),
         vg = _mm256_set1_ps(gm), vs = _mm256_set1_ps(sc),
         v0 = _mm256_setzero_ps();
  __m256i bit8 = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 mk =
        mp ? _mm256_castsi256_ps(_mm256_cmpeq_epi32(
                 _mm256_and_si256(_mm256_set1_epi32(mp[e >> 3]), bit8), bit8))
           : _mm256_cmp_ps(_mm256_loadu_ps(ry + e), v0, _CMP_GT_OQ);
    __m256 g = _mm256_and_ps(mk, _mm256_loadu_ps(dy + e));
    if (dres)
      _mm256_storeu_ps(dres + e,
                       accr ? _mm256_add_ps(_mm256_loadu_ps(dres + e), g) : g);
    __m256 xc = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + e), vm), vk);
    __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(g, vg), xc), vs);
    if (acc)
      t = _mm256_add_ps(_mm256_loadu_ps(dx + e), t);
    _mm256_storeu_ps(dx + e, t);
  }
  dx_relu_scalar(x, dy, ry, mp, dx, dres, e, n, mu, k, gm, sc, acc, accr);
}

static CPU_AVX512 void dx_relu_512(const float *x, const float *dy,
                                   const float *ry, const uint8_t *mp,
                                   float *dx, float *dres, int64_t n, float mu,
                                   float k, float gm, float sc, int acc,
                                   int accr) {
  __m512 vm = _mm512_set1_ps(mu), vk = _mm512_set1_ps(k),
         vg = _mm512_set1_ps(gm), vs = _mm512_set1_ps(sc),
         v0 = _mm512_setzero_ps();
  int64_t e = 0;
  for (; e + 16 <= n; e += 16) {
    __mmask16 mk =
        mp ? (__mmask16)mask16(mp, e)
           : _mm512_cmp_ps_mask(_mm512_loadu_ps(ry + e), v0, _CMP_GT_OQ);
    __m512 g = _mm512_maskz_mov_ps(mk, _mm512_loadu_ps(dy + e));
    if (dres)
      _mm512_storeu_ps(dres + e,
                       accr ? _mm512_add_ps(_mm512_loadu_ps(dres + e), g) : g);
    __m512 xc = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + e), vm), vk);
    __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(g, vg), xc), vs);
    if (acc)
      t = _mm512_add_ps(_mm512_loadu_ps(dx + e), t);
    _mm512_storeu_ps(dx + e, t);
  }
  dx_relu_scalar(x, dy, ry, mp, dx, dres, e, n, mu, k, gm, sc, acc, accr);
}
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
static void bn_sums_task(void *arg, int64_t t) {
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

/* Runs the reduction over block [c0, c0+cb); then, for each block channel
 * q, s[q] = the two sums over all chunks, in chunk order. */
static void bn_block_sums(void *ctx, bn_job *j, double (*part)[2],
                          double (*sums)[2]) {
  bn_block_split(j);
  j->part = part;
  bn_run(ctx, j->a, j->bwd, j->chunks * j->groups, bn_sums_task, j);
  for (int64_t q = 0; q < j->cb; q++) {
    double s1 = 0, s2 = 0;
    for (int64_t k = 0; k < j->chunks; k++)
      s1 += part[k * j->cb + q][0], s2 += part[k * j->cb + q][1];
    sums[q][0] = s1, sums[q][1] = s2;
  }
}

/* From channel ci's mean and sum of squared deviations: the saved and
 * running statistics, and the coefficients of y = (x - mu)*alpha + shift. */
static void bn_fwd_coef(const bn_job *j, int64_t ci, double mean, double m2,
                        float *mu, float *alpha, float *shift) {
  const tc_batchnorm_args *a = j->a;
  double mom = a->momentum, unbias = (double)j->m / (double)(j->m - 1);
  double var = m2 / (double)j->m;
  double invstd = 1.0 / sqrt(var + (double)a->eps);
  a->save_mean[ci] = (float)mean;
  a->save_invstd[ci] = (float)invstd;
  if (a->running_mean)
    a->running_mean[ci] =
        (float)((1.0 - mom) * a->running_mean[ci] + mom * mean);
  if (a->running_var)
    a->running_var[ci] =
        (float)((1.0 - mom) * a->running_var[ci] + mom * var * unbias);
  double g = a->gamma ? a->gamma[ci] : 1.0;
  double b = a->beta ? a->beta[ci] : 0.0;
  *mu = (float)mean;
  *alpha = (float)(invstd * g);
  *shift = (float)b;
}

/* From channel ci's sums: dgamma, dbeta and the coefficients of
 * dx (+)= (dy - gmean - (x - mu)*k) * scale. */
static void bn_bwd_coef(const bn_job *j, int64_t ci, double sdy, double sdx,
                        float *mu, float *k, float *gmean, float *scale) {
  const tc_batchnorm_args *a = j->a;
  double is = a->save_invstd[ci];
  double g = a->gamma ? a->gamma[ci] : 1.0;
  double dg = sdx * is;
  if (a->dgamma)
    a->dgamma[ci] = (float)(a->accumulate ? a->dgamma[ci] + dg : dg);
  if (a->dbeta)
    a->dbeta[ci] = (float)(a->accumulate ? a->dbeta[ci] + sdy : sdy);
  *mu = a->save_mean[ci];
  *k = (float)(sdx * is * is / (double)j->m);
  *gmean = (float)(sdy / (double)j->m);
  *scale = (float)(is * g);
}

static int64_t bn_apply_init(bn_job *j) {
  j->planes = j->a->n * j->cb;
  int64_t per = BN_APPLY_ELEMS / (j->a->spatial > 0 ? j->a->spatial : 1);
  j->per_task = per < 1 ? 1 : per;
  j->apply_tasks = (j->planes + j->per_task - 1) / j->per_task;
  return j->apply_tasks;
}

/* y = (x - mu)*alpha + shift over planes (image i, block channel q);
 * subtracting first keeps y accurate where x is near the mean. */
static void bn_apply_task(void *arg, int64_t t) {
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
      a->y[off] = !j->relu || v > 0.f ? v : 0.f;
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
static void bn_dx_task(void *arg, int64_t t) {
  const bn_job *j = arg;
  const tc_batchnorm_args *a = j->a;
  /* planes in order: each thread takes the planes its sums just read */
  int64_t p1 = min64((t + 1) * j->per_task, j->planes), s = a->spatial;
  if (s == 1) { /* as in bn_apply_task */
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

static tc_status bn_fwd_train(void *ctx, const tc_batchnorm_args *a,
                              const char *fn, int relu) {
  tc_status st = tc__check_batchnorm_args(ctx, a, fn,
                                          relu ? TC__OP_BATCHNORM_RELU_FWD_TRAIN
                                               : TC__OP_BATCHNORM_FWD_TRAIN);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK; /* nothing to normalise; running stats stay (PyTorch) */
  bn_job j;
  bn_job_init(&j, a, 0);
  j.relu = relu;
  j.res = relu ? a->residual : NULL;
  j.mask = relu ? a->relu_mask : NULL;
  j.mps = (a->spatial + 7) / 8;
  double part[BN_PART_MAX][2], sums[BN_BLOCK_C][2];
  float mu[BN_BLOCK_C], alpha[BN_BLOCK_C], shift[BN_BLOCK_C];
  j.mu = mu, j.alpha = alpha, j.shift = shift;
  double m = (double)j.m;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_BLOCK_C, a->c - j.c0);
    bn_block_sums(ctx, &j, part, sums);
    for (int64_t q = 0; q < j.cb; q++) {
      int64_t ci = j.c0 + q;
      double s1 = sums[q][0], s2 = sums[q][1];
      double mean = (double)a->x[ci * a->spatial] + s1 / m;
      double m2 = fmax(s2 - s1 * s1 / m, 0.0);
      bn_fwd_coef(&j, ci, mean, m2, &mu[q], &alpha[q], &shift[q]);
    }
    bn_run(ctx, a, 0, bn_apply_init(&j), bn_apply_task, &j);
  }
  return TC_OK;
}

tc_status tc__cpu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_train(ctx, a, "cpu_batchnorm_fwd_train", 0);
}

tc_status tc__cpu_batchnorm_relu_fwd_train(void *ctx,
                                           const tc_batchnorm_args *a) {
  return bn_fwd_train(ctx, a, "cpu_batchnorm_relu_fwd_train", 1);
}

static tc_status bn_fwd_infer(void *ctx, const tc_batchnorm_args *a,
                              const char *fn, int relu) {
  tc_status st = tc__check_batchnorm_args(ctx, a, fn,
                                          relu ? TC__OP_BATCHNORM_RELU_FWD_INFER
                                               : TC__OP_BATCHNORM_FWD_INFER);
  if (st != TC_OK)
    return st;
  if (a->c == 0 || a->n * a->spatial == 0)
    return TC_OK;
  bn_job j;
  memset(&j, 0, sizeof j);
  j.a = a;
  j.isa = tc__cpu_isa();
  j.relu = relu;
  j.res = relu ? a->residual : NULL;
  float mu[BN_BLOCK_C], alpha[BN_BLOCK_C], shift[BN_BLOCK_C];
  j.mu = mu, j.alpha = alpha, j.shift = shift;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_BLOCK_C, a->c - j.c0);
    for (int64_t q = 0; q < j.cb; q++) {
      int64_t ci = j.c0 + q;
      double g = a->gamma ? a->gamma[ci] : 1.0;
      double b = a->beta ? a->beta[ci] : 0.0;
      double is = 1.0 / sqrt((double)a->running_var[ci] + (double)a->eps);
      mu[q] = a->running_mean[ci];
      alpha[q] = (float)(is * g);
      shift[q] = (float)b;
    }
    bn_run(ctx, a, 0, bn_apply_init(&j), bn_apply_task, &j);
  }
  return TC_OK;
}

tc_status tc__cpu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a) {
  return bn_fwd_infer(ctx, a, "cpu_batchnorm_fwd_infer", 0);
}

tc_status tc__cpu_batchnorm_relu_fwd_infer(void *ctx,
                                           const tc_batchnorm_args *a) {
  return bn_fwd_infer(ctx, a, "cpu_batchnorm_relu_fwd_infer", 1);
}

static tc_status bn_bwd(void *ctx, const tc_batchnorm_args *a, const char *fn,
                        int relu) {
  tc_status st = tc__check_batchnorm_args(
      ctx, a, fn, relu ? TC__OP_BATCHNORM_RELU_BWD : TC__OP_BATCHNORM_BWD);
  if (st != TC_OK)
    return st;
  if (a->c == 0)
    return TC_OK;
  int64_t m = a->n * a->spatial;
  if (m == 0) { /* empty sums */
    for (int64_t ci = 0; ci < a->c && !a->accumulate; ci++) {
      if (a->dgamma)
        a->dgamma[ci] = 0.f;
      if (a->dbeta)
        a->dbeta[ci] = 0.f;
    }
    return TC_OK;
  }
  uint8_t *mask = relu ? a->relu_mask : NULL;
  bn_job j;
  bn_job_init(&j, a, 1);
  if (relu) {
    j.mask = mask;
    j.mps = (a->spatial + 7) / 8;
    j.ry = mask ? NULL : a->y;
    j.dres = a->dresidual;
    j.acc_res = a->accumulate_residual;
    if (j.dres && !j.acc_res)
      j.gout = j.dres;
  }
  double part[BN_PART_MAX][2], sums[BN_BLOCK_C][2];
  float mu[BN_BLOCK_C], kk[BN_BLOCK_C], gmean[BN_BLOCK_C], scale[BN_BLOCK_C];
  j.mu = mu, j.k = kk, j.gmean = gmean, j.scale = scale;
  for (j.c0 = 0; j.c0 < a->c; j.c0 += j.cb) {
    j.cb = min64(BN_BLOCK_C, a->c - j.c0);
    bn_block_sums(ctx, &j, part, sums);
    for (int64_t q = 0; q < j.cb; q++)
      bn_bwd_coef(&j, j.c0 + q, sums[q][0], sums[q][1], &mu[q], &kk[q],
                  &gmean[q], &scale[q]);
    bn_run(ctx, a, 1, bn_apply_init(&j), bn_dx_task, &j);
  }
  return TC_OK;
}

tc_status tc__cpu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a) {
  return bn_bwd(ctx, a, "cpu_batchnorm_bwd", 0);
}

tc_status tc__cpu_batchnorm_relu_bwd(void *ctx, const tc_batchnorm_args *a) {
  return bn_bwd(ctx, a, "cpu_batchnorm_relu_bwd", 1);
}
