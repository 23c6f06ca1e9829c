/*
 * gemm.c - the CPU backend's strided-batched GEMM over OpenBLAS sgemm.
 *
 * C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], row-major, b < batch.
 * OpenBLAS runs one thread (backend.c); parallelism comes from our pool:
 * over the batch when batch > 1, else over fixed blocks of C's rows for a
 * large single product. Every split depends only on the shapes, never on
 * the thread count, and each element of C is produced by one sgemm call, so
 * results are the same bits whatever tc_set_num_threads() says.
 *
 * Arguments are checked the way BLAS's xerbla would (ld >= max(1, cols)) so
 * OpenBLAS never sees arguments it would print about.
 */
#include <cblas.h>

#include "cpu.h"

/* A single product smaller than this (m*n*k multiply-adds) runs in one
 * call: splitting it costs more than it saves. */
#define GEMM_SPLIT_MIN_WORK ((int64_t)1 << 20)
/* Row blocks of a split single product: at least this many rows each. */
#define GEMM_SPLIT_MIN_ROWS 16
/* ... and at most this many blocks (independent of the thread count). */
#define GEMM_SPLIT_MAX_BLOCKS 32

typedef struct gemm_job {
  const tc_gemm_args *a;
  int64_t rows_per_task; /* batch == 1 split: rows of C per task */
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
  gemm_one(j->a, t, 0, j->a->m);
}

static void gemm_rows_task(void *arg, int64_t t) {
  const gemm_job *j = arg;
  int64_t m0 = t * j->rows_per_task;
  int64_t mm =
      j->a->m - m0 < j->rows_per_task ? j->a->m - m0 : j->rows_per_task;
  gemm_one(j->a, 0, m0, mm);
}

static int64_t max1(int64_t v) {
  return v > 1 ? v : 1;
}

static tc_status gemm_check(const tc_gemm_args *a) {
  static const char fn[] = "cpu_gemm";
  if (!a)
    return tc__error(TC_EINVAL, "%s: args is NULL", fn);
  if (a->struct_size < sizeof(tc_gemm_args))
    return tc__error(TC_EINVAL, "%s: struct_size %zu < %zu", fn, a->struct_size,
                     sizeof(tc_gemm_args));
  if (a->m < 0 || a->n < 0 || a->k < 0 || a->batch < 0)
    return tc__error(
        TC_EINVAL, "%s: negative size (m %lld, n %lld, k %lld, batch %lld)", fn,
        (long long)a->m, (long long)a->n, (long long)a->k, (long long)a->batch);
  /* BLAS takes int sizes (blasint); refuse what would not fit */
  int64_t lim = (int64_t)INT32_MAX;
  if (a->m > lim || a->n > lim || a->k > lim || a->lda > lim || a->ldb > lim ||
      a->ldc > lim)
    return tc__error(TC_EINVAL, "%s: a size or ld exceeds %lld", fn,
                     (long long)lim);
  if (a->m == 0 || a->n == 0 || a->batch == 0)
    return TC_OK; /* nothing is read or written */
  if (!a->c)
    return tc__error(TC_EINVAL, "%s: argument 'c' is NULL", fn);
  int64_t a_cols = a->trans_a ? a->m : a->k; /* row-major storage of A */
  int64_t b_cols = a->trans_b ? a->k : a->n;
  if (a->lda < max1(a_cols))
    return tc__error(TC_EINVAL, "%s: lda %lld < %lld (trans_a %d)", fn,
                     (long long)a->lda, (long long)max1(a_cols),
                     (int)a->trans_a);
  if (a->ldb < max1(b_cols))
    return tc__error(TC_EINVAL, "%s: ldb %lld < %lld (trans_b %d)", fn,
                     (long long)a->ldb, (long long)max1(b_cols),
                     (int)a->trans_b);
  if (a->ldc < max1(a->n))
    return tc__error(TC_EINVAL, "%s: ldc %lld < n %lld", fn, (long long)a->ldc,
                     (long long)a->n);
  if (a->k > 0 && (!a->a || !a->b))
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     a->a ? "b" : "a");
  if (a->stride_a < 0 || a->stride_b < 0 || a->stride_c < 0)
    return tc__error(TC_EINVAL, "%s: negative stride (%lld, %lld, %lld)", fn,
                     (long long)a->stride_a, (long long)a->stride_b,
                     (long long)a->stride_c);
  /* batch entries of C run concurrently: they must not overlap (A and B
   * may: a stride of 0 broadcasts one matrix) */
  int64_t c_span = (a->m - 1) * a->ldc + a->n;
  if (a->batch > 1 && a->stride_c < c_span)
    return tc__error(TC_EINVAL,
                     "%s: stride_c %lld < %lld: batch entries of C overlap", fn,
                     (long long)a->stride_c, (long long)c_span);
  return TC_OK;
}

tc_status cpu_gemm(void *ctx, const tc_gemm_args *a) {
  tc_status st = gemm_check(a);
  if (st != TC_OK)
    return st;
  if (!ctx)
    return tc__error(TC_EINVAL, "cpu_gemm: ctx is NULL");
  if (a->m == 0 || a->n == 0 || a->batch == 0)
    return TC_OK;
  gemm_job job = {a, a->m};
  if (a->batch > 1) {
    cpu_parallel_for(ctx, a->batch, gemm_batch_task, &job);
    return TC_OK;
  }
  int64_t blocks = 1;
  double work = (double)a->m * (double)a->n * (double)a->k;
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
  cpu_parallel_for(ctx, (a->m + job.rows_per_task - 1) / job.rows_per_task,
                   gemm_rows_task, &job);
  return TC_OK;
}
