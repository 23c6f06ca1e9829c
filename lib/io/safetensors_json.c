/*
 * safetensors_json.c - the checks of a safetensors header that cJSON does
 * not make: a lexical pass rejecting raw control characters and \u0000 and
 * recording every number token, a tree walk rejecting duplicate keys (at
 * every level) and numbering the number nodes in document order, and exact
 * u64 parsing of a number from its token (cJSON rounds through double).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io_internal.h"

/* ---- lexical pass: checks what cJSON tolerates and records numbers ---- */

int tc__json_is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Rejects raw control characters (in strings and between tokens), the
 * escape \u0000 (a NUL cannot live in a C string name), and records the
 * position of every number token in document order. */
tc_status tc__json_scan(const unsigned char *s, size_t n, tc__json_tokens *tk,
                        const char *fn) {
  size_t count = 0;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      tk->start = tc__calloc(count ? count : 1, sizeof *tk->start);
      tk->len = tc__calloc(count ? count : 1, sizeof *tk->len);
      if (!tk->start || !tk->len)
        return tc__oom(fn);
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
      unsigned char c = s[i];
      if (c == '"') {
        for (i++;; i++) {
          if (i >= n)
            return tc__error(TC_EFORMAT, "%s: unterminated string in header",
                             fn);
          if (s[i] < 0x20)
            return tc__error(TC_EFORMAT,
                             "%s: control character 0x%02x in a "
                             "header string",
                             fn, s[i]);
          if (s[i] == '"')
            break;
          if (s[i] == '\\') {
            i++;
            if (i < n && s[i] == 'u' && n - i > 4 &&
                memcmp(s + i + 1, "0000", 4) == 0)
              return tc__error(TC_EFORMAT, "%s: \\u0000 in a header string",
                               fn);
            if (i >= n)
              return tc__error(TC_EFORMAT, "%s: unterminated string", fn);
          }
        }
        i++;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        size_t b = i;
        while (i < n &&
               (s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' ||
                s[i] == 'E' || (s[i] >= '0' && s[i] <= '9')))
          i++;
        if (pass == 1) {
          tk->start[k] = b;
          tk->len[k] = i - b;
        }
        k++;
      } else if (c < 0x20 && !tc__json_is_ws(c)) {
        return tc__error(TC_EFORMAT, "%s: control character 0x%02x in header",
                         fn, c);
      } else {
        i++;
      }
    }
    count = k;
    tk->n = k;
  }
  return TC_OK;
}

/* ---- tree checks ---- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pre-order walk: numbers get their token index in valueint (we own the
 * tree; cJSON's own valueint is a saturated copy we never use), objects
 * are checked for duplicate keys. */
tc_status tc__json_walk(cJSON *node, size_t *next_number, const char *fn) {
  if (cJSON_IsNumber(node)) {
    if (*next_number > INT_MAX)
      return tc__error(TC_EFORMAT, "%s: too many numbers in header", fn);
    node->valueint = (int)(*next_number)++;
    return TC_OK;
  }
  if (cJSON_IsObject(node)) {
    size_t k = 0;
    for (cJSON *c = node->child; c; c = c->next)
      k++;
    if (k > 1) {
      char **keys = tc__calloc(k, sizeof *keys);
      if (!keys)
        return tc__oom(fn);
      size_t i = 0;
      for (cJSON *c = node->child; c; c = c->next)
        keys[i++] = c->string;
      qsort(keys, k, sizeof *keys, cmp_str);
      for (i = 1; i < k; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) {
          tc_status st = tc__error(TC_EFORMAT,
                                   "%s: duplicate key '%.200s' "
                                   "in header",
                                   fn, keys[i]);
          tc__free(keys);
          return st;
        }
      tc__free(keys);
    }
  }
  if (cJSON_IsObject(node) || cJSON_IsArray(node))
    for (cJSON *c = node->child; c; c = c->next) {
      tc_status st = tc__json_walk(c, next_number, fn);
      if (st != TC_OK)
        return st;
    }
  return TC_OK;
}

/* The exact unsigned value of a JSON number token: digits only, no sign,
 * fraction or exponent (as the reference's usize fields demand). */
tc_status tc__json_u64(const unsigned char *s, const tc__json_tokens *tk,
                       const cJSON *node, uint64_t *out, const char *what,
                       const char *name, const char *fn) {
  if (!cJSON_IsNumber(node))
    return tc__error(TC_EFORMAT, "%s: tensor '%.200s': %s is not a number", fn,
                     name, what);
  size_t i = (size_t)node->valueint;
  if (i >= tk->n)
    return tc__error(TC_EFORMAT, "%s: header numbers out of step", fn);
  const unsigned char *p = s + tk->start[i];
  size_t len = tk->len[i];
  if (len == 0 || (len > 1 && p[0] == '0'))
    return tc__error(TC_EFORMAT, "%s: tensor '%.200s': bad %s '%.*s'", fn, name,
                     what, (int)(len > 40 ? 40 : len), (const char *)p);
  uint64_t v = 0;
  for (size_t k = 0; k < len; k++) {
    if (p[k] < '0' || p[k] > '9')
      return tc__error(TC_EFORMAT,
                       "%s: tensor '%.200s': %s '%.*s' is not a "
                       "non-negative integer",
                       fn, name, what, (int)(len > 40 ? 40 : len),
                       (const char *)p);
    if (__builtin_mul_overflow(v, 10u, &v) ||
        __builtin_add_overflow(v, (uint64_t)(p[k] - '0'), &v))
      return tc__error(TC_EFORMAT,
                       "%s: tensor '%.200s': %s overflows 64 "
                       "bits",
                       fn, name, what);
  }
  *out = v;
  return TC_OK;
}
