/*
 * onnx_import.h - shared by onnx_import.c (graph -> layers) and
 * onnx_const.c (initializers and the constant subgraphs torch.onnx.export
 * leaves unfolded, e.g. F.pad's pads). Only built with TC_HAVE_ONNX.
 */
#ifndef TINYCNN_ONNX_IMPORT_H
#define TINYCNN_ONNX_IMPORT_H

#include "nn_internal.h"
#include "onnx.pb-c.h"

#define OI_MAX_DIMS 8
/* The most elements a constant subgraph may compute (shapes, pads): they
 * are tiny in any real model; this stops a hostile ConstantOfShape. */
#define OI_MAX_CONST_NUMEL ((int64_t)1 << 20)

/* A constant: float32 (ONNX FLOAT = 1) or int64 (INT64 = 7) values, host
 * memory borrowed from the message or owned by the importer. */
typedef struct oi_val {
  int32_t dtype;
  int ndim;
  int64_t dims[OI_MAX_DIMS];
  int64_t numel;
  const float *f;
  const int64_t *i;
} oi_val;

typedef struct oi {
  const char *fn;
  Onnx__GraphProto *g;
  unsigned char *used; /* per node: mapped (or evaluated as a constant) */
  void **owned;
  size_t nowned, capowned;
  const char *input; /* the graph input's name */
  int depth;         /* of constant evaluation, against cycles */
} oi;

/* Zeroed memory freed with the importer; NULL (message set) on failure. */
void *tc__oi_alloc(oi *o, size_t bytes);
/* The node that writes `name`, or -1. */
int64_t tc__oi_producer(const oi *o, const char *name);
/* The value of `name` if it is an initializer or computed from constants
 * only: TC_OK; TC_ENOTFOUND when it depends on the graph input (no
 * message); TC_EFORMAT / TC_EUNSUPPORTED / TC_ENOMEM with a message. */
tc_status tc__oi_const(oi *o, const char *name, oi_val *out);
/* A TensorProto as a value (validated: dims, counts, data type). */
tc_status tc__oi_tensor(oi *o, const Onnx__TensorProto *t, oi_val *out);
/* An attribute of node `n` or NULL. */
const Onnx__AttributeProto *tc__oi_attr(const Onnx__NodeProto *n,
                                        const char *name);
/* Value i of a constant as int64 (floats truncated). */
int64_t tc__oi_at(const oi_val *v, int64_t i);

/* A parameter or buffer to write once the model exists. */
typedef struct oi_set {
  tc_layer *l;
  int buffer, idx;
  const float *data;
  int64_t n;
} oi_set;

typedef struct oi_map {
  oi o;
  tc_layer *seq;
  int64_t nlayers;
  oi_set *sets;
  size_t nsets, capsets;
  int64_t shape[NN_SAMPLE_DIMS]; /* per-sample shape of `cur` */
  int ndim;
  int64_t batch; /* the graph's fixed batch, or 0 */
  const char *cur;
} oi_map;

#define FLT ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT

/* ---- onnx_import.c: helpers shared with onnx_residual.c ---- */
tc_status tc__oi_unsupported(oi_map *m, const Onnx__NodeProto *n,
                             const char *why);
tc_status tc__oi_bad(oi_map *m, const Onnx__NodeProto *n, tc_status st,
                     const char *why);
/* Unused nodes reading `name`: up to `max` indices into idx; the count. */
int tc__oi_readers(oi_map *m, const char *name, int64_t *idx, int max);
int64_t tc__oi_iattr(const Onnx__NodeProto *n, const char *name, int64_t d);
tc_status tc__oi_pair(oi_map *m, const Onnx__NodeProto *n, const char *name,
                      int64_t d, int64_t v[2]);
tc_status tc__oi_pads2(oi_map *m, const Onnx__NodeProto *n, int64_t p[2]);
/* Constant float input k of n: `ndim` dims matching `dims` (-1: any;
 * dims NULL: any shape), `numel` elements (-1: any). */
tc_status tc__oi_cfloat(oi_map *m, const Onnx__NodeProto *n, size_t k, int ndim,
                        const int64_t *dims, int64_t numel, oi_val *v);
tc_status tc__oi_queue(oi_map *m, tc_layer *l, int buffer, int idx,
                       const float *data, int64_t n);
tc_status tc__oi_append(oi_map *m, const Onnx__NodeProto *n, tc_status st,
                        tc_layer *l);
tc_status tc__oi_bn_inputs(oi_map *m, const Onnx__NodeProto *n, int64_t c,
                           oi_val v[4], float *eps);
tc_status tc__oi_pad_amounts(oi_map *m, const Onnx__NodeProto *n, int64_t p[8]);
/* ---- onnx_residual.c ---- */
/* A residual block from the two readers rd[2] of m->cur. */
tc_status tc__oi_map_block(oi_map *m, const int64_t rd[2]);

#endif /* TINYCNN_ONNX_IMPORT_H */
