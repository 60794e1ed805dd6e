/*
 * Where a buffer's bytes sit in memory, for O_DIRECT: the kernel reads straight into user memory only
 * at addresses aligned to the device's logical block, and JS cannot see an address. The caller
 * over-allocates and slices from the returned padding.
 */
#include <node_api.h>
#include <stdint.h>

#include "exports.h"

/* alignPadding(buf, alignment): bytes to skip from buf's start to reach an address multiple of alignment. */
static napi_value align_padding(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  size_t length = 0;
  int64_t alignment = 0;
  bool typed = false;
  if (argc == 2) napi_is_typedarray(env, argv[0], &typed);
  if (!typed || napi_get_value_int64(env, argv[1], &alignment) != napi_ok || alignment <= 0 ||
      (alignment & (alignment - 1)) != 0) {
    napi_throw_type_error(env, NULL, "expected (Uint8Array, power-of-two alignment)");
    return NULL;
  }
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t offset;
  napi_get_typedarray_info(env, argv[0], &type, &length, &data, &arraybuffer, &offset);
  uintptr_t address = (uintptr_t)data;
  napi_value out;
  napi_create_int64(env, (int64_t)((alignment - (int64_t)(address % (uintptr_t)alignment)) % alignment), &out);
  return out;
}

napi_status aligned_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"alignPadding", NULL, align_padding, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
