//! [`Publisher`]: the writing side of a broadcast ring.

use std::time::Instant;

use super::*;
use crate::element::Raw;
use crate::mpmc::Liveness;
use crate::spsc::storage::{Block, Storage};
use crate::spsc::{runs, Cursor};
use crate::sync::{fence, Arc};
use crate::wait::blocking::handle_controls;
use crate::wait::{ReadinessFd, WaitStrategy};

/// The writing side of a broadcast ring; exactly one exists per ring at a time.
///
/// Made by [`Ring::publisher`]; frees its claim when dropped. Dropping it does not close the
/// ring: call [`Publisher::close`] so subscribers learn the stream ended.
pub struct Publisher<T: Element> {
    mem: Arc<Bcast<T>>,
    geom: Geometry,
    cap: u64,
    /// Everything before it is written and published.
    tail: u64,
    cursor: Cursor,
    blk: Block,
    /// The horizon as this handle last stored it.
    horizon: u64,
    /// How far the horizon moves at a time ([`Layout::step`]).
    step: u64,
    /// Lossless: `gate + cap` as of the last rescan; lossy: `u64::MAX`.
    limit: u64,
    /// The entry that gated the last rescan: `(index, token, cursor)`.
    slowest: Option<(usize, u64, u64)>,
    /// Since when `slowest` has gated a full publisher without moving.
    stuck_since: Option<(usize, u64, Instant)>,
    evict_after: Option<std::time::Duration>,
    recovery: Option<std::sync::Arc<dyn Liveness + Send + Sync>>,
    patience: std::time::Duration,
    /// When the liveness check was last asked (at most once per patience, and per 5 ms).
    asked_at: Option<Instant>,
    token: u64,
    strategy: WaitStrategy,
    sleeper: crate::wait::Sleeper,
    /// Subscribers' readiness descriptors by entry: `(token, descriptor)`.
    readiness: Vec<Option<(u64, ReadinessFd)>>,
    /// Signals sent by descriptors since removed.
    readiness_past: u64,
}

impl<T: Element> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Publisher")
            .field("tail", &self.tail)
            .field("horizon", &self.horizon)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<T: Element> Drop for Publisher<T> {
    fn drop(&mut self) {
        let header = self.mem.header();
        header.space_signal().unregister(&mut self.sleeper);
        crate::sync::claim::release(&header.control.producer_claim, self.token);
    }
}

impl<T: Element> Publisher<T> {
    pub(super) fn new(mem: Arc<Bcast<T>>, tail: u64, token: u64) -> Result<Self, Error> {
        let geom = mem.layout.geom;
        let (_, horizon) = mem.positions()?;
        let cursor = Cursor::of(tail, &geom);
        let evict_after = match mem.layout.mode {
            Mode::Lossless(SlowPolicy::Evict { after }) => Some(after),
            _ => None,
        };
        let mut p = Publisher {
            blk: mem.storage.block(cursor.block),
            cap: geom.capacity() as u64,
            geom,
            tail,
            cursor,
            horizon,
            step: mem.layout.step(),
            limit: u64::MAX,
            slowest: None,
            stuck_since: None,
            evict_after,
            recovery: None,
            patience: std::time::Duration::ZERO,
            asked_at: None,
            token,
            strategy: WaitStrategy::default(),
            sleeper: crate::wait::Sleeper::No,
            readiness: Vec::new(),
            readiness_past: 0,
            mem,
        };
        if p.mem.layout.mode.is_lossless() {
            p.rescan();
        }
        Ok(p)
    }

    /// Frees the entry of a subscriber that gates this (lossless) publisher when
    /// `liveness` says its process is dead: asked when the publisher finds the ring full and
    /// the same subscriber has held it up for `patience`, then at most once per `patience`
    /// (and per 5 ms), so a blocked publisher does not spend its time in liveness checks.
    pub fn with_recovery(
        mut self,
        liveness: impl Liveness + Send + Sync + 'static,
        patience: std::time::Duration,
    ) -> Self {
        self.recovery = Some(std::sync::Arc::new(liveness));
        self.patience = patience;
        self
    }

    /// Writes up to `want` elements (at most a ring's worth) after `tail` with `write(storage,
    /// block, index, range)` (`range`: the run's place among them) and publishes them;
    /// returns how many (0 when a lossless ring is full).
    #[inline]
    fn push_with(
        &mut self,
        want: usize,
        mut write: impl FnMut(&Storage<T>, Block, usize, core::ops::Range<usize>),
    ) -> Result<usize, TryError> {
        let want = want.min(self.cap as usize);
        if want == 0 {
            return Ok(0);
        }
        let q = self.tail;
        let n = if q + want as u64 <= self.horizon {
            want
        } else {
            match self.raise(want) {
                Ok(n) => n,
                Err(TryError::Full { .. }) => return Ok(0),
                Err(e) => return Err(e),
            }
        };
        let storage = &self.mem.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            write(storage, storage.block(block), index, range)
        });
        let end = q + n as u64;
        let touched = (self.cursor.index + n - 1) / self.geom.elems_per_block + 1;
        for j in (0..touched).rev() {
            storage
                .word(self.cursor.block + j)
                .store(end, Ordering::Release);
        }
        self.mem.header().producer.pos.store(end, Ordering::Release);
        self.tail = end;
        self.cursor = self.cursor.offset(n, &self.geom);
        self.blk = storage.block(self.cursor.block);
        if self.mem.header().notify_data(!self.readiness.is_empty()) {
            self.signal_armed();
        }
        self.mem.storage.check_intact()?;
        Ok(n)
    }

    /// Raises the horizon so that at least one of the `want` positions from `tail` may be
    /// written (as many as the gate allows, up to the end of the last block they touch);
    /// returns how many of them may.
    #[cold]
    #[inline(never)]
    fn raise(&mut self, want: usize) -> Result<usize, TryError> {
        let q = self.tail;
        let step = self.step;
        let mut target = (q + want as u64).div_ceil(step) * step;
        if self.limit != u64::MAX {
            if target > self.limit {
                self.rescan();
            }
            if q >= self.limit {
                self.unstick();
                if q >= self.limit {
                    return Err(TryError::Full {
                        requested: want,
                        available: 0,
                    });
                }
            }
            target = target.min(self.limit);
        }
        self.stuck_since = None;
        // Release: a joiner that loads this horizon then loads a `tail` at least ours.
        self.mem.horizon().store(target, Ordering::Release);
        // The seqlock's begin: every write after this fence (the slots below `target`) is
        // ordered after the horizon store for a reader that fences after seeing any of it.
        fence(Ordering::Release);
        self.horizon = target;
        Ok(((target - q) as usize).min(want))
    }

    /// Recomputes the gate from the subscriber table (lossless): the smallest cursor of a
    /// live entry, clamped to what is still intact and to what was written.
    fn rescan(&mut self) {
        // Pairs with the fence in `register`: see "Joining" in the module docs.
        fence(Ordering::SeqCst);
        let m = &*self.mem;
        let floor = self.horizon.saturating_sub(self.cap);
        let (mut gate, mut slowest) = (self.tail, None);
        for i in 0..m.scan_len() {
            let Some(e) = m.entry(i) else { break };
            let token = e.token.load(Ordering::Acquire);
            if token == 0 || token == LEAVING || !gates(e.state.load(Ordering::Acquire)) {
                continue;
            }
            // Acquire: the subscriber's reads of everything below its cursor happen before
            // we overwrite any of it.
            let c = e.cursor.load(Ordering::Acquire).max(floor).min(self.tail);
            if c < gate {
                gate = c;
                slowest = Some((i, token, c));
            }
        }
        self.limit = gate + self.cap;
        self.slowest = slowest;
    }

    /// The ring is full because of `slowest`: frees its entry if its process is dead, or
    /// evicts it once it has not moved for the eviction time; then rescans.
    fn unstick(&mut self) {
        let Some((i, token, c)) = self.slowest else {
            return;
        };
        let now = Instant::now();
        let since = match self.stuck_since {
            Some((j, d, since)) if j == i && d == c => since,
            _ => {
                self.stuck_since = Some((i, c, now));
                now
            }
        };
        let m = &*self.mem;
        let waited = now.saturating_duration_since(since);
        let ask_every = self.patience.max(std::time::Duration::from_millis(5));
        let may_ask = waited >= self.patience
            && self
                .asked_at
                .is_none_or(|t| now.saturating_duration_since(t) >= ask_every);
        if let (Some(l), true) = (&self.recovery, may_ask) {
            self.asked_at = Some(now);
            if l.is_dead(token) && m.free_entry(i, token, true) {
                m.reclaimed().fetch_add(1, Ordering::Relaxed);
                self.stuck_since = None;
                self.rescan();
                return;
            }
        }
        if let (Some(after), Some(e)) = (self.evict_after, m.entry(i)) {
            // A joiner that stalls (or dies) before it is LIVE gates too, so it is evicted
            // the same way.
            let state = e.state.load(Ordering::Acquire);
            if waited >= after
                && e.token.load(Ordering::Acquire) == token
                && gates(state)
                && e.state
                    .compare_exchange(state, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                m.evictions().fetch_add(1, Ordering::Relaxed);
                self.stuck_since = None;
                self.rescan();
            }
        }
    }
    /// Installs (or with `None` removes) the readiness descriptor of the subscriber in entry
    /// `index` holding `token` ([`Subscriber::index`], [`Subscriber::token`]; see
    /// [`crate::wait::readiness_fd`]): after that subscriber arms it
    /// ([`Subscriber::arm_readiness`]), the next publication writes to it, once. Give the
    /// descriptor to the publisher before the subscriber first arms it: an arming the
    /// publisher holds no descriptor for is consumed without a signal.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchSubscriber`] if `index` is outside the subscriber table.
    pub fn set_readiness_fd(
        &mut self,
        index: usize,
        token: u64,
        fd: Option<std::os::fd::OwnedFd>,
    ) -> Result<(), Error> {
        let entries = self.mem.layout.subscribers;
        if index >= entries {
            return Err(Error::NoSuchSubscriber {
                index: index as u64,
                entries: entries as u64,
            });
        }
        if self.readiness.len() <= index {
            self.readiness.resize_with(index + 1, || None);
        }
        if let Some((_, old)) = self.readiness[index].take() {
            self.readiness_past += old.signals();
        }
        self.readiness[index] = fd.map(|fd| {
            let mut r = ReadinessFd::default();
            r.set(Some(fd));
            (token, r)
        });
        while self.readiness.last().is_some_and(Option::is_none) {
            self.readiness.pop();
        }
        Ok(())
    }

    /// How many times this handle has written to subscribers' readiness descriptors: once
    /// per arming it consumed for a subscriber whose descriptor it holds.
    pub fn readiness_signals(&self) -> u64 {
        self.readiness_past
            + self
                .readiness
                .iter()
                .flatten()
                .map(|(_, r)| r.signals())
                .sum::<u64>()
    }

    /// A publication consumed the ring's "someone armed" flag: signals every armed
    /// subscriber whose descriptor this handle holds (the entry's token must still be the
    /// one the descriptor was given for), disarming each.
    #[cold]
    #[inline(never)]
    fn signal_armed(&mut self) {
        for i in 0..self.mem.scan_len() {
            let Some(e) = self.mem.entry(i) else { break };
            if e.armed.load(Ordering::Relaxed) == 0 || e.armed.swap(0, Ordering::AcqRel) == 0 {
                continue;
            }
            let token = e.token.load(Ordering::Relaxed);
            if let Some(Some((t, r))) = self.readiness.get_mut(i) {
                r.fire(*t == token);
            }
        }
    }

    /// The subscriber that holds a lossless publisher back, as of its last look at the
    /// table: `(entry index, token, cursor)`; `None` when no subscriber is behind.
    pub fn gated_by(&self) -> Option<(usize, u64, u64)> {
        self.slowest.filter(|&(_, _, c)| c < self.tail)
    }

    /// Elements published since the ring was created (the absolute position).
    pub fn position(&self) -> u64 {
        self.tail
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }
}

impl<T: Pod> Publisher<T> {
    /// Pushes one element.
    ///
    /// # Errors
    ///
    /// [`TryError::Full`] (lossless only) while the slowest live subscriber is a whole ring
    /// behind; [`TryError::Truncated`] if the shared object was truncated.
    #[inline(always)]
    pub fn try_push(&mut self, value: T) -> Result<(), TryError> {
        let q = self.tail;
        if q >= self.horizon {
            self.raise(1)?;
        }
        let index = self.cursor.index;
        // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block (Cursor
        // invariant); q < horizon, so readers validate against this write.
        unsafe {
            self.mem
                .storage
                .write_run_racy_in(self.blk, index, core::slice::from_ref(&value))
        };
        self.tail = q + 1;
        // SAFETY: `blk` was made by this storage.
        unsafe { self.mem.storage.word_in(self.blk) }.store(q + 1, Ordering::Release);
        self.mem
            .header()
            .producer
            .pos
            .store(q + 1, Ordering::Release);
        self.cursor.index = index + 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.cursor.index = 0;
            self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
            self.blk = self.mem.storage.block(self.cursor.block);
        }
        if self.mem.header().notify_data(!self.readiness.is_empty()) {
            self.signal_armed();
        }
        self.mem.storage.check_intact()
    }

    /// Pushes as many elements from the front of `src` as there is room for (all of them
    /// in lossy mode, at most a ring's worth per call), published with one position per
    /// block; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Publisher::try_push`], except that a full ring returns `Ok(0)`.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_slice(&mut self, src: &[T]) -> Result<usize, TryError> {
        self.push_with(src.len(), |storage, blk, index, range| {
            // SAFETY: the run lies in one block (runs); every position written is below the
            // horizon just raised.
            unsafe { storage.write_run_racy_in(blk, index, &src[range]) }
        })
    }

    /// [`Publisher::try_push`] until there is room, waiting as this handle's
    /// [`WaitStrategy`] says, until `deadline` (`None`: no limit). A lossy publisher never
    /// waits.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the ring is closed; what
    /// [`Publisher::try_push`] returns otherwise.
    pub fn push_blocking(&mut self, value: T, deadline: Option<Instant>) -> Result<(), Error> {
        crate::wait::blocking::block_on(self, deadline, "room in the broadcast ring", |s| {
            crate::wait::pending(s.try_push(value))
        })
    }

    /// Pushes all of `src`, in batches as room appears, waiting as
    /// [`Publisher::push_blocking`] does.
    ///
    /// # Errors
    ///
    /// `(pushed, error)`: how many were pushed before the error stopped it.
    pub fn push_slice_blocking(
        &mut self,
        src: &[T],
        deadline: Option<Instant>,
    ) -> Result<(), (usize, Error)> {
        let mut done = 0;
        crate::wait::blocking::block_on(self, deadline, "room in the broadcast ring", |s| {
            while done < src.len() {
                match s.push_partial_slice(&src[done..]) {
                    Ok(0) => return Ok(None),
                    Ok(k) => done += k,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(Some(()))
        })
        .map_err(|e| (done, e))
    }
}

mod messages;

impl Publisher<Raw> {
    /// Pushes as many whole elements from the front of `src` (bytes, a whole number of
    /// elements of the ring's element size) as there is room for; returns how many
    /// elements.
    ///
    /// # Errors
    ///
    /// [`TryError::NotWholeElements`] if `src` is not a whole number of elements (nothing is
    /// pushed); as the typed `push_partial_slice` otherwise.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_bytes(&mut self, src: &[u8]) -> Result<usize, TryError> {
        let size = self.mem.storage.elem_size();
        if !src.len().is_multiple_of(size) {
            return Err(TryError::NotWholeElements {
                len: src.len(),
                elem_size: size,
            });
        }
        self.push_with(src.len() / size, |storage, blk, index, range| {
            let bytes = &src[range.start * size..range.end * size];
            // SAFETY: the run lies in one block (runs) and is whole elements; every position
            // written is below the horizon just raised.
            unsafe { storage.write_bytes_racy_in(blk, index, bytes) }
        })
    }

    /// Pushes every element of `src` (bytes), in batches as room appears, waiting as the
    /// typed `push_blocking` does.
    ///
    /// # Errors
    ///
    /// `(pushed, error)`: how many elements were pushed before the error stopped it.
    pub fn push_bytes_blocking(
        &mut self,
        src: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), (usize, Error)> {
        let size = self.mem.storage.elem_size();
        let mut done = 0;
        crate::wait::blocking::block_on(self, deadline, "room in the broadcast ring", |s| {
            while done * size < src.len() {
                match s.push_partial_bytes(&src[done * size..]) {
                    Ok(0) => return Ok(None),
                    Ok(k) => done += k,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(Some(()))
        })
        .map_err(|e| (done, e))
    }
}

handle_controls!([T: Element] Publisher<T>, Bcast<T>, Space, mem, strategy, sleeper);
