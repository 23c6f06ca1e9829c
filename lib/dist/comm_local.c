/*
 * comm_local.c - the built-in communicators: "local" (one rank) and
 * "group" (n ranks in one process, one thread each, over shared memory).
 *
 * A group collective is: every member posts its pointers and sizes, a
 * barrier, every member reads what it needs from the others, a barrier
 * (so no buffer is reused while a peer still reads it). Sums are taken in
 * rank order by every member into its own scratch, so every rank gets the
 * same bits, run after run. Asynchronous all-reduces run at once (the
 * peers are threads running the same code, so they arrive).
 */
#include <pthread.h>
#include <string.h>

#include "dist_internal.h"

/* ---- local: one rank ---- */

static int local_rank(void *ctx) {
  return (void)ctx, 0;
}
static int local_size(void *ctx) {
  return (void)ctx, 1;
}
static tc_status local_nop(void *ctx, const tc_comm_args *a) {
  (void)ctx, (void)a;
  return TC_OK;
}
static tc_status local_allgather(void *ctx, const tc_comm_args *a) {
  (void)ctx;
  if (a->bytes && a->recv != a->buf)
    memmove(a->recv, a->buf, a->bytes);
  return TC_OK;
}
static tc_status local_barrier(void *ctx) {
  return (void)ctx, TC_OK;
}
static void local_destroy(void *ctx) {
  (void)ctx;
}

static const tc_comm_iface local_iface = {
    .api_version = TC_COMM_API_VERSION,
    .struct_size = sizeof(tc_comm_iface),
    .name = "local",
    .rank = local_rank,
    .size = local_size,
    .allreduce_sum = local_nop,
    .broadcast = local_nop,
    .allgather = local_allgather,
    .barrier = local_barrier,
    .destroy = local_destroy,
};

TC_API tc_status tc_comm_create_local(tc_comm **out) {
  TC__CHECK_NULL(out, "tc_comm_create_local");
  return tc_comm_create(out, &local_iface, NULL);
}

/* ---- group: n ranks, one thread each ---- */

#define GROUP_MAX 1024

typedef struct group {
  int n;
  int members; /* handles alive */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int arrived;
  uint64_t generation;
  /* posted by each member for the running collective */
  void **buf;
  size_t *count;
} group;

typedef struct member {
  group *g;
  int rank;
  float *scratch; /* the sum, before it replaces buf */
  size_t scratch_count;
} member;

static void group_wait_all(group *g) {
  pthread_mutex_lock(&g->mu);
  uint64_t gen = g->generation;
  if (++g->arrived == g->n) {
    g->arrived = 0;
    g->generation++;
    pthread_cond_broadcast(&g->cv);
  } else {
    while (gen == g->generation)
      pthread_cond_wait(&g->cv, &g->mu);
  }
  pthread_mutex_unlock(&g->mu);
}

/* Posts (buf, count), waits for every member; then checks that every
 * member posted the same count (all of them see the same answer). */
static tc_status group_post(member *m, void *buf, size_t count,
                            const char *op) {
  group *g = m->g;
  g->buf[m->rank] = buf;
  g->count[m->rank] = count;
  group_wait_all(g);
  for (int r = 0; r < g->n; r++)
    if (g->count[r] != count) {
      group_wait_all(g);
      return tc__error(TC_EINVAL,
                       "%s: rank %d passed %zu, rank %d passed "
                       "%zu (every rank must pass the same size)",
                       op, m->rank, count, r, g->count[r]);
    }
  return TC_OK;
}

static int group_rank(void *ctx) {
  return ((member *)ctx)->rank;
}
static int group_size(void *ctx) {
  return ((member *)ctx)->g->n;
}

static tc_status group_allreduce(void *ctx, const tc_comm_args *a) {
  member *m = ctx;
  group *g = m->g;
  float *buf = a->buf;
  size_t n = a->count;
  /* grown before posting: a failure here is this rank's alone, so it
   * still takes part (with its old scratch unused) to keep peers going */
  tc_status grow = TC_OK;
  if (n > m->scratch_count) {
    float *s = tc__calloc(n, sizeof(float));
    if (s) {
      tc__free(m->scratch);
      m->scratch = s;
      m->scratch_count = n;
    } else {
      grow = tc__oom("group allreduce");
    }
  }
  tc_status st = group_post(m, buf, n, "allreduce");
  if (st != TC_OK)
    return st;
  if (grow == TC_OK)
    for (size_t i = 0; i < n; i++) {
      float s = ((const float *)g->buf[0])[i];
      for (int r = 1; r < g->n; r++)
        s += ((const float *)g->buf[r])[i];
      m->scratch[i] = s;
    }
  group_wait_all(g); /* every sum taken before any buf changes */
  if (grow != TC_OK)
    return grow;
  if (n)
    memcpy(buf, m->scratch, n * sizeof(float));
  return TC_OK;
}

static tc_status group_broadcast(void *ctx, const tc_comm_args *a) {
  member *m = ctx;
  group *g = m->g;
  tc_status st = group_post(m, a->buf, a->bytes, "broadcast");
  if (st != TC_OK)
    return st;
  if (m->rank != a->root && a->bytes)
    memcpy(a->buf, g->buf[a->root], a->bytes);
  group_wait_all(g);
  return TC_OK;
}

static tc_status group_allgather(void *ctx, const tc_comm_args *a) {
  member *m = ctx;
  group *g = m->g;
  tc_status st = group_post(m, a->buf, a->bytes, "allgather");
  if (st != TC_OK)
    return st;
  for (int r = 0; r < g->n && a->bytes; r++)
    memmove((char *)a->recv + (size_t)r * a->bytes, g->buf[r], a->bytes);
  group_wait_all(g);
  return TC_OK;
}

static tc_status group_barrier(void *ctx) {
  group_wait_all(((member *)ctx)->g);
  return TC_OK;
}

static void group_release(group *g) {
  pthread_mutex_lock(&g->mu);
  int left = --g->members;
  pthread_mutex_unlock(&g->mu);
  if (left > 0)
    return;
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  tc__free(g->buf);
  tc__free(g->count);
  tc__free(g);
}

static void group_destroy(void *ctx) {
  member *m = ctx;
  group_release(m->g);
  tc__free(m->scratch);
  tc__free(m);
}

static const tc_comm_iface group_iface = {
    .api_version = TC_COMM_API_VERSION,
    .struct_size = sizeof(tc_comm_iface),
    .name = "group",
    .rank = group_rank,
    .size = group_size,
    .allreduce_sum = group_allreduce,
    .broadcast = group_broadcast,
    .allgather = group_allgather,
    .barrier = group_barrier,
    .destroy = group_destroy,
};

TC_API tc_status tc_comm_create_group(tc_comm **out, int n) {
  static const char fn[] = "tc_comm_create_group";
  TC__CHECK_NULL(out, fn);
  if (n < 1 || n > GROUP_MAX)
    return tc__error(TC_EINVAL, "%s: n = %d is outside [1, %d]", fn, n,
                     GROUP_MAX);
  group *g = tc__calloc(1, sizeof *g);
  if (!g)
    return tc__oom(fn);
  g->n = n;
  g->buf = tc__calloc((size_t)n, sizeof *g->buf);
  g->count = tc__calloc((size_t)n, sizeof *g->count);
  if (!g->buf || !g->count) {
    tc__free(g->buf);
    tc__free(g->count);
    tc__free(g);
    return tc__oom(fn);
  }
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->members = n; /* one per rank, released by its member's destroy */
  tc_status st = TC_OK;
  int made = 0, consumed = 0; /* handles made; memberships released */
  for (; made < n; made++) {
    member *m = tc__calloc(1, sizeof *m);
    if (!m) {
      st = tc__oom(fn);
      break;
    }
    m->g = g;
    m->rank = made;
    if ((st = tc_comm_create(&out[made], &group_iface, m)) != TC_OK) {
      consumed = 1; /* tc_comm_create destroyed m, releasing its share */
      break;
    }
  }
  if (st == TC_OK)
    return TC_OK;
  /* the shares of ranks never made, then the handles (the last frees g) */
  for (int k = made + consumed; k < n; k++)
    group_release(g);
  for (int k = 0; k < made; k++) {
    tc_comm_destroy(out[k]);
    out[k] = NULL;
  }
  return st;
}
