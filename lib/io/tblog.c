/*
 * tblog.c - TensorBoard event files, written without TensorFlow: TFRecord
 * framing (u64 length, masked CRC-32C of the length, data, masked CRC-32C
 * of the data) around hand-encoded `Event` protobufs (wall_time, step,
 * file_version, scalar summary, SessionLog START). Field numbers and wire
 * types are those of tensorflow/core/util/event.proto and summary.proto;
 * proto3 omits zero-valued scalars, so a step of 0 is not written. Each
 * record goes out in one write(2) so a reader never sees half a record
 * from us (TensorBoard re-reads a growing file); a record a failing write
 * stored in part is cut off again (tc__append_all).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io_internal.h"

struct tc_tblog {
  int fd;
  int torn; /* tc__append_all */
  char *path;
};

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[i] = c;
  }
}

TC_API uint32_t tc_crc32c(uint32_t crc, const void *data, size_t n) {
  pthread_once(&crc_once, crc_init);
  const unsigned char *p = data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++)
    crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

TC_API uint32_t tc_crc32c_mask(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

/* ---- protobuf encoding into a fixed buffer ---- */

typedef struct pb {
  unsigned char *p;
  size_t len;
} pb;

static void put_byte(pb *b, unsigned v) {
  b->p[b->len++] = (unsigned char)v;
}

static void put_varint(pb *b, uint64_t v) {
  while (v >= 0x80) {
    put_byte(b, (unsigned)(v & 0x7f) | 0x80);
    v >>= 7;
  }
  put_byte(b, (unsigned)v);
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static void put_le(pb *b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    put_byte(b, (unsigned)(v >> (8 * i)) & 0xff);
}

static void put_bytes(pb *b, const void *s, size_t n) {
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

enum { EV_SCALAR, EV_VERSION, EV_START };

/* Encodes and writes one Event record. */
static tc_status write_event(tc_tblog *w, int kind, double wall_time,
                             int64_t step, const char *tag, float value,
                             const char *fn) {
  static const char version[] = "brain.Event:2";
  size_t taglen = tag ? strlen(tag) : 0;
  /* Summary.Value = {tag, simple_value}; Summary = {value}; sizes first */
  size_t value_len = 1 + varint_len(taglen) + taglen + 5;
  size_t summary_len = 1 + varint_len(value_len) + value_len;
  size_t cap = 12 + 9 + 11 + 2 + sizeof version + 4 + 1 +
               varint_len(summary_len) + summary_len + 4;
  unsigned char *buf = tc__malloc(cap);
  if (!buf)
    return tc__oom(fn);
  pb b = {buf + 12, 0}; /* room for length and its CRC */
  uint64_t bits;
  memcpy(&bits, &wall_time, sizeof bits);
  put_byte(&b, 0x09);
  put_le(&b, bits, 8);
  if (step != 0) {
    put_byte(&b, 0x10);
    put_varint(&b, (uint64_t)step); /* int64: two's complement varint */
  }
  if (kind == EV_VERSION) {
    put_byte(&b, 0x1a);
    put_varint(&b, sizeof version - 1);
    put_bytes(&b, version, sizeof version - 1);
  } else if (kind == EV_START) {
    put_byte(&b, 0x3a); /* session_log { status: START } */
    put_byte(&b, 2);
    put_byte(&b, 0x08);
    put_byte(&b, 1);
  } else {
    uint32_t fb;
    memcpy(&fb, &value, sizeof fb);
    put_byte(&b, 0x2a);
    put_varint(&b, summary_len);
    put_byte(&b, 0x0a);
    put_varint(&b, value_len);
    put_byte(&b, 0x0a);
    put_varint(&b, taglen);
    put_bytes(&b, tag, taglen);
    put_byte(&b, 0x15);
    put_le(&b, fb, 4);
  }
  size_t n = b.len;
  pb h = {buf, 0};
  put_le(&h, n, 8);
  put_le(&h, tc_crc32c_mask(tc_crc32c(0, buf, 8)), 4);
  pb t = {buf + 12 + n, 0};
  put_le(&t, tc_crc32c_mask(tc_crc32c(0, buf + 12, n)), 4);
  tc_status st = tc__append_all(w->fd, buf, 12 + n + 4, &w->torn, fn);
  tc__free(buf);
  return st;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

TC_API tc_status tc_tblog_create(tc_tblog **out, const char *logdir) {
  static const char fn[] = "tc_tblog_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(logdir, fn);
  if (!*logdir)
    return tc__error(TC_EINVAL, "%s: logdir is empty", fn);
  tc_status st = tc__make_dirs(logdir, fn);
  if (st != TC_OK)
    return st;
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  for (char *p = host; *p; p++)
    if (*p == '/')
      *p = '_';
  tc_tblog *w = tc__calloc(1, sizeof *w);
  size_t cap = strlen(logdir) + strlen(host) + 64;
  char *path = tc__malloc(cap);
  if (!w || !path) {
    tc__free(w);
    tc__free(path);
    return tc__oom(fn);
  }
  double t0 = now_seconds();
  long long secs = (long long)t0;
  w->fd = -1;
  /* two writers in the same second get distinct names (.1, .2, ...) */
  for (int k = 0; k < 100 && w->fd < 0; k++) {
    if (k == 0)
      snprintf(path, cap, "%s/events.out.tfevents.%010lld.%s", logdir, secs,
               host);
    else
      snprintf(path, cap, "%s/events.out.tfevents.%010lld.%s.%d", logdir, secs,
               host, k);
    w->fd = tc__sys.open(
        path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
    if (w->fd < 0 && errno != EEXIST)
      break;
  }
  if (w->fd < 0) {
    st = tc__error(TC_EIO, "%s: cannot create '%s': %s", fn, path,
                   strerror(errno));
    goto fail;
  }
  w->path = path;
  if ((st = write_event(w, EV_VERSION, t0, 0, NULL, 0.f, fn)) != TC_OK)
    goto fail;
  *out = w;
  return TC_OK;
fail:
  if (w->fd >= 0) {
    tc__sys.close(w->fd);
    tc__sys.unlink(path);
  }
  tc__free(path);
  tc__free(w);
  return st;
}

TC_API void tc_tblog_destroy(tc_tblog *w) {
  if (!w)
    return;
  tc__sys.close(w->fd);
  tc__free(w->path);
  tc__free(w);
}

TC_API const char *tc_tblog_path(const tc_tblog *w) {
  return w ? w->path : NULL;
}

TC_API tc_status tc_tblog_scalar_at(tc_tblog *w, const char *tag, int64_t step,
                                    double value, double wall_time) {
  static const char fn[] = "tc_tblog_scalar";
  TC__CHECK_NULL(w, fn);
  TC__CHECK_NULL(tag, fn);
  size_t n = strlen(tag);
  if (n == 0 || n > 4096 || !tc__utf8_valid((const unsigned char *)tag, n))
    return tc__error(TC_EINVAL,
                     "%s: tag empty, longer than 4096 bytes or "
                     "not UTF-8",
                     fn);
  return write_event(w, EV_SCALAR, wall_time, step, tag, (float)value, fn);
}

TC_API tc_status tc_tblog_scalar(tc_tblog *w, const char *tag, int64_t step,
                                 double value) {
  return tc_tblog_scalar_at(w, tag, step, value, now_seconds());
}

/* TensorBoard's event accumulator, on a SessionLog START at step S, keeps
 * the points with step < S (its _Purge's `x.step < event.step`); the
 * checkpoint's own step must stay, so the marker goes one step after it. */
TC_API tc_status tc_tblog_resume(tc_tblog *w, int64_t step) {
  static const char fn[] = "tc_tblog_resume";
  TC__CHECK_NULL(w, fn);
  if (step < 0 || step == INT64_MAX)
    return tc__error(TC_EINVAL, "%s: step %lld is not in [0, 2^63 - 1)", fn,
                     (long long)step);
  return write_event(w, EV_START, now_seconds(), step + 1, NULL, 0.f, fn);
}

TC_API tc_status tc_tblog_flush(tc_tblog *w) {
  static const char fn[] = "tc_tblog_flush";
  TC__CHECK_NULL(w, fn);
  if (tc__sys.fsync(w->fd) != 0 && errno != EINVAL)
    return tc__error(TC_EIO, "%s: fsync of '%s' failed: %s", fn, w->path,
                     strerror(errno));
  return TC_OK;
}
