/* Receives and checks stamped messages over a named byte channel through shmlane's C ABI:
 * the C twin of examples/examples/consumer.rs, with the same checks (stamp.h: checksum, and
 * a sequence contiguous from 0), flags and exit codes.
 *
 *   consumer [--name NAME] [--count N] [--timeout SECS] [--wait spin|yield|block] [--copy]
 *            [--broadcast]
 *
 * Messages are read in place (read + release) unless --copy (recv into a buffer).
 * --broadcast joins a byte-message broadcast channel (the Rust `publisher` example's, or
 * `producer --broadcast`) as a new receiver, from the next message sent; a loss is an
 * error (exit 2): those senders are lossless.
 * Exit codes: 0 every message arrived valid and in sequence; 1 set-up error, no channel
 * within --timeout, or nothing sent for --timeout; 2 a bad message, a gap or duplicate, or
 * a truncated file; 3 the producer died, hung, or closed before --count messages;
 * 4 stopped by a signal before --count messages. */
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

int main(int argc, char **argv) {
    const char *name = "demo";
    uint64_t count = 0, timeout = 10;
    uint32_t wait = SHMLANE_WAIT_BLOCKING;
    int copy = 0, broadcast = 0;
    static const struct option longs[] = {
        {"name", required_argument, 0, 'n'}, {"count", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 't'}, {"wait", required_argument, 0, 'w'},
        {"copy", no_argument, 0, 'C'}, {"broadcast", no_argument, 0, 'B'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        char *end = NULL;
        switch (o) {
        case 'n': name = optarg; break;
        case 'c': count = strtoull(optarg, &end, 10); break;
        case 't': timeout = strtoull(optarg, &end, 10); break;
        case 'w':
            if (strcmp(optarg, "spin") == 0) wait = SHMLANE_WAIT_BUSY_SPIN;
            else if (strcmp(optarg, "yield") == 0) wait = SHMLANE_WAIT_SPIN_THEN_YIELD;
            else if (strcmp(optarg, "block") == 0) wait = SHMLANE_WAIT_BLOCKING;
            else {
                fprintf(stderr, "consumer: --wait must be spin, yield or block\n");
                return 1;
            }
            break;
        case 'C': copy = 1; break;
        case 'B': broadcast = 1; break;
        default: return 1;
        }
        if (end && *end) {
            fprintf(stderr, "consumer: `%s` is not a number\n", optarg);
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    shmlane_options opts = shmlane_options_default();
    opts.wait = wait;
    opts.connect_timeout_ms = timeout * 1000;
    shmlane_byte_receiver *rx = NULL;
    if ((broadcast ? shmlane_broadcast_byte_receiver_connect(name, &opts, 0, &rx)
                   : shmlane_byte_receiver_connect(name, &opts, &rx)) != SHMLANE_STATUS_OK) {
        fprintf(stderr, "consumer: %s\n", shmlane_last_error());
        return 1;
    }
    size_t cap = shmlane_byte_receiver_max_message(rx);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return 1;

    int code = 0;
    uint64_t received = 0, bytes = 0, errors = 0, lat_sum = 0, lat_max = 0;
    uint64_t start = stamp_now_ns();
    while ((count == 0 || received < count) && code == 0) {
        if (stop) {
            if (count != 0) {
                fprintf(stderr, "consumer: stopped by a signal after %" PRIu64 " of %" PRIu64 " messages\n",
                        received, count);
                code = 4;
            }
            break;
        }
        const uint8_t *data = NULL;
        size_t len = 0;
        shmlane_status st;
        /* Short waits, so a signal is noticed; a silence of --timeout ends the run. */
        uint64_t deadline = stamp_now_ns() + timeout * 1000000000ULL;
        do {
            if (copy) {
                st = shmlane_byte_receiver_recv(rx, buf, cap, &len, 100);
                data = buf;
            } else {
                st = shmlane_byte_receiver_read(rx, &data, &len, 100);
            }
        } while ((st == SHMLANE_STATUS_TIMEOUT || st == SHMLANE_STATUS_PEER_HUNG) && !stop &&
                 stamp_now_ns() < deadline);
        if (st == SHMLANE_STATUS_TIMEOUT && stop) continue;
        if (st != SHMLANE_STATUS_OK) {
            if (st == SHMLANE_STATUS_CLOSED && count == 0) break;
            fprintf(stderr, "consumer: after %" PRIu64 " messages: %s\n", received, shmlane_last_error());
            code = st == SHMLANE_STATUS_TIMEOUT ? 1
                 : (st == SHMLANE_STATUS_TRUNCATED || st == SHMLANE_STATUS_CORRUPT ||
                    st == SHMLANE_STATUS_LOST) ? 2
                 : (st == SHMLANE_STATUS_CLOSED || st == SHMLANE_STATUS_PEER_GONE || st == SHMLANE_STATUS_PEER_HUNG) ? 3
                 : 1;
            break;
        }
        uint64_t now = stamp_now_ns();
        /* Read once: copy the in-place bytes before checking them (another process maps them). */
        if (!copy) memcpy(buf, data, len < cap ? len : cap);
        uint64_t seq = 0, sent = 0;
        const char *why = NULL;
        if (len > cap || stamp_check(buf, len, &seq, &sent, &why) != 0) {
            fprintf(stderr, "consumer: message %" PRIu64 " (%zu bytes): %s\n", received, len, why ? why : "too long");
            errors++;
            code = 2;
        } else if (seq != (len >= 24 ? received : (received & 0xffffffffULL))) {
            fprintf(stderr, "consumer: expected message %" PRIu64 ", got %" PRIu64 "\n", received, seq);
            errors++;
            code = 2;
        } else {
            uint64_t lat = len >= 24 ? (now > sent ? now - sent : 0)
                                     : (((now / 1000) - (sent / 1000)) & 0xffffff) * 1000;
            lat_sum += lat;
            if (lat > lat_max) lat_max = lat;
        }
        if (!copy && shmlane_byte_receiver_release(rx) != SHMLANE_STATUS_OK) {
            fprintf(stderr, "consumer: message %" PRIu64 " was overwritten while read: %s\n", received,
                    shmlane_last_error());
            errors++;
            code = 2;
        }
        received++;
        bytes += len;
    }
    double secs = (double)(stamp_now_ns() - start) / 1e9;
    printf("received %" PRIu64 " messages, %" PRIu64 " bytes, %" PRIu64 " errors in %.2f s: %.2f M msgs/s, "
           "latency mean %.1f us max %.1f us\n",
           received, bytes, errors, secs, secs > 0 ? (double)received / secs / 1e6 : 0.0,
           received ? (double)lat_sum / (double)received / 1e3 : 0.0, (double)lat_max / 1e3);
    free(buf);
    shmlane_byte_receiver_free(rx);
    return code;
}
