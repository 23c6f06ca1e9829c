/*
 * cuda_be.h - internals of the CUDA backend module (tinycnn-cuda.so): its
 * context, error helpers, the caching device allocator, launch helpers and
 * the op entry points that fill the backend table (backend.cu).
 *
 * Conventions:
 *  - every op runs on the context's one stream, so buffers freed back to the
 *    caching allocator can be reused by the next op without a sync;
 *  - every CUDA / cuBLAS error becomes a tc_status (TC_ENOMEM for an
 *    allocation failure, TC_EBACKEND otherwise) with the CUDA message, via
 *    tc_backend_error(); nothing here aborts, exits or prints;
 *  - no float atomics: every reduction is split into a number of parts that
 *    depends only on the shapes and combined in a fixed order, so results
 *    are bit-identical from run to run on the same GPU (the deterministic
 *    flag therefore needs no separate code path);
 *  - indices are int64_t; kernels use grid-stride loops.
 * Named cuda_be.h, not cuda.h, so it never shadows the toolkit's <cuda.h>.
 */
#ifndef TINYCNN_CUDA_BE_H
#define TINYCNN_CUDA_BE_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include <tinycnn_backend.h>

#include "../op_check.h"

typedef struct cu_pool cu_pool;

typedef struct cu_ctx {
  int device;
  int deterministic; /* recorded; every path is deterministic anyway */
  int own_stream;    /* 0 when the user's stream was given */
  cudaStream_t stream;
  cublasHandle_t blas;
  cu_pool *pool;
  /* CUDA graph capture (backend.cu, experimental): while `capturing`, frees
   * are deferred into `kept` (a graph's kernels hold raw pointers, so their
   * memory must not be handed out again while the graph may replay) and
   * host-synchronising slots return TC_ESTATE. */
  int capturing;
  cudaGraph_t graph;
  cudaGraphExec_t graph_exec;
  void **kept;
  size_t kept_n, kept_cap;
  void *blas_ws; /* cuBLAS workspace set before the first capture */
} cu_ctx;

/* ---- errors (backend.cu) ---- */
/* TC_OK for cudaSuccess; else records "cuda: <where>: <name>: <text>" and
 * returns TC_ENOMEM (cudaErrorMemoryAllocation) or TC_EBACKEND. Clears the
 * non-sticky error so the next call starts clean. */
tc_status cu_check(cudaError_t e, const char *where);
tc_status cu_blas_check(cublasStatus_t s, const char *where);
/* Checks the last kernel launch (bad configuration, no image for the GPU). */
tc_status cu_launched(const char *where);
/* Makes the context's device current (cheap when it already is). */
tc_status cu_enter(cu_ctx *c, const char *where);
/* Argument errors, the way the core reports them. */
tc_status cu_einval(const char *fn, const char *what);
/* TC_ESTATE while a graph is being captured: for the slots that must wait
 * for the device (host copies, host results), which capture cannot hold. */
tc_status cu_no_capture(const cu_ctx *c, const char *fn);

/* The name an op gives the shared argument checks (backends/op_check.h),
 * which every op begins with: "cuda <slot>", as in the module's other
 * messages. */
#define CU_FN(slot) "cuda " slot

/* *out = x * y; 0 when that overflows int64 (x, y >= 0). */
static inline int cu_mul_ok(int64_t x, int64_t y, int64_t *out) {
  if (x != 0 && y > INT64_MAX / x)
    return 0;
  *out = x * y;
  return 1;
}

/* ---- caching device allocator (alloc.cu) ----
 * Sizes are rounded to classes (quarter powers of two, 512 B minimum);
 * freed blocks wait in a per-class free list and are released only when a
 * cudaMalloc fails (then retried) or at destroy. */
tc_status cu_pool_create(cu_pool **out, int device);
void cu_pool_destroy(cu_pool *p); /* frees every block, cached or live */
/* `stream` is the one the block will be used on: while it is captured, a
 * failed cudaMalloc is not retried after freeing the cache. */
tc_status cu_pool_alloc(cu_pool *p, cudaStream_t stream, void **out,
                        size_t bytes);
void cu_pool_free(cu_pool *p, void *ptr); /* NULL: no-op */
/* Scratch for one op: allocated from the pool, freed when the op has been
 * queued (stream order makes the reuse safe). */
static inline tc_status cu_scratch(cu_ctx *c, void **out, size_t bytes) {
  return cu_pool_alloc(c->pool, c->stream, out, bytes);
}
/* Gives scratch (or any pool block) back; while capturing, keeps it for the
 * graph's lifetime instead (backend.cu). NULL: no-op. */
void cu_release_block(cu_ctx *c, void *ptr);

/* ---- launch helpers ---- */
#define CU_THREADS 256
/* Blocks for a grid-stride loop over n items (at least 1, capped). */
static inline unsigned cu_blocks(int64_t n) {
  int64_t b = (n + CU_THREADS - 1) / CU_THREADS;
  if (b < 1)
    b = 1;
  if (b > (1 << 20))
    b = 1 << 20;
  return (unsigned)b;
}
#define CU_FOR(i, n)                                                           \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
       i += (int64_t)gridDim.x * blockDim.x)

#ifdef __CUDACC__
/* ReLU's rule (the CPU's cpu_relu1, as torch.relu): v where v > 0 or NaN,
 * else +0 (-0 included). */
__device__ inline float cu_relu1(float v) {
  return !(v <= 0.f) ? v : 0.f;
}

/* Fixed-pattern warp and block reductions: the combining order depends only
 * on blockDim, so results are the same bits on every run. The block result
 * is valid in thread 0; blockDim.x must be a multiple of 32 (<= 1024). */
template <class T, class Op> __device__ inline T cu_warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1)
    v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}
template <class T, class Op>
__device__ inline T cu_block_reduce(T v, Op op, T identity) {
  __shared__ T part[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = cu_warp_reduce(v, op);
  __syncthreads(); /* part[] may still be read by a previous call */
  if (lane == 0)
    part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x >> 5) ? part[lane] : identity;
    v = cu_warp_reduce(v, op);
  }
  return v;
}
struct cu_op_add {
  template <class T> __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
#endif

/* ---- shared internals ---- */
/* Row-major strided-batched GEMM through cuBLAS (gemm.cu). */
tc_status cu_gemm_rm(cu_ctx *c, int trans_a, int trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float *a, int64_t lda,
                     int64_t stride_a, const float *b, int64_t ldb,
                     int64_t stride_b, float beta, float *y, int64_t ldc,
                     int64_t stride_c, int64_t batch);

/* What cu_channel_reduce sums per channel ch of (n, c, sp) buffers. */
enum {
  CU_CH_SUM_X = 0,      /* out1 = sum x */
  CU_CH_SUM_SQDEV = 1,  /* out1 = sum (x - mean[ch])^2 */
  CU_CH_SUM_DY_XHAT = 2 /* out1 = sum dy, out2 = sum dy*(x-mean)*invstd */
};
/* Per-channel sums in a fixed order (reduce.cu): out (c) = scale * sum, or
 * out += scale * sum when accumulate. out2 is used by CU_CH_SUM_DY_XHAT. */
tc_status cu_channel_reduce(cu_ctx *c, int mode, int64_t n, int64_t ch,
                            int64_t sp, const float *x, const float *dy,
                            const float *mean, const float *invstd, float scale,
                            int accumulate, float *out1, float *out2);

/* ---- ops (one file per family; args documented in tinycnn_backend.h) ---- */
tc_status cu_gemm(void *ctx, const tc_gemm_args *a);

tc_status cu_conv2d_workspace_size(void *ctx, const tc_conv2d_args *a,
                                   size_t *out_bytes);
tc_status cu_conv2d_fwd(void *ctx, const tc_conv2d_args *a);
tc_status cu_conv2d_bwd_data(void *ctx, const tc_conv2d_args *a);
tc_status cu_conv2d_bwd_filter(void *ctx, const tc_conv2d_args *a);
tc_status cu_conv2d_bwd_bias(void *ctx, const tc_conv2d_args *a);

tc_status cu_maxpool2d_fwd(void *ctx, const tc_pool2d_args *a);
tc_status cu_maxpool2d_bwd(void *ctx, const tc_pool2d_args *a);
tc_status cu_avgpool2d_fwd(void *ctx, const tc_pool2d_args *a);
tc_status cu_avgpool2d_bwd(void *ctx, const tc_pool2d_args *a);
tc_status cu_global_avgpool_fwd(void *ctx, const tc_gap_args *a);
tc_status cu_global_avgpool_bwd(void *ctx, const tc_gap_args *a);

tc_status cu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a);
tc_status cu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a);
tc_status cu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a);
tc_status cu_batchnorm_relu_fwd_train(void *ctx, const tc_batchnorm_args *a);
tc_status cu_batchnorm_relu_fwd_infer(void *ctx, const tc_batchnorm_args *a);
tc_status cu_batchnorm_relu_bwd(void *ctx, const tc_batchnorm_args *a);

tc_status cu_relu_fwd(void *ctx, const tc_eltwise_args *a);
tc_status cu_relu_bwd(void *ctx, const tc_eltwise_args *a);
tc_status cu_add(void *ctx, const tc_eltwise_args *a);
tc_status cu_scale(void *ctx, const tc_eltwise_args *a);
tc_status cu_axpy(void *ctx, const tc_eltwise_args *a);
tc_status cu_fill(void *ctx, const tc_eltwise_args *a);
tc_status cu_bias_add(void *ctx, const tc_bias_args *a);
tc_status cu_bias_grad(void *ctx, const tc_bias_args *a);
tc_status cu_copy4d(void *ctx, const tc_copy4d_args *a);
tc_status cu_counter_add(void *ctx, const tc_counter_args *a);

tc_status cu_dropout_fwd(void *ctx, const tc_dropout_args *a);
tc_status cu_dropout_bwd(void *ctx, const tc_dropout_args *a);

tc_status cu_softmax_xent(void *ctx, const tc_loss_args *a);
tc_status cu_nll(void *ctx, const tc_loss_args *a);
tc_status cu_mse(void *ctx, const tc_loss_args *a);
tc_status cu_argmax(void *ctx, const tc_argmax_args *a);

tc_status cu_sgd_update(void *ctx, const tc_sgd_args *a);
tc_status cu_adam_update(void *ctx, const tc_adam_args *a);
tc_status cu_reduce(void *ctx, const tc_reduce_args *a);

/* NCCL communicator (comm_nccl.cu, built with TC_HAVE_NCCL): the procs
 * "tc_cuda_nccl_unique_id" and "tc_cuda_comm_create_nccl". */
#ifdef TC_HAVE_NCCL
tc_status cu_nccl_unique_id(void *out_id, size_t id_bytes);
tc_status cu_comm_create_nccl(tc_comm **out, void *backend_ctx, const void *id,
                              size_t id_bytes, int rank, int size);
#endif

#endif /* TINYCNN_CUDA_BE_H */
