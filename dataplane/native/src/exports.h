/*
 * One addon, several C files: the module init in sparse.c calls each file's register function so
 * every export lands on the same `exports` object (node-gyp links the sources into one .node).
 */
#ifndef SHORTHORN_NATIVE_EXPORTS_H
#define SHORTHORN_NATIVE_EXPORTS_H

#include <node_api.h>

/* Adds crc64 and crc64Blocks to `exports`. */
napi_status crc64_register(napi_env env, napi_value exports);

/* Adds alignPadding to `exports`. */
napi_status aligned_register(napi_env env, napi_value exports);

/* Adds gatherExtents to `exports`. */
napi_status gather_register(napi_env env, napi_value exports);

/* Adds preadNoWait to `exports`. */
napi_status nowait_register(napi_env env, napi_value exports);

/* Adds setBatchScheduling to `exports`. */
napi_status sched_register(napi_env env, napi_value exports);

#endif
