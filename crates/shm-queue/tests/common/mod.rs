//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use shm_region::Region;

/// xorshift64*: a tiny deterministic generator, so failures replay from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A region of `pages` pages with a `PROT_NONE` guard page mapped right after it, if the
/// kernel places it so (it allocates top-down, so it usually reuses the hole we leave below
/// the guard; regions that land elsewhere are kept until the end so the holes fill up).
/// Returns the region and whether the guard is in place.
pub fn guarded_region(pages: usize) -> (Arc<Region>, bool) {
    let len = pages * 4096;
    let mut misses = Vec::new();
    for _ in 0..64 {
        // SAFETY: a fresh private reservation; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + 4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: unmaps the front of our own reservation; its last page stays as a guard.
        unsafe { libc::munmap(p, len) };
        let region = Region::anonymous(len).unwrap();
        if region.as_ptr().as_ptr().cast::<libc::c_void>() == p {
            return (Arc::new(region), true);
        }
        misses.push(region);
    }
    (Arc::new(Region::anonymous(len).unwrap()), false)
}

/// The payload of message `seq` with `len` bytes: the sequence number in its first 8 bytes
/// (as far as they go), then a pattern derived from it.
pub fn payload(seq: u64, len: usize, out: &mut [u8]) {
    let s = seq.to_le_bytes();
    for (i, b) in out[..len].iter_mut().enumerate() {
        *b = if i < 8 {
            s[i]
        } else {
            (seq as u8).wrapping_add(i as u8).wrapping_mul(31)
        };
    }
}

/// The length of message `seq` for a ring carrying at most `max` bytes.
pub fn length(seq: u64, max: usize) -> usize {
    match seq % 7 {
        0 => 0,
        1 => max,
        2 => 8,
        _ => ((seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize) % (max + 1),
    }
}
