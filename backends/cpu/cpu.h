/*
 * cpu.h - internals of the built-in CPU backend: its context, the one
 * thread pool, and the op entry points that fill the backend table.
 *
 * Threading rule (DESIGN.md section 7): this pool is the only threading
 * layer; OpenBLAS is set to one thread. Work is split into tasks whose count
 * and order do not depend on the number of threads, so reductions give the
 * same bits whatever tc_set_num_threads() says.
 */
#ifndef TINYCNN_CPU_H
#define TINYCNN_CPU_H

#include <stdatomic.h> /* the pool, and flags set by tasks */

#include "../../lib/backend_host.h"

typedef struct cpu_pool cpu_pool;

typedef struct cpu_ctx {
  cpu_pool *pool;
} cpu_ctx;

/* Runs fn(arg, task) for task in [0, n_tasks) on the pool's threads and the
 * caller; returns when all are done. Tasks must be independent. Safe to
 * call from several threads at once: one job runs at a time, the others
 * wait for the pool (threadpool.c). */
typedef void (*cpu_task_fn)(void *arg, int64_t task);
void tc__cpu_parallel_for(cpu_ctx *ctx, int64_t n_tasks, cpu_task_fn fn,
                          void *arg);

/* Floats of scratch each pool thread owns (112 KiB): gemm.c packs its
 * operand panels there. */
#define CPU_SCRATCH_FLOATS ((size_t)28 * 1024)
/* The calling thread's scratch slice: valid only inside a task of ctx's
 * pool (tc__cpu_parallel_for, even of one task). Workers own theirs; slice 0
 * is the caller's, and the pool's job lock gives it to one calling thread
 * at a time (several threads may share a backend). */
float *tc__cpu_scratch(cpu_ctx *ctx);

/* Inside a task: the running thread's index in its pool (0 .. pool size
 * - 1; the caller of tc__cpu_parallel_for is 0), and whether this is the first
 * task that thread runs in the current job. An op that keeps one buffer
 * per pool thread can so cut its work into more tasks than threads (a
 * thread that is ahead takes over the rest of a slower one's tasks) and
 * still set each buffer up once per job. */
int tc__cpu_task_thread(void);
int tc__cpu_task_first(void);

tc_status tc__cpu_pool_create(cpu_pool **out, int n_threads);
void tc__cpu_pool_destroy(cpu_pool *pool);
int tc__cpu_pool_size(const cpu_pool *pool);

/* ---- instruction sets, chosen at run time ----
 * tc__cpu_isa() is the best level this CPU (and the OS) supports, lowered by
 * the environment variable TINYCNN_CPU_ISA=generic|avx2 (to test the
 * portable paths). Kernels with a CPU_AVX2 or CPU_AVX512 variant
 * (cpu_simd.h) call it when tc__cpu_isa() >= CPU_ISA_AVX2 or AVX512. Every
 * variant computes the same operations in the same order (no FMA contraction
 * unless a kernel says so), so the choice never changes a result's bits. */
enum { CPU_ISA_GENERIC = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 };
int tc__cpu_isa(void);
#if defined(__x86_64__) || defined(__i386__)
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

/* Fixed chunking for deterministic reductions: at most CPU_REDUCE_CHUNKS
 * partial sums, combined in order, independent of the thread count. */
#define CPU_REDUCE_CHUNKS 64

/* ---- ops (one file per family; args documented in tinycnn_backend.h) ----
 * Ordinary (strong) declarations: an op file missing from the build is a link
 * error, never a silently NULL slot. */
tc_status tc__cpu_gemm(void *ctx, const tc_gemm_args *a);

tc_status tc__cpu_conv2d_workspace_size(void *ctx, const tc_conv2d_args *a,
                                        size_t *out_bytes);
tc_status tc__cpu_conv2d_fwd(void *ctx, const tc_conv2d_args *a);
tc_status tc__cpu_conv2d_bwd_data(void *ctx, const tc_conv2d_args *a);
tc_status tc__cpu_conv2d_bwd_filter(void *ctx, const tc_conv2d_args *a);
tc_status tc__cpu_conv2d_bwd_bias(void *ctx, const tc_conv2d_args *a);

tc_status tc__cpu_maxpool2d_fwd(void *ctx, const tc_pool2d_args *a);
tc_status tc__cpu_maxpool2d_bwd(void *ctx, const tc_pool2d_args *a);
tc_status tc__cpu_avgpool2d_fwd(void *ctx, const tc_pool2d_args *a);
tc_status tc__cpu_avgpool2d_bwd(void *ctx, const tc_pool2d_args *a);
tc_status tc__cpu_global_avgpool_fwd(void *ctx, const tc_gap_args *a);
tc_status tc__cpu_global_avgpool_bwd(void *ctx, const tc_gap_args *a);

tc_status tc__cpu_batchnorm_fwd_train(void *ctx, const tc_batchnorm_args *a);
tc_status tc__cpu_batchnorm_fwd_infer(void *ctx, const tc_batchnorm_args *a);
tc_status tc__cpu_batchnorm_bwd(void *ctx, const tc_batchnorm_args *a);
tc_status tc__cpu_batchnorm_relu_fwd_train(void *ctx,
                                           const tc_batchnorm_args *a);
tc_status tc__cpu_batchnorm_relu_fwd_infer(void *ctx,
                                           const tc_batchnorm_args *a);
tc_status tc__cpu_batchnorm_relu_bwd(void *ctx, const tc_batchnorm_args *a);

tc_status tc__cpu_relu_fwd(void *ctx, const tc_eltwise_args *a);
tc_status tc__cpu_relu_bwd(void *ctx, const tc_eltwise_args *a);
tc_status tc__cpu_add(void *ctx, const tc_eltwise_args *a);
tc_status tc__cpu_scale(void *ctx, const tc_eltwise_args *a);
tc_status tc__cpu_axpy(void *ctx, const tc_eltwise_args *a);
tc_status tc__cpu_fill(void *ctx, const tc_eltwise_args *a);
tc_status tc__cpu_bias_add(void *ctx, const tc_bias_args *a);
tc_status tc__cpu_bias_grad(void *ctx, const tc_bias_args *a);
tc_status tc__cpu_copy4d(void *ctx, const tc_copy4d_args *a);

tc_status tc__cpu_dropout_fwd(void *ctx, const tc_dropout_args *a);
tc_status tc__cpu_dropout_bwd(void *ctx, const tc_dropout_args *a);

tc_status tc__cpu_softmax_xent(void *ctx, const tc_loss_args *a);
tc_status tc__cpu_nll(void *ctx, const tc_loss_args *a);
tc_status tc__cpu_mse(void *ctx, const tc_loss_args *a);
tc_status tc__cpu_argmax(void *ctx, const tc_argmax_args *a);

tc_status tc__cpu_sgd_update(void *ctx, const tc_sgd_args *a);
tc_status tc__cpu_adam_update(void *ctx, const tc_adam_args *a);
tc_status tc__cpu_reduce(void *ctx, const tc_reduce_args *a);

/* counters */
tc_status tc__cpu_counter_add(void *ctx, const tc_counter_args *a);

#endif /* TINYCNN_CPU_H */
