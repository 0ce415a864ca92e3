//! What producer and consumer handles share: the owner-table entry a handle registers,
//! the claim it records there before each claim, and the recovery of claims whose owners
//! died (a stuck slot is judged only after its owners are found dead).

use super::*;

/// A recovery configuration: the liveness check and the patience.
#[derive(Clone)]
pub(super) struct Recovery {
    pub(super) liveness: std::sync::Arc<dyn Liveness + Send + Sync>,
    pub(super) patience: Duration,
}

impl Recovery {
    pub(super) fn new(liveness: impl Liveness + Send + Sync + 'static, patience: Duration) -> Self {
        Recovery {
            liveness: std::sync::Arc::new(liveness),
            patience,
        }
    }
}

/// Since when this handle has seen one position stuck.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stuck {
    pos: u64,
    since: Option<Instant>,
}

impl Stuck {
    /// Notes that `pos` is stuck; `true` once it has been for `patience`.
    pub(super) fn due(cell: &Cell<Self>, pos: u64, patience: Duration) -> bool {
        let s = cell.get();
        match s.since {
            Some(t) if s.pos == pos => t.elapsed() >= patience,
            _ => {
                cell.set(Stuck {
                    pos,
                    since: Some(Instant::now()),
                });
                patience.is_zero()
            }
        }
    }

    /// Starts a new patience period for the same position (after a check found the owner
    /// alive).
    pub(super) fn rearm(cell: &Cell<Self>) {
        let s = cell.get();
        cell.set(Stuck {
            pos: s.pos,
            since: Some(Instant::now()),
        });
    }
}

/// What producer and consumer handles share: the memory, the owner entry, recovery.
pub(super) struct Handle<T: Element> {
    pub(super) mem: Arc<Slots<T>>,
    pub(super) token: u64,
    role: u64,
    /// Our owner entry, once registered (clones register on first use).
    pub(super) entry: Option<usize>,
    pub(super) recovery: Option<Recovery>,
    stuck: Cell<Stuck>,
    /// The `claim_len` last stored in our entry, to skip storing it again (single-element
    /// claims store only `claim_start`).
    recorded_len: Cell<u64>,
    /// How the blocking calls wait.
    pub(super) strategy: WaitStrategy,
    /// Whether this handle is counted among its side's sleepers.
    pub(super) sleeper: crate::wait::Sleeper,
    /// Producers: the consumers' readiness descriptor, if installed (shared by clones).
    pub(super) readiness: ReadinessFd,
}

impl<T: Element> Handle<T> {
    pub(super) fn new(mem: Arc<Slots<T>>, token: u64, role: u64) -> Result<Self, Error> {
        if token == 0 {
            return Err(Error::InvalidOwnerToken);
        }
        let mut h = Handle {
            mem,
            token,
            role,
            entry: None,
            recovery: None,
            stuck: Cell::default(),
            recorded_len: Cell::new(0),
            strategy: WaitStrategy::default(),
            sleeper: crate::wait::Sleeper::No,
            readiness: ReadinessFd::default(),
        };
        h.entry()?;
        Ok(h)
    }

    /// The words this handle waits on: space for a producer, data for a consumer.
    fn own_signal(&self) -> Signal<'_> {
        let header = self.mem.header();
        if self.role == ROLE_PRODUCER {
            header.space_signal()
        } else {
            header.data_signal()
        }
    }

    /// Records in our owner entry (if we hold one yet) how we are counted among the
    /// sleepers, so a peer that reclaims the entry after our death can take the counts back.
    pub(super) fn record_sleeper(&self) {
        if let Some(e) = self.entry.and_then(|i| self.mem.owner(i)) {
            e.sleep.store(self.sleeper.code(), Ordering::SeqCst);
        }
    }

    /// Our owner entry's index, registering first if needed.
    #[inline]
    pub(super) fn entry(&mut self) -> Result<usize, TryError> {
        if let Some(i) = self.entry {
            return Ok(i);
        }
        let m = &*self.mem;
        for i in 0..m.layout.owners {
            let Some(e) = m.owner(i) else { break };
            if e.token.load(Ordering::Relaxed) == 0
                && e.token
                    .compare_exchange(0, self.token, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // The previous holder's claim (if any) is resolved, so a peer reading it
                // together with our token in the meantime learns nothing wrong.
                e.claim_len.store(0, Ordering::Relaxed);
                e.role.store(self.role, Ordering::Relaxed);
                e.sleep.store(self.sleeper.code(), Ordering::SeqCst);
                self.recorded_len.set(0);
                self.entry = Some(i);
                return Ok(i);
            }
        }
        Err(TryError::OwnerTableFull {
            entries: m.layout.owners as u64,
        })
    }

    /// Records in entry `i` that we are about to claim `len` positions from `start`. The
    /// `Release` of the claiming compare-and-swap publishes it.
    #[inline]
    pub(super) fn record(&self, i: usize, start: u64, len: u64) {
        if let Some(e) = self.mem.owner(i) {
            // Start first: while len is still the previous claim's, the entry may cover a
            // position we never held, which can only delay a recovery, never allow a wrong
            // one (see `owners_dead`).
            e.claim_start.store(start, Ordering::Relaxed);
            if self.recorded_len.get() != len {
                e.claim_len.store(len, Ordering::Relaxed);
                self.recorded_len.set(len);
            }
        }
    }

    /// Clears the record after a claim attempt failed, so a stale record of ours never
    /// covers a position another handle holds (it would veto that handle's recovery).
    #[inline]
    pub(super) fn clear(&self, i: usize) {
        if let Some(e) = self.mem.owner(i) {
            e.claim_len.store(0, Ordering::Relaxed);
            self.recorded_len.set(0);
        }
    }

    /// Whether every registered entry of `role` whose claim covers `pos` belongs to a dead
    /// owner (and there is at least one).
    fn owners_dead(&self, role: u64, pos: u64, liveness: &dyn Liveness) -> bool {
        let m = &*self.mem;
        let cap = m.layout.capacity() as u64;
        let mut found = false;
        for e in (0..m.layout.owners).filter_map(|i| m.owner(i)) {
            let token = e.token.load(Ordering::Acquire);
            if token == 0 || e.role.load(Ordering::Relaxed) != role {
                continue;
            }
            let start = e.claim_start.load(Ordering::Relaxed);
            let len = e.claim_len.load(Ordering::Relaxed).min(cap);
            if pos < start || pos - start >= len {
                continue;
            }
            if !liveness.is_dead(token) {
                return false;
            }
            found = true;
        }
        found
    }

    /// Consumer side: `pos` at `head` is claimed (`tail > pos`) but unpublished. If it has
    /// been for the patience and its owners are dead, poisons it. `true` if the slot
    /// changed (poisoned by us, or published meanwhile): look again.
    pub(super) fn recover_producer_claim(&self, pos: u64) -> bool {
        let Some(rec) = &self.recovery else {
            return false;
        };
        if !Stuck::due(&self.stuck, pos, rec.patience) {
            return false;
        }
        if !self.owners_dead(ROLE_PRODUCER, pos, &*rec.liveness) {
            Stuck::rearm(&self.stuck);
            return false;
        }
        let m = &*self.mem;
        if m.seq(pos)
            .compare_exchange(pos, POISON | pos, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            m.counters().skipped.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Producer side: the slot of `t` still holds `q = t - capacity`, which a consumer has
    /// claimed (`head > q`) and not released (`seq` is `q + 1` or `POISON | q`). If that has
    /// lasted the patience and its owners are dead, releases the slot for `t`. `true` if the
    /// slot changed: look again.
    pub(super) fn recover_consumer_claim(&self, t: u64, seq: u64) -> bool {
        let Some(rec) = &self.recovery else {
            return false;
        };
        let m = &*self.mem;
        let cap = m.layout.capacity() as u64;
        let Some(q) = t.checked_sub(cap) else {
            return false;
        };
        if (seq != q + 1 && seq != POISON | q)
            || m.header().consumer.pos.load(Ordering::Acquire) <= q
        {
            return false;
        }
        if !Stuck::due(&self.stuck, q, rec.patience) {
            return false;
        }
        if !self.owners_dead(ROLE_CONSUMER, q, &*rec.liveness) {
            Stuck::rearm(&self.stuck);
            return false;
        }
        if m.seq(q)
            .compare_exchange(seq, t, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && seq == q + 1
        {
            m.counters().released.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

impl<T: Element> Clone for Handle<T> {
    fn clone(&self) -> Self {
        let mut h = Handle {
            mem: self.mem.clone(),
            token: self.token,
            role: self.role,
            entry: None,
            recovery: self.recovery.clone(),
            stuck: Cell::default(),
            recorded_len: Cell::new(0),
            strategy: self.strategy,
            sleeper: crate::wait::Sleeper::No,
            readiness: self.readiness.clone(),
        };
        // A clone that may sleep counts itself, so publishers keep waking it.
        let (strategy, mut sleeper) = (h.strategy, crate::wait::Sleeper::No);
        h.own_signal().set_strategy(&mut sleeper, strategy);
        h.sleeper = sleeper;
        h
    }
}

/// The token of an owner entry whose holder is dropping it: not free (0), never a live
/// holder's token (tokens carry a pid or a slot number in their high half), and skipped by
/// `reclaim_dead_owners`.
pub(super) const LEAVING: u64 = u64::MAX;

impl<T: Element> Drop for Handle<T> {
    fn drop(&mut self) {
        let mut sleeper = self.sleeper;
        match self.entry.and_then(|i| self.mem.owner(i)) {
            Some(e) => {
                // Only if still ours: a peer may have reclaimed it (judging us dead), taken
                // our sleeper counts back then, and handed the entry on. LEAVING keeps both
                // reclaimers and new holders off the entry while we take our counts back.
                let ours = e
                    .token
                    .compare_exchange(self.token, LEAVING, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok();
                if ours {
                    e.claim_len.store(0, Ordering::Relaxed);
                    e.sleep.store(0, Ordering::SeqCst);
                    self.own_signal().unregister(&mut sleeper);
                    e.token.store(0, Ordering::Release);
                }
            }
            None => self.own_signal().unregister(&mut sleeper),
        }
    }
}
