/*
 * test_version.c - version macros agree with the library, status names and
 * per-thread error messages, log callback plumbing.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

START_TEST(test_version_matches) {
  ck_assert_int_eq(tc_version_number(), TC_VERSION_NUMBER);
  ck_assert_str_eq(tc_version(), TC_VERSION_STRING);
  char buf[32];
  snprintf(buf, sizeof buf, "%d.%d.%d", TC_VERSION_MAJOR, TC_VERSION_MINOR,
           TC_VERSION_PATCH);
  ck_assert_str_eq(buf, TC_VERSION_STRING);
}
END_TEST

START_TEST(test_status_strings) {
  ck_assert_str_eq(tc_status_string(TC_OK), "TC_OK");
  ck_assert_str_eq(tc_status_string(TC_ENOMEM), "TC_ENOMEM");
  ck_assert_str_eq(tc_status_string(TC_ESTATE), "TC_ESTATE");
  ck_assert_ptr_nonnull(tc_status_string((tc_status)-999));
  for (int s = 0; s >= -11; s--)
    ck_assert_str_ne(tc_status_string((tc_status)s), "TC_E(unknown)");
}
END_TEST

static void *other_thread(void *arg) {
  (void)arg;
  /* a fresh thread has no message, whatever the main thread recorded */
  const char *m = tc_last_error();
  int empty = m != NULL && m[0] == '\0';
  tc_tensor *t = NULL;
  tc_tensor_create(&t, NULL, NULL, 0, TC_FLOAT32);
  int set = strstr(tc_last_error(), "tc_tensor_create") != NULL;
  return (void *)(intptr_t)(empty && set);
}

START_TEST(test_error_is_per_thread) {
  tc_clear_error();
  ck_assert_str_eq(tc_last_error(), "");
  ck_assert_int_eq(tc_set_num_threads(-3), TC_EINVAL);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "tc_set_num_threads"));
  pthread_t th;
  void *ok = NULL;
  ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
  pthread_join(th, &ok);
  ck_assert(ok != NULL);
  /* this thread's message is untouched by the other thread */
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "tc_set_num_threads"));
}
END_TEST

START_TEST(test_threads_and_seed) {
  ck_assert_int_eq(tc_set_num_threads(3), TC_OK);
  ck_assert_int_eq(tc_get_num_threads(), 3);
  ck_assert_int_eq(tc_set_num_threads(0), TC_OK);
  ck_assert_int_ge(tc_get_num_threads(), 1);
  ck_assert_int_eq(tc_set_num_threads(100000), TC_EINVAL);
  tc_set_seed(0xfeedfacecafebeefull);
  ck_assert(tc_get_seed() == 0xfeedfacecafebeefull);
}
END_TEST

static int log_calls;
static void on_log(void *user, tc_log_level level, const char *msg) {
  (void)level;
  (void)msg;
  (*(int *)user)++;
}

START_TEST(test_log_callback_is_optional) {
  /* the library is silent without a callback and never crashes with one */
  tc_set_log_callback(on_log, &log_calls);
  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  tc_backend_destroy(be);
  tc_set_log_callback(NULL, NULL);
  ck_assert_int_ge(log_calls, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("version");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_version_matches);
  tcase_add_test(tc, test_status_strings);
  tcase_add_test(tc, test_error_is_per_thread);
  tcase_add_test(tc, test_threads_and_seed);
  tcase_add_test(tc, test_log_callback_is_optional);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
