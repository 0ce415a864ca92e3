//! The local side of a bridge: a channel end of any kind, read ([`Source`]) or written
//! ([`Sink`]) in batches of raw messages.

use std::time::Instant;

use shm_bridge::inspect;
use shm_bridge::{
    BroadcastReceiver, BroadcastSender, ByteReceiver, ByteSender, ChannelKind, ChannelOptions,
    ElementType, Error, MpmcReceiver, MpmcSender, Raw, Receiver, Sender,
};
use shm_queue::bytes::ReadGuard;

use crate::wire::{Batch, Format, Messages};

/// A channel end the `out` side reads, and what its messages are.
#[derive(Debug)]
pub struct Source {
    end: SourceEnd,
    format: Format,
}

#[derive(Debug)]
enum SourceEnd {
    /// An SPSC byte channel's consumer.
    Bytes(ByteReceiver),
    /// A typed SPSC channel's consumer.
    Typed(Receiver<Raw>),
    /// An MPMC channel's consumer (one of possibly many).
    Mpmc(MpmcReceiver<Raw>),
    /// A subscriber of a broadcast channel of elements.
    Broadcast(BroadcastReceiver<Raw>),
    /// A subscriber of a broadcast channel of byte messages.
    BroadcastBytes(BroadcastReceiver<Raw>),
}

/// What one read gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Messages added to the batch.
    pub messages: u32,
    /// Messages the local channel reported lost before them (a lagging broadcast
    /// subscriber): the stream's sequence skips them.
    pub lost: u64,
}

impl Source {
    /// Connects to channel `name` as a reader, whatever its kind: the element type comes
    /// from the channel's control block. A broadcast channel gets a new subscriber; an MPMC
    /// channel a new consumer (sharing the messages with the others).
    ///
    /// # Errors
    ///
    /// As [`inspect::inspect`] and the `connect_*` calls of [`ChannelOptions`]; a channel
    /// that is not a valid shmlane channel gives [`Error::BadConfig`] naming why.
    pub fn connect(opts: &ChannelOptions, name: &str) -> Result<Source, Error> {
        Self::connect_within(opts, name, std::time::Duration::ZERO)
    }

    /// [`Source::connect`], waiting up to `wait` for the channel to appear (its creator may
    /// start after the bridge).
    ///
    /// # Errors
    ///
    /// As [`Source::connect`], once `wait` has passed.
    pub fn connect_within(
        opts: &ChannelOptions,
        name: &str,
        wait: std::time::Duration,
    ) -> Result<Source, Error> {
        let start = Instant::now();
        let info = loop {
            match inspect::inspect(name) {
                Ok(info) if info.kind.is_some() || start.elapsed() >= wait => break info,
                Err(e) if start.elapsed() >= wait => return Err(e),
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        };
        let (Some(kind), None) = (info.kind, info.problem.as_ref()) else {
            return Err(Error::BadConfig {
                name: name.to_owned(),
                reason: info
                    .problem
                    .unwrap_or_else(|| "not a usable channel".into()),
            });
        };
        let elem = || {
            ElementType::named(
                info.type_name.clone(),
                info.elem_size as usize,
                info.elem_align as usize,
            )
            .map_err(|e| Error::BadConfig {
                name: name.to_owned(),
                reason: format!("its recorded element type is unusable: {e}"),
            })
        };
        let (end, format) = match kind {
            ChannelKind::Bytes => (SourceEnd::Bytes(opts.connect_bytes(name)?), Format::Bytes),
            ChannelKind::Broadcast if info.type_name == shm_queue::broadcast::MESSAGE_TYPE_NAME => {
                (
                    SourceEnd::BroadcastBytes(opts.connect_subscriber_bytes(name)?),
                    Format::Bytes,
                )
            }
            ChannelKind::Typed => {
                let e = elem()?;
                (
                    SourceEnd::Typed(opts.connect_raw(name, &e)?),
                    Format::of(&e),
                )
            }
            ChannelKind::Mpmc => {
                let e = elem()?;
                let rx = opts.connect_mpmc_consumer_raw(name, &e)?;
                (SourceEnd::Mpmc(rx), Format::of(&e))
            }
            ChannelKind::Broadcast => {
                let e = elem()?;
                let rx = opts.connect_subscriber_raw(name, &e)?;
                (SourceEnd::Broadcast(rx), Format::of(&e))
            }
        };
        Ok(Source { end, format })
    }

    /// What its messages are.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// The largest message it can hand over.
    pub fn max_message(&self) -> usize {
        match &self.end {
            SourceEnd::Bytes(rx) => rx.max_message(),
            SourceEnd::BroadcastBytes(rx) => rx.max_message(),
            SourceEnd::Typed(rx) => rx.element_size(),
            SourceEnd::Mpmc(rx) => rx.element_size(),
            SourceEnd::Broadcast(rx) => rx.element_size(),
        }
    }

    /// Waits until `deadline` for a message, then adds to `batch` what is ready, up to
    /// `max_messages` messages and, after the first, `max_bytes` of payload. `scratch`
    /// must hold [`Source::max_message`] bytes (or `max_messages` elements).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing came by the deadline; [`Error::Closed`] and
    /// [`Error::PeerGone`] once the channel is drained for good; the channel's other errors.
    pub fn read(
        &mut self,
        batch: &mut Batch,
        scratch: &mut [u8],
        max_messages: u32,
        max_bytes: usize,
        deadline: Instant,
    ) -> Result<Read, Error> {
        let mut read = Read::default();
        let full = |b: &Batch, r: &Read| r.messages >= max_messages || b.buf.len() >= max_bytes;
        let size = self.max_message();
        match &mut self.end {
            SourceEnd::Bytes(rx) => {
                // Each message is copied once, from the ring into the batch (read in place).
                let take = |g: ReadGuard<'_>, batch: &mut Batch| {
                    batch
                        .push_message_with(g.len(), |dst| g.copy_to(dst))
                        .map_err(|e| Error::BadConfig {
                            name: String::new(),
                            reason: e.to_string(),
                        })
                };
                take(rx.read_deadline(Some(deadline))?, batch)?;
                read.messages += 1;
                // Then what is ready now, without waiting.
                while !full(batch, &read) {
                    match rx.try_read() {
                        Ok(g) => take(g, batch)?,
                        Err(_) => break,
                    }
                    read.messages += 1;
                }
            }
            SourceEnd::BroadcastBytes(rx) => {
                let first = loop {
                    match rx.recv_message_deadline(scratch, Some(deadline)) {
                        Err(Error::Lost { missed, .. }) => read.lost += missed,
                        other => break other,
                    }
                };
                match first {
                    Ok(n) => {
                        batch.push_message(&scratch[..n]);
                        read.messages += 1;
                    }
                    Err(e) if read.lost > 0 && e.is_retryable() => return Ok(read),
                    Err(e) => return Err(e),
                }
                while !full(batch, &read) {
                    match rx.try_recv_message(scratch) {
                        Ok(n) => {
                            batch.push_message(&scratch[..n]);
                            read.messages += 1;
                        }
                        // A loss after messages: the next read reports it, before the
                        // messages after it, so the sequence stays exact.
                        Err(_) => break,
                    }
                }
            }
            end => {
                let room = (max_bytes / size).clamp(1, max_messages as usize);
                let whole = scratch.len() / size * size;
                let dst = &mut scratch[..(room * size).min(whole)];
                let n = loop {
                    let r = match &mut *end {
                        SourceEnd::Typed(rx) => rx.recv_bytes_into_deadline(dst, Some(deadline)),
                        SourceEnd::Mpmc(rx) => rx.recv_bytes_into_deadline(dst, Some(deadline)),
                        SourceEnd::Broadcast(rx) => {
                            rx.recv_bytes_into_deadline(dst, Some(deadline))
                        }
                        // Byte ends are matched above.
                        SourceEnd::Bytes(_) | SourceEnd::BroadcastBytes(_) => Ok(0),
                    };
                    match r {
                        Err(Error::Lost { missed, .. }) => read.lost += missed,
                        Err(e) if read.lost > 0 && e.is_retryable() => return Ok(read),
                        other => break other?,
                    }
                };
                batch.buf.extend_from_slice(&dst[..n * size]);
                batch.count += n as u32;
                read.messages += n as u32;
            }
        }
        Ok(read)
    }
}

/// A channel end the `in` side writes (created by the bridge), and what its messages are.
#[derive(Debug)]
pub struct Sink {
    end: SinkEnd,
    format: Format,
    name: String,
    /// A message in pieces joined, for the ends that take only whole slices.
    joined: Vec<u8>,
}

#[derive(Debug)]
enum SinkEnd {
    /// An SPSC byte channel's producer.
    Bytes(ByteSender),
    /// A typed SPSC channel's producer.
    Typed(Sender<Raw>),
    /// An MPMC channel's producer.
    Mpmc(MpmcSender<Raw>),
    /// A broadcast channel of elements.
    Broadcast(BroadcastSender<Raw>),
    /// A broadcast channel of byte messages.
    BroadcastBytes(BroadcastSender<Raw>),
}

/// The kinds of channel an `in` bridge can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    /// SPSC byte messages (`connect_bytes`).
    Bytes,
    /// SPSC elements of `--type` (`connect_raw`, or `connect::<T>` with the same name).
    Typed,
    /// MPMC elements of `--type`.
    Mpmc,
    /// Broadcast elements of `--type`.
    Broadcast,
    /// Broadcast byte messages (`connect_subscriber_bytes`).
    BroadcastBytes,
}

/// What to do when the local channel is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Full {
    /// Wait for room (and so hold the stream up: backpressure).
    #[default]
    Wait,
    /// Drop the message and count it.
    Drop,
}

impl Sink {
    /// Creates channel `name` of `kind`; `elem` is the element type (ignored for byte
    /// kinds). The options' capacity, maximum message and subscribers apply.
    ///
    /// # Errors
    ///
    /// As the `create_*` calls of [`ChannelOptions`]; [`Error::BadConfig`] for an element
    /// kind without an element type.
    pub fn create(
        opts: &ChannelOptions,
        name: &str,
        kind: SinkKind,
        elem: Option<&ElementType>,
    ) -> Result<Sink, Error> {
        let elem = || {
            elem.ok_or_else(|| Error::BadConfig {
                name: name.to_owned(),
                reason: "this kind of channel needs an element type (--type NAME:SIZE:ALIGN)"
                    .into(),
            })
        };
        let (end, format) = match kind {
            SinkKind::Bytes => (SinkEnd::Bytes(opts.create_bytes(name)?), Format::Bytes),
            SinkKind::BroadcastBytes => (
                SinkEnd::BroadcastBytes(opts.create_broadcast_bytes(name)?),
                Format::Bytes,
            ),
            SinkKind::Typed => (
                SinkEnd::Typed(opts.create_raw(name, elem()?)?),
                Format::of(elem()?),
            ),
            SinkKind::Mpmc => (
                SinkEnd::Mpmc(opts.create_mpmc_raw(name, elem()?)?),
                Format::of(elem()?),
            ),
            SinkKind::Broadcast => (
                SinkEnd::Broadcast(opts.create_broadcast_raw(name, elem()?)?),
                Format::of(elem()?),
            ),
        };
        Ok(Sink {
            end,
            format,
            name: name.to_owned(),
            joined: Vec::new(),
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What its messages are.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Writes `messages` (each a whole message or element, in one or more pieces), waiting
    /// as `full` says (until `stop` is set); returns how many were dropped. A byte channel
    /// takes a message's pieces as they are (one copy); the other kinds get them joined.
    ///
    /// # Errors
    ///
    /// The channel's errors other than "full" (a byte message over the channel's maximum is
    /// one: the far side's maximum is larger than this channel's).
    pub fn write(
        &mut self,
        messages: &Messages<'_>,
        full: Full,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<u64, Error> {
        let mut dropped = 0;
        for m in messages.iter() {
            loop {
                match self.write_one(m, full) {
                    Ok(true) => break,
                    Ok(false) if full == Full::Drop => {
                        dropped += 1;
                        break;
                    }
                    // A slice of waiting ran out: look at the stop flag, then wait again.
                    Ok(false) | Err(Error::Timeout { .. } | Error::PeerHung { .. })
                        if !stop.load(std::sync::atomic::Ordering::Relaxed) => {}
                    Ok(false) | Err(Error::Timeout { .. } | Error::PeerHung { .. }) => {
                        return Ok(dropped)
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if dropped > 0 {
            self.note_lost(dropped);
        }
        Ok(dropped)
    }

    /// One message or element, waiting up to 100 ms for room (`Full::Wait`) or not at all;
    /// `Ok(false)`: no room now.
    fn write_one(&mut self, parts: &[&[u8]], full: Full) -> Result<bool, Error> {
        let wait = full == Full::Wait;
        let soon = Some(Instant::now() + std::time::Duration::from_millis(100));
        let m: &[u8] = match (&self.end, parts) {
            (SinkEnd::Bytes(_), _) | (_, []) => &[],
            (_, [one]) => one,
            (_, _) => {
                self.joined.clear();
                parts.iter().for_each(|p| self.joined.extend_from_slice(p));
                &self.joined
            }
        };
        let r = match &mut self.end {
            SinkEnd::Bytes(tx) if wait => tx.send_parts_deadline(parts, soon).map(|()| true),
            SinkEnd::Bytes(tx) => tx.try_send_parts(parts).map(|()| true),
            SinkEnd::BroadcastBytes(tx) if wait => tx.send_message_deadline(m, soon).map(|()| true),
            SinkEnd::BroadcastBytes(tx) => tx.try_send_message(m).map(|()| true),
            SinkEnd::Typed(tx) if wait => tx
                .send_bytes_deadline(m, soon)
                .map(|()| true)
                .map_err(|(_, e)| e),
            SinkEnd::Typed(tx) => tx.try_send_bytes(m).map(|n| n > 0),
            SinkEnd::Mpmc(tx) if wait => tx
                .send_bytes_deadline(m, soon)
                .map(|()| true)
                .map_err(|(_, e)| e),
            SinkEnd::Mpmc(tx) => tx.try_send_bytes(m).map(|n| n > 0),
            SinkEnd::Broadcast(tx) if wait => tx
                .send_bytes_deadline(m, soon)
                .map(|()| true)
                .map_err(|(_, e)| e),
            // A full lossless broadcast channel gives Ok(0).
            SinkEnd::Broadcast(tx) => tx.try_send_bytes(m).map(|n| n > 0),
        };
        match r {
            Err(Error::WouldBlock { .. }) => Ok(false),
            other => other,
        }
    }

    /// Records `n` lost messages in the channel's participant slot (`shmlane inspect`).
    pub fn note_lost(&mut self, n: u64) {
        match &mut self.end {
            SinkEnd::Bytes(tx) => tx.note_lost(n),
            SinkEnd::Typed(tx) => tx.note_lost(n),
            SinkEnd::Mpmc(tx) => tx.note_lost(n),
            SinkEnd::Broadcast(tx) | SinkEnd::BroadcastBytes(tx) => tx.note_lost(n),
        }
    }
}
