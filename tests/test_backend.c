/*
 * test_backend.c - finding backends by name, the CUDA module's clean
 * absence, third-party registration through the public table, and the
 * table version rules (newer API refused, NULL slots = unsupported), the
 * CPU backend's get_proc extra ("tc_cpu_isa_name").
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(test_cpu_backend) {
  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  ck_assert_str_eq(tc_backend_name(be), "cpu");
  const tc_backend_iface *it = tc_backend_get_iface(be);
  ck_assert_ptr_nonnull(it);
  ck_assert_uint_eq(it->api_version, TC_BACKEND_API_VERSION);
  ck_assert_uint_eq(it->struct_size, sizeof(tc_backend_iface));
  ck_assert_int_eq(tc_backend_synchronize(be), TC_OK);
  /* get_proc: the kernel level, after TINYCNN_CPU_ISA */
  ck_assert_ptr_nonnull(it->get_proc);
  const char *(*isa_name)(void) = NULL;
  *(void **)&isa_name =
      it->get_proc(tc_backend_get_context(be), "tc_cpu_isa_name");
  ck_assert_ptr_nonnull(isa_name);
  const char *isa = isa_name(), *env = getenv("TINYCNN_CPU_ISA");
  ck_assert(!strcmp(isa, "avx512") || !strcmp(isa, "avx2") ||
            !strcmp(isa, "generic"));
  if (env && !strcmp(env, "generic"))
    ck_assert_str_eq(isa, "generic");
  if (env && !strcmp(env, "avx2"))
    ck_assert_str_ne(isa, "avx512");
  ck_assert_ptr_null(it->get_proc(tc_backend_get_context(be), "no_such"));
  tc_backend_destroy(be);
  tc_backend_destroy(NULL);
}
END_TEST

START_TEST(test_unknown_and_null) {
  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "tpu"), TC_ENOTFOUND);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "tpu"));
  ck_assert_ptr_null(be);
  ck_assert_int_eq(tc_backend_create(NULL, "cpu"), TC_EINVAL);
  ck_assert_int_eq(tc_backend_create(&be, NULL), TC_EINVAL);
  ck_assert_int_eq(tc_backend_synchronize(NULL), TC_EINVAL);
  ck_assert_ptr_null(tc_backend_name(NULL));
}
END_TEST

START_TEST(test_cuda_absent_is_clean) {
  /* without the module or a device: a clear error, and cpu keeps working */
  setenv("TINYCNN_MODULE_PATH", "/nonexistent", 1);
  tc_backend *be = NULL;
  tc_status st = tc_backend_create(&be, "cuda");
  if (st == TC_OK) { /* a GPU machine with the module installed */
    tc_backend_destroy(be);
    return;
  }
  ck_assert(st == TC_ENOTFOUND || st == TC_EUNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "cuda"));
  ck_assert_ptr_null(be);
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  tc_backend_destroy(be);
}
END_TEST

/* A third-party backend that borrows the CPU table's memory slots. */
static tc_backend_iface custom;
static int creates, destroys;
static const tc_backend_iface *cpu_it;
static tc_status my_create(void **out, const tc_backend_create_args *a) {
  creates++;
  return cpu_it->create(out, a);
}
static void my_destroy(void *ctx) {
  destroys++;
  cpu_it->destroy(ctx);
}

START_TEST(test_register_third_party) {
  tc_backend *cpu = NULL;
  ck_assert_int_eq(tc_backend_create(&cpu, "cpu"), TC_OK);
  cpu_it = tc_backend_get_iface(cpu);
  /* only the table's start: every op slot is "unsupported" */
  memset(&custom, 0, sizeof custom);
  custom.api_version = 1;
  custom.struct_size = (uint32_t)offsetof(tc_backend_iface, gemm);
  custom.name = "mine";
  custom.create = my_create;
  custom.destroy = my_destroy;
  custom.alloc = cpu_it->alloc;
  custom.free = cpu_it->free;
  custom.copy_h2d = cpu_it->copy_h2d;
  custom.copy_d2h = cpu_it->copy_d2h;
  custom.copy_d2d = cpu_it->copy_d2d;
  custom.memset = cpu_it->memset;
  custom.synchronize = cpu_it->synchronize;
  ck_assert_int_eq(tc_backend_register(&custom), TC_OK);
  ck_assert_int_eq(tc_backend_register(&custom), TC_ESTATE);

  tc_backend *be = NULL;
  ck_assert_int_eq(tc_backend_create(&be, "mine"), TC_OK);
  ck_assert_int_eq(creates, 1);
  int64_t shape[1] = {5};
  tc_tensor *t = NULL, *c = NULL;
  ck_assert_int_eq(tc_tensor_create(&t, be, shape, 1, TC_FLOAT32), TC_OK);
  float v[5] = {1, 2, 3, 4, 5}, w[5] = {0};
  ck_assert_int_eq(tc_tensor_copy_from_host(t, v, sizeof v), TC_OK);
  /* copying across backends stages through host memory */
  ck_assert_int_eq(tc_tensor_create(&c, cpu, shape, 1, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_copy(c, t), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(c, w, sizeof w), TC_OK);
  ck_assert_mem_eq(v, w, sizeof v);
  /* a slot beyond struct_size is unsupported, not a crash */
  ck_assert_int_eq(tc_tensor_fill(t, 1.0), TC_EUNSUPPORTED);
  /* the backend lives while a tensor uses it */
  tc_backend_destroy(be);
  ck_assert_int_eq(destroys, 0);
  tc_tensor_destroy(t);
  ck_assert_int_eq(destroys, 1);
  tc_tensor_destroy(c);
  tc_backend_destroy(cpu);
}
END_TEST

START_TEST(test_register_rejects_bad_tables) {
  tc_backend_iface bad;
  memset(&bad, 0, sizeof bad);
  ck_assert_int_eq(tc_backend_register(NULL), TC_EINVAL);
  ck_assert_int_eq(tc_backend_register(&bad), TC_EINVAL); /* no name */
  bad.name = "newer";
  bad.api_version = TC_BACKEND_API_VERSION + 1;
  bad.struct_size = sizeof bad;
  ck_assert_int_eq(tc_backend_register(&bad), TC_EVERSION);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "API version"));
  bad.api_version = 1;
  ck_assert_int_eq(tc_backend_register(&bad), TC_EINVAL); /* no memory slots */
  bad.name = "cpu";
  ck_assert_int_ne(tc_backend_register(&bad), TC_OK);
}
END_TEST

START_TEST(test_create_ex_options) {
  tc_backend_options o;
  ck_assert_int_eq(tc_backend_options_init(&o, sizeof o), TC_OK);
  ck_assert_int_eq(o.num_threads, 0);
  ck_assert_int_eq(tc_backend_options_init(&o, sizeof o + 8), TC_EVERSION);
  ck_assert_int_eq(tc_backend_options_init(NULL, sizeof o), TC_EINVAL);
  tc_backend *be = NULL;
  o.num_threads = 2;
  ck_assert_int_eq(tc_backend_create_ex(&be, "cpu", &o), TC_OK);
  tc_backend_destroy(be);
  be = NULL;
  /* smaller than any released struct (0.1.0 is the first): refused;
   * tests/test_options.c covers older, smaller structs */
  tc_backend_options old = {sizeof(size_t), 99, 99, NULL};
  ck_assert_int_eq(tc_backend_create_ex(&be, "cpu", &old), TC_EINVAL);
  ck_assert_ptr_null(be);
  tc_backend_options newer = TC_BACKEND_OPTIONS_INIT;
  newer.struct_size = sizeof newer + 8;
  ck_assert_int_eq(tc_backend_create_ex(&be, "cpu", &newer), TC_EVERSION);
  o.num_threads = -1;
  ck_assert_int_eq(tc_backend_create_ex(&be, "cpu", &o), TC_EINVAL);
  ck_assert_ptr_null(be);
  ck_assert_int_eq(sizeof(tc_backend_options), 24);
}
END_TEST

/* A backend whose memory slots are the CPU's, logging synchronize and
 * copy_d2d with the context they ran on: a copy between two instances of
 * one backend (two CUDA streams) must wait for the source's work first. */
static tc_backend_iface watch;
static void *wlog_ctx[8];
static char wlog_op[8];
static int wlog_n;
static void wlog(char op, void *ctx) {
  if (wlog_n < 8) {
    wlog_op[wlog_n] = op;
    wlog_ctx[wlog_n++] = ctx;
  }
}
static tc_status w_sync(void *ctx) {
  wlog('s', ctx);
  return cpu_it->synchronize(ctx);
}
static tc_status w_d2d(void *ctx, void *d, const void *s, size_t b) {
  wlog('c', ctx);
  return cpu_it->copy_d2d(ctx, d, s, b);
}

START_TEST(test_copy_between_instances_waits) {
  tc_backend *cpu = NULL;
  ck_assert_int_eq(tc_backend_create(&cpu, "cpu"), TC_OK);
  cpu_it = tc_backend_get_iface(cpu);
  memset(&watch, 0, sizeof watch);
  watch.api_version = 1;
  watch.struct_size = (uint32_t)offsetof(tc_backend_iface, gemm);
  watch.name = "watch";
  watch.create = cpu_it->create;
  watch.destroy = cpu_it->destroy;
  watch.alloc = cpu_it->alloc;
  watch.free = cpu_it->free;
  watch.copy_h2d = cpu_it->copy_h2d;
  watch.copy_d2h = cpu_it->copy_d2h;
  watch.copy_d2d = w_d2d;
  watch.memset = cpu_it->memset;
  watch.synchronize = w_sync;
  ck_assert_int_eq(tc_backend_register(&watch), TC_OK);
  tc_backend *a = NULL, *b = NULL;
  ck_assert_int_eq(tc_backend_create(&a, "watch"), TC_OK);
  ck_assert_int_eq(tc_backend_create(&b, "watch"), TC_OK);
  int64_t shape[1] = {4};
  tc_tensor *ta = NULL, *tb = NULL;
  ck_assert_int_eq(tc_tensor_create(&ta, a, shape, 1, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&tb, b, shape, 1, TC_FLOAT32), TC_OK);
  float v[4] = {1, 2, 3, 4}, w[4] = {0};
  ck_assert_int_eq(tc_tensor_copy_from_host(ta, v, sizeof v), TC_OK);
  wlog_n = 0;
  ck_assert_int_eq(tc_tensor_copy(tb, ta), TC_OK);
  /* the source's work first, the copy on the destination, then its end */
  ck_assert_int_eq(wlog_n, 3);
  ck_assert(wlog_op[0] == 's' && wlog_ctx[0] == tc_backend_get_context(a));
  ck_assert(wlog_op[1] == 'c' && wlog_ctx[1] == tc_backend_get_context(b));
  ck_assert(wlog_op[2] == 's' && wlog_ctx[2] == tc_backend_get_context(b));
  ck_assert_int_eq(tc_tensor_copy_to_host(tb, w, sizeof w), TC_OK);
  ck_assert_mem_eq(v, w, sizeof v);
  /* within one instance: stream order suffices, no wait */
  wlog_n = 0;
  ck_assert_int_eq(tc_tensor_copy(ta, ta), TC_OK);
  ck_assert_int_eq(wlog_n, 1);
  ck_assert(wlog_op[0] == 'c');
  tc_tensor_destroy(ta);
  tc_tensor_destroy(tb);
  tc_backend_destroy(a);
  tc_backend_destroy(b);
  tc_backend_destroy(cpu);
}
END_TEST

int main(void) {
  Suite *s = suite_create("backend");
  TCase *tc = tcase_create("registry");
  tcase_add_test(tc, test_cpu_backend);
  tcase_add_test(tc, test_unknown_and_null);
  tcase_add_test(tc, test_cuda_absent_is_clean);
  tcase_add_test(tc, test_register_third_party);
  tcase_add_test(tc, test_register_rejects_bad_tables);
  tcase_add_test(tc, test_create_ex_options);
  tcase_add_test(tc, test_copy_between_instances_waits);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
