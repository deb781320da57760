/**
 * Every limit and default of Sluice, once, with a one-line reason beside it. The memory budget
 * (docs/DESIGN.md) is the sum of these; the measurements behind the numbers are in
 * docs/TUNING.md, under the constant's name.
 */

export const KiB = 1024
export const MiB = 1024 * KiB

/** The memory budget (lib/budget.ts, docs/DESIGN.md "Memory budget"): `--memory`'s default, the
 *  peak RSS every workload is sized for (just under 100 MB); the least it takes; the runtime's
 *  share set aside before the split (Node and the loaded modules before any data moves); the
 *  seal worker's (its V8 isolate, heap and zstd context). docs/TUNING.md "The memory budget". */
export const MEMORY_DEFAULT = 95 * MiB
export const MEMORY_MIN = 32 * MiB
export const RUNTIME_RESERVE = 64 * MiB
export const SEAL_WORKER_RESERVE = 20 * MiB

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

/** Reading a snapshot: the distinct objects of one metadata tree kept track of (an 8-byte id
 *  prefix each, ~40 bytes with the set's overhead: 10 MB at most). An honest tree has about one
 *  object per thousand entries, so this allows some 200 million entries; a larger tree is refused. */
export const META_TREE_OBJECTS_MAX = 256 * 1024
/** Reading a snapshot: visits of tree objects already visited allowed per distinct object. An
 *  honest walked tree repeats none (a tar stream repeating its members may repeat a few); a tree
 *  that fans out into itself is refused before its work exceeds this multiple of its storage. */
export const META_TREE_REPEATS = 8

/** Extents per extent record: a file with a million chunks becomes many small records. */
export const EXTENTS_PER_RECORD = 64

/** Objects in flight between stages (objectMode highWaterMark). Each holds at most one chunk. */
export const STAGE_HWM = 2

/** Concurrent uploads / downloads. Each holds one chunk object. */
export const UPLOAD_CONCURRENCY = 3
export const DOWNLOAD_CONCURRENCY = 4
/** Uploads whose bytes are written but not yet synced and linked (a storage with putStaged:
 *  local), each an open temp file and no chunk memory: the pipeline goes on while the disk
 *  commits. docs/TUNING.md "Local writes synced behind the pipeline". */
export const UPLOAD_STAGED_PENDING = 32
/** The local storage's fsync-and-link steps at once (lib/storage/local.ts putStaged): each holds
 *  a thread-pool thread while the disk commits, as many as the uploads that synced in put (2 kept
 *  big-2x512M's uploads waiting 6.2 s on them, 3 0.6 s). */
export const LOCAL_SYNC_CONCURRENCY = 3
/** Restore: bytes of chunks (counted by their extents) fetched ahead of the writer, however many
 *  gets the storage keeps in flight: bounds a deep fetch-ahead (docs/TUNING.md "Restore's
 *  fetch-ahead from S3"). */
export const RESTORE_AHEAD_BYTES = 16 * MiB

/** Files read into memory whole below this size; larger ones are streamed in READ_BLOCK pieces. */
export const READ_BLOCK = 1 * MiB
/** Read blocks kept between files for the next file to read into (transforms/backup/sources/
 *  read-content.ts): a reader uses two, so two spare ones make a tree of large files allocate none. */
export const READ_BLOCKS_KEPT = 2
/** A file whose lstat size is 0 but that has content (procfs, sysfs) is read to its end, first
 *  into this much: such files are a page or two, so a READ_BLOCK each would be waste. */
export const READ_UNSIZED_FIRST = 16 * KiB

/** Size cap of the cache of chunk ids known to be stored (32 bytes each + map overhead). */
export const KNOWN_IDS_CACHE = 64 * 1024

/** Restore: decrypted chunks kept for packed small files that share a chunk. */
export const RESTORE_CHUNK_CACHE_BYTES = 3 * CHUNK_MAX
/** Restore: chunk memory the pool holds, in use and free (transforms/restore/chunk-pool.ts), at
 *  most the cache's and fetch-ahead's budget: 16 MiB covers the local download's swings, more
 *  is RSS (24 MiB: +5 MB on real-tree). docs/TUNING.md "Forced collections". */
export const RESTORE_POOL_BYTES = 16 * MiB

/** Chunk plaintext being decompressed on the thread pool at once (lib/repo/objects.ts
 *  openChunkPooled): two of the largest chunks, one per vCPU of the machines measured; see
 *  docs/TUNING.md "Decoding on the thread pool". */
export const DECODE_INFLIGHT_BYTES = 2 * CHUNK_MAX

/** Argon2id for new keys: 16 MiB with 8 passes, the same memory x passes (and time) as the
 *  32 MiB x 4 before it, for 16 MiB less at every open (the KDF's memory counts in the peak).
 *  Recorded in each key file, so older keys open with their own. docs/TUNING.md "Argon2id". */
export const KDF_MEMLIMIT = 16 * MiB
export const KDF_OPSLIMIT = 8
/** Bounds on the Argon2id parameters a key file may ask for, checked before running them: a
 *  planted key file must not cost a GiB or minutes. 64 MiB is twice the default (room for a
 *  stronger key, half the peak budget); 16 passes at that size take a second or two.
 *  The minimums are libsodium's own (8 KiB, one pass). */
export const KDF_MEMLIMIT_MIN = 8 * KiB
export const KDF_MEMLIMIT_MAX = 64 * MiB
export const KDF_OPSLIMIT_MIN = 1
export const KDF_OPSLIMIT_MAX = 16
/** A key derivation of at least this much memory first gives back what the process holds free
 *  (lib/memory.ts releaseMemory: a collection and malloc_trim, ~10 ms); below it the KDF does
 *  not move the peak. docs/TUNING.md "Argon2id". */
export const KDF_RELEASE_MIN = 1 * MiB

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

/** zstd level: zstd's own default, about restic's `auto`; the pipeline's slowest step. */
export const ZSTD_LEVEL = 3
/** The highest level `--compression` takes (`max`): zstd's own maximum, ~3 MB/s here. */
export const ZSTD_MAX_LEVEL = 19
/** zstd window (log2 bytes) above ZSTD_LEVEL: zstd sizes its match tables by the window, and
 *  level 19's for a 4 MiB chunk took a 20k-file backup to 199 MB (window 2^20: 149 MB; 2^17:
 *  119-125 MB, the pipeline's bound once the arena fills; level 3 peaks at 101-103 MB) for
 *  2.7 % more stored bytes than 2^20. docs/TUNING.md "Compression". */
export const ZSTD_HIGH_WINDOW_LOG = 17
/** What levels above ZSTD_LEVEL take from the arena's share of the memory budget (lib/budget.ts):
 *  level 19's tables and a pipeline full behind the slow compressor. 8 MiB brought a 20k-file
 *  `--compression max` backup from 107 MB to under 100 MB, at the same speed. */
export const ZSTD_HIGH_RESERVE = 8 * MiB

/** Chunks of at least PROBE_MIN_CHUNK bytes are probed before zstd (lib/repo/objects.ts): three
 *  samples of PROBE_SAMPLE bytes at level 1 tell incompressible chunks from the rest, cheaply. */
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
/** S3: GETs a restore keeps in flight ahead of its writer (each waits on a round trip), within
 *  RESTORE_AHEAD_BYTES, at the default --memory (fewer below it); local reads keep
 *  DOWNLOAD_CONCURRENCY. docs/TUNING.md "Restore's fetch-ahead from S3". */
export const S3_READ_AHEAD = 8
/** S3: the RSS the AWS SDK and its requests in flight take (its modules ~9 MB, the rest its
 *  buffers and garbage), taken out of --memory before restore sizes its fetch-ahead, so an S3
 *  restore peaks within the budget as a local one does. docs/TUNING.md "Restore's fetch-ahead from S3". */
export const S3_CLIENT_RESERVE = 24 * MiB
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

/** Small files (each at most READ_BLOCK) are read ahead of the chunker in batches on the thread
 *  pool (transforms/backup/prefetch.ts): files and bytes per batch, and batches in flight (enough
 *  to overlap a cold disk's reads; libuv's pool has four threads). */
export const PREFETCH_BATCH_FILES = 64
export const PREFETCH_BATCH_BYTES = 1 * MiB
export const PREFETCH_BATCHES = 3
/** Extended attributes are read in batches on the thread pool (transforms/backup/xattr.ts):
 *  entries and arena bytes per batch (two 1.9 KB attributes per file fill 128 KiB at ~32
 *  files; a path that does not fit is read alone), and batches in flight. */
export const XATTR_BATCH_FILES = 64
export const XATTR_BATCH_BYTES = 128 * KiB
export const XATTR_BATCHES = 2
/** A batch of fewer entries is read on the main thread: a round trip costs more. */
export const XATTR_SYNC_BELOW = 8

/** Storage `has` lookups in flight in dedup; each holds one chunk's plaintext meanwhile. */
export const DEDUP_CONCURRENCY = 2

/** diff: decrypted chunks kept while comparing the bytes of files whose extents differ (a file
 *  re-read after a touch is packed into other chunks); neighbours in a pack share chunks. */
export const DIFF_CHUNK_CACHE_BYTES = 3 * CHUNK_MAX

/** Worker threads that compress and seal (transforms/backup/seal.ts): one beside the main
 *  thread's read, chunk and hash is what two CPUs allow. */
export const SEAL_WORKERS = 1
/** Arena chunks from this size are compressed on the thread pool when the workers are off
 *  (transforms/backup/seal.ts); smaller ones inline, where a round trip would cost more. */
export const SEAL_POOL_MIN_CHUNK = 64 * KiB
/** zstd jobs on the thread pool at once above ZSTD_LEVEL (every chunk goes there): one per vCPU
 *  of the machines measured, each with its own context and output; items in the seal stage per
 *  job, so that a context freed finds its next chunk waiting. docs/TUNING.md "Compression". */
export const SEAL_POOL_JOBS_HIGH = 2
export const SEAL_POOL_AHEAD = 4

/** Sealing moves to the workers (transforms/backup/seal.ts) once it takes this share of the main
 *  thread's time over a window (the first one shorter, so large files get a worker sooner) and
 *  the files read in it average SEAL_WORKER_MIN_MEAN_FILE or more: a file that size costs more
 *  to seal than to find and read, and small-file trees cannot afford the worker's memory. */
export const SEAL_WORKER_SHARE = 0.4
export const SEAL_WORKER_WINDOW_MS = 500
export const SEAL_WORKER_FIRST_WINDOW_MS = 100
export const SEAL_WORKER_MIN_MEAN_FILE = 64 * KiB

/** Restore: files up to this size are copied into a batch's arena and created, written and
 *  finished by one addon call per batch (native/restorebatch.c); a larger file is written in place. */
export const RESTORE_SMALL_FILE = 256 * KiB
/** A batch's arena (at least RESTORE_SMALL_FILE) and its most files: one thread-pool round trip
 *  per this much work (tens of ms of file creation) without holding much. */
export const RESTORE_BATCH_BYTES = 1 * MiB
export const RESTORE_BATCH_FILES = 256
/** Batches submitted and not yet done (one is created at a time, the next waits; one more
 *  fills): creating several at once contends for the directory's lock (docs/TUNING.md). */
export const RESTORE_BATCHES = 2
/** Directories left whose times wait for their files' batch; beyond this the restore waits. */
export const RESTORE_PENDING_DIRS = 1024
/** A large file's positioned writes in flight at once (each holds a view of a decoded chunk). */
export const RESTORE_FILE_WRITES = 3

/** Restore --sparse: content is looked at in blocks of this size (a filesystem block), and a block
 *  of zeros is left as a hole instead of written (restic's --sparse); a smaller one saves nothing. */
export const RESTORE_SPARSE_MIN = 4 * KiB

/** The tar source holds a GNU sparse member's map before its data: at most this many bytes of it
 *  (some 60,000 regions; GNU tar's own maps of real files are far smaller). */
export const TAR_SPARSE_MAP_BYTES = 1 * MiB
/** restore --overwrite if-changed --verify: extents of one existing file held while its content
 *  is compared (184 bytes each decoded: 3 MB, a 16 GB file at the average chunk); a larger file
 *  that matches that far is rewritten rather than held. */
export const OVERWRITE_CHECK_EXTENTS = 16384

/** Owner names (lib/owners.ts): lookups kept per direction (uid→name, name→uid, and the same
 *  for groups); a tree has few owners, and a miss costs one read of /etc/passwd or /etc/group. */
export const OWNER_NAME_CACHE = 1024

/** The arena content chunks are assembled, sealed and stored in (lib/chunk-arena.ts), at the
 *  default memory budget: the chunker waits for room in it, so it bounds the chunks in flight.
 *  10 MiB: as fast as 12 (8, the floor, made real-tree's and big files' backups ~10 % slower,
 *  idle) and 2-4 MB lower (TUNING.md, "The chunk arena"). */
export const CHUNK_ARENA_BYTES = 10 * MiB

/** stats --mode raw-data: distinct chunk ids remembered (about 100 bytes each, ~13 MB). A
 *  repository with more referenced chunks (~128 GB at the 1 MiB average) is counted as an upper
 *  bound: a chunk met again after it left the cache counts twice. */
export const STATS_DISTINCT_CHUNKS = 128 * 1024
// Memory pacing (lib/memory.ts): forced collections, glibc malloc, V8's heap.

/** Backup: bytes of chunks that are buffers of their own (tree nodes, spilled from the arena)
 *  between two forced collections (lib/memory.ts); arena chunks leave no garbage. */
export const GC_EVERY_BYTES = 4 * MiB

/** Stream sources (stdin, a command, a tar) hand out a fresh buffer per piece: a forced
 *  collection every this many bytes of them keeps dead pieces below it, for little time. */
export const STREAM_GC_EVERY_BYTES = 16 * MiB

/** Restore: bytes of chunk buffers dropped by the pool (or read outside it) between two forced
 *  collections (lib/memory.ts); 8 MiB restores faster than 4 at the same peak, 16 peaks higher. */
export const RESTORE_GC_EVERY_BYTES = 8 * MiB
/** Prune's marking: decoded metadata bytes between two forced collections. Each load also
 *  leaves its stored and decrypted copies, so at 8 MiB (the restore pace) a 1M-entry prune
 *  peaked 62 MB against 57-58 at 100k, which never fills it; 4 MiB: 59-60, +9 % CPU. */
export const MARK_GC_EVERY_BYTES = 4 * MiB
/** A budget below MEMORY_DEFAULT: the binary's file pages dropped this often (lib/memory.ts
 *  releaseFilePagesEvery; one drop costs ~6.5 ms of /proc/self/smaps and madvise). */
export const LOW_MEMORY_RELEASE_MS = 500
/** A budget below MEMORY_DEFAULT: node's flags the CLI runs itself again with (cli/main.ts): a
 *  1 MB young generation, V8's collector on the main thread, no optimising compiler (and no
 *  WebAssembly, which lite mode turns off with a warning otherwise); small-100k
 *  backup at 64M: 74 -> 64 MB for 1.7x the CPU (docs/TUNING.md "A budget below the default"). */
export const LOW_MEMORY_NODE_FLAGS = ['--max-semi-space-size=1', '--single-threaded-gc', '--lite-mode', '--no-expose-wasm']
/** Restore: bytes restored between two malloc_trims (lib/memory.ts trimEvery): what a restored
 *  file frees outside the pool stays resident in malloc's holes otherwise (real-tree: -5 MB). */
export const RESTORE_TRIM_EVERY_BYTES = 8 * MiB
/** Restore from S3: the Bloom filters that find chunks read more than once (two of 2^21 bits,
 *  512 KiB in all): under 1% false "repeated" up to ~100,000 distinct chunks (100 GB). */
export const REPEATS_FILTER_BITS = 2 ** 21
/** Restore from S3: the objects of repeated chunks kept on local disk for their next read
 *  (spill-cache.ts): 1 GiB saves up to ~1,000 GETs of average chunks, with an index of at most
 *  RESTORE_SPILL_ENTRIES (~200 bytes each). docs/TUNING.md "Restore's fetch-ahead from S3". */
export const RESTORE_SPILL_BYTES = 1024 * MiB
export const RESTORE_SPILL_ENTRIES = 4096

/** glibc malloc during a backup (lib/memory.ts): blocks from this size on are mmapped and go back
 *  to the OS when freed, so chunk-sized buffers cannot fragment the heap and hold RSS up. */
export const MALLOC_MMAP_THRESHOLD = 128 * KiB
/** glibc arenas shared by the thread pool and workers: few, so freed memory is reused, not spread. */
export const MALLOC_ARENA_MAX = 2
/** Where chunks are only read (restore, cat, check): above the largest chunk, so decoded chunks
 *  reuse heap memory instead of each being a fresh mmap faulted in page by page. */
export const READ_MALLOC_MMAP_THRESHOLD = 2 * CHUNK_MAX

/** V8's young generation grows by this factor when it fills; 1 keeps it at V8's initial 1 MB
 *  semispaces, so short-lived garbage is collected as it goes rather than piling up. */
export const V8_SEMI_SPACE_GROWTH_FACTOR = 1
/** V8's old generation may grow by this percentage of what survived a full collection before the
 *  next one: what a 256 MB heap limit gives, instead of up to 300 % on a machine with RAM. */
export const V8_HEAP_GROWING_PERCENT = 30

/** The most a --password-command may print: a password, not a stream (its output is held). */
export const PASSWORD_MAX = 64 * KiB
/** Backup leases (lib/repo/lease.ts): a running backup rewrites its lease this often, and a
 *  lease not rewritten for LEASE_LIFETIME_MS has lapsed. restic refreshes its locks every 5
 *  minutes and calls one stale after 30. */
export const LEASE_REFRESH_MS = 5 * 60_000
export const LEASE_LIFETIME_MS = 30 * 60_000

/** Prune: a chunk younger than this is never moved aside, whatever the leases say (a second
 *  line of defence against clocks and backups that announce nothing; kopia's default is 24 h). */
export const GC_MIN_CHUNK_AGE_MS = 24 * 60 * 60_000
/** Prune: the least time between a collection's end and the sweep that deletes what it moved
 *  aside (kopia waits for a second GC cycle; this is the same margin, stated). */
export const GC_SWEEP_MIN_GAP_MS = 60 * 60_000

/** Prune's external sort: ids per sorted run (32 bytes each: a 2 MiB buffer), runs merged at
 *  once (each with a read block of GC_MERGE_BLOCK), so memory is flat whatever the chunk count.
 *  256 Ki ids (8 MiB) let a 1M-chunk prune peak 9 % above a 100k one, which fills less of it. */
export const GC_RUN_IDS = 64 * 1024
export const GC_MERGE_FANIN = 64
export const GC_MERGE_BLOCK = 64 * KiB
/** Prune's marking: metadata chunks remembered as marked (a key of ~40 bytes each, about 2 MB),
 *  so snapshots sharing metadata decode it once; 16 Ki chunks are 2 GiB of metadata at the
 *  128 KiB average, more than one snapshot of ten million files. */
export const GC_MARKED_CHUNKS = 16 * 1024
/** Prune: the garbage one listed key leaves (its directory entry, key string, id, promises),
 *  counted towards RESTORE_GC_EVERY_BYTES: a full collection every 16 Ki keys keeps the old
 *  generation from filling with them (1.1M chunks: 96-103 MB without, 91.5-92 MB with). */
export const GC_LISTED_KEY_GARBAGE = 512
/** Prune: ids per page of a collection's lists of the snapshots it saw (sealed objects). */
export const GC_SEEN_PAGE_IDS = 4096
/** Prune: moves or deletes between two checks that this prune still holds the lock. */
export const GC_LOCK_CHECK_EVERY = 256
/** Prune: storage moves/deletes in flight. */
export const GC_CONCURRENCY = 8

/** --limit-upload / --limit-download: the token bucket holds this many seconds of the rate, so
 *  a short idle spell lets one burst through, and a long transfer averages to the limit. */
export const RATE_LIMIT_BURST_SECONDS = 0.25

/** copy: chunk ids known present in the destination, remembered (about 100 bytes each) so
 *  chunks shared between files and snapshots are asked about once while they stay cached. */
export const COPY_KNOWN_IDS_CACHE = 64 * 1024
/** copy: chunks fetched, resealed and stored at a time (at most CHUNK_MAX each). */
export const COPY_CONCURRENCY = 4
/** copy: original ids of the destination's snapshots held in a set (about 150 bytes each);
 *  a destination with more is scanned again for each source snapshot instead. */
export const COPY_ORIGINALS_CAP = 100_000

/** External sort of byte strings (lib/external-sort.ts: huge directory listings): bytes of
 *  strings per sorted run (each string counts 16 bytes more for its index), runs merged at once
 *  and the read/write block of each run file, so a merge holds 64 × 64 KiB. */
export const EXTSORT_RUN_BYTES = 4 * MiB
export const EXTSORT_MERGE_FANIN = 64
export const EXTSORT_MERGE_BLOCK = 64 * KiB
/** The walk: bytes of directory listings held in memory across the directories on the current
 *  path (one buffer per directory: each name costs its bytes and 6 more); a listing that does
 *  not fit what is left is sorted externally and read back WALK_SPILL_BLOCK at a time. 1 MiB is
 *  ~50k names of 15 bytes: a real tree's man1 (18k names) is sorted in memory, and listing it
 *  costs ~3x its size for a moment (the native sort's arrays and the copy into V8). */
export const WALK_LISTING_BYTES = 1 * MiB
export const WALK_SPILL_BLOCK = 16 * KiB
/** A spilled listing is lstat'ed like one in memory, a chunk of WALK_SPILL_CHUNK names (at most
 *  WALK_SPILL_CHUNK_BYTES of them) at a time: one thread-pool round trip in 16 runs is waited for. */
export const WALK_SPILL_CHUNK = 1024
export const WALK_SPILL_CHUNK_BYTES = 32 * KiB
/** The walk's lstats: names per statAt call (one thread-pool round trip, 15 doubles each); a
 *  run stops at a directory, so no lstat is held while a subtree is walked. A run of fewer than
 *  WALK_STAT_SYNC_BELOW names is lstat'ed on the main thread (cheaper than the round trip).
 *  WALK_LINKS_BYTES: symlink targets read per call (a longer one is read alone). */
export const WALK_STAT_BATCH = 64
export const WALK_STAT_SYNC_BELOW = 3
export const WALK_LINKS_BYTES = 16 * KiB
/** The walk's hardlink map: inodes (with more links to come) remembered, ~200 bytes each. When
 *  full, the group seen longest ago is forgotten: its later links are stored as files with
 *  their own content (deduplicated, so cheap) instead of as links. */
export const WALK_HARDLINK_GROUPS = 16 * 1024
