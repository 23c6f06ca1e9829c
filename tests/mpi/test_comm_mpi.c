/*
 * test_comm_mpi.c - the MPI communicator (libtinycnn-mpi) through the
 * public tc_comm_* API. Run under `mpirun -np 2` with CK_FORK=no: every
 * rank runs every test in the same order, so a test's collectives match
 * across ranks (a test must not skip one on some rank only).
 *
 * `test_comm_mpi early-exit` and `test_comm_mpi abort` are not Check
 * suites: they make one rank leave mid-job (exit(3) before a collective,
 * or tc_comm_abort()), for tests/mpi/early_exit.sh, which checks that the
 * job ends with a failure instead of hanging.
 */
#include <check.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tinycnn_mpi.h"

static tc_comm *g_comm; /* over MPI_COMM_WORLD, for the whole run */

START_TEST(test_size_rank) {
  int world_rank, world_size;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  ck_assert_int_eq(tc_comm_size(g_comm), world_size);
  ck_assert_int_eq(tc_comm_size(g_comm), 2);
  ck_assert_int_eq(tc_comm_rank(g_comm), world_rank);
  ck_assert_str_eq(tc_comm_name(g_comm), "mpi");
}
END_TEST

/* buf[i] = (rank + 1) * (i + 1): the sum over 2 ranks is 3 * (i + 1) */
static void fill_ranked(float *buf, size_t n, int rank) {
  for (size_t i = 0; i < n; i++)
    buf[i] = (float)((rank + 1) * (int)(i + 1));
}

static void check_sum(const float *buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    ck_assert_float_eq(buf[i], (float)(3 * (int)(i + 1)));
}

START_TEST(test_allreduce) {
  float buf[1000];
  fill_ranked(buf, 1000, tc_comm_rank(g_comm));
  ck_assert_int_eq(tc_comm_allreduce_sum(g_comm, buf, 1000), TC_OK);
  check_sum(buf, 1000);
  ck_assert_int_eq(tc_comm_allreduce_sum(g_comm, NULL, 0), TC_OK);
  ck_assert_int_eq(tc_comm_allreduce_sum(g_comm, NULL, 4), TC_EINVAL);
}
END_TEST

START_TEST(test_broadcast_root1) {
  int rank = tc_comm_rank(g_comm);
  unsigned char buf[777];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = rank == 1 ? (unsigned char)(i * 7 + 1) : 0;
  ck_assert_int_eq(tc_comm_broadcast(g_comm, buf, sizeof buf, 1), TC_OK);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], (unsigned char)(i * 7 + 1));
  ck_assert_int_eq(tc_comm_broadcast(g_comm, buf, sizeof buf, 2), TC_EINVAL);
  ck_assert_int_eq(tc_comm_broadcast(g_comm, buf, sizeof buf, -1), TC_EINVAL);
}
END_TEST

START_TEST(test_allgather_order) {
  int rank = tc_comm_rank(g_comm);
  int32_t send[3] = {rank * 10, rank * 10 + 1, rank * 10 + 2};
  int32_t recv[6] = {-1, -1, -1, -1, -1, -1};
  ck_assert_int_eq(tc_comm_allgather(g_comm, send, recv, sizeof send), TC_OK);
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < 3; k++)
      ck_assert_int_eq(recv[r * 3 + k], r * 10 + k);
  /* in place: this rank's slot of recv is its send buffer */
  int32_t all[6] = {0};
  for (int k = 0; k < 3; k++)
    all[rank * 3 + k] = 100 + rank * 10 + k;
  ck_assert_int_eq(
      tc_comm_allgather(g_comm, all + rank * 3, all, 3 * sizeof(int32_t)),
      TC_OK);
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < 3; k++)
      ck_assert_int_eq(all[r * 3 + k], 100 + r * 10 + k);
  /* overlapping another rank's slot: the library copies first */
  int32_t over[6] = {0};
  for (int k = 0; k < 3; k++)
    over[(1 - rank) * 3 + k] = 200 + rank * 10 + k;
  ck_assert_int_eq(tc_comm_allgather(g_comm, over + (1 - rank) * 3, over,
                                     3 * sizeof(int32_t)),
                   TC_OK);
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < 3; k++)
      ck_assert_int_eq(over[r * 3 + k], 200 + r * 10 + k);
}
END_TEST

START_TEST(test_async) {
  enum { N = 100000 };
  int rank = tc_comm_rank(g_comm);
  float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  fill_ranked(a, N, rank);
  fill_ranked(b, N, rank);
  tc_comm_request *ra = NULL, *rb = NULL;
  ck_assert_int_eq(tc_comm_allreduce_start(g_comm, a, N, &ra), TC_OK);
  ck_assert_int_eq(tc_comm_allreduce_start(g_comm, b, N, &rb), TC_OK);
  ck_assert_ptr_nonnull(ra);
  ck_assert_ptr_nonnull(rb);
  int done = 0;
  time_t t0 = time(NULL);
  while (!done && time(NULL) - t0 < 30)
    ck_assert_int_eq(tc_comm_test(g_comm, ra, &done), TC_OK);
  ck_assert_int_eq(done, 1);
  ck_assert_int_eq(tc_comm_wait(g_comm, ra), TC_OK);
  ck_assert_int_eq(tc_comm_wait(g_comm, rb), TC_OK);
  check_sum(a, N);
  check_sum(b, N);
  /* an empty one */
  tc_comm_request *re = NULL;
  ck_assert_int_eq(tc_comm_allreduce_start(g_comm, NULL, 0, &re), TC_OK);
  ck_assert_int_eq(tc_comm_test(g_comm, re, &done), TC_OK);
  ck_assert_int_eq(done, 1);
  ck_assert_int_eq(tc_comm_wait(g_comm, re), TC_OK);
  free(a);
  free(b);
}
END_TEST

START_TEST(test_barrier) {
  ck_assert_int_eq(tc_comm_barrier(g_comm), TC_OK);
  ck_assert_int_eq(tc_comm_barrier(NULL), TC_EINVAL);
}
END_TEST

/* Sizes over the per-call limit go in pieces: TINYCNN_MPI_MAX_COUNT makes
 * the limit 3 elements, so small buffers take the piecewise paths. */
START_TEST(test_pieces) {
  int rank = tc_comm_rank(g_comm);
  setenv("TINYCNN_MPI_MAX_COUNT", "3", 1);
  tc_comm *c = NULL;
  tc_status st = tc_comm_create_mpi(&c, NULL);
  unsetenv("TINYCNN_MPI_MAX_COUNT");
  ck_assert_int_eq(st, TC_OK);

  float f[10];
  fill_ranked(f, 10, rank);
  ck_assert_int_eq(tc_comm_allreduce_sum(c, f, 10), TC_OK);
  check_sum(f, 10);

  fill_ranked(f, 10, rank);
  tc_comm_request *r = NULL;
  ck_assert_int_eq(tc_comm_allreduce_start(c, f, 10, &r), TC_OK);
  ck_assert_int_eq(tc_comm_wait(c, r), TC_OK);
  check_sum(f, 10);

  unsigned char bytes[10];
  for (int i = 0; i < 10; i++)
    bytes[i] = rank == 1 ? (unsigned char)(50 + i) : 0;
  ck_assert_int_eq(tc_comm_broadcast(c, bytes, 10, 1), TC_OK);
  for (int i = 0; i < 10; i++)
    ck_assert_uint_eq(bytes[i], 50 + i);

  unsigned char send[7], recv[14];
  for (int i = 0; i < 7; i++)
    send[i] = (unsigned char)(rank * 100 + i);
  memset(recv, 0xff, sizeof recv);
  ck_assert_int_eq(tc_comm_allgather(c, send, recv, 7), TC_OK);
  for (int q = 0; q < 2; q++)
    for (int i = 0; i < 7; i++)
      ck_assert_uint_eq(recv[q * 7 + i], q * 100 + i);
  /* in place, in pieces */
  memset(recv, 0, sizeof recv);
  for (int i = 0; i < 7; i++)
    recv[rank * 7 + i] = (unsigned char)(rank * 100 + i + 1);
  ck_assert_int_eq(tc_comm_allgather(c, recv + rank * 7, recv, 7), TC_OK);
  for (int q = 0; q < 2; q++)
    for (int i = 0; i < 7; i++)
      ck_assert_uint_eq(recv[q * 7 + i], q * 100 + i + 1);
  tc_comm_destroy(c);
}
END_TEST

START_TEST(test_options) {
  tc_mpi_options o;
  ck_assert_int_eq(tc_mpi_options_init(&o, sizeof o), TC_OK);
  ck_assert_uint_eq(o.struct_size, sizeof o);
  ck_assert_ptr_null(o.mpi_comm);
  ck_assert_int_eq(o.init_mpi, 1);
  ck_assert_uint_eq(sizeof(tc_mpi_options), 24); /* pinned (64-bit) */
  ck_assert_int_eq(tc_mpi_options_init(&o, sizeof o + 8), TC_EVERSION);
  ck_assert_int_eq(tc_mpi_options_init(&o, 2), TC_EINVAL);
  ck_assert_int_eq(tc_mpi_options_init(NULL, sizeof o), TC_EINVAL);
  ck_assert_str_ne(tc_last_error(), "");

  tc_comm *c = NULL;
  ck_assert_int_eq(tc_comm_create_mpi(NULL, NULL), TC_EINVAL);
  tc_mpi_options big = TC_MPI_OPTIONS_INIT;
  big.struct_size = sizeof big + 8;
  ck_assert_int_eq(tc_comm_create_mpi(&c, &big), TC_EVERSION);
  tc_mpi_options bad = TC_MPI_OPTIONS_INIT;
  bad.init_mpi = 7;
  ck_assert_int_eq(tc_comm_create_mpi(&c, &bad), TC_EINVAL);
  ck_assert_ptr_null(c);

  /* an older, smaller struct: the rest by default */
  tc_mpi_options old = TC_MPI_OPTIONS_INIT;
  old.struct_size = sizeof(size_t);
  ck_assert_int_eq(tc_comm_create_mpi(&c, &old), TC_OK);
  ck_assert_int_eq(tc_comm_size(c), 2);
  tc_comm_destroy(c);

  /* a given MPI communicator (each rank alone), MPI already running */
  MPI_Comm self = MPI_COMM_SELF;
  tc_mpi_options mine = TC_MPI_OPTIONS_INIT;
  mine.mpi_comm = &self;
  mine.init_mpi = 0;
  c = NULL;
  ck_assert_int_eq(tc_comm_create_mpi(&c, &mine), TC_OK);
  ck_assert_int_eq(tc_comm_size(c), 1);
  ck_assert_int_eq(tc_comm_rank(c), 0);
  float x[2] = {1.5f, 2.5f};
  ck_assert_int_eq(tc_comm_allreduce_sum(c, x, 2), TC_OK);
  ck_assert_float_eq(x[0], 1.5f);
  ck_assert_float_eq(x[1], 2.5f);
  tc_comm_destroy(c);
  /* destroying it neither ended MPI nor disturbed the main one */
  int finalized = 1;
  MPI_Finalized(&finalized);
  ck_assert_int_eq(finalized, 0);
  ck_assert_int_eq(tc_comm_barrier(g_comm), TC_OK);
}
END_TEST

START_TEST(test_local_rank) {
  int lr = -1;
  ck_assert_int_eq(tc_mpi_local_rank(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_mpi_local_rank(&lr), TC_OK);
  /* both ranks share this node: local ranks 0 and 1, one each */
  int all[2] = {-1, -1};
  ck_assert_int_eq(tc_comm_allgather(g_comm, &lr, all, sizeof lr), TC_OK);
  ck_assert_int_eq(all[0] + all[1], 1);
  ck_assert_int_eq(all[0] * all[1], 0);
}
END_TEST

/* The error path: MPI's message comes back with TC_EBACKEND. A broadcast
 * of more bytes from the root than the other rank takes is MPI_ERR_TRUNCATE
 * on that rank under MPI_ERRORS_RETURN, in Open MPI and MPICH alike. */
START_TEST(test_error_message) {
  int rank = tc_comm_rank(g_comm);
  unsigned char buf[8] = {0};
  tc_status st = tc_comm_broadcast(g_comm, buf, rank == 0 ? 8 : 4, 0);
  if (rank == 1) {
    ck_assert_int_eq(st, TC_EBACKEND);
    ck_assert_ptr_nonnull(strstr(tc_last_error(), "MPI_Bcast"));
    fprintf(stderr, "rank 1: expected error: %s\n", tc_last_error());
  }
  ck_assert_int_eq(tc_comm_barrier(g_comm), TC_OK);
}
END_TEST

static Suite *mpi_suite(void) {
  Suite *s = suite_create("comm_mpi");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_size_rank);
  tcase_add_test(tc, test_allreduce);
  tcase_add_test(tc, test_broadcast_root1);
  tcase_add_test(tc, test_allgather_order);
  tcase_add_test(tc, test_async);
  tcase_add_test(tc, test_barrier);
  tcase_add_test(tc, test_pieces);
  tcase_add_test(tc, test_options);
  tcase_add_test(tc, test_local_rank);
  tcase_add_test(tc, test_error_message);
  suite_add_tcase(s, tc);
  return s;
}

/* One rank leaves while the other waits in a collective. */
static int leave_early(const char *how) {
  tc_comm *c = NULL;
  if (tc_comm_create_mpi(&c, NULL) != TC_OK) {
    fprintf(stderr, "tc_comm_create_mpi: %s\n", tc_last_error());
    return 2;
  }
  float x[4] = {1, 2, 3, 4};
  /* the driver looks for these lines: the job started, rank 1 left */
  fprintf(stderr, "rank %d: %s\n", tc_comm_rank(c),
          tc_comm_rank(c) == 1 ? "leaving" : "entering the all-reduce");
  fflush(stderr);
  if (tc_comm_rank(c) == 1) {
    if (strcmp(how, "abort") == 0) {
      tc_comm_abort(c, 5);
      return 6; /* not reached */
    }
    exit(3); /* no MPI_Finalize, peers never hear from it again */
  }
  tc_status st = tc_comm_allreduce_sum(c, x, 4);
  /* not expected to get here: the launcher ends this rank */
  fprintf(stderr, "rank 0: allreduce returned %d (%s)\n", (int)st,
          tc_last_error());
  tc_comm_destroy(c);
  return 4;
}

int main(int argc, char **argv) {
  if (argc > 1)
    return leave_early(argv[1]);
  if (tc_comm_create_mpi(&g_comm, NULL) != TC_OK) {
    fprintf(stderr, "tc_comm_create_mpi: %s\n", tc_last_error());
    return 1;
  }
  SRunner *sr = srunner_create(mpi_suite());
  srunner_set_fork_status(sr, CK_NOFORK);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  tc_comm_destroy(g_comm); /* the last one: MPI_Finalize */
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    fprintf(stderr, "MPI was not finalized by the last destroy\n");
    failed++;
  }
  return failed ? 1 : 0;
}
