/*
 * zstdpool: zstd compression of one chunk on a thread-pool thread.
 *
 * Why: compression is the backup's largest cost per byte (a third of the main thread on a real
 * source tree, docs/BENCHMARKS.md), and zstd-napi only compresses synchronously. The seal worker
 * (transforms/backup/seal-worker.ts) takes it off the main thread but costs a V8 isolate
 * (~20 MB), outside the default memory budget. Here the chunk is compressed where it lies (the
 * chunk arena's region, or any Uint8Array) into a caller-owned output buffer, on libuv's thread
 * pool, while the main thread goes on reading, chunking, hashing and encrypting other chunks.
 * Memory: one zstd context per `zstdContext` (the caller keeps one per job it runs at once:
 * transforms/backup/seal.ts) and the caller's buffers.
 *
 * zstd is the same library zstd-napi builds (its vendored copy, node_modules/zstd-napi/deps),
 * so the frames are the ones the synchronous path makes.
 */

#include "napi-helpers.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

typedef struct {
  ZSTD_CCtx *cctx;
  int busy; /* a job is running on this context: a second one is refused */
} zctx_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ctx_ref, src_ref, dst_ref;
  zctx_t *z;
  const uint8_t *src;
  size_t src_len;
  uint8_t *dst;
  size_t dst_len;
  size_t result; /* ZSTD_compress2's answer: a size or an error code */
} zjob_t;

static void zctx_finalize(napi_env env, void *data, void *hint) {
  zctx_t *z = (zctx_t *)data;
  ZSTD_freeCCtx(z->cctx);
  free(z);
}

/* zstdContext(level: number, windowLog: number): an opaque context for zstdCompress, set to
 * `level` and, when windowLog > 0, that window (log2). Freed by the garbage collector. */
static napi_value js_zstdContext(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!sn_args(env, info, 2, argv, "zstdContext(level, windowLog)")) return NULL;
  double level_d, wlog_d;
  int64_t level, wlog;
  if (!sn_number(env, argv[0], "zstdContext: level", &level_d) || !sn_number(env, argv[1], "zstdContext: windowLog", &wlog_d)) return NULL;
  if (!sn_int_in(env, level_d, -131072, ZSTD_maxCLevel(), "zstdContext: level", &level)) return NULL;
  if (!sn_int_in(env, wlog_d, 0, 31, "zstdContext: windowLog", &wlog)) return NULL;
  zctx_t *z = sn_calloc(env, 1, sizeof *z, "zstdContext");
  if (z == NULL) return NULL;
  z->cctx = ZSTD_createCCtx();
  if (z->cctx == NULL || ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, (int)level)) ||
      (wlog > 0 && ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, (int)wlog)))) {
    ZSTD_freeCCtx(z->cctx);
    free(z);
    sn_throw(env, SN_ERROR, "ERR_NATIVE", "zstdContext", "could not be set up");
    return NULL;
  }
  napi_value ext;
  if (napi_create_external(env, z, zctx_finalize, NULL, &ext) != napi_ok) {
    ZSTD_freeCCtx(z->cctx);
    free(z);
    sn_throw(env, SN_ERROR, "ERR_NATIVE", "zstdContext", "could not be created");
    return NULL;
  }
  return ext;
}

static void zjob_execute(napi_env env, void *data) {
  zjob_t *j = (zjob_t *)data;
  j->result = ZSTD_compress2(j->z->cctx, j->dst, j->dst_len, j->src, j->src_len);
}

/* Releases what a job holds (its references may not have been made yet). */
static void zjob_free(napi_env env, zjob_t *j) {
  if (j->ctx_ref != NULL) napi_delete_reference(env, j->ctx_ref);
  if (j->src_ref != NULL) napi_delete_reference(env, j->src_ref);
  if (j->dst_ref != NULL) napi_delete_reference(env, j->dst_ref);
  free(j);
}

static void zjob_complete(napi_env env, napi_status status, void *data) {
  zjob_t *j = (zjob_t *)data;
  j->z->busy = 0;
  napi_value v;
  if (status != napi_ok) {
    sn_settle(env, status, j->deferred, "zstdCompress");
  } else if (ZSTD_isError(j->result)) {
    napi_value msg;
    char text[128];
    snprintf(text, sizeof text, "zstd: %s", ZSTD_getErrorName(j->result));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &v);
    napi_reject_deferred(env, j->deferred, v);
  } else {
    napi_create_double(env, (double)j->result, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  zjob_free(env, j);
}

/* zstdCompress(ctx, src: Uint8Array, dst: Uint8Array): Promise<number>. Compresses all of src
 * into dst (one zstd frame) on a thread-pool thread and resolves with the frame's length; rejects
 * when zstd fails (dst smaller than ZSTD_compressBound(src) may). Neither buffer may be touched,
 * detached or resized until the promise settles. One job per context at a time: a second call
 * while one runs throws. */
static napi_value js_zstdCompress(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!sn_args(env, info, 3, argv, "zstdCompress(ctx, src, dst)")) return NULL;
  napi_valuetype t;
  zctx_t *z = NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], (void **)&z) != napi_ok || z == NULL) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", "zstdCompress: ctx", "is not a zstdContext");
    return NULL;
  }
  size_t src_len, dst_len;
  const uint8_t *src = sn_typed(env, argv[1], napi_uint8_array, 0, "zstdCompress: src", &src_len);
  if (src == NULL) return NULL;
  uint8_t *dst = sn_typed(env, argv[2], napi_uint8_array, 0, "zstdCompress: dst", &dst_len);
  if (dst == NULL) return NULL;
  if (z->busy) {
    sn_throw(env, SN_ERROR, "ERR_INVALID_STATE", "zstdCompress: ctx", "is busy with another chunk");
    return NULL;
  }
  zjob_t *j = sn_calloc(env, 1, sizeof *j, "zstdCompress: job");
  if (j == NULL) return NULL;
  j->z = z;
  j->src = src;
  j->src_len = src_len;
  j->dst = dst;
  j->dst_len = dst_len;
  napi_value promise;
  if (napi_create_reference(env, argv[0], 1, &j->ctx_ref) != napi_ok || napi_create_reference(env, argv[1], 1, &j->src_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &j->dst_ref) != napi_ok || napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    goto fail;
  }
  if (!sn_queue(env, "zstdCompress", zjob_execute, zjob_complete, j, &j->work, j->deferred)) {
    zjob_free(env, j); /* the promise rejected: the caller hears it */
    return promise;
  }
  z->busy = 1;
  return promise;
fail:
  zjob_free(env, j);
  sn_throw(env, SN_ERROR, "ERR_NATIVE", "zstdCompress", "could not be set up");
  return NULL;
}

/* zstdBound(length): ZSTD_compressBound, the dst size that never fails. */
static napi_value js_zstdBound(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!sn_args(env, info, 1, argv, "zstdBound(length)")) return NULL;
  double d;
  int64_t n;
  if (!sn_number(env, argv[0], "zstdBound: length", &d) || !sn_int_in(env, d, 0, 4294967295.0, "zstdBound: length", &n)) return NULL;
  napi_value r;
  napi_create_double(env, (double)ZSTD_compressBound((size_t)n), &r);
  return r;
}

/* Adds zstdContext, zstdCompress and zstdBound to the addon's exports (sluice_native.c's init). */
int sluice_register_zstdpool(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"zstdContext", NULL, js_zstdContext, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"zstdCompress", NULL, js_zstdCompress, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"zstdBound", NULL, js_zstdBound, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
