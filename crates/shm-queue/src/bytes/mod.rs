//! A single-producer single-consumer ring of variable-length byte messages in shared memory.
//!
//! # Algorithm
//!
//! The data area is `C` bytes (a power of two) addressed by `u64` byte positions that never
//! wrap; position `p` lives at offset `p mod C`. Each message is a *record*: an 8-byte header
//! word followed by the payload, padded to a multiple of 8 so the next header is aligned:
//!
//! ```text
//! | header: len (u32) | kind (u16) | 0x5a1e (u16) | payload ... | pad to 8 | next header ...
//! ```
//!
//! A record never wraps around the end of the area: when the next one does not fit, the
//! producer first writes a *padding* record that covers the rest of the area, and the
//! message starts again at offset 0. So every message is contiguous and can be read or
//! written in place.
//!
//! - **Send.** The producer owns `tail`. To append a record of `n` bytes it needs `n + 8`
//!   free bytes (`tail + n + 8 <= head + C`): the extra 8 are for a zero *terminator* it
//!   stores at the record's end, where the next header will go. It writes the terminator,
//!   then the payload, then the header word with `Release`. The header is the record's
//!   commit: the consumer acts on nothing else.
//! - **Receive.** The consumer owns `head` and polls the header word at `head` with
//!   `Acquire`. Zero means nothing yet; anything else is a record whose payload is complete.
//!   After reading it stores its new `head` with `Release` on its own 128-byte line, which
//!   frees the space; the producer reloads `head` only when its cached copy says the ring is
//!   full.
//!
//! Invariant: the header word at `head` is either zero or the header of a record committed
//! after the consumer consumed everything before `head`. The terminator keeps it so: the
//! bytes at a record's end are zeroed before the record is published, so the word the
//! consumer moves to next is never a stale header or stale payload from an earlier lap. One
//! cache line carries both the readiness and (for small messages) the payload, so a message
//! costs one line transfer, as in the [`crate::spsc`] ring.
//!
//! # A hostile peer
//!
//! Every header word is validated: an unknown kind or tag, a length above the ring's maximum
//! message size or running past the end of the area, or a padding record of the wrong size is
//! [`Error::Corrupted`]. The producer checks the consumer's `head` against its own `tail`.
//! Offsets are always computed from positions this side owns, masked to the area, so a
//! garbage word can only make us read garbage bytes inside the ring. Payload bytes are copied
//! out of shared memory; a zero-copy [`ReadGuard`] offers copies and an `unsafe` slice view.
//!
//! # Example
//!
//! ```
//! use shm_queue::bytes::Ring;
//! use shm_region::Region;
//!
//! let region = Region::anonymous(Ring::required_bytes(4096)?)?;
//! let ring = Ring::create(region, 4096, 1024)?;
//! let (mut tx, mut rx) = ring.split()?;
//!
//! tx.try_push(b"hello")?;
//! let mut claim = tx.claim(5)?; // zero-copy: write in place, then commit
//! claim.write_at(0, b"world")?;
//! claim.commit();
//!
//! let mut buf = [0u8; 1024];
//! let n = rx.try_pop(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! let msg = rx.read()?; // zero-copy read; the space is released when `msg` drops
//! assert_eq!(msg.to_vec(), b"world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use crate::error::{corrupted, Error, TryError, Word};
use crate::header::{Geometry, Header, RingKind, MAX_POSITION};
use crate::sync::claim::{self, Role};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::wait::blocking::{block_on, handle_controls};
use crate::wait::pending;
use crate::wait::{ReadinessFd, WaitStrategy};
use std::time::Instant;

use crate::header::HEADER_SIZE;
use crate::mem::{Loc, Mem};
#[cfg(not(loom))]
use {crate::mem::header_of, shm_region::Region};

mod consumer;
mod producer;
mod record;
mod ring;
mod storage;

pub use consumer::{Consumer, ReadGuard};
pub use producer::{Producer, WriteClaim};
use record::{decode, encode, record_size, Record, KIND_MESSAGE, KIND_PADDING, RECORD_HEADER};
pub use ring::{Options, Ring};
use storage::ByteStorage;

pub use ring::{max_message_for, MAX_CAPACITY, MIN_CAPACITY};

/// Checks the shared positions; returns `(head, tail)` as recorded.
///
/// The `tail` word is stored after each record is committed, so it may lag `head` by one
/// record if the consumer is quick or the producer died in between; anything beyond one
/// lap either way is impossible.
pub(crate) fn check_positions(header: &Header, cap: usize) -> Result<(u64, u64), TryError> {
    let head = header.consumer.pos.load(Ordering::Acquire);
    if head > MAX_POSITION {
        return Err(corrupted(Word::Head, head));
    }
    let tail = header.producer.pos.load(Ordering::Acquire);
    let (min, max) = (head.saturating_sub(cap as u64), head + cap as u64);
    if tail < min || tail > max {
        return Err(corrupted(Word::Tail, tail));
    }
    // Records are 8-byte aligned, so both positions are too; an unaligned one would leave
    // less than a record header before the end of the area (found by fuzzing).
    let align = RECORD_HEADER as u64;
    if !head.is_multiple_of(align) {
        return Err(corrupted(Word::HeadAlignment, head));
    }
    if !tail.is_multiple_of(align) {
        return Err(corrupted(Word::TailAlignment, tail));
    }
    Ok((head, tail))
}
