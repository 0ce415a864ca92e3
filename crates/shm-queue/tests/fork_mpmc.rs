//! Cross-process tests of the MPMC ring with real `fork()`: children take their own handles
//! in the child, do only ring work and `_exit`.
//!
//! - Two producer processes and two consumer processes move 5 million sequence-numbered
//!   elements (fewer in debug builds); a shared bitmap proves none is lost or duplicated,
//!   and each consumer checks each producer's elements arrive in order.
//! - A producer process is `SIGKILL`ed while it holds a claim; the consumers, with a
//!   liveness check that knows the killed pid, skip exactly that claim within the patience,
//!   and everything else arrives.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::keep_polling;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use shm_queue::mpmc;
use shm_region::Region;

const DEADLINE: Duration = Duration::from_secs(150);

/// The tests fork; running them one at a time keeps other test threads from holding
/// process-private locks at the moment of a fork, and keeps the 2 CPUs for one test's
/// spinning children.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Shared test state: a few control words, then a bitmap with one bit per element.
struct Board {
    region: Region,
}

const CONSUMED: usize = 0;
const DEAD_PID: usize = 128;
const HOLDING: usize = 256;
const BITMAP: usize = 4096;

impl Board {
    fn new(bits: u64) -> Self {
        Board {
            region: Region::anonymous(BITMAP + bits.div_ceil(64) as usize * 8 + 8).unwrap(),
        }
    }
    fn word(&self, off: usize) -> &AtomicU64 {
        self.region.atomic_u64(off).unwrap()
    }
    /// Sets bit `i`; `false` if it was already set (a duplicate).
    fn mark(&self, i: u64) -> bool {
        let w = self.word(BITMAP + (i / 64) as usize * 8);
        w.fetch_or(1 << (i % 64), Ordering::Relaxed) & (1 << (i % 64)) == 0
    }
    /// The first (up to 10) unset bits below `bits`.
    fn all_set(&self, bits: u64) -> Vec<u64> {
        (0..bits)
            .filter(|&i| {
                self.word(BITMAP + (i / 64) as usize * 8)
                    .load(Ordering::Relaxed)
                    & (1 << (i % 64))
                    == 0
            })
            .take(10)
            .collect()
    }
}

/// Runs `f` in a forked child that `_exit`s with its result.
fn spawn(f: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the child only runs `f` (ring work on memory mapped before the fork) and
    // `_exit`s, without returning into the test harness.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    }
}

/// Waits for every child, killing all of them at the deadline; returns their statuses.
fn reap(children: &[Pid], deadline: Instant) -> Vec<WaitStatus> {
    let mut out = vec![None; children.len()];
    while out.iter().any(Option::is_none) {
        for (i, &c) in children.iter().enumerate() {
            if out[i].is_none() {
                match waitpid(c, Some(WaitPidFlag::WNOHANG)).unwrap() {
                    WaitStatus::StillAlive => {}
                    s => out[i] = Some(s),
                }
            }
        }
        if Instant::now() > deadline {
            for &c in children {
                let _ = kill(c, Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    out.into_iter().flatten().collect()
}

/// Producer `p` pushes `n` elements `(p << 40) | seq`, some in batches.
fn produce(ring: &mpmc::Ring<u64>, p: u64, n: u64) -> i32 {
    let Ok(mut tx) = ring.producer() else {
        return 10;
    };
    let deadline = Instant::now() + DEADLINE;
    let mut seq = 0;
    let mut spins = 0u32;
    let mut batch = [0u64; 8];
    while seq < n {
        let r = if seq % 16 < 8 {
            tx.try_push((p << 40) | seq).map(|()| 1)
        } else {
            let k = (n - seq).min(8);
            for (j, b) in batch[..k as usize].iter_mut().enumerate() {
                *b = (p << 40) | (seq + j as u64);
            }
            tx.push_partial_slice(&batch[..k as usize])
        };
        match r {
            Ok(k) => seq += k as u64,
            Err(TryError::Full { .. }) => {
                if !keep_polling(&mut spins, deadline) {
                    return 2;
                }
            }
            Err(_) => return 3,
        }
    }
    0
}

/// Consumes until the board's counter reaches `total`, marking each element's bit and
/// checking per-producer order. `per` is the number of elements per producer.
fn consume(
    ring: &mpmc::Ring<u64>,
    board: &Arc<Board>,
    total: u64,
    per: u64,
    liveness: Option<Duration>,
) -> i32 {
    let Ok(mut rx) = ring.consumer() else {
        return 10;
    };
    if let Some(patience) = liveness {
        // What the test knows: the pid it killed, published by the parent after the kill.
        let board = board.clone();
        rx = rx.with_recovery(
            move |token: u64| {
                let dead = board.word(DEAD_PID).load(Ordering::Acquire);
                dead != 0 && token >> 32 == dead
            },
            patience,
        );
    }
    let deadline = Instant::now() + DEADLINE;
    let mut last = [None::<u64>; 4];
    let mut buf = [0u64; 8];
    let mut spins = 0u32;
    while board.word(CONSUMED).load(Ordering::Relaxed) < total {
        match common::pop_some(&mut rx, &mut buf, spins.is_multiple_of(2)) {
            Ok(k) => {
                for &v in &buf[..k] {
                    let (p, s) = ((v >> 40) as usize, v & ((1 << 40) - 1));
                    if p >= last.len() || s >= per {
                        return 4; // invented
                    }
                    if last[p].is_some_and(|l| l >= s) {
                        return 5; // out of order
                    }
                    last[p] = Some(s);
                    if !board.mark(p as u64 * per + s) {
                        return 6; // duplicate
                    }
                }
                board.word(CONSUMED).fetch_add(k as u64, Ordering::Relaxed);
            }
            Err(TryError::Empty { .. }) => {
                if !keep_polling(&mut spins, deadline) {
                    return 2;
                }
            }
            Err(_) => return 3,
        }
        spins = spins.wrapping_add(1);
    }
    0
}

#[test]
fn two_producer_and_two_consumer_processes_lose_and_duplicate_nothing() {
    for slots in [mpmc::SlotLayout::Packed, mpmc::SlotLayout::Line] {
        two_by_two(slots);
    }
}

/// Two producer and two consumer processes over a ring whose slots are spaced by `slots`.
fn two_by_two(slots: mpmc::SlotLayout) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let total: u64 = if cfg!(debug_assertions) {
        200_000
    } else {
        5_000_000
    };
    let per = total / 2;
    let opts = mpmc::Options::new(4096).slot_layout(slots);
    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes_with(opts).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create_with(region, opts).unwrap();
    assert_eq!(ring.slot_layout(), slots);
    let board = Arc::new(Board::new(total));
    let start = Instant::now();
    let mut kids = Vec::new();
    for p in 0..2 {
        let ring = ring.clone();
        kids.push(spawn(move || produce(&ring, p, per)));
    }
    for _ in 0..2 {
        let (ring, board) = (ring.clone(), board.clone());
        kids.push(spawn(move || consume(&ring, &board, total, per, None)));
    }
    let statuses = reap(&kids, Instant::now() + DEADLINE + Duration::from_secs(10));
    let took = start.elapsed();
    for s in &statuses {
        assert!(
            matches!(s, WaitStatus::Exited(_, 0)),
            "{slots:?}: {statuses:?}"
        );
    }
    assert_eq!(board.word(CONSUMED).load(Ordering::Relaxed), total);
    assert_eq!(
        board.all_set(total),
        Vec::<u64>::new(),
        "{slots:?}: lost elements"
    );
    assert_eq!(ring.len(), 0);
    assert_eq!(ring.stats(), Default::default());
    eprintln!(
        "2P2C processes, {slots:?} slots: {total} elements in {took:?} ({:.1} M/s)",
        total as f64 / took.as_secs_f64() / 1e6
    );
}

#[test]
fn killed_producer_holding_a_claim_is_skipped_within_the_patience() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let patience = Duration::from_millis(50);
    let per: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    // The victim (producer 0) sends `before` elements, then claims one more and is killed
    // holding it; producer 1 sends `per`. The held element is never delivered.
    let before = per / 4;
    let total = before + per;
    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes(256).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create(region, 256).unwrap();
    let board = Arc::new(Board::new(2 * per));

    let victim = {
        let (ring, board) = (ring.clone(), board.clone());
        spawn(move || {
            if produce(&ring, 0, before) != 0 {
                return 1;
            }
            let Ok(mut tx) = ring.producer() else {
                return 10;
            };
            // Retry while full: the claim must land.
            let pos = loop {
                match tx.claim_and_hold(before) {
                    Ok(pos) => break pos,
                    Err(TryError::Full { .. }) => std::hint::spin_loop(),
                    Err(_) => return 3,
                }
            };
            board.word(HOLDING).store(pos + 1, Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1)); // until SIGKILL
            }
        })
    };
    let mut kids = Vec::new();
    for _ in 0..2 {
        let (ring, board) = (ring.clone(), board.clone());
        kids.push(spawn(move || {
            consume(&ring, &board, total, per, Some(patience))
        }));
    }
    {
        // Producer 1 starts once the claim is held, so all of its elements lie behind it.
        let (ring, board) = (ring.clone(), board.clone());
        kids.push(spawn(move || {
            while board.word(HOLDING).load(Ordering::Acquire) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            produce(&ring, 1, per)
        }));
    }
    // Wait until the victim holds its claim, then give the consumers time to get stuck on
    // it (and find its owner alive), then kill it and tell the liveness check.
    let deadline = Instant::now() + DEADLINE;
    while board.word(HOLDING).load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < deadline, "victim never claimed");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ring.stats().skipped, 0, "skipped while the owner was alive");
    kill(victim, Signal::SIGKILL).unwrap();
    assert!(matches!(
        waitpid(victim, None).unwrap(),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));
    let killed = Instant::now();
    board
        .word(DEAD_PID)
        .store(victim.as_raw() as u64, Ordering::Release);
    while ring.stats().skipped == 0 {
        if killed.elapsed() > patience + Duration::from_secs(5) {
            let statuses = reap(&kids, Instant::now());
            panic!(
                "no recovery: children {statuses:?}, len {}, consumed {}",
                ring.len(),
                board.word(CONSUMED).load(Ordering::Relaxed)
            );
        }
        std::hint::spin_loop();
    }
    let recovered = killed.elapsed();
    let statuses = reap(&kids, Instant::now() + DEADLINE);
    for s in &statuses {
        assert!(matches!(s, WaitStatus::Exited(_, 0)), "{statuses:?}");
    }
    eprintln!("recovered {recovered:?} after the kill (patience {patience:?})");
    // Detection takes at most one patience after the owner is known dead, plus polling.
    assert!(recovered < patience * 2 + Duration::from_millis(500));
    let stats = ring.stats();
    assert_eq!((stats.skipped, stats.released, stats.revoked), (1, 0, 0));
    assert_eq!(board.word(CONSUMED).load(Ordering::Relaxed), total);
    // Everything but the held element arrived, exactly once (duplicates failed the
    // consumers): the victim's 0..before and all of producer 1's.
    let unset = |i: u64| {
        board
            .word(BITMAP + (i / 64) as usize * 8)
            .load(Ordering::Relaxed)
            & (1 << (i % 64))
            == 0
    };
    assert!(
        (0..before).all(|i| !unset(i)),
        "a victim element before the claim was lost"
    );
    assert!(unset(before), "the held claim was delivered");
    assert!(
        (per..2 * per).all(|i| !unset(i)),
        "a live producer's element was lost"
    );
    assert_eq!(ring.len(), 0);
    // Only the victim's entry is left (the other children dropped their handles before
    // `_exit`); its claim is resolved, so it can be reclaimed, once.
    let victim_token = |t: u64| t >> 32 == victim.as_raw() as u64;
    assert_eq!(ring.reclaim_dead_owners(&victim_token), 1);
    assert_eq!(ring.reclaim_dead_owners(&|_t: u64| true), 0);
}
