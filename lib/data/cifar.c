/*
 * cifar.c - CIFAR-10's binary version: each batch file is a run of records
 * of 1 label byte (0..9) and 3072 pixel bytes, (3,32,32) row-major (red,
 * green, blue planes). Every file's size is checked (a non-zero multiple of
 * 3073) and the sizes summed before the one allocation; labels are checked
 * as they are read. Not handled: CIFAR-100 (2 label bytes) and the Python
 * pickle version.
 */
#include <errno.h>
#include <string.h>

#include "data_internal.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define CIFAR_MAX_FILES 5

static tc_status read_file(tc_dataset *ds, int64_t first, int64_t count,
                           const char *path, const char *fn) {
  FILE *f;
  tc_status st = tc__fopen_regular(path, &f, NULL, fn);
  if (st != TC_OK)
    return st;
  for (int64_t i = first; i < first + count; i++) {
    unsigned char label;
    uint8_t *px = ds->pixels + (size_t)i * CIFAR_PIXELS;
    if (fread(&label, 1, 1, f) != 1 ||
        fread(px, 1, CIFAR_PIXELS, f) != CIFAR_PIXELS) {
      st = ferror(f)
               ? tc__error(TC_EIO, "%s: '%s': read error: %s", fn, path,
                           strerror(errno))
               : tc__error(TC_EFORMAT, "%s: '%s': truncated at record %lld", fn,
                           path, (long long)(i - first));
      goto out;
    }
    if (label >= CIFAR_CLASSES) {
      st = tc__error(TC_EFORMAT,
                     "%s: '%s': label %u of record %lld is outside [0, %d)", fn,
                     path, label, (long long)(i - first), CIFAR_CLASSES);
      goto out;
    }
    ds->labels[i] = label;
  }
  /* the file may have grown since it was measured */
  if (fgetc(f) != EOF)
    st = tc__error(TC_EFORMAT, "%s: '%s': trailing bytes after %lld records",
                   fn, path, (long long)count);
out:
  fclose(f);
  return st;
}

TC_API tc_status tc_dataset_load_cifar10(tc_dataset **out, const char *dir,
                                         int train) {
  static const char fn[] = "tc_dataset_load_cifar10";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(dir, fn);
  char paths[CIFAR_MAX_FILES][4096];
  int64_t counts[CIFAR_MAX_FILES];
  int nfiles = train ? 5 : 1;
  int64_t total = 0;
  for (int k = 0; k < nfiles; k++) {
    int len =
        train ? snprintf(paths[k], sizeof paths[k], "%s/data_batch_%d.bin", dir,
                         k + 1)
              : snprintf(paths[k], sizeof paths[k], "%s/test_batch.bin", dir);
    if (len < 0 || (size_t)len >= sizeof paths[k])
      return tc__error(TC_EINVAL, "%s: directory path too long", fn);
    uint64_t size;
    tc_status st = tc__file_size(paths[k], &size, fn);
    if (st != TC_OK)
      return st;
    if (size == 0 || size % CIFAR_RECORD != 0)
      return tc__error(TC_EFORMAT,
                       "%s: '%s': size %llu is not a non-zero multiple of "
                       "the %d-byte record",
                       fn, paths[k], (unsigned long long)size, CIFAR_RECORD);
    if (size >= TC__DATA_MAX_BYTES)
      return tc__error(TC_EFORMAT,
                       "%s: '%s': %llu bytes, over the 2 GiB "
                       "limit",
                       fn, paths[k], (unsigned long long)size);
    counts[k] = (int64_t)(size / CIFAR_RECORD);
    total += counts[k];
  }
  if ((uint64_t)total * CIFAR_RECORD >= TC__DATA_MAX_BYTES)
    return tc__error(TC_EFORMAT, "%s: %lld records, over the 2 GiB limit", fn,
                     (long long)total);
  tc_dataset *ds;
  tc_status st = tc__dataset_alloc(&ds, total, 3, CIFAR_SIDE, CIFAR_SIDE,
                                   CIFAR_CLASSES, fn);
  if (st != TC_OK)
    return st;
  int64_t first = 0;
  for (int k = 0; k < nfiles; k++) {
    st = read_file(ds, first, counts[k], paths[k], fn);
    if (st != TC_OK) {
      tc_dataset_destroy(ds);
      return st;
    }
    first += counts[k];
  }
  *out = ds;
  return TC_OK;
}
