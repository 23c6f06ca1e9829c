/*
 * test_safetensors.c - the safetensors reader and writer: round trips of
 * every supported dtype (rank 0 and zero-size included), the reference
 * serializer's byte-exact vectors, one hand-made file per rejection rule
 * of the format, files written by Python (tests/golden/), atomic commits
 * that fail (the old file must survive) and allocation failures.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libtinycnn.h>

#include "testutil.h"

static const char *tmpdir;

static void setup(void) {
  tmpdir = tu_tmpdir_create("tc_st");
}

static void teardown(void) {
  tu_tmpdir_remove();
}

/* Number of "*.tmp-*" files left in tmpdir. */
static int leftovers(void) {
  DIR *d = opendir(tmpdir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += strstr(e->d_name, ".tmp-") != NULL;
  closedir(d);
  return n;
}

/* ---- round trips ---- */

START_TEST(test_roundtrip_all_dtypes) {
  tc_backend *be;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  int64_t s23[] = {2, 3}, s4[] = {4}, s03[] = {0, 3};
  tc_tensor *f, *i32, *i64, *z;
  ck_assert_int_eq(tc_tensor_create(&f, be, s23, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&i32, be, s4, 1, TC_INT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&i64, be, NULL, 0, TC_INT64), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&z, be, s03, 2, TC_FLOAT32), TC_OK);
  float fv[6] = {1.5f, -2.f, 3.25f, 0.f, -0.f, 1e-30f};
  int32_t iv[4] = {-2147483647 - 1, -1, 0, 2147483647};
  int64_t lv = -9000000000000000001ll;
  ck_assert_int_eq(tc_tensor_copy_from_host(f, fv, sizeof fv), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_from_host(i32, iv, sizeof iv), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_from_host(i64, &lv, sizeof lv), TC_OK);

  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "f32", f), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "i32", i32), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "scalar", i64), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "zero", z), TC_OK);
  uint16_t half[3] = {0x3c00, 0xc000, 0x3800};
  int64_t s3[] = {3};
  ck_assert_int_eq(
      tc_safetensors_writer_add(w, "half", TC_ST_F16, s3, 1, half, sizeof half),
      TC_OK);
  unsigned char f4[2] = {0x12, 0x34};
  ck_assert_int_eq(tc_safetensors_writer_add(w, "f4", TC_ST_F4, s4, 1, f4, 2),
                   TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(w, "epoch", "12"), TC_OK);
  ck_assert_int_eq(
      tc_safetensors_writer_add_metadata(
          w, "note", "a \"quoted\"\\ line\nwith tab\t and caf\xc3\xa9"),
      TC_OK);
  /* bad adds change nothing */
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "f32", f), TC_EINVAL);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "", f), TC_EINVAL);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "__metadata__", f),
                   TC_EINVAL);
  ck_assert_int_eq(tc_safetensors_writer_add_tensor(w, "bad\xff", f),
                   TC_EINVAL);
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(w, "epoch", "1"),
                   TC_EINVAL);
  ck_assert_int_eq(tc_safetensors_writer_add(w, "x", TC_ST_F16, s3, 1, half, 5),
                   TC_ESHAPE);
  int64_t s1[] = {1};
  ck_assert_int_eq(tc_safetensors_writer_add(w, "x", TC_ST_F4, s1, 1, f4, 1),
                   TC_ESHAPE); /* 4 bits are not a whole byte */
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("a.st")), TC_OK);
  /* the writer keeps its copies: change the source, commit elsewhere */
  float sevens[6] = {7, 7, 7, 7, 7, 7};
  ck_assert_int_eq(tc_tensor_copy_from_host(f, sevens, sizeof sevens), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("b.st")), TC_OK);
  tc_safetensors_writer_destroy(w);
  ck_assert_int_eq(leftovers(), 0);

  size_t na, nb;
  unsigned char *ba = tu_slurp(tu_tmppath("a.st"), &na),
                *bb = tu_slurp(tu_tmppath("b.st"), &nb);
  ck_assert_mem_eq(ba, bb, na); /* deterministic output */
  uint64_t N = 0;
  for (int i = 7; i >= 0; i--)
    N = N << 8 | ba[i];
  ck_assert_uint_eq(N % 8, 0);
  ck_assert_int_eq(ba[8], '{');
  free(ba);
  free(bb);

  tc_safetensors *st;
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("a.st")), TC_OK);
  ck_assert_int_eq(tc_safetensors_count(st), 6);
  const char *names[] = {"f32", "f4", "half", "i32", "scalar", "zero"};
  for (int i = 0; i < 6; i++)
    ck_assert_str_eq(tc_safetensors_name(st, i), names[i]);
  ck_assert_ptr_null(tc_safetensors_name(st, 6));
  tc_st_dtype d;
  int64_t shape[8];
  int nd;
  ck_assert_int_eq(tc_safetensors_info(st, "zero", &d, shape, 8, &nd), TC_OK);
  ck_assert_int_eq(d, TC_ST_F32);
  ck_assert_int_eq(nd, 2);
  ck_assert_int_eq(shape[0], 0);
  ck_assert_int_eq(shape[1], 3);
  ck_assert_int_eq(tc_safetensors_info(st, "scalar", &d, shape, 8, &nd), TC_OK);
  ck_assert_int_eq(d, TC_ST_I64);
  ck_assert_int_eq(nd, 0);
  ck_assert_int_eq(tc_safetensors_info(st, "nope", &d, shape, 8, &nd),
                   TC_ENOTFOUND);

  tc_tensor *f2, *i322, *i642, *z2;
  ck_assert_int_eq(tc_tensor_create(&f2, be, s23, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&i322, be, s4, 1, TC_INT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&i642, be, NULL, 0, TC_INT64), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&z2, be, s03, 2, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st, "f32", f2), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st, "i32", i322), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st, "scalar", i642), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st, "zero", z2), TC_OK);
  float fo[6];
  int32_t io[4];
  int64_t lo;
  ck_assert_int_eq(tc_tensor_copy_to_host(f2, fo, sizeof fo), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(i322, io, sizeof io), TC_OK);
  ck_assert_int_eq(tc_tensor_copy_to_host(i642, &lo, sizeof lo), TC_OK);
  ck_assert_mem_eq(fo, fv, sizeof fv); /* bit-exact, -0 included */
  ck_assert_mem_eq(io, iv, sizeof iv);
  ck_assert(lo == lv);
  /* mismatches */
  ck_assert_int_eq(tc_safetensors_read(st, "i32", f2), TC_ESHAPE);
  ck_assert_int_eq(tc_safetensors_read(st, "f32", i322), TC_ESHAPE);
  ck_assert_int_eq(tc_safetensors_read(st, "half", f2), TC_EUNSUPPORTED);
  uint16_t ho[3];
  ck_assert_int_eq(tc_safetensors_read_raw(st, "half", ho, sizeof ho), TC_OK);
  ck_assert_mem_eq(ho, half, sizeof half);
  ck_assert_int_eq(tc_safetensors_read_raw(st, "half", ho, 4), TC_ESHAPE);
  unsigned char f4o[2];
  ck_assert_int_eq(tc_safetensors_read_raw(st, "f4", f4o, 2), TC_OK);
  ck_assert_mem_eq(f4o, f4, 2);
  ck_assert_str_eq(tc_safetensors_metadata(st, "note"),
                   "a \"quoted\"\\ line\nwith tab\t and caf\xc3\xa9");
  ck_assert_ptr_null(tc_safetensors_metadata(st, "Epoch")); /* case matters */
  ck_assert_int_eq(tc_safetensors_metadata_count(st), 2);
  ck_assert_str_eq(tc_safetensors_metadata_key(st, 0), "epoch");
  int64_t ep;
  ck_assert_int_eq(tc_safetensors_metadata_i64(st, "epoch", &ep), TC_OK);
  ck_assert_int_eq(ep, 12);
  ck_assert_int_eq(tc_safetensors_metadata_i64(st, "note", &ep), TC_EFORMAT);
  tc_safetensors_destroy(st);
  tc_tensor *all[] = {f, i32, i64, z, f2, i322, i642, z2};
  for (int i = 0; i < 8; i++)
    tc_tensor_destroy(all[i]);
  tc_backend_destroy(be);
}
END_TEST

/* The reference implementation's own serializer vectors (tensor.rs). */
START_TEST(test_reference_vectors) {
  float v[6] = {0, 1, 2, 3, 4, 5};
  int64_t s[] = {1, 2, 3};
  static const unsigned char want[] = {
      64,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110,
      46,  48,  34,  58,  123, 34,  100, 116, 121, 112, 101, 34,  58,  34,
      70,  51,  50,  34,  44,  34,  115, 104, 97,  112, 101, 34,  58,  91,
      49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,  95,  111,
      102, 102, 115, 101, 116, 115, 34,  58,  91,  48,  44,  50,  52,  93,
      125, 125, 0,   0,   0,   0,   0,   0,   128, 63,  0,   0,   0,   64,
      0,   0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64};
  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(
      tc_safetensors_writer_add(w, "attn.0", TC_ST_F32, s, 3, v, sizeof v),
      TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("v.st")), TC_OK);
  tc_safetensors_writer_destroy(w);
  size_t n;
  unsigned char *b = tu_slurp(tu_tmppath("v.st"), &n);
  ck_assert_uint_eq(n, sizeof want);
  ck_assert_mem_eq(b, want, n);
  free(b);

  static const unsigned char empty[] = {8,   0,   0,   0,   0,   0,   0,   0,
                                        '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("e.st")), TC_OK);
  b = tu_slurp(tu_tmppath("e.st"), &n);
  ck_assert_uint_eq(n, sizeof empty);
  ck_assert_mem_eq(b, empty, n);
  free(b);
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(w, "framework", "pt"),
                   TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("m.st")), TC_OK);
  tc_safetensors_writer_destroy(w);
  b = tu_slurp(tu_tmppath("m.st"), &n);
  const char *mh = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
  ck_assert_uint_eq(n, 48);
  ck_assert_int_eq(b[0], 40);
  ck_assert_mem_eq(b + 8, mh, 40);
  free(b);
  tc_safetensors *st;
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("m.st")), TC_OK);
  ck_assert_int_eq(tc_safetensors_count(st), 0);
  ck_assert_str_eq(tc_safetensors_metadata(st, "framework"), "pt");
  tc_safetensors_destroy(st);
}
END_TEST

/* ---- rejection rules: one hand-made file each ---- */

/* Builds a file: 8-byte length of `hdr`, hdr, then `data` zero bytes. */
static unsigned char *mk(const char *hdr, size_t hlen, size_t data, size_t *n) {
  *n = 8 + hlen + data;
  unsigned char *b = calloc(1, *n + 1);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(b + 8, hdr, hlen);
  return b;
}

static tc_status open_hdr(const char *hdr, size_t data) {
  size_t n;
  unsigned char *b = mk(hdr, strlen(hdr), data, &n);
  tc_safetensors *st = NULL;
  tc_status s = tc_safetensors_create_from_buffer(&st, b, n);
  if (s == TC_OK) {
    ck_assert_ptr_nonnull(st);
    tc_safetensors_destroy(st);
  } else {
    ck_assert_ptr_null(st); /* outputs untouched */
  }
  free(b);
  return s;
}

#define REJECT(hdr, data, needle)                                              \
  do {                                                                         \
    ck_assert_msg(open_hdr((hdr), (data)) == TC_EFORMAT, "accepted: %s",       \
                  (hdr));                                                      \
    ck_assert_msg(strstr(tc_last_error(), (needle)) != NULL,                   \
                  "'%s': message '%s' lacks '%s'", (hdr), tc_last_error(),     \
                  (needle));                                                   \
  } while (0)
#define ACCEPT(hdr, data)                                                      \
  ck_assert_msg(open_hdr((hdr), (data)) == TC_OK, "rejected %s: %s", (hdr),    \
                tc_last_error())

#define T(name, dt, shape, b, e)                                               \
  "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape                        \
  ",\"data_offsets\":[" #b "," #e "]}"

START_TEST(test_reject_sizes) {
  unsigned char small[5] = {0};
  tc_safetensors *st = NULL;
  ck_assert_int_eq(tc_safetensors_create_from_buffer(&st, small, 5),
                   TC_EFORMAT);
  ck_assert_ptr_null(st);
  ck_assert_int_eq(tc_safetensors_create_from_buffer(&st, small, 0),
                   TC_EFORMAT);
  /* N > 1e8, and N = 2^64-1 (8 + N would wrap): refused before allocating */
  unsigned char big[16] = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'};
  ck_assert_int_eq(tc_safetensors_create_from_buffer(&st, big, 16), TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "exceeds"));
  memset(big, 0xff, 8);
  ck_assert_int_eq(tc_safetensors_create_from_buffer(&st, big, 16), TC_EFORMAT);
  /* N = 1e8 exactly but the file is short */
  unsigned char edge[16] = {0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'};
  ck_assert_int_eq(tc_safetensors_create_from_buffer(&st, edge, 16),
                   TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "past the end"));
  /* the same through files */
  FILE *f = fopen(tu_tmppath("short.st"), "wb");
  fwrite(small, 1, 5, f);
  fclose(f);
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("short.st")),
                   TC_EFORMAT);
  f = fopen(tu_tmppath("big.st"), "wb");
  fwrite(big, 1, 16, f);
  fclose(f);
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("big.st")),
                   TC_EFORMAT);
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("absent.st")), TC_EIO);
  ck_assert_int_eq(tc_safetensors_create(&st, tmpdir), TC_EIO);
  ck_assert_ptr_null(st);
}
END_TEST

START_TEST(test_reject_text) {
  REJECT("{\"a\xff\":{}}", 0, "UTF-8");
  REJECT("{\"\xc0\xaf\":1}", 0, "UTF-8");     /* overlong '/' */
  REJECT("{\"\xed\xa0\x80\":1}", 0, "UTF-8"); /* surrogate */
  size_t n;
  unsigned char *b = mk("{}\0 ", 4, 0, &n);
  tc_safetensors *st = NULL;
  ck_assert_int_eq(tc_safetensors_create_from_buffer(&st, b, n), TC_EFORMAT);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "NUL"));
  free(b);
  REJECT("", 0, "JSON");
  REJECT("[]", 0, "not a JSON object");
  REJECT("\"x\"", 0, "not a JSON object");
  REJECT("{} {}", 0, "after");
  REJECT("{}x", 0, "after");
  REJECT("{", 0, "JSON");
  REJECT("{\x01}", 0, "control");
  REJECT("{\"a\tb\":{}}", 0, "control");
  REJECT("{\"a\\u0000\":{}}", 0, "\\u0000");
  ACCEPT(" \n\t\r{}\r\n \t", 0); /* JSON whitespace around is fine */
  ACCEPT("{}", 0);
}
END_TEST

START_TEST(test_reject_duplicates) {
  REJECT("{" T("a", "U8", "[1]", 0, 1) "," T("a", "U8", "[1]", 1, 2) "}", 2,
         "duplicate");
  /* the same key spelled with an escape */
  REJECT("{" T("a", "U8", "[1]", 0, 1) "," T("\\u0061", "U8", "[1]", 1, 2) "}",
         2, "duplicate");
  REJECT("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate");
  REJECT("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate");
  REJECT("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
         "\"data_offsets\":[0,1]}}",
         1, "duplicate");
  /* keys differing in case are distinct */
  ACCEPT("{" T("a", "U8", "[1]", 0, 1) "," T("A", "U8", "[1]", 1, 2) "}", 2);
}
END_TEST

START_TEST(test_reject_entries) {
  REJECT("{" T("a", "F33", "[1]", 0, 4) "}", 4, "unknown dtype");
  REJECT("{" T("a", "f32", "[1]", 0, 4) "}", 4, "unknown dtype");
  REJECT("{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "not a string");
  REJECT("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "lacks");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "lacks");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks");
  REJECT("{\"a\":[1]}", 0, "not an object");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
         4, "2 entries");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4,
         "not an array");
  REJECT("{" T("a", "F32", "[1.0]", 0, 4) "}", 4, "integer");
  REJECT("{" T("a", "F32", "[1e0]", 0, 4) "}", 4, "integer");
  REJECT("{" T("a", "F32", "[-1]", 0, 4) "}", 4, "integer");
  REJECT("{" T("a", "F32", "[01]", 0, 4) "}", 4, "bad shape");
  REJECT("{" T("a", "F32", "[\"1\"]", 0, 4) "}", 4, "not a number");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}",
         4, "integer");
  REJECT("{" T("a", "U8", "[18446744073709551616]", 0, 1) "}", 1,
         "overflows 64 bits");
  /* element count, then byte size, overflowing 64 bits */
  REJECT("{" T("a", "U8", "[4294967296,4294967296,2]", 0, 0) "}", 0,
         "overflows");
  REJECT("{" T("a", "F32", "[4611686018427387904]", 0, 0) "}", 0, "overflows");
  /* a zero after an overflow does not rescue it (as the reference) */
  REJECT("{" T("a", "U8", "[4294967296,4294967296,2,0]", 0, 0) "}", 0,
         "overflows");
  /* 2^53 + 1: equal to 2^53 once through a double; exact parsing sees it */
  REJECT("{" T("a", "U8", "[9007199254740993]", 0, 9007199254740992) "}", 0,
         "bytes between its offsets");
  REJECT("{" T("a", "F32", "[2]", 4, 0) "}", 4, "end offset");
  REJECT("{" T("a", "F32", "[2]", 0, 4) "}", 4, "shape and dtype need 8");
  REJECT("{" T("a", "F4", "[3]", 0, 1) "}", 1, "whole number of bytes");
  ACCEPT("{" T("a", "F4", "[4]", 0, 2) "}", 2);
  ACCEPT("{" T("a", "F6_E2M3", "[4]", 0, 3) "}", 3);
  REJECT("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
  REJECT("{\"__metadata__\":[]}", 0, "not an object");
  ACCEPT("{\"__metadata__\":null}", 0); /* Option<HashMap> in the reference */
  /* unknown fields are ignored, as by the reference's serde structs */
  ACCEPT("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
         "\"extra\":[1.5,-2]}}",
         1);
  /* rank 0 and zero-size */
  ACCEPT("{" T("s", "I64", "[]", 0, 8) "," T("z", "F32", "[0,5]", 8, 8) "}", 8);
}
END_TEST

START_TEST(test_reject_layout) {
  REJECT("{" T("a", "U8", "[2]", 1, 3) "}", 3, "begins at 1");
  REJECT("{" T("a", "U8", "[2]", 0, 2) "," T("b", "U8", "[2]", 3, 5) "}", 5,
         "gap or an overlap");
  REJECT("{" T("a", "U8", "[2]", 0, 2) "," T("b", "U8", "[2]", 1, 3) "}", 3,
         "gap or an overlap");
  REJECT("{" T("a", "U8", "[2]", 0, 2) "," T("b", "U8", "[2]", 0, 2) "}", 2,
         "gap or an overlap");
  REJECT("{" T("a", "U8", "[2]", 0, 2) "}", 3, "cover 2 bytes"); /* trailing */
  REJECT("{" T("a", "U8", "[2]", 0, 2) "}", 1, "cover 2 bytes"); /* missing */
  REJECT("{}", 1, "cover 0 bytes");
  /* any order in the header is fine when the offsets tile the buffer */
  ACCEPT("{" T("b", "U8", "[2]", 2, 4) "," T("a", "U8", "[2]", 0, 2) "}", 4);
  /* zero-size tensors may sit anywhere, sharing an offset */
  ACCEPT("{" T("a", "U8", "[2]", 0, 2) "," T("z", "U8", "[0]", 2, 2) "," T(
             "y", "U8", "[0]", 0, 0) "," T("b", "U8", "[1]", 2, 3) "}",
         3);
}
END_TEST

/* ---- files written by Python (tests/golden/gen_safetensors.py) ---- */

static const char *golden(const char *name) {
  static char buf[1024];
  const char *root = getenv("TINYCNN_SOURCE_ROOT");
  snprintf(buf, sizeof buf, "%s/tests/golden/%s", root ? root : "..", name);
  return buf;
}

START_TEST(test_golden_python) {
  tc_backend *be;
  ck_assert_int_eq(tc_backend_create(&be, "cpu"), TC_OK);
  tc_safetensors *st;
  ck_assert_msg(
      tc_safetensors_create(&st, golden("golden_basic.safetensors")) == TC_OK,
      "%s", tc_last_error());
  ck_assert_int_eq(tc_safetensors_count(st), 8);
  int64_t s[] = {2, 3, 2, 2};
  tc_tensor *w, *nbt;
  ck_assert_int_eq(tc_tensor_create(&w, be, s, 4, TC_FLOAT32), TC_OK);
  ck_assert_int_eq(tc_tensor_create(&nbt, be, NULL, 0, TC_INT64), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st, "conv1.weight", w), TC_OK);
  ck_assert_int_eq(tc_safetensors_read(st, "bn1.num_batches_tracked", nbt),
                   TC_OK);
  float wv[24];
  int64_t nv;
  tc_tensor_copy_to_host(w, wv, sizeof wv);
  tc_tensor_copy_to_host(nbt, &nv, sizeof nv);
  for (int i = 0; i < 24; i++)
    ck_assert_float_eq(wv[i], (float)i * 0.25f - 3.0f);
  ck_assert_int_eq(nv, 42);
  int32_t lab[5];
  ck_assert_int_eq(tc_safetensors_read_raw(st, "labels", lab, sizeof lab),
                   TC_OK);
  ck_assert_int_eq(lab[0], -2);
  ck_assert_int_eq(lab[4], 2147483647);
  int64_t big[2];
  ck_assert_int_eq(tc_safetensors_read_raw(st, "big", big, sizeof big), TC_OK);
  ck_assert(big[0] == -((int64_t)1 << 62) && big[1] == ((int64_t)1 << 62) + 1);
  uint16_t h[3];
  ck_assert_int_eq(tc_safetensors_read_raw(st, "half", h, sizeof h), TC_OK);
  ck_assert_uint_eq(h[0], 0x3c00);
  ck_assert_uint_eq(h[1], 0xc000);
  ck_assert_uint_eq(h[2], 0x3800);
  tc_st_dtype d;
  int nd;
  int64_t shp[4];
  ck_assert_int_eq(tc_safetensors_info(st, "empty", &d, shp, 4, &nd), TC_OK);
  ck_assert(d == TC_ST_F32 && nd == 2 && shp[0] == 0 && shp[1] == 3);
  ck_assert_str_eq(tc_safetensors_metadata(st, "note"),
                   "caf\xc3\xa9 \"quoted\"");
  ck_assert_str_eq(tc_safetensors_metadata(st, "format"), "pt");
  tc_safetensors_destroy(st);
  tc_tensor_destroy(w);
  tc_tensor_destroy(nbt);
  tc_backend_destroy(be);
}
END_TEST

/* Every safetensors file the generators committed is valid. */
START_TEST(test_golden_all_valid) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", golden(""));
  DIR *dp = opendir(dir);
  ck_assert_ptr_nonnull(dp);
  int n = 0;
  for (struct dirent *e; (e = readdir(dp));) {
    size_t len = strlen(e->d_name);
    if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors") != 0)
      continue;
    tc_safetensors *st;
    ck_assert_msg(tc_safetensors_create(&st, golden(e->d_name)) == TC_OK,
                  "%s: %s", e->d_name, tc_last_error());
    ck_assert_int_ge(tc_safetensors_count(st), 1);
    tc_safetensors_destroy(st);
    n++;
  }
  closedir(dp);
  ck_assert_int_ge(n, 2);
}
END_TEST

/* ---- atomic commit ---- */

static void write_old(const char *path) {
  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(w, "which", "old"),
                   TC_OK);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, path), TC_OK);
  tc_safetensors_writer_destroy(w);
}

static void expect_old(const char *path) {
  tc_safetensors *st;
  ck_assert_int_eq(tc_safetensors_create(&st, path), TC_OK);
  ck_assert_str_eq(tc_safetensors_metadata(st, "which"), "old");
  tc_safetensors_destroy(st);
}

static tc_safetensors_writer *big_writer(size_t bytes) {
  tc_safetensors_writer *w;
  ck_assert_int_eq(tc_safetensors_writer_create(&w), TC_OK);
  unsigned char *data = calloc(1, bytes);
  int64_t s[] = {(int64_t)bytes};
  ck_assert_int_eq(
      tc_safetensors_writer_add(w, "data", TC_ST_U8, s, 1, data, bytes), TC_OK);
  free(data);
  ck_assert_int_eq(tc_safetensors_writer_add_metadata(w, "which", "new"),
                   TC_OK);
  return w;
}

START_TEST(test_atomic_write_failures) {
  const char *path = tu_tmppath("ckpt.st");
  write_old(path);
  tc_safetensors_writer *w = big_writer(1 << 20);
  /* the directory does not exist */
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("no/such/x.st")),
                   TC_EIO);
  /* the target is a directory: rename fails after the data is written */
  mkdir(tu_tmppath("adir"), 0755);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath("adir")), TC_EIO);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "rename"));
  ck_assert_int_eq(leftovers(), 0);
  /* writes fail midway (file size limit): EFBIG instead of SIGXFSZ */
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {100000, 100000}, old;
  getrlimit(RLIMIT_FSIZE, &old);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, path), TC_EIO);
  ck_assert_ptr_nonnull(strstr(tc_last_error(), "write failed"));
  ck_assert_int_eq(leftovers(), 0);
  expect_old(path);
  tc_safetensors_writer_destroy(w);
  /* a small commit under the limit still works and replaces the file */
  w = big_writer(1000);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, path), TC_OK);
  tc_safetensors_writer_destroy(w);
  tc_safetensors *st;
  ck_assert_int_eq(tc_safetensors_create(&st, path), TC_OK);
  ck_assert_str_eq(tc_safetensors_metadata(st, "which"), "new");
  tc_safetensors_destroy(st);
  ck_assert_int_eq(leftovers(), 0);
}
END_TEST

/* Names of 250 and 255 bytes fit NAME_MAX; their temporary names must
 * too (a fixed ".tmp-XXXXXX" suffix made them 261 and 266 bytes long). */
START_TEST(test_atomic_long_name) {
  const size_t lens[] = {244, 250, 255};
  for (size_t k = 0; k < 3; k++) {
    char name[256];
    memset(name, 'c', lens[k]);
    memcpy(name + lens[k] - 3, ".st", 3);
    name[lens[k]] = '\0';
    const char *path = tu_tmppath(name);
    tc_safetensors_writer *w = big_writer(100);
    ck_assert_msg(tc_safetensors_writer_commit(w, path) == TC_OK, "%s",
                  tc_last_error());
    tc_safetensors_writer_destroy(w);
    tc_safetensors *st;
    ck_assert_int_eq(tc_safetensors_create(&st, path), TC_OK);
    ck_assert_str_eq(tc_safetensors_metadata(st, "which"), "new");
    tc_safetensors_destroy(st);
    ck_assert_int_eq(leftovers(), 0);
  }
  /* a multi-byte character is not cut in the middle: 3 bytes each */
  char name[256] = "";
  for (int i = 0; i < 84; i++)
    strcat(name, "\xc3\xa9\x61"); /* "éa" */
  tc_safetensors_writer *w = big_writer(100);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, tu_tmppath(name)), TC_OK);
  tc_safetensors_writer_destroy(w);
  ck_assert_int_eq(leftovers(), 0);
}
END_TEST

START_TEST(test_atomic_readonly_dir) {
  if (geteuid() == 0)
    return; /* root ignores directory permissions; nothing to prove */
  const char *path = tu_tmppath("ro/ckpt.st");
  mkdir(tu_tmppath("ro"), 0755);
  write_old(path);
  chmod(tu_tmppath("ro"), 0555);
  tc_safetensors_writer *w = big_writer(4096);
  ck_assert_int_eq(tc_safetensors_writer_commit(w, path), TC_EIO);
  tc_safetensors_writer_destroy(w);
  chmod(tu_tmppath("ro"), 0755);
  expect_old(path);
}
END_TEST

/* ---- allocation failures: TC_ENOMEM, no leak, outputs untouched ---- */

START_TEST(test_alloc_failures) {
  const char *path = tu_tmppath("f.st");
  {
    tc_safetensors_writer *w = big_writer(64);
    int64_t s[] = {2};
    int64_t v[2] = {1, 2};
    tc_safetensors_writer_add(w, "b", TC_ST_I64, s, 1, v, sizeof v);
    tc_safetensors_writer_add_metadata(w, "k2", "v2");
    ck_assert_int_eq(tc_safetensors_writer_commit(w, path), TC_OK);
    tc_safetensors_writer_destroy(w);
  }
  for (int persistent = 0; persistent < 2; persistent++) {
    tu_alloc_install();
    /* open */
    for (long k = 1;; k++) {
      long live = tu_alloc_live();
      tu_alloc_fail_at(k, persistent);
      tc_safetensors *st = NULL;
      tc_status s = tc_safetensors_create(&st, path);
      if (!tu_alloc_failed()) {
        ck_assert_int_eq(s, TC_OK);
        tc_safetensors_destroy(st);
        ck_assert_int_eq(tu_alloc_live(), live);
        break;
      }
      ck_assert_int_eq(s, TC_ENOMEM);
      ck_assert_ptr_null(st);
      ck_assert_int_eq(tu_alloc_live(), live);
    }
    /* build and commit */
    for (long k = 1;; k++) {
      long live = tu_alloc_live();
      tu_alloc_fail_at(k, persistent);
      tc_safetensors_writer *w = NULL;
      tc_status s = tc_safetensors_writer_create(&w);
      int64_t sh[] = {3};
      float v[3] = {1, 2, 3};
      if (s == TC_OK)
        s = tc_safetensors_writer_add(w, "x", TC_ST_F32, sh, 1, v, sizeof v);
      if (s == TC_OK)
        s = tc_safetensors_writer_add_metadata(w, "k", "v");
      if (s == TC_OK)
        s = tc_safetensors_writer_commit(w, tu_tmppath("g.st"));
      tc_safetensors_writer_destroy(w);
      if (!tu_alloc_failed()) {
        ck_assert_int_eq(s, TC_OK);
        ck_assert_int_eq(tu_alloc_live(), live);
        break;
      }
      ck_assert_int_eq(s, TC_ENOMEM);
      ck_assert_int_eq(tu_alloc_live(), live);
      ck_assert_int_eq(leftovers(), 0);
    }
    tu_alloc_fail_at(0, 0);
    tu_alloc_uninstall();
  }
}
END_TEST

/* A FIFO is refused at once, not opened (that would block until a writer
 * came); the alarm turns a hang into a failure. */
START_TEST(test_reject_fifo) {
  alarm(20);
  ck_assert_int_eq(mkfifo(tu_tmppath("fifo.st"), 0600), 0);
  tc_safetensors *st = NULL;
  ck_assert_int_eq(tc_safetensors_create(&st, tu_tmppath("fifo.st")), TC_EIO);
  ck_assert_ptr_null(st);
  ck_assert_msg(strstr(tc_last_error(), "not a regular file") &&
                    strstr(tc_last_error(), tu_tmppath("fifo.st")),
                "message: %s", tc_last_error());
  alarm(0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("safetensors");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_roundtrip_all_dtypes);
  tcase_add_test(tc, test_reference_vectors);
  tcase_add_test(tc, test_reject_sizes);
  tcase_add_test(tc, test_reject_text);
  tcase_add_test(tc, test_reject_fifo);
  tcase_add_test(tc, test_reject_duplicates);
  tcase_add_test(tc, test_reject_entries);
  tcase_add_test(tc, test_reject_layout);
  tcase_add_test(tc, test_golden_python);
  tcase_add_test(tc, test_golden_all_valid);
  tcase_add_test(tc, test_atomic_write_failures);
  tcase_add_test(tc, test_atomic_long_name);
  tcase_add_test(tc, test_atomic_readonly_dir);
  tcase_add_test(tc, test_alloc_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return tu_run_suite(suite());
}
