"""Byte channels from Python: every buffer type in, bytes out, zero-copy reads that cannot
outlive their block, and each error as its exception."""

import os
import time

import numpy as np
import pytest

import shmlane


def pair(name, **kw):
    tx = shmlane.ByteSender.create(name, capacity=kw.pop("capacity", 4096), max_message=kw.pop("max_message", 100), **kw)
    rx = shmlane.ByteReceiver.connect(name, timeout=1)
    return tx, rx


def test_any_buffer_goes_in_and_bytes_come_out(name):
    tx, rx = pair(name)
    with tx, rx:
        for data in [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"), np.arange(5, dtype=np.uint32), b""]:
            tx.send(data)
            got = rx.recv()
            assert isinstance(got, bytes)
            assert got == bytes(memoryview(data).cast("B"))
        tx.send(b"into")
        buf = bytearray(8)
        assert rx.recv_into(buf) == 4 and buf[:4] == b"into"
        arr = np.zeros(8, dtype=np.uint8)
        tx.send(b"numpy")
        assert rx.recv_into(arr) == 5 and arr[:5].tobytes() == b"numpy"
        assert tx.max_message == rx.max_message == 100
        assert tx.name == rx.name == name


def test_errors_are_exceptions_with_the_rust_message(name):
    tx, rx = pair(name)
    with tx, rx:
        with pytest.raises(shmlane.WouldBlock):
            rx.recv(timeout=0)
        with pytest.raises(shmlane.Timeout, match=name):
            rx.recv(timeout=0.02)
        with pytest.raises(shmlane.Timeout):
            rx.recv_into(bytearray(4), timeout=0.02)
        with pytest.raises(shmlane.MessageTooLarge):
            tx.send(bytes(101))
        tx.send(b"0123456789")
        with pytest.raises(shmlane.BufferTooSmall):
            rx.recv_into(bytearray(4))
        assert rx.recv() == b"0123456789"  # it stayed in the channel
        with pytest.raises(BufferError):
            rx.recv_into(b"read-only")
        with pytest.raises(ValueError):
            rx.recv(timeout=-1)
        for _ in range(100):
            try:
                tx.send(bytes(64), timeout=0)
            except shmlane.WouldBlock:
                break
        else:
            pytest.fail("a 4 KiB channel took 100 messages of 64 B")
        with pytest.raises(shmlane.Timeout):
            tx.send(bytes(64), timeout=0.02)
        assert issubclass(shmlane.Closed, shmlane.Error)
    # Leaving the `with` blocks closed both ends.


def test_close_delivers_what_was_sent_then_closed(name):
    tx, rx = pair(name)
    with rx:
        with tx:
            for i in range(10):
                tx.send(i.to_bytes(4, "little"))
        assert [int.from_bytes(m, "little") for m in rx] == list(range(10))
        with pytest.raises(shmlane.Closed):
            rx.recv()


def test_receiver_close_stops_the_sender(name):
    tx, rx = pair(name)
    with tx:
        rx.close()
        # The sender looks at the other side every 64 operations at most every 5 ms (and
        # whenever the ring is full), so a closed receiver is seen within milliseconds.
        deadline = time.monotonic() + 2
        with pytest.raises(shmlane.Closed):
            while time.monotonic() < deadline:
                tx.send(b"x")
                time.sleep(0.0001)
    del rx


def test_zero_copy_read_is_valid_inside_its_block_only(name):
    tx, rx = pair(name)
    with tx, rx:
        tx.send(b"in place")
        with rx.read() as view:
            assert view.readonly
            assert bytes(view) == b"in place"
            arr = np.frombuffer(view, dtype=np.uint8)
            assert arr.tobytes() == b"in place"
            del arr
        with pytest.raises(ValueError):
            view[0]  # the memoryview was released with the block
        # A view that escapes the block keeps the message held (never reused under it).
        tx.send(b"escapes")
        msg = rx.read()
        with pytest.raises(BufferError):
            with msg as view:
                part = view[1:3]
        with pytest.raises(BufferError):
            rx.recv(timeout=0)
        assert bytes(part) == b"sc"
        del part
        msg.release()
        with pytest.raises(BufferError):
            memoryview(msg)
        with pytest.raises(shmlane.WouldBlock):
            rx.read(timeout=0)
        tx.send(b"copy")
        m = rx.read()
        assert len(m) == 4 and m.tobytes() == b"copy"
        m.release()
        m.release()  # twice is fine


def test_bad_input_is_refused(name):
    with pytest.raises(ValueError, match="invalid channel name"):
        shmlane.ByteSender.create("no/slash")
    with pytest.raises(ValueError, match="wait="):
        shmlane.ByteSender.create(name, wait="sometimes")
    with pytest.raises(shmlane.Timeout):
        shmlane.ByteReceiver.connect(name, timeout=0.05)
    # A file under the prefix that is not a channel.
    path = f"/dev/shm/shmlane.{name}"
    with open(path, "wb") as f:
        f.write(os.urandom(8192))
    try:
        with pytest.raises(shmlane.Error):
            shmlane.ByteReceiver.connect(name, timeout=0.2)
    finally:
        os.unlink(path)
    # A second sender while the first lives.
    with shmlane.ByteSender.create(name):
        with pytest.raises(shmlane.Error):
            shmlane.ByteSender.create(name)


def test_batches_go_in_order_and_stop_at_what_is_there(name):
    tx, rx = pair(name, capacity=1 << 16)
    with tx, rx:
        assert tx.send_many([b"a", bytearray(b"bb"), memoryview(b"ccc")]) == 3
        assert tx.send_many(i.to_bytes(2, "little") for i in range(100)) == 100
        assert rx.recv_many(2) == [b"a", b"bb"]
        rest = rx.recv_many(1000, timeout=1)
        assert rest[0] == b"ccc" and [int.from_bytes(m, "little") for m in rest[1:]] == list(range(100))
        assert rx.recv_many(0) == []
        with pytest.raises(shmlane.WouldBlock):
            rx.recv_many(10, timeout=0)
        with pytest.raises(shmlane.MessageTooLarge, match="after 1 messages of send_many"):
            tx.send_many([b"ok", bytes(200)])
        assert rx.recv_many(10) == [b"ok"]
        tx.close()
        with pytest.raises(shmlane.Closed):
            rx.recv_many(10)
