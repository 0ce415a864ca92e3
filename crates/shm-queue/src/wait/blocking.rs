//! The one blocking loop every ring handle uses: try the non-blocking operation; while it
//! says "not yet", wait on the header's signal for the handle's side, as its
//! [`WaitStrategy`] says, until the deadline.
//!
//! The first attempt runs before anything else (no `Arc` clone, no signal set-up), so a
//! blocking call on a ring that is ready costs what the non-blocking call costs.

use std::time::Instant;

use crate::error::Error;
use crate::header::Header;
use crate::wait::WaitStrategy;

/// Which signal a handle waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A consumer, waiting for data.
    Data,
    /// A producer, waiting for space.
    Space,
}

/// A ring handle that can wait.
pub(crate) trait Waiter {
    /// A clone of what keeps the ring's memory alive (an `Arc`), taken only on the slow path
    /// so the handle itself can be borrowed mutably while it waits.
    type Keep;
    /// The signal this handle waits on.
    const SIDE: Side;
    /// Clones the keep-alive.
    fn keep(&self) -> Self::Keep;
    /// The header inside the kept memory.
    fn header_of(keep: &Self::Keep) -> &Header;
    /// The handle's wait strategy.
    fn strategy(&self) -> WaitStrategy;
}

/// Runs `attempt` until it returns `Some` (or an error), waiting between attempts on `h`'s
/// signal until `deadline`; `what` names what is awaited in a [`Error::Timeout`].
#[inline]
pub(crate) fn block_on<H: Waiter, R>(
    h: &mut H,
    deadline: Option<Instant>,
    what: &'static str,
    mut attempt: impl FnMut(&mut H) -> Result<Option<R>, Error>,
) -> Result<R, Error> {
    if let Some(r) = attempt(h)? {
        return Ok(r);
    }
    let keep = h.keep();
    let header = H::header_of(&keep);
    let signal = match H::SIDE {
        Side::Data => header.data_signal(),
        Side::Space => header.space_signal(),
    };
    signal.wait(h.strategy(), deadline, what, || attempt(h))
}
