/*
 * checkpoint.c - a model's state dict in safetensors, under PyTorch's
 * names, and the model part of training checkpoints (other state goes in
 * the same file under reserved prefixes, see TC_CHECKPOINT_RESERVED).
 *
 * Loading is strict and transactional: all names, dtypes and shapes are
 * compared first and every mismatch is reported (the error message holds
 * as many as fit, with the total count; each one also goes to the log
 * callback); then every tensor is read into host memory, and only then
 * copied into the model, so a bad or truncated file leaves it unchanged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "io_internal.h"

static char *join(const char *prefix, const char *name) {
  size_t a = prefix ? strlen(prefix) : 0, b = strlen(name);
  char *s = tc__malloc(a + b + 1);
  if (s) {
    if (a)
      memcpy(s, prefix, a);
    memcpy(s + a, name, b + 1);
  }
  return s;
}

TC_API tc_status tc_safetensors_writer_add_model(tc_safetensors_writer *w,
                                                 tc_model *m,
                                                 const char *prefix) {
  static const char fn[] = "tc_safetensors_writer_add_model";
  TC__CHECK_NULL(w, fn);
  TC__CHECK_NULL(m, fn);
  int64_t n = tc_model_num_state(m);
  for (int64_t i = 0; i < n; i++) {
    const char *name;
    tc_tensor *t;
    tc_status st = tc_model_get_state(m, i, &name, &t);
    if (st != TC_OK)
      return st;
    char *full = join(prefix, name);
    if (!full)
      return tc__oom(fn);
    st = tc_safetensors_writer_add_tensor(w, full, t);
    tc__free(full);
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

/* "[2,3,...] (rank 64)": the first `known` of `ndim` sizes, the rank said
 * when some are not shown, so a rank-64 entry never reads as a 6-D one. */
static void put_shape(tc__buf *b, const int64_t *shape, int known, int ndim) {
  char num[32];
  int shown = known < ndim ? known : ndim;
  tc__buf_puts(b, "[");
  for (int i = 0; i < shown; i++) {
    snprintf(num, sizeof num, "%s%" PRId64, i ? "," : "", shape[i]);
    tc__buf_puts(b, num);
  }
  if (shown < ndim) {
    snprintf(num, sizeof num, "%s...] (rank %d)", shown ? "," : "", ndim);
    tc__buf_puts(b, num);
  } else {
    tc__buf_puts(b, "]");
  }
}

static const char *tensor_st_name(tc_dtype d) {
  return d == TC_FLOAT32 ? "F32" : d == TC_INT32 ? "I32" : "I64";
}

/* One mismatch: counted, logged, and appended to `b` while it is short. */
static void mismatch(tc__buf *b, int64_t *count, const char *what) {
  (*count)++;
  tc__log(TC_LOG_ERROR, "tc_safetensors_load_model: %s", what);
  if (b->len < 900) {
    if (*count > 1)
      tc__buf_puts(b, "; ");
    tc__buf_puts(b, what);
  }
}

static int ignored(const char *name, const char *const *ignore) {
  for (; ignore && *ignore; ignore++)
    if (strncmp(name, *ignore, strlen(*ignore)) == 0)
      return 1;
  return 0;
}

TC_API tc_status tc_safetensors_load_model(tc_safetensors *st, tc_model *m,
                                           const char *prefix,
                                           const char *const *ignore) {
  static const char fn[] = "tc_safetensors_load_model";
  TC__CHECK_NULL(st, fn);
  TC__CHECK_NULL(m, fn);
  if (!prefix)
    prefix = "";
  int64_t n = tc_model_num_state(m), bad = 0;
  size_t plen = strlen(prefix);
  tc_status s = TC_OK;
  tc__buf msg = {0}, item = {0};
  void **stage = tc__calloc(n > 0 ? (size_t)n : 1, sizeof *stage);
  size_t *sizes = tc__calloc(n > 0 ? (size_t)n : 1, sizeof *sizes);
  if (!stage || !sizes) {
    s = tc__oom(fn);
    goto out;
  }
  /* 1. every model entry present with its dtype and shape */
  for (int64_t i = 0; i < n; i++) {
    const char *name;
    tc_tensor *t;
    if ((s = tc_model_get_state(m, i, &name, &t)) != TC_OK)
      goto out;
    char *full = join(prefix, name);
    if (!full) {
      s = tc__oom(fn);
      goto out;
    }
    tc_st_dtype fd;
    int64_t fshape[TC_MAX_DIMS + 1], mshape[TC_MAX_DIMS];
    int fnd, mnd = tc_tensor_shape(t, mshape);
    tc_dtype md = tc_tensor_dtype(t);
    item.len = 0;
    if (tc_safetensors_info(st, full, &fd, fshape, TC_MAX_DIMS + 1, &fnd) !=
        TC_OK) {
      tc__buf_puts(&item, "missing '");
      tc__buf_puts(&item, full);
      tc__buf_puts(&item, "'");
    } else {
      int same =
          fnd == mnd && strcmp(tc_st_dtype_name(fd), tensor_st_name(md)) == 0;
      for (int k = 0; same && k < mnd; k++)
        same = fshape[k] == mshape[k];
      if (!same) {
        tc__buf_puts(&item, "'");
        tc__buf_puts(&item, full);
        tc__buf_puts(&item, "': file has ");
        tc__buf_puts(&item, tc_st_dtype_name(fd));
        put_shape(&item, fshape, TC_MAX_DIMS + 1, fnd);
        tc__buf_puts(&item, ", model has ");
        tc__buf_puts(&item, tensor_st_name(md));
        put_shape(&item, mshape, mnd, mnd);
      } else {
        sizes[i] =
            (size_t)tc_tensor_numel(t) * (size_t)(tc_st_dtype_bits(fd) / 8);
      }
    }
    tc__free(full);
    if (item.len) {
      tc__buf_put(&item, "", 1);
      if (item.oom) {
        s = tc__oom(fn);
        goto out;
      }
      mismatch(&msg, &bad, item.p);
    }
  }
  /* 2. nothing in the file (under prefix, not ignored) that the model lacks */
  static const char *const reserved[] = {TC_CHECKPOINT_RESERVED, NULL};
  int64_t training_state = 0; /* entries a training checkpoint adds */
  for (int64_t i = 0; i < tc_safetensors_count(st); i++) {
    const char *full = tc_safetensors_name(st, i);
    if (strncmp(full, prefix, plen) != 0 || ignored(full, ignore))
      continue;
    tc_tensor *t;
    if (tc_model_find_state(m, full + plen, &t) == TC_OK)
      continue;
    if (ignored(full + plen, reserved))
      training_state++;
    item.len = 0;
    tc__buf_puts(&item, "unexpected '");
    tc__buf_puts(&item, full);
    tc__buf_puts(&item, "'");
    tc__buf_put(&item, "", 1);
    if (item.oom) {
      s = tc__oom(fn);
      goto out;
    }
    mismatch(&msg, &bad, item.p);
  }
  tc_clear_error();
  if (bad) {
    tc__buf_put(&msg, "", 1);
    /* the usual mistake first: a training checkpoint loaded as a state
     * dict; say what to call instead before the (long) list */
    char hint[400] = "";
    if (training_state)
      snprintf(hint, sizeof hint,
               " (a training checkpoint: its %" PRId64 " optimizer./"
               "scheduler./trainer./loader./rng. entries are not model state;"
               " load the model alone with tc_checkpoint_load(m, path, NULL,"
               " NULL, NULL, NULL, NULL), which also sets the global seed to"
               " the saved one, or pass {TC_CHECKPOINT_RESERVED, NULL} as"
               " ignore)",
               training_state);
    s = tc__error(TC_ESHAPE, "%s: %" PRId64 " mismatch%s%s: %s", fn, bad,
                  bad > 1 ? "es" : "", hint,
                  msg.oom ? "(out of memory)" : msg.p);
    goto out;
  }
  /* 3. stage everything in host memory, 4. then write the model */
  for (int64_t i = 0; i < n; i++) {
    const char *name;
    tc_tensor *t;
    tc_model_get_state(m, i, &name, &t);
    char *full = join(prefix, name);
    stage[i] = tc__malloc(sizes[i] ? sizes[i] : 1);
    if (!full || !stage[i]) {
      tc__free(full);
      s = tc__oom(fn);
      goto out;
    }
    s = tc_safetensors_read_raw(st, full, stage[i], sizes[i]);
    tc__free(full);
    if (s != TC_OK)
      goto out;
  }
  for (int64_t i = 0; i < n; i++) {
    const char *name;
    tc_tensor *t;
    tc_model_get_state(m, i, &name, &t);
    if ((s = tc_tensor_copy_from_host(t, stage[i], sizes[i])) != TC_OK)
      goto out;
  }
out:
  for (int64_t i = 0; stage && i < n; i++)
    tc__free(stage[i]);
  tc__free(stage);
  tc__free(sizes);
  tc__free(msg.p);
  tc__free(item.p);
  return s;
}

TC_API tc_status tc_model_save(tc_model *m, const char *path,
                               const char *const *metadata) {
  static const char fn[] = "tc_model_save";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(path, fn);
  tc_safetensors_writer *w = NULL;
  tc_status s = tc_safetensors_writer_create(&w);
  if (s != TC_OK)
    return s;
  s = tc_safetensors_writer_add_model(w, m, NULL);
  for (const char *const *kv = metadata; s == TC_OK && kv && kv[0]; kv += 2) {
    if (!kv[1]) {
      s = tc__error(TC_EINVAL, "%s: metadata key '%.200s' has no value", fn,
                    kv[0]);
      break;
    }
    s = tc_safetensors_writer_add_metadata(w, kv[0], kv[1]);
  }
  if (s == TC_OK)
    s = tc_safetensors_writer_commit(w, path);
  tc_safetensors_writer_destroy(w);
  return s;
}

TC_API tc_status tc_model_load(tc_model *m, const char *path) {
  static const char fn[] = "tc_model_load";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(path, fn);
  tc_safetensors *st = NULL;
  tc_status s = tc_safetensors_create(&st, path);
  if (s != TC_OK)
    return s;
  s = tc_safetensors_load_model(st, m, NULL, NULL);
  tc_safetensors_destroy(st);
  return s;
}
