/*
 * gemm.c - the CPU backend's strided-batched GEMM.
 *
 * C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, b < batch.
 * With AVX2+FMA or AVX-512 (tc__cpu_isa()), products up to GEMM_OWN_MAX_WORK
 * multiply-adds run on our own packed GEMM: op(A) and op(B) are copied into
 * per-thread panels (no allocation per call) and a register-tile kernel
 * (gemm_kern.h) sweeps them; OpenBLAS's Haswell kernels, which it picks on
 * these CPUs, lose to it on the small products of Linear layers. Larger
 * products and CPUs below AVX2 go to OpenBLAS sgemm, which runs one thread
 * (backend.c).
 *
 * Parallelism comes from our pool: over the batch when batch > 1, else over
 * blocks of C. Every split depends only on the shapes, never on the thread
 * count, and each element of C is produced by one task, so results are the
 * same bits whatever tc_set_num_threads() says. In the own GEMM each element
 * is also the same chain of operations whatever the block or tile it lies
 * in (k is cut into blocks by its size alone), so AVX2 and AVX-512 agree.
 *
 * Arguments are checked the way BLAS's xerbla would (ld >= max(1, cols)) so
 * OpenBLAS never sees arguments it would print about.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "../op_check.h"
#include "cpu.h"
#include "cpu_simd.h"

/* ---- OpenBLAS path ---- */

/* A single product smaller than this (m*n*k multiply-adds) runs in one
 * call: splitting it costs more than it saves. */
#define GEMM_SPLIT_MIN_WORK ((int64_t)1 << 20)
/* Row blocks of a split single product: at least this many rows each. */
#define GEMM_SPLIT_MIN_ROWS 16
/* ... and at most this many blocks (independent of the thread count). */
#define GEMM_SPLIT_MAX_BLOCKS 32

/* ---- own packed GEMM ---- */

/* Products up to this many multiply-adds take the own GEMM. */
#define GEMM_OWN_MAX_WORK ((int64_t)1 << 28)
/* ... and with C at least this wide. */
#define GEMM_OWN_MIN_N 16
/* k is cut into ceil(k / GEMM_KC) blocks of (nearly) equal size. */
#define GEMM_KC 128
/* Rows of op(A) and columns of op(B) packed at a time: multiples of both
 * kernels' tiles (AVX-512 12 x 32, AVX2 6 x 16). */
#define GEMM_MC 96
#define GEMM_NC 128
/* Blocks of C handed to tasks are multiples of these. */
#define GEMM_UNIT_M 12
#define GEMM_UNIT_N 32
/* Work (multiply-adds) per task below which a product is not split. */
#define GEMM_OWN_TASK_WORK ((int64_t)1 << 21)
/* Tasks of a split product (a power of two). */
#define GEMM_OWN_MAX_TASKS 8

/* Packing panels: the pool thread's scratch slice (tc__cpu_scratch) holds the
 * A panel, then the B panel. */
_Static_assert(GEMM_MC *GEMM_KC + GEMM_KC * GEMM_NC <= CPU_SCRATCH_FLOATS,
               "gemm panels exceed the CPU scratch slice");

/* kc steps of one mr x nr (at most tile-sized) block of C. */
typedef void (*gemm_kern_fn)(int64_t kc, const float *a, const float *b,
                             float *c, int64_t ldc, int mr, int nr, float alpha,
                             float beta);
/* mc rows of op(A) / nc columns of op(B) over kc steps into panels. */
typedef void (*gemm_pack_fn)(const float *src, int64_t ld, int trans,
                             int64_t count, int64_t kc, float *dst);
typedef struct gemm_kernels {
  int mr, nr;          /* tile */
  gemm_kern_fn rows;   /* A panel packed by rows (op(A) = A) */
  gemm_kern_fn cols;   /* A panel packed by columns (op(A) = A^T) */
  gemm_pack_fn pack_a; /* into mr-row panels */
  gemm_pack_fn pack_b; /* into nr-column panels */
} gemm_kernels;

static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

#if CPU_X86
/* Lanes [0, n) set, n in [0, 8]. */
static inline CPU_AVX2 __m256i gemm_mask8(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* 8 rows of 8 floats (src, row stride ld) into 8 columns (dst, row stride
 * ldd): dst[p * ldd + j] = src[j * ld + p]. */
static inline CPU_AVX2 void gemm_transpose8(const float *src, int64_t ld,
                                            float *dst, int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld);
  __m256 r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld);
  __m256 r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld);
  __m256 r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44);
  __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44);
  __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44);
  __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44);
  __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* ---- AVX2 + FMA: 6 x 16 tile, 12 of the 16 ymm registers ---- */
#define KF(name) gemm_avx2_##name
#define CPU_SIMD_VL 8
#include "cpu_simd.h"
#define GK_MR 6
#define GK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define V_LOADN(p, n) _mm256_maskload_ps(p, gemm_mask8(n))
#define V_STOREN(p, v, n) _mm256_maskstore_ps(p, gemm_mask8(n), v)
#include "gemm_kern.h"

/* ---- AVX-512F: 12 x 32 tile, 24 of the 32 zmm registers ---- */
#define KF(name) gemm_avx512_##name
#define CPU_SIMD_VL 16
#include "cpu_simd.h"
#define GK_MR 12
#define GK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define V_LOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1), p)
#define V_STOREN(p, v, n)                                                      \
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1), v)
#include "gemm_kern.h"

static const gemm_kernels gemm_avx2 = {6,
                                       16,
                                       gemm_avx2_kern_rows,
                                       gemm_avx2_kern_cols,
                                       gemm_avx2_pack_a,
                                       gemm_avx2_pack_b};
static const gemm_kernels gemm_avx512 = {12,
                                         32,
                                         gemm_avx512_kern_rows,
                                         gemm_avx512_kern_cols,
                                         gemm_avx512_pack_a,
                                         gemm_avx512_pack_b};
#endif

/* The own GEMM's kernels for this CPU, or NULL (OpenBLAS). */
static const gemm_kernels *gemm_own_kernels(void) {
#if CPU_X86
  int isa = tc__cpu_isa();
  if (isa >= CPU_ISA_AVX512)
    return &gemm_avx512;
  if (isa >= CPU_ISA_AVX2)
    return &gemm_avx2;
#endif
  return NULL;
}

/* C = beta * C on a block (alpha == 0 or k == 0: A and B are not read). */
static void gemm_scale_block(const tc_gemm_args *g, float *C, int64_t r0,
                             int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t i = r0; i < r1; i++) {
    float *restrict cr = C + i * g->ldc;
    for (int64_t j = c0; j < c1; j++)
      cr[j] = g->beta == 0.f ? 0.f : g->beta * cr[j];
  }
}

/* Rows [r0, r1) x columns [c0, c1) of batch entry b, on this thread. Per
 * block of k, the operand that needs fewer re-packings is packed in the
 * outer loop (once), the other in the inner loop. */
static void gemm_own_block(cpu_ctx *ctx, const gemm_kernels *K,
                           const tc_gemm_args *g, int64_t b, int64_t r0,
                           int64_t r1, int64_t c0, int64_t c1) {
  const float *A = g->a + b * g->stride_a;
  const float *B = g->b + b * g->stride_b;
  float *C = g->c + b * g->stride_c;
  if (g->k == 0 || g->alpha == 0.f) {
    gemm_scale_block(g, C, r0, r1, c0, c1);
    return;
  }
  gemm_kern_fn kern = g->trans_a ? K->cols : K->rows;
  float *apack = tc__cpu_scratch(ctx), *bpack = apack + GEMM_MC * GEMM_KC;
  int64_t n_ic = (r1 - r0 + GEMM_MC - 1) / GEMM_MC;
  int64_t n_jc = (c1 - c0 + GEMM_NC - 1) / GEMM_NC;
  /* extra packing: A again per column block, or B per row block */
  int a_outer =
      (n_jc - 1) * (r1 - r0) < (n_ic - 1) * (c1 - c0) * (g->trans_b ? 2 : 1);
  int64_t n_out = a_outer ? n_ic : n_jc, n_in = a_outer ? n_jc : n_ic;
  int64_t nkb = (g->k + GEMM_KC - 1) / GEMM_KC;
  for (int64_t kb = 0; kb < nkb; kb++) {
    int64_t k0 = g->k * kb / nkb, kc = g->k * (kb + 1) / nkb - k0;
    float beta = kb == 0 ? g->beta : 1.f; /* later blocks add to C */
    for (int64_t o = 0; o < n_out; o++)
      for (int64_t i = 0; i < n_in; i++) {
        int64_t ic = r0 + (a_outer ? o : i) * GEMM_MC;
        int64_t jc = c0 + (a_outer ? i : o) * GEMM_NC;
        int64_t mc = min64(GEMM_MC, r1 - ic), nc = min64(GEMM_NC, c1 - jc);
        if (a_outer ? i == 0 : 1)
          K->pack_a(A + (g->trans_a ? k0 * g->lda + ic : ic * g->lda + k0),
                    g->lda, g->trans_a, mc, kc, apack);
        if (a_outer ? 1 : i == 0)
          K->pack_b(B + (g->trans_b ? jc * g->ldb + k0 : k0 * g->ldb + jc),
                    g->ldb, g->trans_b, nc, kc, bpack);
        for (int64_t jr = 0; jr < nc; jr += K->nr)
          for (int64_t ir = 0; ir < mc; ir += K->mr)
            kern(kc, apack + ir * GEMM_KC, bpack + jr * kc,
                 C + (ic + ir) * g->ldc + jc + jr, g->ldc,
                 (int)min64(K->mr, mc - ir), (int)min64(K->nr, nc - jr),
                 g->alpha, beta);
      }
  }
}

typedef struct gemm_job {
  cpu_ctx *ctx;
  const tc_gemm_args *a;
  const gemm_kernels *K; /* NULL: OpenBLAS */
  int64_t rows_per_task; /* batch == 1 split: rows of C per task */
  int64_t cols_per_task; /* own GEMM's split: columns of C per task */
  int64_t col_tasks;     /* own GEMM's split: tasks across the columns */
} gemm_job;

/* One sgemm on rows [m0, m0+mm) of batch entry b. */
static void gemm_one(const tc_gemm_args *a, int64_t b, int64_t m0, int64_t mm) {
  const float *pa = a->a + b * a->stride_a;
  const float *pb = a->b + b * a->stride_b;
  float *pc = a->c + b * a->stride_c + m0 * a->ldc;
  /* op(A) rows m0..: A is (m,k) with rows at lda, or (k,m) with columns */
  pa += a->trans_a ? m0 : m0 * a->lda;
  cblas_sgemm(CblasRowMajor, a->trans_a ? CblasTrans : CblasNoTrans,
              a->trans_b ? CblasTrans : CblasNoTrans, (blasint)mm,
              (blasint)a->n, (blasint)a->k, a->alpha, pa, (blasint)a->lda, pb,
              (blasint)a->ldb, a->beta, pc, (blasint)a->ldc);
}

static void gemm_batch_task(void *arg, int64_t t) {
  const gemm_job *j = arg;
  if (j->K)
    gemm_own_block(j->ctx, j->K, j->a, t, 0, j->a->m, 0, j->a->n);
  else
    gemm_one(j->a, t, 0, j->a->m);
}

static void gemm_rows_task(void *arg, int64_t t) {
  const gemm_job *j = arg;
  int64_t m0 = t * j->rows_per_task;
  int64_t mm =
      j->a->m - m0 < j->rows_per_task ? j->a->m - m0 : j->rows_per_task;
  gemm_one(j->a, 0, m0, mm);
}

static void gemm_own_task(void *arg, int64_t t) {
  const gemm_job *j = arg;
  int64_t r0 = t / j->col_tasks * j->rows_per_task;
  int64_t c0 = t % j->col_tasks * j->cols_per_task;
  gemm_own_block(j->ctx, j->K, j->a, 0, r0,
                 min64(r0 + j->rows_per_task, j->a->m), c0,
                 min64(c0 + j->cols_per_task, j->a->n));
}

/* Splits a single product for the own GEMM into tasks by its shape alone:
 * a power of two of them by its work, as row x column blocks in units of
 * GEMM_UNIT_M x GEMM_UNIT_N, choosing the grid with the smallest largest
 * block, then the least packing. */
static int64_t gemm_own_split(const tc_gemm_args *a, gemm_job *job) {
  int64_t mu = (a->m + GEMM_UNIT_M - 1) / GEMM_UNIT_M;
  int64_t nu = (a->n + GEMM_UNIT_N - 1) / GEMM_UNIT_N;
  double work = (double)a->m * (double)a->n * (double)a->k;
  int64_t T = 1;
  while (T < GEMM_OWN_MAX_TASKS &&
         work >= (double)(2 * T) * (double)GEMM_OWN_TASK_WORK)
    T *= 2;
  int64_t best_tr = 1, best_tc = 1;
  for (; T > 1; T /= 2) {
    int64_t best_max = -1;
    double best_pack = 0;
    for (int64_t tr = 1; tr <= T; tr *= 2) {
      int64_t tc = T / tr;
      if (tr > mu || tc > nu)
        continue;
      int64_t mx = ((mu + tr - 1) / tr) * ((nu + tc - 1) / tc);
      /* each row block packs its columns of op(B), each column block its
       * rows of op(A); transposing B costs more than copying */
      double pack = (double)tr * (double)a->n * (a->trans_b ? 3 : 1) +
                    (double)tc * (double)a->m;
      if (best_max < 0 || mx < best_max || (mx == best_max && pack < best_pack))
        best_max = mx, best_pack = pack, best_tr = tr, best_tc = tc;
    }
    if (best_max >= 0)
      break;
  }
  job->rows_per_task = (mu + best_tr - 1) / best_tr * GEMM_UNIT_M;
  job->cols_per_task = (nu + best_tc - 1) / best_tc * GEMM_UNIT_N;
  /* blocks that would start past the end are dropped */
  int64_t tr = (a->m + job->rows_per_task - 1) / job->rows_per_task;
  job->col_tasks = (a->n + job->cols_per_task - 1) / job->cols_per_task;
  return tr * job->col_tasks;
}

tc_status tc__cpu_gemm(void *ctx, const tc_gemm_args *a) {
  tc_status st = tc__check_gemm_args(ctx, a, "cpu_gemm");
  if (st != TC_OK)
    return st;
  if (a->m == 0 || a->n == 0 || a->batch == 0)
    return TC_OK;
  gemm_job job = {ctx, a, NULL, a->m, a->n, 1};
  double work = (double)a->m * (double)a->n * (double)a->k;
  /* C narrower than a tile wastes most of it: OpenBLAS does better */
  if (work <= (double)GEMM_OWN_MAX_WORK && a->n >= GEMM_OWN_MIN_N)
    job.K = gemm_own_kernels();
  if (a->batch > 1) {
    tc__cpu_parallel_for(ctx, a->batch, gemm_batch_task, &job);
    return TC_OK;
  }
  if (job.K) {
    /* even one task goes through the pool: its job lock makes the
     * caller's scratch slice (the packing panels) this caller's alone */
    tc__cpu_parallel_for(ctx, gemm_own_split(a, &job), gemm_own_task, &job);
    return TC_OK;
  }
  int64_t blocks = 1;
  if (work >= (double)GEMM_SPLIT_MIN_WORK) {
    blocks = a->m / GEMM_SPLIT_MIN_ROWS;
    if (blocks > GEMM_SPLIT_MAX_BLOCKS)
      blocks = GEMM_SPLIT_MAX_BLOCKS;
    if (blocks < 1)
      blocks = 1;
  }
  if (blocks == 1) {
    gemm_one(a, 0, 0, a->m);
    return TC_OK;
  }
  job.rows_per_task = (a->m + blocks - 1) / blocks;
  tc__cpu_parallel_for(ctx, (a->m + job.rows_per_task - 1) / job.rows_per_task,
                       gemm_rows_task, &job);
  return TC_OK;
}
