/*
 * tc_bench.c - tinycnn-bench: training and inference speed of the bundled
 * models (LeNet-5, LeNet-5+BN, ResNet-20, ResNet-56) at 3x32x32 on
 * synthetic data that already lives on the backend, over the public API
 * only (docs/benchmarks.md).
 *
 * One run measures one model in one mode and prints one line
 *   model=lenet mode=train batch=128 threads=2 warmup=5 iters=20
 *   seconds=... images_per_sec=... peak_rss_mb=...
 * Given several models or modes (the default: all of them), the program
 * runs itself once per model and mode, so each peak RSS (getrusage's
 * ru_maxrss, the process's high-water mark) belongs to that model alone.
 * With --profile it also prints the per-layer time breakdown
 * (tc_model_get_profile) of the timed iterations.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <libtinycnn.h>
#include <tinycnn_backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "models.h"

/* OpenBLAS's build description; the bench links OpenBLAS for it. */
char *openblas_get_config(void);

enum { MODE_TRAIN = 1, MODE_INFER = 2 };

typedef struct bench_args {
  const char *models[8];
  int nmodels;
  int modes;
  int iters, warmup, threads;
  int train_batch, infer_batch;
  int profile;
  int child; /* no header: a run started by the driver */
} bench_args;

static const char *const all_models[] = {"lenet", "lenet_bn", "resnet20",
                                         "resnet56"};
#define NUM_MODELS ((int)(sizeof all_models / sizeof *all_models))

static const char *prog = "tinycnn-bench";

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1.0;
  return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static int fail(const char *what, tc_status st) {
  fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, tc_last_error(),
          tc_status_string(st));
  return 1;
}

#define TRY(what, call)                                                        \
  do {                                                                         \
    tc_status st_ = (call);                                                    \
    if (st_ != TC_OK) {                                                        \
      rc = fail((what), st_);                                                  \
      goto done;                                                               \
    }                                                                          \
  } while (0)

/* ---- machine description ------------------------------------------------ */

static void print_cpu_model(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512], name[256] = "unknown";
  int cpus = 0;
  if (f) {
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) == 0 && cpus++ == 0) {
        const char *v = strchr(line, ':');
        if (v) {
          v++;
          while (*v == ' ' || *v == '\t')
            v++;
          snprintf(name, sizeof name, "%s", v);
          name[strcspn(name, "\n")] = '\0';
        }
      }
    }
    fclose(f);
  }
  printf("cpu=\"%s\" logical_cpus=%ld\n", name, sysconf(_SC_NPROCESSORS_ONLN));
}

static void print_header(const bench_args *a) {
  print_cpu_model();
  /* what the CPU offers; the library picks its kernels at run time */
  __builtin_cpu_init();
  printf("isa avx2=%d fma=%d avx512f=%d\n",
         __builtin_cpu_supports("avx2") ? 1 : 0,
         __builtin_cpu_supports("fma") ? 1 : 0,
         __builtin_cpu_supports("avx512f") ? 1 : 0);
  const char *cfg = openblas_get_config();
  if (tc_set_num_threads(a->threads) != TC_OK)
    fprintf(stderr, "%s: --threads %d: %s\n", prog, a->threads,
            tc_last_error());
  /* the kernels the CPU backend runs (TINYCNN_CPU_ISA can lower them) */
  const char *kernels = "unknown";
  tc_backend *be = NULL;
  if (tc_backend_create_ex(&be, "cpu", NULL) == TC_OK) {
    const tc_backend_iface *it = tc_backend_get_iface(be);
    const char *(*isa_name)(void) = NULL;
    if (it->get_proc)
      *(void **)&isa_name =
          it->get_proc(tc_backend_get_context(be), "tc_cpu_isa_name");
    if (isa_name)
      kernels = isa_name();
  }
  printf("tinycnn=%s openblas=\"%s\" threads=%d kernels=%s\n", tc_version(),
         cfg ? cfg : "unknown", tc_get_num_threads(), kernels);
  tc_backend_destroy(be);
  fflush(stdout);
}

/* ---- one model, one mode ------------------------------------------------ */

static tc_status build_model(tc_model **out, tc_backend *be, const char *name) {
  static const int64_t in_shape[3] = {3, 32, 32};
  tc_layer *root = NULL;
  tc_status st;
  int resnet = 0;
  if (strcmp(name, "lenet") == 0 || strcmp(name, "lenet_bn") == 0) {
    st = model_lenet(&root, name[5] == '_');
  } else if (strcmp(name, "resnet20") == 0 || strcmp(name, "resnet56") == 0) {
    st = model_resnet(&root, atoi(name + 6), TC_SHORTCUT_A_MAXPOOL);
    resnet = 1;
  } else {
    fprintf(stderr, "%s: unknown model '%s'\n", prog, name);
    return TC_EINVAL;
  }
  if (st != TC_OK)
    return st;
  if ((st = tc_model_create(out, be, root, in_shape, 3, NULL)) != TC_OK)
    return st;
  return resnet ? model_resnet_init(*out, 0) : TC_OK;
}

/* Synthetic images U(-1, 1) and labels in [0, 10), made on the host once
 * and copied to the backend before timing. */
static tc_status make_data(tc_backend *be, int64_t n, tc_tensor **x,
                           tc_tensor **y) {
  int64_t xs[4] = {n, 3, 32, 32};
  size_t count = (size_t)n * 3 * 32 * 32;
  float *hx = malloc(count * sizeof *hx);
  int32_t *hy = malloc((size_t)n * sizeof *hy);
  tc_status st = TC_ENOMEM;
  if (hx && hy) {
    tc_rng rng;
    tc_rng_init(&rng, 1234, TC_RNG_STREAM_USER + 7);
    for (size_t i = 0; i < count; i++)
      hx[i] = 2.f * tc_rng_uniform(&rng) - 1.f;
    for (int64_t i = 0; i < n; i++)
      hy[i] = (int32_t)tc_rng_below(&rng, 10);
    if ((st = tc_tensor_create(x, be, xs, 4, TC_FLOAT32)) == TC_OK &&
        (st = tc_tensor_copy_from_host(*x, hx, count * sizeof *hx)) == TC_OK &&
        (st = tc_tensor_create(y, be, &n, 1, TC_INT32)) == TC_OK)
      st = tc_tensor_copy_from_host(*y, hy, (size_t)n * sizeof *hy);
  }
  free(hx);
  free(hy);
  return st;
}

typedef struct step_ctx {
  tc_model *m;
  tc_loss *loss;
  tc_optimizer *opt;
  tc_tensor *x, *y;
  float last_loss;
} step_ctx;

/* zero_grad + forward + loss + backward + SGD step, as PyTorch's loop */
static tc_status train_step(step_ctx *c) {
  tc_tensor *out;
  tc_status st;
  if ((st = tc_optimizer_zero_grad(c->opt)) != TC_OK ||
      (st = tc_model_forward(c->m, c->x, &out)) != TC_OK ||
      (st = tc_loss_compute(c->loss, out, c->y, &c->last_loss,
                            tc_model_output_grad(c->m))) != TC_OK ||
      (st = tc_model_backward(c->m, NULL)) != TC_OK)
    return st;
  return tc_optimizer_step(c->opt);
}

static tc_status infer_step(step_ctx *c) {
  tc_tensor *out;
  return tc_model_forward(c->m, c->x, &out);
}

static void print_profile(tc_model *m, const char *model, const char *mode,
                          int iters, double wall) {
  int64_t n = tc_model_profile_count(m);
  double fsum = 0, bsum = 0;
  tc_layer_profile p = TC_LAYER_PROFILE_INIT;
  for (int64_t i = 0; i < n; i++)
    if (tc_model_get_profile(m, i, &p) == TC_OK) {
      fsum += p.forward_seconds;
      bsum += p.backward_seconds;
    }
  double total = fsum + bsum;
  printf("# per-layer profile: %s %s, %d iterations, ms per iteration "
         "(exclusive; share of the layers' total)\n",
         model, mode, iters);
  printf("# %-26s %-16s %9s %9s %9s %6s\n", "layer", "kind", "forward",
         "backward", "total", "share");
  for (int64_t i = 0; i < n; i++) {
    if (tc_model_get_profile(m, i, &p) != TC_OK)
      continue;
    double f = 1e3 * p.forward_seconds / iters;
    double b = 1e3 * p.backward_seconds / iters;
    double s = total > 0
                   ? 100.0 * (p.forward_seconds + p.backward_seconds) / total
                   : 0.0;
    printf("# %-26s %-16s %9.3f %9.3f %9.3f %5.1f%%\n",
           p.name[0] ? p.name : "<root>", p.kind, f, b, f + b, s);
  }
  printf("# %-26s %-16s %9.3f %9.3f %9.3f\n", "layers", "", 1e3 * fsum / iters,
         1e3 * bsum / iters, 1e3 * total / iters);
  printf("# %-26s %-16s %9s %9s %9.3f  (outside the layers: %.3f)\n",
         "step (wall)", "", "", "", 1e3 * wall / iters,
         1e3 * (wall - total) / iters);
}

static int run_one(const bench_args *a, const char *model, int mode) {
  int rc = 0;
  tc_backend *be = NULL;
  step_ctx c = {0};
  const char *mode_name = mode == MODE_TRAIN ? "train" : "infer";
  int batch = mode == MODE_TRAIN ? a->train_batch : a->infer_batch;
  tc_set_seed(0);
  TRY("--threads", tc_set_num_threads(a->threads));
  TRY("backend cpu", tc_backend_create(&be, "cpu"));
  TRY("model", build_model(&c.m, be, model));
  TRY("data", make_data(be, batch, &c.x, &c.y));
  if (mode == MODE_TRAIN) {
    tc_sgd_options o = TC_SGD_OPTIONS_INIT;
    o.lr = 0.01f;
    o.momentum = 0.9f;
    o.weight_decay = 5e-4f;
    TRY("loss", tc_loss_create(&c.loss, be, TC_LOSS_CROSS_ENTROPY, NULL));
    TRY("optimizer", tc_optimizer_create_sgd_for_model(&c.opt, c.m, &o));
  } else {
    TRY("eval mode", tc_model_set_training(c.m, 0));
  }
  tc_status (*step)(step_ctx *) = mode == MODE_TRAIN ? train_step : infer_step;
  for (int i = 0; i < a->warmup; i++)
    TRY("warm-up step", step(&c));
  TRY("synchronize", tc_backend_synchronize(be));
  if (a->profile)
    TRY("profiling", tc_model_set_profiling(c.m, 1));
  double t0 = now_seconds();
  for (int i = 0; i < a->iters; i++)
    TRY("step", step(&c));
  TRY("synchronize", tc_backend_synchronize(be));
  double wall = now_seconds() - t0;
  printf("model=%s mode=%s batch=%d threads=%d warmup=%d iters=%d "
         "seconds=%.4f images_per_sec=%.1f peak_rss_mb=%.1f%s\n",
         model, mode_name, batch, tc_get_num_threads(), a->warmup, a->iters,
         wall, (double)batch * a->iters / wall, peak_rss_mb(),
         a->profile ? " profiled=1" : "");
  if (a->profile)
    print_profile(c.m, model, mode_name, a->iters, wall);
  fflush(stdout);
done:
  tc_optimizer_destroy(c.opt);
  tc_loss_destroy(c.loss);
  tc_tensor_destroy(c.x);
  tc_tensor_destroy(c.y);
  tc_model_destroy(c.m);
  tc_backend_destroy(be);
  return rc;
}

/* ---- driver: one process per model and mode ------------------------------ */

static int run_child(const bench_args *a, const char *model, int mode) {
  char iters[16], warmup[16], threads[16], tb[16], ib[16];
  snprintf(iters, sizeof iters, "%d", a->iters);
  snprintf(warmup, sizeof warmup, "%d", a->warmup);
  snprintf(threads, sizeof threads, "%d", a->threads);
  snprintf(tb, sizeof tb, "%d", a->train_batch);
  snprintf(ib, sizeof ib, "%d", a->infer_batch);
  char *argv[] = {(char *)prog,
                  "--child",
                  "--model",
                  (char *)model,
                  mode == MODE_TRAIN ? "--train" : "--infer",
                  "--iters",
                  iters,
                  "--warmup",
                  warmup,
                  "--threads",
                  threads,
                  "--train-batch",
                  tb,
                  "--infer-batch",
                  ib,
                  a->profile ? "--profile" : NULL,
                  NULL};
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
    return 1;
  }
  if (pid == 0) {
    execv("/proc/self/exe", argv);
    fprintf(stderr, "%s: exec: %s\n", prog, strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [--model NAME]... [--train] [--infer] [--iters N]\n"
          "       [--warmup N] [--threads N] [--train-batch N]\n"
          "       [--infer-batch N] [--profile]\n"
          "  --model      lenet, lenet_bn, resnet20, resnet56 or all "
          "(default all; repeatable)\n"
          "  --train      training images/s (default: both modes)\n"
          "  --infer      inference images/s, evaluation mode\n"
          "  --iters      timed iterations (default 20)\n"
          "  --warmup     untimed iterations first (default 5)\n"
          "  --threads    CPU threads, 0 = all cores (default 0)\n"
          "  --train-batch  default 128;  --infer-batch  default 256\n"
          "  --profile    print the per-layer forward/backward breakdown\n"
          "Each model and mode runs in its own process (own peak RSS).\n"
          "  --child      leave out the machine header\n",
          prog);
}

static int parse_int(const char *opt, const char *v, int lo, int *out) {
  char *end;
  errno = 0;
  long x = v ? strtol(v, &end, 10) : 0;
  if (!v || errno || *end || x < lo || x > 1000000) {
    fprintf(stderr, "%s: %s needs an integer >= %d\n", prog, opt, lo);
    return 1;
  }
  *out = (int)x;
  return 0;
}

static int parse(bench_args *a, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int bad = 0;
    if (!strcmp(o, "--model")) {
      if (!v) {
        fprintf(stderr, "%s: --model needs a name\n", prog);
        return 1;
      }
      i++;
      if (!strcmp(v, "all")) {
        for (int k = 0; k < NUM_MODELS && a->nmodels < 8; k++)
          a->models[a->nmodels++] = all_models[k];
        continue;
      }
      int known = 0;
      for (int k = 0; k < NUM_MODELS; k++)
        known |= !strcmp(v, all_models[k]);
      if (!known || a->nmodels >= 8) {
        fprintf(stderr, "%s: unknown model '%s'\n", prog, v);
        return 1;
      }
      a->models[a->nmodels++] = v;
    } else if (!strcmp(o, "--train")) {
      a->modes |= MODE_TRAIN;
    } else if (!strcmp(o, "--infer")) {
      a->modes |= MODE_INFER;
    } else if (!strcmp(o, "--profile")) {
      a->profile = 1;
    } else if (!strcmp(o, "--child")) {
      a->child = 1;
    } else if (!strcmp(o, "--iters")) {
      bad = parse_int(o, v, 1, &a->iters), i++;
    } else if (!strcmp(o, "--warmup")) {
      bad = parse_int(o, v, 0, &a->warmup), i++;
    } else if (!strcmp(o, "--threads")) {
      bad = parse_int(o, v, 0, &a->threads), i++;
    } else if (!strcmp(o, "--train-batch")) {
      bad = parse_int(o, v, 1, &a->train_batch), i++;
    } else if (!strcmp(o, "--infer-batch")) {
      bad = parse_int(o, v, 1, &a->infer_batch), i++;
    } else if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      usage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", prog, o);
      usage(stderr);
      return 1;
    }
    if (bad)
      return 1;
  }
  if (a->nmodels == 0)
    for (int k = 0; k < NUM_MODELS; k++)
      a->models[a->nmodels++] = all_models[k];
  if (a->modes == 0)
    a->modes = MODE_TRAIN | MODE_INFER;
  return 0;
}

int main(int argc, char **argv) {
  bench_args a = {
      .iters = 20, .warmup = 5, .train_batch = 128, .infer_batch = 256};
  if (argc > 0)
    prog = argv[0];
  if (parse(&a, argc, argv))
    return 2;
  /* one model in one mode runs here: this process is its own already */
  int one = a.nmodels == 1 && (a.modes == MODE_TRAIN || a.modes == MODE_INFER);
  if (!a.child)
    print_header(&a);
  if (one)
    return run_one(&a, a.models[0], a.modes);
  int rc = 0;
  for (int i = 0; i < a.nmodels; i++)
    for (int mode = MODE_TRAIN; mode <= MODE_INFER; mode <<= 1)
      if (a.modes & mode)
        rc |= run_child(&a, a.models[i], mode);
  return rc;
}
