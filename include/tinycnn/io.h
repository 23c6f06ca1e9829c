/**
 * @file
 * @brief tinycnn/io.h - files around training: safetensors (a generic reader
 * and an atomic writer), model state dicts and training checkpoints in
 * safetensors, TensorBoard event files, a CSV log and a progress bar.
 * Included by <libtinycnn.h>.
 *
 * Safetensors (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON, then the raw
 * little-endian tensor bytes. The reader validates the whole header (size
 * bound, UTF-8, one JSON object, no duplicate keys, exact integers, known
 * dtypes, contiguous offsets covering the file) before trusting any of it.
 * The writer writes to a temporary file next to the target, fsyncs it,
 * renames it over the target and fsyncs the directory, so a crash leaves
 * either the old or the new file, never a torn one.
 *
 * The library never prints on its own: the progress bar writes only to
 * the FILE* its caller passes.
 */
#ifndef TINYCNN_IO_H
#define TINYCNN_IO_H

#include <stdio.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_model tc_model; /**< a model, declared by tinycnn/nn.h too */
typedef struct tc_optimizer tc_optimizer; /**< see tinycnn/optim.h */
typedef struct tc_scheduler tc_scheduler; /**< see tinycnn/optim.h */
typedef struct tc_loader tc_loader;       /**< see tinycnn/data.h */

/* ---- safetensors: dtypes ----------------------------------------------- */

/** Element types of the safetensors format. Only TC_ST_F32, TC_ST_I32 and
 *  TC_ST_I64 map to tensor dtypes; the others can be listed, inspected and
 *  read as raw bytes. */
typedef enum tc_st_dtype {
  TC_ST_BOOL = 0,
  TC_ST_U8 = 1,
  TC_ST_I8 = 2,
  TC_ST_I16 = 3,
  TC_ST_U16 = 4,
  TC_ST_F16 = 5,
  TC_ST_BF16 = 6,
  TC_ST_I32 = 7,
  TC_ST_U32 = 8,
  TC_ST_F32 = 9,
  TC_ST_F64 = 10,
  TC_ST_I64 = 11,
  TC_ST_U64 = 12,
  TC_ST_F8_E5M2 = 13,
  TC_ST_F8_E4M3 = 14,
  TC_ST_F8_E8M0 = 15,
  TC_ST_F6_E2M3 = 16, /**< 6 bits per element, packed */
  TC_ST_F6_E3M2 = 17, /**< 6 bits per element, packed */
  TC_ST_F4 = 18,      /**< 4 bits per element, packed */
  TC_ST_C64 = 19      /**< complex of two F32 */
} tc_st_dtype;

/** The format's name of `dtype` ("F32", "I64", ...), or NULL if unknown. */
TC_API const char *tc_st_dtype_name(tc_st_dtype dtype);
/** Bits per element of `dtype` (8 for BOOL, 4 for F4, ...); 0 if unknown. */
TC_API int tc_st_dtype_bits(tc_st_dtype dtype);

/* ---- safetensors: reader ----------------------------------------------- */

/** A validated, open safetensors file (opaque). */
typedef struct tc_safetensors tc_safetensors;

/**
 * Creates a reader of the safetensors file at `path`: opens it and
 * validates it. The header is read
 * (at most 100,000,000 bytes, bounded before allocating) and checked
 * entirely; the file stays open for tc_safetensors_read().
 * @param path the file to read.
 * @param out  receives the reader; free it with tc_safetensors_destroy().
 * @return TC_OK, TC_EINVAL (NULL), TC_EIO (cannot open or read),
 *         TC_EFORMAT (any rule of the format broken; the message says which),
 *         TC_EUNSUPPORTED (a tensor of rank > 64), TC_ENOMEM.
 */
TC_API tc_status tc_safetensors_create(tc_safetensors **out, const char *path);

/**
 * Like tc_safetensors_create() over a file image in memory. `data` is
 * borrowed: it must stay valid and unchanged until the reader is destroyed.
 */
TC_API tc_status tc_safetensors_create_from_buffer(tc_safetensors **out,
                                                   const void *data,
                                                   size_t size);

/** Closes the file and frees the reader. NULL: no-op. */
TC_API void tc_safetensors_destroy(tc_safetensors *st);

/** Number of tensors in the file (>= 0; -1 for NULL). */
TC_API int64_t tc_safetensors_count(const tc_safetensors *st);

/** Name of tensor `i` (0 <= i < count; names are sorted by strcmp), or
 *  NULL when out of range. Owned by the reader. */
TC_API const char *tc_safetensors_name(const tc_safetensors *st, int64_t i);

/**
 * Describes tensor `name`.
 * @param st         the reader.
 * @param name       the tensor's name.
 * @param out_dtype  receives its dtype (may be NULL).
 * @param shape      receives up to `max_dims` sizes (may be NULL if 0).
 * @param max_dims   the room in `shape`, >= 0.
 * @param out_ndim   receives its rank (may be NULL); compare it with
 *                   max_dims to know whether `shape` holds all sizes.
 * @return TC_OK, TC_EINVAL, TC_ENOTFOUND.
 */
TC_API tc_status tc_safetensors_info(const tc_safetensors *st, const char *name,
                                     tc_st_dtype *out_dtype, int64_t *shape,
                                     int max_dims, int *out_ndim);

/**
 * Reads tensor `name` into `dst`, which must have the same shape (same
 * rank and sizes) and the matching dtype (F32 -> TC_FLOAT32, I32 ->
 * TC_INT32, I64 -> TC_INT64). `dst` may live on any backend.
 * @return TC_OK, TC_EINVAL, TC_ENOTFOUND, TC_ESHAPE (shape or dtype
 *         differ), TC_EUNSUPPORTED (a dtype without tensor type), TC_EIO,
 *         TC_ENOMEM.
 */
TC_API tc_status tc_safetensors_read(tc_safetensors *st, const char *name,
                                     tc_tensor *dst);

/**
 * Copies the raw little-endian bytes of tensor `name` (any dtype) into host
 * memory `dst` of exactly `bytes` bytes (the tensor's byte size).
 * @return TC_OK, TC_EINVAL, TC_ENOTFOUND, TC_ESHAPE (size differs), TC_EIO.
 */
TC_API tc_status tc_safetensors_read_raw(tc_safetensors *st, const char *name,
                                         void *dst, size_t bytes);

/** Value of `__metadata__` key `key`, or NULL when absent. Owned by the
 *  reader. */
TC_API const char *tc_safetensors_metadata(const tc_safetensors *st,
                                           const char *key);

/** Number of `__metadata__` entries (>= 0; -1 for NULL). */
TC_API int64_t tc_safetensors_metadata_count(const tc_safetensors *st);
/** Key of `__metadata__` entry `i` (0 <= i < count; keys are sorted by
 *  strcmp), or NULL when out of range. Owned by the reader. */
TC_API const char *tc_safetensors_metadata_key(const tc_safetensors *st,
                                               int64_t i);

/**
 * Parses metadata `key` as a decimal int64 (the format stores numbers as
 * strings). @return TC_OK, TC_EINVAL, TC_ENOTFOUND, TC_EFORMAT (not an
 * integer or out of range).
 */
TC_API tc_status tc_safetensors_metadata_i64(const tc_safetensors *st,
                                             const char *key, int64_t *out);

/* ---- safetensors: writer ----------------------------------------------- */

/** Collects tensors and metadata, then writes a file atomically (opaque). */
typedef struct tc_safetensors_writer tc_safetensors_writer;

/** Creates an empty writer. @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_safetensors_writer_create(tc_safetensors_writer **out);
/** Frees the writer and its copies of the data. NULL: no-op. */
TC_API void tc_safetensors_writer_destroy(tc_safetensors_writer *w);

/**
 * Adds a copy of `t` (taken now, from any backend) under `name`: a non-empty
 * UTF-8 string without NUL, other than "__metadata__", not added before.
 * @return TC_OK, TC_EINVAL (bad or duplicate name), TC_ENOMEM, backend
 *         errors from the copy.
 */
TC_API tc_status tc_safetensors_writer_add_tensor(tc_safetensors_writer *w,
                                                  const char *name,
                                                  const tc_tensor *t);

/**
 * Adds a copy of host bytes `data` (`bytes` long, row-major little-endian)
 * as a tensor of `dtype` and `shape` (`ndim` sizes >= 0; `ndim` 0 is a
 * scalar). `bytes` must equal the shape's byte size.
 * @return TC_OK, TC_EINVAL, TC_ESHAPE, TC_ENOMEM.
 */
TC_API tc_status tc_safetensors_writer_add(tc_safetensors_writer *w,
                                           const char *name, tc_st_dtype dtype,
                                           const int64_t *shape, int ndim,
                                           const void *data, size_t bytes);

/** Adds `__metadata__` entry `key` = `value` (copied; UTF-8; a key may be
 *  added once). @return TC_OK, TC_EINVAL, TC_ENOMEM. */
TC_API tc_status tc_safetensors_writer_add_metadata(tc_safetensors_writer *w,
                                                    const char *key,
                                                    const char *value);

/**
 * Writes everything to `path`: header padded with spaces to a multiple of
 * 8, metadata first, tensors sorted by name. The bytes go to a new file
 * `path.tmp-XXXXXX` in the same directory, which is fsync'd and renamed
 * over `path`, then the directory is fsync'd. On failure `path` is left as
 * it was and the temporary file removed. The writer can commit again.
 * @return TC_OK, TC_EINVAL, TC_EIO (with the failing system call and
 *         errno text), TC_ENOMEM.
 */
TC_API tc_status tc_safetensors_writer_commit(tc_safetensors_writer *w,
                                              const char *path);

/* ---- model state dicts and training checkpoints ------------------------- */

/**
 * Adds every state tensor of `m` (parameters and buffers, PyTorch
 * state_dict names) to the writer as `prefix` + name (`prefix` NULL or ""
 * for the plain names PyTorch's load_state_dict expects).
 * @return TC_OK, TC_EINVAL, TC_ENOMEM, errors of the copies.
 */
TC_API tc_status tc_safetensors_writer_add_model(tc_safetensors_writer *w,
                                                 tc_model *m,
                                                 const char *prefix);

/**
 * Loads `m`'s state from an open file, strictly: every state name of `m`
 * (looked up as `prefix` + name) must be present with the same shape and
 * dtype; every tensor of the file under `prefix` must belong to `m` unless
 * its name starts with one of `ignore` (NULL or a NULL-terminated list of
 * name prefixes, e.g. {"optimizer.", "trainer.", NULL}). All mismatches
 * are listed in the error message. Everything is read into host memory
 * before the first tensor of `m` is written, so on error `m` is unchanged.
 * @return TC_OK, TC_EINVAL, TC_ESHAPE (mismatched names, shapes, dtypes),
 *         TC_EIO, TC_ENOMEM.
 */
TC_API tc_status tc_safetensors_load_model(tc_safetensors *st, tc_model *m,
                                           const char *prefix,
                                           const char *const *ignore);

/**
 * Saves `m`'s state dict to `path` atomically, as PyTorch's
 * safetensors.torch.save_file(model.state_dict()) would.
 * @param m         the model to save.
 * @param path      the file to write (replaced atomically).
 * @param metadata  NULL or a NULL-terminated list of key, value strings for
 *                  `__metadata__`, e.g. {"epoch", "3", NULL}.
 * @return the codes of tc_safetensors_writer_commit().
 */
TC_API tc_status tc_model_save(tc_model *m, const char *path,
                               const char *const *metadata);

/**
 * Loads a state dict saved by tc_model_save() or by PyTorch (strict, all
 * mismatches reported; on error `m` is unchanged).
 * @return the codes of tc_safetensors_create() and tc_safetensors_load_model().
 */
TC_API tc_status tc_model_load(tc_model *m, const char *path);

/** Name prefixes that training checkpoints reserve next to the model's
 *  state: pass `{TC_CHECKPOINT_RESERVED, NULL}` as `ignore` above. */
#define TC_CHECKPOINT_RESERVED                                                 \
  "optimizer.", "scheduler.", "trainer.", "loader.", "rng."

/**
 * Saves a training checkpoint atomically (temporary file, fsync, rename: a
 * crash leaves the old file or the new one): the model's state dict under
 * its plain names, the optimizer's state (tc_optimizer_get_state names,
 * e.g. "optimizer.state.conv1.weight.momentum_buffer", "optimizer.step"),
 * "scheduler.last_epoch", "loader.epoch" / "loader.batch",
 * "trainer.epoch" / "trainer.step" (the caller's counters), and the RNG
 * state ("rng.seed": tc_get_seed(), "rng.model_seed", "rng.model_offset":
 * the model's dropout stream). `opt`, `sched`, `loader` may be NULL (not
 * saved). `metadata`: NULL or a NULL-terminated key, value list added to
 * `__metadata__` (which also gets "format" = "tinycnn-checkpoint").
 * @return TC_OK, TC_EINVAL, TC_EIO, TC_ENOMEM, backend errors.
 */
TC_API tc_status tc_checkpoint_save(tc_model *m, const char *path,
                                    tc_optimizer *opt, tc_scheduler *sched,
                                    tc_loader *loader, int64_t epoch,
                                    int64_t step, const char *const *metadata);

/**
 * Restores what tc_checkpoint_save() wrote into objects built the same way
 * (same model tree, optimizer kind and groups, scheduler, dataset and
 * loader options), so training continues bit-identically on the same
 * backend and thread count. Sets the global seed (tc_set_seed) to the
 * saved one. Everything is checked (names, shapes, dtypes, a state of
 * `opt` the file lacks) before anything is changed; all mismatches are
 * listed in the message. The optimizer's parameter groups (their
 * settings, and which parameters each holds) and the loader's global
 * batch size and dataset length must be those saved (TC_EINVAL naming
 * every difference; files from before these entries are not checked).
 * `opt`, `sched`, `loader`, `out_epoch`, `out_step` may be NULL (not
 * restored).
 * @return TC_OK, TC_EINVAL, TC_ENOTFOUND (missing entries), TC_ESHAPE,
 *         TC_EFORMAT, TC_EIO, TC_ENOMEM.
 */
TC_API tc_status tc_checkpoint_load(tc_model *m, const char *path,
                                    tc_optimizer *opt, tc_scheduler *sched,
                                    tc_loader *loader, int64_t *out_epoch,
                                    int64_t *out_step);

/* ---- ONNX export ----------------------------------------------------------
 */

/** Options of tc_model_export_onnx(). */
typedef struct tc_onnx_options {
  size_t struct_size;      /**< sizeof(tc_onnx_options) as compiled */
  int32_t opset;           /**< ONNX opset; 0 (default) or 13, the only one */
  int32_t dynamic_batch;   /**< default 1: batch dimension symbolic ("N");
                                0: fixed to `batch` */
  int64_t batch;           /**< the fixed batch when !dynamic_batch (>= 1) */
  const char *input_name;  /**< default "input" */
  const char *output_name; /**< default "output" */
} tc_onnx_options;
/** A tc_onnx_options with its struct_size set and the defaults. */
#define TC_ONNX_OPTIONS_INIT                                                   \
  { sizeof(tc_onnx_options), 13, 1, 1, "input", "output" }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_onnx_options_init(tc_onnx_options *o, size_t struct_size);

/**
 * Writes the model, in its evaluation form, as an ONNX model (opset 13,
 * IR version 7) to `path`, atomically (temporary file, fsync, rename).
 * Layers become the operators torch.onnx.export writes for them: Conv,
 * BatchNormalization (running statistics), Relu, MaxPool, AveragePool,
 * GlobalAveragePool, Gemm (Linear on (N, in); MatMul + Add above that),
 * Flatten, Identity (Dropout, Identity), and for a residual block its
 * convolutions and batch norms, the shortcut (Pad of the new channels
 * with MaxPool or Slice for option A, Conv + BatchNormalization for
 * option B) and Add, Relu. Initializers carry the state-dict names
 * ("conv1.weight", "layers_2n.0.bn1.running_var"); the graph's input is
 * (N, input_shape...) with a symbolic N. The model is not changed and
 * nothing runs on the backend beyond copying the parameters to the host.
 * @param m    the model to export (not changed).
 * @param path the .onnx file to write.
 * @param opts NULL for the defaults.
 * @return TC_OK; TC_EUNSUPPORTED when the library was built without ONNX
 *         support (meson -Donnx=disabled, or protobuf-c absent) or a layer
 *         cannot be expressed (the message names it: e.g. a BatchNorm
 *         without running statistics); TC_EINVAL, TC_EVERSION, TC_EIO,
 *         TC_ENOMEM, backend errors.
 */
TC_API tc_status tc_model_export_onnx(tc_model *m, const char *path,
                                      const tc_onnx_options *opts);

/* ---- ONNX import ---------------------------------------------------------
 */

/** Options of tc_model_create_from_onnx(). */
typedef struct tc_onnx_load_options {
  size_t struct_size;     /**< sizeof(tc_onnx_load_options) as compiled */
  int64_t max_file_bytes; /**< default 2^30: larger files are refused
                               (TC_EFORMAT); at most 2^31, protobuf's
                               limit */
  int32_t reserved0;      /**< 0 */
  int32_t reserved1;      /**< 0 */
} tc_onnx_load_options;
/** A tc_onnx_load_options with its struct_size set and the defaults. */
#define TC_ONNX_LOAD_OPTIONS_INIT                                              \
  { sizeof(tc_onnx_load_options), (int64_t)1 << 30, 0, 0 }
/** Fills `o` with the defaults. @return TC_OK, TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_onnx_load_options_init(tc_onnx_load_options *o,
                                           size_t struct_size);

/**
 * Reads an ONNX model of a CNN (opsets 11 to 21) and builds the same
 * network as a tinycnn model on `be`, in evaluation mode, with the file's
 * weights. The graph must be a chain from its one input to its one output
 * of Conv (group 1, symmetric pads), BatchNormalization (inference form),
 * Relu, MaxPool, AveragePool (a zero Pad before it is its padding),
 * GlobalAveragePool, Flatten (axis 1), Reshape to (N, features), Gemm,
 * MatMul [+ Add of a constant], Identity and Dropout, and of residual
 * blocks as tc_residual_block_create() builds them (Conv-BN-Relu-Conv-BN
 * plus an identity, option A or option B shortcut, Add, Relu), BN folded
 * into the Conv or not: what tc_model_export_onnx() and
 * torch.onnx.export write for such networks. Parameters are taken from
 * the initializers each node reads (or small constant subgraphs); the
 * layers are the children "0", "1", ... of one Sequential, so state names
 * differ from the exporter's. The model's per-sample input shape is the
 * graph input's shape without its batch dimension, which may be symbolic
 * or fixed (a fixed batch is not enforced).
 * @param out  receives the model (tc_model_destroy); unchanged on error.
 * @param be   the backend the model is placed on.
 * @param path the .onnx file to read.
 * @param opts NULL for the defaults.
 * @return TC_OK; TC_EUNSUPPORTED when the library was built without ONNX
 *         support, or for an operator, attribute or topology it cannot
 *         map (the message names the first such node: op type and node
 *         name); TC_EFORMAT (not a valid ModelProto, truncated, sizes or
 *         counts that disagree, a missing initializer, file larger than
 *         max_file_bytes); TC_ESHAPE (an initializer or the input shape
 *         that does not fit the layers); TC_EINVAL, TC_EVERSION, TC_EIO,
 *         TC_ENOMEM, backend errors.
 */
TC_API tc_status tc_model_create_from_onnx(tc_model **out, tc_backend *be,
                                           const char *path,
                                           const tc_onnx_load_options *opts);

/* ---- TensorBoard event files -------------------------------------------- */

/** A TensorBoard event file writer (opaque). */
typedef struct tc_tblog tc_tblog;

/**
 * Creates `logdir` (and its parents) if needed and a new event file
 * `events.out.tfevents.<10-digit unix time>.<hostname>` in it, whose first
 * record is the file_version event "brain.Event:2".
 * @return TC_OK, TC_EINVAL, TC_EIO, TC_ENOMEM.
 */
TC_API tc_status tc_tblog_create(tc_tblog **out, const char *logdir);
/** Closes the file and frees the writer. NULL: no-op. */
TC_API void tc_tblog_destroy(tc_tblog *w);
/** Path of the event file. Owned by the writer. */
TC_API const char *tc_tblog_path(const tc_tblog *w);

/** Appends a scalar summary (`tag`, `value`) at `step`, stamped with the
 *  current time. One write(2) per record. @return TC_OK, TC_EINVAL,
 *  TC_EIO, TC_ENOMEM. */
TC_API tc_status tc_tblog_scalar(tc_tblog *w, const char *tag, int64_t step,
                                 double value);
/** Same with an explicit `wall_time` (seconds since the epoch). */
TC_API tc_status tc_tblog_scalar_at(tc_tblog *w, const char *tag, int64_t step,
                                    double value, double wall_time);
/** Marks a run resumed from a checkpoint taken at `step` (the step
 *  tc_checkpoint_load() returned): writes a SessionLog START event at
 *  `step + 1`, after which TensorBoard drops the interrupted run's points
 *  with a step above `step` and keeps those at `step` or below, the same
 *  rule as tc_csvlog_create(). @return TC_OK, TC_EINVAL (`step` negative or
 *  INT64_MAX), TC_EIO, TC_ENOMEM. */
TC_API tc_status tc_tblog_resume(tc_tblog *w, int64_t step);
/** Makes the records written so far durable (fsync). */
TC_API tc_status tc_tblog_flush(tc_tblog *w);

/** CRC-32C (Castagnoli) of `n` bytes, continuing from `crc` (0 to start):
 *  tc_crc32c(0, "123456789", 9) == 0xE3069283. */
TC_API uint32_t tc_crc32c(uint32_t crc, const void *data, size_t n);
/** TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xA282EAD8. */
TC_API uint32_t tc_crc32c_mask(uint32_t crc);

/* ---- CSV log ------------------------------------------------------------ */

/** A CSV log of training scalars (opaque). */
typedef struct tc_csvlog tc_csvlog;

/**
 * Creates (or, resuming, reopens) the CSV log `path` with the header
 * `epoch,step,split,loss,accuracy,lr,seconds,images_per_sec`, creating its
 * directory (and parents) if needed, as tc_tblog_create() does.
 * @param out  receives the log (tc_csvlog_destroy()).
 * @param path the CSV file.
 * @param resume_step  < 0: start a new file (truncating an old one);
 *   >= 0: a run resumed from a checkpoint taken at step `resume_step`:
 *   keep the existing rows whose step is at most `resume_step` (those an
 *   interrupted run wrote later are dropped, the file being rewritten
 *   atomically) and append after them; the same rule as
 *   tc_tblog_resume().
 * @return TC_OK, TC_EINVAL, TC_EIO, TC_EFORMAT (existing file without our
 *         header), TC_ENOMEM.
 */
TC_API tc_status tc_csvlog_create(tc_csvlog **out, const char *path,
                                  int64_t resume_step);
/** Closes the file and frees the log. NULL: no-op. */
TC_API void tc_csvlog_destroy(tc_csvlog *c);
/**
 * Appends one row (one write(2)). `split` is a short label such as
 * "train", "val", "test" (quoted if it holds a comma or quote); a NaN
 * value is written as an empty field.
 * @return TC_OK, TC_EINVAL, TC_EIO.
 */
TC_API tc_status tc_csvlog_row(tc_csvlog *c, int64_t epoch, int64_t step,
                               const char *split, double loss, double accuracy,
                               double lr, double seconds,
                               double images_per_sec);

/* ---- progress bar -------------------------------------------------------- */

/** Options of tc_progress_create(). */
typedef struct tc_progress_options {
  size_t struct_size;        /**< sizeof(tc_progress_options) as compiled */
  int32_t quiet;             /**< 1: print nothing */
  int32_t tty;               /**< -1: ask isatty(); 0: plain lines; 1: redraw */
  int32_t lines_per_epoch;   /**< plain mode: lines per epoch (default 10) */
  int32_t reserved0;         /**< reserved for a later field; set to 0 */
  double min_redraw_seconds; /**< TTY mode: redraw at most this often
                                  (default 0.1; the last batch always) */
} tc_progress_options;

/** A tc_progress_options with its struct_size set and the defaults. */
#define TC_PROGRESS_OPTIONS_INIT                                               \
  { sizeof(tc_progress_options), 0, -1, 10, 0, 0.1 }

/** Fills `o` (`size` = sizeof *o) with the defaults. @return TC_OK,
 *  TC_EINVAL, TC_EVERSION. */
TC_API tc_status tc_progress_options_init(tc_progress_options *o, size_t size);

/** A progress display for epochs of batches (opaque). */
typedef struct tc_progress tc_progress;

/**
 * Creates a progress display writing to `stream` (borrowed; e.g. stdout).
 * On a TTY it redraws one line with a carriage return; otherwise it prints
 * `lines_per_epoch` plain lines per epoch; with `quiet` nothing at all.
 * @return TC_OK, TC_EINVAL, TC_EVERSION, TC_ENOMEM.
 */
TC_API tc_status tc_progress_create(tc_progress **out, FILE *stream,
                                    const tc_progress_options *opts);
/** Frees the display. NULL: no-op. */
TC_API void tc_progress_destroy(tc_progress *p);
/** Starts epoch `epoch` of `num_epochs` (0 if unknown) with
 *  `total_batches` batches; restarts the clock. */
TC_API tc_status tc_progress_begin(tc_progress *p, int64_t epoch,
                                   int64_t num_epochs, int64_t total_batches);
/**
 * Reports batch `batch` (1-based, <= total) done, with the running loss
 * and accuracy (in [0, 1]) and the images processed so far in the epoch
 * (for img/s and the ETA). @return TC_OK, TC_EINVAL, TC_ESTATE (no begin).
 */
TC_API tc_status tc_progress_update(tc_progress *p, int64_t batch, double loss,
                                    double accuracy, int64_t images);
/** Ends the epoch: a TTY line gets its newline. */
TC_API tc_status tc_progress_end(tc_progress *p);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_IO_H */
