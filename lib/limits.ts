/**
 * Every limit and default of Sluice, once, with the reason beside it.
 * The memory budget (DESIGN "Memory budget") is the sum of these.
 */

export const KiB = 1024
export const MiB = 1024 * KiB

/** Content chunker: min/avg/max. 4 MiB max bounds every buffer in the pipeline; 1 MiB average
 *  keeps the object count of a 1 TB repository near a million (restic: 512K/1M/8M). */
export const CHUNK_MIN = 256 * KiB
export const CHUNK_AVG = 1 * MiB
export const CHUNK_MAX = 4 * MiB

/** Metadata chunker: smaller chunks so that one changed file rewrites little of the file list. */
export const META_CHUNK_MIN = 32 * KiB
export const META_CHUNK_AVG = 128 * KiB
export const META_CHUNK_MAX = 512 * KiB

/** A chunk is cut early when this many metadata records wait for it (a chunk packs many small
 *  files; each waits for the chunk's id). Bounds the chunker's record queue. */
export const MAX_PENDING_RECORDS = 4096

/** Ids in one node of the metadata id tree (32 bytes each: a 32 KiB node). */
export const TREE_FANOUT = 1024

/** Extents per extent record: a file with a million chunks becomes many small records. */
export const EXTENTS_PER_RECORD = 64

/** Objects in flight between stages (objectMode highWaterMark). Each holds at most one chunk. */
export const STAGE_HWM = 2

/** Concurrent uploads / downloads. Each holds one chunk object. */
export const UPLOAD_CONCURRENCY = 3
export const DOWNLOAD_CONCURRENCY = 4

/** Files read into memory whole below this size; larger ones are streamed in READ_BLOCK pieces. */
export const READ_BLOCK = 1 * MiB
/** A file whose lstat size is 0 but that has content (procfs, sysfs) is read to its end, first
 *  into this much: such files are a page or two, so a READ_BLOCK each would be waste. */
export const READ_UNSIZED_FIRST = 16 * KiB

/** Size cap of the cache of chunk ids known to be stored (32 bytes each + map overhead). */
export const KNOWN_IDS_CACHE = 64 * 1024

/** Restore: decrypted chunks kept for packed small files that share a chunk. */
export const RESTORE_CHUNK_CACHE_BYTES = 3 * CHUNK_MAX

/** Restore: restored bytes between two forced collections (lib/gc.ts). Each restored chunk
 *  leaves its object and its plaintext behind (its compressed payload is decrypted into a reused
 *  buffer), and a forced full collection costs 12-17 ms here however small the heap: at 4 MiB a
 *  large-file restore spent half its main thread collecting. Measured on big-2x512M: 4 MiB
 *  11.0-12.1 s at 101-104 MB, 8 MiB 9.3-9.7 s at 100-105 MB, 16 MiB 8.2-8.6 s at 111-113 MB.
 *  8 MiB: faster at the same peak. */
export const RESTORE_GC_EVERY_BYTES = 8 * MiB

/** Argon2id: 32 MiB with 4 passes (RFC 9106 allows trading memory for passes). The 64 MiB option
 *  would be a third of the 120 MB peak budget by itself. Recorded in each key file. */
export const KDF_MEMLIMIT = 32 * MiB
export const KDF_OPSLIMIT = 4
/** Bounds on the Argon2id parameters a key file may ask for, checked before running them: a
 *  planted key file must not cost a GiB or minutes. 64 MiB is twice the default (room for a
 *  stronger key, half the peak budget); 16 passes at that size take a second or two.
 *  The minimums are libsodium's own (8 KiB, one pass). */
export const KDF_MEMLIMIT_MIN = 8 * KiB
export const KDF_MEMLIMIT_MAX = 64 * MiB
export const KDF_OPSLIMIT_MIN = 1
export const KDF_OPSLIMIT_MAX = 16

/** The config, a key file or a snapshot root is read whole only up to this size: each is a few
 *  hundred bytes to a few KB (a root lists the backup's paths and tags), so a larger one was
 *  planted or damaged and must not drive memory. */
export const SMALL_OBJECT_MAX = 1 * MiB

/** Key files examined when opening a repository before giving up (restic's maxKeys is 20):
 *  each may cost a KDF run, so planted key files cannot make opening take unbounded time. */
export const KEY_FILES_MAX = 20

/** Smallest chunker `min` a config may set: below it the per-chunk overhead (an object, an id,
 *  an extent) outweighs the data; the largest `max` is CHUNK_MAX, the bound of every buffer. */
export const CHUNKER_MIN_BOUND = 64

/** Temporary files of a local repository (REPO/tmp) older than this are leftovers of a killed
 *  writer: a writer holds its temp file for one object's write, fsync and link (seconds for at
 *  most CHUNK_MAX bytes), so an hour is far beyond any live write, even on a stalled disk. */
export const TEMP_LEFTOVER_AGE_MS = 60 * 60 * 1000

/** Unreadable snapshots already warned about in one process (so each is named once); capped
 *  so that a repository of damaged snapshots cannot grow it. */
export const SNAPSHOT_WARNED_CAP = 1024

/** zstd level: 3 is zstd's default and the pipeline's slowest step: on big-2x512M's data one core
 *  compresses its text at 93 MB/s (level 1: 165 MB/s, 13 % larger) and its random half at 917
 *  MB/s, which the probe below skips. restic's default (`auto`) is about the same level. */
export const ZSTD_LEVEL = 3
/** The highest level `--compression` takes (`max`): zstd's own maximum, ~3 MB/s here. */
export const ZSTD_MAX_LEVEL = 19

/** Chunks of at least PROBE_MIN_CHUNK bytes are probed before zstd (lib/objects.ts): three
 *  samples of PROBE_SAMPLE bytes at level 1. Measured on big-2x512M's data: 8 KiB samples tell
 *  its 1 MB random chunks from its text ones every time, for 0.056 ms a chunk (4 KiB: 0.035 ms,
 *  but a small sample understates what zstd finds in a whole chunk); zstd level 3 spends 1.1 ms
 *  on a random MiB and 11 ms on a text MiB. */
export const PROBE_SAMPLE = 8 * KiB
export const PROBE_MIN_CHUNK = 64 * KiB

/** Progress on a non-terminal stderr: one plain line this often. */
export const PROGRESS_PLAIN_INTERVAL_MS = 10_000
/** `backup --json`: one status line this often (restic's JSON progress is once a second too). */
export const PROGRESS_JSON_INTERVAL_MS = 1_000

/** S3: objects above this go up in parts (lib-storage Upload). Chunks (CHUNK_MAX plus overhead)
 *  stay below it, so the common path is one PutObject that a retry can simply resend. */
export const S3_MULTIPART_THRESHOLD = 8 * MiB
/** S3 multipart: part size (S3's minimum) × parts in flight bounds one upload's buffers. */
export const S3_PART_SIZE = 5 * MiB
export const S3_PART_QUEUE = 2
/** S3 keys per list page: the most S3 returns in one; one page is held at a time. */
export const S3_LIST_PAGE = 1000
/** S3 attempts per request for transient failures (throttling, 5xx, reset connections), with
 *  exponential backoff and full jitter between them: at most ~13 s of waiting in all. */
export const S3_MAX_ATTEMPTS = 8
export const S3_BACKOFF_BASE_MS = 100
export const S3_BACKOFF_CAP_MS = 10_000
/** Attempts when the endpoint cannot be reached at all (refused, unknown host, connect timeout):
 *  a user waits seconds for one clear line, not minutes of retries against nothing. */
export const S3_UNREACHABLE_ATTEMPTS = 3
export const S3_UNREACHABLE_BACKOFF_CAP_MS = 300
/** S3 timeouts: connecting; a socket with no traffic (a stalled transfer); one whole request. */
export const S3_CONNECT_TIMEOUT_MS = 5_000
export const S3_SOCKET_IDLE_TIMEOUT_MS = 30_000
export const S3_REQUEST_TIMEOUT_MS = 120_000

/** Small files (each at most READ_BLOCK) are read ahead of the chunker in batches, on the
 *  thread pool (transforms/prefetch.ts): one round trip per batch instead of three per file.
 *  A batch holds at most this many files and bytes, and this many batches are in flight (enough
 *  to overlap the reads of a cold disk; libuv's pool has four threads). */
export const PREFETCH_BATCH_FILES = 64
export const PREFETCH_BATCH_BYTES = 1 * MiB
export const PREFETCH_BATCHES = 3

/** Storage `has` lookups in flight in dedup; each holds one chunk's plaintext meanwhile. */
export const DEDUP_CONCURRENCY = 2

/** glibc malloc: blocks from this size on are mmapped and returned to the OS when freed, and
 *  the thread pool shares at most this many arenas (lib/native.ts tuneMalloc). Without it the
 *  heap fragments under chunk-sized buffers and RSS drifts 20-30 MB above what is live. */
export const MALLOC_MMAP_THRESHOLD = 128 * KiB
export const MALLOC_ARENA_MAX = 2
/** ...except where chunks are only read (restore, cat, check): each decoded chunk is a new
 *  buffer, and at 128 KiB every one was a fresh mmap, faulted in page by page and unmapped when
 *  collected.
 *  Above the largest chunk they come from the heap and reuse its memory: big-2x512M restores in
 *  7.0-7.5 s instead of 9.3-10 s (system time 1.3-1.7 s instead of 4.3 s), a 2 GiB stream cats in
 *  7.5 s instead of 11-12 s, `check --read-data` of big-2x512M 5.1-5.2 s instead of 7.9-8.2 s,
 *  for a peak 0-7 MB higher (103-106 / 108 / 114-115 MB against 100-103 / 101 / 107-110). */
export const READ_MALLOC_MMAP_THRESHOLD = 2 * CHUNK_MAX

/** diff: decrypted chunks kept while comparing the bytes of files whose extents differ (a file
 *  re-read after a touch is packed into other chunks); neighbours in a pack share chunks. */
export const DIFF_CHUNK_CACHE_BYTES = 3 * CHUNK_MAX

/** Bytes of chunks that are buffers of their own (metadata chunks, regions spilled from the
 *  chunk arena, a chunker without an arena) between two forced garbage collections (lib/gc.ts).
 *  Content chunks in the arena leave no garbage and do not count. (Before the arena every chunk
 *  counted, and this traded time for memory: on 1M small files 16 MiB peaked at 122 MB in 160 s,
 *  4 MiB at 108 MB in 219 s.) */
export const GC_EVERY_BYTES = 4 * MiB

/** Stream sources (a command's stdout, a tar on stdin, a script's Readable) hand out a fresh
 *  buffer per piece; a collection is forced every this many bytes of them, so dead pieces stay
 *  below it. Cheap at this size: one collection of a ~10 MB heap per 16 MiB of input. */
export const STREAM_GC_EVERY_BYTES = 16 * MiB

/** Worker threads that compress and seal (transforms/seal.ts). Two CPUs here: one for the
 *  main thread's read/chunk/hash, one for zstd and XChaCha20. */
export const SEAL_WORKERS = 1

/** Sealing moves to worker threads (transforms/seal.ts) once inline compression and encryption
 *  take this share of the main thread's wall-clock time over a window of SEAL_WORKER_WINDOW_MS
 *  (the first window, from the first chunk on, SEAL_WORKER_FIRST_WINDOW_MS: large files get
 *  their worker ~0.4 s sooner) and the files read in that window average
 *  SEAL_WORKER_MIN_MEAN_FILE or more. A rate threshold cannot work: sealed inline, large files
 *  never arrive faster than one core compresses them. Measured with the chunk arena: large files
 *  (2 x 512 MiB, mixed) spend 0.49-0.60 of a window sealing; on the worker they take 11 s
 *  instead of 15 s. A tree of 100k small files (2.9 KB on average) spends 0.14-0.48 of a window
 *  sealing, so the share alone cannot tell it apart: when it started the worker that tree peaked
 *  at 125-131 MB instead of 104-113 MB, for a tenth of its time. The mean file size does: at
 *  64 KiB a file's sealing (~0.6 ms at level 3) outweighs its per-file work (lstat, open, read,
 *  close, record: tens of microseconds). */
export const SEAL_WORKER_SHARE = 0.4
export const SEAL_WORKER_WINDOW_MS = 500
export const SEAL_WORKER_FIRST_WINDOW_MS = 100
export const SEAL_WORKER_MIN_MEAN_FILE = 64 * KiB

/** Restore: files up to this size are collected (copied) and created by jobs that run
 *  RESTORE_FILE_JOBS at a time, so the kernel's per-file creation cost overlaps. */
export const RESTORE_SMALL_FILE = 256 * KiB
export const RESTORE_FILE_JOBS = 8

/** The arena that content chunks are assembled, sealed and stored in (lib/chunk-arena.ts). It
 *  holds the open chunk's region (CHUNK_MAX) and the chunks between chunker and upload (about
 *  fifteen at most, about 1 MiB each on average); a chunk that finds no room takes a buffer of
 *  its own, so this bounds speed, not correctness. Measured: 16 MiB spilled a third of the
 *  chunks of large files (forced collections, +1 s per 1.5 GB); 24 MiB none, with 16-21 MiB of
 *  it ever touched. */
export const CHUNK_ARENA_BYTES = 24 * MiB

/** stats --mode raw-data: distinct chunk ids remembered (about 100 bytes each, ~13 MB). A
 *  repository with more referenced chunks (~128 GB at the 1 MiB average) is counted as an upper
 *  bound: a chunk met again after it left the cache counts twice. */
export const STATS_DISTINCT_CHUNKS = 128 * 1024
