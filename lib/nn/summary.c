/*
 * summary.c - what a model is made of (tc_model_summary and friends): per
 * layer its output shape, own parameter and buffer counts and forward
 * multiply-adds per image; totals and memory for a batch; a torchinfo-like
 * text table. Everything is computed from the shapes that tc_model_create
 * inferred and from each kind's configuration (tc__nn_describe); nothing runs
 * on the backend and nothing is allocated.
 *
 * Multiply-adds: convolutions and linear layers only, without biases (the
 * convention of the published LeNet-5 and CIFAR ResNet figures).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "nn_internal.h"

static int64_t numel_of(const int64_t *shape, int ndim) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  return n;
}

static int64_t dtype_bytes(tc_dtype t) {
  return t == TC_INT64 ? 8 : 4;
}

static int64_t layer_macs(const tc_layer *l) {
  nn_desc d;
  tc__nn_describe(l, &d);
  if (!strcmp(l->kind->name, "conv2d"))
    /* out (K, OH, OW), each C * R * S products */
    return numel_of(l->out_shape, l->out_ndim) * d.in_c * d.kh * d.kw;
  if (!strcmp(l->kind->name, "linear"))
    /* out (..., out_f), each in_f products */
    return numel_of(l->out_shape, l->out_ndim) * d.in_c;
  return 0;
}

static int layer_depth(const tc_layer *l) {
  int d = 0;
  for (const tc_layer *p = l->parent; p; p = p->parent)
    d++;
  return d;
}

static void layer_counts(const tc_layer *l, int64_t *params, int64_t *buffers,
                         int64_t *buffer_bytes) {
  *params = *buffers = 0;
  if (buffer_bytes)
    *buffer_bytes = 0;
  for (int i = 0; i < l->nparams; i++)
    *params += numel_of(l->pspec[i].shape, l->pspec[i].ndim);
  for (int i = 0; i < l->nbuffers; i++) {
    int64_t n = numel_of(l->bspec[i].shape, l->bspec[i].ndim);
    *buffers += n;
    if (buffer_bytes)
      *buffer_bytes += n * dtype_bytes(l->bspec[i].dtype);
  }
}

/* Checks out->struct_size against [min, full]. */
static tc_status check_size(size_t size, size_t min, size_t full,
                            const char *fn) {
  if (size < min)
    return tc__error(TC_EINVAL,
                     "%s: out->struct_size %zu is too small "
                     "(at least %zu)",
                     fn, size, min);
  if (size > full)
    return tc__error(TC_EVERSION,
                     "%s: out->struct_size %zu is larger than "
                     "this library's %zu (header newer than library)",
                     fn, size, full);
  return TC_OK;
}

TC_API tc_status tc_model_get_layer_summary(const tc_model *m, int64_t i,
                                            tc_layer_summary *out) {
  static const char fn[] = "tc_model_get_layer_summary";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(out, fn);
  tc_layer *const *layers;
  char *const *names;
  int64_t n = tc__nn_model_layers(m, &layers, &names);
  if (i < 0 || i >= n)
    return tc__error(TC_EINVAL, "%s: index %lld out of range [0, %lld)", fn,
                     (long long)i, (long long)n);
  size_t size = out->struct_size;
  tc_status st =
      check_size(size, offsetof(tc_layer_summary, kind) + sizeof out->kind,
                 sizeof *out, fn);
  if (st != TC_OK)
    return st;
  const tc_layer *l = layers[i];
  tc_layer_summary s;
  memset(&s, 0, sizeof s);
  s.struct_size = size;
  s.name = names[i];
  s.kind = l->kind->name;
  s.depth = layer_depth(l);
  s.out_ndim = l->out_ndim;
  memcpy(s.out_shape, l->out_shape, (size_t)l->out_ndim * sizeof(int64_t));
  layer_counts(l, &s.params, &s.buffers, NULL);
  s.macs = layer_macs(l);
  memcpy(out, &s, size);
  return TC_OK;
}

static void totals(const tc_model *m, int64_t batch, tc_model_totals *t) {
  tc_layer *const *layers;
  char *const *names;
  int64_t n = tc__nn_model_layers(m, &layers, &names);
  int64_t in_shape[NN_SAMPLE_DIMS];
  int in_ndim = tc__nn_model_input_shape(m, in_shape);
  int64_t outs = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t p, b, bb;
    layer_counts(layers[i], &p, &b, &bb);
    t->params += p;
    t->buffers += b;
    t->param_bytes += 4 * p + bb;
    t->macs += layer_macs(layers[i]);
    outs += numel_of(layers[i]->out_shape, layers[i]->out_ndim);
  }
  t->input_bytes = 4 * batch * numel_of(in_shape, in_ndim);
  t->activation_bytes = 4 * batch * outs;
}

TC_API tc_status tc_model_get_totals(const tc_model *m, int64_t batch,
                                     tc_model_totals *out) {
  static const char fn[] = "tc_model_get_totals";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(out, fn);
  if (batch < 1)
    return tc__error(TC_EINVAL, "%s: batch %lld must be >= 1", fn,
                     (long long)batch);
  size_t size = out->struct_size;
  tc_status st = check_size(size, sizeof out->struct_size, sizeof *out, fn);
  if (st != TC_OK)
    return st;
  tc_model_totals t;
  memset(&t, 0, sizeof t);
  totals(m, batch, &t);
  t.struct_size = size;
  memcpy(out, &t, size);
  return TC_OK;
}

/* ---- the text table ---- */

typedef struct text {
  char *buf;
  size_t size, len;
} text;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
put(text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = t->len < t->size ? t->size - t->len : 0;
  int w = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
  va_end(ap);
  if (w > 0)
    t->len += (size_t)w;
}

/* 1234567 -> "1,234,567" */
static const char *grouped(int64_t v, char *buf, size_t size) {
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
  size_t o = 0;
  if (v < 0 && o + 1 < size)
    buf[o++] = '-';
  for (int i = 0; i < n && o + 1 < size; i++) {
    buf[o++] = digits[i];
    if ((n - i - 1) % 3 == 0 && i < n - 1 && o + 1 < size)
      buf[o++] = ',';
  }
  buf[o] = '\0';
  return buf;
}

static const char rule[] =
    "====================================================================="
    "===========\n";

TC_API tc_status tc_model_summary(const tc_model *m, int64_t batch, char *buf,
                                  size_t size, size_t *out_len) {
  static const char fn[] = "tc_model_summary";
  TC__CHECK_NULL(m, fn);
  if (!buf && size > 0)
    return tc__error(TC_EINVAL, "%s: buf is NULL with size %zu", fn, size);
  if (batch < 1)
    return tc__error(TC_EINVAL, "%s: batch %lld must be >= 1", fn,
                     (long long)batch);
  tc_layer *const *layers;
  char *const *names;
  int64_t n = tc__nn_model_layers(m, &layers, &names);
  text t = {buf, size, 0};
  char a[32], b[32], c[48], sh[112];
  put(&t, "%-38s %-20s %9s %11s\n", "Layer (kind)", "Output shape", "Params",
      "Mult-adds");
  put(&t, "%s", rule);
  for (int64_t i = 0; i < n; i++) {
    const tc_layer *l = layers[i];
    int64_t p, bu;
    layer_counts(l, &p, &bu, NULL);
    int depth = layer_depth(l);
    int indent = 2 * (depth > 0 ? depth - 1 : 0);
    char label[160];
    snprintf(label, sizeof label, "%*s%s (%s)", indent, "",
             names[i][0] ? names[i] : "<root>", l->kind->name);
    /* "(N, 6, 28, 28)" */
    char per[96];
    tc__nn_shape_str(l->out_shape, l->out_ndim, per, sizeof per);
    snprintf(sh, sizeof sh, "(N, %s", per + 1);
    put(&t, "%-38s %-20s %9s %11s\n", label, sh,
        p ? grouped(p, a, sizeof a) : "--",
        layer_macs(l) ? grouped(layer_macs(l), b, sizeof b) : "--");
  }
  tc_model_totals tt;
  memset(&tt, 0, sizeof tt);
  totals(m, batch, &tt);
  put(&t, "%s", rule);
  put(&t, "Total params: %s\n", grouped(tt.params, a, sizeof a));
  put(&t, "Buffers (running statistics): %s\n",
      grouped(tt.buffers, a, sizeof a));
  snprintf(c, sizeof c, "%.2f M", (double)tt.macs / 1e6);
  put(&t, "Mult-adds per image: %s (%s)\n", grouped(tt.macs, a, sizeof a), c);
  put(&t, "%s", rule);
  put(&t, "Input size for batch %lld (MB): %.2f\n", (long long)batch,
      (double)tt.input_bytes / 1e6);
  put(&t, "Layer outputs for batch %lld (MB): %.2f\n", (long long)batch,
      (double)tt.activation_bytes / 1e6);
  put(&t, "Params and buffers size (MB): %.2f\n", (double)tt.param_bytes / 1e6);
  put(&t, "Estimated total size (MB): %.2f\n",
      (double)(tt.input_bytes + tt.activation_bytes + tt.param_bytes) / 1e6);
  put(&t, "%s", rule);
  if (size > 0)
    buf[t.len < size ? t.len : size - 1] = '\0';
  if (out_len)
    *out_len = t.len;
  return TC_OK;
}
