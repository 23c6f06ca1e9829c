/*
 * onnx_import.c - tc_model_create_from_onnx: an ONNX model of a CNN as a
 * tinycnn model in evaluation mode.
 *
 * The graph is walked from its one input to its one output. A tensor read
 * by one node continues the chain: Conv, BatchNormalization (inference),
 * Relu, MaxPool, AveragePool (a zero Pad before it, as torch writes
 * AvgPool2d, becomes its padding), GlobalAveragePool, Flatten (axis 1), a
 * Reshape that flattens, Gemm, MatMul (+ Add of a constant bias), and
 * Identity / Dropout (dropped). A tensor read by two nodes must start a
 * residual block as lib/nn/residual.c computes it: a main branch Conv 3x3
 * [BN] Relu Conv 3x3 [BN] and a shortcut (none, Conv 1x1 [BN] for option
 * B, Pad of the new channels then MaxPool or Slice for option A) meeting
 * at an Add followed by a Relu. BN folded into the Conv (torch.onnx.export
 * in eval mode) puts the Conv's bias into the block's batch norm.
 * Anything else is TC_EUNSUPPORTED naming the first node that does not
 * fit. Parameters come from the initializers (or constant subgraphs,
 * onnx_const.c) each node reads, by input position, so their names do not
 * matter; the layers are children "0", "1", ... of one Sequential.
 *
 * Without protobuf-c only the options and a TC_EUNSUPPORTED stub remain.
 */
#include <stdio.h>
#include <unistd.h>

#include "../options.h"
#include "nn_internal.h"

static const tc_onnx_load_options load_defaults = TC_ONNX_LOAD_OPTIONS_INIT;

TC_API tc_status tc_onnx_load_options_init(tc_onnx_load_options *o,
                                           size_t struct_size) {
  return tc__options_init(o, struct_size, &load_defaults, sizeof *o,
                          TC__SIZE0_ONNX_LOAD_OPTIONS,
                          "tc_onnx_load_options_init");
}

#ifndef TC_HAVE_ONNX

TC_API tc_status tc_model_create_from_onnx(tc_model **out, tc_backend *be,
                                           const char *path,
                                           const tc_onnx_load_options *opts) {
  (void)out, (void)be, (void)path, (void)opts;
  return tc__error(
      TC_EUNSUPPORTED,
      "tc_model_create_from_onnx: this libtinycnn was built without "
      "ONNX support (meson -Donnx=enabled needs protoc-c and "
      "libprotobuf-c)");
}

#else

#include "onnx_import.h"

static const char *nname(const Onnx__NodeProto *n) {
  return n->name && n->name[0] ? n->name : "<unnamed>";
}

tc_status tc__oi_unsupported(oi_map *m, const Onnx__NodeProto *n,
                             const char *why) {
  return tc__error(TC_EUNSUPPORTED, "%s: unsupported node '%s' (%s): %s",
                   m->o.fn, nname(n), n->op_type, why);
}

tc_status tc__oi_bad(oi_map *m, const Onnx__NodeProto *n, tc_status st,
                     const char *why) {
  return tc__error(st, "%s: node '%s' (%s): %s", m->o.fn, nname(n), n->op_type,
                   why);
}

int tc__oi_readers(oi_map *m, const char *name, int64_t *idx, int max) {
  int count = 0;
  for (size_t i = 0; i < m->o.g->n_node; i++) {
    const Onnx__NodeProto *n = m->o.g->node[i];
    if (m->o.used[i])
      continue;
    for (size_t j = 0; j < n->n_input; j++)
      if (!strcmp(n->input[j], name)) {
        if (count < max)
          idx[count] = (int64_t)i;
        count++;
        break;
      }
  }
  return count;
}

int64_t tc__oi_iattr(const Onnx__NodeProto *n, const char *name, int64_t d) {
  const Onnx__AttributeProto *a = tc__oi_attr(n, name);
  return a ? a->i : d;
}

static float oi_fattr(const Onnx__NodeProto *n, const char *name, float d) {
  const Onnx__AttributeProto *a = tc__oi_attr(n, name);
  return a ? a->f : d;
}

/* `name`'s two ints (kernel_shape, strides, dilations), or `d` both. */
tc_status tc__oi_pair(oi_map *m, const Onnx__NodeProto *n, const char *name,
                      int64_t d, int64_t v[2]) {
  const Onnx__AttributeProto *a = tc__oi_attr(n, name);
  v[0] = v[1] = d;
  if (!a)
    return TC_OK;
  if (a->n_ints != 2 || a->ints[0] < 1 || a->ints[1] < 1 ||
      a->ints[0] > INT32_MAX || a->ints[1] > INT32_MAX)
    return tc__oi_bad(m, n, TC_EFORMAT,
                      "attribute must hold two positive ints");
  v[0] = a->ints[0], v[1] = a->ints[1];
  return TC_OK;
}

/* Symmetric 2-D pads (pads attribute, auto_pad NOTSET or VALID). */
tc_status tc__oi_pads2(oi_map *m, const Onnx__NodeProto *n, int64_t p[2]) {
  const Onnx__AttributeProto *a = tc__oi_attr(n, "auto_pad");
  p[0] = p[1] = 0;
  if (a && a->s.len && !(a->s.len == 6 && !memcmp(a->s.data, "NOTSET", 6)) &&
      !(a->s.len == 5 && !memcmp(a->s.data, "VALID", 5)))
    return tc__oi_unsupported(m, n, "auto_pad SAME_*; explicit pads only");
  if (!(a = tc__oi_attr(n, "pads")))
    return TC_OK;
  if (a->n_ints != 4)
    return tc__oi_bad(m, n, TC_EFORMAT, "pads must hold 4 values");
  for (int i = 0; i < 4; i++)
    if (a->ints[i] < 0 || a->ints[i] > INT32_MAX)
      return tc__oi_bad(m, n, TC_EFORMAT, "pads out of range");
  if (a->ints[0] != a->ints[2] || a->ints[1] != a->ints[3])
    return tc__oi_unsupported(m, n, "asymmetric padding");
  p[0] = a->ints[0], p[1] = a->ints[1];
  return TC_OK;
}

/* A constant float input of node n with `numel` elements (any shape
 * unless `dims`/`ndim` are given). */
tc_status tc__oi_cfloat(oi_map *m, const Onnx__NodeProto *n, size_t k, int ndim,
                        const int64_t *dims, int64_t numel, oi_val *v) {
  char why[256];
  if (k >= n->n_input || !n->input[k][0])
    return tc__oi_bad(m, n, TC_EFORMAT, "a required input is missing");
  tc_status st = tc__oi_const(&m->o, n->input[k], v);
  if (st == TC_ENOTFOUND) {
    snprintf(why, sizeof why,
             "input '%s' must be an initializer (or "
             "computed from constants only)",
             n->input[k]);
    return tc__oi_unsupported(m, n, why);
  }
  if (st != TC_OK)
    return st;
  if (v->dtype != FLT)
    return tc__oi_bad(m, n, TC_EFORMAT, "a weight is not float32");
  int ok = numel < 0 || v->numel == numel;
  for (int d = 0; ok && dims && d < ndim; d++)
    ok = d < v->ndim && (dims[d] < 0 || v->dims[d] == dims[d]);
  if (ok && ndim >= 0 && v->ndim != ndim)
    ok = 0;
  if (!ok) {
    snprintf(why, sizeof why,
             "initializer '%s' has %lld elements in %d "
             "dimensions, which does not fit (expected %lld)",
             n->input[k], (long long)v->numel, v->ndim, (long long)numel);
    return tc__oi_bad(m, n, TC_ESHAPE, why);
  }
  return TC_OK;
}

tc_status tc__oi_queue(oi_map *m, tc_layer *l, int buffer, int idx,
                       const float *data, int64_t n) {
  if (m->nsets == m->capsets) {
    size_t c = m->capsets ? 2 * m->capsets : 32;
    oi_set *p = tc__oi_alloc(&m->o, c * sizeof *p);
    if (!p)
      return TC_ENOMEM;
    if (m->nsets)
      memcpy(p, m->sets, m->nsets * sizeof *p);
    m->sets = p, m->capsets = c;
  }
  oi_set s = {l, buffer, idx, data, n};
  m->sets[m->nsets++] = s;
  return TC_OK;
}

/* Appends `l` (made for node n, or a failure `st`), checking its shape. */
tc_status tc__oi_append(oi_map *m, const Onnx__NodeProto *n, tc_status st,
                        tc_layer *l) {
  char name[32], msg[512];
  if (st != TC_OK) {
    snprintf(msg, sizeof msg, "%s", tc_last_error());
    return tc__oi_bad(m, n, st == TC_EINVAL ? TC_EUNSUPPORTED : st, msg);
  }
  if ((st = tc__nn_infer(l, m->shape, m->ndim, m->o.fn)) != TC_OK) {
    snprintf(msg, sizeof msg, "%s", tc_last_error());
    tc_layer_destroy(l);
    return tc__oi_bad(m, n, st, msg);
  }
  m->ndim = l->out_ndim;
  memcpy(m->shape, l->out_shape, sizeof m->shape);
  snprintf(name, sizeof name, "%lld", (long long)m->nlayers++);
  return tc_sequential_add(m->seq, name, l);
}

static tc_status map_conv(oi_map *m, const Onnx__NodeProto *n) {
  int64_t k[2], s[2], d[2], p[2];
  oi_val w, b;
  tc_status st;
  if (tc__oi_iattr(n, "group", 1) != 1)
    return tc__oi_unsupported(m, n, "group != 1");
  if ((st = tc__oi_cfloat(m, n, 1, 4, NULL, -1, &w)) != TC_OK)
    return st;
  if (m->ndim != 3 || w.dims[1] != m->shape[0])
    return tc__oi_bad(m, n, TC_ESHAPE,
                      "weight (K, C, R, S) does not fit the "
                      "input's channels");
  int bias = n->n_input > 2 && n->input[2][0];
  if (bias &&
      (st = tc__oi_cfloat(m, n, 2, 1, &w.dims[0], w.dims[0], &b)) != TC_OK)
    return st;
  if ((st = tc__oi_pair(m, n, "kernel_shape", 0, k)) ||
      (st = tc__oi_pair(m, n, "strides", 1, s)) ||
      (st = tc__oi_pair(m, n, "dilations", 1, d)) ||
      (st = tc__oi_pads2(m, n, p)))
    return st;
  if (k[0] && (k[0] != w.dims[2] || k[1] != w.dims[3]))
    return tc__oi_bad(m, n, TC_ESHAPE,
                      "kernel_shape differs from the weight's");
  tc_conv2d_options o = TC_CONV2D_OPTIONS_INIT;
  o.stride_h = s[0], o.stride_w = s[1], o.pad_h = p[0], o.pad_w = p[1];
  o.dilation_h = d[0], o.dilation_w = d[1], o.kernel_w = w.dims[3];
  o.bias = bias;
  tc_layer *l = NULL;
  st = tc_conv2d_create(&l, w.dims[1], w.dims[0], w.dims[2], &o);
  if ((st = tc__oi_append(m, n, st, l)) != TC_OK ||
      (st = tc__oi_queue(m, l, 0, 0, w.f, w.numel)) != TC_OK)
    return st;
  return bias ? tc__oi_queue(m, l, 0, 1, b.f, b.numel) : TC_OK;
}

/* BatchNormalization's scale, B, mean, var (C each) and epsilon. */
tc_status tc__oi_bn_inputs(oi_map *m, const Onnx__NodeProto *n, int64_t c,
                           oi_val v[4], float *eps) {
  if (n->n_input != 5)
    return tc__oi_bad(m, n, TC_EFORMAT, "needs 5 inputs");
  if (tc__oi_iattr(n, "training_mode", 0) != 0)
    return tc__oi_unsupported(m, n, "training_mode = 1");
  for (size_t i = 1; i < n->n_output; i++)
    if (n->output[i][0])
      return tc__oi_unsupported(m, n,
                                "the running statistics are outputs "
                                "(training form)");
  for (int i = 0; i < 4; i++) {
    tc_status st = tc__oi_cfloat(m, n, (size_t)i + 1, 1, &c, c, &v[i]);
    if (st != TC_OK)
      return st;
  }
  *eps = oi_fattr(n, "epsilon", 1e-5f);
  if (!(*eps > 0.f) || *eps > 1.f)
    return tc__oi_bad(m, n, TC_EFORMAT, "epsilon must be in (0, 1]");
  return TC_OK;
}

static tc_status map_bn(oi_map *m, const Onnx__NodeProto *n) {
  oi_val v[4];
  float eps;
  if (m->ndim < 1)
    return tc__oi_bad(m, n, TC_ESHAPE, "input has no channel dimension");
  tc_status st = tc__oi_bn_inputs(m, n, m->shape[0], v, &eps);
  if (st != TC_OK)
    return st;
  tc_batchnorm_options o = TC_BATCHNORM_OPTIONS_INIT;
  o.eps = eps;
  tc_layer *l = NULL;
  st = m->ndim == 3 ? tc_batchnorm2d_create(&l, m->shape[0], &o)
                    : tc_batchnorm1d_create(&l, m->shape[0], &o);
  if ((st = tc__oi_append(m, n, st, l)) != TC_OK)
    return st;
  for (int i = 0; i < 4 && st == TC_OK; i++)
    st = tc__oi_queue(m, l, i >= 2, i % 2, v[i].f, v[i].numel);
  return st;
}

static tc_status map_pool(oi_map *m, const Onnx__NodeProto *n, int max,
                          int64_t extra_pad) {
  int64_t k[2], s[2], p[2], d[2];
  tc_status st;
  if ((st = tc__oi_pair(m, n, "kernel_shape", 0, k)) ||
      (st = tc__oi_pair(m, n, "strides", 1, s)) ||
      (st = tc__oi_pads2(m, n, p)) ||
      (st = tc__oi_pair(m, n, "dilations", 1, d)))
    return st;
  if (!k[0])
    return tc__oi_bad(m, n, TC_EFORMAT, "kernel_shape is missing");
  if (d[0] != 1 || d[1] != 1)
    return tc__oi_unsupported(m, n, "dilated pooling");
  if (tc__oi_iattr(n, "storage_order", 0) != 0 ||
      (n->n_output > 1 && n->output[1][0]))
    return tc__oi_unsupported(m, n, "the Indices output or column-major order");
  tc_pool2d_options o = TC_POOL2D_OPTIONS_INIT;
  o.stride_h = s[0], o.stride_w = s[1], o.kernel_w = k[1];
  o.pad_h = p[0], o.pad_w = p[1];
  o.ceil_mode = (int32_t)tc__oi_iattr(n, "ceil_mode", 0);
  o.count_include_pad = (int32_t)tc__oi_iattr(n, "count_include_pad", 0);
  if (extra_pad) { /* Pad(zeros) + AveragePool = count_include_pad */
    if (p[0] || p[1])
      return tc__oi_unsupported(m, n, "padded twice");
    o.pad_h = o.pad_w = extra_pad;
    o.count_include_pad = 1;
  }
  tc_layer *l = NULL;
  st = max ? tc_maxpool2d_create(&l, k[0], &o)
           : tc_avgpool2d_create(&l, k[0], &o);
  return tc__oi_append(m, n, st, l);
}

/* Linear from W (out, in) [transposed when trans = 0] and bias. */
static tc_status linear(oi_map *m, const Onnx__NodeProto *n, const oi_val *w,
                        int trans, const oi_val *b, float alpha, float beta) {
  int64_t out = trans ? w->dims[0] : w->dims[1];
  int64_t in = trans ? w->dims[1] : w->dims[0];
  float *wt = tc__oi_alloc(&m->o, (size_t)w->numel * sizeof *wt);
  float *bt = b ? tc__oi_alloc(&m->o, (size_t)out * sizeof *bt) : NULL;
  if (!wt || (b && !bt))
    return TC_ENOMEM;
  for (int64_t i = 0; i < out; i++)
    for (int64_t j = 0; j < in; j++)
      wt[i * in + j] = alpha * (trans ? w->f[i * in + j] : w->f[j * out + i]);
  for (int64_t i = 0; b && i < out; i++)
    bt[i] = beta * b->f[b->numel == 1 ? 0 : i];
  tc_linear_options o = TC_LINEAR_OPTIONS_INIT;
  o.bias = b != NULL;
  tc_layer *l = NULL;
  tc_status st = tc_linear_create(&l, in, out, &o);
  if ((st = tc__oi_append(m, n, st, l)) != TC_OK ||
      (st = tc__oi_queue(m, l, 0, 0, wt, w->numel)) != TC_OK)
    return st;
  return b ? tc__oi_queue(m, l, 0, 1, bt, out) : TC_OK;
}

static tc_status map_gemm(oi_map *m, const Onnx__NodeProto *n) {
  oi_val w, b;
  tc_status st;
  if (tc__oi_iattr(n, "transA", 0) != 0)
    return tc__oi_unsupported(m, n, "transA = 1");
  if (m->ndim != 1)
    return tc__oi_bad(m, n, TC_ESHAPE, "Gemm needs a 2-D input (N, features)");
  int trans = tc__oi_iattr(n, "transB", 0) != 0;
  if ((st = tc__oi_cfloat(m, n, 1, 2, NULL, -1, &w)) != TC_OK)
    return st;
  int64_t out = trans ? w.dims[0] : w.dims[1];
  int bias = n->n_input > 2 && n->input[2][0];
  if (bias && (st = tc__oi_cfloat(m, n, 2, -1, NULL, -1, &b)) != TC_OK)
    return st;
  if (bias && b.numel != out && b.numel != 1)
    return tc__oi_bad(m, n, TC_ESHAPE, "C does not fit the output features");
  return linear(m, n, &w, trans, bias ? &b : NULL, oi_fattr(n, "alpha", 1.f),
                oi_fattr(n, "beta", 1.f));
}

/* MatMul(x, W (in, out)) [+ Add(bias (out))]. */
static tc_status map_matmul(oi_map *m, const Onnx__NodeProto *n,
                            const char **y) {
  oi_val w, b;
  tc_status st;
  if (n->n_input != 2)
    return tc__oi_bad(m, n, TC_EFORMAT, "needs 2 inputs");
  if ((st = tc__oi_cfloat(m, n, 1, 2, NULL, -1, &w)) != TC_OK)
    return st;
  *y = n->output[0];
  int64_t ai = -1;
  int cnt = tc__oi_readers(m, n->output[0], &ai, 1);
  const Onnx__NodeProto *a = ai >= 0 ? m->o.g->node[ai] : NULL;
  int has_b = 0;
  if (cnt == 1 && !strcmp(a->op_type, "Add") && a->n_input == 2) {
    const char *other =
        !strcmp(a->input[0], n->output[0]) ? a->input[1] : a->input[0];
    st = tc__oi_const(&m->o, other, &b);
    if (st == TC_OK && b.dtype == FLT && b.numel == w.dims[1] && b.ndim == 1) {
      m->o.used[ai] = 1, has_b = 1, *y = a->output[0];
    } else if (st != TC_OK && st != TC_ENOTFOUND) {
      return st;
    }
  }
  return linear(m, n, &w, 0, has_b ? &b : NULL, 1.f, 1.f);
}

/* Reshape that flattens (N, ...) to (N, features). */
static tc_status map_reshape(oi_map *m, const Onnx__NodeProto *n) {
  oi_val s;
  tc_status st =
      n->n_input >= 2 ? tc__oi_const(&m->o, n->input[1], &s) : TC_EFORMAT;
  if (st == TC_ENOTFOUND || st == TC_EFORMAT)
    return tc__oi_unsupported(m, n, "the target shape must be constant");
  if (st != TC_OK)
    return st;
  int64_t feat = 1;
  for (int i = 0; i < m->ndim; i++)
    feat *= m->shape[i];
  int64_t s0 = s.numel == 2 ? tc__oi_at(&s, 0) : -2;
  int64_t s1 = s.numel == 2 ? tc__oi_at(&s, 1) : -2;
  int batch_ok =
      s0 == 0 || (m->batch && s0 == m->batch) || (s0 == -1 && s1 == feat);
  if (!batch_ok || (s1 != -1 && s1 != feat))
    return tc__oi_unsupported(m, n,
                              "only a flatten to (N, features) is mapped");
  tc_layer *l = NULL;
  st = tc_flatten_create(&l);
  return tc__oi_append(m, n, st, l);
}

/* The input pads of a Pad node in mode constant with value 0. */
tc_status tc__oi_pad_amounts(oi_map *m, const Onnx__NodeProto *n,
                             int64_t p[8]) {
  const Onnx__AttributeProto *a = tc__oi_attr(n, "mode");
  oi_val v;
  if (a && a->s.len && !(a->s.len == 8 && !memcmp(a->s.data, "constant", 8)))
    return tc__oi_unsupported(m, n, "only constant padding");
  tc_status st =
      n->n_input >= 2 ? tc__oi_const(&m->o, n->input[1], &v) : TC_ENOTFOUND;
  if (st == TC_ENOTFOUND)
    return tc__oi_unsupported(m, n, "pads must be constant");
  if (st != TC_OK)
    return st;
  if (v.numel != 8)
    return tc__oi_unsupported(m, n, "only 4-D padding");
  for (int i = 0; i < 8; i++)
    p[i] = tc__oi_at(&v, i);
  if (n->n_input >= 3 && n->input[2][0]) {
    oi_val c;
    if ((st = tc__oi_const(&m->o, n->input[2], &c)) == TC_ENOTFOUND ||
        (st == TC_OK && (c.numel != 1 || tc__oi_at(&c, 0) != 0)))
      return tc__oi_unsupported(m, n, "only zero padding");
    if (st != TC_OK)
      return st;
  }
  for (int i = 0; i < 8; i++)
    if (p[i] < 0 || p[i] > INT32_MAX)
      return tc__oi_unsupported(m, n, "negative or huge pads");
  return TC_OK;
}

/* Maps the node at `idx`, the only reader of m->cur. */
static tc_status map_node(oi_map *m, int64_t idx) {
  Onnx__NodeProto *n = m->o.g->node[idx];
  const char *op = n->op_type, *y = n->n_output ? n->output[0] : NULL;
  tc_status st = TC_OK;
  tc_layer *l = NULL;
  m->o.used[idx] = 1;
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
    return tc__oi_unsupported(m, n, "operator domain other than ONNX's");
  if (!y || !y[0])
    return tc__oi_bad(m, n, TC_EFORMAT, "no output");
  if (n->n_input < 1 || strcmp(n->input[0], m->cur))
    return tc__oi_unsupported(m, n,
                              "the graph's tensor must be its first "
                              "input");
  if (!strcmp(op, "Identity")) {
  } else if (!strcmp(op, "Dropout")) {
    oi_val t;
    if (n->n_output > 1 && n->output[1][0])
      return tc__oi_unsupported(m, n, "the mask output is used");
    if (n->n_input > 2 && n->input[2][0] &&
        (tc__oi_const(&m->o, n->input[2], &t) != TC_OK ||
         tc__oi_at(&t, 0) != 0))
      return tc__oi_unsupported(m, n, "training_mode must be a constant false");
  } else if (!strcmp(op, "Relu")) {
    st = tc_relu_create(&l);
    st = tc__oi_append(m, n, st, l);
  } else if (!strcmp(op, "Conv")) {
    st = map_conv(m, n);
  } else if (!strcmp(op, "BatchNormalization")) {
    st = map_bn(m, n);
  } else if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) {
    st = map_pool(m, n, op[0] == 'M', 0);
  } else if (!strcmp(op, "GlobalAveragePool")) {
    st = tc_global_avgpool2d_create(&l);
    st = tc__oi_append(m, n, st, l);
  } else if (!strcmp(op, "Flatten")) {
    if (tc__oi_iattr(n, "axis", 1) != 1)
      return tc__oi_unsupported(m, n, "axis other than 1");
    st = tc_flatten_create(&l);
    st = tc__oi_append(m, n, st, l);
  } else if (!strcmp(op, "Reshape")) {
    st = map_reshape(m, n);
  } else if (!strcmp(op, "Gemm")) {
    st = map_gemm(m, n);
  } else if (!strcmp(op, "MatMul")) {
    st = map_matmul(m, n, &y);
  } else if (!strcmp(op, "Pad")) {
    /* zero pads (torch's AvgPool2d writes them), or a symmetric spatial
     * zero Pad before an unpadded AveragePool */
    int64_t p[8], cnt = -1;
    if ((st = tc__oi_pad_amounts(m, n, p)) != TC_OK)
      return st;
    int64_t any = p[0] | p[1] | p[4] | p[5], sp = p[2];
    if (!any && !(p[2] | p[3] | p[6] | p[7])) {
    } else {
      int c = tc__oi_readers(m, y, &cnt, 1);
      if (any || c != 1 || p[3] != sp || p[6] != sp || p[7] != sp ||
          strcmp(m->o.g->node[cnt]->op_type, "AveragePool"))
        return tc__oi_unsupported(m, n,
                                  "padding is mapped only as an "
                                  "AveragePool's (spatial, symmetric, zero)");
      m->o.used[cnt] = 1;
      st = map_pool(m, m->o.g->node[cnt], 0, sp);
      y = m->o.g->node[cnt]->output[0];
    }
  } else {
    return tc__oi_unsupported(m, n, "operator not supported by the importer");
  }
  if (st == TC_OK)
    m->cur = y;
  return st;
}

/* ---- the file and the graph ---- */

static tc_status read_file(const char *path, int64_t max, uint8_t **out,
                           size_t *out_n, const char *fn) {
  int fd;
  uint64_t size;
  tc_status st = tc__open_regular(path, &fd, &size, fn);
  if (st != TC_OK)
    return st;
  if (size > (uint64_t)max) {
    close(fd);
    return tc__error(TC_EFORMAT,
                     "%s: '%s' has %llu bytes, more than the "
                     "limit of %lld (max_file_bytes)",
                     fn, path, (unsigned long long)size, (long long)max);
  }
  uint8_t *buf = tc__malloc(size ? (size_t)size : 1);
  if (!buf) {
    close(fd);
    return tc__oom(fn);
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, buf + got, (size_t)size - got);
    if (r <= 0) {
      close(fd);
      tc__free(buf);
      return tc__error(TC_EIO, "%s: reading '%s' failed", fn, path);
    }
    got += (size_t)r;
  }
  close(fd);
  *out = buf, *out_n = got;
  return TC_OK;
}

/* Checks the model's opset and graph; finds the input, its per-sample
 * shape and fixed batch (0 when symbolic), and the output. */
static tc_status check_graph(oi_map *m, const Onnx__ModelProto *mp,
                             const char **out_name, int64_t *in_shape,
                             int *in_ndim) {
  const char *fn = m->o.fn;
  const Onnx__GraphProto *g = mp->graph;
  int64_t opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const char *d = mp->opset_import[i]->domain;
    if (!d || !d[0] || !strcmp(d, "ai.onnx"))
      opset = mp->opset_import[i]->version;
  }
  if (!g)
    return tc__error(TC_EFORMAT, "%s: not an ONNX model (no graph)", fn);
  if (opset < 11 || opset > 21)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: ONNX opset %lld; this importer "
                     "reads opsets 11 to 21",
                     fn, (long long)opset);
  for (size_t i = 0; i < g->n_node; i++)
    if (!g->node[i]->op_type)
      return tc__error(TC_EFORMAT, "%s: node %zu has no op_type", fn, i);
  const Onnx__ValueInfoProto *in = NULL;
  for (size_t i = 0; i < g->n_input; i++) {
    const char *nm = g->input[i]->name;
    int is_init = 0;
    if (!nm)
      return tc__error(TC_EFORMAT, "%s: a graph input has no name", fn);
    for (size_t j = 0; j < g->n_initializer && !is_init; j++)
      is_init = g->initializer[j]->name && !strcmp(g->initializer[j]->name, nm);
    if (is_init)
      continue; /* IR < 4 lists initializers as inputs too */
    if (in)
      return tc__error(TC_EUNSUPPORTED,
                       "%s: the graph has more than one "
                       "input ('%s', '%s')",
                       fn, in->name, nm);
    in = g->input[i];
  }
  if (!in || g->n_output != 1 || !g->output[0]->name)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: the graph must have one input "
                     "and one output",
                     fn);
  *out_name = g->output[0]->name;
  m->o.input = in->name;
  const Onnx__TypeProto *t = in->type;
  const Onnx__TypeProto__Tensor *tt =
      t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? t->tensor_type
                                                                : NULL;
  if (!tt || tt->elem_type != FLT || !tt->shape || tt->shape->n_dim < 2 ||
      tt->shape->n_dim > NN_SAMPLE_DIMS + 1)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: input '%s' must be a float32 "
                     "tensor of 2 to %d dimensions with a known shape",
                     fn, in->name, NN_SAMPLE_DIMS + 1);
  Onnx__TensorShapeProto__Dimension *const *d = tt->shape->dim;
  m->batch =
      d[0]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
          ? d[0]->dim_value
          : 0;
  if (m->batch < 0)
    return tc__error(TC_EFORMAT, "%s: input '%s' has a negative batch", fn,
                     in->name);
  int64_t numel = 1;
  *in_ndim = (int)tt->shape->n_dim - 1;
  for (int i = 0; i < *in_ndim; i++) {
    const Onnx__TensorShapeProto__Dimension *di = d[i + 1];
    if (di->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
      return tc__error(TC_EUNSUPPORTED,
                       "%s: input '%s': dimension %d is "
                       "symbolic; only the batch may be",
                       fn, in->name, i + 1);
    if (di->dim_value < 1 || di->dim_value > TC__MAX_NUMEL / numel)
      return tc__error(TC_ESHAPE,
                       "%s: input '%s': dimension %d is %lld "
                       "(empty, or the element count overflows)",
                       fn, in->name, i + 1, (long long)di->dim_value);
    in_shape[i] = di->dim_value;
    numel *= di->dim_value;
  }
  memcpy(m->shape, in_shape, (size_t)*in_ndim * sizeof *in_shape);
  m->ndim = *in_ndim;
  return TC_OK;
}

static tc_status walk(oi_map *m, const char *out_name) {
  m->cur = m->o.input;
  for (;;) {
    if (!strcmp(m->cur, out_name))
      break;
    int64_t rd[2];
    int c = tc__oi_readers(m, m->cur, rd, 2);
    tc_status st;
    if (c == 0)
      return tc__error(TC_EUNSUPPORTED,
                       "%s: tensor '%s' is read by no "
                       "node and is not the graph's output",
                       m->o.fn, m->cur);
    if (c == 1)
      st = map_node(m, rd[0]);
    else if (c == 2)
      st = tc__oi_map_block(m, rd);
    else
      st = tc__oi_unsupported(m, m->o.g->node[rd[0]],
                              "its input is read by more than two nodes");
    if (st != TC_OK)
      return st;
  }
  for (size_t i = 0; i < m->o.g->n_node; i++)
    if (!m->o.used[i] && strcmp(m->o.g->node[i]->op_type, "Constant"))
      return tc__oi_unsupported(
          m, m->o.g->node[i], "not on the chain from the input to the output");
  return TC_OK;
}

static tc_status set_params(oi_map *m, tc_model *model) {
  (void)model;
  for (size_t i = 0; i < m->nsets; i++) {
    const oi_set *s = &m->sets[i];
    tc_tensor *t = s->buffer ? s->l->buffer[s->idx] : s->l->param[s->idx];
    if (!t || t->numel != s->n)
      return tc__error(TC_ESHAPE,
                       "%s: a parameter of %lld elements does "
                       "not fit its layer",
                       m->o.fn, (long long)s->n);
    tc_status st =
        tc_tensor_copy_from_host(t, s->data, (size_t)s->n * sizeof(float));
    if (st != TC_OK)
      return st;
  }
  return TC_OK;
}

TC_API tc_status tc_model_create_from_onnx(tc_model **out, tc_backend *be,
                                           const char *path,
                                           const tc_onnx_load_options *opts) {
  static const char fn[] = "tc_model_create_from_onnx";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(be, fn);
  TC__CHECK_NULL(path, fn);
  tc_onnx_load_options opt;
  tc_status st = tc__options_accept(&opt, sizeof opt, opts, &load_defaults,
                                    TC__SIZE0_ONNX_LOAD_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (opt.max_file_bytes < 1 || opt.max_file_bytes > ((int64_t)1 << 31))
    return tc__error(TC_EINVAL,
                     "%s: max_file_bytes %lld must be in [1, "
                     "2^31] (protobuf's limit)",
                     fn, (long long)opt.max_file_bytes);
  uint8_t *buf = NULL;
  size_t nbuf = 0;
  Onnx__ModelProto *mp = NULL;
  tc_model *model = NULL;
  oi_map m;
  memset(&m, 0, sizeof m);
  m.o.fn = fn;
  int64_t in_shape[NN_SAMPLE_DIMS];
  int in_ndim = 0;
  const char *out_name = NULL;
  if ((st = read_file(path, opt.max_file_bytes, &buf, &nbuf, fn)) != TC_OK)
    return st;
  if (!(mp = onnx__model_proto__unpack(NULL, nbuf, buf))) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s' is not a valid ONNX protobuf "
                   "(truncated or corrupt)",
                   fn, path);
    goto fail;
  }
  m.o.g = mp->graph;
  if ((st = check_graph(&m, mp, &out_name, in_shape, &in_ndim)) != TC_OK)
    goto fail;
  if (!(m.o.used = tc__oi_alloc(&m.o, m.o.g->n_node))) {
    st = TC_ENOMEM;
    goto fail;
  }
  if ((st = tc_sequential_create(&m.seq)) != TC_OK ||
      (st = walk(&m, out_name)) != TC_OK)
    goto fail;
  if (m.nlayers == 0) {
    tc_layer *l;
    if ((st = tc_identity_create(&l)) != TC_OK ||
        (st = tc_sequential_add(m.seq, "0", l)) != TC_OK)
      goto fail;
  }
  st = tc_model_create(&model, be, m.seq, in_shape, in_ndim, NULL);
  m.seq = NULL; /* owned by the model, or destroyed on failure */
  if (st != TC_OK || (st = set_params(&m, model)) != TC_OK ||
      (st = tc_model_set_training(model, 0)) != TC_OK)
    goto fail;
  *out = model;
  model = NULL;
fail:
  tc_model_destroy(model);
  tc_layer_destroy(m.seq);
  for (size_t i = 0; i < m.o.nowned; i++)
    tc__free(m.o.owned[i]);
  tc__free(m.o.owned);
  if (mp)
    onnx__model_proto__free_unpacked(mp, NULL);
  tc__free(buf);
  return st;
}

#endif /* TC_HAVE_ONNX */
