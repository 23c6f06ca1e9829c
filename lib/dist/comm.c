/*
 * comm.c - the communicator handle over a tc_comm_iface table: argument
 * checks, version checks and error messages for every implementation.
 * The built-in implementations are in comm_local.c; MPI's is in
 * libtinycnn-mpi (mpi/).
 */
#include <string.h>

#include "dist_internal.h"

struct tc_comm {
  const tc_comm_iface *iface;
  void *ctx;
  int rank, size;
};

/* The slot lies inside the table the implementation built, and is set. */
#define HAS(iface, slot)                                                       \
  ((iface)->struct_size >=                                                     \
       offsetof(tc_comm_iface, slot) + sizeof((iface)->slot) &&                \
   (iface)->slot != NULL)

TC_API tc_status tc_comm_create(tc_comm **out, const tc_comm_iface *iface,
                                void *ctx) {
  static const char fn[] = "tc_comm_create";
  tc_status st = TC_OK;
  if (!out || !iface) {
    st = tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                   out ? "iface" : "out");
    goto fail;
  }
  if (iface->api_version > TC_COMM_API_VERSION) {
    st = tc__error(TC_EVERSION,
                   "%s: the communicator table has API version %u, this "
                   "library knows up to %u",
                   fn, (unsigned)iface->api_version,
                   (unsigned)TC_COMM_API_VERSION);
    goto fail;
  }
  if (!HAS(iface, destroy) || !HAS(iface, rank) || !HAS(iface, size) ||
      !HAS(iface, allreduce_sum) || !HAS(iface, broadcast) ||
      !HAS(iface, allgather) || !HAS(iface, barrier)) {
    st = tc__error(TC_EINVAL,
                   "%s: the table lacks a required slot (destroy, rank, "
                   "size, allreduce_sum, broadcast, allgather, barrier)",
                   fn);
    goto fail;
  }
  int size = iface->size(ctx), rank = iface->rank(ctx);
  if (size < 1 || rank < 0 || rank >= size) {
    st = tc__error(TC_EINVAL,
                   "%s: rank %d of size %d is not a valid "
                   "position",
                   fn, rank, size);
    goto fail;
  }
  tc_comm *c = tc__calloc(1, sizeof *c);
  if (!c) {
    st = tc__oom(fn);
    goto fail;
  }
  c->iface = iface;
  c->ctx = ctx;
  c->rank = rank;
  c->size = size;
  *out = c;
  return TC_OK;
fail:
  if (iface && HAS(iface, destroy))
    iface->destroy(ctx);
  return st;
}

void *tc__comm_device_context(const tc_comm *c) {
  if (!c || !HAS(c->iface, device_context))
    return NULL;
  return c->iface->device_context(c->ctx);
}

TC_API void tc_comm_destroy(tc_comm *c) {
  if (!c)
    return;
  c->iface->destroy(c->ctx);
  tc__free(c);
}

TC_API int tc_comm_rank(const tc_comm *c) {
  return c ? c->rank : -1;
}
TC_API int tc_comm_size(const tc_comm *c) {
  return c ? c->size : -1;
}
TC_API const char *tc_comm_name(const tc_comm *c) {
  return c && c->iface->name ? c->iface->name : "";
}

/* An implementation that failed without a message still names the
 * operation. */
static tc_status failed(tc_status st, const tc_comm *c, const char *fn) {
  if (st != TC_OK && tc_last_error()[0] == '\0')
    return tc__error(st, "%s: the '%s' communicator failed (%s)", fn,
                     tc_comm_name(c), tc_status_string(st));
  return st;
}

TC_API tc_status tc_comm_allreduce_sum(tc_comm *c, float *buf, size_t count) {
  static const char fn[] = "tc_comm_allreduce_sum";
  TC__CHECK_NULL(c, fn);
  if (!buf && count)
    return tc__error(TC_EINVAL, "%s: argument 'buf' is NULL", fn);
  tc_comm_args a = {sizeof a, buf, NULL, count, 0, 0, 0};
  tc_clear_error();
  return failed(c->iface->allreduce_sum(c->ctx, &a), c, fn);
}

TC_API tc_status tc_comm_broadcast(tc_comm *c, void *buf, size_t bytes,
                                   int root) {
  static const char fn[] = "tc_comm_broadcast";
  TC__CHECK_NULL(c, fn);
  if (!buf && bytes)
    return tc__error(TC_EINVAL, "%s: argument 'buf' is NULL", fn);
  if (root < 0 || root >= c->size)
    return tc__error(TC_EINVAL, "%s: root %d is not a rank of %d", fn, root,
                     c->size);
  tc_comm_args a = {sizeof a, buf, NULL, 0, bytes, root, 0};
  tc_clear_error();
  return failed(c->iface->broadcast(c->ctx, &a), c, fn);
}

TC_API tc_status tc_comm_allgather(tc_comm *c, const void *send, void *recv,
                                   size_t bytes) {
  static const char fn[] = "tc_comm_allgather";
  TC__CHECK_NULL(c, fn);
  if (bytes && (!send || !recv))
    return tc__error(TC_EINVAL, "%s: argument '%s' is NULL", fn,
                     send ? "recv" : "send");
  size_t total;
  if (!tc__mul_size(bytes, (size_t)c->size, &total))
    return tc__error(TC_EINVAL, "%s: %zu bytes times %d ranks overflows", fn,
                     bytes, c->size);
  tc_comm_args a = {sizeof a, (void *)send, recv, 0, bytes, 0, 0};
  tc_clear_error();
  return failed(c->iface->allgather(c->ctx, &a), c, fn);
}

TC_API tc_status tc_comm_barrier(tc_comm *c) {
  static const char fn[] = "tc_comm_barrier";
  TC__CHECK_NULL(c, fn);
  tc_clear_error();
  return failed(c->iface->barrier(c->ctx), c, fn);
}

TC_API tc_status tc_comm_allreduce_start(tc_comm *c, float *buf, size_t count,
                                         tc_comm_request **out) {
  static const char fn[] = "tc_comm_allreduce_start";
  TC__CHECK_NULL(c, fn);
  TC__CHECK_NULL(out, fn);
  tc_comm_request *r = tc__calloc(1, sizeof *r);
  if (!r)
    return tc__oom(fn);
  tc_status st = tc__comm_allreduce_start_in(c, buf, count, r);
  if (st != TC_OK) {
    tc__free(r);
    return st;
  }
  r->owned = 1;
  *out = r;
  return TC_OK;
}

tc_status tc__comm_allreduce_start_in(tc_comm *c, float *buf, size_t count,
                                      tc_comm_request *r) {
  static const char fn[] = "tc_comm_allreduce_start";
  TC__CHECK_NULL(c, fn);
  if (!buf && count)
    return tc__error(TC_EINVAL, "%s: argument 'buf' is NULL", fn);
  r->req = NULL;
  r->owned = 0;
  tc_comm_args a = {sizeof a, buf, NULL, count, 0, 0, 0};
  tc_clear_error();
  tc_status st;
  if (HAS(c->iface, allreduce_start) && HAS(c->iface, wait))
    st = c->iface->allreduce_start(c->ctx, &a, &r->req);
  else
    st = c->iface->allreduce_sum(c->ctx, &a);
  return st != TC_OK ? failed(st, c, fn) : TC_OK;
}

TC_API tc_status tc_comm_test(tc_comm *c, tc_comm_request *r, int *out_done) {
  static const char fn[] = "tc_comm_test";
  TC__CHECK_NULL(c, fn);
  TC__CHECK_NULL(r, fn);
  TC__CHECK_NULL(out_done, fn);
  if (!r->req || !HAS(c->iface, test)) {
    *out_done = !r->req;
    return TC_OK;
  }
  tc_clear_error();
  return failed(c->iface->test(c->ctx, r->req, out_done), c, fn);
}

TC_API tc_status tc_comm_wait(tc_comm *c, tc_comm_request *r) {
  static const char fn[] = "tc_comm_wait";
  TC__CHECK_NULL(c, fn);
  TC__CHECK_NULL(r, fn);
  tc_status st = TC_OK;
  if (r->req) {
    tc_clear_error();
    st = failed(c->iface->wait(c->ctx, r->req), c, fn);
    r->req = NULL;
  }
  if (r->owned)
    tc__free(r);
  return st;
}

TC_API tc_status tc_comm_abort(tc_comm *c, int code) {
  static const char fn[] = "tc_comm_abort";
  TC__CHECK_NULL(c, fn);
  if (!HAS(c->iface, abort))
    return tc__error(TC_EUNSUPPORTED,
                     "%s: the '%s' communicator cannot end "
                     "other ranks",
                     fn, tc_comm_name(c));
  c->iface->abort(c->ctx, code);
  return tc__error(TC_EUNSUPPORTED,
                   "%s: the '%s' communicator returned "
                   "from abort",
                   fn, tc_comm_name(c));
}
