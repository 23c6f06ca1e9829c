/*
 * tinycnn-resnet - trains a CIFAR ResNet (seed notebook 003) or its plain
 * twin on CIFAR-10, MNIST or Fashion-MNIST. See docs/trainers.md or --help.
 */
#include "../common/trainer.h"

int main(int argc, char **argv) {
  return trainer_main(TRAINER_RESNET, argc, argv);
}
