/*
 * models.h - the bundled models built from public tinycnn pieces: LeNet-5 of
 * LeCun et al. 1998 (optionally with BatchNorm) and the CIFAR ResNet family
 * of He et al. 2016 (6n+2 layers, shortcut A or B, or the plain twin).
 * Names follow the PyTorch modules of the reference recipes, so state dicts
 * are interchangeable.
 */
#ifndef TC_EXAMPLE_MODELS_H
#define TC_EXAMPLE_MODELS_H

#include <libtinycnn.h>

/* LeNet-5 for 3x32x32 inputs: conv1 6@5x5 - [bn1] - relu - maxpool 2 -
 * conv2 16@5x5 - [bn2] - relu - maxpool 2 - fc3 400-120 - [bn3] - relu -
 * fc4 120-84 - [bn4] - relu - fc5 84-10. */
tc_status model_lenet(tc_layer **out, int with_bn);

/* CIFAR ResNet of depth 6n+2: conv1 3x3@16 - bn1 - relu - layers_2n (n
 * blocks, 16) - layers_4n (32, stride 2) - layers_6n (64, stride 2) -
 * avg_pool (8x8) - flatten - fc_out 64-10. `shortcut` is a tc_shortcut;
 * TC_SHORTCUT_NONE gives the plain twin. Convolutions get kaiming normal
 * (fan_out, relu) and BN weight 1 bias 0, as the seed does: call
 * model_resnet_init() once the model exists. */
tc_status model_resnet(tc_layer **out, int depth, int shortcut);
tc_status model_resnet_init(tc_model *m, uint64_t seed);

#endif
