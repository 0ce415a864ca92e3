/* Sends stamped messages over a named byte channel through shmlane's C ABI: the C twin of
 * examples/examples/producer.rs, with the same messages (stamp.h), flags and exit codes, so
 * either producer works with either consumer.
 *
 *   producer [--name NAME] [--count N] [--size BYTES] [--timeout SECS] [--wait spin|yield|block]
 *            [--claim | --broadcast]
 *
 * --claim writes each message in place (claim + commit) instead of copying it (send).
 * --broadcast creates a byte-message broadcast channel (lossless, up to 8 receivers, 4096
 * messages) instead, for the Rust `subscriber` example or `consumer --broadcast`; it waits
 * for the first receiver.
 * Exit codes: 0 every message sent; 1 set-up error or no consumer within --timeout;
 * 2 corrupt ring or truncated file; 3 the consumer died, closed early, or took nothing for
 * --timeout while the ring was full. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmlane.h"
#include "stamp.h"

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int parse_wait(const char *s, uint32_t *out) {
    if (strcmp(s, "spin") == 0) *out = SHMLANE_WAIT_BUSY_SPIN;
    else if (strcmp(s, "yield") == 0) *out = SHMLANE_WAIT_SPIN_THEN_YIELD;
    else if (strcmp(s, "block") == 0) *out = SHMLANE_WAIT_BLOCKING;
    else return -1;
    return 0;
}

/* The exit code for a send that failed with `st`. */
static int exit_code(shmlane_status st) {
    switch (st) {
    case SHMLANE_STATUS_CORRUPT:
    case SHMLANE_STATUS_TRUNCATED: return 2;
    case SHMLANE_STATUS_CLOSED:
    case SHMLANE_STATUS_PEER_GONE:
    case SHMLANE_STATUS_PEER_HUNG:
    case SHMLANE_STATUS_TIMEOUT: return 3;
    default: return 1;
    }
}

int main(int argc, char **argv) {
    const char *name = "demo";
    uint64_t count = 1000000, size = 64, timeout = 10;
    uint32_t wait = SHMLANE_WAIT_BLOCKING;
    int claim = 0, broadcast = 0;
    static const struct option longs[] = {
        {"name", required_argument, 0, 'n'}, {"count", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'}, {"timeout", required_argument, 0, 't'},
        {"wait", required_argument, 0, 'w'}, {"claim", no_argument, 0, 'C'},
        {"broadcast", no_argument, 0, 'B'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 'n': name = optarg; break;
        case 'c': count = strtoull(optarg, &end, 10); break;
        case 's': size = strtoull(optarg, &end, 10); break;
        case 't': timeout = strtoull(optarg, &end, 10); break;
        case 'w':
            if (parse_wait(optarg, &wait) != 0) {
                fprintf(stderr, "producer: --wait must be spin, yield or block\n");
                return 1;
            }
            break;
        case 'C': claim = 1; break;
        case 'B': broadcast = 1; break;
        default: return 1;
        }
        if (end && *end) {
            fprintf(stderr, "producer: `%s` is not a number\n", optarg);
            return 1;
        }
    }
    if (claim && broadcast) {
        fprintf(stderr, "producer: --claim writes in place on byte channels; --broadcast sends copies\n");
        return 1;
    }
    if (size < 8 || size > 1048576) {
        fprintf(stderr, "producer: --size must be 8 to 1048576 bytes\n");
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    shmlane_options opts = shmlane_options_default();
    size_t cap = 4u << 20;
    while (cap < 4 * size) cap <<= 1;
    opts.capacity = cap;
    opts.max_message = size;
    opts.wait = wait;
    shmlane_byte_sender *tx = NULL;
    if (broadcast) opts.capacity = 4096; /* messages, each a slot of the maximum size */
    if ((broadcast ? shmlane_broadcast_byte_sender_create(name, &opts, 8, 0, 0, &tx)
                   : shmlane_byte_sender_create(name, &opts, &tx)) != SHMLANE_STATUS_OK) {
        fprintf(stderr, "producer: %s\n", shmlane_last_error());
        return 1;
    }
    shmlane_status st = shmlane_byte_sender_wait_for_peer(tx, (int64_t)timeout * 1000);
    if (st != SHMLANE_STATUS_OK) {
        fprintf(stderr, "producer: no consumer connected to channel `%s` within %" PRIu64 " s: %s\n",
                name, timeout, shmlane_last_error());
        shmlane_byte_sender_free(tx);
        return st == SHMLANE_STATUS_TIMEOUT ? 1 : 3;
    }

    uint8_t *msg = malloc(size);
    if (!msg) return 1;
    int code = 0;
    uint64_t seq = 0, start = stamp_now_ns();
    for (; (count == 0 || seq < count) && !stop; seq++) {
        uint64_t deadline = stamp_now_ns() + timeout * 1000000000ULL;
        do {
            if (claim) {
                uint8_t *p = NULL;
                st = shmlane_byte_sender_claim(tx, size, &p);
                if (st == SHMLANE_STATUS_OK) {
                    stamp_write(p, size, seq, stamp_now_ns());
                    st = shmlane_byte_sender_commit(tx, size);
                } else if (st == SHMLANE_STATUS_WOULD_BLOCK) {
                    st = SHMLANE_STATUS_PEER_HUNG; /* full: retry until the deadline */
                }
            } else {
                stamp_write(msg, size, seq, stamp_now_ns());
                st = shmlane_byte_sender_send(tx, msg, size, (int64_t)timeout * 1000);
            }
        } while (st == SHMLANE_STATUS_PEER_HUNG && stamp_now_ns() < deadline && !stop);
        if (st != SHMLANE_STATUS_OK) {
            if (stop) break;
            if (st == SHMLANE_STATUS_CLOSED && count == 0) break;
            fprintf(stderr, "producer: after %" PRIu64 " messages: %s\n", seq, shmlane_last_error());
            code = exit_code(st);
            break;
        }
    }
    double secs = (double)(stamp_now_ns() - start) / 1e9;
    shmlane_byte_sender_close(tx);
    printf("sent %" PRIu64 " messages, %" PRIu64 " bytes in %.2f s: %.2f M msgs/s\n", seq, seq * size,
           secs, secs > 0 ? (double)seq / secs / 1e6 : 0.0);
    free(msg);
    shmlane_byte_sender_free(tx);
    return code;
}
