/**
 * @file
 * @brief tinycnn/core.h - version, status codes, errors, allocator, logging,
 * threads, seed, backends, tensors and the Philox random generator.
 *
 * Included by <libtinycnn.h>; do not include it on its own.
 * Conventions: every fallible call returns tc_status (TC_OK == 0), writes its
 * result through a first parameter named `out` only on success, and records
 * a per-thread message for tc_last_error() on failure. Destroy functions
 * accept NULL.
 */
#ifndef TINYCNN_CORE_H
#define TINYCNN_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- export macro ------------------------------------------------------ */
/** @def TC_API
 *  Marks a public function: default visibility while the library itself is
 *  built (TINYCNN_BUILDING, which hides everything else), empty for
 *  programs that include the header. */
#if defined(_WIN32)
#define TC_API
#elif defined(TINYCNN_BUILDING) && defined(__GNUC__)
#define TC_API __attribute__((visibility("default")))
#else
#define TC_API
#endif

/* ---- version ----------------------------------------------------------- */
#define TC_VERSION_MAJOR 0        /**< major version of this header */
#define TC_VERSION_MINOR 1        /**< minor version of this header */
#define TC_VERSION_PATCH 0        /**< patch version of this header */
#define TC_VERSION_STRING "0.1.0" /**< "MAJOR.MINOR.PATCH" of this header */
/** MAJOR * 10000 + MINOR * 100 + PATCH, comparable with tc_version_number(). */
#define TC_VERSION_NUMBER                                                      \
  (TC_VERSION_MAJOR * 10000 + TC_VERSION_MINOR * 100 + TC_VERSION_PATCH)

/** The library's version string, e.g. "0.1.0". Never NULL. */
TC_API const char *tc_version(void);
/** The library's TC_VERSION_NUMBER, to compare with the header's. */
TC_API int tc_version_number(void);

/* ---- status and errors ------------------------------------------------- */
/** Status codes. TC_OK is zero; every error is negative. */
typedef enum tc_status {
  TC_OK = 0,
  TC_ENOMEM = -1,       /**< an allocation failed */
  TC_EINVAL = -2,       /**< an argument is invalid (NULL, out of range) */
  TC_ESHAPE = -3,       /**< shapes or sizes do not agree */
  TC_EIO = -4,          /**< a file could not be opened, read or written */
  TC_EFORMAT = -5,      /**< a file or buffer is malformed */
  TC_EUNSUPPORTED = -6, /**< the backend or build lacks this feature */
  TC_EVERSION = -7,     /**< a struct or API version is newer than ours */
  TC_ENOTFOUND = -8,    /**< a named thing (backend, tensor) is absent */
  TC_ENUMERIC = -9,     /**< NaN or Inf where a finite value is needed */
  TC_EBACKEND = -10,    /**< the backend failed (device error) */
  TC_ESTATE = -11       /**< the object is not in a state for this call */
} tc_status;

/**
 * The message recorded by the last failed call on this thread, or "" when
 * none. Never NULL; valid until the next tinycnn call on this thread.
 */
TC_API const char *tc_last_error(void);
/** Clears this thread's last error message. */
TC_API void tc_clear_error(void);
/**
 * Records a printf-style message for tc_last_error() on this thread and
 * returns `status`: for code that plugs into the library (communicators,
 * backends, allocators) to report why it failed.
 */
TC_API tc_status tc_set_error(tc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/** A short constant name for a status, e.g. "TC_ENOMEM". Never NULL. */
TC_API const char *tc_status_string(tc_status status);

/* ---- allocator --------------------------------------------------------- */
/**
 * A host allocator. `alloc` returns memory aligned to `alignment` (a power of
 * two, at most 4096) or NULL; `free` accepts NULL. Both get `user`.
 */
typedef struct tc_allocator {
  size_t struct_size; /**< sizeof(tc_allocator) as the caller compiled it */
  /** Returns `size` bytes aligned to `alignment`, or NULL when out of
   *  memory. */
  void *(*alloc)(void *user, size_t size, size_t alignment);
  /** Frees memory `alloc` returned; NULL must be accepted. */
  void (*free)(void *user, void *ptr);
  void *user; /**< passed unchanged to alloc and free */
} tc_allocator;
/** A tc_allocator with its struct_size set and no functions yet. */
#define TC_ALLOCATOR_INIT                                                      \
  { sizeof(tc_allocator), NULL, NULL, NULL }

/**
 * Routes every host allocation of the library through `a` (copied); NULL
 * restores the default (aligned malloc). Set it before creating objects:
 * memory must be freed by the allocator that allocated it.
 * @return TC_OK, TC_EINVAL (a missing function), TC_EVERSION.
 */
TC_API tc_status tc_set_allocator(const tc_allocator *a);

/* ---- logging ----------------------------------------------------------- */
/** Severity of a message given to the log callback. */
typedef enum tc_log_level {
  TC_LOG_DEBUG = 0, /**< detail for debugging the library */
  TC_LOG_INFO = 1,  /**< normal operation worth noting */
  TC_LOG_WARN = 2,  /**< something unexpected; the call went on */
  TC_LOG_ERROR = 3  /**< a failure (also returned as a tc_status) */
} tc_log_level;

/** Log callback; `msg` is valid only during the call. */
typedef void (*tc_log_fn)(void *user, tc_log_level level, const char *msg);

/** Installs a log callback (NULL: silence, the default). The library never
 *  prints on its own; it only calls this. */
TC_API void tc_set_log_callback(tc_log_fn fn, void *user);

/* ---- threads and seed -------------------------------------------------- */
/**
 * Number of worker threads the CPU backend uses (>= 1; 0 means the number of
 * online cores). Results do not depend on it: reductions are split into
 * chunks whose count and order are fixed.
 */
TC_API tc_status tc_set_num_threads(int n);
/** The number of worker threads: tc_set_num_threads()'s, or the number of
 *  online cores (at most 1024) when it was 0 or never called. */
TC_API int tc_get_num_threads(void);

/** The global seed that drives initialisation, shuffling, augmentation and
 *  dropout (default 0). */
TC_API void tc_set_seed(uint64_t seed);
/** The global seed set by tc_set_seed() (0 when never set). */
TC_API uint64_t tc_get_seed(void);

/* ---- random numbers: Philox4x32-10 -------------------------------------- */
/**
 * One Philox4x32-10 block: `ctr` (4 words) encrypted with `key` (2 words)
 * into `out` (4 words). Counter-based: the same (key, counter) always gives
 * the same numbers on every backend.
 */
TC_API void tc_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                             uint32_t out[4]);

/**
 * A random stream keyed by (seed, stream id), positioned at `offset` 32-bit
 * outputs from its start. A small value type: copy it to save its position.
 */
typedef struct tc_rng {
  uint64_t seed;   /**< the Philox key (the key's two 32-bit words) */
  uint64_t stream; /**< stream id, e.g. TC_RNG_STREAM_SHUFFLE: part of the
                        counter, so streams of one seed never overlap */
  uint64_t offset; /**< number of 32-bit outputs consumed */
} tc_rng;

/** Well-known stream ids so that uses never share numbers. */
enum {
  TC_RNG_STREAM_INIT = 1,    /**< parameter initialisation */
  TC_RNG_STREAM_SHUFFLE = 2, /**< the loader's per-epoch shuffle */
  TC_RNG_STREAM_AUGMENT = 3, /**< random transforms (crop, flip) */
  TC_RNG_STREAM_DROPOUT = 4, /**< dropout masks */
  TC_RNG_STREAM_SPLIT = 5,   /**< tc_dataset_split() */
  TC_RNG_STREAM_USER = 1000  /**< first id left to programs */
};

/** Initialises `r` for (seed, stream) at offset 0. */
TC_API void tc_rng_init(tc_rng *r, uint64_t seed, uint64_t stream);
/** Next uniformly distributed 32-bit word. */
TC_API uint32_t tc_rng_next_u32(tc_rng *r);
/** Uniform float in [0, 1) with 24 random bits. */
TC_API float tc_rng_uniform(tc_rng *r);
/** Standard normal float (Box-Muller over two uniforms). */
TC_API float tc_rng_normal(tc_rng *r);
/** Uniform integer in [0, n) without modulo bias; n >= 1. */
TC_API uint64_t tc_rng_below(tc_rng *r, uint64_t n);

/* ---- backends ---------------------------------------------------------- */
/** A compute backend instance (opaque, reference-counted): where tensors
 *  live and operations run. */
typedef struct tc_backend tc_backend;

/**
 * Opens a backend by name: "cpu" (always built in), "cuda" (a loadable
 * module, found next to the library) or a name registered with
 * tc_backend_register(). Each call returns a new reference; release it with
 * tc_backend_destroy().
 * @return TC_OK, TC_EINVAL, TC_ENOTFOUND (unknown name or missing module),
 *         TC_EUNSUPPORTED (module present but no usable device), TC_ENOMEM.
 */
TC_API tc_status tc_backend_create(tc_backend **out, const char *name);
/** Options of tc_backend_create_ex(). */
typedef struct tc_backend_options {
  size_t struct_size;    /**< sizeof(tc_backend_options) as compiled */
  int32_t num_threads;   /**< CPU workers; 0 (default): tc_get_num_threads() */
  int32_t deterministic; /**< GPU: bit-identical runs (no order-dependent
                              atomics); default 0 */
  void *stream;          /**< CUDA: a cudaStream_t to run on; NULL (default):
                              the backend's own stream */
} tc_backend_options;
/** A tc_backend_options with its struct_size set and the defaults. */
#define TC_BACKEND_OPTIONS_INIT                                                \
  { sizeof(tc_backend_options), 0, 0, NULL }
/** Fills `o` (of `struct_size` bytes) with the defaults.
 *  @return TC_OK, TC_EINVAL, TC_EVERSION (struct_size larger than ours). */
TC_API tc_status tc_backend_options_init(tc_backend_options *o,
                                         size_t struct_size);
/** tc_backend_create() with options (NULL: defaults).
 *  @return as tc_backend_create(), plus TC_EVERSION (options newer than
 *  this library). */
TC_API tc_status tc_backend_create_ex(tc_backend **out, const char *name,
                                      const tc_backend_options *opts);
/** Releases a reference; the backend lives while tensors use it. NULL ok. */
TC_API void tc_backend_destroy(tc_backend *be);
/** The backend's name, e.g. "cpu". Never NULL for a valid handle. */
TC_API const char *tc_backend_name(const tc_backend *be);
/** Waits until every queued operation of the backend has finished. */
TC_API tc_status tc_backend_synchronize(tc_backend *be);

/** @name CUDA graphs (experimental)
 * Record the device work a backend is given between begin and end once, then
 * replay it with one launch. Only device work is recorded: arguments are frozen
 * at capture (pointers, sizes, the learning rate, Adam's step, dropout's seed
 * and offset), and operations that wait for the device or read host memory
 * (copies to or from the host, synchronize, reductions, a loss readback,
 * BatchNorm's num_batches_tracked) fail with TC_ESTATE while capturing. Run one
 * uncaptured step first so every buffer exists; keep all buffers the graph uses
 * alive and in place until the next begin or the backend's destruction. See
 * docs/backends.md.
 * @{ */
/** Starts capturing the backend's device work (drops a previous graph).
 *  @return TC_OK, TC_EINVAL (NULL), TC_EUNSUPPORTED (backend without
 *  graphs, e.g. "cpu"), TC_ESTATE (already capturing), TC_EBACKEND. */
TC_API tc_status tc_backend_graph_begin(tc_backend *be);
/** Ends the capture and prepares the graph for replay.
 *  @return TC_OK, TC_EINVAL, TC_EUNSUPPORTED, TC_ESTATE (not capturing),
 *  TC_EBACKEND (an operation could not be captured; the graph is dropped). */
TC_API tc_status tc_backend_graph_end(tc_backend *be);
/** Queues one replay of the captured graph (asynchronous, like the ops).
 *  @return TC_OK, TC_EINVAL, TC_EUNSUPPORTED, TC_ESTATE (no graph, or
 *  capturing), TC_EBACKEND. */
TC_API tc_status tc_backend_graph_replay(tc_backend *be);
/** @} */

/* ---- tensors ----------------------------------------------------------- */
/** Most dimensions a tensor has. */
#define TC_MAX_DIMS 5

/** Element type of a tensor. */
typedef enum tc_dtype {
  TC_FLOAT32 = 0, /**< IEEE 754 binary32 */
  TC_INT32 = 1,   /**< labels, indices */
  TC_INT64 = 2    /**< counters such as BatchNorm's num_batches_tracked */
} tc_dtype;

/** An n-dimensional array on a backend (opaque). A view shares its
 *  storage with the tensor it was made from. */
typedef struct tc_tensor tc_tensor;

/**
 * Creates a zero-filled, contiguous row-major tensor on `be`.
 * @param out    receives the tensor; release it with tc_tensor_destroy().
 * @param be     the backend whose memory holds it.
 * @param shape  `ndim` sizes, each >= 0; 0 <= ndim <= TC_MAX_DIMS (0: a
 *               scalar of one element; `shape` may then be NULL).
 * @param ndim   the number of sizes in `shape`.
 * @param dtype  the element type.
 * @return TC_OK, TC_EINVAL (NULL, bad ndim, negative size, bad dtype),
 *         TC_ESHAPE (element count or byte size overflows), TC_ENOMEM.
 */
TC_API tc_status tc_tensor_create(tc_tensor **out, tc_backend *be,
                                  const int64_t *shape, int ndim,
                                  tc_dtype dtype);
/** Releases the handle; storage is freed when its last view goes. NULL ok. */
TC_API void tc_tensor_destroy(tc_tensor *t);

/** A new handle on the same storage with another shape of the same element
 *  count (no copy). @return TC_OK, TC_EINVAL, TC_ESHAPE, TC_ENOMEM. */
TC_API tc_status tc_tensor_view(tc_tensor **out, tc_tensor *t,
                                const int64_t *shape, int ndim);
/** Changes `t`'s shape in place, keeping its element count (no copy). */
TC_API tc_status tc_tensor_reshape(tc_tensor *t, const int64_t *shape,
                                   int ndim);

/** Number of dimensions (0 for a scalar); -1 for NULL. */
TC_API int tc_tensor_ndim(const tc_tensor *t);
/** Size of dimension `axis` (negative counts from the end); -1 if invalid. */
TC_API int64_t tc_tensor_dim(const tc_tensor *t, int axis);
/** Copies the shape into `shape` (room for TC_MAX_DIMS); returns ndim or -1. */
TC_API int tc_tensor_shape(const tc_tensor *t, int64_t shape[TC_MAX_DIMS]);
/** Number of elements (the product of the sizes); -1 for NULL. */
TC_API int64_t tc_tensor_numel(const tc_tensor *t);
/** The element type; TC_FLOAT32 for NULL. */
TC_API tc_dtype tc_tensor_dtype(const tc_tensor *t);
/** The backend holding the tensor (borrowed: no new reference); NULL for
 *  NULL. */
TC_API tc_backend *tc_tensor_backend(const tc_tensor *t);

/** Copies `bytes` (must equal numel * element size) from host memory. */
TC_API tc_status tc_tensor_copy_from_host(tc_tensor *t, const void *src,
                                          size_t bytes);
/** Copies the tensor into host memory of exactly `bytes`. */
TC_API tc_status tc_tensor_copy_to_host(const tc_tensor *t, void *dst,
                                        size_t bytes);
/** Copies `src` into `dst`: same dtype and element count, any backends. */
TC_API tc_status tc_tensor_copy(tc_tensor *dst, const tc_tensor *src);
/** Sets every element to `value` (converted for integer dtypes; a value
 *  that does not fit is TC_EINVAL). */
TC_API tc_status tc_tensor_fill(tc_tensor *t, double value);

#ifdef __cplusplus
}
#endif
#endif /* TINYCNN_CORE_H */
