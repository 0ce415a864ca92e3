//! The bridges end to end over zenoh on 127.0.0.1, between the real example binaries:
//! `producer` -> `shmlane-zenoh out` -> TCP -> `shmlane-zenoh in` -> `consumer`, every
//! message checked by the consumer (sequence, checksum). Also: 1 MiB messages, the `in`
//! bridge killed and restarted mid-stream (the consumer reconnects and reports the gap,
//! nothing corrupt), a stream of the wrong type refused, drops counted in the channel's
//! participant slot, and a clean stop on SIGTERM. Every process is killed and reaped when
//! its guard drops; deadlines only stop a hang.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shm_bridge::ChannelOptions;

const LONG: Duration = Duration::from_secs(120);

fn name(tag: &str) -> String {
    format!("zenoh-{}-{tag}", std::process::id())
}

/// A TCP port free on 127.0.0.1 now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example binaries (`target/<profile>/examples`), built here if `cargo test` did
/// not build them first (as `cargo test -p shmlane-zenoh` alone does not).
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
        let dir = profile_dir.join("examples");
        if !["producer", "consumer"]
            .iter()
            .all(|b| dir.join(b).exists())
        {
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "-p", "shmlane-examples", "--examples"]);
            if profile_dir.ends_with("release") {
                cargo.arg("--release");
            }
            assert!(cargo.status().unwrap().success(), "building the examples");
        }
        dir
    })
}

struct Proc {
    child: Child,
}

#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn spawn(program: &Path, args: &[&str]) -> Proc {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc { child }
}

fn example(which: &str, args: &[&str]) -> Proc {
    spawn(&examples_dir().join(which), args)
}

fn bridge(args: &[&str]) -> Proc {
    spawn(Path::new(env!("CARGO_BIN_EXE_shmlane-zenoh")), args)
}

impl Proc {
    fn signal(&self, s: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), s);
    }

    fn finish(&mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > limit {
                self.signal(Signal::SIGKILL);
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut f = Finished {
            code: status.and_then(|s| s.code()),
            stdout: String::new(),
            stderr: String::new(),
        };
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut f.stdout);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut f.stderr);
        }
        f
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn assert_code(f: &Finished, code: i32, what: &str) {
    assert_eq!(f.code, Some(code), "{what}: {f:#?}");
}

/// The `in` bridge's arguments for channel `name` on `port`.
fn in_args<'a>(name: &'a str, key: &'a str, listen: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "in",
        "--name",
        name,
        "--key",
        key,
        "--listen",
        listen,
        "--no-scouting",
    ];
    v.extend_from_slice(extra);
    v
}

fn out_args<'a>(name: &'a str, key: &'a str, connect: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "out",
        "--name",
        name,
        "--key",
        key,
        "--connect",
        connect,
        "--no-scouting",
    ];
    v.extend_from_slice(extra);
    v
}

/// `received N messages, B bytes, E errors...` -> (N, E).
fn consumer_summary(f: &Finished) -> (u64, u64) {
    let line = f
        .stdout
        .lines()
        .find(|l| l.starts_with("received "))
        .unwrap_or_else(|| panic!("no summary: {f:#?}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    (
        w[1].parse().unwrap(),
        w[5].trim_end_matches(',').parse().unwrap(),
    )
}

/// Runs producer -> out -> in -> consumer for `count` messages of `size` bytes; returns the
/// four outcomes (producer, out, in, consumer).
fn pipeline(tag: &str, count: u64, size: usize, in_extra: &[&str]) -> [Finished; 4] {
    let (a, b) = (name(&format!("{tag}-a")), name(&format!("{tag}-b")));
    let key = format!("shmlane-test/{}/{tag}", std::process::id());
    let port = free_port();
    let (listen, connect) = (
        format!("tcp/127.0.0.1:{port}"),
        format!("tcp/127.0.0.1:{port}"),
    );
    let (count_s, size_s) = (count.to_string(), size.to_string());
    let mut inb = bridge(&in_args(&b, &key, &listen, in_extra));
    let mut consumer = example(
        "consumer",
        &["--name", &b, "--count", &count_s, "--timeout", "60"],
    );
    let mut producer = example(
        "producer",
        &[
            "--name",
            &a,
            "--count",
            &count_s,
            "--size",
            &size_s,
            "--timeout",
            "60",
        ],
    );
    let mut out = bridge(&out_args(&a, &key, &connect, &["--timeout", "60"]));
    let p = producer.finish(LONG);
    let o = out.finish(LONG);
    let c = consumer.finish(LONG);
    let i = inb.finish(LONG);
    [p, o, i, c]
}

#[test]
fn a_million_checked_messages_through_two_bridges() {
    let [p, o, i, c] = pipeline("million", 1_000_000, 64, &["--max-message", "64"]);
    assert_code(&p, 0, "producer");
    assert_code(&o, 0, "out");
    assert_code(&i, 0, "in");
    assert_code(&c, 0, "consumer");
    assert_eq!(consumer_summary(&c), (1_000_000, 0), "{c:#?}");
    assert!(o.stdout.contains("1000000 messages"), "{o:#?}");
    assert!(i.stdout.contains("0 lost on the way"), "{i:#?}");
}

#[test]
fn one_mib_messages() {
    let [p, o, i, c] = pipeline(
        "mib",
        64,
        1 << 20,
        &["--max-message", "1048576", "--capacity", "8388608"],
    );
    assert_code(&p, 0, "producer");
    assert_code(&o, 0, "out");
    assert_code(&i, 0, "in");
    assert_code(&c, 0, "consumer");
    assert_eq!(consumer_summary(&c), (64, 0), "{c:#?}");
}

#[test]
fn a_restarted_in_bridge_is_a_reported_gap_and_nothing_corrupt() {
    let (a, b) = (name("restart-a"), name("restart-b"));
    let key = format!("shmlane-test/{}/restart", std::process::id());
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    let in_extra = ["--max-message", "64"];
    let mut first = bridge(&in_args(&b, &key, &ep, &in_extra));
    let mut consumer = example(
        "consumer",
        &[
            "--name",
            &b,
            "--count",
            "300000",
            "--reconnect",
            "--timeout",
            "60",
        ],
    );
    let mut producer = example(
        "producer",
        &[
            "--name",
            &a,
            "--count",
            "300000",
            "--size",
            "64",
            "--rate",
            "100000",
            "--timeout",
            "60",
        ],
    );
    let mut out = bridge(&out_args(&a, &key, &ep, &["--timeout", "60"]));
    // Kill the `in` bridge once the stream is flowing, and start another in its place.
    let flowing = Instant::now();
    while shm_bridge::inspect::inspect(&b)
        .map(|i| i.participants.iter().all(|p| p.messages < 20_000))
        .unwrap_or(true)
    {
        assert!(flowing.elapsed() < LONG, "the stream never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.signal(Signal::SIGKILL);
    let f = first.finish(LONG);
    assert_eq!(f.code, None, "killed: {f:#?}");
    let mut second = bridge(&in_args(&b, &key, &ep, &in_extra));
    let p = producer.finish(LONG);
    let o = out.finish(LONG);
    let c = consumer.finish(LONG);
    let s = second.finish(LONG);
    assert_code(&p, 0, "producer");
    assert_code(&o, 0, "out");
    assert_code(
        &c,
        0,
        "consumer (gaps across the reconnection are reported, not errors)",
    );
    assert_code(&s, 0, "second in");
    let (received, errors) = consumer_summary(&c);
    assert_eq!(errors, 0, "{c:#?}");
    assert!(received > 0 && received <= 300_000, "{c:#?}");
    assert!(
        c.stdout.contains("across 1 reconnection"),
        "the consumer reconnected once: {c:#?}"
    );
    assert!(
        s.stderr.contains("joined at message"),
        "the second bridge joined mid-stream: {s:#?}"
    );
}

#[test]
fn a_stream_of_another_type_is_refused_and_sigterm_stops_cleanly() {
    let (a, b) = (name("type-a"), name("type-b"));
    let key = format!("shmlane-test/{}/type", std::process::id());
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    let mut inb = bridge(&in_args(&b, &key, &ep, &["--kind", "bytes"]));
    let mut tx = ChannelOptions::new().create::<u64>(&a).unwrap();
    let mut out = bridge(&out_args(&a, &key, &ep, &["--timeout", "60"]));
    let start = Instant::now();
    let mut i = 0u64;
    let refused = loop {
        let _ = tx.try_send(i);
        i += 1;
        if let Ok(Some(_)) = inb.child.try_wait() {
            break inb.finish(LONG);
        }
        assert!(
            start.elapsed() < LONG,
            "the in bridge never refused the stream"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    assert_code(&refused, 2, "in");
    assert!(
        refused.stderr.contains("refused") && refused.stderr.contains("u64"),
        "{refused:#?}"
    );
    // SIGTERM stops the out bridge cleanly: exit 0, its summary printed.
    out.signal(Signal::SIGTERM);
    let o = out.finish(LONG);
    assert_code(&o, 0, "out after SIGTERM");
    assert!(o.stdout.contains("stopped"), "{o:#?}");
    drop(tx);
}

#[test]
fn drops_of_a_full_channel_are_counted_where_inspect_shows_them() {
    let (a, b) = (name("drop-a"), name("drop-b"));
    let key = format!("shmlane-test/{}/drop", std::process::id());
    let port = free_port();
    let ep = format!("tcp/127.0.0.1:{port}");
    // Nobody reads the `in` side's small channel: with --full drop it drops and counts.
    let mut inb = bridge(&in_args(
        &b,
        &key,
        &ep,
        &[
            "--max-message",
            "64",
            "--capacity",
            "4096",
            "--full",
            "drop",
            "--keep-going",
        ],
    ));
    let mut producer = example(
        "producer",
        &[
            "--name",
            &a,
            "--count",
            "20000",
            "--size",
            "64",
            "--timeout",
            "60",
        ],
    );
    let mut out = bridge(&out_args(&a, &key, &ep, &["--timeout", "60"]));
    assert_code(&producer.finish(LONG), 0, "producer");
    assert_code(&out.finish(LONG), 0, "out");
    let lost = || {
        shm_bridge::inspect::inspect(&b)
            .map(|i| i.participants.iter().map(|p| p.lost).sum::<u64>())
            .unwrap_or(0)
    };
    let start = Instant::now();
    while lost() == 0 {
        assert!(start.elapsed() < LONG, "no drop recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    let recorded = lost();
    inb.signal(Signal::SIGTERM);
    let i = inb.finish(LONG);
    assert_code(&i, 0, "in after SIGTERM");
    assert!(
        i.stdout.contains(&format!("{recorded} dropped")),
        "the slot's count is the bridge's: {recorded} vs {i:#?}"
    );
}

/// Liveness on both local sides: the `out` side's producer killed mid-stream ends the stream
/// (the `in` side closes its channel, whose consumer has everything up to the death, valid);
/// the `in` side's consumer killed makes the `in` bridge stop with exit 3 (the channel's
/// other side died), and its configuration came from a file.
#[test]
fn a_dead_local_producer_ends_the_stream_and_a_dead_consumer_stops_the_in_bridge() {
    let key = format!("shmlane-test/{}/dead", std::process::id());
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let config = std::env::temp_dir().join(format!("{}.json5", name("dead")));
    std::fs::write(
        &config,
        format!(
            "{{ mode: \"peer\", listen: {{ endpoints: [\"{ep}\"] }}, \
             scouting: {{ multicast: {{ enabled: false }}, gossip: {{ enabled: false }} }} }}"
        ),
    )
    .unwrap();
    let config_s = config.to_str().unwrap();
    let s = Stream::start("dead", &key, &ep, &["--config", config_s]);
    s.producer.signal(Signal::SIGKILL);
    let Stream {
        mut inb,
        mut consumer,
        mut out,
        ..
    } = s;
    let o = out.finish(LONG);
    assert_code(&o, 0, "out after its producer died");
    assert!(o.stdout.contains("channel ended"), "{o:#?}");
    let i = inb.finish(LONG);
    assert_code(&i, 0, "in after the stream ended");
    let c = consumer.finish(LONG);
    assert_code(&c, 0, "consumer: everything until the end, valid");
    let (received, errors) = consumer_summary(&c);
    assert!(received >= 5_000 && errors == 0, "{c:#?}");
    let _ = std::fs::remove_file(config);

    // Now the consumer of the `in` side dies.
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let s = Stream::start("dead2", &key, &ep, &["--listen", &ep, "--no-scouting"]);
    s.consumer.signal(Signal::SIGKILL);
    let Stream {
        mut inb,
        mut producer,
        mut out,
        b,
        ..
    } = s;
    let i = inb.finish(LONG);
    assert_code(&i, 3, "in after its consumer died");
    assert!(i.stderr.contains(&b), "names the channel: {i:#?}");
    producer.signal(Signal::SIGTERM);
    let _ = producer.finish(LONG);
    let o = out.finish(LONG);
    assert_code(&o, 0, "out after its producer stopped");
}

/// A running producer -> out -> in -> consumer stream (the producer paced at 50 000
/// messages/s, until stopped), once 5 000 messages went through.
struct Stream {
    inb: Proc,
    consumer: Proc,
    producer: Proc,
    out: Proc,
    b: String,
}

impl Stream {
    fn start(tag: &str, key: &str, ep: &str, in_zenoh: &[&str]) -> Stream {
        let (a, b) = (name(&format!("{tag}-a")), name(&format!("{tag}-b")));
        let mut args = vec!["in", "--name", &b, "--key", key, "--max-message", "64"];
        args.extend_from_slice(in_zenoh);
        let inb = bridge(&args);
        let consumer = example("consumer", &["--name", &b, "--timeout", "60"]);
        let producer = example(
            "producer",
            &[
                "--name",
                &a,
                "--count",
                "0",
                "--size",
                "64",
                "--rate",
                "50000",
                "--timeout",
                "60",
            ],
        );
        let out = bridge(&out_args(&a, key, ep, &["--timeout", "60"]));
        let flowing = Instant::now();
        while shm_bridge::inspect::inspect(&b)
            .map(|i| i.participants.iter().all(|p| p.messages < 5_000))
            .unwrap_or(true)
        {
            assert!(flowing.elapsed() < LONG, "the stream never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        Stream {
            inb,
            consumer,
            producer,
            out,
            b,
        }
    }
}

/// Element channels of every source kind: a typed SPSC channel and a broadcast channel's
/// subscriber on the `out` side, typed and broadcast channels created by the `in` side;
/// every `u64` arrives, in order.
#[test]
fn element_streams_from_spsc_and_broadcast_sources() {
    for (tag, source_kind, in_kind) in [
        ("typed", "typed", "typed"),
        ("bc", "broadcast", "broadcast"),
    ] {
        let (a, b) = (name(&format!("{tag}-ea")), name(&format!("{tag}-eb")));
        let key = format!("shmlane-test/{}/{tag}", std::process::id());
        let port = free_port();
        let ep = format!("tcp/127.0.0.1:{port}");
        let mut inb = bridge(&in_args(
            &b,
            &key,
            &ep,
            &["--kind", in_kind, "--type", "u64:8:8", "--capacity", "4096"],
        ));
        // Connect to the `in` side's channel first: a broadcast subscriber gets what is
        // sent after it joined.
        let copts = ChannelOptions::new().timeout(Duration::from_secs(60));
        let mut typed_rx = None;
        let mut bc_rx = None;
        if in_kind == "typed" {
            typed_rx = Some(copts.connect::<u64>(&b).unwrap());
        } else {
            bc_rx = Some(copts.connect_subscriber::<u64>(&b).unwrap());
        }
        let opts = ChannelOptions::new().capacity(4096);
        const N: u64 = 50_000;
        let sender = std::thread::spawn({
            let a = a.clone();
            move || -> Result<(), shm_bridge::Error> {
                if source_kind == "typed" {
                    let mut tx = opts.create::<u64>(&a)?;
                    for i in 0..N {
                        tx.send(i)?;
                    }
                } else {
                    let mut tx = opts.create_broadcast::<u64>(&a)?;
                    // The out bridge is this channel's subscriber: wait for it.
                    while tx.subscribers().is_empty() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    for i in 0..N {
                        tx.send(i)?;
                    }
                }
                Ok(())
            }
        });
        let mut out = bridge(&out_args(&a, &key, &ep, &["--timeout", "60"]));
        let got: Vec<u64> = match (typed_rx.as_mut(), bc_rx.as_mut()) {
            (Some(rx), _) => (0..N).map(|_| rx.recv().unwrap()).collect(),
            (_, Some(rx)) => (0..N).map(|_| rx.recv().unwrap()).collect(),
            _ => unreachable!(),
        };
        assert!(
            got.iter().copied().eq(0..N),
            "{tag}: out of order or missing"
        );
        sender.join().unwrap().unwrap();
        assert_code(&out.finish(LONG), 0, "out");
        assert_code(&inb.finish(LONG), 0, "in");
    }
}

/// Two "hosts": network namespaces joined by a veth pair this test makes (and deletes),
/// the `out` bridge in one, the `in` bridge in the other, the stream over 10.77.x.0/24.
/// Needs root and `ip` (CI has both); elsewhere it says why it is skipped.
#[test]
fn two_hosts_in_network_namespaces() {
    if !nix::unistd::Uid::effective().is_root() || Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: needs root and the `ip` command to make network namespaces");
        return;
    }
    let tag = std::process::id() % 100_000;
    let subnet = 1 + tag % 250;
    let (ns_a, ns_b) = (format!("shlz-a-{tag}"), format!("shlz-b-{tag}"));
    let (va, vb) = (format!("shlza{tag}"), format!("shlzb{tag}"));
    let (ip_a, ip_b) = (format!("10.77.{subnet}.1"), format!("10.77.{subnet}.2"));
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for ns in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }
    let _cleanup = Cleanup(vec![ns_a.clone(), ns_b.clone()]);
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {}", args.join(" "));
    };
    ip(&["netns", "add", &ns_a]);
    ip(&["netns", "add", &ns_b]);
    ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
    ip(&["link", "set", &va, "netns", &ns_a]);
    ip(&["link", "set", &vb, "netns", &ns_b]);
    ip(&[
        "-n",
        &ns_a,
        "addr",
        "add",
        &format!("{ip_a}/24"),
        "dev",
        &va,
    ]);
    ip(&[
        "-n",
        &ns_b,
        "addr",
        "add",
        &format!("{ip_b}/24"),
        "dev",
        &vb,
    ]);
    for (ns, dev) in [(&ns_a, &va), (&ns_b, &vb)] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    let exe = env!("CARGO_BIN_EXE_shmlane-zenoh");
    let in_ns = |ns: &str, args: &[&str]| {
        let mut v = vec!["netns", "exec", ns, exe];
        v.extend_from_slice(args);
        spawn(Path::new("ip"), &v)
    };
    let (a, b) = (name("netns-a"), name("netns-b"));
    let key = format!("shmlane-test/{}/netns", std::process::id());
    let listen = format!("tcp/{ip_b}:7447");
    let mut inb = in_ns(
        &ns_b,
        &[
            "in",
            "--name",
            &b,
            "--key",
            &key,
            "--max-message",
            "64",
            "--listen",
            &listen,
            "--no-scouting",
        ],
    );
    let mut consumer = example(
        "consumer",
        &["--name", &b, "--count", "100000", "--timeout", "60"],
    );
    let mut producer = example(
        "producer",
        &[
            "--name",
            &a,
            "--count",
            "100000",
            "--size",
            "64",
            "--timeout",
            "60",
        ],
    );
    let mut out = in_ns(
        &ns_a,
        &[
            "out",
            "--name",
            &a,
            "--key",
            &key,
            "--connect",
            &listen,
            "--no-scouting",
            "--timeout",
            "60",
        ],
    );
    assert_code(&producer.finish(LONG), 0, "producer");
    assert_code(&out.finish(LONG), 0, "out in namespace A");
    let c = consumer.finish(LONG);
    assert_code(&c, 0, "consumer");
    assert_eq!(consumer_summary(&c), (100_000, 0), "{c:#?}");
    assert_code(&inb.finish(LONG), 0, "in in namespace B");
}
