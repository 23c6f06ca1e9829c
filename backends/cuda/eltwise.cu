/*
 * eltwise.cu - elementwise ops over n contiguous floats (relu forward and
 * backward, add, scale, axpy, fill), per-channel bias add and bias grad,
 * and the strided 4-D copy.
 *
 * Meanings are in tinycnn_backend.h beside each slot. `fill` writes the
 * bit pattern of alpha (the core also fills int32 buffers through it).
 * A NULL `b` in add counts as zeros. Bias grad sums through
 * cu_channel_reduce (fixed order). relu keeps NaN (cu_relu1, as torch.relu
 * and the CPU backend); relu_bwd passes no gradient where y is NaN. The
 * module is built with --fmad=false, so alpha*a + beta*b rounds twice, as
 * the CPU's C (ISO mode: no contraction), and the results have the CPU's
 * bits.
 */
#include <string.h>

#include "cuda_be.h"

__global__ void k_relu_fwd(const float *a, float *y, int64_t n) {
  CU_FOR(i, n) y[i] = cu_relu1(a[i]);
}

__global__ void k_relu_bwd(const float *a, const float *b, float *y,
                           int64_t n) {
  CU_FOR(i, n) y[i] = a[i] > 0.f ? b[i] : 0.f;
}

/* a NULL b: y = alpha*a exactly (no + 0.f, which would turn -0 into +0) */
__global__ void k_add(const float *a, const float *b, float *y, int64_t n,
                      float alpha, float beta) {
  CU_FOR(i, n) y[i] = b ? alpha * a[i] + beta * b[i] : alpha * a[i];
}

__global__ void k_scale(const float *a, float *y, int64_t n, float alpha) {
  CU_FOR(i, n) y[i] = alpha * a[i];
}

__global__ void k_axpy(const float *a, float *y, int64_t n, float alpha) {
  CU_FOR(i, n) y[i] += alpha * a[i];
}

__global__ void k_fill(uint32_t *y, int64_t n, uint32_t bits) {
  CU_FOR(i, n) y[i] = bits;
}

/* y: (n,c,sp) += bias: (c) */
__global__ void k_bias_add(float *y, const float *bias, int64_t n, int64_t c,
                           int64_t sp) {
  int64_t total = n * c * sp;
  CU_FOR(i, total) y[i] += bias[(i / sp) % c];
}

struct copy4d_geom {
  int64_t shape[4], ss[4], ds[4];
};

__global__ void k_copy4d(const float *src, float *dst, copy4d_geom g,
                         int64_t total, int accumulate) {
  CU_FOR(i, total) {
    int64_t i3 = i % g.shape[3], i2 = (i / g.shape[3]) % g.shape[2];
    int64_t i1 = (i / (g.shape[3] * g.shape[2])) % g.shape[1];
    int64_t i0 = i / (g.shape[3] * g.shape[2] * g.shape[1]);
    float v = src[i0 * g.ss[0] + i1 * g.ss[1] + i2 * g.ss[2] + i3 * g.ss[3]];
    float *d = dst + i0 * g.ds[0] + i1 * g.ds[1] + i2 * g.ds[2] +
               i3 * g.ds[3];
    *d = accumulate ? *d + v : v;
  }
}

/* When destinations repeat: one thread, elements in index order (as the
 * CPU backend's single task), so accumulation neither races nor depends on
 * scheduling. Only stride patterns that copy4d_split cannot cut take it. */
__global__ void k_copy4d_serial(const float *src, float *dst, copy4d_geom g,
                                int accumulate) {
  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  for (int64_t i0 = 0; i0 < g.shape[0]; i0++)
    for (int64_t i1 = 0; i1 < g.shape[1]; i1++)
      for (int64_t i2 = 0; i2 < g.shape[2]; i2++)
        for (int64_t i3 = 0; i3 < g.shape[3]; i3++) {
          float v = src[i0 * g.ss[0] + i1 * g.ss[1] + i2 * g.ss[2] +
                        i3 * g.ss[3]];
          float *d = dst + i0 * g.ds[0] + i1 * g.ds[1] + i2 * g.ds[2] +
                     i3 * g.ds[3];
          *d = accumulate ? *d + v : v;
        }
}

/* Repeated destinations whose repetition comes only from dimensions with
 * dst stride 0 (a sum over them: bias-like reductions, broadcasts back):
 * the other ("outer") dimensions reach distinct elements, so one thread
 * per outer index owns its dst element and walks the stride-0 ("inner")
 * dimensions in index order. For a fixed dst element that is the order in
 * which the serial walk meets its contributions, so the sums (and, without
 * accumulate, the last value written) are the serial kernel's bits.
 * outer/inner: shape and strides of each group, padded with extent 1. */
struct copy4d_split {
  int64_t oshape[4], oss[4], ods[4]; /* outer dims, in index order */
  int64_t ishape[4], iss[4];         /* inner dims, in index order */
};

__global__ void k_copy4d_reduce(const float *src, float *dst, copy4d_split g,
                                int64_t outer, int accumulate) {
  CU_FOR(o, outer) {
    int64_t r = o, soff = 0, doff = 0;
    for (int d = 3; d >= 0; d--) {
      int64_t i = r % g.oshape[d];
      r /= g.oshape[d];
      soff += i * g.oss[d];
      doff += i * g.ods[d];
    }
    float acc = dst[doff];
    float v = acc;
    for (int64_t i0 = 0; i0 < g.ishape[0]; i0++)
      for (int64_t i1 = 0; i1 < g.ishape[1]; i1++)
        for (int64_t i2 = 0; i2 < g.ishape[2]; i2++)
          for (int64_t i3 = 0; i3 < g.ishape[3]; i3++) {
            v = src[soff + i0 * g.iss[0] + i1 * g.iss[1] + i2 * g.iss[2] +
                    i3 * g.iss[3]];
            if (accumulate)
              acc = acc + v;
          }
    dst[doff] = accumulate ? acc : v;
  }
}

/* True when distinct indices reach distinct dst elements (the CPU
 * backend's test): sorted by |stride|, each dimension's stride must pass
 * the whole extent of the smaller ones. */
static int dst_injective(const tc_copy4d_args *a) {
  int64_t st[4], ext[4];
  int m = 0;
  for (int d = 0; d < 4; d++) {
    if (a->shape[d] <= 1)
      continue;
    int64_t s = a->dst_stride[d];
    if (s == INT64_MIN)
      return 0;
    st[m] = s < 0 ? -s : s;
    ext[m] = a->shape[d];
    m++;
  }
  for (int i = 1; i < m; i++)
    for (int k = i; k > 0 && st[k] < st[k - 1]; k--) {
      int64_t t = st[k];
      st[k] = st[k - 1], st[k - 1] = t;
      t = ext[k];
      ext[k] = ext[k - 1], ext[k - 1] = t;
    }
  int64_t span = 0;
  for (int i = 0; i < m; i++) {
    int64_t reach;
    if (st[i] <= span || !cu_mul_ok(st[i], ext[i] - 1, &reach) ||
        reach > INT64_MAX - span)
      return 0;
    span += reach;
  }
  return 1;
}

/* Splits a's dimensions into stride-0 ones (inner) and the rest (outer);
 * 1 when the outer ones reach distinct dst elements, so k_copy4d_reduce
 * applies. Extent-1 dimensions go outer (they change nothing). */
static int copy4d_reduce_split(const tc_copy4d_args *a, copy4d_split *g,
                               int64_t *outer) {
  tc_copy4d_args o = *a;
  int no = 0, ni = 0;
  *outer = 1;
  for (int d = 0; d < 4; d++) {
    g->oshape[d] = g->ishape[d] = 1;
    g->oss[d] = g->ods[d] = g->iss[d] = 0;
  }
  for (int d = 0; d < 4; d++) {
    if (a->dst_stride[d] == 0 && a->shape[d] > 1) {
      g->ishape[ni] = a->shape[d];
      g->iss[ni++] = a->src_stride[d];
      o.shape[d] = 1;
    } else {
      g->oshape[no] = a->shape[d];
      g->oss[no] = a->src_stride[d];
      g->ods[no++] = a->dst_stride[d];
      *outer *= a->shape[d];
    }
  }
  /* right-align the outer dims so the kernel's last index varies fastest */
  for (int d = 3; d >= 0; d--) {
    int from = d - (4 - no);
    int64_t sh = from >= 0 ? g->oshape[from] : 1;
    int64_t ss = from >= 0 ? g->oss[from] : 0;
    int64_t ds = from >= 0 ? g->ods[from] : 0;
    g->oshape[d] = sh, g->oss[d] = ss, g->ods[d] = ds;
  }
  return ni > 0 && dst_injective(&o);
}

/* The shared checks (backends/op_check.c), then the device. */
static tc_status elt_enter(cu_ctx *c, const char *fn, const char *who,
                           tc__op op, const tc_eltwise_args *a) {
  tc_status st = tc__check_eltwise_args(c, a, who, op);
  if (st != TC_OK || a->n == 0)
    return st;
  return cu_enter(c, fn);
}

#define ELT_PROLOGUE(fn, op)                                                   \
  cu_ctx *c = (cu_ctx *)ctx;                                                   \
  tc_status st = elt_enter(c, fn, CU_FN(fn), op, a);                           \
  if (st != TC_OK || a->n == 0)                                                \
    return st;

tc_status cu_relu_fwd(void *ctx, const tc_eltwise_args *a) {
  ELT_PROLOGUE("relu_fwd", TC__OP_RELU_FWD)
  k_relu_fwd<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(a->a, a->y,
                                                            a->n);
  return cu_launched("relu_fwd");
}

tc_status cu_relu_bwd(void *ctx, const tc_eltwise_args *a) {
  ELT_PROLOGUE("relu_bwd", TC__OP_RELU_BWD)
  k_relu_bwd<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(a->a, a->b,
                                                            a->y, a->n);
  return cu_launched("relu_bwd");
}

tc_status cu_add(void *ctx, const tc_eltwise_args *a) {
  ELT_PROLOGUE("add", TC__OP_ADD)
  k_add<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(a->a, a->b, a->y,
                                                       a->n, a->alpha,
                                                       a->beta);
  return cu_launched("add");
}

tc_status cu_scale(void *ctx, const tc_eltwise_args *a) {
  ELT_PROLOGUE("scale", TC__OP_SCALE)
  k_scale<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(a->a, a->y, a->n,
                                                         a->alpha);
  return cu_launched("scale");
}

tc_status cu_axpy(void *ctx, const tc_eltwise_args *a) {
  ELT_PROLOGUE("axpy", TC__OP_AXPY)
  k_axpy<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(a->a, a->y, a->n,
                                                        a->alpha);
  return cu_launched("axpy");
}

tc_status cu_fill(void *ctx, const tc_eltwise_args *a) {
  ELT_PROLOGUE("fill", TC__OP_FILL)
  uint32_t bits;
  memcpy(&bits, &a->alpha, sizeof bits);
  k_fill<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>((uint32_t *)a->y,
                                                        a->n, bits);
  return cu_launched("fill");
}

tc_status cu_bias_add(void *ctx, const tc_bias_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st =
      tc__check_bias_args(ctx, a, CU_FN("bias_add"), TC__OP_BIAS_ADD);
  if (st != TC_OK || a->n * a->c * a->spatial == 0)
    return st;
  if ((st = cu_enter(c, "bias_add")) != TC_OK)
    return st;
  k_bias_add<<<cu_blocks(a->n * a->c * a->spatial), CU_THREADS, 0,
               c->stream>>>(a->y, a->bias, a->n, a->c, a->spatial);
  return cu_launched("bias_add");
}

tc_status cu_bias_grad(void *ctx, const tc_bias_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st =
      tc__check_bias_args(ctx, a, CU_FN("bias_grad"), TC__OP_BIAS_GRAD);
  if (st != TC_OK || a->c == 0)
    return st;
  if ((st = cu_enter(c, "bias_grad")) != TC_OK)
    return st;
  return cu_channel_reduce(c, CU_CH_SUM_X, a->n, a->c, a->spatial, a->dy,
                           NULL, NULL, NULL, 1.f, a->accumulate, a->db,
                           NULL);
}

tc_status cu_copy4d(void *ctx, const tc_copy4d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_copy4d_args(ctx, a, CU_FN("copy4d"));
  if (st != TC_OK)
    return st;
  copy4d_geom g;
  int64_t total = 1;
  for (int d = 0; d < 4; d++) {
    total *= a->shape[d]; /* checked: no overflow */
    g.shape[d] = a->shape[d];
    g.ss[d] = a->src_stride[d];
    g.ds[d] = a->dst_stride[d];
  }
  if (total == 0)
    return TC_OK;
  st = cu_enter(c, "copy4d");
  if (st != TC_OK)
    return st;
  copy4d_split sg;
  int64_t outer = 0;
  if (dst_injective(a))
    k_copy4d<<<cu_blocks(total), CU_THREADS, 0, c->stream>>>(
        a->src, a->dst, g, total, a->accumulate);
  else if (copy4d_reduce_split(a, &sg, &outer))
    k_copy4d_reduce<<<cu_blocks(outer), CU_THREADS, 0, c->stream>>>(
        a->src, a->dst, sg, outer, a->accumulate);
  else
    k_copy4d_serial<<<1, 32, 0, c->stream>>>(a->src, a->dst, g,
                                             a->accumulate);
  return cu_launched("copy4d");
}

/* ---- counters ---- */

__global__ void k_counter_add(int64_t *x, int64_t n, int64_t delta) {
  CU_FOR(i, n) {
    x[i] = (int64_t)((unsigned long long)x[i] + (unsigned long long)delta);
  }
}

tc_status cu_counter_add(void *ctx, const tc_counter_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  tc_status st = tc__check_counter_args(ctx, a, CU_FN("counter_add"));
  if (st != TC_OK || a->n == 0)
    return st;
  st = cu_enter(c, "counter_add");
  if (st != TC_OK)
    return st;
  k_counter_add<<<cu_blocks(a->n), CU_THREADS, 0, c->stream>>>(a->x, a->n,
                                                               a->delta);
  return cu_launched("counter_add");
}
