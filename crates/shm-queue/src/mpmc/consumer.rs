//! [`Consumer`]: a reading handle of an MPMC ring, `Clone` and `Send`, any number per ring.

use super::*;

/// A consumer handle of an [`Ring`]. `Send` and `Clone`, like [`Producer`].
pub struct Consumer<T: Element> {
    pub(super) h: Handle<T>,
}

impl<T: Element> Clone for Consumer<T> {
    fn clone(&self) -> Self {
        Consumer { h: self.h.clone() }
    }
}

impl<T: Element> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("token", &self.h.token)
            .field("entry", &self.h.entry)
            .field("recovery", &self.h.recovery.as_ref().map(|r| r.patience))
            .finish()
    }
}

const EMPTY: TryError = TryError::Empty {
    requested: 1,
    available: 0,
};

impl<T: Element> Consumer<T> {
    /// Turns on recovery of positions claimed by dead producers: when the element at the
    /// head is still unpublished after `patience`, asks `liveness` about the producers
    /// whose recorded claims cover it and, if all are dead, skips it (see the module
    /// documentation). Clones share the setting.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use shm_queue::mpmc::Ring;
    /// # let region = shm_region::Region::anonymous(Ring::<u32>::required_bytes(4)?)?;
    /// let ring = Ring::<u32>::create(region, 4)?;
    /// let mut dying = ring.producer()?;
    /// let dead_token = dying.token();
    /// dying.claim_and_hold(7)?; // as if killed between claim and publish
    /// ring.producer()?.try_push(8)?;
    ///
    /// let mut rx = ring
    ///     .consumer()?
    ///     .with_recovery(move |t: u64| t == dead_token, Duration::ZERO);
    /// assert_eq!(rx.try_pop()?, 8);
    /// assert_eq!(ring.stats().skipped, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_recovery(
        mut self,
        liveness: impl Liveness + Send + Sync + 'static,
        patience: Duration,
    ) -> Self {
        self.h.recovery = Some(Recovery::new(liveness, patience));
        self
    }

    /// The owner token this handle registers under.
    pub fn token(&self) -> u64 {
        self.h.token
    }

    /// Claims the next published position (recording it first), consuming any poisoned
    /// ones on the way, and returns it; the element is not read.
    #[inline]
    fn claim(&mut self) -> Result<u64, TryError> {
        let i = self.h.entry()?;
        let cap = self.h.mem.layout.capacity() as u64;
        let head = &self.h.mem.header().consumer.pos;
        let mut h = head.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(h, Word::Head)?;
            let seq = self.h.mem.seq(h).load(Ordering::Acquire);
            match consumer_view(seq, h) {
                view @ (Seq::Mine | Seq::Poisoned) => {
                    self.h.record(i, h, 1);
                    match head.compare_exchange(h, h + 1, Ordering::Release, Ordering::Relaxed) {
                        Ok(_) if view == Seq::Mine => return Ok(h),
                        Ok(_) => {
                            // A skipped position: release its slot for the next lap.
                            let _ = self.h.mem.seq(h).compare_exchange(
                                seq,
                                h + cap,
                                Ordering::Release,
                                Ordering::Relaxed,
                            );
                            h += 1;
                        }
                        Err(now) => {
                            self.h.clear(i);
                            h = now;
                        }
                    }
                }
                Seq::Behind => {
                    let tail = self.h.mem.header().producer.pos.load(Ordering::Acquire);
                    if seq == h && tail > h && self.h.recover_producer_claim(h) {
                        continue;
                    }
                    return Err(EMPTY);
                }
                Seq::Ahead => {
                    let now = head.load(Ordering::Relaxed);
                    if now == h {
                        return Err(corrupted(Word::SlotSequence, seq));
                    }
                    h = now;
                }
            }
        }
        Err(EMPTY)
    }

    /// Claims the run of up to `want` published positions at the head with one
    /// compare-and-swap (recording it first); `None` if none is published (or the head kept
    /// moving): the single path sorts that out.
    fn claim_run(&mut self, want: u64) -> Result<Option<(u64, u64)>, TryError> {
        let i = self.h.entry()?;
        let m = &*self.h.mem;
        let head = &m.header().consumer.pos;
        let mut h = head.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(h, Word::Head)?;
            let mut k = 0;
            while k < want && m.seq(h + k).load(Ordering::Acquire) == h + k + 1 {
                k += 1;
            }
            if k == 0 {
                return Ok(None);
            }
            self.h.record(i, h, k);
            match head.compare_exchange(h, h + k, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return Ok(Some((h, k))),
                Err(now) => {
                    self.h.clear(i);
                    h = now;
                }
            }
        }
        Ok(None)
    }

    /// Releases the slot of claimed position `h` for the next lap; `false` if a producer
    /// released it first (it judged us dead), in which case what we read may be torn.
    #[inline]
    fn release(&self, h: u64) -> bool {
        let m = &*self.h.mem;
        let cap = m.layout.capacity() as u64;
        let ok = m
            .seq(h)
            .compare_exchange(h + 1, h + cap, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if !ok {
            m.counters().revoked.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Pops one element.
    ///
    /// # Errors
    ///
    /// [`TryError::Empty`] if no element is published at the head (retry later): nothing
    /// pushed, or the next element is still being written (or its producer died and
    /// recovery has not skipped it yet); [`TryError::OwnerTableFull`] for a clone that finds
    /// no owner entry; [`TryError::ClaimRevoked`] if a producer's liveness check declared this
    /// process dead and reused the slot while we read it; [`TryError::Corrupted`].
    ///
    /// ```
    /// # use shm_queue::{mpmc::Ring, TryError};
    /// # let region = shm_region::Region::anonymous(Ring::<u32>::required_bytes(4)?)?;
    /// let ring = Ring::<u32>::create(region, 4)?;
    /// let mut rx = ring.consumer()?;
    /// assert!(matches!(rx.try_pop(), Err(TryError::Empty { .. })));
    /// ring.producer()?.try_push(9)?;
    /// assert_eq!(rx.try_pop()?, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, TryError>
    where
        T: Pod,
    {
        self.pop_one_with(|m, h| {
            // SAFETY: pop_one_with claimed `h` (head moved past it by our swap) after seeing
            // it published with Acquire; no producer writes the slot until we release it.
            unsafe { m.read(h) }
        })
    }

    /// Claims the element at the head, has `read` copy it out (given the slots and the
    /// claimed position), and releases the slot: the one-element pop every element kind
    /// shares. What `read` returned is discarded if the release lost to a recovery.
    #[inline(always)]
    pub(super) fn pop_one_with<R>(
        &mut self,
        read: impl FnOnce(&Slots<T>, u64) -> R,
    ) -> Result<R, TryError> {
        let h = self.claim()?;
        let v = read(&self.h.mem, h);
        let released = self.release(h);
        self.h.mem.header().notify_space();
        self.h.mem.check_intact()?;
        if released {
            Ok(v)
        } else {
            Err(TryError::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }

    /// Pops up to `dst.len()` elements into the front of `dst`: the run published at the
    /// head, claimed with one compare-and-swap; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_pop`] when not even one is ready; [`TryError::ClaimRevoked`] if some
    /// slots of the batch were reused by producers that judged this process dead (the
    /// others are at the front of `dst`, counted in `completed`).
    ///
    /// ```
    /// # use shm_queue::mpmc::Ring;
    /// # let region = shm_region::Region::anonymous(Ring::<u32>::required_bytes(8)?)?;
    /// let ring = Ring::<u32>::create(region, 8)?;
    /// assert_eq!(ring.producer()?.push_partial_slice(&[1, 2, 3])?, 3);
    /// let mut buf = [0; 8];
    /// assert_eq!(ring.consumer()?.pop_partial_slice(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], &[1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_slice(&mut self, dst: &mut [T]) -> Result<usize, TryError>
    where
        T: Pod,
    {
        self.pop_run_with(dst.len(), |m, p, n| {
            // SAFETY: pop_run_with claimed `p` after seeing it published with Acquire
            // before the claiming swap, and n < dst.len().
            dst[n] = unsafe { m.read(p) };
        })
    }

    /// Pops up to `len` elements: `read(slots, position, n)` copies the claimed element of
    /// `position` into the caller's place `n`, which counts only elements whose release won
    /// (a lost one is overwritten by the next). The run published at the head, claimed with
    /// one compare-and-swap, or one element by the single path; returns how many.
    #[inline]
    pub(super) fn pop_run_with(
        &mut self,
        len: usize,
        mut read: impl FnMut(&Slots<T>, u64, usize),
    ) -> Result<usize, TryError> {
        if len <= 1 {
            if len == 0 {
                return Ok(0);
            }
            return self.pop_one_with(|m, h| read(m, h, 0)).map(|()| 1);
        }
        let want = len.min(self.h.mem.layout.capacity()) as u64;
        if let Some((h, k)) = self.claim_run(want)? {
            let m = &*self.h.mem;
            let mut n = 0;
            for p in h..h + k {
                read(m, p, n);
                if self.release(p) {
                    n += 1;
                }
            }
            self.h.mem.header().notify_space();
            self.h.mem.check_intact()?;
            return if n as u64 == k {
                Ok(n)
            } else {
                Err(TryError::ClaimRevoked {
                    revoked: k as usize - n,
                    completed: n,
                })
            };
        }
        self.pop_one_with(|m, h| read(m, h, 0)).map(|()| 1)
    }

    /// Arms the readiness descriptor the producers hold (see
    /// [`crate::wait::readiness_fd`]). Returns `true` if the element at the head is already
    /// published: then do not wait for the descriptor, pop now.
    pub fn arm_readiness(&mut self) -> bool {
        let m = &*self.h.mem;
        m.header().data_signal().arm();
        let h = m.header().consumer.pos.load(Ordering::Acquire);
        h <= MAX_POSITION && m.seq(h).load(Ordering::Acquire) == h + 1
    }

    /// Approximate number of elements in the ring; see [`Producer::len`].
    pub fn len(&self) -> usize {
        approx_len(&self.h.mem)
    }

    /// `true` if [`Consumer::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.h.mem.layout.capacity()
    }

    /// Test hook: claims the run of up to `n` published positions at the head as
    /// [`Consumer::pop_partial_slice`] does and returns its first position and length without
    /// releasing the slots, as a consumer stopped there would leave them (see
    /// [`Consumer::release_held`]).
    #[cfg(feature = "test-hooks")]
    pub fn claim_and_hold_run(&mut self, n: usize) -> Result<(u64, u64), TryError> {
        self.claim_run(n as u64)?.ok_or(TryError::Empty {
            requested: n,
            available: 0,
        })
    }

    /// Test hook: releases a position returned by [`Consumer::claim_and_hold`] or within a
    /// run from [`Consumer::claim_and_hold_run`].
    ///
    /// # Safety
    ///
    /// `pos` was claimed by this handle and not released since; any other position could
    /// hand a producer a slot another consumer is still reading.
    #[cfg(feature = "test-hooks")]
    pub unsafe fn release_held(&mut self, pos: u64) -> Result<(), TryError> {
        if self.release(pos) {
            Ok(())
        } else {
            Err(TryError::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }

    /// Test hook: claims the next element and returns it without releasing its slot, as a
    /// consumer killed at that moment would leave it. Returns the position and the value.
    #[cfg(feature = "test-hooks")]
    pub fn claim_and_hold(&mut self) -> Result<(u64, T), TryError>
    where
        T: Pod,
    {
        let h = self.claim()?;
        // SAFETY: as in try_pop.
        Ok((h, unsafe { self.h.mem.read(h) }))
    }

    /// Test hook: records a claim of the position at the head in this handle's owner entry
    /// and stops before the compare-and-swap that would take it, as a consumer killed
    /// between the two leaves its entry. Returns the recorded position.
    #[cfg(feature = "test-hooks")]
    pub fn record_and_stop(&mut self) -> Result<u64, TryError> {
        let i = self.h.entry()?;
        let h = self.h.mem.header().consumer.pos.load(Ordering::Relaxed);
        self.h.record(i, h, 1);
        Ok(h)
    }
}

handle_controls!([T: Element] Consumer<T>, Slots<T>, Data, h.mem, h.strategy, h.sleeper; after = h.record_sleeper);

crate::wait::blocking::typed_blocking!(consumer mpmc);
