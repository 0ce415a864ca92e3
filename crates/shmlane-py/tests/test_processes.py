"""Across processes: Python to Python (multiprocessing children), Python to and from the Rust
examples with checked sequences, a killed peer, Ctrl-C while blocked."""

import multiprocessing as mp
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shmlane
import stamp

N = 100_000


def _produce(name, n, size):
    with shmlane.ByteSender.create(name, capacity=1 << 16, max_message=size) as tx:
        tx.wait_for_peer(timeout=10)
        for i in range(n):
            tx.send(stamp.write(size, i))


def _consume(name, n, q):
    with shmlane.ByteReceiver.connect(name, timeout=10) as rx:
        got = 0
        for msg in rx:
            assert stamp.check(msg) == got
            got += 1
        q.put(got)


@pytest.mark.parametrize("size", [8, 64, 4096])
def test_python_children_exchange_checked_messages(name, size):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    c = ctx.Process(target=_consume, args=(name, N, q))
    p = ctx.Process(target=_produce, args=(name, N, size))
    c.start()
    p.start()
    p.join(60)
    c.join(60)
    assert p.exitcode == 0 and c.exitcode == 0
    assert q.get(timeout=1) == N


def test_rust_producer_to_python(name, rust_examples):
    prod = subprocess.Popen([str(rust_examples / "producer"), "--name", name, "--count", str(N), "--size", "64"])
    with shmlane.ByteReceiver.connect(name, timeout=10) as rx:
        got = 0
        for msg in rx:
            assert stamp.check(msg) == got
            got += 1
    assert prod.wait(30) == 0
    assert got == N


def test_python_to_rust_consumer(name, rust_examples):
    cons = subprocess.Popen(
        [str(rust_examples / "consumer"), "--name", name, "--count", str(N)], stdout=subprocess.PIPE, text=True
    )
    _produce(name, N, 48)
    out, _ = cons.communicate(timeout=30)
    assert cons.returncode == 0, out
    assert f"received {N} messages" in out and " 0 errors" in out


def test_python_zero_copy_reads_from_rust(name, rust_examples):
    prod = subprocess.Popen([str(rust_examples / "producer"), "--name", name, "--count", "20000", "--size", "1024"])
    with shmlane.ByteReceiver.connect(name, timeout=10) as rx:
        for i in range(20000):
            with rx.read(timeout=10) as view:
                assert stamp.check(view) == i
    assert prod.wait(30) == 0


def test_a_killed_producer_raises_peer_gone(name, rust_examples):
    prod = subprocess.Popen(
        [str(rust_examples / "producer"), "--name", name, "--count", "0", "--rate", "100"], stdout=subprocess.DEVNULL
    )
    with shmlane.ByteReceiver.connect(name, timeout=10) as rx:
        rx.recv(timeout=10)
        prod.kill()
        prod.wait()
        start = time.monotonic()
        with pytest.raises(shmlane.PeerGone):
            while True:
                rx.recv(timeout=5)
        assert time.monotonic() - start < 2


def test_a_killed_producer_ends_a_waiting_recv_into_with_peer_gone(name, rust_examples):
    # recv_into waits with the bridge's peer checks, as recv does: not until its timeout.
    prod = subprocess.Popen(
        [str(rust_examples / "producer"), "--name", name, "--count", "0", "--rate", "100"], stdout=subprocess.DEVNULL
    )
    buf = bytearray(64)
    with shmlane.ByteReceiver.connect(name, timeout=10) as rx:
        rx.recv_into(buf, timeout=10)
        prod.kill()
        prod.wait()
        start = time.monotonic()
        with pytest.raises(shmlane.PeerGone):
            while True:
                rx.recv_into(buf, timeout=5)
        assert time.monotonic() - start < 2


def test_ctrl_c_interrupts_a_blocked_receive(name):
    code = textwrap.dedent(
        f"""
        import shmlane, signal, sys
        # Python keeps SIGINT ignored if it started ignored (a background job of a shell
        # without job control, as some CI launchers are): restore Ctrl-C's usual handler.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tx = shmlane.ByteSender.create({name!r})
        rx = shmlane.ByteReceiver.connect({name!r}, timeout=1)
        print("waiting", flush=True)
        try:
            rx.recv()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(0)
        sys.exit(1)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.2)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=5)
    assert child.returncode == 0 and "interrupted" in out
    assert time.monotonic() - sent < 1.0
