//! Another process shrinks a channel's file while a producer and a consumer stream: both
//! end with the region's `Truncated` error (naming the file and the sizes) instead of dying
//! of SIGBUS.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::child_on;
use shm_bridge::{ChannelOptions, Error};

fn is_truncated(e: &Error) -> bool {
    matches!(e, Error::Region(shm_region::Error::Truncated { .. }))
}

#[test]
fn a_truncated_channel_is_an_error_on_both_sides_not_sigbus() {
    for to in [4096i64, 0] {
        let n = format!("trunc-{}-{to}", std::process::id());
        // The producer streams from a child; the consumer is here.
        let producer = child_on(&n, |n| {
            let Ok(mut tx) = ChannelOptions::new().capacity(1 << 16).create_bytes(n) else {
                return 10;
            };
            let end = Instant::now() + Duration::from_secs(20);
            let msg = [7u8; 200];
            while Instant::now() < end {
                match tx.send_deadline(&msg, Some(Instant::now() + Duration::from_millis(100))) {
                    Ok(()) | Err(Error::Timeout { .. } | Error::PeerHung { .. }) => {}
                    Err(e) if is_truncated(&e) => return 0,
                    Err(_) => return 11,
                }
            }
            12
        });
        let mut rx = ChannelOptions::new()
            .timeout(Duration::from_secs(10))
            .connect_bytes(&n)
            .unwrap();
        let mut buf = vec![0u8; rx.max_message()];
        for _ in 0..2000 {
            rx.recv_deadline(&mut buf, Some(Instant::now() + Duration::from_secs(5)))
                .unwrap();
        }
        // Another process (here: this one, through its own descriptor) shrinks the file.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(shm_bridge::shm_path(&n))
            .unwrap();
        // SAFETY: ftruncate on a descriptor we own.
        assert_eq!(unsafe { libc::ftruncate(f.as_raw_fd(), to) }, 0);
        let end = Instant::now() + Duration::from_secs(10);
        let err = loop {
            match rx.recv_deadline(&mut buf, Some(Instant::now() + Duration::from_millis(100))) {
                Ok(_) | Err(Error::Timeout { .. } | Error::PeerHung { .. }) => {
                    assert!(
                        Instant::now() < end,
                        "the consumer never saw the truncation"
                    );
                }
                Err(e) => break e,
            }
        };
        assert!(is_truncated(&err), "consumer: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("truncated by another process"), "{msg}");
        producer
            .wait_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("the producer did not end with Truncated: {e}"));
        let _ = std::fs::remove_file(shm_bridge::shm_path(&n));
    }
}
