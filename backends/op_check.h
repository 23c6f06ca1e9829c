/*
 * op_check.h - the argument checks of every backend op, written once.
 *
 * Each backend slot begins by calling the checker of its args struct, so
 * every backend rejects the same arguments with the same status and
 * message (the CPU backend's, which is the reference): ctx and args not
 * NULL, struct_size at least the size the backend was built with, sizes
 * and their products in range, output extents that match, scalars in
 * their domain, and the buffers the slot reads or writes not NULL when it
 * has work. A check on the *contents* of device memory (labels in range,
 * max-pool argmax indices) stays with the backend, which alone can read it.
 *
 * `fn` names the slot in messages ("cpu_conv2d_fwd", "cuda conv2d_fwd"):
 * "<fn>: <reason>". Errors are recorded with tc_backend_error, the public
 * function, so op_check.c is compiled into libtinycnn (the CPU backend)
 * and into each loadable module (tinycnn-cuda.so) alike, and relies on no
 * unexported symbol of the core.
 *
 * A checker returns TC_OK without looking at the buffers when the slot has
 * nothing to do (n == 0 and the like, per op below); the slot then handles
 * that case itself (an empty weight-gradient sum is still zeroed, ...).
 */
#ifndef TC_BACKENDS_OP_CHECK_H
#define TC_BACKENDS_OP_CHECK_H

#include <tinycnn_backend.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The slot a struct shared by several slots is checked for: it decides
 * which buffers are needed. */
typedef enum tc__op {
  TC__OP_CONV2D_WORKSPACE_SIZE, /* no buffers */
  TC__OP_CONV2D_FWD,            /* n > 0: x, wt, y */
  TC__OP_CONV2D_BWD_DATA,       /* n > 0: dy, wt, dx */
  TC__OP_CONV2D_BWD_FILTER,     /* dw; n > 0: x, dy */
  TC__OP_CONV2D_BWD_BIAS,       /* db; n > 0: dy */
  TC__OP_MAXPOOL2D_FWD,         /* n*c > 0: x, y, argmax */
  TC__OP_MAXPOOL2D_BWD,         /* n*c > 0: dy, dx, argmax */
  TC__OP_AVGPOOL2D_FWD,         /* n*c > 0: x, y */
  TC__OP_AVGPOOL2D_BWD,         /* n*c > 0: dy, dx */
  TC__OP_GLOBAL_AVGPOOL_FWD,    /* n*c > 0: x, y */
  TC__OP_GLOBAL_AVGPOOL_BWD,    /* n*c > 0: dy, dx */
  /* batch norm: c == 0 or n*spatial == 0 is no work (training needs
   * n*spatial != 1) */
  TC__OP_BATCHNORM_FWD_TRAIN,      /* x, y, save_mean, save_invstd */
  TC__OP_BATCHNORM_FWD_INFER,      /* x, y, running_mean, running_var */
  TC__OP_BATCHNORM_BWD,            /* x, dy, dx, save_mean, save_invstd */
  TC__OP_BATCHNORM_RELU_FWD_TRAIN, /* as FWD_TRAIN */
  TC__OP_BATCHNORM_RELU_FWD_INFER, /* as FWD_INFER */
  TC__OP_BATCHNORM_RELU_BWD,       /* as BWD, and y or relu_mask */
  /* elementwise: n > 0: y, and a except for fill, b for relu_bwd */
  TC__OP_RELU_FWD,
  TC__OP_RELU_BWD,
  TC__OP_ADD,
  TC__OP_SCALE,
  TC__OP_AXPY,
  TC__OP_FILL,
  TC__OP_BIAS_ADD,     /* n*c*spatial > 0: y, bias */
  TC__OP_BIAS_GRAD,    /* c > 0: db, and dy when n*spatial > 0 */
  TC__OP_DROPOUT_FWD,  /* n > 0: x, y */
  TC__OP_DROPOUT_BWD,  /* n > 0: dy, dx, mask */
  TC__OP_SOFTMAX_XENT, /* logits, loss, labels */
  TC__OP_NLL,          /* logits, loss, labels */
  TC__OP_MSE           /* logits, loss, target */
} tc__op;

tc_status tc__check_gemm_args(const void *ctx, const tc_gemm_args *a,
                              const char *fn);
tc_status tc__check_conv2d_args(const void *ctx, const tc_conv2d_args *a,
                                const char *fn, tc__op op);
tc_status tc__check_pool2d_args(const void *ctx, const tc_pool2d_args *a,
                                const char *fn, tc__op op);
tc_status tc__check_gap_args(const void *ctx, const tc_gap_args *a,
                             const char *fn, tc__op op);
tc_status tc__check_batchnorm_args(const void *ctx, const tc_batchnorm_args *a,
                                   const char *fn, tc__op op);
tc_status tc__check_eltwise_args(const void *ctx, const tc_eltwise_args *a,
                                 const char *fn, tc__op op);
tc_status tc__check_bias_args(const void *ctx, const tc_bias_args *a,
                              const char *fn, tc__op op);
tc_status tc__check_copy4d_args(const void *ctx, const tc_copy4d_args *a,
                                const char *fn);
tc_status tc__check_counter_args(const void *ctx, const tc_counter_args *a,
                                 const char *fn);
tc_status tc__check_dropout_args(const void *ctx, const tc_dropout_args *a,
                                 const char *fn, tc__op op);
/* Everything but the labels' values (device memory: the backend's). */
tc_status tc__check_loss_args(const void *ctx, const tc_loss_args *a,
                              const char *fn, tc__op op);
tc_status tc__check_argmax_args(const void *ctx, const tc_argmax_args *a,
                                const char *fn);
tc_status tc__check_sgd_args(const void *ctx, const tc_sgd_args *a,
                             const char *fn);
tc_status tc__check_adam_args(const void *ctx, const tc_adam_args *a,
                              const char *fn);
tc_status tc__check_reduce_args(const void *ctx, const tc_reduce_args *a,
                                const char *fn);

#ifdef __cplusplus
}
#endif
#endif /* TC_BACKENDS_OP_CHECK_H */
