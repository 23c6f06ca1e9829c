/*
 * options.c - taking the versioned option structs (options.h): one place
 * for the size rules and their messages.
 */
#include <string.h>

#include "internal.h"
#include "options.h"

tc_status tc__options_init(void *o, size_t struct_size, const void *defaults,
                           size_t full, size_t min_size, const char *fn) {
  if (!o)
    return tc__error(TC_EINVAL, "%s: argument 'o' is NULL", fn);
  if (struct_size > full)
    return tc__error(TC_EVERSION,
                     "%s: struct_size %zu is larger than this library's %zu",
                     fn, struct_size, full);
  if (struct_size < min_size)
    return tc__error(TC_EINVAL, "%s: struct_size %zu is too small", fn,
                     struct_size);
  memcpy(o, defaults, struct_size);
  memcpy(o, &struct_size, sizeof struct_size);
  return TC_OK;
}

tc_status tc__options_accept(void *dst, size_t full, const void *src,
                             const void *defaults, size_t min_size,
                             const char *fn) {
  memcpy(dst, defaults, full);
  if (!src)
    return TC_OK;
  size_t size;
  memcpy(&size, src, sizeof size); /* struct_size, the first member */
  if (size > full)
    return tc__error(TC_EVERSION,
                     "%s: options struct_size %zu is larger than this "
                     "library's %zu (header newer than library)",
                     fn, size, full);
  if (size < min_size)
    return tc__error(
        TC_EINVAL,
        "%s: options struct_size %zu is too small (not initialised?)", fn,
        size);
  memcpy(dst, src, size);
  memcpy(dst, &full, sizeof full);
  return TC_OK;
}
