/*
 * backend.c - the CPU backend's table, lifecycle and memory slots. Memory is
 * host memory from the library's allocator (64-byte aligned), so a user's
 * tc_set_allocator() sees every tensor.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "conv2d_winograd.h"
#include "cpu.h"

/* OpenBLAS's thread control; declared here as Debian's cblas.h has it only
 * in some versions. */
void openblas_set_num_threads(int num_threads);

static atomic_int isa_level = -1;

int tc__cpu_isa(void) {
  int v = atomic_load_explicit(&isa_level, memory_order_relaxed);
  if (v >= 0)
    return v;
  v = CPU_ISA_GENERIC;
#if CPU_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    v = CPU_ISA_AVX2;
  if (v == CPU_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    v = CPU_ISA_AVX512;
#endif
  const char *env = getenv("TINYCNN_CPU_ISA");
  if (env && !strcmp(env, "generic"))
    v = CPU_ISA_GENERIC;
  else if (env && !strcmp(env, "avx2") && v > CPU_ISA_AVX2)
    v = CPU_ISA_AVX2;
  atomic_store_explicit(&isa_level, v, memory_order_relaxed);
  return v;
}

/* get_proc extras: "tc_cpu_isa_name" gives const char *(*)(void), the
 * kernel level this process runs ("avx512", "avx2" or "generic", after
 * TINYCNN_CPU_ISA), so a benchmark can show what it measured;
 * "tc_cpu_set_winograd" gives void (*)(int), the Winograd switch of
 * conv2d_winograd.h (tests force it on and off with it). */
static const char *cpu_isa_name(void) {
  int v = tc__cpu_isa();
  return v >= CPU_ISA_AVX512 ? "avx512"
         : v >= CPU_ISA_AVX2 ? "avx2"
                             : "generic";
}

static void *cpu_get_proc(void *ctx, const char *name) {
  (void)ctx;
  if (name && strcmp(name, "tc_cpu_isa_name") == 0)
    return (void *)cpu_isa_name;
  if (name && strcmp(name, "tc_cpu_set_winograd") == 0)
    return (void *)tc__cpu_wino_set_mode;
  return NULL;
}

static tc_status cpu_probe(char *msg, size_t msg_size) {
  (void)msg;
  (void)msg_size;
  return TC_OK;
}

static tc_status cpu_create(void **out_ctx, const tc_backend_create_args *a) {
  int n = a && a->num_threads > 0 ? a->num_threads : tc__num_threads();
  cpu_ctx *c = tc__calloc(1, sizeof *c);
  if (!c)
    return tc__oom("tc_backend_create(cpu)");
  tc_status st = tc__cpu_pool_create(&c->pool, n);
  if (st != TC_OK) {
    tc__free(c);
    return st;
  }
  /* one threading layer: ours (DESIGN.md section 7) */
  openblas_set_num_threads(1);
  *out_ctx = c;
  return TC_OK;
}

static void cpu_destroy(void *ctx) {
  cpu_ctx *c = ctx;
  if (!c)
    return;
  tc__cpu_pool_destroy(c->pool);
  tc__free(c);
}

static tc_status cpu_set_num_threads(void *ctx, int n) {
  cpu_ctx *c = ctx;
  cpu_pool *p;
  tc_status st = tc__cpu_pool_create(&p, n > 0 ? n : tc__num_threads());
  if (st != TC_OK)
    return st;
  tc__cpu_pool_destroy(c->pool);
  c->pool = p;
  return TC_OK;
}

static tc_status cpu_alloc(void *ctx, void **out, size_t bytes) {
  (void)ctx;
  void *p = tc__malloc(bytes ? bytes : 1);
  if (!p)
    return tc__error(TC_ENOMEM, "cpu backend: cannot allocate %zu bytes",
                     bytes);
  *out = p;
  return TC_OK;
}

static void cpu_free(void *ctx, void *ptr) {
  (void)ctx;
  tc__free(ptr);
}

static tc_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
  (void)ctx;
  if (bytes)
    memmove(dst, src, bytes);
  return TC_OK;
}

static tc_status cpu_memset(void *ctx, void *dst, int byte, size_t bytes) {
  (void)ctx;
  if (bytes)
    memset(dst, byte, bytes);
  return TC_OK;
}

static tc_status cpu_synchronize(void *ctx) {
  (void)ctx;
  return TC_OK;
}

static const tc_backend_iface cpu_iface = {
    .api_version = TC_BACKEND_API_VERSION,
    .struct_size = sizeof(tc_backend_iface),
    .name = "cpu",
    .probe = cpu_probe,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .set_num_threads = cpu_set_num_threads,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_h2d = cpu_copy,
    .copy_d2h = cpu_copy,
    .copy_d2d = cpu_copy,
    .memset = cpu_memset,
    .synchronize = cpu_synchronize,
    .gemm = tc__cpu_gemm,
    .conv2d_workspace_size = tc__cpu_conv2d_workspace_size,
    .conv2d_fwd = tc__cpu_conv2d_fwd,
    .conv2d_bwd_data = tc__cpu_conv2d_bwd_data,
    .conv2d_bwd_filter = tc__cpu_conv2d_bwd_filter,
    .conv2d_bwd_bias = tc__cpu_conv2d_bwd_bias,
    .maxpool2d_fwd = tc__cpu_maxpool2d_fwd,
    .maxpool2d_bwd = tc__cpu_maxpool2d_bwd,
    .avgpool2d_fwd = tc__cpu_avgpool2d_fwd,
    .avgpool2d_bwd = tc__cpu_avgpool2d_bwd,
    .global_avgpool_fwd = tc__cpu_global_avgpool_fwd,
    .global_avgpool_bwd = tc__cpu_global_avgpool_bwd,
    .batchnorm_fwd_train = tc__cpu_batchnorm_fwd_train,
    .batchnorm_fwd_infer = tc__cpu_batchnorm_fwd_infer,
    .batchnorm_bwd = tc__cpu_batchnorm_bwd,
    .relu_fwd = tc__cpu_relu_fwd,
    .relu_bwd = tc__cpu_relu_bwd,
    .add = tc__cpu_add,
    .scale = tc__cpu_scale,
    .axpy = tc__cpu_axpy,
    .fill = tc__cpu_fill,
    .bias_add = tc__cpu_bias_add,
    .bias_grad = tc__cpu_bias_grad,
    .copy4d = tc__cpu_copy4d,
    .dropout_fwd = tc__cpu_dropout_fwd,
    .dropout_bwd = tc__cpu_dropout_bwd,
    .softmax_xent = tc__cpu_softmax_xent,
    .nll = tc__cpu_nll,
    .mse = tc__cpu_mse,
    .argmax = tc__cpu_argmax,
    .sgd_update = tc__cpu_sgd_update,
    .adam_update = tc__cpu_adam_update,
    .reduce = tc__cpu_reduce,
    .get_proc = cpu_get_proc,
    .batchnorm_relu_fwd_train = tc__cpu_batchnorm_relu_fwd_train,
    .batchnorm_relu_fwd_infer = tc__cpu_batchnorm_relu_fwd_infer,
    .batchnorm_relu_bwd = tc__cpu_batchnorm_relu_bwd,
    .counter_add = tc__cpu_counter_add,
};

const tc_backend_iface *tc__cpu_backend_iface(void) {
  return &cpu_iface;
}
