/*
 * Sparse-file primitives Node's fs module lacks: SEEK_DATA / SEEK_HOLE extent discovery and
 * FALLOC_FL_PUNCH_HOLE. Kept tiny and synchronous: each call is one or a few syscalls on an fd the
 * caller already owns, so a thread-pool hop would cost more than the call itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "exports.h"

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_SHORTHORN_NATIVE", msg);
  return NULL;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

/* seek(fd, offset, whence) where whence is 3 (SEEK_DATA) or 4 (SEEK_HOLE); returns -1 on ENXIO. */
static napi_value do_seek(napi_env env, napi_callback_info info, int whence) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, off;
  if (argc < 2 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &off)) {
    napi_throw_type_error(env, NULL, "expected (fd, offset)");
    return NULL;
  }
  off_t r = lseek((int)fd, (off_t)off, whence);
  napi_value out;
  if (r < 0) {
    if (errno == ENXIO) {
      napi_create_int64(env, -1, &out);
      return out;
    }
    return throw_errno(env, whence == SEEK_DATA ? "lseek(SEEK_DATA)" : "lseek(SEEK_HOLE)", errno);
  }
  napi_create_int64(env, (int64_t)r, &out);
  return out;
}

static napi_value seek_data(napi_env env, napi_callback_info info) { return do_seek(env, info, SEEK_DATA); }
static napi_value seek_hole(napi_env env, napi_callback_info info) { return do_seek(env, info, SEEK_HOLE); }

/* punchHole(fd, offset, length): deallocate, keep the apparent size. */
static napi_value punch_hole(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, off, len;
  if (argc < 3 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &off) || !get_i64(env, argv[2], &len)) {
    napi_throw_type_error(env, NULL, "expected (fd, offset, length)");
    return NULL;
  }
  if (len > 0 && fallocate((int)fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0)
    return throw_errno(env, "fallocate(PUNCH_HOLE)", errno);
  return NULL;
}

/*
 * dataExtents(fd, start, end): the allocated ranges of [start, end) as a flat array
 * [off0, len0, off1, len1, ...]. One call per file instead of two syscalls per JS round trip.
 */
static napi_value data_extents(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, start, end;
  if (argc < 3 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &start) || !get_i64(env, argv[2], &end)) {
    napi_throw_type_error(env, NULL, "expected (fd, start, end)");
    return NULL;
  }
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t n = 0;
  off_t pos = (off_t)start;
  while (pos < (off_t)end) {
    off_t d = lseek((int)fd, pos, SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;
      return throw_errno(env, "lseek(SEEK_DATA)", errno);
    }
    if (d >= (off_t)end) break;
    off_t h = lseek((int)fd, d, SEEK_HOLE);
    if (h < 0) return throw_errno(env, "lseek(SEEK_HOLE)", errno);
    if (h > (off_t)end) h = (off_t)end;
    napi_value a, b;
    napi_create_int64(env, (int64_t)d, &a);
    napi_create_int64(env, (int64_t)(h - d), &b);
    napi_set_element(env, arr, n++, a);
    napi_set_element(env, arr, n++, b);
    pos = h;
  }
  return arr;
}

/* allocatedBytes(fd): st_blocks * 512, what `du` reports. */
#include <sys/stat.h>
static napi_value allocated_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd;
  if (argc < 1 || !get_i64(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "expected (fd)");
    return NULL;
  }
  struct stat st;
  if (fstat((int)fd, &st) != 0) return throw_errno(env, "fstat", errno);
  napi_value out;
  napi_create_int64(env, (int64_t)st.st_blocks * 512, &out);
  return out;
}

/* The addon's only module init; the other source files hook in through exports.h. */
static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_default, NULL},
      {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_default, NULL},
      {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_default, NULL},
      {"dataExtents", NULL, data_extents, NULL, NULL, NULL, napi_default, NULL},
      {"allocatedBytes", NULL, allocated_bytes, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok ||
      crc64_register(env, exports) != napi_ok) {
    /* Returning NULL alone would hand require() a half-filled exports object without complaint. */
    napi_throw_error(env, "ERR_SHORTHORN_NATIVE", "shorthorn_native: module init failed");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
