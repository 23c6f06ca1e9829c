/**
 * @file
 * @brief libtinycnn.h - the public API of tinycnn, a C11 library to build,
 * train and run convolutional networks. The only header a program needs.
 *
 * Link with `pkg-config --cflags --libs tinycnn`. Everything is reached
 * through opaque handles (tc_tensor, tc_backend, ...); option structs begin
 * with `size_t struct_size` so they can grow without breaking programs.
 * See docs/ for the user guide.
 */
#ifndef LIBTINYCNN_H
#define LIBTINYCNN_H

#include "tinycnn/core.h"  /* errors, allocator, backends, tensors, RNG */
#include "tinycnn/nn.h"    /* layers, models, losses, initialisation */
#include "tinycnn/optim.h" /* optimizers, LR schedulers */
#include "tinycnn/data.h"  /* datasets, transforms, loaders */
#include "tinycnn/io.h"    /* checkpoints (safetensors), training logs */
#include "tinycnn/dist.h"  /* communicators, data-parallel training */

#endif /* LIBTINYCNN_H */
