/*
 * op_fixture.h - what the CPU op suites (test_cpu_*.c) share: a "cpu"
 * backend opened for each test by Check's fixture, its operation table
 * `it` and context `ctx`, and device buffers, either from the backend's own
 * allocator (freed with the backend's memory at teardown by the tests) or
 * as tensors (the library's own memory path), which op_free_all() and
 * op_close() destroy. Header-only, included once per suite; every helper
 * is `static inline` so that a suite may leave some unused (no
 * -Wunused-function).
 */
#ifndef TC_OP_FIXTURE_H
#define TC_OP_FIXTURE_H

#include <check.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

static tc_backend *be;
static const tc_backend_iface *it;
static void *ctx;

#define OP_MAX_TENSORS 32
static tc_tensor *op_tensors[OP_MAX_TENSORS];
static int op_n_tensors;

static inline void op_use(tc_backend *b) {
  be = b;
  it = tc_backend_get_iface(b);
  ctx = tc_backend_get_context(b);
}

static inline void op_open_cpu(void) {
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  op_use(be);
}

/* A "cpu" backend with its own worker count (0: the library default),
 * not made current. */
static inline tc_backend *op_create_cpu(int threads) {
  tc_backend *b = NULL;
  tc_backend_options o = TC_BACKEND_OPTIONS_INIT;
  o.num_threads = threads;
  ck_assert_int_eq(tc_backend_create_ex(&b, "cpu", &o), TC_OK);
  return b;
}

/* The same, made current (be, it, ctx). */
static inline void op_open_cpu_threads(int threads) {
  op_use(op_create_cpu(threads));
}

/* Destroys the tensors from op_tensor(). */
static inline void op_free_all(void) {
  for (int i = 0; i < op_n_tensors; i++)
    tc_tensor_destroy(op_tensors[i]);
  op_n_tensors = 0;
}

/* Destroys the current backend (and its tensors) and leaves the library's
 * thread count as a test may have set it: between two backends of one test
 * (thread-count comparisons). */
static inline void op_destroy(void) {
  op_free_all();
  tc_backend_destroy(be);
  be = NULL;
}

static inline void op_close(void) {
  op_destroy();
  tc_set_num_threads(0);
}

/* `bytes` of device memory (at least 1, so a size of 0 is a valid buffer). */
static inline void *op_alloc(size_t bytes) {
  void *p = NULL;
  ck_assert_int_eq(it->alloc(ctx, &p, bytes ? bytes : 1), TC_OK);
  return p;
}

/* n floats from op_alloc(); free with op_free() or leave to the backend. */
static inline float *op_falloc(size_t n) {
  return op_alloc(n * sizeof(float));
}

static inline void op_free(void *p) {
  it->free(ctx, p);
}

/* A tensor of n (at least 1) elements of `dt` on the current backend; its
 * data pointer. Destroyed by op_free_all(), op_destroy() or op_close(). */
static inline void *op_tensor(size_t n, tc_dtype dt) {
  int64_t shape[1] = {(int64_t)(n ? n : 1)};
  ck_assert_int_lt(op_n_tensors, OP_MAX_TENSORS);
  tc_tensor *t = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 1, dt), TC_OK);
  op_tensors[op_n_tensors++] = t;
  return tc_tensor_data(t);
}

#endif
