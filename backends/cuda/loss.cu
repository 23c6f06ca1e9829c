/*
 * loss.cu - fused softmax + cross-entropy (with label smoothing), NLL over
 * log-probabilities, MSE, each with an optional gradient; and row argmax
 * with a correct-count for accuracy.
 *
 * One warp per row computes the row's loss and gradient (warp butterflies
 * give every lane the same bits); row losses are then summed by one block
 * in a fixed order, in double, so the loss is the same on every run.
 * q is the smoothed target: q_j = (1-ls)*[j == label] + ls/classes.
 * A label outside [0, classes) makes that row's loss and gradient NaN and
 * sets a device flag; outside graph capture the flag is read back (one
 * sync; the core reads the loss right after anyway) and the call returns
 * TC_EINVAL as the CPU does (which checks before writing anything; here
 * the outputs are then unspecified). While capturing, the flag is not
 * read: the NaN loss is the only sign. When the caller gives its own flag
 * (tc_loss_args.label_error), the kernel sets that one and
 * nothing is read back or waited for: the call never syncs.
 * logits, target, dlogits: (n, classes)  labels, pred: (n)  loss: 1 float.
 */
#include <math.h>

#include "cuda_be.h"

enum { LOSS_XENT = 0, LOSS_NLL = 1, LOSS_MSE = 2 };

__device__ inline float warp_allsum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ inline float warp_allmax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* One warp per row: row_loss[r] and, if dlogits, the gradient times gfac. */
template <int MODE>
__global__ void k_loss_rows(const float *logits, const int32_t *labels,
                            const float *target, int64_t n, int64_t C,
                            float ls, float gfac, float *dlogits,
                            float *row_loss, int *bad_label) {
  int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  int lane = threadIdx.x & 31;
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
       r < n; r += warps) {
    const float *x = logits + r * C;
    float *g = dlogits ? dlogits + r * C : NULL;
    if (MODE == LOSS_MSE) {
      const float *t = target + r * C;
      float s = 0.f;
      for (int64_t j = lane; j < C; j += 32) {
        float d = x[j] - t[j];
        s += d * d;
        if (g)
          g[j] = 2.f * d * gfac;
      }
      s = warp_allsum(s);
      if (lane == 0)
        row_loss[r] = s;
      continue;
    }
    int32_t y = labels[r];
    bool bad = y < 0 || (int64_t)y >= C;
    if (bad && lane == 0)
      *bad_label = 1; /* every writer stores the same value */
    float off = ls / (float)C, on = 1.f - ls + off;
    float sumx = 0.f, m = -INFINITY;
    for (int64_t j = lane; j < C; j += 32) {
      sumx += x[j];
      m = fmaxf(m, x[j]);
    }
    sumx = warp_allsum(sumx);
    float xy = bad ? NAN : x[y];
    float loss;
    if (MODE == LOSS_XENT) {
      m = warp_allmax(m);
      float se = 0.f;
      for (int64_t j = lane; j < C; j += 32)
        se += expf(x[j] - m);
      se = warp_allsum(se);
      float lse = m + logf(se);
      /* -sum q_j (x_j - lse) with sum q = 1 */
      /* the smoothing term only when ls > 0 (the CPU's rule), so a -inf
       * logit elsewhere gives no 0 * inf = NaN */
      loss = lse - (1.f - ls) * xy - (off > 0.f ? off * sumx : 0.f);
      if (g)
        for (int64_t j = lane; j < C; j += 32) {
          float q = bad ? NAN : (j == y ? on : off);
          g[j] = (expf(x[j] - m) / se - q) * gfac;
        }
    } else {
      loss = -(1.f - ls) * xy - (off > 0.f ? off * sumx : 0.f);
      if (g)
        for (int64_t j = lane; j < C; j += 32) {
          float q = bad ? NAN : (j == y ? on : off);
          g[j] = -q * gfac;
        }
    }
    if (lane == 0)
      row_loss[r] = loss;
  }
}

/* *loss = scale * sum of row_loss (n), in a fixed order. */
__global__ void k_loss_final(const float *row_loss, int64_t n, double scale,
                             float *loss) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    acc += (double)row_loss[i];
  acc = cu_block_reduce(acc, cu_op_add(), 0.0);
  if (threadIdx.x == 0)
    *loss = (float)(acc * scale);
}

template <int MODE>
static tc_status loss_run(void *ctx, const tc_loss_args *a, const char *fn,
                          const char *who) {
  cu_ctx *c = (cu_ctx *)ctx;
  static const tc__op ops[] = {TC__OP_SOFTMAX_XENT, TC__OP_NLL, TC__OP_MSE};
  tc_status st = tc__check_loss_args(ctx, a, who, ops[MODE]);
  if (st != TC_OK)
    return st;
  int32_t *uflag = MODE != LOSS_MSE ? a->label_error : NULL;
  st = cu_enter(c, fn);
  if (st != TC_OK)
    return st;
  /* mean: over rows for xent/nll (PyTorch), over all elements for MSE */
  double count = MODE == LOSS_MSE ? (double)a->n * (double)a->classes
                                  : (double)a->n;
  double scale = a->reduction == TC_REDUCTION_MEAN ? 1.0 / count : 1.0;
  float *rows = NULL; /* n row losses, then the bad-label flag */
  size_t flag_off = ((size_t)a->n * sizeof(float) + 15) & ~(size_t)15;
  if ((st = cu_scratch(c, (void **)&rows, flag_off + sizeof(int))) != TC_OK)
    return st;
  int *bad = uflag ? (int *)uflag : (int *)((char *)rows + flag_off);
  int hbad = 0;
  int check = MODE != LOSS_MSE && !c->capturing && !uflag;
  if (MODE != LOSS_MSE)
    st = cu_check(cudaMemsetAsync(bad, 0, sizeof *bad, c->stream), fn);
  if (st == TC_OK) {
    k_loss_rows<MODE><<<cu_blocks(a->n * 32), CU_THREADS, 0, c->stream>>>(
        a->logits, a->labels, a->target, a->n, a->classes,
        MODE == LOSS_MSE ? 0.f : a->label_smoothing,
        (float)(scale * a->grad_scale), a->dlogits, rows, bad);
    st = cu_launched(fn);
  }
  if (st == TC_OK) {
    k_loss_final<<<1, 1024, 0, c->stream>>>(rows, a->n, scale, a->loss);
    st = cu_launched(fn);
  }
  if (st == TC_OK && check) {
    st = cu_check(cudaMemcpyAsync(&hbad, bad, sizeof hbad,
                                  cudaMemcpyDeviceToHost, c->stream), fn);
    if (st == TC_OK)
      st = cu_check(cudaStreamSynchronize(c->stream), fn);
  }
  cu_release_block(c, rows);
  if (st == TC_OK && hbad)
    st = tc_backend_error(TC_EINVAL, "cuda %s: a label is outside [0, %lld)",
                          fn, (long long)a->classes);
  return st;
}

tc_status cu_softmax_xent(void *ctx, const tc_loss_args *a) {
  return loss_run<LOSS_XENT>(ctx, a, "softmax_xent", CU_FN("softmax_xent"));
}

tc_status cu_nll(void *ctx, const tc_loss_args *a) {
  return loss_run<LOSS_NLL>(ctx, a, "nll", CU_FN("nll"));
}

tc_status cu_mse(void *ctx, const tc_loss_args *a) {
  return loss_run<LOSS_MSE>(ctx, a, "mse", CU_FN("mse"));
}

/* One warp per row: the first maximum, a NaN counting as the largest value
 * (torch.argmax, the CPU backend): the first NaN wins. Each lane keeps its
 * first best (NaN sticks), lanes combine preferring NaN, then the larger,
 * then the lower index. Counts rows whose argmax equals the label (integer
 * atomics: exact). */
__global__ void k_argmax(const float *scores, const int32_t *labels,
                         int32_t *pred, unsigned long long *correct,
                         int64_t n, int64_t C) {
  int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  int lane = threadIdx.x & 31;
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
       r < n; r += warps) {
    const float *x = scores + r * C;
    float best = -INFINITY;
    int64_t idx = C; /* none yet */
    for (int64_t j = lane; j < C; j += 32) {
      float v = x[j];
      if (best != best)
        break; /* a NaN already won this lane's share */
      if (idx == C || v > best || v != v) {
        best = v;
        idx = j;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      float ob = __shfl_xor_sync(0xffffffffu, best, o);
      int64_t oi = __shfl_xor_sync(0xffffffffu, idx, o);
      if (oi == C)
        continue;
      bool bn = best != best, on = ob != ob;
      bool take = idx == C || (on && !bn) ||
                  (on == bn && (ob > best || oi < idx) &&
                   !(best > ob)); /* NaN ties and equal values: lower index */
      if (take) {
        best = ob;
        idx = oi;
      }
    }
    if (idx == C)
      idx = 0;
    if (lane == 0) {
      if (pred)
        pred[r] = (int32_t)idx;
      if (correct && labels[r] == (int32_t)idx)
        atomicAdd(correct, 1ull);
    }
  }
}

tc_status cu_argmax(void *ctx, const tc_argmax_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_argmax_args(ctx, a, CU_FN("argmax"));
  if (st != TC_OK)
    return st;
  int count = a->labels && a->host_correct;
  if (count && c->capturing)
    return cu_no_capture(c, "argmax (with host_correct)");
  if (a->n == 0) {
    if (count)
      *a->host_correct = 0;
    return TC_OK;
  }
  st = cu_enter(c, "argmax");
  if (st != TC_OK)
    return st;
  unsigned long long *dcorrect = NULL, hcorrect = 0;
  if (count) {
    if ((st = cu_scratch(c, (void **)&dcorrect, sizeof *dcorrect)) != TC_OK)
      return st;
    st = cu_check(cudaMemsetAsync(dcorrect, 0, sizeof *dcorrect, c->stream),
                  "argmax");
  }
  if (st == TC_OK) {
    k_argmax<<<cu_blocks(a->n * 32), CU_THREADS, 0, c->stream>>>(
        a->scores, a->labels, a->pred, dcorrect, a->n, a->classes);
    st = cu_launched("argmax");
  }
  if (st == TC_OK && count) {
    st = cu_check(cudaMemcpyAsync(&hcorrect, dcorrect, sizeof hcorrect,
                                  cudaMemcpyDeviceToHost, c->stream),
                  "argmax: copy");
    if (st == TC_OK)
      st = cu_check(cudaStreamSynchronize(c->stream), "argmax");
  }
  cu_release_block(c, dcorrect);
  if (st == TC_OK && count)
    *a->host_correct = (int64_t)hcorrect;
  return st;
}
