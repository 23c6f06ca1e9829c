/*
 * test_resume.c - exact resume: training N steps, saving a
 * training checkpoint, loading it into freshly built objects and training
 * M more gives bit-identical weights to N+M steps at once -- with dropout,
 * batch norm, augmentation, shuffling, momentum and an LR schedule, and
 * with a checkpoint taken in the middle of an epoch. Also: a checkpoint
 * that does not match the objects is refused without changing them.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_util.h"
#include "testutil.h"

#define N_IMAGES 96
#define BATCH 16 /* 6 batches per epoch */

typedef struct rig {
  tc_backend *be;
  tc_dataset *ds;
  tc_transform *tf;
  tc_loader *ld;
  tc_model *m;
  tc_loss *loss;
  tc_optimizer *opt;
  tc_scheduler *sched;
} rig;

static int64_t rig_batch = BATCH; /* the loader's batch size */
static uint8_t pixels[N_IMAGES * 3 * 12 * 12];
static int32_t labels[N_IMAGES];

static void make_data(void) {
  uint32_t s = 12345;
  for (size_t i = 0; i < sizeof pixels; i++) {
    s = s * 1664525u + 1013904223u;
    pixels[i] = (uint8_t)(s >> 24);
  }
  for (int i = 0; i < N_IMAGES; i++)
    labels[i] = i % 4;
}

static void rig_build(rig *r, int adam) {
  memset(r, 0, sizeof *r);
  tc_set_seed(7);
  r->be = nu_cpu();
  NU_OK(tc_dataset_create(&r->ds, N_IMAGES, 3, 12, 12, 4, pixels, labels));
  NU_OK(tc_transform_create(&r->tf));
  NU_OK(tc_transform_add_to_float(r->tf));
  NU_OK(tc_transform_add_random_crop(r->tf, 12, 12, 2, 0.f));
  NU_OK(tc_transform_add_random_hflip(r->tf, 0.5f));
  tc_loader_options lo;
  NU_OK(tc_loader_options_init(&lo, sizeof lo));
  lo.batch_size = rig_batch;
  lo.shuffle = 1;
  lo.seed = 99;
  lo.backend = r->be;
  NU_OK(tc_loader_create(&r->ld, r->ds, r->tf, &lo));

  tc_layer *seq, *l;
  NU_OK(tc_sequential_create(&seq));
  NU_OK(tc_conv2d_create(&l, 3, 4, 3, NULL));
  NU_OK(tc_sequential_add(seq, "conv1", l));
  NU_OK(tc_batchnorm2d_create(&l, 4, NULL));
  NU_OK(tc_sequential_add(seq, "bn1", l));
  NU_OK(tc_relu_create(&l));
  NU_OK(tc_sequential_add(seq, "relu1", l));
  NU_OK(tc_dropout2d_create(&l, 0.2f));
  NU_OK(tc_sequential_add(seq, "drop2d", l));
  NU_OK(tc_maxpool2d_create(&l, 2, NULL));
  NU_OK(tc_sequential_add(seq, "pool", l));
  NU_OK(tc_flatten_create(&l));
  NU_OK(tc_sequential_add(seq, "flat", l));
  NU_OK(tc_dropout_create(&l, 0.3f));
  NU_OK(tc_sequential_add(seq, "drop", l));
  NU_OK(tc_linear_create(&l, 4 * 5 * 5, 4, NULL));
  NU_OK(tc_sequential_add(seq, "fc", l));
  const int64_t in[3] = {3, 12, 12};
  r->m = nu_model(r->be, seq, in, 3, 0);
  NU_OK(tc_loss_create(&r->loss, r->be, TC_LOSS_CROSS_ENTROPY, NULL));
  if (adam) {
    tc_adam_options o;
    NU_OK(tc_adamw_options_init(&o, sizeof o));
    o.amsgrad = 1;
    NU_OK(tc_optimizer_create_adamw_for_model(&r->opt, r->m, &o));
  } else {
    tc_sgd_options o;
    NU_OK(tc_sgd_options_init(&o, sizeof o));
    o.lr = 0.05f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    NU_OK(tc_optimizer_create_sgd_for_model(&r->opt, r->m, &o));
  }
  const int64_t ms[2] = {5, 9};
  NU_OK(tc_scheduler_create_multistep(&r->sched, r->opt, ms, 2, 0.5));
}

static void rig_free(rig *r) {
  tc_scheduler_destroy(r->sched);
  tc_optimizer_destroy(r->opt);
  tc_loss_destroy(r->loss);
  tc_model_destroy(r->m);
  tc_loader_destroy(r->ld);
  tc_transform_destroy(r->tf);
  tc_dataset_destroy(r->ds);
  tc_backend_destroy(r->be);
}

/* `steps` training steps, crossing epoch ends as the trainers do. */
static void rig_train(rig *r, int steps) {
  for (int done = 0; done < steps;) {
    tc_tensor *x, *y, *out;
    NU_OK(tc_loader_next(r->ld, &x, &y));
    if (!x)
      continue; /* end of an epoch */
    float loss;
    NU_OK(tc_model_forward(r->m, x, &out));
    NU_OK(tc_loss_compute(r->loss, out, y, &loss, tc_model_output_grad(r->m)));
    NU_OK(tc_optimizer_zero_grad(r->opt));
    NU_OK(tc_model_backward(r->m, tc_model_output_grad(r->m)));
    NU_OK(tc_optimizer_step(r->opt));
    NU_OK(tc_scheduler_step(r->sched));
    done++;
  }
}

static float *rig_params(rig *r) {
  tc_tensor *p = tc_model_params_flat(r->m);
  float *h = malloc(sizeof(float) * (size_t)tc_tensor_numel(p));
  nu_get(p, h);
  return h;
}

static void exact_resume(int adam, int first, int second) {
  make_data();
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_resume");

  rig a;
  rig_build(&a, adam);
  rig_train(&a, first + second);
  float *straight = rig_params(&a);
  int64_t n = tc_tensor_numel(tc_model_params_flat(a.m));
  rig_free(&a);

  rig b;
  rig_build(&b, adam);
  rig_train(&b, first);
  NU_OK(tc_checkpoint_save(b.m, path, b.opt, b.sched, b.ld, 0, first, NULL));
  rig_free(&b);

  /* a fresh process would start from a different global seed */
  tc_set_seed(12345);
  rig c;
  rig_build(&c, adam);
  int64_t epoch = -1, step = -1;
  NU_OK(tc_checkpoint_load(c.m, path, c.opt, c.sched, c.ld, &epoch, &step));
  ck_assert_int_eq(step, first);
  rig_train(&c, second);
  float *resumed = rig_params(&c);
  ck_assert_msg(memcmp(straight, resumed, sizeof(float) * (size_t)n) == 0,
                "resumed weights differ from an uninterrupted run");
  rig_free(&c);
  free(straight);
  free(resumed);
  unlink(path);
}

START_TEST(test_resume_sgd_epoch_boundary) {
  exact_resume(0, 6, 7);
}
END_TEST

START_TEST(test_resume_sgd_mid_epoch) {
  exact_resume(0, 4, 9);
}
END_TEST

START_TEST(test_resume_adamw_amsgrad) {
  exact_resume(1, 8, 5);
}
END_TEST

START_TEST(test_mismatch_leaves_objects_unchanged) {
  make_data();
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_resume");
  rig a;
  rig_build(&a, 0);
  rig_train(&a, 3);
  NU_OK(tc_checkpoint_save(a.m, path, a.opt, a.sched, a.ld, 0, 3, NULL));
  rig_free(&a);

  /* an Adam optimizer finds no exp_avg in an SGD checkpoint */
  rig b;
  rig_build(&b, 1);
  float *before = rig_params(&b);
  int64_t n = tc_tensor_numel(tc_model_params_flat(b.m));
  int64_t e0, b0;
  NU_OK(tc_loader_get_state(b.ld, &e0, &b0));
  tc_status st =
      tc_checkpoint_load(b.m, path, b.opt, b.sched, b.ld, NULL, NULL);
  ck_assert_int_eq(st, TC_ESHAPE);
  ck_assert_msg(strstr(tc_last_error(), "exp_avg") != NULL, "%s",
                tc_last_error());
  float *after = rig_params(&b);
  ck_assert(memcmp(before, after, sizeof(float) * (size_t)n) == 0);
  ck_assert_int_eq(tc_scheduler_get_last_epoch(b.sched), 0);
  int64_t e1, b1;
  NU_OK(tc_loader_get_state(b.ld, &e1, &b1));
  ck_assert(e0 == e1 && b0 == b1);
  free(before);
  free(after);
  rig_free(&b);

  /* a plain state dict is not a training checkpoint */
  rig c;
  rig_build(&c, 0);
  NU_OK(tc_model_save(c.m, path, NULL));
  ck_assert_int_eq(
      tc_checkpoint_load(c.m, path, c.opt, c.sched, c.ld, NULL, NULL),
      TC_EFORMAT);
  ck_assert_int_eq(tc_checkpoint_load(c.m, NULL, NULL, NULL, NULL, NULL, NULL),
                   TC_EINVAL);
  ck_assert_int_eq(tc_checkpoint_save(NULL, path, NULL, NULL, NULL, 0, 0, NULL),
                   TC_EINVAL);
  rig_free(&c);
  unlink(path);
}
END_TEST

/* Every byte of the optimizer's state (moments and step), concatenated. */
static unsigned char *opt_bytes(tc_optimizer *opt, size_t *n) {
  size_t total = 0;
  for (int64_t i = 0; i < tc_optimizer_num_state(opt); i++) {
    const char *name;
    tc_tensor *t;
    NU_OK(tc_optimizer_get_state(opt, i, &name, &t));
    total +=
        (size_t)tc_tensor_numel(t) * (tc_tensor_dtype(t) == TC_INT64 ? 8 : 4);
  }
  unsigned char *b = malloc(total + 1), *p = b;
  for (int64_t i = 0; i < tc_optimizer_num_state(opt); i++) {
    const char *name;
    tc_tensor *t;
    NU_OK(tc_optimizer_get_state(opt, i, &name, &t));
    size_t k =
        (size_t)tc_tensor_numel(t) * (tc_tensor_dtype(t) == TC_INT64 ? 8 : 4);
    NU_OK(tc_tensor_copy_to_host(t, p, k));
    p += k;
  }
  *n = total;
  return b;
}

/* A checkpoint whose loader position this loader refuses (saved at batch 5
 * of 6, loaded with one batch per epoch) is refused before anything
 * changes: parameters, optimizer state and step, scheduler and loader. */
START_TEST(test_loader_mismatch_leaves_objects_unchanged) {
  make_data();
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_resume");
  rig a;
  rig_build(&a, 0);
  rig_train(&a, 5);
  NU_OK(tc_checkpoint_save(a.m, path, a.opt, a.sched, a.ld, 0, 5, NULL));
  rig_free(&a);

  rig_batch = N_IMAGES; /* one batch per epoch */
  rig b;
  rig_build(&b, 0);
  rig_batch = BATCH;
  rig_train(&b, 2);
  float *before = rig_params(&b);
  int64_t n = tc_tensor_numel(tc_model_params_flat(b.m));
  size_t no0, no1;
  unsigned char *opt0 = opt_bytes(b.opt, &no0);
  int64_t step0, step1, e0, b0, e1, b1;
  NU_OK(tc_optimizer_get_step(b.opt, &step0));
  NU_OK(tc_loader_get_state(b.ld, &e0, &b0));
  int64_t last0 = tc_scheduler_get_last_epoch(b.sched);
  tc_status st =
      tc_checkpoint_load(b.m, path, b.opt, b.sched, b.ld, NULL, NULL);
  ck_assert_int_eq(st, TC_EINVAL);
  ck_assert_msg(strstr(tc_last_error(), "loader") != NULL, "%s",
                tc_last_error());
  float *after = rig_params(&b);
  ck_assert(memcmp(before, after, sizeof(float) * (size_t)n) == 0);
  unsigned char *opt1 = opt_bytes(b.opt, &no1);
  ck_assert_uint_eq(no0, no1);
  ck_assert(memcmp(opt0, opt1, no0) == 0);
  NU_OK(tc_optimizer_get_step(b.opt, &step1));
  ck_assert_int_eq(step0, step1);
  ck_assert_int_eq(tc_scheduler_get_last_epoch(b.sched), last0);
  NU_OK(tc_loader_get_state(b.ld, &e1, &b1));
  ck_assert(e0 == e1 && b0 == b1);
  free(before);
  free(after);
  free(opt0);
  free(opt1);
  rig_free(&b);
  unlink(path);
}
END_TEST

/* Replaces the 8 bytes `from` (little-endian) by `to` in the file. */
static void patch_i64(const char *path, int64_t from, int64_t to) {
  size_t n;
  unsigned char *b = tu_slurp(path, &n);
  int hits = 0;
  for (size_t i = 0; i + 8 <= n; i++)
    if (!memcmp(b + i, &from, 8)) {
      memcpy(b + i, &to, 8);
      hits++;
    }
  ck_assert_int_eq(hits, 1);
  tu_write_file(path, b, n);
  free(b);
}

/* A checkpoint whose optimizer step or scheduler epoch is INT64_MAX is
 * refused at load with the limit named (it used to load, and the next
 * step overflowed), the objects unchanged. */
START_TEST(test_counter_over_limit) {
  make_data();
  const int64_t mark = 0x0013572468ace0f1; /* < 2^53, unique in the file */
  const char *names[2] = {"optimizer.step", "scheduler.last_epoch"};
  for (int k = 0; k < 2; k++) {
    char path[512];
    tu_tmpfile(path, sizeof path, "tc_resume");
    rig a;
    rig_build(&a, 1);
    rig_train(&a, 2);
    if (k == 0)
      NU_OK(tc_optimizer_set_step(a.opt, mark));
    else
      NU_OK(tc_scheduler_set_last_epoch(a.sched, mark));
    NU_OK(tc_checkpoint_save(a.m, path, a.opt, a.sched, a.ld, 0, 2, NULL));
    rig_free(&a);
    patch_i64(path, mark, INT64_MAX);

    rig b;
    rig_build(&b, 1);
    rig_train(&b, 1);
    float *before = rig_params(&b);
    int64_t n = tc_tensor_numel(tc_model_params_flat(b.m)), step0, step1;
    NU_OK(tc_optimizer_get_step(b.opt, &step0));
    ck_assert_int_eq(
        tc_checkpoint_load(b.m, path, b.opt, b.sched, b.ld, NULL, NULL),
        TC_EINVAL);
    ck_assert_msg(strstr(tc_last_error(), names[k]) &&
                      strstr(tc_last_error(), "2^53"),
                  "%s", tc_last_error());
    float *after = rig_params(&b);
    ck_assert(memcmp(before, after, sizeof(float) * (size_t)n) == 0);
    NU_OK(tc_optimizer_get_step(b.opt, &step1));
    ck_assert_int_eq(step0, step1);
    ck_assert_int_eq(tc_scheduler_get_last_epoch(b.sched), 1);
    NU_OK(tc_optimizer_step(b.opt));
    free(before);
    free(after);
    rig_free(&b);
    unlink(path);
  }
}
END_TEST

/* The 64-bit RNG words are written as I64 (safetensors.torch reads U64
 * only on torch >= 2.3), bits unchanged; files that hold them as U64, as
 * older versions wrote, still load. */
START_TEST(test_rng_words_i64) {
  make_data();
  static const char *const words[3] = {"rng.seed", "rng.model_seed",
                                       "rng.model_offset"};
  char path[512];
  tu_tmpfile(path, sizeof path, "tc_resume");
  rig a;
  rig_build(&a, 0);
  rig_train(&a, 2);
  NU_OK(tc_model_set_seed(a.m, UINT64_MAX - 5)); /* bit 63 set */
  NU_OK(tc_checkpoint_save(a.m, path, a.opt, a.sched, a.ld, 0, 2, NULL));
  tc_safetensors *st = NULL;
  NU_OK(tc_safetensors_create(&st, path));
  for (int k = 0; k < 3; k++) {
    tc_st_dtype d;
    int64_t shape[1];
    int nd = -1;
    NU_OK(tc_safetensors_info(st, words[k], &d, shape, 1, &nd));
    ck_assert_msg(d == TC_ST_I64 && nd == 0, "%s: dtype %d", words[k], d);
  }
  int64_t bits;
  NU_OK(tc_safetensors_read_raw(st, "rng.model_seed", &bits, sizeof bits));
  ck_assert_int_eq(bits, (int64_t)-6);
  tc_safetensors_destroy(st);
  rig_free(&a);

  /* the same file with the words' dtype spelled U64 in the header */
  FILE *f = fopen(path, "r+b");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  char *b = malloc((size_t)n + 1);
  rewind(f);
  ck_assert_int_eq(fread(b, 1, (size_t)n, f), n);
  b[n] = 0;
  uint64_t hlen;
  memcpy(&hlen, b, 8);
  for (int k = 0; k < 3; k++) {
    char key[40];
    snprintf(key, sizeof key, "\"%s\"", words[k]);
    char *at = NULL;
    for (char *p = b + 8; p < b + 8 + hlen; p++)
      if (!strncmp(p, key, strlen(key))) {
        at = p;
        break;
      }
    ck_assert_ptr_nonnull(at);
    char *dt = strstr(at, "I64");
    ck_assert_ptr_nonnull(dt);
    dt[0] = 'U';
  }
  rewind(f);
  ck_assert_int_eq(fwrite(b, 1, (size_t)n, f), n);
  fclose(f);
  free(b);
  rig c;
  rig_build(&c, 0);
  NU_OK(tc_checkpoint_load(c.m, path, c.opt, c.sched, c.ld, NULL, NULL));
  ck_assert(tc_model_get_seed(c.m) == UINT64_MAX - 5);
  rig_free(&c);
  unlink(path);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("resume");
  TCase *tc = tcase_create("resume");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_resume_sgd_epoch_boundary);
  tcase_add_test(tc, test_resume_sgd_mid_epoch);
  tcase_add_test(tc, test_resume_adamw_amsgrad);
  tcase_add_test(tc, test_mismatch_leaves_objects_unchanged);
  tcase_add_test(tc, test_loader_mismatch_leaves_objects_unchanged);
  tcase_add_test(tc, test_counter_over_limit);
  tcase_add_test(tc, test_rng_words_i64);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}
