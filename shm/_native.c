/*
 * shm._native: the lock-free core of Hyperlinkr's shared memory.
 *
 * Python owns the segments (naming, the segment header, attach and unlink,
 * see shm/layout.py); this file owns what lives inside a region and every
 * operation that must be atomic or fast: 64-bit atomics for Python, the L1
 * table (get, put, delete) and the multi-producer ring (push, peek,
 * advance). Objects hold a Py_buffer of the segment's mmap and never outlive
 * it: close() releases the buffer before Python closes the mmap.
 *
 * THE TABLE: a hash index over an append-only log
 * ------------------------------------------------
 * Records (header + key + value) are appended to a circular byte log. A
 * writer reserves space with one fetch-add on `head` (an absolute, ever
 * growing byte offset), writes the record, then publishes it by CAS into
 * the index. The byte at absolute offset A lives at A % arena_bytes, so a
 * record at A is intact for exactly as long as head <= A + arena_bytes:
 * the head itself is the version number of every byte in the arena.
 *
 * A reader loads an index entry, copies the record, then (after an acquire
 * fence) reloads head: if head has passed A + arena_bytes a writer may
 * have overwritten the record while it was copied, and the copy is thrown
 * away. Readers never write shared state on a plain hit, never wait, and
 * never return a torn record. Writers never take a lock: one fetch-add and
 * one CAS. A writer killed mid-write leaves bytes nobody indexes: they are
 * reclaimed when the log wraps over them.
 *
 * The head check alone is not enough: a writer that reserved at A and was
 * descheduled before copying its bytes can wake after the log has lapped
 * it, and then writes into the space of a newer, indexed record at
 * A + arena_bytes. Nothing in shared state tells a reader that happened,
 * so every record carries a 64-bit checksum of its offset, header, key
 * and value, computed by the writer from its private copy and verified by
 * the reader on its private copy. A record damaged by a lapped writer, or
 * copied while one was writing into it, fails the checksum and reads as a
 * miss (the caller refills it from the durable store). The checksum costs
 * about 20 ns for a 150-byte record.
 *
 * Memory per entry follows its size (records are variable-length, 8-byte
 * aligned) instead of a fixed 2 KiB slot. Eviction is FIFO over the log
 * with second chance: a hit on a record in the older half of the log
 * copies it to the head ("promotion"), so hot entries never fall off the
 * end; this is CLOCK's behaviour without a hand to sweep.
 *
 * The index is set-associative: bucket_count buckets of 8 ways (one cache
 * line). An entry is one u64: a 16-bit tag from the hash, and the record's
 * absolute offset in 8-byte units (48 bits, unwrapped against head on
 * read). 0 is an empty way. A full bucket evicts its oldest way. Probe
 * length is bounded by 8 whatever the load, so no tombstones are needed.
 *
 * A key's bucket is ((hash & 0xffffffff) * bucket_count) >> 32: the low 32
 * bits of the hash scaled onto [0, bucket_count) by one multiply (Lemire's
 * multiply-shift), so bucket_count need not be a power of two and the
 * index is sized to the entries it must hold, not rounded up to the next
 * power (up to twice as much memory). The tag is bits 48-63, so bucket
 * and tag never share a bit: keys of one bucket differ in tag as often as
 * any two keys. The product fits 64 bits while bucket_count <= 2^32,
 * which init_table and TableCore refuse to exceed.
 *
 *   table region (offsets from the region base)
 *   0      u64 seed            hash seed, random per segment
 *   8      u64 bucket_count    1 to 2^32, any value
 *   16     u64 arena_bytes     multiple of 8
 *   64     u64 head            next free absolute log offset (fetch-add)
 *   128    stats blocks        STATS_BLOCKS x 128 B, one per process:
 *                              u64 pid, then u64 counters (see TS_*)
 *   index  bucket_count x 8 x u64
 *   arena  arena_bytes of records:
 *            0  u64 abs_offset   where the record was written (cross-check)
 *            8  u64 hash
 *            16 u64 expires_at_ms (0: never)
 *            24 u16 key_len, u16 value_len, u16 flags, u16 unused
 *            32 u64 checksum     of bytes 0-31, key and value
 *            40 key bytes, then value bytes, padded to 8
 *
 * THE RING: Vyukov's bounded queue, with a consumer that can die
 * -------------------------------------------------------------
 * Every cell carries a sequence word. For position p the cell is free when
 * seq == p; a producer wins p by CAS on `tail`, claims the cell by CAS
 * seq: p -> p|BUSY, writes its pid and the record, then publishes by CAS
 * seq: p|BUSY -> p+1. The consumer reads cells from `head` while seq ==
 * p+1 and only frees them (seq = p+capacity) in advance(), so a consumer
 * that dies mid-batch finds the same records again after restart. A
 * consumer that holds records over several peeks may start a peek where
 * its last one ended instead of at head: the cells in between stay
 * published (or skipped) until advance(), so nothing there can change.
 *
 * A producer that dies after winning p stalls the consumer at p. After
 * stall_timeout_ms the consumer skips the cell by CAS to (p+1)|SKIP, unless
 * the cell is BUSY and its owner pid is still alive. Every step of a
 * producer is a CAS that fails once the cell was skipped, so a late
 * producer drops its record (counted) instead of corrupting a cell.
 *
 * The owner pid a producer writes is cached, not asked of the kernel on
 * every push (see self_pid): a getpid() syscall cost more than the rest of
 * a push. The cache is refreshed in a forked child before fork() returns,
 * so the pid in a cell is always its writer's, and the skip rule above
 * holds for processes forked from one that imported this module.
 *
 *   ring region
 *   0      u64 capacity        power of two
 *   8      u64 record_bytes    payload bytes per cell
 *   16     u64 cell_bytes
 *   24     u64 generation      random per segment
 *   64     u64 tail            next position to reserve (producers)
 *   128    u64 head            first position not advanced past (consumer)
 *   192    stats blocks        STATS_BLOCKS x 128 B (see RS_*)
 *   cells  capacity x cell_bytes:
 *            0 u64 seq, 8 u64 owner pid, 16 u32 length, 20 u32 unused,
 *            24 payload
 *
 * Memory ordering: shared words use GCC __atomic builtins. Record bytes
 * are copied with memcpy under the seqlock-style validation above; this is
 * the usual seqlock data race, made safe by validating before use.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "_hash.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, expected, desired)                                          \
    __atomic_compare_exchange_n((p), (expected), (desired), 0,             \
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#define COUNT(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)

#define STATS_BLOCKS 64
#define STATS_BLOCK_WORDS 16

#define MAX_KEY 32
#define MAX_VALUE 2048
#define WAYS 8
#define REC_HEADER 40
#define OFFSET_BITS 48
#define OFFSET_MASK ((UINT64_C(1) << OFFSET_BITS) - 1)
#define MAX_BUCKETS (UINT64_C(1) << 32)
#define FLAG_NEGATIVE 1u

#define TABLE_HEADER 128
#define RING_HEADER 192
#define CELL_HEADER 24
#define BUSY (UINT64_C(1) << 63)
#define SKIP (UINT64_C(1) << 62)
#define POSITION_MASK (SKIP - 1)

/* Per-process counters, word 0 of each stats block being the owner pid. */
enum { TS_HITS = 1, TS_MISSES, TS_INSERTS, TS_EVICTIONS, TS_CAS_RETRIES,
       TS_PROMOTIONS, TS_DELETES, TS_COUNT };
enum { RS_PUSHES = 1, RS_DROPS, RS_SKIPPED, RS_TAKEN, RS_CAS_RETRIES,
       RS_LATE, RS_COUNT };

/* Test hooks: stop this process (SIGSTOP) at an exact point so a test can
 * kill -9 it there. Zero in production. */
enum { HOOK_NONE = 0, HOOK_PUSH_RESERVED, HOOK_PUSH_MID_COPY,
       HOOK_PUT_MID_WRITE };
static int test_hook = HOOK_NONE;

static void
hook(int point)
{
    if (test_hook == point)
        raise(SIGSTOP);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* This process's pid, for ring cell owners and stats blocks. getpid() is
 * a real syscall (glibc dropped its cache in 2.25), about 185 ns on a VM:
 * most of a push. It is read at module init and refreshed in the child of
 * every fork() by a pthread_atfork handler, which runs before fork()
 * returns there (os.fork, multiprocessing's fork and forkserver). Without
 * it a forked child would sign cells with its parent's pid, and a child
 * killed mid-push would stall the consumer for as long as the parent
 * lived: a BUSY cell whose owner is alive is never skipped. vfork() and
 * posix_spawn() children skip the handler, rightly: they share the
 * parent's memory until they exec, and push nothing. */
static pid_t self_pid;
static int fork_handler_installed;

static void
refresh_self_pid(void)
{
    self_pid = getpid();
}

static int
cache_self_pid(void)
{
    int err;

    refresh_self_pid();
    if (fork_handler_installed)
        return 0;
    err = pthread_atfork(NULL, NULL, refresh_self_pid);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    fork_handler_installed = 1;
    return 0;
}

/* Alive means kill(pid, 0) succeeds and /proc does not call it a zombie. */
static int
pid_alive(uint64_t pid)
{
    char path[64], buf[256];
    FILE *f;
    char *close_paren;
    size_t n;

    if (pid == 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        return 0;
    snprintf(path, sizeof path, "/proc/%llu/stat", (unsigned long long)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    close_paren = strrchr(buf, ')');
    return !(close_paren != NULL && close_paren[1] == ' ' &&
             (close_paren[2] == 'Z' || close_paren[2] == 'X'));
}


/* Claim this process's stats block: its own, a free one, or one whose
 * owner died (its counts are kept, so sums never go backwards). Falls back
 * to block 0, shared, when all are taken; counters are atomic anyway. */
static uint64_t *
claim_stats_block(char *blocks)
{
    uint64_t me = (uint64_t)self_pid;
    int pass, i;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < STATS_BLOCKS; i++) {
            uint64_t *block = (uint64_t *)(blocks + i * 8 * STATS_BLOCK_WORDS);
            uint64_t owner = LOAD(&block[0]);
            if (owner == me)
                return block;
            if (pass == 0 && owner == 0 && CAS(&block[0], &owner, me))
                return block;
            if (pass == 1 && owner != 0 && !pid_alive(owner) &&
                CAS(&block[0], &owner, me))
                return block;
        }
    }
    return (uint64_t *)blocks;
}

static void
sum_stats(const char *blocks, uint64_t *totals, int words)
{
    int i, w;

    for (w = 0; w < words; w++)
        totals[w] = 0;
    for (i = 0; i < STATS_BLOCKS; i++) {
        uint64_t *block = (uint64_t *)(blocks + i * 8 * STATS_BLOCK_WORDS);
        for (w = 1; w < words; w++)
            totals[w] += LOAD_RELAXED(&block[w]);
    }
}

/* A Py_buffer over the segment plus a base offset; shared by both types. */
typedef struct {
    Py_buffer view;
    int has_view;
    char *base;
} Region;

static int
region_open(Region *r, PyObject *buffer, Py_ssize_t offset, Py_ssize_t size)
{
    if (PyObject_GetBuffer(buffer, &r->view, PyBUF_WRITABLE) < 0)
        return -1;
    r->has_view = 1;
    if (offset < 0 || offset % 64 != 0 || offset + size > r->view.len) {
        PyErr_Format(PyExc_ValueError,
                     "region of %zd bytes at offset %zd does not fit a "
                     "buffer of %zd bytes (offset must be 64-aligned)",
                     size, offset, r->view.len);
        return -1;
    }
    r->base = (char *)r->view.buf + offset;
    return 0;
}

static void
region_close(Region *r)
{
    if (r->has_view) {
        PyBuffer_Release(&r->view);
        r->has_view = 0;
        r->base = NULL;
    }
}

/* The bytes of a key or record argument. A bytes object, which is what
 * every caller in the node passes, is read in place: the buffer protocol's
 * get and release cost more than the read. The object is borrowed, so the
 * pointer is valid only while the GIL is held; no caller releases it. */
typedef struct {
    const char *buf;
    Py_ssize_t len;
    Py_buffer view;
    int has_view;
} BytesArg;

static int
bytes_arg_get(BytesArg *a, PyObject *obj)
{
    if (PyBytes_CheckExact(obj)) {
        a->buf = PyBytes_AS_STRING(obj);
        a->len = PyBytes_GET_SIZE(obj);
        a->has_view = 0;
        return 0;
    }
    if (PyObject_GetBuffer(obj, &a->view, PyBUF_SIMPLE) < 0)
        return -1;
    a->buf = a->view.buf;
    a->len = a->view.len;
    a->has_view = 1;
    return 0;
}

static void
bytes_arg_release(BytesArg *a)
{
    if (a->has_view)
        PyBuffer_Release(&a->view);
}

#define REQUIRE_OPEN(region)                                               \
    do {                                                                   \
        if ((region).base == NULL) {                                       \
            PyErr_SetString(PyExc_ValueError,                              \
                            "operation on a closed shared-memory object"); \
            return NULL;                                                   \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------------ */
/* The table                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Region region;
    uint64_t seed;
    uint64_t bucket_count;
    uint64_t arena_bytes;
    uint64_t *head;
    uint64_t *index;
    char *arena;
    uint64_t *stats;
    PyObject *negative;
} TableCore;

static Py_ssize_t
table_region_bytes(uint64_t bucket_count, uint64_t arena_bytes)
{
    return (Py_ssize_t)(TABLE_HEADER + STATS_BLOCKS * 8 * STATS_BLOCK_WORDS +
                        bucket_count * WAYS * 8 + arena_bytes);
}

/* Whether a region header describes a table that fits `len` bytes from
 * `offset`. Each field is bounded before the sizes are added, so a
 * corrupt header cannot overflow the sum into a small region and have
 * the index or the arena bound past the end of the buffer. */
static int
table_header_fits(const uint64_t *hdr, Py_ssize_t offset, Py_ssize_t len)
{
    if (hdr[1] == 0 || hdr[1] > MAX_BUCKETS || hdr[2] < 4096 ||
        hdr[2] % 8 != 0 || hdr[2] > (uint64_t)len)
        return 0;
    return offset + table_region_bytes(hdr[1], hdr[2]) <= len;
}

static void
table_bind(TableCore *t)
{
    uint64_t *hdr = (uint64_t *)t->region.base;
    char *blocks = t->region.base + TABLE_HEADER;

    t->seed = hdr[0];
    t->bucket_count = hdr[1];
    t->arena_bytes = hdr[2];
    t->head = &hdr[8];
    t->index = (uint64_t *)(blocks + STATS_BLOCKS * 8 * STATS_BLOCK_WORDS);
    t->arena = (char *)(t->index + hdr[1] * WAYS);
    t->stats = claim_stats_block(blocks);
}

typedef struct {
    uint64_t hash;
    uint64_t expires_at_ms;
    uint16_t key_len;
    uint16_t value_len;
    uint16_t flags;
    uint16_t unused;
} RecordHeader;

/* A validated copy of one record. */
typedef struct {
    RecordHeader h;
    char key[MAX_KEY];
    char value[MAX_VALUE];
} Record;

/* Fold `len` bytes into `h`, a word at a time. Not a keyed hash: it only
 * has to catch bytes that changed under a reader, not an adversary. */
static uint64_t
fold_bytes(uint64_t h, const char *p, size_t len)
{
    uint64_t word;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&word, p + i, 8);
        h = (h ^ word) * UINT64_C(0x9e3779b97f4a7c15);
        h ^= h >> 29;
    }
    if (i < len) {
        word = 0;
        memcpy(&word, p + i, len - i);
        h = (h ^ word ^ (uint64_t)(len - i) << 56) * UINT64_C(0xbf58476d1ce4e5b9);
        h ^= h >> 31;
    }
    return h;
}

static uint64_t
record_checksum(uint64_t abs, const RecordHeader *h, const char *key,
                const char *value)
{
    uint64_t sum = mix64(abs ^ UINT64_C(0x243f6a8885a308d3));

    sum = fold_bytes(sum, (const char *)h, sizeof(RecordHeader));
    sum = fold_bytes(sum, key, h->key_len);
    sum = fold_bytes(sum, value, h->value_len);
    return mix64(sum);
}

static uint64_t
round8(uint64_t n)
{
    return (n + 7) & ~UINT64_C(7);
}

static uint64_t
entry_offset(TableCore *t, uint64_t entry, uint64_t head)
{
    uint64_t head_units = head / 8;
    uint64_t units = (head_units & ~OFFSET_MASK) | (entry & OFFSET_MASK);

    if (units > head_units)
        units -= UINT64_C(1) << OFFSET_BITS;
    (void)t;
    return units * 8;
}

static uint16_t
tag_of(uint64_t hash)
{
    uint16_t tag = (uint16_t)(hash >> 48);
    return tag ? tag : 1;
}

enum { REC_STALE = 0, REC_OK = 1 };

/* Copy the record behind `entry` into `out` and validate it against head.
 * REC_STALE: overwritten, torn or garbage; the way may be reused. */
static int
read_record(TableCore *t, uint64_t entry, Record *out, uint64_t *abs_out)
{
    uint64_t head = LOAD(t->head);
    uint64_t abs = entry_offset(t, entry, head);
    const char *rec;
    uint64_t stored_abs, stored_sum, span;

    if (abs + t->arena_bytes < head || abs >= head)
        return REC_STALE;
    rec = t->arena + abs % t->arena_bytes;
    memcpy(&stored_abs, rec, 8);
    memcpy(&out->h, rec + 8, sizeof(RecordHeader));
    memcpy(&stored_sum, rec + 32, 8);
    span = REC_HEADER + (uint64_t)out->h.key_len + out->h.value_len;
    if (stored_abs != abs || out->h.key_len > MAX_KEY ||
        out->h.value_len > MAX_VALUE ||
        abs % t->arena_bytes + span > t->arena_bytes)
        return REC_STALE;
    memcpy(out->key, rec + REC_HEADER, out->h.key_len);
    memcpy(out->value, rec + REC_HEADER + out->h.key_len, out->h.value_len);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (abs + t->arena_bytes < LOAD(t->head) ||
        stored_sum != record_checksum(abs, &out->h, out->key, out->value))
        return REC_STALE;
    *abs_out = abs;
    return REC_OK;
}

static int
record_is(const Record *r, uint64_t hash, const char *key, size_t key_len)
{
    return r->h.hash == hash && r->h.key_len == key_len &&
           memcmp(r->key, key, key_len) == 0;
}

/* Reserve `len` contiguous bytes of log; a reservation that would wrap
 * around the end of the arena is abandoned (it is padding) and retried. */
static uint64_t
reserve(TableCore *t, uint64_t len)
{
    for (;;) {
        uint64_t abs = ADD(t->head, len);
        if (abs % t->arena_bytes + len <= t->arena_bytes) {
            __atomic_thread_fence(__ATOMIC_RELEASE);
            return abs;
        }
    }
}

static uint64_t
append_record(TableCore *t, const RecordHeader *h, const char *key,
              const char *value)
{
    uint64_t len = round8(REC_HEADER + (uint64_t)h->key_len + h->value_len);
    uint64_t abs = reserve(t, len);
    uint64_t sum = record_checksum(abs, h, key, value);
    char *rec = t->arena + abs % t->arena_bytes;

    memcpy(rec, &abs, 8);
    memcpy(rec + 8, h, sizeof(RecordHeader));
    memcpy(rec + 32, &sum, 8);
    memcpy(rec + REC_HEADER, key, h->key_len);
    hook(HOOK_PUT_MID_WRITE);
    memcpy(rec + REC_HEADER + h->key_len, value, h->value_len);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return ((uint64_t)tag_of(h->hash) << OFFSET_BITS) |
           ((abs / 8) & OFFSET_MASK);
}

static uint64_t *
bucket_of(TableCore *t, uint64_t hash)
{
    uint64_t bucket = ((hash & UINT64_C(0xffffffff)) * t->bucket_count) >> 32;
    return t->index + bucket * WAYS;
}

/* Drop every entry for this key in the bucket except `keep`. */
static int
remove_key(TableCore *t, uint64_t hash, const char *key, size_t key_len,
           uint64_t keep)
{
    uint64_t *ways = bucket_of(t, hash);
    uint16_t tag = tag_of(hash);
    int removed = 0, w;
    Record r;
    uint64_t abs;

    for (w = 0; w < WAYS; w++) {
        uint64_t e = LOAD(&ways[w]);
        if (e == 0 || e == keep || (uint16_t)(e >> OFFSET_BITS) != tag)
            continue;
        if (read_record(t, e, &r, &abs) == REC_OK &&
            record_is(&r, hash, key, key_len) && CAS(&ways[w], &e, 0))
            removed++;
    }
    return removed;
}

/* Pick the way for a new entry of this key: the way that already holds
 * the key, else an empty or stale way, else the oldest (an eviction). */
static int
choose_way(TableCore *t, uint64_t hash, const char *key, size_t key_len,
           uint64_t *ways, uint64_t *expected, int *evicting)
{
    int w, free_way = -1, oldest_way = 0;
    uint64_t oldest_abs = UINT64_MAX, abs;
    uint16_t tag = tag_of(hash);
    Record r;

    for (w = 0; w < WAYS; w++) {
        uint64_t e = LOAD(&ways[w]);
        expected[w] = e;
        if (e == 0 || read_record(t, e, &r, &abs) != REC_OK) {
            if (free_way < 0)
                free_way = w;
            continue;
        }
        if ((uint16_t)(e >> OFFSET_BITS) == tag &&
            record_is(&r, hash, key, key_len)) {
            *evicting = 0;
            return w;
        }
        if (abs < oldest_abs) {
            oldest_abs = abs;
            oldest_way = w;
        }
    }
    *evicting = free_way < 0 || expected[free_way] != 0;
    return free_way >= 0 ? free_way : oldest_way;
}

static int
install(TableCore *t, uint64_t hash, const char *key, size_t key_len,
        uint64_t entry)
{
    uint64_t *ways = bucket_of(t, hash);
    uint64_t expected[WAYS];
    int attempt, evicting;

    for (attempt = 0; attempt < 64; attempt++) {
        int w = choose_way(t, hash, key, key_len, ways, expected, &evicting);
        if (CAS(&ways[w], &expected[w], entry)) {
            if (evicting)
                COUNT(&t->stats[TS_EVICTIONS]);
            remove_key(t, hash, key, key_len, entry);
            return 1;
        }
        COUNT(&t->stats[TS_CAS_RETRIES]);
    }
    return 0;
}

static int
check_key(Py_ssize_t key_len)
{
    if (key_len < 1 || key_len > MAX_KEY) {
        PyErr_Format(PyExc_ValueError,
                     "key of %zd bytes: expected 1 to %d bytes", key_len,
                     MAX_KEY);
        return -1;
    }
    return 0;
}

/* Copy a hot record from the older half of the log to its head. */
static void
promote(TableCore *t, uint64_t *way, uint64_t entry, const Record *r)
{
    uint64_t fresh = append_record(t, &r->h, r->key, r->value);

    if (CAS(way, &entry, fresh))
        COUNT(&t->stats[TS_PROMOTIONS]);
}

static PyObject *
TableCore_get(TableCore *self, PyObject *arg)
{
    BytesArg key;
    uint64_t hash, abs, *ways;
    uint16_t tag;
    Record r;
    int w;

    REQUIRE_OPEN(self->region);
    if (bytes_arg_get(&key, arg) < 0)
        return NULL;
    if (check_key(key.len) < 0) {
        bytes_arg_release(&key);
        return NULL;
    }
    hash = hash_key(self->seed, key.buf, (size_t)key.len);
    tag = tag_of(hash);
    ways = bucket_of(self, hash);
    for (w = 0; w < WAYS; w++) {
        uint64_t e = LOAD(&ways[w]);
        if (e == 0 || (uint16_t)(e >> OFFSET_BITS) != tag)
            continue;
        if (read_record(self, e, &r, &abs) != REC_OK ||
            !record_is(&r, hash, key.buf, (size_t)key.len))
            continue;
        /* The clock (~25 ns) is read only for records that can expire. */
        if (r.h.expires_at_ms != 0 && r.h.expires_at_ms <= now_ms())
            break;
        bytes_arg_release(&key);
        COUNT(&self->stats[TS_HITS]);
        if (LOAD_RELAXED(self->head) - abs > self->arena_bytes / 2)
            promote(self, &ways[w], e, &r);
        if (r.h.flags & FLAG_NEGATIVE) {
            Py_INCREF(self->negative);
            return self->negative;
        }
        return PyBytes_FromStringAndSize(r.value, r.h.value_len);
    }
    bytes_arg_release(&key);
    COUNT(&self->stats[TS_MISSES]);
    Py_RETURN_NONE;
}

static PyObject *
TableCore_put(TableCore *self, PyObject *args)
{
    Py_buffer key, value;
    unsigned long long expires_at_ms = 0;
    int negative = 0, ok;
    RecordHeader h;
    uint64_t entry;

    REQUIRE_OPEN(self->region);
    if (!PyArg_ParseTuple(args, "y*y*|Kp", &key, &value, &expires_at_ms,
                          &negative))
        return NULL;
    if (check_key(key.len) < 0 || value.len > MAX_VALUE) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError,
                         "value of %zd bytes: expected at most %d bytes",
                         value.len, MAX_VALUE);
        PyBuffer_Release(&key);
        PyBuffer_Release(&value);
        return NULL;
    }
    memset(&h, 0, sizeof h);
    h.hash = hash_key(self->seed, key.buf, (size_t)key.len);
    h.expires_at_ms = expires_at_ms;
    h.key_len = (uint16_t)key.len;
    h.value_len = (uint16_t)value.len;
    h.flags = negative ? FLAG_NEGATIVE : 0;
    entry = append_record(self, &h, key.buf, value.buf);
    ok = install(self, h.hash, key.buf, (size_t)key.len, entry);
    if (ok)
        COUNT(&self->stats[TS_INSERTS]);
    PyBuffer_Release(&key);
    PyBuffer_Release(&value);
    return PyBool_FromLong(ok);
}

static PyObject *
TableCore_delete(TableCore *self, PyObject *arg)
{
    BytesArg key;
    uint64_t hash;
    int removed;

    REQUIRE_OPEN(self->region);
    if (bytes_arg_get(&key, arg) < 0)
        return NULL;
    if (check_key(key.len) < 0) {
        bytes_arg_release(&key);
        return NULL;
    }
    hash = hash_key(self->seed, key.buf, (size_t)key.len);
    removed = remove_key(self, hash, key.buf, (size_t)key.len, 0);
    bytes_arg_release(&key);
    if (removed)
        COUNT(&self->stats[TS_DELETES]);
    return PyBool_FromLong(removed > 0);
}

/* (entries, hits, misses, inserts, evictions, cas_retries, promotions,
 * deletes). Entries are counted by a scan: statistics are not hot. */
static PyObject *
TableCore_counters(TableCore *self, PyObject *Py_UNUSED(ignored))
{
    uint64_t totals[TS_COUNT], entries = 0, abs, i;
    uint64_t n = self->bucket_count * WAYS;
    Record r;

    REQUIRE_OPEN(self->region);
    for (i = 0; i < n; i++) {
        uint64_t e = LOAD(&self->index[i]);
        if (e != 0 && read_record(self, e, &r, &abs) == REC_OK)
            entries++;
    }
    sum_stats(self->region.base + TABLE_HEADER, totals, TS_COUNT);
    return Py_BuildValue("(KKKKKKKK)", (unsigned long long)entries,
                         (unsigned long long)totals[TS_HITS],
                         (unsigned long long)totals[TS_MISSES],
                         (unsigned long long)totals[TS_INSERTS],
                         (unsigned long long)totals[TS_EVICTIONS],
                         (unsigned long long)totals[TS_CAS_RETRIES],
                         (unsigned long long)totals[TS_PROMOTIONS],
                         (unsigned long long)totals[TS_DELETES]);
}

static PyObject *
TableCore_close(TableCore *self, PyObject *Py_UNUSED(ignored))
{
    region_close(&self->region);
    Py_RETURN_NONE;
}

static int
TableCore_init(TableCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", "negative", NULL};
    PyObject *buffer, *negative;
    Py_ssize_t offset;
    uint64_t *hdr;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnO", kwlist, &buffer,
                                     &offset, &negative))
        return -1;
    if (region_open(&self->region, buffer, offset, TABLE_HEADER) < 0)
        return -1;
    hdr = (uint64_t *)self->region.base;
    if (!table_header_fits(hdr, offset, self->region.view.len)) {
        PyErr_Format(PyExc_ValueError,
                     "table region header (bucket_count %llu, arena_bytes "
                     "%llu) is not initialised or does not fit the buffer: "
                     "expected 1 to 2^32 buckets and an arena of at least "
                     "4096 bytes, a multiple of 8",
                     (unsigned long long)hdr[1], (unsigned long long)hdr[2]);
        return -1;
    }
    Py_INCREF(negative);
    Py_XSETREF(self->negative, negative);
    table_bind(self);
    return 0;
}

static void
TableCore_dealloc(TableCore *self)
{
    region_close(&self->region);
    Py_XDECREF(self->negative);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef TableCore_methods[] = {
    {"get", (PyCFunction)TableCore_get, METH_O,
     "get(key) -> bytes, the negative marker, or None on a miss"},
    {"put", (PyCFunction)TableCore_put, METH_VARARGS,
     "put(key, value, expires_at_ms=0, negative=False) -> bool"},
    {"delete", (PyCFunction)TableCore_delete, METH_O,
     "delete(key) -> bool, whether an entry was removed"},
    {"counters", (PyCFunction)TableCore_counters, METH_NOARGS,
     "counters() -> (entries, hits, misses, inserts, evictions, "
     "cas_retries, promotions, deletes)"},
    {"close", (PyCFunction)TableCore_close, METH_NOARGS,
     "release the buffer; every later call raises ValueError"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shm._native.TableCore",
    .tp_basicsize = sizeof(TableCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The L1 table over a region of a shared-memory buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)TableCore_init,
    .tp_dealloc = (destructor)TableCore_dealloc,
    .tp_methods = TableCore_methods,
};

/* ------------------------------------------------------------------ */
/* The ring                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Region region;
    uint64_t capacity;
    uint64_t record_bytes;
    uint64_t cell_bytes;
    uint64_t generation;
    uint64_t *tail;
    uint64_t *head;
    char *cells;
    uint64_t *stats;
    uint64_t stall_timeout_ms;
    uint64_t stall_position;
    uint64_t stall_since_ms;
} RingCore;

static uint64_t
cell_bytes_for(uint64_t record_bytes)
{
    return (CELL_HEADER + record_bytes + 63) & ~UINT64_C(63);
}

static Py_ssize_t
ring_region_bytes(uint64_t capacity, uint64_t record_bytes)
{
    return (Py_ssize_t)(RING_HEADER + STATS_BLOCKS * 8 * STATS_BLOCK_WORDS +
                        capacity * cell_bytes_for(record_bytes));
}

static char *
cell_at(RingCore *r, uint64_t position)
{
    return r->cells + (position & (r->capacity - 1)) * r->cell_bytes;
}

static PyObject *
RingCore_push(RingCore *self, PyObject *arg)
{
    BytesArg data;
    uint64_t pos, seq, claimed;
    uint32_t len;
    char *cell;

    REQUIRE_OPEN(self->region);
    if (bytes_arg_get(&data, arg) < 0)
        return NULL;
    if ((uint64_t)data.len > self->record_bytes) {
        PyErr_Format(PyExc_ValueError,
                     "record of %zd bytes: this ring takes at most %llu",
                     data.len, (unsigned long long)self->record_bytes);
        bytes_arg_release(&data);
        return NULL;
    }
    pos = LOAD_RELAXED(self->tail);
    for (;;) {
        int64_t diff;
        cell = cell_at(self, pos);
        seq = LOAD((uint64_t *)cell);
        diff = (int64_t)((seq & POSITION_MASK) - pos);
        if (seq == pos) {
            if (CAS(self->tail, &pos, pos + 1))
                break;
            COUNT(&self->stats[RS_CAS_RETRIES]);
        } else if (diff < 0) {
            bytes_arg_release(&data);
            COUNT(&self->stats[RS_DROPS]);
            return PyLong_FromLong(-1);
        } else {
            pos = LOAD_RELAXED(self->tail);
        }
    }
    hook(HOOK_PUSH_RESERVED);
    seq = pos;
    claimed = pos | BUSY;
    if (!CAS((uint64_t *)cell, &seq, claimed))
        goto late;
    STORE((uint64_t *)(cell + 8), (uint64_t)self_pid);
    len = (uint32_t)data.len;
    memcpy(cell + 16, &len, 4);
    memcpy(cell + CELL_HEADER, data.buf, (size_t)data.len / 2);
    hook(HOOK_PUSH_MID_COPY);
    memcpy(cell + CELL_HEADER + data.len / 2, data.buf + data.len / 2,
           (size_t)(data.len - data.len / 2));
    if (!CAS((uint64_t *)cell, &claimed, pos + 1))
        goto late;
    bytes_arg_release(&data);
    COUNT(&self->stats[RS_PUSHES]);
    return PyLong_FromUnsignedLongLong(pos);

late:
    /* The consumer skipped this cell while we were stalled. */
    bytes_arg_release(&data);
    COUNT(&self->stats[RS_LATE]);
    COUNT(&self->stats[RS_DROPS]);
    return PyLong_FromLong(-1);
}

/* Decide about an unpublished cell at `pos`: 1 if it was skipped now and
 * the consumer may move on, 0 if it must wait. */
static int
maybe_skip(RingCore *self, uint64_t pos, uint64_t seq, char *cell)
{
    uint64_t now = now_ms();

    if (self->stall_position != pos) {
        self->stall_position = pos;
        self->stall_since_ms = now;
        return 0;
    }
    if (now - self->stall_since_ms < self->stall_timeout_ms)
        return 0;
    if ((seq & BUSY) && pid_alive(LOAD((uint64_t *)(cell + 8))))
        return 0;
    if (!CAS((uint64_t *)cell, &seq, (pos + 1) | SKIP))
        return 0;
    COUNT(&self->stats[RS_SKIPPED]);
    return 1;
}

/* Whether the consumer walked past the cell at `pos` (head <= pos < tail):
 * published or skipped, and so unchanged until advance() frees it. */
static int
walked_past(RingCore *self, uint64_t pos)
{
    uint64_t seq = LOAD((uint64_t *)cell_at(self, pos));
    return seq == pos + 1 || seq == ((pos + 1) | SKIP);
}

/* Where a peek starts: the head, or `start_arg`, an end position an
 * earlier peek returned since the last advance. The cells between the head
 * and such a position stay published or skipped until advance(), so the
 * cell just before it must be one of those: a start past a cell that is
 * still being written, or was never walked past, is refused. UINT64_MAX,
 * with an exception set, for a bad start. */
static uint64_t
peek_start(RingCore *self, PyObject *start_arg, uint64_t head, uint64_t tail)
{
    unsigned long long start;

    if (start_arg == NULL)
        return head;
    start = PyLong_AsUnsignedLongLong(start_arg);
    if (start == (unsigned long long)-1 && PyErr_Occurred())
        return UINT64_MAX;
    if (start < head || start > tail) {
        PyErr_Format(PyExc_ValueError,
                     "peek from %llu: expected a position between head %llu "
                     "and tail %llu",
                     start, (unsigned long long)head,
                     (unsigned long long)tail);
        return UINT64_MAX;
    }
    if (start > head && !walked_past(self, start - 1)) {
        PyErr_Format(PyExc_ValueError,
                     "peek from %llu: the record before it is not published; "
                     "start from an end position an earlier peek returned",
                     start);
        return UINT64_MAX;
    }
    return start;
}

/* peek(max_records[, start]): the consumer reads from `start` (default:
 * the head), so a consumer that holds records back between advances does
 * not copy them again on every peek. Positions returned still count every
 * cell from the head, skipped ones included, as advance() expects. */
static PyObject *
RingCore_peek(RingCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t max_records, count = 0;
    uint64_t head, tail, pos;
    PyObject *records;

    REQUIRE_OPEN(self->region);
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "peek() takes max_records and an optional start "
                     "(%zd arguments given)",
                     nargs);
        return NULL;
    }
    max_records = PyLong_AsSsize_t(args[0]);
    if (max_records < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "max_records must be >= 0");
        return NULL;
    }
    head = LOAD(self->head);
    tail = LOAD(self->tail);
    pos = peek_start(self, nargs == 2 ? args[1] : NULL, head, tail);
    if (pos == UINT64_MAX)
        return NULL;
    records = PyList_New(0);
    if (records == NULL)
        return NULL;
    while (pos < tail && count < max_records) {
        char *cell = cell_at(self, pos);
        uint64_t seq = LOAD((uint64_t *)cell);
        if (seq == pos + 1) {
            uint32_t len;
            PyObject *rec;
            memcpy(&len, cell + 16, 4);
            if (len > self->record_bytes)
                len = (uint32_t)self->record_bytes;
            rec = PyBytes_FromStringAndSize(cell + CELL_HEADER, len);
            if (rec == NULL || PyList_Append(records, rec) < 0) {
                Py_XDECREF(rec);
                Py_DECREF(records);
                return NULL;
            }
            Py_DECREF(rec);
            count++;
            pos++;
        } else if (seq == ((pos + 1) | SKIP) ||
                   maybe_skip(self, pos, seq, cell)) {
            pos++;
        } else {
            break;
        }
    }
    return Py_BuildValue("(NK)", records, (unsigned long long)pos);
}

static PyObject *
RingCore_advance(RingCore *self, PyObject *arg)
{
    unsigned long long end = PyLong_AsUnsignedLongLong(arg);
    uint64_t head, pos;

    REQUIRE_OPEN(self->region);
    if (PyErr_Occurred())
        return NULL;
    head = LOAD(self->head);
    if (end < head || end > LOAD(self->tail)) {
        PyErr_Format(PyExc_ValueError,
                     "advance to %llu: expected a position between head "
                     "%llu and tail %llu",
                     end, (unsigned long long)head,
                     (unsigned long long)LOAD(self->tail));
        return NULL;
    }
    for (pos = head; pos < end; pos++) {
        char *cell = cell_at(self, pos);
        uint64_t seq = LOAD((uint64_t *)cell);
        if (seq != pos + 1 && seq != ((pos + 1) | SKIP)) {
            end = pos;
            break;
        }
        STORE((uint64_t *)(cell + 8), 0);
        STORE((uint64_t *)cell, pos + self->capacity);
    }
    __atomic_fetch_add(&self->stats[RS_TAKEN], end - head, __ATOMIC_RELAXED);
    STORE(self->head, (uint64_t)end);
    return PyLong_FromUnsignedLongLong(end);
}

static PyObject *
RingCore_positions(RingCore *self, PyObject *Py_UNUSED(ignored))
{
    REQUIRE_OPEN(self->region);
    return Py_BuildValue("(KK)", (unsigned long long)LOAD(self->head),
                         (unsigned long long)LOAD(self->tail));
}

static PyObject *
RingCore_head(RingCore *self, PyObject *Py_UNUSED(ignored))
{
    REQUIRE_OPEN(self->region);
    return PyLong_FromUnsignedLongLong(LOAD(self->head));
}

/* (head, tail, pushes, drops, skipped, taken, cas_retries, late) */
static PyObject *
RingCore_counters(RingCore *self, PyObject *Py_UNUSED(ignored))
{
    uint64_t t[RS_COUNT];

    REQUIRE_OPEN(self->region);
    sum_stats(self->region.base + RING_HEADER, t, RS_COUNT);
    return Py_BuildValue("(KKKKKKKK)", (unsigned long long)LOAD(self->head),
                         (unsigned long long)LOAD(self->tail),
                         (unsigned long long)t[RS_PUSHES],
                         (unsigned long long)t[RS_DROPS],
                         (unsigned long long)t[RS_SKIPPED],
                         (unsigned long long)t[RS_TAKEN],
                         (unsigned long long)t[RS_CAS_RETRIES],
                         (unsigned long long)t[RS_LATE]);
}

static PyObject *
RingCore_close(RingCore *self, PyObject *Py_UNUSED(ignored))
{
    region_close(&self->region);
    Py_RETURN_NONE;
}

static int
RingCore_init(RingCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", "stall_timeout_ms", NULL};
    PyObject *buffer;
    Py_ssize_t offset;
    unsigned long long stall_timeout_ms = 1000;
    uint64_t *hdr;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On|K", kwlist, &buffer,
                                     &offset, &stall_timeout_ms))
        return -1;
    if (region_open(&self->region, buffer, offset, RING_HEADER) < 0)
        return -1;
    hdr = (uint64_t *)self->region.base;
    if (hdr[0] == 0 || (hdr[0] & (hdr[0] - 1)) != 0 || hdr[1] == 0 ||
        hdr[2] != cell_bytes_for(hdr[1]) ||
        offset + ring_region_bytes(hdr[0], hdr[1]) > self->region.view.len) {
        PyErr_SetString(PyExc_ValueError,
                        "ring region header is not initialised or does not "
                        "fit the buffer");
        return -1;
    }
    self->capacity = hdr[0];
    self->record_bytes = hdr[1];
    self->cell_bytes = hdr[2];
    self->generation = hdr[3];
    self->tail = &hdr[8];
    self->head = &hdr[16];
    self->cells = self->region.base + RING_HEADER +
                  STATS_BLOCKS * 8 * STATS_BLOCK_WORDS;
    self->stats = claim_stats_block(self->region.base + RING_HEADER);
    self->stall_timeout_ms = stall_timeout_ms;
    self->stall_position = UINT64_MAX;
    return 0;
}

static void
RingCore_dealloc(RingCore *self)
{
    region_close(&self->region);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef RingCore_methods[] = {
    {"push", (PyCFunction)RingCore_push, METH_O,
     "push(record) -> position, or -1 when full (never blocks)"},
    {"peek", (PyCFunction)(void (*)(void))RingCore_peek, METH_FASTCALL,
     "peek(max_records[, start]) -> (records, end_position), consuming "
     "nothing; start (default: the head) is an end position an earlier "
     "peek returned"},
    {"advance", (PyCFunction)RingCore_advance, METH_O,
     "advance(end_position) -> new head; frees the cells before it"},
    {"head", (PyCFunction)RingCore_head, METH_NOARGS,
     "head() -> first position not advanced past"},
    {"positions", (PyCFunction)RingCore_positions, METH_NOARGS,
     "positions() -> (head, tail)"},
    {"counters", (PyCFunction)RingCore_counters, METH_NOARGS,
     "counters() -> (head, tail, pushes, drops, skipped, taken, "
     "cas_retries, late)"},
    {"close", (PyCFunction)RingCore_close, METH_NOARGS,
     "release the buffer; every later call raises ValueError"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RingCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shm._native.RingCore",
    .tp_basicsize = sizeof(RingCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A multi-producer, single-consumer ring over a buffer region.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RingCore_init,
    .tp_dealloc = (destructor)RingCore_dealloc,
    .tp_methods = RingCore_methods,
};

/* ------------------------------------------------------------------ */
/* Module functions: sizes, initialisation, plain atomics, test hooks   */
/* ------------------------------------------------------------------ */

static int
word_at(Py_buffer *view, Py_ssize_t offset, uint64_t **word)
{
    if (offset < 0 || offset % 8 != 0 || offset + 8 > view->len) {
        PyErr_Format(PyExc_ValueError,
                     "offset %zd: expected an 8-aligned offset inside a "
                     "buffer of %zd bytes",
                     offset, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    *word = (uint64_t *)((char *)view->buf + offset);
    return 0;
}

static PyObject *
native_load(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    uint64_t *word, value;

    if (!PyArg_ParseTuple(args, "w*n", &view, &offset) ||
        word_at(&view, offset, &word) < 0)
        return NULL;
    value = LOAD(word);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(value);
}

static PyObject *
native_store(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long value;
    uint64_t *word;

    if (!PyArg_ParseTuple(args, "w*nK", &view, &offset, &value) ||
        word_at(&view, offset, &word) < 0)
        return NULL;
    STORE(word, (uint64_t)value);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
native_compare_exchange(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long expected, desired;
    uint64_t *word, seen;
    int ok;

    if (!PyArg_ParseTuple(args, "w*nKK", &view, &offset, &expected,
                          &desired) ||
        word_at(&view, offset, &word) < 0)
        return NULL;
    seen = expected;
    ok = CAS(word, &seen, (uint64_t)desired);
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

static PyObject *
native_fetch_add(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long delta;
    uint64_t *word, old;

    if (!PyArg_ParseTuple(args, "w*nK", &view, &offset, &delta) ||
        word_at(&view, offset, &word) < 0)
        return NULL;
    old = ADD(word, (uint64_t)delta);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(old);
}

static PyObject *
native_table_region_bytes(PyObject *Py_UNUSED(m), PyObject *args)
{
    unsigned long long buckets, arena;

    if (!PyArg_ParseTuple(args, "KK", &buckets, &arena))
        return NULL;
    return PyLong_FromSsize_t(table_region_bytes(buckets, arena));
}

static PyObject *
native_ring_region_bytes(PyObject *Py_UNUSED(m), PyObject *args)
{
    unsigned long long capacity, record_bytes;

    if (!PyArg_ParseTuple(args, "KK", &capacity, &record_bytes))
        return NULL;
    return PyLong_FromSsize_t(ring_region_bytes(capacity, record_bytes));
}

/* Write a fresh region header into zero-filled memory (creator only). */
static PyObject *
native_init_table(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long buckets, arena, seed;
    uint64_t *hdr;

    if (!PyArg_ParseTuple(args, "w*nKKK", &view, &offset, &buckets, &arena,
                          &seed) ||
        word_at(&view, offset, &hdr) < 0)
        return NULL;
    if (buckets == 0 || buckets > MAX_BUCKETS) {
        PyErr_Format(PyExc_ValueError,
                     "bucket_count=%llu: expected 1 to 2^32 (the bucket "
                     "mapping multiplies it by 32 bits of the hash)",
                     buckets);
        PyBuffer_Release(&view);
        return NULL;
    }
    hdr[0] = seed;
    hdr[1] = buckets;
    hdr[2] = arena;
    STORE(&hdr[8], (uint64_t)8); /* offset 0 would encode as entry 0 */
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
native_init_ring(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long capacity, record_bytes, generation, i;
    uint64_t *hdr, cell_bytes;
    char *cells;

    if (!PyArg_ParseTuple(args, "w*nKKK", &view, &offset, &capacity,
                          &record_bytes, &generation) ||
        word_at(&view, offset, &hdr) < 0)
        return NULL;
    cell_bytes = cell_bytes_for(record_bytes);
    hdr[0] = capacity;
    hdr[1] = record_bytes;
    hdr[2] = cell_bytes;
    hdr[3] = generation;
    cells = (char *)hdr + RING_HEADER + STATS_BLOCKS * 8 * STATS_BLOCK_WORDS;
    for (i = 0; i < capacity; i++)
        STORE((uint64_t *)(cells + i * cell_bytes), (uint64_t)i);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
native_set_test_hook(PyObject *Py_UNUSED(m), PyObject *arg)
{
    long point = PyLong_AsLong(arg);

    if (point == -1 && PyErr_Occurred())
        return NULL;
    test_hook = (int)point;
    Py_RETURN_NONE;
}

static PyObject *
native_key_hash(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer key;
    unsigned long long seed;
    uint64_t h;

    if (!PyArg_ParseTuple(args, "Ky*", &seed, &key))
        return NULL;
    h = hash_key(seed, key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef native_methods[] = {
    {"load", native_load, METH_VARARGS,
     "load(buffer, offset) -> u64 (acquire)"},
    {"store", native_store, METH_VARARGS,
     "store(buffer, offset, value) (release)"},
    {"compare_exchange", native_compare_exchange, METH_VARARGS,
     "compare_exchange(buffer, offset, expected, desired) -> bool"},
    {"fetch_add", native_fetch_add, METH_VARARGS,
     "fetch_add(buffer, offset, delta) -> previous value"},
    {"table_region_bytes", native_table_region_bytes, METH_VARARGS,
     "table_region_bytes(bucket_count, arena_bytes) -> bytes needed"},
    {"ring_region_bytes", native_ring_region_bytes, METH_VARARGS,
     "ring_region_bytes(capacity, record_bytes) -> bytes needed"},
    {"init_table", native_init_table, METH_VARARGS,
     "init_table(buffer, offset, bucket_count, arena_bytes, seed); "
     "bucket_count from 1 to MAX_BUCKET_COUNT"},
    {"init_ring", native_init_ring, METH_VARARGS,
     "init_ring(buffer, offset, capacity, record_bytes, generation)"},
    {"set_test_hook", native_set_test_hook, METH_O,
     "set_test_hook(point): SIGSTOP this process at a hook point (tests)"},
    {"key_hash", native_key_hash, METH_VARARGS,
     "key_hash(seed, key) -> the table's 64-bit hash of key"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "shm._native",
    "Atomics, the L1 table and the rings, in C (see the file's header).",
    -1, native_methods, NULL, NULL, NULL, NULL,
};

/* PyModule_AddIntConstant takes a C long, which need not hold 2^32. */
static int
add_u64_constant(PyObject *m, const char *name, uint64_t value)
{
    PyObject *obj = PyLong_FromUnsignedLongLong(value);
    int rc;

    if (obj == NULL)
        return -1;
    rc = PyModule_AddObjectRef(m, name, obj);
    Py_DECREF(obj);
    return rc;
}

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *m;

    if (cache_self_pid() < 0 || PyType_Ready(&TableCoreType) < 0 ||
        PyType_Ready(&RingCoreType) < 0)
        return NULL;
    m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "TableCore", (PyObject *)&TableCoreType) <
            0 ||
        PyModule_AddObjectRef(m, "RingCore", (PyObject *)&RingCoreType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_KEY_BYTES", MAX_KEY) < 0 ||
        PyModule_AddIntConstant(m, "MAX_VALUE_BYTES", MAX_VALUE) < 0 ||
        PyModule_AddIntConstant(m, "RECORD_HEADER_BYTES", REC_HEADER) < 0 ||
        add_u64_constant(m, "MAX_BUCKET_COUNT", MAX_BUCKETS) < 0 ||
        PyModule_AddIntConstant(m, "HOOK_PUSH_RESERVED",
                                HOOK_PUSH_RESERVED) < 0 ||
        PyModule_AddIntConstant(m, "HOOK_PUSH_MID_COPY",
                                HOOK_PUSH_MID_COPY) < 0 ||
        PyModule_AddIntConstant(m, "HOOK_PUT_MID_WRITE",
                                HOOK_PUT_MID_WRITE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
