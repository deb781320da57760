/*
 * Argument and error helpers shared by the addon's C files (sluice_native.c, fsbatch.c).
 * Each reads one argument or throws a JS error shaped like Node's own (ERR_MISSING_ARGS,
 * ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE) and tells the caller to return at once.
 */
#ifndef SLUICE_NAPI_HELPERS_H
#define SLUICE_NAPI_HELPERS_H

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
