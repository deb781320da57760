/*
 * walkbatch: the walk's directory listings and lstats, on a thread-pool thread.
 *
 * Why: a backup walk lists every directory and lstats every entry. Done on the main thread
 * (opendir, a Dirent and a Buffer per name, one lstat per entry each resolving the whole path
 * again) that was a tenth of an incremental backup's main thread and, through the garbage of a
 * Buffer per name, much of its collections. `listDir` reads a directory's names into one buffer,
 * sorted by raw bytes, with their offsets and types; `statAt` lstats a run of those names
 * (fstatat on the directory, readlinkat for symlinks) into a caller-owned Float64Array. Both run
 * on the thread pool, so the kernel's work overlaps the main thread's chunking and hashing.
 *
 * Names are raw bytes, never decoded. Nothing follows a final symlink (AT_SYMLINK_NOFOLLOW).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "napi-helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

/* Doubles per entry written by statAt (lib/native.ts reads them by these indexes): errno (0 when
 * the lstat succeeded), the twelve fields of fsbatch.c's lstat, and for a symlink the target's
 * offset in the links arena and its length (or -errno of readlinkat; -ERANGE when it did not fit:
 * the caller reads it alone). */
#define WS_FIELDS 15

/* Listing layout (lib/native.ts reads it): u32 count, u32 offsets[count + 1] (of each name in the
 * names area, each name followed by a NUL), u8 types[count] (dirent d_type), the names area. */
static size_t listing_head(size_t count) { return 4 + 4 * (count + 1) + count; }

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *path;      /* the directory, NUL-terminated */
  size_t max_bytes;
  int err;         /* errno of opendir/readdir, or E2BIG when the listing exceeded max_bytes */
  uint8_t *out;    /* the listing, malloc'd */
  size_t out_len;
} list_t;

typedef struct {
  const char *names;
  const uint32_t *offs; /* start of each name, end = next start - 1 */
  uint32_t idx;
  uint32_t len;
} name_ref;

static int cmp_names(const void *a, const void *b) {
  const name_ref *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->names + x->offs[x->idx], y->names + y->offs[y->idx], n);
  if (c != 0) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

static void list_execute(napi_env env, void *data) {
  list_t *l = (list_t *)data;
  DIR *d = opendir(l->path);
  if (d == NULL) {
    l->err = errno;
    return;
  }
  size_t cap = 4096, used = 0, count = 0, ocap = 64;
  char *names = malloc(cap);
  uint32_t *offs = malloc(ocap * sizeof *offs);
  uint8_t *types = malloc(ocap);
  if (names == NULL || offs == NULL || types == NULL) {
    l->err = ENOMEM;
    goto done;
  }
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (e == NULL) {
      if (errno != 0) l->err = errno;
      break;
    }
    const char *n = e->d_name;
    if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
    size_t len = strlen(n);
    if (listing_head(count + 1) + used + len + 1 > l->max_bytes) {
      l->err = E2BIG;
      break;
    }
    if (used + len + 1 > cap) {
      while (used + len + 1 > cap) cap *= 2;
      char *m = realloc(names, cap);
      if (m == NULL) {
        l->err = ENOMEM;
        break;
      }
      names = m;
    }
    if (count + 1 >= ocap) {
      ocap *= 2;
      uint32_t *o = realloc(offs, ocap * sizeof *offs);
      if (o != NULL) offs = o;
      uint8_t *t = realloc(types, ocap);
      if (t != NULL) types = t;
      if (o == NULL || t == NULL) {
        l->err = ENOMEM;
        break;
      }
    }
    memcpy(names + used, n, len + 1);
    offs[count] = (uint32_t)used;
    types[count] = e->d_type;
    used += len + 1;
    count++;
  }
  if (l->err == 0) {
    name_ref *refs = malloc((count ? count : 1) * sizeof *refs);
    size_t head = listing_head(count);
    uint8_t *out = malloc(head + used);
    if (refs == NULL || out == NULL) {
      free(refs);
      free(out);
      l->err = ENOMEM;
      goto done;
    }
    offs[count] = (uint32_t)used;
    for (size_t i = 0; i < count; i++) refs[i] = (name_ref){names, offs, (uint32_t)i, offs[i + 1] - offs[i] - 1};
    qsort(refs, count, sizeof *refs, cmp_names);
    uint32_t c32 = (uint32_t)count;
    memcpy(out, &c32, 4);
    uint32_t *o = (uint32_t *)(out + 4);
    uint8_t *t = out + 4 + 4 * (count + 1);
    uint8_t *at = out + head;
    uint32_t pos = 0;
    for (size_t i = 0; i < count; i++) {
      uint32_t len = refs[i].len + 1;
      o[i] = pos;
      t[i] = types[refs[i].idx];
      memcpy(at + pos, names + offs[refs[i].idx], len);
      pos += len;
    }
    o[count] = pos;
    free(refs);
    l->out = out;
    l->out_len = head + used;
  }
done:
  free(names);
  free(offs);
  free(types);
  closedir(d);
}

static void list_free(list_t *l) {
  free(l->path);
  free(l->out);
  free(l);
}

static void list_complete(napi_env env, napi_status status, void *data) {
  list_t *l = (list_t *)data;
  napi_value v;
  if (status != napi_ok) {
    sn_settle(env, status, l->deferred, "listDir");
  } else if (l->out == NULL) {
    napi_create_int32(env, l->err != 0 ? -l->err : -EIO, &v);
    napi_resolve_deferred(env, l->deferred, v);
  } else {
    void *copy;
    if (napi_create_buffer_copy(env, l->out_len, l->out, &copy, &v) != napi_ok) {
      napi_create_int32(env, -ENOMEM, &v);
    }
    napi_resolve_deferred(env, l->deferred, v);
  }
  napi_delete_async_work(env, l->work);
  list_free(l);
}

/* listDir(path: Buffer, maxBytes: number): Promise<Buffer | number>.
 * Reads the names of directory `path` ('.' and '..' left out) on a thread-pool thread and
 * resolves with one Buffer holding them sorted by raw bytes (the layout above), or with -errno
 * when the directory cannot be listed (-E2BIG: the listing would take more than maxBytes; nothing
 * is kept then). Rejects only on misuse. */
static napi_value js_listDir(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!sn_args(env, info, 2, argv, "listDir(path, maxBytes)")) return NULL;
  size_t len;
  const uint8_t *p = sn_typed(env, argv[0], napi_uint8_array, 0, "listDir: path", &len);
  if (p == NULL) return NULL;
  double maxd;
  int64_t max;
  if (!sn_number(env, argv[1], "listDir: maxBytes", &maxd) || !sn_int_in(env, maxd, 0, 4294967295.0, "listDir: maxBytes", &max)) return NULL;
  list_t *l = sn_calloc(env, 1, sizeof *l, "listDir: job");
  if (l == NULL) return NULL;
  l->path = sn_calloc(env, len + 1, 1, "listDir: path");
  if (l->path == NULL) goto fail;
  if (len == 0 || len > SN_PATH_BYTES_MAX || memchr(p, 0, len) != NULL) {
    l->err = len == 0 ? ENOENT : len > SN_PATH_BYTES_MAX ? ENAMETOOLONG : EINVAL;
    l->path[0] = 0;
  } else {
    memcpy(l->path, p, len);
  }
  l->max_bytes = (size_t)max;
  napi_value promise;
  if (napi_create_promise(env, &l->deferred, &promise) != napi_ok) goto fail;
  if (l->err != 0) {
    napi_value v;
    napi_create_int32(env, -l->err, &v);
    napi_resolve_deferred(env, l->deferred, v);
    list_free(l);
    return promise;
  }
  if (!sn_queue(env, "listDir", list_execute, list_complete, l, &l->work, l->deferred)) list_free(l);
  return promise;

fail:
  sn_setup_failed(env, "listDir");
  if (l->path != NULL) free(l->path);
  free(l);
  return NULL;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref listing_ref;
  napi_ref out_ref;
  napi_ref links_ref;
  char *dir;           /* NUL-terminated */
  size_t dir_len;
  const uint8_t *listing;
  uint32_t from, to;
  double *out;
  uint8_t *links;
  size_t links_len;
} stat_t;

static void stat_execute(napi_env env, void *data) {
  stat_t *s = (stat_t *)data;
  const uint32_t *offs = (const uint32_t *)(s->listing + 4);
  uint32_t count;
  memcpy(&count, s->listing, 4);
  const char *names = (const char *)s->listing + listing_head(count);
  int fd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd_err = fd < 0 ? errno : 0;
  /* The path lstat would be given: the directory, a slash, the name ("/" has no slash of its own). */
  size_t prefix = s->dir_len == 1 ? 1 : s->dir_len + 1;
  size_t link_used = 0;
  for (uint32_t i = s->from; i < s->to; i++) {
    double *o = s->out + WS_FIELDS * (size_t)(i - s->from);
    const char *name = names + offs[i];
    size_t name_len = offs[i + 1] - offs[i] - 1;
    memset(o, 0, WS_FIELDS * sizeof *o);
    if (fd < 0) {
      o[0] = fd_err;
      continue;
    }
    /* What lstat of the whole path would answer: the kernel refuses a path of PATH_MAX bytes. */
    if (prefix + name_len >= 4096) {
      o[0] = ENAMETOOLONG;
      continue;
    }
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      o[0] = errno;
      continue;
    }
    o[1] = (double)st.st_mode;
    o[2] = (double)st.st_uid;
    o[3] = (double)st.st_gid;
    o[4] = (double)st.st_size;
    o[5] = (double)st.st_mtim.tv_sec;
    o[6] = (double)st.st_mtim.tv_nsec;
    o[7] = (double)st.st_ctim.tv_sec;
    o[8] = (double)st.st_ctim.tv_nsec;
    o[9] = (double)st.st_ino;
    o[10] = (double)st.st_dev;
    o[11] = (double)st.st_nlink;
    o[12] = (double)st.st_rdev;
    if (S_ISLNK(st.st_mode)) {
      size_t room = s->links_len - link_used;
      ssize_t n = room > 0 ? readlinkat(fd, name, (char *)s->links + link_used, room) : -1;
      if (room == 0 || (n >= 0 && (size_t)n >= room)) {
        o[14] = -ERANGE; /* may be truncated: read alone */
      } else if (n < 0) {
        o[14] = -errno;
      } else {
        o[13] = (double)link_used;
        o[14] = (double)n;
        link_used += (size_t)n;
      }
    }
  }
  if (fd >= 0) close(fd);
}

static void stat_free(napi_env env, stat_t *s) {
  if (s->listing_ref != NULL) napi_delete_reference(env, s->listing_ref);
  if (s->out_ref != NULL) napi_delete_reference(env, s->out_ref);
  if (s->links_ref != NULL) napi_delete_reference(env, s->links_ref);
  free(s->dir);
  free(s);
}

static void stat_complete(napi_env env, napi_status status, void *data) {
  stat_t *s = (stat_t *)data;
  sn_settle(env, status, s->deferred, "statAt");
  napi_delete_async_work(env, s->work);
  stat_free(env, s);
}

/* statAt(dir: Buffer, listing: Buffer, from: number, to: number, out: Float64Array,
 *        links: Buffer): Promise<void>.
 * lstats names [from, to) of a listDir listing of `dir` on a thread-pool thread: WS_FIELDS
 * doubles per name in `out` (see above), symlink targets back to back in `links`. The listing,
 * out and links must not be touched until the promise settles. Rejects only on misuse. */
static napi_value js_statAt(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!sn_args(env, info, 6, argv, "statAt(dir, listing, from, to, out, links)")) return NULL;
  size_t dir_len, listing_len, links_len;
  const uint8_t *dir = sn_typed(env, argv[0], napi_uint8_array, 1, "statAt: dir", &dir_len);
  if (dir == NULL) return NULL;
  const uint8_t *listing = sn_typed(env, argv[1], napi_uint8_array, 4, "statAt: listing", &listing_len);
  if (listing == NULL) return NULL;
  uint32_t count;
  memcpy(&count, listing, 4);
  if (listing_len < listing_head(count) || (uintptr_t)listing % 4 != 0) {
    sn_throw(env, SN_RANGE_ERROR, "ERR_OUT_OF_RANGE", "statAt: listing", "is not a listing");
    return NULL;
  }
  double fromd, tod;
  int64_t from, to;
  if (!sn_number(env, argv[2], "statAt: from", &fromd) || !sn_int_in(env, fromd, 0, count, "statAt: from", &from)) return NULL;
  if (!sn_number(env, argv[3], "statAt: to", &tod) || !sn_int_in(env, tod, (double)from, count, "statAt: to", &to)) return NULL;
  /* The names asked for must lie in the buffer, each ending in a NUL (checked here, not trusted). */
  const uint32_t *offs = (const uint32_t *)(listing + 4);
  size_t names_len = listing_len - listing_head(count);
  for (int64_t i = from; i < to; i++) {
    if (offs[i] >= offs[i + 1] || offs[i + 1] > names_len || listing[listing_head(count) + offs[i + 1] - 1] != 0) {
      sn_throw(env, SN_RANGE_ERROR, "ERR_OUT_OF_RANGE", "statAt: listing", "is not a listing");
      return NULL;
    }
  }
  double *out = sn_typed(env, argv[4], napi_float64_array, WS_FIELDS * (size_t)(to - from), "statAt: out", NULL);
  if (out == NULL) return NULL;
  uint8_t *links = sn_typed(env, argv[5], napi_uint8_array, 0, "statAt: links", &links_len);
  if (links == NULL) return NULL;
  if (dir_len > SN_PATH_BYTES_MAX || memchr(dir, 0, dir_len) != NULL) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_VALUE", "statAt: dir", "cannot name a directory");
    return NULL;
  }
  stat_t *s = sn_calloc(env, 1, sizeof *s, "statAt: job");
  if (s == NULL) return NULL;
  s->dir = sn_calloc(env, dir_len + 1, 1, "statAt: dir");
  if (s->dir == NULL) goto fail;
  memcpy(s->dir, dir, dir_len);
  s->dir_len = dir_len;
  s->listing = listing;
  s->from = (uint32_t)from;
  s->to = (uint32_t)to;
  s->out = out;
  s->links = links;
  s->links_len = links_len;
  napi_value promise;
  if (napi_create_reference(env, argv[1], 1, &s->listing_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[4], 1, &s->out_ref) != napi_ok) goto fail;
  if (napi_create_reference(env, argv[5], 1, &s->links_ref) != napi_ok) goto fail;
  if (napi_create_promise(env, &s->deferred, &promise) != napi_ok) goto fail;
  if (!sn_queue(env, "statAt", stat_execute, stat_complete, s, &s->work, s->deferred)) stat_free(env, s);
  return promise;

fail:
  sn_setup_failed(env, "statAt");
  stat_free(env, s);
  return NULL;
}

/* Adds listDir and statAt to the addon's exports (called from sluice_native.c's init). */
int sluice_register_walkbatch(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"listDir", NULL, js_listDir, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"statAt", NULL, js_statAt, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
