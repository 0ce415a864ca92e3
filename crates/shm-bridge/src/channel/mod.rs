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
use shm_queue::bytes::{ReadGuard, WriteClaim};
use shm_queue::spsc::{self, Ring};
use shm_queue::wait::WaitStrategy;
use shm_queue::{Element, ElementType, Raw};
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
/// 100 ms heartbeat, a 10 s connect timeout, 16 participant slots and packed slots for MPMC.
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct ChannelOptions {
    capacity: Option<usize>,
    max_message: Option<usize>,
    wait: WaitStrategy,
    common: Common,
    timeout: Duration,
    participants: usize,
    slots: shm_queue::mpmc::SlotLayout,
    type_name: Option<String>,
    subscribers: usize,
    broadcast_mode: shm_queue::broadcast::Mode,
    history: usize,
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
            slots: shm_queue::mpmc::SlotLayout::default(),
            type_name: None,
            subscribers: 8,
            broadcast_mode: shm_queue::broadcast::Mode::default(),
            history: 0,
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

    /// Heartbeat period (default 100 ms; `None`: no heartbeat, and peers cannot tell if
    /// this process hangs). The heartbeat is a store into the endpoint's slot, made by the
    /// process's single liveness thread for all its endpoints (see the crate docs).
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

    /// Most subscribers a broadcast channel accepts at once (1 to 59; default 8).
    pub fn subscribers(mut self, n: usize) -> Self {
        self.subscribers = n;
        self
    }

    /// Makes a broadcast channel lossy: the sender never waits, and a subscriber that falls
    /// a whole ring behind loses the oldest messages ([`Error::Lost`] says how many). The
    /// default is lossless, waiting for the slowest subscriber.
    pub fn lossy(mut self) -> Self {
        self.broadcast_mode = shm_queue::broadcast::Mode::Lossy;
        self
    }

    /// What a lossless broadcast channel does with a subscriber that holds it up (default
    /// [`SlowPolicy::Wait`](shm_queue::broadcast::SlowPolicy::Wait); `Evict { after }`
    /// drops it after that long without reading, and it learns so with [`Error::Lost`]).
    pub fn slow_policy(mut self, policy: shm_queue::broadcast::SlowPolicy) -> Self {
        self.broadcast_mode = shm_queue::broadcast::Mode::Lossless(policy);
        self
    }

    /// A new broadcast subscriber starts with up to `n` messages sent before it connected,
    /// if still in the ring (default 0: the next message sent).
    pub fn history(mut self, n: usize) -> Self {
        self.history = n;
        self
    }

    /// How an MPMC channel's slots are spaced (see [`shm_queue::mpmc::SlotLayout`]; default
    /// [`SlotLayout::Packed`](shm_queue::mpmc::SlotLayout::Packed)). Chosen by the creator;
    /// connecting follows the channel's.
    pub fn slot_layout(mut self, slots: shm_queue::mpmc::SlotLayout) -> Self {
        self.slots = slots;
        self
    }

    /// The name a typed or MPMC channel records for its element type (default: the Rust
    /// `core::any::type_name::<T>()`). Both ends must use the same one; give an explicit
    /// name, such as `"myapp.Tick/1"`, to share a channel with a C or Python program (which
    /// name their elements the same way) or between crates whose type paths differ. The
    /// size and alignment are always checked as well.
    ///
    /// ```
    /// use shm_bridge::ChannelOptions;
    /// # let name = format!("doc-type-name-{}", std::process::id());
    /// let opts = ChannelOptions::new().capacity(64).type_name("example.Reading/1");
    /// let mut tx = opts.create::<[f32; 4]>(&name)?;
    /// let mut rx = opts.connect::<[f32; 4]>(&name)?;
    /// tx.send([1.0, 2.0, 3.0, 4.0])?;
    /// assert_eq!(rx.recv()?, [1.0, 2.0, 3.0, 4.0]);
    /// // Without the name, the Rust type name is expected, and refused.
    /// assert!(ChannelOptions::new().timeout(std::time::Duration::ZERO)
    ///     .connect::<[f32; 4]>(&name).is_err());
    /// # Ok::<(), shm_bridge::Error>(())
    /// ```
    pub fn type_name(mut self, name: impl Into<String>) -> Self {
        self.type_name = Some(name.into());
        self
    }

    /// The element type of `T` under this builder's [`ChannelOptions::type_name`].
    fn element_of<T: Pod>(&self, name: &str) -> Result<ElementType> {
        match &self.type_name {
            None => Ok(ElementType::of::<T>()),
            Some(n) => ElementType::of_named::<T>(n.clone())
                .map_err(|e| Error::queue(name, e, Duration::ZERO)),
        }
    }

    fn bad(&self, name: &str, reason: String) -> Error {
        Error::BadConfig {
            name: name.to_owned(),
            reason,
        }
    }

    fn element_layout(
        &self,
        elem: &ElementType,
        kind: ChannelKind,
        ring_bytes: usize,
        slots: u32,
    ) -> Layout {
        Layout {
            kind,
            ring_bytes: ring_bytes as u64,
            elem_size: elem.size() as u32,
            elem_align: elem.align() as u32,
            type_name: elem.name().to_owned(),
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
        self.create_elem(name, &self.element_of::<T>(name)?)
    }

    /// Creates typed channel `name` of elements of type `elem` given at run time, and
    /// returns its sending end, which sends whole elements as bytes (see
    /// [`Sender::<Raw>::send_bytes`](Sender::send_bytes)). The other end may be a
    /// `Receiver<T>` of a `Pod` type with the same size and alignment, connected with the
    /// same [`ChannelOptions::type_name`], or another raw end.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create`].
    ///
    /// ```
    /// use shm_bridge::{ChannelOptions, ElementType};
    /// # let name = format!("doc-create-raw-{}", std::process::id());
    /// let elem = ElementType::named("example.Pair/1", 8, 4)?;
    /// let opts = ChannelOptions::new().capacity(64).type_name("example.Pair/1");
    /// let mut tx = opts.create_raw(&name, &elem)?;
    /// let mut rx = opts.connect::<[u32; 2]>(&name)?;
    /// tx.send_bytes(&[1, 0, 0, 0, 2, 0, 0, 0].map(u8::to_le))?;
    /// assert_eq!(rx.recv()?, [u32::from_le(1), u32::from_le(2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_raw(&self, name: &str, elem: &ElementType) -> Result<Sender<Raw>> {
        self.create_elem(name, elem)
    }

    fn create_elem<T: Element>(&self, name: &str, elem: &ElementType) -> Result<Sender<T>> {
        let cap = self.capacity.unwrap_or(1024);
        let bytes = Ring::<T>::required_bytes_as(elem, cap)
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = self.element_layout(elem, ChannelKind::Typed, bytes, 2);
        let (ep, ring) = Endpoint::create(name, layout, &self.common, |r| {
            Ring::<T>::create_as(r, elem, spsc::Options::new(cap))
        })?;
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
        self.connect_elem(name, &self.element_of::<T>(name)?)
    }

    /// Connects to typed channel `name`, whose elements must be of type `elem` (name, size
    /// and alignment), as its consumer; the end receives whole elements as bytes (see
    /// [`Receiver::<Raw>::recv_bytes_into`](Receiver::recv_bytes_into)).
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect`].
    pub fn connect_raw(&self, name: &str, elem: &ElementType) -> Result<Receiver<Raw>> {
        self.connect_elem(name, elem)
    }

    fn connect_elem<T: Element>(&self, name: &str, elem: &ElementType) -> Result<Receiver<T>> {
        let (ep, mut rx) = Endpoint::connect(
            name,
            ChannelKind::Typed,
            Role::Consumer,
            &self.common,
            self.timeout,
            |layout| check_element(name, layout, elem),
            |region, _| attach_consumer(name, region, |r| Ring::<T>::attach_as(r, elem)),
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
        let bytes = shm_queue::bytes::Ring::required_bytes(cap)
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = Layout {
            kind: ChannelKind::Bytes,
            ring_bytes: bytes as u64,
            elem_size: 0,
            elem_align: 0,
            type_name: "bytes".into(),
            slots: 2,
        };
        let (ep, ring) = Endpoint::create(name, layout, &self.common, |r| {
            shm_queue::bytes::Ring::create_with(
                r,
                shm_queue::bytes::Options::new(cap).max_message(max),
            )
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
            |region, _| attach_consumer(name, region, shm_queue::bytes::Ring::attach),
        )?;
        rx.set_wait_strategy(self.wait);
        Ok(ByteReceiver { rx, ep })
    }

    fn mpmc_options(&self, name: &str) -> Result<shm_queue::mpmc::Options> {
        if !(2..=MAX_SLOTS).contains(&self.participants) {
            return Err(self.bad(
                name,
                format!(
                    "{} participants is not between 2 and {MAX_SLOTS}",
                    self.participants
                ),
            ));
        }
        Ok(shm_queue::mpmc::Options::new(self.capacity.unwrap_or(1024))
            .owners(self.participants)
            .slot_layout(self.slots))
    }

    /// Creates MPMC channel `name` and returns a sending end; more producers and consumers
    /// join with [`ChannelOptions::connect_mpmc_producer`] and
    /// [`ChannelOptions::connect_mpmc_consumer`].
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create`].
    pub fn create_mpmc<T: Pod>(&self, name: &str) -> Result<MpmcSender<T>> {
        self.create_mpmc_elem(name, &self.element_of::<T>(name)?)
    }

    /// Creates MPMC channel `name` of elements of type `elem` given at run time, and
    /// returns a sending end that sends whole elements as bytes (see
    /// [`ChannelOptions::create_raw`]).
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create`].
    pub fn create_mpmc_raw(&self, name: &str, elem: &ElementType) -> Result<MpmcSender<Raw>> {
        self.create_mpmc_elem(name, elem)
    }

    fn create_mpmc_elem<T: Element>(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<MpmcSender<T>> {
        let opts = self.mpmc_options(name)?;
        let bytes = shm_queue::mpmc::Ring::<T>::required_bytes_as(elem, opts)
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = self.element_layout(elem, ChannelKind::Mpmc, bytes, self.participants as u32);
        let (ep, ring) = Endpoint::create(name, layout, &self.common, |r| {
            shm_queue::mpmc::Ring::<T>::create_as(r, elem, opts)
        })?;
        self.mpmc_sender(name, ep, &ring)
    }

    /// Joins MPMC channel `name` as another producer.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect`]; [`Error::InUse`] when every participant slot is taken.
    pub fn connect_mpmc_producer<T: Pod>(&self, name: &str) -> Result<MpmcSender<T>> {
        let (ep, ring) = self.join_mpmc::<T>(name, Role::Producer, &self.element_of::<T>(name)?)?;
        self.mpmc_sender(name, ep, &ring)
    }

    /// Joins MPMC channel `name` of elements of type `elem` as another producer, sending
    /// whole elements as bytes.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect_mpmc_producer`].
    pub fn connect_mpmc_producer_raw(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<MpmcSender<Raw>> {
        let (ep, ring) = self.join_mpmc::<Raw>(name, Role::Producer, elem)?;
        self.mpmc_sender(name, ep, &ring)
    }

    /// A producer handle of `ring` registered under `ep`'s token, with dead-claim recovery.
    fn mpmc_sender<T: Element>(
        &self,
        name: &str,
        ep: Endpoint,
        ring: &shm_queue::mpmc::Ring<T>,
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
        self.mpmc_receiver(name, &self.element_of::<T>(name)?)
    }

    /// Joins MPMC channel `name` of elements of type `elem` as a consumer, receiving whole
    /// elements as bytes.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect_mpmc_producer`].
    pub fn connect_mpmc_consumer_raw(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<MpmcReceiver<Raw>> {
        self.mpmc_receiver(name, elem)
    }

    fn mpmc_receiver<T: Element>(&self, name: &str, elem: &ElementType) -> Result<MpmcReceiver<T>> {
        let (ep, ring) = self.join_mpmc::<T>(name, Role::Consumer, elem)?;
        let rx = ring
            .consumer_with_token(token(&ep))
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let mut rx = rx.with_recovery(SlotLiveness::new(&ep), RECOVERY_PATIENCE);
        rx.set_wait_strategy(self.wait);
        Ok(MpmcReceiver { rx, ep })
    }

    fn join_mpmc<T: Element>(
        &self,
        name: &str,
        role: Role,
        elem: &ElementType,
    ) -> Result<(Endpoint, shm_queue::mpmc::Ring<T>)> {
        let (ep, ring) = Endpoint::connect(
            name,
            ChannelKind::Mpmc,
            role,
            &self.common,
            self.timeout,
            |layout| check_element(name, layout, elem),
            |region, _| {
                let ring = shm_queue::mpmc::Ring::<T>::attach_as(region.clone(), elem)
                    .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
                let opts = shm_queue::mpmc::Options::new(ring.capacity())
                    .owners(ring.owner_entries())
                    .slot_layout(ring.slot_layout());
                fits(
                    name,
                    ring.region(),
                    shm_queue::mpmc::Ring::<T>::required_bytes_as(elem, opts),
                )?;
                Ok(ring)
            },
        )?;
        // Owner entries of participants that died free up, and take back the wait counts
        // they held (a participant killed while asleep would otherwise cost every publish
        // the wake path).
        ring.reclaim_dead_owners(&SlotLiveness::new(&ep));
        Ok((ep, ring))
    }
}

/// The methods every handle has, whatever its ring: `endpoint_methods!()`; a handle whose
/// peer is ready only after more than its attaching (a broadcast sender, whose subscribers
/// must join the ring) writes its own `wait_for_peer` and uses
/// `endpoint_methods!(own wait_for_peer)`.
macro_rules! endpoint_methods {
    () => {
        endpoint_methods!(own wait_for_peer);

        /// Waits until a peer is attached and alive, up to `timeout`.
        ///
        /// # Errors
        ///
        /// [`Error::Timeout`], or [`Error::PeerGone`] if it attached and died.
        pub fn wait_for_peer(&self, timeout: Duration) -> Result<()> {
            self.ep.wait_for_peer(timeout, || true)
        }
    };
    (own wait_for_peer) => {
        /// The channel's name (without the `shmlane.` prefix).
        pub fn name(&self) -> &str {
            &self.ep.name
        }

        /// Records that `n` messages were lost before they reached this end (a bridge
        /// that found a gap in a stream, or dropped messages it could not deliver):
        /// published in this end's participant slot with its other counters, for
        /// `shmlane inspect` to show.
        pub fn note_lost(&mut self, n: u64) {
            self.ep.lost = self.ep.lost.saturating_add(n);
            self.ep.publish_counts();
        }

        /// Messages recorded with `note_lost` since this end attached.
        pub fn noted_lost(&self) -> u64 {
            self.ep.lost
        }

        /// What the other side is doing (alive, hung, dead, left, or not there yet).
        pub fn peer_state(&self) -> PeerState {
            self.ep.peer_state()
        }

    };
}

/// Declares a channel end: the ring handle it wraps and its endpoint, with the methods
/// every end shares (`endpoint_methods!`). `channel_end!(typed Name, field: RingHandle<T>)`
/// for an end generic over the element `T` (a `Pod` type, or [`Raw`]), `channel_end!(plain Name, field: RingHandle)` otherwise;
/// doc comments before the name document the struct.
macro_rules! channel_end {
    ($(#[$doc:meta])* typed $name:ident, $field:ident: $handle:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<T: Element> {
            pub(super) $field: $handle,
            pub(super) ep: Endpoint,
        }

        impl<T: Element> $name<T> {
            endpoint_methods!();
        }
    };
    ($(#[$doc:meta])* plain $name:ident, $field:ident: $handle:ty) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            pub(super) $field: $handle,
            pub(super) ep: Endpoint,
        }

        impl $name {
            endpoint_methods!();
        }
    };
}

#[cfg(feature = "async")]
pub mod aio;
mod any_bytes;
mod broadcast;
mod broadcast_bytes;
mod bytes;
mod common;
mod mpmc;
mod raw;
mod typed;

pub use any_bytes::{AnyByteReceiver, AnyByteSender};
pub use broadcast::{BroadcastReceiver, BroadcastSender};
pub use bytes::{ByteReceiver, ByteSender};
use common::*;
pub use mpmc::{MpmcReceiver, MpmcSender};
pub use typed::{Receiver, Sender};
