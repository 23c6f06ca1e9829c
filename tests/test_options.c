/*
 * test_options.c - the versioned option structs (lib/options.h): the
 * first-release sizes, which are the smallest struct_size each public
 * function accepts, and the one helper that takes them. Linked with the
 * whole static library (the helper is not exported).
 */
#include <stdint.h>
#include <string.h>

#include "../lib/options.h"
#include "testutil.h"

/* The first release (0.1.0) sizes. `today` is the struct's sizeof now:
 * equal while no field has been appended. When a release appends one,
 * that row's `today` becomes the literal the struct had in 0.1.0 (its
 * `lp64` below), so the minimum cannot move with the struct. */
typedef struct size_row {
  const char *name;
  size_t size0, today, lp64;
} size_row;

#define ROW(T, K, LP64)                                                        \
  { #T, TC__SIZE0_##K, sizeof(T), LP64 }
static const size_row rows[] = {
    ROW(tc_allocator, ALLOCATOR, 32),
    ROW(tc_backend_options, BACKEND_OPTIONS, 24),
    ROW(tc_loader_options, LOADER_OPTIONS, 56),
    ROW(tc_ddp_options, DDP_OPTIONS, 40),
    ROW(tc_onnx_options, ONNX_OPTIONS, 40),
    ROW(tc_onnx_load_options, ONNX_LOAD_OPTIONS, 24),
    ROW(tc_progress_options, PROGRESS_OPTIONS, 32),
    ROW(tc_conv2d_options, CONV2D_OPTIONS, 72),
    ROW(tc_linear_options, LINEAR_OPTIONS, 16),
    ROW(tc_batchnorm_options, BATCHNORM_OPTIONS, 24),
    ROW(tc_pool2d_options, POOL2D_OPTIONS, 56),
    ROW(tc_residual_options, RESIDUAL_OPTIONS, 16),
    ROW(tc_model_options, MODEL_OPTIONS, 16),
    ROW(tc_loss_options, LOSS_OPTIONS, 16),
    ROW(tc_sgd_options, SGD_OPTIONS, 32),
    ROW(tc_adam_options, ADAM_OPTIONS, 32),
};

START_TEST(test_first_release_sizes) {
  int lp64 = sizeof(void *) == 8 && sizeof(size_t) == 8;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    ck_assert_msg(rows[i].size0 == rows[i].today,
                  "%s: first-release size %zu, sizeof %zu", rows[i].name,
                  rows[i].size0, rows[i].today);
    if (lp64)
      ck_assert_msg(rows[i].size0 == rows[i].lp64,
                    "%s: first-release size %zu, 0.1.0 had %zu on LP64",
                    rows[i].name, rows[i].size0, rows[i].lp64);
  }
}
END_TEST

/* A struct as release 1 had it, and as release 2 extends it. */
typedef struct v1 {
  size_t struct_size;
  int32_t a, b;
} v1;
typedef struct v2 {
  size_t struct_size;
  int32_t a, b;
  int64_t c;
} v2;
static const v2 v2_defaults = {sizeof(v2), 1, 2, 3};

START_TEST(test_accept) {
  size_t min = TC__SIZE_THROUGH(v2, b);
  ck_assert_uint_eq(min, sizeof(v1));
  v2 o;
  memset(&o, 0xab, sizeof o);
  ck_assert_int_eq(
      tc__options_accept(&o, sizeof o, NULL, &v2_defaults, min, "f"), TC_OK);
  ck_assert_int_eq(memcmp(&o, &v2_defaults, sizeof o), 0);
  /* an older caller: its fields, then the defaults, struct_size ours */
  v1 old = {sizeof old, 10, 20};
  ck_assert_int_eq(
      tc__options_accept(&o, sizeof o, &old, &v2_defaults, min, "f"), TC_OK);
  ck_assert_uint_eq(o.struct_size, sizeof o);
  ck_assert_int_eq(o.a, 10);
  ck_assert_int_eq(o.b, 20);
  ck_assert_int_eq(o.c, 3);
  /* a newer header than the library */
  v2 big = v2_defaults;
  big.struct_size = sizeof big + 8;
  ck_assert_int_eq(
      tc__options_accept(&o, sizeof o, &big, &v2_defaults, min, "f"),
      TC_EVERSION);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "header newer"));
  /* smaller than any released struct */
  v2 small = v2_defaults;
  small.struct_size = min - 4;
  ck_assert_int_eq(
      tc__options_accept(&o, sizeof o, &small, &v2_defaults, min, "f"),
      TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "not initialised?"));
}
END_TEST

START_TEST(test_init) {
  size_t min = TC__SIZE_THROUGH(v2, b);
  ck_assert_int_eq(
      tc__options_init(NULL, sizeof(v2), &v2_defaults, sizeof(v2), min, "f"),
      TC_EINVAL);
  v1 old;
  memset(&old, 0, sizeof old);
  ck_assert_int_eq(
      tc__options_init(&old, sizeof old, &v2_defaults, sizeof(v2), min, "f"),
      TC_OK);
  ck_assert_uint_eq(old.struct_size, sizeof old);
  ck_assert_int_eq(old.a, 1);
  ck_assert_int_eq(old.b, 2);
  v2 o;
  ck_assert_int_eq(
      tc__options_init(&o, sizeof o + 8, &v2_defaults, sizeof o, min, "f"),
      TC_EVERSION);
  ck_assert_int_eq(
      tc__options_init(&o, min - 1, &v2_defaults, sizeof o, min, "f"),
      TC_EINVAL);
}
END_TEST

/* The public functions refuse a struct_size below the first release's. */
START_TEST(test_public_minimum) {
  tc_sgd_options so;
  ck_assert_int_eq(tc_sgd_options_init(&so, TC__SIZE0_SGD_OPTIONS - 1),
                   TC_EINVAL);
  ck_assert_int_eq(tc_sgd_options_init(&so, sizeof so), TC_OK);
  tc_backend_options bo;
  ck_assert_int_eq(tc_backend_options_init(&bo, sizeof(size_t)), TC_EINVAL);
  ck_assert_int_eq(tc_backend_options_init(&bo, sizeof bo), TC_OK);
  tc_backend *be = NULL;
  bo.struct_size = sizeof(size_t);
  ck_assert_int_eq(tc_backend_create_ex(&be, "cpu", &bo), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "not initialised?"));
  ck_assert_ptr_null(be);
  tc_conv2d_options co;
  ck_assert_int_eq(tc_conv2d_options_init(&co, sizeof(size_t)), TC_EINVAL);
  tc_progress_options po;
  ck_assert_int_eq(tc_progress_options_init(&po, sizeof(size_t)), TC_EINVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("options");
  tcase_add_test(tc, test_first_release_sizes);
  tcase_add_test(tc, test_accept);
  tcase_add_test(tc, test_init);
  tcase_add_test(tc, test_public_minimum);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
