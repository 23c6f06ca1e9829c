/*
 * testutil.h - small helpers shared by the Check suites: random buffers
 * from a fixed seed, relative-error comparison, a counting allocator that
 * fails the n-th allocation (fault testing), and files: a temporary
 * directory per test, paths in it, whole-file reads and writes. (The CPU
 * op suites' backend fixture is op_fixture.h.)
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

/* ---- files ---- */

/* Creates a fresh directory "$TMPDIR/<prefix>_XXXXXX" (/tmp without
 * TMPDIR) and returns its path, valid until tu_tmpdir_remove(). One at a
 * time: a suite's setup creates it, its teardown removes it. */
const char *tu_tmpdir_create(const char *prefix);
/* Removes that directory and everything under it. */
void tu_tmpdir_remove(void);
/* "<tmpdir>/<name>", in one of 4 rotating static buffers (so a call may
 * take a few at once). */
char *tu_tmppath(const char *name);

/* "<dir>/<name>" into buf (size), asserted to fit; returns buf. */
char *tu_path_join(char *buf, size_t size, const char *dir, const char *name);
/* A fresh empty file "$TMPDIR/<prefix>_XXXXXX" (mkstemp) whose path goes
 * into buf (size); returns buf. The caller unlinks it. */
char *tu_tmpfile(char *buf, size_t size, const char *prefix);
/* Removes `path` and, when a directory, everything under it (rm -rf; a
 * missing path is no error). Returns 0, or -1 with errno. */
int tu_rm_rf(const char *path);

/* The whole file, malloc'ed with a NUL after its n bytes; NULL with
 * *n = (size_t)-1 when it cannot be opened. */
unsigned char *tu_read_file(const char *path, size_t *n);
/* The same, asserted to exist. */
unsigned char *tu_slurp(const char *path, size_t *n);

/* Every state tensor of `m` (parameters, buffers) as host bytes, concatenated
 * in state order (malloc'd; *n its size): equal bytes, equal models. */
unsigned char *tu_state_bytes(tc_model *m, size_t *n);
/* Writes n bytes as the whole file (created or truncated), asserted. */
void tu_write_file(const char *path, const void *data, size_t n);

/* Runs a Check suite; returns the process exit status. */
int tu_run_suite(Suite *s);

#endif
