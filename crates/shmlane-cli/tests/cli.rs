//! The `shmlane` binary, run for real: every subcommand, in table and JSON form, against
//! channels this test creates (live, dead, garbage), and the exit codes of its refusals.
//!
//! Channel names carry the test's pid. Tests that leave stale segments behind, or run `gc`
//! (which removes every stale segment), hold `STALE` so they never see each other's.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use shm_bridge::fork::{fork_child_unchecked, Child};
use shm_bridge::inspect::{self, ChannelInfo};
use shm_bridge::{ChannelOptions, PeerState, Role};

static STALE: Mutex<()> = Mutex::new(());

fn stale_lock() -> MutexGuard<'static, ()> {
    STALE.lock().unwrap_or_else(|e| e.into_inner())
}

fn name(tag: &str) -> String {
    format!("cli-{}-{tag}", std::process::id())
}

/// Removes the segments it names when dropped, whatever the test did.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(shm_bridge::shm_path(n));
        }
    }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn shmlane(args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_shmlane"))
        .args(args)
        .output()
        .expect("runs the shmlane binary");
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 on stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 on stderr"),
    };
    assert!(
        !ran.stderr.contains("panicked"),
        "shmlane {args:?} panicked: {}",
        ran.stderr
    );
    ran
}

/// Runs a command that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let ran = shmlane(args);
    assert_eq!(ran.code, 0, "shmlane {args:?} failed: {}", ran.stderr);
    ran.stdout
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The `list --json` entry of channel `n`.
fn listed(n: &str) -> Value {
    let all = json(&["list"]);
    all.as_array()
        .expect("list --json prints an array")
        .iter()
        .find(|c| c["name"] == n)
        .unwrap_or_else(|| panic!("{n} not listed: {all:#}"))
        .clone()
}

/// The table line of channel `n` in `shmlane list`.
fn list_line(n: &str) -> String {
    let out = ok(&["list"]);
    assert!(out.starts_with("NAME"), "{out}");
    out.lines()
        .find(|l| l.starts_with(&format!("{n} ")))
        .unwrap_or_else(|| panic!("{n} not listed:\n{out}"))
        .to_owned()
}

fn wait_until(n: &str, what: &str, pred: impl Fn(&ChannelInfo) -> bool) {
    let t = Instant::now();
    while !inspect::inspect(n).is_ok_and(|i| pred(&i)) {
        assert!(t.elapsed() < Duration::from_secs(10), "{n}: never {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A forked child that creates byte channel `n` and sleeps; returns once it is alive.
fn holder(n: &str) -> Child {
    let n2 = n.to_owned();
    // SAFETY: the child only uses the channel it creates (and the heartbeat thread it
    // starts), never a lock another thread of the test harness could hold; glibc resets the
    // allocator's locks in the child.
    let kid = unsafe {
        fork_child_unchecked(
            move || match ChannelOptions::new().capacity(4096).create_bytes(&n2) {
                Ok(_tx) => {
                    std::thread::sleep(Duration::from_secs(60));
                    0
                }
                Err(_) => 3,
            },
        )
    }
    .expect("forks a holder");
    wait_until(n, "alive", |i| {
        matches!(i.state_of(Role::Producer).0, PeerState::Alive { .. })
    });
    kid
}

/// Writes `bytes` as segment `n`, modified 10 s ago (too old to be mid-creation).
fn plant(n: &str, bytes: &[u8]) {
    let path = shm_bridge::shm_path(n);
    std::fs::write(&path, bytes).expect("writes the segment");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(10)))
        .expect("ages the segment");
}

#[test]
fn help_texts_exist_and_hide_the_demo_roles() {
    let top = ok(&["--help"]);
    for cmd in ["list", "inspect", "watch", "rm", "gc", "demo"] {
        assert!(top.contains(cmd), "{top}");
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("Usage: shmlane"), "{cmd}: {help}");
        assert!(help.contains("--json"), "{cmd}: {help}");
    }
    assert!(!top.contains("demo-producer"), "{top}");
    let bad = shmlane(&["frobnicate"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("frobnicate"), "{}", bad.stderr);
}

#[test]
fn list_shows_a_live_channel_with_its_sides() {
    let n = name("list-live");
    let _c = Cleanup(vec![n.clone()]);
    let pid = std::process::id();
    let tx = ChannelOptions::new()
        .capacity(4096)
        .create_bytes(&n)
        .unwrap();

    let c = listed(&n);
    assert_eq!(c["kind"], "bytes");
    assert_eq!(c["type"], "bytes");
    assert_eq!(c["capacity"], 4096);
    assert_eq!(c["fill"], 0);
    assert_eq!(c["problem"], Value::Null);
    assert_eq!(c["producer"]["state"], "alive");
    assert_eq!(c["producer"]["pid"], pid);
    assert_eq!(c["consumer"]["state"], "absent");
    assert!(c["size"].as_u64().unwrap() > 4096);
    assert!(c["resident_bytes"].as_u64().is_some());
    let line = list_line(&n);
    assert!(line.contains(&format!("alive {pid}")), "{line}");
    assert!(line.contains("absent"), "{line}");

    let rx = ChannelOptions::new().connect_bytes(&n).unwrap();
    let c = listed(&n);
    assert_eq!(c["consumer"]["state"], "alive");
    assert_eq!(c["consumer"]["pid"], pid);
    let line = list_line(&n);
    assert_eq!(line.matches(&format!("alive {pid}")).count(), 2, "{line}");
    drop((tx, rx));
}

#[test]
fn list_reports_garbage_and_empty_segments_without_crashing() {
    let _g = stale_lock();
    let (junk, empty) = (name("junk"), name("empty"));
    let _c = Cleanup(vec![junk.clone(), empty.clone()]);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..16384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    plant(&junk, &noise);
    plant(&empty, &[]);

    for n in [&junk, &empty] {
        let c = listed(n);
        let problem = c["problem"].as_str().unwrap_or_else(|| panic!("{c:#}"));
        assert!(!problem.is_empty());
        assert_eq!(c["kind"], Value::Null, "{c:#}");
        assert_eq!(c["stale"], true, "{c:#}");
        let line = list_line(n);
        assert!(line.contains("not usable"), "{line}");
    }
    assert_eq!(listed(&empty)["size"], 0);

    // inspect shows the problem and exits 1: the channel is unusable.
    let ins = shmlane(&["inspect", &junk]);
    assert_eq!(ins.code, 1, "{}", ins.stderr);
    assert!(ins.stdout.contains("problem"), "{}", ins.stdout);
    assert!(ins.stderr.contains("not usable"), "{}", ins.stderr);
    let ins = shmlane(&["--json", "inspect", &empty]);
    assert_eq!(ins.code, 1, "{}", ins.stderr);
    let v: Value = serde_json::from_str(&ins.stdout).unwrap();
    assert!(v["problem"].is_string(), "{v:#}");
}

/// Names and strings read from /dev/shm are escaped in human output: a file name with a
/// terminal escape sequence and a newline can neither reach the terminal raw nor fake a
/// row. Errors under --json are JSON.
#[test]
fn human_output_escapes_what_a_peer_wrote_and_json_errors_are_json() {
    let _g = stale_lock();
    let evil = name("esc\x1b[2J\nFAKE-ROW\x07");
    let _c = Cleanup(vec![evil.clone()]);
    plant(&evil, &[0u8; 64]);

    let out = ok(&["list"]);
    assert!(
        !out.contains('\x1b') && !out.contains('\x07'),
        "raw escape in {out:?}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("FAKE-ROW")),
        "fake row in {out:?}"
    );
    assert!(out.contains("esc\\u{1b}[2J\\nFAKE-ROW\\u{7}"), "{out}");
    // JSON keeps the exact name (its encoder escapes it).
    assert_eq!(listed(&evil)["name"], evil.as_str());

    let ins = shmlane(&["inspect", &evil]);
    assert!(
        !ins.stdout.contains('\x1b'),
        "raw escape in {:?}",
        ins.stdout
    );
    assert!(
        !ins.stderr.contains('\x1b'),
        "raw escape in {:?}",
        ins.stderr
    );

    let gone = shmlane(&["--json", "inspect", &name("no-such-channel")]);
    assert_eq!(gone.code, 1);
    let v: Value = serde_json::from_str(gone.stderr.trim())
        .unwrap_or_else(|e| panic!("{e}: not JSON: {}", gone.stderr));
    assert!(
        v["error"].as_str().unwrap().contains("no channel named"),
        "{v:#}"
    );

    let out = ok(&["gc"]);
    assert!(!out.contains('\x1b'), "raw escape in {out:?}");
    assert!(out.contains("FAKE-ROW"), "{out}");
}

/// gc says what it left and why: a young unusable segment (maybe mid-creation) and one of
/// another owner, instead of "every channel has a live holder".
#[test]
fn gc_says_what_it_skipped_and_why() {
    let _g = stale_lock();
    let (young, foreign) = (name("gc-young"), name("gc-foreign"));
    let _c = Cleanup(vec![young.clone(), foreign.clone()]);
    std::fs::write(shm_bridge::shm_path(&young), [0u8; 64]).unwrap();
    plant(&foreign, &[0u8; 64]);
    let root = nix::unistd::geteuid().is_root();
    if root {
        nix::unistd::chown(
            &shm_bridge::shm_path(&foreign),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
    } else {
        eprintln!("foreign-owner case skipped: chown to another uid needs root");
    }
    let v = json(&["gc"]);
    let reason = |n: &str| {
        v["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["channel"]["name"] == n)
            .map(|s| s["reason"].as_str().unwrap().to_owned())
    };
    let why = reason(&young).unwrap_or_else(|| panic!("{young} not reported: {v:#}"));
    assert!(why.contains("s old"), "{why}");
    assert!(shm_bridge::shm_path(&young).exists());
    if root {
        let why = reason(&foreign).unwrap_or_else(|| panic!("{foreign} not reported: {v:#}"));
        assert!(why.contains("owned by uid 65534"), "{why}");
        assert!(shm_bridge::shm_path(&foreign).exists());
        let out = ok(&["gc"]);
        assert!(
            out.contains(&foreign) && out.contains("owned by uid"),
            "{out}"
        );
    }
}

#[test]
fn inspect_shows_header_fields_indices_and_mappers() {
    let n = name("inspect");
    let _c = Cleanup(vec![n.clone()]);
    let pid = std::process::id();
    let mut tx = ChannelOptions::new()
        .capacity(64)
        .create::<u64>(&n)
        .unwrap();
    // A batch publishes the ring's tail word at once (single sends do so per block).
    assert_eq!(tx.send_partial_slice(&[7, 8, 9]).unwrap(), 3);

    let c = json(&["inspect", &n]);
    assert_eq!(c["kind"], "typed");
    assert_eq!(c["type"], "u64");
    assert_eq!(c["elem_size"], 8);
    assert_eq!(c["fill"], 3);
    assert_eq!(c["control"]["magic"], "SHMLANEC");
    assert_eq!(c["control"]["slots"], 2);
    assert!(c["control"]["ring_bytes"].as_u64().unwrap() > 0);
    let ring = &c["ring"];
    assert_eq!(ring["tail"], 3);
    assert_eq!(ring["head"], 0);
    assert_eq!(ring["requested_capacity"], 64);
    assert!(ring["capacity"].as_u64().unwrap() >= 64);
    assert_eq!(ring["problem"], Value::Null);
    for field in [
        "magic",
        "version",
        "kind",
        "block_count",
        "type_hash",
        "area_size",
        "ready",
        "producer_claim",
        "consumer_claim",
        "closed",
        "consumer_waiters",
    ] {
        assert!(ring[field].is_u64(), "{field}: {ring:#}");
    }
    let parts = c["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["role"], "producer");
    assert_eq!(parts[0]["state"], "alive");
    assert_eq!(parts[0]["pid"], pid);
    let me = c["mappers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["pid"] == pid)
        .unwrap_or_else(|| panic!("we map it: {c:#}"));
    assert!(me["rss_kib"].as_u64().unwrap() > 0, "{me}");
    assert!(me["pss_kib"].is_u64(), "{me}");
    assert!(c["resident_bytes"].as_u64().unwrap() > 0);

    let text = ok(&["inspect", &n]);
    for want in [
        "ring header",
        "tail",
        "head",
        "participants",
        "mapped by",
        "resident",
        &format!("alive {pid}"),
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with(&pid.to_string())),
        "{text}"
    );
    drop(tx);

    let missing = shmlane(&["inspect", &name("no-such")]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no-such"), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("shmlane list"),
        "{}",
        missing.stderr
    );
}

#[test]
fn watch_shows_rates_while_a_thread_sends() {
    let n = name("watch");
    let _c = Cleanup(vec![n.clone()]);
    let mut tx = ChannelOptions::new()
        .capacity(1024)
        .create::<u64>(&n)
        .unwrap();
    let mut rx = ChannelOptions::new().connect::<u64>(&n).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let sender = std::thread::spawn(move || {
        let mut i = 0u64;
        while !s2.load(Ordering::Relaxed) {
            if tx
                .send_deadline(i, Some(Instant::now() + Duration::from_millis(50)))
                .is_ok()
            {
                i += 1;
            }
            if i.is_multiple_of(100) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let s3 = stop.clone();
    let receiver = std::thread::spawn(move || {
        while !s3.load(Ordering::Relaxed) {
            let _ = rx.recv_deadline(Some(Instant::now() + Duration::from_millis(50)));
        }
    });

    let out = ok(&["watch", &n, "--count", "2", "--interval", "200", "--json"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        assert_eq!(l["name"], n.as_str());
        assert!(l["msgs_per_s"].is_f64(), "{l}");
        assert!(l["bytes_per_s"].is_f64(), "{l}");
        assert!(l["fill"].is_u64(), "{l}");
        assert_eq!(l["producer"]["state"], "alive");
        assert_eq!(l["consumer"]["state"], "alive");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["msgs_per_s"].as_f64().unwrap() > 0.0),
        "{out}"
    );

    let text = ok(&["watch", &n, "--count", "2", "--interval", "200"]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows[0].contains("MSGS/S") && rows[0].contains("FILL"),
        "{text}"
    );
    assert!(rows[1..].iter().all(|r| r.contains("alive")), "{text}");

    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    receiver.join().unwrap();

    let gone = shmlane(&["watch", &name("no-such"), "--count", "1"]);
    assert_eq!(gone.code, 1);
    assert!(gone.stderr.contains("no-such"), "{}", gone.stderr);
}

#[test]
fn rm_refuses_a_live_channel_unless_forced_and_removes_a_dead_one() {
    let _g = stale_lock();
    let (live, dead) = (name("rm-live"), name("rm-dead"));
    let _c = Cleanup(vec![live.clone(), dead.clone()]);
    let path = shm_bridge::shm_path(&live);
    let tx = ChannelOptions::new().create::<u64>(&live).unwrap();

    let refused = shmlane(&["rm", &live]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("in use"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(path.exists());
    let refused = shmlane(&["rm", &live, "--json"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stdout.is_empty());

    let v = json(&["rm", &live, "--force"]);
    assert_eq!(v["removed"]["name"], live.as_str());
    assert_eq!(v["forced"], true);
    assert_eq!(v["was_held"], true);
    assert!(!path.exists());
    drop(tx);

    let kid = holder(&dead);
    kid.kill().unwrap();
    let out = ok(&["rm", &dead]);
    assert!(out.contains(&format!("removed channel `{dead}`")), "{out}");
    assert!(!shm_bridge::shm_path(&dead).exists());

    let kid = holder(&dead);
    kid.kill().unwrap();
    let v = json(&["rm", &dead]);
    assert_eq!(v["removed"]["producer"]["state"], "dead");
    assert_eq!(v["was_held"], false);

    let missing = shmlane(&["rm", &dead]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains(&dead), "{}", missing.stderr);
}

#[test]
fn gc_removes_channels_of_killed_holders_and_leaves_live_ones() {
    let _g = stale_lock();
    let (dead, live) = (name("gc-dead"), name("gc-live"));
    let _c = Cleanup(vec![dead.clone(), live.clone()]);
    let _tx = ChannelOptions::new().create::<u64>(&live).unwrap();

    let kid = holder(&dead);
    let kid_pid = kid.pid();
    kid.kill().unwrap();
    let v = json(&["gc"]);
    let removed = v["removed"].as_array().unwrap();
    let r = removed
        .iter()
        .find(|c| c["name"] == dead.as_str())
        .unwrap_or_else(|| panic!("{dead} not removed: {v:#}"));
    assert_eq!(r["producer"]["state"], "dead");
    assert_eq!(r["producer"]["pid"], kid_pid);
    assert!(removed.iter().all(|c| c["name"] != live.as_str()));
    assert!(!shm_bridge::shm_path(&dead).exists());
    assert!(shm_bridge::shm_path(&live).exists());

    let kid = holder(&dead);
    kid.kill().unwrap();
    let out = ok(&["gc"]);
    assert!(out.contains("removed"), "{out}");
    assert!(out.contains(&dead), "{out}");
    assert!(!out.contains(&live), "{out}");
    assert!(!shm_bridge::shm_path(&dead).exists());
    assert!(shm_bridge::shm_path(&live).exists());
}

#[test]
fn demo_streams_through_both_transports_and_checks_every_message() {
    let v = json(&["demo", "--seconds", "1"]);
    assert_eq!(v["errors"], 0, "{v:#}");
    assert_eq!(v["message_size"], 64);
    for t in ["shmlane", "pipe"] {
        let t = &v[t];
        assert!(t["messages"].as_u64().unwrap() > 0, "{t:#}");
        assert!(t["msgs_per_s"].as_f64().unwrap() > 0.0, "{t:#}");
        assert!(t["mb_per_s"].as_f64().unwrap() > 0.0, "{t:#}");
        assert_eq!(t["errors"], 0, "{t:#}");
        assert_eq!(t["lost"], 0, "{t:#}");
        for p in ["p50_ns", "p99_ns", "p999_ns", "max_ns"] {
            assert!(t["latency"][p].as_u64().unwrap() > 0, "{p}: {t:#}");
        }
        assert!(t["latency"]["p50_ns"].as_u64() <= t["latency"]["max_ns"].as_u64());
    }
    assert!(v["ratio"]["msgs_per_s"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["ratio"]["p99"].as_f64().is_some(), "{v:#}");
    let channel = v["channel"].as_str().unwrap();
    let left: Vec<_> = inspect::list()
        .unwrap()
        .into_iter()
        .filter(|c| c.name.starts_with(channel))
        .collect();
    assert!(left.is_empty(), "the demo left {left:?}");

    let out = ok(&["demo", "--seconds", "1", "--size", "200"]);
    for want in [
        "shmlane",
        "pipe",
        "shmlane/pipe",
        "msgs/s",
        "p99.9",
        "No errors",
    ] {
        assert!(out.contains(want), "{want}:\n{out}");
    }

    let bad = shmlane(&["demo", "--size", "4"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("--size"), "{}", bad.stderr);
}

/// `shmlane bench`: the JSON lines carry the documented fields, every ratio is the value
/// over its baseline's value, and the table names every figure. Tiny sample counts
/// (`--smoke`): this checks the suite and its output, not the figures.
#[test]
fn bench_prints_figures_with_baselines_and_ratios() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shmlane"))
        .args(["bench", "--smoke", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let figures: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(figures.len() > 40, "{} figures", figures.len());
    let by_name: std::collections::HashMap<&str, f64> = figures
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["value"].as_f64().unwrap()))
        .collect();
    for f in &figures {
        for key in [
            "name",
            "value",
            "unit",
            "baseline",
            "baseline_value",
            "ratio",
        ] {
            assert!(f.get(key).is_some(), "{key} missing in {f}");
        }
        if let Some(base) = f["baseline"].as_str() {
            let bv = f["baseline_value"].as_f64().unwrap();
            assert_eq!(by_name[base], bv, "{f}");
            if bv == 0.0 {
                // (an idle process's CPU use can measure 0: no ratio then)
                assert!(f["ratio"].is_null(), "{f}");
                continue;
            }
            let ratio = f["ratio"].as_f64().unwrap();
            assert!(
                (ratio - f["value"].as_f64().unwrap() / bv).abs() < 1e-9,
                "{f}"
            );
        }
    }
    for name in [
        "rtt/floor-atomics/p50",
        "rtt/shmlane-spsc/8B/p99.9",
        "tput/shmlane-spsc/u64/item",
        "tput/shmlane-mpmc/2p2c",
        "bw/shmlane-bytes/64KiB/zero-copy",
        "scale/threads/10ch",
        "scale/setup/10ch",
        "scale/idle-cpu/10ch",
        "scale/list/10ch",
        "rtt/shmlane-spsc/8B/idle-10ch/p50",
        "rtt/tokio-unix-stream/8B/p50",
        "rtt/shmlane-async/8B/p50",
        "tput/shmlane-async-recv/u64",
        "tput/shmlane-async-recv/u64/vs-tokio-mpsc",
    ] {
        assert!(by_name.contains_key(name), "{name} missing");
    }
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_shmlane"))
        .args(["bench", "--smoke", "--only", "latency"])
        .output()
        .unwrap();
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("rtt/shmlane-spsc/8B/p50") && table.contains("ratio"),
        "{table}"
    );
    assert!(!table.contains("tput/"), "--only latency ran throughput");
}

/// One validation for all: a ring header whose capacity no attach would accept (here 2^54
/// elements in a 64 KiB file) is listed as unusable and `inspect` fails, as the consumer
/// refuses it; before, `list` showed it as a healthy channel of "16.0 PiB".
#[test]
fn list_inspect_and_the_consumer_agree_on_a_corrupt_header() {
    let _g = stale_lock();
    let n = name("badcap");
    let _c = Cleanup(vec![n.clone()]);
    let _tx = ChannelOptions::new().create::<u64>(&n).unwrap();
    let path = shm_bridge::shm_path(&n);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&(1u64 << 54).to_le_bytes(), 16).unwrap(); // the ring's `capacity`
    let c = listed(&n);
    let problem = c["problem"]
        .as_str()
        .unwrap_or_else(|| panic!("listed as usable: {c:#}"));
    assert!(problem.contains("capacity"), "{problem}");
    assert!(list_line(&n).contains("not usable"));
    let ins = shmlane(&["inspect", &n]);
    assert_eq!(ins.code, 1, "{ins:?}", ins = ins.stderr);
    // The ring section says so too (it once ran a weaker check of its own that passed).
    assert!(
        ins.stdout.contains("not a valid ring") && ins.stdout.contains("capacity"),
        "{}",
        ins.stdout
    );
    let ins = shmlane(&["--json", "inspect", &n]);
    let v: Value = serde_json::from_str(&ins.stdout).unwrap();
    let ring_problem = v["ring"]["problem"]
        .as_str()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(ring_problem.contains("capacity"), "{ring_problem}");
    assert!(
        ChannelOptions::new()
            .timeout(Duration::from_millis(200))
            .connect::<u64>(&n)
            .is_err(),
        "the consumer refuses it too"
    );
}

/// A file truncated and regrown while the tools read it: no SIGBUS (the guard maps zero
/// pages), and whatever they print, they exit with a code.
#[test]
fn tools_survive_a_file_truncated_and_regrown_under_them() {
    let _g = stale_lock();
    let n = name("shrink");
    let _c = Cleanup(vec![n.clone()]);
    let _tx = ChannelOptions::new()
        .capacity(1 << 16)
        .create::<u64>(&n)
        .unwrap();
    let path = shm_bridge::shm_path(&n);
    let full = std::fs::metadata(&path).unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let p = path.clone();
    let churn = std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        while !s.load(Ordering::Relaxed) {
            let _ = f.set_len(4096);
            std::thread::sleep(Duration::from_micros(200));
            let _ = f.set_len(full);
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = f.set_len(full);
    });
    let mut killed = Vec::new();
    for i in 0..120 {
        let args: &[&str] = if i % 3 == 0 {
            &["list"]
        } else {
            &["inspect", &n]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_shmlane"))
            .args(args)
            .output()
            .unwrap();
        if out.status.code().is_none() {
            killed.push(format!("{args:?}: {:?}", out.status));
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(killed.is_empty(), "killed by a signal: {killed:?}");
}

#[test]
fn inspect_shows_each_broadcast_subscriber() {
    let n = name("inspect-bc");
    let _c = Cleanup(vec![n.clone()]);
    let opts = ChannelOptions::new().capacity(64).subscribers(4).lossy();
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    let mut fast = opts.connect_subscriber::<u64>(&n).unwrap();
    let _slow = opts.connect_subscriber::<u64>(&n).unwrap();
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    for _ in 0..10 {
        fast.recv().unwrap();
    }
    let c = json(&["inspect", &n]);
    assert_eq!(c["kind"], "broadcast");
    assert_eq!(c["fill"], 10);
    let b = &c["broadcast"];
    assert_eq!(b["mode"], "lossy");
    assert_eq!(b["published"], 10);
    assert_eq!(b["slowest_lag"], 10);
    let subs = b["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    let lags: Vec<u64> = subs.iter().map(|s| s["lag"].as_u64().unwrap()).collect();
    assert_eq!(lags, [0, 10]);
    assert!(subs
        .iter()
        .all(|s| s["state"] == "live" && s["slot"].as_u64().is_some()));
}
