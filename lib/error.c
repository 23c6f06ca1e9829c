/*
 * error.c - per-thread error messages, status names and the log callback.
 * The out-of-memory path formats into the thread's fixed buffer, so
 * reporting it allocates nothing.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Room for two paths of PATH_MAX (4096) and the reason after them: a
 * message such as "fn: 'path': reason" must not lose its reason to a long
 * path. It costs each thread 9 KiB of thread-local storage. */
#define MESSAGE_MAX (2 * 4096 + 1024)
static _Thread_local char tls_message[MESSAGE_MAX];

static tc_log_fn log_fn;
static void *log_user;

tc_status tc__verror(tc_status status, const char *fmt, va_list ap) {
  vsnprintf(tls_message, sizeof tls_message, fmt, ap);
  return status;
}

tc_status tc__error(tc_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tc__verror(status, fmt, ap);
  va_end(ap);
  return status;
}

TC_API tc_status tc_backend_error(tc_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tc__verror(status, fmt, ap);
  va_end(ap);
  return status;
}

TC_API tc_status tc_set_error(tc_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tc__verror(status, fmt, ap);
  va_end(ap);
  return status;
}

tc_status tc__oom(const char *where) {
  snprintf(tls_message, sizeof tls_message, "%s: out of memory", where);
  return TC_ENOMEM;
}

TC_API const char *tc_last_error(void) {
  return tls_message;
}

TC_API void tc_clear_error(void) {
  tls_message[0] = '\0';
}

TC_API const char *tc_status_string(tc_status status) {
  switch (status) {
  case TC_OK:
    return "TC_OK";
  case TC_ENOMEM:
    return "TC_ENOMEM";
  case TC_EINVAL:
    return "TC_EINVAL";
  case TC_ESHAPE:
    return "TC_ESHAPE";
  case TC_EIO:
    return "TC_EIO";
  case TC_EFORMAT:
    return "TC_EFORMAT";
  case TC_EUNSUPPORTED:
    return "TC_EUNSUPPORTED";
  case TC_EVERSION:
    return "TC_EVERSION";
  case TC_ENOTFOUND:
    return "TC_ENOTFOUND";
  case TC_ENUMERIC:
    return "TC_ENUMERIC";
  case TC_EBACKEND:
    return "TC_EBACKEND";
  case TC_ESTATE:
    return "TC_ESTATE";
  }
  return "TC_E(unknown)";
}

TC_API void tc_set_log_callback(tc_log_fn fn, void *user) {
  log_fn = fn;
  log_user = user;
}

void tc__log(tc_log_level level, const char *fmt, ...) {
  if (!log_fn)
    return;
  char buf[MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  log_fn(log_user, level, buf);
}
