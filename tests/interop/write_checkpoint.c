/*
 * write_checkpoint.c - writes a small training checkpoint (conv, batch
 * norm, linear; SGD with momentum; a StepLR; one loader) to argv[1], for
 * torch_load_checkpoint.py to read with safetensors.torch.
 */
#include <stdio.h>

#include <libtinycnn.h>

#define OK(call)                                                               \
  do {                                                                         \
    tc_status s_ = (call);                                                     \
    if (s_ != TC_OK) {                                                         \
      fprintf(stderr, "%s: %s\n", #call, tc_last_error());                     \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT.safetensors\n", argv[0]);
    return 2;
  }
  static uint8_t pixels[8 * 1 * 6 * 6];
  static int32_t labels[8];
  for (int i = 0; i < 8; i++)
    labels[i] = i % 3;
  tc_backend *be;
  OK(tc_backend_create(&be, "cpu"));
  tc_layer *seq, *l;
  OK(tc_sequential_create(&seq));
  OK(tc_conv2d_create(&l, 1, 2, 3, NULL));
  OK(tc_sequential_add(seq, "conv1", l));
  OK(tc_batchnorm2d_create(&l, 2, NULL));
  OK(tc_sequential_add(seq, "bn1", l));
  OK(tc_flatten_create(&l));
  OK(tc_sequential_add(seq, "flat", l));
  OK(tc_linear_create(&l, 32, 3, NULL));
  OK(tc_sequential_add(seq, "fc", l));
  const int64_t in[3] = {1, 6, 6};
  tc_model *m;
  OK(tc_model_create(&m, be, seq, in, 3, NULL));
  /* a seed with bit 63 set: its I64 bits read back negative */
  OK(tc_model_set_seed(m, UINT64_MAX - 5));
  tc_sgd_options o = TC_SGD_OPTIONS_INIT;
  o.momentum = 0.9f;
  tc_optimizer *opt;
  OK(tc_optimizer_create_sgd_for_model(&opt, m, &o));
  tc_scheduler *sched;
  OK(tc_scheduler_create_step(&sched, opt, 2, 0.5));
  tc_dataset *ds;
  OK(tc_dataset_create(&ds, 8, 1, 6, 6, 3, pixels, labels));
  tc_loader_options lo;
  OK(tc_loader_options_init(&lo, sizeof lo));
  lo.batch_size = 4;
  lo.backend = be;
  tc_loader *ld;
  OK(tc_loader_create(&ld, ds, NULL, &lo));
  OK(tc_checkpoint_save(m, argv[1], opt, sched, ld, 1, 7, NULL));
  tc_loader_destroy(ld);
  tc_dataset_destroy(ds);
  tc_scheduler_destroy(sched);
  tc_optimizer_destroy(opt);
  tc_model_destroy(m);
  tc_backend_destroy(be);
  return 0;
}
