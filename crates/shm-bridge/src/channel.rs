//! Named channels: a producer process creates one, consumer processes connect to it.
//!
//! A channel is `/dev/shm/shmlane.NAME`: a ring from shm-queue at offset 0 and the bridge's
//! control block in the last page (see [`crate::control`]). Three kinds share one set of
//! rules: [`Sender`]/[`Receiver`] (typed SPSC), [`ByteSender`]/[`ByteReceiver`] (byte
//! messages), [`MpmcSender`]/[`MpmcReceiver`] (any number of processes per side).
//!
//! Every handle holds an OFD lock for its role and refreshes a heartbeat word, so the other
//! side learns of its death from the kernel and of a hang from the clock:
//!
//! - a receiver gets every message that was fully sent, then [`Error::PeerGone`] if the
//!   producer died, or [`Error::Closed`] if it closed (or dropped) its end;
//! - a sender gets [`Error::PeerGone`] once the consumer died (checked every few
//!   milliseconds while sending, and whenever the ring is full), or [`Error::Closed`] if the
//!   consumer left cleanly;
//! - a blocking call looks at the peer every 40 ms, so it wakes within that of a death, and
//!   returns [`Error::PeerHung`] (retryable) while the peer's heartbeat is silent;
//! - the last side to leave removes the name; a name left behind by dead processes is
//!   reclaimed by the next create ([`Sender::reclaimed`]) or by `shmlane gc`.
//!
//! ```
//! use shm_bridge::ChannelOptions;
//! # let name = format!("doc-channel-{}", std::process::id());
//!
//! let mut tx = ChannelOptions::new().capacity(1024).create::<u64>(&name)?;
//! // In another process (here the same one, for the example):
//! let mut rx = ChannelOptions::new().connect::<u64>(&name)?;
//! tx.send(42)?;
//! assert_eq!(rx.recv()?, 42);
//! drop(tx); // closes: the receiver drains, then sees Closed
//! assert!(rx.recv().unwrap_err().is_disconnected());
//! # Ok::<(), shm_bridge::Error>(())
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;
use shm_queue::bytes::{self, ReadGuard, WriteClaim};
use shm_queue::mpmc;
use shm_queue::spsc::{self, Ring};
use shm_queue::wait::WaitStrategy;
use shm_region::Region;

use crate::control::{ChannelKind, Control, Layout, Role, MAX_SLOTS};
use crate::endpoint::{Common, Endpoint, PeerState, Reclaimed, WAIT_SLICE};
use crate::lock;
use crate::{Error, Result};

/// Builder methods that set a `bool` field of `common` of the same name (each with its own
/// doc).
macro_rules! common_flag_setters {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, yes: bool) -> Self {
            self.common.$name = yes;
            self
        }
    )*};
}

/// Builder for creating and connecting to channels.
///
/// Defaults: capacity 1024 elements (typed, MPMC) or 1 MiB of data (bytes), largest byte
/// message a quarter of the capacity, [`WaitStrategy::spin_then_yield`], mode `0600`, a
/// 100 ms heartbeat, a 10 s connect timeout, 16 participant slots for MPMC.
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct ChannelOptions {
    capacity: Option<usize>,
    max_message: Option<usize>,
    wait: WaitStrategy,
    common: Common,
    timeout: Duration,
    participants: usize,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelOptions {
    /// The defaults listed on [`ChannelOptions`].
    pub fn new() -> Self {
        ChannelOptions {
            capacity: None,
            max_message: None,
            wait: WaitStrategy::default(),
            common: Common::default(),
            timeout: Duration::from_secs(10),
            participants: 16,
        }
    }

    /// Ring capacity: elements for typed and MPMC channels, data bytes for byte channels.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// Largest byte message (byte channels only).
    pub fn max_message(mut self, n: usize) -> Self {
        self.max_message = Some(n);
        self
    }

    /// How blocking calls wait (spin, yield, or sleep in the kernel).
    pub fn wait_strategy(mut self, w: WaitStrategy) -> Self {
        self.wait = w;
        self
    }

    /// Permission bits of a new channel (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.common.mode = mode;
        self
    }

    common_flag_setters! {
        /// Touch every page up front, so the first messages do not page-fault.
        prefault;
        /// Ask for transparent huge pages (`MADV_HUGEPAGE`; tmpfs honours it when
        /// `/sys/kernel/mm/transparent_hugepage/shmem_enabled` allows).
        huge_pages;
        /// Lock the channel's pages in RAM (`mlock`; limited by `RLIMIT_MEMLOCK`).
        mlock;
        /// Connect to a channel owned by another uid (default: refuse).
        allow_foreign_owner;
        /// Connect to a channel that group or others may write (default: refuse).
        allow_shared_write;
    }

    /// Heartbeat period (default 100 ms; `None`: no heartbeat thread, and peers cannot
    /// tell if this process hangs).
    pub fn heartbeat(mut self, every: Option<Duration>) -> Self {
        self.common.heartbeat = every;
        self
    }

    /// How long connecting waits for the channel to appear and become ready (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Participant slots of an MPMC channel (2 to 60; default 16).
    pub fn participants(mut self, n: usize) -> Self {
        self.participants = n;
        self
    }

    fn bad(&self, name: &str, reason: String) -> Error {
        Error::BadConfig {
            name: name.to_owned(),
            reason,
        }
    }

    fn element_layout<T>(&self, kind: ChannelKind, ring_bytes: usize, slots: u32) -> Layout {
        Layout {
            kind,
            ring_bytes: ring_bytes as u64,
            elem_size: std::mem::size_of::<T>() as u32,
            elem_align: std::mem::align_of::<T>() as u32,
            type_name: std::any::type_name::<T>().to_owned(),
            slots,
        }
    }

    /// Creates typed channel `name` and returns its sending end.
    ///
    /// # Errors
    ///
    /// [`Error::BadName`], [`Error::InUse`] (a live process holds the name),
    /// [`Error::Region`] (for example a full `/dev/shm`), [`Error::Queue`] (a capacity
    /// the ring refuses).
    pub fn create<T: Pod>(&self, name: &str) -> Result<Sender<T>> {
        let cap = self.capacity.unwrap_or(1024);
        let bytes =
            Ring::<T>::required_bytes(cap).map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = self.element_layout::<T>(ChannelKind::Typed, bytes, 2);
        let (ep, ring) =
            Endpoint::create(name, layout, &self.common, |r| Ring::<T>::create(r, cap))?;
        let mut tx = ring
            .producer()
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        tx.set_wait_strategy(self.wait);
        Ok(Sender { tx, ep })
    }

    /// Connects to typed channel `name` as its consumer, waiting up to the timeout for it.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectTimeout`], [`Error::WrongKind`] (another kind or element type),
    /// [`Error::Corrupt`], [`Error::InUse`] (a live consumer holds it), [`Error::Region`]
    /// (for example a segment owned by another uid).
    pub fn connect<T: Pod>(&self, name: &str) -> Result<Receiver<T>> {
        let (ep, mut rx) = Endpoint::connect(
            name,
            ChannelKind::Typed,
            Role::Consumer,
            &self.common,
            self.timeout,
            |layout| check_type::<T>(name, layout),
            |region, _| {
                let ring = Ring::<T>::attach(region.clone())
                    .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
                fits(
                    name,
                    ring.region(),
                    Ring::<T>::required_bytes(ring.capacity()),
                )?;
                take_over(
                    name,
                    || ring.consumer(),
                    ring.consumer_holder(),
                    |h| {
                        // SAFETY: we hold the consumer slot's OFD lock, so no live bridge consumer
                        // uses the ring; the holder is a dead process's handle.
                        unsafe { ring.force_release_consumer(h) }
                    },
                )
            },
        )?;
        rx.set_wait_strategy(self.wait);
        Ok(Receiver { rx, ep })
    }

    /// Creates byte-message channel `name` and returns its sending end.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create`]; [`Error::BadConfig`] for a largest message the
    /// capacity cannot carry.
    pub fn create_bytes(&self, name: &str) -> Result<ByteSender> {
        let cap = self.capacity.unwrap_or(1 << 20);
        let max = self.max_message.unwrap_or(cap / 4);
        let limit = shm_queue::bytes::max_message_for(cap);
        if max == 0 || max > limit {
            return Err(self.bad(
                name,
                format!(
                    "largest message {max} bytes is not between 1 and {limit} for a capacity \
                     of {cap} bytes; raise the capacity to at least twice the message size \
                     plus 16"
                ),
            ));
        }
        let bytes =
            bytes::Ring::required_bytes(cap).map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = Layout {
            kind: ChannelKind::Bytes,
            ring_bytes: bytes as u64,
            elem_size: 0,
            elem_align: 0,
            type_name: "bytes".into(),
            slots: 2,
        };
        let (ep, ring) = Endpoint::create(name, layout, &self.common, |r| {
            bytes::Ring::create_with(r, bytes::Options::new(cap).max_message(max))
        })?;
        let mut tx = ring
            .producer()
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        tx.set_wait_strategy(self.wait);
        Ok(ByteSender { tx, ep })
    }

    /// Connects to byte-message channel `name` as its consumer.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect`].
    pub fn connect_bytes(&self, name: &str) -> Result<ByteReceiver> {
        let (ep, mut rx) = Endpoint::connect(
            name,
            ChannelKind::Bytes,
            Role::Consumer,
            &self.common,
            self.timeout,
            |_| Ok(()),
            |region, _| {
                let ring = bytes::Ring::attach(region.clone())
                    .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
                fits(
                    name,
                    ring.region(),
                    bytes::Ring::required_bytes(ring.capacity()),
                )?;
                take_over(
                    name,
                    || ring.consumer(),
                    ring.consumer_holder(),
                    |h| {
                        // SAFETY: we hold the consumer slot's OFD lock, so no live bridge consumer
                        // uses the ring; the holder is a dead process's handle.
                        unsafe { ring.force_release_consumer(h) }
                    },
                )
            },
        )?;
        rx.set_wait_strategy(self.wait);
        Ok(ByteReceiver { rx, ep })
    }

    fn mpmc_options(&self, name: &str) -> Result<mpmc::Options> {
        if !(2..=MAX_SLOTS).contains(&self.participants) {
            return Err(self.bad(
                name,
                format!(
                    "{} participants is not between 2 and {MAX_SLOTS}",
                    self.participants
                ),
            ));
        }
        Ok(mpmc::Options::new(self.capacity.unwrap_or(1024)).owners(self.participants))
    }

    /// Creates MPMC channel `name` and returns a sending end; more producers and consumers
    /// join with [`ChannelOptions::connect_mpmc_producer`] and
    /// [`ChannelOptions::connect_mpmc_consumer`].
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create`].
    pub fn create_mpmc<T: Pod>(&self, name: &str) -> Result<MpmcSender<T>> {
        let opts = self.mpmc_options(name)?;
        let bytes = mpmc::Ring::<T>::required_bytes_with(opts)
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = self.element_layout::<T>(ChannelKind::Mpmc, bytes, self.participants as u32);
        let (ep, ring) = Endpoint::create(name, layout, &self.common, |r| {
            mpmc::Ring::<T>::create_with(r, opts)
        })?;
        self.mpmc_sender(name, ep, &ring)
    }

    /// Joins MPMC channel `name` as another producer.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect`]; [`Error::InUse`] when every participant slot is taken.
    pub fn connect_mpmc_producer<T: Pod>(&self, name: &str) -> Result<MpmcSender<T>> {
        let (ep, ring) = self.join_mpmc::<T>(name, Role::Producer)?;
        self.mpmc_sender(name, ep, &ring)
    }

    /// A producer handle of `ring` registered under `ep`'s token, with dead-claim recovery.
    fn mpmc_sender<T: Pod>(
        &self,
        name: &str,
        ep: Endpoint,
        ring: &mpmc::Ring<T>,
    ) -> Result<MpmcSender<T>> {
        let tx = ring
            .producer_with_token(token(&ep))
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let mut tx = tx.with_recovery(SlotLiveness::new(&ep), RECOVERY_PATIENCE);
        tx.set_wait_strategy(self.wait);
        Ok(MpmcSender { tx, ep })
    }

    /// Joins MPMC channel `name` as a consumer.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect_mpmc_producer`].
    pub fn connect_mpmc_consumer<T: Pod>(&self, name: &str) -> Result<MpmcReceiver<T>> {
        let (ep, ring) = self.join_mpmc::<T>(name, Role::Consumer)?;
        let rx = ring
            .consumer_with_token(token(&ep))
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let mut rx = rx.with_recovery(SlotLiveness::new(&ep), RECOVERY_PATIENCE);
        rx.set_wait_strategy(self.wait);
        Ok(MpmcReceiver { rx, ep })
    }

    fn join_mpmc<T: Pod>(&self, name: &str, role: Role) -> Result<(Endpoint, mpmc::Ring<T>)> {
        Endpoint::connect(
            name,
            ChannelKind::Mpmc,
            role,
            &self.common,
            self.timeout,
            |layout| check_type::<T>(name, layout),
            |region, _| {
                let ring = mpmc::Ring::<T>::attach(region.clone())
                    .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
                let opts = mpmc::Options::new(ring.capacity()).owners(ring.owner_entries());
                fits(
                    name,
                    ring.region(),
                    mpmc::Ring::<T>::required_bytes_with(opts),
                )?;
                Ok(ring)
            },
        )
    }
}

/// How long an MPMC handle waits on a claim stuck by another participant before it asks
/// whether that participant is alive.
const RECOVERY_PATIENCE: Duration = Duration::from_millis(50);

/// The MPMC owner token of an endpoint: its slot and generation.
fn token(ep: &Endpoint) -> u64 {
    ((ep.slot as u64 + 1) << 32) | (ep.generation & 0xffff_ffff)
}

/// Answers the MPMC ring's "is this owner dead?" from the participant slots' OFD locks.
struct SlotLiveness {
    region: Arc<Region>,
    ctl: Control,
    own: u64,
    slots: usize,
}

impl SlotLiveness {
    fn new(ep: &Endpoint) -> Self {
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
fn check_type<T>(name: &str, layout: &Layout) -> Result<()> {
    let want = std::any::type_name::<T>();
    if layout.type_name != want
        || layout.elem_size as usize != std::mem::size_of::<T>()
        || layout.elem_align as usize != std::mem::align_of::<T>()
    {
        return Err(Error::WrongKind {
            name: name.to_owned(),
            expected: format!("a {} channel of {want}", layout.kind),
            found: format!(
                "a {} channel of {} ({} bytes, align {})",
                layout.kind, layout.type_name, layout.elem_size, layout.elem_align
            ),
        });
    }
    Ok(())
}

/// Checks the attached ring ends before the control block (a hostile header could claim
/// an area that overlaps it).
fn fits(
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
fn take_over<H>(
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

/// Runs a blocking ring call in slices of [`WAIT_SLICE`], looking at the peer between them.
/// `attempt` gets the slice's deadline; `Timeout` means "not yet".
fn wait_loop<R>(
    ep: &mut Endpoint,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Instant) -> std::result::Result<R, shm_queue::Error>,
) -> Result<R> {
    let start = Instant::now();
    loop {
        let slice = Instant::now() + WAIT_SLICE;
        let until = deadline.map_or(slice, |d| d.min(slice));
        match attempt(until) {
            Ok(r) => return Ok(r),
            Err(shm_queue::Error::Timeout { .. }) => {}
            Err(e) => return Err(Error::queue_shared(&ep.name, e, start.elapsed())),
        }
        ep.publish_counts();
        if let Some(e) = ep.peer_error() {
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

/// The methods every handle has, whatever its ring.
macro_rules! endpoint_methods {
    () => {
        /// The channel's name (without the `shmlane.` prefix).
        pub fn name(&self) -> &str {
            &self.ep.name
        }

        /// What the other side is doing (alive, hung, dead, left, or not there yet).
        pub fn peer_state(&self) -> PeerState {
            self.ep.peer_state()
        }

        /// Waits until a peer is attached and alive, up to `timeout`.
        ///
        /// # Errors
        ///
        /// [`Error::Timeout`], or [`Error::PeerGone`] if it attached and died.
        pub fn wait_for_peer(&self, timeout: Duration) -> Result<()> {
            let start = Instant::now();
            loop {
                match self.ep.peer_state() {
                    PeerState::Alive { .. } | PeerState::Hung { .. } => return Ok(()),
                    PeerState::Dead { .. } => {
                        if let Some(e) = self.ep.peer_error() {
                            return Err(e);
                        }
                    }
                    PeerState::Absent | PeerState::Left { .. } => {}
                }
                if start.elapsed() >= timeout {
                    return Err(Error::Timeout {
                        name: self.ep.name.to_string(),
                        waited: start.elapsed(),
                    });
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
}

/// The sending end of a typed channel. Dropping it closes the channel.
#[derive(Debug)]
pub struct Sender<T: Pod> {
    tx: spsc::Producer<T>,
    ep: Endpoint,
}

impl<T: Pod> Sender<T> {
    endpoint_methods!();

    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    /// Sends `value` if there is room.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when full; [`Error::PeerGone`] once the consumer died;
    /// [`Error::Closed`] if it left.
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<()> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        match self.tx.try_push(value) {
            Ok(()) => {
                self.ep.messages += 1;
                Ok(())
            }
            Err(e) => Err(self.full(e.into())),
        }
    }

    /// Sends `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`], [`Error::Closed`], [`Error::PeerHung`] (retryable).
    pub fn send(&mut self, value: T) -> Result<()> {
        self.send_deadline(value, None)
    }

    /// Sends `value`, waiting for room until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`Sender::send`], and [`Error::Timeout`].
    pub fn send_deadline(&mut self, value: T, deadline: Option<Instant>) -> Result<()> {
        match self.try_send(value) {
            Err(Error::WouldBlock { .. }) => {}
            other => return other,
        }
        let tx = &mut self.tx;
        wait_loop(&mut self.ep, deadline, |d| tx.push_blocking(value, Some(d)))?;
        self.ep.messages += 1;
        Ok(())
    }

    /// Sends as many of `values` as there is room for (one publication); returns how many.
    ///
    /// # Errors
    ///
    /// As [`Sender::try_send`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn send_partial_slice(&mut self, values: &[T]) -> Result<usize> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        match self.tx.push_partial_slice(values) {
            Ok(0) if !values.is_empty() => Err(self.full(shm_queue::Error::Full {
                requested: 1,
                available: 0,
            })),
            Ok(n) => {
                self.ep.messages += n as u64;
                Ok(n)
            }
            Err(e) => Err(self.full(e.into())),
        }
    }

    /// The ring's producer, for the zero-copy chunk API ([`spsc::Producer::write_chunk`]).
    /// Calls made through it skip the liveness checks and message counters.
    pub fn ring(&mut self) -> &mut spsc::Producer<T> {
        &mut self.tx
    }

    /// Marks the channel closed: the consumer drains it, then gets [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }

    /// Messages in the ring.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// `true` if the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// The ring's capacity in elements.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    fn check_peer(&mut self) -> Result<()> {
        sender_check(&self.ep, self.tx.is_closed())
    }

    fn full(&mut self, e: shm_queue::Error) -> Error {
        let closed_now = self.tx.is_closed();
        sender_error(&mut self.ep, e, closed_now)
    }
}

impl<T: Pod> Drop for Sender<T> {
    fn drop(&mut self) {
        self.tx.close();
    }
}

/// A sender's look at the other side: `Closed` if the ring was closed, `PeerGone` if every
/// consumer died (a hung one is not an error for a non-blocking call).
fn sender_check(ep: &Endpoint, closed_now: bool) -> Result<()> {
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
fn sender_error(ep: &mut Endpoint, e: shm_queue::Error, closed_now: bool) -> Error {
    if e.is_retryable() && ep.due() {
        if let Err(gone) = sender_check(ep, closed_now) {
            return gone;
        }
    }
    Error::queue_shared(&ep.name, e, Duration::ZERO)
}

fn closed(ep: &Endpoint) -> Error {
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
fn recv_error(
    ep: &mut Endpoint,
    e: shm_queue::Error,
    closed_now: bool,
    retry: impl FnOnce() -> bool,
) -> Error {
    match e {
        shm_queue::Error::Empty { .. } if closed_now => {
            if retry() {
                Error::queue_shared(&ep.name, e, Duration::ZERO)
            } else {
                closed(ep)
            }
        }
        shm_queue::Error::Empty { .. } if ep.tick() => match ep.peer_error() {
            Some(gone @ Error::PeerGone { .. }) if !retry() => gone,
            _ => Error::queue_shared(&ep.name, e, Duration::ZERO),
        },
        shm_queue::Error::Closed { .. } => closed(ep),
        e => Error::queue_shared(&ep.name, e, Duration::ZERO),
    }
}

/// The receiving end of a typed channel.
#[derive(Debug)]
pub struct Receiver<T: Pod> {
    rx: spsc::Consumer<T>,
    ep: Endpoint,
}

impl<T: Pod> Receiver<T> {
    endpoint_methods!();

    /// Receives a message if one is there.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty; once empty for good, [`Error::Closed`] (the
    /// producer closed) or [`Error::PeerGone`] (it died).
    #[inline]
    pub fn try_recv(&mut self) -> Result<T> {
        match self.rx.try_pop() {
            Ok(v) => {
                self.ep.messages += 1;
                self.ep.tick();
                Ok(v)
            }
            Err(e) => {
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e.into(), rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }
        }
    }

    /// Receives a message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::PeerGone`], [`Error::PeerHung`] (retryable).
    pub fn recv(&mut self) -> Result<T> {
        self.recv_deadline(None)
    }

    /// Receives a message, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`], and [`Error::Timeout`].
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T> {
        let rx = &mut self.rx;
        let v = wait_loop(&mut self.ep, deadline, |d| rx.pop_blocking(Some(d)))?;
        self.ep.messages += 1;
        Ok(v)
    }

    /// Receives up to `dst.len()` messages; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv`].
    pub fn recv_into(&mut self, dst: &mut [T]) -> Result<usize> {
        match self.rx.pop_partial_slice(dst) {
            Ok(0) if !dst.is_empty() => {
                let rx = &self.rx;
                let empty = shm_queue::Error::Empty {
                    requested: 1,
                    available: 0,
                };
                Err(recv_error(&mut self.ep, empty, rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }
            Ok(n) => {
                self.ep.messages += n as u64;
                Ok(n)
            }
            Err(e) => {
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e.into(), rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }
        }
    }

    /// The ring's consumer, for the zero-copy chunk API ([`spsc::Consumer::read_chunk`]).
    pub fn ring(&mut self) -> &mut spsc::Consumer<T> {
        &mut self.rx
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// `true` if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<T: Pod> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.rx.close();
    }
}

/// The sending end of a byte-message channel. Dropping it closes the channel.
#[derive(Debug)]
pub struct ByteSender {
    tx: bytes::Producer,
    ep: Endpoint,
}

impl ByteSender {
    endpoint_methods!();

    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    /// Largest message this channel carries.
    pub fn max_message(&self) -> usize {
        self.tx.max_message()
    }

    /// Sends `msg` if there is room.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when full, [`Error::Queue`] with `MessageTooLarge`,
    /// [`Error::PeerGone`], [`Error::Closed`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        match self.tx.try_push(msg) {
            Ok(()) => {
                self.ep.messages += 1;
                self.ep.bytes += msg.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.full(e.into())),
        }
    }

    /// Sends `msg`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::try_send`], and [`Error::PeerHung`] (retryable).
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_deadline(msg, None)
    }

    /// Sends `msg`, waiting for room until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::send`], and [`Error::Timeout`].
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        match self.try_send(msg) {
            Err(Error::WouldBlock { .. }) => {}
            other => return other,
        }
        let tx = &mut self.tx;
        wait_loop(&mut self.ep, deadline, |d| tx.push_blocking(msg, Some(d)))?;
        self.ep.messages += 1;
        self.ep.bytes += msg.len() as u64;
        Ok(())
    }

    /// Reserves `len` bytes in the ring to write in place; commit the claim to send it.
    /// Not counted in the channel's message counters.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::try_send`].
    pub fn claim(&mut self, len: usize) -> Result<WriteClaim<'_>> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        let name = &self.ep.name;
        self.tx
            .claim(len)
            .map_err(|e| Error::queue_shared(name, e.into(), Duration::ZERO))
    }

    /// The ring's producer, for calls this wrapper does not offer.
    pub fn ring(&mut self) -> &mut bytes::Producer {
        &mut self.tx
    }

    /// Marks the channel closed: the consumer drains it, then gets [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }

    fn check_peer(&mut self) -> Result<()> {
        sender_check(&self.ep, self.tx.is_closed())
    }

    fn full(&mut self, e: shm_queue::Error) -> Error {
        let closed_now = self.tx.is_closed();
        sender_error(&mut self.ep, e, closed_now)
    }
}

impl Drop for ByteSender {
    fn drop(&mut self) {
        self.tx.close();
    }
}

/// The receiving end of a byte-message channel.
#[derive(Debug)]
pub struct ByteReceiver {
    rx: bytes::Consumer,
    ep: Endpoint,
}

impl ByteReceiver {
    endpoint_methods!();

    /// Largest message this channel carries (a buffer this long always suffices).
    pub fn max_message(&self) -> usize {
        self.rx.max_message()
    }

    /// Receives a message into `buf`, returning its length.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty, [`Error::Queue`] with `BufferTooSmall` (the
    /// message stays), [`Error::Closed`], [`Error::PeerGone`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.rx.try_pop(buf) {
            Ok(n) => {
                self.count(n);
                Ok(n)
            }
            Err(e) => {
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e.into(), rx.is_closed(), || {
                    rx.has_message()
                }))
            }
        }
    }

    /// Receives a message into `buf`, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::try_recv`], [`Error::PeerHung`] (retryable), [`Error::Timeout`].
    pub fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        self.wait_deadline(deadline)?;
        self.try_recv(buf)
    }

    /// Waits for a message until `deadline` and returns a guard over it in place; the space
    /// is released when the guard drops.
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::recv_deadline`].
    pub fn read_deadline(&mut self, deadline: Option<Instant>) -> Result<ReadGuard<'_>> {
        self.wait_deadline(deadline)?;
        let guard = self
            .rx
            .read()
            .map_err(|e| Error::queue_shared(&self.ep.name, e.into(), Duration::ZERO))?;
        self.ep.messages += 1;
        self.ep.bytes += guard.len() as u64;
        Ok(guard)
    }

    /// Receives into a vector (resized to the message), waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::recv_deadline`].
    pub fn recv_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.wait_deadline(None)?;
        let n = self
            .rx
            .try_pop_vec(buf)
            .map_err(|e| Error::queue_shared(&self.ep.name, e.into(), Duration::ZERO))?;
        self.count(n);
        Ok(n)
    }

    fn wait_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        let rx = &mut self.rx;
        wait_loop(&mut self.ep, deadline, |d| rx.wait_for_message(Some(d)))
    }

    fn count(&mut self, n: usize) {
        self.ep.messages += 1;
        self.ep.bytes += n as u64;
        self.ep.tick();
    }

    /// The ring's consumer, for calls this wrapper does not offer.
    pub fn ring(&mut self) -> &mut bytes::Consumer {
        &mut self.rx
    }
}

impl Drop for ByteReceiver {
    fn drop(&mut self) {
        self.rx.close();
    }
}

/// A sending end of an MPMC channel. The channel is closed by [`MpmcSender::close`], or
/// when the last live producer drops its end.
#[derive(Debug)]
pub struct MpmcSender<T: Pod> {
    tx: mpmc::Producer<T>,
    ep: Endpoint,
}

impl<T: Pod> MpmcSender<T> {
    endpoint_methods!();

    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    /// Sends `value` if there is room.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when full; [`Error::PeerGone`] when every consumer that
    /// attached has died; [`Error::Closed`].
    pub fn try_send(&mut self, value: T) -> Result<()> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        match self.tx.try_push(value) {
            Ok(()) => {
                self.ep.messages += 1;
                Ok(())
            }
            Err(e) => {
                let closed_now = self.tx.is_closed();
                Err(sender_error(&mut self.ep, e.into(), closed_now))
            }
        }
    }

    /// Sends `value`, waiting for room until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`MpmcSender::try_send`], [`Error::PeerHung`], [`Error::Timeout`].
    pub fn send_deadline(&mut self, value: T, deadline: Option<Instant>) -> Result<()> {
        match self.try_send(value) {
            Err(Error::WouldBlock { .. }) => {}
            other => return other,
        }
        let tx = &mut self.tx;
        wait_loop(&mut self.ep, deadline, |d| tx.push_blocking(value, Some(d)))?;
        self.ep.messages += 1;
        Ok(())
    }

    /// Closes the channel for everyone: consumers drain it, then get [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }

    fn check_peer(&mut self) -> Result<()> {
        sender_check(&self.ep, self.tx.is_closed())
    }
}

impl<T: Pod> Drop for MpmcSender<T> {
    fn drop(&mut self) {
        // The last live producer out closes, so receivers drain and then get `Closed`.
        if self.ep.leave_and_check_last() {
            self.tx.close();
        }
    }
}

/// A receiving end of an MPMC channel.
#[derive(Debug)]
pub struct MpmcReceiver<T: Pod> {
    rx: mpmc::Consumer<T>,
    ep: Endpoint,
}

impl<T: Pod> MpmcReceiver<T> {
    endpoint_methods!();

    /// Receives a message if one is there.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty; once empty for good, [`Error::Closed`] or
    /// [`Error::PeerGone`] (every producer that attached died).
    pub fn try_recv(&mut self) -> Result<T> {
        match self.rx.try_pop() {
            Ok(v) => {
                self.ep.messages += 1;
                self.ep.tick();
                Ok(v)
            }
            Err(e) => {
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e.into(), rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }
        }
    }

    /// Receives a message, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`MpmcReceiver::try_recv`], [`Error::PeerHung`], [`Error::Timeout`].
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T> {
        let rx = &mut self.rx;
        let v = wait_loop(&mut self.ep, deadline, |d| rx.pop_blocking(Some(d)))?;
        self.ep.messages += 1;
        Ok(v)
    }
}

impl<T: Pod> Drop for MpmcReceiver<T> {
    fn drop(&mut self) {
        // The last live consumer out closes, so a sender blocked for space gets `Closed`
        // (as the typed channel's sender does) instead of waiting for nobody.
        if self.ep.leave_and_check_last() {
            self.rx.close();
        }
    }
}
