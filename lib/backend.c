/*
 * backend.c - finding, opening and registering backends. "cpu" is built in;
 * "cuda" is the loadable module tinycnn-cuda.so, looked for in
 * $TINYCNN_MODULE_PATH, then the install's module dir, then beside this
 * library; third parties register tables with tc_backend_register().
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <pthread.h>

#include "internal.h"
#include "options.h"

#ifndef TINYCNN_MODULE_DIR
#define TINYCNN_MODULE_DIR ""
#endif

#define MAX_REGISTERED 16

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const tc_backend_iface *registered[MAX_REGISTERED];
static int n_registered;

/* Slots every backend must have; the rest may be NULL (unsupported). */
static tc_status check_iface(const tc_backend_iface *it, const char *fn) {
  if (!it || !it->name || !it->name[0])
    return tc__error(TC_EINVAL, "%s: backend table or its name is NULL", fn);
  if (it->api_version > TC_BACKEND_API_VERSION)
    return tc__error(TC_EVERSION,
                     "%s: backend '%s' has API version %u, this library "
                     "supports up to %d",
                     fn, it->name, it->api_version, TC_BACKEND_API_VERSION);
  if (it->struct_size < offsetof(tc_backend_iface, gemm))
    return tc__error(TC_EINVAL, "%s: backend '%s' table too small (%u bytes)",
                     fn, it->name, it->struct_size);
  if (!it->create || !it->destroy || !it->alloc || !it->free || !it->copy_h2d ||
      !it->copy_d2h || !it->copy_d2d || !it->memset || !it->synchronize)
    return tc__error(TC_EINVAL, "%s: backend '%s' lacks a required memory slot",
                     fn, it->name);
  return TC_OK;
}

TC_API tc_status tc_backend_register(const tc_backend_iface *iface) {
  tc_status st = check_iface(iface, "tc_backend_register");
  if (st != TC_OK)
    return st;
  pthread_mutex_lock(&registry_lock);
  if (strcmp(iface->name, "cpu") == 0)
    st = tc__error(TC_ESTATE, "tc_backend_register: name 'cpu' is taken");
  for (int i = 0; st == TC_OK && i < n_registered; i++)
    if (strcmp(registered[i]->name, iface->name) == 0)
      st = tc__error(TC_ESTATE, "tc_backend_register: name '%s' is taken",
                     iface->name);
  if (st == TC_OK && n_registered == MAX_REGISTERED)
    st = tc__error(TC_ESTATE, "tc_backend_register: table full (%d)",
                   MAX_REGISTERED);
  if (st == TC_OK)
    registered[n_registered++] = iface;
  pthread_mutex_unlock(&registry_lock);
  return st;
}

/* Directory holding this library, for finding modules beside it. */
static void own_dir(char *buf, size_t size) {
  Dl_info info;
  buf[0] = '\0';
  if (dladdr((void *)own_dir, &info) && info.dli_fname) {
    snprintf(buf, size, "%s", info.dli_fname);
    char *slash = strrchr(buf, '/');
    if (slash)
      *slash = '\0';
    else
      buf[0] = '\0';
  }
}

static void *open_module(const char *name, char *why, size_t why_size) {
  char file[64], path[4096], dir[4096];
  snprintf(file, sizeof file, "tinycnn-%s.so", name);
  const char *env = getenv("TINYCNN_MODULE_PATH");
  own_dir(dir, sizeof dir);
  const char *dirs[4] = {env, TINYCNN_MODULE_DIR, dir, NULL};
  char sub[4096];
  /* uninstalled build tree: build/lib -> build/backends/<name> */
  if (snprintf(sub, sizeof sub, "%s/../backends/%s", dir, name) <
      (int)sizeof sub)
    dirs[3] = sub;
  why[0] = '\0';
  for (int i = 0; i < 4; i++) {
    if (!dirs[i] || !dirs[i][0])
      continue;
    if (snprintf(path, sizeof path, "%s/%s", dirs[i], file) >= (int)sizeof path)
      continue;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h)
      return h;
    const char *e = dlerror();
    /* keep the most useful reason: one where the file exists */
    FILE *f = fopen(path, "rb");
    if (f) {
      fclose(f);
      snprintf(why, why_size, "%s", e ? e : "dlopen failed");
    }
  }
  if (!why[0])
    snprintf(why, why_size, "module %s not found (set TINYCNN_MODULE_PATH)",
             file);
  return NULL;
}

static tc_status open_backend(tc_backend **out, const tc_backend_iface *it,
                              void *module, const tc_backend_options *o) {
  char msg[512] = "";
  if (it->probe && it->probe(msg, sizeof msg) != TC_OK)
    return tc__error(TC_EUNSUPPORTED,
                     "tc_backend_create: backend '%s' is "
                     "not usable here: %s",
                     it->name, msg[0] ? msg : "probe failed");
  tc_backend *be = tc__calloc(1, sizeof *be);
  if (!be)
    return tc__oom("tc_backend_create");
  tc_backend_create_args args = {
      sizeof args, o->num_threads > 0 ? o->num_threads : tc__num_threads(),
      o->deterministic, o->stream};
  tc_status st = it->create(&be->ctx, &args);
  if (st != TC_OK) {
    tc__free(be);
    return st;
  }
  be->iface = it;
  be->module = module;
  atomic_init(&be->refcount, 1);
  *out = be;
  return TC_OK;
}

TC_API tc_status tc_backend_options_init(tc_backend_options *o,
                                         size_t struct_size) {
  static const tc_backend_options d = TC_BACKEND_OPTIONS_INIT;
  return tc__options_init(o, struct_size, &d, sizeof d,
                          TC__SIZE0_BACKEND_OPTIONS, "tc_backend_options_init");
}

TC_API tc_status tc_backend_create(tc_backend **out, const char *name) {
  return tc_backend_create_ex(out, name, NULL);
}

TC_API tc_status tc_backend_create_ex(tc_backend **out, const char *name,
                                      const tc_backend_options *opts) {
  TC__CHECK_NULL(out, "tc_backend_create");
  TC__CHECK_NULL(name, "tc_backend_create");
  /* accept any older, smaller options struct; fill the rest by default */
  static const tc_backend_options d = TC_BACKEND_OPTIONS_INIT;
  tc_backend_options o;
  tc_status st =
      tc__options_accept(&o, sizeof o, opts, &d, TC__SIZE0_BACKEND_OPTIONS,
                         "tc_backend_create_ex");
  if (st != TC_OK)
    return st;
  if (o.num_threads < 0 || o.num_threads > 1024)
    return tc__error(TC_EINVAL,
                     "tc_backend_create_ex: num_threads = %d, "
                     "expected 0 to 1024",
                     (int)o.num_threads);
  if (strcmp(name, "cpu") == 0)
    return open_backend(out, tc__cpu_backend_iface(), NULL, &o);

  const tc_backend_iface *found = NULL;
  pthread_mutex_lock(&registry_lock);
  for (int i = 0; i < n_registered; i++)
    if (strcmp(registered[i]->name, name) == 0)
      found = registered[i];
  pthread_mutex_unlock(&registry_lock);
  if (found)
    return open_backend(out, found, NULL, &o);

  if (strcmp(name, "cuda") != 0)
    return tc__error(TC_ENOTFOUND,
                     "tc_backend_create: no backend named '%s' (built in: "
                     "cpu; loadable: cuda; or register one)",
                     name);
  char why[1024];
  void *h = open_module(name, why, sizeof why);
  if (!h)
    return tc__error(TC_ENOTFOUND,
                     "tc_backend_create: backend 'cuda' "
                     "unavailable: %s",
                     why);
  tc_backend_entry_fn entry;
  *(void **)&entry = dlsym(h, TC_BACKEND_MODULE_ENTRY);
  const tc_backend_iface *it = entry ? entry() : NULL;
  st = it ? check_iface(it, "tc_backend_create")
          : tc__error(TC_EFORMAT,
                      "tc_backend_create: module for "
                      "'cuda' has no %s",
                      TC_BACKEND_MODULE_ENTRY);
  if (st == TC_OK)
    st = open_backend(out, it, h, &o);
  if (st != TC_OK)
    dlclose(h);
  return st;
}

void tc__backend_retain(tc_backend *be) {
  atomic_fetch_add(&be->refcount, 1);
}

TC_API void tc_backend_destroy(tc_backend *be) {
  if (!be || atomic_fetch_sub(&be->refcount, 1) != 1)
    return;
  be->iface->destroy(be->ctx);
  void *module = be->module;
  tc__free(be);
  if (module)
    dlclose(module);
}

TC_API const char *tc_backend_name(const tc_backend *be) {
  return be ? be->iface->name : NULL;
}

TC_API tc_status tc_backend_synchronize(tc_backend *be) {
  TC__CHECK_NULL(be, "tc_backend_synchronize");
  return be->iface->synchronize(be->ctx);
}

/* Graph calls go to the backend's extension procs (get_proc), so the table
 * needs no new slots; a backend without them reports TC_EUNSUPPORTED. */
typedef tc_status (*tc__graph_fn)(void *ctx);

static tc_status backend_graph_call(tc_backend *be, const char *proc,
                                    const char *fn) {
  TC__CHECK_NULL(be, fn);
  void *p = NULL;
  if (TC__HAS_SLOT(be->iface, get_proc))
    p = be->iface->get_proc(be->ctx, proc);
  if (!p)
    return tc__error(TC_EUNSUPPORTED,
                     "%s: backend '%s' has no graph "
                     "capture",
                     fn, be->iface->name);
  tc__graph_fn f;
  memcpy(&f, &p, sizeof f); /* object to function pointer (POSIX dlsym) */
  return f(be->ctx);
}

TC_API tc_status tc_backend_graph_begin(tc_backend *be) {
  return backend_graph_call(be, "tc_graph_begin", "tc_backend_graph_begin");
}

TC_API tc_status tc_backend_graph_end(tc_backend *be) {
  return backend_graph_call(be, "tc_graph_end", "tc_backend_graph_end");
}

TC_API tc_status tc_backend_graph_replay(tc_backend *be) {
  return backend_graph_call(be, "tc_graph_replay", "tc_backend_graph_replay");
}

TC_API const tc_backend_iface *tc_backend_get_iface(const tc_backend *be) {
  return be ? be->iface : NULL;
}

TC_API void *tc_backend_get_context(const tc_backend *be) {
  return be ? be->ctx : NULL;
}
