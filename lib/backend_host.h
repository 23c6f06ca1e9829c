/*
 * backend_host.h - what the core offers the backends built into
 * libtinycnn (backends/cpu/), and nothing more: the per-thread error, the
 * host allocator, size-overflow helpers and the thread count. A backend
 * includes this and the public <tinycnn_backend.h>, never lib/internal.h,
 * so the core's own structures (tensors, models, the backend handle) stay
 * out of its reach and can change without touching a backend.
 *
 * None of these are exported from libtinycnn.so (names are tc__*): a
 * loadable module (backends/cuda/) cannot link them and uses only the
 * public header (tc_backend_error, its own allocator). lib/internal.h
 * includes this file, so the core sees the same declarations.
 */
#ifndef TINYCNN_BACKEND_HOST_H
#define TINYCNN_BACKEND_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinycnn_backend.h>

/* ---- errors (lib/error.c) ---- */
/* Records the per-thread message (tc_last_error) and returns `status`. */
tc_status tc__error(tc_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The out-of-memory report: a static message, allocates nothing. */
tc_status tc__oom(const char *where);

/* ---- memory (lib/alloc.c): the user's allocator (tc_set_allocator) ---- */
#define TC__ALIGN 64
void *tc__malloc(size_t size); /* 64-byte aligned; NULL on failure */
void *tc__calloc(size_t count, size_t size); /* zeroed, overflow-checked */
void tc__free(void *ptr);
/* a*b and a+b with overflow detection: false on overflow */
static inline bool tc__mul_size(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool tc__add_size(size_t a, size_t b, size_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

/* ---- global settings (lib/context.c) ---- */
int tc__num_threads(void); /* tc_set_num_threads, resolved: >= 1 */

/* ---- the other direction: the built-in CPU backend's table, which the
 * core opens as "cpu" (defined in backends/cpu/backend.c) ---- */
const tc_backend_iface *tc__cpu_backend_iface(void);

#endif /* TINYCNN_BACKEND_HOST_H */
