/*
 * args.c - command-line parsing for tinycnn-lenet and tinycnn-resnet.
 * Every bad argument gives one line naming it and a non-zero exit.
 */
#include "args.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *prog(trainer_kind k) {
  return k == TRAINER_LENET ? "tinycnn-lenet" : "tinycnn-resnet";
}

void args_usage(trainer_kind kind, FILE *to) {
  fprintf(to, "usage: %s [options]\n", prog(kind));
  if (kind == TRAINER_LENET)
    fputs("Train LeNet-5 (3x32x32 input) on MNIST, Fashion-MNIST or SVHN.\n\n"
          "  --dataset NAME    mnist | fashion-mnist | svhn (default "
          "fashion-mnist)\n"
          "  --data DIR        data folder (fashion-mnist default:\n"
          "                    /usr/share/datasets/fashion-mnist)\n"
          "  --bn              BatchNorm after each conv and fc3/fc4\n"
          "  --epochs N        default 10\n"
          "  --lr X            default 0.01 (adam: 0.001)\n"
          "  --momentum X      default 0.9\n"
          "  --wd X            weight decay, default 1e-6\n",
          to);
  else
    fputs("Train a CIFAR ResNet (He et al. 2016) or its plain twin.\n\n"
          "  --dataset NAME    cifar10 | mnist | fashion-mnist (default "
          "cifar10)\n"
          "  --data DIR        cifar10: the cifar-10-batches-bin folder\n"
          "  --depth N         20 | 32 | 44 | 56 | 110 (default 20)\n"
          "  --plain           no shortcuts (the plain twin)\n"
          "  --shortcut A|B    A: zero-pad + subsample (default), B: 1x1 conv\n"
          "  --steps N         total steps (default 64000)\n"
          "  --epochs N        train N epochs instead of --steps\n"
          "  --milestones A,B  LR x0.1 at these steps (default 32000,48000)\n"
          "  --lr X            default 0.1 (adam: 0.001)\n"
          "  --momentum X      default 0.9\n"
          "  --wd X            weight decay, default 1e-4\n",
          to);
  fputs(
      "  --batch N         batch size, default 128\n"
      "  --optimizer NAME  sgd | adam (default sgd)\n"
      "  --val-split X     fraction of the training set held out, default 0.2\n"
      "                    (resnet: 0.1)\n"
      "  --seed N          default 0\n"
      "  --threads N       CPU threads, default: all cores\n"
      "  --backend NAME    cpu | cuda (default cpu)\n"
      "  --logdir DIR      TensorBoard events + metrics.csv\n"
      "  --save FILE       save the model state dict (safetensors) at the end\n"
      "  --checkpoint FILE save the training state after each epoch\n"
      "  --resume FILE     continue from a --checkpoint file\n"
      "  --load FILE       load a state dict (tinycnn or PyTorch safetensors)\n"
      "  --eval-only       only evaluate on the test set (with --load)\n"
      "  --summary         print the model's layers, output shapes, parameter\n"
      "                    counts, multiply-adds and memory (for --batch), "
      "exit\n"
      "  --export-onnx FILE  write the model as ONNX (opset 13) at the end,\n"
      "                    before the test (with --load --eval-only: as "
      "loaded)\n"
      "  --quiet           no progress bar or per-epoch lines\n"
      "  --train-limit N   use only the first N training images (quick runs)\n"
      "  --test-limit N    use only the first N test images\n"
      "Data-parallel training (under mpirun -np N; --batch is the global "
      "batch,\n"
      "--threads is per rank; only rank 0 prints, logs and saves):\n"
      "  --sync-bn         BatchNorm statistics over the global batch\n"
      "  --deterministic   the same bits on any number of ranks (a run in\n"
      "                    --chunks micro-batches; also in one process)\n"
      "  --chunks N        deterministic chunks per batch, a multiple of the\n"
      "                    number of ranks (default 8)\n"
      "  --bucket-mb X     gradient all-reduce bucket size (default 25)\n"
      "  --help            this text\n"
      "The last line of a run (not --summary) is: test: loss=L accuracy=A\n",
      to);
}

static int bad(trainer_kind k, const char *opt, const char *why) {
  fprintf(stderr, "%s: %s: %s (see --help)\n", prog(k), opt, why);
  return -1;
}

static int parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!s || !*s)
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  if (!s || !*s)
    return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* A setting the library keeps as a float: a non-zero value that would
 * become 0 or lose its precision (below FLT_MIN) is refused rather than
 * silently changed. */
static int float_ok(double v) {
  return v == 0 || fabs(v) >= FLT_MIN;
}

/* "A,B": two positive steps, parsed in place (no copy to truncate). */
static int parse_pair(const char *s, int64_t out[2]) {
  const char *comma = strchr(s, ',');
  if (!comma || comma == s || strchr(comma + 1, ','))
    return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end != comma || v < 1 || v > ((long long)1 << 40) ||
      parse_int64(comma + 1, 1, (int64_t)1 << 40, &out[1]))
    return -1;
  out[0] = v;
  return 0;
}

int args_parse(train_args *a, trainer_kind kind, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  int lenet = kind == TRAINER_LENET;
  a->dataset = lenet ? "fashion-mnist" : "cifar10";
  a->epochs = 10;
  a->steps = lenet ? 0 : 64000;
  a->batch = 128;
  a->lr = lenet ? 0.01 : 0.1;
  a->momentum = 0.9;
  a->wd = lenet ? 1e-6 : 1e-4;
  a->optimizer = "sgd";
  a->val_split = lenet ? 0.2 : 0.1;
  a->backend = "cpu";
  a->depth = 20;
  a->shortcut = 'A';
  a->milestones[0] = 32000;
  a->milestones[1] = 48000;
  a->chunks = 8;
  a->bucket_mb = 25;

  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int64_t n;
    double d;
#define NEEDS_VALUE()                                                          \
  do {                                                                         \
    if (!v)                                                                    \
      return bad(kind, o, "needs a value");                                    \
    i++;                                                                       \
  } while (0)
/* a file or folder argument that looks like an option is a forgotten
 * value ("--save --quiet"), not a name to create */
#define NEEDS_PATH()                                                           \
  do {                                                                         \
    NEEDS_VALUE();                                                             \
    if (!strncmp(v, "--", 2))                                                  \
      return bad(kind, o,                                                      \
                 "needs a file or folder name, not an option (for "            \
                 "a name that starts with --, write ./--name)");               \
    if (!*v)                                                                   \
      return bad(kind, o, "needs a non-empty name");                           \
  } while (0)
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      args_usage(kind, stdout);
      return 1;
    } else if (!strcmp(o, "--dataset")) {
      NEEDS_VALUE();
      int ok = !strcmp(v, "mnist") || !strcmp(v, "fashion-mnist") ||
               (lenet ? !strcmp(v, "svhn") : !strcmp(v, "cifar10"));
      if (!ok)
        return bad(kind, o,
                   lenet ? "expected mnist, fashion-mnist or svhn"
                         : "expected cifar10, mnist or fashion-mnist");
      a->dataset = v;
    } else if (!strcmp(o, "--data")) {
      NEEDS_PATH();
      a->data_dir = v;
      a->data_set = 1;
    } else if (!strcmp(o, "--epochs")) {
      NEEDS_VALUE();
      if (parse_int64(v, 1, 100000, &n))
        return bad(kind, o, "expected an integer from 1 to 100000");
      a->epochs = (int)n;
      a->epochs_set = 1;
    } else if (!strcmp(o, "--steps") && !lenet) {
      NEEDS_VALUE();
      if (parse_int64(v, 1, (int64_t)1 << 40, &n))
        return bad(kind, o, "expected an integer from 1 to 2^40");
      a->steps = n;
    } else if (!strcmp(o, "--milestones") && !lenet) {
      NEEDS_VALUE();
      if (!strchr(v, ','))
        return bad(kind, o, "expected two steps, e.g. 32000,48000");
      if (parse_pair(v, a->milestones) || a->milestones[1] < a->milestones[0])
        return bad(kind, o,
                   "expected two increasing steps from 1 to 2^40, "
                   "e.g. 32000,48000");
      a->milestones_set = 1;
    } else if (!strcmp(o, "--batch")) {
      NEEDS_VALUE();
      if (parse_int64(v, 1, 65536, &n))
        return bad(kind, o, "expected an integer from 1 to 65536");
      a->batch = (int)n;
    } else if (!strcmp(o, "--lr")) {
      NEEDS_VALUE();
      if (parse_double(v, 0, 100, &d) || d <= 0)
        return bad(kind, o, "expected a positive number up to 100");
      if (!float_ok(d))
        return bad(kind, o,
                   "too small: below 1.2e-38, a float would hold "
                   "0 or lose precision");
      a->lr = d;
      a->lr_set = 1;
    } else if (!strcmp(o, "--momentum")) {
      NEEDS_VALUE();
      if (parse_double(v, 0, 0.9999, &d))
        return bad(kind, o, "expected a number in [0, 0.9999]");
      if (!float_ok(d))
        return bad(kind, o, "too small: 0, or 1.2e-38 and above");
      a->momentum = d;
      a->momentum_set = 1;
    } else if (!strcmp(o, "--wd")) {
      NEEDS_VALUE();
      if (parse_double(v, 0, 1, &d))
        return bad(kind, o, "expected a number in [0, 1]");
      if (!float_ok(d))
        return bad(kind, o, "too small: 0, or 1.2e-38 and above");
      a->wd = d;
      a->wd_set = 1;
    } else if (!strcmp(o, "--optimizer")) {
      NEEDS_VALUE();
      if (strcmp(v, "sgd") && strcmp(v, "adam"))
        return bad(kind, o, "expected sgd or adam");
      a->optimizer = v;
    } else if (!strcmp(o, "--val-split")) {
      NEEDS_VALUE();
      if (parse_double(v, 0, 0.9, &d))
        return bad(kind, o, "expected a fraction in [0, 0.9]");
      a->val_split = d;
    } else if (!strcmp(o, "--seed")) {
      NEEDS_VALUE();
      if (parse_int64(v, 0, INT64_MAX, &n))
        return bad(kind, o, "expected a non-negative integer");
      a->seed = (uint64_t)n;
    } else if (!strcmp(o, "--train-limit") || !strcmp(o, "--test-limit")) {
      NEEDS_VALUE();
      if (parse_int64(v, 1, (int64_t)1 << 40, &n))
        return bad(kind, o, "expected a positive integer");
      if (o[2] == 't' && o[3] == 'r')
        a->train_limit = n;
      else
        a->test_limit = n;
    } else if (!strcmp(o, "--threads")) {
      NEEDS_VALUE();
      if (parse_int64(v, 1, 1024, &n))
        return bad(kind, o, "expected an integer from 1 to 1024");
      a->threads = (int)n;
    } else if (!strcmp(o, "--backend")) {
      NEEDS_VALUE();
      if (strcmp(v, "cpu") && strcmp(v, "cuda"))
        return bad(kind, o, "expected cpu or cuda");
      a->backend = v;
    } else if (!strcmp(o, "--logdir")) {
      NEEDS_PATH();
      a->logdir = v;
    } else if (!strcmp(o, "--save")) {
      NEEDS_PATH();
      a->save = v;
    } else if (!strcmp(o, "--checkpoint")) {
      NEEDS_PATH();
      a->checkpoint = v;
    } else if (!strcmp(o, "--resume")) {
      NEEDS_PATH();
      a->resume = v;
    } else if (!strcmp(o, "--load")) {
      NEEDS_PATH();
      a->load = v;
    } else if (!strcmp(o, "--eval-only")) {
      a->eval_only = 1;
    } else if (!strcmp(o, "--summary")) {
      a->summary = 1;
    } else if (!strcmp(o, "--export-onnx")) {
      NEEDS_VALUE();
      a->export_onnx = v;
    } else if (!strcmp(o, "--quiet")) {
      a->quiet = 1;
    } else if (!strcmp(o, "--sync-bn")) {
      a->sync_bn = 1;
    } else if (!strcmp(o, "--deterministic")) {
      a->deterministic = 1;
    } else if (!strcmp(o, "--chunks")) {
      NEEDS_VALUE();
      if (parse_int64(v, 1, 4096, &n))
        return bad(kind, o, "expected an integer from 1 to 4096");
      a->chunks = (int)n;
    } else if (!strcmp(o, "--bucket-mb")) {
      NEEDS_VALUE();
      if (parse_double(v, 1e-6, 1024, &d))
        return bad(kind, o, "expected a size in MiB from 1e-6 to 1024");
      a->bucket_mb = d;
    } else if (!strcmp(o, "--bn") && lenet) {
      a->bn = 1;
    } else if (!strcmp(o, "--depth") && !lenet) {
      NEEDS_VALUE();
      if (parse_int64(v, 8, 1202, &n) || (n - 2) % 6 != 0)
        return bad(kind, o,
                   "expected 6n+2 from 8 to 1202: 20, 32, 44, 56, "
                   "110, ...");
      a->depth = (int)n;
    } else if (!strcmp(o, "--plain") && !lenet) {
      a->plain = 1;
    } else if (!strcmp(o, "--shortcut") && !lenet) {
      NEEDS_VALUE();
      if (strcmp(v, "A") && strcmp(v, "B"))
        return bad(kind, o, "expected A or B");
      a->shortcut = v[0];
    } else {
      return bad(kind, o, "unknown option");
    }
#undef NEEDS_PATH
#undef NEEDS_VALUE
  }
  if (a->eval_only && !a->load && !a->resume)
    return bad(kind, "--eval-only", "needs --load FILE");
  if (a->load && a->resume)
    return bad(kind, "--load", "cannot be combined with --resume");
  if (!strcmp(a->optimizer, "adam") && !a->lr_set)
    a->lr = 1e-3;
  if (!lenet && a->epochs_set)
    a->steps = 0; /* --epochs overrides the step budget */
  /* only Fashion-MNIST has a system-wide home (Debian's package) */
  if (!a->data_set && !a->summary) {
    if (!strcmp(a->dataset, "fashion-mnist"))
      a->data_dir = "/usr/share/datasets/fashion-mnist";
    else
      return bad(kind, "--data",
                 "needed for this dataset (the folder of "
                 "its files)");
  }
  return 0;
}
