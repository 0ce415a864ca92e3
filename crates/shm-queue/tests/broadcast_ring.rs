//! The broadcast ring's behaviour in one process: delivery in both modes, exact loss
//! counts, joins, eviction, reclaiming dead subscribers, waiting, attach checks.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_queue::broadcast::{Mode, Options, Ring, SlowPolicy, Start, SubscriberState};
use shm_queue::wait::WaitStrategy;
use shm_queue::{header, Error, TryError};
use shm_region::Region;

fn ring(capacity: usize, subscribers: usize, mode: Mode) -> Ring<u64> {
    let options = Options::new(capacity).subscribers(subscribers).mode(mode);
    let region = Region::anonymous(Ring::<u64>::required_bytes_with(&options).unwrap()).unwrap();
    Ring::<u64>::create_with(region, options).unwrap()
}

const WAIT: Mode = Mode::Lossless(SlowPolicy::Wait);

fn drain(rx: &mut shm_queue::broadcast::Subscriber<u64>) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(v) => out.push(v),
            Err(TryError::Empty { .. }) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn every_subscriber_gets_every_element_in_order() {
    let r = ring(64, 4, WAIT);
    let mut tx = r.publisher().unwrap();
    let mut subs: Vec<_> = (0..3)
        .map(|_| r.subscriber(Start::Newest).unwrap())
        .collect();
    let mut next = 0u64;
    let mut got = vec![Vec::new(); 3];
    while next < 10_000 {
        // A mix of single pushes and batches, read by single receives and batches.
        if next.is_multiple_of(3) {
            let batch: Vec<u64> = (next..next + 20).collect();
            next += tx.push_partial_slice(&batch).unwrap() as u64;
        } else if tx.try_push(next).is_ok() {
            next += 1;
        }
        for (k, s) in subs.iter_mut().enumerate() {
            if k == 0 {
                let mut buf = [0u64; 9];
                let n = s.recv_partial_slice(&mut buf).unwrap();
                got[k].extend_from_slice(&buf[..n]);
            } else if let Ok(v) = s.try_recv() {
                got[k].push(v);
            }
        }
    }
    for (k, s) in subs.iter_mut().enumerate() {
        got[k].extend(drain(s));
        assert_eq!(got[k], (0..next).collect::<Vec<_>>(), "subscriber {k}");
        assert_eq!(s.missed(), 0);
    }
}

#[test]
fn lossless_publisher_waits_for_the_slowest_only() {
    let r = ring(14, 4, WAIT);
    let cap = r.capacity() as u64;
    let mut tx = r.publisher().unwrap();
    let mut slow = r.subscriber(Start::Newest).unwrap();
    let mut fast = r.subscriber(Start::Newest).unwrap();
    for i in 0..cap {
        tx.try_push(i).unwrap();
        assert_eq!(fast.try_recv().unwrap(), i);
    }
    assert!(matches!(tx.try_push(cap), Err(TryError::Full { .. })));
    assert_eq!(
        tx.gated_by().map(|(i, _, c)| (i, c)),
        Some((slow.index(), 0))
    );
    assert_eq!(slow.try_recv().unwrap(), 0);
    tx.try_push(cap).unwrap();
    assert!(matches!(tx.try_push(cap + 1), Err(TryError::Full { .. })));
    // A batch takes what fits.
    assert_eq!(slow.try_recv().unwrap(), 1);
    assert_eq!(slow.try_recv().unwrap(), 2);
    assert_eq!(
        tx.push_partial_slice(&[cap + 1, cap + 2, cap + 3]).unwrap(),
        2
    );
    // Dropping the slow subscriber frees the publisher.
    drop(slow);
    assert_eq!(tx.push_partial_slice(&[cap + 3, cap + 4]).unwrap(), 2);
    assert_eq!(drain(&mut fast), (cap..cap + 5).collect::<Vec<_>>());
}

#[test]
fn a_slow_subscriber_is_evicted_and_told_exactly_what_it_missed() {
    let r = ring(
        14,
        4,
        Mode::Lossless(SlowPolicy::Evict {
            after: Duration::ZERO,
        }),
    );
    let cap = r.capacity() as u64;
    let mut tx = r.publisher().unwrap();
    let mut slow = r.subscriber(Start::Newest).unwrap();
    let mut fast = r.subscriber(Start::Newest).unwrap();
    assert_eq!(
        slow.try_recv(),
        Err(TryError::Empty {
            requested: 1,
            available: 0
        })
    );
    for i in 0..cap + 10 {
        // After `cap` the slow subscriber gates; eviction after 0 ms lets the push through.
        tx.try_push(i).unwrap();
        assert_eq!(fast.try_recv().unwrap(), i);
    }
    assert_eq!(r.stats().evictions, 1);
    assert_eq!(
        r.subscribers()
            .iter()
            .find(|s| s.index == slow.index())
            .map(|s| s.state),
        Some(SubscriberState::Evicted)
    );
    // It re-joins at the newest: everything published so far is reported missed.
    assert_eq!(slow.try_recv(), Err(TryError::Evicted { missed: cap + 10 }));
    assert_eq!(slow.missed(), cap + 10);
    tx.try_push(1000).unwrap();
    assert_eq!(slow.try_recv().unwrap(), 1000);
    assert_eq!(fast.try_recv().unwrap(), 1000);
    assert_eq!(fast.missed(), 0);
}

#[test]
fn a_waiting_policy_never_evicts() {
    let r = ring(14, 2, WAIT);
    let cap = r.capacity() as u64;
    let mut tx = r.publisher().unwrap();
    let mut slow = r.subscriber(Start::Newest).unwrap();
    for i in 0..cap {
        tx.try_push(i).unwrap();
    }
    let soon = Some(Instant::now() + Duration::from_millis(30));
    assert!(matches!(
        tx.push_blocking(cap, soon),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(drain(&mut slow), (0..cap).collect::<Vec<_>>());
    assert_eq!(r.stats().evictions, 0);
}

#[test]
fn lossy_subscriber_learns_exactly_how_many_it_lost() {
    let r = ring(14, 2, Mode::Lossy);
    let cap = r.capacity() as u64;
    let e = r.horizon_step() as u64;
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    for i in 0..5 * cap + 3 {
        tx.try_push(i).unwrap();
    }
    let Err(TryError::Lagged { missed }) = rx.try_recv() else {
        panic!("not lagged")
    };
    // The horizon is at the end of the step being written: what survives is the ring
    // below it, less the part of that step not yet written.
    let horizon = r.stats().horizon;
    assert_eq!(horizon, (5 * cap + 3).div_ceil(e) * e);
    assert_eq!(missed, horizon - cap);
    let rest = drain(&mut rx);
    assert_eq!(rest, (missed..5 * cap + 3).collect::<Vec<_>>());
    assert_eq!(rx.missed(), missed);
    // Keeping up again: nothing more is lost.
    for i in 5 * cap + 3..6 * cap {
        tx.try_push(i).unwrap();
        assert_eq!(rx.try_recv().unwrap(), i);
    }
}

#[test]
fn lossy_batches_report_losses_too() {
    let r = ring(14, 2, Mode::Lossy);
    let cap = r.capacity() as u64;
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    let all: Vec<u64> = (0..4 * cap).collect();
    let mut sent = 0;
    while sent < all.len() {
        sent += tx.push_partial_slice(&all[sent..]).unwrap();
    }
    let mut buf = vec![0u64; 64];
    let Err(TryError::Lagged { missed }) = rx.recv_partial_slice(&mut buf) else {
        panic!("not lagged")
    };
    let n = rx.recv_partial_slice(&mut buf).unwrap();
    assert_eq!(&buf[..n], &all[missed as usize..missed as usize + n]);
}

#[test]
fn late_joiners_start_at_the_newest_or_with_history() {
    let r = ring(14, 4, WAIT);
    let mut tx = r.publisher().unwrap();
    for i in 0..10 {
        tx.try_push(i).unwrap();
    }
    let mut newest = r.subscriber(Start::Newest).unwrap();
    let mut three = r.subscriber(Start::History(3)).unwrap();
    let mut all = r.subscriber(Start::History(1000)).unwrap();
    assert_eq!(newest.joined_at(), 10);
    tx.try_push(10).unwrap();
    assert_eq!(drain(&mut newest), [10]);
    assert_eq!(drain(&mut three), [7, 8, 9, 10]);
    assert_eq!(drain(&mut all), (0..=10).collect::<Vec<_>>());
    assert_eq!(all.history_lost(), 0);
}

#[test]
fn history_overwritten_before_the_join_is_counted_not_reported() {
    let r = ring(14, 4, Mode::Lossy);
    let cap = r.capacity() as u64;
    let mut tx = r.publisher().unwrap();
    for i in 0..3 * cap {
        tx.try_push(i).unwrap();
    }
    // History is limited to what is intact below the horizon.
    let mut rx = r.subscriber(Start::History(usize::MAX)).unwrap();
    let first = rx.position();
    assert_eq!(first, r.stats().horizon - cap);
    // The publisher overwrites part of it before the subscriber reads.
    for i in 3 * cap..3 * cap + 5 {
        tx.try_push(i).unwrap();
    }
    let got = drain(&mut rx);
    let lost = rx.history_lost();
    assert!(lost > 0);
    assert_eq!(rx.missed(), 0);
    assert_eq!(got, (first + lost..3 * cap + 5).collect::<Vec<_>>());
}

#[test]
fn the_table_fills_and_frees() {
    let r = ring(14, 2, WAIT);
    let a = r.subscriber(Start::Newest).unwrap();
    let _b = r.subscriber(Start::Newest).unwrap();
    assert!(matches!(
        r.subscriber(Start::Newest),
        Err(Error::SubscribersFull { entries: 2 })
    ));
    drop(a);
    let c = r.subscriber(Start::Newest).unwrap();
    assert_eq!(r.subscribers().len(), 2);
    assert!(matches!(
        r.subscriber_with_token(Start::Newest, 0),
        Err(Error::InvalidOwnerToken)
    ));
    drop(c);
}

#[test]
fn dead_subscribers_are_reclaimed_and_stop_gating() {
    let r = ring(14, 4, WAIT);
    let cap = r.capacity() as u64;
    let dead_token = 0xdead_0000_0001;
    let dead = r.subscriber_with_token(Start::Newest, dead_token).unwrap();
    std::mem::forget(dead); // its process "died": the entry stays taken
    let mut tx = r
        .publisher()
        .unwrap()
        .with_recovery(move |t: u64| t == dead_token, Duration::ZERO);
    let mut live = r.subscriber(Start::Newest).unwrap();
    for i in 0..3 * cap {
        tx.try_push(i).unwrap();
        assert_eq!(live.try_recv().unwrap(), i);
    }
    assert_eq!(r.stats().reclaimed, 1);
    assert_eq!(r.subscribers().len(), 1);
    // And the ring-wide call frees what it is told is dead.
    let other = r
        .subscriber_with_token(Start::Newest, 0xbeef_0000_0001)
        .unwrap();
    std::mem::forget(other);
    assert_eq!(
        r.reclaim_dead_subscribers(&|t: u64| t == 0xbeef_0000_0001),
        1
    );
    assert_eq!(r.subscribers().len(), 1);
}

#[test]
fn a_freed_subscriber_rejoins_and_reports_the_gap() {
    let r = ring(14, 4, WAIT);
    let mut tx = r.publisher().unwrap();
    let mut rx = r
        .subscriber_with_token(Start::Newest, 0x1234_0000_0001)
        .unwrap();
    tx.try_push(1).unwrap();
    // A peer wrongly judges it dead; then the publisher runs a ring ahead.
    assert_eq!(r.reclaim_dead_subscribers(&|_t: u64| true), 1);
    let cap = r.capacity() as u64;
    for i in 0..2 * cap {
        tx.try_push(i + 2).unwrap();
    }
    assert_eq!(
        rx.try_recv(),
        Err(TryError::Evicted {
            missed: 2 * cap + 1
        })
    );
    tx.try_push(99).unwrap();
    assert_eq!(rx.try_recv().unwrap(), 99);
}

#[test]
fn blocking_subscribers_wake_and_see_close_after_draining() {
    let r = ring(64, 4, WAIT);
    let mut tx = r.publisher().unwrap();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = r.subscriber(Start::Newest).unwrap();
            rx.set_wait_strategy(WaitStrategy::blocking());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match rx.recv_blocking(Some(Instant::now() + Duration::from_secs(20))) {
                        Ok(v) => got.push(v),
                        Err(Error::Closed { .. }) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for i in 0..20_000u64 {
        tx.push_blocking(i, Some(Instant::now() + Duration::from_secs(20)))
            .unwrap();
        if i % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(2)); // let them fall asleep
        }
    }
    tx.close();
    for h in handles {
        assert_eq!(h.join().unwrap(), (0..20_000).collect::<Vec<_>>());
    }
}

#[test]
fn a_new_publisher_resumes_at_the_tail() {
    let r = ring(14, 2, WAIT);
    let mut rx = r.subscriber(Start::Newest).unwrap();
    let mut tx = r.publisher().unwrap();
    assert!(matches!(r.publisher(), Err(Error::ProducerClaimed { .. })));
    tx.try_push(1).unwrap();
    drop(tx);
    let mut tx = r.publisher().unwrap();
    assert_eq!(tx.position(), 1);
    tx.try_push(2).unwrap();
    assert_eq!(drain(&mut rx), [1, 2]);
}

#[test]
fn attach_checks_kind_type_policy_and_positions() {
    let options = Options::new(64).subscribers(3).mode(Mode::Lossy);
    let region =
        Arc::new(Region::anonymous(Ring::<u64>::required_bytes_with(&options).unwrap()).unwrap());
    let len = region.len() as u64;
    let created = Ring::<u64>::create_with(region.clone(), options).unwrap();
    let attached = Ring::<u64>::attach(region.clone()).unwrap();
    assert_eq!(attached.mode(), Mode::Lossy);
    assert_eq!(attached.max_subscribers(), 3);
    assert_eq!(
        header::check(&region, len).unwrap(),
        header::RingKind::Broadcast
    );
    assert!(matches!(
        Ring::<i64>::attach(region.clone()),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        shm_queue::spsc::Ring::<u64>::attach(region.clone()),
        Err(Error::KindMismatch { found: 4, .. })
    ));
    // The other way round: a broadcast attach to an SPSC ring.
    let spsc = Region::anonymous(4096).unwrap();
    let spsc = shm_queue::spsc::Ring::<u64>::create(spsc, 8).unwrap();
    assert!(matches!(
        Ring::<u64>::attach(spsc.region().clone()),
        Err(Error::KindMismatch { found: 1, .. })
    ));
    // Handles from the creator and the attacher share the ring.
    let mut tx = created.publisher().unwrap();
    let mut rx = attached.subscriber(Start::Newest).unwrap();
    tx.try_push(5).unwrap();
    assert_eq!(rx.try_recv().unwrap(), 5);
    drop((tx, rx));

    // Corrupt words, one at a time (offsets from docs/layout.md).
    let base = region.as_ptr().as_ptr();
    let poke = |off: usize, v: u64| -> u64 {
        // SAFETY: `off` is an 8-aligned offset inside the ring; the test owns the region.
        unsafe {
            let p = base.add(off).cast::<u64>();
            let old = p.read_volatile();
            p.write_volatile(v);
            old
        }
    };
    let policy = 96 + 8;
    let old = poke(policy, 7);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::LayoutMismatch { .. })
    ));
    assert!(header::check(&region, len).is_err());
    poke(policy, old);
    let subs = 96;
    let old = poke(subs, 0);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::BadSubscriberCount { subscribers: 0, .. })
    ));
    poke(subs, old);
    let horizon = (512 + created.area_size() - 512 - 256 - 3 * 128).next_multiple_of(128);
    let old = poke(horizon, 1 << 40);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::Corrupted { .. })
    ));
    poke(horizon, old);
    Ring::<u64>::attach(region).unwrap();
}

#[test]
fn bad_options_are_refused_before_any_syscall() {
    assert!(matches!(
        Ring::<u64>::required_bytes_with(&Options::new(8).subscribers(0)),
        Err(Error::BadSubscriberCount { .. })
    ));
    assert!(matches!(
        Ring::<u64>::required_bytes_with(&Options::new(8).subscribers(4097)),
        Err(Error::BadSubscriberCount { .. })
    ));
    assert!(matches!(
        Ring::<u64>::required_bytes_with(&Options::new(8).mode(Mode::Lossless(
            SlowPolicy::Evict {
                after: Duration::from_secs(u64::MAX / 4)
            }
        ))),
        Err(Error::BadPolicy { .. })
    ));
    assert!(matches!(
        Ring::<u64>::required_bytes_with(&Options::new(0)),
        Err(Error::BadCapacity { .. })
    ));
}

/// Writes `v` at byte `off` of `r`'s region (a peer that died mid-store, or a hostile one);
/// returns the old value.
fn poke(r: &Ring<u64>, off: usize, v: u64) -> u64 {
    let base = r.region().as_ptr().as_ptr();
    // SAFETY: `off` is an 8-aligned offset inside the ring; the test owns the region and no
    // other thread uses it.
    unsafe {
        let p = base.add(off).cast::<u64>();
        let old = p.read_volatile();
        p.write_volatile(v);
        old
    }
}

/// The byte offset of the state word of the entry holding `token` (the word after it).
fn state_word_of(r: &Ring<u64>, token: u64) -> usize {
    let base = r.region().as_ptr().as_ptr();
    (0..r.region().len() / 8)
        .map(|w| w * 8)
        // SAFETY: an 8-aligned offset inside the region, which no other thread uses now.
        .find(|&off| unsafe { base.add(off).cast::<u64>().read_volatile() } == token)
        .map(|off| off + 8)
        .unwrap()
}

/// A joiner that stalls (or dies) after its entry starts gating but before it is live:
/// it is not listed as a subscriber, a lossless publisher does not overwrite what it has
/// not read, and the eviction policy evicts it like a live one.
#[test]
fn a_joiner_stalled_before_it_is_live_gates_unlisted_and_is_evicted() {
    let evict = Mode::Lossless(SlowPolicy::Evict {
        after: Duration::ZERO,
    });
    for mode in [WAIT, evict] {
        let r = ring(14, 4, mode);
        let cap = r.capacity() as u64;
        let mut tx = r.publisher().unwrap();
        let mut stalled = r.subscriber(Start::Newest).unwrap();
        let token = r.subscribers()[0].token;
        // Back to the joining state (1), as if it had stalled between the two stores.
        assert_eq!(poke(&r, state_word_of(&r, token), 1), 2);
        assert!(r.subscribers().is_empty(), "{mode:?}: listed while joining");
        for i in 0..cap {
            tx.try_push(i).unwrap();
        }
        if mode == WAIT {
            assert!(matches!(tx.try_push(cap), Err(TryError::Full { .. })));
            assert_eq!(poke(&r, state_word_of(&r, token), 2), 1);
            assert_eq!(drain(&mut stalled), (0..cap).collect::<Vec<_>>());
        } else {
            tx.try_push(cap).unwrap();
            assert_eq!(r.stats().evictions, 1);
            assert!(matches!(stalled.try_recv(), Err(TryError::Evicted { .. })));
        }
    }
}

#[test]
fn a_publisher_that_died_between_block_words_is_repaired_by_the_next() {
    let r = ring(14, 2, WAIT);
    let mut rx = r.subscriber(Start::Newest).unwrap();
    let mut tx = r.publisher().unwrap();
    assert_eq!(
        tx.push_partial_slice(&(0..10).collect::<Vec<_>>()).unwrap(),
        10
    );
    drop(tx);
    // As if it had died after storing the second block's word (they go last first), before
    // the first block's and the tail.
    poke(&r, 512, 0);
    poke(&r, 256, 0);
    let mut tx = r.publisher().unwrap();
    assert_eq!(tx.position(), 10);
    tx.try_push(10).unwrap();
    assert_eq!(drain(&mut rx), (0..=10).collect::<Vec<_>>());
}

#[test]
fn a_hostile_horizon_never_panics_the_publisher() {
    let horizon = 512 + 2 * 64; // right after the two blocks
    for bad in [14, 21, u64::MAX] {
        // A fresh ring each time: tail 0, one subscriber gating.
        let r = ring(14, 2, WAIT);
        let _rx = r.subscriber(Start::Newest).unwrap();
        poke(&r, horizon, bad);
        if let Ok(mut tx) = r.publisher() {
            for i in 0..28 {
                let _ = tx.try_push(i);
            }
        }
    }
}

/// A hostile peer scribbles over every word of the ring (block words, the tail, the
/// horizon, the shared line, the subscriber entries) between the calls of a publisher and
/// two subscribers: no call may panic, hang or touch memory outside the ring; errors and
/// garbage elements are fine.
#[test]
fn scribbled_words_never_panic_or_hang() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for mode in [
        WAIT,
        Mode::Lossy,
        Mode::Lossless(SlowPolicy::Evict {
            after: Duration::ZERO,
        }),
    ] {
        for round in 0..150 {
            let r = ring(14, 3, mode);
            let words = r.area_size() / 8;
            let mut a = r.subscriber(Start::Newest).unwrap();
            let mut b = r.subscriber(Start::History(5)).unwrap();
            b.set_wait_strategy(WaitStrategy::blocking());
            let mut tx = r.publisher().ok();
            let mut buf = [0u64; 9];
            for step in 0..60u64 {
                if rand() % 3 == 0 {
                    // Past the header's configuration line: the words peers write.
                    let w = 16 + (rand() as usize % (words - 16));
                    let v = match rand() % 4 {
                        0 => rand(),
                        1 => rand() % 64,
                        2 => u64::MAX - rand() % 4,
                        _ => (1 << 62) + rand() % 8,
                    };
                    poke(&r, w * 8, v);
                }
                if let Some(tx) = tx.as_mut() {
                    let _ = tx.try_push(step);
                    let _ = tx.push_partial_slice(&[step; 5]);
                }
                let _ = a.try_recv();
                let _ = b.recv_partial_slice(&mut buf);
                if step % 10 == 0 {
                    let soon = Some(Instant::now() + Duration::from_millis(1));
                    let _ = b.recv_blocking(soon);
                }
                let _ = (a.lag(), b.is_empty(), r.stats(), r.subscribers());
                if step % 20 == 0 {
                    let _ = r.reclaim_dead_subscribers(&|t: u64| t.is_multiple_of(2));
                    tx = r.publisher().ok().or(tx);
                    let _ = r.subscriber(Start::History(round));
                }
            }
        }
    }
}

#[test]
fn raw_and_typed_ends_share_a_ring_under_an_agreed_name() {
    use shm_queue::{ElementType, Raw};
    let elem = ElementType::named("test.Pair/1", 16, 8).unwrap();
    let options = Options::new(32).subscribers(3).mode(Mode::Lossy);
    let region = Arc::new(
        Region::anonymous(Ring::<Raw>::required_bytes_as(&elem, &options).unwrap()).unwrap(),
    );
    let typed = Ring::<[u64; 2]>::create_as(region.clone(), &elem, options).unwrap();
    let raw = Ring::<Raw>::attach_as(region.clone(), &elem).unwrap();
    // The Rust type's own name is refused: the ring records the agreed one.
    assert!(matches!(
        Ring::<[u64; 2]>::attach(region.clone()),
        Err(Error::TypeMismatch { .. })
    ));
    let mut raw_rx = raw.subscriber(Start::Newest).unwrap();
    let mut typed_rx = typed.subscriber(Start::Newest).unwrap();
    let mut tx = raw.publisher().unwrap();
    let bytes: Vec<u8> = [[1u64, 2], [3, 4]]
        .iter()
        .flat_map(|p| p.iter().flat_map(|w| w.to_ne_bytes()))
        .collect();
    assert_eq!(tx.push_partial_bytes(&bytes).unwrap(), 2);
    assert!(matches!(
        tx.push_partial_bytes(&bytes[..5]),
        Err(TryError::NotWholeElements { .. })
    ));
    assert_eq!(typed_rx.try_recv().unwrap(), [1, 2]);
    assert_eq!(typed_rx.try_recv().unwrap(), [3, 4]);
    let mut out = [0u8; 40]; // room for two whole elements
    assert_eq!(raw_rx.recv_partial_into(&mut out).unwrap(), 2);
    assert_eq!(&out[..32], &bytes[..]);
    assert!(matches!(
        raw_rx.recv_partial_into(&mut out[..8]),
        Err(TryError::NotWholeElements { .. })
    ));
    drop(tx);
    // A typed publisher to a raw subscriber, through the blocking calls.
    let mut tx = typed.publisher().unwrap();
    tx.try_push([5, 6]).unwrap();
    tx.close();
    assert_eq!(raw_rx.recv_into_blocking(&mut out, None).unwrap(), 1);
    assert_eq!(
        &out[..16],
        &[5u64.to_ne_bytes(), 6u64.to_ne_bytes()].concat()[..]
    );
    assert!(matches!(
        raw_rx.recv_into_blocking(&mut out, None),
        Err(Error::Closed { .. })
    ));
}
