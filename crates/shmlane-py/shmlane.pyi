"""Shared-memory message channels between processes on one Linux host (shmlane's byte channels)."""

from types import TracebackType
from typing import Iterable, Iterator, List, Literal, Optional, Type

from typing_extensions import Buffer

Wait = Literal["yield", "spin", "block"]

class Error(Exception):
    """Base class of every shmlane error; the message is the Rust error's."""

class Closed(Error):
    """The other side closed the channel (a receiver sees this after the last message)."""

class PeerGone(Error):
    """The other side's process died."""

class PeerHung(Error):
    """The other side's process is alive but its heartbeat stopped (stopped or hung)."""

class Timeout(Error):
    """The timeout passed first."""

class WouldBlock(Error):
    """A non-blocking call (timeout=0) found the channel full or empty."""

class MessageTooLarge(Error):
    """The message is larger than the channel's largest message."""

class BufferTooSmall(Error):
    """The buffer is shorter than the message (which stays in the channel)."""

class Corrupt(Error):
    """The shared memory holds impossible values, or is not a channel of this kind."""

class Truncated(Error):
    """Another process truncated the channel's file."""

class ByteSender:
    """The sending end of a byte channel; closes the channel when its `with` block ends."""

    @staticmethod
    def create(
        name: str,
        *,
        capacity: Optional[int] = None,
        max_message: Optional[int] = None,
        wait: Wait = "yield",
        mode: int = 0o600,
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "ByteSender":
        """Creates channel `name` (/dev/shm/shmlane.NAME), replacing one left by dead processes."""
    def wait_for_peer(self, timeout: Optional[float] = None) -> None:
        """Waits up to `timeout` seconds (None: no limit) for a receiver to connect."""
    def send(self, data: Buffer, *, timeout: Optional[float] = None) -> None:
        """Sends `data` as one message; waits for room up to `timeout` s (0: raise WouldBlock)."""
    def send_many(self, messages: Iterable[Buffer], *, timeout: Optional[float] = None) -> int:
        """Sends each item as one message, in order (one Python call for many); returns the count."""
    def close(self) -> None:
        """Closes the channel: the receiver gets what was sent, then Closed."""
    @property
    def max_message(self) -> int: ...
    @property
    def name(self) -> str: ...
    def __enter__(self) -> "ByteSender": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Message:
    """A message read in place; `with` gives a read-only memoryview valid inside the block."""

    def __len__(self) -> int: ...
    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def release(self) -> None:
        """Releases the message now (what leaving the `with` block does)."""
    def tobytes(self) -> bytes:
        """A copy of the message."""
    def __buffer__(self, flags: int) -> memoryview: ...

class ByteReceiver:
    """The receiving end of a byte channel; iterating yields messages until the sender closes."""

    @staticmethod
    def connect(
        name: str,
        *,
        timeout: float = 10.0,
        wait: Wait = "yield",
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "ByteReceiver":
        """Connects to channel `name`, waiting up to `timeout` seconds for it to appear."""
    def recv(self, *, timeout: Optional[float] = None) -> bytes:
        """The next message; waits up to `timeout` s (None: no limit; 0: raise WouldBlock)."""
    def recv_many(self, max: int, *, timeout: Optional[float] = None) -> List[bytes]:
        """Up to `max` messages: waits for the first (as recv), then takes what is already there."""
    def recv_into(self, buffer: Buffer, *, timeout: Optional[float] = None) -> int:
        """Receives the next message into a writable buffer; returns its length."""
    def read(self, *, timeout: Optional[float] = None) -> Message:
        """The next message in place (zero-copy), held until its `with` block ends."""
    def close(self) -> None:
        """Closes the channel: the sender's next send raises Closed."""
    @property
    def max_message(self) -> int: ...
    @property
    def name(self) -> str: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def __enter__(self) -> "ByteReceiver": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
