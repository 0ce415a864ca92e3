//! loom models of the broadcast ring: the same ring code as in shared memory, over heap
//! memory with loom's atomics. Payload copies that race by design (a lossy reader copying a
//! slot the publisher is rewriting) go through relaxed atomic words, so loom explores what
//! such a copy may see, including a torn mix of two writes; the models check that every
//! element returned is exactly the one at its position (elements encode their position in
//! both halves) and that every loss is reported with its exact count.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_broadcast`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

#[path = "common/model.rs"]
mod model;

use loom::thread;
use model::until_room;
use shm_queue::broadcast::{Mode, Ring, SlowPolicy, Start, Subscriber, SubscriberState};
use shm_queue::TryError;
use std::time::Duration;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(f);
}

/// The element at position `p`: torn copies show as halves that disagree.
fn enc(p: u64) -> [u64; 2] {
    [p + 1, !(p + 1)]
}

/// A publisher thread pushing positions `0..n`, yielding while the ring is full.
fn publishing(ring: &Ring<[u64; 2]>, n: u64) -> thread::JoinHandle<()> {
    let mut tx = ring.publisher().unwrap();
    thread::spawn(move || {
        for p in 0..n {
            until_room("push", || tx.try_push(enc(p)));
        }
    })
}

/// Reads until position `end`, checking every element against its position and every
/// loss against the move of the position; returns (delivered, lost).
fn read_to(rx: &mut Subscriber<[u64; 2]>, end: u64, losses_allowed: bool) -> (u64, u64) {
    let (mut delivered, mut lost) = (0, 0);
    while rx.position() < end {
        let at = rx.position();
        match rx.try_recv() {
            Ok(v) => {
                assert_eq!(v, enc(at), "element at {at}");
                delivered += 1;
            }
            Err(TryError::Empty { .. }) => thread::yield_now(),
            Err(TryError::Lagged { missed }) | Err(TryError::Evicted { missed })
                if losses_allowed =>
            {
                assert!(missed > 0);
                assert_eq!(
                    rx.position(),
                    at + missed,
                    "reported loss = skipped positions"
                );
                lost += missed;
            }
            Err(e) => panic!("recv at {at} (joined at {}): {e}", rx.joined_at()),
        }
    }
    (delivered, lost)
}

/// Lossless, two subscribers, a ring of one: each gets all three elements, in order, and the
/// publisher never overwrites what either has not read (a subscriber would fail
/// validation, which a lossless ring reports as corruption). The two subscribers take turns
/// in one thread (a third thread makes the model too big to check), so the publisher's gate
/// is the smaller of two cursors that move at different times.
#[test]
fn lossless_two_subscribers_get_everything() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(1, 1, 2, Mode::Lossless(SlowPolicy::Wait)).unwrap();
        let mut subs = [
            ring.subscriber(Start::Newest).unwrap(),
            ring.subscriber(Start::Newest).unwrap(),
        ];
        let tx = publishing(&ring, 3);
        while subs.iter().any(|s| s.position() < 3) {
            for s in subs.iter_mut().filter(|s| s.position() < 3) {
                let at = s.position();
                match s.try_recv() {
                    Ok(v) => assert_eq!(v, enc(at)),
                    Err(TryError::Empty { .. }) => thread::yield_now(),
                    Err(e) => panic!("recv at {at}: {e}"),
                }
            }
        }
        tx.join().unwrap();
    });
}

/// Lossy, a ring of two, four pushes: the reader may be overtaken mid-copy; what it
/// returns is never torn nor a later lap's, and delivered + reported losses cover every
/// position exactly.
#[test]
fn lossy_overtaken_reader_is_never_torn_and_counts_exactly() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 1, Mode::Lossy).unwrap();
        let mut rx = ring.subscriber(Start::Newest).unwrap();
        let reader = thread::spawn(move || read_to(&mut rx, 3, true));
        let tx = publishing(&ring, 3);
        tx.join().unwrap();
        let (delivered, lost) = reader.join().unwrap();
        assert_eq!(delivered + lost, 3);
    });
}

/// A reader thread taking batches with `recv_partial_slice` (which trusts the publisher's
/// `tail` for a whole batch) until position `end`, checking every element; returns how many
/// positions it delivered or was told it lost.
fn batch_reader(mut rx: Subscriber<[u64; 2]>, end: u64) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut buf = [[0u64; 2]; 2];
        let mut seen = 0;
        while rx.position() < end {
            let at = rx.position();
            match rx.recv_partial_slice(&mut buf) {
                Ok(n) => {
                    for (k, v) in buf[..n].iter().enumerate() {
                        assert_eq!(*v, enc(at + k as u64), "element at {}", at + k as u64);
                    }
                    seen += n as u64;
                    if n == 0 {
                        thread::yield_now();
                    }
                }
                Err(TryError::Lagged { missed }) => {
                    assert_eq!(rx.position(), at + missed);
                    seen += missed;
                }
                Err(e) => panic!("{e}"),
            }
        }
        seen
    })
}

/// Lossy batch reads: a run is validated once, by its first element.
#[test]
fn lossy_batch_read_validates_the_whole_run() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 1, Mode::Lossy).unwrap();
        let reader = batch_reader(ring.subscriber(Start::Newest).unwrap(), 3);
        let tx = publishing(&ring, 3);
        tx.join().unwrap();
        assert_eq!(reader.join().unwrap(), 3);
    });
}

/// Batch publishes (`push_partial_slice`, one `tail` store per batch) against a batch
/// reader, which believes the `tail` for a whole batch: the `tail`'s `Release` is what
/// orders the batch's elements before a reader that saw it (a gap in the broadcast
/// mutants: weakened, the reader copied zeros that passed validation).
#[test]
fn batch_publishes_reach_a_batch_reader_intact() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 1, Mode::Lossy).unwrap();
        let reader = batch_reader(ring.subscriber(Start::Newest).unwrap(), 3);
        let mut tx = ring.publisher().unwrap();
        assert_eq!(tx.push_partial_slice(&[enc(0), enc(1)]).unwrap(), 2);
        assert_eq!(tx.push_partial_slice(&[enc(2)]).unwrap(), 1);
        assert_eq!(reader.join().unwrap(), 3);
    });
}

/// A publisher hand-over while a batch reader reads: the next publisher's recovery stores
/// the `tail` again (and any block word a dead publisher left behind), and a reader that
/// loads that store must see the first publisher's elements (another gap in the broadcast
/// mutants: `recover_tail`'s stores).
#[test]
fn a_publisher_hand_over_keeps_a_batch_reader_intact() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 1, Mode::Lossy).unwrap();
        let reader = batch_reader(ring.subscriber(Start::Newest).unwrap(), 2);
        let mut a = ring.publisher().unwrap();
        a.try_push(enc(0)).unwrap();
        a.try_push(enc(1)).unwrap();
        drop(a);
        let b = ring.publisher().unwrap();
        assert_eq!(b.position(), 2);
        assert_eq!(reader.join().unwrap(), 2);
    });
}

/// A subscriber joins while the publisher runs (lossless, no other subscriber, so the
/// publisher is not gated until it sees the joiner): nothing from the position it joined at
/// is ever overwritten under it.
#[test]
fn a_joiner_loses_nothing_from_its_join_on() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 2, Mode::Lossless(SlowPolicy::Wait)).unwrap();
        let joiner = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut rx = ring.subscriber(Start::Newest).unwrap();
                let from = rx.position();
                let (delivered, _) = read_to(&mut rx, 3, false);
                assert_eq!(delivered, 3 - from);
            })
        };
        let tx = publishing(&ring, 3);
        tx.join().unwrap();
        joiner.join().unwrap();
    });
}

/// A publisher that waits until the table shows a joiner as live (as a channel's
/// `wait_for_peer` does) and then publishes: that element is the joiner's first, in both
/// modes. Before the `JOINING` state, an entry turned live before the joiner read the
/// position it starts at, so an element published in between was never its to read.
#[test]
fn an_element_published_once_the_join_shows_is_the_joiners_first() {
    for mode in [Mode::Lossless(SlowPolicy::Wait), Mode::Lossy] {
        model(move || {
            let ring = Ring::<[u64; 2]>::new_model(2, 1, 1, mode).unwrap();
            let mut tx = ring.publisher().unwrap();
            let seen = ring.clone();
            let publisher = thread::spawn(move || {
                while !seen
                    .subscribers()
                    .iter()
                    .any(|s| s.state == SubscriberState::Live)
                {
                    thread::yield_now();
                }
                until_room("push", || tx.try_push(enc(0)));
            });
            let mut rx = ring.subscriber(Start::Newest).unwrap();
            assert_eq!(rx.position(), 0, "{mode:?}: joined after the element");
            assert_eq!(read_to(&mut rx, 1, false), (1, 0));
            publisher.join().unwrap();
        });
    }
}

/// Lossless with eviction after 0: the publisher never waits for the slow reader, and the
/// reader learns every loss, exactly, from `Evicted`; what it does read is intact.
#[test]
fn an_evicted_subscriber_learns_it_exactly() {
    model(|| {
        let evict = Mode::Lossless(SlowPolicy::Evict {
            after: Duration::ZERO,
        });
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 1, evict).unwrap();
        let mut rx = ring.subscriber(Start::Newest).unwrap();
        let reader = thread::spawn(move || read_to(&mut rx, 3, true));
        let tx = publishing(&ring, 3);
        tx.join().unwrap();
        let (delivered, lost) = reader.join().unwrap();
        assert_eq!(delivered + lost, 3);
    });
}

/// The message at position `p` of the message model: 8 or 16 bytes (so slots hold
/// messages of different lengths), every byte derived from `p`, so a torn copy shows.
fn message(p: u64) -> Vec<u8> {
    let words = 1 + (p % 2) as usize;
    (0..words)
        .flat_map(|k| (((p + 1) << 8) | k as u64).to_le_bytes())
        .collect()
}

/// Lossy message ring of two slots, three messages, read in place: a message the publisher
/// overwrites while the guard lives is reported by `release` (with the exact count), and
/// every message `release` accepts is exactly the one at its position, length included.
#[test]
fn lossy_zero_copy_read_is_validated_at_release() {
    model(|| {
        let ty = shm_queue::broadcast::message_type(16).unwrap();
        let ring = Ring::<shm_queue::Raw>::new_model_as(&ty, 2, 1, 1, Mode::Lossy).unwrap();
        let mut rx = ring.subscriber(Start::Newest).unwrap();
        let reader = thread::spawn(move || {
            let (mut delivered, mut lost) = (0, 0);
            while rx.position() < 3 {
                let at = rx.position();
                // Copy, then release: the guard's borrow ends with this statement.
                let read = rx
                    .try_read_message()
                    .map(|guard| (guard.to_vec(), guard.release()));
                match read {
                    Ok((copy, Ok(()))) => {
                        assert_eq!(copy, message(at), "message at {at}");
                        delivered += 1;
                    }
                    Err(TryError::Empty { .. }) => thread::yield_now(),
                    Ok((_, Err(TryError::Lagged { missed })))
                    | Err(TryError::Lagged { missed }) => {
                        assert!(missed > 0);
                        assert_eq!(rx.position(), at + missed, "reported loss = skipped");
                        lost += missed;
                    }
                    Ok((_, Err(e))) | Err(e) => panic!("read at {at}: {e}"),
                }
            }
            (delivered, lost)
        });
        let mut tx = ring.publisher().unwrap();
        for p in 0..3 {
            tx.try_send_message(&message(p)).unwrap();
        }
        let (delivered, lost) = reader.join().unwrap();
        assert_eq!(delivered + lost, 3);
    });
}

/// A subscriber arms its readiness descriptor while the publisher publishes: either the
/// arming sees the element, or the publisher consumes the arming and signals that
/// subscriber's descriptor, once. A second subscriber, never armed, is never signalled.
#[test]
fn readiness_arming_is_never_missed() {
    model(|| {
        let ring = Ring::<[u64; 2]>::new_model(2, 1, 2, Mode::Lossy).unwrap();
        let mut a = ring.subscriber(Start::Newest).unwrap();
        let b = ring.subscriber(Start::Newest).unwrap();
        let mut tx = ring.publisher().unwrap();
        // Any descriptor will do: under loom the publisher only counts its signals.
        for s in [&a, &b] {
            let fd = std::fs::File::open("/dev/null").unwrap();
            tx.set_readiness_fd(s.index(), s.token(), Some(fd.into()))
                .unwrap();
        }
        let t = thread::spawn(move || {
            tx.try_push(enc(0)).unwrap();
            tx.readiness_signals()
        });
        let saw_data = a.arm_readiness();
        let signals = t.join().unwrap();
        assert!(
            saw_data || signals == 1,
            "arming missed: no element seen and no signal sent"
        );
        assert!(signals <= 1, "{signals} signals for one arming");
        drop(b);
    });
}
