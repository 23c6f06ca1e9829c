/*
 * tinycnn-resnet - trains a CIFAR ResNet (He et al. 2016) or its plain
 * twin on CIFAR-10, MNIST or Fashion-MNIST. See docs/trainers.md or --help.
 */
#include "../common/trainer.h"

int main(int argc, char **argv) {
  return trainer_main(TRAINER_RESNET, argc, argv);
}
