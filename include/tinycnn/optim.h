/**
 * @file
 * @brief tinycnn/optim.h - optimizers (SGD, Adam, AdamW), parameter groups,
 * gradient-norm clipping and learning-rate schedulers, with the formulas and
 * defaults of torch.optim. Included by <libtinycnn.h>.
 *
 * An optimizer works on a list of (name, parameter, gradient) float32
 * tensors on one backend, so it does not depend on how a model is built;
 * tc_optimizer_create_*_for_model() takes that list from a model. Each
 * parameter belongs to one group (group 0 holds the creation options); a
 * group has its own options (lr, weight decay, ...), which is how a program
 * turns weight decay off for BatchNorm parameters and biases.
 *
 * State (momentum buffers, Adam moments, the step count) lives in one flat
 * device arena per kind, allocated at creation; a step allocates nothing.
 * tc_optimizer_get_state() exposes it as named tensors for checkpoints.
 */
#ifndef TINYCNN_OPTIM_H
#define TINYCNN_OPTIM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An optimizer over a list of parameters and their state (opaque). */
typedef struct tc_optimizer tc_optimizer;
/** A learning-rate scheduler of one optimizer (opaque). */
typedef struct tc_scheduler tc_scheduler;
typedef struct tc_model tc_model; /**< a model, declared in tinycnn/nn.h */

/** Which update rule an optimizer applies. */
typedef enum tc_optimizer_type {
  TC_OPTIMIZER_SGD = 0,  /**< torch.optim.SGD */
  TC_OPTIMIZER_ADAM = 1, /**< torch.optim.Adam (L2 weight decay) */
  TC_OPTIMIZER_ADAMW = 2 /**< torch.optim.AdamW (decoupled weight decay) */
} tc_optimizer_type;

/* ---- options ----------------------------------------------------------- */

/**
 * torch.optim.SGD's options. PyTorch has no default lr; ours is 0.01.
 * Update per element (torch.optim.SGD): g = grad + weight_decay * param;
 * with momentum, buf = g on the first step, else
 * buf = momentum * buf + (1 - dampening) * g; g = nesterov ? g + momentum *
 * buf : buf; param -= lr * g.
 */
typedef struct tc_sgd_options {
  size_t struct_size; /**< sizeof(tc_sgd_options) */
  float lr;           /**< >= 0, default 0.01 */
  float momentum;     /**< >= 0, default 0 */
  float dampening;    /**< finite, default 0 */
  float weight_decay; /**< >= 0 (L2 added to the gradient), default 0 */
  int32_t nesterov;   /**< non-zero: Nesterov momentum (needs momentum > 0,
                           dampening 0), default 0 */
  int32_t reserved0;  /**< must be 0 */
} tc_sgd_options;

/** A tc_sgd_options with its struct_size set and the defaults. */
#define TC_SGD_OPTIONS_INIT                                                    \
  { sizeof(tc_sgd_options), 0.01f, 0.f, 0.f, 0.f, 0, 0 }

/**
 * torch.optim.Adam / AdamW's options (betas = (beta1, beta2)).
 * Adam adds weight_decay * param to the gradient; AdamW instead multiplies
 * the parameter by (1 - lr * weight_decay) before the update.
 */
typedef struct tc_adam_options {
  size_t struct_size; /**< sizeof(tc_adam_options) */
  float lr;           /**< >= 0, default 1e-3 */
  float beta1;        /**< in [0, 1), default 0.9 */
  float beta2;        /**< in [0, 1), default 0.999 */
  float eps;          /**< >= 0, default 1e-8 */
  float weight_decay; /**< >= 0, default 0 (Adam) or 1e-2 (AdamW) */
  int32_t amsgrad;    /**< non-zero: keep the maximum of exp_avg_sq */
} tc_adam_options;

/** A tc_adam_options with its struct_size set and Adam's defaults. */
#define TC_ADAM_OPTIONS_INIT                                                   \
  { sizeof(tc_adam_options), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, 0 }
/** A tc_adam_options with its struct_size set and AdamW's defaults
 *  (weight_decay 1e-2). */
#define TC_ADAMW_OPTIONS_INIT                                                  \
  { sizeof(tc_adam_options), 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 0 }

/** Fills `o` with SGD defaults for a struct of `struct_size` bytes.
 *  @return TC_OK, TC_EINVAL (NULL, size too small), TC_EVERSION (larger
 *  than this library's struct). */
TC_API tc_status tc_sgd_options_init(tc_sgd_options *o, size_t struct_size);
/** Same for Adam defaults (weight_decay 0). */
TC_API tc_status tc_adam_options_init(tc_adam_options *o, size_t struct_size);
/** Same for AdamW defaults (weight_decay 1e-2). */
TC_API tc_status tc_adamw_options_init(tc_adam_options *o, size_t struct_size);

/* ---- creation ---------------------------------------------------------- */

/**
 * Creates an SGD optimizer over `n` parameters.
 * @param out     receives the optimizer (tc_optimizer_destroy()).
 * @param params  n float32 tensors, all on one backend; borrowed: they and
 *                `grads` must outlive the optimizer.
 * @param grads   n float32 tensors, grads[i] with params[i]'s element count.
 * @param names   n distinct non-empty names (copied), used for state names
 *                and group selection; NULL names them "0", "1", ... as
 *                PyTorch's optimizer state_dict does.
 * @param n       >= 1.
 * @param o       options of group 0; NULL: TC_SGD_OPTIONS_INIT.
 * @return TC_OK, TC_EINVAL (NULL, n < 1, dtype, backend mix, duplicate
 *         name, bad option such as a negative or NaN lr, nesterov without
 *         momentum or with dampening), TC_ESHAPE (grad size differs),
 *         TC_EVERSION (options struct newer than the library), TC_ENOMEM.
 */
TC_API tc_status tc_optimizer_create_sgd(tc_optimizer **out,
                                         tc_tensor *const *params,
                                         tc_tensor *const *grads,
                                         const char *const *names, int64_t n,
                                         const tc_sgd_options *o);
/** Adam (torch.optim.Adam); as tc_optimizer_create_sgd, NULL `o`:
 *  TC_ADAM_OPTIONS_INIT. Bad betas, eps or lr are TC_EINVAL. */
TC_API tc_status tc_optimizer_create_adam(tc_optimizer **out,
                                          tc_tensor *const *params,
                                          tc_tensor *const *grads,
                                          const char *const *names, int64_t n,
                                          const tc_adam_options *o);
/** AdamW (torch.optim.AdamW); NULL `o`: TC_ADAMW_OPTIONS_INIT. */
TC_API tc_status tc_optimizer_create_adamw(tc_optimizer **out,
                                           tc_tensor *const *params,
                                           tc_tensor *const *grads,
                                           const char *const *names, int64_t n,
                                           const tc_adam_options *o);

/**
 * The same over every parameter of a model, in the model's order, named as
 * in its state dict (tc_model_num_params / tc_model_get_param). The model
 * must outlive the optimizer.
 * @return as tc_optimizer_create_sgd; TC_EUNSUPPORTED when the library was
 *         built without the model API.
 */
TC_API tc_status tc_optimizer_create_sgd_for_model(tc_optimizer **out,
                                                   tc_model *m,
                                                   const tc_sgd_options *o);
/** tc_optimizer_create_adam() over a model's parameters; see
 *  tc_optimizer_create_sgd_for_model(). */
TC_API tc_status tc_optimizer_create_adam_for_model(tc_optimizer **out,
                                                    tc_model *m,
                                                    const tc_adam_options *o);
/** tc_optimizer_create_adamw() over a model's parameters; see
 *  tc_optimizer_create_sgd_for_model(). */
TC_API tc_status tc_optimizer_create_adamw_for_model(tc_optimizer **out,
                                                     tc_model *m,
                                                     const tc_adam_options *o);

/** Frees the optimizer and its state (not the parameters). NULL ok. */
TC_API void tc_optimizer_destroy(tc_optimizer *opt);

/* ---- training ---------------------------------------------------------- */

/**
 * Applies one update to every parameter from its gradient, then counts the
 * step. Allocates nothing.
 * @return TC_OK, TC_EINVAL (NULL), TC_EUNSUPPORTED (the backend lacks the
 *         update primitive), a backend error.
 */
TC_API tc_status tc_optimizer_step(tc_optimizer *opt);

/** Sets every gradient to zero (PyTorch's zero_grad(set_to_none=False)).
 *  @return TC_OK, TC_EINVAL, a backend error. */
TC_API tc_status tc_optimizer_zero_grad(tc_optimizer *opt);

/**
 * torch.nn.utils.clip_grad_norm_ with the L2 norm: total = sqrt(sum of
 * squares of every element of every gradient); when
 * max_norm / (total + 1e-6) < 1 every gradient is multiplied by that
 * factor. `*out_norm` receives the total norm before clipping.
 * @param grads     n float32 gradient tensors.
 * @param n         >= 1.
 * @param max_norm  >= 0; +INFINITY only measures.
 * @param out_norm  receives the total norm (not NULL).
 * @return TC_OK, TC_EINVAL (NULL, n < 1, non-float32, NaN or negative
 *         max_norm), TC_ENUMERIC (the norm is NaN or Inf: nothing is
 *         changed and *out_norm is not written), TC_EUNSUPPORTED,
 *         a backend error.
 */
TC_API tc_status tc_clip_grad_norm(tc_tensor *const *grads, int64_t n,
                                   double max_norm, double *out_norm);
/** tc_clip_grad_norm over the optimizer's gradients. `out_norm` may be
 *  NULL. */
TC_API tc_status tc_optimizer_clip_grad_norm(tc_optimizer *opt, double max_norm,
                                             double *out_norm);

/* ---- queries ----------------------------------------------------------- */

/** The optimizer's update rule; TC_OPTIMIZER_SGD for NULL. */
TC_API tc_optimizer_type tc_optimizer_get_type(const tc_optimizer *opt);
/** Number of parameters; -1 for NULL. */
TC_API int64_t tc_optimizer_num_params(const tc_optimizer *opt);
/** The i-th parameter's name (owned by the optimizer), or NULL. */
TC_API const char *tc_optimizer_param_name(const tc_optimizer *opt, int64_t i);

/* ---- parameter groups -------------------------------------------------- */

/**
 * Adds a group with its own options (initially holding no parameter) and
 * writes its index to `out_group` (may be NULL). Use the call that matches
 * the optimizer's type; NULL `o` gives that type's defaults. May allocate
 * state that the new options need (momentum buffers, amsgrad maxima).
 * @return TC_OK, TC_EINVAL (NULL, wrong type, bad option), TC_EVERSION,
 *         TC_ENOMEM.
 */
TC_API tc_status tc_optimizer_add_group_sgd(tc_optimizer *opt,
                                            const tc_sgd_options *o,
                                            int64_t *out_group);
/** tc_optimizer_add_group_sgd() for an Adam or AdamW optimizer. */
TC_API tc_status tc_optimizer_add_group_adam(tc_optimizer *opt,
                                             const tc_adam_options *o,
                                             int64_t *out_group);
/** Replaces the options of an existing group (its base lr becomes o->lr).
 *  @return as tc_optimizer_add_group_sgd, TC_EINVAL for a bad group. */
TC_API tc_status tc_optimizer_set_group_sgd(tc_optimizer *opt, int64_t group,
                                            const tc_sgd_options *o);
/** tc_optimizer_set_group_sgd() for an Adam or AdamW optimizer. */
TC_API tc_status tc_optimizer_set_group_adam(tc_optimizer *opt, int64_t group,
                                             const tc_adam_options *o);
/** Number of groups (>= 1); -1 for NULL. */
TC_API int64_t tc_optimizer_num_groups(const tc_optimizer *opt);

/** Moves parameter `index` into `group`. @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_optimizer_set_param_group(tc_optimizer *opt, int64_t index,
                                              int64_t group);
/** Moves the parameter called `name` into `group`.
 *  @return TC_OK, TC_EINVAL, TC_ENOTFOUND. */
TC_API tc_status tc_optimizer_set_param_group_by_name(tc_optimizer *opt,
                                                      const char *name,
                                                      int64_t group);
/** The group of parameter `index`, or -1 when out of range. */
TC_API int64_t tc_optimizer_get_param_group(const tc_optimizer *opt,
                                            int64_t index);

/** A parameter selector: non-zero selects. */
typedef int (*tc_param_filter_fn)(void *user, const char *name,
                                  const tc_tensor *param);
/**
 * Moves every parameter that `filter` selects into `group`; the number
 * moved goes to `out_count` (may be NULL).
 * @return TC_OK, TC_EINVAL.
 */
TC_API tc_status tc_optimizer_set_group_where(tc_optimizer *opt,
                                              tc_param_filter_fn filter,
                                              void *user, int64_t group,
                                              int64_t *out_count);
/**
 * A ready filter for the usual "no weight decay" group: selects tensors of
 * at most one dimension, i.e. biases and BatchNorm weights and biases
 * (`user` and `name` unused).
 */
TC_API int tc_param_filter_no_decay(void *user, const char *name,
                                    const tc_tensor *param);

/** The current learning rate of `group`. @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_optimizer_get_lr(const tc_optimizer *opt, int64_t group,
                                     double *out_lr);
/** Sets the current learning rate of `group` (finite, >= 0); the group's
 *  base lr, from which schedulers compute, is unchanged.
 *  @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_optimizer_set_lr(tc_optimizer *opt, int64_t group,
                                     double lr);
/** The base lr of `group` (PyTorch's initial_lr): the lr of its options. */
TC_API tc_status tc_optimizer_get_base_lr(const tc_optimizer *opt,
                                          int64_t group, double *out_lr);

/* ---- state, for checkpoints -------------------------------------------- */

/**
 * Number of state tensors. They are, per parameter in order:
 *  SGD with momentum in any group: "optimizer.state.<name>.momentum_buffer";
 *  Adam/AdamW: "optimizer.state.<name>.exp_avg", "...exp_avg_sq", and
 *  "...max_exp_avg_sq" when amsgrad is on in any group;
 * then one optimizer-wide "optimizer.step" (TC_INT64 scalar): the number of
 * steps taken (PyTorch keeps a per-parameter "step" equal to it).
 * Momentum buffers count as initialised (PyTorch's buf = grad on the first
 * step) exactly when the step count is non-zero, so step + buffers resume
 * a run bit-identically. Unused buffers (a group with momentum 0) stay 0.
 * Returns -1 for NULL.
 */
TC_API int64_t tc_optimizer_num_state(const tc_optimizer *opt);

/**
 * The i-th state tensor and its name, both owned by the optimizer (valid
 * until it is destroyed or a group change adds state). A caller may read
 * or overwrite the tensor (to save or load a checkpoint); the values it
 * reads are those after the last step, and what it writes (the step count
 * included) is used from the next call on the optimizer.
 * @return TC_OK, TC_EINVAL (NULL, i out of range), a backend error.
 */
TC_API tc_status tc_optimizer_get_state(tc_optimizer *opt, int64_t i,
                                        const char **out_name,
                                        tc_tensor **out_t);

/** The number of steps taken. @return TC_OK, TC_EINVAL, a backend error
 *  (reading a step count written through tc_optimizer_get_state). */
TC_API tc_status tc_optimizer_get_step(tc_optimizer *opt, int64_t *out_step);
/** Sets the step count (>= 0): Adam's bias correction and whether momentum
 *  buffers are initialised follow it. @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_optimizer_set_step(tc_optimizer *opt, int64_t step);

/* ---- learning-rate schedulers ----------------------------------------- */
/**
 * @name Learning-rate schedulers
 * A scheduler sets the lr of every group of its optimizer from the group's
 * base lr and a counter `last_epoch` (0 after creation, +1 per
 * tc_scheduler_step), with torch.optim.lr_scheduler's closed forms. Call
 * tc_scheduler_step once per epoch or once per iteration: the counter counts
 * whatever the program steps it by. Creation applies the lr of
 * last_epoch 0, as PyTorch's constructors do. A scheduler borrows its
 * optimizer, which must outlive it.
 * @{
 */

/** StepLR: lr = base * gamma^(last_epoch / step_size) (integer division).
 *  @param out  receives the scheduler (tc_scheduler_destroy()).
 *  @param opt  the optimizer whose groups' lrs it sets (borrowed).
 *  @param step_size >= 1
 *  @param gamma finite, >= 0 (PyTorch: 0.1)
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_scheduler_create_step(tc_scheduler **out, tc_optimizer *opt,
                                          int64_t step_size, double gamma);
/** MultiStepLR: lr = base * gamma^(number of milestones <= last_epoch).
 *  @param out  receives the scheduler (tc_scheduler_destroy()).
 *  @param opt  the optimizer whose groups' lrs it sets (borrowed).
 *  @param milestones n values >= 0 (copied; any order; a repeated value
 *  counts twice, as in PyTorch).
 *  @param n the number of milestones, >= 0.
 *  @param gamma finite, >= 0 (PyTorch: 0.1)
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_scheduler_create_multistep(tc_scheduler **out,
                                               tc_optimizer *opt,
                                               const int64_t *milestones,
                                               int64_t n, double gamma);
/** CosineAnnealingLR: lr = eta_min + (base - eta_min) *
 *  (1 + cos(pi * last_epoch / t_max)) / 2 (continuing the cosine past
 *  t_max, as PyTorch does).
 *  @param out  receives the scheduler (tc_scheduler_destroy()).
 *  @param opt  the optimizer whose groups' lrs it sets (borrowed).
 *  @param t_max >= 1
 *  @param eta_min finite >= 0.
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_scheduler_create_cosine(tc_scheduler **out,
                                            tc_optimizer *opt, int64_t t_max,
                                            double eta_min);
/** LinearLR (linear warmup): lr = base * (start + (end - start) *
 *  min(last_epoch, total_iters) / total_iters).
 *  @param out  receives the scheduler (tc_scheduler_destroy()).
 *  @param opt  the optimizer whose groups' lrs it sets (borrowed).
 *  @param start_factor in (0, 1] (PyTorch: 1/3)
 *  @param end_factor in [0, 1] (PyTorch: 1)
 *  @param total_iters >= 1 (PyTorch: 5).
 *  @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_scheduler_create_linear(tc_scheduler **out,
                                            tc_optimizer *opt,
                                            double start_factor,
                                            double end_factor,
                                            int64_t total_iters);
/**
 * SequentialLR: `children[0]` runs until `milestones[0]`, then
 * `children[1]` restarts from its own last_epoch 0, and so on; e.g. a
 * LinearLR warmup of 5 epochs then a cosine: children {linear, cosine},
 * milestones {5}. On success the new scheduler owns the children (do not
 * step or destroy them); on failure they stay the caller's.
 * @param out         receives the scheduler (tc_scheduler_destroy()).
 * @param opt         the optimizer of every child (borrowed).
 * @param children    n schedulers of the same optimizer `opt`, distinct,
 *                    not already owned by a sequential scheduler.
 * @param n           the number of children, >= 1.
 * @param milestones  n - 1 strictly increasing values >= 1.
 * @return TC_OK, TC_EINVAL, TC_ENOMEM.
 */
TC_API tc_status tc_scheduler_create_sequential(tc_scheduler **out,
                                                tc_optimizer *opt,
                                                tc_scheduler *const *children,
                                                int64_t n,
                                                const int64_t *milestones);
/** Frees the scheduler (and the children of a sequential one); the
 *  optimizer's lr stays as last set. NULL ok. */
TC_API void tc_scheduler_destroy(tc_scheduler *s);

/** Advances last_epoch by one and sets the optimizer's lrs.
 *  @return TC_OK, TC_EINVAL (NULL, a child of a sequential scheduler). */
TC_API tc_status tc_scheduler_step(tc_scheduler *s);
/** The lr this scheduler gives `group` at its current last_epoch (what it
 *  last set; PyTorch's get_last_lr()[group]). @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_scheduler_get_lr(const tc_scheduler *s, int64_t group,
                                     double *out_lr);
/** The scheduler's counter (its whole state); -1 for NULL. */
TC_API int64_t tc_scheduler_get_last_epoch(const tc_scheduler *s);
/** Restores the counter (>= 0) and sets the optimizer's lrs for it, so a
 *  resumed run continues the same schedule. @return TC_OK, TC_EINVAL. */
TC_API tc_status tc_scheduler_set_last_epoch(tc_scheduler *s,
                                             int64_t last_epoch);
/** @} */

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_OPTIM_H */
