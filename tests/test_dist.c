/*
 * test_dist.c - communicators (lib/dist/comm.c, comm_local.c), loader
 * shards and the data-parallel wrapper (lib/dist/ddp.c, ddp_det.c).
 *
 * Ranks are threads of one process joined by tc_comm_create_group, each
 * with its own CPU backend, model, loss and optimizer (as separate
 * processes would have). Against one process with the whole batch: the
 * default mode agrees within float rounding (the all-reduce adds the
 * ranks' gradients instead of one sum over the batch); the deterministic
 * mode gives the same bits for 1, 2 and 4 ranks.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_util.h"
#include "testutil.h"

/* ---- communicators ---- */

typedef struct comm_job {
  tc_comm *c;
  int ok;
} comm_job;

static void *comm_thread(void *arg) {
  comm_job *j = arg;
  tc_comm *c = j->c;
  int r = tc_comm_rank(c), n = tc_comm_size(c);
  j->ok = 0;
  float v[3] = {(float)r + 1, 2.f * (float)r, 0.5f};
  if (tc_comm_allreduce_sum(c, v, 3) != TC_OK)
    return NULL;
  float want0 = (float)(n * (n + 1) / 2), want1 = (float)(n * (n - 1));
  if (v[0] != want0 || v[1] != want1 || v[2] != 0.5f * (float)n)
    return NULL;
  int b = r == n - 1 ? 42 : -1;
  if (tc_comm_broadcast(c, &b, sizeof b, n - 1) != TC_OK || b != 42)
    return NULL;
  int64_t mine = 100 + r, all[8];
  if (tc_comm_allgather(c, &mine, all, sizeof mine) != TC_OK)
    return NULL;
  for (int k = 0; k < n; k++)
    if (all[k] != 100 + k)
      return NULL;
  float w[2] = {1.f, (float)r};
  tc_comm_request *req = NULL;
  int done = 0;
  if (tc_comm_allreduce_start(c, w, 2, &req) != TC_OK ||
      tc_comm_test(c, req, &done) != TC_OK || tc_comm_wait(c, req) != TC_OK)
    return NULL;
  if (w[0] != (float)n || w[1] != want1 / 2.f)
    return NULL;
  /* ranks disagreeing on a size: every rank gets the error */
  float z[4] = {0};
  if (tc_comm_allreduce_sum(c, z, r == 0 ? 3 : 4) != TC_EINVAL)
    return NULL;
  if (tc_comm_barrier(c) != TC_OK)
    return NULL;
  j->ok = 1;
  return NULL;
}

START_TEST(t_comm_group) {
  enum { N = 3 };
  tc_comm *c[N];
  NU_OK(tc_comm_create_group(c, N));
  ck_assert_str_eq(tc_comm_name(c[0]), "group");
  pthread_t th[N];
  comm_job j[N];
  for (int r = 0; r < N; r++) {
    ck_assert_int_eq(tc_comm_rank(c[r]), r);
    ck_assert_int_eq(tc_comm_size(c[r]), N);
    j[r].c = c[r];
    pthread_create(&th[r], NULL, comm_thread, &j[r]);
  }
  for (int r = 0; r < N; r++)
    pthread_join(th[r], NULL);
  for (int r = 0; r < N; r++) {
    ck_assert_msg(j[r].ok, "rank %d failed: %s", r, tc_last_error());
    tc_comm_destroy(c[r]);
  }
}
END_TEST

START_TEST(t_comm_local) {
  tc_comm *c;
  NU_OK(tc_comm_create_local(&c));
  ck_assert_int_eq(tc_comm_rank(c), 0);
  ck_assert_int_eq(tc_comm_size(c), 1);
  comm_job j = {c, 0};
  comm_thread(&j);
  ck_assert(!j.ok); /* a single rank cannot disagree on sizes */
  float v = 3.f;
  NU_OK(tc_comm_allreduce_sum(c, &v, 1));
  ck_assert(v == 3.f);
  ck_assert_int_eq(tc_comm_abort(c, 1), TC_EUNSUPPORTED);
  ck_assert_int_eq(tc_comm_broadcast(c, &v, 4, 1), TC_EINVAL);
  ck_assert_int_eq(tc_comm_allreduce_sum(NULL, &v, 1), TC_EINVAL);
  ck_assert_int_eq(tc_comm_rank(NULL), -1);
  tc_comm_destroy(c);
  tc_comm_destroy(NULL);
}
END_TEST

static int destroyed;
static int one(void *ctx) {
  return (void)ctx, 1;
}
static int zero(void *ctx) {
  return (void)ctx, 0;
}
static tc_status nop(void *ctx, const tc_comm_args *a) {
  return (void)ctx, (void)a, TC_OK;
}
static tc_status nop0(void *ctx) {
  return (void)ctx, TC_OK;
}
static void count_destroy(void *ctx) {
  (void)ctx, destroyed++;
}

START_TEST(t_comm_table_checks) {
  tc_comm_iface t = {TC_COMM_API_VERSION,
                     0,
                     sizeof t,
                     "test",
                     zero,
                     one,
                     nop,
                     nop,
                     nop,
                     nop0,
                     NULL,
                     NULL,
                     NULL,
                     NULL,
                     count_destroy,
                     NULL};
  tc_comm *c = NULL;
  destroyed = 0;
  NU_OK(tc_comm_create(&c, &t, NULL));
  float v = 1.f;
  tc_comm_request *r;
  NU_OK(tc_comm_allreduce_start(c, &v, 1, &r)); /* falls back: blocking */
  int done = 0;
  NU_OK(tc_comm_test(c, r, &done));
  ck_assert_int_eq(done, 1);
  NU_OK(tc_comm_wait(c, r));
  tc_comm_destroy(c);
  ck_assert_int_eq(destroyed, 1);
  tc_comm_iface newer = t;
  newer.api_version = TC_COMM_API_VERSION + 1;
  ck_assert_int_eq(tc_comm_create(&c, &newer, NULL), TC_EVERSION);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "API version"));
  ck_assert_int_eq(destroyed, 2); /* the context is owned even on failure */
  tc_comm_iface lacking = t;
  lacking.allgather = NULL;
  ck_assert_int_eq(tc_comm_create(&c, &lacking, NULL), TC_EINVAL);
  tc_comm_iface bad_rank = t;
  bad_rank.rank = one; /* rank 1 of 1 */
  ck_assert_int_eq(tc_comm_create(&c, &bad_rank, NULL), TC_EINVAL);
  ck_assert_int_eq(destroyed, 4);
  tc_comm *g[2];
  ck_assert_int_eq(tc_comm_create_group(g, 0), TC_EINVAL);
}
END_TEST

/* ---- loader shards ---- */

START_TEST(t_loader_shards) {
  enum { NS = 10, B = 4, SH = 3 };
  uint8_t px[NS * 4];
  int32_t lab[NS];
  for (int i = 0; i < NS; i++) {
    lab[i] = i;
    for (int k = 0; k < 4; k++)
      px[i * 4 + k] = (uint8_t)(i * 10 + k);
  }
  tc_dataset *ds;
  NU_OK(tc_dataset_create(&ds, NS, 1, 2, 2, NS, px, lab));
  tc_loader_options o = TC_LOADER_OPTIONS_INIT;
  o.batch_size = B;
  o.shuffle = 1;
  o.seed = 7;
  tc_loader *whole, *part[SH];
  NU_OK(tc_loader_create(&whole, ds, NULL, &o));
  for (int s = 0; s < SH; s++) {
    o.num_shards = SH;
    o.shard = s;
    o.prefetch = s; /* with and without the prefetch thread */
    NU_OK(tc_loader_create(&part[s], ds, NULL, &o));
    ck_assert_int_eq(tc_loader_num_batches(part[s]), 3);
  }
  for (int epoch = 0; epoch < 2; epoch++) {
    int seen[NS] = {0};
    for (;;) {
      tc_tensor *x, *y;
      NU_OK(tc_loader_next(whole, &x, &y));
      int32_t all[B];
      int64_t n = x ? tc_tensor_dim(y, 0) : 0;
      if (x)
        NU_OK(tc_tensor_copy_to_host(y, all, (size_t)n * 4));
      for (int s = 0; s < SH; s++) {
        tc_tensor *xs, *ys;
        NU_OK(tc_loader_next(part[s], &xs, &ys));
        ck_assert((xs == NULL) == (x == NULL));
        if (!x)
          continue;
        int64_t k0 = n * s / SH, k1 = n * (s + 1) / SH;
        ck_assert_int_eq(tc_tensor_dim(ys, 0), k1 - k0);
        int32_t mine[B];
        if (k1 > k0)
          NU_OK(tc_tensor_copy_to_host(ys, mine, (size_t)(k1 - k0) * 4));
        for (int64_t k = k0; k < k1; k++) {
          ck_assert_int_eq(mine[k - k0], all[k]);
          seen[mine[k - k0]]++;
        }
      }
      if (!x)
        break;
    }
    for (int i = 0; i < NS; i++)
      ck_assert_msg(seen[i] == 1, "epoch %d: sample %d seen %d times", epoch, i,
                    seen[i]);
  }
  o.shard = SH;
  ck_assert_int_eq(tc_loader_create(&part[0], ds, NULL, &o), TC_EINVAL);
  tc_loader_destroy(whole);
  for (int s = 0; s < SH; s++)
    tc_loader_destroy(part[s]);
  tc_dataset_destroy(ds);
}
END_TEST

/* ---- data-parallel training ---- */

enum { C = 2, H = 8, W = 8, K = 5, BMAX = 16, STEPS = 4 };

/* conv -> [bn2d] -> relu -> maxpool -> flatten -> linear -> [bn1d -> relu
 * [-> dropout]] -> linear; bn: 0 none, 1 with dropout, 2 without */
static tc_model *make_model(tc_backend *be, int bn, uint64_t seed) {
  tc_layer *s, *l;
  NU_OK(tc_sequential_create(&s));
  tc_conv2d_options co = TC_CONV2D_OPTIONS_INIT;
  co.pad_h = co.pad_w = 1;
  NU_OK(tc_conv2d_create(&l, C, 4, 3, &co));
  NU_OK(tc_sequential_add(s, "conv1", l));
  if (bn) {
    NU_OK(tc_batchnorm2d_create(&l, 4, NULL));
    NU_OK(tc_sequential_add(s, "bn1", l));
  }
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(s, "relu1", l));
  NU_OK(tc_maxpool2d_create(&l, 2, NULL));
  NU_OK(tc_sequential_add(s, "pool1", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(s, "flatten", l));
  NU_OK(tc_linear_create(&l, 4 * 4 * 4, 12, NULL));
  NU_OK(tc_sequential_add(s, "fc1", l));
  if (bn) {
    NU_OK(tc_batchnorm1d_create(&l, 12, NULL));
    NU_OK(tc_sequential_add(s, "bn2", l));
    NU_OK(tc_relu_create(&l));
    NU_OK(tc_sequential_add(s, "relu2", l));
    if (bn == 1) {
      NU_OK(tc_dropout_create(&l, 0.25f));
      NU_OK(tc_sequential_add(s, "drop", l));
    }
  }
  NU_OK(tc_linear_create(&l, 12, K, NULL));
  NU_OK(tc_sequential_add(s, "fc2", l));
  const int64_t in[3] = {C, H, W};
  tc_set_seed(seed);
  return nu_model(be, s, in, 3, 0);
}

static float data_x[STEPS][BMAX * C * H * W];
static int32_t data_y[STEPS][BMAX];

static void make_data(void) {
  for (int s = 0; s < STEPS; s++) {
    tu_fill_uniform(data_x[s], BMAX * C * H * W, 100 + (uint64_t)s, -1.f, 1.f);
    for (int i = 0; i < BMAX; i++)
      data_y[s][i] = (i * 7 + s) % K;
  }
}

typedef struct rank_job {
  tc_comm *comm;
  tc_ddp_options o;
  int bn, batch;
  int pre_forward; /* run a forward before wrapping the model */
  uint64_t seed;
  /* results */
  tc_status st;
  char msg[256];
  float params[4096], buffers[256];
  int64_t nparams, nbuffers;
  float loss[STEPS];
  int64_t buckets;
} rank_job;

/* Trains STEPS steps of SGD on this rank's slice of each batch. */
static void *rank_main(void *arg) {
  rank_job *j = arg;
  tc_backend *be = NULL;
  tc_model *m = NULL;
  tc_loss *xent = NULL;
  tc_optimizer *opt = NULL;
  tc_ddp *d = NULL;
  tc_tensor *x = NULL, *y = NULL;
  int r = tc_comm_rank(j->comm), n = tc_comm_size(j->comm);
  tc_status st = tc_backend_create(&be, "cpu");
  if (st == TC_OK)
    m = make_model(be, j->bn, j->seed + (uint64_t)r); /* rank 0's wins */
  tc_sgd_options so = TC_SGD_OPTIONS_INIT;
  so.lr = 0.1f;
  so.momentum = 0.9f;
  if (st == TC_OK &&
      (st = tc_loss_create(&xent, be, TC_LOSS_CROSS_ENTROPY, NULL)) == TC_OK &&
      (st = tc_optimizer_create_sgd_for_model(&opt, m, &so)) == TC_OK &&
      j->pre_forward) {
    int64_t s4[4] = {4, C, H, W};
    tc_tensor *t, *out;
    if ((st = tc_tensor_create(&t, be, s4, 4, TC_FLOAT32)) == TC_OK)
      st = tc_model_forward(m, t, &out);
    tc_tensor_destroy(t);
  }
  if (st == TC_OK)
    st = tc_ddp_create(&d, m, j->comm, &j->o);
  int64_t k0 = (int64_t)j->batch * r / n, k1 = (int64_t)j->batch * (r + 1) / n;
  int64_t xs[4] = {k1 - k0, C, H, W}, ys = k1 - k0;
  if (st == TC_OK && k1 > k0 &&
      (st = tc_tensor_create(&x, be, xs, 4, TC_FLOAT32)) == TC_OK)
    st = tc_tensor_create(&y, be, &ys, 1, TC_INT32);
  for (int s = 0; s < STEPS && st == TC_OK; s++) {
    if (x && ((st = tc_tensor_copy_from_host(x, data_x[s] + k0 * C * H * W,
                                             (size_t)(k1 - k0) * C * H * W *
                                                 4)) != TC_OK ||
              (st = tc_tensor_copy_from_host(y, data_y[s] + k0,
                                             (size_t)(k1 - k0) * 4)) != TC_OK))
      break;
    if ((st = tc_optimizer_zero_grad(opt)) != TC_OK ||
        (st = tc_ddp_train_step(d, xent, x, y, &j->loss[s], NULL)) != TC_OK ||
        (st = tc_optimizer_step(opt)) != TC_OK)
      break;
  }
  if (st == TC_OK) {
    j->buckets = tc_ddp_num_buckets(d);
    tc_tensor *p = tc_model_params_flat(m);
    j->nparams = tc_tensor_numel(p);
    st = tc_tensor_copy_to_host(p, j->params, (size_t)j->nparams * 4);
    j->nbuffers = 0;
    for (int64_t i = 0; st == TC_OK && i < tc_model_num_buffers(m); i++) {
      tc_tensor *b;
      tc_model_get_buffer(m, i, NULL, &b);
      if (tc_tensor_dtype(b) != TC_FLOAT32)
        continue;
      st = tc_tensor_copy_to_host(b, j->buffers + j->nbuffers,
                                  (size_t)tc_tensor_numel(b) * 4);
      j->nbuffers += tc_tensor_numel(b);
    }
  }
  j->st = st;
  snprintf(j->msg, sizeof j->msg, "%s", st == TC_OK ? "" : tc_last_error());
  tc_tensor_destroy(x);
  tc_tensor_destroy(y);
  tc_ddp_destroy(d);
  tc_optimizer_destroy(opt);
  tc_loss_destroy(xent);
  tc_model_destroy(m);
  tc_backend_destroy(be);
  return NULL;
}

/* Runs n ranks; rank 0's results into *out. */
static int pre_forward;

static void run_ranks(int n, int bn, int batch, const tc_ddp_options *o,
                      rank_job *out) {
  tc_comm *c[4];
  rank_job *j = calloc((size_t)n, sizeof *j);
  pthread_t th[4];
  ck_assert_ptr_nonnull(j);
  NU_OK(tc_comm_create_group(c, n));
  for (int r = 0; r < n; r++) {
    j[r].comm = c[r];
    j[r].o = *o;
    j[r].bn = bn;
    j[r].batch = batch;
    j[r].seed = 11;
    j[r].pre_forward = pre_forward;
    pthread_create(&th[r], NULL, rank_main, &j[r]);
  }
  for (int r = 0; r < n; r++)
    pthread_join(th[r], NULL);
  for (int r = 0; r < n; r++) {
    ck_assert_msg(j[r].st == TC_OK, "rank %d of %d: %s", r, n, j[r].msg);
    /* every rank holds the same model */
    ck_assert(memcmp(j[r].params, j[0].params, (size_t)j[0].nparams * 4) == 0);
    tc_comm_destroy(c[r]);
  }
  *out = j[0];
  free(j);
}

static double max_diff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)a[i] - (double)b[i]));
  return m;
}

static rank_job r1, r2, r4;

/* Default mode, no batch norm: 2 and 3 ranks (even and uneven shares, and
 * an empty one) against one rank with the whole batch. */
START_TEST(t_ddp_default_matches_one_rank) {
  make_data();
  tc_ddp_options o = TC_DDP_OPTIONS_INIT;
  o.first_bucket_bytes = 64; /* several buckets, overlapped */
  o.bucket_bytes = 1024;
  static const int batches[] = {16, 7, 1};
  for (int b = 0; b < 3; b++) {
    run_ranks(1, 0, batches[b], &o, &r1);
    run_ranks(2, 0, batches[b], &o, &r2);
    ck_assert_int_gt(r2.buckets, 2);
    double e = max_diff(r1.params, r2.params, r1.nparams);
    ck_assert_msg(e < 2e-5, "batch %d: 2 ranks differ by %g", batches[b], e);
    ck_assert(fabsf(r1.loss[STEPS - 1] - r2.loss[STEPS - 1]) < 1e-5f);
  }
  run_ranks(3, 0, 7, &o, &r4);
  run_ranks(1, 0, 7, &o, &r1);
  ck_assert(max_diff(r1.params, r4.params, r1.nparams) < 2e-5);
}
END_TEST

/* Bucket boundaries do not change the bits (sums are per element). */
START_TEST(t_ddp_buckets_same_bits) {
  make_data();
  tc_ddp_options o = TC_DDP_OPTIONS_INIT;
  run_ranks(2, 0, 16, &o, &r1);
  ck_assert_int_eq(r1.buckets, 1);
  o.first_bucket_bytes = 4;
  o.bucket_bytes = 4;
  run_ranks(2, 0, 16, &o, &r2);
  ck_assert_int_gt(r2.buckets, 4);
  ck_assert(memcmp(r1.params, r2.params, (size_t)r1.nparams * 4) == 0);
}
END_TEST

/* Synchronised batch norm: 2 ranks train like one rank with the whole
 * batch, also when the model ran (and planned fused batch norms) before
 * it was wrapped. */
START_TEST(t_ddp_sync_bn_matches_one_rank) {
  make_data();
  tc_ddp_options o = TC_DDP_OPTIONS_INIT;
  pre_forward = 1; /* on both sides: it moves the running statistics */
  run_ranks(1, 2, 16, &o, &r1);
  o.sync_batchnorm = 1;
  run_ranks(2, 2, 16, &o, &r2);
  run_ranks(2, 2, 11, &o, &r4); /* uneven: 5 + 6 */
  pre_forward = 0;
  double e = max_diff(r1.params, r2.params, r1.nparams);
  ck_assert_msg(e < 2e-5, "parameters differ by %g", e);
  e = max_diff(r1.buffers, r2.buffers, r1.nbuffers);
  ck_assert_msg(e < 2e-5, "running statistics differ by %g", e);
  /* without synchronisation each rank normalises its half: far apart */
  o.sync_batchnorm = 0;
  run_ranks(2, 2, 16, &o, &r2);
  ck_assert(max_diff(r1.buffers, r2.buffers, r1.nbuffers) > 1e-3);
  o.sync_batchnorm = 1;
  run_ranks(1, 2, 11, &o, &r1);
  ck_assert(max_diff(r1.params, r4.params, r1.nparams) < 2e-5);
}
END_TEST

/* Deterministic mode: the same bits on 1, 2 and 4 ranks, batch norm and
 * dropout included. */
START_TEST(t_ddp_deterministic_bits) {
  make_data();
  tc_ddp_options o = TC_DDP_OPTIONS_INIT;
  o.deterministic = 1;
  o.chunks = 4;
  static const int batches[] = {16, 14};
  for (int b = 0; b < 2; b++) {
    run_ranks(1, 1, batches[b], &o, &r1);
    run_ranks(2, 1, batches[b], &o, &r2);
    run_ranks(4, 1, batches[b], &o, &r4);
    ck_assert(memcmp(r1.params, r2.params, (size_t)r1.nparams * 4) == 0);
    ck_assert(memcmp(r1.params, r4.params, (size_t)r1.nparams * 4) == 0);
    ck_assert_int_gt(r1.nbuffers, 0);
    ck_assert(memcmp(r1.buffers, r2.buffers, (size_t)r1.nbuffers * 4) == 0);
    ck_assert(memcmp(r1.buffers, r4.buffers, (size_t)r1.nbuffers * 4) == 0);
    ck_assert(memcmp(r1.loss, r4.loss, sizeof r1.loss) == 0);
  }
  /* chunks must be a multiple of the ranks */
  o.chunks = 3;
  tc_comm *c[2];
  NU_OK(tc_comm_create_group(c, 2));
  tc_backend *be = nu_cpu();
  tc_model *m = make_model(be, 1, 1);
  tc_ddp *d;
  ck_assert_int_eq(tc_ddp_create(&d, m, c[0], &o), TC_EINVAL);
  o.chunks = 4;
  o.sync_batchnorm = 1;
  ck_assert_int_eq(tc_ddp_create(&d, m, c[0], &o), TC_EINVAL);
  tc_model_destroy(m);
  tc_backend_destroy(be);
  tc_comm_destroy(c[0]);
  tc_comm_destroy(c[1]);
}
END_TEST

/* The deterministic mode of one rank is gradient accumulation: its first
 * step's loss is the mean of the chunks' losses. */
START_TEST(t_ddp_api_checks) {
  tc_comm *c;
  NU_OK(tc_comm_create_local(&c));
  tc_backend *be = nu_cpu();
  tc_model *m = make_model(be, 0, 1);
  tc_ddp *d = NULL;
  tc_ddp_options o = TC_DDP_OPTIONS_INIT;
  ck_assert_int_eq(tc_ddp_create(NULL, m, c, &o), TC_EINVAL);
  ck_assert_int_eq(tc_ddp_create(&d, NULL, c, &o), TC_EINVAL);
  o.bucket_bytes = 0;
  ck_assert_int_eq(tc_ddp_create(&d, m, c, &o), TC_EINVAL);
  o.bucket_bytes = 1 << 20;
  o.struct_size = sizeof o + 8;
  ck_assert_int_eq(tc_ddp_create(&d, m, c, &o), TC_EVERSION);
  NU_OK(tc_ddp_create(&d, m, c, NULL));
  ck_assert_ptr_eq(tc_ddp_model(d), m);
  ck_assert_ptr_eq(tc_ddp_comm(d), c);
  ck_assert_int_eq(tc_ddp_backward(d, NULL), TC_ESTATE);
  tc_loss *xent;
  NU_OK(tc_loss_create(&xent, be, TC_LOSS_CROSS_ENTROPY, NULL));
  ck_assert_int_eq(tc_ddp_train_step(d, xent, NULL, NULL, NULL, NULL),
                   TC_ESHAPE); /* every share empty */
  tc_loss_destroy(xent);
  tc_ddp_destroy(d);
  tc_ddp_destroy(NULL);
  ck_assert_int_eq(tc_ddp_num_buckets(NULL), -1);
  tc_model_destroy(m);
  tc_backend_destroy(be);
  tc_comm_destroy(c);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("dist");
  TCase *tc = tcase_create("comm");
  tcase_add_test(tc, t_comm_local);
  tcase_add_test(tc, t_comm_group);
  tcase_add_test(tc, t_comm_table_checks);
  tcase_add_test(tc, t_loader_shards);
  suite_add_tcase(s, tc);
  tc = tcase_create("ddp");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, t_ddp_api_checks);
  tcase_add_test(tc, t_ddp_default_matches_one_rank);
  tcase_add_test(tc, t_ddp_buckets_same_bits);
  tcase_add_test(tc, t_ddp_deterministic_bits);
  tcase_add_test(tc, t_ddp_sync_bn_matches_one_rank);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}
