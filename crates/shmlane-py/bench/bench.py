"""Python to Python throughput: shmlane against multiprocessing.Pipe, multiprocessing.Queue and
pyzmq over ipc://, for 64 B and 64 KiB messages, each transport alternated round by round in
the same run (median of the rounds). The receiving process consumes every message the same
way for every transport (`touch`): its first and last byte, and for 64 KiB a numpy view over
it (zero-copy for shmlane's read(), a view of the received bytes for the others) that reads
one byte per 4 KiB page. `py/shmlane-batch` (64 B only) sends and receives with `send_many`/`recv_many`, 256
messages a call. `py/shmlane-typed` (64 B only) moves 64-byte elements of a numpy dtype over
a typed channel, 256 per `send`/`recv_batch`, and touches each batch with numpy (the sum of a
field): the workload of a numpy consumer, not the same per-message work as the others. `py/floor` is the receiving loop with no transport at all (a
function returning a ready message): no Python transport can be faster than it.

    python -m venv v && v/bin/pip install ./crates/shmlane-py numpy pyzmq
    v/bin/python crates/shmlane-py/bench/bench.py [--rounds 5] [--quick]

Prints one line per figure and the ratios of shmlane to each baseline."""

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

import shmlane

try:
    import zmq
except ImportError:  # the pyzmq baseline is skipped (and said so) without it
    zmq = None


def touch(buf):
    """What the receiver does with each message: reads its first and last byte, through a
    numpy view for large messages (one byte per 4 KiB page)."""
    if len(buf) < 4096:
        return buf[0] + buf[-1]
    return int(np.frombuffer(buf, dtype=np.uint8)[::4096].sum())


# Each producer runs in a spawned child and sends n messages of `size` bytes, then a marker.


def shm_producer(name, n, size, ready):
    msg = bytes(size)
    with shmlane.ByteSender.create(name, capacity=max(1 << 20, 16 * size), max_message=size) as tx:
        ready.set()
        tx.wait_for_peer(timeout=30)
        for _ in range(n):
            tx.send(msg)


def shm_batch_producer(name, n, size, ready):
    batch = [bytes(size)] * 256
    with shmlane.ByteSender.create(name, capacity=max(1 << 20, 16 * size), max_message=size) as tx:
        ready.set()
        tx.wait_for_peer(timeout=30)
        for i in range(0, n, 256):
            tx.send_many(batch[: min(256, n - i)])


def shm_batch_consume(name, n, ready):
    ready.wait(30)
    with shmlane.ByteReceiver.connect(name, timeout=30) as rx:
        first = rx.recv_many(256)
        for m in first:
            touch(m)
        t, got = time.perf_counter(), len(first)
        while got < n:
            batch = rx.recv_many(256)
            for m in batch:
                touch(m)
            got += len(batch)
        return (n - len(first)) / (time.perf_counter() - t)


ELEM64 = np.dtype([("seq", "<u8"), ("pad", "V56")])


def shm_typed_producer(name, n, ready):
    batch = np.zeros(256, ELEM64)
    batch["seq"] = np.arange(256)
    with shmlane.TypedSender.create(name, ELEM64, capacity=1 << 14) as tx:
        ready.set()
        tx.wait_for_peer(timeout=30)
        for i in range(0, n, 256):
            tx.send(batch[: min(256, n - i)])


def shm_typed_consume(name, n, ready):
    ready.wait(30)
    with shmlane.TypedReceiver.connect(name, ELEM64, timeout=30) as rx:
        first = rx.recv_batch(256)
        int(first["seq"].sum())
        t, got = time.perf_counter(), len(first)
        while got < n:
            batch = rx.recv_batch(256)
            int(batch["seq"].sum())
            got += len(batch)
        return (n - len(first)) / (time.perf_counter() - t)


def shm_consume(name, n, size, ready):
    ready.wait(30)
    with shmlane.ByteReceiver.connect(name, timeout=30) as rx:
        if size < 4096:
            # The same loop as the baselines' (`timed` over a bound receive method).
            return timed(rx.recv, n)
        t = None
        for _ in range(n):
            if size >= 4096:
                with rx.read() as view:
                    touch(view)
            else:
                touch(rx.recv())
            if t is None:
                t = time.perf_counter()
        return (n - 1) / (time.perf_counter() - t)


def pipe_producer(conn, n, size):
    msg = bytes(size)
    for _ in range(n):
        conn.send_bytes(msg)
    conn.close()


def queue_producer(q, n, size):
    msg = bytes(size)
    for _ in range(n):
        q.put(msg)


def zmq_producer(addr, n, size, done):
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.SNDHWM, 1000)
    s.connect(addr)
    # Wait until the connection is up: sending into a PUSH socket still connecting (ipc)
    # stalled here.
    s.poll(timeout=10_000, flags=zmq.POLLOUT)
    msg = bytes(size)
    for _ in range(n):
        s.send(msg, copy=size < 4096)
    # Stay until the receiver has everything: messages still queued in this process when
    # it exited were lost here, whatever the linger setting.
    done.wait(60)
    s.close(linger=0)
    ctx.term()


def timed(recv, n):
    t = None
    for _ in range(n):
        touch(recv())
        if t is None:
            t = time.perf_counter()
    return (n - 1) / (time.perf_counter() - t)


def run(kind, n, size, ctx):
    if kind == "floor":
        msg = bytes(size)
        return timed(lambda: msg, n)
    if kind == "shmlane-typed":
        name = f"pybench-{os.getpid()}-{time.monotonic_ns()}"
        ready = ctx.Event()
        p = ctx.Process(target=shm_typed_producer, args=(name, n, ready))
        p.start()
        rate = shm_typed_consume(name, n, ready)
    elif kind == "shmlane-batch":
        name = f"pybench-{os.getpid()}-{time.monotonic_ns()}"
        ready = ctx.Event()
        p = ctx.Process(target=shm_batch_producer, args=(name, n, size, ready))
        p.start()
        rate = shm_batch_consume(name, n, ready)
    elif kind == "shmlane":
        name = f"pybench-{os.getpid()}-{time.monotonic_ns()}"
        ready = ctx.Event()
        p = ctx.Process(target=shm_producer, args=(name, n, size, ready))
        p.start()
        rate = shm_consume(name, n, size, ready)
    elif kind == "pipe":
        a, b = ctx.Pipe(duplex=False)
        p = ctx.Process(target=pipe_producer, args=(b, n, size))
        p.start()
        rate = timed(a.recv_bytes, n)
    elif kind == "queue":
        q = ctx.Queue(maxsize=1000)
        p = ctx.Process(target=queue_producer, args=(q, n, size))
        p.start()
        rate = timed(q.get, n)
    else:
        zctx = zmq.Context()
        s = zctx.socket(zmq.PULL)
        s.setsockopt(zmq.RCVHWM, 1000)
        addr = f"ipc:///tmp/pybench-{os.getpid()}-{time.monotonic_ns()}"
        s.bind(addr)
        done = ctx.Event()
        p = ctx.Process(target=zmq_producer, args=(addr, n, size, done))
        p.start()
        rate = timed(lambda: s.recv(copy=size < 4096), n)
        done.set()
        s.close()
        zctx.term()
    p.join(60)
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer messages and one round (a smoke run)")
    ap.add_argument("--only", nargs="*", help="transports to run (shmlane pipe queue pyzmq)")
    a = ap.parse_args()
    rounds = 1 if a.quick else a.rounds
    ctx = mp.get_context("spawn")
    kinds = ["shmlane", "pipe", "queue"] + (["pyzmq"] if zmq else []) + ["floor"]
    if not zmq:
        print("pyzmq is not installed: its baseline is skipped (pip install pyzmq)")
    if a.only:
        kinds = [k for k in kinds if k in a.only]
    small_kinds = kinds + [k for k in ("shmlane-batch", "shmlane-typed") if not a.only or k in a.only]
    for size, n in [(64, 200_000), (64 << 10, 20_000)]:
        if a.quick:
            n //= 20
        ks = small_kinds if size < 4096 else kinds
        rates = {k: [] for k in ks}
        for _ in range(rounds):
            for k in ks:
                rates[k].append(run(k, n, size, ctx))
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k in ks:
            spread = f"{min(rates[k]) / 1e3:.1f}..{max(rates[k]) / 1e3:.1f}"
            print(f"py/{k}/{size}B  {med[k] / 1e3:10.1f} k msgs/s  (rounds {spread})")
        for extra, how in (("shmlane-batch", "send_many/recv_many of 256"),
                           ("shmlane-typed", "numpy batches of 256 64-byte elements")):
            if extra not in rates:
                continue
            for k in kinds[1:]:
                if k == "floor" or k not in rates:
                    continue
                ratios = [s / b for s, b in zip(rates[extra], rates[k])]
                print(
                    f"py/{extra}/{size}B / py/{k}/{size}B  {statistics.median(ratios):6.2f}x"
                    f"  (rounds {min(ratios):.2f}x..{max(ratios):.2f}x; {how})"
                )
        for k in kinds[1:] if kinds[0] == "shmlane" else []:
            if k == "floor":
                ratios = [s / b for s, b in zip(rates["shmlane"], rates[k])]
                print(f"py/shmlane/{size}B / py/floor/{size}B  {statistics.median(ratios):6.2f}x (the bound is 1x)")
                continue
            ratios = [s / b for s, b in zip(rates["shmlane"], rates[k])]
            print(
                f"py/shmlane/{size}B / py/{k}/{size}B  {statistics.median(ratios):6.2f}x"
                f"  (rounds {min(ratios):.2f}x..{max(ratios):.2f}x)"
            )


if __name__ == "__main__":
    main()
