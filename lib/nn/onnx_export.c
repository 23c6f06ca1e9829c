/*
 * onnx_export.c - tc_model_export_onnx: the model's evaluation form as an
 * ONNX ModelProto (opset 13, IR version 7), built with protobuf-c from
 * third_party/onnx/onnx.proto and written atomically.
 *
 * Each layer becomes the operators torch.onnx.export writes for the same
 * module (https://onnx.ai/onnx/operators/): Conv, BatchNormalization with
 * the running statistics, Relu, MaxPool, AveragePool, GlobalAveragePool,
 * Gemm (transB = 1) for a Linear on (N, in), MatMul with the transposed
 * weight + Add above that, Flatten (axis 1), Identity for Dropout and
 * Identity. A residual block is written out: conv1, bn1, Relu, conv2, bn2,
 * the shortcut (option A: Pad of the new channels at the end, then
 * MaxPool(s, s) or Slice(::s); option B: its Conv + BatchNormalization;
 * identity), Add, Relu; the plain block has no Add. Initializers carry the
 * state-dict names; tensors between nodes are named after the module path
 * of the node that writes them. Every string and array of the message is
 * allocated through one list that is freed at the end.
 *
 * Without protobuf-c (meson -Donnx=disabled) only the options and a
 * TC_EUNSUPPORTED stub remain.
 */
#include <stdarg.h>
#include <stdio.h>

#include "../options.h"
#include "../io/io_internal.h"
#include "nn_internal.h"

static const tc_onnx_options onnx_defaults = TC_ONNX_OPTIONS_INIT;

TC_API tc_status tc_onnx_options_init(tc_onnx_options *o, size_t struct_size) {
  return tc__options_init(o, struct_size, &onnx_defaults, sizeof *o,
                          TC__SIZE0_ONNX_OPTIONS, "tc_onnx_options_init");
}

#ifndef TC_HAVE_ONNX

TC_API tc_status tc_model_export_onnx(tc_model *m, const char *path,
                                      const tc_onnx_options *opts) {
  (void)m;
  (void)path;
  (void)opts;
  return tc__error(TC_EUNSUPPORTED,
                   "tc_model_export_onnx: this libtinycnn "
                   "was built without ONNX support (meson -Donnx=enabled "
                   "needs protoc-c and libprotobuf-c)");
}

#else

#include "onnx.pb-c.h"

#define OPSET 13
#define IR_VERSION 7 /* the IR of ONNX 1.8, which introduced opset 13 */

typedef struct ox {
  const char *fn;
  tc_status st; /* the first failure; later calls do nothing */
  void **owned;
  size_t nowned, capowned;
  Onnx__NodeProto **node;
  size_t nnode, capnode;
  Onnx__TensorProto **init;
  size_t ninit, capinit;
} ox;

static int grow(ox *o, void ***arr, size_t n, size_t *cap) {
  if (n < *cap)
    return 1;
  size_t c = *cap ? 2 * *cap : 64;
  void **p = tc__malloc(c * sizeof *p);
  if (!p) {
    o->st = tc__oom(o->fn);
    return 0;
  }
  if (n)
    memcpy(p, *arr, n * sizeof *p);
  tc__free(*arr);
  *arr = p;
  *cap = c;
  return 1;
}

/* Zeroed memory owned by the exporter (freed at the end). */
static void *ox_alloc(ox *o, size_t bytes) {
  if (o->st != TC_OK)
    return NULL;
  if (!grow(o, &o->owned, o->nowned, &o->capowned))
    return NULL;
  void *p = tc__calloc(1, bytes ? bytes : 1);
  if (!p) {
    o->st = tc__oom(o->fn);
    return NULL;
  }
  o->owned[o->nowned++] = p;
  return p;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static char *
ox_str(ox *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? ox_alloc(o, (size_t)n + 1) : NULL;
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* A module path with a suffix: "layers_2n.0.conv1" + ".weight"; the root
 * ("") gives the suffix without its dot. */
static char *ox_name(ox *o, const char *path, const char *suffix) {
  if (!path[0])
    return ox_str(o, "%s", suffix[0] == '.' ? suffix + 1 : suffix);
  return ox_str(o, "%s%s", path, suffix);
}

/* A node op_type(inputs) -> output, named `name`. */
static Onnx__NodeProto *ox_node(ox *o, const char *op, const char *name,
                                const char *const *in, size_t nin,
                                const char *out) {
  Onnx__NodeProto *n = ox_alloc(o, sizeof *n);
  char **ins = ox_alloc(o, nin * sizeof *ins);
  char **outs = ox_alloc(o, sizeof *outs);
  Onnx__AttributeProto **attrs = ox_alloc(o, 8 * sizeof *attrs);
  if (!n || !ins || !outs || !attrs ||
      !grow(o, (void ***)&o->node, o->nnode, &o->capnode))
    return NULL;
  Onnx__NodeProto init = ONNX__NODE_PROTO__INIT;
  *n = init;
  for (size_t i = 0; i < nin; i++)
    ins[i] = (char *)in[i];
  outs[0] = (char *)out;
  n->n_input = nin, n->input = ins;
  n->n_output = 1, n->output = outs;
  n->name = ox_str(o, "%s", name);
  n->op_type = ox_str(o, "%s", op);
  n->attribute = attrs;
  o->node[o->nnode++] = n;
  return o->st == TC_OK ? n : NULL;
}

static Onnx__AttributeProto *ox_attr(ox *o, Onnx__NodeProto *n,
                                     const char *name,
                                     Onnx__AttributeProto__AttributeType t) {
  if (!n)
    return NULL;
  Onnx__AttributeProto *a = ox_alloc(o, sizeof *a);
  if (!a)
    return NULL;
  Onnx__AttributeProto init = ONNX__ATTRIBUTE_PROTO__INIT;
  *a = init;
  a->name = ox_str(o, "%s", name);
  a->has_type = 1;
  a->type = t;
  n->attribute[n->n_attribute++] = a; /* at most 8, see ox_node */
  return a;
}

static void ox_ints(ox *o, Onnx__NodeProto *n, const char *name,
                    const int64_t *v, size_t count) {
  Onnx__AttributeProto *a =
      ox_attr(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  int64_t *copy = ox_alloc(o, count * sizeof *copy);
  if (!a || !copy)
    return;
  memcpy(copy, v, count * sizeof *copy);
  a->n_ints = count;
  a->ints = copy;
}

static void ox_int(ox *o, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a =
      ox_attr(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (a)
    a->has_i = 1, a->i = v;
}

static void ox_float(ox *o, Onnx__NodeProto *n, const char *name, float v) {
  Onnx__AttributeProto *a =
      ox_attr(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  if (a)
    a->has_f = 1, a->f = v;
}

static Onnx__TensorProto *ox_tensor(ox *o, const char *name,
                                    const int64_t *dims, size_t ndims,
                                    int32_t dtype) {
  Onnx__TensorProto *t = ox_alloc(o, sizeof *t);
  int64_t *d = ox_alloc(o, ndims * sizeof *d);
  if (!t || !d || !grow(o, (void ***)&o->init, o->ninit, &o->capinit))
    return NULL;
  Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
  *t = init;
  memcpy(d, dims, ndims * sizeof *d);
  t->n_dims = ndims, t->dims = d;
  t->has_data_type = 1, t->data_type = dtype;
  t->name = (char *)name;
  o->init[o->ninit++] = t;
  return t;
}

/* A float32 initializer holding the model tensor `src` (copied to host). */
static const char *ox_init_from(ox *o, const char *name, const tc_tensor *src) {
  if (o->st != TC_OK)
    return NULL;
  size_t n = (size_t)src->numel;
  float *data = ox_alloc(o, n * sizeof *data);
  Onnx__TensorProto *t = ox_tensor(o, name, src->shape, (size_t)src->ndim,
                                   ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
  if (!data || !t)
    return NULL;
  tc_status st = tc_tensor_copy_to_host(src, data, n * sizeof *data);
  if (st != TC_OK) {
    o->st = st;
    return NULL;
  }
  t->n_float_data = n, t->float_data = data;
  return name;
}

/* A float32 (C) initializer filled with `value`. */
static const char *ox_init_fill(ox *o, const char *name, int64_t c,
                                float value) {
  float *data = ox_alloc(o, (size_t)c * sizeof *data);
  Onnx__TensorProto *t =
      ox_tensor(o, name, &c, 1, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
  if (!data || !t)
    return NULL;
  for (int64_t i = 0; i < c; i++)
    data[i] = value;
  t->n_float_data = (size_t)c, t->float_data = data;
  return name;
}

/* A 1-D int64 initializer (Pad's pads, Slice's starts, ...). */
static const char *ox_init_i64(ox *o, const char *name, const int64_t *v,
                               int64_t count) {
  int64_t *data = ox_alloc(o, (size_t)count * sizeof *data);
  Onnx__TensorProto *t =
      ox_tensor(o, name, &count, 1, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
  if (!data || !t)
    return NULL;
  memcpy(data, v, (size_t)count * sizeof *data);
  t->n_int64_data = (size_t)count, t->int64_data = data;
  return name;
}

/* ---- layers ---- */

static const char *emit(ox *o, const tc_layer *l, const char *path,
                        const char *x);

/* One-input node `op` on x, writing "<path><suffix>". */
static const char *unary(ox *o, const char *op, const char *path,
                         const char *suffix, const char *x,
                         Onnx__NodeProto **out_node) {
  const char *y = ox_name(o, path, suffix);
  const char *in[1] = {x};
  Onnx__NodeProto *n = ox_node(o, op, y ? y : "", in, 1, y);
  if (out_node)
    *out_node = n;
  return n ? y : NULL;
}

static const char *emit_conv(ox *o, const tc_layer *l, const char *path,
                             const char *x) {
  nn_desc d;
  tc__nn_describe(l, &d);
  const char *in[3] = {
      x, ox_init_from(o, ox_name(o, path, ".weight"), l->param[0]), NULL};
  if (d.bias)
    in[2] = ox_init_from(o, ox_name(o, path, ".bias"), l->param[1]);
  const char *y = ox_name(o, path, "");
  Onnx__NodeProto *n = ox_node(o, "Conv", y, in, d.bias ? 3 : 2, y);
  int64_t k[2] = {d.kh, d.kw}, s[2] = {d.stride_h, d.stride_w};
  int64_t p[4] = {d.pad_h, d.pad_w, d.pad_h, d.pad_w};
  int64_t dil[2] = {d.dil_h, d.dil_w};
  ox_ints(o, n, "dilations", dil, 2);
  ox_int(o, n, "group", 1);
  ox_ints(o, n, "kernel_shape", k, 2);
  ox_ints(o, n, "pads", p, 4);
  ox_ints(o, n, "strides", s, 2);
  return o->st == TC_OK ? y : NULL;
}

static const char *emit_bn(ox *o, const tc_layer *l, const char *path,
                           const char *x) {
  nn_desc d;
  tc__nn_describe(l, &d);
  if (!d.track) {
    o->st = tc__error(TC_EUNSUPPORTED,
                      "%s: layer '%s' (%s) normalises "
                      "with batch statistics in evaluation "
                      "(track_running_stats = 0): ONNX's "
                      "BatchNormalization needs running statistics",
                      o->fn, path, l->kind->name);
    return NULL;
  }
  const char *in[5] = {x};
  if (d.affine) {
    in[1] = ox_init_from(o, ox_name(o, path, ".weight"), l->param[0]);
    in[2] = ox_init_from(o, ox_name(o, path, ".bias"), l->param[1]);
  } else { /* affine = 0: scale 1, shift 0 */
    in[1] = ox_init_fill(o, ox_name(o, path, ".onnx_scale"), d.in_c, 1.f);
    in[2] = ox_init_fill(o, ox_name(o, path, ".onnx_shift"), d.in_c, 0.f);
  }
  in[3] = ox_init_from(o, ox_name(o, path, ".running_mean"), l->buffer[0]);
  in[4] = ox_init_from(o, ox_name(o, path, ".running_var"), l->buffer[1]);
  const char *y = ox_name(o, path, "");
  Onnx__NodeProto *n = ox_node(o, "BatchNormalization", y, in, 5, y);
  ox_float(o, n, "epsilon", d.eps);
  ox_float(o, n, "momentum", 0.9f); /* PyTorch's 0.1, ONNX's convention */
  return o->st == TC_OK ? y : NULL;
}

static const char *emit_pool(ox *o, const tc_layer *l, const char *path,
                             const char *x, int max) {
  nn_desc d;
  tc__nn_describe(l, &d);
  Onnx__NodeProto *n;
  const char *y = unary(o, max ? "MaxPool" : "AveragePool", path, "", x, &n);
  int64_t k[2] = {d.kh, d.kw}, s[2] = {d.stride_h, d.stride_w};
  int64_t p[4] = {d.pad_h, d.pad_w, d.pad_h, d.pad_w};
  ox_int(o, n, "ceil_mode", d.ceil_mode);
  if (!max)
    ox_int(o, n, "count_include_pad", d.count_include_pad);
  ox_ints(o, n, "kernel_shape", k, 2);
  ox_ints(o, n, "pads", p, 4);
  ox_ints(o, n, "strides", s, 2);
  return o->st == TC_OK ? y : NULL;
}

static const char *emit_linear(ox *o, const tc_layer *l, const char *path,
                               const char *x) {
  nn_desc d;
  tc__nn_describe(l, &d);
  const char *w = ox_init_from(o, ox_name(o, path, ".weight"), l->param[0]);
  const char *b =
      d.bias ? ox_init_from(o, ox_name(o, path, ".bias"), l->param[1]) : NULL;
  const char *y = ox_name(o, path, "");
  if (l->in_ndim == 1) { /* (N, in): Gemm(x, W^T) + b */
    const char *in[3] = {x, w, b};
    Onnx__NodeProto *n = ox_node(o, "Gemm", y, in, b ? 3 : 2, y);
    ox_float(o, n, "alpha", 1.f);
    ox_float(o, n, "beta", 1.f);
    ox_int(o, n, "transB", 1);
    return o->st == TC_OK ? y : NULL;
  }
  /* (N, ..., in): MatMul(x, Transpose(W)) [+ b] */
  const char *wt = unary(o, "Transpose", path, ".weight_t", w, NULL);
  const char *mm = b ? ox_name(o, path, ".matmul") : y;
  const char *in[2] = {x, wt};
  ox_node(o, "MatMul", mm ? mm : "", in, 2, mm);
  if (b) {
    const char *add[2] = {mm, b};
    ox_node(o, "Add", y, add, 2, y);
  }
  return o->st == TC_OK ? y : NULL;
}

/* Option A's shortcut: the new channels zero-padded at the end, then
 * MaxPool(s, s) or x[:, :, ::s, ::s]. */
static const char *emit_shortcut_a(ox *o, const nn_desc *d, const char *path,
                                   const char *x) {
  const char *s = x;
  if (d->out_c > d->in_c) {
    int64_t pads[8] = {0, 0, 0, 0, 0, d->out_c - d->in_c, 0, 0};
    const char *in[2] = {
        x, ox_init_i64(o, ox_name(o, path, ".shortcut_pads"), pads, 8)};
    s = ox_name(o, path, ".shortcut_pad");
    Onnx__NodeProto *n = ox_node(o, "Pad", s ? s : "", in, 2, s);
    (void)n; /* mode "constant", value 0: the defaults */
  }
  if (d->stride == 1 || o->st != TC_OK)
    return o->st == TC_OK ? s : NULL;
  if (d->shortcut == TC_SHORTCUT_A_MAXPOOL) {
    Onnx__NodeProto *n;
    const char *y = unary(o, "MaxPool", path, ".shortcut_pool", s, &n);
    int64_t k[2] = {d->stride, d->stride};
    ox_ints(o, n, "kernel_shape", k, 2);
    ox_ints(o, n, "strides", k, 2);
    return o->st == TC_OK ? y : NULL;
  }
  int64_t starts[2] = {0, 0}, ends[2] = {INT64_MAX, INT64_MAX};
  int64_t axes[2] = {2, 3}, steps[2] = {d->stride, d->stride};
  const char *in[5] = {
      s, ox_init_i64(o, ox_name(o, path, ".shortcut_starts"), starts, 2),
      ox_init_i64(o, ox_name(o, path, ".shortcut_ends"), ends, 2),
      ox_init_i64(o, ox_name(o, path, ".shortcut_axes"), axes, 2),
      ox_init_i64(o, ox_name(o, path, ".shortcut_steps"), steps, 2)};
  const char *y = ox_name(o, path, ".shortcut_slice");
  ox_node(o, "Slice", y ? y : "", in, 5, y);
  return o->st == TC_OK ? y : NULL;
}

static const char *child_path(ox *o, const char *path, const tc_layer *c) {
  return path[0] ? ox_str(o, "%s.%s", path, c->name) : ox_str(o, "%s", c->name);
}

static const char *emit_residual(ox *o, const tc_layer *l, const char *path,
                                 const char *x) {
  nn_desc d;
  tc__nn_describe(l, &d);
  const char *h = x;
  for (int i = 0; i < 4 && h; i++) {
    const tc_layer *c = l->children[i];
    const char *cp = child_path(o, path, c);
    if (!cp)
      return NULL;
    h = emit(o, c, cp, h);
    if (h && i == 1)
      h = unary(o, "Relu", cp, ".relu", h, NULL);
  }
  if (!h)
    return NULL;
  if (d.shortcut == TC_SHORTCUT_NONE)
    return unary(o, "Relu", path, ".relu", h, NULL);
  const char *s = x;
  if (!d.identity && d.shortcut == TC_SHORTCUT_B) {
    const tc_layer *c = l->children[4];
    const char *cp = child_path(o, path, c);
    s = cp ? emit(o, c, cp, x) : NULL;
  } else if (!d.identity) {
    s = emit_shortcut_a(o, &d, path, x);
  }
  if (!s)
    return NULL;
  const char *sum = ox_name(o, path, ".add");
  const char *in[2] = {h, s};
  if (!ox_node(o, "Add", sum ? sum : "", in, 2, sum))
    return NULL;
  return unary(o, "Relu", path, ".relu", sum, NULL);
}

static const char *emit(ox *o, const tc_layer *l, const char *path,
                        const char *x) {
  const char *k = l->kind->name;
  if (o->st != TC_OK || !x)
    return NULL;
  if (!strcmp(k, "sequential")) {
    const char *h = x;
    for (int64_t i = 0; i < l->nchildren && h; i++) {
      const char *cp = child_path(o, path, l->children[i]);
      h = cp ? emit(o, l->children[i], cp, h) : NULL;
    }
    return h;
  }
  if (!strcmp(k, "conv2d"))
    return emit_conv(o, l, path, x);
  if (!strcmp(k, "batchnorm1d") || !strcmp(k, "batchnorm2d"))
    return emit_bn(o, l, path, x);
  if (!strcmp(k, "relu"))
    return unary(o, "Relu", path, "", x, NULL);
  if (!strcmp(k, "maxpool2d") || !strcmp(k, "avgpool2d"))
    return emit_pool(o, l, path, x, k[0] == 'm');
  if (!strcmp(k, "global_avgpool2d"))
    return unary(o, "GlobalAveragePool", path, "", x, NULL);
  if (!strcmp(k, "linear"))
    return emit_linear(o, l, path, x);
  if (!strcmp(k, "flatten")) {
    Onnx__NodeProto *n;
    const char *y = unary(o, "Flatten", path, "", x, &n);
    ox_int(o, n, "axis", 1);
    return o->st == TC_OK ? y : NULL;
  }
  if (!strcmp(k, "dropout") || !strcmp(k, "dropout2d") ||
      !strcmp(k, "identity"))
    return unary(o, "Identity", path, "", x, NULL);
  if (!strcmp(k, "residual_block"))
    return emit_residual(o, l, path, x);
  o->st = tc__error(TC_EUNSUPPORTED,
                    "%s: layer '%s' (%s) has no ONNX "
                    "form in this exporter",
                    o->fn, path[0] ? path : "<root>", k);
  return NULL;
}

/* ---- graph and file ---- */

/* A float tensor value (batch, shape...) named `name`. */
static Onnx__ValueInfoProto *ox_value(ox *o, const char *name,
                                      const int64_t *shape, int ndim,
                                      const tc_onnx_options *opt) {
  Onnx__ValueInfoProto *v = ox_alloc(o, sizeof *v);
  Onnx__TypeProto *t = ox_alloc(o, sizeof *t);
  Onnx__TypeProto__Tensor *tt = ox_alloc(o, sizeof *tt);
  Onnx__TensorShapeProto *sh = ox_alloc(o, sizeof *sh);
  Onnx__TensorShapeProto__Dimension **dims =
      ox_alloc(o, (size_t)(ndim + 1) * sizeof *dims);
  if (!v || !t || !tt || !sh || !dims)
    return NULL;
  Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
  Onnx__TypeProto ti = ONNX__TYPE_PROTO__INIT;
  Onnx__TypeProto__Tensor tti = ONNX__TYPE_PROTO__TENSOR__INIT;
  Onnx__TensorShapeProto shi = ONNX__TENSOR_SHAPE_PROTO__INIT;
  Onnx__TensorShapeProto__Dimension di =
      ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
  *v = vi, *t = ti, *tt = tti, *sh = shi;
  for (int i = 0; i <= ndim; i++) {
    if (!(dims[i] = ox_alloc(o, sizeof *dims[i])))
      return NULL;
    *dims[i] = di;
    if (i == 0 && opt->dynamic_batch) {
      dims[i]->value_case =
          ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dims[i]->dim_param = ox_str(o, "N");
    } else {
      dims[i]->value_case =
          ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dims[i]->dim_value = i == 0 ? opt->batch : shape[i - 1];
    }
  }
  sh->n_dim = (size_t)ndim + 1, sh->dim = dims;
  tt->has_elem_type = 1;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  tt->shape = sh;
  t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  t->tensor_type = tt;
  v->name = (char *)name;
  v->type = t;
  return v;
}

static tc_status write_file(const char *path, const uint8_t *buf, size_t n,
                            const char *fn) {
  tc__atomic_file af;
  tc_status st = tc__atomic_begin(&af, path, fn);
  if (st != TC_OK)
    return st;
  if ((st = tc__write_all(af.fd, buf, n, path)) != TC_OK) {
    tc__atomic_abort(&af);
    return st;
  }
  return tc__atomic_commit(&af, fn);
}

static tc_status build_and_write(ox *o, tc_model *m, const char *path,
                                 const tc_onnx_options *opt) {
  tc_layer *root = tc__nn_model_root(m);
  int64_t in_shape[NN_SAMPLE_DIMS];
  int in_ndim = tc__nn_model_input_shape(m, in_shape);
  const char *x = ox_str(o, "%s", opt->input_name);
  const char *y = emit(o, root, "", x);
  if (!y)
    return o->st != TC_OK
               ? o->st
               : tc__error(TC_EUNSUPPORTED, "%s: empty model", o->fn);
  /* the graph's output under its own name */
  const char *out = ox_str(o, "%s", opt->output_name);
  const char *in1[1] = {y};
  ox_node(o, "Identity", "output_identity", in1, 1, out);
  Onnx__GraphProto *g = ox_alloc(o, sizeof *g);
  Onnx__ModelProto *mp = ox_alloc(o, sizeof *mp);
  Onnx__OperatorSetIdProto *ops = ox_alloc(o, sizeof *ops);
  Onnx__OperatorSetIdProto **opsv = ox_alloc(o, sizeof *opsv);
  Onnx__ValueInfoProto **gin = ox_alloc(o, sizeof *gin);
  Onnx__ValueInfoProto **gout = ox_alloc(o, sizeof *gout);
  if (!g || !mp || !ops || !opsv || !gin || !gout)
    return o->st;
  gin[0] = ox_value(o, x, in_shape, in_ndim, opt);
  gout[0] = ox_value(o, out, root->out_shape, root->out_ndim, opt);
  if (o->st != TC_OK)
    return o->st;
  Onnx__GraphProto gi = ONNX__GRAPH_PROTO__INIT;
  Onnx__ModelProto mi = ONNX__MODEL_PROTO__INIT;
  Onnx__OperatorSetIdProto oi = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  *g = gi, *mp = mi, *ops = oi;
  g->name = ox_str(o, "tinycnn");
  g->n_node = o->nnode, g->node = o->node;
  g->n_initializer = o->ninit, g->initializer = o->init;
  g->n_input = 1, g->input = gin;
  g->n_output = 1, g->output = gout;
  ops->domain = ox_str(o, "%s", "");
  ops->has_version = 1, ops->version = OPSET;
  opsv[0] = ops;
  mp->has_ir_version = 1, mp->ir_version = IR_VERSION;
  mp->n_opset_import = 1, mp->opset_import = opsv;
  mp->producer_name = ox_str(o, "tinycnn");
  mp->producer_version = ox_str(o, "%s", tc_version());
  mp->graph = g;
  if (o->st != TC_OK)
    return o->st;
  size_t n = protobuf_c_message_get_packed_size(&mp->base);
  uint8_t *buf = tc__malloc(n ? n : 1);
  if (!buf)
    return tc__oom(o->fn);
  protobuf_c_message_pack(&mp->base, buf);
  tc_status st = write_file(path, buf, n, o->fn);
  tc__free(buf);
  return st;
}

TC_API tc_status tc_model_export_onnx(tc_model *m, const char *path,
                                      const tc_onnx_options *opts) {
  static const char fn[] = "tc_model_export_onnx";
  TC__CHECK_NULL(m, fn);
  TC__CHECK_NULL(path, fn);
  tc_onnx_options opt;
  tc_status st = tc__options_accept(&opt, sizeof opt, opts, &onnx_defaults,
                                    TC__SIZE0_ONNX_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (opt.opset != 0 && opt.opset != OPSET)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: opset %d requested; this "
                     "exporter writes opset %d",
                     fn, (int)opt.opset, OPSET);
  if (!opt.dynamic_batch && opt.batch < 1)
    return tc__error(TC_EINVAL, "%s: a fixed batch must be >= 1, got %lld", fn,
                     (long long)opt.batch);
  if (!opt.input_name || !opt.input_name[0] || !opt.output_name ||
      !opt.output_name[0] || !strcmp(opt.input_name, opt.output_name))
    return tc__error(TC_EINVAL,
                     "%s: input and output names must be "
                     "non-empty and differ",
                     fn);
  ox o;
  memset(&o, 0, sizeof o);
  o.fn = fn;
  st = build_and_write(&o, m, path, &opt);
  for (size_t i = 0; i < o.nowned; i++)
    tc__free(o.owned[i]);
  tc__free(o.owned);
  tc__free(o.node);
  tc__free(o.init);
  return st;
}

#endif /* TC_HAVE_ONNX */
