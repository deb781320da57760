/*
 * restorebatch: restore's small files, created, written and finished a batch at a time on one
 * thread-pool thread (the write side of fsbatch.c's readFiles).
 *
 * Why: a tree of small files is bound by per-file system calls. Run from the main thread (or as
 * one thread-pool round trip each) create, write, chown, chmod, utimens and close cost the main
 * thread a wake-up per call and leave it little time to decrypt and decompress; here a batch
 * pays one round trip, and two or three batches in flight keep that many pool threads creating
 * files at once while the main thread decodes the next chunks.
 *
 * Per file, in the order that keeps metadata: open(O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, 0600),
 * write the content, ftruncate to the recorded size when the content is shorter (a sparse tail
 * stays a hole), fchown (when asked), fchmod (after the owner: chown clears setuid), fsetxattr
 * of each extended attribute packed for it (after the mode, as the main thread's setMeta; they
 * change no time), futimens (atime = mtime), close. A failing open leaves nothing behind; a
 * failing write, truncate or close removes the partial file. Owner, mode, xattr and times
 * failures are reported and the file stays; for xattrs only the first failure's errno (the
 * caller sets them again one by one to name each). Paths are raw bytes; a NUL inside one is
 * refused (EINVAL).
 *
 * A file's xattrs lie in the arena at meta's xattr offset, `xattr bytes` long, back to back:
 * the name, a NUL, the value's length (4 bytes, little-endian), the value. One that does not
 * fit in that region is EINVAL (nothing after it is set).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "napi-helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Per file in `meta` (lib/native.ts writes them in this order). */
#define WF_META 11
enum { M_OFFSET, M_LENGTH, M_SIZE, M_MODE, M_UID, M_GID, M_MTIME_SEC, M_MTIME_NSEC, M_FLAGS, M_XATTR_OFFSET, M_XATTR_BYTES };
/* Per file in `results`: -errno of the step that lost the file (0 when written) and that step,
 * then the errnos of chown, chmod and utimens, then of the first xattr that failed (0 when fine
 * or not asked). */
#define WF_RESULTS 6
enum { STEP_OPEN = 0, STEP_WRITE = 1, STEP_TRUNCATE = 2, STEP_CLOSE = 3 };
#define FLAG_CHOWN 1

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref arena_ref;
  napi_ref meta_ref;
  napi_ref results_ref;
  size_t count;
  char *paths; /* count NUL-terminated paths, back to back; an empty one was refused up front */
  const uint8_t *arena;
  const double *meta;
  int32_t *results;
} wbatch_t;

/* Sets the xattrs packed in [at, at + len) on fd; 0, or the errno of the first that failed. */
static int set_xattrs(int fd, const uint8_t *at, size_t len) {
  size_t pos = 0;
  while (pos < len) {
    const uint8_t *nul = memchr(at + pos, 0, len - pos);
    if (nul == NULL || nul == at + pos) return EINVAL;
    size_t vpos = (size_t)(nul - at) + 1;
    if (len - vpos < 4) return EINVAL;
    uint32_t vlen = (uint32_t)at[vpos] | (uint32_t)at[vpos + 1] << 8 | (uint32_t)at[vpos + 2] << 16 | (uint32_t)at[vpos + 3] << 24;
    vpos += 4;
    if (len - vpos < vlen) return EINVAL;
    if (fsetxattr(fd, (const char *)(at + pos), at + vpos, vlen, 0) != 0) return errno;
    pos = vpos + vlen;
  }
  return 0;
}

static void wbatch_execute(napi_env env, void *data) {
  wbatch_t *b = (wbatch_t *)data;
  const char *path = b->paths;
  for (size_t i = 0; i < b->count; i++, path += strlen(path) + 1) {
    const double *m = b->meta + WF_META * i;
    int32_t *r = b->results + WF_RESULTS * i;
    if (path[0] == 0) continue;
    int fd;
    do {
      fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      r[0] = -errno;
      r[1] = STEP_OPEN;
      continue;
    }
    const uint8_t *at = b->arena + (size_t)m[M_OFFSET];
    size_t want = (size_t)m[M_LENGTH], done = 0;
    int err = 0, step = 0;
    while (done < want) {
      ssize_t k = write(fd, at + done, want - done);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        err = k < 0 ? errno : EIO;
        step = STEP_WRITE;
        break;
      }
      done += (size_t)k;
    }
    if (err == 0 && (double)done < m[M_SIZE] && ftruncate(fd, (off_t)m[M_SIZE]) != 0) {
      err = errno;
      step = STEP_TRUNCATE;
    }
    if (err == 0) {
      if (((int)m[M_FLAGS] & FLAG_CHOWN) && fchown(fd, (uid_t)m[M_UID], (gid_t)m[M_GID]) != 0) r[2] = errno;
      if (fchmod(fd, (mode_t)m[M_MODE] & 07777) != 0) r[3] = errno;
      if (m[M_XATTR_BYTES] > 0) r[5] = set_xattrs(fd, b->arena + (size_t)m[M_XATTR_OFFSET], (size_t)m[M_XATTR_BYTES]);
      struct timespec ts[2];
      ts[0].tv_sec = (time_t)m[M_MTIME_SEC];
      ts[0].tv_nsec = (long)m[M_MTIME_NSEC];
      ts[1] = ts[0];
      if (futimens(fd, ts) != 0) r[4] = errno;
    }
    if (close(fd) != 0 && err == 0 && errno != EINTR) {
      err = errno;
      step = STEP_CLOSE;
    }
    if (err != 0) {
      unlink(path); /* a partial file must not pass for the file */
      r[0] = -err;
      r[1] = step;
    }
  }
}

static void wbatch_free(napi_env env, wbatch_t *b) {
  if (b->arena_ref != NULL) napi_delete_reference(env, b->arena_ref);
  if (b->meta_ref != NULL) napi_delete_reference(env, b->meta_ref);
  if (b->results_ref != NULL) napi_delete_reference(env, b->results_ref);
  free(b->paths);
  free(b);
}

static void wbatch_complete(napi_env env, napi_status status, void *data) {
  wbatch_t *b = (wbatch_t *)data;
  sn_settle(env, status, b->deferred, "writeFiles");
  napi_delete_async_work(env, b->work);
  wbatch_free(env, b);
}

/* writeFiles(paths: Buffer[], meta: Float64Array, arena: Buffer, results: Int32Array):
 * Promise<void>. File i's content is arena[meta[11i] .. meta[11i] + meta[11i+1]); see the top of
 * this file for the steps and WF_RESULTS for what results holds (zeroed here first). The
 * promise rejects only on misuse. */
static napi_value js_writeFiles(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!sn_args(env, info, 4, argv, "writeFiles(paths, meta, arena, results)")) return NULL;
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[0], &count) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "writeFiles: paths must be an array");
    return NULL;
  }
  double *meta = sn_typed(env, argv[1], napi_float64_array, WF_META * (size_t)count, "writeFiles: meta", NULL);
  if (meta == NULL) return NULL;
  size_t arena_len;
  uint8_t *arena = sn_typed(env, argv[2], napi_uint8_array, 0, "writeFiles: arena", &arena_len);
  if (arena == NULL) return NULL;
  int32_t *results = sn_typed(env, argv[3], napi_int32_array, WF_RESULTS * (size_t)count, "writeFiles: results", NULL);
  if (results == NULL) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    const double *m = meta + WF_META * i;
    if (!sn_is_int_in(m[M_OFFSET], 0, (double)arena_len) || !sn_is_int_in(m[M_LENGTH], 0, (double)arena_len - m[M_OFFSET]) ||
        !sn_is_int_in(m[M_SIZE], m[M_LENGTH], 9007199254740991.0) || !sn_is_int_in(m[M_MODE], 0, 4294967295.0) ||
        !sn_is_int_in(m[M_UID], 0, 4294967295.0) || !sn_is_int_in(m[M_GID], 0, 4294967295.0) ||
        !sn_is_int_in(m[M_MTIME_SEC], -9007199254740991.0, 9007199254740991.0) || !sn_is_int_in(m[M_MTIME_NSEC], 0, 999999999.0) ||
        !sn_is_int_in(m[M_XATTR_OFFSET], 0, (double)arena_len) || !sn_is_int_in(m[M_XATTR_BYTES], 0, (double)arena_len - m[M_XATTR_OFFSET])) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "writeFiles: a file's numbers are out of range");
      return NULL;
    }
  }
  wbatch_t *b = sn_calloc(env, 1, sizeof *b, "writeFiles: batch");
  if (b == NULL) return NULL;
  memset(results, 0, sizeof *results * WF_RESULTS * (size_t)count);
  /* A path that cannot name a file is packed empty (the worker skips it) and lost at open. */
  b->paths = sn_pack_paths(env, argv[0], count, "writeFiles: a path", results, WF_RESULTS);
  if (b->paths == NULL) goto fail;
  for (uint32_t i = 0; i < count; i++) {
    if (results[WF_RESULTS * i] != 0) results[WF_RESULTS * i + 1] = STEP_OPEN;
  }
  b->count = count;
  b->arena = arena;
  b->meta = meta;
  b->results = results;
  napi_value promise;
  if (napi_create_reference(env, argv[1], 1, &b->meta_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[2], 1, &b->arena_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[3], 1, &b->results_ref) != napi_ok) goto fail;
  if (napi_create_promise(env, &b->deferred, &promise) != napi_ok) goto fail;
  if (!sn_queue(env, "writeFiles", wbatch_execute, wbatch_complete, b, &b->work, b->deferred)) wbatch_free(env, b);
  return promise;

fail:
  sn_setup_failed(env, "writeFiles");
  wbatch_free(env, b);
  return NULL;
}

/* Adds writeFiles to the addon's exports (called from sluice_native.c's init). */
int sluice_register_restorebatch(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"writeFiles", NULL, js_writeFiles, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
