/*
 * fuzz_util.h - what the loader harnesses share: a per-process scratch
 * folder made once (removed at exit) and a whole-buffer file writer. The
 * loaders take paths, so each input goes through a real file.
 */
#ifndef TINYCNN_FUZZ_UTIL_H
#define TINYCNN_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fz_dir[512];
static char fz_cleanup[4][600];
static int fz_ncleanup;

static void fz_remove_all(void) {
  for (int i = 0; i < fz_ncleanup; i++)
    unlink(fz_cleanup[i]);
  rmdir(fz_dir);
}

/* The scratch folder, created on first use; aborts when it cannot be made
 * (a harness without files would fuzz nothing). */
static const char *fz_tmpdir(void) {
  if (!fz_dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(fz_dir, sizeof fz_dir, "%s/tcfuzz.XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(fz_dir)) {
      perror("mkdtemp");
      abort();
    }
    atexit(fz_remove_all);
  }
  return fz_dir;
}

/* dir/name into buf (of 600 bytes), remembered for removal at exit. */
static const char *fz_path(char *buf, const char *name) {
  snprintf(buf, 600, "%s/%s", fz_tmpdir(), name);
  for (int i = 0; i < fz_ncleanup; i++)
    if (!strcmp(fz_cleanup[i], buf))
      return buf;
  if (fz_ncleanup < 4)
    memcpy(fz_cleanup[fz_ncleanup++], buf, 600);
  return buf;
}

/* Replaces `path` with exactly `n` bytes of `data`; aborts on I/O error. */
static void fz_write(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    perror(path);
    abort();
  }
  const unsigned char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      perror(path);
      abort();
    }
    p += w;
    n -= (size_t)w;
  }
  close(fd);
}

#endif
