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
  tc_status st = tc__check_gemm_args(ctx, g, CU_FN("gemm"));
  if (st != TC_OK || g->m == 0 || g->n == 0 || g->batch == 0)
    return st; /* nothing is read or written */
  st = cu_enter(c, "gemm");
  if (st != TC_OK)
    return st;
  return cu_gemm_rm(c, g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha,
                    g->a, g->lda, g->stride_a, g->b, g->ldb, g->stride_b,
                    g->beta, g->c, g->ldc, g->stride_c, g->batch);
}
