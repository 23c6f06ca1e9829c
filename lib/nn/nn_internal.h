/*
 * nn_internal.h - the layer object shared by lib/nn: a generic struct
 * tc_layer with a vtable per kind, the parameter/buffer specs a layer
 * declares at construction, and helpers for planned buffers and views.
 *
 * Life of a layer: constructed (configuration only) -> placed in a model
 * (infer checks per-sample shapes; the model creates parameter views in its
 * arenas and buffers, then calls init) -> plan(n) for each new batch size
 * -> forward / backward. Per-sample shapes exclude the batch dimension.
 * Backward writes dx (the gradient wrt the layer's input) overwriting it,
 * or adding to it when `acc`; dx NULL means "not needed". Parameter
 * gradients are always added to (PyTorch accumulates).
 *
 * Memory (docs/models.md, "Memory"; all of it planned by plan.c): a
 * training forward keeps what backward needs in per-layer buffers;
 * gradient temporaries live in the model's gradient slots, shared by every
 * layer at the same nesting depth (a layer at depth d only uses depth-d
 * slots and is only handed dy/dx from shallower depths, so they never
 * collide); an evaluation forward beyond the trained batch puts outputs in
 * the model's inference arena of interchangeable slots, released as soon
 * as their consumer has run.
 */
#ifndef TINYCNN_NN_INTERNAL_H
#define TINYCNN_NN_INTERNAL_H

#include <string.h>

#include "../internal.h"

#define NN_MAX_PARAMS 2
#define NN_MAX_BUFFERS 3
#define NN_SAMPLE_DIMS (TC_MAX_DIMS - 1)

typedef struct nn_kind nn_kind;

/* A layer's configuration, as the model summary and the ONNX exporter
 * read it (each kind's describe fills what applies; the rest is zero). */
typedef struct nn_desc {
  int64_t in_c, out_c;                /* conv, linear (features), residual */
  int64_t kh, kw, stride_h, stride_w; /* conv, pooling */
  int64_t pad_h, pad_w, dil_h, dil_w;
  int64_t stride;    /* residual block */
  float eps, p;      /* batch norm; dropout */
  int bias;          /* conv, linear */
  int affine, track; /* batch norm */
  int ceil_mode, count_include_pad;
  int shortcut, identity; /* residual block: tc_shortcut; x passes as is */
} nn_desc;

/* A parameter or buffer the layer declares; the model makes the tensor. */
typedef struct nn_spec {
  const char *name; /* "weight", "running_var", ... (static string) */
  int64_t shape[NN_SAMPLE_DIMS];
  int ndim;
  tc_dtype dtype;
} nn_spec;

struct tc_layer {
  const nn_kind *kind;
  tc_layer *parent;
  char *name;      /* name in the parent (owned); NULL at the root */
  tc_model *model; /* set when placed in a model */
  /* children (containers) */
  tc_layer **children;
  int64_t nchildren, cap_children;
  /* per-sample shapes, set by infer */
  int64_t in_shape[NN_SAMPLE_DIMS];
  int in_ndim;
  int64_t out_shape[NN_SAMPLE_DIMS];
  int out_ndim;
  /* declared at construction, created by the model (views / tensors) */
  nn_spec pspec[NN_MAX_PARAMS];
  int nparams;
  nn_spec bspec[NN_MAX_BUFFERS];
  int nbuffers;
  tc_tensor *param[NN_MAX_PARAMS];
  tc_tensor *grad[NN_MAX_PARAMS];
  tc_tensor *buffer[NN_MAX_BUFFERS];
  /* run time */
  int64_t batch; /* batch size planned for */
  tc_tensor *x;  /* the last forward's input (borrowed) */
  tc_tensor *y;  /* output: owned (y_own) or an alias */
  tc_tensor *y_own;
  tc_tensor *scratch; /* lazily sized temporary (e.g. accumulation) */
  tc_tensor y_arena;  /* view of an inference-arena slot (never destroyed) */
  /* profiling (tc_model_set_profiling): exclusive seconds and calls,
   * [0] forward, [1] backward */
  int prof_on;
  double prof_seconds[2];
  int64_t prof_calls[2];
};

struct nn_kind {
  const char *name;
  /* per-sample in_shape -> out_shape (and children's); `fn` for messages */
  tc_status (*infer)(tc_layer *l, const char *fn);
  /* default initialisation of own parameters and buffers (may be NULL) */
  tc_status (*init)(tc_layer *l, tc_rng *rng);
  /* size run-time buffers for batch n (children too) */
  tc_status (*plan)(tc_layer *l, int64_t n);
  tc_status (*forward)(tc_layer *l, tc_tensor *x);
  tc_status (*backward)(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                        int acc);
  /* frees kind-specific resources (not the generic fields); may be NULL */
  void (*release)(tc_layer *l);
  /* the workspace the layer needs for batch n, in bytes (may be NULL) */
  tc_status (*workspace)(tc_layer *l, int64_t n, size_t *out);
  /* the forward writes a new output into l->y (planned by tc__nn_plan_output):
   * in an arena forward tc__nn_forward points l->y at an arena slot first */
  int produces;
  /* the configuration (may be NULL: nothing beyond the kind) */
  void (*describe)(const tc_layer *l, nn_desc *d);
};

/* ---- layer.c ---- */
/* Allocates a zeroed layer object of `size` bytes (>= sizeof(tc_layer)). */
tc_status tc__nn_layer_alloc(tc_layer **out, const nn_kind *kind, size_t size,
                             const char *fn);
void tc__nn_layer_free(tc_layer *l);
tc_status tc__nn_add_child(tc_layer *parent, const char *name, tc_layer *child,
                           const char *fn);
void tc__nn_declare_param(tc_layer *l, const char *name, const int64_t *shape,
                          int ndim);
void tc__nn_declare_buffer(tc_layer *l, const char *name, const int64_t *shape,
                           int ndim, tc_dtype dtype);
/* "layers_2n.0.conv1" (or "<root>") into buf. */
const char *tc__nn_path(const tc_layer *l, char *buf, size_t size);
/* Formats the layer's per-sample input shape as "(3, 32, 32)". */
const char *tc__nn_shape_str(const int64_t *shape, int ndim, char *buf,
                             size_t size);

/* A new handle viewing `base`'s storage at byte offset `offset`. */
tc_status tc__nn_view_at(tc_tensor **out, tc_tensor *base, size_t offset,
                         const int64_t *shape, int ndim, tc_dtype dtype);
/* Sets an alias tensor struct (never destroyed) over `x`'s storage with
 * another shape. */
void tc__nn_alias(tc_tensor *alias, const tc_tensor *x, const int64_t *shape,
                  int ndim);

tc_backend *tc__nn_be(const tc_layer *l);
static inline float *nn_f(const tc_tensor *t) {
  return t ? (float *)tc_tensor_data((tc_tensor *)t) : NULL;
}
/* An op the backend lacks: TC_EUNSUPPORTED naming it. */
tc_status tc__nn_unsupported(const char *op);
#define NN_SLOT(be, slot)                                                      \
  (TC__HAS_SLOT((be)->iface, slot) ? TC_OK : tc__nn_unsupported(#slot))
/* dx (+)= dy over n floats (copy or axpy). */
tc_status tc__nn_pass_grad(tc_backend *be, const tc_tensor *dy, tc_tensor *dx,
                           int acc);
/* dst = alpha (n floats). */
tc_status tc__nn_fill(tc_backend *be, float *dst, int64_t n, float alpha);

/* Sets a view struct (never destroyed) over `base`'s storage with another
 * shape and dtype (numel from the shape; it must fit). */
void tc__nn_view_set(tc_tensor *view, const tc_tensor *base,
                     const int64_t *shape, int ndim, tc_dtype dtype);
/* (n, shape...) into out; returns ndim + 1. */
int tc__nn_batch_shape(int64_t *out, int64_t n, const int64_t *shape, int ndim);

/* ---- plan.c: where activations and temporaries live ----
 * Layers and containers say what they need and use what they are given;
 * which plan a forward runs in, and every arena slot's lifetime, is
 * plan.c's alone (a container never acquires or frees a slot). */
/* Planned tensors: (re)allocates *t only when its storage is too small,
 * else reshapes it in place (no allocation). */
tc_status tc__nn_ensure(tc_tensor **t, tc_backend *be, const int64_t *shape,
                        int ndim, tc_dtype dtype);
/* The output buffer: (n, out_shape...). */
tc_status tc__nn_plan_output(tc_layer *l, int64_t n);
/* l->scratch sized like `like` (allocates only when it grows). */
tc_status tc__nn_scratch(tc_layer *l, const tc_tensor *like, tc_tensor **out);
/* Gradient slots: at plan time a layer asks for `numel` floats in slot
 * `slot` (< NN_GRAD_SLOTS) of its depth; in backward (or as a forward
 * temporary that backward does not need) it views the slot with a shape. */
#define NN_GRAD_SLOTS 4
tc_status tc__nn_grad_request(tc_layer *l, int slot, int64_t numel);
tc_tensor *tc__nn_grad_view(tc_layer *l, int slot, tc_tensor *view,
                            const int64_t *shape, int ndim, tc_dtype dtype);
/* The shared convolution workspace (device) and its size. */
void *tc__nn_model_workspace(const tc_model *m, size_t *out_bytes);
/* Points l->y where the coming forward of batch n writes its output, for
 * kinds that produce one: the planned buffer, or in an inference-arena
 * forward a free arena slot (tc__nn_forward calls it). */
tc_status tc__nn_place_output(tc_layer *l, int64_t n);
/* Container l has run the consumer of `t` (an output of one of its
 * children) and needs it no more: in an inference-arena forward its slot
 * is freed, unless t is l's own input (its parent's) or shares storage
 * with `live` (the consumer's output, when it aliases its input). */
void tc__nn_consumed(tc_layer *l, const tc_tensor *t, const tc_tensor *live);
/* A forward temporary that backward does not read, in *out: gradient slot
 * `slot` of l's depth (asked for at plan time) viewed in `view`, or in an
 * inference-arena forward a free arena slot; give it back with
 * tc__nn_temp_done once used. */
tc_status tc__nn_temp(tc_layer *l, int slot, tc_tensor *view,
                      const int64_t *shape, int ndim, tc_dtype dtype,
                      tc_tensor **out);
/* Where a forward writes what its backward reads besides its output (a max
 * pooling's argmax), in *out: `kept`, the layer's planned buffer, or in an
 * inference-arena forward (which keeps nothing for backward) a free arena
 * slot; give it back with tc__nn_temp_done once used. */
tc_status tc__nn_saved(tc_layer *l, tc_tensor *kept, tc_tensor **out);
/* The end of what tc__nn_temp or tc__nn_saved gave (NULL: nothing). */
void tc__nn_temp_done(tc_layer *l, const tc_tensor *t);
/* Whether child i of a chain is a ReLU that the BatchNorm2d before it
 * computes (fused: the ReLU gets no buffer and runs no pass of its own). */
int tc__nn_fused_relu(tc_layer *const *ch, int64_t i);

/* ---- model.c (for layers) ---- */
tc_backend *tc__nn_model_backend(const tc_model *m);
int tc__nn_model_training(const tc_model *m);

/* Batch norm fused with the ReLU (and residual add) after it, for the
 * residual block. tc__nn_bn_fuse_forward(bn, residual) asks bn's next forward
 * to also compute y = relu(y + residual) (residual NULL: relu(y));
 * tc__nn_bn_fuse_backward(bn, y, dres, acc_res) asks its next backward to take
 * dy through the ReLU whose output is y and to store that gradient into
 * dres (added when acc_res; NULL: not wanted). Each returns 1 when the
 * request will be honoured (the backend has the fused slot; for backward,
 * the forward used batch statistics), else 0 and the caller runs the
 * separate ops. A request lasts one call. */
int tc__nn_bn_fuse_forward(tc_layer *bn, const tc_tensor *residual);
/* Whether l is a BatchNorm2d whose backend has all three fused slots, so
 * a Sequential can always run it with the ReLU after it (sequential.c). */
int tc__nn_bn_fusable(const tc_layer *l);
/* A call of l's forward (dir 0) or backward (1) that another layer did
 * for it (a fused ReLU): counted while profiling, with no time. */
void tc__nn_prof_count(tc_layer *l, int dir);
/* Whether l is a ReLU layer (activation.c). */
int tc__nn_is_relu(const tc_layer *l);
int tc__nn_bn_fuse_backward(tc_layer *bn, const tc_tensor *y, tc_tensor *dres,
                            int acc_res);
/* Reserves `units` numbers of the dropout stream; returns seed, offset. */
void tc__nn_model_dropout_rng(tc_model *m, int64_t units, uint64_t *seed,
                              uint64_t *offset);
/* Seconds spent in profiled layers nested in the one being timed (so each
 * layer's time can be made exclusive of its children's). */
double *tc__nn_model_prof_inner(tc_model *m);

/* Data parallelism (lib/dist). The grad hook is called after the backward
 * of each layer that has parameters, once its gradients are final for
 * this backward. The sync-bn communicator (NULL: none) makes training
 * BatchNorm layers normalise with the statistics of every rank's batch. */
typedef void (*nn_grad_hook)(void *user, tc_layer *l);
void tc__nn_model_set_grad_hook(tc_model *m, nn_grad_hook fn, void *user);
void tc__nn_model_grad_ready(tc_model *m, tc_layer *l);
void tc__nn_model_set_sync_bn(tc_model *m, tc_comm *comm);
tc_comm *tc__nn_model_sync_bn(const tc_model *m);
/* When l is a BatchNorm layer: 1 and its momentum (possibly
 * TC_BN_MOMENTUM_CUMULATIVE) in *out; else 0 (batchnorm.c). */
int tc__nn_bn_momentum(const tc_layer *l, float *out);
/* The model's layer tree (model.c). */
tc_layer *tc__nn_model_root(const tc_model *m);
/* Every layer but Sequential containers, in pre-order, with its module
 * path ("" for such a root): the profile's list (model.c). */
int64_t tc__nn_model_layers(const tc_model *m, tc_layer *const **out_layers,
                            char *const **out_names);
/* The per-sample input shape into shape (NN_SAMPLE_DIMS); returns ndim. */
int tc__nn_model_input_shape(const tc_model *m, int64_t *shape);
/* The layer's configuration (zeroed, then its kind's describe). */
void tc__nn_describe(const tc_layer *l, nn_desc *d);

/* ---- init.c ---- */
tc_status tc__nn_init_default_weight(tc_tensor *w, tc_rng *rng);
tc_status tc__nn_init_default_bias(tc_tensor *b, int64_t fan_in, tc_rng *rng);

/* ---- driving a layer (layer.c): what containers call on children ---- */
/* Sets the per-sample input shape, infers the output, rejects empty dims. */
tc_status tc__nn_infer(tc_layer *l, const int64_t *in_shape, int in_ndim,
                       const char *fn);
tc_status tc__nn_plan(tc_layer *l, int64_t n);
/* Records x (for backward) and runs the layer; output in l->y. */
tc_status tc__nn_forward(tc_layer *l, tc_tensor *x);
tc_status tc__nn_backward(tc_layer *l, const tc_tensor *dy, tc_tensor *dx,
                          int acc);
/* A chain of layers (sequential.c), used by containers. */
tc_status tc__nn_chain_infer(tc_layer *const *ch, int64_t nch,
                             const int64_t *in_shape, int in_ndim,
                             const char *fn);

#endif /* TINYCNN_NN_INTERNAL_H */
