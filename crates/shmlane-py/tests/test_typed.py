"""Typed and MPMC channels of numpy elements: Python with Python, Rust and C (the `ticks`
examples, element "shmlane.Tick/1"), multiprocessing children, and bad input refused with
the right exception before anything is sent."""

import multiprocessing as mp
import subprocess
import threading

import numpy as np
import pytest

import shmlane

TICK = np.dtype(
    [("seq", "<u8"), ("stamp_ns", "<u8"), ("value", "<f8"), ("check", "<u4"), ("producer", "<u4")],
    align=True,
)
NAME = "shmlane.Tick/1"
N = 100_000


def mix(seq, producer):
    return (((seq * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 32) ^ producer


def ticks(start, n, producer=0):
    a = np.zeros(n, TICK)
    a["seq"] = np.arange(start, start + n, dtype=np.uint64)
    a["value"] = a["seq"] * 0.5
    s = a["seq"].astype(object)
    a["check"] = [mix(int(x), producer) for x in s]
    a["producer"] = producer
    return a


def check(batch, next_seq):
    """Checks a batch continues `next_seq` (dict producer -> next seq); updates it."""
    for t in batch:
        p = int(t["producer"])
        seq = int(t["seq"])
        assert seq == next_seq.get(p, 0), (p, seq, next_seq)
        assert t["value"] == seq * 0.5 and int(t["check"]) == mix(seq, p)
        next_seq[p] = seq + 1


def test_round_trip_batches_scalars_and_iteration(name):
    with shmlane.TypedSender.create(name, TICK, type_name=NAME, capacity=64) as tx, \
            shmlane.TypedReceiver.connect(name, TICK, type_name=NAME) as rx:
        assert tx.dtype == TICK and rx.type_name == NAME
        assert tx.send(ticks(0, 10)) == 10
        assert tx.send(tuple(ticks(10, 1)[0].tolist())) == 1
        assert tx.send(ticks(11, 1)[0]) == 1
        assert tx.send(ticks(12, 3).tobytes()) == 3
        nxt = {}
        b = rx.recv_batch(4)
        assert b.dtype == TICK and len(b) == 4
        check(b, nxt)
        check([rx.recv()], nxt)
        out = np.zeros(100, TICK)
        n = rx.recv_into(out)
        assert n == 10
        check(out[:n], nxt)
        # timeout=0: WouldBlock when empty; send what fits when full.
        with pytest.raises(shmlane.WouldBlock):
            rx.recv_batch(8, timeout=0)
        with pytest.raises(shmlane.Timeout):
            rx.recv(timeout=0.05)
        sent = tx.send(ticks(15, 100), timeout=0)
        assert 0 < sent < 100
        with pytest.raises(shmlane.WouldBlock):
            tx.send(ticks(15 + sent, 1), timeout=0)
        with pytest.raises(shmlane.Timeout, match="after 0 of 1 elements"):
            tx.send(ticks(15 + sent, 1), timeout=0.05)
        got = rx.recv_batch(1000)
        check(got, nxt)
        tx.close()
        assert list(rx) == []
        with pytest.raises(shmlane.Closed):
            rx.recv()


@pytest.mark.parametrize("dtype", ["<u8", [("a", "<u4"), ("b", "<u4"), ("c", "<u4")], [("v", "<f8", (9,))]])
def test_shapes_across_blocks_and_wraps(name, dtype):
    dt = np.dtype(dtype, align=True) if isinstance(dtype, list) else np.dtype(dtype)
    with shmlane.TypedSender.create(name, dt, capacity=32) as tx, \
            shmlane.TypedReceiver.connect(name, dt) as rx:
        assert rx.type_name.startswith("numpy:")
        raw = np.frombuffer(np.random.default_rng(1).bytes(dt.itemsize * 1000), dtype=dt)
        got = []
        i = 0
        while len(got) < 1000:
            if i < 1000:
                i += tx.send(raw[i:i + 7], timeout=0) if len(raw[i:i + 7]) else 0
            try:
                got.extend(rx.recv_batch(5, timeout=0))
            except shmlane.WouldBlock:
                pass
        assert np.array(got, dtype=dt).tobytes() == raw.tobytes()


def test_python_sends_to_rust_and_rust_to_python(name, rust_examples):
    cons = subprocess.Popen([str(rust_examples / "ticks"), "--role", "recv", "--name", name, "--count", str(N)])
    with shmlane.TypedSender.create(name, TICK, type_name=NAME, wait="block") as tx:
        tx.wait_for_peer(timeout=10)
        for start in range(0, N, 1000):
            assert tx.send(ticks(start, 1000)) == 1000
    assert cons.wait(60) == 0

    back = name + "-b"
    prod = subprocess.Popen([str(rust_examples / "ticks"), "--role", "send", "--name", back, "--count", str(N)])
    with shmlane.TypedReceiver.connect(back, TICK, type_name=NAME, wait="block") as rx:
        nxt = {}
        while nxt.get(0, 0) < N:
            check(rx.recv_batch(4096, timeout=10), nxt)
    assert prod.wait(30) == 0


def test_c_sends_to_python_and_python_to_c(name, c_ticks):
    prod = subprocess.Popen([str(c_ticks), "--role", "send", "--name", name, "--count", str(N)])
    with shmlane.TypedReceiver.connect(name, TICK, type_name=NAME) as rx:
        nxt = {}
        while nxt.get(0, 0) < N:
            check(rx.recv_batch(1000, timeout=10), nxt)
    assert prod.wait(30) == 0

    back = name + "-b"
    cons = subprocess.Popen([str(c_ticks), "--role", "recv", "--name", back, "--count", "5000"])
    with shmlane.TypedSender.create(back, TICK, type_name=NAME) as tx:
        tx.wait_for_peer(timeout=10)
        assert tx.send(ticks(0, 5000), timeout=30) == 5000
    assert cons.wait(30) == 0


def test_mpmc_rust_c_and_python_senders_into_python(name, rust_examples, c_ticks):
    rust = subprocess.Popen([str(rust_examples / "ticks"), "--role", "send", "--mpmc", "--create",
                             "--producer", "0", "--name", name, "--count", "20000"])
    with shmlane.TypedReceiver.connect_mpmc(name, TICK, type_name=NAME) as rx:
        c = subprocess.Popen([str(c_ticks), "--role", "send", "--mpmc", "--producer", "1",
                              "--name", name, "--count", "20000"])
        sent = []

        def python_sender():
            with shmlane.TypedSender.join_mpmc(name, TICK, type_name=NAME) as tx:
                sent.append(tx.send(ticks(0, 20000, producer=2), timeout=30))

        t = threading.Thread(target=python_sender)
        t.start()
        nxt = {}
        while sum(nxt.values()) < 60000:
            check(rx.recv_batch(512, timeout=10), nxt)
        t.join(30)
        assert sent == [20000]
        assert nxt == {0: 20000, 1: 20000, 2: 20000}
        assert c.wait(30) == 0
    assert rust.wait(30) == 0


def _child_send(name, n):
    with shmlane.TypedSender.create(name, TICK, type_name=NAME) as tx:
        tx.wait_for_peer(timeout=10)
        for s in range(0, n, 500):
            tx.send(ticks(s, 500))


def test_multiprocessing_child_sends(name):
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_child_send, args=(name, 20000))
    p.start()
    with shmlane.TypedReceiver.connect(name, TICK, type_name=NAME) as rx:
        nxt = {}
        for t in rx:
            check([t], nxt)
    p.join(30)
    assert p.exitcode == 0 and nxt == {0: 20000}


def test_bad_input_raises_the_right_exception(name):
    with shmlane.TypedSender.create(name, TICK, type_name=NAME, capacity=16) as tx:
        quick = dict(type_name=NAME, timeout=0.2)
        with pytest.raises(shmlane.WrongType, match="shmlane.Tick/1"):
            shmlane.TypedReceiver.connect(name, TICK, type_name="other.Tick/1", timeout=0.2)
        with pytest.raises(shmlane.WrongType):
            shmlane.TypedReceiver.connect(name, np.dtype("<u8"), **quick)
        # The same fields without align=True: 28 bytes, align 1, not the C struct.
        with pytest.raises(shmlane.WrongType, match="align"):
            shmlane.TypedReceiver.connect(name, np.dtype(TICK.descr), **quick)
        with pytest.raises(shmlane.WrongType):
            shmlane.TypedReceiver.connect_mpmc(name, TICK, **quick)
        with pytest.raises(shmlane.WrongType):
            shmlane.ByteReceiver.connect(name, timeout=0.2)
        with pytest.raises(TypeError, match="Python objects"):
            shmlane.TypedSender.create(name + "x", np.dtype(object))
        with pytest.raises(ValueError, match="128"):
            shmlane.TypedSender.create(name + "x", TICK, type_name="x" * 129)
        with pytest.raises(TypeError, match="dtype"):
            tx.send(np.zeros(3, np.float64))
        with pytest.raises(ValueError, match="whole number"):
            tx.send(b"\0" * 31)
        with shmlane.TypedReceiver.connect(name, TICK, **quick) as rx:
            with pytest.raises(ValueError, match="less than one"):
                rx.recv_into(bytearray(31))
            with pytest.raises(TypeError, match="dtype"):
                rx.recv_into(np.zeros(4, np.uint64))
            with pytest.raises(ValueError):
                rx.recv_batch(0)
            # Nothing bad was sent: the first element is the first tick.
            assert tx.send(ticks(0, 1)) == 1
            b = rx.recv_batch(4, timeout=1)
            assert len(b) == 1
            check(b, {})


def _child_subscribe(name, n, q):
    got = []
    with shmlane.TypedReceiver.connect_broadcast(name, TICK, type_name=NAME) as rx:
        q.put("ready")
        next_seq = {}
        while len(got) < n:
            batch = rx.recv_batch(256, timeout=30)
            check(batch, next_seq)
            got.extend(int(s) for s in batch["seq"])
    q.put(got == list(range(n)))


def test_broadcast_to_two_processes_and_a_lossy_receiver(name):
    # Lossless: a Python sender, two multiprocessing subscribers, every element to both.
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with shmlane.TypedSender.create_broadcast(name, TICK, type_name=NAME, capacity=256,
                                              subscribers=4) as tx:
        kids = [ctx.Process(target=_child_subscribe, args=(name, N, q)) for _ in range(2)]
        for k in kids:
            k.start()
        assert [q.get(timeout=60) for _ in kids] == ["ready", "ready"]
        for start in range(0, N, 1000):
            assert tx.send(ticks(start, 1000), timeout=30) == 1000
        assert [q.get(timeout=60) for _ in kids] == [True, True]
        for k in kids:
            k.join(timeout=60)
            assert k.exitcode == 0

    # Lossy: a receiver that fell behind raises Lost once, then reads the oldest still there.
    lossy = name + "-lossy"
    with shmlane.TypedSender.create_broadcast(lossy, TICK, type_name=NAME, capacity=64,
                                              lossy=True) as tx, \
            shmlane.TypedReceiver.connect_broadcast(lossy, TICK, type_name=NAME) as rx:
        tx.send(ticks(0, 1000))
        with pytest.raises(shmlane.Lost, match="lost"):
            rx.recv(timeout=1)
        missed = rx.missed
        assert 0 < missed < 1000
        assert int(rx.recv(timeout=1)["seq"]) == missed
        # A broadcast receiver's close closes nothing for the sender.
        rx.close()
        assert tx.send(ticks(1000, 1)) == 1
    with pytest.raises(ValueError):
        shmlane.TypedSender.create_broadcast(lossy + "2", TICK, subscribers=0)
    with pytest.raises(ValueError):
        shmlane.TypedSender.create_broadcast(lossy + "3", TICK, lossy=True, evict_after=1.0)
