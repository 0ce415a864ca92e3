//! Runs the real `producer` and `consumer` example binaries against each other: the happy
//! path in both start orders, SIGKILL of either side mid-stream, a stale channel left by
//! killed processes, and segments under the channel's name that are not a usable channel.
//!
//! Every child is killed and reaped when its guard drops, also when an assertion fails.
//! Deadlines only stop a hang; nothing here asserts on speed.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shm_bridge::{inspect, ChannelOptions, Role};
use shmlane_cli::stamp;

/// A channel name no other test (or test run) uses.
fn name(tag: &str) -> String {
    format!("bin-{}-{tag}", std::process::id())
}

/// Where cargo put the example binaries: `target/<profile>/examples`, beside the `deps`
/// directory that holds this test. `cargo test` builds the examples before it runs the
/// tests; `cargo test --test binaries` does not, so then we build them here.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
        let dir = profile_dir.join("examples");
        if ![
            "producer",
            "consumer",
            "async_consumer",
            "async_pingpong",
            "publisher",
            "subscriber",
        ]
        .iter()
        .all(|b| dir.join(b).exists())
        {
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-p", "shmlane-examples", "--examples"]);
            if profile_dir.ends_with("release") {
                cargo.arg("--release");
            }
            let status = cargo.status().unwrap();
            assert!(status.success(), "building the examples failed: {status}");
        }
        dir
    })
}

/// A running example binary; killed and reaped on drop.
struct Proc {
    child: Child,
    what: String,
}

/// How a binary ended.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn start(example: &str, args: &[&str]) -> Proc {
    let child = Command::new(examples_dir().join(example))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc {
        child,
        what: format!("{example} {}", args.join(" ")),
    }
}

impl Proc {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Waits up to `limit` for the process to exit (its output is a few lines, so the pipes
    /// never fill).
    fn finish(&mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if start.elapsed() > limit {
                self.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = Finished {
            code: status.and_then(|s| s.code()),
            stdout: String::new(),
            stderr: String::new(),
        };
        if let Some(mut o) = self.child.stdout.take() {
            o.read_to_string(&mut out.stdout).unwrap();
        }
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut out.stderr).unwrap();
        }
        assert!(
            status.is_some(),
            "`{}` did not exit within {limit:?}: {out:?}",
            self.what
        );
        out
    }

    fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes `/dev/shm/shmlane.NAME` on drop (declare it before the processes, so it drops
/// after them).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn shm_file(name: &str) -> RemoveOnDrop {
    RemoveOnDrop(shm_bridge::shm_path(name))
}

/// Asserts the exit code, showing everything the process printed if it differs.
fn assert_code(out: &Finished, code: i32, who: &str) {
    assert_eq!(out.code, Some(code), "{who}: {out:#?}");
}

/// Parses `received N messages, B bytes, E errors ...`: returns `(N, E)`.
fn received(out: &Finished) -> (u64, u64) {
    let line = out.stdout.lines().find(|l| l.starts_with("received "));
    let line = line.unwrap_or_else(|| panic!("no summary line: {out:#?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(out.stdout.lines().count(), 1, "one summary line: {out:#?}");
    (words[1].parse().unwrap(), words[5].parse().unwrap())
}

/// Waits until the consumer of channel `name` has published at least `n` messages received
/// (the channel's control block carries the counts; they are published every few ms).
fn wait_for_consumer(name: &str, n: u64) {
    let start = Instant::now();
    loop {
        let done = inspect::inspect(name).is_ok_and(|info| {
            info.participants
                .iter()
                .any(|p| p.role == Role::Consumer && p.messages >= n)
        });
        if done {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the consumer of `{name}` did not reach {n} messages"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

const LONG: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(20);

#[test]
fn a_million_small_messages_consumer_first() {
    let n = name("small");
    let _shm = shm_file(&n);
    let mut consumer = start(
        "consumer",
        &["--name", &n, "--count", "1000000", "--timeout", "60"],
    );
    let mut producer = start(
        "producer",
        &[
            "--name",
            &n,
            "--count",
            "1000000",
            "--size",
            "64",
            "--timeout",
            "60",
        ],
    );
    let p = producer.finish(LONG);
    let c = consumer.finish(LONG);
    assert_code(&p, 0, "producer");
    assert_code(&c, 0, "consumer");
    assert!(p.stdout.starts_with("sent 1000000 messages"), "{p:#?}");
    assert_eq!(received(&c), (1_000_000, 0), "{c:#?}");
    assert!(c.stdout.contains(" 64000000 bytes"), "{c:#?}");
}

#[test]
fn ten_thousand_one_mib_messages_producer_first() {
    let n = name("large");
    let _shm = shm_file(&n);
    let count = "10000";
    let mut producer = start(
        "producer",
        &[
            "--name",
            &n,
            "--count",
            count,
            "--size",
            "1048576",
            "--timeout",
            "60",
        ],
    );
    let mut consumer = start(
        "consumer",
        &["--name", &n, "--count", count, "--timeout", "60"],
    );
    let p = producer.finish(LONG);
    let c = consumer.finish(LONG);
    assert_code(&p, 0, "producer");
    assert_code(&c, 0, "consumer");
    assert_eq!(received(&c), (10_000, 0), "{c:#?}");
}

/// A producer sending 10 000 messages a second for far longer than the test lasts.
fn paced_producer(n: &str) -> Proc {
    start(
        "producer",
        &[
            "--name",
            n,
            "--count",
            "100000000",
            "--rate",
            "10000",
            "--timeout",
            "60",
        ],
    )
}

#[test]
fn killed_producer_ends_the_consumer_with_3_and_no_errors() {
    let n = name("killprod");
    let _shm = shm_file(&n);
    let mut consumer = start("consumer", &["--name", &n, "--timeout", "60"]);
    let mut producer = paced_producer(&n);
    wait_for_consumer(&n, 1000);
    std::thread::sleep(Duration::from_millis(300));
    producer.kill();
    let c = consumer.finish(SHORT);
    assert_code(&c, 3, "consumer");
    let (got, errors) = received(&c);
    assert!(got >= 1000, "{c:#?}");
    assert_eq!(errors, 0, "{c:#?}");
    assert!(c.stderr.contains("died"), "{c:#?}");
    assert_eq!(c.stderr.lines().count(), 1, "one line on stderr: {c:#?}");
}

#[test]
fn killed_consumer_ends_the_producer_with_3() {
    let n = name("killcons");
    let _shm = shm_file(&n);
    let mut consumer = start("consumer", &["--name", &n, "--timeout", "60"]);
    let mut producer = paced_producer(&n);
    wait_for_consumer(&n, 1000);
    consumer.kill();
    let p = producer.finish(SHORT);
    assert_code(&p, 3, "producer");
    assert!(
        p.stderr.contains("consumer") && p.stderr.contains("died"),
        "{p:#?}"
    );
    assert!(p.stdout.starts_with("sent "), "{p:#?}");
}

#[test]
fn stale_channel_of_killed_processes_is_reclaimed() {
    let n = name("stale");
    let _shm = shm_file(&n);
    let path = shm_bridge::shm_path(&n);
    {
        let mut consumer = start("consumer", &["--name", &n, "--timeout", "60"]);
        let mut producer = paced_producer(&n);
        wait_for_consumer(&n, 1000);
        // Stopped first, so neither sees the other die and cleans up.
        producer.signal(Signal::SIGSTOP);
        consumer.signal(Signal::SIGSTOP);
        producer.kill();
        consumer.kill();
    }
    let old = std::fs::metadata(&path).expect("the killed pair leaves its channel behind");
    let info = inspect::inspect(&n).unwrap();
    assert!(info.is_stale(), "{info:#?}");

    // A consumer alone does not read the leftovers: it waits for a producer to replace
    // the channel, and says so when none comes.
    consumer_refuses(&n, "left over from an earlier run");
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), old.ino());

    let count = "100000";
    let mut producer = start(
        "producer",
        &["--name", &n, "--count", count, "--timeout", "60"],
    );
    // Start the consumer once the producer has replaced the file, so it cannot attach to
    // the stale one.
    let start_time = Instant::now();
    while std::fs::metadata(&path).map_or(true, |m| m.ino() == old.ino()) {
        assert!(
            start_time.elapsed() < SHORT,
            "the producer did not replace the channel"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut consumer = start(
        "consumer",
        &["--name", &n, "--count", count, "--timeout", "60"],
    );
    let p = producer.finish(LONG);
    let c = consumer.finish(LONG);
    assert_code(&p, 0, "producer");
    assert_code(&c, 0, "consumer");
    assert!(p.stderr.contains("replaced stale channel"), "{p:#?}");
    assert_eq!(received(&c), (100_000, 0), "{c:#?}");
}

/// Runs a consumer against channel `n` with `--timeout 1`; it must exit 1 promptly with a
/// one-line reason that contains `expect`.
fn consumer_refuses(n: &str, expect: &str) {
    let mut consumer = start("consumer", &["--name", n, "--timeout", "1"]);
    let c = consumer.finish(SHORT);
    assert_code(&c, 1, n);
    assert!(c.stdout.is_empty(), "no summary before connecting: {c:#?}");
    assert_eq!(c.stderr.lines().count(), 1, "one line on stderr: {c:#?}");
    assert!(c.stderr.contains(n), "names the channel: {c:#?}");
    assert!(c.stderr.contains(expect), "expected {expect:?}: {c:#?}");
}

/// Writes `bytes` as the segment of channel `n`, old enough not to look mid-creation.
fn plant(n: &str, bytes: &[u8]) -> RemoveOnDrop {
    let guard = shm_file(n);
    std::fs::write(&guard.0, bytes).unwrap();
    let old = SystemTime::now() - Duration::from_secs(10);
    std::fs::File::options()
        .write(true)
        .open(&guard.0)
        .unwrap()
        .set_modified(old)
        .unwrap();
    guard
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn bad_segments_make_the_consumer_exit_1_with_a_reason() {
    let n = name("garbage");
    let _g = plant(&n, &random_bytes(64 * 1024));
    consumer_refuses(&n, "not a usable shmlane channel");

    let n = name("empty");
    let _e = plant(&n, &[]);
    consumer_refuses(&n, "not a usable shmlane channel");

    let n = name("typed");
    let _t = shm_file(&n);
    let _tx = ChannelOptions::new().create::<u64>(&n).unwrap();
    consumer_refuses(&n, "u64");

    // Not `foreign`: that name is the foreign-owner test's, which runs in parallel.
    let n = name("foreign-garbage");
    if nix::unistd::geteuid().is_root() {
        let f = plant(&n, &random_bytes(64 * 1024));
        std::os::unix::fs::chown(&f.0, Some(65534), Some(65534)).unwrap();
        consumer_refuses(&n, "uid 65534");
    } else {
        eprintln!("skipping the foreign-owner case: only root can give a file to uid 65534");
    }
}

#[test]
fn bad_gap_and_duplicate_messages_make_the_consumer_exit_2() {
    let n = name("corrupt");
    let _shm = shm_file(&n);
    let mut tx = ChannelOptions::new()
        .capacity(1 << 16)
        .max_message(64)
        .create_bytes(&n)
        .unwrap();
    let mut consumer = start("consumer", &["--name", &n, "--timeout", "60"]);
    tx.wait_for_peer(Duration::from_secs(60)).unwrap();
    let mut msg = [0u8; 64];
    // 0, 1, 2 fine; then a gap (4), a duplicate (4), a flipped bit, and 6 fine again.
    for (seq, flip) in [
        (0, false),
        (1, false),
        (2, false),
        (4, false),
        (4, false),
        (5, true),
        (6, false),
    ] {
        stamp::write(&mut msg, seq, stamp::now_ns()).unwrap();
        if flip {
            msg[40] ^= 1;
        }
        tx.send(&msg).unwrap();
    }
    drop(tx);
    let c = consumer.finish(SHORT);
    assert_code(&c, 2, "consumer");
    assert_eq!(received(&c), (7, 3), "{c:#?}");
    assert_eq!(c.stderr.lines().count(), 1, "one line on stderr: {c:#?}");
    assert!(c.stderr.contains("expected 3 (a gap)"), "{c:#?}");
}

#[test]
fn bad_flags_exit_1_with_a_message() {
    for (example, args, expect) in [
        ("producer", &["--size", "4"][..], "--size"),
        ("producer", &["--size", "1048577"][..], "--size"),
        ("publisher", &["--size", "7"][..], "--size"),
        ("consumer", &["--wait", "sometimes"][..], "--wait"),
        (
            "consumer",
            &["--name", "a/b", "--timeout", "1"][..],
            "invalid channel name",
        ),
    ] {
        let out = start(example, args).finish(SHORT);
        assert_code(&out, 1, example);
        assert!(out.stderr.contains(expect), "{out:#?}");
    }
}

/// SIGTERM (or Ctrl-C) to a consumer: it closes the channel, prints its summary and exits
/// 0 with `--count 0` (4 when it stopped short of `--count`); the producer sees the channel
/// closed, not a dead consumer, and exits 0.
#[test]
fn sigterm_stops_the_consumer_cleanly_and_the_producer_sees_it_close() {
    for (count, code) in [("0", 0), ("100000000", 4)] {
        let n = name(&format!("sigterm-{count}"));
        let _shm = shm_file(&n);
        let mut consumer = start(
            "consumer",
            &["--name", &n, "--count", count, "--timeout", "60"],
        );
        let mut producer = start(
            "producer",
            &[
                "--name",
                &n,
                "--count",
                "0",
                "--rate",
                "10000",
                "--timeout",
                "60",
            ],
        );
        wait_for_consumer(&n, 1000);
        consumer.signal(Signal::SIGTERM);
        let c = consumer.finish(SHORT);
        assert_code(&c, code, "consumer");
        let (got, errors) = received(&c);
        assert!(got >= 1000, "{c:#?}");
        assert_eq!(errors, 0, "{c:#?}");
        let p = producer.finish(SHORT);
        assert_code(&p, 0, "producer");
        assert!(
            !p.stderr.contains("died"),
            "the producer saw a close, not a death: {p:#?}"
        );
        assert!(p.stdout.starts_with("sent "), "{p:#?}");
    }
}

/// The refusal of another uid's channel names the example's own flag, and the flag lets it
/// through.
#[test]
fn foreign_owner_hint_names_the_flag_that_allows_it() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: making a channel of another uid needs root");
        return;
    }
    let n = name("foreign");
    let _shm = shm_file(&n);
    let mut producer = paced_producer(&n);
    let path = shm_bridge::shm_path(&n);
    let start_t = Instant::now();
    while !path.exists() {
        assert!(start_t.elapsed() < SHORT, "the producer never created {n}");
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    consumer_refuses(&n, "--allow-foreign-owner");
    let mut consumer = start(
        "consumer",
        &[
            "--name",
            &n,
            "--count",
            "100",
            "--timeout",
            "20",
            "--allow-foreign-owner",
        ],
    );
    let c = consumer.finish(SHORT);
    assert_code(&c, 0, "consumer with --allow-foreign-owner");
    producer.kill();
}

/// The async consumer drains two channels in one task, each fed by a `producer` process;
/// killing one producer ends it with 3 and the other channel's count intact.
#[test]
fn async_consumer_drains_several_producers_in_one_task() {
    let n = name("async");
    let (a, b) = (format!("{n}.0"), format!("{n}.1"));
    let (_sa, _sb) = (shm_file(&a), shm_file(&b));
    let mut consumer = start(
        "async_consumer",
        &[
            "--name",
            &n,
            "--channels",
            "2",
            "--count",
            "200000",
            "--timeout",
            "30",
        ],
    );
    let mut pa = start(
        "producer",
        &["--name", &a, "--count", "200000", "--size", "64"],
    );
    let mut pb = start(
        "producer",
        &["--name", &b, "--count", "200000", "--size", "24"],
    );
    let c = consumer.finish(LONG);
    assert_code(&c, 0, "async_consumer");
    assert_code(&pa.finish(SHORT), 0, "producer a");
    assert_code(&pb.finish(SHORT), 0, "producer b");
    assert!(
        c.stdout.contains(&format!("{a}: received 200000 messages")),
        "{c:#?}"
    );
    assert!(
        c.stdout.contains(&format!("{b}: received 200000 messages")),
        "{c:#?}"
    );
    assert!(c.stdout.contains("received 400000 messages"), "{c:#?}");

    // A producer killed mid-stream: exit 3, naming its channel.
    let n = name("async-kill");
    let (a, b) = (format!("{n}.0"), format!("{n}.1"));
    let (_sa, _sb) = (shm_file(&a), shm_file(&b));
    let mut consumer = start(
        "async_consumer",
        &[
            "--name",
            &n,
            "--channels",
            "2",
            "--count",
            "100000000",
            "--timeout",
            "30",
        ],
    );
    let mut pa = paced_producer(&a);
    let mut pb = paced_producer(&b);
    wait_for_consumer(&a, 1000);
    pa.kill();
    let c = consumer.finish(SHORT);
    pb.kill();
    assert_code(&c, 3, "async_consumer");
    assert!(c.stderr.contains(&a) && c.stderr.contains("died"), "{c:#?}");
}

#[test]
fn async_pingpong_times_its_round_trips() {
    let n = name("apingpong");
    for extra in [
        &[][..],
        &["--spins", "0", "--yields", "0", "--flavor", "multi"][..],
    ] {
        let mut args = vec!["--name", &n, "--count", "2000"];
        args.extend_from_slice(extra);
        let out = start("async_pingpong", &args).finish(LONG);
        assert_code(&out, 0, "async_pingpong");
        assert!(out.stdout.contains("p50"), "{out:#?}");
    }
}

/// `received N messages, L lost (R reported), ...`: returns `(N, R)`, R being every loss
/// the channel reported (L counts only the gaps a later message revealed).
fn subscriber_summary(out: &Finished) -> (u64, u64) {
    let line = out.stdout.lines().find(|l| l.starts_with("received "));
    let line = line.unwrap_or_else(|| panic!("no summary line: {out:#?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (
        words[1].parse().unwrap(),
        words[5].trim_start_matches('(').parse().unwrap(),
    )
}

#[test]
fn a_publisher_and_two_subscribers_lossless_then_lossy_with_a_slow_one() {
    let n = name("broadcast");
    let _f = shm_file(&n);
    let subs: Vec<_> = (0..2)
        .map(|_| start("subscriber", &["--name", &n, "--wait", "yield"]))
        .collect();
    let mut publisher = start(
        "publisher",
        &[
            "--name",
            &n,
            "--count",
            "200000",
            "--size",
            "1000",
            "--await-subscribers",
            "2",
            "--wait",
            "yield",
        ],
    );
    assert_code(&publisher.finish(LONG), 0, "publisher");
    for mut s in subs {
        let out = s.finish(LONG);
        assert_code(&out, 0, "subscriber");
        assert_eq!(subscriber_summary(&out), (200_000, 0));
    }

    // Lossy: a subscriber that pauses after each message loses some, every gap reported
    // (16-byte messages: the short stamp, whose gaps are read from 32-bit sequences).
    let n = name("broadcast-lossy");
    let _f = shm_file(&n);
    let mut slow = start(
        "subscriber",
        &["--name", &n, "--pause", "20", "--wait", "yield"],
    );
    let mut publisher = start(
        "publisher",
        &[
            "--name",
            &n,
            "--count",
            "200000",
            "--capacity",
            "256",
            "--size",
            "16",
            "--lossy",
            "--await-subscribers",
            "1",
            "--rate",
            "400000",
        ],
    );
    assert_code(&publisher.finish(LONG), 0, "lossy publisher");
    let out = slow.finish(LONG);
    assert_code(&out, 0, "slow lossy subscriber");
    let (got, lost) = subscriber_summary(&out);
    assert!(lost > 0 && got > 0, "{out:#?}");
}

#[test]
fn an_evicting_publisher_is_never_held_up_by_a_stopped_subscriber() {
    let n = name("broadcast-evict");
    let _f = shm_file(&n);
    let mut stopped = start("subscriber", &["--name", &n]);
    let mut publisher = start(
        "publisher",
        &[
            "--name",
            &n,
            "--count",
            "100000",
            "--capacity",
            "256",
            "--slow-policy",
            "evict:50",
            "--await-subscribers",
            "1",
            "--rate",
            "200000",
        ],
    );
    // Stop the subscriber once it is connected and the stream has started (however slowly
    // the processes start): the publisher evicts it after 50 ms.
    let end = Instant::now() + LONG;
    while !shm_bridge::inspect::inspect(&n)
        .ok()
        .and_then(|i| i.broadcast)
        .is_some_and(|b| !b.subscribers.is_empty() && b.stats.tail > 0)
    {
        assert!(Instant::now() < end, "the stream never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    stopped.signal(Signal::SIGSTOP);
    let out = publisher.finish(LONG);
    assert_code(&out, 0, "evicting publisher");
    assert!(out.stdout.contains(" 1 evicted"), "{out:#?}");
    stopped.signal(Signal::SIGCONT);
    let out = stopped.finish(LONG);
    assert_code(&out, 0, "evicted subscriber");
    let (got, lost) = subscriber_summary(&out);
    assert!(lost > 0 && got + lost <= 100_000, "{out:#?}");
}
