/*
 * backend.cu - the CUDA backend's table, error helpers, lifecycle (probe,
 * create, destroy) and memory slots (alloc, free, copies, memset,
 * synchronize), plus the module's one exported symbol,
 * tc_backend_module_entry.
 *
 * One instance = one device (the current one at create time), one stream
 * (its own, or the user's from tc_backend_create_args.user_stream), one
 * cuBLAS handle bound to that stream, one caching allocator.
 * CUDA graphs (experimental, see docs/backends.md): the extension procs
 * "tc_graph_begin", "tc_graph_end" and "tc_graph_replay" (reached through
 * get_proc; wrapped by tc_backend_graph_*) capture what the instance's
 * stream is given between begin and end, and replay it.
 * Host bookkeeping uses malloc/free: the core's allocator (tc__malloc) is
 * not exported to modules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_be.h"

#ifndef TC_CUDA_MIN_CC
#define TC_CUDA_MIN_CC 75
#endif

/* ---- errors ---------------------------------------------------------- */

tc_status cu_check(cudaError_t e, const char *where) {
  if (e == cudaSuccess)
    return TC_OK;
  /* clear a non-sticky error so later calls do not see it again */
  (void)cudaGetLastError();
  return tc_backend_error(e == cudaErrorMemoryAllocation ? TC_ENOMEM
                                                         : TC_EBACKEND,
                          "cuda: %s: %s: %s", where, cudaGetErrorName(e),
                          cudaGetErrorString(e));
}

tc_status cu_blas_check(cublasStatus_t s, const char *where) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return TC_OK;
  return tc_backend_error(s == CUBLAS_STATUS_ALLOC_FAILED ? TC_ENOMEM
                                                          : TC_EBACKEND,
                          "cuda: %s: cuBLAS %s: %s", where,
                          cublasGetStatusName(s), cublasGetStatusString(s));
}

tc_status cu_launched(const char *where) {
  return cu_check(cudaGetLastError(), where);
}

tc_status cu_enter(cu_ctx *c, const char *where) {
  int cur = -1;
  tc_status st = cu_check(cudaGetDevice(&cur), where);
  if (st == TC_OK && cur != c->device)
    st = cu_check(cudaSetDevice(c->device), where);
  return st;
}

tc_status cu_einval(const char *fn, const char *what) {
  return tc_backend_error(TC_EINVAL, "cuda %s: %s", fn, what);
}

tc_status cu_no_capture(const cu_ctx *c, const char *fn) {
  if (!c->capturing)
    return TC_OK;
  return tc_backend_error(TC_ESTATE, "cuda %s: not allowed while a CUDA "
                          "graph is being captured (it waits for the "
                          "device or reads host memory)", fn);
}

/* ---- memory kept for a captured graph -------------------------------- */

static void kept_release(cu_ctx *c) {
  for (size_t i = 0; i < c->kept_n; i++)
    cu_pool_free(c->pool, c->kept[i]);
  c->kept_n = 0;
}

void cu_release_block(cu_ctx *c, void *ptr) {
  if (!ptr)
    return;
  if (c->capturing) {
    if (c->kept_n == c->kept_cap) {
      size_t cap = c->kept_cap ? 2 * c->kept_cap : 64;
      void **t = (void **)realloc(c->kept, cap * sizeof *t);
      if (!t)
        return; /* leaks the block into the pool's live set: safe */
      c->kept = t;
      c->kept_cap = cap;
    }
    c->kept[c->kept_n++] = ptr;
    return;
  }
  cu_pool_free(c->pool, ptr);
}

/* Drops the instantiated graph and returns the memory it held. The stream
 * orders any replay still running before later work that reuses it. */
static void graph_drop(cu_ctx *c) {
  if (c->graph_exec)
    (void)cudaGraphExecDestroy(c->graph_exec);
  if (c->graph)
    (void)cudaGraphDestroy(c->graph);
  c->graph_exec = NULL;
  c->graph = NULL;
  kept_release(c);
  (void)cudaGetLastError();
}

/* ---- lifecycle ------------------------------------------------------- */

static tc_status cu_probe(char *msg, size_t msg_size) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (msg && msg_size)
      snprintf(msg, msg_size, "no usable CUDA driver or device (%s: %s)",
               cudaGetErrorName(e), cudaGetErrorString(e));
    return TC_EUNSUPPORTED;
  }
  if (n == 0) {
    if (msg && msg_size)
      snprintf(msg, msg_size, "no CUDA device found");
    return TC_EUNSUPPORTED;
  }
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                             dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                             dev) != cudaSuccess) {
    (void)cudaGetLastError();
    if (msg && msg_size)
      snprintf(msg, msg_size, "cannot query CUDA device %d", dev);
    return TC_EUNSUPPORTED;
  }
  /* the module carries SASS from TC_CUDA_MIN_CC (its build's oldest
   * architecture, backends/cuda/meson.build) up */
  if (major * 10 + minor < TC_CUDA_MIN_CC) {
    if (msg && msg_size)
      snprintf(msg, msg_size,
               "CUDA device %d has compute capability %d.%d; this module "
               "needs %d.%d or newer", dev, major, minor,
               TC_CUDA_MIN_CC / 10, TC_CUDA_MIN_CC % 10);
    return TC_EUNSUPPORTED;
  }
  return TC_OK;
}

/* Frees everything the instance holds, on its own device: a multi-GPU
 * program may destroy it while another device is current (the caller's
 * device is restored). */
static void cu_release(cu_ctx *c) {
  int prev = -1;
  if (cudaGetDevice(&prev) != cudaSuccess) {
    (void)cudaGetLastError();
    prev = -1;
  }
  if (prev != c->device && cudaSetDevice(c->device) != cudaSuccess)
    (void)cudaGetLastError();
  if (c->capturing) { /* abandon the capture */
    cudaGraph_t g = NULL;
    (void)cudaStreamEndCapture(c->stream, &g);
    if (g)
      (void)cudaGraphDestroy(g);
    c->capturing = 0;
  }
  if (c->stream)
    (void)cudaStreamSynchronize(c->stream);
  if (c->pool)
    graph_drop(c);
  free(c->kept);
  if (c->blas) /* before the pool, which holds its workspace */
    (void)cublasDestroy(c->blas);
  cu_pool_destroy(c->pool); /* frees every block, blas_ws included */
  if (c->stream && c->own_stream)
    (void)cudaStreamDestroy(c->stream);
  (void)cudaGetLastError();
  if (prev >= 0 && prev != c->device && cudaSetDevice(prev) != cudaSuccess)
    (void)cudaGetLastError();
  free(c);
}

static tc_status cu_create(void **out_ctx, const tc_backend_create_args *a) {
  if (!out_ctx)
    return cu_einval("create", "out_ctx is NULL");
  cu_ctx *c = (cu_ctx *)calloc(1, sizeof *c);
  if (!c)
    return tc_backend_error(TC_ENOMEM, "cuda create: out of host memory");
  void *user_stream = NULL;
  /* read only the fields the caller's struct has */
  if (a && a->struct_size >= offsetof(tc_backend_create_args, deterministic) +
                                 sizeof a->deterministic)
    c->deterministic = a->deterministic != 0;
  if (a && a->struct_size >= offsetof(tc_backend_create_args, user_stream) +
                                 sizeof a->user_stream)
    user_stream = a->user_stream;
  tc_status st = cu_check(cudaGetDevice(&c->device), "create: cudaGetDevice");
  /* cudaFree(0) makes the primary context now, so its errors show here */
  if (st == TC_OK)
    st = cu_check(cudaFree(0), "create: context");
  if (st == TC_OK && user_stream) {
    c->stream = (cudaStream_t)user_stream;
    c->own_stream = 0;
  } else if (st == TC_OK) {
    st = cu_check(cudaStreamCreateWithFlags(&c->stream,
                                            cudaStreamNonBlocking),
                  "create: cudaStreamCreate");
    c->own_stream = 1;
  }
  if (st == TC_OK)
    st = cu_blas_check(cublasCreate(&c->blas), "create: cublasCreate");
  if (st == TC_OK)
    st = cu_blas_check(cublasSetStream(c->blas, c->stream),
                       "create: cublasSetStream");
  /* plain FP32 (no TF32 tensor ops), so results track the CPU's */
  if (st == TC_OK)
    st = cu_blas_check(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH),
                       "create: cublasSetMathMode");
  if (st == TC_OK)
    st = cu_pool_create(&c->pool, c->device);
  if (st != TC_OK)
    goto fail;
  *out_ctx = c;
  return TC_OK;
fail:
  cu_release(c);
  return st;
}

static void cu_destroy(void *ctx) {
  if (ctx)
    cu_release((cu_ctx *)ctx);
}

static tc_status cu_set_num_threads(void *ctx, int n) {
  (void)ctx;
  (void)n; /* host threads do not matter to the GPU */
  return TC_OK;
}

/* ---- memory ---------------------------------------------------------- */

static tc_status cu_alloc(void *ctx, void **out, size_t bytes) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("alloc", "ctx is NULL");
  if (!out)
    return cu_einval("alloc", "out is NULL");
  tc_status st = cu_enter(c, "alloc");
  if (st != TC_OK)
    return st;
  return cu_pool_alloc(c->pool, c->stream, out, bytes);
}

static void cu_free(void *ctx, void *ptr) {
  if (ctx)
    cu_release_block((cu_ctx *)ctx, ptr);
}

static tc_status cu_copy_h2d(void *ctx, void *dst, const void *src,
                             size_t bytes) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("copy_h2d", "ctx is NULL");
  if (!bytes)
    return TC_OK;
  if (!dst || !src)
    return cu_einval("copy_h2d", "dst or src is NULL");
  /* a captured copy would read `src` at replay time, long after return */
  tc_status st = cu_no_capture(c, "copy_h2d");
  if (st == TC_OK)
    st = cu_enter(c, "copy_h2d");
  if (st == TC_OK)
    st = cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                  c->stream), "copy_h2d");
  if (st != TC_OK)
    return st;
  /* From pageable memory the driver has consumed `src` on return; from
   * pinned memory the copy is truly asynchronous, so wait for it: the
   * caller may reuse `src` as soon as we return. */
  cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, src) != cudaSuccess) {
    (void)cudaGetLastError();
    return cu_check(cudaStreamSynchronize(c->stream), "copy_h2d");
  }
  if (attr.type == cudaMemoryTypeHost)
    return cu_check(cudaStreamSynchronize(c->stream), "copy_h2d");
  return TC_OK;
}

static tc_status cu_copy_d2h(void *ctx, void *dst, const void *src,
                             size_t bytes) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("copy_d2h", "ctx is NULL");
  if (!bytes)
    return TC_OK;
  if (!dst || !src)
    return cu_einval("copy_d2h", "dst or src is NULL");
  tc_status st = cu_no_capture(c, "copy_d2h");
  if (st == TC_OK)
    st = cu_enter(c, "copy_d2h");
  if (st == TC_OK)
    st = cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost,
                                  c->stream), "copy_d2h");
  if (st == TC_OK)
    st = cu_check(cudaStreamSynchronize(c->stream), "copy_d2h");
  return st;
}

static tc_status cu_copy_d2d(void *ctx, void *dst, const void *src,
                             size_t bytes) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("copy_d2d", "ctx is NULL");
  if (!bytes || dst == src)
    return TC_OK;
  if (!dst || !src)
    return cu_einval("copy_d2d", "dst or src is NULL");
  tc_status st = cu_enter(c, "copy_d2d");
  if (st == TC_OK)
    st = cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                  c->stream), "copy_d2d");
  return st;
}

static tc_status cu_memset(void *ctx, void *dst, int byte, size_t bytes) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("memset", "ctx is NULL");
  if (!bytes)
    return TC_OK;
  if (!dst)
    return cu_einval("memset", "dst is NULL");
  tc_status st = cu_enter(c, "memset");
  if (st == TC_OK)
    st = cu_check(cudaMemsetAsync(dst, byte, bytes, c->stream), "memset");
  return st;
}

static tc_status cu_synchronize(void *ctx) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("synchronize", "ctx is NULL");
  tc_status st = cu_no_capture(c, "synchronize");
  if (st == TC_OK)
    st = cu_enter(c, "synchronize");
  if (st == TC_OK)
    st = cu_check(cudaStreamSynchronize(c->stream), "synchronize");
  return st;
}

/* ---- CUDA graphs (experimental; not yet run on a GPU) ------------------
 * begin: waits for the stream, drops the previous graph, gives cuBLAS a
 * fixed workspace (it must not allocate while captured), and starts a
 * relaxed-mode capture of the stream (relaxed: the caching allocator may
 * still cudaMalloc a new block; blocks freed meanwhile are kept for the
 * graph, cu_release_block). end: stops and instantiates. replay: launches
 * the instance on the stream, asynchronously. */

#define CU_BLAS_WS_BYTES ((size_t)32 << 20) /* NVIDIA's advice for sm_90 */

static tc_status cu_graph_begin(void *ctx) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("graph_begin", "ctx is NULL");
  if (c->capturing)
    return tc_backend_error(TC_ESTATE, "cuda graph_begin: a capture is "
                            "already running");
  tc_status st = cu_enter(c, "graph_begin");
  if (st == TC_OK)
    st = cu_check(cudaStreamSynchronize(c->stream), "graph_begin");
  if (st != TC_OK)
    return st;
  graph_drop(c);
  if (!c->blas_ws) {
    if ((st = cu_pool_alloc(c->pool, c->stream, &c->blas_ws,
                            CU_BLAS_WS_BYTES)) != TC_OK)
      return st;
    if ((st = cu_blas_check(cublasSetWorkspace(c->blas, c->blas_ws,
                                               CU_BLAS_WS_BYTES),
                            "graph_begin: cublasSetWorkspace")) != TC_OK) {
      cu_pool_free(c->pool, c->blas_ws);
      c->blas_ws = NULL;
      return st;
    }
  }
  st = cu_check(cudaStreamBeginCapture(c->stream,
                                        cudaStreamCaptureModeRelaxed),
                "graph_begin: cudaStreamBeginCapture");
  if (st == TC_OK)
    c->capturing = 1;
  return st;
}

static tc_status cu_graph_end(void *ctx) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("graph_end", "ctx is NULL");
  if (!c->capturing)
    return tc_backend_error(TC_ESTATE, "cuda graph_end: no capture is "
                            "running (call graph_begin first)");
  cudaGraph_t g = NULL;
  tc_status st = cu_check(cudaStreamEndCapture(c->stream, &g),
                          "graph_end: cudaStreamEndCapture (an operation "
                          "in the capture was not capturable)");
  c->capturing = 0;
  c->graph = g;
  if (st == TC_OK && !g)
    st = tc_backend_error(TC_EBACKEND, "cuda graph_end: empty capture");
  if (st == TC_OK)
    st = cu_check(cudaGraphInstantiate(&c->graph_exec, g, 0),
                  "graph_end: cudaGraphInstantiate");
  if (st != TC_OK)
    graph_drop(c);
  return st;
}

static tc_status cu_graph_replay(void *ctx) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!c)
    return cu_einval("graph_replay", "ctx is NULL");
  if (c->capturing || !c->graph_exec)
    return tc_backend_error(TC_ESTATE, "cuda graph_replay: %s",
                            c->capturing ? "a capture is running"
                                         : "no graph was captured");
  tc_status st = cu_enter(c, "graph_replay");
  if (st == TC_OK)
    st = cu_check(cudaGraphLaunch(c->graph_exec, c->stream),
                  "graph_replay: cudaGraphLaunch");
  return st;
}

/* Extras: "cuda_stream" gives the instance's cudaStream_t and
 * "cublas_handle" its cublasHandle_t (both owned by the backend);
 * "tc_graph_begin", "tc_graph_end", "tc_graph_replay" give functions
 * tc_status (*)(void *ctx) (cast from void *; POSIX allows it). With NCCL
 * (comm_nccl.cu): "tc_cuda_nccl_unique_id" gives
 * tc_status (*)(void *out_id, size_t id_bytes) and
 * "tc_cuda_comm_create_nccl" gives tc_status (*)(tc_comm **out,
 * void *backend_ctx, const void *id, size_t id_bytes, int rank, int size);
 * both also with a NULL ctx. */
static void *cu_get_proc(void *ctx, const char *name) {
  cu_ctx *c = (cu_ctx *)ctx;
  if (!name)
    return NULL;
#ifdef TC_HAVE_NCCL
  if (strcmp(name, "tc_cuda_nccl_unique_id") == 0)
    return (void *)cu_nccl_unique_id;
  if (strcmp(name, "tc_cuda_comm_create_nccl") == 0)
    return (void *)cu_comm_create_nccl;
#endif
  if (strcmp(name, "tc_graph_begin") == 0)
    return (void *)cu_graph_begin;
  if (strcmp(name, "tc_graph_end") == 0)
    return (void *)cu_graph_end;
  if (strcmp(name, "tc_graph_replay") == 0)
    return (void *)cu_graph_replay;
  if (!c)
    return NULL;
  if (strcmp(name, "cuda_stream") == 0)
    return (void *)c->stream;
  if (strcmp(name, "cublas_handle") == 0)
    return (void *)c->blas;
  return NULL;
}

/* ---- the table ------------------------------------------------------- */

/* Filled field by field: C++ (before C++20) has no designated initialisers;
 * a function-built constant is initialised once, at load time. */
static tc_backend_iface make_iface(void) {
  tc_backend_iface t;
  memset(&t, 0, sizeof t);
  t.api_version = TC_BACKEND_API_VERSION;
  t.struct_size = sizeof(tc_backend_iface);
  t.name = "cuda";
  t.probe = cu_probe;
  t.create = cu_create;
  t.destroy = cu_destroy;
  t.set_num_threads = cu_set_num_threads;
  t.alloc = cu_alloc;
  t.free = cu_free;
  t.copy_h2d = cu_copy_h2d;
  t.copy_d2h = cu_copy_d2h;
  t.copy_d2d = cu_copy_d2d;
  t.memset = cu_memset;
  t.synchronize = cu_synchronize;
  t.gemm = cu_gemm;
  t.conv2d_workspace_size = cu_conv2d_workspace_size;
  t.conv2d_fwd = cu_conv2d_fwd;
  t.conv2d_bwd_data = cu_conv2d_bwd_data;
  t.conv2d_bwd_filter = cu_conv2d_bwd_filter;
  t.conv2d_bwd_bias = cu_conv2d_bwd_bias;
  t.maxpool2d_fwd = cu_maxpool2d_fwd;
  t.maxpool2d_bwd = cu_maxpool2d_bwd;
  t.avgpool2d_fwd = cu_avgpool2d_fwd;
  t.avgpool2d_bwd = cu_avgpool2d_bwd;
  t.global_avgpool_fwd = cu_global_avgpool_fwd;
  t.global_avgpool_bwd = cu_global_avgpool_bwd;
  t.batchnorm_fwd_train = cu_batchnorm_fwd_train;
  t.batchnorm_fwd_infer = cu_batchnorm_fwd_infer;
  t.batchnorm_bwd = cu_batchnorm_bwd;
  t.relu_fwd = cu_relu_fwd;
  t.relu_bwd = cu_relu_bwd;
  t.add = cu_add;
  t.scale = cu_scale;
  t.axpy = cu_axpy;
  t.fill = cu_fill;
  t.bias_add = cu_bias_add;
  t.bias_grad = cu_bias_grad;
  t.copy4d = cu_copy4d;
  t.dropout_fwd = cu_dropout_fwd;
  t.dropout_bwd = cu_dropout_bwd;
  t.softmax_xent = cu_softmax_xent;
  t.nll = cu_nll;
  t.mse = cu_mse;
  t.argmax = cu_argmax;
  t.sgd_update = cu_sgd_update;
  t.adam_update = cu_adam_update;
  t.reduce = cu_reduce;
  t.get_proc = cu_get_proc;
  t.batchnorm_relu_fwd_train = cu_batchnorm_relu_fwd_train;
  t.batchnorm_relu_fwd_infer = cu_batchnorm_relu_fwd_infer;
  t.batchnorm_relu_bwd = cu_batchnorm_relu_bwd;
  t.counter_add = cu_counter_add;
  return t;
}

static const tc_backend_iface cu_iface = make_iface();

/* The module's only exported symbol (found by the core with dlsym). */
extern "C" __attribute__((visibility("default"))) const tc_backend_iface *
tc_backend_module_entry(void) {
  return &cu_iface;
}
