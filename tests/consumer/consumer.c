/*
 * consumer.c - a user's program, built outside the meson project with
 * `cc consumer.c $(pkg-config --cflags --libs tinycnn)` against an installed
 * (or uninstalled) copy: proves the header, pkg-config file and soname work.
 */
#include <libtinycnn.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  if (tc_version_number() != TC_VERSION_NUMBER) {
    fprintf(stderr, "header %s, library %s\n", TC_VERSION_STRING, tc_version());
    return 1;
  }
  tc_backend *be = NULL;
  if (tc_backend_create(&be, "cpu") != TC_OK) {
    fprintf(stderr, "cpu backend: %s\n", tc_last_error());
    return 1;
  }
  int64_t shape[2] = {2, 3};
  tc_tensor *t = NULL;
  float in[6] = {1, 2, 3, 4, 5, 6}, out[6] = {0};
  if (tc_tensor_create(&t, be, shape, 2, TC_FLOAT32) != TC_OK ||
      tc_tensor_copy_from_host(t, in, sizeof in) != TC_OK ||
      tc_tensor_copy_to_host(t, out, sizeof out) != TC_OK ||
      memcmp(in, out, sizeof in) != 0) {
    fprintf(stderr, "tensor round trip failed: %s\n", tc_last_error());
    return 1;
  }
  /* an error is a status and a message, never an abort */
  if (tc_tensor_create(NULL, be, shape, 2, TC_FLOAT32) != TC_EINVAL ||
      tc_last_error()[0] == '\0')
    return 1;
  tc_tensor_destroy(t);
  tc_backend_destroy(be);
  printf("consumer OK: tinycnn %s\n", tc_version());
  return 0;
}
