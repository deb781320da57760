/*
 * fsbatch: the walk's lstat and the small-file reads of a backup, without Node's per-call costs.
 *
 * Why: a tree of small files is bound by per-file work on the main thread. fs.lstatSync
 * builds a Stats object with four Dates (or twenty BigInts, for nanoseconds) per entry, which
 * is most of the young-generation garbage of an incremental backup; `lstat` here writes twelve
 * numbers into a caller-owned Float64Array. And open/read/close of each small file is three
 * system calls on the main thread (or three thread-pool round trips, three times the CPU);
 * `readFiles` reads a whole batch of files on one thread-pool thread, so the kernel's work
 * overlaps the main thread's chunking and hashing and the round trip is paid once per batch.
 *
 * Paths are raw bytes (Buffers), never decoded; a NUL inside a path is refused. Nothing follows
 * a final symlink (lstat; O_NOFOLLOW).
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
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

/* Fields written by lstat, in this order (lib/native.ts reads them by these indexes). */
#define STAT_FIELDS 12

/* Copies a path into `out` (SN_PATH_BYTES_MAX + 1 bytes) with a terminating NUL. Returns 0 when
 * fine, ENAMETOOLONG when too long, EINVAL when it holds a NUL (it would name another file). */
static int copy_path(const uint8_t *p, size_t len, char *out) {
  if (len > SN_PATH_BYTES_MAX) return ENAMETOOLONG;
  if (len > 0 && memchr(p, 0, len) != NULL) return EINVAL;
  memcpy(out, p, len);
  out[len] = 0;
  return 0;
}

static napi_value number(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

/* The STAT_FIELDS numbers of `st` into o[0..11], in lstat's order. */
static void stat_numbers(const struct stat *st, double *o) {
  o[0] = (double)st->st_mode;
  o[1] = (double)st->st_uid;
  o[2] = (double)st->st_gid;
  o[3] = (double)st->st_size;
  o[4] = (double)st->st_mtim.tv_sec;
  o[5] = (double)st->st_mtim.tv_nsec;
  o[6] = (double)st->st_ctim.tv_sec;
  o[7] = (double)st->st_ctim.tv_nsec;
  o[8] = (double)st->st_ino;
  o[9] = (double)st->st_dev;
  o[10] = (double)st->st_nlink;
  o[11] = (double)st->st_rdev;
}

/* lstat(path: Buffer, out: Float64Array): number. Writes mode, uid, gid, size, mtime sec,
 * mtime nsec, ctime sec, ctime nsec, ino, dev, nlink, rdev into out[0..11] and returns 0, or
 * returns the errno. Inode and device numbers above 2^53 lose precision, as Number(bigint)
 * does. It does not list xattrs: xattr-read comes after the merge-join with the parent snapshot
 * and so skips unchanged files, which a listing here would not. */
static napi_value js_lstat(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!sn_args(env, info, 2, argv, "lstat(path, out)")) return NULL;
  size_t len;
  const uint8_t *p = sn_typed(env, argv[0], napi_uint8_array, 0, "lstat: path", &len);
  if (p == NULL) return NULL;
  double *o = sn_typed(env, argv[1], napi_float64_array, STAT_FIELDS, "lstat: out", NULL);
  if (o == NULL) return NULL;
  char path[SN_PATH_BYTES_MAX + 1];
  int e = copy_path(p, len, path);
  if (e != 0) return number(env, e);
  struct stat st;
  if (lstat(path, &st) != 0) return number(env, errno);
  stat_numbers(&st, o);
  return number(env, 0);
}

/* One readFiles call: everything the worker thread touches is plain C memory (or the bytes of
 * the arena and results buffers, which stay referenced until the call completes). */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref arena_ref;
  napi_ref results_ref;
  napi_ref stats_ref;
  size_t count;
  char *paths;      /* count NUL-terminated paths, back to back */
  int64_t *sizes;   /* bytes wanted of each file */
  uint8_t *arena;   /* file i lands at the sum of sizes[0..i) */
  int32_t *results; /* 2 per file: bytes read or -errno, and the failing step (0 open, 1 read) */
  double *stats;    /* NULL, or READ_STAT_FIELDS per file: the lstat after its read */
} batch_t;

/* Doubles per file in readFiles' `stats`: errno of the lstat after the read (0: done), then the
 * STAT_FIELDS numbers. */
#define READ_STAT_FIELDS (1 + STAT_FIELDS)

static void batch_execute(napi_env env, void *data) {
  batch_t *b = (batch_t *)data;
  const char *path = b->paths;
  uint8_t *at = b->arena;
  for (size_t i = 0; i < b->count; i++) {
    size_t plen = strlen(path);
    int64_t want = b->sizes[i];
    int32_t *r = b->results + 2 * i;
    if (path[0] == 0) {
      /* A path sn_pack_paths refused (empty, NUL inside, too long): its errno was stored up front. */
      at += want;
      path += plen + 1;
      continue;
    }
    int fd;
    do {
      fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      r[0] = -errno;
      r[1] = 0;
    } else {
      int64_t got = 0;
      while (got < want) {
        ssize_t k = read(fd, at + got, (size_t)(want - got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
          got = -errno;
          break;
        }
        if (k == 0) break;
        got += k;
      }
      close(fd);
      r[0] = (int32_t)got;
      r[1] = got < 0 ? 1 : 0;
      if (got >= 0 && b->stats != NULL) {
        /* Again after the read, by path as the walk's was: a change while it was read shows. */
        double *o = b->stats + READ_STAT_FIELDS * i;
        struct stat st;
        if (lstat(path, &st) != 0) o[0] = (double)errno;
        else {
          o[0] = 0;
          stat_numbers(&st, o + 1);
        }
      }
    }
    at += want;
    path += plen + 1;
  }
}

/* Releases what a batch holds (its references may not have been made yet). */
static void batch_free(napi_env env, batch_t *b) {
  if (b->arena_ref != NULL) napi_delete_reference(env, b->arena_ref);
  if (b->results_ref != NULL) napi_delete_reference(env, b->results_ref);
  if (b->stats_ref != NULL) napi_delete_reference(env, b->stats_ref);
  free(b->paths);
  free(b->sizes);
  free(b);
}

static void batch_complete(napi_env env, napi_status status, void *data) {
  batch_t *b = (batch_t *)data;
  sn_settle(env, status, b->deferred, "readFiles");
  napi_delete_async_work(env, b->work);
  batch_free(env, b);
}

/* readFiles(paths: Buffer[], sizes: number[], arena: Buffer, results: Int32Array,
 * stats?: Float64Array): Promise<void>. Reads at most sizes[i] bytes of each file into the arena,
 * back to back, on a thread-pool thread. results[2i] is the number of bytes read (fewer when the
 * file shrank) or -errno; results[2i+1] says which step failed (0 open, 1 read). With `stats`
 * (READ_STAT_FIELDS per file), each file read is lstat'ed by its path after its read, on the same
 * thread: stats[13i] is 0 and stats[13i+1..13i+12] lstat's numbers, or stats[13i] is the errno
 * of that lstat (unset for a file whose read failed). The promise rejects only on misuse. */
static napi_value js_readFiles(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!sn_args(env, info, 4, argv, "readFiles(paths, sizes, arena, results)")) return NULL;
  size_t argc = 5;
  napi_valuetype t5 = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 5 && napi_typeof(env, argv[4], &t5) != napi_ok) return NULL;
  uint32_t count = 0, nsizes = 0;
  if (napi_get_array_length(env, argv[0], &count) != napi_ok || napi_get_array_length(env, argv[1], &nsizes) != napi_ok ||
      nsizes != count) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "readFiles: paths and sizes must be arrays of one length");
    return NULL;
  }
  size_t arena_len;
  uint8_t *arena = sn_typed(env, argv[2], napi_uint8_array, 0, "readFiles: arena", &arena_len);
  if (arena == NULL) return NULL;
  int32_t *results = sn_typed(env, argv[3], napi_int32_array, 2 * (size_t)count, "readFiles: results", NULL);
  if (results == NULL) return NULL;
  double *stats = NULL;
  if (argc >= 5 && t5 != napi_undefined) {
    stats = sn_typed(env, argv[4], napi_float64_array, READ_STAT_FIELDS * (size_t)count, "readFiles: stats", NULL);
    if (stats == NULL) return NULL;
  }
  batch_t *b = sn_calloc(env, 1, sizeof *b, "readFiles: batch");
  if (b == NULL) return NULL;
  b->sizes = sn_calloc(env, count, sizeof *b->sizes, "readFiles: sizes");
  if (b->sizes == NULL) goto fail;
  /* The sizes, which must fit the arena together. */
  int64_t arena_need = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    double d = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_value_double(env, v, &d) != napi_ok ||
        !sn_is_int_in(d, 0, 2147483647.0)) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "readFiles: a size is not a non-negative 31-bit integer");
      goto fail;
    }
    b->sizes[i] = (int64_t)d;
    arena_need += b->sizes[i];
  }
  if ((uint64_t)arena_need > (uint64_t)arena_len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "readFiles: the arena is smaller than the sizes add up to");
    goto fail;
  }
  /* A path that cannot name a file is packed empty (the worker skips it) with its -errno. */
  b->paths = sn_pack_paths(env, argv[0], count, "readFiles: a path", results, 2);
  if (b->paths == NULL) goto fail;
  for (uint32_t i = 0; i < count; i++) results[2 * i + 1] = 0;
  b->count = count;
  b->arena = arena;
  b->results = results;
  b->stats = stats;
  napi_value promise;
  if (napi_create_reference(env, argv[2], 1, &b->arena_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[3], 1, &b->results_ref) != napi_ok) goto fail;
  if (stats != NULL && napi_create_reference(env, argv[4], 1, &b->stats_ref) != napi_ok) goto fail;
  if (napi_create_promise(env, &b->deferred, &promise) != napi_ok) goto fail;
  if (!sn_queue(env, "readFiles", batch_execute, batch_complete, b, &b->work, b->deferred)) batch_free(env, b); /* the promise rejected: the caller hears it */
  return promise;

fail:
  sn_setup_failed(env, "readFiles");
  batch_free(env, b);
  return NULL;
}

/* copy(dst: Uint8Array, offset: number, src: Uint8Array): copies all of src into dst at offset.
 * The chunker's copy into the chunk arena: V8 copies into a SharedArrayBuffer word by word only
 * when source and destination are equally aligned, byte by byte otherwise, and a chunk's pieces
 * land at any offset (docs/TUNING.md). memcpy does not care. */
static napi_value js_copy(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!sn_args(env, info, 3, argv, "copy(dst, offset, src)")) return NULL;
  size_t dlen, slen;
  uint8_t *d = sn_typed(env, argv[0], napi_uint8_array, 0, "copy: dst", &dlen);
  if (d == NULL) return NULL;
  const uint8_t *s = sn_typed(env, argv[2], napi_uint8_array, 0, "copy: src", &slen);
  if (s == NULL) return NULL;
  double off_d;
  if (!sn_number(env, argv[1], "copy: offset", &off_d)) return NULL;
  if (!sn_is_int_in(off_d, 0, (double)dlen) || slen > dlen - (size_t)off_d) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "copy: src does not fit in dst at offset");
    return NULL;
  }
  if (slen > 0) memmove(d + (size_t)off_d, s, slen);
  return NULL;
}

/* Adds lstat, readFiles and copy to the addon's exports (called from sluice_native.c's init). */
int sluice_register_fsbatch(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"lstat", NULL, js_lstat, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"readFiles", NULL, js_readFiles, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"copy", NULL, js_copy, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
