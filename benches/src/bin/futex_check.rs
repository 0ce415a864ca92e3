//! Sends a stream of messages from a forked producer to a busy-polling consumer through a
//! byte ring, for counting system calls: run it under
//! `strace -f -c -e trace=futex target/debug/futex-check 1000000` and the futex count must
//! be 0, because the producer wakes no one when nobody sleeps (`.ci/run` checks this).
//! With `--sleepy-consumer` the consumer uses the blocking strategy; as long as it keeps
//! up and never actually sleeps, the count stays 0 too.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm_queue::bytes;
use shm_queue::wait::WaitStrategy;
use shm_region::Region;

fn main() -> ExitCode {
    match run() {
        Ok(n) => {
            println!("futex-check: {n} messages delivered in order");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("futex-check: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<u64, Box<dyn std::error::Error>> {
    let mut n: u64 = 1_000_000;
    let mut sleepy = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--sleepy-consumer" => sleepy = true,
            s => {
                n = s
                    .parse()
                    .map_err(|_| format!("expected a count or --sleepy-consumer, got {s:?}"))?
            }
        }
    }
    let region = Region::anonymous(bytes::Ring::required_bytes(1 << 20)?)?;
    let ring = bytes::Ring::create(region, 1 << 20, 64)?;
    let (mut tx, mut rx) = ring.split()?;
    if sleepy {
        rx.set_wait_strategy(WaitStrategy::blocking());
    } else {
        rx.set_wait_strategy(WaitStrategy::BusySpin);
    }
    let child = shm_bridge::fork::fork_child(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..n {
            if tx.push_blocking(&i.to_le_bytes(), Some(deadline)).is_err() {
                return 1;
            }
        }
        0
    })?;
    let deadline = Some(Instant::now() + Duration::from_secs(60));
    let mut buf = [0u8; 64];
    for i in 0..n {
        let got = if sleepy {
            rx.pop_blocking(&mut buf, deadline)?
        } else {
            loop {
                match rx.try_pop(&mut buf) {
                    Ok(k) => break k,
                    Err(shm_queue::TryError::Empty { .. }) => std::hint::spin_loop(),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if got != 8 || buf[..8] != i.to_le_bytes() {
            return Err(format!("message {i} is wrong").into());
        }
    }
    child.wait_timeout(Duration::from_secs(60))?;
    Ok(n)
}
