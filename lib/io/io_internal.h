/*
 * io_internal.h - helpers shared by lib/io/: whole-buffer writes that
 * retry on EINTR and short writes, and the atomic-replace protocol
 * (temporary file next to the target, fsync, rename, fsync of the
 * directory). Never installed.
 */
#ifndef TC_IO_INTERNAL_H
#define TC_IO_INTERNAL_H

#include <stddef.h>

#include "../internal.h"

/* Writes all `n` bytes of `buf` to `fd`; TC_EIO naming `what` on failure. */
tc_status tc__write_all(int fd, const void *buf, size_t n, const char *what);

/* Appends `n` bytes to `fd` (opened O_APPEND) as one record: when a write
 * fails after part of the record went out, the file is truncated back to
 * where the record began, so the next record never follows a torn one;
 * when that fails too, *torn is set and every later call refuses. */
tc_status tc__append_all(int fd, const void *buf, size_t n, int *torn,
                         const char *what);

/* An atomic replacement of `path` in progress. */
typedef struct tc__atomic_file {
  int fd;
  char *tmp_path; /* path.tmp-XXXXXX (the name's stem shortened to fit
                   * NAME_MAX) */
  char *path;
} tc__atomic_file;

/* Creates `path.tmp-XXXXXX` (mode 0666 & ~umask) in the target directory;
 * when the final name is within NAME_MAX but that would not be, the stem
 * is shortened so the temporary name is NAME_MAX bytes at most.
 * `fn` names the public caller in messages. */
tc_status tc__atomic_begin(tc__atomic_file *af, const char *path,
                           const char *fn);
/* fsync, close, rename over the target, fsync the directory. On failure
 * the temporary file is removed and the target left as it was. Frees af's
 * members either way. */
tc_status tc__atomic_commit(tc__atomic_file *af, const char *fn);
/* Closes and removes the temporary file; frees af's members. */
void tc__atomic_abort(tc__atomic_file *af);

/* mkdir -p `dir` (mode 0777 & ~umask); TC_EIO when a component cannot be
 * created or `dir` is not a directory. */
tc_status tc__make_dirs(const char *dir, const char *fn);
/* mkdir -p of the directory part of `path` ("." when it has none). */
tc_status tc__make_parent_dirs(const char *path, const char *fn);

/* JSON string escaping into a growing buffer (safetensors writer). */
typedef struct tc__buf {
  char *p;
  size_t len, cap;
  int oom;
} tc__buf;
void tc__buf_put(tc__buf *b, const void *s, size_t n);
void tc__buf_puts(tc__buf *b, const char *s);
void tc__buf_json_string(tc__buf *b, const char *s);

/* Strict UTF-8 check (no overlongs, surrogates or code points > 10FFFF). */
int tc__utf8_valid(const unsigned char *s, size_t n);

/* safetensors_json.c: header checks beyond cJSON's (see there). */
struct cJSON;
typedef struct tc__json_tokens {
  size_t *start, *len; /* number tokens, document order */
  size_t n;
} tc__json_tokens;
int tc__json_is_ws(unsigned char c);
tc_status tc__json_scan(const unsigned char *s, size_t n, tc__json_tokens *tk,
                        const char *fn);
tc_status tc__json_walk(struct cJSON *node, size_t *next_number,
                        const char *fn);
tc_status tc__json_u64(const unsigned char *s, const tc__json_tokens *tk,
                       const struct cJSON *node, uint64_t *out,
                       const char *what, const char *name, const char *fn);

#endif
