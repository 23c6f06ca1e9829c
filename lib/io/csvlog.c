/*
 * csvlog.c - a CSV log of the same scalars as the TensorBoard file, one
 * row per write(2) so that a crash never leaves half a row behind a whole
 * one. A resumed run keeps the rows at steps up to its checkpoint's step
 * (the checkpoint was written after them) and drops the ones the
 * interrupted run wrote after it (rewriting the file atomically), then
 * appends; a torn last line is dropped too. The same rule as
 * tc_tblog_resume(). The file's directory is created if needed, as
 * tc_tblog_create() does. A row a failing write stored in part is cut
 * off again (tc__append_all), and a file holding part of the header
 * counts as empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

static const char header[] =
    "epoch,step,split,loss,accuracy,lr,seconds,images_per_sec\n";

struct tc_csvlog {
  int fd;
  int torn; /* tc__append_all */
};

/* Keeps the rows of `path` whose step <= resume_step, rewriting it
 * atomically. *exists = 0 when there is no file (or an empty one). */
static tc_status filter_rows(const char *path, int64_t resume_step, int *exists,
                             const char *fn) {
  tc_status st = TC_OK;
  char *text = NULL;
  tc__buf keep = {0};
  tc__atomic_file af = {.fd = -1};
  int fd = tc__sys.open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == ENOENT) {
      *exists = 0;
      return TC_OK;
    }
    return tc__error(TC_EIO, "%s: cannot open '%s': %s", fn, path,
                     strerror(errno));
  }
  struct stat sb;
  if (tc__sys.fstat(fd, &sb) != 0) {
    st = tc__error(TC_EIO, "%s: cannot stat (%s): '%s'", fn, strerror(errno),
                   path);
    goto out;
  }
  if (!S_ISREG(sb.st_mode) || sb.st_size > ((off_t)1 << 32)) {
    st = tc__error(TC_EIO, "%s: '%s' is not a regular file under 4 GiB", fn,
                   path);
    goto out;
  }
  size_t size = (size_t)sb.st_size;
  *exists = size > 0;
  if (size == 0)
    goto out;
  text = tc__malloc(size + 1);
  if (!text) {
    st = tc__oom(fn);
    goto out;
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = tc__sys.read(fd, text + got, size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      st = tc__error(TC_EIO, "%s: cannot read (%s): '%s'", fn,
                     r < 0 ? strerror(errno) : "file shrank while reading",
                     path);
      goto out;
    }
    got += (size_t)r;
  }
  text[size] = '\0';
  if (size < sizeof header - 1 && memcmp(text, header, size) == 0) {
    *exists = 0; /* a torn header: start the file again */
    goto out;
  }
  if (size < sizeof header - 1 ||
      memcmp(text, header, sizeof header - 1) != 0) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s' does not start with the CSV header "
                   "'%.*s'",
                   fn, path, (int)sizeof header - 2, header);
    goto out;
  }
  tc__buf_put(&keep, header, sizeof header - 1);
  for (char *line = text + sizeof header - 1; line < text + size;) {
    char *nl = memchr(line, '\n', (size_t)(text + size - line));
    if (!nl)
      break; /* a torn last row */
    char *comma = memchr(line, ',', (size_t)(nl - line));
    if (comma) {
      char *end;
      errno = 0;
      long long step = strtoll(comma + 1, &end, 10);
      if (errno == 0 && end > comma + 1 && *end == ',' && step <= resume_step)
        tc__buf_put(&keep, line, (size_t)(nl + 1 - line));
    }
    line = nl + 1;
  }
  if (keep.oom) {
    st = tc__oom(fn);
    goto out;
  }
  if (keep.len != size) {
    if ((st = tc__atomic_begin(&af, path, fn)) != TC_OK)
      goto out;
    if ((st = tc__write_all(af.fd, keep.p, keep.len, fn)) != TC_OK) {
      tc__atomic_abort(&af);
      goto out;
    }
    st = tc__atomic_commit(&af, fn);
  }
out:
  tc__sys.close(fd);
  tc__free(text);
  tc__free(keep.p);
  return st;
}

TC_API tc_status tc_csvlog_create(tc_csvlog **out, const char *path,
                                  int64_t resume_step) {
  static const char fn[] = "tc_csvlog_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(path, fn);
  int exists = 0;
  tc_status st = tc__make_parent_dirs(path, fn);
  if (st != TC_OK)
    return st;
  if (resume_step >= 0 &&
      (st = filter_rows(path, resume_step, &exists, fn)) != TC_OK)
    return st;
  tc_csvlog *c = tc__calloc(1, sizeof *c);
  if (!c)
    return tc__oom(fn);
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND;
  if (!exists)
    flags |= O_TRUNC;
  c->fd = tc__sys.open(path, flags, 0666);
  if (c->fd < 0) {
    st = tc__error(TC_EIO, "%s: cannot open '%s': %s", fn, path,
                   strerror(errno));
    tc__free(c);
    return st;
  }
  if (!exists && (st = tc__append_all(c->fd, header, sizeof header - 1,
                                      &c->torn, fn)) != TC_OK) {
    tc__sys.close(c->fd);
    tc__free(c);
    return st;
  }
  *out = c;
  return TC_OK;
}

TC_API void tc_csvlog_destroy(tc_csvlog *c) {
  if (!c)
    return;
  tc__sys.close(c->fd);
  tc__free(c);
}

/* Appends ",%.*g" or "," when v is NaN. */
static size_t put_num(char *p, size_t cap, double v, const char *fmt) {
  if (isnan(v))
    return (size_t)snprintf(p, cap, ",");
  return (size_t)snprintf(p, cap, fmt, v);
}

TC_API tc_status tc_csvlog_row(tc_csvlog *c, int64_t epoch, int64_t step,
                               const char *split, double loss, double accuracy,
                               double lr, double seconds,
                               double images_per_sec) {
  static const char fn[] = "tc_csvlog_row";
  TC__CHECK_NULL(c, fn);
  TC__CHECK_NULL(split, fn);
  size_t sl = strlen(split);
  if (sl > 64)
    return tc__error(TC_EINVAL, "%s: split label longer than 64 bytes", fn);
  char line[512];
  size_t n = (size_t)snprintf(line, sizeof line, "%" PRId64 ",%" PRId64 ",",
                              epoch, step);
  if (strpbrk(split, ",\"\r\n")) {
    line[n++] = '"';
    for (const char *s = split; *s; s++) {
      if (*s == '"')
        line[n++] = '"';
      line[n++] = *s;
    }
    line[n++] = '"';
  } else {
    memcpy(line + n, split, sl);
    n += sl;
  }
  n += put_num(line + n, sizeof line - n, loss, ",%.9g");
  n += put_num(line + n, sizeof line - n, accuracy, ",%.9g");
  n += put_num(line + n, sizeof line - n, lr, ",%.9g");
  n += put_num(line + n, sizeof line - n, seconds, ",%.10g");
  n += put_num(line + n, sizeof line - n, images_per_sec, ",%.8g");
  if (n + 1 >= sizeof line)
    return tc__error(TC_EINVAL, "%s: row too long (huge values?)", fn);
  line[n++] = '\n';
  return tc__append_all(c->fd, line, n, &c->torn, fn);
}
