/*
 * batchnorm.h - what batchnorm.c (the op entry points, the split of the
 * work, the per-channel coefficients) and batchnorm_kern.c (the reduction
 * and elementwise tasks and their kernels) share: the sizes and the job.
 */
#ifndef TINYCNN_CPU_BATCHNORM_H
#define TINYCNN_CPU_BATCHNORM_H

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

static inline int64_t min64(int64_t x, int64_t y) {
  return x < y ? x : y;
}

/* The tasks (batchnorm_kern.c). Reduction task t: chunk t / groups of
 * block channel group t % groups into part[chunk][channel]; the
 * elementwise passes: per_task (image, channel) planes each. */
void tc__cpu_bn_sums_task(void *arg, int64_t t);
void tc__cpu_bn_apply_task(void *arg, int64_t t);
void tc__cpu_bn_dx_task(void *arg, int64_t t);

#endif /* TINYCNN_CPU_BATCHNORM_H */
