//! A single-producer single-consumer ring of fixed-size `Pod` elements in shared memory.
//!
//! # Algorithm
//!
//! Elements are counted by `u64` positions that start at 0 and never wrap. The producer owns
//! `tail` (everything before it is written), the consumer owns `head` (everything before it
//! is consumed). Position `p` lives in block `(p / E) mod B`, slot `p mod E`, where `B` (a
//! power of two) is the number of blocks and `E` the elements per block. The capacity is
//! `B * E`, which need not be a power of two.
//!
//! Each block is one 64-byte cache line (or several, for elements over 56 bytes) that starts
//! with an 8-byte *published position* word `P`, followed by as many elements as fit:
//!
//! ```text
//! block b:  | P (u64) | e0 | e1 | ... | e(E-1) | pad |     64 bytes for E * size <= 56
//! ```
//!
//! - **Push.** The producer writes one element, or a whole batch, into the slots after
//!   `tail`, then stores the new `tail` with `Release` into `P` of every block the batch
//!   touched (last block first). A batch also stores it into the `tail` word of the header;
//!   single pushes do that only when they leave a block, so the word lags the real `tail` by
//!   less than a block (it is informative: `len()`, attach and recovery take the block words
//!   into account). It checks space
//!   against its cached copy of `head` and reloads the shared `head` (with `Acquire`) only when
//!   that cache says the ring is full.
//! - **Pop.** The consumer at position `h` loads `P` of the block holding `h` with `Acquire`.
//!   Any value `P > h` proves every position below `P` has been written, so it caches `P` and
//!   reads up to it without touching shared state again. Then it stores its new `head` with
//!   `Release` on its own 128-byte line, which frees the slots.
//!
//! Invariant: every value ever stored in a `P` word or the `tail` word is a position `t` such
//! that all positions below `t` were written before the store, and `t <= head + capacity` at
//! the time of the store. So `P > h` means position `h` is ready and has not been overwritten
//! by the next lap (that would need `head > h`). And since every batch stores into every block
//! it touched, the block holding the first unread position always learns of it.
//!
//! # Why this layout
//!
//! A consumer that polls a shared `tail` index and then loads the slot moves two cache lines
//! per message in series; one that polls a word in the payload's own line moves one, which
//! halves latency. A per-slot sequence word costs a store per element and a word of space per
//! slot, which hurts batches; one word per 64-byte block costs one store per line, a line the
//! producer is writing anyway, and a batch of any size is still published by one position
//! value. `docs/layout.md` has the byte map and the measurements behind this.
//!
//! # A hostile peer
//!
//! Every position read from shared memory is checked before use: a `P` or `tail` beyond
//! `head + capacity`, or a `head` beyond `tail`, is reported as [`Error::Corrupted`]. Slot
//! addresses are always computed from positions this side owns, masked to the ring, so a
//! garbage word can only ever make us read garbage elements inside the ring. Elements are
//! copied out of shared memory and never exposed as references, so their bytes cannot change
//! after the caller has looked at them.
//!
//! # Example
//!
//! ```
//! use shm_queue::spsc::Ring;
//! use shm_region::Region;
//!
//! let region = Region::anonymous(Ring::<u64>::required_bytes(1000)?)?;
//! let ring = Ring::<u64>::create(region, 1000)?;
//! let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
//!
//! tx.try_push(1)?;
//! tx.push_entire_slice(&[2, 3, 4])?;
//! assert_eq!(rx.try_pop()?, 1);
//! let mut buf = [0u64; 8];
//! assert_eq!(rx.pop_partial_slice(&mut buf)?, 3);
//! assert_eq!(&buf[..3], &[2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::ops::Range;

use bytemuck::Pod;

use crate::element::{Element, ElementType};
pub(crate) use raw::{room_for, whole_elements};

use crate::error::{corrupted, Error, TryError, Word};
use crate::header::{BlockShape, Geometry, Header, RingKind, MAX_POSITION};
use crate::sync::claim::{self, Role};
use crate::sync::{Arc, Ordering};
use crate::wait::blocking::handle_controls;
use crate::wait::{ReadinessFd, WaitStrategy};
use storage::{Block, Storage};

#[cfg(not(loom))]
use {crate::mem::header_of, shm_region::Region};

mod chunk;
mod consumer;
mod producer;
mod raw;
mod ring;
pub(crate) mod storage;

pub use chunk::{ChunkIter, ReadChunk, WriteChunk};
pub use consumer::Consumer;
pub use producer::Producer;
pub use ring::{Options, Ring};

/// Checks the shared positions against each other and the capacity; returns `(head, tail)`.
pub(crate) fn check_positions(header: &Header, g: &Geometry) -> Result<(u64, u64), TryError> {
    let cap = g.capacity() as u64;
    let head = header.consumer.pos.load(Ordering::Acquire);
    if head > MAX_POSITION {
        return Err(corrupted(Word::Head, head));
    }
    let tail = header.producer.pos.load(Ordering::Acquire);
    // The tail word may lag `head` by up to one batch if a producer died mid-publish.
    let (min, max) = (head.saturating_sub(cap), head + cap);
    if tail < min || tail > max {
        return Err(corrupted(Word::Tail, tail));
    }
    Ok((head, tail))
}

/// A position as (block, index in block), advanced incrementally so the hot path never
/// divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Block number, always below `block_count`.
    pub(crate) block: usize,
    /// Index in the block, always below `elems_per_block`.
    pub(crate) index: usize,
}

impl Cursor {
    /// The cursor of absolute position `pos` (divides: not for the hot path).
    #[inline]
    pub(crate) fn of(pos: u64, g: &Geometry) -> Cursor {
        let e = g.elems_per_block as u64;
        Cursor {
            block: ((pos / e) as usize) & (g.block_count - 1),
            index: (pos % e) as usize,
        }
    }

    /// Advances by `k <= elems_per_block - index`, i.e. never past the end of this block.
    #[inline]
    pub(crate) fn step(&mut self, k: usize, g: &Geometry) {
        self.index += k;
        if self.index >= g.elems_per_block {
            self.index = 0;
            self.block = (self.block + 1) & (g.block_count - 1);
        }
    }

    /// The cursor `n` positions further on (divides: used once per batch).
    #[inline]
    pub(crate) fn offset(self, n: usize, g: &Geometry) -> Cursor {
        if n == 0 {
            return self;
        }
        let t = self.index + n;
        Cursor {
            block: (self.block + t / g.elems_per_block) & (g.block_count - 1),
            index: t % g.elems_per_block,
        }
    }
}

/// Calls `f(block, index, range)` for each run of consecutive slots in one block that make
/// up the `n` positions starting at `c`; `range` is the run's place within those `n`.
#[inline]
pub(crate) fn runs(
    mut c: Cursor,
    n: usize,
    g: &Geometry,
    mut f: impl FnMut(usize, usize, Range<usize>),
) {
    let mut done = 0;
    while done < n {
        let len = (n - done).min(g.elems_per_block - c.index);
        f(c.block, c.index, done..done + len);
        done += len;
        c.step(len, g);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn geom(blocks: usize, epb: usize) -> Geometry {
        let mut g = Geometry::for_capacity(
            crate::header::BlockShape::of_element(&crate::ElementType::of::<u64>()).unwrap(),
            1,
        )
        .unwrap();
        g.block_count = blocks;
        g.elems_per_block = epb;
        g
    }

    #[test]
    fn cursor_arithmetic_matches_division() {
        for (blocks, epb) in [(1, 1), (1, 7), (2, 1), (4, 3), (8, 7), (16, 56)] {
            let g = geom(blocks, epb);
            let mut c = Cursor::of(0, &g);
            for pos in 0..(3 * blocks * epb) as u64 + 5 {
                assert_eq!(
                    c,
                    Cursor::of(pos, &g),
                    "pos {pos} blocks {blocks} epb {epb}"
                );
                for n in [
                    0usize,
                    1,
                    2,
                    epb,
                    epb + 1,
                    blocks * epb,
                    2 * blocks * epb + 3,
                ] {
                    assert_eq!(c.offset(n, &g), Cursor::of(pos + n as u64, &g));
                }
                c.step(1, &g);
            }
        }
    }

    #[test]
    fn runs_cover_exactly_and_stay_in_blocks() {
        let g = geom(4, 3);
        for start in 0..15u64 {
            for n in 0..20usize {
                let mut seen = Vec::new();
                runs(Cursor::of(start, &g), n, &g, |block, index, range| {
                    assert!(index + range.len() <= 3 && block < 4 && !range.is_empty());
                    for (k, r) in range.enumerate() {
                        seen.push((
                            r,
                            Cursor {
                                block,
                                index: index + k,
                            },
                        ));
                    }
                });
                let want: Vec<_> = (0..n)
                    .map(|r| (r, Cursor::of(start + r as u64, &g)))
                    .collect();
                assert_eq!(seen, want);
            }
        }
    }
}
