/* Self-checking test messages, the same bytes as shmlane_cli::stamp (crates/shmlane-cli/src/stamp.rs),
 * so the C examples and the Rust `producer`/`consumer` examples check each other's messages.
 *
 * 24 bytes or more: seq u64 | sent_ns u64 | checksum u64 | filler derived from seq.
 * 8 to 23 bytes:    seq u32 | sent_us u24 | checksum fold u8 | filler.
 * All integers little-endian. */
#ifndef SHMLANE_STAMP_H
#define SHMLANE_STAMP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define STAMP_K1 0x9e3779b97f4a7c15ULL
#define STAMP_K2 0xc2b2ae3d27d4eb4fULL

static inline uint64_t stamp_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static inline uint64_t stamp_rotl(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t stamp_get(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void stamp_put(uint8_t *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t stamp_filler_word(uint64_t seq, uint64_t i) { return (seq * STAMP_K1) ^ (i * STAMP_K2); }

static inline void stamp_fill(uint8_t *out, size_t len, uint64_t seq) {
    uint64_t i = 0;
    for (; (i + 1) * 8 <= len; i++) stamp_put(out + i * 8, stamp_filler_word(seq, i), 8);
    stamp_put(out + i * 8, stamp_filler_word(seq, i), len - i * 8);
}

static inline int stamp_filler_ok(const uint8_t *b, size_t len, uint64_t seq) {
    uint64_t i = 0;
    for (; (i + 1) * 8 <= len; i++)
        if (stamp_get(b + i * 8, 8) != stamp_filler_word(seq, i)) return 0;
    size_t tail = len - i * 8;
    return stamp_get(b + i * 8, tail) == (stamp_filler_word(seq, i) & (tail ? (~0ULL >> (64 - 8 * tail)) : 0));
}

static inline uint64_t stamp_checksum(uint64_t h0, const uint8_t *b, size_t len) {
    uint64_t lanes[4] = {h0, h0 ^ STAMP_K1, h0 ^ STAMP_K2, stamp_rotl(h0, 32)};
    size_t blocks = len / 32;
    for (size_t k = 0; k < blocks; k++)
        for (int j = 0; j < 4; j++)
            lanes[j] = (stamp_rotl(lanes[j], 23) ^ stamp_get(b + k * 32 + j * 8, 8)) * STAMP_K1;
    uint64_t h = (uint64_t)len;
    for (int j = 0; j < 4; j++) h = stamp_rotl((h ^ lanes[j]) * STAMP_K2, 29);
    for (size_t k = blocks * 32; k < len; k++) h = (h ^ b[k]) * STAMP_K1;
    return h ^ (h >> 31);
}

static inline uint8_t stamp_fold(uint64_t h) {
    uint8_t a = 0;
    for (int i = 0; i < 8; i++) a ^= (uint8_t)(h >> (8 * i));
    return a;
}

/* Fills msg[0..len) (len >= 8) as message `seq` sent at `sent_ns`. */
static inline void stamp_write(uint8_t *msg, size_t len, uint64_t seq, uint64_t sent_ns) {
    if (len >= 24) {
        stamp_fill(msg + 24, len - 24, seq);
        stamp_put(msg, seq, 8);
        stamp_put(msg + 8, sent_ns, 8);
        stamp_put(msg + 16, stamp_checksum(stamp_checksum(0, msg, 16), msg + 24, len - 24), 8);
    } else {
        stamp_fill(msg + 8, len - 8, seq & 0xffffffffULL);
        stamp_put(msg, seq & 0xffffffffULL, 4);
        stamp_put(msg + 4, (sent_ns / 1000) & 0xffffff, 3);
        msg[7] = stamp_fold(stamp_checksum(stamp_checksum(0, msg, 7), msg + 8, len - 8));
    }
}

/* Checks msg[0..len): returns 0 and the sequence number (the low 32 bits for short
 * messages) and send time, or -1 with `why` set. */
static inline int stamp_check(const uint8_t *msg, size_t len, uint64_t *seq, uint64_t *sent_ns, const char **why) {
    size_t head;
    if (len < 8) { *why = "shorter than 8 bytes"; return -1; }
    if (len >= 24) {
        if (stamp_checksum(stamp_checksum(0, msg, 16), msg + 24, len - 24) != stamp_get(msg + 16, 8)) {
            *why = "checksum mismatch";
            return -1;
        }
        *seq = stamp_get(msg, 8);
        *sent_ns = stamp_get(msg + 8, 8);
        head = 24;
    } else {
        if (msg[7] != stamp_fold(stamp_checksum(stamp_checksum(0, msg, 7), msg + 8, len - 8))) {
            *why = "checksum mismatch";
            return -1;
        }
        *seq = stamp_get(msg, 4);
        *sent_ns = stamp_get(msg + 4, 3) * 1000;
        head = 8;
    }
    if (!stamp_filler_ok(msg + head, len - head, *seq)) {
        *why = "filler does not match the sequence number";
        return -1;
    }
    return 0;
}

#endif
