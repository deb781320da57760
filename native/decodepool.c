/*
 * decodepool: opening chunk objects on a thread-pool thread (restore's decode, off the main
 * thread).
 *
 * Why: restore decrypted (XChaCha20-Poly1305, sodium-native), decompressed (zstd-napi) and
 * hashed every chunk synchronously on the main thread, which also plans and issues the writes:
 * on large files and real trees that was most of the main thread (docs/BENCHMARKS.md). Neither
 * library has an asynchronous form, so the addon does the same work itself, on libuv's pool:
 *
 * - XChaCha20-Poly1305 (libsodium's crypto_aead_xchacha20poly1305_ietf): HChaCha20 of the key
 *   and the nonce's first 16 bytes gives a subkey (by hand below, ~30 lines), then the IETF
 *   ChaCha20-Poly1305 AEAD with that subkey and the nonce 0^4 || nonce[16..24], through
 *   OpenSSL's EVP API (Node's binary carries OpenSSL 3 and exports its symbols: no library to
 *   link);
 * - zstd: the library zstd-napi vendors (node_modules/zstd-napi/deps), as zstdpool.c;
 * - keyed BLAKE2b-256 (libsodium's crypto_generichash with a key): OpenSSL's BLAKE2BMAC.
 *
 * Bytes and checks are those of lib/repo/objects.ts openChunk (docs/FORMAT.md "Chunk objects");
 * the caller (objects.ts openChunkPooled) turns the status numbers into the same ERR_CORRUPT
 * messages. Two calls per compressed chunk, so that the output is sized by what the frame says
 * (validated against a bound first) and comes from the caller's own memory:
 *
 *   openObject(ctx, id, obj, bound, verify) decrypts obj's payload IN PLACE (obj[26, len - 16));
 *   resolves with the payload's length for a stored chunk (checked against the id when
 *   `verify`), or with the frame's content size for a zstd one, or a negative DECODE_* status.
 *   decodeFrame(ctx, id, src, dst, verify) decompresses the frame `src` (the payload, now
 *   plaintext) into dst, which must be exactly its content size, and checks the id.
 *
 * Memory: per pool thread one zstd decompression context (~100 KB) and one cipher context,
 * created on first use and kept (libuv's threads live as long as the process); the caller's
 * buffers otherwise. The keys live in the context (64 bytes), wiped when it is collected.
 */

#include "napi-helpers.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define KEY_BYTES 32
#define ID_BYTES 32
#define NONCE_BYTES 24
#define TAG_BYTES 16
#define HEADER_BYTES 2 /* format version, compression */
#define OBJECT_VERSION 1
#define COMPRESSION_NONE 0
#define COMPRESSION_ZSTD 1
#define AD_CHUNK 1

/* Statuses (negative results); objects.ts DECODE_* spells the same numbers. */
#define DECODE_TRUNCATED -1     /* shorter than header, nonce and tag */
#define DECODE_FORMAT -2        /* unknown format byte */
#define DECODE_AUTH -3          /* failed authentication */
#define DECODE_COMPRESSION -4   /* authenticated, but an unknown compression byte */
#define DECODE_FRAME_SIZE -5    /* the frame's size is unknown, unreadable or above the bound */
#define DECODE_ZSTD -6          /* zstd failed */
#define DECODE_LENGTH -7        /* zstd wrote another number of bytes than the frame says */
#define DECODE_ID -8            /* the plaintext does not hash to the id */
#define DECODE_INTERNAL -9      /* OpenSSL or zstd could not be set up (out of memory) */

typedef struct {
  uint8_t enc_key[KEY_BYTES];
  uint8_t id_key[KEY_BYTES];
} dkeys_t;

/* Fetched once: an explicit fetch, not EVP_chacha20_poly1305(), which fetches on every init. */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *aead;
static EVP_MAC *blake2b_mac;

static void fetch_algorithms(void) {
  aead = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  blake2b_mac = EVP_MAC_fetch(NULL, "BLAKE2BMAC", NULL);
}

/* Per pool thread, kept. */
static _Thread_local ZSTD_DCtx *tl_dctx;
static _Thread_local EVP_CIPHER_CTX *tl_cipher;

#define ROTL32(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d)                                                                                                  \
  do {                                                                                                                  \
    a += b; d ^= a; d = ROTL32(d, 16);                                                                                  \
    c += d; b ^= c; b = ROTL32(b, 12);                                                                                  \
    a += b; d ^= a; d = ROTL32(d, 8);                                                                                   \
    c += d; b ^= c; b = ROTL32(b, 7);                                                                                   \
  } while (0)

static uint32_t load32_le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store32_le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* HChaCha20 (draft-irtf-cfrg-xchacha, libsodium's crypto_core_hchacha20 with the default
 * constants): the ChaCha20 block function on key and 16 nonce bytes, 20 rounds, no final
 * addition, words 0-3 and 12-15 out. */
static void hchacha20(uint8_t out[32], const uint8_t key[32], const uint8_t nonce[16]) {
  uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
  for (int i = 0; i < 8; i++) x[4 + i] = load32_le(key + 4 * i);
  for (int i = 0; i < 4; i++) x[12 + i] = load32_le(nonce + 4 * i);
  for (int i = 0; i < 10; i++) {
    QR(x[0], x[4], x[8], x[12]);
    QR(x[1], x[5], x[9], x[13]);
    QR(x[2], x[6], x[10], x[14]);
    QR(x[3], x[7], x[11], x[15]);
    QR(x[0], x[5], x[10], x[15]);
    QR(x[1], x[6], x[11], x[12]);
    QR(x[2], x[7], x[8], x[13]);
    QR(x[3], x[4], x[9], x[14]);
  }
  for (int i = 0; i < 4; i++) store32_le(out + 4 * i, x[i]);
  for (int i = 0; i < 4; i++) store32_le(out + 16 + 4 * i, x[12 + i]);
  OPENSSL_cleanse(x, sizeof x);
}

/* crypto_aead_xchacha20poly1305_ietf_decrypt of body = nonce || ciphertext || tag with `ad`,
 * the plaintext written over the ciphertext (at body + NONCE_BYTES). 0, DECODE_AUTH or
 * DECODE_INTERNAL. */
static int xchacha_open_in_place(const uint8_t key[32], uint8_t *body, size_t body_len, const uint8_t *ad, size_t ad_len) {
  size_t ct_len = body_len - NONCE_BYTES - TAG_BYTES;
  if (ct_len > INT_MAX) return DECODE_AUTH; /* no honest object is that large */
  if (aead == NULL) return DECODE_INTERNAL;
  if (tl_cipher == NULL && (tl_cipher = EVP_CIPHER_CTX_new()) == NULL) return DECODE_INTERNAL;
  uint8_t subkey[32], iv[12] = {0};
  hchacha20(subkey, key, body);
  memcpy(iv + 4, body + 16, 8);
  uint8_t *ct = body + NONCE_BYTES;
  uint8_t tag[TAG_BYTES];
  memcpy(tag, ct + ct_len, TAG_BYTES);
  EVP_CIPHER_CTX *c = tl_cipher;
  int n = 0, rc = DECODE_INTERNAL;
  if (EVP_DecryptInit_ex2(c, aead, subkey, iv, NULL) != 1) goto out;
  if (ad_len > 0 && EVP_DecryptUpdate(c, NULL, &n, ad, (int)ad_len) != 1) goto out;
  if (ct_len > 0 && EVP_DecryptUpdate(c, ct, &n, ct, (int)ct_len) != 1) goto out;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) != 1) goto out;
  rc = EVP_DecryptFinal_ex(c, ct + ct_len, &n) == 1 ? 0 : DECODE_AUTH;
out:
  OPENSSL_cleanse(subkey, sizeof subkey);
  return rc;
}

/* 0 when keyed BLAKE2b-256 of data equals id, DECODE_ID when not, DECODE_INTERNAL. */
static int check_id(const uint8_t id_key[32], const uint8_t id[32], const uint8_t *data, size_t len) {
  if (blake2b_mac == NULL) return DECODE_INTERNAL;
  EVP_MAC_CTX *m = EVP_MAC_CTX_new(blake2b_mac);
  if (m == NULL) return DECODE_INTERNAL;
  size_t size = ID_BYTES, out_len = 0;
  uint8_t out[ID_BYTES];
  OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
  int rc = DECODE_INTERNAL;
  if (EVP_MAC_init(m, id_key, KEY_BYTES, params) == 1 && EVP_MAC_update(m, data, len) == 1 &&
      EVP_MAC_final(m, out, &out_len, sizeof out) == 1 && out_len == ID_BYTES) {
    rc = CRYPTO_memcmp(out, id, ID_BYTES) == 0 ? 0 : DECODE_ID;
  }
  EVP_MAC_CTX_free(m);
  return rc;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref ctx_ref, src_ref, dst_ref;
  const dkeys_t *keys;
  uint8_t id[ID_BYTES];
  uint8_t *src; /* the object (openObject) or the frame (decodeFrame) */
  size_t src_len;
  uint8_t *dst; /* decodeFrame's output; NULL for openObject */
  size_t dst_len;
  size_t bound;
  int verify;
  double result;
} djob_t;

static void open_execute(napi_env env, void *data) {
  djob_t *j = (djob_t *)data;
  pthread_once(&fetch_once, fetch_algorithms);
  if (j->src_len < HEADER_BYTES + NONCE_BYTES + TAG_BYTES) {
    j->result = DECODE_TRUNCATED;
    return;
  }
  if (j->src[0] != OBJECT_VERSION) {
    j->result = DECODE_FORMAT;
    return;
  }
  uint8_t compression = j->src[1];
  uint8_t ad[2 + ID_BYTES];
  ad[0] = AD_CHUNK;
  memcpy(ad + 1, j->id, ID_BYTES);
  ad[1 + ID_BYTES] = compression;
  int rc = xchacha_open_in_place(j->keys->enc_key, j->src + HEADER_BYTES, j->src_len - HEADER_BYTES, ad, sizeof ad);
  if (rc != 0) {
    j->result = rc;
    return;
  }
  const uint8_t *payload = j->src + HEADER_BYTES + NONCE_BYTES;
  size_t payload_len = j->src_len - HEADER_BYTES - NONCE_BYTES - TAG_BYTES;
  if (compression == COMPRESSION_NONE) {
    rc = j->verify ? check_id(j->keys->id_key, j->id, payload, payload_len) : 0;
    j->result = rc != 0 ? rc : (double)payload_len;
  } else if (compression == COMPRESSION_ZSTD) {
    unsigned long long size = ZSTD_getFrameContentSize(payload, payload_len);
    j->result = size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR || size > j->bound ? DECODE_FRAME_SIZE : (double)size;
  } else {
    j->result = DECODE_COMPRESSION;
  }
}

static void frame_execute(napi_env env, void *data) {
  djob_t *j = (djob_t *)data;
  pthread_once(&fetch_once, fetch_algorithms);
  if (tl_dctx == NULL && (tl_dctx = ZSTD_createDCtx()) == NULL) {
    j->result = DECODE_INTERNAL;
    return;
  }
  size_t n = ZSTD_decompressDCtx(tl_dctx, j->dst, j->dst_len, j->src, j->src_len);
  if (ZSTD_isError(n)) {
    j->result = DECODE_ZSTD;
    return;
  }
  if (n != j->dst_len) {
    j->result = DECODE_LENGTH;
    return;
  }
  int rc = j->verify ? check_id(j->keys->id_key, j->id, j->dst, n) : 0;
  j->result = rc != 0 ? rc : (double)n;
}

static void djob_free(napi_env env, djob_t *j) {
  if (j->ctx_ref != NULL) napi_delete_reference(env, j->ctx_ref);
  if (j->src_ref != NULL) napi_delete_reference(env, j->src_ref);
  if (j->dst_ref != NULL) napi_delete_reference(env, j->dst_ref);
  free(j);
}

static void djob_complete(napi_env env, napi_status status, void *data) {
  djob_t *j = (djob_t *)data;
  if (status != napi_ok) {
    sn_settle(env, status, j->deferred, "decode");
  } else {
    napi_value v;
    napi_create_double(env, j->result, &v);
    napi_resolve_deferred(env, j->deferred, v);
  }
  napi_delete_async_work(env, j->work);
  djob_free(env, j);
}

static void dkeys_finalize(napi_env env, void *data, void *hint) {
  OPENSSL_cleanse(data, sizeof(dkeys_t));
  free(data);
}

/* decodeContext(encKey: Uint8Array, idKey: Uint8Array): an opaque context holding copies of the
 * two keys (32 bytes each), for openObject and decodeFrame. Freed (and wiped) by the collector. */
static napi_value js_decodeContext(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!sn_args(env, info, 2, argv, "decodeContext(encKey, idKey)")) return NULL;
  size_t enc_len, id_len;
  const uint8_t *enc = sn_typed(env, argv[0], napi_uint8_array, KEY_BYTES, "decodeContext: encKey", &enc_len);
  if (enc == NULL) return NULL;
  const uint8_t *idk = sn_typed(env, argv[1], napi_uint8_array, KEY_BYTES, "decodeContext: idKey", &id_len);
  if (idk == NULL) return NULL;
  if (enc_len != KEY_BYTES || id_len != KEY_BYTES) {
    sn_throw(env, SN_RANGE_ERROR, "ERR_OUT_OF_RANGE", "decodeContext: a key", "is not 32 bytes");
    return NULL;
  }
  dkeys_t *k = sn_calloc(env, 1, sizeof *k, "decodeContext");
  if (k == NULL) return NULL;
  memcpy(k->enc_key, enc, KEY_BYTES);
  memcpy(k->id_key, idk, KEY_BYTES);
  napi_value ext;
  if (napi_create_external(env, k, dkeys_finalize, NULL, &ext) != napi_ok) {
    dkeys_finalize(env, k, NULL);
    sn_throw(env, SN_ERROR, "ERR_NATIVE", "decodeContext", "could not be created");
    return NULL;
  }
  return ext;
}

/* The job of openObject/decodeFrame: ctx, id and src read from argv[0..2], dst from argv[3]
 * (decodeFrame) or NULL. NULL after throwing. */
static djob_t *djob_new(napi_env env, napi_value *argv, int with_dst, const char *what) {
  napi_valuetype t;
  dkeys_t *k = NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], (void **)&k) != napi_ok || k == NULL) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", what, "needs a decodeContext");
    return NULL;
  }
  size_t id_len, src_len, dst_len = 0;
  const uint8_t *id = sn_typed(env, argv[1], napi_uint8_array, ID_BYTES, what, &id_len);
  if (id == NULL) return NULL;
  uint8_t *src = sn_typed(env, argv[2], napi_uint8_array, 0, what, &src_len);
  if (src == NULL) return NULL;
  uint8_t *dst = NULL;
  if (with_dst && (dst = sn_typed(env, argv[3], napi_uint8_array, 0, what, &dst_len)) == NULL) return NULL;
  bool verify = false;
  if (napi_get_value_bool(env, argv[4], &verify) != napi_ok) {
    sn_throw(env, SN_TYPE_ERROR, "ERR_INVALID_ARG_TYPE", what, "verify must be a boolean");
    return NULL;
  }
  djob_t *j = sn_calloc(env, 1, sizeof *j, what);
  if (j == NULL) return NULL;
  j->keys = k;
  memcpy(j->id, id, ID_BYTES);
  j->src = src;
  j->src_len = src_len;
  j->dst = dst;
  j->dst_len = dst_len;
  j->verify = verify;
  if (napi_create_reference(env, argv[0], 1, &j->ctx_ref) != napi_ok || napi_create_reference(env, argv[2], 1, &j->src_ref) != napi_ok ||
      (with_dst && napi_create_reference(env, argv[3], 1, &j->dst_ref) != napi_ok)) {
    djob_free(env, j);
    sn_setup_failed(env, what);
    return NULL;
  }
  return j;
}

/* Queues `j` and returns its promise; NULL after throwing. */
static napi_value djob_queue(napi_env env, djob_t *j, napi_async_execute_callback execute, const char *name) {
  napi_value promise;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    djob_free(env, j);
    sn_setup_failed(env, name);
    return NULL;
  }
  if (!sn_queue(env, name, execute, djob_complete, j, &j->work, j->deferred)) djob_free(env, j); /* the promise rejected */
  return promise;
}

/* openObject(ctx, id: Uint8Array(32), obj: Uint8Array, bound: number, verify: boolean):
 * Promise<number>. Decrypts the chunk object `obj` in place on a pool thread (its payload
 * becomes plaintext at obj[26, obj.length - 16)) and resolves with the payload's length for a
 * stored chunk (hashed and compared with `id` when `verify`), the frame's content size for a
 * zstd chunk (at most `bound`), or a negative status. `obj` must not be touched until then. */
static napi_value js_openObject(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!sn_args(env, info, 5, argv, "openObject(ctx, id, obj, bound, verify)")) return NULL;
  double bound_d;
  int64_t bound;
  if (!sn_number(env, argv[3], "openObject: bound", &bound_d) || !sn_int_in(env, bound_d, 0, 4294967295.0, "openObject: bound", &bound)) return NULL;
  djob_t *j = djob_new(env, argv, 0, "openObject");
  if (j == NULL) return NULL;
  j->bound = (size_t)bound;
  return djob_queue(env, j, open_execute, "openObject");
}

/* decodeFrame(ctx, id: Uint8Array(32), frame: Uint8Array, dst: Uint8Array, verify: boolean):
 * Promise<number>. Decompresses the zstd frame into dst (exactly its content size) on a pool
 * thread and resolves with dst's length once it is checked against `id` (when `verify`), or a
 * negative status. Neither buffer may be touched until then. */
static napi_value js_decodeFrame(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!sn_args(env, info, 5, argv, "decodeFrame(ctx, id, frame, dst, verify)")) return NULL;
  djob_t *j = djob_new(env, argv, 1, "decodeFrame");
  if (j == NULL) return NULL;
  return djob_queue(env, j, frame_execute, "decodeFrame");
}

/* Adds decodeContext, openObject and decodeFrame to the addon's exports (sluice_native.c). */
int sluice_register_decodepool(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"decodeContext", NULL, js_decodeContext, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"openObject", NULL, js_openObject, NULL, NULL, NULL, napi_default_jsproperty, NULL},
    {"decodeFrame", NULL, js_decodeFrame, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
