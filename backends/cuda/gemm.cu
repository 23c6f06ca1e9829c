/*
 * gemm.cu - row-major strided-batched SGEMM through cuBLAS.
 *
 * cuBLAS is column-major. A row-major (m,n) matrix with leading dimension
 * ld is the column-major (n,m) matrix of its transpose, so
 * C = op(A) op(B) (row-major) is C^T = op(B)^T op(A)^T (column-major): call
 * cuBLAS with the operands swapped and m, n exchanged; the transpose flags
 * keep their meaning. The 64-bit cuBLAS API takes int64 sizes directly.
 * cuBLAS is bitwise reproducible run to run (its atomics mode stays off).
 */
#include "cuda_be.h"

__global__ void k_scale_matrix(float *y, int64_t rows, int64_t cols,
                               int64_t ld, int64_t stride, int64_t batch,
                               float beta) {
  int64_t total = rows * cols * batch;
  CU_FOR(i, total) {
    int64_t b = i / (rows * cols), r = (i / cols) % rows, col = i % cols;
    float *p = y + b * stride + r * ld + col;
    /* beta == 0 overwrites (BLAS rule: C is not read, NaN does not stay) */
    *p = beta == 0.f ? 0.f : beta * *p;
  }
}

tc_status cu_gemm_rm(cu_ctx *c, int trans_a, int trans_b, int64_t m,
                     int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, int64_t stride_a, const float *b,
                     int64_t ldb, int64_t stride_b, float beta, float *y,
                     int64_t ldc, int64_t stride_c, int64_t batch) {
  if (m == 0 || n == 0 || batch == 0)
    return TC_OK;
  if (k == 0 || alpha == 0.f) {
    /* C = beta*C; cuBLAS's handling of k == 0 is not documented */
    k_scale_matrix<<<cu_blocks(m * n * batch), CU_THREADS, 0, c->stream>>>(
        y, m, n, ldc, stride_c, batch, beta);
    return cu_launched("gemm");
  }
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t s;
  if (batch == 1)
    s = cublasSgemm_64(c->blas, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda,
                       &beta, y, ldc);
  else
    s = cublasSgemmStridedBatched_64(c->blas, op_b, op_a, n, m, k, &alpha, b,
                                     ldb, stride_b, a, lda, stride_a, &beta,
                                     y, ldc, stride_c, batch);
  return cu_blas_check(s, "gemm");
}

tc_status cu_gemm(void *ctx, const tc_gemm_args *g) {
  cu_ctx *c = (cu_ctx *)ctx;
  /* the CPU backend's checks (backends/cpu/gemm.c), in its order */
  CU_ARGS("gemm", g, ctx);
  if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 0)
    return tc_backend_error(TC_EINVAL, "cuda gemm: negative size (m %lld, n "
                            "%lld, k %lld, batch %lld)", (long long)g->m,
                            (long long)g->n, (long long)g->k,
                            (long long)g->batch);
  int64_t lim = (int64_t)INT32_MAX;
  if (g->m > lim || g->n > lim || g->k > lim || g->lda > lim ||
      g->ldb > lim || g->ldc > lim)
    return tc_backend_error(TC_EINVAL, "cuda gemm: a size or ld exceeds %lld",
                            (long long)lim);
  if (g->m == 0 || g->n == 0 || g->batch == 0)
    return TC_OK; /* nothing is read or written */
  if (!g->c)
    return cu_einval("gemm", "argument 'c' is NULL");
  /* leading dimensions of the row-major operands as stored */
  int64_t cols_a = g->trans_a ? g->m : g->k;
  int64_t cols_b = g->trans_b ? g->k : g->n;
  if (g->lda < (cols_a > 1 ? cols_a : 1) ||
      g->ldb < (cols_b > 1 ? cols_b : 1) || g->ldc < (g->n > 1 ? g->n : 1))
    return tc_backend_error(TC_EINVAL, "cuda gemm: leading dimension too "
                            "small (lda=%lld ldb=%lld ldc=%lld)",
                            (long long)g->lda, (long long)g->ldb,
                            (long long)g->ldc);
  if (g->k > 0 && (!g->a || !g->b))
    return tc_backend_error(TC_EINVAL, "cuda gemm: argument '%s' is NULL",
                            g->a ? "b" : "a");
  if (g->stride_a < 0 || g->stride_b < 0 || g->stride_c < 0)
    return tc_backend_error(TC_EINVAL, "cuda gemm: negative stride (%lld, "
                            "%lld, %lld)", (long long)g->stride_a,
                            (long long)g->stride_b, (long long)g->stride_c);
  /* batch entries of C must not overlap (cuBLAS runs them concurrently) */
  int64_t c_span = (g->m - 1) * g->ldc + g->n;
  if (g->batch > 1 && g->stride_c < c_span)
    return tc_backend_error(TC_EINVAL, "cuda gemm: stride_c %lld < %lld: "
                            "batch entries of C overlap",
                            (long long)g->stride_c, (long long)c_span);
  tc_status st = cu_enter(c, "gemm");
  if (st != TC_OK)
    return st;
  return cu_gemm_rm(c, g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha,
                    g->a, g->lda, g->stride_a, g->b, g->ldb, g->stride_b,
                    g->beta, g->c, g->ldc, g->stride_c, g->batch);
}
