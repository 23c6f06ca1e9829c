/*
 * ddp_bench.c - tinycnn-ddp-bench: data-parallel training speed of the
 * bundled models on synthetic 3x32x32 data, alone or under mpirun, over the
 * public API only (docs/distributed.md). Rank 0 prints one line:
 *   model=resnet20 ranks=2 threads=1 batch=128 mode=default iters=20
 *   images_per_sec=... peak_rss_mb=... allreduce_ms=... grad_mb=...
 * images_per_sec counts the global batch; peak_rss_mb is the largest rank's;
 * allreduce_ms is one blocking all-reduce of the whole gradient arena
 * (median of 20, after a barrier), the exchange a step must hide.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <libtinycnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "dist.h"
#include "models.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0
                                          : -1.0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct args {
  const char *model;
  int batch, iters, warmup, threads, chunks, deterministic, sync_bn;
  double bucket_mb;
} args;

static int usage(void) {
  fputs("usage: tinycnn-ddp-bench [--model lenet|lenet_bn|resnet20|resnet56]"
        " [--batch N] [--iters N] [--warmup N] [--threads N]"
        " [--deterministic] [--chunks N] [--sync-bn] [--bucket-mb X]\n",
        stderr);
  return 2;
}

#define TRY(what, call)                                                        \
  do {                                                                         \
    tc_status st_ = (call);                                                    \
    if (st_ != TC_OK) {                                                        \
      fprintf(stderr, "tinycnn-ddp-bench: rank %d: %s: %s\n", rank, (what),    \
              tc_last_error());                                                \
      if (size > 1)                                                            \
        tc_comm_abort(comm, 1);                                                \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv) {
  args a = {"resnet20", 128, 20, 3, 0, 8, 0, 0, 25.0};
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(o, "--deterministic"))
      a.deterministic = 1;
    else if (!strcmp(o, "--sync-bn"))
      a.sync_bn = 1;
    else if (!v)
      return usage();
    else if (!strcmp(o, "--model") && ++i)
      a.model = v;
    else if (!strcmp(o, "--batch") && ++i)
      a.batch = atoi(v);
    else if (!strcmp(o, "--iters") && ++i)
      a.iters = atoi(v);
    else if (!strcmp(o, "--warmup") && ++i)
      a.warmup = atoi(v);
    else if (!strcmp(o, "--threads") && ++i)
      a.threads = atoi(v);
    else if (!strcmp(o, "--chunks") && ++i)
      a.chunks = atoi(v);
    else if (!strcmp(o, "--bucket-mb") && ++i)
      a.bucket_mb = atof(v);
    else
      return usage();
  }
  if (a.batch < 1 || a.iters < 1 || a.warmup < 0)
    return usage();
  tc_comm *comm = NULL;
  int rank = 0, size = 1;
  TRY("starting", dist_open(&comm));
  rank = tc_comm_rank(comm);
  size = tc_comm_size(comm);
  if (a.threads > 0)
    TRY("--threads", tc_set_num_threads(a.threads));

  tc_backend *be;
  TRY("backend", tc_backend_create(&be, "cpu"));
  tc_layer *root;
  int resnet = !strncmp(a.model, "resnet", 6);
  if (resnet)
    TRY("model", model_resnet(&root, atoi(a.model + 6), TC_SHORTCUT_A_MAXPOOL));
  else
    TRY("model", model_lenet(&root, !strcmp(a.model, "lenet_bn")));
  static const int64_t in_shape[3] = {3, 32, 32};
  tc_model *m;
  TRY("model", tc_model_create(&m, be, root, in_shape, 3, NULL));
  if (resnet)
    TRY("init", model_resnet_init(m, 0));
  tc_loss *loss;
  TRY("loss", tc_loss_create(&loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
  tc_sgd_options so = TC_SGD_OPTIONS_INIT;
  so.lr = 0.01f;
  so.momentum = 0.9f;
  tc_optimizer *opt;
  TRY("sgd", tc_optimizer_create_sgd_for_model(&opt, m, &so));
  tc_ddp_options o = TC_DDP_OPTIONS_INIT;
  o.bucket_bytes = (int64_t)(a.bucket_mb * 1048576.0);
  if (o.first_bucket_bytes > o.bucket_bytes)
    o.first_bucket_bytes = o.bucket_bytes;
  o.deterministic = a.deterministic;
  o.chunks = a.chunks;
  o.sync_batchnorm = a.sync_bn;
  tc_ddp *d;
  TRY("ddp", tc_ddp_create(&d, m, comm, &o));

  /* this rank's slice of a synthetic global batch */
  int64_t k0 = (int64_t)a.batch * rank / size;
  int64_t n = (int64_t)a.batch * (rank + 1) / size - k0;
  int64_t xs[4] = {n, 3, 32, 32};
  tc_tensor *x, *y;
  TRY("data", tc_tensor_create(&x, be, xs, 4, TC_FLOAT32));
  TRY("data", tc_tensor_create(&y, be, &n, 1, TC_INT32));
  {
    size_t count = (size_t)n * 3 * 32 * 32;
    float *hx = malloc(count * sizeof *hx + 4);
    int32_t *hy = malloc((size_t)n * sizeof *hy + 4);
    if (!hx || !hy)
      TRY("data", TC_ENOMEM);
    tc_rng rng;
    tc_rng_init(&rng, 1234, TC_RNG_STREAM_USER + 7);
    rng.offset = (uint64_t)k0 * 4096;
    for (size_t i = 0; i < count; i++)
      hx[i] = 2.f * tc_rng_uniform(&rng) - 1.f;
    for (int64_t i = 0; i < n; i++)
      hy[i] = (int32_t)tc_rng_below(&rng, 10);
    TRY("data", tc_tensor_copy_from_host(x, hx, count * sizeof *hx));
    TRY("data", tc_tensor_copy_from_host(y, hy, (size_t)n * sizeof *hy));
    free(hx);
    free(hy);
  }

  float lv = 0;
  double t0 = 0;
  for (int it = 0; it < a.warmup + a.iters; it++) {
    if (it == a.warmup) {
      TRY("barrier", tc_comm_barrier(comm));
      t0 = now_seconds();
    }
    TRY("zero_grad", tc_optimizer_zero_grad(opt));
    TRY("step",
        tc_ddp_train_step(d, loss, n ? x : NULL, n ? y : NULL, &lv, NULL));
    TRY("sgd", tc_optimizer_step(opt));
  }
  TRY("barrier", tc_comm_barrier(comm));
  double secs = now_seconds() - t0;

  /* one all-reduce of the whole gradient arena */
  tc_tensor *g = tc_model_grads_flat(m);
  size_t nf = (size_t)tc_tensor_numel(g);
  float *buf = calloc(nf + 1, sizeof *buf);
  double times[20];
  for (int k = 0; k < 20 && buf; k++) {
    TRY("barrier", tc_comm_barrier(comm));
    double s = now_seconds();
    TRY("allreduce", tc_comm_allreduce_sum(comm, buf, nf));
    times[k] = now_seconds() - s;
  }
  qsort(times, 20, sizeof *times, cmp_double);
  free(buf);
  float rss = (float)peak_rss_mb(), all_rss[64] = {0};
  if (size <= 64)
    TRY("rss", tc_comm_allgather(comm, &rss, all_rss, sizeof rss));
  for (int r = 0; r < size && r < 64; r++)
    if (all_rss[r] > rss)
      rss = all_rss[r];
  if (rank == 0)
    printf("model=%s ranks=%d threads=%d batch=%d mode=%s chunks=%d "
           "sync_bn=%d buckets=%lld iters=%d images_per_sec=%.1f "
           "peak_rss_mb=%.0f allreduce_ms=%.3f grad_mb=%.2f loss=%.4f\n",
           a.model, size, tc_get_num_threads(), a.batch,
           a.deterministic ? "deterministic" : "default",
           a.deterministic ? a.chunks : 0, a.sync_bn,
           (long long)tc_ddp_num_buckets(d), a.iters,
           (double)a.batch * a.iters / secs, (double)rss,
           size > 1 ? times[10] * 1e3 : 0.0, (double)nf * 4.0 / 1048576.0,
           (double)lv);
  tc_tensor_destroy(x);
  tc_tensor_destroy(y);
  tc_ddp_destroy(d);
  tc_optimizer_destroy(opt);
  tc_loss_destroy(loss);
  tc_model_destroy(m);
  tc_backend_destroy(be);
  tc_comm_destroy(comm);
  return 0;
}
