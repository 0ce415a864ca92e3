//! loom models of the sleep/wake handshake (`shm_queue::wait`): no wake-up is lost when the
//! other side publishes between a waiter's check and its sleep. Under loom the futex is a
//! stand-in that sleeps until the event word changes, with no time-out, so a lost wake-up
//! deadlocks the model and fails it.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_wait`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

#[path = "common/model.rs"]
mod model;

use loom::thread;
use model::{bytes_pair, spsc_pair, until_data};
use shm_queue::wait::WaitStrategy;
use shm_queue::Error;

/// Straight to sleep: no spinning or yielding first, so every wait exercises the handshake.
const SLEEP_AT_ONCE: WaitStrategy = WaitStrategy::Blocking {
    spins: 0,
    yields: 0,
};

/// A consumer that sleeps for data, a producer that sends once.
#[test]
fn consumer_sleeping_for_data_is_woken() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes_pair();
        rx.set_wait_strategy(SLEEP_AT_ONCE);
        let t = thread::spawn(move || {
            tx.try_push(&[7; 8]).unwrap();
            tx
        });
        let mut buf = [0u8; 24];
        assert_eq!(rx.pop_blocking(&mut buf, None).unwrap(), 8);
        assert_eq!(&buf[..8], &[7; 8]);
        drop(t.join().unwrap());
    });
}

/// A producer that sleeps for space on a full ring, a consumer that frees it.
#[test]
fn producer_sleeping_for_space_is_woken() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes_pair();
        tx.set_wait_strategy(SLEEP_AT_ONCE);
        // Two 32-byte records fill the 64-byte area with its terminator: the second send
        // must wait for the first to be received.
        tx.try_push(&[1; 24]).unwrap();
        let t = thread::spawn(move || {
            until_data("pop", || rx.try_pop(&mut [0u8; 24]));
            rx
        });
        tx.push_blocking(&[2; 24], None).unwrap();
        drop(t.join().unwrap());
    });
}

/// Closing wakes a consumer asleep on an empty ring.
#[test]
fn close_wakes_a_sleeping_consumer() {
    loom::model(|| {
        let (tx, mut rx) = bytes_pair();
        rx.set_wait_strategy(SLEEP_AT_ONCE);
        let t = thread::spawn(move || {
            tx.close();
            tx
        });
        let mut buf = [0u8; 24];
        assert!(matches!(
            rx.pop_blocking(&mut buf, None),
            Err(Error::Closed { .. })
        ));
        drop(t.join().unwrap());
    });
}

/// The same handshake on the SPSC ring, both directions: the consumer sleeps for data
/// while the producer, sleeping for space on a one-element ring, waits for it.
#[test]
fn spsc_sleepers_on_both_sides_are_woken() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc_pair(1, 1);
        tx.set_wait_strategy(SLEEP_AT_ONCE);
        rx.set_wait_strategy(SLEEP_AT_ONCE);
        let t = thread::spawn(move || {
            tx.push_blocking(1, None).unwrap();
            tx.push_blocking(2, None).unwrap();
            tx
        });
        assert_eq!(rx.pop_blocking(None).unwrap(), 1);
        assert_eq!(rx.pop_blocking(None).unwrap(), 2);
        drop(t.join().unwrap());
    });
}

/// The handshake on the MPMC ring: a consumer that sleeps at once is woken by a push.
#[test]
fn mpmc_consumer_sleeping_for_data_is_woken() {
    use shm_queue::mpmc;
    loom::model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 2).unwrap();
        let mut rx = ring.consumer().unwrap();
        rx.set_wait_strategy(SLEEP_AT_ONCE);
        let mut tx = ring.producer().unwrap();
        let t = thread::spawn(move || {
            tx.try_push(5).unwrap();
            tx
        });
        assert_eq!(rx.pop_blocking(None).unwrap(), 5);
        drop(t.join().unwrap());
    });
}

/// A consumer arms its readiness descriptor while the producer publishes: either the
/// arming finds the data, or the producer consumes the arming and signals the descriptor
/// exactly once. Never neither (the consumer would wait in `epoll` for nothing), which is
/// what reading the armed word before the publication is visible would allow.
#[test]
fn readiness_arming_is_never_missed() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes_pair();
        // Any descriptor will do: under loom the producer only counts its signals.
        let fd = std::fs::File::open("/dev/null").unwrap();
        tx.set_readiness_fd(Some(fd.into()));
        let t = thread::spawn(move || {
            tx.try_push(&[1; 8]).unwrap();
            tx.readiness_signals()
        });
        let saw_data = rx.arm_readiness();
        let signals = t.join().unwrap();
        assert!(
            saw_data || signals == 1,
            "arming missed: no data seen and no signal sent"
        );
        assert!(signals <= 1);
    });
}

/// Never sleeps, so neither side runs a fence: the publisher takes its fence-free path (no
/// sleeper) and only the ring's words and the close word order the two threads. (Under
/// loom a `SeqCst` fence orders more than C11 promises, so a sleeping consumer would hide a
/// weakened close.)
const YIELD_ONLY: WaitStrategy = WaitStrategy::SpinThenYield { spins: 0 };

/// The producer sends one message and closes while the consumer waits: the consumer gets
/// the message and only then `Closed`. Fails if `Closed` is returned on seeing the close
/// word without looking at the ring again (a send and close between the consumer's check
/// and its look at the close word), if the close does not release the send, or if the
/// consumer's load of the close word does not acquire it.
#[test]
fn closed_comes_only_after_everything_sent_before_it() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes_pair();
        rx.set_wait_strategy(YIELD_ONLY);
        let t = thread::spawn(move || {
            tx.try_push(&[7; 8]).unwrap();
            assert!(tx.close());
            tx
        });
        let mut buf = [0u8; 24];
        let mut got = 0;
        loop {
            match rx.pop_blocking(&mut buf, None) {
                Ok(n) => {
                    assert_eq!(&buf[..n], &[7; 8]);
                    got += 1;
                }
                Err(Error::Closed { .. }) => break,
                Err(e) => panic!("pop_blocking: {e}"),
            }
        }
        assert_eq!(got, 1, "Closed before a message sent earlier was received");
        drop(t.join().unwrap());
    });
}

/// The header's `ready` handshake: an attacher racing the creator sees either a ring that
/// is not ready yet (`NotReady`) or its whole configuration, never a half-written header.
/// With `ready` stored or loaded `Relaxed`, the attacher can read READY and then a field's
/// initial 0 (`BadMagic`, `VersionMismatch`...) on a ring that is ready.
#[test]
fn an_attacher_never_sees_a_half_built_header() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2); // the creator's ~40 stores; the reordering needs one
    b.check(|| {
        let ring = shm_queue::bytes::Ring::uninit_model(64, 24).unwrap();
        let creator = ring.clone();
        let t = thread::spawn(move || creator.init_model().unwrap());
        // Retried until ready: an attacher that tries once is never scheduled after the
        // creator's last store (loom explores the retries, not a single early look).
        loop {
            match ring.attach_model() {
                Ok(found) => break assert_eq!(found, (64, 24)),
                Err(Error::NotReady { .. }) => thread::yield_now(),
                Err(e) => panic!("attached to a half-built header: {e}"),
            }
        }
        t.join().unwrap();
    });
}
