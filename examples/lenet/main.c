/*
 * tinycnn-lenet - trains LeNet-5 (LeCun et al. 1998) on MNIST,
 * Fashion-MNIST or SVHN. See docs/trainers.md or --help.
 */
#include "../common/trainer.h"

int main(int argc, char **argv) {
  return trainer_main(TRAINER_LENET, argc, argv);
}
