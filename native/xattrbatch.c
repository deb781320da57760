/*
 * xattrbatch: the extended attributes of a batch of paths, read on one thread-pool thread.
 *
 * Why: on a tree where every file carries attributes, llistxattr and one lgetxattr per name
 * walk the path again each time, and that kernel work was a third of the backup's main thread
 * (xattr-50k, docs/BENCHMARKS.md). `readXattrs` does those calls for a whole batch of entries
 * off the main thread, into one caller-owned arena, so the main thread pays one round trip per
 * batch and goes on with earlier entries meanwhile.
 *
 * Paths are raw bytes (Buffers), never decoded; a NUL inside a path is refused. Nothing follows a
 * final symlink (the l* calls).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "napi-helpers.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>

#ifndef ENOATTR
#define ENOATTR ENODATA
#endif

/* Linux caps a name list at 64 KiB (XATTR_LIST_MAX): one buffer of that size never needs a
 * second llistxattr. */
#define LIST_BYTES 65536
/* Results per path (lib/native.ts reads them by these indexes). */
#define XR_FIELDS 3
/* results[3i+1]: which step failed. */
#define STEP_LIST 0
#define STEP_GET 1
#define STEP_ROOM 2

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref arena_ref;
  napi_ref results_ref;
  size_t count;
  char *paths;      /* count NUL-terminated paths, back to back; "" for one refused up front */
  uint8_t *arena;
  size_t arena_len;
  int32_t *results; /* XR_FIELDS per path: attribute count or -errno, failing step, bytes used */
} xbatch_t;

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Reads the attributes of one path into at[0, room): per attribute, u32 LE name length, name,
 * u32 LE value length, value. Writes r[0..2]. */
static void read_one(const char *path, char *list, uint8_t *at, size_t room, int32_t *r) {
  r[0] = 0;
  r[1] = 0;
  r[2] = 0;
  ssize_t list_len = llistxattr(path, list, LIST_BYTES);
  if (list_len < 0) {
    int e = errno;
    if (e == ENOTSUP || e == ENODATA) return; /* no xattr support: none, no warning */
    r[0] = -e;
    r[1] = e == ERANGE ? STEP_ROOM : STEP_LIST; /* a list over 64 KiB: the caller reads it alone */
    return;
  }
  size_t used = 0;
  int32_t count = 0;
  for (ssize_t off = 0; off < list_len;) {
    const char *name = list + off;
    size_t name_len = strnlen(name, (size_t)(list_len - off));
    off += (ssize_t)name_len + 1;
    if (name_len == 0) continue;
    if (room - used < 8 + name_len) {
      r[0] = -ERANGE;
      r[1] = STEP_ROOM;
      return;
    }
    uint8_t *val = at + used + 8 + name_len;
    size_t val_room = room - used - 8 - name_len;
    ssize_t n = lgetxattr(path, name, val_room > 0 ? val : NULL, val_room);
    if (n < 0) {
      int e = errno;
      if (e == ENODATA || e == ENOTSUP) continue; /* removed meanwhile / namespace refused */
      r[0] = -e;
      r[1] = e == ERANGE ? STEP_ROOM : STEP_GET; /* larger than the room left: read it alone */
      return;
    }
    if (val_room == 0 && n > 0) { /* the size query answered: no room for the value */
      r[0] = -ERANGE;
      r[1] = STEP_ROOM;
      return;
    }
    put_u32(at + used, (uint32_t)name_len);
    memcpy(at + used + 4, name, name_len);
    put_u32(at + used + 4 + name_len, (uint32_t)n);
    used += 8 + name_len + (size_t)n;
    count++;
  }
  r[0] = count;
  r[2] = (int32_t)used;
}

static void xbatch_execute(napi_env env, void *data) {
  xbatch_t *b = (xbatch_t *)data;
  char *list = malloc(LIST_BYTES);
  const char *path = b->paths;
  size_t used = 0;
  int full = 0;
  for (size_t i = 0; i < b->count; i++) {
    size_t plen = strlen(path);
    int32_t *r = b->results + XR_FIELDS * i;
    if (full) {
      /* The arena ran out at an earlier path: this one and the rest are left for another call. */
      r[0] = -ERANGE;
      r[1] = STEP_ROOM;
    } else if (path[0] != 0) {
      if (list == NULL) {
        r[0] = -ENOMEM;
        r[1] = STEP_LIST;
      } else {
        read_one(path, list, b->arena + used, b->arena_len - used, r);
        used += (size_t)r[2];
        full = r[1] == STEP_ROOM && r[0] < 0;
      }
    }
    path += plen + 1;
  }
  free(list);
}

/* Releases what a batch holds (its references may not have been made yet). */
static void xbatch_free(napi_env env, xbatch_t *b) {
  if (b->arena_ref != NULL) napi_delete_reference(env, b->arena_ref);
  if (b->results_ref != NULL) napi_delete_reference(env, b->results_ref);
  free(b->paths);
  free(b);
}

static void xbatch_complete(napi_env env, napi_status status, void *data) {
  xbatch_t *b = (xbatch_t *)data;
  sn_settle(env, status, b->deferred, "readXattrs");
  napi_delete_async_work(env, b->work);
  xbatch_free(env, b);
}

/* readXattrs(paths: Buffer[], arena: Buffer, results: Int32Array): Promise<void>.
 * Reads every extended attribute of each path (not following a final symlink) into the arena,
 * path after path, on a thread-pool thread, in the order the filesystem lists them. Per path,
 * results[3i] is the number of attributes (0 on a filesystem without xattrs) or -errno,
 * results[3i+1] the failing step (0 llistxattr, 1 lgetxattr, 2 no room: the arena's rest, or
 * 64 KiB of names, was too small; this path and every later one are then left unread, for
 * another call), results[3i+2] the bytes it used:
 * per attribute a u32 LE name length, the name, a u32 LE value length, the value. An attribute
 * removed between the listing and its read is left out. The promise rejects only on misuse. */
static napi_value js_readXattrs(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!sn_args(env, info, 3, argv, "readXattrs(paths, arena, results)")) return NULL;
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "readXattrs: paths must be an array");
    return NULL;
  }
  size_t arena_len;
  uint8_t *arena = sn_typed(env, argv[1], napi_uint8_array, 0, "readXattrs: arena", &arena_len);
  if (arena == NULL) return NULL;
  int32_t *results = sn_typed(env, argv[2], napi_int32_array, XR_FIELDS * (size_t)count, "readXattrs: results", NULL);
  if (results == NULL) return NULL;
  xbatch_t *b = sn_calloc(env, 1, sizeof *b, "readXattrs: batch");
  if (b == NULL) return NULL;
  /* A path that cannot name a file is packed empty (the worker skips it) with its -errno. */
  b->paths = sn_pack_paths(env, argv[0], count, "readXattrs: a path", results, XR_FIELDS);
  if (b->paths == NULL) goto fail;
  for (uint32_t i = 0; i < count; i++) {
    results[XR_FIELDS * i + 1] = STEP_LIST;
    results[XR_FIELDS * i + 2] = 0;
  }
  b->count = count;
  b->arena = arena;
  b->arena_len = arena_len;
  b->results = results;
  napi_value promise;
  if (napi_create_reference(env, argv[1], 1, &b->arena_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[2], 1, &b->results_ref) != napi_ok) goto fail;
  if (napi_create_promise(env, &b->deferred, &promise) != napi_ok) goto fail;
  if (!sn_queue(env, "readXattrs", xbatch_execute, xbatch_complete, b, &b->work, b->deferred)) xbatch_free(env, b); /* the promise rejected: the caller hears it */
  return promise;

fail:
  sn_setup_failed(env, "readXattrs");
  xbatch_free(env, b);
  return NULL;
}

/* Adds readXattrs to the addon's exports (called from sluice_native.c's init). */
int sluice_register_xattrbatch(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"readXattrs", NULL, js_readXattrs, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
