/*
 * atomic_file.c - replacing a file so that a crash at any moment leaves
 * either the old or the new content: write a temporary file in the same
 * directory (rename is atomic only within a file system), fsync it, rename
 * it over the target, then fsync the directory so the rename itself is
 * durable. Also small buffer and UTF-8 helpers shared by lib/io/.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io_internal.h"

tc_status tc__write_all(int fd, const void *buf, size_t n, const char *what) {
  const char *p = buf;
  while (n > 0) {
    /* large buffers go in pieces: some kernels cap a write at 2 GiB */
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t w = tc__sys.write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return tc__error(TC_EIO, "%s: write failed: %s", what, strerror(errno));
    }
    if (w == 0)
      return tc__error(TC_EIO, "%s: write returned 0", what);
    p += w;
    n -= (size_t)w;
  }
  return TC_OK;
}

tc_status tc__append_all(int fd, const void *buf, size_t n, int *torn,
                         const char *what) {
  if (*torn)
    return tc__error(TC_EIO,
                     "%s: refusing to append after a torn record "
                     "(an earlier write failed half-way and truncate failed)",
                     what);
  const char *p = buf;
  size_t done = 0;
  while (done < n) {
    size_t chunk = n - done > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - done;
    long w = tc__sys.write(fd, p + done, chunk);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = w < 0 ? errno : 0;
      if (done > 0) {
        /* O_APPEND: the offset is the end of what we wrote; cut the part
         * of this record back off so the next one does not follow it */
        int64_t end = tc__sys.lseek(fd, 0, SEEK_CUR);
        if (end < (int64_t)done ||
            tc__sys.ftruncate(fd, end - (int64_t)done) != 0)
          *torn = 1;
      }
      return tc__error(TC_EIO, "%s: write failed: %s%s", what,
                       e ? strerror(e) : "it returned 0",
                       *torn ? "; a torn record is left at the end of the "
                               "file (truncate failed too)"
                             : "");
    }
    done += (size_t)w;
  }
  return TC_OK;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return tc__strdup(".");
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d = tc__malloc(n + 1);
  if (d) {
    memcpy(d, path, n);
    d[n] = '\0';
  }
  return d;
}

tc_status tc__atomic_begin(tc__atomic_file *af, const char *path,
                           const char *fn) {
  static atomic_uint counter;
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  af->fd = -1;
  af->tmp_path = NULL;
  af->path = tc__strdup(path);
  /* the temporary name must fit NAME_MAX whenever the final name does: a
   * long final name gives the temporary one a shortened stem (cut at a
   * UTF-8 character boundary), still in the same directory */
  const char *slash = strrchr(path, '/');
  size_t base = slash ? (size_t)(slash + 1 - path) : 0;
  size_t n = strlen(path);
  size_t stem = n - base, max_stem = NAME_MAX - (sizeof ".tmp-XXXXXX" - 1);
  if (stem > max_stem) {
    stem = max_stem;
    while (stem > 0 && ((unsigned char)path[base + stem] & 0xC0) == 0x80)
      stem--;
  }
  af->tmp_path = tc__malloc(base + stem + sizeof ".tmp-XXXXXX");
  if (!af->path || !af->tmp_path) {
    tc__free(af->path);
    tc__free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    return tc__oom(fn);
  }
  for (int attempt = 0; attempt < 100; attempt++) {
    /* unpredictable enough to avoid collisions between processes; O_EXCL
     * makes a collision harmless (we retry) */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x =
        (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^
        (uint64_t)getpid() << 32 ^
        (uint64_t)atomic_fetch_add(&counter, 1) * 0xBF58476D1CE4E5B9ull;
    char suffix[7];
    for (int i = 0; i < 6; i++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      suffix[i] = alphabet[(x >> 33) % 62];
    }
    suffix[6] = '\0';
    snprintf(af->tmp_path, base + stem + sizeof ".tmp-XXXXXX", "%.*s.tmp-%s",
             (int)(base + stem), path, suffix);
    af->fd = tc__sys.open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                          0666);
    if (af->fd >= 0)
      return TC_OK;
    if (errno != EEXIST && errno != EINTR)
      break;
  }
  tc_status st = tc__error(TC_EIO, "%s: cannot create '%s': %s", fn,
                           af->tmp_path, strerror(errno));
  tc__free(af->path);
  tc__free(af->tmp_path);
  af->path = af->tmp_path = NULL;
  return st;
}

void tc__atomic_abort(tc__atomic_file *af) {
  if (af->fd >= 0)
    tc__sys.close(af->fd);
  if (af->tmp_path)
    tc__sys.unlink(af->tmp_path);
  tc__free(af->tmp_path);
  tc__free(af->path);
  af->fd = -1;
  af->tmp_path = af->path = NULL;
}

tc_status tc__atomic_commit(tc__atomic_file *af, const char *fn) {
  tc_status st = TC_OK;
  char *dir = NULL;
  if (tc__sys.fsync(af->fd) != 0) {
    st = tc__error(TC_EIO, "%s: fsync of '%s' failed: %s", fn, af->tmp_path,
                   strerror(errno));
    goto fail;
  }
  int fd = af->fd;
  af->fd = -1;
  if (tc__sys.close(fd) != 0) {
    st = tc__error(TC_EIO, "%s: close of '%s' failed: %s", fn, af->tmp_path,
                   strerror(errno));
    goto fail;
  }
  dir = dir_of(af->path);
  if (!dir) {
    st = tc__oom(fn);
    goto fail;
  }
  if (tc__sys.rename(af->tmp_path, af->path) != 0) {
    st = tc__error(TC_EIO, "%s: rename of '%s' to '%s' failed: %s", fn,
                   af->tmp_path, af->path, strerror(errno));
    goto fail;
  }
  /* the new file is in place; make the directory entry durable */
  int dfd = tc__sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dfd >= 0) {
    int r = tc__sys.fsync(dfd);
    int e = errno;
    tc__sys.close(dfd); /* read-only: its failure loses nothing */
    /* some file systems cannot fsync a directory (EINVAL): nothing to do */
    if (r != 0 && e != EINVAL && e != EROFS)
      st = tc__error(TC_EIO,
                     "%s: '%s' was written but fsync of directory "
                     "'%s' failed: %s",
                     fn, af->path, dir, strerror(e));
  } else if (errno != EACCES) {
    /* a directory we may write but not read (mode -wx) cannot be opened
     * to fsync: nothing to do then; any other failure is reported, as a
     * failed fsync is, since the rename may not survive a crash */
    st = tc__error(TC_EIO,
                   "%s: '%s' was written but open of directory "
                   "'%s' (to fsync it) failed: %s",
                   fn, af->path, dir, strerror(errno));
  }
  tc__free(dir);
  tc__free(af->tmp_path);
  tc__free(af->path);
  af->tmp_path = af->path = NULL;
  return st;
fail:
  tc__free(dir);
  tc__atomic_abort(af);
  return st;
}

tc_status tc__make_dirs(const char *dir, const char *fn) {
  char *d = tc__strdup(dir);
  if (!d)
    return tc__oom(fn);
  tc_status st = TC_OK;
  for (char *p = d + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (tc__sys.mkdir(d, 0777) != 0 && errno != EEXIST) {
        st = tc__error(TC_EIO, "%s: cannot create directory '%s': %s", fn, d,
                       strerror(errno));
        break;
      }
      *p = c;
      if (c == '\0')
        break;
    }
  }
  tc__free(d);
  if (st == TC_OK) {
    struct stat sb;
    if (tc__sys.stat(dir, &sb) != 0)
      st = tc__error(TC_EIO, "%s: cannot stat directory '%s': %s", fn, dir,
                     strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
      st = tc__error(TC_EIO, "%s: '%s' is not a directory", fn, dir);
  }
  return st;
}

tc_status tc__make_parent_dirs(const char *path, const char *fn) {
  char *dir = dir_of(path);
  if (!dir)
    return tc__oom(fn);
  tc_status st = tc__make_dirs(dir, fn);
  tc__free(dir);
  return st;
}

/* ---- growing buffer ---- */

void tc__buf_put(tc__buf *b, const void *s, size_t n) {
  if (b->oom)
    return;
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) {
        b->oom = 1;
        return;
      }
      cap *= 2;
    }
    char *p = tc__malloc(cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    if (b->len)
      memcpy(p, b->p, b->len);
    tc__free(b->p);
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

void tc__buf_puts(tc__buf *b, const char *s) {
  tc__buf_put(b, s, strlen(s));
}

void tc__buf_json_string(tc__buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  tc__buf_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[6];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      tc__buf_put(b, esc, 2);
    } else if (*p < 0x20) {
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[*p >> 4];
      esc[5] = hex[*p & 15];
      tc__buf_put(b, esc, 6);
    } else {
      tc__buf_put(b, p, 1);
    }
  }
  tc__buf_put(b, "\"", 1);
}

int tc__utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i < (size_t)len)
      return 0;
    for (int k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += (size_t)len;
  }
  return 1;
}
