/*
 * sluice_native: the few Linux syscalls Node's fs lacks, with paths as raw bytes.
 *
 * Why this exists: fs.utimes takes float seconds (nanoseconds are lost, and a restore must put
 * mtimes back exactly) and cannot set the times of a symlink itself; fs has no mknod/mkfifo;
 * and the xattr packages on npm take string paths, so a file whose name is not UTF-8 cannot be
 * named at all. Every function here is synchronous, takes paths as Buffers, never follows a
 * final symlink (the l* calls and AT_SYMLINK_NOFOLLOW), and throws an Error shaped like Node's
 * fs errors: `.code` is the errno name, `.errno` is the negated errno (as Node's fs errors),
 * `.syscall` is the failing call.
 *
 * Also the chunker's hot loop (cdcNext, lib/fastcdc.ts): a keyed gear hash over every byte
 * backed up, 5-6x faster here than the same loop in TypeScript.
 *
 * Also the memory policy's calls into glibc and the kernel (lib/memory.ts): tuneMalloc,
 * trimMalloc and releaseFilePages.
 *
 * Only node_api.h is used (N-API version 8), so one build works on every Node >= 20.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "napi-helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifndef ENOATTR
#define ENOATTR ENODATA
#endif

/* A name list or value that keeps changing size between our calls: give up after this many
 * tries rather than spin against a writer. */
#define XATTR_RETRIES 16
/* First buffer size for listxattr/getxattr; most files have few, short attributes. */
#define XATTR_START 4096

/* Errno names for .code. A table rather than strerrorname_np (glibc >= 2.32 only). */
static const char *errno_name(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
    E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV)
    E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC)
    E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ELOOP)
    E(ENOTEMPTY) E(ENODATA) E(EOVERFLOW) E(EDQUOT) E(ESTALE) E(ENOTSUP)
#if defined(EOPNOTSUPP) && EOPNOTSUPP != ENOTSUP
    E(EOPNOTSUPP)
#endif
#if defined(ENOATTR) && ENOATTR != ENODATA
    E(ENOATTR)
#endif
#undef E
    default: return NULL;
  }
}

/* Throws an Error like Node's fs errors: "ENOENT: no such file or directory, lgetxattr". */
static void throw_errno(napi_env env, int e, const char *syscall) {
  char code_buf[32];
  const char *code = errno_name(e);
  if (code == NULL) {
    snprintf(code_buf, sizeof code_buf, "E%d", e);
    code = code_buf;
  }
  char desc[256];
  /* strerror is not thread-safe and worker threads may load us too. */
#if defined(__GLIBC__)
  const char *d = strerror_r(e, desc, sizeof desc); /* the GNU variant, under _GNU_SOURCE */
  if (d != desc) snprintf(desc, sizeof desc, "%s", d);
#else
  if (strerror_r(e, desc, sizeof desc) != 0) snprintf(desc, sizeof desc, "error %d", e);
#endif
  if (desc[0] >= 'A' && desc[0] <= 'Z') desc[0] = (char)(desc[0] - 'A' + 'a'); /* as libuv's */
  char msg[384];
  snprintf(msg, sizeof msg, "%s: %s, %s", code, desc, syscall);

  napi_value jcode, jmsg, err, jerrno, jsys;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &err) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  napi_create_int32(env, -e, &jerrno);
  napi_set_named_property(env, err, "errno", jerrno);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys);
  napi_set_named_property(env, err, "syscall", jsys);
  napi_throw(env, err);
}

/* Copies a Buffer (or any Uint8Array) into a fresh NUL-terminated C string. A NUL inside would
 * silently name a different file, so it is refused, as Node's fs refuses it. Returns NULL after
 * throwing. The caller frees the result. */
static char *get_bytes_z(napi_env env, napi_value v, const char *what) {
  size_t len = 0;
  const char *data = sn_typed(env, v, napi_uint8_array, 0, what, &len);
  if (data == NULL) return NULL;
  if (len > 0 && memchr(data, 0, len) != NULL) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_VALUE", what, "must not contain a NUL byte");
    return NULL;
  }
  char *s = sn_calloc(env, len + 1, 1, what);
  if (s == NULL) return NULL;
  memcpy(s, data, len);
  return s;
}

/* An integer argument (seconds, nanoseconds, mode, dev) as int64; a fraction is a TypeError, as
 * Node's fs calls make it. */
static int get_int64(napi_env env, napi_value v, const char *what, int64_t *out) {
  double d;
  if (!sn_number(env, v, what, &d)) return 0;
  if (!sn_is_int_in(d, -9223372036854775808.0, 9223372036854775807.0)) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", what, "must be an integer");
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

/* utimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec): utimensat without following a final
 * symlink, so a symlink's own times can be restored. Seconds are int64 (before 1970 and after
 * 2038 alike); nsec 0..999999999 (the kernel checks; UTIME_OMIT/UTIME_NOW pass through). */
static napi_value js_utimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!sn_args(env, info, 5, argv, "utimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)")) return NULL;
  int64_t as, an, ms, mn;
  if (!get_int64(env, argv[1], "atimeSec", &as) || !get_int64(env, argv[2], "atimeNsec", &an) ||
      !get_int64(env, argv[3], "mtimeSec", &ms) || !get_int64(env, argv[4], "mtimeNsec", &mn)) {
    return NULL;
  }
  char *path = get_bytes_z(env, argv[0], "path");
  if (path == NULL) return NULL;
  struct timespec ts[2];
  ts[0].tv_sec = (time_t)as;
  ts[0].tv_nsec = (long)an;
  ts[1].tv_sec = (time_t)ms;
  ts[1].tv_nsec = (long)mn;
  int r = utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
  int e = errno;
  free(path);
  if (r != 0) throw_errno(env, e, "utimensat");
  return NULL;
}

/* Grows *buf to at least `want` bytes. Returns 0 on allocation failure. */
static int grow(char **buf, size_t *cap, size_t want) {
  if (want <= *cap) return 1;
  char *n = realloc(*buf, want);
  if (n == NULL) return 0;
  *buf = n;
  *cap = want;
  return 1;
}

/* Reads one attribute value into *buf. Returns its length, or -1 with errno set. Tries the
 * buffer we have first (one syscall for the common small value) and asks for the size only when
 * it was too small; ERANGE again means the value grew in between, so ask again. */
static ssize_t read_value(const char *path, const char *name, char **buf, size_t *cap) {
  for (int i = 0; i < XATTR_RETRIES; i++) {
    ssize_t n = lgetxattr(path, name, *buf, *cap);
    if (n >= 0) return n;
    if (errno != ERANGE) return -1;
    ssize_t want = lgetxattr(path, name, NULL, 0);
    if (want < 0) return -1;
    if (!grow(buf, cap, (size_t)want + 1)) {
      errno = ENOMEM;
      return -1;
    }
  }
  errno = ERANGE;
  return -1;
}

/* lgetxattrs(path): every attribute as [name, value] Buffers, in the order the filesystem lists
 * them. An attribute removed between the listing and the read is skipped. A filesystem without
 * xattrs gives an empty array. */
static napi_value js_lgetxattrs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!sn_args(env, info, 1, argv, "lgetxattrs(path)")) return NULL;
  char *path = get_bytes_z(env, argv[0], "path");
  if (path == NULL) return NULL;

  napi_value result = NULL;
  char *list = NULL, *val = NULL;
  size_t list_cap = 0, val_cap = 0;
  ssize_t list_len = -1;
  int e = 0;
  const char *failed = NULL;

  if (!grow(&list, &list_cap, XATTR_START) || !grow(&val, &val_cap, XATTR_START)) {
    e = ENOMEM;
    failed = "malloc";
    goto done;
  }
  for (int i = 0; i < XATTR_RETRIES; i++) {
    list_len = llistxattr(path, list, list_cap);
    if (list_len >= 0) break;
    if (errno != ERANGE) break;
    ssize_t want = llistxattr(path, NULL, 0);
    if (want < 0) break;
    if (!grow(&list, &list_cap, (size_t)want + 1)) {
      errno = ENOMEM;
      break;
    }
  }
  if (list_len < 0) {
    e = errno;
    if (e == ENOTSUP || e == ENODATA) {
      list_len = 0;
    } else {
      failed = "llistxattr";
      goto done;
    }
  }

  if (napi_create_array(env, &result) != napi_ok) goto done;
  uint32_t idx = 0;
  for (ssize_t off = 0; off < list_len;) {
    const char *name = list + off;
    size_t name_len = strnlen(name, (size_t)(list_len - off));
    off += (ssize_t)name_len + 1;
    if (name_len == 0) continue;
    ssize_t n = read_value(path, name, &val, &val_cap);
    if (n < 0) {
      e = errno;
      if (e == ENODATA || e == ENOTSUP) continue; /* removed meanwhile / namespace refused */
      failed = "lgetxattr";
      result = NULL;
      goto done;
    }
    napi_value pair, jname, jval;
    if (napi_create_buffer_copy(env, name_len, name, NULL, &jname) != napi_ok ||
        napi_create_buffer_copy(env, (size_t)n, val, NULL, &jval) != napi_ok ||
        napi_create_array_with_length(env, 2, &pair) != napi_ok ||
        napi_set_element(env, pair, 0, jname) != napi_ok ||
        napi_set_element(env, pair, 1, jval) != napi_ok ||
        napi_set_element(env, result, idx++, pair) != napi_ok) {
      result = NULL;
      goto done;
    }
  }

done:
  free(list);
  free(val);
  free(path);
  if (failed != NULL) throw_errno(env, e, failed);
  return result;
}

/* lsetxattr(path, name, value): creates or replaces one attribute on the path itself. */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!sn_args(env, info, 3, argv, "lsetxattr(path, name, value)")) return NULL;
  size_t value_len = 0;
  const void *value = sn_typed(env, argv[2], napi_uint8_array, 0, "value", &value_len);
  if (value == NULL) return NULL;
  char *path = get_bytes_z(env, argv[0], "path");
  if (path == NULL) return NULL;
  char *name = get_bytes_z(env, argv[1], "name");
  if (name == NULL) {
    free(path);
    return NULL;
  }
  int r = lsetxattr(path, name, value, value_len, 0);
  int e = errno;
  free(name);
  free(path);
  if (r != 0) throw_errno(env, e, "lsetxattr");
  return NULL;
}

/* mknod(path, mode, dev): FIFOs (S_IFIFO), and char/block devices when privileged. The umask
 * applies, as for mkdir; a restore sets the exact mode afterwards with chmod. */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!sn_args(env, info, 3, argv, "mknod(path, mode, dev)")) return NULL;
  int64_t mode, dev;
  if (!get_int64(env, argv[1], "mode", &mode) || !get_int64(env, argv[2], "dev", &dev)) {
    return NULL;
  }
  if (mode < 0 || mode > 0xffffffffLL || dev < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "mode or dev out of range");
    return NULL;
  }
  char *path = get_bytes_z(env, argv[0], "path");
  if (path == NULL) return NULL;
  int r = mknod(path, (mode_t)mode, (dev_t)dev);
  int e = errno;
  free(path);
  if (r != 0) throw_errno(env, e, "mknod");
  return NULL;
}

/* seekData(fd, offset, hole): lseek(fd, offset, SEEK_DATA), or SEEK_HOLE when `hole` is true:
 * where the next data (or hole) starts at or after `offset`. -1 for ENXIO (no data from
 * `offset` to the end of the file); throws for anything else (EINVAL: the filesystem does not
 * report holes). Moves the descriptor's position, which positional reads do not use. */
static napi_value js_seekData(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!sn_args(env, info, 3, argv, "seekData(fd, offset, hole)")) return NULL;
  int64_t fd, offset;
  bool hole = false;
  if (!get_int64(env, argv[0], "fd", &fd) || !get_int64(env, argv[1], "offset", &offset)) return NULL;
  if (napi_get_value_bool(env, argv[2], &hole) != napi_ok) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", "hole", "must be a boolean");
    return NULL;
  }
  if (fd < 0 || fd > 0x7fffffff || offset < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd or offset out of range");
    return NULL;
  }
  off_t r = lseek((int)fd, (off_t)offset, hole ? SEEK_HOLE : SEEK_DATA);
  int e = errno;
  napi_value result;
  if (r < 0 && e != ENXIO) {
    throw_errno(env, e, "lseek");
    return NULL;
  }
  napi_create_double(env, r < 0 ? -1.0 : (double)r, &result);
  return result;
}

/* tuneMalloc(mmapThreshold, arenaMax): glibc raises its mmap threshold each time a large block
 * is freed, after which every chunk-sized buffer comes from the brk heap and fragments it; RSS
 * then grows far past what is live. A fixed threshold (and few arenas for the thread pool) keeps
 * RSS near the live size. 0 for arenaMax leaves the arena count alone. Returns false where
 * mallopt is not available (not glibc) or refused a value. */
static napi_value js_tuneMalloc(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!sn_args(env, info, 2, argv, "tuneMalloc(mmapThreshold, arenaMax)")) return NULL;
  int64_t v[2];
  static const char *const what[2] = {"mmapThreshold", "arenaMax"};
  /* mallopt takes an int (glibc refuses an mmap threshold above 32 MiB on 64-bit by itself). */
  static const double hi[2] = {2147483647.0, 1024.0};
  for (int i = 0; i < 2; i++) {
    double d;
    if (!sn_number(env, argv[i], what[i], &d) || !sn_int_in(env, d, 0, hi[i], what[i], &v[i])) return NULL;
  }
  bool ok = false;
#if defined(__GLIBC__)
  ok = mallopt(M_MMAP_THRESHOLD, (int)v[0]) == 1;
  if (v[1] > 0) ok = (mallopt(M_ARENA_MAX, (int)v[1]) == 1) && ok;
#endif
  napi_value result;
  if (napi_get_boolean(env, ok, &result) != napi_ok) return NULL;
  return result;
}

/* trimMalloc(): glibc malloc_trim(0): gives the free pages inside every arena back to the system
 * (free() returns only the top of a heap). For a moment whose peak counts, such as a key
 * derivation's few MiB on top of what loading modules left free. False off glibc. */
static napi_value js_trimMalloc(napi_env env, napi_callback_info info) {
  (void)info;
  bool ok = false;
#if defined(__GLIBC__)
  malloc_trim(0);
  ok = true;
#endif
  napi_value result;
  if (napi_get_boolean(env, ok, &result) != napi_ok) return NULL;
  return result;
}


/* execSelf(flags: string[]): replaces this process by a new run of its own executable
 * (/proc/self/exe) with the same command line, read raw from /proc/self/cmdline (arguments are
 * bytes, not text), and `flags` inserted after argv[0]: node's flags that apply only when a heap
 * is set up (cli/main.ts, a budget below the default). The pid, the open descriptors 0-2, the
 * environment and the parent stay: exit codes and signals need no passing on (0-2 are made
 * inheritable first: node sets them close-on-exec). Returns only on
 * failure, with the errno (ENOSYS off Linux). */
static napi_value js_execSelf(napi_env env, napi_callback_info info) {
  int err = ENOSYS;
#if defined(__linux__)
  size_t argc = 1;
  napi_value arg;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok) return NULL;
  uint32_t nflags = 0;
  if (argc < 1 || napi_get_array_length(env, arg, &nflags) != napi_ok || nflags > 64) {
    napi_throw_type_error(env, NULL, "execSelf(flags: string[])");
    return NULL;
  }
  char *cmd = NULL;
  size_t len = 0, cap = 0;
  FILE *f = fopen("/proc/self/cmdline", "re");
  if (f == NULL) err = errno;
  else {
    for (;;) {
      if (len == cap) {
        char *grown = realloc(cmd, cap = cap ? cap * 2 : 4096);
        if (grown == NULL) break;
        cmd = grown;
      }
      size_t n = fread(cmd + len, 1, cap - len, f);
      if (n == 0) break;
      len += n;
    }
    fclose(f);
    err = ENOMEM;
  }
  size_t nargs = 0;
  for (size_t i = 0; i < len; i++) if (cmd[i] == 0) nargs++;
  char **argv = cmd && len > 0 && cmd[len - 1] == 0 ? calloc(nargs + nflags + 1, sizeof *argv) : NULL;
  char **flags = calloc(nflags + 1, sizeof *flags);
  int ok = argv != NULL && flags != NULL;
  for (uint32_t i = 0; ok && i < nflags; i++) {
    napi_value v;
    size_t n = 0;
    ok = napi_get_element(env, arg, i, &v) == napi_ok && napi_get_value_string_utf8(env, v, NULL, 0, &n) == napi_ok &&
         (flags[i] = malloc(n + 1)) != NULL && napi_get_value_string_utf8(env, v, flags[i], n + 1, &n) == napi_ok;
  }
  if (ok) {
    size_t k = 0, at = 0;
    argv[k++] = cmd;
    at = strlen(cmd) + 1;
    for (uint32_t i = 0; i < nflags; i++) argv[k++] = flags[i];
    while (at < len) {
      argv[k++] = cmd + at;
      at += strlen(cmd + at) + 1;
    }
    argv[k] = NULL;
    /* Node marks its stdio close-on-exec at start: the next run must get the same 0-2. */
    for (int fd = 0; fd <= 2; fd++) {
      int fl = fcntl(fd, F_GETFD);
      if (fl >= 0) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
    execv("/proc/self/exe", argv);
    err = errno;
  }
  for (uint32_t i = 0; flags && i < nflags; i++) free(flags[i]);
  free(flags);
  free(argv);
  free(cmd);
#else
  (void)info;
#endif
  napi_value result;
  if (napi_create_int32(env, err, &result) != napi_ok) return NULL;
  return result;
}

/* releaseFilePages(): drops the pages of this process's read-only private file mappings (the
 * node binary's code and read-only data, shared libraries) from its page tables. They are clean
 * copies of the file, still in the page cache: a page used again faults back in (a minor fault,
 * no read). Start-up touches far more of node's 99 MB binary than a pipeline runs (ICU, the
 * snapshot, the bootstrap and module loader's code), and RSS counts every such page. A mapping
 * holding any anonymous page (relocated data made read-only, RELRO) is left alone: dropping it
 * would bring the file's bytes back; so is a file no longer on disk ("(deleted)", replaced by an
 * upgrade). Costs one read of smaps (3-4 ms at start-up, ~15 ms in a running backup). Returns
 * the bytes of RSS dropped, as smaps counted them; 0 off Linux. */
static napi_value js_releaseFilePages(napi_env env, napi_callback_info info) {
  (void)info;
  double dropped = 0;
#if defined(__linux__)
  FILE *f = fopen("/proc/self/smaps", "re");
  if (f != NULL) {
    char line[4352];
    unsigned long lo = 0, hi = 0;
    int candidate = 0;
    double rss = 0;
    while (fgets(line, sizeof line, f)) {
      unsigned long a, b, off, ino;
      char perms[5];
      unsigned dmaj, dmin;
      int n = 0;
      if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu %n", &a, &b, perms, &off, &dmaj, &dmin, &ino, &n) >= 7 && n > 0) {
        const char *path = line + n;
        lo = a;
        hi = b;
        rss = 0;
        candidate = ino != 0 && perms[0] == 'r' && perms[1] != 'w' && perms[3] == 'p' && path[0] == '/' &&
                    strncmp(path, "/dev/", 5) != 0 && strstr(path, "(deleted)") == NULL;
        continue;
      }
      if (!candidate) continue;
      unsigned long kb;
      if (sscanf(line, "Rss: %lu kB", &kb) == 1) rss = (double)kb * 1024;
      else if (sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
        candidate = 0;
        if (kb == 0 && rss > 0 && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0) dropped += rss;
      }
    }
    fclose(f);
  }
#endif
  napi_value result;
  if (napi_create_double(env, dropped, &result) != napi_ok) return NULL;
  return result;
}

/* The gear loop: from buf[i] up to buf[stop], returns the index just past the first byte after
 * which (h & mask) == 0, or `stop`. Unsigned arithmetic: the 32-bit wrap-around that the
 * TypeScript `| 0` gives, without signed-overflow UB. */
static size_t gear_scan(const uint32_t *gear, const uint8_t *buf, size_t i, size_t stop, uint32_t *hp,
                        uint32_t mask) {
  uint32_t h = *hp;
  /* Unrolled: one loop test per four bytes; the h chain (one lea a byte) is then the limit. */
#define STEP(k)                                \
  h = (h << 1) + gear[buf[i + (k)]];           \
  if ((h & mask) == 0) {                       \
    *hp = 0;                                   \
    return i + (k) + 1;                        \
  }
  while (stop - i >= 4) {
    STEP(0) STEP(1) STEP(2) STEP(3)
    i += 4;
  }
  while (i < stop) {
    STEP(0)
    i++;
  }
#undef STEP
  *hp = h;
  return SIZE_MAX;
}

/* cdcNext(gear, buf, start, state): all of lib/fastcdc.ts Cdc.next in one call, so a chunk costs
 * one crossing per buffer it spans. gear: Int32Array(256); buf: Uint8Array; start: index into buf;
 * state: Float64Array [h, n, min, avg, max, maskS, maskL] as Cdc keeps them (h the int32 gear
 * hash, n the open chunk's length so far; the rest fixed). Returns the index just past a boundary
 * (h and n reset to 0) or -1 when buf ended first (h and n carried in state). Must give exactly
 * the boundaries of the TypeScript path: repositories dedup against old snapshots. */
static napi_value js_cdcNext(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!sn_args(env, info, 4, argv, "cdcNext(gear, buf, start, state)")) return NULL;
  size_t len = 0;
  const uint32_t *gear = sn_typed(env, argv[0], napi_int32_array, 256, "gear", NULL);
  if (gear == NULL) return NULL;
  const uint8_t *buf = sn_typed(env, argv[1], napi_uint8_array, 0, "buf", &len);
  if (buf == NULL) return NULL;
  double *st = sn_typed(env, argv[3], napi_float64_array, 7, "state", NULL);
  if (st == NULL) return NULL;
  double start_d;
  if (!sn_number(env, argv[2], "start", &start_d)) return NULL;
  int64_t start, hs, n, min, avg, max, ms, ml;
  const double big = 9007199254740991.0; /* 2^53 - 1 */
  if (!sn_int_in(env, start_d, 0, (double)len, "start", &start) ||
      !sn_int_in(env, st[0], -2147483648.0, 2147483647.0, "state h", &hs) ||
      !sn_int_in(env, st[2], 1, big, "min", &min) || !sn_int_in(env, st[3], (double)min, big, "avg", &avg) ||
      !sn_int_in(env, st[4], (double)avg, big, "max", &max) || !sn_int_in(env, st[1], 0, (double)max, "state n", &n) ||
      !sn_int_in(env, st[5], 0, 4294967295.0, "maskS", &ms) || !sn_int_in(env, st[6], 0, 4294967295.0, "maskL", &ml)) {
    return NULL;
  }
  uint32_t h = (uint32_t)hs; /* int64 -> uint32 is modular, well defined */
  size_t i = (size_t)start, end = len;
  int64_t cut = -1;

  /* Bytes before min cannot end a chunk: skipped without hashing, and h kept, as in TS. */
  if (n < min) {
    uint64_t skip = (uint64_t)(min - n);
    if (end - i < skip) skip = end - i;
    i += skip;
    n += (int64_t)skip;
    if (n < min) goto carry;
  }
  if (n < avg) {
    size_t stop = (uint64_t)(avg - n) < end - i ? i + (size_t)(avg - n) : end;
    size_t at = gear_scan(gear, buf, i, stop, &h, (uint32_t)ms);
    if (at != SIZE_MAX) {
      cut = (int64_t)at;
      goto done;
    }
    n += (int64_t)(stop - i);
    i = stop;
  }
  if (n >= avg && n < max) {
    size_t stop = (uint64_t)(max - n) < end - i ? i + (size_t)(max - n) : end;
    size_t at = gear_scan(gear, buf, i, stop, &h, (uint32_t)ml);
    if (at != SIZE_MAX) {
      cut = (int64_t)at;
      goto done;
    }
    n += (int64_t)(stop - i);
    i = stop;
  }
  if (n >= max) {
    cut = (int64_t)i;
    goto done;
  }
carry:
  st[0] = h >= 0x80000000u ? (double)h - 4294967296.0 : (double)h; /* back to the int32 TS keeps */
  st[1] = (double)n;
done:
  if (cut >= 0) {
    st[0] = 0;
    st[1] = 0;
  }
  napi_value result;
  napi_create_double(env, (double)cut, &result);
  return result;
}

/* native/fsbatch.c: lstat and readFiles. */
int sluice_register_fsbatch(napi_env env, napi_value exports);
/* native/restorebatch.c: writeFiles. */
int sluice_register_restorebatch(napi_env env, napi_value exports);
/* native/xattrbatch.c: readXattrs. */
int sluice_register_xattrbatch(napi_env env, napi_value exports);
/* native/zstdpool.c: zstdContext, zstdCompress, zstdBound. */
int sluice_register_zstdpool(napi_env env, napi_value exports);
/* native/walkbatch.c: listDir, statAt. */
int sluice_register_walkbatch(napi_env env, napi_value exports);
/* native/decodepool.c: decodeContext, openObject, decodeFrame. */
int sluice_register_decodepool(napi_env env, napi_value exports);

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
    {"utimens", NULL, js_utimens, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lgetxattrs", NULL, js_lgetxattrs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"tuneMalloc", NULL, js_tuneMalloc, NULL, NULL, NULL, napi_enumerable, NULL},
    {"trimMalloc", NULL, js_trimMalloc, NULL, NULL, NULL, napi_enumerable, NULL},
    {"releaseFilePages", NULL, js_releaseFilePages, NULL, NULL, NULL, napi_enumerable, NULL},
    {"execSelf", NULL, js_execSelf, NULL, NULL, NULL, napi_enumerable, NULL},
    {"cdcNext", NULL, js_cdcNext, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekData", NULL, js_seekData, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok ||
      !sluice_register_fsbatch(env, exports) || !sluice_register_restorebatch(env, exports) ||
      !sluice_register_xattrbatch(env, exports) || !sluice_register_zstdpool(env, exports) ||
      !sluice_register_walkbatch(env, exports) || !sluice_register_decodepool(env, exports)) {
    return NULL;
  }
  return exports;
}
