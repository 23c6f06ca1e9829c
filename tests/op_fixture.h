/*
 * op_fixture.h - what the CPU op suites (test_cpu_*.c) share: a "cpu"
 * backend opened for each test by Check's fixture, its operation table
 * `it` and context `ctx`, and device buffers from the backend's own
 * allocator (freed with the backend's memory at teardown by the tests).
 * Header-only, included once per suite.
 */
#ifndef TC_OP_FIXTURE_H
#define TC_OP_FIXTURE_H

#include <check.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

static tc_backend *be;
static const tc_backend_iface *it;
static void *ctx;

static void op_open_cpu(void) {
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  it = tc_backend_get_iface(be);
  ctx = tc_backend_get_context(be);
}

static void op_close(void) {
  tc_backend_destroy(be);
  be = NULL;
  tc_set_num_threads(0);
}

/* `bytes` of device memory (at least 1, so a size of 0 is a valid buffer). */
static void *op_alloc(size_t bytes) {
  void *p = NULL;
  ck_assert_int_eq(it->alloc(ctx, &p, bytes ? bytes : 1), TC_OK);
  return p;
}

#endif
