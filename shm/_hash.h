/*
 * shm/_hash.h: the key hash both extensions use (the L1 table in
 * _native.c, the rate limiter in _limiter.c). Header-only so each
 * extension stays one translation unit.
 */
#ifndef HYPERLINKR_SHM_HASH_H
#define HYPERLINKR_SHM_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A seeded 64-bit hash for keys of at most 32 bytes: the same in every
 * process (unlike Python's), unpredictable without the segment's seed. */
static inline uint64_t
mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static inline uint64_t
hash_key(uint64_t seed, const char *key, size_t len)
{
    uint64_t h = seed ^ (len * UINT64_C(0x9e3779b97f4a7c15));
    uint64_t word;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&word, key + i, 8);
        h = mix64(h ^ word);
    }
    if (i < len) {
        word = 0;
        memcpy(&word, key + i, len - i);
        h = mix64(h ^ word ^ UINT64_C(0x5bd1e995));
    }
    return mix64(h);
}

#endif
