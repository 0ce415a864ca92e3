//! Helpers shared by the channel tests: forked children that open channel handles of their
//! own, the typed channels most tests use, and polling for a peer's state.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use shm_bridge::fork::{fork_child_unchecked, Child};
use shm_bridge::{
    inspect, ChannelOptions, MpmcReceiver, MpmcSender, PeerState, Receiver, Role, Sender,
};

/// Forks a child that runs `f` and exits with its code.
pub fn child(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child only uses the channel handles it makes itself (and their heartbeat
    // thread), never a lock another thread of the test harness could hold... except the
    // allocator's, which glibc's fork resets for the child.
    unsafe { fork_child_unchecked(f) }.unwrap()
}

/// Forks a child that runs `f` on (its own copy of) the channel name `name`.
pub fn child_on(name: &str, f: impl FnOnce(&str) -> i32) -> Child {
    let name = name.to_owned();
    child(move || f(&name))
}

/// Creates the typed channel `name` with room for `capacity` elements.
pub fn create(name: &str, capacity: usize) -> Sender<u64> {
    ChannelOptions::new()
        .capacity(capacity)
        .create::<u64>(name)
        .unwrap()
}

/// Connects to the typed channel `name`.
pub fn connect(name: &str) -> Receiver<u64> {
    ChannelOptions::new().connect::<u64>(name).unwrap()
}

/// Creates the MPMC channel `name` with `opts` and connects a consumer to it.
pub fn mpmc_pair(opts: &ChannelOptions, name: &str) -> (MpmcSender<u64>, MpmcReceiver<u64>) {
    let tx = opts.create_mpmc::<u64>(name).unwrap();
    (tx, opts.connect_mpmc_consumer::<u64>(name).unwrap())
}

/// Polls `done` every `poll` until it holds (`true`) or `limit` has passed (`false`).
pub fn wait_until(limit: Duration, poll: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(poll);
    }
}

/// Whether the `role` side of the channel `name` is held by a live process.
pub fn alive(name: &str, role: Role) -> bool {
    matches!(
        inspect::inspect(name).map(|i| i.state_of(role).0),
        Ok(PeerState::Alive { .. })
    )
}
