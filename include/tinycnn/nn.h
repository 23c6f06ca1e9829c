/**
 * @file
 * @brief tinycnn/nn.h - layers, containers, models, losses and initialisation.
 * Included by <libtinycnn.h>; do not include it on its own.
 *
 * Layers are Caffe-style objects with an explicit forward and backward,
 * composed by containers (sequential, residual block) into a tree. A layer
 * only holds its configuration until it is placed in a model:
 * tc_model_create() checks every shape, gives each parameter and buffer the
 * name PyTorch gives the same module tree ("conv1.weight",
 * "layers_2n.0.bn1.running_var", ...), places parameters in one flat arena
 * and gradients in another, and initialises them as PyTorch does by
 * default. Activations are planned at the first forward of a batch size; a
 * steady-state training step allocates nothing.
 *
 * Ownership: a function that takes a layer (tc_sequential_add,
 * tc_model_create) owns it from the call on, even when it fails (it then
 * destroys it), so build code needs no cleanup on each error path.
 * Tensors returned by a model are borrowed: valid while the model lives and
 * until its next forward.
 */
#ifndef TINYCNN_NN_H
#define TINYCNN_NN_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A layer or container (opaque): a configuration until it is placed in a
 *  model, then a node of the model's tree. */
typedef struct tc_layer tc_layer;
/** A layer tree placed on a backend with its parameters, gradients and
 *  buffers (opaque), the counterpart of a torch.nn.Module ready to train. */
typedef struct tc_model tc_model;

/* ==== layers ============================================================ */

/** Destroys a layer that has not been given to a container or model,
 *  with its children. NULL ok. */
TC_API void tc_layer_destroy(tc_layer *l);

/** The layer's kind, e.g. "conv2d", "sequential". Never NULL for a layer. */
TC_API const char *tc_layer_kind(const tc_layer *l);

/** Options of tc_conv2d_create() (torch.nn.Conv2d's, groups = 1). */
typedef struct tc_conv2d_options {
  size_t struct_size; /**< sizeof(tc_conv2d_options) as compiled */
  /** Stride along height and width (PyTorch's stride); default 1. @{ */
  int64_t stride_h, stride_w;
  /** @} */
  /** Zero padding added to top and bottom, left and right (padding);
   *  default 0. @{ */
  int64_t pad_h, pad_w;
  /** @} */
  /** Spacing between kernel taps along height and width (dilation);
   *  default 1. @{ */
  int64_t dilation_h, dilation_w;
  /** @} */
  int64_t kernel_w;  /**< 0 (default): kernel is square */
  int32_t bias;      /**< default 1: learn a bias */
  int32_t reserved0; /**< reserved for a later field; set to 0 */
} tc_conv2d_options;
/** A tc_conv2d_options with its struct_size set and the defaults. */
#define TC_CONV2D_OPTIONS_INIT                                                 \
  { sizeof(tc_conv2d_options), 1, 1, 0, 0, 1, 1, 0, 1, 0 }
/** Fills `o` (of `struct_size` bytes) with the defaults.
 *  @return TC_OK, TC_EINVAL, TC_EVERSION (struct_size larger than ours). */
TC_API tc_status tc_conv2d_options_init(tc_conv2d_options *o,
                                        size_t struct_size);
/**
 * A 2-D convolution: input (N, in_channels, H, W) -> (N, out_channels, OH,
 * OW). Parameters "weight" (out, in, kh, kw) and, with bias, "bias" (out).
 * @param out receives the layer; release it with tc_layer_destroy() unless
 *        it is given to a container or model.
 * @param in_channels channels of the input (C_in), >= 1.
 * @param out_channels channels of the output (C_out), >= 1.
 * @param kernel_size kernel height (and width unless opts->kernel_w).
 * @param opts NULL for the defaults.
 * @return TC_OK, TC_EINVAL (a size < 1, padding < 0), TC_EVERSION,
 *         TC_ENOMEM.
 */
TC_API tc_status tc_conv2d_create(tc_layer **out, int64_t in_channels,
                                  int64_t out_channels, int64_t kernel_size,
                                  const tc_conv2d_options *opts);

/** Options of tc_linear_create(). */
typedef struct tc_linear_options {
  size_t struct_size; /**< sizeof(tc_linear_options) as compiled */
  int32_t bias;       /**< default 1: learn a bias */
  int32_t reserved0;  /**< reserved for a later field; set to 0 */
} tc_linear_options;
/** A tc_linear_options with its struct_size set and the defaults. */
#define TC_LINEAR_OPTIONS_INIT                                                 \
  { sizeof(tc_linear_options), 1, 0 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_linear_options_init(tc_linear_options *o,
                                        size_t struct_size);
/**
 * A fully connected layer y = x W^T + b over the last dimension:
 * (N, ..., in_features) -> (N, ..., out_features). Parameters "weight"
 * (out, in) and "bias" (out).
 * @return TC_OK, TC_EINVAL, TC_EVERSION, TC_ENOMEM.
 */
TC_API tc_status tc_linear_create(tc_layer **out, int64_t in_features,
                                  int64_t out_features,
                                  const tc_linear_options *opts);

/** BatchNorm's momentum value that selects the cumulative moving average
 *  (PyTorch's momentum=None: momentum = 1 / num_batches_tracked). */
#define TC_BN_MOMENTUM_CUMULATIVE (-1.0f)

/** Options of the batch norm layers (torch.nn.BatchNorm1d/2d's). */
typedef struct tc_batchnorm_options {
  size_t struct_size;          /**< sizeof(tc_batchnorm_options) as compiled */
  float eps;                   /**< default 1e-5 */
  float momentum;              /**< default 0.1; TC_BN_MOMENTUM_CUMULATIVE */
  int32_t affine;              /**< default 1: learn weight and bias */
  int32_t track_running_stats; /**< default 1 */
} tc_batchnorm_options;
/** A tc_batchnorm_options with its struct_size set and the defaults. */
#define TC_BATCHNORM_OPTIONS_INIT                                              \
  { sizeof(tc_batchnorm_options), 1e-5f, 0.1f, 1, 1 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_batchnorm_options_init(tc_batchnorm_options *o,
                                           size_t struct_size);
/**
 * Batch normalisation over (N, C) or (N, C, L) inputs (BatchNorm1d) or
 * (N, C, H, W) inputs (BatchNorm2d). Parameters "weight", "bias" (C) when
 * affine; buffers "running_mean", "running_var" (C) and
 * "num_batches_tracked" (TC_INT64 scalar) when tracking. Training uses the
 * batch statistics and updates the running ones; evaluation uses the running
 * ones, or the batch's when not tracking.
 * @return TC_OK, TC_EINVAL (num_features < 1, eps <= 0, momentum outside
 *         [0,1] and not TC_BN_MOMENTUM_CUMULATIVE), TC_EVERSION, TC_ENOMEM.
 */
TC_API tc_status tc_batchnorm1d_create(tc_layer **out, int64_t num_features,
                                       const tc_batchnorm_options *opts);
/** See tc_batchnorm1d_create(); input (N, C, H, W). */
TC_API tc_status tc_batchnorm2d_create(tc_layer **out, int64_t num_features,
                                       const tc_batchnorm_options *opts);

/** Options of the pooling layers (torch.nn.MaxPool2d / AvgPool2d). */
typedef struct tc_pool2d_options {
  size_t struct_size; /**< sizeof(tc_pool2d_options) as compiled */
  /** Stride along height and width; 0 (default): the kernel size. @{ */
  int64_t stride_h, stride_w;
  /** @} */
  /** Implicit padding of top and bottom, left and right (-inf for max
   *  pooling, zeros for average pooling); default 0, at most half the
   *  kernel. @{ */
  int64_t pad_h, pad_w;
  /** @} */
  int64_t kernel_w;  /**< 0 (default): square kernel */
  int32_t ceil_mode; /**< default 0; 1: round output sizes up, as PyTorch's
                          ceil_mode=True */
  int32_t count_include_pad; /**< average pooling: divide by the whole window,
                                  padding included; default 1 */
} tc_pool2d_options;
/** A tc_pool2d_options with its struct_size set and the defaults. */
#define TC_POOL2D_OPTIONS_INIT                                                 \
  { sizeof(tc_pool2d_options), 0, 0, 0, 0, 0, 0, 1 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_pool2d_options_init(tc_pool2d_options *o,
                                        size_t struct_size);
/** Max pooling (N,C,H,W) -> (N,C,OH,OW) with PyTorch's output size rule.
 *  @return TC_OK, TC_EINVAL, TC_EVERSION, TC_ENOMEM. */
TC_API tc_status tc_maxpool2d_create(tc_layer **out, int64_t kernel_size,
                                     const tc_pool2d_options *opts);
/** Average pooling; see tc_maxpool2d_create(). */
TC_API tc_status tc_avgpool2d_create(tc_layer **out, int64_t kernel_size,
                                     const tc_pool2d_options *opts);
/** Global average pooling (N,C,H,W) -> (N,C,1,1), as
 *  torch.nn.AdaptiveAvgPool2d(1). @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_global_avgpool2d_create(tc_layer **out);

/** ReLU, any shape. @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_relu_create(tc_layer **out);
/**
 * Dropout: in training each element is zeroed with probability p and the
 * rest scaled by 1/(1-p); identity in evaluation. Masks come from the
 * Philox stream (model seed, TC_RNG_STREAM_DROPOUT) at the model's dropout
 * offset (tc_model_get_rng_offset), so they are reproducible and resumable.
 * @return TC_OK, TC_EINVAL (p outside [0, 1]), TC_ENOMEM.
 */
TC_API tc_status tc_dropout_create(tc_layer **out, float p);
/** Dropout2d: zeroes whole channels of (N, C, ...) inputs. See
 *  tc_dropout_create(). */
TC_API tc_status tc_dropout2d_create(tc_layer **out, float p);
/** Flatten (N, d1, ..., dk) -> (N, d1*...*dk) (torch.nn.Flatten()). */
TC_API tc_status tc_flatten_create(tc_layer **out);
/** Identity: passes its input through. */
TC_API tc_status tc_identity_create(tc_layer **out);

/* ==== containers ======================================================== */

/** An empty sequential container (torch.nn.Sequential).
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_sequential_create(tc_layer **out);
/**
 * Appends `layer` under `name` (its name in the state dict: "conv1",
 * "0", "layers_2n"). Takes ownership of `layer` even on failure.
 * @param seq  a container made by tc_sequential_create().
 * @param name non-empty, without '.', unique in `seq`.
 * @param layer the layer to append (owned by `seq` from now on).
 * @return TC_OK, TC_EINVAL (NULL, not a sequential, bad or duplicate name,
 *         layer already in a container), TC_ESTATE (seq is in a model),
 *         TC_ENOMEM.
 */
TC_API tc_status tc_sequential_add(tc_layer *seq, const char *name,
                                   tc_layer *layer);
/** Number of layers in a sequential container; -1 if not one. */
TC_API int64_t tc_sequential_size(const tc_layer *seq);

/** Shortcut of a residual block. */
typedef enum tc_shortcut {
  /** Option A as PyTorch CIFAR ResNets write it: zero-pad the new channels and
   *  max-pool with kernel = stride = the block's stride. */
  TC_SHORTCUT_A_MAXPOOL = 0,
  /** Option A with the common x[:, :, \::stride, \::stride] subsampling
   *  (new channels zero-padded at the end, as above). */
  TC_SHORTCUT_A_SUBSAMPLE = 1,
  /** Option B: 1x1 convolution (no bias) + BatchNorm2d, named
   *  "shortcut.0" / "shortcut.1", when the shape changes; else identity. */
  TC_SHORTCUT_B = 2,
  /** No shortcut: the plain block (He et al. 2016's plain nets). */
  TC_SHORTCUT_NONE = 3
} tc_shortcut;

/** Options of tc_residual_block_create(). */
typedef struct tc_residual_options {
  size_t struct_size; /**< sizeof(tc_residual_options) as compiled */
  int32_t shortcut;   /**< tc_shortcut, default TC_SHORTCUT_A_MAXPOOL */
  int32_t reserved0;  /**< reserved for a later field; set to 0 */
} tc_residual_options;
/** A tc_residual_options with its struct_size set and the defaults. */
#define TC_RESIDUAL_OPTIONS_INIT                                               \
  { sizeof(tc_residual_options), TC_SHORTCUT_A_MAXPOOL, 0 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_residual_options_init(tc_residual_options *o,
                                          size_t struct_size);
/**
 * The CIFAR basic block: conv1 (3x3, stride, pad 1, no bias) - bn1 - ReLU
 * - conv2 (3x3, pad 1, no bias) - bn2, plus the shortcut, then ReLU.
 * Children "conv1", "bn1", "conv2", "bn2" (and "shortcut" for option B).
 * Input (N, in_channels, H, W).
 * @return TC_OK, TC_EINVAL (sizes < 1, out < in with option A, unknown
 *         shortcut), TC_EVERSION, TC_ENOMEM.
 */
TC_API tc_status tc_residual_block_create(tc_layer **out, int64_t in_channels,
                                          int64_t out_channels, int64_t stride,
                                          const tc_residual_options *opts);

/* ==== models ============================================================ */

/** Options of tc_model_create(). */
typedef struct tc_model_options {
  size_t struct_size; /**< sizeof(tc_model_options) as compiled */
  int32_t input_grad; /**< default 0; 1: backward also computes the
                           gradient wrt the input (tc_model_input_grad) */
  int32_t reserved0;  /**< reserved for a later field; set to 0 */
} tc_model_options;
/** A tc_model_options with its struct_size set and the defaults. */
#define TC_MODEL_OPTIONS_INIT                                                  \
  { sizeof(tc_model_options), 0, 0 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_model_options_init(tc_model_options *o, size_t struct_size);

/**
 * Makes a model of the layer tree `root` on backend `be`, for inputs of
 * per-sample shape `input_shape` (`ndim` sizes, without the batch
 * dimension, e.g. {3, 32, 32}). Checks every layer's shape, names
 * parameters and buffers as PyTorch does, places them (parameters in one
 * flat arena, gradients zeroed in another) and initialises them with
 * PyTorch's defaults from the Philox stream (tc_get_seed(),
 * TC_RNG_STREAM_INIT). Takes ownership of `root` even on failure.
 * The model is in training mode.
 * @return TC_OK, TC_EINVAL (NULL, root already used), TC_ESHAPE (a layer
 *         does not fit its input; the message names it), TC_EVERSION,
 *         TC_ENOMEM.
 */
TC_API tc_status tc_model_create(tc_model **out, tc_backend *be, tc_layer *root,
                                 const int64_t *input_shape, int ndim,
                                 const tc_model_options *opts);
/** Destroys the model, its layers and tensors. NULL ok. */
TC_API void tc_model_destroy(tc_model *m);

/**
 * Runs the model on `x` (N, input_shape...) and sets *out to the output
 * (N, output_shape...), borrowed: valid until the next forward. The first
 * forward with a larger batch than before allocates the activations; later
 * ones allocate nothing. `x` must stay alive and unchanged until the
 * matching tc_model_backward().
 * @return TC_OK, TC_EINVAL, TC_ESHAPE (x's shape, a batch of 0, a batch
 *         of 1 through training BatchNorm), TC_EUNSUPPORTED (the backend
 *         lacks an op), TC_ENOMEM, backend errors.
 */
TC_API tc_status tc_model_forward(tc_model *m, tc_tensor *x, tc_tensor **out);
/**
 * Back-propagates `dy` (the gradient wrt the last forward's output, same
 * shape) through the model, adding parameter gradients into the gradient
 * arena (as PyTorch accumulates; see tc_model_zero_grad).
 * @param m   the model of the last forward.
 * @param dy  NULL: the model's own tc_model_output_grad(), the usual case
 *            after tc_loss_compute(l, y, labels, &loss,
 *            tc_model_output_grad(m)).
 * @return TC_OK, TC_EINVAL, TC_ESTATE (no forward before), TC_ESHAPE,
 *         TC_EUNSUPPORTED, backend errors.
 */
TC_API tc_status tc_model_backward(tc_model *m, const tc_tensor *dy);
/**
 * Classifies a batch: runs the model on `x` (N, input_shape...) in
 * evaluation mode (dropout off, BatchNorm's running statistics, which it
 * does not update), whatever the model's mode, which it leaves as it was,
 * and writes the index of each row's largest output (the first one on a
 * tie, as torch.argmax) to host memory `out_classes`. The model's output
 * must be (N, classes). Uses the backend's argmax (a copy of N int32 to the
 * host), or reads the outputs back when the backend lacks it. Like a
 * forward, it replaces the last forward's output; it allocates only when
 * the batch is larger than every earlier one.
 * @param m            the model.
 * @param x            the input batch (N, input_shape...).
 * @param out_classes  N int32 in host memory, each in [0, classes).
 * @param n            the room in `out_classes`: must equal N.
 * @return TC_OK, TC_EINVAL (NULL), TC_ESHAPE (x's shape, n != N, an output
 *         that is not (N, classes)), TC_ENOMEM, backend errors.
 */
TC_API tc_status tc_model_predict(tc_model *m, tc_tensor *x,
                                  int32_t *out_classes, int64_t n);
/** A model-owned tensor shaped as the last forward's output, for a loss to
 *  write its gradient into (then tc_model_backward(m, NULL)); NULL before
 *  the first forward. Borrowed. */
TC_API tc_tensor *tc_model_output_grad(tc_model *m);
/** The gradient wrt the input of the last backward, when the model was
 *  created with input_grad; else NULL. Borrowed. */
TC_API tc_tensor *tc_model_input_grad(tc_model *m);
/** Per-sample output shape into `shape`; returns its ndim, -1 on NULL. */
TC_API int tc_model_output_shape(const tc_model *m, int64_t shape[TC_MAX_DIMS]);

/** Training (1, the default) or evaluation (0) mode, as module.train().
 *  @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_model_set_training(tc_model *m, int training);
/** 1 in training mode, 0 in evaluation, -1 on NULL. */
TC_API int tc_model_is_training(const tc_model *m);
/** Sets every parameter gradient to zero (one call over the arena). */
TC_API tc_status tc_model_zero_grad(tc_model *m);
/** Re-draws every parameter and resets every buffer as at creation, from
 *  (tc_get_seed(), TC_RNG_STREAM_INIT) at offset 0. */
TC_API tc_status tc_model_reset_parameters(tc_model *m);

/** Number of parameter tensors (named_parameters()); -1 on NULL. */
TC_API int64_t tc_model_num_params(const tc_model *m);
/**
 * The i-th parameter in named_parameters() order: its name, the parameter
 * and its gradient (views into the arenas). Borrowed pointers, valid while
 * the model lives; each out_* may be NULL.
 * @return TC_OK, TC_EINVAL (NULL model, i out of range).
 */
TC_API tc_status tc_model_get_param(tc_model *m, int64_t i,
                                    const char **out_name,
                                    tc_tensor **out_param,
                                    tc_tensor **out_grad);
/** Number of buffers (named_buffers()); -1 on NULL. */
TC_API int64_t tc_model_num_buffers(const tc_model *m);
/** The i-th buffer: running_mean, running_var (float32), or
 *  num_batches_tracked (TC_INT64, ndim 0). Borrowed. @return TC_OK,
 *  TC_EINVAL. */
TC_API tc_status tc_model_get_buffer(tc_model *m, int64_t i,
                                     const char **out_name,
                                     tc_tensor **out_buffer);
/** Number of state-dict entries (parameters and buffers); -1 on NULL. */
TC_API int64_t tc_model_num_state(const tc_model *m);
/** The i-th state-dict entry in PyTorch's state_dict() order (per module:
 *  parameters, then buffers, then children). Borrowed. @return TC_OK,
 *  TC_EINVAL. */
TC_API tc_status tc_model_get_state(tc_model *m, int64_t i,
                                    const char **out_name,
                                    tc_tensor **out_tensor);
/** The state-dict entry called `name`. @return TC_OK, TC_EINVAL,
 *  TC_ENOTFOUND. */
TC_API tc_status tc_model_find_state(tc_model *m, const char *name,
                                     tc_tensor **out_tensor);
/** A 1-D view of the whole parameter arena: the parameters concatenated in
 *  named_parameters() order. Borrowed; NULL on NULL. */
TC_API tc_tensor *tc_model_params_flat(tc_model *m);
/** The gradient arena, laid out as tc_model_params_flat(). Borrowed. */
TC_API tc_tensor *tc_model_grads_flat(tc_model *m);
/** The backend the model lives on (borrowed). */
TC_API tc_backend *tc_model_backend(const tc_model *m);

/** The position of the model's dropout stream (32-bit outputs consumed),
 *  for checkpoints; 0 on NULL. */
TC_API uint64_t tc_model_get_rng_offset(const tc_model *m);
/** Restores the dropout stream position. @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_model_set_rng_offset(tc_model *m, uint64_t offset);
/** The seed of the model's dropout stream (tc_get_seed() at creation). */
TC_API uint64_t tc_model_get_seed(const tc_model *m);
/** Changes the seed of the model's dropout stream. @return TC_OK,
 *  TC_EINVAL. */
TC_API tc_status tc_model_set_seed(tc_model *m, uint64_t seed);

/* ==== per-layer profiling =============================================== */

/**
 * Per-layer timing for finding where a step's time goes. The profiled
 * layers are every layer of the tree except Sequential containers, in
 * pre-order (PyTorch's named_modules() order), each named by its module
 * path ("conv1", "layers_2n.0.bn1"; "" for a root that is not a
 * Sequential). Times are exclusive: a residual block's entry holds its own
 * work (ReLUs, shortcut, sum), not its children's, so the entries add up to
 * the time spent in tc_model_forward / tc_model_backward. A ReLU that runs
 * fused into the BatchNorm2d before it (CPU backend) counts its calls with
 * no time of its own: the batch norm's entry holds it.
 *
 * While profiling is on, each forward and backward of a profiled layer is
 * timed with a monotonic clock, synchronising the backend before each
 * reading (so asynchronous backends report the work, not its launch; this
 * serialisation slows them down). Off (the default) it costs one test per
 * layer call. Profiling allocates nothing.
 */
typedef struct tc_layer_profile {
  size_t struct_size;      /**< set by the caller: sizeof(tc_layer_profile) */
  const char *name;        /**< module path; borrowed, lives with the model */
  const char *kind;        /**< tc_layer_kind(), e.g. "conv2d" */
  double forward_seconds;  /**< exclusive time in forward calls */
  double backward_seconds; /**< exclusive time in backward calls */
  int64_t forward_calls;   /**< forward calls timed */
  int64_t backward_calls;  /**< backward calls timed */
} tc_layer_profile;
/** An empty tc_layer_profile with its struct_size set, for
 *  tc_model_get_profile(). */
#define TC_LAYER_PROFILE_INIT                                                  \
  { sizeof(tc_layer_profile), NULL, NULL, 0, 0, 0, 0 }

/** Turns profiling on (non-zero) or off. Turning it on or off keeps the
 *  totals gathered so far (see tc_model_reset_profile).
 *  @return TC_OK, TC_EINVAL (NULL). */
TC_API tc_status tc_model_set_profiling(tc_model *m, int on);
/** 1 when profiling is on, 0 when off, -1 on NULL. */
TC_API int tc_model_is_profiling(const tc_model *m);
/** Sets every layer's times and call counts to zero. @return TC_OK,
 *  TC_EINVAL. */
TC_API tc_status tc_model_reset_profile(tc_model *m);
/** Number of profiled layers (fixed when the model is created); -1 on
 *  NULL. */
TC_API int64_t tc_model_profile_count(const tc_model *m);
/**
 * The totals of the i-th profiled layer, 0 <= i < tc_model_profile_count().
 * Fills the first out->struct_size bytes of `out` (a caller built against
 * an older header gets the fields it knows).
 * @return TC_OK, TC_EINVAL (NULL, i out of range, struct_size too small to
 *         hold the name and kind), TC_EVERSION (struct_size larger than
 *         this library's).
 */
TC_API tc_status tc_model_get_profile(const tc_model *m, int64_t i,
                                      tc_layer_profile *out);

/* ==== model summary ===================================================== */

/**
 * What a model is made of, as torchinfo's summary shows it: per layer its
 * module path, kind, output shape, parameter count and forward
 * multiply-adds per image; in total the parameters, multiply-adds, and
 * the memory of parameters, buffers and activations for a batch.
 *
 * The layers are those of the per-layer profile (every layer but
 * Sequential containers, pre-order, tc_model_profile_count() of them).
 * Counts are the layer's own, not its children's (a residual block's are
 * zero: its convolutions and batch norms have their own entries), so the
 * entries add up to the totals. Multiply-adds count convolutions (K * OH
 * * OW * C * R * S) and linear layers (rows * in * out) only, without
 * biases, batch norm, pooling or activations: the convention of the usual
 * published figures (LeNet-5 651,720; CIFAR ResNet-20 40.6 M).
 */
typedef struct tc_layer_summary {
  size_t struct_size; /**< set by the caller: sizeof(tc_layer_summary) */
  const char *name;   /**< module path; borrowed, lives with the model */
  const char *kind;   /**< tc_layer_kind(), e.g. "conv2d" */
  int32_t depth;      /**< nesting depth: 1 for the root's children */
  int32_t out_ndim;   /**< dimensions of out_shape */
  int64_t out_shape[TC_MAX_DIMS]; /**< per-sample output shape */
  int64_t params;                 /**< parameter elements (trainable) */
  int64_t buffers; /**< buffer elements (running statistics etc.) */
  int64_t macs;    /**< forward multiply-adds per image */
} tc_layer_summary;
/** An empty tc_layer_summary with its struct_size set, for
 *  tc_model_get_layer_summary(). */
#define TC_LAYER_SUMMARY_INIT                                                  \
  { sizeof(tc_layer_summary), NULL, NULL, 0, 0, {0}, 0, 0, 0 }

/** Totals of a model for a given batch size. */
typedef struct tc_model_totals {
  size_t struct_size;       /**< set by the caller */
  int64_t params;           /**< parameter elements, as PyTorch's
                                 sum(p.numel() for p in parameters()) */
  int64_t buffers;          /**< buffer elements */
  int64_t macs;             /**< forward multiply-adds per image */
  int64_t param_bytes;      /**< parameters and buffers, bytes */
  int64_t input_bytes;      /**< one input batch, bytes */
  int64_t activation_bytes; /**< the outputs of every listed layer for the
                                 batch, bytes (torchinfo's forward pass
                                 size: an upper bound of what the model
                                 plans, see docs/models.md) */
} tc_model_totals;
/** An empty tc_model_totals with its struct_size set, for
 *  tc_model_get_totals(). */
#define TC_MODEL_TOTALS_INIT                                                   \
  { sizeof(tc_model_totals), 0, 0, 0, 0, 0, 0 }

/**
 * The summary of the i-th layer, 0 <= i < tc_model_profile_count().
 * Fills the first out->struct_size bytes of `out`.
 * @return TC_OK, TC_EINVAL (NULL, i out of range, struct_size too small
 *         to hold name and kind), TC_EVERSION (struct_size larger than
 *         this library's).
 */
TC_API tc_status tc_model_get_layer_summary(const tc_model *m, int64_t i,
                                            tc_layer_summary *out);
/**
 * The model's totals for batches of `batch` images (>= 1).
 * Fills the first out->struct_size bytes of `out`.
 * @return TC_OK, TC_EINVAL, TC_EVERSION.
 */
TC_API tc_status tc_model_get_totals(const tc_model *m, int64_t batch,
                                     tc_model_totals *out);
/**
 * Writes the summary as a text table (one row per layer, indented by
 * depth, then the totals for `batch`) into `buf`, as snprintf does: at
 * most `size` bytes including the terminating NUL, which is always
 * written when size > 0. *out_len (may be NULL) receives the length of
 * the whole text without the NUL, so a call with buf NULL and size 0
 * measures it, and the text was cut when *out_len >= size.
 * @return TC_OK, TC_EINVAL (NULL model, buf NULL with size > 0, batch <
 *         1).
 */
TC_API tc_status tc_model_summary(const tc_model *m, int64_t batch, char *buf,
                                  size_t size, size_t *out_len);

/* ==== losses ============================================================ */

/** A loss function with its scratch buffers on one backend (opaque). */
typedef struct tc_loss tc_loss;

/** The loss a tc_loss computes. */
typedef enum tc_loss_kind {
  /** nn.CrossEntropyLoss over logits (N, C) and int32 labels (N) */
  TC_LOSS_CROSS_ENTROPY = 0,
  /** nn.NLLLoss over log-probabilities (N, C) and int32 labels (N) */
  TC_LOSS_NLL = 1,
  /** nn.MSELoss over (N, ...) float predictions and targets */
  TC_LOSS_MSE = 2
} tc_loss_kind;

/** Reduction of a loss over the batch. */
typedef enum tc_loss_reduction {
  TC_LOSS_MEAN = 0, /**< default; MSE: mean over all elements */
  TC_LOSS_SUM = 1
} tc_loss_reduction;

/** Options of tc_loss_create(). */
typedef struct tc_loss_options {
  size_t struct_size;    /**< sizeof(tc_loss_options) as compiled */
  int32_t reduction;     /**< tc_loss_reduction, default TC_LOSS_MEAN */
  float label_smoothing; /**< cross-entropy only, in [0, 1]; default 0 */
} tc_loss_options;
/** A tc_loss_options with its struct_size set and the defaults. */
#define TC_LOSS_OPTIONS_INIT                                                   \
  { sizeof(tc_loss_options), TC_LOSS_MEAN, 0.f }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_loss_options_init(tc_loss_options *o, size_t struct_size);

/** A loss function on backend `be`. @return TC_OK, TC_EINVAL (unknown
 *  kind or reduction, smoothing outside [0,1] or not cross-entropy),
 *  TC_EVERSION, TC_ENOMEM. */
TC_API tc_status tc_loss_create(tc_loss **out, tc_backend *be,
                                tc_loss_kind kind, const tc_loss_options *opts);
/** NULL ok. */
TC_API void tc_loss_destroy(tc_loss *l);
/**
 * Computes the loss of `input` (N, C) against `target` (labels: int32 (N)
 * in [0, C); MSE: float32 of input's shape) into *out_value (host) and,
 * when `grad` is not NULL, d(loss)/d(input) into `grad` (input's element
 * count, e.g. tc_model_output_grad()). Allocates nothing once it has seen
 * a batch this large. Reads back from the device, so on a GPU it waits
 * for the queued work: the labels (range check), a NaN/Inf count of the
 * inputs and the loss value each cross to the host. A training step that
 * must not wait (CUDA graph capture) uses tc_loss_compute_async().
 * @return TC_OK, TC_EINVAL (NULL, a label out of range), TC_ESHAPE,
 *         TC_ENUMERIC (NaN or Inf in input or target: nothing written),
 *         TC_EUNSUPPORTED, TC_ENOMEM.
 */
TC_API tc_status tc_loss_compute(tc_loss *l, const tc_tensor *input,
                                 const tc_tensor *target, float *out_value,
                                 tc_tensor *grad);
/**
 * As tc_loss_compute(), but nothing is read back and nothing waits for the
 * device: the value stays in device memory, in the loss object and, when
 * `out_loss` is not NULL, in that float32 tensor of one element on the
 * loss's backend; read it with tc_loss_read(). Differences:
 *  - NaN or Inf in `input` or `target` is not looked for: it reaches the
 *    value (and `grad`), and tc_loss_read() reports it;
 *  - a label outside [0, C) is found on the device: the call succeeds,
 *    the value is NaN, `grad` holds NaN at least in that label's row, and
 *    tc_loss_read() returns TC_EINVAL. Read the value (or check it) before
 * stepping an optimizer if bad labels are possible. On the CPU backend value
 * and gradient have the same bits as tc_loss_compute()'s.
 * @return TC_OK, TC_EINVAL (NULL), TC_ESHAPE (also: out_loss not float32
 *         (1) on the loss's backend), TC_EUNSUPPORTED, TC_ENOMEM.
 */
TC_API tc_status tc_loss_compute_async(tc_loss *l, const tc_tensor *input,
                                       const tc_tensor *target,
                                       tc_tensor *out_loss, tc_tensor *grad);
/**
 * Reads the value of the last tc_loss_compute_async() into *out_value:
 * one copy to the host, which waits for the device.
 * @return TC_OK, TC_EINVAL (NULL, or a label of that batch was out of
 *         range), TC_ENUMERIC (the value is NaN or Inf: NaN/Inf inputs or
 *         an overflow), TC_ESTATE (the last compute was not asynchronous or
 *         failed), the backend's errors. *out_value is written only on
 *         TC_OK.
 */
TC_API tc_status tc_loss_read(tc_loss *l, float *out_value);
/** The number of rows of `scores` (N, C) whose first maximum is at the
 *  int32 label (N). @return TC_OK, TC_EINVAL, TC_ESHAPE, TC_EUNSUPPORTED.
 */
TC_API tc_status tc_accuracy_count(const tc_tensor *scores,
                                   const tc_tensor *labels,
                                   int64_t *out_correct);

/* ==== initialisation (torch.nn.init) ==================================== */

/** Which fan the Kaiming initialisers scale by (torch.nn.init's mode). */
typedef enum tc_fan_mode {
  TC_FAN_IN = 0, /**< "fan_in": keeps the forward pass's variance */
  TC_FAN_OUT = 1 /**< "fan_out": keeps the backward pass's variance */
} tc_fan_mode;

/** The nonlinearity whose gain the initialisers use
 *  (torch.nn.init.calculate_gain). */
typedef enum tc_nonlinearity {
  TC_NONLINEARITY_LINEAR = 0,     /**< gain 1 (also conv, sigmoid) */
  TC_NONLINEARITY_RELU = 1,       /**< gain sqrt(2) */
  TC_NONLINEARITY_LEAKY_RELU = 2, /**< gain sqrt(2 / (1 + a^2)) */
  TC_NONLINEARITY_TANH = 3,       /**< gain 5/3 */
  TC_NONLINEARITY_SIGMOID = 4     /**< gain 1 */
} tc_nonlinearity;

/** torch.nn.init.calculate_gain; `param` is leaky ReLU's slope. Returns a
 *  negative number for an unknown nonlinearity. */
TC_API double tc_init_calculate_gain(tc_nonlinearity nl, double param);
/** fan_in = size(1) * receptive field, fan_out = size(0) * receptive
 *  field, for tensors of at least 2 dimensions. @return TC_OK, TC_EINVAL.
 */
TC_API tc_status tc_init_fans(const tc_tensor *t, int64_t *out_fan_in,
                              int64_t *out_fan_out);
/**
 * The initialisers below fill a float32 tensor with numbers drawn from
 * `rng` (advanced by what they use), element by element in row-major
 * order, as torch.nn.init does:
 *  - kaiming_uniform: U(-b, b), b = gain * sqrt(3 / fan), gain from
 *    (nl, a); kaiming_normal: N(0, gain / sqrt(fan));
 *  - xavier_uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out));
 *    xavier_normal: N(0, gain * sqrt(2 / (fan_in + fan_out)));
 *  - uniform: U(lo, hi); normal: N(mean, std).
 * @return TC_OK, TC_EINVAL (NULL, not float32, fewer than 2 dimensions
 *         where fans are needed, a zero fan), TC_ENOMEM.
 */
TC_API tc_status tc_init_kaiming_uniform(tc_tensor *t, double a,
                                         tc_fan_mode mode, tc_nonlinearity nl,
                                         tc_rng *rng);
/** See tc_init_kaiming_uniform(). */
TC_API tc_status tc_init_kaiming_normal(tc_tensor *t, double a,
                                        tc_fan_mode mode, tc_nonlinearity nl,
                                        tc_rng *rng);
/** See tc_init_kaiming_uniform(). */
TC_API tc_status tc_init_xavier_uniform(tc_tensor *t, double gain, tc_rng *rng);
/** See tc_init_kaiming_uniform(). */
TC_API tc_status tc_init_xavier_normal(tc_tensor *t, double gain, tc_rng *rng);
/** See tc_init_kaiming_uniform(). */
TC_API tc_status tc_init_uniform(tc_tensor *t, double lo, double hi,
                                 tc_rng *rng);
/** See tc_init_kaiming_uniform(). */
TC_API tc_status tc_init_normal(tc_tensor *t, double mean, double std,
                                tc_rng *rng);
/** Sets every element to `value` (nn.init.constant_). */
TC_API tc_status tc_init_constant(tc_tensor *t, double value);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_NN_H */
