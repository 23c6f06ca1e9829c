/*
 * comm_mpi.c - the "mpi" communicator (libtinycnn-mpi): a tc_comm_iface
 * over a duplicate of an MPI communicator. Uses only the public API of
 * libtinycnn (tc_set_error() for messages), so the core never sees mpi.h.
 *
 * The duplicate has MPI_ERRORS_RETURN, so a failed MPI call becomes
 * TC_EBACKEND with MPI_Error_string()'s text. A size beyond what an MPI
 * count (int) holds goes in pieces of at most max_count elements, one MPI
 * call each; the environment variable TINYCNN_MPI_MAX_COUNT lowers that
 * limit so the tests can run the piecewise paths on small buffers.
 * All-gather pieces receive through a resized byte type whose extent is
 * the per-rank size, so rank r's bytes still land at recv + r * bytes.
 *
 * MPI is started here (MPI_Init_thread, MPI_THREAD_FUNNELED) only when
 * nobody has, and then ended with the last communicator made here. No
 * CUDA-aware paths: buffers are host memory.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "tinycnn_mpi.h"

/* elements per MPI call: a power of two below INT_MAX */
#define MAX_COUNT ((size_t)1 << 30)

typedef struct mpi_ctx {
  MPI_Comm comm;
  int rank, size;
  size_t max_count;
} mpi_ctx;

/* one or more MPI_Iallreduce in flight, one per piece */
typedef struct mpi_req {
  int n;
  MPI_Request r[];
} mpi_req;

/* Communicators alive that were made here, and whether MPI was started
 * here (then the last destroy ends it). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_live;
static int g_started_mpi;

static tc_status mpi_error(int err, const char *call) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS || len <= 0)
    snprintf(text, sizeof text, "MPI error code %d", err);
  else
    text[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
  return tc_set_error(TC_EBACKEND, "mpi: %s failed: %s", call, text);
}

static size_t pieces(size_t count, size_t max_count) {
  return count / max_count + (count % max_count != 0);
}

static int mpi_rank(void *ctx) {
  return ((mpi_ctx *)ctx)->rank;
}
static int mpi_size(void *ctx) {
  return ((mpi_ctx *)ctx)->size;
}

static tc_status mpi_allreduce(void *ctx, const tc_comm_args *a) {
  mpi_ctx *m = ctx;
  float *buf = a->buf; /* (count) */
  for (size_t off = 0; off < a->count; off += m->max_count) {
    size_t n = a->count - off < m->max_count ? a->count - off : m->max_count;
    int err = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)n, MPI_FLOAT, MPI_SUM,
                            m->comm);
    if (err != MPI_SUCCESS)
      return mpi_error(err, "MPI_Allreduce");
  }
  return TC_OK;
}

static tc_status mpi_broadcast(void *ctx, const tc_comm_args *a) {
  mpi_ctx *m = ctx;
  char *buf = a->buf; /* (bytes) */
  for (size_t off = 0; off < a->bytes; off += m->max_count) {
    size_t n = a->bytes - off < m->max_count ? a->bytes - off : m->max_count;
    int err = MPI_Bcast(buf + off, (int)n, MPI_BYTE, a->root, m->comm);
    if (err != MPI_SUCCESS)
      return mpi_error(err, "MPI_Bcast");
  }
  return TC_OK;
}

/* One piece [off, off + n) of every rank's bytes; returns an MPI code. */
static int allgather_piece(mpi_ctx *m, const void *send, char *recv,
                           size_t bytes, size_t off, size_t n) {
  if (n == bytes) /* the whole of it: plain byte counts */
    return MPI_Allgather(send, (int)n, MPI_BYTE, recv, (int)n, MPI_BYTE,
                         m->comm);
  MPI_Datatype piece, strided;
  int err = MPI_Type_contiguous((int)n, MPI_BYTE, &piece);
  if (err != MPI_SUCCESS)
    return err;
  err = MPI_Type_create_resized(piece, 0, (MPI_Aint)bytes, &strided);
  MPI_Type_free(&piece);
  if (err != MPI_SUCCESS)
    return err;
  err = MPI_Type_commit(&strided);
  if (err == MPI_SUCCESS)
    err = MPI_Allgather(send == MPI_IN_PLACE ? send : (const char *)send + off,
                        (int)n, MPI_BYTE, recv + off, 1, strided, m->comm);
  MPI_Type_free(&strided);
  return err;
}

static tc_status mpi_allgather(void *ctx, const tc_comm_args *a) {
  mpi_ctx *m = ctx;
  size_t bytes = a->bytes;
  char *recv = a->recv; /* (size, bytes) */
  const char *send = a->buf;
  if (bytes == 0)
    return TC_OK;
  /* MPI forbids aliasing: this rank's own slot is MPI_IN_PLACE, any other
   * overlap goes through a copy */
  const void *src = send;
  void *copy = NULL;
  uintptr_t s = (uintptr_t)send, r = (uintptr_t)recv;
  size_t total = (size_t)m->size * bytes;
  if (send == recv + (size_t)m->rank * bytes) {
    src = MPI_IN_PLACE;
  } else if (s < r + total && r < s + bytes) {
    if (!(copy = malloc(bytes)))
      return tc_set_error(TC_ENOMEM,
                          "mpi: allgather: no memory for a copy of %zu bytes",
                          bytes);
    memcpy(copy, send, bytes);
    src = copy;
  }
  int err = MPI_SUCCESS;
  for (size_t off = 0; off < bytes && err == MPI_SUCCESS; off += m->max_count) {
    size_t n = bytes - off < m->max_count ? bytes - off : m->max_count;
    err = allgather_piece(m, src, recv, bytes, off, n);
  }
  free(copy);
  return err == MPI_SUCCESS ? TC_OK : mpi_error(err, "MPI_Allgather");
}

static tc_status mpi_barrier(void *ctx) {
  int err = MPI_Barrier(((mpi_ctx *)ctx)->comm);
  return err == MPI_SUCCESS ? TC_OK : mpi_error(err, "MPI_Barrier");
}

/* Waits for every piece, even after one failed (buf stays in use until
 * all are done); returns the first error. One MPI_Wait each rather than
 * MPI_Waitall: gcc 12 misreads MPICH's MPI_STATUSES_IGNORE as an empty
 * array (-Wstringop-overflow). */
static int wait_all(mpi_req *q) {
  int first = MPI_SUCCESS;
  for (int i = 0; i < q->n; i++) {
    int err = MPI_Wait(&q->r[i], MPI_STATUS_IGNORE);
    if (first == MPI_SUCCESS)
      first = err;
  }
  return first;
}

static tc_status mpi_allreduce_start(void *ctx, const tc_comm_args *a,
                                     void **out_req) {
  mpi_ctx *m = ctx;
  float *buf = a->buf; /* (count) */
  size_t np = pieces(a->count, m->max_count);
  if (np > INT_MAX)
    return tc_set_error(
        TC_EUNSUPPORTED,
        "mpi: allreduce of %zu floats needs %zu pieces, more than MPI counts",
        a->count, np);
  mpi_req *q = malloc(sizeof *q + np * sizeof(MPI_Request));
  if (!q)
    return tc_set_error(TC_ENOMEM, "mpi: no memory for a request");
  q->n = 0;
  for (size_t off = 0; off < a->count; off += m->max_count) {
    size_t n = a->count - off < m->max_count ? a->count - off : m->max_count;
    int err = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)n, MPI_FLOAT,
                             MPI_SUM, m->comm, &q->r[q->n]);
    if (err != MPI_SUCCESS) {
      /* the pieces already started still use buf: finish them first */
      wait_all(q);
      free(q);
      return mpi_error(err, "MPI_Iallreduce");
    }
    q->n++;
  }
  *out_req = q;
  return TC_OK;
}

static tc_status mpi_test(void *ctx, void *req, int *out_done) {
  (void)ctx;
  mpi_req *q = req;
  int done = 1;
  for (int i = 0; i < q->n; i++) { /* a finished piece tests as done */
    int flag = 0;
    int err = MPI_Test(&q->r[i], &flag, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS)
      return mpi_error(err, "MPI_Test");
    done = done && flag;
  }
  *out_done = done;
  return TC_OK;
}

static tc_status mpi_wait(void *ctx, void *req) {
  (void)ctx;
  mpi_req *q = req;
  int err = wait_all(q);
  free(q);
  return err == MPI_SUCCESS ? TC_OK : mpi_error(err, "MPI_Wait");
}

static void mpi_abort(void *ctx, int code) {
  MPI_Abort(((mpi_ctx *)ctx)->comm, code);
}

/* Drops one communicator made here; the last one ends MPI if we began it.
 * Called with g_mu held. */
static void release_locked(void) {
  if (--g_live > 0 || !g_started_mpi)
    return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized)
    MPI_Finalize();
  g_started_mpi = 0;
}

static void mpi_destroy(void *ctx) {
  mpi_ctx *m = ctx;
  pthread_mutex_lock(&g_mu);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && m->comm != MPI_COMM_NULL)
    MPI_Comm_free(&m->comm);
  free(m);
  release_locked();
  pthread_mutex_unlock(&g_mu);
}

static const tc_comm_iface mpi_iface = {
    .api_version = TC_COMM_API_VERSION,
    .struct_size = sizeof(tc_comm_iface),
    .name = "mpi",
    .rank = mpi_rank,
    .size = mpi_size,
    .allreduce_sum = mpi_allreduce,
    .broadcast = mpi_broadcast,
    .allgather = mpi_allgather,
    .barrier = mpi_barrier,
    .allreduce_start = mpi_allreduce_start,
    .test = mpi_test,
    .wait = mpi_wait,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

TC_MPI_API tc_status tc_mpi_options_init(tc_mpi_options *o,
                                         size_t struct_size) {
  static const char fn[] = "tc_mpi_options_init";
  if (!o)
    return tc_set_error(TC_EINVAL, "%s: argument 'o' is NULL", fn);
  if (struct_size > sizeof *o)
    return tc_set_error(TC_EVERSION,
                        "%s: struct_size %zu is larger than this library's %zu",
                        fn, struct_size, sizeof *o);
  if (struct_size < sizeof(size_t))
    return tc_set_error(TC_EINVAL, "%s: struct_size %zu too small", fn,
                        struct_size);
  tc_mpi_options d = TC_MPI_OPTIONS_INIT;
  memcpy(o, &d, struct_size);
  o->struct_size = struct_size;
  return TC_OK;
}

/* The per-call element limit: MAX_COUNT, or TINYCNN_MPI_MAX_COUNT when it
 * is a number in [1, MAX_COUNT] (the tests' small pieces). */
static size_t max_count_from_env(void) {
  const char *s = getenv("TINYCNN_MPI_MAX_COUNT");
  if (!s || !*s)
    return MAX_COUNT;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  return *end == '\0' && v >= 1 && v <= MAX_COUNT ? (size_t)v : MAX_COUNT;
}

/* Starts MPI if allowed and needed. Called with g_mu held. */
static tc_status start_mpi_locked(int init_mpi, const char *fn) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    return tc_set_error(TC_ESTATE, "%s: MPI has already been finalized", fn);
  if (initialized)
    return TC_OK;
  if (!init_mpi)
    return tc_set_error(TC_ESTATE,
                        "%s: MPI is not initialized and init_mpi is 0", fn);
  int provided = 0;
  int err = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (err != MPI_SUCCESS)
    return mpi_error(err, "MPI_Init_thread");
  g_started_mpi = 1;
  return TC_OK;
}

TC_MPI_API tc_status tc_comm_create_mpi(tc_comm **out,
                                        const tc_mpi_options *opts) {
  static const char fn[] = "tc_comm_create_mpi";
  if (!out)
    return tc_set_error(TC_EINVAL, "%s: argument 'out' is NULL", fn);
  /* accept any older, smaller options struct; fill the rest by default */
  tc_mpi_options o = TC_MPI_OPTIONS_INIT;
  if (opts) {
    if (opts->struct_size > sizeof o)
      return tc_set_error(
          TC_EVERSION,
          "%s: options struct_size %zu is larger than this library's %zu", fn,
          opts->struct_size, sizeof o);
    if (opts->struct_size < sizeof(size_t))
      return tc_set_error(TC_EINVAL, "%s: options struct_size %zu too small",
                          fn, opts->struct_size);
    memcpy(&o, opts, opts->struct_size);
    o.struct_size = sizeof o;
  }
  if (o.init_mpi != 0 && o.init_mpi != 1)
    return tc_set_error(TC_EINVAL, "%s: init_mpi = %d is neither 0 nor 1", fn,
                        (int)o.init_mpi);
  mpi_ctx *m = calloc(1, sizeof *m);
  if (!m)
    return tc_set_error(TC_ENOMEM, "%s: out of memory", fn);
  m->comm = MPI_COMM_NULL;
  m->max_count = max_count_from_env();

  pthread_mutex_lock(&g_mu);
  tc_status st = start_mpi_locked(o.init_mpi, fn);
  if (st != TC_OK) {
    pthread_mutex_unlock(&g_mu);
    free(m);
    return st;
  }
  g_live++; /* from here on, mpi_destroy() releases it */
  pthread_mutex_unlock(&g_mu);

  MPI_Comm parent = o.mpi_comm ? *(const MPI_Comm *)o.mpi_comm : MPI_COMM_WORLD;
  const char *call = "MPI_Comm_dup";
  MPI_Comm dup = MPI_COMM_NULL;
  int err = MPI_Comm_dup(parent, &dup);
  if (err == MPI_SUCCESS) {
    m->comm = dup; /* only once valid: mpi_destroy() frees it */
    call = "MPI_Comm_set_errhandler";
    err = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
  }
  if (err == MPI_SUCCESS) {
    call = "MPI_Comm_rank";
    err = MPI_Comm_rank(m->comm, &m->rank);
  }
  if (err == MPI_SUCCESS) {
    call = "MPI_Comm_size";
    err = MPI_Comm_size(m->comm, &m->size);
  }
  if (err != MPI_SUCCESS) {
    st = mpi_error(err, call);
    mpi_destroy(m);
    return st;
  }
  /* on failure tc_comm_create() has destroyed m, and with it our share */
  return tc_comm_create(out, &mpi_iface, m);
}

TC_MPI_API tc_status tc_mpi_local_rank(int *out) {
  static const char fn[] = "tc_mpi_local_rank";
  if (!out)
    return tc_set_error(TC_EINVAL, "%s: argument 'out' is NULL", fn);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    return tc_set_error(TC_ESTATE, "%s: MPI is not running", fn);
  MPI_Comm node;
  int err = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0,
                                MPI_INFO_NULL, &node);
  if (err != MPI_SUCCESS)
    return mpi_error(err, "MPI_Comm_split_type");
  int rank = 0;
  err = MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  if (err != MPI_SUCCESS)
    return mpi_error(err, "MPI_Comm_rank");
  *out = rank;
  return TC_OK;
}
