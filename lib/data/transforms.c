/*
 * transforms.c - the per-sample pipeline: a fixed array of operations run
 * in order on float images (C,H,W), ping-ponging between two scratch
 * buffers sized by the plan. Random operations draw from Philox stream
 * TC_RNG_STREAM_AUGMENT at an offset that packs (epoch mod 2^22, index,
 * operation): 22 + 32 + 10 bits, 32 words per operation, so a sample's
 * augmentation depends on nothing but (seed, epoch, index) and the
 * pipeline, whichever thread runs it and in whatever order.
 */
#include <math.h>
#include <string.h>

#include "data_internal.h"

typedef enum op_kind {
  OP_TO_FLOAT,
  OP_PAD,
  OP_GRAY_TO_RGB,
  OP_NORMALIZE,
  OP_RANDOM_CROP,
  OP_RANDOM_HFLIP
} op_kind;

typedef struct tf_op {
  op_kind kind;
  int a, b, c, d;  /* pad: left, right, top, bottom; crop: h, w, padding */
  float value;     /* pad and crop: fill; hflip: probability */
  int channels;    /* normalize: 1 or C */
  float *mean_std; /* normalize: mean[channels] then std[channels] */
} tf_op;

struct tc_transform {
  int n;
  tf_op ops[TC_TRANSFORM_MAX_OPS];
};

/* Words of the augment stream each operation may use, and the offset
 * layout: epoch in the top 22 bits, index in the next 32. */
#define OP_WORDS 32u
#define EPOCH_MASK ((UINT64_C(1) << 22) - 1)
/* Largest element count of an intermediate image. */
#define MAX_ELEMS ((int64_t)1 << 31)

TC_API tc_status tc_transform_create(tc_transform **out) {
  TC__CHECK_NULL(out, "tc_transform_create");
  tc_transform *tf = tc__calloc(1, sizeof *tf);
  if (!tf)
    return tc__oom("tc_transform_create");
  *out = tf;
  return TC_OK;
}

TC_API void tc_transform_destroy(tc_transform *tf) {
  if (!tf)
    return;
  for (int k = 0; k < tf->n; k++)
    tc__free(tf->ops[k].mean_std);
  tc__free(tf);
}

tc_status tc__transform_clone(tc_transform **out, const tc_transform *tf) {
  tc_transform *c = tc__calloc(1, sizeof *c);
  if (!c)
    return tc__oom("tc_transform clone");
  for (int k = 0; k < tf->n; k++) {
    c->ops[k] = tf->ops[k];
    c->ops[k].mean_std = NULL;
    if (tf->ops[k].mean_std) {
      size_t bytes = 2 * (size_t)tf->ops[k].channels * sizeof(float);
      c->ops[k].mean_std = tc__malloc(bytes);
      if (!c->ops[k].mean_std) {
        c->n = k;
        tc_transform_destroy(c);
        return tc__oom("tc_transform clone");
      }
      memcpy(c->ops[k].mean_std, tf->ops[k].mean_std, bytes);
    }
  }
  c->n = tf->n;
  *out = c;
  return TC_OK;
}

/* The next free slot, or NULL with the error recorded. */
static tf_op *add_op(tc_transform *tf, op_kind kind, const char *fn,
                     tc_status *st) {
  if (!tf) {
    *st = tc__error(TC_EINVAL, "%s: argument 'tf' is NULL", fn);
    return NULL;
  }
  if (tf->n >= TC_TRANSFORM_MAX_OPS) {
    *st = tc__error(TC_EINVAL, "%s: the pipeline already holds %d operations",
                    fn, TC_TRANSFORM_MAX_OPS);
    return NULL;
  }
  tf_op *op = &tf->ops[tf->n];
  memset(op, 0, sizeof *op);
  op->kind = kind;
  *st = TC_OK;
  return op;
}

TC_API tc_status tc_transform_add_to_float(tc_transform *tf) {
  tc_status st;
  if (!add_op(tf, OP_TO_FLOAT, "tc_transform_add_to_float", &st))
    return st;
  tf->n++;
  return TC_OK;
}

TC_API tc_status tc_transform_add_pad(tc_transform *tf, int left, int right,
                                      int top, int bottom, float value) {
  static const char fn[] = "tc_transform_add_pad";
  if (left < 0 || right < 0 || top < 0 || bottom < 0 ||
      left > TC_DATASET_MAX_SIDE || right > TC_DATASET_MAX_SIDE ||
      top > TC_DATASET_MAX_SIDE || bottom > TC_DATASET_MAX_SIDE)
    return tc__error(TC_EINVAL, "%s: padding (%d, %d, %d, %d) outside 0..%d",
                     fn, left, right, top, bottom, TC_DATASET_MAX_SIDE);
  tc_status st;
  tf_op *op = add_op(tf, OP_PAD, fn, &st);
  if (!op)
    return st;
  op->a = left;
  op->b = right;
  op->c = top;
  op->d = bottom;
  op->value = value;
  tf->n++;
  return TC_OK;
}

TC_API tc_status tc_transform_add_gray_to_rgb(tc_transform *tf) {
  tc_status st;
  if (!add_op(tf, OP_GRAY_TO_RGB, "tc_transform_add_gray_to_rgb", &st))
    return st;
  tf->n++;
  return TC_OK;
}

TC_API tc_status tc_transform_add_normalize(tc_transform *tf, int channels,
                                            const float *mean,
                                            const float *std) {
  static const char fn[] = "tc_transform_add_normalize";
  TC__CHECK_NULL(mean, fn);
  TC__CHECK_NULL(std, fn);
  if (channels < 1 || channels > TC_DATASET_MAX_CHANNELS)
    return tc__error(TC_EINVAL, "%s: channels %d outside 1..%d", fn, channels,
                     TC_DATASET_MAX_CHANNELS);
  for (int c = 0; c < channels; c++) {
    if (!isfinite(mean[c]))
      return tc__error(TC_EINVAL, "%s: mean[%d] is not finite", fn, c);
    if (!isfinite(std[c]) || std[c] == 0.0f)
      return tc__error(TC_EINVAL,
                       "%s: std[%d] = %g must be finite and "
                       "non-zero",
                       fn, c, (double)std[c]);
  }
  tc_status st;
  tf_op *op = add_op(tf, OP_NORMALIZE, fn, &st);
  if (!op)
    return st;
  float *ms = tc__malloc(2 * (size_t)channels * sizeof(float));
  if (!ms)
    return tc__oom(fn);
  memcpy(ms, mean, (size_t)channels * sizeof(float));
  memcpy(ms + channels, std, (size_t)channels * sizeof(float));
  op->channels = channels;
  op->mean_std = ms;
  tf->n++;
  return TC_OK;
}

TC_API tc_status tc_transform_add_random_crop(tc_transform *tf, int height,
                                              int width, int padding,
                                              float fill) {
  static const char fn[] = "tc_transform_add_random_crop";
  if (height < 1 || height > TC_DATASET_MAX_SIDE || width < 1 ||
      width > TC_DATASET_MAX_SIDE)
    return tc__error(TC_EINVAL, "%s: size (%d, %d) outside 1..%d", fn, height,
                     width, TC_DATASET_MAX_SIDE);
  if (padding < 0 || padding > TC_DATASET_MAX_SIDE)
    return tc__error(TC_EINVAL, "%s: padding %d outside 0..%d", fn, padding,
                     TC_DATASET_MAX_SIDE);
  tc_status st;
  tf_op *op = add_op(tf, OP_RANDOM_CROP, fn, &st);
  if (!op)
    return st;
  op->a = height;
  op->b = width;
  op->c = padding;
  op->value = fill;
  tf->n++;
  return TC_OK;
}

TC_API tc_status tc_transform_add_random_hflip(tc_transform *tf, float p) {
  static const char fn[] = "tc_transform_add_random_hflip";
  if (!(p >= 0.0f && p <= 1.0f))
    return tc__error(TC_EINVAL, "%s: p = %g outside [0, 1]", fn, (double)p);
  tc_status st;
  tf_op *op = add_op(tf, OP_RANDOM_HFLIP, fn, &st);
  if (!op)
    return st;
  op->value = p;
  tf->n++;
  return TC_OK;
}

/* Shape after operation `op` on (c,h,w); TC_ESHAPE when it does not fit. */
static tc_status op_shape(const tf_op *op, int k, int64_t s[3]) {
  static const char fn[] = "tc_transform";
  switch (op->kind) {
  case OP_TO_FLOAT:
  case OP_RANDOM_HFLIP:
    break;
  case OP_PAD:
    s[1] += op->c + op->d;
    s[2] += op->a + op->b;
    break;
  case OP_GRAY_TO_RGB:
    if (s[0] != 1)
      return tc__error(TC_ESHAPE,
                       "%s: operation %d (gray to RGB) needs 1 "
                       "channel, gets %lld",
                       fn, k, (long long)s[0]);
    s[0] = 3;
    break;
  case OP_NORMALIZE:
    if (op->channels != 1 && op->channels != s[0])
      return tc__error(TC_ESHAPE,
                       "%s: operation %d (normalize) has %d "
                       "channels, the image %lld",
                       fn, k, op->channels, (long long)s[0]);
    break;
  case OP_RANDOM_CROP:
    if (op->a > s[1] + 2 * op->c || op->b > s[2] + 2 * op->c)
      return tc__error(TC_ESHAPE,
                       "%s: operation %d crops (%d, %d) from a "
                       "padded (%lld, %lld)",
                       fn, k, op->a, op->b, (long long)(s[1] + 2 * op->c),
                       (long long)(s[2] + 2 * op->c));
    s[1] = op->a;
    s[2] = op->b;
    break;
  }
  if (s[1] > TC_DATASET_MAX_SIDE || s[2] > TC_DATASET_MAX_SIDE ||
      s[0] * s[1] * s[2] > MAX_ELEMS)
    return tc__error(TC_ESHAPE,
                     "%s: operation %d makes (%lld, %lld, %lld), "
                     "too large",
                     fn, k, (long long)s[0], (long long)s[1], (long long)s[2]);
  return TC_OK;
}

tc_status tc__transform_plan(const tc_transform *tf, const int64_t in_chw[3],
                             int64_t out_chw[3], size_t *work_floats) {
  static const char fn[] = "tc_transform";
  if (in_chw[0] < 1 || in_chw[0] > TC_DATASET_MAX_CHANNELS || in_chw[1] < 1 ||
      in_chw[1] > TC_DATASET_MAX_SIDE || in_chw[2] < 1 ||
      in_chw[2] > TC_DATASET_MAX_SIDE ||
      in_chw[0] * in_chw[1] * in_chw[2] > MAX_ELEMS)
    return tc__error(TC_ESHAPE,
                     "%s: input shape (%lld, %lld, %lld) out of "
                     "range",
                     fn, (long long)in_chw[0], (long long)in_chw[1],
                     (long long)in_chw[2]);
  int64_t s[3] = {in_chw[0], in_chw[1], in_chw[2]};
  int64_t most = s[0] * s[1] * s[2];
  for (int k = 0; k < tf->n; k++) {
    tc_status st = op_shape(&tf->ops[k], k, s);
    if (st != TC_OK)
      return st;
    if (s[0] * s[1] * s[2] > most)
      most = s[0] * s[1] * s[2];
  }
  memcpy(out_chw, s, sizeof s);
  if (work_floats)
    *work_floats = 2 * (size_t)most;
  return TC_OK;
}

TC_API tc_status tc_transform_output_shape(const tc_transform *tf,
                                           const int64_t in_chw[3],
                                           int64_t out_chw[3]) {
  static const char fn[] = "tc_transform_output_shape";
  TC__CHECK_NULL(tf, fn);
  TC__CHECK_NULL(in_chw, fn);
  TC__CHECK_NULL(out_chw, fn);
  int64_t s[3];
  tc_status st = tc__transform_plan(tf, in_chw, s, NULL);
  if (st == TC_OK)
    memcpy(out_chw, s, sizeof s);
  return st;
}

static void pad(const float *restrict src, float *restrict dst, int64_t c,
                int64_t h, int64_t w, const tf_op *op) {
  int64_t ow = w + op->a + op->b, oh = h + op->c + op->d;
  size_t total = (size_t)(c * oh * ow);
  const float v = op->value; /* read once: dst may alias op for the compiler */
  for (size_t i = 0; i < total; i++)
    dst[i] = v;
  for (int64_t ch = 0; ch < c; ch++)
    for (int64_t y = 0; y < h; y++)
      memcpy(dst + (ch * oh + y + op->c) * ow + op->a, src + (ch * h + y) * w,
             (size_t)w * sizeof(float));
}

/* The window of the padded image starting at (top, left) of the padded
 * frame, read straight from the unpadded source. */
static void crop(const float *restrict src, float *restrict dst, int64_t c,
                 int64_t h, int64_t w, const tf_op *op, int64_t top,
                 int64_t left) {
  int64_t oh = op->a, ow = op->b, p = op->c;
  for (int64_t ch = 0; ch < c; ch++)
    for (int64_t y = 0; y < oh; y++) {
      float *d = dst + (ch * oh + y) * ow;
      int64_t sy = y + top - p;
      if (sy < 0 || sy >= h) {
        for (int64_t x = 0; x < ow; x++)
          d[x] = op->value;
        continue;
      }
      const float *s = src + (ch * h + sy) * w;
      for (int64_t x = 0; x < ow; x++) {
        int64_t sx = x + left - p;
        d[x] = sx >= 0 && sx < w ? s[sx] : op->value;
      }
    }
}

/* p[i] = (p[i] - sub) / div for i < n: ToTensor's division by 255 and
 * Normalize's (x - mean) / std, as torchvision writes them (a division, not
 * a multiplication by the reciprocal, so the bits are PyTorch's). Four
 * lanes at a time through the compilers' generic vectors: the division is
 * the loader's main cost, and the loader thread shares the cores with the
 * training step. Every lane computes exactly the scalar expression. */
typedef float tf_v4 __attribute__((vector_size(16)));

static void sub_div(float *p, size_t n, float sub, float div) {
  const tf_v4 vs = {sub, sub, sub, sub}, vd = {div, div, div, div};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    tf_v4 v;
    memcpy(&v, p + i, sizeof v);
    v = (v - vs) / vd;
    memcpy(p + i, &v, sizeof v);
  }
  for (; i < n; i++)
    p[i] = (p[i] - sub) / div;
}

/* dst[i] = (float)src[i], four at a time (exact conversions). */
typedef uint8_t tf_u4 __attribute__((vector_size(4)));

static void bytes_to_float(const uint8_t *src, float *dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    tf_u4 b;
    memcpy(&b, src + i, sizeof b);
    tf_v4 v = __builtin_convertvector(b, tf_v4);
    memcpy(dst + i, &v, sizeof v);
  }
  for (; i < n; i++)
    dst[i] = (float)src[i];
}

void tc__transform_run(const tc_transform *tf, const uint8_t *pixels,
                       const int64_t in_chw[3], float *out, float *work,
                       uint64_t seed, uint64_t epoch, uint64_t index) {
  int64_t s[3] = {in_chw[0], in_chw[1], in_chw[2]};
  /* the plan succeeded, so this repeats its sizes without errors */
  int64_t most = s[0] * s[1] * s[2];
  {
    int64_t t[3] = {s[0], s[1], s[2]};
    for (int k = 0; k < tf->n; k++) {
      (void)op_shape(&tf->ops[k], k, t);
      if (t[0] * t[1] * t[2] > most)
        most = t[0] * t[1] * t[2];
    }
  }
  float *cur = work, *nxt = work + most;
  size_t count = (size_t)(s[0] * s[1] * s[2]);
  bytes_to_float(pixels, cur, count);
  uint64_t base = ((epoch & EPOCH_MASK) << 42) | ((index & 0xffffffffu) << 10);
  for (int k = 0; k < tf->n; k++) {
    const tf_op *op = &tf->ops[k];
    tc_rng r;
    tc_rng_init(&r, seed, TC_RNG_STREAM_AUGMENT);
    r.offset = base + (uint64_t)k * OP_WORDS;
    int64_t c = s[0], h = s[1], w = s[2];
    size_t plane = (size_t)(h * w);
    switch (op->kind) {
    case OP_TO_FLOAT:
      sub_div(cur, count, 0.0f, 255.0f); /* x - 0 == x: pixels are >= 0 */
      break;
    case OP_PAD: {
      pad(cur, nxt, c, h, w, op);
      float *t = cur;
      cur = nxt;
      nxt = t;
      break;
    }
    case OP_GRAY_TO_RGB:
      for (int ch = 0; ch < 3; ch++)
        memcpy(nxt + ch * plane, cur, plane * sizeof(float));
      {
        float *t = cur;
        cur = nxt;
        nxt = t;
      }
      break;
    case OP_NORMALIZE:
      for (int64_t ch = 0; ch < c; ch++) {
        int m = op->channels == 1 ? 0 : (int)ch;
        float mean = op->mean_std[m], sd = op->mean_std[op->channels + m];
        sub_div(cur + (size_t)ch * plane, plane, mean, sd);
      }
      break;
    case OP_RANDOM_CROP: {
      /* torchvision draws the top offset, then the left one */
      int64_t top =
          (int64_t)tc_rng_below(&r, (uint64_t)(h + 2 * op->c - op->a + 1));
      int64_t left =
          (int64_t)tc_rng_below(&r, (uint64_t)(w + 2 * op->c - op->b + 1));
      crop(cur, nxt, c, h, w, op, top, left);
      float *t = cur;
      cur = nxt;
      nxt = t;
      break;
    }
    case OP_RANDOM_HFLIP:
      if (tc_rng_uniform(&r) < op->value)
        for (size_t row = 0; row < (size_t)(c * h); row++) {
          float *p = cur + row * (size_t)w;
          for (int64_t x = 0, y = w - 1; x < y; x++, y--) {
            float t = p[x];
            p[x] = p[y];
            p[y] = t;
          }
        }
      break;
    }
    (void)op_shape(op, k, s);
    count = (size_t)(s[0] * s[1] * s[2]);
  }
  memcpy(out, cur, count * sizeof(float));
}

TC_API tc_status tc_transform_apply(const tc_transform *tf,
                                    const uint8_t *pixels,
                                    const int64_t in_chw[3], float *out,
                                    size_t out_count, uint64_t seed,
                                    uint64_t epoch, uint64_t index) {
  static const char fn[] = "tc_transform_apply";
  TC__CHECK_NULL(tf, fn);
  TC__CHECK_NULL(pixels, fn);
  TC__CHECK_NULL(in_chw, fn);
  TC__CHECK_NULL(out, fn);
  if (index > UINT32_MAX)
    return tc__error(TC_EINVAL, "%s: index %llu is not below 2^32", fn,
                     (unsigned long long)index);
  int64_t s[3];
  size_t work_floats;
  tc_status st = tc__transform_plan(tf, in_chw, s, &work_floats);
  if (st != TC_OK)
    return st;
  size_t want = (size_t)(s[0] * s[1] * s[2]);
  if (out_count != want)
    return tc__error(TC_ESHAPE,
                     "%s: out has %zu elements, the output "
                     "(%lld, %lld, %lld) needs %zu",
                     fn, out_count, (long long)s[0], (long long)s[1],
                     (long long)s[2], want);
  float *work = tc__malloc(work_floats * sizeof(float));
  if (!work)
    return tc__oom(fn);
  tc__transform_run(tf, pixels, in_chw, out, work, seed, epoch, index);
  tc__free(work);
  return TC_OK;
}
