/*
 * conv2d.c - the CPU backend's 2-D convolution (groups = 1): forward,
 * backward-data, backward-filter, bias-grad and the workspace query: the
 * op entry points, their argument checks, the geometry and workspace plan
 * of either method, and the weight-gradient partials' combine. The
 * methods' work is in conv2d_driver.c (direct path) and conv2d_gemm.c
 * (im2col + GEMM); conv2d_geom.h is what they share.
 *
 * Method, stride <= CONVD_MAX_STRIDE / dilation 1 / padding <= kernel-1 on
 * a CPU with AVX2+FMA (or AVX-512F; TINYCNN_CPU_ISA can lower the choice):
 * direct SIMD kernels (conv2d_direct.c; the layout and the stride phases
 * are explained at "direct path" in conv2d_driver.c; the register tile of each
 * op is picked by channel and tap count, tc__convd_pick_fwd /
 * tc__convd_pick_wgrad). Per image, x (or dy for backward data) is copied into
 * zero-padded planes (one per stride phase) in the slot, the kernel writes the
 * outputs on the padded grid, and the valid ones are copied out. A slot's zeros
 * stay in place for its next image, so only the data is copied again. Stride 1
 * with ow == w (2*pw == s-1, e.g. 3x3 pad 1) is "dense" instead (AVX2: when the
 * positions fill 4+ register tiles, dense_fits): the planes are whole rows
 * (zero rows above and below only, one contiguous copy per channel), the kernel
 * masks each tap's loads at the row edges and writes y (or adds into dx)
 * itself: no junk columns, no copy-out (conv_direct_geometry). Stride 2x2 with
 * out = in/2 (3x3 pad 1, even sizes) is dense too for fwd and (AVX-512) bwd
 * filter: x's 4 phases are planes of whole out-wide rows, so the same kernels
 * run on the output's own positions (bwd data keeps phases). Backward filter
 * sums CONVD_CHUNKS fixed chunks of images into partials (combined in order as
 * below); a 1x1 kernel runs its channels as the kernel's taps; a dense 3x3
 * stride-1 one with 32+ output channels (a multiple of 16) puts the channels in
 * the lanes instead of positions (conv2d_wgradt.c; on AVX2 a stride-1 one with
 * k a multiple of 16 and rows of 4+ taps). Direct workspace: max over the three
 * ops of (shared + slots * slot), where shared is the packed weights (fwd, bwd
 * data) or the partials (bwd filter) and slot one image's padded input and
 * outputs (bwd filter: G images); every op needs the one-slot query.
 *
 * 3x3, stride 1, pad 1, dilation 1 with channel counts multiples of 8 (AVX2:
 * 16+ each) run forward, backward data and the weight gradient (in the same
 * fixed chunks as below) as Winograd F(2x2, 3x3) instead
 * (conv2d_winograd.c, when the workspace holds its buffers; the query asks
 * for them): other bits than the direct kernels', the same for any thread
 * count; TINYCNN_CPU_WINOGRAD=0 turns it off.
 *
 * Otherwise: per image, im2col + one OpenBLAS sgemm on the whole panel
 *   forward:   y_i (k,P)     = W (k,CRS) * col_i (CRS,P)   [+ bias]
 *   bwd data:  dcol_i (CRS,P) = W^T * dy_i (k,P); dx_i += col2im(dcol_i)
 *   bwd filt:  dW (k,CRS)   += dy_i (k,P) * col_i^T
 * with P = out_h*out_w and CRS = c*r*s, all NCHW and contiguous. A 1x1
 * kernel with stride 1 and no padding needs no im2col: the image is its own
 * column matrix. Images are split into contiguous blocks, one per pool
 * thread; each block owns one im2col slot of the caller's workspace. Nothing
 * here allocates.
 *
 * Determinism: bwd_filter sums over the batch in `chunks` fixed ranges of
 * images (the count depends on the shapes only, never on the thread count);
 * each chunk's partial dW is built in its own workspace slice, in image
 * order, and the partials are then added in chunk order. bwd_bias reduces
 * each channel in one task, in image order. So results are the same bits
 * with 1 or 64 threads.
 *
 * Workspace (bytes; every slice rounded up to 64 bytes):
 *   col   = 1x1/stride 1/pad 0 ? 0 : 4*CRS*P
 *   chunks = n == 0 ? 0 : min(n, CPU_REDUCE_CHUNKS,
 *                             max(1, CONV_PARTIAL_BUDGET / (k*CRS)))
 *   part  = chunks > 1 ? 4*chunks*k*CRS : 0
 *   size  = min(n, pool threads) * col + part
 * forward and bwd_data need at least one col slice, bwd_filter part plus one
 * col slice; a larger workspace lets more threads work at once. A workspace
 * that is too small, NULL or not float-aligned is TC_EINVAL.
 */
#include <string.h>

#include "../op_check.h"
#include "conv2d_geom.h"
#include "conv2d_winograd.h"

/* Whether the dense kernel of tile v suits n positions: AVX2 runs the
 * last n/VL % nv vectors one at a time (load-bound), so it wants at least
 * 4 whole tiles (ResNet's 8x8 layers, 8 vectors: 6.4 -> 6.8 ms dense,
 * the 16x16 and 32x32 ones 2-4 % faster). */
static int dense_fits(const convd_kernels *kn, const convd_fwd_var *v,
                      int64_t n) {
  if (!v->fm)
    return 0;
  return kn->vl == 16 || (n + kn->vl - 1) / kn->vl >= 4 * v->nv;
}

/* Sizes for the direct path, or g->kern = NULL when it does not apply
 * (stride > CONVD_MAX_STRIDE, dilation != 1, padding > kernel-1, 1x1 with
 * stride 1 and no padding, large kernels, below AVX2, or buffers too large
 * to be worth it). */
static void conv_direct_geometry(conv_geom *g) {
  g->kern = NULL;
  const convd_kernels *kn = tc__cpu_convd_kernels();
  if (!kn || g->direct || g->sh > CONVD_MAX_STRIDE ||
      g->sw > CONVD_MAX_STRIDE || g->dh != 1 || g->dw != 1 ||
      g->ph > g->r - 1 || g->pw > g->s - 1 || g->r * g->s > CONVD_MAX_RS ||
      g->c > CONVD_MAX_CH || g->k > CONVD_MAX_CH || g->h > CONVD_MAX_HW ||
      g->w > CONVD_MAX_HW)
    return;
  int64_t rs = g->r * g->s;
  g->nph = g->sh * g->sw;
  g->Rm = (g->r + g->sh - 1) / g->sh, g->Sm = (g->s + g->sw - 1) / g->sw;
  /* fwd and wgrad: each phase of padded x is an Hs x Ws plane; output
   * q = oh*Ws + ow */
  int64_t Hp = g->h + 2 * g->ph, Wp = g->w + 2 * g->pw;
  g->Hs = (Hp + g->sh - 1) / g->sh, g->Ws = (Wp + g->sw - 1) / g->sw;
  /* sw == 1: one run of pw zeros between rows pads both the row's right
   * and the next row's left (reads past a row's end land in the next
   * row's left zeros), so fewer wasted positions: 9 for 8 instead of 10 */
  if (g->sw == 1)
    g->Ws = g->w + g->pw;
  int64_t L = (g->oh - 1) * g->Ws + g->ow;
  int64_t offmax = (g->Rm - 1) * g->Ws + g->Sm - 1;
  g->fv = tc__convd_pick_fwd(kn, g->k, rs);
  g->bv = tc__convd_pick_fwd(kn, g->c, g->Rm * g->Sm);
  g->wv = tc__convd_pick_wgrad(kn, g->k,
                               rs == 1 && g->c <= CONVD_MAX_RS ? g->c : rs);
  g->nqf = roundup64(L, kn->vl);
  g->psf = roundup64(max64(g->Hs * g->Ws, g->nqf + offmax), 16);
  g->kpf = roundup64(g->k, g->fv->kt);
  g->fwd_shared = round64((size_t)(g->kpf * g->c * rs) * 4);
  g->fwd_slot = round64((size_t)(g->nph * g->c * g->psf + g->kpf * g->nqf) * 4);
  /* bwd_data: each phase of dx (shifted by U0, V0 phase rows/columns) is
   * a stride-1 correlation of dy padded to Hq x Wq with the phase's taps */
  g->U0 = g->ph / g->sh, g->V0 = g->pw / g->sw;
  g->Uh = (g->h - 1 + g->ph) / g->sh + 1 - g->U0;
  g->Uw = (g->w - 1 + g->pw) / g->sw + 1 - g->V0;
  g->Hq = g->Uh + g->Rm - 1, g->Wq = g->Uw + g->Sm - 1;
  /* the same shared zeros: dy rows (ow) padded by Sm-1-V0 on each side */
  if (g->sw == 1)
    g->Wq = g->ow + g->Sm - 1 - g->V0;
  int64_t Lb = (g->Uh - 1) * g->Wq + g->Uw;
  g->nqb = roundup64(Lb, kn->vl);
  g->psb = roundup64(
      max64(g->Hq * g->Wq, g->nqb + (g->Rm - 1) * g->Wq + g->Sm - 1), 16);
  g->cpf = roundup64(g->c, g->bv->kt);
  g->bwd_shared = round64((size_t)(g->cpf * g->k * rs) * 4);
  g->bwd_slot = round64((size_t)(g->k * g->psb + g->nph * g->cpf * g->nqb) * 4);
  /* wgrad: G images of x phases and of dy on the Ws grid per call */
  g->nqw = roundup64(L, kn->vl);
  g->psw = roundup64(max64(g->Hs * g->Ws, g->nqw + offmax), 16);
  g->kpw = roundup64(g->k, g->wv->kt);
  g->G =
      min64(CONVD_MAX_G, max64(1, (CONVD_WG_POSITIONS + g->nqw - 1) / g->nqw));
  g->wg_slot =
      round64((size_t)(g->G * (g->nph * g->c * g->psw + g->kpw * g->nqw)) * 4);
  g->kern = kn;
  if (g->nph == 1 && 2 * g->pw == g->s - 1) {
    /* dense: output column = input column, so the side padding can be
     * masked in the kernel instead of stored; planes keep zero rows */
    int64_t reach = (g->r - 1) * g->w + g->s - 1;
    int64_t d = g->ph * g->w + g->pw;
    g->densef = dense_fits(kn, g->fv, g->P);
    g->dfrf = roundup64(d, 16), g->dinf = g->dfrf - d;
    g->dpsf = roundup64(g->dinf + roundup64(g->P, kn->vl) + reach, 16);
    if (g->densef)
      g->fwd_slot = round64((size_t)(g->c * g->dpsf) * 4);
    d = (g->r - 1 - g->ph) * g->w + g->s - 1 - g->pw;
    g->denseb = dense_fits(kn, g->bv, g->hw);
    g->dfrb = roundup64(d, 16), g->dinb = g->dfrb - d;
    g->dpsb = roundup64(g->dinb + roundup64(g->hw, kn->vl) + reach, 16);
    if (g->denseb)
      g->bwd_slot = round64((size_t)(g->k * g->dpsb) * 4);
    g->densew = 1;
    g->dnph = 1, g->dcs0 = -g->pw, g->dncs = g->s;
  } else if (g->sh == 2 && g->sw == 2 && 2 * g->oh == g->h &&
             2 * g->ow == g->w && g->r >= 2 && g->s >= 2) {
    /* dense2: out = in/2 means r = 2*ph + 1 or 2*ph + 2 (3x3 pad 1), so
     * at output (u, v) tap (di, dj) reads x phase ((di-ph) mod 2,
     * (dj-pw) mod 2) at phase row u + floor((di-ph)/2), column
     * v + floor((dj-pw)/2): phase planes of exactly oh x ow, zero rows
     * above (top) and below (bot), the columns masked in the kernels */
    int64_t top = (g->ph + 1) / 2, bot = (g->r - 1 - g->ph) / 2;
    int64_t csmax = (g->s - 1 - g->pw) / 2;
    g->dense2 = 1, g->dnph = 4;
    g->dcs0 = -((g->pw + 1) / 2), g->dncs = csmax - g->dcs0 + 1;
    g->dfrf = roundup64(top * g->ow - g->dcs0, 16), g->dinf = g->dfrf;
    g->dpsf =
        roundup64(g->dfrf + roundup64(g->P, kn->vl) + bot * g->ow + csmax, 16);
    g->densef = dense_fits(kn, g->fv, g->P);
    if (g->densef)
      g->fwd_slot = round64((size_t)(4 * g->c * g->dpsf) * 4);
    g->densew = 1;
  }
  /* fwt only with rows of 4+ taps: ResNet-20's 3x3 layers ran 2-20 %
   * slower in the lanes (3 taps of 2 weight loads each per position
   * tile); not where the dense kernel runs */
  g->fwt = kn->fwdt && g->nph == 1 && g->k % 16 == 0 && g->s >= 4 &&
           g->c * rs <= CONVD_CHAIN && !g->densef;
  /* dense wgrad (either layout): the kernel reads the last kt rows of dy
   * for a partial channel block, so it needs k >= kt; G images of x's
   * dense planes per call, then the row-edge mask table */
  g->densew = g->densew && g->wv->fm != NULL && g->k >= g->wv->kt;
  /* k = 16 stays on the position kernels: one channel vector per tap
   * leaves the lanes kernel load-bound (ResNet 32x32: 1.44 -> 1.73 ms) */
  if (kn->vl == 16)
    g->wgt = g->densew && !g->dense2 && kn->wgradt && g->r == 3 && g->s == 3 &&
             g->k % 16 == 0 && g->k >= 32 && g->P % 16 == 0;
  else /* AVX2: two vectors of channels x one row of s >= 4 taps; 3x3
        * stays on the position kernels (ResNet-20's layers: 3-11 %
        * slower in the lanes, whose 3-tap tiles wait on FMA latency) */
    g->wgt = kn->wgradt && g->nph == 1 && g->k % 16 == 0 && g->s >= 4;
  if (g->wgt) {
    g->G = min64(CONVD_MAX_G, max64(1, (CONVD_WG_POSITIONS + g->P - 1) / g->P));
    g->wg_slot = round64((size_t)(g->G * (g->c * g->psw + g->k * g->P)) * 4);
  } else if (g->densew) {
    int64_t nqd = roundup64(g->P, kn->vl);
    g->dnqv = nqd / kn->vl;
    g->G = min64(CONVD_MAX_G, max64(1, (CONVD_WG_POSITIONS + nqd - 1) / nqd));
    g->wg_slot = round64((size_t)(g->G * g->dnph * g->c * g->dpsf) * 4) +
                 round64((size_t)(g->dncs * g->dnqv) * 2);
  }
}

/* Checks the args for slot `op` (backends/op_check.c); fills g. */
static tc_status conv_geometry(void *ctx, const tc_conv2d_args *a,
                               const char *fn, tc__op op, conv_geom *g) {
  tc_status st = tc__check_conv2d_args(ctx, a, fn, op);
  if (st != TC_OK)
    return st;
  memset(g, 0, sizeof *g);
  g->a = a;
  g->n = a->n, g->c = a->c, g->h = a->h, g->w = a->w;
  g->k = a->k, g->r = a->r, g->s = a->s;
  g->sh = a->stride_h, g->sw = a->stride_w, g->ph = a->pad_h;
  g->pw = a->pad_w, g->dh = a->dil_h, g->dw = a->dil_w;
  g->oh = a->out_h, g->ow = a->out_w;
  /* the checks bound every product below */
  g->hw = g->h * g->w;
  g->P = g->oh * g->ow;
  g->crs = g->c * g->r * g->s;
  int64_t kcrs = g->k * g->crs;
  g->direct = g->r == 1 && g->s == 1 && g->sh == 1 && g->sw == 1 &&
              g->ph == 0 && g->pw == 0;
  g->col_bytes = g->direct ? 0 : round64((size_t)g->crs * (size_t)g->P * 4);
  conv_direct_geometry(g);
  if (g->kern) {
    g->chunks = min64(g->n, CONVD_CHUNKS);
    g->wg_part =
        g->chunks > 1 ? round64((size_t)g->chunks * (size_t)kcrs * 4) : 0;
    g->min_ws = g->fwd_shared + g->fwd_slot;
    if (g->bwd_shared + g->bwd_slot > g->min_ws)
      g->min_ws = g->bwd_shared + g->bwd_slot;
    if (g->wg_part + g->wg_slot > g->min_ws)
      g->min_ws = g->wg_part + g->wg_slot;
    return TC_OK;
  }
  int64_t by_mem = CONV_PARTIAL_BUDGET / kcrs;
  g->chunks = min64(min64(g->n, CPU_REDUCE_CHUNKS), by_mem > 1 ? by_mem : 1);
  g->part_bytes =
      g->chunks > 1 ? round64((size_t)g->chunks * (size_t)kcrs * 4) : 0;
  return TC_OK;
}

/* Places the im2col slices (after `reserve` bytes) and counts how many fit;
 * `tasks` bounds the useful concurrency. */
static tc_status conv_workspace(void *ctx, conv_geom *g, size_t reserve,
                                int64_t tasks, const char *fn) {
  const tc_conv2d_args *a = g->a;
  int64_t pool = tc__cpu_pool_size(((cpu_ctx *)ctx)->pool);
  size_t need = reserve + g->col_bytes;
  if (need < g->min_ws)
    need = g->min_ws;
  if (need > 0 && (!a->workspace || a->workspace_size < need))
    return tc__error(TC_EINVAL,
                     "%s: workspace %zu bytes at %p, need at least %zu "
                     "(see conv2d_workspace_size)",
                     fn, a->workspace_size, a->workspace, need);
  /* the slices hold floats (backend alloc gives 64-byte alignment) */
  if (need > 0 && (uintptr_t)a->workspace % sizeof(float) != 0)
    return tc__error(TC_EINVAL, "%s: workspace %p is not float-aligned", fn,
                     a->workspace);
  int64_t fit = g->col_bytes
                    ? (int64_t)((a->workspace_size - reserve) / g->col_bytes)
                    : INT64_MAX;
  g->slots = min64(min64(tasks, pool), fit);
  if (g->slots < 1)
    g->slots = 1;
  g->per_thread = g->slots == pool;
  g->part = reserve ? (float *)a->workspace : NULL;
  g->cols = a->workspace ? (char *)a->workspace + reserve : NULL;
  return TC_OK;
}

static tc_status conv_workspace_query(void *ctx, const tc_conv2d_args *a,
                                      size_t *out_bytes) {
  static const char fn[] = "cpu_conv2d_workspace_size";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_WORKSPACE_SIZE, &g);
  if (st != TC_OK)
    return st;
  if (!out_bytes)
    return tc__error(TC_EINVAL, "%s: argument 'out_bytes' is NULL", fn);
  int64_t slots = min64(g.n, tc__cpu_pool_size(((cpu_ctx *)ctx)->pool));
  if (g.kern && g.n == 0) {
    *out_bytes = 0;
    return TC_OK;
  }
  if (g.kern) {
    size_t sh[3] = {g.fwd_shared, g.bwd_shared, g.wg_part};
    size_t sl[3] = {g.fwd_slot, g.bwd_slot, g.wg_slot};
    size_t best = 0;
    for (int i = 0; i < 3; i++) {
      size_t b, t;
      if (!tc__mul_size((size_t)slots, sl[i], &b) ||
          !tc__add_size(b, sh[i], &t))
        return tc__error(TC_EINVAL, "%s: workspace size overflows", fn);
      best = t > best ? t : best;
    }
    *out_bytes = best;
    return TC_OK;
  }
  size_t cols, total;
  if (!tc__mul_size((size_t)slots, g.col_bytes, &cols) ||
      !tc__add_size(cols, g.part_bytes, &total))
    return tc__error(TC_EINVAL, "%s: workspace size overflows", fn);
  *out_bytes = total;
  return TC_OK;
}

/* The direct or im2col query, raised to what Winograd wants (it runs
 * only when the workspace holds that). */
tc_status tc__cpu_conv2d_workspace_size(void *ctx, const tc_conv2d_args *a,
                                        size_t *out_bytes) {
  tc_status st = conv_workspace_query(ctx, a, out_bytes);
  if (st != TC_OK)
    return st; /* out_bytes may be NULL: that is the error */
  size_t wb = tc__cpu_wino_workspace(ctx, a);
  if (wb > *out_bytes)
    *out_bytes = wb;
  return TC_OK;
}

/* Task t's units [*u0, *u1) and its col slice (NULL when there are none).
 * With a slice per pool thread a task is one unit and takes the running
 * thread's slice, so a thread that is ahead takes over the units a slower
 * one has not reached (on a shared VM one core often runs 10-30 % slower
 * than the other for a while; one block per thread waited for it). *fresh
 * says whether the slice is new to this op (the thread's first task of
 * it: zeros a previous unit left are not in place). Otherwise one block
 * of units per slot, always fresh. */
float *tc__cpu_conv_task_units(const conv_geom *g, int64_t units, int64_t t,
                               int64_t *u0, int64_t *u1, int *fresh) {
  int64_t slot = t;
  if (g->per_thread) {
    *u0 = t, *u1 = t + 1;
    *fresh = tc__cpu_task_first();
    slot = tc__cpu_task_thread();
  } else {
    block_range(units, g->slots, t, u0, u1);
    *fresh = 1;
  }
  return g->col_bytes ? slot_col(g, slot) : NULL;
}

/* ---- forward ----------------------------------------------------------- */

tc_status tc__cpu_conv2d_fwd(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_fwd";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_FWD, &g);
  if (st != TC_OK)
    return st;
  if (g.n == 0)
    return TC_OK;
  if (tc__cpu_wino_fwd(ctx, a))
    return TC_OK;
  if (g.kern) {
    g.col_bytes = g.fwd_slot;
    if ((st = conv_workspace(ctx, &g, g.fwd_shared, g.n, fn)) != TC_OK)
      return st;
    tc__cpu_conv_pack_fwd_weights(&g, (float *)a->workspace);
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), tc__cpu_conv_dfwd_task, &g);
    return TC_OK;
  }
  if ((st = conv_workspace(ctx, &g, 0, g.n, fn)) != TC_OK)
    return st;
  tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), tc__cpu_conv_fwd_task, &g);
  return TC_OK;
}

/* ---- backward data ----------------------------------------------------- */

tc_status tc__cpu_conv2d_bwd_data(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_data";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_BWD_DATA, &g);
  if (st != TC_OK)
    return st;
  if (g.n == 0)
    return TC_OK;
  if (tc__cpu_wino_bwd_data(ctx, a))
    return TC_OK;
  if (g.kern) {
    g.col_bytes = g.bwd_slot;
    if ((st = conv_workspace(ctx, &g, g.bwd_shared, g.n, fn)) != TC_OK)
      return st;
    tc__cpu_conv_pack_bwd_weights(&g, (float *)a->workspace);
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), tc__cpu_conv_dbwd_task, &g);
    return TC_OK;
  }
  if ((st = conv_workspace(ctx, &g, 0, g.n, fn)) != TC_OK)
    return st;
  tc__cpu_parallel_for(ctx, op_tasks(&g, g.n), tc__cpu_conv_bwd_data_task, &g);
  return TC_OK;
}

/* ---- backward filter --------------------------------------------------- */

/* dw[e] = (accumulate ? dw[e] : 0) + (part_0[e] + part_1[e] + ...), for
 * block t of CONV_COMBINE_BLOCK elements; the order never varies. */
static void combine_task(void *arg, int64_t t) {
  const conv_geom *g = arg;
  int64_t kcrs = g->k * g->crs;
  int64_t e0 = t * CONV_COMBINE_BLOCK;
  int64_t m = min64(CONV_COMBINE_BLOCK, kcrs - e0);
  float sum[CONV_COMBINE_BLOCK];
  memcpy(sum, g->part + e0, (size_t)m * sizeof *sum);
  for (int64_t j = 1; j < g->chunks; j++) {
    const float *p = g->part + j * kcrs + e0;
    for (int64_t e = 0; e < m; e++)
      sum[e] += p[e];
  }
  float *dw = g->a->dw + e0;
  if (g->a->accumulate) {
    for (int64_t e = 0; e < m; e++)
      dw[e] += sum[e];
  } else {
    memcpy(dw, sum, (size_t)m * sizeof *dw);
  }
}

tc_status tc__cpu_conv2d_bwd_filter(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_filter";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_BWD_FILTER, &g);
  if (st != TC_OK)
    return st;
  int64_t kcrs = g.k * g.crs;
  if (g.n == 0) { /* an empty sum */
    if (!a->accumulate)
      memset(a->dw, 0, (size_t)kcrs * sizeof *a->dw);
    return TC_OK;
  }
  if (tc__cpu_wino_bwd_filter(ctx, a))
    return TC_OK;
  if (g.kern) {
    g.col_bytes = g.wg_slot;
    g.part_bytes = g.wg_part;
    if ((st = conv_workspace(ctx, &g, g.part_bytes, g.chunks, fn)) != TC_OK)
      return st;
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.chunks), tc__cpu_conv_dwg_task,
                         &g);
  } else {
    if ((st = conv_workspace(ctx, &g, g.part_bytes, g.chunks, fn)) != TC_OK)
      return st;
    tc__cpu_parallel_for(ctx, op_tasks(&g, g.chunks),
                         tc__cpu_conv_bwd_filter_task, &g);
  }
  if (g.chunks > 1)
    tc__cpu_parallel_for(ctx,
                         (kcrs + CONV_COMBINE_BLOCK - 1) / CONV_COMBINE_BLOCK,
                         combine_task, &g);
  return TC_OK;
}

/* ---- bias grad --------------------------------------------------------- */

/* db[kk] (+)= sum over images (in order) of the image's channel sum; the
 * channel sum uses 8 fixed lanes so it vectorises without -ffast-math. */
static void bwd_bias_task(void *arg, int64_t kk) {
  const conv_geom *g = arg;
  const tc_conv2d_args *a = g->a;
  double total = 0;
  for (int64_t i = 0; i < g->n; i++) {
    const float *v = a->dy + (i * g->k + kk) * g->P; /* (P) */
    float lane[8] = {0};
    int64_t p = 0;
    for (; p + 8 <= g->P; p += 8)
      for (int l = 0; l < 8; l++)
        lane[l] += v[p + l];
    float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) +
              ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; p < g->P; p++)
      s += v[p];
    total += s;
  }
  a->db[kk] = a->accumulate ? a->db[kk] + (float)total : (float)total;
}

tc_status tc__cpu_conv2d_bwd_bias(void *ctx, const tc_conv2d_args *a) {
  static const char fn[] = "cpu_conv2d_bwd_bias";
  conv_geom g;
  tc_status st = conv_geometry(ctx, a, fn, TC__OP_CONV2D_BWD_BIAS, &g);
  if (st != TC_OK)
    return st;
  tc__cpu_parallel_for(ctx, g.k, bwd_bias_task, &g);
  return TC_OK;
}
