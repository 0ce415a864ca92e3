//! [`Subscriber`]: one reading side of a broadcast ring.

use std::time::Instant;

use super::ring::{register, Joined};
use super::*;
use crate::element::Raw;
use crate::spsc::storage::{Block, Storage};
use crate::spsc::{runs, Cursor};
use crate::sync::{fence, Arc};
use crate::wait::{Sleeper, WaitStrategy};

mod messages;
pub use messages::MessageGuard;

/// One reading side of a broadcast ring: reads every element published after it joined, at
/// its own pace. Any number may exist, up to the ring's subscriber table
/// ([`Ring::max_subscribers`]).
///
/// Made by [`Ring::subscriber`]; frees its table entry when dropped.
pub struct Subscriber<T: Element> {
    mem: Arc<Bcast<T>>,
    geom: Geometry,
    cap: u64,
    index: usize,
    token: u64,
    /// The next position to read.
    head: u64,
    cursor: Cursor,
    blk: Block,
    /// Every position below it was published (from a block word).
    known: u64,
    /// The publisher's position when this subscriber (last) joined.
    joined_at: u64,
    /// The highest horizon seen while handling an overtaking (it never decreases).
    seen_horizon: u64,
    missed: u64,
    history_lost: u64,
    lossless: bool,
    /// The ring may evict: check the entry's state on every call.
    evictable: bool,
    strategy: WaitStrategy,
    sleeper: Sleeper,
    /// `sleeper` is recorded in an entry we hold (so a reclaimer would take it back).
    sleep_recorded: bool,
    /// A loss found when a [`MessageGuard`] was dropped unreleased: the next message call
    /// returns it.
    pending: Option<TryError>,
}

impl<T: Element> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Subscriber")
            .field("index", &self.index)
            .field("position", &self.head)
            .field("missed", &self.missed)
            .field("history_lost", &self.history_lost)
            .finish()
    }
}

impl<T: Element> Drop for Subscriber<T> {
    fn drop(&mut self) {
        // If a peer freed our entry (judging us dead), it took back the sleeper counts the
        // entry recorded, and `sleeper` holds only what we registered since we noticed.
        if !self.mem.free_entry(self.index, self.token, false) {
            self.forget_registration();
        }
        self.mem
            .header()
            .data_signal()
            .unregister(&mut self.sleeper);
        if self.lossless {
            self.mem.header().notify_space();
        }
    }
}

impl<T: Element> Subscriber<T> {
    pub(super) fn new(mem: Arc<Bcast<T>>, index: usize, token: u64, joined: Joined) -> Self {
        let geom = mem.layout.geom;
        let cursor = joined.cursor(&geom);
        let mode = mem.layout.mode;
        Subscriber {
            blk: mem.storage.block(cursor.block),
            cap: geom.capacity() as u64,
            geom,
            index,
            token,
            head: joined.start,
            cursor,
            known: joined.start,
            joined_at: joined.joined_at,
            seen_horizon: 0,
            missed: 0,
            history_lost: 0,
            lossless: mode.is_lossless(),
            evictable: matches!(mode, Mode::Lossless(SlowPolicy::Evict { .. })),
            strategy: WaitStrategy::default(),
            sleeper: Sleeper::No,
            sleep_recorded: true,
            pending: None,
            mem,
        }
    }

    /// Our entry, if it is still ours: a peer that judged us dead may have freed it and
    /// another subscriber taken it (the token says; same line as the cursor, so no extra
    /// cache miss).
    #[inline(always)]
    fn entry(&self) -> Option<Entry<'_>> {
        self.mem
            .entry(self.index)
            .filter(|e| e.token.load(Ordering::Relaxed) == self.token)
    }

    /// Receives the next element.
    ///
    /// # Errors
    ///
    /// - [`TryError::Empty`] when this subscriber has read everything published;
    /// - [`TryError::Lagged`] (lossy) when the publisher overtook it: the count of elements
    ///   lost; the next call reads the oldest still intact;
    /// - [`TryError::Evicted`] (lossless with eviction, or when a peer freed its entry): the
    ///   count lost; the next call reads the newest;
    /// - [`TryError::SubscribersFull`] if its entry was freed by a peer and no other is free;
    /// - [`TryError::Corrupted`], [`TryError::Truncated`] for a broken ring.
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<T, TryError>
    where
        T: Pod,
    {
        if self.evictable {
            self.check_state()?;
        }
        let (value, horizon) = self.read_head()?;
        if horizon > self.head + self.cap {
            return self.recv_overtaken(horizon);
        }
        self.advance(1);
        self.mem.storage.check_intact()?;
        Ok(value)
    }

    /// Copies the element at `head` (after loading a block word if needed), then the
    /// horizon that validates it.
    #[inline(always)]
    fn read_head(&mut self) -> Result<(T, u64), TryError>
    where
        T: Pod,
    {
        if self.head == self.known {
            self.refresh()?;
        }
        // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block. The
        // copy may race the publisher; the horizon check below rejects what it garbled.
        let value = unsafe { self.mem.storage.read_racy_in(self.blk, self.cursor.index) };
        fence(Ordering::Acquire);
        Ok((value, self.mem.horizon().load(Ordering::Relaxed)))
    }

    /// Loads the block word of `head`: `Empty` unless it proves `head` was published.
    #[inline]
    fn refresh(&mut self) -> Result<(), TryError> {
        let h = self.head;
        // SAFETY: `blk` was made by this storage.
        let p = unsafe { self.mem.storage.word_in(self.blk) }.load(Ordering::Acquire);
        if p <= h {
            return Err(TryError::Empty {
                requested: 1,
                available: 0,
            });
        }
        if p > MAX_POSITION {
            return Err(corrupted(Word::BlockPosition, p));
        }
        self.known = p.min(h + self.cap);
        Ok(())
    }

    /// Moves past `n` validated elements and tells the publisher.
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        self.head += n as u64;
        let block = self.cursor.block;
        if n == 1 {
            self.cursor.step(1, &self.geom);
        } else {
            self.cursor = self.cursor.offset(n, &self.geom);
        }
        if self.cursor.block != block {
            self.blk = self.mem.storage.block(self.cursor.block);
        }
        if let Some(e) = self.entry() {
            // Release: our reads of everything below happen before the publisher, which
            // loads this with Acquire, overwrites any of it.
            e.cursor.store(self.head, Ordering::Release);
        }
        if self.lossless {
            self.mem.header().notify_space();
        }
    }

    /// Moves to `pos` (after a loss), telling the publisher.
    fn jump(&mut self, pos: u64) {
        self.head = pos;
        self.known = pos;
        self.cursor = Cursor::of(pos, &self.geom);
        self.blk = self.mem.storage.block(self.cursor.block);
        if let Some(e) = self.entry() {
            e.cursor.store(pos, Ordering::Release);
            e.missed.store(self.missed, Ordering::Relaxed);
        }
    }

    /// The eviction check: our entry must still be ours and live.
    #[inline(always)]
    fn check_state(&mut self) -> Result<(), TryError> {
        match self.entry() {
            Some(e) if e.state.load(Ordering::Acquire) == LIVE => Ok(()),
            _ => self.rejoin(),
        }
    }

    /// `try_recv` after the copy at `head` failed validation.
    #[cold]
    #[inline(never)]
    fn recv_overtaken(&mut self, mut horizon: u64) -> Result<T, TryError>
    where
        T: Pod,
    {
        loop {
            self.overtaken(horizon)?;
            let (value, h) = self.read_head()?;
            if h <= self.head + self.cap {
                self.advance(1);
                self.mem.storage.check_intact()?;
                return Ok(value);
            }
            horizon = h;
        }
    }

    /// The publisher overtook us (`horizon > head + cap`): everything below
    /// `horizon - cap` is lost, everything from there on intact. Moves there; returns the
    /// loss as an error, or `Ok` when only history from before we joined was lost (the
    /// caller reads on).
    #[cold]
    fn overtaken(&mut self, seen: u64) -> Result<(), TryError> {
        // Again with Acquire (read-read coherence: at least `seen`): the publisher's
        // `Release` store of it comes after any eviction or reclaim of our entry that made
        // it possible, so the state loaded below is at least that.
        let horizon = self.mem.horizon().load(Ordering::Acquire).max(seen);
        if horizon > MAX_POSITION || horizon < self.seen_horizon {
            return Err(corrupted(Word::Horizon, horizon));
        }
        self.seen_horizon = horizon;
        let live = self.entry().is_some_and(|e| {
            e.token.load(Ordering::Acquire) == self.token && e.state.load(Ordering::Acquire) == LIVE
        });
        if !live {
            return self.rejoin();
        }
        let h = self.head;
        let resume = horizon - self.cap;
        let history = self.joined_at.clamp(h, resume) - h;
        let lost = resume - h - history;
        if self.lossless && lost > 0 {
            // A live subscriber of a lossless ring is never overwritten past its join.
            return Err(corrupted(Word::Horizon, horizon));
        }
        self.history_lost += history;
        self.missed += lost;
        self.jump(resume);
        if lost > 0 {
            Err(TryError::Lagged { missed: lost })
        } else {
            Ok(())
        }
    }

    /// We were evicted, or our entry was freed by a peer: joins again (in a new entry if
    /// needed) at the newest element and returns the loss as [`TryError::Evicted`] (`Ok`
    /// if nothing was lost: we had read everything meanwhile).
    #[cold]
    fn rejoin(&mut self) -> Result<(), TryError> {
        let mem = self.mem.clone();
        let m = &*mem;
        let ours = m
            .entry(self.index)
            .is_some_and(|e| e.token.load(Ordering::Acquire) == self.token);
        if !ours {
            // The peer that freed the entry took back the counts it recorded.
            self.forget_registration();
            let found = (0..m.layout.subscribers).find(|&i| {
                m.entry(i).is_some_and(|e| {
                    e.token
                        .compare_exchange(0, self.token, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                })
            });
            let Some(i) = found else {
                return Err(TryError::SubscribersFull {
                    entries: m.layout.subscribers as u64,
                });
            };
            self.index = i;
            m.high_water().fetch_max(i as u64 + 1, Ordering::SeqCst);
            let strategy = self.strategy;
            self.set_wait_strategy(strategy);
        }
        let j = register(&self.mem, self.index, Start::Newest)?;
        // The `tail` loaded may lag the block words we already read past: never go back.
        let start = j.start.max(self.head);
        let lost = start - self.head;
        self.missed += lost;
        self.joined_at = j.joined_at.max(start);
        self.jump(start);
        if lost == 0 {
            return Ok(());
        }
        Err(TryError::Evicted { missed: lost })
    }

    /// Receives as many elements as are ready, up to `dst.len()`, validated once for the
    /// whole run; returns how many (0 when none is ready).
    ///
    /// # Errors
    ///
    /// As [`Subscriber::try_recv`], except that an empty ring gives `Ok(0)`.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn recv_partial_slice(&mut self, dst: &mut [T]) -> Result<usize, TryError>
    where
        T: Pod,
    {
        self.recv_with(dst.len(), |storage, blk, index, range| {
            // SAFETY: the run lies in one block (runs); racing writes are rejected by the
            // horizon check that follows.
            unsafe { storage.read_run_racy_in(blk, index, &mut dst[range]) }
        })
    }

    /// Copies up to `max` ready elements with `read(storage, block, index, range)`
    /// (`range`: the run's place among them), validates the whole run once and moves past
    /// it; returns how many (0 when none is ready).
    fn recv_with(
        &mut self,
        max: usize,
        mut read: impl FnMut(&Storage<T>, Block, usize, core::ops::Range<usize>),
    ) -> Result<usize, TryError> {
        if max == 0 {
            return Ok(0);
        }
        if self.evictable {
            self.check_state()?;
        }
        loop {
            let h = self.head;
            if ((self.known - h) as usize) < max {
                // The publisher's `tail` (stored after every push) says everything below it
                // is published: one load for a whole batch, in place of the block words.
                let tail = self.mem.header().producer.pos.load(Ordering::Acquire);
                if tail > MAX_POSITION {
                    return Err(corrupted(Word::Tail, tail));
                }
                self.known = self.known.max(tail.min(h + self.cap));
            }
            if h == self.known {
                return Ok(0);
            }
            let n = ((self.known - h) as usize).min(max);
            let storage = &self.mem.storage;
            runs(self.cursor, n, &self.geom, |block, index, range| {
                read(storage, storage.block(block), index, range)
            });
            fence(Ordering::Acquire);
            // The run is valid if its first element is: later ones are overwritten later.
            let horizon = self.mem.horizon().load(Ordering::Relaxed);
            if horizon <= h + self.cap {
                self.advance(n);
                self.mem.storage.check_intact()?;
                return Ok(n);
            }
            self.overtaken(horizon)?;
        }
    }

    /// [`Subscriber::try_recv`] until an element is ready, waiting as this handle's
    /// [`WaitStrategy`] says, until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the publisher closed the
    /// ring and everything before that was read; [`Error::Lagged`] and [`Error::Evicted`]
    /// (the next call goes on); what [`Subscriber::try_recv`] returns otherwise.
    pub fn recv_blocking(&mut self, deadline: Option<Instant>) -> Result<T, Error>
    where
        T: Pod,
    {
        crate::wait::blocking::block_on(self, deadline, "an element", |s| {
            crate::wait::pending(s.try_recv())
        })
    }

    /// Waits like [`Subscriber::recv_blocking`] for at least one element, then receives
    /// what is ready, up to `dst.len()`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Subscriber::recv_blocking`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn recv_partial_slice_blocking(
        &mut self,
        dst: &mut [T],
        deadline: Option<Instant>,
    ) -> Result<usize, Error>
    where
        T: Pod,
    {
        if dst.is_empty() {
            return Ok(0);
        }
        crate::wait::blocking::block_on(self, deadline, "elements", |s| {
            match s.recv_partial_slice(dst) {
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(n)),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.mem.storage.elem_size()
    }

    /// The next position this subscriber reads (elements published since creation).
    pub fn position(&self) -> u64 {
        self.head
    }

    /// Elements published that this subscriber has not read yet.
    pub fn lag(&self) -> u64 {
        self.mem
            .header()
            .producer
            .pos
            .load(Ordering::Acquire)
            .saturating_sub(self.head)
    }

    /// `true` if this subscriber has read everything published (reads the publisher's
    /// position).
    pub fn is_empty(&self) -> bool {
        self.lag() == 0
    }

    /// Elements lost to overtaking or eviction since this subscriber was made.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Elements of the history asked for with [`Start::History`] that the publisher
    /// overwrote before it saw this subscriber.
    pub fn history_lost(&self) -> u64 {
        self.history_lost
    }

    /// The publisher's position when this subscriber (last) joined: from here on nothing
    /// is lost in lossless mode unless it is evicted.
    pub fn joined_at(&self) -> u64 {
        self.joined_at
    }

    /// Its entry in the subscriber table.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The token it registered under.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// How this handle waits in the blocking calls (default
    /// [`WaitStrategy::spin_then_yield`]).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Sets how this handle waits in the blocking calls. A handle that may sleep counts
    /// itself among the ring's sleepers (recorded in its entry, so a peer that reclaims it
    /// can take the count back), and the publisher wakes it.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        if self.entry().is_none() {
            self.forget_registration();
        }
        let mem = self.mem.clone();
        mem.header()
            .data_signal()
            .set_strategy(&mut self.sleeper, strategy);
        self.strategy = strategy;
        self.sleep_recorded = match self.entry() {
            Some(e) => {
                e.sleep.store(self.sleeper.code(), Ordering::SeqCst);
                true
            }
            None => false,
        };
    }

    /// Our entry was freed by a peer, which took back the sleeper counts it recorded: our
    /// record of them is void (once: `sleep_recorded` says whether it still stands).
    fn forget_registration(&mut self) {
        if self.sleep_recorded {
            self.sleeper = Sleeper::No;
            self.sleep_recorded = false;
        }
    }

    /// Announces this subscriber as a waiter for data, for a caller that sleeps outside
    /// the blocking calls (an async runtime): as the other rings' `announce_wait`. Call it
    /// after a `try_*` call found nothing, then try once more; if that finds nothing too,
    /// sleep until [`AnnouncedWait::is_signalled`](crate::wait::AnnouncedWait::is_signalled)
    /// (for example in [`wait_any`](crate::wait::wait_any)). The publisher wakes it only if
    /// this subscriber's strategy may sleep ([`WaitStrategy::blocking`]).
    #[cfg(not(loom))]
    pub fn announce_wait(&self) -> crate::wait::AnnouncedWait
    where
        T: Send + Sync + 'static,
    {
        let keep = self.mem.clone();
        let signal = keep.header().data_signal();
        crate::wait::AnnouncedWait::new(keep.clone(), &signal)
    }

    /// Arms this subscriber's readiness descriptor, for a caller that waits in `epoll`,
    /// `poll` or an async runtime instead of a blocking call. The descriptor is one the
    /// subscriber made with [`crate::wait::readiness_fd`] and gave the publisher's process
    /// (inherited across `fork()`, or sent with `shm_region::send_fd`), installed there with
    /// [`Publisher::set_readiness_fd`] under this subscriber's [`Subscriber::index`] and
    /// [`Subscriber::token`]. Returns `true` if there is already something to receive (an
    /// element, a loss, an eviction, or the close): call the `try_*` calls now. Otherwise
    /// wait until the descriptor is readable, read it with
    /// [`crate::wait::clear_readiness`], drain with the `try_*` calls, and arm again. The
    /// publisher writes to the descriptor on its first publication after an arming, so
    /// each subscriber's descriptor wakes only that subscriber, and a publication costs no
    /// system call while nobody is armed.
    ///
    /// The handshake is the blocking sleep's: the entry's `armed` word, the ring's armed
    /// flag, `fence(SeqCst)`, then the re-check; the publisher, holding descriptors,
    /// publishes, `fence(SeqCst)`, then reads the flag. Either the re-check sees the
    /// publication or the publisher sees the arming.
    pub fn arm_readiness(&mut self) -> bool {
        let Some(e) = self.entry() else {
            return true; // freed by a peer: the next call rejoins and reports it
        };
        e.armed.store(1, Ordering::Relaxed);
        self.mem.header().data_signal().arm();
        let state_changed = self
            .entry()
            .is_none_or(|e| e.state.load(Ordering::Acquire) != LIVE);
        !self.is_empty() || self.pending.is_some() || state_changed || self.is_closed()
    }

    /// `true` once the publisher (or liveness code) has closed the ring.
    pub fn is_closed(&self) -> bool {
        self.mem.header().data_signal().is_closed()
    }
}

impl<T: Element> crate::wait::blocking::Waiter for Subscriber<T> {
    type Keep = Arc<Bcast<T>>;
    const SIDE: crate::wait::blocking::Side = crate::wait::blocking::Side::Data;
    fn keep(&self) -> Self::Keep {
        self.mem.clone()
    }
    fn header_of(keep: &Self::Keep) -> &Header {
        keep.header()
    }
    fn strategy(&self) -> WaitStrategy {
        self.strategy
    }
}

impl Subscriber<Raw> {
    /// Receives as many ready elements as fit whole in `dst` (bytes), validated as one run;
    /// returns how many elements (0 when none is ready).
    ///
    /// # Errors
    ///
    /// [`TryError::NotWholeElements`] if `dst` cannot hold one element; as the typed
    /// `recv_partial_slice` otherwise.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn recv_partial_into(&mut self, dst: &mut [u8]) -> Result<usize, TryError> {
        let size = self.mem.storage.elem_size();
        if dst.len() < size {
            return Err(TryError::NotWholeElements {
                len: dst.len(),
                elem_size: size,
            });
        }
        self.recv_with(dst.len() / size, |storage, blk, index, range| {
            let bytes = &mut dst[range.start * size..range.end * size];
            // SAFETY: the run lies in one block (runs) and is whole elements; racing writes
            // are rejected by the horizon check that follows.
            unsafe { storage.read_bytes_racy_in(blk, index, bytes) }
        })
    }

    /// Waits like the typed `recv_blocking` for at least one element, then receives what is
    /// ready and fits whole in `dst`; returns how many elements.
    ///
    /// # Errors
    ///
    /// As [`Subscriber::recv_partial_into`], [`Error::Timeout`], [`Error::Closed`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn recv_into_blocking(
        &mut self,
        dst: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        crate::wait::blocking::block_on(self, deadline, "elements", |s| {
            match s.recv_partial_into(dst) {
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(n)),
                Err(e) => Err(e.into()),
            }
        })
    }
}
