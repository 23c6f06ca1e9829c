/*
 * trainer.c - the training program behind tinycnn-lenet and tinycnn-resnet,
 * written against the public API only, as a user's program would be.
 *
 * Shape of a run: parse arguments -> load and split data -> build the model
 * -> (optionally) load weights or resume a checkpoint -> epochs of
 * training with validation, logs and checkpoints -> one final test line.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include "trainer.h"

#include <dirent.h>
#include <errno.h>
#include <libtinycnn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"
#include "models.h"

#define FASHION_MNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define MAX_EPOCHS 100000 /* --epochs' upper bound (args.c) */

typedef struct run {
  train_args a;
  trainer_kind kind;
  const char *prog;
  tc_backend *be;
  tc_dataset *train_full, *train, *val, *test;
  tc_transform *tf_train, *tf_eval;
  tc_loader *ld_train, *ld_val, *ld_test;
  tc_model *model;
  tc_loss *loss;
  tc_optimizer *opt;
  tc_scheduler *sched;
  tc_tblog *tb;
  tc_csvlog *csv;
  tc_progress *progress;
  tc_comm *comm; /* the ranks of a data-parallel run (1: alone) */
  tc_ddp *ddp;   /* NULL: a plain single-process step */
  int rank, size;
  int64_t total_steps; /* optimizer steps to take in all */
  int64_t epochs;      /* epochs that cover total_steps */
  int64_t step, epoch; /* where training ended (0: no training) */
} run;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One line naming what failed and why; the exit status of a failed run.
 * In a job of several ranks the failing rank names itself and ends the
 * whole job (MPI_Abort), so no peer waits for it in a collective. */
static int fail(const run *r, const char *what, tc_status st) {
  if (r->size > 1) {
    fprintf(stderr, "%s: rank %d of %d: %s: %s (%s); ending the job\n", r->prog,
            r->rank, r->size, what, tc_last_error(), tc_status_string(st));
    fflush(stderr);
    tc_comm_abort(r->comm, 1);
  } else {
    fprintf(stderr, "%s: %s: %s (%s)\n", r->prog, what, tc_last_error(),
            tc_status_string(st));
  }
  return 1;
}

/* A bad argument found after the job started: one line, exit 2. In a job
 * of several ranks the rank that found it ends the job with status 2. */
static int bad_arg(const run *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", r->prog);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  if (r->size > 1) {
    fflush(stderr);
    tc_comm_abort(r->comm, 2);
  }
  return 2;
}

#define TRY(what, call)                                                        \
  do {                                                                         \
    tc_status st_ = (call);                                                    \
    if (st_ != TC_OK)                                                          \
      return fail(r, (what), st_);                                             \
  } while (0)

static int is_grey(const char *dataset) {
  return !strcmp(dataset, "mnist") || !strcmp(dataset, "fashion-mnist");
}

/* ---- arguments that name files --------------------------------------------
 */

/* The model a checkpoint or state dict holds, as its metadata names it:
 * "lenet", "lenet-bn", "resnet-20-A", "resnet-56-plain", ... */
static void model_tag(const run *r, char *out, size_t cap) {
  const train_args *a = &r->a;
  if (r->kind == TRAINER_LENET)
    snprintf(out, cap, "%s", a->bn ? "lenet-bn" : "lenet");
  else if (a->plain)
    snprintf(out, cap, "resnet-%d-plain", a->depth);
  else
    snprintf(out, cap, "resnet-%d-%c", a->depth, a->shortcut);
}

/* A --resume or --load file written by a trainer says which trainer and
 * model (metadata "trainer", "model"): a file of another one is named as
 * such, before its tensors are compared one by one. Files without these
 * entries (PyTorch's, older ones) are left to the load's own checks. */
static int check_origin(run *r, const char *opt, const char *path) {
  tc_safetensors *st = NULL;
  if (tc_safetensors_create(&st, path) != TC_OK)
    return 0; /* the load itself reports why */
  char want[64];
  model_tag(r, want, sizeof want);
  const char *trainer = tc_safetensors_metadata(st, "trainer");
  const char *model = tc_safetensors_metadata(st, "model");
  int rc = 0;
  if (trainer && strcmp(trainer, r->prog) != 0)
    rc = bad_arg(r, "%s '%s': written by %s, not %s (another model)", opt, path,
                 trainer, r->prog);
  else if (model && strcmp(model, want) != 0)
    rc = bad_arg(r,
                 "%s '%s': holds model %s, these options build %s "
                 "(--depth, --shortcut, --plain and --bn must match)",
                 opt, path, model, want);
  tc_safetensors_destroy(st);
  return rc;
}

/* --save and --checkpoint are written at the end of an epoch or run; a
 * folder that is missing or not writable is found now, not then. */
static int check_writable(const run *r, const char *opt, const char *path) {
  const char *slash = strrchr(path, '/');
  char dir[4096];
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path),
             path);
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return bad_arg(r, "%s '%s': folder '%s' does not exist", opt, path, dir);
  if (access(dir, W_OK | X_OK) != 0)
    return bad_arg(r, "%s '%s': folder '%s' is not writable", opt, path, dir);
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return bad_arg(r, "%s '%s': is a folder", opt, path);
  return 0;
}

/* A fresh run keeps its logs apart: TensorBoard shows every event file of
 * a folder as one run, and metrics.csv would be started over. A folder
 * holding a previous run's logs is refused unless the run is resumed. */
static int check_logdir(const run *r) {
  const char *dir = r->a.logdir;
  struct stat sb;
  if (stat(dir, &sb) != 0)
    return 0; /* created when the logs are opened */
  if (!S_ISDIR(sb.st_mode))
    return bad_arg(r, "--logdir '%s': not a folder", dir);
  if (r->a.resume)
    return 0;
  DIR *d = opendir(dir);
  if (!d)
    return 0; /* opening the logs reports why */
  const char *found = NULL;
  for (struct dirent *e; !found && (e = readdir(d));)
    if (!strcmp(e->d_name, "metrics.csv") || strstr(e->d_name, "tfevents"))
      found = !strcmp(e->d_name, "metrics.csv") ? "metrics.csv"
                                                : "TensorBoard event files";
  closedir(d);
  if (found)
    return bad_arg(r,
                   "--logdir '%s' holds a previous run's logs (%s): "
                   "give --resume CHECKPOINT to continue that run, or "
                   "another --logdir",
                   dir, found);
  return 0;
}

static int check_files(run *r) {
  const train_args *a = &r->a;
  int rc = 0;
  if (a->resume && (rc = check_origin(r, "--resume", a->resume)))
    return rc;
  if (a->load && (rc = check_origin(r, "--load", a->load)))
    return rc;
  if (r->rank != 0) /* only rank 0 writes */
    return 0;
  if (a->save && (rc = check_writable(r, "--save", a->save)))
    return rc;
  if (a->checkpoint && !a->eval_only &&
      (rc = check_writable(r, "--checkpoint", a->checkpoint)))
    return rc;
  if (a->logdir && !a->eval_only && (rc = check_logdir(r)))
    return rc;
  return 0;
}

/* ---- data ---------------------------------------------------------------- */

/* Replaces *ds by its first `count` images (all of them if fewer). */
static int limit(run *r, tc_dataset **ds, int64_t count) {
  int64_t n = tc_dataset_size(*ds);
  if (count >= n)
    return 0;
  int64_t *idx = malloc(sizeof *idx * (size_t)count);
  if (!idx) {
    fprintf(stderr, "%s: out of memory\n", r->prog);
    return 1;
  }
  for (int64_t i = 0; i < count; i++)
    idx[i] = i;
  tc_dataset *sub = NULL;
  tc_status st = tc_dataset_subset(&sub, *ds, idx, count);
  free(idx);
  if (st != TC_OK)
    return fail(r, "taking a subset", st);
  tc_dataset_destroy(*ds);
  *ds = sub;
  return 0;
}

static int load_datasets(run *r) {
  const train_args *a = &r->a;
  const char *dir = a->data_dir;
  if (!dir && !strcmp(a->dataset, "fashion-mnist"))
    dir = FASHION_MNIST_DEFAULT_DIR;
  if (!dir) {
    fprintf(stderr, "%s: --data DIR is required for --dataset %s\n", r->prog,
            a->dataset);
    return 2;
  }
  char what[1200];
  snprintf(what, sizeof what, "loading %s from '%s'", a->dataset, dir);
  if (is_grey(a->dataset)) {
    TRY(what, tc_dataset_load_mnist(&r->train_full, dir, 1));
    TRY(what, tc_dataset_load_mnist(&r->test, dir, 0));
  } else if (!strcmp(a->dataset, "cifar10")) {
    TRY(what, tc_dataset_load_cifar10(&r->train_full, dir, 1));
    TRY(what, tc_dataset_load_cifar10(&r->test, dir, 0));
  } else { /* svhn */
    char path[1100];
    snprintf(path, sizeof path, "%s/train_32x32.mat", dir);
    TRY(what, tc_dataset_load_svhn(&r->train_full, path));
    snprintf(path, sizeof path, "%s/test_32x32.mat", dir);
    TRY(what, tc_dataset_load_svhn(&r->test, path));
  }
  if ((a->train_limit && limit(r, &r->train_full, a->train_limit)) ||
      (a->test_limit && limit(r, &r->test, a->test_limit)))
    return 1;
  int64_t n = tc_dataset_size(r->train_full);
  int64_t n_train = n;
  if (a->val_split == 0) { /* no validation: train on every image */
    r->train = r->train_full;
    r->train_full = NULL;
  } else {
    n_train = tc_dataset_split_count(n, 1.0 - a->val_split);
    if (n_train < 1) {
      fprintf(stderr,
              "%s: --val-split %g leaves no training or validation "
              "images out of %lld\n",
              r->prog, a->val_split, (long long)n);
      return 2;
    }
    TRY("splitting the training set",
        tc_dataset_split(&r->train, &r->val, r->train_full, n_train, a->seed));
  }
  /* the training loader drops a last partial batch: one must fit */
  if (n_train < a->batch) {
    fprintf(stderr,
            "%s: --batch %d: the training split holds only %lld "
            "images, fewer than one batch\n",
            r->prog, a->batch, (long long)n_train);
    return 2;
  }
  return 0;
}

/* Transforms of the reference recipes: grey 28x28 images padded to 32 and
 * repeated to 3 channels, CIFAR's crop + flip (He et al. 2016, section 4.2). */
static int make_transforms(run *r) {
  const train_args *a = &r->a;
  static const float half[3] = {0.5f, 0.5f, 0.5f};
  static const float cifar_mean[3] = {0.4914f, 0.4822f, 0.4465f};
  static const float cifar_std[3] = {0.2023f, 0.1994f, 0.2010f};
  int grey = is_grey(a->dataset);
  int cifar = !strcmp(a->dataset, "cifar10");
  int augment = r->kind == TRAINER_RESNET;
  for (int train = 0; train < 2; train++) {
    tc_transform **tf = train ? &r->tf_train : &r->tf_eval;
    TRY("transform", tc_transform_create(tf));
    TRY("transform", tc_transform_add_to_float(*tf));
    if (grey) {
      TRY("transform", tc_transform_add_pad(*tf, 2, 2, 2, 2, 0.f));
      TRY("transform", tc_transform_add_gray_to_rgb(*tf));
    }
    if (train && augment) {
      TRY("transform", tc_transform_add_random_crop(*tf, 32, 32, 4, 0.f));
      /* digits must not be mirrored; clothes and CIFAR objects may */
      if (strcmp(a->dataset, "mnist") != 0)
        TRY("transform", tc_transform_add_random_hflip(*tf, 0.5f));
    }
    TRY("transform",
        tc_transform_add_normalize(*tf, 3, cifar ? cifar_mean : half,
                                   cifar ? cifar_std : half));
  }
  return 0;
}

static int make_loaders(run *r) {
  tc_loader_options o;
  TRY("loader options", tc_loader_options_init(&o, sizeof o));
  o.batch_size = r->a.batch;
  o.backend = r->be;
  /* each rank its slice of every global batch (--batch is global) */
  o.num_shards = r->size;
  o.shard = r->rank;
  o.seed = r->a.seed;
  o.shuffle = 1;
  o.drop_last = 1; /* as the reference recipes' training loaders */
  TRY("training loader",
      tc_loader_create(&r->ld_train, r->train, r->tf_train, &o));
  o.shuffle = 0;
  o.drop_last = 0;
  if (r->val)
    TRY("validation loader",
        tc_loader_create(&r->ld_val, r->val, r->tf_eval, &o));
  TRY("test loader", tc_loader_create(&r->ld_test, r->test, r->tf_eval, &o));
  return 0;
}

/* ---- model, loss, optimizer, schedule ------------------------------------ */

static int make_model(run *r) {
  const train_args *a = &r->a;
  tc_layer *root = NULL;
  if (r->kind == TRAINER_LENET) {
    TRY("building LeNet-5", model_lenet(&root, a->bn));
  } else {
    int sc = a->plain             ? TC_SHORTCUT_NONE
             : a->shortcut == 'B' ? TC_SHORTCUT_B
                                  : TC_SHORTCUT_A_MAXPOOL;
    TRY("building the ResNet", model_resnet(&root, a->depth, sc));
  }
  const int64_t in_shape[3] = {3, 32, 32};
  TRY("creating the model",
      tc_model_create(&r->model, r->be, root, in_shape, 3, NULL));
  if (r->kind == TRAINER_RESNET)
    TRY("initialising the ResNet", model_resnet_init(r->model, a->seed));
  TRY("loss", tc_loss_create(&r->loss, r->be, TC_LOSS_CROSS_ENTROPY, NULL));
  return 0;
}

/* --summary: the model's table for the training batch (no data needed). */
static int print_summary(run *r) {
  size_t len = 0;
  TRY("model summary", tc_model_summary(r->model, r->a.batch, NULL, 0, &len));
  char *text = malloc(len + 1);
  if (!text) {
    fprintf(stderr, "%s: out of memory\n", r->prog);
    return 1;
  }
  tc_status st = tc_model_summary(r->model, r->a.batch, text, len + 1, NULL);
  if (st == TC_OK)
    fputs(text, stdout);
  free(text);
  return st == TC_OK ? 0 : fail(r, "model summary", st);
}

/* --export-onnx: the model as it is now (trained, or as --load gave it),
 * in evaluation form. */
static int export_onnx(run *r) {
  char what[1100];
  snprintf(what, sizeof what, "exporting ONNX to '%s'", r->a.export_onnx);
  TRY(what, tc_model_export_onnx(r->model, r->a.export_onnx, NULL));
  if (!r->a.quiet)
    printf("wrote %s\n", r->a.export_onnx);
  return 0;
}

static int make_optimizer(run *r) {
  const train_args *a = &r->a;
  if (!strcmp(a->optimizer, "adam")) {
    tc_adam_options o;
    TRY("adam options", tc_adam_options_init(&o, sizeof o));
    o.lr = (float)(a->lr_set ? a->lr : 1e-3);
    o.weight_decay = (float)(a->wd_set ? a->wd : 0.0);
    TRY("creating Adam",
        tc_optimizer_create_adam_for_model(&r->opt, r->model, &o));
  } else {
    tc_sgd_options o;
    TRY("sgd options", tc_sgd_options_init(&o, sizeof o));
    o.lr = (float)a->lr;
    o.momentum = (float)a->momentum;
    o.weight_decay = (float)a->wd;
    TRY("creating SGD",
        tc_optimizer_create_sgd_for_model(&r->opt, r->model, &o));
  }
  int64_t per_epoch = tc_loader_num_batches(r->ld_train);
  if (per_epoch < 1) {
    fprintf(stderr,
            "%s: the training split holds fewer images than one "
            "batch of %d\n",
            r->prog, a->batch);
    return 2;
  }
  if (r->kind == TRAINER_RESNET) {
    /* He et al.: x0.1 at 32k and 48k of 64k steps, stepped per iteration.
     * With --epochs (and no --milestones) the same fractions of the run. */
    r->total_steps = a->epochs_set ? (int64_t)a->epochs * per_epoch : a->steps;
    int64_t ms[2] = {a->milestones[0], a->milestones[1]};
    if (a->epochs_set && !a->milestones_set) {
      ms[0] = r->total_steps / 2;
      ms[1] = r->total_steps * 3 / 4;
    }
    TRY("scheduler",
        tc_scheduler_create_multistep(&r->sched, r->opt, ms, 2, 0.1));
  } else {
    r->total_steps = (int64_t)a->epochs * per_epoch;
  }
  r->epochs = (r->total_steps + per_epoch - 1) / per_epoch;
  if (r->epochs > MAX_EPOCHS) {
    fprintf(stderr,
            "%s: --steps %lld takes %lld epochs of %lld batches; "
            "at most %d epochs (as --epochs)\n",
            r->prog, (long long)r->total_steps, (long long)r->epochs,
            (long long)per_epoch, MAX_EPOCHS);
    return 2;
  }
  return 0;
}

/* ---- one pass ------------------------------------------------------------ */

/* Mean loss and accuracy of the model over a loader's next epoch. */
static int evaluate(run *r, tc_loader *ld, double *out_loss, double *out_acc) {
  TRY("eval mode", tc_model_set_training(r->model, 0));
  /* every rank evaluates its shard with rank 0's running statistics */
  if (r->ddp)
    TRY("sharing the running statistics", tc_ddp_sync_buffers(r->ddp));
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  for (;;) {
    tc_tensor *x, *y, *out;
    TRY("reading a batch", tc_loader_next(ld, &x, &y));
    if (!x)
      break;
    int64_t b = tc_tensor_dim(x, 0), c = 0;
    if (b == 0)
      continue; /* this rank's share of a small last batch */
    float loss;
    TRY("forward", tc_model_forward(r->model, x, &out));
    TRY("loss", tc_loss_compute(r->loss, out, y, &loss, NULL));
    TRY("accuracy", tc_accuracy_count(out, y, &c));
    loss_sum += (double)loss * (double)b;
    correct += c;
    seen += b;
  }
  TRY("train mode", tc_model_set_training(r->model, 1));
  if (r->size > 1) {
    float sums[3] = {(float)loss_sum, (float)correct, (float)seen};
    TRY("adding up the ranks' evaluations",
        tc_comm_allreduce_sum(r->comm, sums, 3));
    loss_sum = sums[0];
    correct = (int64_t)sums[1];
    seen = (int64_t)sums[2];
  }
  *out_loss = seen ? loss_sum / (double)seen : 0.0;
  *out_acc = seen ? (double)correct / (double)seen : 0.0;
  return 0;
}

static int log_row(run *r, int64_t epoch, int64_t step, const char *split,
                   double loss, double acc, double lr, double seconds,
                   double ips) {
  if (r->csv)
    TRY("metrics.csv",
        tc_csvlog_row(r->csv, epoch, step, split, loss, acc, lr, seconds, ips));
  if (r->tb) {
    char tag[64];
    snprintf(tag, sizeof tag, "%s/loss", split);
    TRY("TensorBoard log", tc_tblog_scalar(r->tb, tag, step, loss));
    snprintf(tag, sizeof tag, "%s/accuracy", split);
    TRY("TensorBoard log", tc_tblog_scalar(r->tb, tag, step, acc));
    if (!strcmp(split, "train")) {
      TRY("TensorBoard log", tc_tblog_scalar(r->tb, "lr", step, lr));
      TRY("TensorBoard log",
          tc_tblog_scalar(r->tb, "train/images_per_sec", step, ips));
    }
    TRY("TensorBoard log", tc_tblog_flush(r->tb));
  }
  return 0;
}

/* `resume_step`: the checkpoint's step (both logs keep what they hold at
 * steps up to it), or -1 for a fresh run.
 * An evaluation-only run keeps every row and adds its test row. */
static int open_logs(run *r, int64_t resume_step) {
  if (!r->a.logdir || r->rank != 0 || r->tb)
    return 0;
  TRY("TensorBoard log", tc_tblog_create(&r->tb, r->a.logdir));
  /* an evaluation-only run (INT64_MAX) appends: nothing to purge */
  if (resume_step >= 0 && resume_step < INT64_MAX)
    TRY("TensorBoard log", tc_tblog_resume(r->tb, resume_step));
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.csv", r->a.logdir);
  TRY("metrics.csv", tc_csvlog_create(&r->csv, path, resume_step));
  return 0;
}

static int train(run *r) {
  const train_args *a = &r->a;
  int64_t step = 0, epoch = 0;
  if (a->resume) {
    char what[1100];
    snprintf(what, sizeof what, "resuming from '%s'", a->resume);
    TRY(what, tc_checkpoint_load(r->model, a->resume, r->opt, r->sched,
                                 r->ld_train, &epoch, &step));
    /* the loader knows which epoch the next batch belongs to */
    int64_t lb;
    TRY("loader state", tc_loader_get_state(r->ld_train, &epoch, &lb));
    if (!a->quiet)
      printf("resumed from %s at epoch %lld, step %lld\n", a->resume,
             (long long)epoch, (long long)step);
  }
  int rc = open_logs(r, a->resume ? step : -1);
  if (rc)
    return rc;
  if (r->size > 1 || a->deterministic) {
    tc_ddp_options o;
    TRY("data-parallel options", tc_ddp_options_init(&o, sizeof o));
    o.bucket_bytes = (int64_t)(a->bucket_mb * 1048576.0);
    if (o.bucket_bytes < 4)
      o.bucket_bytes = 4;
    if (o.first_bucket_bytes > o.bucket_bytes)
      o.first_bucket_bytes = o.bucket_bytes;
    o.sync_batchnorm = a->sync_bn;
    o.deterministic = a->deterministic;
    o.chunks = a->chunks;
    TRY("data-parallel training",
        tc_ddp_create(&r->ddp, r->model, r->comm, &o));
  }
  tc_progress_options po;
  TRY("progress", tc_progress_options_init(&po, sizeof po));
  po.quiet = a->quiet;
  TRY("progress", tc_progress_create(&r->progress, stderr, &po));
  int64_t per_epoch = tc_loader_num_batches(r->ld_train);

  for (; epoch < r->epochs && step < r->total_steps; epoch++) {
    double t0 = now_seconds(), loss_sum = 0, lr = 0;
    int64_t correct = 0, seen = 0, batch = 0;
    TRY("lr", tc_optimizer_get_lr(r->opt, 0, &lr));
    TRY("progress",
        tc_progress_begin(r->progress, epoch + 1, r->epochs, per_epoch));
    for (;;) {
      tc_tensor *x, *y, *out;
      TRY("reading a batch", tc_loader_next(r->ld_train, &x, &y));
      if (!x)
        break;
      int64_t b = tc_tensor_dim(x, 0), c = 0;
      float loss;
      if (r->ddp) {
        /* the loss and hits of the global batch (drop_last: full) */
        int empty = b == 0;
        b = a->batch;
        TRY("zero_grad", tc_optimizer_zero_grad(r->opt));
        TRY("training step",
            tc_ddp_train_step(r->ddp, r->loss, empty ? NULL : x,
                              empty ? NULL : y, &loss, &c));
      } else {
        TRY("forward", tc_model_forward(r->model, x, &out));
        TRY("loss", tc_loss_compute(r->loss, out, y, &loss,
                                    tc_model_output_grad(r->model)));
        TRY("accuracy", tc_accuracy_count(out, y, &c));
        TRY("zero_grad", tc_optimizer_zero_grad(r->opt));
        TRY("backward", tc_model_backward(r->model, NULL));
      }
      TRY("optimizer step", tc_optimizer_step(r->opt));
      if (r->sched)
        TRY("scheduler step", tc_scheduler_step(r->sched));
      step++;
      batch++;
      loss_sum += (double)loss * (double)b;
      correct += c;
      seen += b;
      TRY("progress",
          tc_progress_update(r->progress, batch, loss_sum / (double)seen,
                             (double)correct / (double)seen, seen));
      /* a run that ends mid-epoch stops here; at an epoch's end the loader
       * still hands out its end signal, so a checkpoint resumes at the next
       * epoch */
      if (step >= r->total_steps && batch < per_epoch)
        break;
    }
    TRY("progress", tc_progress_end(r->progress));
    double secs = now_seconds() - t0;
    double tl = seen ? loss_sum / (double)seen : 0;
    double ta = seen ? (double)correct / (double)seen : 0;
    double ips = secs > 0 ? (double)seen / secs : 0;
    double vl = 0, va = 0;
    if (r->ld_val && (rc = evaluate(r, r->ld_val, &vl, &va)))
      return rc;
    if (!a->quiet) {
      char val[96];
      if (r->ld_val)
        snprintf(val, sizeof val, "val loss=%.4f accuracy=%.4f", vl, va);
      else
        snprintf(val, sizeof val, "val: none (--val-split 0)");
      printf("epoch %lld/%lld: train loss=%.4f accuracy=%.4f | %s | lr=%g | "
             "%.2f s, %.0f images/s\n",
             (long long)epoch + 1, (long long)r->epochs, tl, ta, val, lr, secs,
             ips);
    }
    fflush(stdout);
    if ((rc = log_row(r, epoch + 1, step, "train", tl, ta, lr, secs, ips)) ||
        (r->ld_val &&
         (rc = log_row(r, epoch + 1, step, "val", vl, va, lr, secs, ips))))
      return rc;
    if (a->checkpoint && r->rank == 0) {
      char e[32];
      snprintf(e, sizeof e, "%lld", (long long)epoch + 1);
      char model[64];
      model_tag(r, model, sizeof model);
      const char *meta[] = {"trainer",  r->prog, "model", model, "dataset",
                            a->dataset, "epoch", e,       NULL};
      TRY("saving the checkpoint",
          tc_checkpoint_save(r->model, a->checkpoint, r->opt, r->sched,
                             r->ld_train, epoch + 1, step, meta));
    }
  }
  r->step = step;
  r->epoch = epoch;
  return 0;
}

static void cleanup(run *r) {
  tc_ddp_destroy(r->ddp);
  tc_progress_destroy(r->progress);
  tc_csvlog_destroy(r->csv);
  tc_tblog_destroy(r->tb);
  tc_scheduler_destroy(r->sched);
  tc_optimizer_destroy(r->opt);
  tc_loss_destroy(r->loss);
  tc_model_destroy(r->model);
  tc_loader_destroy(r->ld_test);
  tc_loader_destroy(r->ld_val);
  tc_loader_destroy(r->ld_train);
  tc_transform_destroy(r->tf_eval);
  tc_transform_destroy(r->tf_train);
  tc_dataset_destroy(r->test);
  tc_dataset_destroy(r->val);
  tc_dataset_destroy(r->train);
  tc_dataset_destroy(r->train_full);
  tc_backend_destroy(r->be);
  tc_comm_destroy(r->comm); /* last: it may end MPI */
}

static int run_all(run *r) {
  const train_args *a = &r->a;
  int rc;
  if (a->threads > 0)
    TRY("--threads", tc_set_num_threads(a->threads));
  tc_set_seed(a->seed);
  tc_status cs = dist_open(&r->comm);
  if (cs != TC_OK) {
    fprintf(stderr, "%s: starting data-parallel training: %s (%s)\n", r->prog,
            tc_last_error(), tc_status_string(cs));
    return 1;
  }
  r->rank = tc_comm_rank(r->comm);
  r->size = tc_comm_size(r->comm);
  if (r->rank != 0)
    r->a.quiet = 1; /* one progress bar and one set of lines: rank 0's */
  if ((rc = check_files(r)))
    return rc;
  char what[128];
  snprintf(what, sizeof what, "backend '%s'", a->backend);
  TRY(what, tc_backend_create(&r->be, a->backend));
  if (a->summary) {
    if ((rc = make_model(r)))
      return rc;
    return r->rank == 0 ? print_summary(r) : 0;
  }
  if ((rc = load_datasets(r)) || (rc = make_transforms(r)) ||
      (rc = make_loaders(r)) || (rc = make_model(r)) ||
      (rc = make_optimizer(r)))
    return rc;
  if (a->load) {
    char lw[1100];
    snprintf(lw, sizeof lw, "loading '%s'", a->load);
    TRY(lw, tc_model_load(r->model, a->load));
  }
  if (!a->eval_only && (rc = train(r)))
    return rc;
  if (a->save && r->rank == 0) {
    char model[64];
    model_tag(r, model, sizeof model);
    const char *meta[] = {"trainer", r->prog,    "model", model,
                          "dataset", a->dataset, NULL};
    TRY("saving the model", tc_model_save(r->model, a->save, meta));
  }
  if (a->export_onnx && r->rank == 0 && (rc = export_onnx(r)))
    return rc;
  if (a->eval_only && (rc = open_logs(r, INT64_MAX)))
    return rc;
  double tl, ta, lr = 0;
  double t0 = now_seconds();
  if ((rc = evaluate(r, r->ld_test, &tl, &ta)))
    return rc;
  double secs = now_seconds() - t0;
  double ips = secs > 0 ? (double)tc_dataset_size(r->test) / secs : 0;
  TRY("lr", tc_optimizer_get_lr(r->opt, 0, &lr));
  /* the final figures in the logs too, at the last step (only rank 0 has
   * logs open) */
  if ((rc = log_row(r, r->epoch, r->step, "test", tl, ta, lr, secs, ips)))
    return rc;
  if (r->rank == 0)
    printf("test: loss=%.4f accuracy=%.4f\n", tl, ta);
  return 0;
}

int trainer_main(trainer_kind kind, int argc, char **argv) {
  run r;
  memset(&r, 0, sizeof r);
  r.kind = kind;
  r.prog = kind == TRAINER_LENET ? "tinycnn-lenet" : "tinycnn-resnet";
  int p = args_parse(&r.a, kind, argc, argv);
  if (p == 1)
    return 0;
  if (p < 0)
    return 2;
  if (r.a.eval_only && !r.a.load) {
    fprintf(stderr, "%s: --eval-only needs --load FILE\n", r.prog);
    return 2;
  }
  int rc = run_all(&r);
  cleanup(&r);
  return rc;
}
