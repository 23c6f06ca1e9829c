/*
 * test_cpu_conv2d.c - the CPU backend's 2-D convolution (forward,
 * backward-data, backward-filter, bias-grad) against the naive double
 * reference (tests/reference/conv.c): fixed edge shapes and random ones
 * (batch 1, odd sizes, 1x1/3x3/5x5 and rectangular kernels, stride,
 * padding, dilation, 1..17 channels), accumulate on and off, bias NULL,
 * bit-identical results for 1, 2 and 5 threads, workspace limits and
 * argument errors. Called through the public backend table.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libtinycnn.h>
#include <tinycnn_backend.h>

#include "reference/conv.h"
#include "testutil.h"

/* Relative error allowed against the double reference (float sums of a
 * few thousand terms; an indexing bug gives errors of order 1). */
#define TOL 2e-4

#include "op_fixture.h"

static tc_backend *open_cpu(int threads) {
  return op_create_cpu(threads);
}

static void use(tc_backend *b) {
  op_use(b);
  ck_assert(it->conv2d_workspace_size != NULL);
  ck_assert(it->conv2d_fwd != NULL);
  ck_assert(it->conv2d_bwd_data != NULL);
  ck_assert(it->conv2d_bwd_filter != NULL);
  ck_assert(it->conv2d_bwd_bias != NULL);
}

/* 3 threads: the batch split and the partial sums really run in parallel. */
static void setup(void) {
  use(open_cpu(3));
}
static void teardown(void) {
  op_close();
}

static float *dalloc(size_t n) {
  return op_falloc(n ? n : 1);
}

static void fill_nan(float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = NAN;
}

typedef struct ccase {
  int64_t n, c, h, w, k, r, s;
  int64_t sh, sw, ph, pw, dh, dw;
} ccase;

static tc_conv2d_args make_args(const ccase *g) {
  tc_conv2d_args a = {.struct_size = sizeof a};
  a.n = g->n, a.c = g->c, a.h = g->h, a.w = g->w;
  a.k = g->k, a.r = g->r, a.s = g->s;
  a.stride_h = g->sh, a.stride_w = g->sw, a.pad_h = g->ph, a.pad_w = g->pw;
  a.dil_h = g->dh, a.dil_w = g->dw;
  a.out_h = ref_conv_out_size(g->h, g->r, g->sh, g->ph, g->dh);
  a.out_w = ref_conv_out_size(g->w, g->s, g->sw, g->pw, g->dw);
  return a;
}

/* Buffers of one problem; sizes in floats. */
typedef struct cbufs {
  size_t nx, nw, ny;
  float *x, *wt, *bias, *y, *dy, *dx, *dw, *db;
  void *ws;
  size_t ws_bytes;
} cbufs;

static void bufs_init(cbufs *b, const tc_conv2d_args *a, uint64_t seed) {
  b->nx = (size_t)(a->n * a->c * a->h * a->w);
  b->nw = (size_t)(a->k * a->c * a->r * a->s);
  b->ny = (size_t)(a->n * a->k * a->out_h * a->out_w);
  b->x = dalloc(b->nx), b->wt = dalloc(b->nw), b->bias = dalloc((size_t)a->k);
  b->y = dalloc(b->ny), b->dy = dalloc(b->ny), b->dx = dalloc(b->nx);
  b->dw = dalloc(b->nw), b->db = dalloc((size_t)a->k);
  tu_fill_uniform(b->x, b->nx, seed, -1.f, 1.f);
  tu_fill_uniform(b->wt, b->nw, seed + 1, -1.f, 1.f);
  tu_fill_uniform(b->bias, (size_t)a->k, seed + 2, -1.f, 1.f);
  tu_fill_uniform(b->dy, b->ny, seed + 3, -1.f, 1.f);
  ck_assert_int_eq(it->conv2d_workspace_size(ctx, a, &b->ws_bytes), TC_OK);
  b->ws = NULL;
  if (b->ws_bytes)
    b->ws = op_alloc(b->ws_bytes);
}

static void bufs_free(cbufs *b) {
  float *p[] = {b->x, b->wt, b->bias, b->y, b->dy, b->dx, b->dw, b->db};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    it->free(ctx, p[i]);
  it->free(ctx, b->ws);
}

static void bind(tc_conv2d_args *a, const cbufs *b) {
  a->x = b->x, a->wt = b->wt, a->bias = b->bias, a->y = b->y;
  a->dy = b->dy, a->dx = b->dx, a->dw = b->dw, a->db = b->db;
  a->workspace = b->ws, a->workspace_size = b->ws_bytes;
}

static float *host_copy(const float *src, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  ck_assert_ptr_nonnull(p);
  memcpy(p, src, n * sizeof *p);
  return p;
}

#define CASE_FMT                                                               \
  "n %lld c %lld %lldx%lld k %lld %lldx%lld stride %lld,%lld pad %lld,%lld "   \
  "dil %lld,%lld acc %d bias %d"
#define CASE_ARGS(g, acc, bias)                                                \
  (long long)(g)->n, (long long)(g)->c, (long long)(g)->h, (long long)(g)->w,  \
      (long long)(g)->k, (long long)(g)->r, (long long)(g)->s,                 \
      (long long)(g)->sh, (long long)(g)->sw, (long long)(g)->ph,              \
      (long long)(g)->pw, (long long)(g)->dh, (long long)(g)->dw, (acc),       \
      (bias)

static void expect_close(const char *what, const float *got, const float *want,
                         size_t n, const ccase *g, int acc, int bias) {
  double e = tu_max_rel_err(got, want, n);
  ck_assert_msg(e <= TOL, "%s: " CASE_FMT ": max rel err %.3g", what,
                CASE_ARGS(g, acc, bias), e);
}

/* Runs all four directions on one shape and compares with the reference.
 * Without accumulate the outputs start as NaN: they must be overwritten.
 * With it they start random and must be added to. */
static void run_case(const ccase *g, uint64_t seed, int accumulate,
                     int with_bias) {
  tc_conv2d_args a = make_args(g);
  ck_assert_msg(a.out_h > 0 && a.out_w > 0, "bad test case");
  cbufs b;
  bufs_init(&b, &a, seed);
  bind(&a, &b);
  if (!with_bias)
    a.bias = NULL;
  a.accumulate = accumulate;
  if (accumulate) {
    tu_fill_uniform(b.y, b.ny, seed + 4, -1.f, 1.f);
    tu_fill_uniform(b.dx, b.nx, seed + 5, -1.f, 1.f);
    tu_fill_uniform(b.dw, b.nw, seed + 6, -1.f, 1.f);
    tu_fill_uniform(b.db, (size_t)a.k, seed + 7, -1.f, 1.f);
  } else {
    fill_nan(b.y, b.ny), fill_nan(b.dx, b.nx), fill_nan(b.dw, b.nw);
    fill_nan(b.db, (size_t)a.k);
  }
  float *y0 = host_copy(b.y, b.ny), *dx0 = host_copy(b.dx, b.nx);
  float *dw0 = host_copy(b.dw, b.nw), *db0 = host_copy(b.db, (size_t)a.k);

  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  ck_assert_int_eq(with_bias ? it->conv2d_bwd_bias(ctx, &a) : TC_OK, TC_OK);

  tc_conv2d_args r = a;
  r.y = y0, r.dx = dx0, r.dw = dw0, r.db = db0;
  ref_conv2d_fwd(&r); /* forward always overwrites: accumulate is ignored */
  ref_conv2d_bwd_data(&r);
  ref_conv2d_bwd_filter(&r);
  expect_close("fwd", b.y, y0, b.ny, g, accumulate, with_bias);
  expect_close("bwd_data", b.dx, dx0, b.nx, g, accumulate, with_bias);
  expect_close("bwd_filter", b.dw, dw0, b.nw, g, accumulate, with_bias);
  if (with_bias) {
    ref_conv2d_bwd_bias(&r);
    expect_close("bwd_bias", b.db, db0, (size_t)a.k, g, accumulate, with_bias);
  }
  free(y0), free(dx0), free(dw0), free(db0);
  bufs_free(&b);
}

/* n c h w  k r s  sh sw ph pw dh dw */
static const ccase fixed_cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},   /* smallest: 1x1 direct */
    {2, 5, 7, 9, 3, 1, 1, 1, 1, 0, 0, 1, 1},   /* 1x1 direct path */
    {3, 4, 9, 7, 6, 1, 1, 2, 2, 0, 0, 1, 1},   /* 1x1 stride 2 */
    {1, 3, 5, 6, 2, 1, 1, 1, 1, 1, 1, 1, 1},   /* 1x1 with padding */
    {2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1},   /* 3x3 same */
    {1, 2, 7, 9, 5, 3, 3, 2, 2, 1, 1, 1, 1},   /* 3x3 stride 2, odd */
    {2, 3, 11, 10, 4, 5, 5, 1, 1, 2, 2, 1, 1}, /* 5x5 pad 2 */
    {1, 2, 11, 13, 3, 5, 5, 2, 3, 0, 1, 1, 1}, /* 5x5 stride 2,3 */
    {2, 3, 9, 9, 2, 3, 3, 1, 1, 2, 2, 2, 2},   /* dilation 2 */
    {1, 2, 12, 10, 3, 3, 2, 2, 1, 1, 0, 2, 3}, /* dilation 2,3 + stride */
    {2, 3, 6, 9, 4, 1, 3, 1, 1, 0, 1, 1, 1},   /* 1x3 */
    {1, 4, 9, 5, 2, 3, 1, 2, 1, 1, 0, 1, 1},   /* 3x1 stride 2 */
    {2, 2, 8, 11, 3, 2, 5, 2, 1, 0, 2, 1, 1},  /* 2x5 */
    {1, 17, 6, 5, 17, 3, 3, 1, 1, 1, 1, 1, 1}, /* 17 channels */
    {2, 2, 2, 3, 3, 5, 5, 1, 1, 2, 2, 1, 1},   /* kernel > input */
    {1, 1, 4, 4, 1, 4, 4, 1, 1, 0, 0, 1, 1},   /* kernel = input: 1x1 out */
    {2, 3, 10, 10, 2, 3, 3, 3, 3, 0, 0, 1, 1}, /* stride 3, leftover */
    {70, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1},  /* batch > reduce chunks */
    {37, 2, 5, 5, 3, 1, 1, 1, 1, 0, 0, 1, 1},  /* chunked, direct */
    {70, 8, 6, 6, 16, 3, 3, 1, 1, 1, 1, 1, 1}, /* dw > one combine block */
    {37, 5, 9, 8, 6, 3, 3, 2, 2, 1, 1, 1, 1},  /* stride 2, chunked */
    {2, 3, 13, 11, 5, 5, 5, 4, 4, 2, 1, 1, 1}, /* stride 4 */
    {9, 70, 6, 7, 3, 1, 1, 2, 2, 0, 0, 1, 1},  /* 1x1 stride 2, 70 ch */
    {3, 6, 8, 9, 4, 3, 3, 1, 2, 0, 2, 1, 1},   /* stride 1,2 */
    /* direct-path tile variants (conv2d_direct.c picks them by k, taps) */
    {3, 3, 32, 32, 6, 5, 5, 1, 1, 0, 0, 1, 1},   /* LeNet conv1: k = 6 */
    {2, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 1, 1},  /* LeNet conv2: 25 taps */
    {2, 10, 9, 11, 12, 3, 3, 1, 1, 1, 1, 1, 1},  /* k = 12, c = 10 */
    {3, 7, 9, 8, 6, 1, 1, 2, 2, 0, 0, 1, 1},     /* 1x1 fold, k = 6 */
    {2, 16, 19, 21, 16, 3, 3, 1, 1, 1, 1, 1, 1}, /* rows past one vector */
    /* sw == 1: rows share one run of pw zeros (Ws = w + pw) */
    {2, 16, 9, 20, 16, 3, 3, 2, 1, 1, 1, 1, 1}, /* stride 2,1, pad 1 */
    {2, 5, 8, 8, 9, 5, 5, 1, 1, 1, 1, 1, 1},    /* pad 1 < s-1 */
    {2, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1},  /* ResNet 8x8, 64 ch */
    /* position blocks leave out the taps that read only padding rows:
     * blocks with some, none, or all of the taps */
    {1, 4, 9, 40, 6, 7, 3, 1, 1, 0, 1, 1, 1}, /* bwd: 3-row dy, 7 rows */
    {2, 3, 4, 30, 5, 5, 5, 1, 1, 4, 4, 1, 1}, /* fwd: pad 4 rows */
    /* stride 1, ow == w (AVX-512: the dense masked kernels, y/dx direct) */
    {2, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1}, /* ResNet 32x32 */
    {1, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1}, /* ResNet 16x16 */
    {3, 7, 5, 1, 9, 3, 3, 1, 1, 1, 1, 1, 1},     /* w = 1 */
    {2, 3, 9, 3, 5, 1, 3, 1, 1, 0, 1, 1, 1},     /* w = 3: rows per vector */
    {2, 4, 7, 13, 10, 3, 5, 1, 1, 0, 2, 1, 1},   /* 3x5, ph 0: k % tile */
    {2, 9, 6, 7, 6, 5, 3, 1, 1, 3, 1, 1, 1},     /* ph > r/2, 6x3 tile */
    {1, 3, 11, 17, 20, 3, 3, 1, 1, 2, 1, 1, 1},  /* oh > h, 17 wide */
    /* dense wgrad (AVX-512): x planes of whole rows, dy in place, masked
     * row edges; k >= the tile's channels, partial last channel block */
    {3, 16, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1},  /* ResNet 8x8, G images */
    {1, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1},  /* batch 1 */
    {2, 5, 9, 13, 11, 3, 3, 1, 1, 1, 1, 1, 1},  /* odd widths, k % 8 */
    {17, 3, 7, 15, 12, 3, 3, 1, 1, 1, 1, 1, 1}, /* chunks, k % 8 = 4 */
    {2, 6, 6, 21, 13, 5, 5, 1, 1, 2, 2, 1, 1},  /* 5x5 same, k % tile */
    {2, 4, 4, 4, 7, 3, 3, 1, 1, 1, 1, 1, 1},    /* k < 8: padded path */
    /* dense paths at their edges: planes of 1-3 rows (a position block
     * both first and last), widths around the vector length, 5x5, output
     * shorter or taller than the input, few and many channels */
    {1, 3, 1, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1},    /* h = 1, k < tile */
    {3, 5, 2, 16, 9, 3, 3, 1, 1, 1, 1, 1, 1},   /* h = 2, w = 16 */
    {1, 4, 3, 17, 12, 3, 3, 1, 1, 1, 1, 1, 1},  /* h = 3, w = 17 */
    {5, 6, 3, 33, 17, 3, 3, 1, 1, 1, 1, 1, 1},  /* w = 33, odd batch */
    {1, 16, 6, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1}, /* inner blocks too */
    {3, 6, 9, 16, 6, 3, 3, 1, 1, 1, 1, 1, 1},   /* 6x3 tile, inner */
    {1, 3, 2, 7, 10, 5, 5, 1, 1, 2, 2, 1, 1},   /* 5x5 pad 2, h = 2 */
    {3, 2, 1, 33, 9, 5, 5, 1, 1, 2, 2, 1, 1},   /* 5x5, h = 1, w = 33 */
    {1, 9, 3, 16, 5, 5, 5, 1, 1, 2, 2, 1, 1},   /* 5x5, h = 3, k < tile */
    {5, 7, 7, 17, 11, 5, 5, 1, 1, 2, 2, 1, 1},  /* 5x5, w = 17 */
    {3, 8, 4, 17, 20, 3, 3, 1, 1, 0, 1, 1, 1},  /* ph 0: oh < h */
    {1, 5, 2, 9, 11, 1, 1, 1, 1, 1, 0, 1, 1},   /* 1x1 ph 1: oh > h */
    {2, 7, 5, 12, 9, 3, 3, 1, 1, 2, 1, 1, 1},   /* ph 2: oh = h + 2 */
    {1, 64, 2, 2, 64, 3, 3, 1, 1, 1, 1, 1, 1},  /* 2x2, 64 channels */
    /* 3x3 stride 1, k and P multiples of 16, k >= 32 (AVX-512): the weight
     * gradient with output channels in the lanes (conv2d_wgradt.c) */
    {3, 5, 4, 8, 48, 3, 3, 1, 1, 1, 1, 1, 1},  /* 32 + 16 lanes, odd c */
    {2, 4, 4, 16, 32, 3, 3, 1, 1, 0, 1, 1, 1}, /* ph 0: oh < h */
    {2, 3, 2, 8, 64, 3, 3, 1, 1, 2, 1, 1, 1},  /* ph 2: oh > h */
    /* AVX2 dense kernels (4+ whole tiles of position vectors, masks
     * ANDed with plain loads): tails under 8, partial channel blocks */
    {2, 5, 7, 13, 10, 3, 3, 1, 1, 1, 1, 1, 1}, /* 3x3, 91 positions */
    {2, 3, 9, 11, 7, 5, 5, 1, 1, 2, 2, 1, 1},  /* 5x5 pad 2, 99 */
    {2, 3, 20, 22, 9, 3, 3, 2, 2, 1, 1, 1, 1}, /* stride 2: 10x11 out */
    /* AVX2: stride 1, k a multiple of 16, rows of 4+ taps: the weight
     * gradient (tiles of <= 6 taps) and the forward (tiles of <= 6
     * columns, c*r*s <= 1024) with output channels in the lanes */
    {1, 48, 6, 7, 16, 5, 5, 1, 1, 2, 2, 1, 1},  /* fwd: c*r*s > 1024 */
    {17, 3, 9, 11, 16, 5, 5, 1, 1, 2, 2, 1, 1}, /* chunks, pad 2 */
    {2, 4, 7, 13, 32, 3, 7, 1, 1, 1, 3, 1, 1},  /* 3x7: 6 + 1 taps a row */
    {3, 5, 6, 9, 16, 4, 4, 1, 1, 0, 0, 1, 1},   /* 4x4, pad 0 */
    {1, 2, 5, 30, 48, 2, 5, 1, 1, 1, 2, 1, 1},  /* 2x5, k = 48 */
    /* dense stride 2 (AVX-512: stride 2x2, out = in/2, so r = 2*ph + 1 or
     * 2*ph + 2): x in 4 phase planes of whole out-wide rows, fwd writing
     * y, wgrad reading dy in place */
    {1, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1}, /* ResNet 32 -> 16 */
    {3, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1, 1, 1}, /* ResNet 16 -> 8, odd n */
    {2, 3, 2, 2, 9, 3, 3, 2, 2, 1, 1, 1, 1},     /* 2x2 -> 1x1, k % 8 */
    {1, 5, 4, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1},     /* 4x4, k < tile */
    {5, 7, 8, 8, 12, 3, 3, 2, 2, 1, 1, 1, 1},    /* 8x8, k = 12 */
    {2, 9, 4, 4, 17, 3, 3, 2, 2, 1, 1, 1, 1},    /* 4x4, k = 17 */
    {17, 3, 8, 12, 16, 3, 3, 2, 2, 1, 1, 1, 1},  /* chunks, 4x6 out */
    {2, 4, 6, 34, 8, 3, 3, 2, 2, 1, 1, 1, 1},    /* 17 wide: rows straddle */
    {3, 2, 2, 40, 11, 3, 3, 2, 2, 1, 1, 1, 1},   /* one output row */
    {1, 3, 36, 40, 6, 3, 3, 2, 2, 1, 1, 1, 1},   /* 18x20 out, 6x3 tile */
    {2, 3, 12, 8, 9, 5, 5, 2, 2, 2, 2, 1, 1},    /* 5x5 pad 2 */
    {2, 3, 8, 10, 10, 2, 2, 2, 2, 0, 0, 1, 1},   /* 2x2 pad 0 */
    {2, 3, 8, 8, 10, 4, 4, 2, 2, 1, 1, 1, 1},    /* 4x4 pad 1 */
    {2, 4, 10, 6, 9, 3, 5, 2, 2, 1, 2, 1, 1},    /* 3x5 pad 1,2 */
    {2, 4, 6, 10, 9, 2, 3, 2, 2, 0, 1, 1, 1},    /* 2x3 pad 0,1 */
    /* close to it but the phase path: odd w or h, other padding, 1x1,
     * 5x5 pad 1, stride 2x1 / 1x2 */
    {2, 3, 8, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1}, /* odd w */
    {2, 3, 9, 8, 9, 3, 3, 2, 2, 1, 1, 1, 1}, /* odd h */
    {2, 3, 8, 8, 9, 3, 3, 2, 2, 0, 0, 1, 1}, /* pad 0 */
    {2, 3, 8, 8, 9, 3, 3, 2, 2, 2, 2, 1, 1}, /* pad 2 */
    {2, 5, 8, 8, 9, 1, 1, 2, 2, 0, 0, 1, 1}, /* 1x1 */
    {2, 3, 8, 8, 9, 5, 5, 2, 2, 1, 1, 1, 1}, /* 5x5 pad 1 */
    {2, 3, 8, 8, 9, 3, 3, 2, 1, 1, 1, 1, 1}, /* stride 2x1 */
    {2, 3, 8, 8, 9, 3, 3, 1, 2, 1, 1, 1, 1}, /* stride 1x2 */
};

START_TEST(test_conv_fixed) {
  const ccase *g = &fixed_cases[_i];
  for (int acc = 0; acc < 2; acc++)
    for (int bias = 0; bias < 2; bias++)
      run_case(
          g, 1000 + 16 * (uint64_t)_i + 4 * (uint64_t)acc + 2 * (uint64_t)bias,
          acc, bias);
}
END_TEST

static int64_t pick(tc_rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)(tc_rng_next_u32(r) % (uint32_t)(hi - lo + 1));
}

/* Random shapes: 12 per test instance (alternating accumulate and bias),
 * each with a valid output. */
START_TEST(test_conv_random) {
  static const int64_t ks[] = {1, 2, 3, 5};
  tc_rng rng;
  tc_rng_init(&rng, 77 + (uint64_t)_i, TC_RNG_STREAM_USER);
  for (int done = 0; done < 12;) {
    ccase g;
    g.n = pick(&rng, 1, 4) == 4 ? pick(&rng, 5, 9) : pick(&rng, 1, 3);
    g.c = pick(&rng, 1, 17), g.k = pick(&rng, 1, 17);
    g.h = pick(&rng, 1, 16), g.w = pick(&rng, 1, 16);
    g.r = ks[pick(&rng, 0, 3)], g.s = ks[pick(&rng, 0, 3)];
    if (pick(&rng, 0, 2) == 0)
      g.s = g.r; /* square often */
    g.sh = pick(&rng, 1, 3), g.sw = pick(&rng, 1, 3);
    g.ph = pick(&rng, 0, 2), g.pw = pick(&rng, 0, 2);
    g.dh = pick(&rng, 1, 2), g.dw = pick(&rng, 1, 2);
    if (ref_conv_out_size(g.h, g.r, g.sh, g.ph, g.dh) < 1 ||
        ref_conv_out_size(g.w, g.s, g.sw, g.pw, g.dw) < 1)
      continue;
    run_case(&g, 5000 + 100 * (uint64_t)_i + (uint64_t)done, done % 2,
             done % 3 != 0);
    done++;
  }
}
END_TEST

/* Random shapes for the dense stride-2 path (and the phase path where
 * h or w is odd): stride 2x2, 3x3 pad 1 mostly, even sizes 2..34. */
START_TEST(test_conv_random_s2) {
  static const int64_t kp[][2] = {{3, 1}, {3, 1}, {3, 1},
                                  {5, 2}, {2, 0}, {4, 1}};
  tc_rng rng;
  tc_rng_init(&rng, 177 + (uint64_t)_i, TC_RNG_STREAM_USER);
  for (int done = 0; done < 8; done++) {
    ccase g;
    g.n = pick(&rng, 1, 4) == 4 ? pick(&rng, 17, 19) : pick(&rng, 1, 5);
    g.c = pick(&rng, 1, 20), g.k = pick(&rng, 1, 40);
    g.h = 2 * pick(&rng, 1, 17), g.w = 2 * pick(&rng, 1, 17);
    if (pick(&rng, 0, 5) == 0)
      g.w -= 1; /* odd: the phase path */
    const int64_t *rp = kp[pick(&rng, 0, 5)], *sp = kp[pick(&rng, 0, 5)];
    g.r = rp[0], g.ph = rp[1], g.s = sp[0], g.pw = sp[1];
    g.sh = g.sw = 2, g.dh = g.dw = 1;
    if (g.w < g.s - 2 * g.pw)
      g.w += 2;
    run_case(&g, 7000 + 100 * (uint64_t)_i + (uint64_t)done, done % 2,
             done % 3 != 0);
  }
}
END_TEST

/* An empty batch is a no-op, except that gradients of an empty sum are 0. */
START_TEST(test_conv_empty_batch) {
  ccase g = {0, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1};
  tc_conv2d_args a = make_args(&g);
  size_t ws = 1;
  ck_assert_int_eq(it->conv2d_workspace_size(ctx, &a, &ws), TC_OK);
  ck_assert_uint_eq(ws, 0);
  float *dw = dalloc(54), *db = dalloc(3);
  tu_fill_uniform(dw, 54, 3, -1.f, 1.f);
  tu_fill_uniform(db, 3, 4, -1.f, 1.f);
  float dw0 = dw[5], db0 = db[1];
  a.dw = dw, a.db = db, a.accumulate = 1; /* x, dy, y, dx all NULL */
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_bias(ctx, &a), TC_OK);
  ck_assert_float_eq(dw[5], dw0);
  ck_assert_float_eq(db[1], db0);
  a.accumulate = 0;
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_bias(ctx, &a), TC_OK);
  for (int i = 0; i < 54; i++)
    ck_assert_float_eq(dw[i], 0.f);
  for (int i = 0; i < 3; i++)
    ck_assert_float_eq(db[i], 0.f);
  it->free(ctx, dw);
  it->free(ctx, db);
}
END_TEST

/* All four outputs of one shape with a backend of `threads` threads. */
typedef struct outs {
  float *y, *dx, *dw, *db;
} outs;

static void run_threads(const ccase *g, int threads, int accumulate, outs *o) {
  use(open_cpu(threads));
  tc_conv2d_args a = make_args(g);
  cbufs b;
  bufs_init(&b, &a, 9000);
  bind(&a, &b);
  a.accumulate = accumulate;
  tu_fill_uniform(b.dx, b.nx, 9004, -1.f, 1.f);
  tu_fill_uniform(b.dw, b.nw, 9005, -1.f, 1.f);
  tu_fill_uniform(b.db, (size_t)a.k, 9006, -1.f, 1.f);
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_bias(ctx, &a), TC_OK);
  o->y = host_copy(b.y, b.ny), o->dx = host_copy(b.dx, b.nx);
  o->dw = host_copy(b.dw, b.nw), o->db = host_copy(b.db, (size_t)a.k);
  bufs_free(&b);
  op_destroy();
}

static void outs_free(outs *o) {
  free(o->y), free(o->dx), free(o->dw), free(o->db);
}

START_TEST(test_conv_thread_independent) {
  static const ccase cases[] = {
      {70, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1},   /* 64 partial sums */
      {5, 4, 9, 9, 3, 3, 3, 2, 2, 1, 1, 1, 1},    /* one image per chunk */
      {13, 6, 5, 5, 4, 1, 1, 1, 1, 0, 0, 1, 1},   /* direct 1x1 */
      {67, 8, 6, 5, 16, 3, 3, 2, 1, 1, 1, 1, 1},  /* dw > combine block */
      {40, 3, 12, 12, 6, 5, 5, 1, 1, 0, 0, 1, 1}, /* k = 6 tiles */
      {37, 5, 8, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1},  /* dense wgrad */
      {37, 6, 8, 8, 16, 3, 3, 2, 2, 1, 1, 1, 1},  /* dense stride 2 */
      {37, 6, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1, 1},  /* wgrad, channels in lanes */
  };
  static const int threads[] = {2, 5};
  op_destroy(); /* the fixture's; reopened below */
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const ccase *g = &cases[i];
    tc_conv2d_args a = make_args(g);
    size_t ny = (size_t)(a.n * a.k * a.out_h * a.out_w);
    size_t nx = (size_t)(a.n * a.c * a.h * a.w);
    size_t nw = (size_t)(a.k * a.c * a.r * a.s);
    for (int acc = 0; acc < 2; acc++) {
      outs one;
      run_threads(g, 1, acc, &one);
      for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        outs many;
        run_threads(g, threads[t], acc, &many);
        ck_assert_msg(!memcmp(one.dw, many.dw, nw * sizeof(float)),
                      "case %zu acc %d: dw differs, 1 vs %d threads", i, acc,
                      threads[t]);
        ck_assert_msg(!memcmp(one.db, many.db, (size_t)a.k * sizeof(float)),
                      "case %zu acc %d: db differs, 1 vs %d threads", i, acc,
                      threads[t]);
        ck_assert_msg(!memcmp(one.y, many.y, ny * sizeof(float)),
                      "case %zu: y differs, 1 vs %d threads", i, threads[t]);
        ck_assert_msg(!memcmp(one.dx, many.dx, nx * sizeof(float)),
                      "case %zu acc %d: dx differs, 1 vs %d threads", i, acc,
                      threads[t]);
        outs_free(&many);
      }
      outs_free(&one);
    }
  }
  use(open_cpu(3)); /* for teardown */
}
END_TEST

/* The query grows with the thread count (one im2col slice per thread) but
 * the single-thread size is enough for any backend: fewer slices run. */
START_TEST(test_conv_workspace_sizes) {
  ccase g = {70, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1};
  tc_conv2d_args a = make_args(&g);
  size_t ws1 = 0, ws3 = 0;
  tc_backend *b1 = open_cpu(1);
  ck_assert_int_eq(tc_backend_get_iface(b1)->conv2d_workspace_size(
                       tc_backend_get_context(b1), &a, &ws1),
                   TC_OK);
  tc_backend_destroy(b1);
  ck_assert_int_eq(it->conv2d_workspace_size(ctx, &a, &ws3), TC_OK);
  ck_assert_uint_gt(ws1, 0);
  ck_assert_uint_gt(ws3, ws1);

  cbufs b;
  bufs_init(&b, &a, 42);
  bind(&a, &b);
  float *dw_full = malloc(b.nw * sizeof *dw_full);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  memcpy(dw_full, b.dw, b.nw * sizeof *dw_full);
  a.workspace_size = ws1; /* the same buffer, declared smaller */
  fill_nan(b.dw, b.nw);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  ck_assert_int_eq(memcmp(dw_full, b.dw, b.nw * sizeof *dw_full), 0);
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  free(dw_full);
  bufs_free(&b);
}
END_TEST

/* Returns TC_EINVAL with a message and leaves `out[0]` as it was. */
static void expect_einval_ws(tc_status (*op)(void *, const tc_conv2d_args *),
                             const tc_conv2d_args *a, const float *out,
                             const char *what) {
  float before = out ? out[0] : 0.f;
  tc_clear_error();
  tc_status st = op(ctx, a);
  ck_assert_msg(st == TC_EINVAL, "%s: status %d, expected TC_EINVAL", what,
                (int)st);
  ck_assert_msg(strlen(tc_last_error()) > 0, "%s: no message", what);
  if (out)
    ck_assert_msg(memcmp(&before, out, sizeof before) == 0,
                  "%s: output written on failure", what);
}

START_TEST(test_conv_workspace_too_small) {
  /* batch 1 with one thread: the query is exactly the im2col slice */
  op_destroy();
  use(open_cpu(1));
  ccase g = {1, 3, 8, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1};
  tc_conv2d_args a = make_args(&g);
  cbufs b;
  bufs_init(&b, &a, 11);
  bind(&a, &b);
  tu_fill_uniform(b.y, b.ny, 12, -1.f, 1.f);
  tu_fill_uniform(b.dx, b.nx, 13, -1.f, 1.f);
  tu_fill_uniform(b.dw, b.nw, 14, -1.f, 1.f);
  ck_assert_uint_gt(b.ws_bytes, 0);
  a.workspace_size = b.ws_bytes - 1;
  expect_einval_ws(it->conv2d_fwd, &a, b.y, "fwd, small workspace");
  expect_einval_ws(it->conv2d_bwd_data, &a, b.dx, "bwd_data, small workspace");
  expect_einval_ws(it->conv2d_bwd_filter, &a, b.dw,
                   "bwd_filter, small workspace");
  a.workspace = NULL, a.workspace_size = b.ws_bytes;
  expect_einval_ws(it->conv2d_fwd, &a, b.y, "fwd, NULL workspace");
  expect_einval_ws(it->conv2d_bwd_data, &a, b.dx, "bwd_data, NULL workspace");
  expect_einval_ws(it->conv2d_bwd_filter, &a, b.dw,
                   "bwd_filter, NULL workspace");
  a.workspace = (char *)b.ws + 1, a.workspace_size = b.ws_bytes - 1;
  expect_einval_ws(it->conv2d_fwd, &a, b.y, "fwd, misaligned workspace");
  a.workspace = b.ws, a.workspace_size = b.ws_bytes;
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  /* bias-grad needs no workspace */
  a.workspace = NULL, a.workspace_size = 0;
  ck_assert_int_eq(it->conv2d_bwd_bias(ctx, &a), TC_OK);
  bufs_free(&b);

  /* a batch: bwd_filter also needs room for the partial sums */
  ccase h = {20, 2, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1};
  a = make_args(&h);
  bufs_init(&b, &a, 15);
  bind(&a, &b);
  tu_fill_uniform(b.dw, b.nw, 16, -1.f, 1.f);
  a.workspace_size = b.ws_bytes - 1;
  expect_einval_ws(it->conv2d_bwd_filter, &a, b.dw,
                   "bwd_filter, no room for partials");
  a.workspace_size = b.ws_bytes;
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  bufs_free(&b);

  /* a 1x1, stride 1, unpadded kernel needs no workspace at all */
  ccase d = {1, 4, 5, 5, 3, 1, 1, 1, 1, 0, 0, 1, 1};
  a = make_args(&d);
  bufs_init(&b, &a, 17);
  ck_assert_uint_eq(b.ws_bytes, 0);
  bind(&a, &b);
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  bufs_free(&b);
}
END_TEST

START_TEST(test_conv_invalid_args) {
  ccase g = {2, 3, 8, 7, 4, 3, 3, 2, 1, 1, 1, 1, 1};
  tc_conv2d_args ok = make_args(&g);
  cbufs b;
  bufs_init(&b, &ok, 21);
  bind(&ok, &b);
  tu_fill_uniform(b.y, b.ny, 22, -1.f, 1.f);
  tu_fill_uniform(b.dx, b.nx, 23, -1.f, 1.f);
  tu_fill_uniform(b.dw, b.nw, 24, -1.f, 1.f);
  tu_fill_uniform(b.db, (size_t)ok.k, 25, -1.f, 1.f);
  tc_status (*const ops[4])(void *, const tc_conv2d_args *) = {
      it->conv2d_fwd, it->conv2d_bwd_data, it->conv2d_bwd_filter,
      it->conv2d_bwd_bias};
  const float *outs_[4] = {b.y, b.dx, b.dw, b.db};
  static const char *names[4] = {"fwd", "bwd_data", "bwd_filter", "bwd_bias"};
  char what[96];

  /* shape errors: every op and the workspace query reject them */
  for (int e = 0; e < 19; e++) {
    tc_conv2d_args a = ok;
    switch (e) {
    case 0:
      a.struct_size = sizeof a - 8;
      break;
    case 1:
      a.n = -1;
      break;
    case 2:
      a.c = 0;
      break;
    case 3:
      a.h = 0;
      break;
    case 4:
      a.w = -2;
      break;
    case 5:
      a.k = 0;
      break;
    case 6:
      a.r = 0;
      break;
    case 7:
      a.s = -1;
      break;
    case 8:
      a.stride_h = 0;
      break;
    case 9:
      a.stride_w = -1;
      break;
    case 10:
      a.pad_h = -1;
      break;
    case 11:
      a.pad_w = -1;
      break;
    case 12:
      a.dil_h = 0;
      break;
    case 13:
      a.dil_w = -1;
      break;
    case 14:
      a.out_h += 1;
      break;
    case 15:
      a.out_h -= 1;
      break;
    case 16:
      a.out_w += 1;
      break;
    case 17:
      a.out_w = 0;
      break;
    case 18:
      a.r = 11, a.out_h = 1;
      break; /* kernel > padded input */
    }
    for (int o = 0; o < 4; o++) {
      snprintf(what, sizeof what, "%s, case %d", names[o], e);
      expect_einval_ws(ops[o], &a, outs_[o], what);
    }
    size_t ws = 12345;
    tc_clear_error();
    ck_assert_int_eq(it->conv2d_workspace_size(ctx, &a, &ws), TC_EINVAL);
    ck_assert_uint_eq(ws, 12345);
  }

  /* NULL args and NULL ctx */
  for (int o = 0; o < 4; o++) {
    snprintf(what, sizeof what, "%s, NULL args", names[o]);
    expect_einval_ws(ops[o], NULL, outs_[o], what);
    tc_clear_error();
    ck_assert_int_eq(ops[o](NULL, &ok), TC_EINVAL);
  }
  size_t ws = 0;
  ck_assert_int_eq(it->conv2d_workspace_size(ctx, NULL, &ws), TC_EINVAL);
  ck_assert_int_eq(it->conv2d_workspace_size(ctx, &ok, NULL), TC_EINVAL);

  /* NULL buffers each op reads or writes */
  tc_conv2d_args a;
  a = ok, a.x = NULL;
  expect_einval_ws(it->conv2d_fwd, &a, b.y, "fwd, x NULL");
  expect_einval_ws(it->conv2d_bwd_filter, &a, b.dw, "bwd_filter, x NULL");
  a = ok, a.wt = NULL;
  expect_einval_ws(it->conv2d_fwd, &a, b.y, "fwd, wt NULL");
  expect_einval_ws(it->conv2d_bwd_data, &a, b.dx, "bwd_data, wt NULL");
  a = ok, a.y = NULL;
  expect_einval_ws(it->conv2d_fwd, &a, NULL, "fwd, y NULL");
  a = ok, a.dy = NULL;
  expect_einval_ws(it->conv2d_bwd_data, &a, b.dx, "bwd_data, dy NULL");
  expect_einval_ws(it->conv2d_bwd_filter, &a, b.dw, "bwd_filter, dy NULL");
  expect_einval_ws(it->conv2d_bwd_bias, &a, b.db, "bwd_bias, dy NULL");
  a = ok, a.dx = NULL;
  expect_einval_ws(it->conv2d_bwd_data, &a, NULL, "bwd_data, dx NULL");
  a = ok, a.dw = NULL;
  expect_einval_ws(it->conv2d_bwd_filter, &a, NULL, "bwd_filter, dw NULL");
  a = ok, a.db = NULL;
  expect_einval_ws(it->conv2d_bwd_bias, &a, NULL, "bwd_bias, db NULL");

  /* and the valid call still works after all that */
  for (int o = 0; o < 4; o++)
    ck_assert_int_eq(ops[o](ctx, &ok), TC_OK);
  bufs_free(&b);
}
END_TEST

/* The Winograd path (3x3, stride 1, pad 1; channels multiples of 8),
 * forced on through the backend's test hook: against the reference on
 * edge tiles (odd sizes, 1x1 and 2x2 maps, one image, more tiles than a
 * block), accumulate and bias on and off, forward, backward data and
 * weight gradient; the same bits for 1, 2 and 3 threads and with a workspace
 * sized for fewer threads; and (when it runs: AVX2 or better) bits unlike the
 * direct path's, so the test cannot pass on the direct path alone. */
static void wino_mode(int mode) {
  void (*set)(int) = (void (*)(int))it->get_proc(ctx, "tc_cpu_set_winograd");
  ck_assert_ptr_nonnull(set);
  set(mode);
}

static const ccase wino_cases[] = {
    {2, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1}, /* ResNet 32x32 */
    {2, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1}, /* ResNet 16x16 */
    {3, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1},   /* ResNet 8x8, odd n */
    {1, 16, 7, 9, 24, 3, 3, 1, 1, 1, 1, 1, 1},   /* odd h, w: edge tiles */
    {2, 8, 1, 1, 8, 3, 3, 1, 1, 1, 1, 1, 1},     /* 1x1 map */
    {1, 64, 2, 2, 16, 3, 3, 1, 1, 1, 1, 1, 1},   /* 2x2, c != k */
    {2, 16, 17, 35, 32, 3, 3, 1, 1, 1, 1, 1, 1}, /* rows past 2 vectors */
    {5, 24, 5, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1},    /* images per task */
    {1, 8, 66, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1},  /* several blocks */
};

START_TEST(test_conv_winograd) {
  const ccase *g = &wino_cases[_i];
  const char *(*isa)(void) =
      (const char *(*)(void))it->get_proc(ctx, "tc_cpu_isa_name");
  ck_assert_ptr_nonnull(isa);
  wino_mode(2);
  for (int acc = 0; acc < 2; acc++)
    for (int bias = 0; bias < 2; bias++)
      run_case(
          g, 7000 + 16 * (uint64_t)_i + 4 * (uint64_t)acc + 2 * (uint64_t)bias,
          acc, bias);
  tc_conv2d_args a = make_args(g);
  size_t ny = (size_t)(a.n * a.k * a.out_h * a.out_w);
  size_t nx = (size_t)(a.n * a.c * a.h * a.w);
  tc_backend_destroy(be); /* the fixture's; reopened below */
  be = NULL;
  for (int acc = 0; acc < 2; acc++) {
    outs one, two, three, direct;
    size_t nw = (size_t)(a.k * a.c * 9);
    run_threads(g, 1, acc, &one);
    run_threads(g, 2, acc, &two);
    run_threads(g, 3, acc, &three);
    ck_assert_msg(!memcmp(one.dw, two.dw, nw * sizeof(float)),
                  "case %d acc %d: dw differs, 1 vs 2 threads", _i, acc);
    ck_assert_msg(!memcmp(one.dw, three.dw, nw * sizeof(float)),
                  "case %d acc %d: dw differs, 1 vs 3 threads", _i, acc);
    ck_assert_msg(!memcmp(one.y, two.y, ny * sizeof(float)),
                  "case %d: y differs, 1 vs 2 threads", _i);
    ck_assert_msg(!memcmp(one.dx, two.dx, nx * sizeof(float)),
                  "case %d acc %d: dx differs, 1 vs 2 threads", _i, acc);
    use(open_cpu(1));
    int fast = strcmp(isa(), "generic") != 0;
    tc_backend_destroy(be);
    be = NULL;
    wino_mode(0);
    run_threads(g, 1, acc, &direct);
    wino_mode(2);
    if (fast && a.n * a.h * a.w >= 4) {
      ck_assert_msg(memcmp(one.y, direct.y, ny * sizeof(float)),
                    "case %d: y has the direct path's bits", _i);
      ck_assert_msg(memcmp(one.dx, direct.dx, nx * sizeof(float)),
                    "case %d: dx has the direct path's bits", _i);
      ck_assert_msg(memcmp(one.dw, direct.dw, nw * sizeof(float)),
                    "case %d: dw has the direct path's bits", _i);
    }
    outs_free(&one), outs_free(&two), outs_free(&three), outs_free(&direct);
  }
  /* a workspace from a 1-thread query on 3 threads (fewer buffers than
   * threads): the same bits */
  size_t ws1 = 0;
  use(open_cpu(1));
  ck_assert_int_eq(it->conv2d_workspace_size(ctx, &a, &ws1), TC_OK);
  tc_backend_destroy(be);
  use(open_cpu(3));
  cbufs b;
  bufs_init(&b, &a, 77);
  bind(&a, &b);
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  size_t nwt = (size_t)(a.k * a.c * 9);
  float *y = host_copy(b.y, ny), *dx = host_copy(b.dx, nx);
  float *dw = host_copy(b.dw, nwt);
  ck_assert_uint_le(ws1, b.ws_bytes);
  a.workspace_size = ws1;
  fill_nan(b.y, ny), fill_nan(b.dx, nx), fill_nan(b.dw, nwt);
  ck_assert_int_eq(it->conv2d_fwd(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_data(ctx, &a), TC_OK);
  ck_assert_int_eq(it->conv2d_bwd_filter(ctx, &a), TC_OK);
  ck_assert_msg(!memcmp(dw, b.dw, nwt * sizeof(float)),
                "case %d: dw differs with a 1-thread workspace", _i);
  ck_assert_msg(!memcmp(y, b.y, ny * sizeof(float)),
                "case %d: y differs with a 1-thread workspace", _i);
  ck_assert_msg(!memcmp(dx, b.dx, nx * sizeof(float)),
                "case %d: dx differs with a 1-thread workspace", _i);
  free(y), free(dx), free(dw);
  bufs_free(&b);
  wino_mode(-1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cpu_conv2d");
  TCase *tc = tcase_create("conv2d");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_conv_fixed, 0,
                      (int)(sizeof fixed_cases / sizeof fixed_cases[0]));
  tcase_add_loop_test(tc, test_conv_random, 0, 8);
  tcase_add_loop_test(tc, test_conv_random_s2, 0, 6);
  tcase_add_test(tc, test_conv_empty_batch);
  tcase_add_test(tc, test_conv_thread_independent);
  tcase_add_test(tc, test_conv_workspace_sizes);
  tcase_add_test(tc, test_conv_workspace_too_small);
  tcase_add_test(tc, test_conv_invalid_args);
  tcase_add_loop_test(tc, test_conv_winograd, 0,
                      (int)(sizeof wino_cases / sizeof wino_cases[0]));
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
