/*
 * file.c - opening the files the library reads (checkpoints, datasets):
 * refused unless they are regular files, checked on the descriptor itself
 * and before anything blocks. open(2) of a FIFO for reading blocks until a
 * writer appears, so the file is opened with O_NONBLOCK, checked with
 * fstat, and only then made blocking again for the reads (POSIX open(2),
 * "O_NONBLOCK"; fcntl(2), F_SETFL). Messages give the reason before the
 * path, so a long path cut by the message buffer never hides it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

tc_status tc__open_regular(const char *path, int *out_fd, uint64_t *out_size,
                           const char *fn) {
  int fd = tc__sys.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0)
    return tc__error(TC_EIO, "%s: cannot open (%s): '%s'", fn, strerror(errno),
                     path);
  struct stat sb;
  if (tc__sys.fstat(fd, &sb) != 0) {
    int e = errno;
    tc__sys.close(fd);
    return tc__error(TC_EIO, "%s: cannot stat (%s): '%s'", fn, strerror(e),
                     path);
  }
  if (!S_ISREG(sb.st_mode)) {
    tc__sys.close(fd);
    return tc__error(TC_EIO, "%s: not a regular file: '%s'", fn, path);
  }
  int flags = tc__sys.fcntl(fd, F_GETFL, 0);
  if (flags < 0 || tc__sys.fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    int e = errno;
    tc__sys.close(fd);
    return tc__error(TC_EIO, "%s: cannot make blocking (%s): '%s'", fn,
                     strerror(e), path);
  }
  *out_fd = fd;
  if (out_size)
    *out_size = (uint64_t)sb.st_size;
  return TC_OK;
}

tc_status tc__fopen_regular(const char *path, FILE **out, uint64_t *out_size,
                            const char *fn) {
  int fd = -1;
  tc_status st = tc__open_regular(path, &fd, out_size, fn);
  if (st != TC_OK)
    return st;
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    int e = errno;
    tc__sys.close(fd);
    return tc__error(TC_EIO, "%s: cannot open (%s): '%s'", fn, strerror(e),
                     path);
  }
  *out = f;
  return TC_OK;
}
