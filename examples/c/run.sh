#!/usr/bin/env bash
# Builds the C examples against shmlane's C ABI (static library) and runs them against the
# Rust examples and each other, with checked messages and exit codes, and under valgrind.
# Run from the workspace root: bash examples/c/run.sh   (.ci/run does)
set -euo pipefail

CC=${CC:-cc}
out=${CARGO_TARGET_DIR:-target}/c-examples
mkdir -p "$out"
cargo build --release -q -p shmlane-c -p shmlane-examples --examples --lib
lib=${CARGO_TARGET_DIR:-target}/release/libshmlane.a
rust=${CARGO_TARGET_DIR:-target}/release/examples
for ex in producer consumer ticks; do
    "$CC" -O2 -g -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -I crates/shmlane-c/include \
        -o "$out/$ex" "examples/c/$ex.c" "$lib" -lpthread -ldl -lm
done
# The header also compiles as C++ (cbindgen's cpp_compat).
if command -v c++ >/dev/null; then
    echo '#include "shmlane.h"
int main() { shmlane_options o = shmlane_options_default(); return (int)o.wait; }' |
        c++ -x c++ -Wall -Werror -I crates/shmlane-c/include -fsyntax-only -
fi

tag=cex-$$
fail=0
# pair CODE_PRODUCER CODE_CONSUMER DESCRIPTION -- PRODUCER... -- CONSUMER...
pair() {
    local want_p=$1 want_c=$2 what=$3
    shift 3
    local prod=() cons=()
    shift # the first --
    while [[ $1 != -- ]]; do prod+=("$1"); shift; done
    shift
    cons=("$@")
    "${cons[@]}" >"$out/cons.log" 2>&1 &
    local cpid=$!
    sleep 0.2
    set +e
    "${prod[@]}" >"$out/prod.log" 2>&1
    local p=$?
    wait "$cpid"
    local c=$?
    set -e
    if [[ $p == "$want_p" && $c == "$want_c" ]]; then
        echo "ok   $what (exits $p/$c): $(tail -1 "$out/cons.log")"
    else
        echo "FAIL $what: producer exited $p (want $want_p), consumer $c (want $want_c)"
        cat "$out/prod.log" "$out/cons.log"
        fail=1
    fi
}

n=1000000
pair 0 0 "C producer -> Rust consumer, 64 B" -- \
    "$out/producer" --name "$tag.1" --count $n --size 64 -- \
    "$rust/consumer" --name "$tag.1" --count $n
pair 0 0 "Rust producer -> C consumer (zero-copy read), 64 B" -- \
    "$rust/producer" --name "$tag.2" --count $n --size 64 -- \
    "$out/consumer" --name "$tag.2" --count $n
pair 0 0 "Rust publisher -> C broadcast receiver (zero-copy read), 64 B" -- \
    "$rust/publisher" --name "$tag.b1" --count $n --size 64 --await-subscribers 1 -- \
    "$out/consumer" --name "$tag.b1" --count $n --broadcast
pair 0 0 "C broadcast sender -> Rust subscriber, 1000 B" -- \
    "$out/producer" --name "$tag.b2" --count 200000 --size 1000 --broadcast -- \
    "$rust/subscriber" --name "$tag.b2" --count 200000
pair 0 0 "C producer (claim/commit) -> C consumer (copy), 16 B" -- \
    "$out/producer" --name "$tag.3" --count $n --size 16 --claim -- \
    "$out/consumer" --name "$tag.3" --count $n --copy
pair 0 0 "C producer -> Rust consumer, 64 KiB" -- \
    "$out/producer" --name "$tag.4" --count 2000 --size 65536 -- \
    "$rust/consumer" --name "$tag.4" --count 2000
pair 0 3 "C producer stops at its count, before the consumer's: the consumer reports it (exit 3)" -- \
    "$out/producer" --name "$tag.5" --count 1000 --size 64 -- \
    "$rust/consumer" --name "$tag.5" --count 2000

# The producer killed mid-stream: the C consumer exits 3 (the producer died).
"$out/consumer" --name "$tag.6" --count 0 --timeout 5 >"$out/cons.log" 2>&1 &
cpid=$!
sleep 0.2
"$rust/producer" --name "$tag.6" --count 0 --rate 1000 >/dev/null 2>&1 &
ppid=$!
sleep 0.5
kill -9 "$ppid"
set +e; wait "$ppid" 2>/dev/null; wait "$cpid"; c=$?; set -e
if [[ $c == 3 ]]; then echo "ok   killed producer: C consumer exits 3: $(grep -m1 consumer: "$out/cons.log")"
else echo "FAIL killed producer: C consumer exited $c (want 3)"; cat "$out/cons.log"; fail=1; fi

# Typed and MPMC channels of the agreed element "shmlane.Tick/1" (ticks.c, ticks.rs).
pair 0 0 "C typed sender -> Rust typed receiver, 1 M ticks" -- \
    "$out/ticks" --role send --name "$tag.t1" --count $n -- \
    "$rust/ticks" --role recv --name "$tag.t1" --count $n
pair 0 0 "Rust typed sender -> C typed receiver, 1 M ticks" -- \
    "$rust/ticks" --role send --name "$tag.t2" --count $n -- \
    "$out/ticks" --role recv --name "$tag.t2" --count $n
pair 0 3 "C typed sender stops before the C receiver's count: the receiver reports it (exit 3)" -- \
    "$out/ticks" --role send --name "$tag.t3" --count 1000 -- \
    "$out/ticks" --role recv --name "$tag.t3" --count 2000
# MPMC: a Rust sender creates, a C sender joins, a C receiver expects both.
"$out/ticks" --role recv --mpmc --producers 2 --name "$tag.t4" --count 200000 >"$out/cons.log" 2>&1 &
cpid=$!
sleep 0.2
"$rust/ticks" --role send --mpmc --create --producer 0 --name "$tag.t4" --count 200000 >"$out/prod.log" 2>&1 &
p0=$!
sleep 0.2
set +e
"$out/ticks" --role send --mpmc --producer 1 --name "$tag.t4" --count 200000 >>"$out/prod.log" 2>&1
p1=$?; wait "$p0"; p0=$?; wait "$cpid"; c=$?
set -e
if [[ $p0 == 0 && $p1 == 0 && $c == 0 ]]; then echo "ok   MPMC Rust + C senders -> C receiver: $(tail -1 "$out/cons.log")"
else echo "FAIL MPMC Rust + C senders -> C receiver: exits $p0/$p1/$c"; cat "$out/prod.log" "$out/cons.log"; fail=1; fi
# Another element type is refused: a byte channel is not a tick channel.
"$rust/producer" --name "$tag.t5" --count 0 --rate 1000 >/dev/null 2>&1 &
ppid=$!
sleep 0.3
set +e; "$out/ticks" --role recv --name "$tag.t5" --count 1 --timeout 2 >"$out/cons.log" 2>&1; c=$?; set -e
kill "$ppid" 2>/dev/null || true; wait "$ppid" 2>/dev/null || true
if [[ $c == 1 ]] && grep -q "bytes" "$out/cons.log"; then echo "ok   a tick receiver refuses a byte channel: $(head -c 160 "$out/cons.log")"
else echo "FAIL tick receiver on a byte channel exited $c"; cat "$out/cons.log"; fail=1; fi

# valgrind: no error and nothing definitely lost, on the C examples.
if command -v valgrind >/dev/null; then
    vg=(valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite)
    pair 0 0 "valgrind: C producer -> C consumer (zero-copy read), 64 B" -- \
        "${vg[@]}" "$out/producer" --name "$tag.7" --count 20000 --size 64 --claim -- \
        "${vg[@]}" "$out/consumer" --name "$tag.7" --count 20000 --timeout 30
    pair 0 0 "valgrind: C producer -> C consumer (copy), 8 B" -- \
        "${vg[@]}" "$out/producer" --name "$tag.8" --count 20000 --size 8 -- \
        "${vg[@]}" "$out/consumer" --name "$tag.8" --count 20000 --copy --timeout 30
    pair 0 0 "valgrind: C broadcast sender -> C broadcast receiver (zero-copy read), 64 B" -- \
        "${vg[@]}" "$out/producer" --name "$tag.b3" --count 20000 --size 64 --broadcast -- \
        "${vg[@]}" "$out/consumer" --name "$tag.b3" --count 20000 --broadcast --timeout 30
    pair 0 0 "valgrind: C typed sender -> C typed receiver" -- \
        "${vg[@]}" "$out/ticks" --role send --name "$tag.9" --count 20000 --timeout 30 -- \
        "${vg[@]}" "$out/ticks" --role recv --name "$tag.9" --count 20000 --timeout 30
else
    echo "valgrind not installed: valgrind runs skipped"
fi

left=$(ls /dev/shm | grep -c "shmlane\.$tag" || true)
if [[ $left != 0 ]]; then echo "FAIL $left channel files left in /dev/shm"; fail=1; fi
exit $fail
