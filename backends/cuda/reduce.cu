/*
 * reduce.cu - deterministic reductions: the `reduce` slot (full reduction
 * of a buffer to one double on the host) and cu_channel_reduce (per-channel
 * sums over (n, c, spatial), used by batch norm, bias-grad and conv
 * bias-grad).
 *
 * Both split the work into parts whose number depends only on the sizes,
 * reduce each part with a fixed-pattern block tree, and combine the parts
 * in index order in a second kernel: no atomics, so every run gives the
 * same bits. The full reduction accumulates in double; channel sums in
 * float (at most a few thousand terms per thread-tree), as the CPU does.
 * MAXABS propagates NaN (a NaN anywhere gives NaN).
 */
#include <math.h>

#include "cuda_be.h"

#define RED_PART_ELEMS 4096 /* elements per part before the parts cap */
#define RED_MAX_PARTS 1024
#define CH_MAX_CHUNKS 64
#define CH_MAX_GRID_X 65535 /* blocks over channels; more loop */

struct op_maxabs {
  __device__ double operator()(double a, double b) const {
    if (a != a || b != b)
      return (double)NAN;
    return a > b ? a : b;
  }
};

template <int OP> __device__ inline double red_map(float v) {
  if (OP == TC_REDUCE_SUM)
    return (double)v;
  if (OP == TC_REDUCE_SUMSQ)
    return (double)v * (double)v;
  if (OP == TC_REDUCE_MAXABS)
    return fabs((double)v);
  /* TC_REDUCE_NONFINITE: the exponent bits, as the CPU (no fp flags) */
  return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u ? 1.0 : 0.0;
}

template <int OP, class Op>
__global__ void k_reduce_part(const float *x, int64_t n, int64_t per,
                              double *part, Op op) {
  int64_t lo = (int64_t)blockIdx.x * per;
  int64_t hi = lo + per < n ? lo + per : n;
  double acc = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
    acc = op(acc, red_map<OP>(x[i]));
  acc = cu_block_reduce(acc, op, 0.0);
  if (threadIdx.x == 0)
    part[blockIdx.x] = acc;
}

template <class Op>
__global__ void k_reduce_final(const double *part, int64_t nparts,
                               double *out, Op op) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < nparts; i += blockDim.x)
    acc = op(acc, part[i]);
  acc = cu_block_reduce(acc, op, 0.0);
  if (threadIdx.x == 0)
    *out = acc;
}

template <int OP, class Op>
static void launch_reduce(cu_ctx *c, const float *x, int64_t n,
                          int64_t nparts, int64_t per, double *part,
                          Op op) {
  k_reduce_part<OP><<<(unsigned)nparts, CU_THREADS, 0, c->stream>>>(
      x, n, per, part, op);
  k_reduce_final<<<1, CU_THREADS, 0, c->stream>>>(part, nparts,
                                                   part + nparts, op);
}

tc_status cu_reduce(void *ctx, const tc_reduce_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_reduce_args(ctx, a, CU_FN("reduce"));
  if (st != TC_OK)
    return st;
  st = cu_no_capture(c, "reduce");
  if (st != TC_OK)
    return st;
  if (a->n == 0) {
    *a->host_out = 0.0;
    return TC_OK;
  }
  st = cu_enter(c, "reduce");
  if (st != TC_OK)
    return st;
  int64_t nparts = (a->n + RED_PART_ELEMS - 1) / RED_PART_ELEMS;
  if (nparts > RED_MAX_PARTS)
    nparts = RED_MAX_PARTS;
  int64_t per = (a->n + nparts - 1) / nparts;
  double *part = NULL, result = 0.0;
  /* parts, then the result in part[nparts] */
  if ((st = cu_scratch(c, (void **)&part,
                       (size_t)(nparts + 1) * sizeof(double))) != TC_OK)
    return st;
  switch (a->op) {
  case TC_REDUCE_SUM:
    launch_reduce<TC_REDUCE_SUM>(c, a->x, a->n, nparts, per, part,
                                 cu_op_add());
    break;
  case TC_REDUCE_SUMSQ:
    launch_reduce<TC_REDUCE_SUMSQ>(c, a->x, a->n, nparts, per, part,
                                   cu_op_add());
    break;
  case TC_REDUCE_MAXABS:
    launch_reduce<TC_REDUCE_MAXABS>(c, a->x, a->n, nparts, per, part,
                                    op_maxabs());
    break;
  default:
    launch_reduce<TC_REDUCE_NONFINITE>(c, a->x, a->n, nparts, per, part,
                                       cu_op_add());
    break;
  }
  st = cu_launched("reduce");
  if (st == TC_OK)
    st = cu_check(cudaMemcpyAsync(&result, part + nparts, sizeof result,
                                  cudaMemcpyDeviceToHost, c->stream),
                  "reduce: copy");
  if (st == TC_OK)
    st = cu_check(cudaStreamSynchronize(c->stream), "reduce");
  cu_release_block(c, part);
  if (st == TC_OK)
    *a->host_out = result;
  return st;
}

/* ---- per-channel sums ------------------------------------------------- */

/* grid (ch, chunks): block (c, k) sums elements [k*per, (k+1)*per) of
 * channel c's n*sp values into part1/part2[c*chunks + k]. */
template <int MODE>
__global__ void k_channel_part(const float *x, const float *dy,
                               const float *mean, const float *invstd,
                               int64_t ch, int64_t sp, int64_t count,
                               int64_t per, float *part1, float *part2) {
  int64_t k = blockIdx.y, chunks = gridDim.y;
  int64_t lo = k * per, hi = lo + per < count ? lo + per : count;
  /* channels stride over grid.x (any count of channels; the sums of one
   * channel do not depend on which block computes them) */
  for (int64_t c = blockIdx.x; c < ch; c += gridDim.x) {
    float m = MODE == CU_CH_SUM_X ? 0.f : mean[c];
    float is = MODE == CU_CH_SUM_DY_XHAT ? invstd[c] : 0.f;
    float s1 = 0.f, s2 = 0.f;
    for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) {
      int64_t off = ((j / sp) * ch + c) * sp + j % sp;
      if (MODE == CU_CH_SUM_X) {
        s1 += x[off];
      } else if (MODE == CU_CH_SUM_SQDEV) {
        float d = x[off] - m;
        s1 += d * d;
      } else {
        float g = dy[off];
        s1 += g;
        s2 += g * ((x[off] - m) * is);
      }
    }
    s1 = cu_block_reduce(s1, cu_op_add(), 0.f);
    if (MODE == CU_CH_SUM_DY_XHAT)
      s2 = cu_block_reduce(s2, cu_op_add(), 0.f);
    if (threadIdx.x == 0) {
      part1[c * chunks + k] = s1;
      if (MODE == CU_CH_SUM_DY_XHAT)
        part2[c * chunks + k] = s2;
    }
  }
}

__global__ void k_channel_final(const float *part1, const float *part2,
                                int64_t ch, int64_t chunks, float scale,
                                int accumulate, float *out1, float *out2) {
  CU_FOR(c, ch) {
    float s1 = 0.f, s2 = 0.f;
    for (int64_t k = 0; k < chunks; k++) {
      s1 += part1[c * chunks + k];
      if (out2)
        s2 += part2[c * chunks + k];
    }
    out1[c] = accumulate ? out1[c] + scale * s1 : scale * s1;
    if (out2)
      out2[c] = accumulate ? out2[c] + scale * s2 : scale * s2;
  }
}

tc_status cu_channel_reduce(cu_ctx *c, int mode, int64_t n, int64_t ch,
                            int64_t sp, const float *x, const float *dy,
                            const float *mean, const float *invstd,
                            float scale, int accumulate, float *out1,
                            float *out2) {
  if (ch <= 0)
    return TC_OK;
  int64_t count = n * sp;
  int64_t chunks = (count + RED_PART_ELEMS - 1) / RED_PART_ELEMS;
  if (chunks > CH_MAX_CHUNKS)
    chunks = CH_MAX_CHUNKS;
  if (chunks < 1)
    chunks = 1;
  int64_t per = (count + chunks - 1) / chunks;
  if (ch > INT64_MAX / (int64_t)(2 * sizeof(float) * CH_MAX_CHUNKS))
    return tc_backend_error(TC_ENOMEM,
                            "cuda: channel reduce: %lld channels "
                            "do not fit in memory",
                            (long long)ch);
  float *part = NULL;
  tc_status st = cu_scratch(c, (void **)&part,
                            (size_t)(2 * ch * chunks) * sizeof(float));
  if (st != TC_OK)
    return st;
  float *part2 = part + ch * chunks;
  /* grid.x is at most 2^31-1 blocks: channels beyond it loop */
  dim3 grid((unsigned)(ch < CH_MAX_GRID_X ? ch : CH_MAX_GRID_X),
            (unsigned)chunks);
  if (mode == CU_CH_SUM_X)
    k_channel_part<CU_CH_SUM_X><<<grid, CU_THREADS, 0, c->stream>>>(
        x, dy, mean, invstd, ch, sp, count, per, part, part2);
  else if (mode == CU_CH_SUM_SQDEV)
    k_channel_part<CU_CH_SUM_SQDEV><<<grid, CU_THREADS, 0, c->stream>>>(
        x, dy, mean, invstd, ch, sp, count, per, part, part2);
  else
    k_channel_part<CU_CH_SUM_DY_XHAT><<<grid, CU_THREADS, 0, c->stream>>>(
        x, dy, mean, invstd, ch, sp, count, per, part, part2);
  st = cu_launched("channel reduce");
  if (st == TC_OK) {
    k_channel_final<<<cu_blocks(ch), CU_THREADS, 0, c->stream>>>(
        part, part2, ch, chunks, scale, accumulate, out1,
        mode == CU_CH_SUM_DY_XHAT ? out2 : NULL);
    st = cu_launched("channel reduce: final");
  }
  cu_release_block(c, part);
  return st;
}
