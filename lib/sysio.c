/*
 * sysio.c - the table of system calls that lib/file.c and lib/io/ use
 * (see internal.h): plain wrappers around libc with fixed-width types, so
 * the table's entries have one signature each (open and fcntl are
 * variadic in libc). Nothing here retries or reports: the callers do.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

static int sys_open(const char *path, int flags, unsigned mode) {
  return open(path, flags, (mode_t)mode);
}
static long sys_read(int fd, void *buf, size_t n) {
  return read(fd, buf, n);
}
static long sys_pread(int fd, void *buf, size_t n, int64_t off) {
  return pread(fd, buf, n, (off_t)off);
}
static long sys_write(int fd, const void *buf, size_t n) {
  return write(fd, buf, n);
}
static int sys_mkdir(const char *path, unsigned mode) {
  return mkdir(path, (mode_t)mode);
}
static int sys_fcntl(int fd, int cmd, int arg) {
  return fcntl(fd, cmd, arg);
}
static int sys_ftruncate(int fd, int64_t len) {
  return ftruncate(fd, (off_t)len);
}
static int64_t sys_lseek(int fd, int64_t off, int whence) {
  return (int64_t)lseek(fd, (off_t)off, whence);
}

#define TC__SYS_DEFAULTS                                                       \
  {                                                                            \
    .open = sys_open, .close = close, .read = sys_read, .pread = sys_pread,    \
    .write = sys_write, .fsync = fsync, .rename = rename, .unlink = unlink,    \
    .mkdir = sys_mkdir, .fstat = fstat, .stat = stat, .fcntl = sys_fcntl,      \
    .ftruncate = sys_ftruncate, .lseek = sys_lseek,                            \
  }

tc__sys_table tc__sys = TC__SYS_DEFAULTS;

void tc__sys_reset(void) {
  tc__sys = (tc__sys_table)TC__SYS_DEFAULTS;
}
