/*
 * options.h - the versioned option structs of the public API (struct_size
 * first, fields only appended; docs/abi.md): how a function takes one, and
 * the smallest struct_size each accepts.
 *
 * A caller built against an older header passes a smaller struct_size:
 * its fields are read and the newer ones take their defaults. A struct
 * smaller than the first release's (0.1.0) cannot come from any header
 * we shipped, so it is refused: most likely the struct was never
 * initialised (TC_X_OPTIONS_INIT or tc_x_options_init). A struct_size
 * larger than this library's comes from a newer header: TC_EVERSION.
 */
#ifndef TINYCNN_OPTIONS_H
#define TINYCNN_OPTIONS_H

#include <stddef.h>

#include <libtinycnn.h>

/* Bytes of `type` up to the end of `member`, rounded up to the struct's
 * alignment (the sizeof the struct had when `member` was its last). */
#define TC__SIZE_THROUGH(type, member)                                         \
  ((offsetof(type, member) + sizeof(((type *)0)->member) + _Alignof(type) -    \
    1) /                                                                       \
   _Alignof(type) * _Alignof(type))

/* ---- the first release's size of every public options struct ----
 * Named by the last member each had in 0.1.0, so appending a field never
 * moves the minimum (tests/test_options.c pins them). */
#define TC__SIZE0_ALLOCATOR TC__SIZE_THROUGH(tc_allocator, user)
#define TC__SIZE0_BACKEND_OPTIONS TC__SIZE_THROUGH(tc_backend_options, stream)
#define TC__SIZE0_LOADER_OPTIONS TC__SIZE_THROUGH(tc_loader_options, shard)
#define TC__SIZE0_DDP_OPTIONS TC__SIZE_THROUGH(tc_ddp_options, chunks)
#define TC__SIZE0_ONNX_OPTIONS TC__SIZE_THROUGH(tc_onnx_options, output_name)
#define TC__SIZE0_ONNX_LOAD_OPTIONS                                            \
  TC__SIZE_THROUGH(tc_onnx_load_options, reserved1)
#define TC__SIZE0_PROGRESS_OPTIONS                                             \
  TC__SIZE_THROUGH(tc_progress_options, min_redraw_seconds)
#define TC__SIZE0_CONV2D_OPTIONS TC__SIZE_THROUGH(tc_conv2d_options, reserved0)
#define TC__SIZE0_LINEAR_OPTIONS TC__SIZE_THROUGH(tc_linear_options, reserved0)
#define TC__SIZE0_BATCHNORM_OPTIONS                                            \
  TC__SIZE_THROUGH(tc_batchnorm_options, track_running_stats)
#define TC__SIZE0_POOL2D_OPTIONS                                               \
  TC__SIZE_THROUGH(tc_pool2d_options, count_include_pad)
#define TC__SIZE0_RESIDUAL_OPTIONS                                             \
  TC__SIZE_THROUGH(tc_residual_options, reserved0)
#define TC__SIZE0_MODEL_OPTIONS TC__SIZE_THROUGH(tc_model_options, reserved0)
#define TC__SIZE0_LOSS_OPTIONS                                                 \
  TC__SIZE_THROUGH(tc_loss_options, label_smoothing)
#define TC__SIZE0_SGD_OPTIONS TC__SIZE_THROUGH(tc_sgd_options, reserved0)
#define TC__SIZE0_ADAM_OPTIONS TC__SIZE_THROUGH(tc_adam_options, amsgrad)

/* tc_x_options_init(o, struct_size): the defaults (a struct of `full`
 * bytes) into o's first struct_size bytes, struct_size into o's
 * struct_size. TC_EINVAL for a NULL o or struct_size < min_size,
 * TC_EVERSION for struct_size > full. */
tc_status tc__options_init(void *o, size_t struct_size, const void *defaults,
                           size_t full, size_t min_size, const char *fn);

/* Takes a caller's options `src` (NULL: the defaults) into dst, a struct
 * of `full` bytes: the defaults, then the caller's first struct_size bytes
 * over them, then struct_size = full. TC_EVERSION when src's struct_size
 * is larger than full, TC_EINVAL when it is smaller than min_size; dst is
 * left as the defaults then. */
tc_status tc__options_accept(void *dst, size_t full, const void *src,
                             const void *defaults, size_t min_size,
                             const char *fn);

#endif /* TINYCNN_OPTIONS_H */
