/*
 * internal.h - helpers shared by the core (lib/) and the built-in CPU
 * backend. Never installed; nothing here is exported (names are tc__*).
 *
 * Errors: tc__error() records the per-thread message and returns the status,
 * so a check reads `if (!x) return tc__error(TC_EINVAL, "f: x is NULL");`.
 * Memory: every host allocation goes through tc__malloc/tc__free, which use
 * the user's allocator (tc_set_allocator); 64-byte alignment by default.
 */
#ifndef TINYCNN_INTERNAL_H
#define TINYCNN_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

/* tc__error, tc__oom, tc__malloc/calloc/free, tc__mul_size/add_size,
 * tc__num_threads, tc__cpu_backend_iface: what the backends see too */
#include "backend_host.h"

/* ---- errors (lib/error.c; tc__error in backend_host.h) ---- */
tc_status tc__verror(tc_status status, const char *fmt, va_list ap);
/* Logs through the user's callback, if any. */
void tc__log(tc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Argument-check helpers; `fn` is the public function's name. */
#define TC__CHECK_NULL(ptr, fn)                                                \
  do {                                                                         \
    if ((ptr) == NULL)                                                         \
      return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", (fn), #ptr);    \
  } while (0)

/* ---- memory (lib/alloc.c; the allocator in backend_host.h) ---- */
char *tc__strdup(const char *s);

/* ---- files read by the library (lib/file.c) ---- */
/* Opens `path` for reading if it is a regular file, without blocking on a
 * FIFO or device first; TC_EIO naming the reason and the path otherwise.
 * *out_fd is blocking and close-on-exec; *out_size (may be NULL) is the
 * size fstat gave. */
tc_status tc__open_regular(const char *path, int *out_fd, uint64_t *out_size,
                           const char *fn);
/* The same as a stdio stream ("rb"). */
tc_status tc__fopen_regular(const char *path, FILE **out, uint64_t *out_size,
                            const char *fn);

/* ---- the system calls of lib/file.c and lib/io/ (lib/sysio.c) ---- */
/* Every file-system call of the checkpoint, safetensors and log code goes
 * through this table, which holds the libc functions. Only
 * tests/test_io_faults.c changes it (linked with the static library: the
 * symbol is hidden and not in libtinycnn.map), to fail the k-th call; the
 * same device as SQLite's os_unix.c aSyscall[] table, which its
 * test_syscall.c overrides. Not thread-safe to change; never changed by
 * the library. */
struct stat;
typedef struct tc__sys_table {
  int (*open)(const char *path, int flags, unsigned mode);
  int (*close)(int fd);
  long (*read)(int fd, void *buf, size_t n);
  long (*pread)(int fd, void *buf, size_t n, int64_t off);
  long (*write)(int fd, const void *buf, size_t n);
  int (*fsync)(int fd);
  int (*rename)(const char *from, const char *to);
  int (*unlink)(const char *path);
  int (*mkdir)(const char *path, unsigned mode);
  int (*fstat)(int fd, struct stat *sb);
  int (*stat)(const char *path, struct stat *sb);
  int (*fcntl)(int fd, int cmd, int arg);
  int (*ftruncate)(int fd, int64_t len);
  int64_t (*lseek)(int fd, int64_t off, int whence);
} tc__sys_table;
extern tc__sys_table tc__sys;
/* The libc defaults (restores tc__sys). */
void tc__sys_reset(void);

/* ---- limits ---- */
/* Elements of one tensor, and floats of a model's parameters: 2^48, far
 * beyond any memory, so byte sizes never overflow (tc__shape_numel). */
#define TC__MAX_NUMEL ((int64_t)1 << 48)
/* Optimizer steps and scheduler epochs: 2^53, exact as a double (the lr
 * and bias-correction formulas use them so), and far from INT64_MAX, so
 * counting one more never overflows. */
#define TC__MAX_COUNT ((int64_t)1 << 53)

/* ---- backends (lib/backend.c) ---- */
struct tc_backend {
  const tc_backend_iface *iface;
  void *ctx;
  atomic_int refcount;
  void *module; /* dlopen handle or NULL */
};
void tc__backend_retain(tc_backend *be);
/* True when `slot` lies inside the table's struct_size and is not NULL. */
#define TC__HAS_SLOT(iface, slot)                                              \
  ((iface)->struct_size >=                                                     \
       offsetof(tc_backend_iface, slot) + sizeof((iface)->slot) &&             \
   (iface)->slot != NULL)

/* ---- tensors (lib/tensor.c) ---- */
typedef struct tc__storage {
  tc_backend *be;
  void *data; /* device memory */
  size_t bytes;
  atomic_int refcount;
} tc__storage;

struct tc_tensor {
  tc__storage *storage;
  size_t offset_bytes;
  int ndim;
  tc_dtype dtype;
  int64_t shape[TC_MAX_DIMS];
  int64_t numel;
};
size_t tc__dtype_size(tc_dtype dtype);
/* Validates a shape; writes its element count. `fn` names the caller. */
tc_status tc__shape_numel(const int64_t *shape, int ndim, int64_t *out,
                          const char *fn);

/* Training checkpoints (lib/io/train_checkpoint.c) record what PyTorch's
 * optimizer state_dict keeps in param_groups: each group's settings as a
 * row of TC__OPT_ROW numbers {kind (tc_optimizer_type), lr (the options'
 * lr, PyTorch's initial_lr), then SGD's momentum, dampening, weight_decay,
 * nesterov, 0 or Adam's beta1, beta2, eps, weight_decay, amsgrad}. The
 * floats are stored widened to double, so equal settings compare equal. */
#define TC__OPT_ROW 7
struct tc_optimizer;
void tc__optimizer_group_row(const struct tc_optimizer *opt, int64_t g,
                             double row[TC__OPT_ROW]);
/* Name of field k (1..TC__OPT_ROW-1) of a row of optimizer `kind`. */
const char *tc__optimizer_row_field(int kind, int k);
/* The loader's global batch size and dataset length (all shards). */
struct tc_loader;
int64_t tc__loader_batch_size(const struct tc_loader *l);
int64_t tc__loader_size(const struct tc_loader *l);

#endif /* TINYCNN_INTERNAL_H */
