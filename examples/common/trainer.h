/*
 * trainer.h - the training program shared by tinycnn-lenet and
 * tinycnn-resnet: data, model, optimizer, schedule, logs, checkpoints and
 * the final test line. Uses only the public API (libtinycnn.h).
 */
#ifndef TC_EXAMPLE_TRAINER_H
#define TC_EXAMPLE_TRAINER_H

#include "args.h"

/* Runs the trainer `kind` with its command line; returns the process exit
 * status (0 success, 1 a run-time failure, 2 a bad argument). */
int trainer_main(trainer_kind kind, int argc, char **argv);

#endif
