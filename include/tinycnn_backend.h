/**
 * @file
 * @brief tinycnn_backend.h - the public interface between the tinycnn core and
 * a compute backend (CPU, CUDA, or a third party's).
 *
 * A backend is a versioned table of coarse device operations in the manner
 * of cuDNN: convolution, pooling, batch norm, losses and optimizer updates
 * over whole buffers, so each backend can run them fast. The core never
 * touches device memory itself; every pointer below marked "device" belongs
 * to the backend's memory space.
 *
 * Rules (SQLite's sqlite3_vfs, ggml's backend struct):
 *  - The table starts with api_version and struct_size. Slots are only ever
 *    appended; comments mark where each API version ends.
 *  - Every operation slot returns tc_status and takes the backend's context
 *    plus a pointer to an args struct that itself begins with struct_size,
 *    so a parameter can be added without changing a signature.
 *  - A NULL slot, or one beyond struct_size, means "unsupported": the core
 *    falls back or returns TC_EUNSUPPORTED.
 *  - The core accepts a table whose api_version is not newer than its own.
 *  - A loadable module exports one symbol, `tc_backend_module_entry`, of type
 *    tc_backend_entry_fn, returning its table.
 *
 * Layout conventions: float32, contiguous row-major; images are NCHW;
 * a "spatial" size is H*W (1 for BatchNorm1d). Shapes are given in comments
 * beside each buffer. Unless stated otherwise an output is overwritten;
 * fields named `accumulate` make an output be added to instead (gradients
 * accumulate in PyTorch).
 */
#ifndef TINYCNN_BACKEND_H
#define TINYCNN_BACKEND_H

#include <libtinycnn.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The backend API version this header describes. */
#define TC_BACKEND_API_VERSION 1

/* ---- argument structs -------------------------------------------------- */

/** Row-major strided-batched GEMM:
 *  C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], b < batch,
 *  op(A): (m,k), op(B): (k,n), C: (m,n). Strides are in elements. */
typedef struct tc_gemm_args {
  size_t struct_size; /**< sizeof(tc_gemm_args) the core was built with */
  /** Non-zero: op(A) (op(B)) is A (B) transposed; 0: as stored. @{ */
  int32_t trans_a, trans_b;
  /** @} */
  /** Rows of op(A) and C, columns of op(B) and C, and the inner size. @{ */
  int64_t m, n, k;
  /** @} */
  /** Scale of the product and of C's old value. @{ */
  float alpha, beta;
  /** @} */
  const float *a;   /**< device: A[0], row-major */
  int64_t lda;      /**< elements between rows of A as stored */
  int64_t stride_a; /**< elements from A[b] to A[b+1] */
  const float *b;   /**< device: B[0], row-major */
  int64_t ldb;      /**< elements between rows of B as stored */
  int64_t stride_b; /**< elements from B[b] to B[b+1] */
  float *c;         /**< device: C[0], row-major, the output */
  int64_t ldc;      /**< elements between rows of C */
  int64_t stride_c; /**< elements from C[b] to C[b+1] */
  int64_t batch;    /**< number of products, >= 1 */
} tc_gemm_args;

/** 2-D convolution (cross-correlation, as torch.nn.Conv2d), groups = 1.
 *  x: (n,c,h,w) w: (k,c,r,s) bias: (k) or NULL  y: (n,k,out_h,out_w)
 *  out_h = (h + 2*pad_h - dil_h*(r-1) - 1) / stride_h + 1 (same for w). */
typedef struct tc_conv2d_args {
  size_t struct_size; /**< sizeof(tc_conv2d_args) the core was built with */
  /** Input batch size, channels, height and width. @{ */
  int64_t n, c, h, w;
  /** @} */
  /** Output channels (filters), kernel height and kernel width. @{ */
  int64_t k, r, s;
  /** @} */
  /** Stride, zero padding and dilation along height and width
   *  (torch.nn.Conv2d's stride, padding, dilation). @{ */
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  /** @} */
  /** Output height and width, from the formula above. @{ */
  int64_t out_h, out_w;
  /** @} */
  const float *x;        /**< (n,c,h,w): forward and backward-filter input */
  const float *wt;       /**< (k,c,r,s): forward and backward-data input */
  const float *bias;     /**< (k) or NULL: forward */
  float *y;              /**< (n,k,out_h,out_w): forward output */
  const float *dy;       /**< (n,k,out_h,out_w): backward input */
  float *dx;             /**< (n,c,h,w): backward-data output */
  float *dw;             /**< (k,c,r,s): backward-filter output */
  float *db;             /**< (k): bias-grad output */
  int32_t accumulate;    /**< backward outputs: add instead of overwrite */
  int32_t reserved0;     /**< reserved for a later field; 0 */
  void *workspace;       /**< device, at least workspace_size bytes */
  size_t workspace_size; /**< bytes at workspace: at least what the
                              conv2d_workspace_size slot asked for */
} tc_conv2d_args;

/** Max / average pooling, as torch.nn.MaxPool2d / AvgPool2d (dilation 1).
 *  x: (n,c,h,w)  y: (n,c,out_h,out_w); out sizes computed by the caller
 *  with PyTorch's ceil_mode rule. */
typedef struct tc_pool2d_args {
  size_t struct_size; /**< sizeof(tc_pool2d_args) the core was built with */
  /** Input batch size, channels, height and width. @{ */
  int64_t n, c, h, w;
  /** @} */
  /** Window height and width, stride and implicit padding along height
   *  and width (padding counts as -inf for max, 0 for average). @{ */
  int64_t kh, kw, stride_h, stride_w, pad_h, pad_w;
  /** @} */
  /** Output height and width. @{ */
  int64_t out_h, out_w;
  /** @} */
  int32_t count_include_pad; /**< average pooling: divide by the full window */
  int32_t accumulate;        /**< backward: add into dx */
  const float *x;            /**< (n,c,h,w): forward input */
  float *y;                  /**< (n,c,out_h,out_w): forward output */
  int32_t *argmax; /**< (n,c,out_h,out_w) max pooling: index in the h*w
                        plane; forward output, backward input */
  const float *dy; /**< (n,c,out_h,out_w): backward input */
  float *dx;       /**< (n,c,h,w): backward output */
} tc_pool2d_args;

/** Batch normalisation over (n, spatial) per channel.
 *  x, y, dy, dx: (n,c,spatial)  per-channel buffers: (c). */
typedef struct tc_batchnorm_args {
  size_t struct_size; /**< sizeof(tc_batchnorm_args) the core was built with */
  /** Batch size, channels, and elements per channel of one sample (H*W;
   *  L or 1 for BatchNorm1d). @{ */
  int64_t n, c, spatial;
  /** @} */
  float eps;           /**< added to the variance (torch's eps) */
  float momentum;      /**< running = (1-momentum)*running + momentum*batch */
  const float *x;      /**< forward input */
  float *y;            /**< forward output; batchnorm_relu_bwd reads it */
  const float *gamma;  /**< NULL: affine off (gamma 1) */
  const float *beta;   /**< NULL: affine off (beta 0) */
  float *running_mean; /**< NULL: do not track (train) / use batch stats */
  float *running_var;  /**< unbiased batch variance enters running_var */
  float *save_mean;    /**< batch mean: train forward output, backward input */
  float *save_invstd;  /**< 1/sqrt(biased var + eps), same */
  const float *dy;     /**< backward input: the gradient wrt y */
  float *dx;           /**< backward output: the gradient wrt x */
  float *dgamma;       /**< backward output; NULL when affine off */
  float *dbeta;        /**< backward output; NULL when affine off */
  int32_t accumulate;  /**< backward: add into dx, dgamma, dbeta */
  int32_t reserved0;   /**< reserved for a later field; 0 */
  /* read only by the batchnorm_relu_* slots: */
  const float *residual;       /**< forward: (n,c,spatial) added before the
                                    ReLU, or NULL */
  float *dresidual;            /**< backward: receives the gradient after the
                                    ReLU (that of the residual), or NULL;
                                    overlaps no other buffer */
  int32_t accumulate_residual; /**< backward: add into dresidual */
  int32_t reserved1;           /**< reserved for a later field; 0 */
  /* read only by the batchnorm_relu_* slots, NULL to leave it out: */
  uint8_t *relu_mask; /**< the ReLU's outcome as bits: n*c planes (image,
                           channel) of ceil(spatial/8) bytes each; bit e%8
                           of byte e/8 of a plane is (y_e > 0).
                           relu_fwd_train writes it when not NULL; relu_bwd
                           then reads it instead of y (y may be NULL), 32x
                           fewer bytes */
} tc_batchnorm_args;

/** Elementwise ops over n contiguous floats; meaning per slot below. */
typedef struct tc_eltwise_args {
  size_t struct_size; /**< sizeof(tc_eltwise_args) the core was built with */
  int64_t n;          /**< number of elements */
  /** The scalars of the slot's formula (see the table). @{ */
  float alpha, beta;
  /** @} */
  const float *a; /**< first input (n) */
  const float *b; /**< second input (n): add's b, relu_bwd's dy */
  float *y;       /**< output (n) */
} tc_eltwise_args;

/** Per-channel bias: y: (n,c,spatial) += bias: (c);
 *  bias grad: db (c) (+)= sum over n, spatial of dy. */
typedef struct tc_bias_args {
  size_t struct_size; /**< sizeof(tc_bias_args) the core was built with */
  /** Batch size, channels, and elements per channel of one sample. @{ */
  int64_t n, c, spatial;
  /** @} */
  const float *bias;  /**< (c): bias_add input */
  float *y;           /**< (n,c,spatial): bias_add adds to it in place */
  const float *dy;    /**< (n,c,spatial): bias_grad input */
  float *db;          /**< (c): bias_grad output */
  int32_t accumulate; /**< bias_grad: add into db */
  int32_t reserved0;  /**< reserved for a later field; 0 */
} tc_bias_args;

/** Dropout with a counter-based mask: element (or group) i is kept when the
 *  i-th uniform of Philox stream (seed, stream) from `offset` is >= p.
 *  The uniform for unit i is (philox(ctr = offset + i/4 ...)) word i%4,
 *  scaled to [0,1) with 24 bits (tc_rng_uniform's rule); kept values are
 *  scaled by 1/(1-p). `group` consecutive elements share one unit
 *  (1 for Dropout, H*W for Dropout2d). */
typedef struct tc_dropout_args {
  size_t struct_size; /**< sizeof(tc_dropout_args) the core was built with */
  int64_t n;          /**< elements */
  int64_t group;      /**< elements per mask unit, divides n */
  float p;            /**< probability of zeroing a unit, in [0, 1] */
  int32_t reserved0;  /**< reserved for a later field; 0 */
  /** The Philox key, stream id and starting position (in 32-bit outputs)
   *  of the mask's uniforms, as in tc_rng. @{ */
  uint64_t seed, stream, offset;
  /** @} */
  const float *x;  /**< (n): forward input */
  float *y;        /**< (n): forward output */
  uint8_t *mask;   /**< (n / group) 1 = kept; forward output, backward input */
  const float *dy; /**< (n): backward input */
  float *dx;       /**< (n): backward output */
  int32_t accumulate; /**< backward: add into dx */
  int32_t reserved1;  /**< reserved for a later field; 0 */
} tc_dropout_args;

/** How a loss slot reduces the per-row losses (PyTorch's `reduction`). */
typedef enum tc_reduction {
  TC_REDUCTION_MEAN = 0, /**< the mean (MSE: over all elements) */
  TC_REDUCTION_SUM = 1,  /**< the sum */
  TC_REDUCTION_NONE = 2  /**< one value per row (not by the loss slots) */
} tc_reduction;

/** Losses over a batch. Cross-entropy: logits (n,classes), labels (n) int32,
 *  loss = reduce(-sum_j q_j log softmax(x)_j) with q the label-smoothed
 *  target. NLL: `logits` holds log-probabilities. MSE: `logits` vs `target`
 *  (n,classes). `loss` receives one float (device); `dlogits` (n,classes),
 *  when not NULL, receives d(loss)/d(logits) times `grad_scale`. */
typedef struct tc_loss_args {
  size_t struct_size; /**< sizeof(tc_loss_args) the core was built with */
  /** Rows (the batch) and values per row. @{ */
  int64_t n, classes;
  /** @} */
  int32_t reduction;     /**< tc_reduction, NONE not supported here */
  float label_smoothing; /**< cross-entropy: in [0, 1], torch's
                              label_smoothing */
  const float *logits;   /**< (n,classes): scores, log-probabilities
                              (NLL) or predictions (MSE) */
  const int32_t *labels; /**< (n): cross-entropy and NLL targets */
  const float *target;   /**< (n,classes): MSE targets */
  float *loss;           /**< device, 1 float */
  float *dlogits;        /**< (n,classes) gradient output, or NULL */
  float grad_scale;      /**< factor applied to dlogits (1: the plain
                              gradient) */
  int32_t reserved0;     /**< reserved for a later field; 0 */
  int32_t *label_error;  /**< device, 1 int32, or NULL. NULL: a label outside
                              [0, classes) fails the call (TC_EINVAL). Not
                              NULL: the slot neither fails on such
                              a label nor waits for the device to find one; it
                              stores 1 here if a label is out of range, else 0
                              (labelled losses only; MSE leaves it alone), and
                              the loss is then NaN (dlogits NaN at least in
                              the rows of the bad labels) */
} tc_loss_args;

/** Row-wise argmax of scores (n,classes) into pred (n) (first max wins), and
 *  the number of rows whose argmax equals labels (n) into *host_correct. */
typedef struct tc_argmax_args {
  size_t struct_size; /**< sizeof(tc_argmax_args) the core was built with */
  /** Rows and classes of `scores`. @{ */
  int64_t n, classes;
  /** @} */
  const float *scores;   /**< (n,classes) */
  const int32_t *labels; /**< NULL: no count */
  int32_t *pred;         /**< NULL: not written */
  int64_t *host_correct; /**< host memory; NULL: not written */
} tc_argmax_args;

/** SGD over a flat buffer, torch.optim.SGD's formula:
 *  g = grad + wd*param; if momentum: buf = first_step ? g : mu*buf +
 * (1-damp)*g; g = nesterov ? g + mu*buf : buf; param -= lr*g. */
typedef struct tc_sgd_args {
  size_t struct_size; /**< sizeof(tc_sgd_args) the core was built with */
  int64_t n;          /**< elements of param, grad and momentum_buf */
  /** torch.optim.SGD's lr, momentum (mu), dampening (damp) and
   *  weight_decay (wd) in the formula above. @{ */
  float lr, momentum, dampening, weight_decay;
  /** @} */
  /** Non-zero: Nesterov momentum; this is the buffer's first step (buf =
   *  g). @{ */
  int32_t nesterov, first_step;
  /** @} */
  float *param;        /**< (n): updated in place */
  const float *grad;   /**< (n) */
  float *momentum_buf; /**< NULL when momentum == 0 */
} tc_sgd_args;

/** Adam / AdamW over a flat buffer, torch.optim.Adam(W)'s formula, `step`
 *  counts from 1. decoupled: AdamW's param *= 1 - lr*wd; else grad += wd*param.
 */
typedef struct tc_adam_args {
  size_t struct_size; /**< sizeof(tc_adam_args) the core was built with */
  int64_t n;          /**< elements of every buffer */
  /** torch.optim.Adam(W)'s lr, betas, eps and weight_decay (wd). @{ */
  float lr, beta1, beta2, eps, weight_decay;
  /** @} */
  /** Non-zero: AdamW's decoupled weight decay; AMSGrad (keep the maximum
   *  of exp_avg_sq). @{ */
  int32_t decoupled, amsgrad;
  /** @} */
  int32_t reserved0; /**< reserved for a later field; 0 */
  int64_t step;      /**< this step's number, from 1 (bias correction) */
  float *param;      /**< (n): updated in place */
  const float *grad; /**< (n) */
  /** (n) running first and second moments, updated in place. @{ */
  float *exp_avg, *exp_avg_sq;
  /** @} */
  float *max_exp_avg_sq; /**< amsgrad only */
} tc_adam_args;

/** What the reduce slot computes over x. */
typedef enum tc_reduce_op {
  TC_REDUCE_SUM = 0,      /**< sum x */
  TC_REDUCE_SUMSQ = 1,    /**< sum x*x */
  TC_REDUCE_MAXABS = 2,   /**< max |x| */
  TC_REDUCE_NONFINITE = 3 /**< count of NaN/Inf elements */
} tc_reduce_op;

/** Full reduction of x (n) into *host_out (double, host memory); the
 *  summation order is fixed (deterministic whatever the thread count). */
typedef struct tc_reduce_args {
  size_t struct_size; /**< sizeof(tc_reduce_args) the core was built with */
  int64_t n;          /**< elements of x */
  int32_t op;         /**< tc_reduce_op */
  int32_t reserved0;  /**< reserved for a later field; 0 */
  const float *x;     /**< (n): the input */
  double *host_out;   /**< host memory, 1 double: the result */
} tc_reduce_args;

/** Strided 4-D copy: dst[i0,i1,i2,i3] (+)= src[i0,i1,i2,i3] for i < shape;
 *  strides in elements. Serves shortcut channel padding, subsampling and
 *  layout changes. */
typedef struct tc_copy4d_args {
  size_t struct_size;    /**< sizeof(tc_copy4d_args) the core was built with */
  int64_t shape[4];      /**< sizes of the four dimensions copied */
  const float *src;      /**< the source, at index (0,0,0,0) */
  int64_t src_stride[4]; /**< src's stride of each dimension */
  float *dst;            /**< the destination, at index (0,0,0,0) */
  int64_t dst_stride[4]; /**< dst's stride of each dimension */
  int32_t accumulate;    /**< add into dst instead of overwriting it */
  int32_t reserved0;     /**< reserved for a later field; 0 */
} tc_copy4d_args;

/** Adds `delta` to n int64 counters in device memory: x[i] += delta
 *  (BatchNorm's num_batches_tracked, without a host round trip). */
typedef struct tc_counter_args {
  size_t struct_size; /**< sizeof(tc_counter_args) the core was built with */
  int64_t n;          /**< number of counters */
  int64_t delta;      /**< added to each */
  int64_t *x;         /**< device, (n) */
} tc_counter_args;

/** Global average pooling: x (n,c,spatial) -> y (n,c); backward spreads
 *  dy/spatial. */
typedef struct tc_gap_args {
  size_t struct_size; /**< sizeof(tc_gap_args) the core was built with */
  /** Batch size, channels, and elements per channel plane (H*W). @{ */
  int64_t n, c, spatial;
  /** @} */
  const float *x;     /**< (n,c,spatial): forward input */
  float *y;           /**< (n,c): forward output */
  const float *dy;    /**< (n,c): backward input */
  float *dx;          /**< (n,c,spatial): backward output */
  int32_t accumulate; /**< backward: add into dx */
  int32_t reserved0;  /**< reserved for a later field; 0 */
} tc_gap_args;

/** Options passed to a backend instance when it is created. */
typedef struct tc_backend_create_args {
  size_t struct_size;    /**< sizeof(tc_backend_create_args) of the core */
  int32_t num_threads;   /**< CPU: workers; 0 = cores */
  int32_t deterministic; /**< GPU: avoid order-dependent atomics */
  void *user_stream;     /**< CUDA: a cudaStream_t to use, or NULL */
} tc_backend_create_args;

/* ---- the table --------------------------------------------------------- */

/** A backend's operation table; see struct tc_backend_iface. */
typedef struct tc_backend_iface tc_backend_iface;

/**
 * The operation table of a backend, version TC_BACKEND_API_VERSION. Every
 * slot gets the instance context `ctx` that create returned. Slots marked
 * required must be set; any other may be NULL (unsupported: the core falls
 * back or returns TC_EUNSUPPORTED). See docs/backends.md.
 */
struct tc_backend_iface {
  uint32_t api_version; /**< TC_BACKEND_API_VERSION the backend was built for */
  uint32_t struct_size; /**< sizeof(tc_backend_iface) it was built with */
  const char *name;     /**< "cpu", "cuda", ... */

  /* lifecycle: probe fills `msg` with a reason when not usable */
  /** Tells whether the backend can run here (a device present, a driver
   *  recent enough), called before create: TC_OK, or an error with a
   *  reason in `msg` (`msg_size` bytes). May be NULL. */
  tc_status (*probe)(char *msg, size_t msg_size);
  /** Makes an instance context from `args` into *out_ctx. Required. */
  tc_status (*create)(void **out_ctx, const tc_backend_create_args *args);
  /** Frees an instance context and everything it still holds. Required. */
  void (*destroy)(void *ctx);
  /** Changes the number of worker threads of an instance (0: the number of
   *  cores, as tc_backend_create_args.num_threads). May be NULL. */
  tc_status (*set_num_threads)(void *ctx, int n);

  /* memory (sizes in bytes; alloc returns 64-byte aligned memory) */
  /** Allocates `bytes` of device memory into *out. Required. */
  tc_status (*alloc)(void *ctx, void **out, size_t bytes);
  /** Frees memory from alloc; NULL must be accepted. Required. */
  void (*free)(void *ctx, void *ptr);
  /** Copies `bytes` from host `src` to device `dst`. Required. */
  tc_status (*copy_h2d)(void *ctx, void *dst, const void *src, size_t bytes);
  /** Copies `bytes` from device `src` to host `dst`; the data is in `dst`
   *  when it returns. Required. */
  tc_status (*copy_d2h)(void *ctx, void *dst, const void *src, size_t bytes);
  /** Copies `bytes` between device buffers. Required. */
  tc_status (*copy_d2d)(void *ctx, void *dst, const void *src, size_t bytes);
  /** Sets `bytes` of device memory to `byte`, as memset(). Required. */
  tc_status (*memset)(void *ctx, void *dst, int byte, size_t bytes);
  /** Waits until every queued operation has finished. Required. */
  tc_status (*synchronize)(void *ctx);

  /* dense algebra */
  /** Strided-batched GEMM; see tc_gemm_args. */
  tc_status (*gemm)(void *ctx, const tc_gemm_args *a);

  /* convolution: one workspace size serves all three directions */
  /** The workspace bytes the convolution slots need for `a`'s shapes, into
   *  *out_bytes. */
  tc_status (*conv2d_workspace_size)(void *ctx, const tc_conv2d_args *a,
                                     size_t *out_bytes);
  /** y = conv(x, wt) (+ bias). */
  tc_status (*conv2d_fwd)(void *ctx, const tc_conv2d_args *a);
  /** dx (+)= the gradient wrt x from dy and wt. */
  tc_status (*conv2d_bwd_data)(void *ctx, const tc_conv2d_args *a);
  /** dw (+)= the gradient wrt wt from dy and x. */
  tc_status (*conv2d_bwd_filter)(void *ctx, const tc_conv2d_args *a);
  /** db (+)= the sum of dy over n, out_h, out_w. */
  tc_status (*conv2d_bwd_bias)(void *ctx, const tc_conv2d_args *a);

  /* pooling */
  /** Max pooling forward: y, and argmax for the backward. Padding is never
   *  chosen; the first maximum in raster order wins a tie; a NaN cell
   *  replaces the running maximum, so a window holding NaN gives NaN and
   *  argmax is its last NaN (PyTorch's `val > max || isnan(val)`). */
  tc_status (*maxpool2d_fwd)(void *ctx, const tc_pool2d_args *a);
  /** Max pooling backward: dy routed to dx through argmax. */
  tc_status (*maxpool2d_bwd)(void *ctx, const tc_pool2d_args *a);
  /** Average pooling forward. */
  tc_status (*avgpool2d_fwd)(void *ctx, const tc_pool2d_args *a);
  /** Average pooling backward. */
  tc_status (*avgpool2d_bwd)(void *ctx, const tc_pool2d_args *a);
  /** Global average pooling forward. */
  tc_status (*global_avgpool_fwd)(void *ctx, const tc_gap_args *a);
  /** Global average pooling backward. */
  tc_status (*global_avgpool_bwd)(void *ctx, const tc_gap_args *a);

  /* batch norm */
  /** Training forward: normalises with the batch statistics, writes
   *  save_mean and save_invstd, updates the running statistics. */
  tc_status (*batchnorm_fwd_train)(void *ctx, const tc_batchnorm_args *a);
  /** Evaluation forward: normalises with the running statistics. */
  tc_status (*batchnorm_fwd_infer)(void *ctx, const tc_batchnorm_args *a);
  /** Backward of the training forward: dx, dgamma, dbeta. */
  tc_status (*batchnorm_bwd)(void *ctx, const tc_batchnorm_args *a);

  /* elementwise (tc_eltwise_args) */
  /** y = a where a > 0 or a is NaN, else +0 (-0 gives +0). As torch.relu
   *  but for -0, which PyTorch's clamp_min keeps as -0. */
  tc_status (*relu_fwd)(void *ctx, const tc_eltwise_args *a);
  /** y = (a > 0) ? b : 0 (a: forward output, b: dy); a NaN a gives 0, as
   *  PyTorch's threshold_backward. */
  tc_status (*relu_bwd)(void *ctx, const tc_eltwise_args *a);
  /** y = alpha*a + beta*b. */
  tc_status (*add)(void *ctx, const tc_eltwise_args *a);
  /** y = alpha*a. */
  tc_status (*scale)(void *ctx, const tc_eltwise_args *a);
  /** y = y + alpha*a. */
  tc_status (*axpy)(void *ctx, const tc_eltwise_args *a);
  /** y = alpha (a bit-exact copy: the core also fills int32). */
  tc_status (*fill)(void *ctx, const tc_eltwise_args *a);
  /** y += bias per channel; see tc_bias_args. */
  tc_status (*bias_add)(void *ctx, const tc_bias_args *a);
  /** db (+)= dy summed per channel; see tc_bias_args. */
  tc_status (*bias_grad)(void *ctx, const tc_bias_args *a);
  /** Strided 4-D copy; see tc_copy4d_args. */
  tc_status (*copy4d)(void *ctx, const tc_copy4d_args *a);

  /* dropout */
  /** Dropout forward: draws the mask, y = x * mask / (1-p). */
  tc_status (*dropout_fwd)(void *ctx, const tc_dropout_args *a);
  /** Dropout backward: dx (+)= dy * mask / (1-p). */
  tc_status (*dropout_bwd)(void *ctx, const tc_dropout_args *a);

  /* losses and metrics */
  /** Softmax cross-entropy with label smoothing; see tc_loss_args. */
  tc_status (*softmax_xent)(void *ctx, const tc_loss_args *a);
  /** Negative log-likelihood of log-probabilities. */
  tc_status (*nll)(void *ctx, const tc_loss_args *a);
  /** Mean squared error against `target`. */
  tc_status (*mse)(void *ctx, const tc_loss_args *a);
  /** Row-wise argmax and hit count; see tc_argmax_args. */
  tc_status (*argmax)(void *ctx, const tc_argmax_args *a);

  /* optimizers and reductions */
  /** One SGD update; see tc_sgd_args. */
  tc_status (*sgd_update)(void *ctx, const tc_sgd_args *a);
  /** One Adam / AdamW update; see tc_adam_args. */
  tc_status (*adam_update)(void *ctx, const tc_adam_args *a);
  /** A full reduction into host memory; see tc_reduce_args. */
  tc_status (*reduce)(void *ctx, const tc_reduce_args *a);

  /* extras a backend offers beyond the common slots (NULL: none) */
  /** The backend's extra function called `name` (e.g. "tc_graph_begin",
   *  "tc_cpu_isa_name"), or NULL when it has none. */
  void *(*get_proc)(void *ctx, const char *name);

  /* batch norm fused with what follows it in a residual network: optional,
   * the core runs the separate slots when these are NULL. Results must be
   * those of the separate slots, bit for bit. */
  /** As batchnorm_fwd_train, then y = relu(y + residual) (residual NULL:
   *  y = relu(y)), with relu_fwd's rule (NaN kept, +0 for y <= 0) and
   *  add's sum; writes relu_mask (y > 0: 0 for NaN) when it is not NULL. */
  tc_status (*batchnorm_relu_fwd_train)(void *ctx, const tc_batchnorm_args *a);
  /** As batchnorm_fwd_infer, then y = relu(y + residual), by the same
   *  rules. */
  tc_status (*batchnorm_relu_fwd_infer)(void *ctx, const tc_batchnorm_args *a);
  /** `y` is that forward's output; with g = (y > 0) ? dy : 0 (relu_bwd's
   *  rule), as batchnorm_bwd with dy = g, and g stored into dresidual
   *  (added when accumulate_residual) unless it is NULL. relu_mask (when
   *  not NULL) holds y > 0 as batchnorm_relu_fwd_train wrote it, and is
   *  read instead of y. */
  tc_status (*batchnorm_relu_bwd)(void *ctx, const tc_batchnorm_args *a);

  /** x[i] += delta over int64 device counters (tc_counter_args), queued
   *  like any op (no wait for the device). Optional: without it the core
   *  reads, increments and writes counters back through the host (two
   *  copies and a wait). */
  tc_status (*counter_add)(void *ctx, const tc_counter_args *a);
  /* ---- end of TC_BACKEND_API_VERSION 1 ---- */
};

/** Entry point exported by a loadable backend module. */
typedef const tc_backend_iface *(*tc_backend_entry_fn)(void);
/** The name of the symbol a backend module exports (a tc_backend_entry_fn),
 *  for dlsym(). */
#define TC_BACKEND_MODULE_ENTRY "tc_backend_module_entry"

/**
 * Registers a third-party backend under iface->name so tc_backend_create()
 * finds it. The table must outlive the library's use of it.
 * @return TC_OK, TC_EINVAL (NULL, no name, a required slot missing),
 *         TC_EVERSION (api_version newer than this library's),
 *         TC_ESTATE (the name is taken).
 */
TC_API tc_status tc_backend_register(const tc_backend_iface *iface);

/**
 * Records `fmt` as this thread's tc_last_error() message and returns
 * `status`, so a backend reports errors the way the core does:
 * `return tc_backend_error(TC_EBACKEND, "cuda: %s", cudaGetErrorString(e));`
 */
TC_API tc_status tc_backend_error(tc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** The table behind a backend handle (for backend authors and tests). */
TC_API const tc_backend_iface *tc_backend_get_iface(const tc_backend *be);
/** The backend's instance context, to pass to the table's slots. */
TC_API void *tc_backend_get_context(const tc_backend *be);
/** The device pointer to a tensor's first element (backend memory). */
TC_API void *tc_tensor_data(tc_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_BACKEND_H */
