/*
 * test_trainer_args.c - the bundled trainers' command line
 * (examples/common/args.c): values that used to be accepted and then mean
 * something else (an epoch count cut to int, an lr rounded to 0.0f, a
 * milestone list cut at 64 bytes, an option taken as a file name) are
 * refused or read exactly. Exit codes and messages of whole runs are in
 * tests/e2e/trainers.sh.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../examples/common/args.h"

/* Parses a NULL-terminated option list for `kind`, stderr silenced. */
static int parse_v(train_args *a, trainer_kind kind, const char *const *opts) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)"prog";
  for (; *opts && argc < 31; opts++)
    argv[argc++] = (char *)*opts;
  argv[argc] = NULL;
  fflush(stderr);
  FILE *saved = freopen("/dev/null", "w", stderr);
  (void)saved;
  return args_parse(a, kind, argc, argv);
}

#define PARSE(kind, ...)                                                       \
  parse_v(&a, (kind), (const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_steps_and_milestones) {
  train_args a;
  ck_assert_int_eq(
      PARSE(TRAINER_RESNET, "--data", "d", "--steps", "4294967297"), 0);
  ck_assert_int_eq(a.steps, 4294967297LL); /* checked against epochs later */
  ck_assert_int_eq(
      PARSE(TRAINER_RESNET, "--data", "d", "--steps", "1099511627777"), -1);
  /* longer than any fixed buffer: read exactly, not cut */
  char ms[128] = "1,";
  memset(ms + 2, '0', 60);
  strcpy(ms + 62, "2000");
  ck_assert_int_eq(PARSE(TRAINER_RESNET, "--data", "d", "--milestones", ms), 0);
  ck_assert_int_eq(a.milestones[0], 1);
  ck_assert_int_eq(a.milestones[1], 2000);
  const char *badms[] = {"1,", ",2", "1,2,3", "2,1", "1x,2", "0,5", "1,2x"};
  for (size_t i = 0; i < sizeof badms / sizeof *badms; i++)
    ck_assert_int_eq(
        PARSE(TRAINER_RESNET, "--data", "d", "--milestones", badms[i]), -1);
}
END_TEST

START_TEST(test_float_settings) {
  train_args a;
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--lr", "1e-50"), -1);
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--lr", "1e-39"), -1); /* subnormal */
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--wd", "1e-45"), -1);
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--momentum", "1e-40"), -1);
  ck_assert_int_eq(
      PARSE(TRAINER_LENET, "--lr", "1e-30", "--wd", "0", "--momentum", "0"), 0);
  ck_assert(a.lr == 1e-30 && a.wd == 0 && a.momentum == 0);
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--lr", "0"), -1);
}
END_TEST

START_TEST(test_paths) {
  train_args a;
  const char *opts[] = {"--save", "--checkpoint", "--resume",
                        "--load", "--logdir",     "--data"};
  for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
    ck_assert_int_eq(PARSE(TRAINER_LENET, opts[i], "--quiet"), -1);
    ck_assert_int_eq(PARSE(TRAINER_LENET, opts[i], ""), -1);
  }
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--save", "./--quiet"), 0);
  ck_assert_str_eq(a.save, "./--quiet");
  ck_assert_int_eq(a.quiet, 0);
  /* a name that merely starts with one dash is a file */
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--save", "-x"), 0);
}
END_TEST

START_TEST(test_data_defaults) {
  train_args a;
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--epochs", "1"), 0);
  ck_assert_str_eq(a.data_dir, "/usr/share/datasets/fashion-mnist");
  /* no default folder for MNIST: none exists on a user's machine */
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--dataset", "mnist"), -1);
  ck_assert_int_eq(PARSE(TRAINER_RESNET, "--dataset", "mnist"), -1);
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--dataset", "mnist", "--data", "m"),
                   0);
  ck_assert_str_eq(a.data_dir, "m");
  ck_assert_int_eq(PARSE(TRAINER_RESNET, "--data", "c"), 0);
  ck_assert_int_eq(PARSE(TRAINER_RESNET, "--data", "c", "--depth", "1202"), 0);
  ck_assert_int_eq(PARSE(TRAINER_RESNET, "--depth", "1208"), -1);
  ck_assert_int_eq(PARSE(TRAINER_LENET, "--val-split", "0"), 0);
  ck_assert(a.val_split == 0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("trainer_args");
  TCase *tc = tcase_create("args");
  tcase_add_test(tc, test_steps_and_milestones);
  tcase_add_test(tc, test_float_settings);
  tcase_add_test(tc, test_paths);
  tcase_add_test(tc, test_data_defaults);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
