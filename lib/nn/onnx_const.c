/*
 * onnx_const.c - the constants of an imported ONNX graph: initializers
 * (TensorProto, float32 or int64, inline or raw little-endian data; no
 * external data) and the small subgraphs of constants torch.onnx.export
 * writes unfolded (F.pad's pads: Constant, ConstantOfShape, Concat,
 * Reshape, Slice, Transpose, Cast, Unsqueeze, Identity), evaluated on the
 * host as the ONNX operator docs define them
 * (https://onnx.ai/onnx/operators/). Everything from the file is
 * validated: dimensions, element counts against the data present, and a
 * bound on what a constant subgraph may compute (OI_MAX_CONST_NUMEL).
 */
#ifdef TC_HAVE_ONNX

#include "onnx_import.h"

void *tc__oi_alloc(oi *o, size_t bytes) {
  if (o->nowned == o->capowned) {
    size_t c = o->capowned ? 2 * o->capowned : 64;
    void **p = tc__calloc(c, sizeof *p);
    if (!p) {
      tc__oom(o->fn);
      return NULL;
    }
    if (o->nowned)
      memcpy(p, o->owned, o->nowned * sizeof *p);
    tc__free(o->owned);
    o->owned = p, o->capowned = c;
  }
  void *p = tc__calloc(1, bytes ? bytes : 1);
  if (!p) {
    tc__oom(o->fn);
    return NULL;
  }
  o->owned[o->nowned++] = p;
  return p;
}

int64_t tc__oi_producer(const oi *o, const char *name) {
  for (size_t i = 0; i < o->g->n_node; i++)
    for (size_t j = 0; j < o->g->node[i]->n_output; j++)
      if (!strcmp(o->g->node[i]->output[j], name))
        return (int64_t)i;
  return -1;
}

const Onnx__AttributeProto *tc__oi_attr(const Onnx__NodeProto *n,
                                        const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
      return n->attribute[i];
  return NULL;
}

int64_t tc__oi_at(const oi_val *v, int64_t i) {
  return v->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? (int64_t)v->f[i]
                                                          : v->i[i];
}

static tc_status set_dims(oi *o, oi_val *v, const int64_t *dims, size_t n,
                          const char *what) {
  if (n > OI_MAX_DIMS)
    return tc__error(TC_EUNSUPPORTED, "%s: %s has %zu dimensions, at most %d",
                     o->fn, what, n, OI_MAX_DIMS);
  v->ndim = (int)n;
  v->numel = 1;
  for (size_t i = 0; i < n; i++) {
    if (dims[i] < 0 || (dims[i] > 0 && v->numel > TC__MAX_NUMEL / dims[i]))
      return tc__error(TC_EFORMAT,
                       "%s: %s: dimension %zu is %lld (negative "
                       "or the element count overflows)",
                       o->fn, what, i, (long long)dims[i]);
    v->dims[i] = dims[i];
    v->numel *= dims[i];
  }
  return TC_OK;
}

tc_status tc__oi_tensor(oi *o, const Onnx__TensorProto *t, oi_val *out) {
  const char *nm = t->name ? t->name : "<unnamed>";
  char what[160];
  snprintf(what, sizeof what, "tensor '%s'", nm);
  memset(out, 0, sizeof *out);
  if (t->has_data_location &&
      t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: %s keeps its data in an external "
                     "file, which this importer does not read",
                     o->fn, what);
  if (t->segment)
    return tc__error(TC_EUNSUPPORTED, "%s: %s is segmented", o->fn, what);
  tc_status st = set_dims(o, out, t->dims, t->n_dims, what);
  if (st != TC_OK)
    return st;
  int32_t dt = t->data_type;
  size_t n = (size_t)out->numel, raw = t->raw_data.len;
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    out->dtype = dt;
    if (t->n_float_data == n && raw == 0) {
      out->f = t->float_data;
      return TC_OK;
    }
    if (raw == n * 4 && t->n_float_data == 0) {
      float *f = tc__oi_alloc(o, raw);
      if (!f)
        return TC_ENOMEM;
      memcpy(f, t->raw_data.data, raw); /* little-endian, as the host */
      out->f = f;
      return TC_OK;
    }
    return tc__error(TC_EFORMAT,
                     "%s: %s has %lld elements but holds %zu "
                     "floats and %zu raw bytes",
                     o->fn, what, (long long)out->numel, t->n_float_data, raw);
  }
  if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
      dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
    size_t esz = dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8 : 4;
    size_t ninl = esz == 8 ? t->n_int64_data : t->n_int32_data;
    if (!((ninl == n && raw == 0) || (raw == n * esz && ninl == 0)))
      return tc__error(TC_EFORMAT,
                       "%s: %s has %lld elements but holds %zu "
                       "values and %zu raw bytes",
                       o->fn, what, (long long)out->numel, ninl, raw);
    int64_t *v = tc__oi_alloc(o, n * 8);
    if (!v)
      return TC_ENOMEM;
    for (size_t k = 0; k < n; k++) {
      if (esz == 8 && raw)
        memcpy(&v[k], t->raw_data.data + 8 * k, 8);
      else if (esz == 8)
        v[k] = t->int64_data[k];
      else if (raw) {
        int32_t x;
        memcpy(&x, t->raw_data.data + 4 * k, 4);
        v[k] = x;
      } else
        v[k] = t->int32_data[k];
    }
    out->dtype = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    out->i = v;
    return TC_OK;
  }
  return tc__error(TC_EUNSUPPORTED,
                   "%s: %s has ONNX data type %d; this "
                   "importer reads float32 (1), int32 (6) and int64 (7)",
                   o->fn, what, (int)dt);
}

/* ---- constant subgraphs ---- */

static tc_status new_val(oi *o, oi_val *v, int32_t dtype, const int64_t *dims,
                         int ndim, const char *what) {
  memset(v, 0, sizeof *v);
  tc_status st = set_dims(o, v, dims, (size_t)ndim, what);
  if (st != TC_OK)
    return st;
  if (v->numel > OI_MAX_CONST_NUMEL)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: %s would compute %lld constant "
                     "elements, more than this importer evaluates",
                     o->fn, what, (long long)v->numel);
  v->dtype = dtype;
  void *p = tc__oi_alloc(o, (size_t)v->numel * 8);
  if (!p)
    return TC_ENOMEM;
  if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    v->f = p;
  else
    v->i = p;
  return TC_OK;
}

static void put(oi_val *v, int64_t k, const oi_val *src, int64_t j) {
  if (v->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    ((float *)v->f)[k] = src->dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
                             ? src->f[j]
                             : (float)src->i[j];
  else
    ((int64_t *)v->i)[k] = tc__oi_at(src, j);
}

/* Row-major strides of v. */
static void strides(const oi_val *v, int64_t *s) {
  int64_t acc = 1;
  for (int d = v->ndim - 1; d >= 0; d--)
    s[d] = acc, acc *= v->dims[d];
}

static tc_status eval_slice(oi *o, const Onnx__NodeProto *n, oi_val *in,
                            int nin, oi_val *out, const char *what) {
  if (nin < 3)
    return tc__error(TC_EFORMAT, "%s: %s needs starts and ends", o->fn, what);
  const oi_val *x = &in[0];
  int64_t start[OI_MAX_DIMS], step[OI_MAX_DIMS], len[OI_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++)
    start[d] = 0, step[d] = 1, len[d] = x->dims[d];
  for (int64_t k = 0; k < in[1].numel; k++) {
    int64_t ax = nin > 3 && in[3].numel ? tc__oi_at(&in[3], k) : k;
    int64_t st = nin > 4 && in[4].numel ? tc__oi_at(&in[4], k) : 1;
    if (ax < 0)
      ax += x->ndim;
    if (in[2].numel != in[1].numel || ax < 0 || ax >= x->ndim || st == 0 ||
        (nin > 3 && in[3].numel && in[3].numel != in[1].numel) ||
        (nin > 4 && in[4].numel && in[4].numel != in[1].numel))
      return tc__error(TC_EFORMAT,
                       "%s: %s has inconsistent starts, ends, "
                       "axes or steps",
                       o->fn, what);
    int64_t dim = x->dims[ax], s = tc__oi_at(&in[1], k),
            e = tc__oi_at(&in[2], k);
    /* clamping as the Slice operator defines it */
    s = s < 0 ? (s < -dim ? 0 : s + dim) : s;
    e = e < 0 ? (e < -dim ? -1 : e + dim) : e;
    if (st > 0) {
      s = s > dim ? dim : s;
      e = e < 0 ? 0 : (e > dim ? dim : e);
      len[ax] = e > s ? (e - s + st - 1) / st : 0;
    } else {
      s = s > dim - 1 ? dim - 1 : s;
      e = e > dim - 1 ? dim - 1 : e;
      len[ax] = s > e ? (s - e - st - 1) / -st : 0;
    }
    start[ax] = s, step[ax] = st;
  }
  tc_status r = new_val(o, out, x->dtype, len, x->ndim, what);
  if (r != TC_OK)
    return r;
  int64_t xs[OI_MAX_DIMS], idx[OI_MAX_DIMS] = {0};
  strides(x, xs);
  for (int64_t k = 0; k < out->numel; k++) {
    int64_t j = 0;
    for (int d = 0; d < x->ndim; d++)
      j += (start[d] + idx[d] * step[d]) * xs[d];
    put(out, k, x, j);
    for (int d = x->ndim - 1; d >= 0 && ++idx[d] == len[d]; d--)
      idx[d] = 0;
  }
  (void)n;
  return TC_OK;
}

static tc_status eval_transpose(oi *o, const Onnx__NodeProto *n,
                                const oi_val *x, oi_val *out,
                                const char *what) {
  const Onnx__AttributeProto *a = tc__oi_attr(n, "perm");
  int64_t perm[OI_MAX_DIMS], dims[OI_MAX_DIMS];
  int used = 0;
  for (int d = 0; d < x->ndim; d++) {
    perm[d] = a ? (d < (int)a->n_ints ? a->ints[d] : -1) : x->ndim - 1 - d;
    if (perm[d] < 0 || perm[d] >= x->ndim || (used & (1 << perm[d])) ||
        (a && a->n_ints != (size_t)x->ndim))
      return tc__error(TC_EFORMAT, "%s: %s has an invalid perm", o->fn, what);
    used |= 1 << perm[d];
    dims[d] = x->dims[perm[d]];
  }
  tc_status st = new_val(o, out, x->dtype, dims, x->ndim, what);
  if (st != TC_OK)
    return st;
  int64_t xs[OI_MAX_DIMS], idx[OI_MAX_DIMS] = {0};
  strides(x, xs);
  for (int64_t k = 0; k < out->numel; k++) {
    int64_t j = 0;
    for (int d = 0; d < x->ndim; d++)
      j += idx[d] * xs[perm[d]];
    put(out, k, x, j);
    for (int d = x->ndim - 1; d >= 0 && ++idx[d] == dims[d]; d--)
      idx[d] = 0;
  }
  return TC_OK;
}

/* Reshape's target dims (0 copies, -1 infers) for x. */
static tc_status reshape_dims(oi *o, const oi_val *x, const oi_val *shape,
                              int64_t *dims, int *ndim, const char *what) {
  if (shape->ndim != 1 || shape->numel > OI_MAX_DIMS)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: %s: shape must be 1-D with at "
                     "most %d values",
                     o->fn, what, OI_MAX_DIMS);
  int64_t known = 1, infer = -1;
  for (int64_t k = 0; k < shape->numel; k++) {
    int64_t d = tc__oi_at(shape, k);
    if (d == 0 && k < x->ndim)
      d = x->dims[k];
    if (d == -1 && infer < 0) {
      infer = k;
      d = 1;
    } else if (d < 1 || d > TC__MAX_NUMEL || known > TC__MAX_NUMEL / d) {
      return tc__error(TC_EFORMAT, "%s: %s: invalid target shape", o->fn, what);
    }
    dims[k] = d;
    known *= d;
  }
  if (infer >= 0)
    dims[infer] = known ? x->numel / known : 0;
  if (infer >= 0 ? dims[infer] * known != x->numel : known != x->numel)
    return tc__error(TC_EFORMAT,
                     "%s: %s: %lld elements cannot take the "
                     "target shape",
                     o->fn, what, (long long)x->numel);
  *ndim = (int)shape->numel;
  return TC_OK;
}

static tc_status eval_node(oi *o, const Onnx__NodeProto *n, oi_val *out) {
  const char *op = n->op_type, *nm = n->name ? n->name : "";
  char what[200];
  snprintf(what, sizeof what, "node '%s' (%s)", nm, op);
  if (!strcmp(op, "Constant")) {
    const Onnx__AttributeProto *a = tc__oi_attr(n, "value");
    if (a && a->t)
      return tc__oi_tensor(o, a->t, out);
    if ((a = tc__oi_attr(n, "value_ints")) ||
        (a = tc__oi_attr(n, "value_int"))) {
      int64_t d = (int64_t)a->n_ints;
      int scalar = a->n_ints == 0;
      tc_status st = new_val(o, out, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &d,
                             scalar ? 0 : 1, what);
      if (st == TC_OK)
        for (int64_t k = 0; k < out->numel; k++)
          ((int64_t *)out->i)[k] = scalar ? a->i : a->ints[k];
      return st;
    }
    return tc__error(TC_EUNSUPPORTED,
                     "%s: %s: only tensor and integer "
                     "values are read",
                     o->fn, what);
  }
  oi_val in[5];
  int nin = (int)(n->n_input < 5 ? n->n_input : 5);
  for (int k = 0; k < nin; k++) {
    memset(&in[k], 0, sizeof in[k]);
    if (!n->input[k][0])
      continue; /* an omitted optional input */
    tc_status st = tc__oi_const(o, n->input[k], &in[k]);
    if (st != TC_OK)
      return st;
  }
  if (nin < 1 || !n->input[0][0])
    return tc__error(TC_EFORMAT, "%s: %s has no input", o->fn, what);
  const oi_val *x = &in[0];
  if (!strcmp(op, "Identity")) {
    *out = *x;
    return TC_OK;
  }
  if (!strcmp(op, "Cast")) {
    const Onnx__AttributeProto *a = tc__oi_attr(n, "to");
    int32_t to = a ? (int32_t)a->i : 0;
    if (to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
        to != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
      return tc__error(TC_EUNSUPPORTED, "%s: %s casts to data type %d", o->fn,
                       what, (int)to);
    tc_status st = new_val(o, out, to, x->dims, x->ndim, what);
    for (int64_t k = 0; st == TC_OK && k < x->numel; k++)
      put(out, k, x, k);
    return st;
  }
  if (!strcmp(op, "ConstantOfShape")) {
    const Onnx__AttributeProto *a = tc__oi_attr(n, "value");
    oi_val fill;
    memset(&fill, 0, sizeof fill);
    if (a && a->t) {
      tc_status st = tc__oi_tensor(o, a->t, &fill);
      if (st != TC_OK)
        return st;
      if (fill.numel != 1)
        return tc__error(TC_EFORMAT, "%s: %s: value must hold one element",
                         o->fn, what);
    }
    int64_t dims[OI_MAX_DIMS];
    if (x->ndim != 1 || x->numel > OI_MAX_DIMS)
      return tc__error(TC_EUNSUPPORTED, "%s: %s: shape must be 1-D", o->fn,
                       what);
    for (int64_t k = 0; k < x->numel; k++)
      dims[k] = tc__oi_at(x, k);
    tc_status st = new_val(
        o, out, a && a->t ? fill.dtype : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
        dims, (int)x->numel, what);
    for (int64_t k = 0; st == TC_OK && a && a->t && k < out->numel; k++)
      put(out, k, &fill, 0);
    return st;
  }
  if (!strcmp(op, "Concat")) {
    int64_t total = 0;
    for (int k = 0; k < nin; k++) {
      if (in[k].ndim != 1 || in[k].dtype != x->dtype)
        return tc__error(TC_EUNSUPPORTED,
                         "%s: %s: only 1-D constants of "
                         "one type are concatenated",
                         o->fn, what);
      total += in[k].numel;
    }
    if (n->n_input > 5)
      return tc__error(TC_EUNSUPPORTED, "%s: %s has more than 5 inputs", o->fn,
                       what);
    tc_status st = new_val(o, out, x->dtype, &total, 1, what);
    int64_t at = 0;
    for (int k = 0; st == TC_OK && k < nin; k++)
      for (int64_t j = 0; j < in[k].numel; j++)
        put(out, at++, &in[k], j);
    return st;
  }
  if (!strcmp(op, "Reshape") || !strcmp(op, "Unsqueeze")) {
    int64_t dims[OI_MAX_DIMS];
    int nd = 0;
    tc_status st;
    if (op[0] == 'R') {
      if (nin < 2)
        return tc__error(TC_EFORMAT, "%s: %s needs a shape", o->fn, what);
      st = reshape_dims(o, x, &in[1], dims, &nd, what);
    } else { /* Unsqueeze: axes as input (opset 13) or attribute */
      const Onnx__AttributeProto *a = tc__oi_attr(n, "axes");
      int64_t na = nin > 1 ? in[1].numel : (a ? (int64_t)a->n_ints : 0);
      nd = x->ndim + (int)na;
      if (na < 1 || nd > OI_MAX_DIMS)
        return tc__error(TC_EUNSUPPORTED, "%s: %s: bad axes", o->fn, what);
      int mark = 0;
      for (int64_t k = 0; k < na; k++) {
        int64_t ax = nin > 1 ? tc__oi_at(&in[1], k) : a->ints[k];
        ax = ax < 0 ? ax + nd : ax;
        if (ax < 0 || ax >= nd || (mark & (1 << ax)))
          return tc__error(TC_EFORMAT, "%s: %s: bad axes", o->fn, what);
        mark |= 1 << ax;
      }
      for (int d = 0, j = 0; d < nd; d++)
        dims[d] = (mark & (1 << d)) ? 1 : x->dims[j++];
      st = TC_OK;
    }
    if (st != TC_OK || (st = new_val(o, out, x->dtype, dims, nd, what)))
      return st;
    for (int64_t k = 0; k < x->numel; k++)
      put(out, k, x, k);
    return TC_OK;
  }
  if (!strcmp(op, "Slice"))
    return eval_slice(o, n, in, nin, out, what);
  if (!strcmp(op, "Transpose"))
    return eval_transpose(o, n, x, out, what);
  return TC_ENOTFOUND;
}

tc_status tc__oi_const(oi *o, const char *name, oi_val *out) {
  for (size_t i = 0; i < o->g->n_initializer; i++)
    if (o->g->initializer[i]->name && !strcmp(o->g->initializer[i]->name, name))
      return tc__oi_tensor(o, o->g->initializer[i], out);
  int64_t p = tc__oi_producer(o, name);
  if (p < 0 && o->input && !strcmp(name, o->input))
    return TC_ENOTFOUND;
  if (p < 0)
    return tc__error(TC_EFORMAT,
                     "%s: '%s' is neither an initializer, the "
                     "graph input nor any node's output (a missing "
                     "initializer?)",
                     o->fn, name);
  const Onnx__NodeProto *n = o->g->node[p];
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
    return TC_ENOTFOUND;
  if (o->depth > 64)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: constants nested more than 64 "
                     "deep (or a cycle) at '%s'",
                     o->fn, name);
  o->depth++;
  tc_status st = eval_node(o, n, out);
  o->depth--;
  if (st == TC_OK)
    o->used[p] = 1;
  return st;
}

#endif /* TC_HAVE_ONNX */
