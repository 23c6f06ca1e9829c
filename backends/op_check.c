/*
 * op_check.c - the argument checks of every backend op (op_check.h), in
 * the order and with the messages the CPU backend has always used; the
 * CUDA module compiles this file too (backends/cuda/meson.build).
 */
#include <math.h>
#include <stdint.h>

#include "op_check.h"

#define EINVAL_MSG(...) tc_backend_error(TC_EINVAL, __VA_ARGS__)

/* Where a slot checks its context: before the args (convolution, pooling,
 * batch norm), after struct_size (most), or after everything (gemm). */
enum { CTX_FIRST, CTX_AFTER_SIZE, CTX_NOT_HERE };

/* ctx, args not NULL and struct_size >= need (struct_size is the first
 * member of every args struct). */
static tc_status head(const void *ctx, const void *args, size_t need,
                      int ctx_at, const char *fn) {
  if (ctx_at == CTX_FIRST && !ctx)
    return EINVAL_MSG("%s: ctx is NULL", fn);
  if (!args)
    return EINVAL_MSG("%s: args is NULL", fn);
  size_t size = *(const size_t *)args;
  if (size < need)
    return EINVAL_MSG("%s: struct_size %zu < %zu", fn, size, need);
  if (ctx_at == CTX_AFTER_SIZE && !ctx)
    return EINVAL_MSG("%s: ctx is NULL", fn);
  return TC_OK;
}

static tc_status null_arg(const char *fn, const char *name) {
  return EINVAL_MSG("%s: argument '%s' is NULL", fn, name);
}

/* ---- gemm ---- */

static int64_t max1(int64_t v) {
  return v > 1 ? v : 1;
}

static tc_status gemm_args(const tc_gemm_args *a, const char *fn) {
  tc_status st = head(NULL, a, sizeof *a, CTX_NOT_HERE, fn);
  if (st != TC_OK)
    return st;
  if (a->m < 0 || a->n < 0 || a->k < 0 || a->batch < 0)
    return EINVAL_MSG("%s: negative size (m %lld, n %lld, k %lld, batch %lld)",
                      fn, (long long)a->m, (long long)a->n, (long long)a->k,
                      (long long)a->batch);
  /* BLAS takes int sizes (blasint, cuBLAS's int); refuse what would not
   * fit */
  int64_t lim = (int64_t)INT32_MAX;
  if (a->m > lim || a->n > lim || a->k > lim || a->lda > lim || a->ldb > lim ||
      a->ldc > lim)
    return EINVAL_MSG("%s: a size or ld exceeds %lld", fn, (long long)lim);
  if (a->m == 0 || a->n == 0 || a->batch == 0)
    return TC_OK; /* nothing is read or written */
  if (!a->c)
    return null_arg(fn, "c");
  int64_t a_cols = a->trans_a ? a->m : a->k; /* row-major storage of A */
  int64_t b_cols = a->trans_b ? a->k : a->n;
  if (a->lda < max1(a_cols))
    return EINVAL_MSG("%s: lda %lld < %lld (trans_a %d)", fn, (long long)a->lda,
                      (long long)max1(a_cols), (int)a->trans_a);
  if (a->ldb < max1(b_cols))
    return EINVAL_MSG("%s: ldb %lld < %lld (trans_b %d)", fn, (long long)a->ldb,
                      (long long)max1(b_cols), (int)a->trans_b);
  if (a->ldc < max1(a->n))
    return EINVAL_MSG("%s: ldc %lld < n %lld", fn, (long long)a->ldc,
                      (long long)a->n);
  if (a->k > 0 && (!a->a || !a->b))
    return null_arg(fn, a->a ? "b" : "a");
  if (a->stride_a < 0 || a->stride_b < 0 || a->stride_c < 0)
    return EINVAL_MSG("%s: negative stride (%lld, %lld, %lld)", fn,
                      (long long)a->stride_a, (long long)a->stride_b,
                      (long long)a->stride_c);
  /* batch entries of C run concurrently: they must not overlap (A and B
   * may: a stride of 0 broadcasts one matrix) */
  int64_t c_span = (a->m - 1) * a->ldc + a->n;
  if (a->batch > 1 && a->stride_c < c_span)
    return EINVAL_MSG("%s: stride_c %lld < %lld: batch entries of C overlap",
                      fn, (long long)a->stride_c, (long long)c_span);
  return TC_OK;
}

tc_status tc__check_gemm_args(const void *ctx, const tc_gemm_args *a,
                              const char *fn) {
  tc_status st = gemm_args(a, fn);
  if (st != TC_OK)
    return st;
  if (!ctx)
    return EINVAL_MSG("%s: ctx is NULL", fn);
  return TC_OK;
}

/* ---- convolution ---- */

/* Largest size accepted for any one dimension, and for the GEMM extents
 * (BLAS takes int). */
#define CONV_DIM_MAX ((int64_t)1 << 30)
#define CONV_GEMM_MAX ((int64_t)INT32_MAX)

tc_status tc__check_conv2d_args(const void *ctx, const tc_conv2d_args *a,
                                const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_FIRST, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0 || a->c < 1 || a->h < 1 || a->w < 1 || a->k < 1 || a->r < 1 ||
      a->s < 1 || a->c > CONV_DIM_MAX || a->h > CONV_DIM_MAX ||
      a->w > CONV_DIM_MAX || a->k > CONV_DIM_MAX || a->r > CONV_DIM_MAX ||
      a->s > CONV_DIM_MAX)
    return EINVAL_MSG("%s: bad sizes x (%lld,%lld,%lld,%lld) w "
                      "(%lld,%lld,%lld,%lld): need n >= 0, others 1..2^30",
                      fn, (long long)a->n, (long long)a->c, (long long)a->h,
                      (long long)a->w, (long long)a->k, (long long)a->c,
                      (long long)a->r, (long long)a->s);
  if (a->stride_h < 1 || a->stride_w < 1 || a->dil_h < 1 || a->dil_w < 1 ||
      a->pad_h < 0 || a->pad_w < 0 || a->stride_h > CONV_DIM_MAX ||
      a->stride_w > CONV_DIM_MAX || a->dil_h > CONV_DIM_MAX ||
      a->dil_w > CONV_DIM_MAX || a->pad_h > CONV_DIM_MAX ||
      a->pad_w > CONV_DIM_MAX)
    return EINVAL_MSG("%s: bad stride (%lld,%lld), padding (%lld,%lld) or "
                      "dilation (%lld,%lld)",
                      fn, (long long)a->stride_h, (long long)a->stride_w,
                      (long long)a->pad_h, (long long)a->pad_w,
                      (long long)a->dil_h, (long long)a->dil_w);
  int64_t eh = a->h + 2 * a->pad_h - a->dil_h * (a->r - 1) - 1;
  int64_t ew = a->w + 2 * a->pad_w - a->dil_w * (a->s - 1) - 1;
  if (eh < 0 || ew < 0)
    return EINVAL_MSG("%s: kernel (%lld,%lld) dilated by (%lld,%lld) exceeds "
                      "the padded input (%lld,%lld)",
                      fn, (long long)a->r, (long long)a->s, (long long)a->dil_h,
                      (long long)a->dil_w, (long long)(a->h + 2 * a->pad_h),
                      (long long)(a->w + 2 * a->pad_w));
  eh = eh / a->stride_h + 1;
  ew = ew / a->stride_w + 1;
  if (a->out_h != eh || a->out_w != ew)
    return EINVAL_MSG("%s: output (%lld,%lld), expected (%lld,%lld)", fn,
                      (long long)a->out_h, (long long)a->out_w, (long long)eh,
                      (long long)ew);
  /* each extent is < 2^32 here, so hw and c*r cannot overflow; P can */
  int64_t hw = a->h * a->w, P, crs, kcrs;
  if (__builtin_mul_overflow(eh, ew, &P) ||
      __builtin_mul_overflow(a->c * a->r, a->s, &crs) ||
      __builtin_mul_overflow(a->k, crs, &kcrs) || hw > CONV_GEMM_MAX ||
      P > CONV_GEMM_MAX || crs > CONV_GEMM_MAX || kcrs > CONV_GEMM_MAX)
    return EINVAL_MSG("%s: problem too large (CRS %lld, P %lld): GEMM extents "
                      "must fit an int",
                      fn, (long long)(a->c * a->r), (long long)P);
  int64_t per_image = a->c * hw > a->k * P ? a->c * hw : a->k * P;
  int64_t total, col_elems;
  if (__builtin_mul_overflow(per_image, a->n, &total) || total > INT64_MAX / 4)
    return EINVAL_MSG("%s: batch %lld too large", fn, (long long)a->n);
  /* one im2col panel must be addressable in bytes */
  if (__builtin_mul_overflow(crs, P, &col_elems) || col_elems > INT64_MAX / 8)
    return EINVAL_MSG("%s: im2col panel (CRS %lld, P %lld) too large", fn,
                      (long long)crs, (long long)P);
  switch (op) {
  case TC__OP_CONV2D_FWD:
    if (a->n > 0 && (!a->x || !a->wt || !a->y))
      return null_arg(fn, !a->x ? "x" : !a->wt ? "wt" : "y");
    break;
  case TC__OP_CONV2D_BWD_DATA:
    if (a->n > 0 && (!a->dy || !a->wt || !a->dx))
      return null_arg(fn, !a->dy ? "dy" : !a->wt ? "wt" : "dx");
    break;
  case TC__OP_CONV2D_BWD_FILTER:
    if (!a->dw)
      return null_arg(fn, "dw");
    if (a->n > 0 && (!a->x || !a->dy))
      return null_arg(fn, !a->x ? "x" : "dy");
    break;
  case TC__OP_CONV2D_BWD_BIAS:
    if (!a->db)
      return null_arg(fn, "db");
    if (a->n > 0 && !a->dy)
      return null_arg(fn, "dy");
    break;
  default: /* workspace size: no buffers */
    break;
  }
  return TC_OK;
}

/* ---- pooling ---- */

/* Largest size accepted for any one dimension. */
#define POOL_DIM_MAX ((int64_t)1 << 30)

/* PyTorch's pooling_output_shape (dilation 1). */
static int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p,
                             int ceil_mode) {
  int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
  int64_t out = num / s + 1;
  /* the last window must start inside the input or the left padding */
  if (ceil_mode && (out - 1) * s >= in + p)
    out--;
  return out;
}

tc_status tc__check_pool2d_args(const void *ctx, const tc_pool2d_args *a,
                                const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_FIRST, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0 || a->c < 0 || a->h < 1 || a->w < 1 || a->n > POOL_DIM_MAX ||
      a->c > POOL_DIM_MAX || a->h > POOL_DIM_MAX || a->w > POOL_DIM_MAX)
    return EINVAL_MSG("%s: bad input size (%lld,%lld,%lld,%lld): need n, c "
                      ">= 0, h, w >= 1, each <= 2^30",
                      fn, (long long)a->n, (long long)a->c, (long long)a->h,
                      (long long)a->w);
  if (a->kh < 1 || a->kw < 1 || a->stride_h < 1 || a->stride_w < 1 ||
      a->kh > POOL_DIM_MAX || a->kw > POOL_DIM_MAX ||
      a->stride_h > POOL_DIM_MAX || a->stride_w > POOL_DIM_MAX)
    return EINVAL_MSG("%s: bad kernel (%lld,%lld) or stride (%lld,%lld)", fn,
                      (long long)a->kh, (long long)a->kw,
                      (long long)a->stride_h, (long long)a->stride_w);
  if (a->pad_h < 0 || a->pad_w < 0 || 2 * a->pad_h > a->kh ||
      2 * a->pad_w > a->kw)
    return EINVAL_MSG("%s: padding (%lld,%lld) must be >= 0 and at most half "
                      "the kernel (%lld,%lld)",
                      fn, (long long)a->pad_h, (long long)a->pad_w,
                      (long long)a->kh, (long long)a->kw);
  if (a->kh > a->h + 2 * a->pad_h || a->kw > a->w + 2 * a->pad_w)
    return EINVAL_MSG("%s: kernel (%lld,%lld) exceeds the padded input "
                      "(%lld,%lld)",
                      fn, (long long)a->kh, (long long)a->kw,
                      (long long)(a->h + 2 * a->pad_h),
                      (long long)(a->w + 2 * a->pad_w));
  int64_t fh = pool_out_size(a->h, a->kh, a->stride_h, a->pad_h, 0);
  int64_t ch = pool_out_size(a->h, a->kh, a->stride_h, a->pad_h, 1);
  int64_t fw = pool_out_size(a->w, a->kw, a->stride_w, a->pad_w, 0);
  int64_t cw = pool_out_size(a->w, a->kw, a->stride_w, a->pad_w, 1);
  if ((a->out_h != fh && a->out_h != ch) || (a->out_w != fw && a->out_w != cw))
    return EINVAL_MSG("%s: output (%lld,%lld), expected (%lld,%lld) or, in "
                      "ceil mode, (%lld,%lld)",
                      fn, (long long)a->out_h, (long long)a->out_w,
                      (long long)fh, (long long)fw, (long long)ch,
                      (long long)cw);
  /* argmax is an int32 index in the plane; sizes must also not overflow */
  int64_t hw = a->h * a->w, total;
  if (hw > INT32_MAX || __builtin_mul_overflow(a->n * a->c, hw, &total) ||
      total > INT64_MAX / 4)
    return EINVAL_MSG("%s: input (%lld,%lld,%lld,%lld) too large", fn,
                      (long long)a->n, (long long)a->c, (long long)a->h,
                      (long long)a->w);
  if (a->n == 0 || a->c == 0)
    return TC_OK; /* nothing is read or written */
  int max = op == TC__OP_MAXPOOL2D_FWD || op == TC__OP_MAXPOOL2D_BWD;
  if (op == TC__OP_MAXPOOL2D_FWD || op == TC__OP_AVGPOOL2D_FWD) {
    if (!a->x || !a->y || (max && !a->argmax))
      return null_arg(fn, !a->x ? "x" : !a->y ? "y" : "argmax");
  } else {
    if (!a->dy || !a->dx || (max && !a->argmax))
      return null_arg(fn, !a->dy ? "dy" : !a->dx ? "dx" : "argmax");
  }
  return TC_OK;
}

tc_status tc__check_gap_args(const void *ctx, const tc_gap_args *a,
                             const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_FIRST, fn);
  if (st != TC_OK)
    return st;
  int64_t total;
  if (a->n < 0 || a->c < 0 || a->spatial < 1 || a->n > POOL_DIM_MAX ||
      a->c > POOL_DIM_MAX ||
      __builtin_mul_overflow(a->n * a->c, a->spatial, &total) ||
      total > INT64_MAX / 4)
    return EINVAL_MSG("%s: bad size (n %lld, c %lld, spatial %lld): need n, c "
                      ">= 0, spatial >= 1",
                      fn, (long long)a->n, (long long)a->c,
                      (long long)a->spatial);
  if (a->n == 0 || a->c == 0)
    return TC_OK;
  int fwd = op == TC__OP_GLOBAL_AVGPOOL_FWD;
  if (fwd && (!a->x || !a->y))
    return null_arg(fn, !a->x ? "x" : "y");
  if (!fwd && (!a->dy || !a->dx))
    return null_arg(fn, !a->dy ? "dy" : "dx");
  return TC_OK;
}

/* ---- batch norm ---- */

/* Largest n, c or spatial, and n*c*spatial (far beyond memory; keeps the
 * backends' chunk arithmetic exact). */
#define BN_DIM_MAX ((int64_t)1 << 40)
#define BN_TOTAL_MAX ((int64_t)1 << 50)

tc_status tc__check_batchnorm_args(const void *ctx, const tc_batchnorm_args *a,
                                   const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_FIRST, fn);
  if (st != TC_OK)
    return st;
  int64_t m, total;
  if (a->n < 0 || a->c < 0 || a->spatial < 0 || a->n > BN_DIM_MAX ||
      a->c > BN_DIM_MAX || a->spatial > BN_DIM_MAX ||
      __builtin_mul_overflow(a->n, a->spatial, &m) ||
      __builtin_mul_overflow(m, a->c, &total) || total > BN_TOTAL_MAX)
    return EINVAL_MSG("%s: bad size (n %lld, c %lld, spatial %lld): need each "
                      ">= 0 and the total to fit",
                      fn, (long long)a->n, (long long)a->c,
                      (long long)a->spatial);
  if (!(a->eps >= 0.f) || isinf(a->eps))
    return EINVAL_MSG("%s: eps %g must be finite and >= 0", fn, (double)a->eps);
  switch (op) {
  case TC__OP_BATCHNORM_FWD_TRAIN:
  case TC__OP_BATCHNORM_RELU_FWD_TRAIN:
    if (m == 1)
      return EINVAL_MSG("%s: batch statistics need more than 1 value per "
                        "channel (n %lld, spatial %lld)",
                        fn, (long long)a->n, (long long)a->spatial);
    if (a->c == 0 || m == 0)
      return TC_OK; /* nothing to normalise; running stats stay (PyTorch) */
    if (!a->x || !a->y || !a->save_mean || !a->save_invstd)
      return null_arg(fn, !a->x           ? "x"
                          : !a->y         ? "y"
                          : !a->save_mean ? "save_mean"
                                          : "save_invstd");
    return TC_OK;
  case TC__OP_BATCHNORM_FWD_INFER:
  case TC__OP_BATCHNORM_RELU_FWD_INFER:
    if (a->c == 0 || m == 0)
      return TC_OK;
    if (!a->x || !a->y || !a->running_mean || !a->running_var)
      return EINVAL_MSG("%s: argument '%s' is NULL (inference needs running "
                        "statistics)",
                        fn,
                        !a->x              ? "x"
                        : !a->y            ? "y"
                        : !a->running_mean ? "running_mean"
                                           : "running_var");
    return TC_OK;
  default: { /* the backward passes */
    int relu = op == TC__OP_BATCHNORM_RELU_BWD;
    if (a->c == 0 || m == 0)
      return TC_OK; /* empty sums: the slot zeroes dgamma, dbeta */
    if (!a->x || !a->dy || !a->dx || !a->save_mean || !a->save_invstd ||
        (relu && !a->y && !a->relu_mask))
      return null_arg(fn, !a->x           ? "x"
                          : !a->dy        ? "dy"
                          : !a->dx        ? "dx"
                          : !a->save_mean ? "save_mean"
                          : !a->save_invstd
                              ? "save_invstd"
                              : "y (the forward's output; or relu_mask)");
    return TC_OK;
  }
  }
}

/* ---- elementwise, bias, copies, counters ---- */

tc_status tc__check_eltwise_args(const void *ctx, const tc_eltwise_args *a,
                                 const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0)
    return EINVAL_MSG("%s: n = %lld < 0", fn, (long long)a->n);
  if (a->n == 0)
    return TC_OK;
  if (!a->y)
    return null_arg(fn, "y");
  if (op != TC__OP_FILL && !a->a)
    return null_arg(fn, "a");
  if (op == TC__OP_RELU_BWD && !a->b)
    return null_arg(fn, "b");
  return TC_OK;
}

tc_status tc__check_bias_args(const void *ctx, const tc_bias_args *a,
                              const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0 || a->c < 0 || a->spatial < 0)
    return EINVAL_MSG("%s: negative size (n %lld, c %lld, spatial %lld)", fn,
                      (long long)a->n, (long long)a->c, (long long)a->spatial);
  int64_t nc, total;
  if (__builtin_mul_overflow(a->n, a->c, &nc) ||
      __builtin_mul_overflow(nc, a->spatial, &total))
    return EINVAL_MSG("%s: n*c*spatial overflows", fn);
  if (op == TC__OP_BIAS_ADD) {
    if (total > 0 && (!a->y || !a->bias))
      return null_arg(fn, a->y ? "bias" : "y");
    return TC_OK;
  }
  if (a->c == 0)
    return TC_OK;
  if (!a->db)
    return null_arg(fn, "db");
  if (total > 0 && !a->dy)
    return null_arg(fn, "dy");
  return TC_OK;
}

tc_status tc__check_copy4d_args(const void *ctx, const tc_copy4d_args *a,
                                const char *fn) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  int64_t total = 1;
  for (int d = 0; d < 4; d++) {
    if (a->shape[d] < 0)
      return EINVAL_MSG("%s: shape[%d] = %lld < 0", fn, d,
                        (long long)a->shape[d]);
    if (__builtin_mul_overflow(total, a->shape[d], &total))
      return EINVAL_MSG("%s: the shape's element count overflows", fn);
  }
  if (total > 0 && (!a->src || !a->dst))
    return null_arg(fn, a->src ? "dst" : "src");
  return TC_OK;
}

tc_status tc__check_counter_args(const void *ctx, const tc_counter_args *a,
                                 const char *fn) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0)
    return EINVAL_MSG("%s: n = %lld < 0", fn, (long long)a->n);
  if (a->n > 0 && !a->x)
    return null_arg(fn, "x");
  return TC_OK;
}

/* ---- dropout ---- */

tc_status tc__check_dropout_args(const void *ctx, const tc_dropout_args *a,
                                 const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0)
    return EINVAL_MSG("%s: n = %lld < 0", fn, (long long)a->n);
  if (a->group < 1 || a->n % a->group != 0)
    return EINVAL_MSG("%s: group %lld does not divide n %lld", fn,
                      (long long)a->group, (long long)a->n);
  if (!(a->p >= 0.f && a->p <= 1.f)) /* NaN fails too */
    return EINVAL_MSG("%s: p = %g not in [0, 1]", fn, (double)a->p);
  if (a->n == 0)
    return TC_OK;
  if (op == TC__OP_DROPOUT_FWD) {
    if (!a->x || !a->y)
      return null_arg(fn, a->x ? "y" : "x");
  } else if (!a->dy || !a->dx || !a->mask) {
    return null_arg(fn, !a->dy ? "dy" : !a->dx ? "dx" : "mask");
  }
  return TC_OK;
}

/* ---- losses and argmax ---- */

tc_status tc__check_loss_args(const void *ctx, const tc_loss_args *a,
                              const char *fn, tc__op op) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 1 || a->classes < 1)
    return EINVAL_MSG("%s: bad sizes n = %lld, classes = %lld "
                      "(both must be >= 1)",
                      fn, (long long)a->n, (long long)a->classes);
  if (a->n > INT64_MAX / a->classes)
    return EINVAL_MSG("%s: n * classes overflows", fn);
  if (a->reduction == TC_REDUCTION_NONE)
    return tc_backend_error(TC_EUNSUPPORTED,
                            "%s: reduction NONE is not supported "
                            "(mean or sum)",
                            fn);
  if (a->reduction != TC_REDUCTION_MEAN && a->reduction != TC_REDUCTION_SUM)
    return EINVAL_MSG("%s: unknown reduction %d", fn, (int)a->reduction);
  if (!(a->label_smoothing >= 0.f && a->label_smoothing <= 1.f))
    return EINVAL_MSG("%s: label_smoothing %g not in [0, 1]", fn,
                      (double)a->label_smoothing);
  if (!a->logits)
    return null_arg(fn, "logits");
  if (!a->loss)
    return null_arg(fn, "loss");
  if (op == TC__OP_MSE && !a->target)
    return null_arg(fn, "target");
  if (op != TC__OP_MSE && !a->labels)
    return null_arg(fn, "labels");
  return TC_OK;
}

tc_status tc__check_argmax_args(const void *ctx, const tc_argmax_args *a,
                                const char *fn) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0 || a->classes < 1)
    return EINVAL_MSG("%s: bad sizes n = %lld, classes = %lld", fn,
                      (long long)a->n, (long long)a->classes);
  if (a->classes > INT32_MAX)
    return EINVAL_MSG("%s: classes %lld do not fit int32 pred", fn,
                      (long long)a->classes);
  if (a->n > 0 && !a->scores)
    return null_arg(fn, "scores");
  return TC_OK;
}

/* ---- optimizers and reductions ---- */

tc_status tc__check_sgd_args(const void *ctx, const tc_sgd_args *a,
                             const char *fn) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0)
    return EINVAL_MSG("%s: n = %lld is negative", fn, (long long)a->n);
  if (a->n == 0)
    return TC_OK;
  if (!a->param || !a->grad)
    return null_arg(fn, a->param ? "grad" : "param");
  if (a->momentum != 0.f && !a->momentum_buf)
    return EINVAL_MSG("%s: momentum %g needs a momentum_buf", fn,
                      (double)a->momentum);
  return TC_OK;
}

tc_status tc__check_adam_args(const void *ctx, const tc_adam_args *a,
                              const char *fn) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0)
    return EINVAL_MSG("%s: n = %lld is negative", fn, (long long)a->n);
  if (a->step < 1)
    return EINVAL_MSG("%s: step %lld < 1 (steps count from 1)", fn,
                      (long long)a->step);
  if (a->n == 0)
    return TC_OK;
  if (!a->param || !a->grad || !a->exp_avg || !a->exp_avg_sq)
    return null_arg(fn, !a->param     ? "param"
                        : !a->grad    ? "grad"
                        : !a->exp_avg ? "exp_avg"
                                      : "exp_avg_sq");
  if (a->amsgrad && !a->max_exp_avg_sq)
    return EINVAL_MSG("%s: amsgrad needs max_exp_avg_sq", fn);
  return TC_OK;
}

tc_status tc__check_reduce_args(const void *ctx, const tc_reduce_args *a,
                                const char *fn) {
  tc_status st = head(ctx, a, sizeof *a, CTX_AFTER_SIZE, fn);
  if (st != TC_OK)
    return st;
  if (a->n < 0)
    return EINVAL_MSG("%s: n = %lld < 0", fn, (long long)a->n);
  if (a->op < TC_REDUCE_SUM || a->op > TC_REDUCE_NONFINITE)
    return EINVAL_MSG("%s: unknown op %d", fn, (int)a->op);
  if (!a->host_out)
    return null_arg(fn, "host_out");
  if (a->n > 0 && !a->x)
    return null_arg(fn, "x");
  return TC_OK;
}
