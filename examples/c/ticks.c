/* Sends or receives checked `tick` elements over a typed (SPSC) or MPMC channel through
 * shmlane's C ABI: the C twin of examples/examples/ticks.rs, with the same element (named
 * "shmlane.Tick/1"), flags, checks and exit codes, so C, Rust and Python ends pair up.
 *
 *   ticks --role send|recv [--name NAME] [--count N] [--mpmc] [--create] [--producer ID]
 *         [--producers N] [--timeout SECS]
 *
 * Sending goes in batches of up to 64 elements; receiving takes up to 64 per call.
 * Exit codes: 0 all ticks valid; 1 set-up error; 2 a bad tick, gap or duplicate; 3 the
 * other side died, hung or closed early. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmlane.h"
#include "stamp.h"

typedef struct {
    uint64_t seq;
    uint64_t stamp_ns;
    double value;
    uint32_t check;
    uint32_t producer;
} tick;

static uint32_t mix(uint64_t seq, uint32_t producer) {
    return (uint32_t)((seq * 0x9E3779B97F4A7C15ULL) >> 32) ^ producer;
}

static int exit_code(shmlane_status st) {
    switch (st) {
    case SHMLANE_STATUS_CLOSED:
    case SHMLANE_STATUS_PEER_GONE:
    case SHMLANE_STATUS_PEER_HUNG:
    case SHMLANE_STATUS_TIMEOUT: return 3;
    case SHMLANE_STATUS_CORRUPT:
    case SHMLANE_STATUS_TRUNCATED: return 2;
    default: return 1;
    }
}

enum { BATCH = 64 };

int main(int argc, char **argv) {
    const char *name = "ticks", *role = NULL;
    uint64_t count = 100000, timeout = 10;
    uint32_t producer = 0, producers = 1;
    int mpmc = 0, create = 0;
    static const struct option longs[] = {
        {"role", required_argument, 0, 'r'},     {"name", required_argument, 0, 'n'},
        {"count", required_argument, 0, 'c'},    {"timeout", required_argument, 0, 't'},
        {"producer", required_argument, 0, 'p'}, {"producers", required_argument, 0, 'P'},
        {"mpmc", no_argument, 0, 'm'},           {"create", no_argument, 0, 'C'},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 'r': role = optarg; break;
        case 'n': name = optarg; break;
        case 'c': count = strtoull(optarg, &end, 10); break;
        case 't': timeout = strtoull(optarg, &end, 10); break;
        case 'p': producer = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'P': producers = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'm': mpmc = 1; break;
        case 'C': create = 1; break;
        default: return 1;
        }
        if (end && *end) {
            fprintf(stderr, "ticks: `%s` is not a number\n", optarg);
            return 1;
        }
    }
    if (!role || (strcmp(role, "send") != 0 && strcmp(role, "recv") != 0)) {
        fprintf(stderr, "ticks: --role must be send or recv\n");
        return 1;
    }
    shmlane_element elem = SHMLANE_ELEMENT(tick, "shmlane.Tick/1");
    shmlane_options opts = shmlane_options_default();
    opts.wait = SHMLANE_WAIT_BLOCKING;
    opts.connect_timeout_ms = timeout * 1000;
    int64_t patience_ms = (int64_t)(timeout * 1000);
    shmlane_status st;

    if (strcmp(role, "send") == 0) {
        shmlane_typed_sender *tx = NULL;
        st = !mpmc ? shmlane_typed_sender_create(name, &elem, &opts, &tx)
           : create ? shmlane_mpmc_sender_create(name, &elem, &opts, 8, &tx)
                    : shmlane_mpmc_sender_connect(name, &elem, &opts, &tx);
        if (st != SHMLANE_STATUS_OK) {
            fprintf(stderr, "ticks: %s\n", shmlane_last_error());
            return 1;
        }
        int code = 0;
        st = shmlane_typed_sender_wait_for_peer(tx, patience_ms);
        uint64_t start = stamp_now_ns();
        tick batch[BATCH];
        for (uint64_t seq = 0; st == SHMLANE_STATUS_OK && seq < count;) {
            size_t n = count - seq < BATCH ? (size_t)(count - seq) : BATCH, sent = 0;
            for (size_t i = 0; i < n; i++) {
                uint64_t s = seq + i;
                batch[i] = (tick){s, stamp_now_ns() - start, (double)s * 0.5, mix(s, producer), producer};
            }
            st = shmlane_typed_sender_send(tx, batch, n, &sent, patience_ms);
            seq += sent;
        }
        if (st != SHMLANE_STATUS_OK) {
            fprintf(stderr, "ticks: %s\n", shmlane_last_error());
            code = exit_code(st);
        } else {
            printf("sent %" PRIu64 " ticks as producer %" PRIu32 "\n", count, producer);
        }
        shmlane_typed_sender_free(tx);
        return code;
    }

    shmlane_typed_receiver *rx = NULL;
    st = mpmc ? shmlane_mpmc_receiver_connect(name, &elem, &opts, &rx)
              : shmlane_typed_receiver_connect(name, &elem, &opts, &rx);
    if (st != SHMLANE_STATUS_OK) {
        fprintf(stderr, "ticks: %s\n", shmlane_last_error());
        return 1;
    }
    if (!mpmc || producers == 0) producers = 1;
    uint64_t *next = calloc(producers, sizeof *next);
    if (!next) return 1;
    uint64_t total = count * producers, got = 0;
    int code = 0;
    tick buf[BATCH];
    while (got < total && code == 0) {
        size_t n = 0;
        st = shmlane_typed_receiver_recv(rx, buf, BATCH, &n, patience_ms);
        if (st != SHMLANE_STATUS_OK) {
            fprintf(stderr, "ticks: after %" PRIu64 " ticks: %s\n", got, shmlane_last_error());
            code = exit_code(st);
            break;
        }
        for (size_t i = 0; i < n && code == 0; i++) {
            tick t = buf[i];
            if (t.producer >= producers || t.seq != next[t.producer] ||
                t.value != (double)t.seq * 0.5 || t.check != mix(t.seq, t.producer)) {
                fprintf(stderr, "ticks: bad tick seq %" PRIu64 " producer %" PRIu32 "\n", t.seq, t.producer);
                code = 2;
                break;
            }
            next[t.producer]++;
            got++;
        }
    }
    if (code == 0)
        printf("received %" PRIu64 " ticks from %" PRIu32 " producer(s), 0 errors\n", got, producers);
    free(next);
    shmlane_typed_receiver_free(rx);
    return code;
}
