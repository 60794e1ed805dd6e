/*
 * The data extents of a fragmented window, copied out of one span read into the frame that carries
 * them (rebuild, dataplane/sync/sync-stream.ts): one call per window instead of one Buffer.copy per
 * extent, which for a 4 KiB data / 4 KiB hole file is 1,024 JS-to-C++ crossings per 8 MiB window.
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "exports.h"

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *length) {
  bool typed = false;
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, length, (void **)data, &ab, &offset) != napi_ok) return 0;
  return type == napi_uint8_array;
}

/*
 * gatherExtents(span, spanStart, extents, frame, at): for each [offset, length] pair in `extents`
 * (a Float64Array), copies span[offset - spanStart, +length) to frame[at, ...), one after the other.
 * Returns the index in `frame` after the last byte. Throws RangeError if any range falls outside.
 */
static napi_value gather_extents(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *span, *frame;
  size_t span_len, frame_len, extents_len;
  int64_t span_start, at;
  void *extents_data;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  bool typed = false;
  if (argc < 5 || !get_bytes(env, argv[0], &span, &span_len) || napi_get_value_int64(env, argv[1], &span_start) != napi_ok ||
      napi_is_typedarray(env, argv[2], &typed) != napi_ok || !typed ||
      napi_get_typedarray_info(env, argv[2], &type, &extents_len, &extents_data, &ab, &offset) != napi_ok ||
      type != napi_float64_array || !get_bytes(env, argv[3], &frame, &frame_len) ||
      napi_get_value_int64(env, argv[4], &at) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected (Uint8Array span, spanStart, Float64Array extents, Uint8Array frame, at)");
    return NULL;
  }
  const double *extents = extents_data;
  if (extents_len % 2 != 0 || at < 0) {
    napi_throw_range_error(env, NULL, "extents must be [offset, length] pairs and `at` >= 0");
    return NULL;
  }
  for (size_t i = 0; i < extents_len; i += 2) {
    int64_t from = (int64_t)extents[i] - span_start;
    int64_t length = (int64_t)extents[i + 1];
    if (from < 0 || length < 0 || (uint64_t)(from + length) > span_len || (uint64_t)(at + length) > frame_len) {
      napi_throw_range_error(env, NULL, "an extent falls outside the span or the frame");
      return NULL;
    }
    memcpy(frame + at, span + from, (size_t)length);
    at += length;
  }
  napi_value out;
  napi_create_int64(env, at, &out);
  return out;
}

napi_status gather_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"gatherExtents", NULL, gather_extents, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
