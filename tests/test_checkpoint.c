/*
 * test_checkpoint.c - model state dicts and training checkpoints in
 * safetensors: round trip under PyTorch's names, strict loading that
 * reports every mismatch and leaves the model unchanged, a training
 * checkpoint with extra tensors and metadata, allocation failures, and the
 * crash test: a child process rewriting a large checkpoint is killed with
 * SIGKILL at many moments, and the file on disk must always load whole,
 * as the old or the new version.
 */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libtinycnn.h>

#include "testutil.h"

static tc_backend *be;

static void setup(void) {
  tu_tmpdir_create("tc_ck");
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
}

static void teardown(void) {
  tc_backend_destroy(be);
  tu_tmpdir_remove();
}

/* conv1(1->2, 3x3) - bn1 - relu - flatten - fc(32->fc_out), input 1x6x6 */
static tc_model *small_model(uint64_t seed, int64_t fc_out, int with_bn) {
  tc_set_seed(seed);
  tc_layer *seq, *l;
  ck_assert_int_eq(tc_sequential_create(&seq), TC_OK);
  ck_assert_int_eq(tc_conv2d_create(&l, 1, 2, 3, NULL), TC_OK);
  ck_assert_int_eq(tc_sequential_add(seq, "conv1", l), TC_OK);
  if (with_bn) {
    ck_assert_int_eq(tc_batchnorm2d_create(&l, 2, NULL), TC_OK);
    ck_assert_int_eq(tc_sequential_add(seq, "bn1", l), TC_OK);
  }
  ck_assert_int_eq(tc_relu_create(&l), TC_OK);
  ck_assert_int_eq(tc_sequential_add(seq, "relu", l), TC_OK);
  ck_assert_int_eq(tc_flatten_create(&l), TC_OK);
  ck_assert_int_eq(tc_sequential_add(seq, "flat", l), TC_OK);
  ck_assert_int_eq(tc_linear_create(&l, 32, fc_out, NULL), TC_OK);
  ck_assert_int_eq(tc_sequential_add(seq, "fc", l), TC_OK);
  int64_t in[] = {1, 6, 6};
  tc_model *m;
  ck_assert_msg(tc_model_create(&m, be, seq, in, 3, NULL) == TC_OK, "%s",
                tc_last_error());
  return m;
}

static void set_nbt(tc_model *m, int64_t v) {
  tc_tensor *t;
  ck_assert_int_eq(tc_model_find_state(m, "bn1.num_batches_tracked", &t),
                   TC_OK);
  ck_assert_int_eq(tc_tensor_copy_from_host(t, &v, sizeof v), TC_OK);
}

START_TEST(test_model_roundtrip) {
  tc_model *a = small_model(1, 3, 1), *b = small_model(2, 3, 1);
  set_nbt(a, 17);
  size_t na, nb;
  unsigned char *sa = tu_state_bytes(a, &na), *sb = tu_state_bytes(b, &nb);
  ck_assert_uint_eq(na, nb);
  ck_assert(memcmp(sa, sb, na) != 0); /* different seeds */
  const char *meta[] = {"arch", "small", "epoch", "3", NULL};
  ck_assert_int_eq(tc_model_save(a, tu_tmppath("m.st"), meta), TC_OK);
  tc_safetensors *st;
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("m.st")), TC_OK);
  /* PyTorch's state_dict names, dtypes and shapes */
  ck_assert_int_eq(tc_safetensors_count(st), 9);
  tc_st_dtype d;
  int64_t shape[8];
  int nd;
  ck_assert_int_eq(
      tc_safetensors_info(st, "bn1.num_batches_tracked", &d, shape, 8, &nd),
      TC_OK);
  ck_assert(d == TC_ST_I64 && nd == 0);
  ck_assert_int_eq(tc_safetensors_info(st, "conv1.weight", &d, shape, 8, &nd),
                   TC_OK);
  ck_assert(d == TC_ST_F32 && nd == 4 && shape[0] == 2 && shape[1] == 1 &&
            shape[2] == 3 && shape[3] == 3);
  ck_assert_int_eq(tc_safetensors_info(st, "fc.weight", &d, shape, 8, &nd),
                   TC_OK);
  ck_assert(nd == 2 && shape[0] == 3 && shape[1] == 32);
  ck_assert_str_eq(tc_safetensors_metadata(st, "epoch"), "3");
  tc_safetensors_destroy(st);
  ck_assert_int_eq(tc_model_load(b, tu_tmppath("m.st")), TC_OK);
  free(sb);
  sb = tu_state_bytes(b, &nb);
  ck_assert_mem_eq(sa, sb, na);
  free(sa);
  free(sb);
  const char *bad[] = {"k", NULL};
  ck_assert_int_eq(tc_model_save(a, tu_tmppath("x.st"), bad), TC_EINVAL);
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

START_TEST(test_model_strict_mismatches) {
  tc_model *a = small_model(1, 3, 1);
  ck_assert_int_eq(tc_model_save(a, tu_tmppath("a.st"), NULL), TC_OK);
  /* other fc size, no bn: shape mismatches, missing and unexpected names */
  tc_model *b = small_model(2, 4, 0);
  size_t n0, n1;
  unsigned char *s0 = tu_state_bytes(b, &n0);
  ck_assert_int_eq(tc_model_load(b, tu_tmppath("a.st")), TC_ESHAPE);
  const char *msg = tc_last_error();
  ck_assert_ptr_nonnull(strstr(msg, "7 mismatches"));
  ck_assert_ptr_nonnull(strstr(msg, "'fc.weight': file has F32[3,32], model "
                                    "has F32[4,32]"));
  ck_assert_ptr_nonnull(strstr(msg, "'fc.bias': file has F32[3], model has "
                                    "F32[4]"));
  ck_assert_ptr_nonnull(strstr(msg, "unexpected 'bn1.running_var'"));
  ck_assert_ptr_nonnull(strstr(msg, "unexpected 'bn1.num_batches_tracked'"));
  unsigned char *s1 = tu_state_bytes(b, &n1);
  ck_assert_mem_eq(s0, s1, n0); /* untouched */
  free(s1);
  /* a model with bn loading a file without: every bn entry missing */
  tc_model *c = small_model(3, 3, 0);
  ck_assert_int_eq(tc_model_save(c, tu_tmppath("c.st"), NULL), TC_OK);
  ck_assert_int_eq(tc_model_load(a, tu_tmppath("c.st")), TC_ESHAPE);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "5 mismatches"));
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "missing 'bn1.weight'"));
  /* a dtype mismatch: num_batches_tracked written as F32 */
  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_model(w, c, NULL), TC_OK);
  float one = 1;
  ck_assert_int_eq(tc_safetensors_writer_add(w, "bn1.num_batches_tracked",
                                             TC_ST_F32, NULL, 0, &one, 4),
                   TC_OK);
  int64_t s2[] = {2};
  float two[2] = {1, 1};
  const char *bnames[] = {"bn1.weight", "bn1.bias", "bn1.running_mean",
                          "bn1.running_var"};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(
        tc_safetensors_writer_add(w, bnames[i], TC_ST_F32, s2, 1, two, 8),
        TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("d.st")), TC_OK);
  tc_safetensors_writer_destroy(w);
  s0 = (free(s0), tu_state_bytes(a, &n0));
  ck_assert_int_eq(tc_model_load(a, tu_tmppath("d.st")), TC_ESHAPE);
  ck_assert_ptr_nonnull(
      strstr(tc_last_error(),
             "1 mismatch: "
             "'bn1.num_batches_tracked': file has F32[], model has I64[]"));
  /* a truncated file is refused before anything is copied */
  ck_assert_int_eq(truncate(tu_tmppath("a.st"), 200), 0);
  ck_assert_int_eq(tc_model_load(a, tu_tmppath("a.st")), TC_EFORMAT);
  s1 = tu_state_bytes(a, &n1);
  ck_assert_mem_eq(s0, s1, n0);
  free(s0);
  free(s1);
  tc_model_destroy(a);
  tc_model_destroy(b);
  tc_model_destroy(c);
}
END_TEST

START_TEST(test_training_checkpoint) {
  tc_model *a = small_model(1, 3, 1), *b = small_model(2, 3, 1);
  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_model(w, a, NULL), TC_OK);
  /* optimizer state, as the trainers write it */
  for (int64_t i = 0; i < tc_model_num_params(a); i++) {
    const char *name;
    tc_tensor *p;
    tc_model_get_param(a, i, &name, &p, NULL);
    char key[256];
    snprintf(key, sizeof key, "optimizer.state.%s.momentum_buffer", name);
    ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, key, p), TC_OK);
  }
  uint64_t rng[2] = {42, 123456789};
  int64_t s2[] = {2};
  ck_assert_int_eq(tc_safetensors_writer_add(w, "rng.counters", TC_ST_U64, s2,
                                             1, rng, sizeof rng),
                   TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(w, "step", "1234"),
                   TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("t.st")), TC_OK);
  tc_safetensors_writer_destroy(w);

  tc_safetensors *st;
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("t.st")), TC_OK);
  /* strict without ignore: the optimizer entries are unexpected */
  ck_assert_int_eq(tc_safetensors_load_model(st, b, NULL, NULL), TC_ESHAPE);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "unexpected 'optimizer."));
  const char *ign[] = {TC_CHECKPOINT_RESERVED, NULL};
  ck_assert_msg(tc_safetensors_load_model(st, b, NULL, ign) == TC_OK, "%s",
                tc_last_error());
  size_t na, nb;
  unsigned char *sa = tu_state_bytes(a, &na), *sb = tu_state_bytes(b, &nb);
  ck_assert_mem_eq(sa, sb, na);
  free(sa);
  free(sb);
  int64_t step;
  ck_assert_int_eq(tc_safetensors_metadata_i64(st, "step", &step), TC_OK);
  ck_assert_int_eq(step, 1234);
  uint64_t r2[2];
  ck_assert_int_eq(tc_safetensors_read_raw(st, "rng.counters", r2, sizeof r2),
                   TC_OK);
  ck_assert(r2[0] == 42 && r2[1] == 123456789);
  tc_tensor *p, *buf;
  tc_model_get_param(b, 0, NULL, &p, NULL);
  int64_t shape[TC_MAX_DIMS];
  int nd = tc_tensor_shape(p, shape);
  ck_assert_int_eq(tc_tensor_create(&buf, be, shape, nd, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st,
                                       "optimizer.state.conv1.weight."
                                       "momentum_buffer",
                                       buf),
                   TC_OK);
  tc_tensor_destroy(buf);
  tc_safetensors_destroy(st);

  /* a model under a prefix */
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_model(w, a, "ema."), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_model(w, a, NULL), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("p.st")), TC_OK);
  tc_safetensors_writer_destroy(w);
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("p.st")), TC_OK);
  ck_assert_int_eq(tc_safetensors_load_model(st, b, "ema.", NULL), TC_OK);
  ck_assert_int_eq(tc_safetensors_load_model(st, b, NULL, NULL), TC_ESHAPE);
  const char *ign2[] = {"ema.", NULL};
  ck_assert_int_eq(tc_safetensors_load_model(st, b, NULL, ign2), TC_OK);
  tc_safetensors_destroy(st);
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

/* SGD on `m` (momentum 0.9) with `lr` and `wd`; with `no_decay` a second
 * group without weight decay holds the 1-d tensors, or also fc.weight
 * when no_decay is 2. */
static tc_optimizer *group_opt(tc_model *m, float lr, float wd, int no_decay) {
  tc_sgd_options o;
  ck_assert_int_eq(tc_sgd_options_init(&o, sizeof o), TC_OK);
  o.lr = lr;
  o.momentum = 0.9f;
  o.weight_decay = wd;
  tc_optimizer *opt;
  ck_assert_int_eq(tc_optimizer_create_sgd_for_model(&opt, m, &o), TC_OK);
  if (no_decay) {
    int64_t g;
    o.weight_decay = 0;
    ck_assert_int_eq(tc_optimizer_add_group_sgd(opt, &o, &g), TC_OK);
    ck_assert_int_eq(tc_optimizer_set_group_where(opt, tc_param_filter_no_decay,
                                                  NULL, g, NULL),
                     TC_OK);
    if (no_decay == 2)
      ck_assert_int_eq(
          tc_optimizer_set_param_group_by_name(opt, "fc.weight", g), TC_OK);
  }
  return opt;
}

/* Loads `path` into a fresh model with an optimizer `opt` and `loader`;
 * on failure checks that the model is unchanged and that the message
 * holds `want`. */
static void expect_load(const char *path, tc_model *m, tc_optimizer *opt,
                        tc_loader *loader, tc_status st, const char *want) {
  size_t n0, n1;
  unsigned char *s0 = tu_state_bytes(m, &n0);
  tc_status got = tc_checkpoint_load(m, path, opt, NULL, loader, NULL, NULL);
  ck_assert_msg(got == st, "%d, not %d: %s", got, st, tc_last_error());
  if (want)
    ck_assert_msg(strstr(tc_last_error(), want), "'%s' lacks '%s'",
                  tc_last_error(), want);
  if (st != TC_OK) {
    unsigned char *s1 = tu_state_bytes(m, &n1);
    ck_assert_mem_eq(s0, s1, n0);
    free(s1);
  }
  free(s0);
}

/* Loading a training checkpoint as a state dict says what to call
 * instead; tc_checkpoint_load with NULLs loads the model alone. */
START_TEST(test_checkpoint_as_state_dict) {
  tc_model *a = small_model(1, 3, 1), *b = small_model(2, 3, 1);
  tc_optimizer *oa = group_opt(a, 0.1f, 1e-4f, 1);
  const char *path = tu_tmppath("as_sd.ckpt");
  ck_assert_int_eq(tc_checkpoint_save(a, path, oa, NULL, NULL, 1, 10, NULL),
                   TC_OK);
  ck_assert_int_eq(tc_model_load(b, path), TC_ESHAPE);
  ck_assert_msg(strstr(tc_last_error(), "a training checkpoint") &&
                    strstr(tc_last_error(), "tc_checkpoint_load(m, path, "
                                            "NULL, NULL, NULL, NULL, NULL)"),
                "%s", tc_last_error());
  expect_load(path, b, NULL, NULL, TC_OK, NULL);
  /* a plain state dict with an unexpected name gets no such hint */
  const char *p2 = tu_tmppath("as_sd.safetensors");
  ck_assert_int_eq(tc_model_save(a, p2, NULL), TC_OK);
  tc_model *c = small_model(3, 4, 1);
  ck_assert_int_eq(tc_model_load(c, p2), TC_ESHAPE);
  ck_assert_ptr_null(strstr(tc_last_error(), "training checkpoint"));
  tc_model_destroy(c);
  tc_optimizer_destroy(oa);
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

/* A resumed run must use the optimizer settings and groups it was saved
 * with (PyTorch's optimizer state_dict restores its param_groups); files
 * from before these entries load without the check. */
START_TEST(test_checkpoint_param_groups) {
  tc_model *a = small_model(1, 3, 1), *b = small_model(2, 3, 1);
  tc_optimizer *oa = group_opt(a, 0.1f, 1e-4f, 1);
  const char *path = tu_tmppath("g.ckpt");
  ck_assert_int_eq(tc_checkpoint_save(a, path, oa, NULL, NULL, 1, 10, NULL),
                   TC_OK);
  tc_optimizer *ob = group_opt(b, 0.05f, 1e-4f, 1);
  expect_load(path, b, ob, NULL, TC_EINVAL,
              "group 0: lr 0.100000001 in the checkpoint, 0.0500000007 here");
  tc_optimizer_destroy(ob);
  ob = group_opt(b, 0.1f, 5e-4f, 1);
  expect_load(path, b, ob, NULL, TC_EINVAL, "group 0: weight_decay");
  tc_optimizer_destroy(ob);
  ob = group_opt(b, 0.1f, 1e-4f, 0);
  expect_load(path, b, ob, NULL, TC_EINVAL,
              "2 parameter groups in the checkpoint, 1 in the optimizer");
  tc_optimizer_destroy(ob);
  ob = group_opt(b, 0.1f, 1e-4f, 2);
  expect_load(path, b, ob, NULL, TC_EINVAL,
              "1 parameter in another group than in the checkpoint (first "
              "'fc.weight': group 0 there, 1 here)");
  tc_optimizer_destroy(ob);
  ob = group_opt(b, 0.1f, 1e-4f, 1);
  expect_load(path, b, ob, NULL, TC_OK, NULL);
  tc_optimizer_destroy(ob);

  /* the same file without the new entries, as older versions wrote it */
  tc_safetensors *st;
  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_create(&st, path), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  for (int64_t i = 0; i < tc_safetensors_count(st); i++) {
    const char *name = tc_safetensors_name(st, i);
    if (!strncmp(name, "optimizer.param_group", 21))
      continue;
    tc_st_dtype d;
    int64_t shape[8], numel = 1;
    int nd;
    ck_assert_int_eq(tc_safetensors_info(st, name, &d, shape, 8, &nd), TC_OK);
    for (int k = 0; k < nd; k++)
      numel *= shape[k];
    size_t bytes = (size_t)numel * (d == TC_ST_F32 ? 4 : 8);
    void *buf = malloc(bytes + 1);
    ck_assert_int_eq(tc_safetensors_read_raw(st, name, buf, bytes), TC_OK);
    ck_assert_int_eq(
        tc_safetensors_writer_add(w, name, d, shape, nd, buf, bytes), TC_OK);
    free(buf);
  }
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(
                       w, "format", tc_safetensors_metadata(st, "format")),
                   TC_OK);
  tc_safetensors_destroy(st);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("old.ckpt")),
                   TC_OK);
  tc_safetensors_writer_destroy(w);
  ob = group_opt(b, 0.05f, 1e-4f, 0);
  expect_load(tu_tmppath("old.ckpt"), b, ob, NULL, TC_OK, NULL);
  tc_optimizer_destroy(ob);

  /* the loader's global batch size and length are recorded and checked */
  uint8_t px[20 * 36] = {0};
  int32_t lab[20] = {0};
  tc_dataset *ds;
  ck_assert_int_eq(tc_dataset_create(&ds, 20, 1, 6, 6, 3, px, lab), TC_OK);
  tc_loader_options lo;
  ck_assert_int_eq(tc_loader_options_init(&lo, sizeof lo), TC_OK);
  lo.backend = be;
  lo.batch_size = 4;
  tc_loader *l4, *l5;
  ck_assert_int_eq(tc_loader_create(&l4, ds, NULL, &lo), TC_OK);
  lo.batch_size = 5;
  ck_assert_int_eq(tc_loader_create(&l5, ds, NULL, &lo), TC_OK);
  ck_assert_int_eq(tc_checkpoint_save(a, path, oa, NULL, l4, 1, 10, NULL),
                   TC_OK);
  ob = group_opt(b, 0.1f, 1e-4f, 1);
  expect_load(path, b, ob, l5, TC_EINVAL,
              "loader batch size 4 in the checkpoint, 5 here");
  expect_load(path, b, ob, l4, TC_OK, NULL);
  tc_optimizer_destroy(ob);
  tc_loader_destroy(l4);
  tc_loader_destroy(l5);
  tc_dataset_destroy(ds);
  tc_optimizer_destroy(oa);
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

START_TEST(test_model_alloc_failures) {
  tc_model *a = small_model(1, 3, 1), *b = small_model(2, 3, 1);
  ck_assert_int_eq(tc_model_save(a, tu_tmppath("a.st"), NULL), TC_OK);
  size_t n0, n1;
  for (int persistent = 0; persistent < 2; persistent++) {
    /* b's state before this round (the first round ends by loading a's) */
    unsigned char *s0 = tu_state_bytes(b, &n0);
    tu_alloc_install();
    for (long k = 1;; k++) {
      long live = tu_alloc_live();
      tu_alloc_fail_at(k, persistent);
      tc_status s = tc_model_load(b, tu_tmppath("a.st"));
      if (!tu_alloc_failed()) {
        ck_assert_int_eq(s, TC_OK);
        break;
      }
      ck_assert_int_eq(s, TC_ENOMEM);
      ck_assert_int_eq(tu_alloc_live(), live);
      tu_alloc_fail_at(0, 0);
      unsigned char *s1 = tu_state_bytes(b, &n1);
      ck_assert_mem_eq(s0, s1, n0);
      free(s1);
    }
    for (long k = 1;; k++) {
      long live = tu_alloc_live();
      tu_alloc_fail_at(k, persistent);
      tc_status s = tc_model_save(b, tu_tmppath("s.st"), NULL);
      if (!tu_alloc_failed()) {
        ck_assert_int_eq(s, TC_OK);
        break;
      }
      ck_assert_int_eq(s, TC_ENOMEM);
      ck_assert_int_eq(tu_alloc_live(), live);
    }
    tu_alloc_fail_at(0, 0);
    tu_alloc_uninstall();
    free(s0);
  }
  tc_model_destroy(a);
  tc_model_destroy(b);
}
END_TEST

/* ---- crash test ---- */

#define BIG (24u << 20) /* 24 MiB: long enough to be killed mid-write */

/* Writes version `v`: every data byte is (v & 0xff), metadata "version". */
static void save_version(const char *path, unsigned v, unsigned char *data) {
  memset(data, (int)(v & 0xff), BIG);
  tc_safetensors_writer *w;
  if (tc_safetensors_writer_create(&w) != TC_OK)
    _exit(2);
  int64_t s[] = {BIG / 4};
  char num[32];
  snprintf(num, sizeof num, "%u", v);
  if (tc_safetensors_writer_add(w, "weights", TC_ST_F32, s, 1, data, BIG) ||
      tc_safetensors_writer_add_metadata(w, "version", num) ||
      tc_safetensors_writer_commit(w, path))
    _exit(3);
  tc_safetensors_writer_destroy(w);
}

/* The file loads, and its data agrees with its version. Returns it. */
static unsigned check_whole(const char *path, unsigned char *buf) {
  tc_safetensors *st;
  ck_assert_msg(tc_safetensors_create(&st, path) == TC_OK, "%s",
                tc_last_error());
  int64_t v;
  ck_assert_int_eq(tc_safetensors_metadata_i64(st, "version", &v), TC_OK);
  ck_assert_int_eq(tc_safetensors_read_raw(st, "weights", buf, BIG), TC_OK);
  for (size_t i = 0; i < BIG; i += 4093)
    ck_assert_int_eq(buf[i], (unsigned char)(v & 0xff));
  ck_assert_int_eq(buf[BIG - 1], (unsigned char)(v & 0xff));
  tc_safetensors_destroy(st);
  return (unsigned)v;
}

START_TEST(test_crash_during_save) {
  const char *path = tu_tmppath("ckpt.st");
  unsigned char *buf = malloc(BIG);
  save_version(path, 1, buf);
  static const int delays_us[] = {0,     200,   1000,  3000,   7000,
                                  15000, 30000, 60000, 120000, 250000};
  unsigned last = 1;
  int advanced = 0;
  for (int round = 0; round < 2; round++)
    for (size_t k = 0; k < sizeof delays_us / sizeof *delays_us; k++) {
      pid_t pid = fork();
      ck_assert_int_ge(pid, 0);
      if (pid == 0) {
        /* rewrite the checkpoint forever with growing versions */
        unsigned char *data = malloc(BIG);
        for (unsigned v = last + 1;; v++)
          save_version(path, v, data);
      }
      struct timespec ts = {0, delays_us[k] * 1000L};
      nanosleep(&ts, NULL);
      kill(pid, SIGKILL);
      int status;
      waitpid(pid, &status, 0);
      ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                    "child exited early (status %d)", status);
      unsigned v = check_whole(path, buf);
      /* the previous version or a later, complete one */
      ck_assert_uint_ge(v, last);
      advanced += v > last;
      last = v;
    }
  free(buf);
  /* temporary files of killed writers may remain: they are never read */
  fprintf(stderr,
          "crash test: 20 kills, final version %u, %d kills after a "
          "completed save\n",
          last, advanced);
}
END_TEST

/* A FIFO in place of a checkpoint is refused at once (opening it would
 * block until a writer came) and the model is left as it was. */
START_TEST(test_load_fifo) {
  alarm(20);
  tc_model *m = small_model(1, 3, 1);
  size_t n0, n1;
  unsigned char *before = tu_state_bytes(m, &n0);
  ck_assert_int_eq(mkfifo(tu_tmppath("fifo.st"), 0600), 0);
  ck_assert_int_eq(tc_model_load(m, tu_tmppath("fifo.st")), TC_EIO);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "not a regular file"));
  ck_assert_int_eq(tc_checkpoint_load(m, tu_tmppath("fifo.st"), NULL, NULL,
                                      NULL, NULL, NULL),
                   TC_EIO);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "not a regular file"));
  unsigned char *after = tu_state_bytes(m, &n1);
  ck_assert_uint_eq(n0, n1);
  ck_assert_mem_eq(before, after, n0);
  free(before);
  free(after);
  tc_model_destroy(m);
  alarm(0);
}
END_TEST

/* A file entry of rank 64 is reported as such, not as its first six
 * dims. */
START_TEST(test_rank64_message) {
  tc_model *m = small_model(1, 3, 1);
  tc_safetensors_writer *w = NULL;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  int64_t shape[64];
  for (int i = 0; i < 64; i++)
    shape[i] = 1;
  float one = 1.f;
  ck_assert_msg(tc_safetensors_writer_add(w, "conv1.weight", TC_ST_F32, shape,
                                          64, &one, sizeof one) == TC_OK,
                "%s", tc_last_error());
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("r64.st")),
                   TC_OK);
  tc_safetensors_writer_destroy(w);
  ck_assert_int_eq(tc_model_load(m, tu_tmppath("r64.st")), TC_ESHAPE);
  ck_assert_msg(strstr(tc_last_error(), "rank 64") != NULL, "%s",
                tc_last_error());
  tc_model_destroy(m);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("checkpoint");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_model_roundtrip);
  tcase_add_test(tc, test_model_strict_mismatches);
  tcase_add_test(tc, test_checkpoint_as_state_dict);
  tcase_add_test(tc, test_training_checkpoint);
  tcase_add_test(tc, test_checkpoint_param_groups);
  tcase_add_test(tc, test_model_alloc_failures);
  tcase_add_test(tc, test_crash_during_save);
  tcase_add_test(tc, test_load_fifo);
  tcase_add_test(tc, test_rank64_message);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}
