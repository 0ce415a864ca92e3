"""Byte-message broadcast channels from Python: ByteSender.create_broadcast and
ByteReceiver.connect_broadcast, with Python and Rust (`publisher`, `subscriber` examples) on
either side, checked sequences, losses, in-place reads and bad input."""

import multiprocessing as mp
import subprocess

import pytest

import shmlane
import stamp

N = 20_000


def _subscribe(name, n, size, how, q):
    """A subscriber process: reads n stamped messages (copied, in place, or into a
    buffer, as `how` says) and reports whether they were 0..n in order."""
    with shmlane.ByteReceiver.connect_broadcast(name, timeout=10) as rx:
        q.put("ready")
        buf = bytearray(size)
        ok = True
        for i in range(n):
            if how == "recv":
                msg = rx.recv(timeout=30)
            elif how == "read":
                with rx.read(timeout=30) as view:
                    msg = bytes(view)
            else:
                msg = bytes(buf[: rx.recv_into(buf, timeout=30)])
            ok = ok and stamp.check(msg) == i
        q.put((ok, rx.missed))


def test_python_to_three_python_subscribers(name):
    size = 100
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ways = ["recv", "read", "into"]
    with shmlane.ByteSender.create_broadcast(name, capacity=128, max_message=size,
                                             subscribers=4) as tx:
        assert tx.max_message >= size  # rounded up to a multiple of 8
        kids = [ctx.Process(target=_subscribe, args=(name, N, size, how, q)) for how in ways]
        for k in kids:
            k.start()
        assert [q.get(timeout=60) for _ in kids] == ["ready"] * 3
        for i in range(N):
            tx.send(stamp.write(size, i), timeout=30)
        assert [q.get(timeout=60) for _ in kids] == [(True, 0)] * 3
        for k in kids:
            k.join(timeout=60)
            assert k.exitcode == 0


def test_rust_publisher_to_python(name, rust_examples):
    pub = subprocess.Popen([str(rust_examples / "publisher"), "--name", name, "--count", str(N),
                            "--size", "64", "--await-subscribers", "1"])
    with shmlane.ByteReceiver.connect_broadcast(name, timeout=10) as rx:
        got = 0
        for msg in rx:
            assert stamp.check(msg) == got
            got += 1
    assert pub.wait(30) == 0
    assert got == N


def test_python_to_rust_subscriber(name, rust_examples):
    with shmlane.ByteSender.create_broadcast(name, capacity=256, max_message=64) as tx:
        sub = subprocess.Popen([str(rust_examples / "subscriber"), "--name", name,
                                "--count", str(N)], stdout=subprocess.PIPE, text=True)
        tx.wait_for_peer(timeout=10)
        for i in range(N):
            tx.send(stamp.write(64, i), timeout=30)
        out, _ = sub.communicate(timeout=30)
    assert sub.returncode == 0, out
    assert f"received {N} messages, 0 lost" in out


def test_lossy_losses_are_reported_once_and_in_place_reads_are_validated(name):
    with shmlane.ByteSender.create_broadcast(name, capacity=16, max_message=64,
                                             lossy=True) as tx, \
            shmlane.ByteReceiver.connect_broadcast(name) as rx:
        for i in range(100):
            tx.send(stamp.write(64, i))  # never waits
        with pytest.raises(shmlane.Lost, match="lost"):
            rx.recv(timeout=1)
        first = rx.missed
        assert 0 < first < 100
        # After the report, the oldest message still there, then the rest in order.
        assert [stamp.check(m) for m in rx.recv_many(200, timeout=1)] == list(range(first, 100))

        # A message overwritten while held in place: its release says so.
        tx.send(stamp.write(64, 100))
        msg = rx.read(timeout=1)
        with msg as view:
            assert stamp.check(bytes(view)) == 100
            for i in range(101, 140):
                tx.send(stamp.write(64, i))
            with pytest.raises(shmlane.Lost):
                msg.release()
        assert rx.missed > first
        # The receiver goes on with the oldest intact message.
        assert stamp.check(rx.recv(timeout=1)) == 100 + rx.missed - first
        # A broadcast receiver's close closes nothing for the sender.
        rx.close()
        tx.send(stamp.write(64, 140))


def test_history_and_leaving(name):
    with shmlane.ByteSender.create_broadcast(name, capacity=64, max_message=32) as tx:
        for i in range(10):
            tx.send(stamp.write(32, i))
        with shmlane.ByteReceiver.connect_broadcast(name, history=4) as rx:
            assert [stamp.check(rx.recv(timeout=1)) for _ in range(4)] == [6, 7, 8, 9]
        # It left: its receives say so, and a lossless sender is not held up by it.
        with pytest.raises(shmlane.Closed, match="left"):
            rx.recv(timeout=0)
        for i in range(10, 200):
            tx.send(stamp.write(32, i), timeout=5)
        # Leaving with a message held: it leaves once the message is released.
        with shmlane.ByteReceiver.connect_broadcast(name, history=1) as rx2:
            msg = rx2.read(timeout=1)
        with msg as view:
            assert stamp.check(bytes(view)) == 199
        with pytest.raises(shmlane.Closed):
            rx2.recv(timeout=0)


def test_bad_input(name):
    with shmlane.ByteSender.create_broadcast(name, capacity=8, max_message=16) as tx, \
            shmlane.ByteReceiver.connect_broadcast(name) as rx:
        with pytest.raises(shmlane.MessageTooLarge):
            tx.send(bytes(17))
        with pytest.raises(shmlane.WouldBlock):
            rx.recv(timeout=0)
        tx.send(b"0123456789abcdef")
        small = bytearray(8)
        with pytest.raises(shmlane.BufferTooSmall):
            rx.recv_into(small, timeout=1)
        # The message stayed for a buffer that fits.
        big = bytearray(16)
        assert rx.recv_into(big, timeout=1) == 16 and bytes(big) == b"0123456789abcdef"
        # A byte channel's receiver is not a broadcast receiver, and the reverse.
        with pytest.raises(shmlane.WrongType):
            shmlane.ByteReceiver.connect(name, timeout=0)
    other = name + "-spsc"
    with shmlane.ByteSender.create(other, capacity=4096):
        with pytest.raises(shmlane.WrongType):
            shmlane.ByteReceiver.connect_broadcast(other, timeout=0)
    with pytest.raises(ValueError):
        shmlane.ByteSender.create_broadcast(name + "-2", subscribers=0)
    with pytest.raises(ValueError):
        shmlane.ByteSender.create_broadcast(name + "-3", lossy=True, evict_after=1.0)
