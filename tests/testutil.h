/*
 * testutil.h - small helpers shared by the Check suites: a CPU backend
 * fixture, random buffers from a fixed seed, relative-error comparison, and
 * a counting allocator that fails the n-th allocation (fault testing).
 */
#ifndef TC_TESTUTIL_H
#define TC_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

/* Fills `x` (n) with uniform values in [lo, hi) from (seed). */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);

/* max |a-b| / max(1e-3 scale, |b|) style relative error, as documented
 * in tu_max_rel_err's definition. */
double tu_max_rel_err(const float *got, const float *want, size_t n);

/* ck_assert that got and want agree within `tol` relative error. */
#define TU_ASSERT_CLOSE(got, want, n, tol)                                     \
  do {                                                                         \
    double e_ = tu_max_rel_err((got), (want), (n));                            \
    ck_assert_msg(e_ <= (tol), "%s vs %s: max rel err %.3g > %.3g", #got,      \
                  #want, e_, (double)(tol));                                   \
  } while (0)

/* Counting allocator: install with tu_alloc_install(); tu_alloc_fail_at(k,
 * persistent) makes the k-th allocation from now fail (k = 0: never). */
void tu_alloc_install(void);
void tu_alloc_uninstall(void);
void tu_alloc_fail_at(long k, int persistent);
long tu_alloc_live(void);  /* blocks currently allocated */
long tu_alloc_count(void); /* allocations attempted since fail_at */
int tu_alloc_failed(void); /* whether the armed failure was reached */

/* Runs a Check suite; returns the process exit status. */
int tu_run_suite(Suite *s);

#endif
