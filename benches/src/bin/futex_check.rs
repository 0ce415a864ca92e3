//! Sends a stream of messages from a forked producer to a busy-polling consumer through a
//! byte ring, for counting system calls: run it under
//! `strace -f -c -e trace=futex target/debug/futex-check 1000000` and the futex count must
//! be 0, because the producer wakes no one when nobody sleeps (`.ci/run` checks this).
//! With `--sleepy-consumer` the consumer uses the blocking strategy; as long as it keeps
//! up and never actually sleeps, the count stays 0 too.
//!
//! A consumer killed while asleep must not leave a system call on every later publish:
//! `futex-check --victim NAME` creates named ring NAME, takes its consumer with the blocking
//! strategy and sleeps in `pop_blocking` until it is killed (run it untraced, kill it with
//! `SIGKILL`); then `futex-check N --replace NAME` releases the dead consumer's claim, takes
//! over with a busy-polling consumer and receives N messages from a forked producer, for
//! `strace` to count: 0 futex calls.
//!
//! `futex-check N --broadcast K` publishes N `u64`s through a lossless broadcast ring to K
//! busy-polling subscriber processes: 0 futex calls, whatever K (one publish never makes a
//! system call while no subscriber sleeps). With `--sleepy-consumer` too, the subscribers
//! use the blocking strategy.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm_queue::bytes;
use shm_queue::wait::WaitStrategy;
use std::io::Write;

use shm_region::{Options, Region};

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
    let (mut victim, mut replace) = (None, None);
    let mut broadcast = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sleepy-consumer" => sleepy = true,
            "--victim" => victim = Some(args.next().ok_or("--victim needs a name")?),
            "--replace" => replace = Some(args.next().ok_or("--replace needs a name")?),
            "--broadcast" => {
                broadcast = Some(
                    args.next()
                        .and_then(|k| k.parse::<usize>().ok())
                        .ok_or("--broadcast needs a number of subscribers")?,
                )
            }
            s => {
                n = s.parse().map_err(|_| {
                    format!("expected a count, --sleepy-consumer, --victim NAME or --replace NAME, got {s:?}")
                })?
            }
        }
    }
    if let Some(k) = broadcast {
        return fan_out(n, k, sleepy);
    }
    let len = bytes::Ring::required_bytes(1 << 20)?;
    if let Some(name) = victim {
        let region = Options::new().keep_name(true).create_shm(&name, len)?;
        let ring = bytes::Ring::create(region, 1 << 20, 64)?;
        let mut rx = ring.consumer()?;
        rx.set_wait_strategy(WaitStrategy::blocking());
        println!("ready");
        std::io::stdout().flush()?;
        let mut buf = [0u8; 64];
        // Sleeps (registered as a sleeper, inside its futex wait) until it is killed.
        rx.pop_blocking(&mut buf, None)?;
        return Err("the victim received a message; nothing should have been sent".into());
    }
    let (ring, mut rx) = if let Some(name) = &replace {
        let region = Options::new().open_shm(name)?;
        let ring = bytes::Ring::attach(region)?;
        let holder = ring
            .consumer_holder()
            .ok_or("the victim's consumer claim is not there")?;
        // SAFETY: the caller killed the victim (the only consumer) before running this.
        if !unsafe { ring.force_release_consumer(holder) } {
            return Err("the victim's consumer claim could not be released".into());
        }
        let rx = ring.consumer()?;
        (ring, rx)
    } else {
        let region = Region::anonymous(len)?;
        let ring = bytes::Ring::create(region, 1 << 20, 64)?;
        let rx = ring.consumer()?;
        (ring, rx)
    };
    let mut tx = ring.producer()?;
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
    if let Some(name) = replace {
        shm_region::shm_unlink(&name)?;
    }
    Ok(n)
}

/// `n` `u64`s from this process to `k` subscriber processes through a lossless broadcast
/// ring; every subscriber checks the sequence.
fn fan_out(n: u64, k: usize, sleepy: bool) -> Result<u64, Box<dyn std::error::Error>> {
    use shm_queue::broadcast::{Options as BOptions, Ring, Start};
    let opts = BOptions::new(1 << 14).subscribers(k.max(1));
    let region = Region::anonymous(Ring::<u64>::required_bytes_with(&opts)?)?;
    let ring = Ring::<u64>::create_with(region, opts)?;
    let mut children = Vec::new();
    for _ in 0..k {
        let mut rx = ring.subscriber(Start::Newest)?;
        rx.set_wait_strategy(if sleepy {
            WaitStrategy::blocking()
        } else {
            WaitStrategy::BusySpin
        });
        children.push(shm_bridge::fork::fork_child(move || {
            let deadline = Some(Instant::now() + Duration::from_secs(120));
            for i in 0..n {
                match rx.recv_blocking(deadline) {
                    Ok(v) if v == i => {}
                    _ => return 1,
                }
            }
            0
        })?);
    }
    let mut tx = ring.publisher()?;
    let deadline = Some(Instant::now() + Duration::from_secs(120));
    for i in 0..n {
        tx.push_blocking(i, deadline)?;
    }
    for c in children {
        c.wait_timeout(Duration::from_secs(120))?;
    }
    Ok(n)
}
