/*
 * args.h - the trainers' command line (a contract: docs/trainers.md).
 * Parsing only; no library calls. Both trainers share the options below;
 * each adds its own (--bn for LeNet; --depth, --plain, --shortcut, --steps
 * for ResNet).
 */
#ifndef TC_EXAMPLE_ARGS_H
#define TC_EXAMPLE_ARGS_H

#include <stdint.h>
#include <stdio.h>

typedef struct train_args {
  /* common */
  const char *dataset; /* mnist | fashion-mnist | svhn | cifar10 */
  const char *data_dir;
  int epochs;
  int64_t steps; /* ResNet: total steps (0: from epochs) */
  int batch;
  double lr, momentum, wd;
  const char *optimizer; /* sgd | adam */
  double val_split;
  uint64_t seed;
  int threads;
  const char *backend;
  const char *logdir;
  const char *save;
  const char *checkpoint;
  const char *resume;
  const char *load;
  int eval_only;
  int summary;             /* print the model summary and exit */
  const char *export_onnx; /* write the model as ONNX at the end */
  int quiet;
  int64_t train_limit; /* 0: all training images */
  int64_t test_limit;  /* 0: all test images */
  /* data-parallel runs (under mpirun) */
  int deterministic; /* same bits for any number of ranks */
  int chunks;        /* deterministic mode's chunks of a batch */
  int sync_bn;       /* BatchNorm over the global batch */
  double bucket_mb;  /* gradient bucket size, MiB */
  /* LeNet */
  int bn;
  /* ResNet */
  int depth;
  int plain;
  char shortcut; /* 'A' or 'B' */
  int64_t milestones[2];
  /* which options the user set (for defaults that depend on others) */
  int lr_set, momentum_set, wd_set, epochs_set, milestones_set, data_set;
} train_args;

typedef enum trainer_kind { TRAINER_LENET, TRAINER_RESNET } trainer_kind;

/* Parses argv into `a` (defaults first). Returns 0 to run, 1 when --help was
 * printed (exit 0), -1 on a bad argument (message printed, exit 2). */
int args_parse(train_args *a, trainer_kind kind, int argc, char **argv);
void args_usage(trainer_kind kind, FILE *to);

#endif
