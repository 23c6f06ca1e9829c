/*
 * test_tensor.c - the tensor API: creation, shapes, views, copies, fill, and
 * every error path (NULL, bad shapes, bad sizes, failing allocations).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static tc_backend *be;

static void setup(void) {
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
}
static void teardown(void) {
  tc_backend_destroy(be);
  be = NULL;
}

START_TEST(test_create_query_destroy) {
  int64_t shape[4] = {2, 3, 4, 5};
  tc_tensor *t = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 4, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_ndim(t), 4);
  ck_assert_int_eq(tc_tensor_numel(t), 120);
  ck_assert_int_eq(tc_tensor_dim(t, 1), 3);
  ck_assert_int_eq(tc_tensor_dim(t, -1), 5);
  ck_assert_int_eq(tc_tensor_dim(t, 4), -1);
  ck_assert_int_eq(tc_tensor_dim(t, -5), -1);
  int64_t got[TC_MAX_DIMS];
  ck_assert_int_eq(tc_tensor_shape(t, got), 4);
  ck_assert_mem_eq(got, shape, sizeof shape);
  ck_assert_int_eq(tc_tensor_dtype(t), TC_FLOAT32);
  ck_assert_ptr_eq(tc_tensor_backend(t), be);
  float buf[120];
  ck_assert_int_eq(tc_tensor_copy_to_host(t, buf, sizeof buf), TC_OK);
  for (int i = 0; i < 120; i++)
    ck_assert(buf[i] == 0.f); /* created zero-filled */
  tc_tensor_destroy(t);
  tc_tensor_destroy(NULL);
}
END_TEST

START_TEST(test_scalar_and_zero_size) {
  tc_tensor *s = NULL, *z = NULL;
  ck_assert_int_eq(tc_tensor_create(&s, be, NULL, 0, TC_INT64), TC_OK);
  ck_assert_int_eq(tc_tensor_numel(s), 1);
  ck_assert_int_eq(tc_tensor_fill(s, 123456789012.0), TC_OK);
  int64_t v = 0;
  ck_assert_int_eq(tc_tensor_copy_to_host(s, &v, sizeof v), TC_OK);
  ck_assert(v == 123456789012LL);
  int64_t shape[2] = {0, 7};
  ck_assert_int_eq(tc_tensor_create(&z, be, shape, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_numel(z), 0);
  ck_assert_int_eq(tc_tensor_fill(z, 1.0), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(z, &v, 0), TC_OK);
  tc_tensor_destroy(s);
  tc_tensor_destroy(z);
}
END_TEST

START_TEST(test_copy_fill_roundtrip) {
  int64_t shape[2] = {3, 7};
  tc_tensor *a = NULL, *b = NULL, *l = NULL;
  ck_assert_int_eq(tc_tensor_create(&a, be, shape, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&b, be, shape, 2, TC_FLOAT32), TC_OK);
  float src[21], dst[21];
  tu_fill_uniform(src, 21, 5, -2.f, 2.f);
  ck_assert_int_eq(tc_tensor_copy_from_host(a, src, sizeof src), TC_OK);
  ck_assert_int_eq(tc_tensor_copy(b, a), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(b, dst, sizeof dst), TC_OK);
  ck_assert_mem_eq(src, dst, sizeof src);
  ck_assert_int_eq(tc_tensor_fill(b, -0.25), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(b, dst, sizeof dst), TC_OK);
  for (int i = 0; i < 21; i++)
    ck_assert(dst[i] == -0.25f);
  /* int32 fill keeps exact integers */
  ck_assert_int_eq(tc_tensor_create(&l, be, shape, 1, TC_INT32), TC_OK);
  ck_assert_int_eq(tc_tensor_fill(l, 16777217.0), TC_OK);
  int32_t lab[3];
  ck_assert_int_eq(tc_tensor_copy_to_host(l, lab, sizeof lab), TC_OK);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(lab[i], 16777217);
  ck_assert_int_eq(tc_tensor_fill(l, 1e12), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_fill(l, NAN), TC_EINVAL);
  /* dtype mismatch */
  ck_assert_int_eq(tc_tensor_copy(l, a), TC_ESHAPE);
  tc_tensor_destroy(a);
  tc_tensor_destroy(b);
  tc_tensor_destroy(l);
}
END_TEST

START_TEST(test_view_and_reshape_share_storage) {
  int64_t shape[4] = {2, 3, 2, 2}, flat[1] = {24}, bad[1] = {25};
  tc_tensor *t = NULL, *v = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 4, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_view(&v, t, flat, 1), TC_OK);
  ck_assert_int_eq(tc_tensor_ndim(v), 1);
  ck_assert_ptr_eq(tc_tensor_data(v), tc_tensor_data(t));
  float one[24];
  for (int i = 0; i < 24; i++)
    one[i] = (float)i;
  ck_assert_int_eq(tc_tensor_copy_from_host(v, one, sizeof one), TC_OK);
  float back[24];
  ck_assert_int_eq(tc_tensor_copy_to_host(t, back, sizeof back), TC_OK);
  ck_assert_mem_eq(one, back, sizeof one);
  /* the view outlives the original handle */
  tc_tensor_destroy(t);
  ck_assert_int_eq(tc_tensor_copy_to_host(v, back, sizeof back), TC_OK);
  ck_assert_mem_eq(one, back, sizeof one);
  tc_tensor *w = NULL;
  ck_assert_int_eq(tc_tensor_view(&w, v, bad, 1), TC_ESHAPE);
  ck_assert_ptr_null(w);
  ck_assert_str_ne(tc_last_error(), "");
  ck_assert_int_eq(tc_tensor_reshape(v, shape, 4), TC_OK);
  ck_assert_int_eq(tc_tensor_dim(v, 1), 3);
  ck_assert_int_eq(tc_tensor_reshape(v, bad, 1), TC_ESHAPE);
  ck_assert_int_eq(tc_tensor_dim(v, 1), 3); /* unchanged after failure */
  tc_tensor_destroy(v);
}
END_TEST

START_TEST(test_bad_arguments) {
  int64_t shape[2] = {2, 2}, neg[2] = {2, -1},
          huge[3] = {1LL << 30, 1LL << 30, 1LL << 30};
  int64_t six[6] = {1, 1, 1, 1, 1, 1};
  tc_tensor *t = NULL;
  tc_clear_error();
  ck_assert_int_eq(tc_tensor_create(NULL, be, shape, 2, TC_FLOAT32), TC_EINVAL);
  ck_assert_msg(strstr(tc_last_error(), "tc_tensor_create"), "%s",
                tc_last_error());
  ck_assert_int_eq(tc_tensor_create(&t, NULL, shape, 2, TC_FLOAT32), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_create(&t, be, NULL, 2, TC_FLOAT32), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_create(&t, be, neg, 2, TC_FLOAT32), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_create(&t, be, six, 6, TC_FLOAT32), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, -1, TC_FLOAT32), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_create(&t, be, huge, 3, TC_FLOAT32), TC_ESHAPE);
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 2, (tc_dtype)99), TC_EINVAL);
  ck_assert_ptr_null(t);
  /* absurd but representable size: the allocation fails cleanly */
  int64_t big[2] = {1LL << 24, 1LL << 24};
  ck_assert_int_eq(tc_tensor_create(&t, be, big, 2, TC_FLOAT32), TC_ENOMEM);
  ck_assert_ptr_null(t);
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 2, TC_FLOAT32), TC_OK);
  float buf[4];
  ck_assert_int_eq(tc_tensor_copy_from_host(t, NULL, 16), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_copy_from_host(t, buf, 15), TC_ESHAPE);
  ck_assert_int_eq(tc_tensor_copy_to_host(t, buf, 17), TC_ESHAPE);
  ck_assert_int_eq(tc_tensor_copy_to_host(NULL, buf, 16), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_copy_from_host(NULL, buf, 16), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_copy(NULL, t), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_copy(t, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_fill(NULL, 0), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_view(NULL, t, shape, 2), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_reshape(NULL, shape, 2), TC_EINVAL);
  ck_assert_int_eq(tc_tensor_ndim(NULL), -1);
  ck_assert_int_eq(tc_tensor_numel(NULL), -1);
  int64_t dims[TC_MAX_DIMS];
  ck_assert_int_eq(tc_tensor_shape(NULL, dims), -1);
  ck_assert_ptr_null(tc_tensor_backend(NULL));
  ck_assert_ptr_null(tc_tensor_data(NULL));
  tc_tensor_destroy(t);
}
END_TEST

/* SQLite-style: fail the k-th allocation for every k; no leak, no output. */
static void fault_loop(int persistent) {
  tu_alloc_install();
  tc_backend *b = NULL;
  ck_assert_int_eq(tc_backend_create(&b, "cpu"), TC_OK);
  long base = tu_alloc_live();
  int64_t shape[3] = {4, 5, 6}, flat[2] = {20, 6};
  for (long k = 1;; k++) {
    tc_tensor *t = NULL, *v = NULL;
    tu_alloc_fail_at(k, persistent);
    tc_status st = tc_tensor_create(&t, b, shape, 3, TC_FLOAT32);
    if (st == TC_OK)
      st = tc_tensor_view(&v, t, flat, 2);
    int reached = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (!reached) {
      ck_assert_int_eq(st, TC_OK);
      tc_tensor_destroy(v);
      tc_tensor_destroy(t);
      ck_assert_int_eq(tu_alloc_live(), base);
      break;
    }
    ck_assert_int_eq(st, TC_ENOMEM);
    ck_assert_str_ne(tc_last_error(), "");
    ck_assert_ptr_null(v);
    tc_tensor_destroy(t);
    ck_assert_int_eq(tu_alloc_live(), base);
    ck_assert_int_lt(k, 100);
  }
  tc_backend_destroy(b);
  ck_assert_int_eq(tu_alloc_live(), 0);
  tu_alloc_uninstall();
}

START_TEST(test_fault_injection_once) {
  fault_loop(0);
}
END_TEST
START_TEST(test_fault_injection_persistent) {
  fault_loop(1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("tensor");
  TCase *tc = tcase_create("api");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_create_query_destroy);
  tcase_add_test(tc, test_scalar_and_zero_size);
  tcase_add_test(tc, test_copy_fill_roundtrip);
  tcase_add_test(tc, test_view_and_reshape_share_storage);
  tcase_add_test(tc, test_bad_arguments);
  suite_add_tcase(s, tc);
  TCase *f = tcase_create("faults");
  tcase_add_test(f, test_fault_injection_once);
  tcase_add_test(f, test_fault_injection_persistent);
  suite_add_tcase(s, f);
  return tu_run_suite(s);
}
