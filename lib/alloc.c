/*
 * alloc.c - the single choke point for host memory. Every allocation of the
 * library goes through the user's allocator (tc_set_allocator), so a test
 * allocator can count live blocks and fail the n-th request.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "options.h"

static void *default_alloc(void *user, size_t size, size_t alignment) {
  (void)user;
  void *p = NULL;
  /* posix_memalign wants a multiple of sizeof(void *) */
  if (alignment < sizeof(void *))
    alignment = sizeof(void *);
  if (posix_memalign(&p, alignment, size ? size : 1) != 0)
    return NULL;
  return p;
}

static void default_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

static tc_allocator current = {sizeof(tc_allocator), default_alloc,
                               default_free, NULL};

TC_API tc_status tc_set_allocator(const tc_allocator *a) {
  if (a == NULL) {
    current =
        (tc_allocator){sizeof(tc_allocator), default_alloc, default_free, NULL};
    return TC_OK;
  }
  if (a->struct_size > sizeof(tc_allocator))
    return tc__error(TC_EVERSION,
                     "tc_set_allocator: struct_size %zu is larger than this "
                     "library's %zu (header newer than library)",
                     a->struct_size, sizeof(tc_allocator));
  if (a->struct_size < TC__SIZE0_ALLOCATOR || !a->alloc || !a->free)
    return tc__error(TC_EINVAL,
                     "tc_set_allocator: struct_size too small or alloc/free "
                     "missing");
  current = *a;
  return TC_OK;
}

void *tc__malloc(size_t size) {
  return current.alloc(current.user, size, TC__ALIGN);
}

void *tc__calloc(size_t count, size_t size) {
  size_t bytes;
  if (!tc__mul_size(count, size, &bytes))
    return NULL;
  void *p = tc__malloc(bytes);
  if (p)
    memset(p, 0, bytes);
  return p;
}

void tc__free(void *ptr) {
  if (ptr)
    current.free(current.user, ptr);
}

char *tc__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = tc__malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}
