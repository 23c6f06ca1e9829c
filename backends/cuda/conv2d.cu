/*
 * conv2d.cu - 2-D convolution (cross-correlation, groups 1) forward,
 * backward-data, backward-filter and bias-grad, by im2col/col2im kernels
 * and cuBLAS GEMMs.
 *
 * The workspace holds a chunk of B images at once: their columns,
 * col (c*r*s, B*P) with P = out_h*out_w and image b at columns
 * [b*P, (b+1)*P), followed by a transposed copy of dy, dyT (k, B*P), used
 * by backward-filter. B is the largest count that fits the workspace
 * (conv2d_workspace_size asks for up to CU_CONV_WS_CAP bytes).
 *  - forward:  y[b] (k,P) = W (k,crs) x col[:, b] (crs,P), one strided
 *    batched GEMM per chunk (W has stride 0), then the bias.
 *  - bwd data: col[:, b] = W^T x dy[b]; col2im gathers, per input pixel, the
 *    columns that read it in a fixed order (no atomics).
 *  - bwd filter: dw (k,crs) (+)= dyT (k, B*P) x col^T: one GEMM per chunk
 *    whose K loop runs over the chunk's images, chunks added in order.
 *    Deterministic in every mode: the split depends only on the shapes and
 *    workspace size, and cuBLAS GEMMs are bitwise reproducible.
 * Not here: direct kernels for tiny channel counts, 1x1 shortcuts.
 */
#include "cuda_be.h"

#define CU_CONV_WS_CAP ((int64_t)128 << 20)

typedef struct conv_geom {
  int64_t crs, P, per_image; /* per_image: workspace bytes per image */
} conv_geom;

/* The shared checks (backends/op_check.c) for slot `op`, then this
 * backend's geometry. */
static tc_status conv_check(void *ctx, const char *fn, tc__op op,
                            const tc_conv2d_args *a, conv_geom *g) {
  tc_status st = tc__check_conv2d_args(ctx, a, fn, op);
  if (st != TC_OK)
    return st;
  /* the checks bound these: P, crs, k*crs fit an int */
  int64_t P = a->out_h * a->out_w, crs = a->c * a->r * a->s, kp, per;
  /* this backend's workspace per image: columns and dyT; fits after the
   * checks, kept as a guard */
  if (!cu_mul_ok(crs + a->k, P, &kp) ||
      !cu_mul_ok(kp, (int64_t)sizeof(float), &per))
    return tc_backend_error(TC_EINVAL,
                            "%s: problem too large (CRS "
                            "%lld, P %lld)",
                            fn, (long long)crs, (long long)P);
  g->P = P;
  g->crs = crs;
  g->per_image = per;
  return TC_OK;
}

/* Images per chunk that the given workspace holds (0: too small). */
static int64_t chunk_images(const tc_conv2d_args *a, const conv_geom *g) {
  if (!a->workspace || ((uintptr_t)a->workspace & (sizeof(float) - 1)))
    return 0; /* none, or not float-aligned */
  int64_t b = (int64_t)(a->workspace_size / (size_t)g->per_image);
  return b < a->n ? b : a->n;
}

static tc_status ws_error(const char *fn, const conv_geom *g,
                          const tc_conv2d_args *a) {
  return tc_backend_error(TC_EINVAL, "cuda %s: workspace %p of %zu bytes is "
                          "too small (need %lld; see conv2d_workspace_size)",
                          fn, a->workspace, a->workspace_size,
                          (long long)g->per_image);
}

/* x: (nb,c,h,w) -> col (crs, ld) with image b at columns b*P.. */
__global__ void k_im2col(const float *x, float *col, int64_t nb, int64_t c,
                         int64_t h, int64_t w, int64_t r, int64_t s,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                         int64_t dh, int64_t dw, int64_t oh_, int64_t ow_) {
  int64_t P = oh_ * ow_, ld = nb * P, total = c * nb * P;
  CU_FOR(i, total) {
    int64_t ow = i % ow_, oh = (i / ow_) % oh_, b = (i / P) % nb,
            ci = i / (P * nb);
    const float *xp = x + (b * c + ci) * h * w;
    float *cp = col + ci * r * s * ld + b * P + oh * ow_ + ow;
    for (int64_t ki = 0; ki < r; ki++) {
      int64_t ih = oh * sh - ph + ki * dh;
      for (int64_t kj = 0; kj < s; kj++) {
        int64_t iw = ow * sw - pw + kj * dw;
        bool in = ih >= 0 && ih < h && iw >= 0 && iw < w;
        cp[(ki * s + kj) * ld] = in ? xp[ih * w + iw] : 0.f;
      }
    }
  }
}

/* col (crs, ld) -> dx: (nb,c,h,w), each pixel summing its columns in
 * (ki, kj) order. */
__global__ void k_col2im(const float *col, float *dx, int64_t nb, int64_t c,
                         int64_t h, int64_t w, int64_t r, int64_t s,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                         int64_t dh, int64_t dw, int64_t oh_, int64_t ow_,
                         int accumulate) {
  int64_t P = oh_ * ow_, ld = nb * P, total = nb * c * h * w;
  CU_FOR(i, total) {
    int64_t iw = i % w, ih = (i / w) % h, ci = (i / (h * w)) % c,
            b = i / (c * h * w);
    float sum = 0.f;
    for (int64_t ki = 0; ki < r; ki++) {
      int64_t th = ih + ph - ki * dh;
      if (th < 0 || th % sh)
        continue;
      int64_t oh = th / sh;
      if (oh >= oh_)
        continue;
      for (int64_t kj = 0; kj < s; kj++) {
        int64_t tw = iw + pw - kj * dw;
        if (tw < 0 || tw % sw)
          continue;
        int64_t ow = tw / sw;
        if (ow >= ow_)
          continue;
        sum += col[((ci * r + ki) * s + kj) * ld + b * P + oh * ow_ + ow];
      }
    }
    dx[i] = accumulate ? dx[i] + sum : sum;
  }
}

/* dy: (nb,k,P) -> dyT (k, nb*P) */
__global__ void k_dy_transpose(const float *dy, float *dyt, int64_t nb,
                               int64_t k, int64_t P) {
  int64_t total = nb * k * P;
  CU_FOR(i, total) {
    int64_t p = i % P, kk = (i / P) % k, b = i / (P * k);
    dyt[kk * nb * P + b * P + p] = dy[i];
  }
}

/* y: (n,k,P) += bias: (k) */
__global__ void k_conv_bias(float *y, const float *bias, int64_t n,
                            int64_t k, int64_t P) {
  int64_t total = n * k * P;
  CU_FOR(i, total) y[i] += bias[(i / P) % k];
}

tc_status cu_conv2d_workspace_size(void *ctx, const tc_conv2d_args *a,
                                   size_t *out_bytes) {
  (void)ctx;
  conv_geom g;
  tc_status st = conv_check(ctx, CU_FN("conv2d_workspace_size"),
                            TC__OP_CONV2D_WORKSPACE_SIZE, a, &g);
  if (st != TC_OK)
    return st;
  if (!out_bytes)
    return cu_einval("conv2d_workspace_size", "out_bytes is NULL");
  int64_t b = CU_CONV_WS_CAP / g.per_image;
  if (b > a->n)
    b = a->n;
  if (b < 1)
    b = 1;
  *out_bytes = (size_t)(b * g.per_image);
  return TC_OK;
}

#define IM2COL_ARGS(a, nb, x, col)                                             \
  (x), (col), (nb), (a)->c, (a)->h, (a)->w, (a)->r, (a)->s, (a)->stride_h,     \
      (a)->stride_w, (a)->pad_h, (a)->pad_w, (a)->dil_h, (a)->dil_w,          \
      (a)->out_h, (a)->out_w

tc_status cu_conv2d_fwd(void *ctx, const tc_conv2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  conv_geom g;
  tc_status st =
      conv_check(ctx, CU_FN("conv2d_fwd"), TC__OP_CONV2D_FWD, a, &g);
  if (st != TC_OK || a->n == 0)
    return st;
  int64_t B = chunk_images(a, &g);
  if (B < 1)
    return ws_error("conv2d_fwd", &g, a);
  if ((st = cu_enter(c, "conv2d_fwd")) != TC_OK)
    return st;
  float *col = (float *)a->workspace;
  int64_t chw = a->c * a->h * a->w;
  for (int64_t b0 = 0; b0 < a->n && st == TC_OK; b0 += B) {
    int64_t nb = a->n - b0 < B ? a->n - b0 : B;
    k_im2col<<<cu_blocks(a->c * nb * g.P), CU_THREADS, 0, c->stream>>>(
        IM2COL_ARGS(a, nb, a->x + b0 * chw, col));
    st = cu_launched("conv2d_fwd: im2col");
    /* y[b] (k,P) = W (k,crs) x col[:, b*P..] (crs,P; ld nb*P) */
    if (st == TC_OK)
      st = cu_gemm_rm(c, 0, 0, a->k, g.P, g.crs, 1.f, a->wt, g.crs, 0, col,
                      nb * g.P, g.P, 0.f, a->y + b0 * a->k * g.P, g.P,
                      a->k * g.P, nb);
  }
  if (st == TC_OK && a->bias) {
    k_conv_bias<<<cu_blocks(a->n * a->k * g.P), CU_THREADS, 0, c->stream>>>(
        a->y, a->bias, a->n, a->k, g.P);
    st = cu_launched("conv2d_fwd: bias");
  }
  return st;
}

tc_status cu_conv2d_bwd_data(void *ctx, const tc_conv2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  conv_geom g;
  tc_status st = conv_check(ctx, CU_FN("conv2d_bwd_data"),
                            TC__OP_CONV2D_BWD_DATA, a, &g);
  if (st != TC_OK || a->n == 0)
    return st;
  int64_t B = chunk_images(a, &g);
  if (B < 1)
    return ws_error("conv2d_bwd_data", &g, a);
  if ((st = cu_enter(c, "conv2d_bwd_data")) != TC_OK)
    return st;
  float *col = (float *)a->workspace;
  int64_t chw = a->c * a->h * a->w;
  for (int64_t b0 = 0; b0 < a->n && st == TC_OK; b0 += B) {
    int64_t nb = a->n - b0 < B ? a->n - b0 : B;
    /* col[:, b] (crs,P; ld nb*P) = W^T (crs,k) x dy[b] (k,P) */
    st = cu_gemm_rm(c, 1, 0, g.crs, g.P, a->k, 1.f, a->wt, g.crs, 0,
                    a->dy + b0 * a->k * g.P, g.P, a->k * g.P, 0.f, col,
                    nb * g.P, g.P, nb);
    if (st != TC_OK)
      break;
    k_col2im<<<cu_blocks(nb * chw), CU_THREADS, 0, c->stream>>>(
        IM2COL_ARGS(a, nb, col, a->dx + b0 * chw), a->accumulate);
    st = cu_launched("conv2d_bwd_data: col2im");
  }
  return st;
}

tc_status cu_conv2d_bwd_filter(void *ctx, const tc_conv2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  conv_geom g;
  tc_status st = conv_check(ctx, CU_FN("conv2d_bwd_filter"),
                            TC__OP_CONV2D_BWD_FILTER, a, &g);
  if (st != TC_OK)
    return st;
  if ((st = cu_enter(c, "conv2d_bwd_filter")) != TC_OK)
    return st;
  if (a->n == 0) {
    if (a->accumulate)
      return TC_OK;
    return cu_check(cudaMemsetAsync(a->dw, 0, (size_t)(a->k * g.crs) *
                                    sizeof(float), c->stream),
                    "conv2d_bwd_filter");
  }
  int64_t B = chunk_images(a, &g);
  if (B < 1)
    return ws_error("conv2d_bwd_filter", &g, a);
  int64_t chw = a->c * a->h * a->w;
  for (int64_t b0 = 0; b0 < a->n && st == TC_OK; b0 += B) {
    int64_t nb = a->n - b0 < B ? a->n - b0 : B;
    float *col = (float *)a->workspace;
    float *dyt = col + g.crs * nb * g.P;
    k_im2col<<<cu_blocks(a->c * nb * g.P), CU_THREADS, 0, c->stream>>>(
        IM2COL_ARGS(a, nb, a->x + b0 * chw, col));
    st = cu_launched("conv2d_bwd_filter: im2col");
    if (st != TC_OK)
      break;
    k_dy_transpose<<<cu_blocks(nb * a->k * g.P), CU_THREADS, 0, c->stream>>>(
        a->dy + b0 * a->k * g.P, dyt, nb, a->k, g.P);
    st = cu_launched("conv2d_bwd_filter: transpose");
    /* dw (k,crs) (+)= dyT (k, nb*P) x col^T (nb*P, crs) */
    float beta = (b0 == 0 && !a->accumulate) ? 0.f : 1.f;
    if (st == TC_OK)
      st = cu_gemm_rm(c, 0, 1, a->k, g.crs, nb * g.P, 1.f, dyt, nb * g.P, 0,
                      col, nb * g.P, 0, beta, a->dw, g.crs, 0, 1);
  }
  return st;
}

tc_status cu_conv2d_bwd_bias(void *ctx, const tc_conv2d_args *a) {
  cu_ctx *c = (cu_ctx *)ctx;
  conv_geom g;
  tc_status st = conv_check(ctx, CU_FN("conv2d_bwd_bias"),
                            TC__OP_CONV2D_BWD_BIAS, a, &g);
  if (st != TC_OK)
    return st;
  if ((st = cu_enter(c, "conv2d_bwd_bias")) != TC_OK)
    return st;
  /* db (k) (+)= sum over n and P of dy (n,k,P) */
  return cu_channel_reduce(c, CU_CH_SUM_X, a->n, a->k, g.P, a->dy, NULL,
                           NULL, NULL, 1.f, a->accumulate, a->db, NULL);
}
