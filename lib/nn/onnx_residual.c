/*
 * onnx_residual.c - a fork in an imported ONNX graph as tinycnn's residual
 * block (lib/nn/residual.c): the main branch Conv 3x3 (stride s, pad 1)
 * [BatchNormalization] Relu Conv 3x3 (pad 1) [BatchNormalization], the
 * shortcut (nothing; Conv 1x1 stride s [BatchNormalization] for option B;
 * for option A a zero Pad of the new channels at the end with MaxPool(s, s)
 * or Slice(::s) on H and W, in either order), then Add and Relu. Convs
 * with a bias (torch.onnx.export folds each BN into the Conv before it)
 * have their bias moved into the block's batch norm: its mean becomes
 * mean - bias, or with no BN node scale 1, shift 0, mean -bias and a
 * variance of 1 - eps. A BN's epsilon other than the block's 1e-5 is
 * moved into its variance, so that var + eps is unchanged.
 */
#ifdef TC_HAVE_ONNX

#include "onnx_import.h"

#define BR_MAX 8
#define BLOCK_EPS 1e-5f /* tc_batchnorm_options' default, as the block's */

static int is(const Onnx__NodeProto *n, const char *op) {
  return !strcmp(n->op_type, op);
}

/* From reader `i` of the block's input to the Add: the nodes into br, their
 * count into *nbr, the Add into *add. */
static tc_status branch(oi_map *m, int64_t i, int64_t *br, int *nbr,
                        int64_t *add) {
  *nbr = 0;
  for (;;) {
    const Onnx__NodeProto *n = m->o.g->node[i];
    if (is(n, "Add")) {
      *add = i;
      return TC_OK;
    }
    if (*nbr == BR_MAX)
      return tc__oi_unsupported(m, n,
                                "a residual branch longer than a "
                                "basic block's");
    br[(*nbr)++] = i;
    if (!n->n_output || !n->output[0][0])
      return tc__oi_bad(m, n, TC_EFORMAT, "no output");
    int64_t next;
    if (tc__oi_readers(m, n->output[0], &next, 1) != 1)
      return tc__oi_unsupported(m, n,
                                "its output is read by several nodes "
                                "(or none) inside a residual branch");
    i = next;
  }
}

/* Checks a block Conv: weight (out, in, k, k), stride s, pad, no
 * dilation or groups. */
static tc_status block_conv(oi_map *m, const Onnx__NodeProto *n, int64_t in,
                            int64_t out, int64_t k, int64_t s, int64_t pad,
                            oi_val *w) {
  int64_t st2[2], d[2], p[2], ks[2];
  int64_t dims[4] = {out, in, k, k};
  tc_status st;
  if (tc__oi_iattr(n, "group", 1) != 1)
    return tc__oi_unsupported(m, n, "group != 1");
  if ((st = tc__oi_cfloat(m, n, 1, 4, dims, -1, w)) ||
      (st = tc__oi_pair(m, n, "strides", 1, st2)) ||
      (st = tc__oi_pair(m, n, "dilations", 1, d)) ||
      (st = tc__oi_pair(m, n, "kernel_shape", k, ks)) ||
      (st = tc__oi_pads2(m, n, p)))
    return st;
  if (st2[0] != s || st2[1] != s || d[0] != 1 || d[1] != 1 || p[0] != pad ||
      p[1] != pad || ks[0] != k || ks[1] != k)
    return tc__oi_unsupported(m, n,
                              "a residual block's convolution must be "
                              "3x3 pad 1 (1x1 pad 0 in the shortcut), "
                              "undilated, strided only first");
  return TC_OK;
}

/* The block's batch norm `bnl` from the Conv `conv` (its bias, if any)
 * and the BatchNormalization `bn` (NULL: folded away). */
static tc_status block_bn(oi_map *m, tc_layer *bnl, const Onnx__NodeProto *conv,
                          const Onnx__NodeProto *bn, int64_t c) {
  float *v = tc__oi_alloc(&m->o, 4 * (size_t)c * sizeof *v);
  oi_val cb, p[4];
  float eps = BLOCK_EPS;
  tc_status st;
  int has_cb = conv->n_input > 2 && conv->input[2][0];
  if (!v)
    return TC_ENOMEM;
  if (has_cb && (st = tc__oi_cfloat(m, conv, 2, 1, &c, c, &cb)) != TC_OK)
    return st;
  if (bn && (st = tc__oi_bn_inputs(m, bn, c, p, &eps)) != TC_OK)
    return st;
  for (int64_t i = 0; i < c; i++) {
    float b = has_cb ? cb.f[i] : 0.f;
    v[i] = bn ? p[0].f[i] : 1.f;
    v[c + i] = bn ? p[1].f[i] : 0.f;
    v[2 * c + i] = (bn ? p[2].f[i] : 0.f) - b;
    v[3 * c + i] =
        bn ? (float)((double)p[3].f[i] + ((double)eps - (double)BLOCK_EPS))
           : 1.f - BLOCK_EPS;
  }
  for (int i = 0; i < 4; i++)
    if ((st = tc__oi_queue(m, bnl, i >= 2, i % 2, v + i * c, c)) != TC_OK)
      return st;
  return TC_OK;
}

/* Option A's Slice: x[:, :, ::s, ::s] or one of its axes; marks them in
 * *axes (bit 2: H, bit 3: W). */
static tc_status slice_a(oi_map *m, const Onnx__NodeProto *n, int64_t s,
                         int *axes) {
  oi_val v[4];
  for (size_t k = 1; k < 5; k++) {
    memset(&v[k - 1], 0, sizeof v[k - 1]);
    tc_status st = k < n->n_input && n->input[k][0]
                       ? tc__oi_const(&m->o, n->input[k], &v[k - 1])
                       : (k < 3 ? TC_EFORMAT : TC_OK);
    if (st == TC_ENOTFOUND || st == TC_EFORMAT)
      return tc__oi_unsupported(m, n,
                                "starts, ends, axes and steps must be "
                                "constant");
    if (st != TC_OK)
      return st;
  }
  int64_t cnt = v[0].numel;
  if (v[1].numel != cnt || (v[2].numel && v[2].numel != cnt) ||
      (v[3].numel && v[3].numel != cnt))
    return tc__oi_bad(m, n, TC_EFORMAT, "inconsistent Slice inputs");
  for (int64_t k = 0; k < cnt; k++) {
    int64_t ax = v[2].numel ? tc__oi_at(&v[2], k) : k;
    int64_t step = v[3].numel ? tc__oi_at(&v[3], k) : 1;
    ax = ax < 0 ? ax + 4 : ax;
    if ((ax != 2 && ax != 3) || tc__oi_at(&v[0], k) != 0 || step != s ||
        tc__oi_at(&v[1], k) < (int64_t)INT32_MAX)
      return tc__oi_unsupported(m, n,
                                "only x[:, :, ::s, ::s] with the block's "
                                "stride is mapped");
    *axes |= 1 << ax;
  }
  return TC_OK;
}

tc_status tc__oi_map_block(oi_map *m, const int64_t rd[2]) {
  int64_t br[2][BR_MAX], add[2];
  int nbr[2];
  Onnx__NodeProto **nodes = m->o.g->node;
  tc_status st;
  for (int b = 0; b < 2; b++) {
    const Onnx__NodeProto *n = nodes[rd[b]];
    if (!is(n, "Conv") && !is(n, "Add") && !is(n, "Pad") && !is(n, "MaxPool") &&
        !is(n, "Slice"))
      return tc__oi_unsupported(m, n,
                                "a tensor read by two nodes must start "
                                "a residual block");
  }
  for (int b = 0; b < 2; b++)
    if ((st = branch(m, rd[b], br[b], &nbr[b], &add[b])) != TC_OK)
      return st;
  const Onnx__NodeProto *a = nodes[add[0]];
  if (add[0] != add[1] || a->n_input != 2 || !a->n_output)
    return tc__oi_unsupported(m, a,
                              "the two branches of a residual block "
                              "must meet at one Add");
  /* the main branch holds the Relu */
  int mb = -1;
  for (int b = 0; b < 2; b++)
    for (int k = 0; k < nbr[b]; k++)
      if (is(nodes[br[b][k]], "Relu"))
        mb = mb == -1 || mb == b ? b : 2;
  if (mb < 0 || mb > 1)
    return tc__oi_unsupported(m, a,
                              "exactly one branch of a residual block "
                              "must hold a Relu");
  const Onnx__NodeProto *mn[BR_MAX], *c1, *b1 = NULL, *c2, *b2 = NULL;
  for (int k = 0; k < nbr[mb]; k++)
    mn[k] = nodes[br[mb][k]];
  int k = 0;
  c1 = k < nbr[mb] && is(mn[k], "Conv") ? mn[k++] : NULL;
  if (c1 && k < nbr[mb] && is(mn[k], "BatchNormalization"))
    b1 = mn[k++];
  int relu = k < nbr[mb] && is(mn[k], "Relu") ? k++ : -1;
  c2 = k < nbr[mb] && is(mn[k], "Conv") ? mn[k++] : NULL;
  if (c2 && k < nbr[mb] && is(mn[k], "BatchNormalization"))
    b2 = mn[k++];
  if (!c1 || relu < 0 || !c2 || k != nbr[mb])
    return tc__oi_unsupported(m, k < nbr[mb] ? mn[k] : a,
                              "a residual block's main branch must be Conv "
                              "[BatchNormalization] Relu Conv "
                              "[BatchNormalization]");
  if (m->ndim != 3)
    return tc__oi_bad(m, c1, TC_ESHAPE, "a residual block needs (N, C, H, W)");
  int64_t in = m->shape[0], s[2];
  oi_val w1, w2, ws;
  if ((st = tc__oi_pair(m, c1, "strides", 1, s)) != TC_OK)
    return st;
  if ((st = tc__oi_cfloat(m, c1, 1, 4, NULL, -1, &w1)) != TC_OK)
    return st;
  int64_t out = w1.dims[0];
  if ((st = block_conv(m, c1, in, out, 3, s[0], 1, &w1)) ||
      (st = block_conv(m, c2, out, out, 3, 1, 1, &w2)))
    return st;
  /* the shortcut */
  int sb = 1 - mb, shortcut = TC_SHORTCUT_A_MAXPOOL, axes = 0, pool = 0;
  const Onnx__NodeProto *sc = NULL, *sbn = NULL, *pad = NULL;
  for (k = 0; k < nbr[sb]; k++) {
    const Onnx__NodeProto *n = nodes[br[sb][k]];
    if (k == 0 && is(n, "Conv")) {
      sc = n, shortcut = TC_SHORTCUT_B;
    } else if (k == 1 && sc && is(n, "BatchNormalization")) {
      sbn = n;
    } else if (!sc && !pad && is(n, "Pad")) {
      int64_t p[8];
      if ((st = tc__oi_pad_amounts(m, n, p)) != TC_OK)
        return st;
      if (p[0] || p[1] || p[2] || p[3] || p[4] || p[5] != out - in || p[6] ||
          p[7])
        return tc__oi_unsupported(m, n,
                                  "option A pads only the new channels, "
                                  "at the end");
      pad = n;
    } else if (!sc && !pool && !axes && is(n, "MaxPool")) {
      int64_t ks[2], st2[2], p[2];
      if ((st = tc__oi_pair(m, n, "kernel_shape", 0, ks)) ||
          (st = tc__oi_pair(m, n, "strides", 1, st2)) ||
          (st = tc__oi_pads2(m, n, p)))
        return st;
      if (ks[0] != s[0] || ks[1] != s[0] || st2[0] != s[0] || st2[1] != s[0] ||
          p[0] || p[1] || tc__oi_iattr(n, "ceil_mode", 0) ||
          (n->n_output > 1 && n->output[1][0]))
        return tc__oi_unsupported(m, n,
                                  "option A's max-pool must have kernel "
                                  "= stride = the block's stride");
      pool = 1;
    } else if (!sc && !pool && is(n, "Slice")) {
      if ((st = slice_a(m, n, s[0], &axes)) != TC_OK)
        return st;
      shortcut = TC_SHORTCUT_A_SUBSAMPLE;
    } else {
      return tc__oi_unsupported(m, n,
                                "not a shortcut tinycnn's residual block "
                                "has (identity, option A or B)");
    }
  }
  int same = in == out && s[0] == 1;
  if (sc && same)
    return tc__oi_unsupported(m, sc,
                              "option B convolves only where the shape "
                              "changes");
  if (sc && (st = block_conv(m, sc, in, out, 1, s[0], 0, &ws)) != TC_OK)
    return st;
  if (!sc && ((s[0] > 1 && !pool && axes != 12) || (axes && axes != 12) ||
              (s[0] == 1 && (pool || axes)) || (out != in && !pad)))
    return tc__oi_unsupported(m, a,
                              "the shortcut does not match the main "
                              "branch's stride and channels");
  /* the sum must be of the two branches' ends, then a Relu */
  const char *ends[2];
  for (int b = 0; b < 2; b++)
    ends[b] = nbr[b] ? nodes[br[b][nbr[b] - 1]]->output[0] : m->cur;
  int64_t ri;
  if (!((!strcmp(a->input[0], ends[0]) && !strcmp(a->input[1], ends[1])) ||
        (!strcmp(a->input[0], ends[1]) && !strcmp(a->input[1], ends[0]))))
    return tc__oi_unsupported(m, a, "the sum must add the two branches");
  if (tc__oi_readers(m, a->output[0], &ri, 1) != 1 || !is(nodes[ri], "Relu"))
    return tc__oi_unsupported(m, a,
                              "a residual block's sum must be followed "
                              "by (only) a Relu");
  tc_residual_options ro = TC_RESIDUAL_OPTIONS_INIT;
  ro.shortcut = shortcut;
  tc_layer *l = NULL;
  st = tc_residual_block_create(&l, in, out, s[0], &ro);
  if ((st = tc__oi_append(m, c1, st, l)) != TC_OK)
    return st;
  if ((st = tc__oi_queue(m, l->children[0], 0, 0, w1.f, w1.numel)) ||
      (st = tc__oi_queue(m, l->children[2], 0, 0, w2.f, w2.numel)) ||
      (st = block_bn(m, l->children[1], c1, b1, out)) ||
      (st = block_bn(m, l->children[3], c2, b2, out)))
    return st;
  if (sc) {
    tc_layer *seq = l->children[4];
    if ((st = tc__oi_queue(m, seq->children[0], 0, 0, ws.f, ws.numel)) ||
        (st = block_bn(m, seq->children[1], sc, sbn, out)))
      return st;
  }
  for (int b = 0; b < 2; b++)
    for (k = 0; k < nbr[b]; k++)
      m->o.used[br[b][k]] = 1;
  m->o.used[add[0]] = 1, m->o.used[ri] = 1;
  m->cur = nodes[ri]->output[0];
  return TC_OK;
}

#endif /* TC_HAVE_ONNX */
