//! Self-checking test messages: a sequence number, a send timestamp and a checksum, so a
//! receiver can prove nothing was lost, duplicated, reordered or corrupted, and measure
//! latency. The example `producer`/`consumer`, `shmlane demo` and the soak tests use it.
//!
//! Two layouts, chosen by the message size:
//!
//! - 24 bytes or more: `seq: u64 | sent_ns: u64 | check: u64`, then filler words derived
//!   from `seq`. `check` is a 64-bit multiply-rotate checksum (four word lanes, about a
//!   byte per cycle) over `seq`, `sent_ns` and the filler; the receiver also regenerates
//!   the filler and compares it, so any changed payload bit is caught.
//! - 8 to 23 bytes: `seq: u32 | sent_us: u24 | check: u8`, then filler. The sequence is
//!   the low 32 bits, the timestamp the low 24 bits of microseconds (latencies up to 16 s
//!   read correctly), `check` an 8-bit fold of the checksum over the rest.
//!
//! ```
//! use shmlane_cli::stamp;
//!
//! let mut msg = vec![0u8; 64];
//! stamp::write(&mut msg, 41, stamp::now_ns())?;
//! let s = stamp::check(&msg)?;
//! assert_eq!(s.seq, 41);
//! msg[40] ^= 1;
//! assert!(stamp::check(&msg).is_err());
//! # Ok::<(), stamp::Bad>(())
//! ```

/// Smallest stamped message.
pub const MIN_SIZE: usize = 8;

/// Nanoseconds of `CLOCK_MONOTONIC` (the same clock in every process on the host).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// What a checked message said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sequence number (the low 32 bits for messages under 24 bytes).
    pub seq: u64,
    /// Send time in `CLOCK_MONOTONIC` nanoseconds (for short messages, only the low 24 bits
    /// of microseconds are kept: use [`Stamp::latency_ns`]).
    pub sent_ns: u64,
    /// Whether this is the short layout.
    pub short: bool,
}

impl Stamp {
    /// Nanoseconds from sending to `now_ns`.
    pub fn latency_ns(&self, now_ns: u64) -> u64 {
        if self.short {
            let now_us = (now_ns / 1000) & 0xff_ffff;
            (now_us.wrapping_sub(self.sent_ns / 1000) & 0xff_ffff) * 1000
        } else {
            now_ns.saturating_sub(self.sent_ns)
        }
    }
}

/// A message that fails its checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad message of {len} bytes: {what}")]
pub struct Bad {
    /// Its length.
    pub len: usize,
    /// What failed.
    pub what: &'static str,
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// Filler word `i` of message `seq`.
#[inline]
fn filler_word(seq: u64, i: usize) -> u64 {
    seq.wrapping_mul(K1) ^ (i as u64).wrapping_mul(K2)
}

/// Writes the filler of message `seq` into `out` (8 bytes at a time).
fn fill(out: &mut [u8], seq: u64) {
    let mut words = out.chunks_exact_mut(8);
    let mut i = 0;
    for w in &mut words {
        w.copy_from_slice(&filler_word(seq, i).to_le_bytes());
        i += 1;
    }
    let tail = words.into_remainder();
    let last = filler_word(seq, i).to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
}

/// Whether `bytes` is exactly the filler of message `seq`.
fn filler_ok(bytes: &[u8], seq: u64) -> bool {
    let mut words = bytes.chunks_exact(8);
    let mut i = 0;
    let mut diff = 0u64;
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        diff |= u64::from_le_bytes(b) ^ filler_word(seq, i);
        i += 1;
    }
    let tail = words.remainder();
    diff == 0 && tail == &filler_word(seq, i).to_le_bytes()[..tail.len()]
}

/// A 64-bit checksum over `bytes`, four independent lanes of 8-byte words (about a byte
/// per cycle), then the odd tail bytes.
fn checksum(h0: u64, bytes: &[u8]) -> u64 {
    let mut lanes = [h0, h0 ^ K1, h0 ^ K2, h0.rotate_left(32)];
    let mut blocks = bytes.chunks_exact(32);
    for blk in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(blk.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            *lane = (lane.rotate_left(23) ^ u64::from_le_bytes(b)).wrapping_mul(K1);
        }
    }
    let mut h = lanes.iter().fold(bytes.len() as u64, |h, &l| {
        (h ^ l).wrapping_mul(K2).rotate_left(29)
    });
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K1);
    }
    h ^ (h >> 31)
}

/// Fills `msg` as message `seq` sent at `sent_ns`.
///
/// # Errors
///
/// [`Bad`] if `msg` is shorter than [`MIN_SIZE`].
pub fn write(msg: &mut [u8], seq: u64, sent_ns: u64) -> Result<(), Bad> {
    let len = msg.len();
    if len < MIN_SIZE {
        return Err(Bad {
            len,
            what: "shorter than 8 bytes",
        });
    }
    let (head, fseq) = if len >= 24 {
        (24, seq)
    } else {
        (8, seq & 0xffff_ffff)
    };
    fill(&mut msg[head..], fseq);
    if len >= 24 {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        msg[8..16].copy_from_slice(&sent_ns.to_le_bytes());
        let h = checksum(checksum(0, &msg[..16]), &msg[24..]);
        msg[16..24].copy_from_slice(&h.to_le_bytes());
    } else {
        msg[..4].copy_from_slice(&(seq as u32).to_le_bytes());
        let us = ((sent_ns / 1000) & 0xff_ffff) as u32;
        msg[4..7].copy_from_slice(&us.to_le_bytes()[..3]);
        let h = checksum(checksum(0, &msg[..7]), &msg[8..]);
        msg[7] = h.to_le_bytes().iter().fold(0, |a, b| a ^ b);
    }
    Ok(())
}

/// Checks `msg` and returns its stamp.
///
/// # Errors
///
/// [`Bad`] for a message too short, with a wrong checksum, or with wrong filler.
pub fn check(msg: &[u8]) -> Result<Stamp, Bad> {
    let len = msg.len();
    let bad = |what| Err(Bad { len, what });
    if len < MIN_SIZE {
        return bad("shorter than 8 bytes");
    }
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&msg[r]);
        u64::from_le_bytes(b)
    };
    let (stamp, head) = if len >= 24 {
        let h = checksum(checksum(0, &msg[..16]), &msg[24..]);
        if h != word(16..24) {
            return bad("checksum mismatch");
        }
        let s = Stamp {
            seq: word(0..8),
            sent_ns: word(8..16),
            short: false,
        };
        (s, 24)
    } else {
        let h = checksum(checksum(0, &msg[..7]), &msg[8..]);
        if msg[7] != h.to_le_bytes().iter().fold(0, |a, b| a ^ b) {
            return bad("checksum mismatch");
        }
        let s = Stamp {
            seq: word(0..4),
            sent_ns: word(4..7) * 1000,
            short: true,
        };
        (s, 8)
    };
    if !filler_ok(&msg[head..], stamp.seq) {
        return bad("filler does not match the sequence number");
    }
    Ok(stamp)
}

/// Whether `s` carries sequence number `expected` (the short layout compares the low 32
/// bits).
pub fn is_next(s: &Stamp, expected: u64) -> bool {
    if s.short {
        s.seq == expected & 0xffff_ffff
    } else {
        s.seq == expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_round_trips_and_every_bit_flip_is_caught() {
        for len in [8, 9, 16, 23, 24, 25, 64, 1000] {
            let mut m = vec![0u8; len];
            write(&mut m, 0x1_0000_0007, 123_456_789).unwrap();
            let s = check(&m).unwrap();
            assert!(is_next(&s, 0x1_0000_0007), "{len}");
            assert!(s.latency_ns(123_456_789 + 5_000_000) >= 4_999_000, "{len}");
            for bit in 0..len * 8 {
                let mut c = m.clone();
                c[bit / 8] ^= 1 << (bit % 8);
                let caught = check(&c).is_err() || !is_next(&check(&c).unwrap(), 0x1_0000_0007);
                // An 8-bit check may miss a flip in the timestamp of a short message only
                // if the fold collides, which a single flip never does.
                assert!(
                    caught || (len < 24 && (4..7).contains(&(bit / 8))),
                    "{len} {bit}"
                );
            }
        }
        assert!(write(&mut [0u8; 7], 0, 0).is_err());
        assert!(check(&[0u8; 7]).is_err());
    }
}
