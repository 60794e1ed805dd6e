/*
 * CPU scheduling policy of one thread. The engine and the replicas run SCHED_BATCH: a woken data-plane
 * process then waits for the running one's slice instead of preempting it mid-batch, so a request
 * chain engine -> replica -> engine switches CPUs less often (bench/RESULTS.md, "Levers tried").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "exports.h"

/* setBatchScheduling(tid): SCHED_BATCH (priority 0, nice kept) for thread `tid` (0 = the caller). */
static napi_value set_batch_scheduling(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t tid = -1;
  if (argc != 1 || napi_get_value_int32(env, argv[0], &tid) != napi_ok || tid < 0) {
    napi_throw_type_error(env, NULL, "expected (tid >= 0)");
    return NULL;
  }
  struct sched_param param = {.sched_priority = 0};
  if (sched_setscheduler(tid, SCHED_BATCH, &param) != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "sched_setscheduler(%d, SCHED_BATCH): %s", tid, strerror(errno));
    napi_throw_error(env, "ERR_SHORTHORN_NATIVE", msg);
    return NULL;
  }
  return NULL;
}

napi_status sched_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setBatchScheduling", NULL, set_batch_scheduling, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
