/*
 * train_checkpoint.c - whole training checkpoints: model state dict plus
 * optimizer, scheduler, loader, trainer counters and RNG state, in one
 * safetensors file written atomically (see checkpoint.c for the model part
 * and atomic_file.c for the write).
 *
 * Loading validates every entry it will use (presence, dtype, shape)
 * before changing anything, so a checkpoint of another model, optimizer or
 * a truncated file leaves all objects as they were.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <tinycnn/data.h>
#include <tinycnn/optim.h>

#include "io_internal.h"

#define CKPT_FORMAT "tinycnn-checkpoint"
/* tc_loader_set_state's epoch bound (include/tinycnn/data.h) */
#define CKPT_LOADER_EPOCHS ((int64_t)1 << 22)

static tc_status add_i64(tc_safetensors_writer *w, const char *name,
                         int64_t v) {
  return tc_safetensors_writer_add(w, name, TC_ST_I64, NULL, 0, &v, sizeof v);
}

/* A 64-bit seed or counter stored as I64, its bits unchanged (a value of
 * 2^63 or more reads back negative in other tools): safetensors.torch
 * loads U64 only from torch 2.3 on, where torch.uint64 appeared, so U64
 * scalars made checkpoints unreadable by older PyTorch. Loading takes both
 * (files written before used U64). */
static tc_status add_u64_bits(tc_safetensors_writer *w, const char *name,
                              uint64_t v) {
  int64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return add_i64(w, name, bits);
}

/* What PyTorch keeps in an optimizer's param_groups: each group's
 * settings (optimizer.param_groups, F64 [groups, TC__OPT_ROW]) and which
 * group each parameter is in (optimizer.param_group_of, I64 [params]). */
static tc_status add_param_groups(tc_safetensors_writer *w, tc_optimizer *opt) {
  int64_t g = tc_optimizer_num_groups(opt), n = tc_optimizer_num_params(opt);
  double *rows = tc__calloc((size_t)g * TC__OPT_ROW, sizeof *rows);
  int64_t *of = tc__calloc(n ? (size_t)n : 1, sizeof *of);
  tc_status st = TC_OK;
  if (!rows || !of) {
    st = tc__oom("tc_checkpoint_save");
    goto out;
  }
  for (int64_t i = 0; i < g; i++)
    tc__optimizer_group_row(opt, i, rows + i * TC__OPT_ROW);
  for (int64_t i = 0; i < n; i++)
    of[i] = tc_optimizer_get_param_group(opt, i);
  int64_t rshape[2] = {g, TC__OPT_ROW};
  st = tc_safetensors_writer_add(w, "optimizer.param_groups", TC_ST_F64, rshape,
                                 2, rows,
                                 sizeof *rows * (size_t)g * TC__OPT_ROW);
  if (st == TC_OK)
    st = tc_safetensors_writer_add(w, "optimizer.param_group_of", TC_ST_I64, &n,
                                   1, of, sizeof *of * (size_t)n);
out:
  tc__free(rows);
  tc__free(of);
  return st;
}

/* Appends "; " and a formatted note to msg (bounded). */
static void note(char *msg, size_t cap, int *bad, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note(char *msg, size_t cap, int *bad, const char *fmt, ...) {
  size_t used = strlen(msg);
  if (*bad && used + 2 < cap) {
    memcpy(msg + used, "; ", 3);
    used += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + used, cap - used, fmt, ap);
  va_end(ap);
  (*bad)++;
}

/* Compares the checkpoint's optimizer settings and group membership with
 * `opt`'s, noting each difference. A file without them (written before
 * they were saved) is not checked. Returns TC_OK or an I/O error. */
static tc_status check_param_groups(tc_safetensors *f, tc_optimizer *opt,
                                    char *msg, size_t cap, int *bad) {
  static const char *const kinds[] = {"sgd", "adam", "adamw"};
  tc_st_dtype d;
  int nd = -1;
  int64_t shape[2];
  int64_t g = tc_optimizer_num_groups(opt), n = tc_optimizer_num_params(opt);
  tc_status st = TC_OK;
  double *rows = NULL;
  int64_t *of = NULL;
  if (tc_safetensors_info(f, "optimizer.param_groups", &d, shape, 2, &nd) ==
      TC_OK) {
    if (d != TC_ST_F64 || nd != 2 || shape[1] != TC__OPT_ROW || shape[0] < 1) {
      note(msg, cap, bad, "'optimizer.param_groups' is not F64[groups,%d]",
           TC__OPT_ROW);
    } else if (shape[0] != g) {
      note(msg, cap, bad,
           "%" PRId64 " parameter group%s in the checkpoint, %" PRId64
           " in the optimizer",
           shape[0], shape[0] == 1 ? "" : "s", g);
    } else {
      rows = tc__calloc((size_t)g * TC__OPT_ROW, sizeof *rows);
      if (!rows) {
        st = tc__oom("tc_checkpoint_load");
        goto out;
      }
      st = tc_safetensors_read_raw(f, "optimizer.param_groups", rows,
                                   sizeof *rows * (size_t)g * TC__OPT_ROW);
      if (st != TC_OK)
        goto out;
      for (int64_t i = 0; i < g; i++) {
        double have[TC__OPT_ROW], *was = rows + i * TC__OPT_ROW;
        tc__optimizer_group_row(opt, i, have);
        if (was[0] != have[0]) {
          int k0 = was[0] >= 0 && was[0] <= 2 ? (int)was[0] : -1;
          note(msg, cap, bad,
               "group %" PRId64 ": %s in the checkpoint, %s "
               "here",
               i, k0 < 0 ? "unknown optimizer" : kinds[k0],
               kinds[(int)have[0]]);
          continue;
        }
        for (int k = 1; k < TC__OPT_ROW; k++)
          if (was[k] != have[k])
            note(msg, cap, bad,
                 "group %" PRId64 ": %s %.9g in the "
                 "checkpoint, %.9g here",
                 i, tc__optimizer_row_field((int)have[0], k), was[k], have[k]);
      }
    }
  }
  nd = -1;
  if (tc_safetensors_info(f, "optimizer.param_group_of", &d, shape, 1, &nd) ==
      TC_OK) {
    if (d != TC_ST_I64 || nd != 1 || shape[0] != n) {
      note(msg, cap, bad,
           "'optimizer.param_group_of' is not I64[%" PRId64
           "] (the optimizer's parameters)",
           n);
    } else if (n > 0) {
      of = tc__calloc((size_t)n, sizeof *of);
      if (!of) {
        st = tc__oom("tc_checkpoint_load");
        goto out;
      }
      st = tc_safetensors_read_raw(f, "optimizer.param_group_of", of,
                                   sizeof *of * (size_t)n);
      if (st != TC_OK)
        goto out;
      int64_t moved = 0, first = -1;
      for (int64_t i = 0; i < n; i++)
        if (of[i] != tc_optimizer_get_param_group(opt, i)) {
          if (first < 0)
            first = i;
          moved++;
        }
      if (moved)
        note(msg, cap, bad,
             "%" PRId64 " parameter%s in another group than "
             "in the checkpoint (first '%s': group %" PRId64 " there, %" PRId64
             " here)",
             moved, moved == 1 ? "" : "s", tc_optimizer_param_name(opt, first),
             of[first], tc_optimizer_get_param_group(opt, first));
    }
  }
out:
  tc__free(rows);
  tc__free(of);
  return st;
}

TC_API tc_status tc_checkpoint_save(tc_model *m, const char *path,
                                    tc_optimizer *opt, tc_scheduler *sched,
                                    tc_loader *loader, int64_t epoch,
                                    int64_t step, const char *const *metadata) {
  static const char fn[] = "tc_checkpoint_save";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(path, fn);
  tc_safetensors_writer *w = NULL;
  tc_status st = tc_safetensors_writer_create(&w);
  if (st != TC_OK)
    return st;
  st = tc_safetensors_writer_add_model(w, m, NULL);
  if (st == TC_OK && opt) {
    int64_t n = tc_optimizer_num_state(opt);
    for (int64_t i = 0; st == TC_OK && i < n; i++) {
      const char *name;
      tc_tensor *t;
      st = tc_optimizer_get_state(opt, i, &name, &t);
      if (st == TC_OK)
        st = tc_safetensors_writer_add_tensor(w, name, t);
    }
  }
  if (st == TC_OK && opt)
    st = add_param_groups(w, opt);
  if (st == TC_OK && sched)
    st = add_i64(w, "scheduler.last_epoch", tc_scheduler_get_last_epoch(sched));
  if (st == TC_OK && loader) {
    int64_t le = 0, lb = 0;
    st = tc_loader_get_state(loader, &le, &lb);
    if (st == TC_OK)
      st = add_i64(w, "loader.epoch", le);
    if (st == TC_OK)
      st = add_i64(w, "loader.batch", lb);
    /* global figures: the same for any number of data-parallel shards */
    if (st == TC_OK)
      st = add_i64(w, "loader.batch_size", tc__loader_batch_size(loader));
    if (st == TC_OK)
      st = add_i64(w, "loader.size", tc__loader_size(loader));
  }
  if (st == TC_OK)
    st = add_i64(w, "trainer.epoch", epoch);
  if (st == TC_OK)
    st = add_i64(w, "trainer.step", step);
  if (st == TC_OK)
    st = add_u64_bits(w, "rng.seed", tc_get_seed());
  if (st == TC_OK)
    st = add_u64_bits(w, "rng.model_seed", tc_model_get_seed(m));
  if (st == TC_OK)
    st = add_u64_bits(w, "rng.model_offset", tc_model_get_rng_offset(m));
  if (st == TC_OK)
    st = tc_safetensors_writer_add_metadata(w, "format", CKPT_FORMAT);
  for (const char *const *kv = metadata; st == TC_OK && kv && kv[0]; kv += 2) {
    if (!kv[1]) {
      st =
          tc__error(TC_EINVAL, "%s: metadata key '%s' has no value", fn, kv[0]);
      break;
    }
    st = tc_safetensors_writer_add_metadata(w, kv[0], kv[1]);
  }
  if (st == TC_OK)
    st = tc_safetensors_writer_commit(w, path);
  tc_safetensors_writer_destroy(w);
  return st;
}

/* Checks that scalar `name` exists with `dtype`; appends a mismatch to
 * `msg` and counts it otherwise. */
static void expect_scalar(const tc_safetensors *f, const char *name,
                          tc_st_dtype dtype, char *msg, size_t cap, int *bad) {
  /* the 64-bit RNG words: I64 now, U64 in older files (add_u64_bits) */
  tc_st_dtype d0;
  int nd0 = -1;
  int64_t shape0[1];
  if (dtype == TC_ST_I64 && strncmp(name, "rng.", 4) == 0 &&
      tc_safetensors_info(f, name, &d0, shape0, 1, &nd0) == TC_OK &&
      d0 == TC_ST_U64 && nd0 == 0)
    return;
  tc_st_dtype d;
  int nd = -1;
  int64_t shape[1];
  if (tc_safetensors_info(f, name, &d, shape, 1, &nd) != TC_OK) {
    size_t used = strlen(msg);
    snprintf(msg + used, cap - used, "%smissing '%s'", *bad ? "; " : "", name);
    (*bad)++;
  } else if (d != dtype || nd != 0) {
    size_t used = strlen(msg);
    snprintf(msg + used, cap - used, "%s'%s' is not a %s scalar",
             *bad ? "; " : "", name, tc_st_dtype_name(dtype));
    (*bad)++;
  }
}

static tc_status read_i64(tc_safetensors *f, const char *name, int64_t *v) {
  return tc_safetensors_read_raw(f, name, v, sizeof *v);
}

/* The loader's global batch size and dataset length, when recorded. */
static void check_loader(tc_safetensors *f, tc_loader *l, char *msg, size_t cap,
                         int *bad) {
  static const char *const names[2] = {"loader.batch_size", "loader.size"};
  const int64_t have[2] = {tc__loader_batch_size(l), tc__loader_size(l)};
  for (int k = 0; k < 2; k++) {
    tc_st_dtype d;
    int nd = -1;
    int64_t shape[1], was;
    if (tc_safetensors_info(f, names[k], &d, shape, 1, &nd) != TC_OK)
      continue;
    if (d != TC_ST_I64 || nd != 0 || read_i64(f, names[k], &was) != TC_OK)
      note(msg, cap, bad, "'%s' is not an I64 scalar", names[k]);
    else if (was != have[k])
      note(msg, cap, bad, "%s %" PRId64 " in the checkpoint, %" PRId64 " here",
           k == 0 ? "loader batch size" : "training set size", was, have[k]);
  }
}

TC_API tc_status tc_checkpoint_load(tc_model *m, const char *path,
                                    tc_optimizer *opt, tc_scheduler *sched,
                                    tc_loader *loader, int64_t *out_epoch,
                                    int64_t *out_step) {
  static const char fn[] = "tc_checkpoint_load";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(path, fn);
  tc_safetensors *f = NULL;
  tc_status st = tc_safetensors_create(&f, path);
  if (st != TC_OK)
    return st;
  const char *format = tc_safetensors_metadata(f, "format");
  if (!format || strcmp(format, CKPT_FORMAT) != 0) {
    tc_safetensors_destroy(f);
    return tc__error(TC_EFORMAT,
                     "%s: '%s' is not a tinycnn training checkpoint "
                     "(no __metadata__ format=" CKPT_FORMAT ")",
                     fn, path);
  }

  /* 1. validate everything that will be read */
  char msg[768] = "";
  int bad = 0;
  int64_t n_opt = opt ? tc_optimizer_num_state(opt) : 0;
  void **staged = NULL;        /* n_opt host copies of the optimizer state */
  size_t *staged_bytes = NULL; /* their sizes */
  for (int64_t i = 0; i < n_opt; i++) {
    const char *name;
    tc_tensor *t;
    st = tc_optimizer_get_state(opt, i, &name, &t);
    if (st != TC_OK)
      goto out;
    tc_st_dtype d;
    int nd = -1;
    int64_t shape[TC_MAX_DIMS];
    int64_t want[TC_MAX_DIMS];
    int wnd = tc_tensor_ndim(t);
    tc_tensor_shape(t, want);
    tc_st_dtype wd = tc_tensor_dtype(t) == TC_INT64   ? TC_ST_I64
                     : tc_tensor_dtype(t) == TC_INT32 ? TC_ST_I32
                                                      : TC_ST_F32;
    int ok = tc_safetensors_info(f, name, &d, shape, TC_MAX_DIMS, &nd) == TC_OK;
    if (ok)
      ok = d == wd && nd == wnd &&
           memcmp(shape, want, sizeof(int64_t) * (size_t)wnd) == 0;
    if (!ok) {
      size_t used = strlen(msg);
      snprintf(msg + used, sizeof msg - used, "%s%s '%s'", bad ? "; " : "",
               nd < 0 ? "missing" : "mismatched", name);
      bad++;
    }
  }
  if (sched)
    expect_scalar(f, "scheduler.last_epoch", TC_ST_I64, msg, sizeof msg, &bad);
  if (loader) {
    expect_scalar(f, "loader.epoch", TC_ST_I64, msg, sizeof msg, &bad);
    expect_scalar(f, "loader.batch", TC_ST_I64, msg, sizeof msg, &bad);
  }
  expect_scalar(f, "trainer.epoch", TC_ST_I64, msg, sizeof msg, &bad);
  expect_scalar(f, "trainer.step", TC_ST_I64, msg, sizeof msg, &bad);
  expect_scalar(f, "rng.seed", TC_ST_I64, msg, sizeof msg, &bad);
  expect_scalar(f, "rng.model_seed", TC_ST_I64, msg, sizeof msg, &bad);
  expect_scalar(f, "rng.model_offset", TC_ST_I64, msg, sizeof msg, &bad);
  if (bad) {
    st = tc__error(TC_ESHAPE, "%s: '%s': %d problem%s: %s", fn, path, bad,
                   bad == 1 ? "" : "s", msg);
    goto out;
  }
  /* settings the file records (newer files): the run it continues must
   * use the same ones, as PyTorch's load_state_dict restores them */
  if (opt && (st = check_param_groups(f, opt, msg, sizeof msg, &bad)))
    goto out;
  if (loader)
    check_loader(f, loader, msg, sizeof msg, &bad);
  if (bad) {
    st = tc__error(TC_EINVAL,
                   "%s: '%s': the run differs from the "
                   "checkpoint's: %s",
                   fn, path, msg);
    goto out;
  }

  /* 2. scalars into host memory (cannot fail once validated, except I/O) */
  int64_t last_epoch = 0, l_epoch = 0, l_batch = 0, t_epoch = 0, t_step = 0;
  uint64_t seed = 0, mseed = 0, moff = 0;
  if ((sched && (st = read_i64(f, "scheduler.last_epoch", &last_epoch))) ||
      (loader && (st = read_i64(f, "loader.epoch", &l_epoch))) ||
      (loader && (st = read_i64(f, "loader.batch", &l_batch))) ||
      (st = read_i64(f, "trainer.epoch", &t_epoch)) ||
      (st = read_i64(f, "trainer.step", &t_step)) ||
      (st = tc_safetensors_read_raw(f, "rng.seed", &seed, sizeof seed)) ||
      (st = tc_safetensors_read_raw(f, "rng.model_seed", &mseed,
                                    sizeof mseed)) ||
      (st = tc_safetensors_read_raw(f, "rng.model_offset", &moff, sizeof moff)))
    goto out;
  if (last_epoch < 0 || l_epoch < 0 || l_batch < 0 || t_epoch < 0 ||
      t_step < 0) {
    st = tc__error(TC_EFORMAT, "%s: '%s': negative counters", fn, path);
    goto out;
  }
  if (sched && last_epoch > TC__MAX_COUNT) {
    st = tc__error(TC_EINVAL,
                   "%s: scheduler.last_epoch %" PRId64 " is over the limit "
                   "2^53: '%s'",
                   fn, last_epoch, path);
    goto out;
  }
  /* tc_loader_set_state's range (include/tinycnn/data.h), checked here so
   * that a position this loader would refuse changes nothing */
  if (loader && (l_epoch >= CKPT_LOADER_EPOCHS ||
                 l_batch > tc_loader_num_batches(loader))) {
    st = tc__error(TC_EINVAL,
                   "%s: loader position (epoch %" PRId64 ", batch %" PRId64
                   ") does not fit this loader (epoch < 2^22, batch <= its "
                   "%" PRId64 " batches per epoch): '%s'",
                   fn, l_epoch, l_batch, tc_loader_num_batches(loader), path);
    goto out;
  }

  /* 3. the optimizer's state into host memory, so that a read error or a
   * bad step count is found before anything changes */
  if (n_opt > 0) {
    staged = tc__calloc((size_t)n_opt, sizeof *staged);
    staged_bytes = tc__calloc((size_t)n_opt, sizeof *staged_bytes);
    if (!staged || !staged_bytes) {
      st = tc__oom(fn);
      goto out;
    }
  }
  for (int64_t i = 0; i < n_opt; i++) {
    const char *name;
    tc_tensor *t;
    if ((st = tc_optimizer_get_state(opt, i, &name, &t)) != TC_OK)
      goto out;
    size_t bytes =
        (size_t)tc_tensor_numel(t) * (tc_tensor_dtype(t) == TC_INT64 ? 8u : 4u);
    staged_bytes[i] = bytes;
    staged[i] = tc__malloc(bytes ? bytes : 1);
    if (!staged[i]) {
      st = tc__oom(fn);
      goto out;
    }
    if ((st = tc_safetensors_read_raw(f, name, staged[i], bytes)) != TC_OK)
      goto out;
    if (strcmp(name, "optimizer.step") == 0) {
      int64_t v;
      memcpy(&v, staged[i], sizeof v);
      if (v < 0) {
        st = tc__error(TC_EFORMAT, "%s: '%s': negative optimizer.step", fn,
                       path);
        goto out;
      }
      if (v > TC__MAX_COUNT) {
        st = tc__error(TC_EINVAL,
                       "%s: optimizer.step %" PRId64 " is over the limit "
                       "2^53: '%s'",
                       fn, v, path);
        goto out;
      }
    }
  }

  /* 4. everything is checked: the model (itself transactional), then the
   * rest, none of which can refuse now */
  const char *ignore[] = {TC_CHECKPOINT_RESERVED, NULL};
  st = tc_safetensors_load_model(f, m, NULL, ignore);
  if (st != TC_OK)
    goto out;
  for (int64_t i = 0; i < n_opt && st == TC_OK; i++) {
    const char *name;
    tc_tensor *t;
    st = tc_optimizer_get_state(opt, i, &name, &t);
    if (st == TC_OK)
      st = tc_tensor_copy_from_host(t, staged[i], staged_bytes[i]);
  }
  if (st == TC_OK && opt) {
    /* the step count was written through its state tensor; re-read it so
     * the optimizer's host copy follows */
    int64_t s;
    st = tc_optimizer_get_step(opt, &s);
    if (st == TC_OK)
      st = tc_optimizer_set_step(opt, s);
  }
  if (st == TC_OK && sched)
    st = tc_scheduler_set_last_epoch(sched, last_epoch);
  if (st == TC_OK && loader)
    st = tc_loader_set_state(loader, l_epoch, l_batch);
  if (st == TC_OK)
    st = tc_model_set_seed(m, mseed);
  if (st == TC_OK)
    st = tc_model_set_rng_offset(m, moff);
  if (st == TC_OK) {
    tc_set_seed(seed);
    if (out_epoch)
      *out_epoch = t_epoch;
    if (out_step)
      *out_step = t_step;
  }
out:
  for (int64_t i = 0; staged && i < n_opt; i++)
    tc__free(staged[i]);
  tc__free(staged);
  tc__free(staged_bytes);
  tc_safetensors_destroy(f);
  return st;
}
