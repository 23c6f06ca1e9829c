/*
 * test_rng.c - Philox4x32-10 against Random123's known-answer vectors, and
 * the stream type's determinism and distribution.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include <libtinycnn.h>

static void kat(const uint32_t c[4], const uint32_t k[2], const uint32_t e[4]) {
  uint32_t out[4];
  tc_philox4x32_10(c, k, out);
  for (int i = 0; i < 4; i++)
    ck_assert_msg(out[i] == e[i], "word %d: got %08x expected %08x", i, out[i],
                  e[i]);
}

START_TEST(test_philox_kat_zero) {
  uint32_t c[4] = {0, 0, 0, 0}, k[2] = {0, 0};
  uint32_t e[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
  kat(c, k, e);
}
END_TEST

START_TEST(test_philox_kat_ones) {
  uint32_t c[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
  uint32_t k[2] = {0xffffffff, 0xffffffff};
  uint32_t e[4] = {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd};
  kat(c, k, e);
}
END_TEST

START_TEST(test_philox_kat_pi) {
  uint32_t c[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344};
  uint32_t k[2] = {0xa4093822, 0x299f31d0};
  uint32_t e[4] = {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1};
  kat(c, k, e);
}
END_TEST

START_TEST(test_stream_is_philox) {
  /* offset i of stream (seed, s) is word i%4 of block i/4 */
  tc_rng r;
  tc_rng_init(&r, 0xa4093822299f31d0ull, 7);
  uint32_t k[2] = {0x299f31d0, 0xa4093822};
  for (uint32_t block = 0; block < 3; block++) {
    uint32_t c[4] = {block, 0, 7, 0}, out[4];
    tc_philox4x32_10(c, k, out);
    for (int w = 0; w < 4; w++)
      ck_assert_uint_eq(tc_rng_next_u32(&r), out[w]);
  }
  ck_assert_uint_eq(r.offset, 12);
}
END_TEST

START_TEST(test_stream_resume) {
  tc_rng a, b;
  tc_rng_init(&a, 42, TC_RNG_STREAM_SHUFFLE);
  for (int i = 0; i < 37; i++)
    tc_rng_next_u32(&a);
  b = a; /* a saved position continues the same sequence */
  for (int i = 0; i < 100; i++)
    ck_assert_uint_eq(tc_rng_next_u32(&a), tc_rng_next_u32(&b));
  tc_rng c;
  tc_rng_init(&c, 42, TC_RNG_STREAM_AUGMENT);
  int same = 0;
  for (int i = 0; i < 100; i++)
    same += tc_rng_next_u32(&a) == tc_rng_next_u32(&c);
  ck_assert_int_lt(same, 3);
}
END_TEST

START_TEST(test_uniform_normal_moments) {
  tc_rng r;
  tc_rng_init(&r, 1, TC_RNG_STREAM_USER);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; i++) {
    float u = tc_rng_uniform(&r);
    ck_assert(u >= 0.f && u < 1.f);
    su += u;
    float z = tc_rng_normal(&r);
    ck_assert(isfinite(z));
    sn += z;
    sn2 += (double)z * z;
  }
  ck_assert_double_eq_tol(su / n, 0.5, 0.005);
  ck_assert_double_eq_tol(sn / n, 0.0, 0.01);
  ck_assert_double_eq_tol(sn2 / n, 1.0, 0.02);
}
END_TEST

START_TEST(test_below_range_and_spread) {
  tc_rng r;
  tc_rng_init(&r, 3, TC_RNG_STREAM_USER);
  int hist[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint64_t v = tc_rng_below(&r, 7);
    ck_assert_uint_lt(v, 7);
    hist[v]++;
  }
  for (int i = 0; i < 7; i++)
    ck_assert_int_gt(hist[i], 9500);
  ck_assert_uint_eq(tc_rng_below(&r, 1), 0);
  ck_assert_uint_eq(tc_rng_below(&r, 0), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("rng");
  TCase *tc = tcase_create("philox");
  tcase_add_test(tc, test_philox_kat_zero);
  tcase_add_test(tc, test_philox_kat_ones);
  tcase_add_test(tc, test_philox_kat_pi);
  tcase_add_test(tc, test_stream_is_philox);
  tcase_add_test(tc, test_stream_resume);
  tcase_add_test(tc, test_uniform_normal_moments);
  tcase_add_test(tc, test_below_range_and_spread);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
