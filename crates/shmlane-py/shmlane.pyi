"""Shared-memory message channels between processes on one Linux host: byte channels, and typed
and MPMC channels of fixed-size elements described by a numpy dtype."""

from types import TracebackType
from typing import Any, Iterable, Iterator, List, Literal, Optional, Type

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

class WrongType(Corrupt):
    """The channel is of another kind, or carries another element type (name, size or
    alignment) than asked for."""

class Lost(Error):
    """A broadcast receiver lost messages (overtaken on a lossy channel, or evicted from a
    lossless one); the message says how many, and the next call goes on."""

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
    @staticmethod
    def create_broadcast(
        name: str,
        *,
        capacity: Optional[int] = None,
        max_message: Optional[int] = None,
        subscribers: int = 8,
        lossy: bool = False,
        evict_after: Optional[float] = None,
        wait: Wait = "yield",
        mode: int = 0o600,
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "ByteSender":
        """Creates byte-message broadcast channel `name` for up to `subscribers` receivers;
        `capacity` counts messages (default 1024) of up to `max_message` bytes (default 1024).
        Lossless unless `lossy`; `evict_after` seconds evicts a receiver that holds it up."""
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
    @staticmethod
    def connect_broadcast(
        name: str,
        *,
        history: int = 0,
        timeout: float = 10.0,
        wait: Wait = "yield",
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "ByteReceiver":
        """Joins byte-message broadcast channel `name` as a new receiver (with up to `history`
        earlier messages); a receive raises Lost once per loss, then goes on."""
    @property
    def missed(self) -> int:
        """Messages a broadcast receiver lost since it connected (0 for a byte channel)."""
    def recv(self, *, timeout: Optional[float] = None) -> bytes:
        """The next message; waits up to `timeout` s (None: no limit; 0: raise WouldBlock)."""
    def recv_many(self, max: int, *, timeout: Optional[float] = None) -> List[bytes]:
        """Up to `max` messages: waits for the first (as recv), then takes what is already there."""
    def recv_into(self, buffer: Buffer, *, timeout: Optional[float] = None) -> int:
        """Receives the next message into a writable buffer; returns its length."""
    def read(self, *, timeout: Optional[float] = None) -> Message:
        """The next message in place (zero-copy), held until its `with` block ends. On a lossy
        or evicting broadcast channel, leaving the block raises Lost if the sender overwrote
        the message meanwhile: discard what was read of it."""
    def close(self) -> None:
        """Closes the channel: the sender's next send raises Closed (a broadcast receiver
        closes nothing; leaving its `with` block leaves the channel)."""
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


# numpy is needed for the typed classes only (imported when one is made).
DTypeLike = Any
Items = Any  # one element (tuple, numpy scalar), a sequence or array of them, or bytes of whole elements

class TypedSender:
    """The sending end of a typed (single-producer) or MPMC channel of numpy elements.

    All ends of a channel name the element the same way: `type_name` (default "numpy:" and
    the dtype's descr); use an agreed name such as "myapp.Tick/1" to pair with Rust or C. A
    structured dtype that mirrors a C struct needs `align=True`."""

    @staticmethod
    def create(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        capacity: Optional[int] = None,
        wait: Wait = "yield",
        mode: int = 0o600,
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedSender":
        """Creates typed channel `name`; `capacity` counts elements (default 1024)."""
    @staticmethod
    def create_mpmc(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        capacity: Optional[int] = None,
        participants: int = 16,
        wait: Wait = "yield",
        mode: int = 0o600,
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedSender":
        """Creates MPMC channel `name` with `participants` slots (senders and receivers, 2 to 60)."""
    @staticmethod
    def join_mpmc(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        timeout: float = 10.0,
        wait: Wait = "yield",
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedSender":
        """Joins MPMC channel `name` as another sender."""
    @staticmethod
    def create_broadcast(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        capacity: Optional[int] = None,
        subscribers: int = 8,
        lossy: bool = False,
        evict_after: Optional[float] = None,
        wait: Wait = "yield",
        mode: int = 0o600,
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedSender":
        """Creates broadcast channel `name` for up to `subscribers` receivers (1 to 59), each
        getting every element; lossless unless `lossy` (then a receiver that falls a ring
        behind raises Lost once); `evict_after` seconds evicts a receiver holding a lossless
        channel up."""
    def wait_for_peer(self, timeout: Optional[float] = None) -> None:
        """Waits up to `timeout` seconds (None: no limit) for a receiver."""
    def send(self, items: Items, *, timeout: Optional[float] = None) -> int:
        """Sends `items` in order; returns how many. timeout=0 sends what fits now (WouldBlock if
        nothing did); an array of another dtype raises TypeError (no silent cast)."""
    def close(self) -> None:
        """Closes the channel (an MPMC one for everyone)."""
    @property
    def dtype(self) -> Any: ...
    @property
    def type_name(self) -> str: ...
    @property
    def name(self) -> str: ...
    def __enter__(self) -> "TypedSender": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        """Drops this end: closes a typed channel, leaves an MPMC one."""

class TypedReceiver:
    """The receiving end of a typed or MPMC channel of numpy elements; iterating yields
    elements until the channel is closed."""

    @staticmethod
    def connect(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        timeout: float = 10.0,
        wait: Wait = "yield",
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedReceiver":
        """Connects to typed channel `name` as its receiver."""
    @staticmethod
    def connect_mpmc(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        timeout: float = 10.0,
        wait: Wait = "yield",
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedReceiver":
        """Joins MPMC channel `name` as a receiver."""
    @staticmethod
    def connect_broadcast(
        name: str,
        dtype: DTypeLike,
        *,
        type_name: Optional[str] = None,
        history: int = 0,
        timeout: float = 10.0,
        wait: Wait = "yield",
        allow_foreign_owner: bool = False,
        allow_shared_write: bool = False,
    ) -> "TypedReceiver":
        """Connects to broadcast channel `name` as a new receiver (from the next element sent,
        or with up to `history` earlier ones); a receive raises Lost once per loss."""
    @property
    def missed(self) -> int:
        """Messages a broadcast receiver lost since it connected (0 for other kinds)."""
    def recv_batch(self, max: int, *, timeout: Optional[float] = None) -> Any:
        """A numpy array of 1 to `max` elements: waits up to `timeout` s for the first
        (None: no limit; 0: raise WouldBlock), then takes what is ready."""
    def recv(self, *, timeout: Optional[float] = None) -> Any:
        """One element (a numpy scalar of the dtype)."""
    def recv_into(self, array: Buffer, *, timeout: Optional[float] = None) -> int:
        """Fills a writable C-contiguous array of the dtype; returns how many elements."""
    def close(self) -> None:
        """Closes the channel (an MPMC one for everyone)."""
    @property
    def dtype(self) -> Any: ...
    @property
    def type_name(self) -> str: ...
    @property
    def name(self) -> str: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __next__(self) -> Any: ...
    def __enter__(self) -> "TypedReceiver": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        """Drops this end: closes a typed channel, leaves an MPMC one."""
