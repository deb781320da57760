/*
 * Argument, error and batch helpers shared by the addon's C files (sluice_native.c, fsbatch.c,
 * xattrbatch.c, restorebatch.c, zstdpool.c). Each reads one argument or throws a JS error shaped
 * like Node's own (ERR_MISSING_ARGS, ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE) and tells the
 * caller to return at once.
 */
#ifndef SLUICE_NAPI_HELPERS_H
#define SLUICE_NAPI_HELPERS_H

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel refuses longer paths (ENAMETOOLONG); the batches refuse them before copying. */
#define SN_PATH_BYTES_MAX 4096

typedef enum { SN_TYPE_ERROR, SN_RANGE_ERROR, SN_ERROR } sn_kind;

/* Throws a TypeError, RangeError or Error with `code` and the message "<what> <problem>". */
static inline void sn_throw(napi_env env, sn_kind kind, const char *code, const char *what, const char *problem) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s %s", what, problem);
  if (kind == SN_RANGE_ERROR) napi_throw_range_error(env, code, msg);
  else if (kind == SN_TYPE_ERROR) napi_throw_type_error(env, code, msg);
  else napi_throw_error(env, code, msg);
}

/* Reads `count` arguments into argv; 0 (after throwing, naming `usage`) when fewer were given. */
static inline int sn_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_MISSING_ARGS", usage, "needs more arguments");
    return 0;
  }
  return 1;
}

/* The elements of a typed array of type `want` holding at least `min_len` of them (a Buffer is
 * a Uint8Array), shared memory included; NULL after throwing otherwise. An empty view may have
 * a NULL data pointer: a non-NULL dummy comes back then, never read since the length is 0. */
static inline void *sn_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min_len, const char *what,
                             size_t *len_out) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t len = 0, off;
  void *data = NULL;
  napi_value ab;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &off) != napi_ok || type != want) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", what, "has the wrong type");
    return NULL;
  }
  if (len < min_len) {
    sn_throw(env, SN_RANGE_ERROR, "ERR_OUT_OF_RANGE", what, "is too short");
    return NULL;
  }
  if (len_out != NULL) *len_out = len;
  return data != NULL ? data : (void *)"";
}

/* A number argument; 0 after throwing a TypeError when `v` is not a number. */
static inline int sn_number(napi_env env, napi_value v, const char *what, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", what, "must be a number");
    return 0;
  }
  return 1;
}

/* Whether `d` is an integer in [lo, hi] (a range within +-2^63). Range first: converting an
 * out-of-range double (or NaN) to int64 is undefined behaviour. */
static inline int sn_is_int_in(double d, double lo, double hi) {
  return d >= lo && d <= hi && d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d;
}

/* `d` as int64 when it is an integer in [lo, hi]; 0 after throwing a RangeError otherwise. */
static inline int sn_int_in(napi_env env, double d, double lo, double hi, const char *what, int64_t *out) {
  if (!sn_is_int_in(d, lo, hi)) {
    sn_throw(env, SN_RANGE_ERROR, "ERR_OUT_OF_RANGE", what, "is out of range");
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

/* calloc that throws an Error (code ENOMEM, naming `what`) instead of returning NULL unnoticed.
 * Never asks for 0 bytes (calloc may answer NULL to that). */
/* Resolves `deferred` with undefined when the async work ran, or rejects it with "<what> was
 * cancelled" when it did not (the only failure napi reports to a complete callback). */
static inline void sn_settle(napi_env env, napi_status status, napi_deferred deferred, const char *what) {
  napi_value v;
  if (status == napi_ok) {
    napi_get_undefined(env, &v);
    napi_resolve_deferred(env, deferred, v);
    return;
  }
  char text[96];
  snprintf(text, sizeof text, "%s was cancelled", what);
  napi_value msg;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &v);
  napi_reject_deferred(env, deferred, v);
}

static inline void *sn_calloc(napi_env env, size_t count, size_t size, const char *what) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (p == NULL) sn_throw(env, SN_ERROR, "ENOMEM", what, "could not be allocated: out of memory");
  return p;
}

/* Throws "<what> could not be set up" unless an error is already pending (a helper above threw). */
static inline void sn_setup_failed(napi_env env, const char *what) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) {
    char text[96];
    snprintf(text, sizeof text, "%s could not be set up", what);
    napi_throw_error(env, NULL, text);
  }
}

/*
 * The paths of a batch call (`arr`, `count` Uint8Arrays) packed into one calloc'd block, each
 * followed by a NUL, for a thread-pool worker that must not touch JS values. A path that cannot
 * name a file (empty, longer than SN_PATH_BYTES_MAX, holding a NUL, which would name another
 * file) is packed as an empty string and its -errno (ENOENT, ENAMETOOLONG, EINVAL) written to
 * errs[stride * i]; errs[stride * i] is 0 for the others. NULL after throwing (a path that is not
 * a Uint8Array, no memory). The caller frees the block.
 */
static inline char *sn_pack_paths(napi_env env, napi_value arr, uint32_t count, const char *what, int32_t *errs, size_t stride) {
  size_t total = 0;
  for (int pass = 0; pass < 2; pass++) {
    char *block = NULL, *at = NULL;
    if (pass == 1) {
      block = at = sn_calloc(env, total, 1, what);
      if (block == NULL) return NULL;
    }
    for (uint32_t i = 0; i < count; i++) {
      napi_value v;
      size_t len;
      const uint8_t *p;
      if (napi_get_element(env, arr, i, &v) != napi_ok || (p = sn_typed(env, v, napi_uint8_array, 0, what, &len)) == NULL) {
        free(block);
        return NULL;
      }
      int e = len == 0 ? ENOENT : len > SN_PATH_BYTES_MAX ? ENAMETOOLONG : memchr(p, 0, len) != NULL ? EINVAL : 0;
      if (pass == 0) {
        total += (e != 0 ? 0 : len) + 1;
        continue;
      }
      /* Read again: the first pass measured these, and nothing ran in between. */
      errs[stride * i] = -e;
      if (e == 0) memcpy(at, p, len);
      at += (e != 0 ? 0 : len) + 1;
    }
    if (pass == 1) return block;
  }
  return NULL;
}

/*
 * Queues `data`'s async work (named "sluice.<name>" for async hooks) whose promise's `deferred`
 * the caller made. 1 when queued; 0 when it could not be: the work is deleted, the promise
 * rejected with "<name> could not be queued", and the caller frees `data` and returns the promise.
 */
static inline int sn_queue(napi_env env, const char *name, napi_async_execute_callback execute,
                           napi_async_complete_callback complete, void *data, napi_async_work *work, napi_deferred deferred) {
  char text[96];
  napi_value resource, msg, err;
  snprintf(text, sizeof text, "sluice.%s", name);
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &resource) == napi_ok &&
      napi_create_async_work(env, NULL, resource, execute, complete, data, work) == napi_ok) {
    if (napi_queue_async_work(env, *work) == napi_ok) return 1;
    napi_delete_async_work(env, *work);
  }
  *work = NULL;
  snprintf(text, sizeof text, "%s could not be queued", name);
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg) == napi_ok && napi_create_error(env, NULL, msg, &err) == napi_ok) {
    napi_reject_deferred(env, deferred, err);
  }
  return 0;
}

#endif
