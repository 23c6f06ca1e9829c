/*
 * idx.c - MNIST-style IDX files (raw or gzip, told apart by content through
 * zlib's transparent gzread). Both headers are read and checked, and the
 * image and label counts compared, before anything is allocated: magic
 * 0x00000803 (N,H,W) / 0x00000801 (N), sizes within bounds, the payload
 * exactly the file's rest (raw), or for gzip one the compressed file can
 * hold (at most 1032x) and then exactly what a first inflating pass counts
 * (the data is not kept), so a lying header never costs memory; that pass
 * also refuses bytes after the last gzip member, which gzread skips. Reading
 * then demands exactly the header's byte count and end of stream, so
 * truncation, trailing bytes and a bad gzip CRC are TC_EFORMAT. Only
 * unsigned-byte (type 0x08) files are accepted.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data_internal.h"

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u

typedef struct idx_file {
  const char *path;
  gzFile gz;
  uint32_t dims[3];
  uint64_t payload; /* bytes after the header */
} idx_file;

/* A read error: corrupt deflate data is the file's fault (EFORMAT); a
 * system error is I/O. */
static tc_status read_error(gzFile gz, const char *path, const char *what,
                            const char *fn) {
  int code = Z_OK;
  const char *msg = gzerror(gz, &code);
  if (code == Z_ERRNO)
    return tc__error(TC_EIO, "%s: '%s': read error in %s: %s", fn, path, what,
                     strerror(errno));
  if (code != Z_OK && code != Z_BUF_ERROR)
    return tc__error(TC_EFORMAT, "%s: '%s': corrupt compressed data in %s: %s",
                     fn, path, what, msg ? msg : "?");
  return tc__error(TC_EFORMAT, "%s: '%s': truncated in %s", fn, path, what);
}

/* Reads exactly `n` bytes. */
static tc_status read_exact(gzFile gz, void *buf, uint64_t n, const char *path,
                            const char *what, const char *fn) {
  unsigned char *p = buf;
  while (n > 0) {
    unsigned chunk = n > (1u << 24) ? (1u << 24) : (unsigned)n;
    int got = gzread(gz, p, chunk);
    if (got <= 0 || (unsigned)got != chunk)
      return read_error(gz, path, what, fn);
    p += got;
    n -= (uint64_t)got;
  }
  return TC_OK;
}

/* Inflates the whole gzip file on `fd` (every member, by pread: the gzFile
 * reading the same descriptor keeps its place) without keeping the data;
 * *out is the decompressed size, counted up to `limit` + 1 bytes. Anything
 * after the last member that does not start another member is TC_EFORMAT:
 * zlib's gzread would skip it silently ("trailing garbage", zlib.h's gzread
 * notes), so a corrupt or appended-to file would load. */
static tc_status gz_scan(int fd, uint64_t fsize, uint64_t limit, uint64_t *out,
                         const char *path, const char *fn) {
  unsigned char in[1 << 14], sink[1 << 14]; /* sink's contents never read */
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 15 + 16) != Z_OK)
    return tc__oom(fn);
  uint64_t at = 0, total = 0; /* file bytes read, bytes inflated */
  tc_status st = TC_OK;
  for (;;) {
    if (z.avail_in == 0 && at < fsize) {
      ssize_t r = pread(fd, in, sizeof in, (off_t)at);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0) {
        st = tc__error(TC_EIO, "%s: read error (%s) in the data: '%s'", fn,
                       strerror(errno), path);
        break;
      }
      if (r == 0)
        fsize = at; /* shrank while reading */
      at += (uint64_t)r;
      z.next_in = in;
      z.avail_in = (uInt)r;
    }
    if (z.avail_in == 0 && at >= fsize) {
      st = tc__error(TC_EFORMAT, "%s: '%s': truncated in the data", fn, path);
      break;
    }
    z.next_out = sink;
    z.avail_out = sizeof sink;
    int zr = inflate(&z, Z_NO_FLUSH);
    total += sizeof sink - z.avail_out;
    if (total > limit)
      break; /* more than the header implies: the caller says so */
    if (zr == Z_MEM_ERROR) {
      st = tc__oom(fn);
      break;
    }
    if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
      st = tc__error(TC_EFORMAT, "%s: '%s': corrupt compressed data: %s", fn,
                     path, z.msg ? z.msg : "?");
      break;
    }
    if (zr != Z_STREAM_END)
      continue;
    uint64_t end = at - z.avail_in; /* this member's end in the file */
    if (end == fsize)
      break; /* the last member */
    unsigned char magic[2];
    if (pread(fd, magic, 2, (off_t)end) != 2 || magic[0] != 0x1f ||
        magic[1] != 0x8b) {
      st = tc__error(TC_EFORMAT,
                     "%s: '%s': %llu trailing bytes after the gzip stream", fn,
                     path, (unsigned long long)(fsize - end));
      break;
    }
    inflateReset(&z); /* another member: gzread concatenates them */
  }
  inflateEnd(&z);
  if (st == TC_OK)
    *out = total;
  return st;
}

/* Opens `path` and validates its header for `ndim` dims; leaves the stream
 * at the payload. On failure closes it. */
static tc_status idx_open(idx_file *f, const char *path, uint32_t magic,
                          const char *fn) {
  int ndim = (int)(magic & 0xff);
  uint64_t fsize;
  int fd;
  tc_status st = tc__open_regular(path, &fd, &fsize, fn);
  if (st != TC_OK)
    return st;
  f->path = path;
  f->gz = gzdopen(fd, "rb");
  if (!f->gz) {
    close(fd);
    return tc__oom(fn);
  }
  gzbuffer(f->gz, 1u << 17);
  unsigned char hdr[16];
  uint64_t hdr_bytes = 4 + 4 * (uint64_t)ndim;
  st = read_exact(f->gz, hdr, hdr_bytes, path, "the header", fn);
  if (st != TC_OK)
    goto fail;
  uint32_t got_magic = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
                       (uint32_t)hdr[2] << 8 | hdr[3];
  if (got_magic != magic) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': bad IDX magic 0x%08x (expected 0x%08x: unsigned "
                   "bytes, %d dims)",
                   fn, path, got_magic, magic, ndim);
    goto fail;
  }
  uint64_t payload = 1;
  for (int d = 0; d < ndim; d++) {
    const unsigned char *b = hdr + 4 + 4 * d;
    f->dims[d] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                 (uint32_t)b[2] << 8 | b[3];
    uint32_t limit = d == 0 ? INT32_MAX : TC_DATASET_MAX_SIDE;
    if (f->dims[d] < 1 || f->dims[d] > limit) {
      st = tc__error(TC_EFORMAT, "%s: '%s': dim %d is %u (must be 1..%u)", fn,
                     path, d, f->dims[d], limit);
      goto fail;
    }
    payload *= f->dims[d]; /* < 2^31 * 2^16 * 2^16: no overflow */
  }
  if (payload + hdr_bytes >= TC__DATA_MAX_BYTES) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': header implies %llu bytes, over the 2 GiB limit",
                   fn, path, (unsigned long long)(payload + hdr_bytes));
    goto fail;
  }
  if (gzdirect(f->gz)) {
    if (fsize != payload + hdr_bytes) {
      st = tc__error(
          TC_EFORMAT, "%s: '%s': file has %llu bytes, header implies %llu (%s)",
          fn, path, (unsigned long long)fsize,
          (unsigned long long)(payload + hdr_bytes),
          fsize < payload + hdr_bytes ? "truncated" : "trailing bytes");
      goto fail;
    }
  } else if (payload + hdr_bytes > fsize * TC__DEFLATE_MAX_RATIO + 4096) {
    st = tc__error(TC_EFORMAT,
                   "%s: '%s': header implies %llu bytes, more than a %llu-byte "
                   "gzip file can hold",
                   fn, path, (unsigned long long)(payload + hdr_bytes),
                   (unsigned long long)fsize);
    goto fail;
  } else {
    /* a compressed file's true size is known only by inflating it: count
     * first, so a lying header costs time but never memory */
    uint64_t have;
    st = gz_scan(fd, fsize, hdr_bytes + payload, &have, path, fn);
    if (st != TC_OK)
      goto fail;
    have -= have < hdr_bytes ? have : hdr_bytes;
    if (have != payload) {
      st = tc__error(
          TC_EFORMAT, "%s: '%s': %llu bytes of data, header implies %llu (%s)",
          fn, path, (unsigned long long)have, (unsigned long long)payload,
          have < payload ? "truncated" : "trailing bytes");
      goto fail;
    }
  }
  f->payload = payload;
  return TC_OK;
fail:
  gzclose(f->gz);
  f->gz = NULL;
  return st;
}

/* Reads the payload into buf and demands end of stream after it. */
static tc_status idx_read(idx_file *f, void *buf, const char *fn) {
  tc_status st = read_exact(f->gz, buf, f->payload, f->path, "the data", fn);
  if (st != TC_OK)
    return st;
  /* one more read reaches the gzip trailer, where zlib checks CRC and
   * length */
  unsigned char extra;
  int got = gzread(f->gz, &extra, 1);
  if (got > 0)
    return tc__error(TC_EFORMAT,
                     "%s: '%s': trailing bytes after %llu bytes "
                     "of data",
                     fn, f->path, (unsigned long long)f->payload);
  int code = Z_OK;
  (void)gzerror(f->gz, &code);
  if (got < 0 || code != Z_OK)
    return read_error(f->gz, f->path, "the data", fn);
  return TC_OK;
}

static tc_status load_idx(tc_dataset **out, const char *images_path,
                          const char *labels_path, int num_classes,
                          const char *fn) {
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(images_path, fn);
  TC__CHECK_NULL(labels_path, fn);
  if (num_classes < 1 || num_classes > 256)
    return tc__error(TC_EINVAL, "%s: num_classes %d outside 1..256", fn,
                     num_classes);
  idx_file im = {0}, lb = {0};
  tc_dataset *ds = NULL;
  tc_status st = idx_open(&im, images_path, IDX_IMAGES_MAGIC, fn);
  if (st != TC_OK)
    return st;
  st = idx_open(&lb, labels_path, IDX_LABELS_MAGIC, fn);
  if (st != TC_OK)
    goto fail;
  if (im.dims[0] != lb.dims[0]) {
    st = tc__error(TC_EFORMAT, "%s: '%s' holds %u images but '%s' %u labels",
                   fn, images_path, im.dims[0], labels_path, lb.dims[0]);
    goto fail;
  }
  st = tc__dataset_alloc(&ds, im.dims[0], 1, (int)im.dims[1], (int)im.dims[2],
                         num_classes, fn);
  if (st != TC_OK)
    goto fail;
  st = idx_read(&im, ds->pixels, fn);
  if (st != TC_OK)
    goto fail;
  /* labels are bytes: read them into the last quarter of the int32 array
   * and widen front to back; int32 i (bytes 4i..4i+3) ends before byte
   * 3n+i+1, the next unread one, so no second buffer is needed */
  uint8_t *bytes = (uint8_t *)ds->labels + 3 * (size_t)ds->n;
  st = idx_read(&lb, bytes, fn);
  if (st != TC_OK)
    goto fail;
  for (int64_t i = 0; i < ds->n; i++) {
    uint8_t v = bytes[i];
    if (v >= num_classes) {
      st = tc__error(TC_EFORMAT,
                     "%s: '%s': label %u of sample %lld is "
                     "outside [0, %d)",
                     fn, labels_path, v, (long long)i, num_classes);
      goto fail;
    }
    ds->labels[i] = v;
  }
  gzclose(im.gz);
  gzclose(lb.gz);
  *out = ds;
  return TC_OK;
fail:
  if (im.gz)
    gzclose(im.gz);
  if (lb.gz)
    gzclose(lb.gz);
  tc_dataset_destroy(ds);
  return st;
}

TC_API tc_status tc_dataset_load_idx(tc_dataset **out, const char *images_path,
                                     const char *labels_path, int num_classes) {
  return load_idx(out, images_path, labels_path, num_classes,
                  "tc_dataset_load_idx");
}

/* dir/name, or dir/name.gz when the raw file is absent. */
static tc_status mnist_path(char *buf, size_t size, const char *dir,
                            const char *name, const char *fn) {
  static const char *const suffix[2] = {"", ".gz"};
  for (int t = 0; t < 2; t++) {
    int len = snprintf(buf, size, "%s/%s%s", dir, name, suffix[t]);
    if (len < 0 || (size_t)len >= size)
      return tc__error(TC_EINVAL, "%s: directory path too long", fn);
    struct stat sb; /* stat, not open: a FIFO must not block here */
    if (stat(buf, &sb) == 0)
      return TC_OK;
  }
  return tc__error(TC_EIO, "%s: neither '%s/%s' nor '%s.gz' can be opened", fn,
                   dir, name, name);
}

TC_API tc_status tc_dataset_load_mnist(tc_dataset **out, const char *dir,
                                       int train) {
  static const char fn[] = "tc_dataset_load_mnist";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(dir, fn);
  char images[4096], labels[4096];
  tc_status st = mnist_path(
      images, sizeof images, dir,
      train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", fn);
  if (st != TC_OK)
    return st;
  st = mnist_path(labels, sizeof labels, dir,
                  train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte",
                  fn);
  if (st != TC_OK)
    return st;
  return load_idx(out, images, labels, 10, fn);
}
