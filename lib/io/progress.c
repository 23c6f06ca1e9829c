/*
 * progress.c - a progress display for epochs of batches: epoch, batch,
 * loss, accuracy, img/s and ETA. On a terminal one line is redrawn with
 * '\r' (at most every min_redraw_seconds); on a pipe or file it prints
 * `lines_per_epoch` plain lines per epoch at evenly spaced batches, so
 * logs stay short and their content does not depend on timing; quiet
 * prints nothing. It writes only to the stream its caller passes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../options.h"
#include "io_internal.h"

struct tc_progress {
  FILE *stream;
  tc_progress_options o;
  int tty;
  int64_t epoch, num_epochs, total;
  int64_t last_bucket;
  double t0, last_draw;
  int drawn, began;
  size_t last_len;
};

static const tc_progress_options defaults = TC_PROGRESS_OPTIONS_INIT;

TC_API tc_status tc_progress_options_init(tc_progress_options *o, size_t size) {
  return tc__options_init(o, size, &defaults, sizeof defaults,
                          TC__SIZE0_PROGRESS_OPTIONS,
                          "tc_progress_options_init");
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

TC_API tc_status tc_progress_create(tc_progress **out, FILE *stream,
                                    const tc_progress_options *opts) {
  static const char fn[] = "tc_progress_create";
  TC__CHECK_NULL(out, fn);
  TC__CHECK_NULL(stream, fn);
  tc_progress_options o;
  tc_status st = tc__options_accept(&o, sizeof o, opts, &defaults,
                                    TC__SIZE0_PROGRESS_OPTIONS, fn);
  if (st != TC_OK)
    return st;
  if (o.lines_per_epoch < 1)
    o.lines_per_epoch = 1;
  tc_progress *p = tc__calloc(1, sizeof *p);
  if (!p)
    return tc__oom(fn);
  p->stream = stream;
  p->o = o;
  p->tty = o.tty < 0 ? isatty(fileno(stream)) : o.tty != 0;
  *out = p;
  return TC_OK;
}

TC_API void tc_progress_destroy(tc_progress *p) {
  tc__free(p);
}

TC_API tc_status tc_progress_begin(tc_progress *p, int64_t epoch,
                                   int64_t num_epochs, int64_t total_batches) {
  static const char fn[] = "tc_progress_begin";
  TC__CHECK_NULL(p, fn);
  if (total_batches < 1 || num_epochs < 0)
    return tc__error(TC_EINVAL,
                     "%s: total_batches %" PRId64 " < 1 or "
                     "num_epochs < 0",
                     fn, total_batches);
  p->epoch = epoch;
  p->num_epochs = num_epochs;
  p->total = total_batches;
  p->last_bucket = 0;
  p->t0 = p->last_draw = now();
  p->drawn = 0;
  p->began = 1;
  p->last_len = 0;
  return TC_OK;
}

static int fmt_time(char *s, size_t cap, double secs) {
  if (!(secs >= 0) || secs > 360000.0 * 24)
    return snprintf(s, cap, "--:--");
  long t = (long)(secs + 0.5);
  if (t >= 3600)
    return snprintf(s, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  return snprintf(s, cap, "%ld:%02ld", t / 60, t % 60);
}

TC_API tc_status tc_progress_update(tc_progress *p, int64_t batch, double loss,
                                    double accuracy, int64_t images) {
  static const char fn[] = "tc_progress_update";
  TC__CHECK_NULL(p, fn);
  if (!p->began)
    return tc__error(TC_ESTATE, "%s: no tc_progress_begin() before", fn);
  if (batch < 1 || batch > p->total)
    return tc__error(TC_EINVAL, "%s: batch %" PRId64 " outside 1..%" PRId64, fn,
                     batch, p->total);
  if (p->o.quiet)
    return TC_OK;
  double t = now(), elapsed = t - p->t0;
  int last = batch == p->total;
  if (p->tty) {
    if (!last && p->drawn && t - p->last_draw < p->o.min_redraw_seconds)
      return TC_OK;
  } else {
    int64_t bucket = batch * p->o.lines_per_epoch / p->total;
    if (bucket <= p->last_bucket)
      return TC_OK;
    p->last_bucket = bucket;
  }
  char line[256], eta[32], ep[48];
  fmt_time(eta, sizeof eta,
           elapsed / (double)batch * (double)(p->total - batch));
  if (p->num_epochs > 0)
    snprintf(ep, sizeof ep, "%" PRId64 "/%" PRId64, p->epoch, p->num_epochs);
  else
    snprintf(ep, sizeof ep, "%" PRId64, p->epoch);
  double ips = elapsed > 0 ? (double)images / elapsed : 0.0;
  int n = snprintf(line, sizeof line,
                   "epoch %s  batch %" PRId64 "/%" PRId64
                   "  loss %.4f  acc %.2f%%  %.0f img/s  ETA %s",
                   ep, batch, p->total, loss, 100.0 * accuracy, ips, eta);
  size_t len = n < 0                      ? 0
               : (size_t)n >= sizeof line ? sizeof line - 1
                                          : (size_t)n;
  if (p->tty) {
    /* pad with spaces over the rest of a longer previous line */
    int pad = p->last_len > len ? (int)(p->last_len - len) : 0;
    fprintf(p->stream, "\r%s%*s", line, pad, "");
    p->last_len = len;
  } else {
    fprintf(p->stream, "%s\n", line);
  }
  fflush(p->stream);
  p->drawn = 1;
  p->last_draw = t;
  return TC_OK;
}

TC_API tc_status tc_progress_end(tc_progress *p) {
  static const char fn[] = "tc_progress_end";
  TC__CHECK_NULL(p, fn);
  if (p->tty && p->drawn && !p->o.quiet) {
    fputc('\n', p->stream);
    fflush(p->stream);
  }
  p->began = 0;
  p->drawn = 0;
  return TC_OK;
}
