//! Bridges shmlane channels onto [zenoh](https://zenoh.io), so a stream continues past the
//! host: [`out()`] reads a local channel (any kind: an SPSC or MPMC consumer, or a new
//! broadcast subscriber) and publishes its messages on a zenoh key expression; [`in_()`]
//! subscribes to a key expression and produces what arrives into a local channel it
//! created. The `shmlane-zenoh` binary runs either side; a service that already holds a
//! zenoh session calls the functions.
//!
//! What crosses zenoh ([`wire`]): batches of messages (as many as are ready, up to a limit,
//! so a fast local side does not pay one zenoh message per message), with an attachment
//! carrying the message type's fingerprint, so an `in` side refuses a stream of another
//! type, and each batch's sequence number in its stream, so the far side counts exactly
//! what was lost on the way (zenoh in best-effort mode, a dropping `--full drop` policy, a
//! restarted peer, a lagging local broadcast subscriber). The `in` side records its losses
//! in its channel's participant slot (`note_lost`), which `shmlane inspect` shows.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::sync::Arc;
//! use shm_bridge::ChannelOptions;
//! use shmlane_zenoh::{local::Source, out, OutOptions};
//! use zenoh::Wait;
//!
//! let session = zenoh::open(zenoh::Config::default()).wait()?;
//! let source = Source::connect(&ChannelOptions::new(), "ticks")?;
//! let report = out(source, &session, "plant/ticks", &OutOptions::new(Arc::new(AtomicBool::new(false))))?;
//! println!("{} messages forwarded", report.messages);
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zenoh::qos::{CongestionControl, Reliability};
use zenoh::Wait;

pub mod local;
pub mod wire;

use local::{Full, Sink, Source};
use wire::{Batch, Header};

/// Why a bridge stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The local channel failed.
    #[error(transparent)]
    Channel(#[from] shm_bridge::Error),
    /// A zenoh call failed.
    #[error("zenoh: {what} on `{key}`: {reason}")]
    Zenoh {
        /// What was being done.
        what: &'static str,
        /// The key expression.
        key: String,
        /// zenoh's message.
        reason: String,
    },
    /// The stream on the key carries messages of another type than the local channel.
    #[error(
        "refused the stream on `{key}`: it carries {found}, but channel `{name}` holds \
         {expected}; bridge a channel of the same type (the same element name, size and \
         alignment, or byte messages on both sides)"
    )]
    WrongType {
        /// The key expression.
        key: String,
        /// The local channel.
        name: String,
        /// What the local channel holds.
        expected: String,
        /// What the stream carries.
        found: String,
    },
    /// No subscriber appeared on the key in time.
    #[error("no zenoh subscriber matched `{key}` within {waited:?}; start the `in` side, or check the endpoints and the key")]
    NoSubscriber {
        /// The key expression.
        key: String,
        /// How long it waited.
        waited: Duration,
    },
}

fn zenoh_err<'a>(what: &'static str, key: &'a str) -> impl FnOnce(zenoh::Error) -> Error + 'a {
    move |e| Error::Zenoh {
        what,
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

/// How [`out()`] runs.
#[derive(Debug, Clone)]
pub struct OutOptions {
    /// Most messages per zenoh message (default 256).
    pub max_batch: u32,
    /// A batch stops growing past this many payload bytes (default 64 KiB); a larger
    /// message goes alone.
    pub max_batch_bytes: usize,
    /// When zenoh cannot keep up: wait (backpressure to the local producer) or drop (the
    /// far side counts the gap). Default: wait.
    pub full: Full,
    /// zenoh's reliability (default reliable).
    pub reliability: Reliability,
    /// Wait this long for a matching subscriber before reading the channel (`None`: read
    /// at once; messages published while nobody subscribes are lost).
    pub await_subscriber: Option<Duration>,
    /// Set to stop: the bridge finishes its batch and returns.
    pub stop: Arc<AtomicBool>,
}

impl OutOptions {
    /// The defaults, stopped by `stop`.
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        OutOptions {
            max_batch: 256,
            max_batch_bytes: 64 << 10,
            full: Full::Wait,
            reliability: Reliability::Reliable,
            await_subscriber: None,
            stop,
        }
    }
}

/// What [`out()`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutReport {
    /// The stream's number (random per run).
    pub stream: u64,
    /// Messages forwarded.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// zenoh messages sent.
    pub batches: u64,
    /// Messages the local channel lost before the bridge read them (a lagging broadcast
    /// subscriber); they are gaps in the stream's sequence.
    pub lost_locally: u64,
    /// The local channel ended (closed, or its producer gone): the end was sent on.
    pub ended: bool,
}

/// A random stream number.
fn new_stream() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Reads `source` and publishes its messages on `key` through `session`, in batches,
/// until the local channel ends (then the end is sent on, so the `in` side closes its
/// channel too) or `opts.stop` is set.
///
/// # Errors
///
/// [`Error::Channel`] for a local channel error, [`Error::Zenoh`] for a failed
/// declaration or put, [`Error::NoSubscriber`] when `await_subscriber` runs out.
pub fn out(
    mut source: Source,
    session: &zenoh::Session,
    key: &str,
    opts: &OutOptions,
) -> Result<OutReport, Error> {
    let congestion = match opts.full {
        Full::Wait => CongestionControl::Block,
        Full::Drop => CongestionControl::Drop,
    };
    let publisher = session
        .declare_publisher(key.to_owned())
        .congestion_control(congestion)
        .reliability(opts.reliability)
        .wait()
        .map_err(zenoh_err("declaring the publisher", key))?;
    if let Some(limit) = opts.await_subscriber {
        let start = Instant::now();
        loop {
            let status = publisher
                .matching_status()
                .wait()
                .map_err(zenoh_err("asking for matching subscribers", key))?;
            if status.matching() || opts.stop.load(Ordering::Relaxed) {
                break;
            }
            if start.elapsed() >= limit {
                return Err(Error::NoSubscriber {
                    key: key.to_owned(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let format = source.format().clone();
    let mut report = OutReport {
        stream: new_stream(),
        ..OutReport::default()
    };
    let mut seq = 0u64;
    let size = source.max_message();
    let mut scratch = vec![0u8; size.max(opts.max_batch_bytes.min(size * opts.max_batch as usize))];
    let mut batch = Batch::default();
    let put = |batch: &mut Batch, seq: u64, end: bool| {
        let header = Header {
            format: format.clone(),
            stream: report.stream,
            seq,
            count: batch.count,
            end,
        };
        let payload = std::mem::take(&mut batch.buf);
        batch.clear();
        publisher
            .put(payload)
            .attachment(header.encode())
            .wait()
            .map_err(zenoh_err("publishing", key))
    };
    while !opts.stop.load(Ordering::Relaxed) {
        let deadline = Instant::now() + Duration::from_millis(100);
        match source.read(
            &mut batch,
            &mut scratch,
            opts.max_batch,
            opts.max_batch_bytes,
            deadline,
        ) {
            Ok(read) => {
                seq += read.lost;
                report.lost_locally += read.lost;
                if batch.count == 0 {
                    continue;
                }
                let (n, bytes) = (u64::from(batch.count), batch.buf.len() as u64);
                put(&mut batch, seq, false)?;
                seq += n;
                report.messages += n;
                report.bytes += bytes;
                report.batches += 1;
            }
            Err(shm_bridge::Error::Timeout { .. } | shm_bridge::Error::PeerHung { .. }) => {}
            Err(shm_bridge::Error::Closed { .. } | shm_bridge::Error::PeerGone { .. }) => {
                put(&mut batch, seq, true)?;
                report.ended = true;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// A callback for an `in` bridge's [`Event`]s.
pub type EventLog = Arc<dyn Fn(&Event) + Send + Sync>;

/// How [`in_()`] runs.
#[derive(Clone)]
pub struct InOptions {
    /// When the local channel is full: wait (backpressure: zenoh holds the stream up, and
    /// a reliable publisher with `--full wait` waits) or drop and count. Default: wait.
    pub full: Full,
    /// Return when the stream ends (the `out` side's channel closed), closing the local
    /// channel; otherwise keep waiting for the next stream. Default: true.
    pub exit_on_end: bool,
    /// Set to stop: the bridge returns, closing the local channel.
    pub stop: Arc<AtomicBool>,
    /// Called with each event worth a line in a log (a gap, a new stream, a malformed
    /// message); the binary prints them on stderr.
    pub on_event: Option<EventLog>,
}

impl std::fmt::Debug for InOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InOptions")
            .field("full", &self.full)
            .field("exit_on_end", &self.exit_on_end)
            .field("on_event", &self.on_event.is_some())
            .finish()
    }
}

impl InOptions {
    /// The defaults, stopped by `stop`.
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        InOptions {
            full: Full::Wait,
            exit_on_end: true,
            stop,
            on_event: None,
        }
    }
}

/// Something an `in` bridge saw, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first message of a stream: its number, and where this bridge joined it (0 from
    /// the start; more when it started, or restarted, mid-stream).
    Joined {
        /// The stream.
        stream: u64,
        /// The first sequence number seen.
        at: u64,
    },
    /// Messages missing between two batches of a stream.
    Gap {
        /// The stream.
        stream: u64,
        /// The sequence number expected.
        expected: u64,
        /// The one that came.
        got: u64,
    },
    /// A zenoh message that was not a valid batch (skipped).
    Malformed(String),
    /// The stream ended.
    Ended {
        /// The stream.
        stream: u64,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Joined { stream, at: 0 } => write!(f, "stream {stream:016x}: from its start"),
            Event::Joined { stream, at } => write!(
                f,
                "stream {stream:016x}: joined at message {at} (the {at} before were sent before this bridge subscribed)"
            ),
            Event::Gap {
                stream,
                expected,
                got,
            } => write!(
                f,
                "stream {stream:016x}: gap of {} message(s): expected {expected}, got {got}",
                got - expected
            ),
            Event::Malformed(why) => write!(f, "skipped a message that is not a valid batch: {why}"),
            Event::Ended { stream } => write!(f, "stream {stream:016x}: ended"),
        }
    }
}

/// What [`in_()`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InReport {
    /// Messages written into the local channel.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// zenoh messages received.
    pub batches: u64,
    /// Messages missing from the streams' sequences (lost on the way).
    pub gaps: u64,
    /// Messages dropped because the local channel was full (`Full::Drop`).
    pub dropped: u64,
    /// zenoh messages skipped as malformed.
    pub malformed: u64,
    /// Messages seen twice (skipped).
    pub duplicates: u64,
    /// Streams seen.
    pub streams: u64,
    /// The stream ended (its `out` side's channel closed).
    pub ended: bool,
}

/// Subscribes to `key` through `session` and writes every message that arrives into
/// `sink`, checking each batch's type against the channel's and its sequence against the
/// stream's, until the stream ends (with `exit_on_end`) or `opts.stop` is set. Gaps and
/// drops are recorded in the channel's participant slot as they happen.
///
/// # Errors
///
/// [`Error::WrongType`] for a stream of another type (nothing of it is written);
/// [`Error::Channel`] when the local channel fails (its consumer gone, for example);
/// [`Error::Zenoh`] when subscribing fails.
pub fn in_(
    sink: Sink,
    session: &zenoh::Session,
    key: &str,
    opts: &InOptions,
) -> Result<InReport, Error> {
    // zenoh calls back on its receiving thread, which writes straight into the channel (no
    // hand-off to another thread); a full channel holds that thread, and so the stream, up.
    let state = Arc::new(std::sync::Mutex::new(InState {
        sink,
        report: InReport::default(),
        current: None,
        failed: None,
        done: false,
    }));
    let shared = state.clone();
    let (key_owned, opts_cb) = (key.to_owned(), opts.clone());
    let subscriber = session
        .declare_subscriber(key.to_owned())
        .callback(move |sample| {
            let Ok(mut st) = shared.lock() else { return };
            if st.done || st.failed.is_some() {
                return;
            }
            st.take(&sample, &key_owned, &opts_cb);
        })
        .wait()
        .map_err(zenoh_err("declaring the subscriber", key))?;
    loop {
        {
            let Ok(mut st) = state.lock() else { break };
            if let Some(e) = st.failed.take() {
                return Err(e);
            }
            if st.done || opts.stop.load(Ordering::Relaxed) {
                st.done = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(subscriber);
    let report = match state.lock() {
        Ok(st) => st.report.clone(),
        Err(_) => InReport::default(),
    };
    Ok(report)
}

/// An `in` bridge's state, shared with zenoh's callback.
struct InState {
    sink: Sink,
    report: InReport,
    /// (stream, next expected sequence number)
    current: Option<(u64, u64)>,
    /// Why the bridge must stop.
    failed: Option<Error>,
    /// The stream ended (with `exit_on_end`) or the bridge was stopped.
    done: bool,
}

impl InState {
    /// Handles one zenoh message.
    fn take(&mut self, sample: &zenoh::sample::Sample, key: &str, opts: &InOptions) {
        let event = |e: Event| {
            if let Some(f) = &opts.on_event {
                f(&e);
            }
        };
        let header = match sample.attachment().map(|a| Header::decode(&a.to_bytes())) {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                self.report.malformed += 1;
                return event(Event::Malformed(e.to_string()));
            }
            None => {
                self.report.malformed += 1;
                return event(Event::Malformed("no attachment".into()));
            }
        };
        if !header.format.matches(self.sink.format()) {
            self.failed = Some(Error::WrongType {
                key: key.to_owned(),
                name: self.sink.name().to_owned(),
                expected: self.sink.format().to_string(),
                found: header.format.to_string(),
            });
            return;
        }
        // The payload's fragments as they arrived: a message is copied into the channel
        // from its pieces, not joined first.
        let fragments: Vec<&[u8]> = sample.payload().slices().collect();
        let messages = match wire::split(&header, &fragments) {
            Ok(m) => m,
            Err(e) => {
                self.report.malformed += 1;
                return event(Event::Malformed(e.to_string()));
            }
        };
        let expected = match self.current {
            Some((s, next)) if s == header.stream => next,
            _ => {
                self.report.streams += 1;
                event(Event::Joined {
                    stream: header.stream,
                    at: header.seq,
                });
                header.seq
            }
        };
        if header.seq < expected {
            self.report.duplicates += u64::from(header.count);
            return;
        }
        if header.seq > expected {
            let missing = header.seq - expected;
            self.report.gaps += missing;
            self.sink.note_lost(missing);
            event(Event::Gap {
                stream: header.stream,
                expected,
                got: header.seq,
            });
        }
        self.current = Some((header.stream, header.seq + u64::from(header.count)));
        self.report.batches += 1;
        match self.sink.write(&messages, opts.full, &opts.stop) {
            Ok(dropped) => {
                self.report.dropped += dropped;
                self.report.messages += messages.len() as u64 - dropped;
                self.report.bytes += messages.bytes();
            }
            Err(e) => {
                self.failed = Some(e.into());
                return;
            }
        }
        if header.end {
            self.report.ended = true;
            event(Event::Ended {
                stream: header.stream,
            });
            if opts.exit_on_end {
                self.done = true;
            }
        }
    }
}
