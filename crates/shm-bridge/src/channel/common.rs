//! What the channel kinds share: the type and size checks of connect, taking over a
//! dead holder's ring claim, the wait loop that looks at the peer between slices, and the
//! mapping of ring errors to channel errors.

use super::*;
use shm_queue::mpmc;

/// How long an MPMC handle waits on a claim stuck by another participant before it asks
/// whether that participant is alive.
pub(super) const RECOVERY_PATIENCE: Duration = Duration::from_millis(50);

/// The MPMC owner token of an endpoint: its slot and generation.
pub(super) fn token(ep: &Endpoint) -> u64 {
    ((ep.slot as u64 + 1) << 32) | (ep.generation & 0xffff_ffff)
}

/// Answers the MPMC ring's "is this owner dead?" from the participant slots' OFD locks.
pub(super) struct SlotLiveness {
    region: Arc<Region>,
    ctl: Control,
    own: u64,
    slots: usize,
}

impl SlotLiveness {
    pub(super) fn new(ep: &Endpoint) -> Self {
        SlotLiveness {
            region: ep.region.clone(),
            ctl: ep.ctl,
            own: token(ep),
            slots: ep.slots,
        }
    }
}

impl mpmc::Liveness for SlotLiveness {
    fn is_dead(&self, owner: u64) -> bool {
        if owner == self.own {
            return false;
        }
        let slot = (owner >> 32) as usize;
        if slot == 0 || slot > self.slots {
            return true; // not a token any participant could have registered
        }
        let i = slot - 1;
        if self.ctl.slot(&self.region, i).generation & 0xffff_ffff != owner & 0xffff_ffff {
            return true; // the slot has been taken over since: its owner is gone
        }
        match self.region.fd() {
            Some(fd) => !lock::is_locked(fd, lock::slot_offset(i)).unwrap_or(true),
            None => false,
        }
    }
}

/// Refuses an element type other than the one the channel records.
pub(super) fn check_element(name: &str, layout: &Layout, elem: &ElementType) -> Result<()> {
    let want = elem.name();
    // The control block keeps the first 128 bytes of the name (the ring header's type
    // fingerprint, checked on attach, covers all of it).
    if layout.type_name != crate::control::Control::recorded_type_name(want)
        || layout.elem_size as usize != elem.size()
        || layout.elem_align as usize != elem.align()
    {
        return Err(Error::WrongKind {
            name: name.to_owned(),
            expected: format!(
                "a {} channel of {want:?} ({} bytes, align {})",
                layout.kind,
                elem.size(),
                elem.align()
            ),
            found: format!(
                "a {} channel of {:?} ({} bytes, align {}); both ends must name the element \
                 the same way (ChannelOptions::type_name, or the C/Python type_name)",
                layout.kind, layout.type_name, layout.elem_size, layout.elem_align
            ),
        });
    }
    Ok(())
}

/// Checks the attached ring ends before the control block (a hostile header could claim
/// an area that overlaps it).
pub(super) fn fits(
    name: &str,
    region: &Region,
    need: std::result::Result<usize, shm_queue::Error>,
) -> Result<()> {
    let need = need.map_err(|e| Error::queue(name, e, Duration::ZERO))?;
    let room = region.len().saturating_sub(crate::control::CONTROL_SIZE);
    if need > room {
        return Err(Error::Corrupt {
            name: name.to_owned(),
            path: crate::endpoint::shm_path(name).display().to_string(),
            reason: format!(
                "its ring needs {need} bytes but only {room} precede the control block"
            ),
        });
    }
    Ok(())
}

/// Takes the ring's consumer claim; a claim left by a dead consumer (we hold the slot lock,
/// so no live one exists) is released first.
pub(super) fn take_over<H>(
    name: &str,
    take: impl Fn() -> std::result::Result<H, shm_queue::Error>,
    holder: Option<u64>,
    release: impl FnOnce(u64) -> bool,
) -> Result<H> {
    match take() {
        Ok(h) => Ok(h),
        Err(shm_queue::Error::ConsumerClaimed { .. }) => {
            if let Some(h) = holder {
                release(h);
            }
            take().map_err(|e| Error::queue(name, e, Duration::ZERO))
        }
        Err(e) => Err(Error::queue(name, e, Duration::ZERO)),
    }
}

/// The two SPSC ring types as the connect path sees them.
pub(super) trait SpscRing: Sized {
    type Consumer;
    fn need(&self) -> std::result::Result<usize, shm_queue::Error>;
    fn region(&self) -> &Arc<Region>;
    fn consumer(&self) -> std::result::Result<Self::Consumer, shm_queue::Error>;
    fn consumer_holder(&self) -> Option<u64>;
    /// # Safety
    ///
    /// As the rings' `force_release_consumer`.
    unsafe fn force_release_consumer(&self, holder: u64) -> bool;
}

macro_rules! spsc_ring {
    ([$($gen:tt)*] $ring:ty, $consumer:ty) => {
        impl<$($gen)*> SpscRing for $ring {
            type Consumer = $consumer;
            fn need(&self) -> std::result::Result<usize, shm_queue::Error> {
                Ok(<$ring>::area_size(self))
            }
            fn region(&self) -> &Arc<Region> {
                <$ring>::region(self)
            }
            fn consumer(&self) -> std::result::Result<$consumer, shm_queue::Error> {
                <$ring>::consumer(self)
            }
            fn consumer_holder(&self) -> Option<u64> {
                <$ring>::consumer_holder(self)
            }
            unsafe fn force_release_consumer(&self, holder: u64) -> bool {
                // SAFETY: forwarded from the caller.
                unsafe { <$ring>::force_release_consumer(self, holder) }
            }
        }
    };
}
spsc_ring!([T: Element] spsc::Ring<T>, spsc::Consumer<T>);
spsc_ring!([] shm_queue::bytes::Ring, shm_queue::bytes::Consumer);

/// The consumer end of the SPSC ring in `region`, for connect: attaches (validating the
/// header), checks the ring ends before the control block, and takes the consumer side,
/// taking over a dead holder's claim.
pub(super) fn attach_consumer<R: SpscRing>(
    name: &str,
    region: &Arc<Region>,
    attach: impl FnOnce(Arc<Region>) -> std::result::Result<R, shm_queue::Error>,
) -> Result<R::Consumer> {
    let ring = attach(region.clone()).map_err(|e| Error::queue(name, e, Duration::ZERO))?;
    fits(name, ring.region(), ring.need())?;
    take_over(
        name,
        || ring.consumer(),
        ring.consumer_holder(),
        |h| {
            // SAFETY: we hold the consumer slot's OFD lock, so no live bridge consumer uses
            // the ring; the holder is a dead process's handle.
            unsafe { ring.force_release_consumer(h) }
        },
    )
}

/// A send that may wait: `first` is the non-blocking attempt (no syscall when there is
/// room). On `WouldBlock`, runs the ring's blocking call through [`wait_loop`] and counts
/// the message; any other outcome of `first` is returned as it is (it counted itself).
pub(super) fn send_or_wait(
    first: Result<()>,
    ep: &mut Endpoint,
    deadline: Option<Instant>,
    bytes: u64,
    blocking: impl FnMut(Instant) -> std::result::Result<(), shm_queue::Error>,
) -> Result<()> {
    match first {
        Err(Error::WouldBlock { .. }) => {}
        other => return other,
    }
    wait_loop(ep, deadline, blocking)?;
    ep.messages += 1;
    ep.bytes += bytes;
    Ok(())
}

/// The ring producers a typed or MPMC sender wraps.
pub(super) trait PushRing {
    type Item;
    fn try_push(&mut self, v: Self::Item) -> std::result::Result<(), shm_queue::TryError>;
    fn is_closed(&self) -> bool;
}

/// A send that does not wait, for the typed and MPMC senders: looks at the peer every few
/// calls, then pushes; a full ring is `WouldBlock`, or `Closed`/`PeerGone` when the other
/// side is gone.
#[inline]
pub(super) fn send_now<R: PushRing>(tx: &mut R, ep: &mut Endpoint, v: R::Item) -> Result<()> {
    if ep.tick() {
        sender_check(ep, tx.is_closed())?;
    }
    match tx.try_push(v) {
        Ok(()) => {
            ep.messages += 1;
            Ok(())
        }
        Err(e) => {
            let closed = tx.is_closed();
            Err(sender_error(ep, e.into(), closed))
        }
    }
}

/// The ring consumers a typed or MPMC receiver wraps.
pub(super) trait PopRing {
    type Item;
    fn try_pop(&mut self) -> std::result::Result<Self::Item, shm_queue::TryError>;
    fn is_closed(&self) -> bool;
    fn is_empty(&self) -> bool;
}

/// [`PushRing`] and [`PopRing`] for the producer and consumer of each typed ring module.
macro_rules! typed_ring_ends {
    ($($m:ident),*) => {$(
        impl<T: Pod> PushRing for $m::Producer<T> {
            type Item = T;
            #[inline]
            fn try_push(&mut self, v: T) -> std::result::Result<(), shm_queue::TryError> {
                $m::Producer::try_push(self, v)
            }
            fn is_closed(&self) -> bool {
                $m::Producer::is_closed(self)
            }
        }

        impl<T: Pod> PopRing for $m::Consumer<T> {
            type Item = T;
            #[inline]
            fn try_pop(&mut self) -> std::result::Result<T, shm_queue::TryError> {
                $m::Consumer::try_pop(self)
            }
            fn is_closed(&self) -> bool {
                $m::Consumer::is_closed(self)
            }
            fn is_empty(&self) -> bool {
                $m::Consumer::is_empty(self)
            }
        }
    )*};
}
typed_ring_ends!(spsc, mpmc);

/// A receive that does not wait, for the typed and MPMC receivers: the element, or the
/// channel-level error (`WouldBlock`, or `Closed`/`PeerGone` once empty for good).
#[inline]
pub(super) fn recv_now<R: PopRing>(rx: &mut R, ep: &mut Endpoint) -> Result<R::Item> {
    match rx.try_pop() {
        Ok(v) => {
            ep.messages += 1;
            ep.tick();
            Ok(v)
        }
        Err(e) => {
            let closed = rx.is_closed();
            Err(recv_error(ep, e.into(), closed, || !rx.is_empty()))
        }
    }
}

/// A ready element, taken and counted as `try_recv` would, for the blocking receives' fast
/// path (no clock read, no slice set-up); `None` if none is ready now (the caller waits).
#[inline]
pub(super) fn pop_ready<R: PopRing>(rx: &mut R, ep: &mut Endpoint) -> Option<R::Item> {
    let v = rx.try_pop().ok()?;
    ep.messages += 1;
    ep.tick();
    Some(v)
}

/// The channel error for a ring error: a truncated shared object becomes the region's
/// `Truncated` (naming the file, the length mapped and its length now); the rest as
/// [`Error::queue_shared`].
pub(super) fn ring_error(ep: &Endpoint, e: shm_queue::Error, waited: Duration) -> Error {
    truncated(ep).unwrap_or_else(|| Error::queue_shared(&ep.name, e, waited))
}

/// The region's `Truncated` error once the guard found the channel's file shrunk under us:
/// it outranks every other reading of the (now zeroed) control block and ring.
pub(super) fn truncated(ep: &Endpoint) -> Option<Error> {
    ep.region.check_truncated().err().map(Error::Region)
}

/// Runs a blocking ring call in slices of [`WAIT_SLICE`], looking at the peer between them.
/// `attempt` gets the slice's deadline; `Timeout` means "not yet".
pub(super) fn wait_loop<R>(
    ep: &mut Endpoint,
    deadline: Option<Instant>,
    attempt: impl FnMut(Instant) -> std::result::Result<R, shm_queue::Error>,
) -> Result<R> {
    wait_slices(ep, deadline, true, attempt)
}

/// [`wait_loop`], looking between slices at the peer (`peer`) or only at the file (a
/// broadcast sender: a subscriber's death or hang is never its error).
pub(super) fn wait_slices<R>(
    ep: &mut Endpoint,
    deadline: Option<Instant>,
    peer: bool,
    mut attempt: impl FnMut(Instant) -> std::result::Result<R, shm_queue::Error>,
) -> Result<R> {
    let start = Instant::now();
    loop {
        let slice = Instant::now() + WAIT_SLICE;
        let until = deadline.map_or(slice, |d| d.min(slice));
        match attempt(until) {
            Ok(r) => return Ok(r),
            Err(shm_queue::Error::Timeout { .. }) => {}
            Err(e) => return Err(ring_error(ep, e, start.elapsed())),
        }
        ep.publish_counts();
        let problem = if peer { ep.peer_error() } else { truncated(ep) };
        if let Some(e) = problem {
            // One more look: anything published before the death is still delivered.
            return match attempt(Instant::now()) {
                Ok(r) => Ok(r),
                Err(_) => Err(e),
            };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::Timeout {
                name: ep.name.to_string(),
                waited: start.elapsed(),
            });
        }
    }
}

/// A sender's look at the other side: `Closed` if the ring was closed, `PeerGone` if every
/// consumer died (a hung one is not an error for a non-blocking call).
pub(super) fn sender_check(ep: &Endpoint, closed_now: bool) -> Result<()> {
    if closed_now {
        return Err(closed(ep));
    }
    match ep.peer_error() {
        Some(e @ Error::PeerGone { .. }) => Err(e),
        _ => Ok(()),
    }
}

/// The error for a failed send: when the ring is full, look at the peer (every few
/// milliseconds) so a dead or departed consumer is reported rather than "full" forever.
pub(super) fn sender_error(ep: &mut Endpoint, e: shm_queue::Error, closed_now: bool) -> Error {
    if let Some(t) = truncated(ep) {
        return t;
    }
    if e.is_retryable() && ep.due() {
        if let Err(gone) = sender_check(ep, closed_now) {
            return gone;
        }
    }
    ring_error(ep, e, Duration::ZERO)
}

pub(super) fn closed(ep: &Endpoint) -> Error {
    Error::Closed {
        name: ep.name.to_string(),
        by: match ep.role {
            Role::Producer => "consumer".into(),
            Role::Consumer => "producer".into(),
        },
    }
}

/// Maps a receive-side ring error: empty means "maybe the producer is gone" (looked at
/// every few milliseconds), or "closed" once the ring is closed and `retry` (is there a
/// message after all?) says no.
pub(super) fn recv_error(
    ep: &mut Endpoint,
    e: shm_queue::Error,
    closed_now: bool,
    retry: impl FnOnce() -> bool,
) -> Error {
    if let Some(t) = truncated(ep) {
        return t;
    }
    match e {
        shm_queue::Error::Empty { .. } if closed_now => {
            if retry() {
                ring_error(ep, e, Duration::ZERO)
            } else {
                closed(ep)
            }
        }
        shm_queue::Error::Empty { .. } if ep.tick() => match ep.peer_error() {
            Some(gone @ Error::PeerGone { .. }) if !retry() => gone,
            _ => ring_error(ep, e, Duration::ZERO),
        },
        shm_queue::Error::Closed { .. } => closed(ep),
        e => ring_error(ep, e, Duration::ZERO),
    }
}
