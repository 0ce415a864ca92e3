//! [`Producer`]: a writing handle of an MPMC ring, `Clone` and `Send`, any number per ring.

use super::*;

/// A producer handle of an [`Ring`]. `Send` and `Clone`: make as many as you like, in
/// any process (each live handle takes one owner entry; a clone takes its own on first use).
pub struct Producer<T: Element> {
    pub(super) h: Handle<T>,
}

impl<T: Element> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Producer { h: self.h.clone() }
    }
}

impl<T: Element> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("token", &self.h.token)
            .field("entry", &self.h.entry)
            .field("recovery", &self.h.recovery.as_ref().map(|r| r.patience))
            .finish()
    }
}

impl<T: Element> Producer<T> {
    /// Turns on recovery of slots held by dead consumers: when the slot this producer needs
    /// is still held by a consumer after `patience`, it asks `liveness` about the owners
    /// and, if they are all dead, releases the slot (see the module documentation). Clones
    /// share the setting.
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

    /// Claims the run of up to `want` free positions at the tail with one compare-and-swap
    /// (recording it first); `None` if none is free (or the tail kept moving): the single
    /// path sorts that out.
    fn claim_run(&mut self, want: u64) -> Result<Option<(u64, u64)>, TryError> {
        let i = self.h.entry()?;
        let m = &*self.h.mem;
        let tail = &m.header().producer.pos;
        let mut t = tail.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(t, Word::Tail)?;
            let mut k = 0;
            while k < want && m.seq(t + k).load(Ordering::Acquire) == t + k {
                k += 1;
            }
            if k == 0 {
                return Ok(None);
            }
            self.h.record(i, t, k);
            match tail.compare_exchange(t, t + k, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return Ok(Some((t, k))),
                Err(now) => {
                    self.h.clear(i);
                    t = now;
                }
            }
        }
        Ok(None)
    }

    /// Claims one position (recording it first) and returns it; the element is not written.
    #[inline]
    fn claim(&mut self) -> Result<u64, TryError> {
        let i = self.h.entry()?;
        let tail = &self.h.mem.header().producer.pos;
        let mut t = tail.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(t, Word::Tail)?;
            let seq = self.h.mem.seq(t).load(Ordering::Acquire);
            match producer_view(seq, t) {
                Seq::Mine => {
                    self.h.record(i, t, 1);
                    match tail.compare_exchange(t, t + 1, Ordering::Release, Ordering::Relaxed) {
                        Ok(_) => return Ok(t),
                        Err(now) => {
                            self.h.clear(i);
                            t = now;
                        }
                    }
                }
                Seq::Behind => {
                    if self.h.recover_consumer_claim(t, seq) {
                        continue;
                    }
                    return Err(TryError::Full {
                        requested: 1,
                        available: 0,
                    });
                }
                Seq::Ahead | Seq::Poisoned => {
                    let now = tail.load(Ordering::Relaxed);
                    if now == t {
                        // Honest peers never leave a sequence ahead of an unmoved tail.
                        return Err(corrupted(Word::SlotSequence, seq));
                    }
                    t = now;
                }
            }
        }
        Err(TryError::Full {
            requested: 1,
            available: 0,
        })
    }

    /// Publishes the element at claimed position `t`; `false` if a consumer poisoned it
    /// first (it was judged dead).
    #[inline]
    fn publish(&self, t: u64) -> bool {
        let m = &*self.h.mem;
        let ok = m
            .seq(t)
            .compare_exchange(t, t + 1, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if !ok {
            m.counters().revoked.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Pushes one element.
    ///
    /// # Errors
    ///
    /// [`TryError::Full`] if the slot at the tail is not free yet (retry later; also after
    /// 4096 lost races in one call); [`TryError::OwnerTableFull`] for a clone that finds no
    /// owner entry; [`TryError::ClaimRevoked`] if a consumer's liveness check declared this
    /// process dead and skipped the element; [`TryError::Corrupted`] for impossible shared
    /// words.
    ///
    /// ```
    /// # use shm_queue::{mpmc::Ring, TryError};
    /// # let region = shm_region::Region::anonymous(Ring::<u32>::required_bytes(2)?)?;
    /// let ring = Ring::<u32>::create(region, 2)?;
    /// let mut tx = ring.producer()?;
    /// tx.try_push(1)?;
    /// tx.try_push(2)?;
    /// assert!(matches!(tx.try_push(3), Err(TryError::Full { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), TryError>
    where
        T: Pod,
    {
        self.push_one_with(|m, t| {
            // SAFETY: push_one_with claimed `t` (tail moved past it by our swap) after seeing
            // its slot free for `t` with Acquire, so no consumer reads it until we publish.
            unsafe { m.write(t, value) }
        })
    }

    /// Claims one slot, has `write` fill it (given the slots and the claimed position), and
    /// publishes it: the one-element push every element kind shares.
    #[inline(always)]
    pub(super) fn push_one_with(
        &mut self,
        write: impl FnOnce(&Slots<T>, u64),
    ) -> Result<(), TryError> {
        let t = self.claim()?;
        write(&self.h.mem, t);
        let published = self.publish(t);
        self.h
            .readiness
            .fire(self.h.mem.header().notify_data(self.h.readiness.is_some()));
        self.h.mem.check_intact()?;
        if published {
            Ok(())
        } else {
            Err(TryError::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }

    /// Pushes as many elements from the front of `src` as there are free slots in one run
    /// at the tail (at most the capacity), claiming them with one compare-and-swap; returns
    /// how many.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_push`] when not even one slot is free;
    /// [`TryError::ClaimRevoked`] if some of the batch was skipped by consumers that judged
    /// this process dead (the others were delivered; which ones is not reported).
    ///
    /// ```
    /// # use shm_queue::mpmc::Ring;
    /// # let region = shm_region::Region::anonymous(Ring::<u32>::required_bytes(4)?)?;
    /// let ring = Ring::<u32>::create(region, 4)?;
    /// let mut tx = ring.producer()?;
    /// assert_eq!(tx.push_partial_slice(&[1, 2, 3, 4, 5, 6])?, 4);
    /// assert_eq!(ring.len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_slice(&mut self, src: &[T]) -> Result<usize, TryError>
    where
        T: Pod,
    {
        self.push_run_with(src.len(), |m, p, j| {
            // SAFETY: push_run_with claimed `p` (element `j` of its run, j < src.len()) after
            // seeing its slot free with Acquire before the claiming swap.
            unsafe { m.write(p, src[j]) }
        })
    }

    /// Pushes up to `len` elements (`write(slots, position, j)` fills element `j` into the
    /// claimed slot of `position`): the run claimed at the tail with one compare-and-swap,
    /// or one element by the single path. Returns how many; the batch path of every
    /// element kind.
    #[inline]
    pub(super) fn push_run_with(
        &mut self,
        len: usize,
        mut write: impl FnMut(&Slots<T>, u64, usize),
    ) -> Result<usize, TryError> {
        match len {
            0 => return Ok(0),
            1 => return self.push_one_with(|m, t| write(m, t, 0)).map(|()| 1),
            _ => {}
        }
        let want = len.min(self.h.mem.layout.capacity()) as u64;
        if let Some((t, k)) = self.claim_run(want)? {
            let m = &*self.h.mem;
            let mut revoked = 0;
            for j in 0..k as usize {
                let p = t + j as u64;
                write(m, p, j);
                revoked += usize::from(!self.publish(p));
            }
            self.h
                .readiness
                .fire(self.h.mem.header().notify_data(self.h.readiness.is_some()));
            self.h.mem.check_intact()?;
            return if revoked == 0 {
                Ok(k as usize)
            } else {
                Err(TryError::ClaimRevoked {
                    revoked,
                    completed: k as usize - revoked,
                })
            };
        }
        // Nothing free at the tail (or a stale tail): the single path sorts it out.
        self.push_one_with(|m, t| write(m, t, 0)).map(|()| 1)
    }

    /// Installs (or removes) the consumers' readiness descriptor (see
    /// [`crate::wait::readiness_fd`]); clones made afterwards share it.
    pub fn set_readiness_fd(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.h.readiness.set(fd);
    }

    /// How many times this handle has written to the readiness descriptor: once per arming
    /// it consumed (a consumer that arms and then finds no data waits for exactly that).
    pub fn readiness_signals(&self) -> u64 {
        self.h.readiness.signals()
    }

    /// Approximate number of elements in the ring: `tail - head` from two loads that other
    /// handles may move in between, clamped to `0..=capacity`. It counts claimed positions,
    /// so it includes elements still being written and excludes those being read.
    pub fn len(&self) -> usize {
        approx_len(&self.h.mem)
    }

    /// `true` if [`Producer::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.h.mem.layout.capacity()
    }

    /// Test hook: claims a position and writes `value` without publishing it, as a producer
    /// killed at that moment would leave it. Returns the position.
    #[cfg(feature = "test-hooks")]
    pub fn claim_and_hold(&mut self, value: T) -> Result<u64, TryError>
    where
        T: Pod,
    {
        let t = self.claim()?;
        // SAFETY: as in try_push.
        unsafe { self.h.mem.write(t, value) };
        Ok(t)
    }

    /// Test hook: claims a run of free positions at the tail as
    /// [`Producer::push_partial_slice`] does and writes `src`'s first elements into it
    /// without publishing them, as a producer stopped there would leave them. Returns the
    /// first position and how many (see [`Producer::publish_held`]).
    #[cfg(feature = "test-hooks")]
    pub fn claim_and_hold_slice(&mut self, src: &[T]) -> Result<(u64, u64), TryError>
    where
        T: Pod,
    {
        let want = src.len().min(self.h.mem.layout.capacity()) as u64;
        let (t, k) = self.claim_run(want)?.ok_or(TryError::Full {
            requested: src.len(),
            available: 0,
        })?;
        let m = &*self.h.mem;
        for (j, v) in src[..k as usize].iter().enumerate() {
            // SAFETY: as in push_partial_slice.
            unsafe { m.write(t + j as u64, *v) };
        }
        Ok((t, k))
    }

    /// Test hook: records a claim of the position at the tail in this handle's owner entry
    /// and stops before the compare-and-swap that would take it, as a producer killed
    /// between the two leaves its entry (covering a position it never held). Returns the
    /// recorded position.
    #[cfg(feature = "test-hooks")]
    pub fn record_and_stop(&mut self) -> Result<u64, TryError> {
        let i = self.h.entry()?;
        let t = self.h.mem.header().producer.pos.load(Ordering::Relaxed);
        self.h.record(i, t, 1);
        Ok(t)
    }

    /// Test hook: publishes a position returned by [`Producer::claim_and_hold`] or within a
    /// run from [`Producer::claim_and_hold_slice`].
    ///
    /// # Safety
    ///
    /// `pos` came from `claim_and_hold` on this handle and was not published since; any
    /// other position could publish a slot another producer is still writing.
    #[cfg(feature = "test-hooks")]
    pub unsafe fn publish_held(&mut self, pos: u64) -> Result<(), TryError> {
        if self.publish(pos) {
            Ok(())
        } else {
            Err(TryError::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }
}

handle_controls!([T: Element] Producer<T>, Slots<T>, Space, h.mem, h.strategy, h.sleeper; after = h.record_sleeper);

crate::wait::blocking::typed_blocking!(producer mpmc);
