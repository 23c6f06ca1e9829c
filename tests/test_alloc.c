/*
 * test_alloc.c - the pluggable allocator: every allocation of the library
 * goes through it, option-struct size rules, and backend creation under
 * failing allocations (no leak, an error, never a crash).
 */
#include <string.h>

#include "testutil.h"

START_TEST(test_allocator_struct_rules) {
  tc_allocator a = {0};
  ck_assert_int_eq(tc_set_allocator(&a), TC_EINVAL);
  tu_alloc_install();
  tc_allocator big;
  memset(&big, 0, sizeof big);
  big.struct_size = sizeof big + 8;
  ck_assert_int_eq(tc_set_allocator(&big), TC_EVERSION);
  tu_alloc_uninstall();
  ck_assert_int_eq(tc_set_allocator(NULL), TC_OK);
}
END_TEST

START_TEST(test_all_memory_goes_through_allocator) {
  tu_alloc_install();
  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  ck_assert_int_gt(tu_alloc_live(), 0);
  long before = tu_alloc_live();
  int64_t shape[2] = {64, 64};
  tc_tensor *t = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_gt(tu_alloc_live(), before);
  ck_assert_int_eq((uintptr_t)tc_tensor_data(t) % 64, 0);
  tc_tensor_destroy(t);
  tc_backend_destroy(be);
  ck_assert_int_eq(tu_alloc_live(), 0);
  tu_alloc_uninstall();
}
END_TEST

static void backend_fault_loop(int persistent) {
  tu_alloc_install();
  for (long k = 1;; k++) {
    tc_backend *be = NULL;
    tu_alloc_fail_at(k, persistent);
    tc_status st = tc_backend_create(&be, "cpu");
    int reached = tu_alloc_failed();
    tu_alloc_fail_at(0, 0);
    if (!reached) {
      ck_assert_int_eq(st, TC_OK);
      tc_backend_destroy(be);
      break;
    }
    ck_assert_int_eq(st, TC_ENOMEM);
    ck_assert_ptr_null(be);
    ck_assert_str_ne(tc_last_error(), "");
    ck_assert_int_eq(tu_alloc_live(), 0);
  }
  ck_assert_int_eq(tu_alloc_live(), 0);
  tu_alloc_uninstall();
}

START_TEST(test_backend_create_faults_once) {
  backend_fault_loop(0);
}
END_TEST
START_TEST(test_backend_create_faults_persistent) {
  backend_fault_loop(1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("alloc");
  TCase *tc = tcase_create("allocator");
  tcase_add_test(tc, test_allocator_struct_rules);
  tcase_add_test(tc, test_all_memory_goes_through_allocator);
  tcase_add_test(tc, test_backend_create_faults_once);
  tcase_add_test(tc, test_backend_create_faults_persistent);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
