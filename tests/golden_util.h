/*
 * golden_util.h - reading the PyTorch golden files (tests/golden/, the
 * .safetensors files written by tests/golden/generate.py) into tensors and host
 * buffers, and comparing with a relative tolerance. Header-only, shared by
 * test_golden_layers.c and test_parity.c.
 */
#ifndef TC_GOLDEN_UTIL_H
#define TC_GOLDEN_UTIL_H

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"
#include "testutil.h"

/* The parity tolerance: max relative error 1e-4 in float32. */
#define GOLDEN_TOL 1e-4

static double golden_worst; /* worst relative error seen by this binary */

static inline tc_safetensors *golden_open(const char *name) {
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/golden/%s.safetensors",
           root ? root : "..", name);
  tc_safetensors *st = NULL;
  ck_assert_msg(tc_safetensors_create(&st, path) == TC_OK, "%s: %s", path,
                tc_last_error());
  return st;
}

/* The case's configuration (JSON in __metadata__["config"]); free with
 * cJSON_Delete. */
static inline cJSON *golden_config(tc_safetensors *st) {
  const char *c = tc_safetensors_metadata(st, "config");
  ck_assert_ptr_nonnull(c);
  cJSON *j = cJSON_Parse(c);
  ck_assert_ptr_nonnull(j);
  return j;
}

static inline double golden_num(const cJSON *cfg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  ck_assert_msg(v != NULL, "config has no '%s'", key);
  if (cJSON_IsBool(v))
    return cJSON_IsTrue(v) ? 1 : 0;
  if (cJSON_IsNull(v))
    return -1;
  ck_assert(cJSON_IsNumber(v));
  return v->valuedouble;
}

static inline const char *golden_str(const cJSON *cfg, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  ck_assert_msg(cJSON_IsString(v), "config has no string '%s'", key);
  return v->valuestring;
}

/* A tensor on `be` holding the golden tensor `name` (its dtype and shape). */
static inline tc_tensor *golden_tensor(tc_safetensors *st, tc_backend *be,
                                       const char *name) {
  tc_st_dtype dt;
  int64_t shape[TC_MAX_DIMS];
  int ndim = 0;
  ck_assert_msg(tc_safetensors_info(st, name, &dt, shape, TC_MAX_DIMS, &ndim) ==
                    TC_OK,
                "%s: %s", name, tc_last_error());
  tc_dtype d = dt == TC_ST_I32   ? TC_INT32
               : dt == TC_ST_I64 ? TC_INT64
                                 : TC_FLOAT32;
  tc_tensor *t = NULL;
  NU_OK(tc_tensor_create(&t, be, shape, ndim, d));
  NU_OK(tc_safetensors_read(st, name, t));
  return t;
}

/* Host copy of a float golden tensor; *n gets its element count. */
static inline float *golden_floats(tc_safetensors *st, const char *name,
                                   int64_t *n) {
  tc_st_dtype dt;
  int64_t shape[TC_MAX_DIMS];
  int ndim = 0;
  ck_assert_msg(tc_safetensors_info(st, name, &dt, shape, TC_MAX_DIMS, &ndim) ==
                    TC_OK,
                "%s: %s", name, tc_last_error());
  ck_assert(dt == TC_ST_F32);
  int64_t count = 1;
  for (int i = 0; i < ndim; i++)
    count *= shape[i];
  float *buf = malloc((size_t)(count ? count : 1) * sizeof *buf);
  NU_OK(tc_safetensors_read_raw(st, name, buf, (size_t)count * sizeof *buf));
  *n = count;
  return buf;
}

/* Checks a tensor against the golden float tensor `name` within `tol`. */
static inline void golden_check_tol(tc_safetensors *st, const char *name,
                                    const tc_tensor *got, const char *what,
                                    double tol) {
  int64_t n;
  float *want = golden_floats(st, name, &n);
  ck_assert_msg(tc_tensor_numel(got) == n,
                "%s: %lld elements, golden %s has %lld", what,
                (long long)tc_tensor_numel(got), name, (long long)n);
  float *have = malloc((size_t)(n ? n : 1) * sizeof *have);
  NU_OK(tc_tensor_copy_to_host(got, have, (size_t)n * sizeof *have));
  double e = tu_max_rel_err(have, want, (size_t)n);
  if (e > golden_worst)
    golden_worst = e;
  ck_assert_msg(e <= tol, "%s vs golden %s: max rel err %.3g > %.0e", what,
                name, e, tol);
  free(have);
  free(want);
}

/* Checks a tensor against the golden float tensor `name` (GOLDEN_TOL). */
static inline void golden_check(tc_safetensors *st, const char *name,
                                const tc_tensor *got, const char *what) {
  golden_check_tol(st, name, got, what, GOLDEN_TOL);
}

static inline void golden_check_value(tc_safetensors *st, const char *name,
                                      float got, const char *what) {
  int64_t n;
  float *want = golden_floats(st, name, &n);
  ck_assert_int_eq(n, 1);
  double e = tu_max_rel_err(&got, want, 1);
  if (e > golden_worst)
    golden_worst = e;
  ck_assert_msg(e <= GOLDEN_TOL, "%s: %.8g vs golden %.8g (rel err %.3g)", what,
                got, want[0], e);
  free(want);
}

/* Loads every "p.<name>" of the golden file into the model (strict). */
static inline void golden_load_model(tc_safetensors *st, tc_model *m) {
  NU_OK(tc_safetensors_load_model(st, m, "p.", NULL));
}

#endif
