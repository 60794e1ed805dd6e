/*
 * A positional read that never waits for the disk: preadv2(RWF_NOWAIT) copies what the page cache
 * holds and fails with EAGAIN where it would have to read the device. The replica serves its reads
 * synchronously on the event loop (cheapest when the data is cached); a read that would block goes to
 * the thread pool instead, so one cache miss no longer stalls every other read behind it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "exports.h"

/* Bytes read; WOULD_BLOCK when nothing could be read without I/O (or the file system lacks RWF_NOWAIT). */
#define WOULD_BLOCK (-1)

/*
 * preadNoWait(fd, buf, at, length, position): reads up to `length` bytes at file offset `position`
 * into buf[at...]. Returns the count (0 at end of file, possibly short where the cache ends) or -1
 * when it would block. Other errors throw with the errno's text.
 */
static napi_value pread_nowait(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool typed = false;
  if (argc == 5) napi_is_typedarray(env, argv[1], &typed);
  int32_t fd = -1;
  int64_t at = -1, length = -1, position = -1;
  if (!typed || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &at) != napi_ok || napi_get_value_int64(env, argv[3], &length) != napi_ok ||
      napi_get_value_int64(env, argv[4], &position) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected (fd, Uint8Array, at, length, position)");
    return NULL;
  }
  napi_typedarray_type type;
  size_t size = 0;
  void *data = NULL;
  napi_get_typedarray_info(env, argv[1], &type, &size, &data, NULL, NULL);
  if (type != napi_uint8_array || at < 0 || length < 0 || position < 0 || (uint64_t)at + (uint64_t)length > size) {
    napi_throw_range_error(env, NULL, "preadNoWait: range outside the buffer or negative");
    return NULL;
  }
  struct iovec iov = {.iov_base = (char *)data + at, .iov_len = (size_t)length};
  ssize_t n;
  do {
    n = preadv2(fd, &iov, 1, position, RWF_NOWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    if (err != EAGAIN && err != EOPNOTSUPP) {
      char msg[128];
      snprintf(msg, sizeof msg, "preadv2: %s", strerror(err));
      napi_throw_error(env, "ERR_SHORTHORN_NATIVE", msg);
      return NULL;
    }
    n = WOULD_BLOCK;
  }
  napi_value out;
  napi_create_int64(env, (int64_t)n, &out);
  return out;
}

napi_status nowait_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"preadNoWait", NULL, pread_nowait, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
