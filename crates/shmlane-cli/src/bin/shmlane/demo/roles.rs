//! The four child roles the demo starts (`demo-producer`, `demo-consumer`,
//! `demo-pipe-writer`, `demo-pipe-reader`): each streams or receives stamped messages,
//! checks them, and reports one JSON line.

use super::*;

/// Latency percentiles in nanoseconds.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub(super) struct Latency {
    /// Median.
    pub(super) p50_ns: u64,
    /// 99th percentile.
    pub(super) p99_ns: u64,
    /// 99.9th percentile.
    pub(super) p999_ns: u64,
    /// Largest seen.
    pub(super) max_ns: u64,
    /// Arithmetic mean.
    pub(super) mean_ns: u64,
}

/// What a sending process reports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SenderReport {
    /// Messages sent.
    pub(super) messages: u64,
    /// Sends retried because the peer looked hung.
    pub(super) retries: u64,
    /// Why it stopped early, if it did.
    pub(super) error: Option<String>,
}

/// What a receiving process reports.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct ReceiverReport {
    /// Messages received.
    pub(super) messages: u64,
    /// Payload bytes received.
    pub(super) bytes: u64,
    /// Messages whose checksum did not match.
    pub(super) checksum_errors: u64,
    /// Messages out of sequence (lost, duplicated or reordered).
    pub(super) sequence_errors: u64,
    /// Messages of the wrong length.
    pub(super) length_errors: u64,
    /// Send time of the first message (`CLOCK_MONOTONIC` ns).
    pub(super) first_sent_ns: u64,
    /// Receive time of the last message.
    pub(super) last_recv_ns: u64,
    pub(super) latency: Latency,
    /// Why it stopped other than by a clean close or end of file, if it did.
    pub(super) error: Option<String>,
}

/// Checks received messages and keeps the figures.
pub(super) struct Checker {
    pub(super) size: usize,
    pub(super) next_seq: u64,
    pub(super) hist: Histogram<u64>,
    pub(super) r: ReceiverReport,
}

impl Checker {
    pub(super) fn new(size: usize) -> Outcome<Checker> {
        let hist = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| Failure::msg(format!("cannot create the latency histogram: {e}")))?;
        Ok(Checker {
            size,
            next_seq: 0,
            hist,
            r: ReceiverReport::default(),
        })
    }

    pub(super) fn check(&mut self, msg: &[u8]) {
        let now = stamp::now_ns();
        self.r.messages += 1;
        self.r.bytes += msg.len() as u64;
        self.r.last_recv_ns = now;
        if msg.len() != self.size {
            self.r.length_errors += 1;
            return;
        }
        let Ok(s) = stamp::check(msg) else {
            self.r.checksum_errors += 1;
            return;
        };
        if !stamp::is_next(&s, self.next_seq) {
            self.r.sequence_errors += 1;
        }
        // Continue from what arrived, so one gap counts once.
        self.next_seq = if s.short {
            (self.next_seq & !0xffff_ffff | s.seq) + 1
        } else {
            s.seq + 1
        };
        let latency = s.latency_ns(now);
        if self.r.first_sent_ns == 0 {
            self.r.first_sent_ns = now.saturating_sub(latency);
        }
        self.hist.saturating_record(latency.max(1));
    }

    pub(super) fn finish(mut self, error: Option<String>) -> ReceiverReport {
        if !self.hist.is_empty() {
            self.r.latency = Latency {
                p50_ns: self.hist.value_at_quantile(0.5),
                p99_ns: self.hist.value_at_quantile(0.99),
                p999_ns: self.hist.value_at_quantile(0.999),
                max_ns: self.hist.max(),
                mean_ns: self.hist.mean() as u64,
            };
        }
        self.r.error = error;
        self.r
    }
}

pub(super) fn report_line<T: Serialize>(report: &T) -> Outcome<String> {
    serde_json::to_string(report)
        .map(|s| s + "\n")
        .map_err(|e| Failure::msg(format!("cannot encode the report: {e}")))
}

/// Sends stamped messages through `send` until `seconds` have passed or it fails, as fast
/// as it can or `rate` per second (sleeping until each one is due, so the sender leaves the
/// CPU to the receiver as a real paced producer would); a retryable failure (a peer that
/// looks hung) resends the message.
pub(super) fn stream(
    seconds: f64,
    size: usize,
    rate: u64,
    mut send: impl FnMut(&[u8]) -> Result<(), (bool, String)>,
) -> SenderReport {
    let mut report = SenderReport::default();
    let mut msg = vec![0u8; size];
    let start = stamp::now_ns();
    let end = start + (seconds * 1e9) as u64;
    let period = 1e9 / rate.max(1) as f64;
    if rate > 0 {
        // Wake within a microsecond of each due time, not the default 50 µs timer slack.
        let _ = nix::sys::prctl::set_timerslack(1_000);
    }
    loop {
        let mut now = stamp::now_ns();
        if rate > 0 {
            let due = (start + (report.messages as f64 * period) as u64).min(end);
            if now < due {
                std::thread::sleep(Duration::from_nanos(due - now));
                now = stamp::now_ns();
            }
        }
        if now >= end {
            return report;
        }
        if let Err(e) = stamp::write(&mut msg, report.messages, now) {
            report.error = Some(e.to_string());
            return report;
        }
        match send(&msg) {
            Ok(()) => report.messages += 1,
            Err((true, _)) => report.retries += 1,
            Err((false, e)) => {
                report.error = Some(e);
                return report;
            }
        }
    }
}

/// `demo-producer`: creates the channel, waits for the consumer, streams, closes.
pub(crate) fn producer(args: &RoleArgs) -> Outcome {
    let size = args.size as usize;
    let mut tx = ChannelOptions::new()
        .capacity(ring_capacity(size))
        .max_message(size)
        .create_bytes(&args.name)?;
    let report = match tx.wait_for_peer(CONNECT) {
        Ok(()) => stream(args.seconds, size, args.rate, |m| {
            tx.send(m).map_err(|e| (e.is_retryable(), e.to_string()))
        }),
        Err(e) => SenderReport {
            error: Some(format!("the consumer did not connect: {e}")),
            ..SenderReport::default()
        },
    };
    drop(tx); // closes the channel: the consumer drains it, then sees Closed
    emit(&report_line(&report)?)
}

/// `demo-consumer`: connects, checks every message until the producer closes.
pub(crate) fn consumer(args: &RoleArgs) -> Outcome {
    let size = args.size as usize;
    let mut rx = ChannelOptions::new()
        .timeout(CONNECT)
        .connect_bytes(&args.name)?;
    let mut checker = Checker::new(size)?;
    let mut buf = vec![0u8; rx.max_message().max(size)];
    let error = loop {
        // Take what is there; block only when the ring is empty.
        let got = match rx.try_recv(&mut buf) {
            Err(Error::WouldBlock { .. }) => rx.recv_deadline(&mut buf, None),
            other => other,
        };
        match got {
            Ok(n) => checker.check(&buf[..n]),
            Err(Error::Closed { .. }) => break None,
            Err(e) if e.is_retryable() => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    drop(rx);
    emit(&report_line(&checker.finish(error))?)
}

/// `demo-pipe-writer`: streams into its stdout; reports on stderr.
pub(crate) fn pipe_writer(args: &RoleArgs) -> Outcome {
    // Our own descriptor for stdout: Rust's `Stdout` is line-buffered, which would hold
    // messages back until a newline byte happens to pass.
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Failure::msg(format!("cannot duplicate stdout: {e}")))?;
    let mut pipe = std::fs::File::from(fd);
    let report = stream(args.seconds, args.size as usize, args.rate, |m| {
        pipe.write_all(m)
            .map_err(|e| (false, format!("writing the pipe: {e}")))
    });
    drop(pipe);
    let line = report_line(&report)?;
    std::io::stderr()
        .write_all(line.as_bytes())
        .map_err(|e| Failure::msg(format!("cannot write the report: {e}")))
}

/// Reads until `buf` is full or the input ends; returns how many bytes it read.
pub(super) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `demo-pipe-reader`: says `ready`, then checks every message on stdin until end of file.
pub(crate) fn pipe_reader(args: &RoleArgs) -> Outcome {
    let size = args.size as usize;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Failure::msg(format!("cannot duplicate stdin: {e}")))?;
    let mut input = BufReader::with_capacity(BUFFER, std::fs::File::from(fd));
    let mut checker = Checker::new(size)?;
    let mut buf = vec![0u8; size];
    emit("ready\n")?;
    let error = loop {
        match read_full(&mut input, &mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                checker.check(&buf[..n]);
                if n < size {
                    break None; // a torn last message, counted as a length error
                }
            }
            Err(e) => break Some(format!("reading the pipe: {e}")),
        }
    };
    emit(&report_line(&checker.finish(error))?)
}
