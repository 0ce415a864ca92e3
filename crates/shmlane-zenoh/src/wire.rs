//! What a bridge puts on zenoh: each zenoh message carries a batch of one or more channel
//! messages as its payload, and a [`Header`] as its attachment.
//!
//! ```text
//! attachment (little-endian):
//!   0  4  magic "SLZ1"
//!   4  1  flags: bit 0 = end of stream (no messages: the out side's channel closed)
//!   5  1  format: 1 elements, 2 byte messages
//!   6  2  type-name length (bytes after the header)
//!   8  4  element size (0 for byte messages)
//!  12  4  messages in this batch
//!  16  8  type fingerprint (shm_queue::element::fingerprint_of; byte messages: of "bytes", 0, 1)
//!  24  8  stream: a random number per `out` run
//!  32  8  sequence number of the batch's first message (counted from 0 in the stream,
//!         including messages the out side lost locally, so the far side sees them as gaps)
//!  40  8  reserved (0)
//!  48  .. type name (UTF-8)
//! payload:
//!   elements:      count * element size bytes
//!   byte messages: count records of a u32 length, then that many bytes
//! ```
//!
//! Everything from the network is untrusted: [`Header::decode`] and [`split`] check every
//! length against what arrived and refuse what does not add up, without panicking.

use shm_queue::element::fingerprint_of;

/// The attachment's magic number.
pub const MAGIC: [u8; 4] = *b"SLZ1";
/// Bytes of the fixed header (the type name follows).
pub const HEADER_LEN: usize = 48;
/// The longest type name carried.
pub const MAX_NAME: usize = 128;

/// What the messages of a stream are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Fixed-size elements of a named type.
    Elements {
        /// The element type's name, as the channel records it.
        name: String,
        /// Bytes per element.
        size: u32,
        /// The type fingerprint (name, size and alignment).
        fingerprint: u64,
    },
    /// Variable-length byte messages.
    Bytes,
}

impl Format {
    /// The elements of `elem`.
    pub fn of(elem: &shm_queue::ElementType) -> Self {
        Format::Elements {
            name: elem.name().to_owned(),
            size: elem.size() as u32,
            fingerprint: elem.fingerprint(),
        }
    }

    /// The fingerprint on the wire.
    pub fn fingerprint(&self) -> u64 {
        match self {
            Format::Elements { fingerprint, .. } => *fingerprint,
            Format::Bytes => fingerprint_of("bytes", 0, 1),
        }
    }

    fn code(&self) -> u8 {
        match self {
            Format::Elements { .. } => 1,
            Format::Bytes => 2,
        }
    }

    fn name(&self) -> &str {
        match self {
            Format::Elements { name, .. } => name,
            Format::Bytes => "bytes",
        }
    }

    /// Whether a stream of `self` may be delivered into a channel of `other`.
    pub fn matches(&self, other: &Format) -> bool {
        match (self, other) {
            (Format::Bytes, Format::Bytes) => true,
            (
                Format::Elements {
                    size: a,
                    fingerprint: fa,
                    ..
                },
                Format::Elements {
                    size: b,
                    fingerprint: fb,
                    ..
                },
            ) => a == b && fa == fb,
            _ => false,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Format::Elements {
                name,
                size,
                fingerprint,
            } => write!(
                f,
                "elements `{name}` of {size} bytes (fingerprint {fingerprint:#018x})"
            ),
            Format::Bytes => f.write_str("byte messages"),
        }
    }
}

/// A zenoh message's attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// What the messages are.
    pub format: Format,
    /// The `out` run that sent it.
    pub stream: u64,
    /// The first message's sequence number.
    pub seq: u64,
    /// Messages in the batch.
    pub count: u32,
    /// The out side's channel closed: the stream ends here.
    pub end: bool,
}

/// Why a zenoh message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a shmlane bridge message.
    #[error("not a shmlane bridge message: {0}")]
    Foreign(&'static str),
    /// The payload does not hold what the header says.
    #[error("malformed batch: {0}")]
    Malformed(&'static str),
}

impl Header {
    /// The attachment bytes.
    pub fn encode(&self) -> Vec<u8> {
        let name = self.format.name().as_bytes();
        let name = &name[..name.len().min(MAX_NAME)];
        let mut v = Vec::with_capacity(HEADER_LEN + name.len());
        v.extend_from_slice(&MAGIC);
        v.push(u8::from(self.end));
        v.push(self.format.code());
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        let size = match &self.format {
            Format::Elements { size, .. } => *size,
            Format::Bytes => 0,
        };
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.format.fingerprint().to_le_bytes());
        v.extend_from_slice(&self.stream.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(name);
        v
    }

    /// Reads an attachment.
    ///
    /// # Errors
    ///
    /// [`WireError::Foreign`] for anything that is not a header this version wrote.
    pub fn decode(b: &[u8]) -> Result<Header, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::Foreign("attachment shorter than the header"));
        }
        if b[..4] != MAGIC {
            return Err(WireError::Foreign("bad magic"));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let name_len = usize::from(u16::from_le_bytes([b[6], b[7]]));
        if name_len > MAX_NAME || b.len() != HEADER_LEN + name_len {
            return Err(WireError::Foreign("type name length does not match"));
        }
        let name = std::str::from_utf8(&b[HEADER_LEN..])
            .map_err(|_| WireError::Foreign("type name is not UTF-8"))?;
        let fingerprint = u64_at(16);
        let format = match b[5] {
            1 => Format::Elements {
                name: name.to_owned(),
                size: u32_at(8),
                fingerprint,
            },
            2 if fingerprint == Format::Bytes.fingerprint() => Format::Bytes,
            _ => return Err(WireError::Foreign("unknown message format")),
        };
        if let Format::Elements { size: 0, .. } = format {
            return Err(WireError::Foreign("zero-sized elements"));
        }
        Ok(Header {
            format,
            stream: u64_at(24),
            seq: u64_at(32),
            count: u32_at(12),
            end: b[4] & 1 != 0,
        })
    }
}

/// A batch being filled: the payload of one zenoh message.
#[derive(Debug, Default)]
pub struct Batch {
    /// The payload bytes.
    pub buf: Vec<u8>,
    /// Messages in it.
    pub count: u32,
}

impl Batch {
    /// Appends a byte message (its length, then its bytes).
    pub fn push_message(&mut self, msg: &[u8]) {
        self.buf
            .extend_from_slice(&(msg.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(msg);
        self.count += 1;
    }

    /// Appends a byte message of `len` bytes that `fill` writes in place.
    pub fn push_message_with<E>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.buf.len();
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        self.buf.resize(at + 4 + len, 0);
        match fill(&mut self.buf[at + 4..]) {
            Ok(()) => {
                self.count += 1;
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(at);
                Err(e)
            }
        }
    }

    /// Empties it for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}

/// The messages of a payload, each as the pieces of the payload's fragments it spans (a
/// payload that zenoh reassembled from fragments is not contiguous, and joining it would
/// cost a copy of every byte).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Messages<'a> {
    /// Every message's pieces, in order.
    pieces: Vec<&'a [u8]>,
    /// Where each message's pieces end in `pieces`.
    ends: Vec<usize>,
    /// The messages' bytes.
    bytes: u64,
}

impl<'a> Messages<'a> {
    /// How many messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// `true` if there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Their bytes (record lengths not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Each message, as its pieces (none for an empty message).
    pub fn iter(&self) -> impl Iterator<Item = &[&'a [u8]]> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(a, &b)| &self.pieces[a..b])
    }
}

/// Reads a payload's fragments in order.
struct Cursor<'s, 'a> {
    /// The fragment being read, from the read position on.
    cur: &'a [u8],
    /// The fragments after it.
    rest: &'s [&'a [u8]],
}

impl<'a> Cursor<'_, 'a> {
    /// Makes the next fragment current if the current one is used up; `false` if none is
    /// left.
    fn refill(&mut self) -> bool {
        while self.cur.is_empty() {
            let Some((first, rest)) = self.rest.split_first() else {
                return false;
            };
            (self.cur, self.rest) = (first, rest);
        }
        true
    }

    /// Appends the next `n` bytes to `out` as pieces; `false` if fewer are left.
    fn take(&mut self, mut n: usize, out: &mut Vec<&'a [u8]>) -> bool {
        while n > 0 {
            if !self.refill() {
                return false;
            }
            let (piece, tail) = self.cur.split_at(n.min(self.cur.len()));
            out.push(piece);
            self.cur = tail;
            n -= piece.len();
        }
        true
    }

    /// The next four bytes as a little-endian `u32`.
    fn u32(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        let mut at = 0;
        while at < 4 {
            if !self.refill() {
                return None;
            }
            let k = (4 - at).min(self.cur.len());
            let (piece, tail) = self.cur.split_at(k);
            b[at..at + k].copy_from_slice(piece);
            self.cur = tail;
            at += k;
        }
        Some(u32::from_le_bytes(b))
    }

    fn at_end(&self) -> bool {
        self.cur.is_empty() && self.rest.iter().all(|f| f.is_empty())
    }
}

/// The messages of a payload that arrived as `fragments`, checked against the header:
/// each element, or each byte message, as pieces of the fragments.
///
/// # Errors
///
/// [`WireError::Malformed`] if the payload does not hold exactly `count` messages.
pub fn split<'a>(h: &Header, fragments: &[&'a [u8]]) -> Result<Messages<'a>, WireError> {
    let count = h.count as usize;
    let total: usize = fragments.iter().map(|f| f.len()).sum();
    let mut c = Cursor {
        cur: &[],
        rest: fragments,
    };
    let mut m = Messages {
        // A lying count must not size the allocation: each message takes at least one
        // byte of payload (an element) or four (a byte record).
        pieces: Vec::with_capacity(count.min(total) + fragments.len()),
        ends: Vec::with_capacity(count.min(total)),
        bytes: 0,
    };
    let size = match &h.format {
        Format::Elements { size, .. } => {
            let size = *size as usize;
            if Some(total) != count.checked_mul(size) {
                return Err(WireError::Malformed("payload is not count whole elements"));
            }
            Some(size)
        }
        Format::Bytes => None,
    };
    for _ in 0..count {
        let len = match size {
            Some(size) => size,
            None => c
                .u32()
                .ok_or(WireError::Malformed("record length cut short"))?
                as usize,
        };
        if !c.take(len, &mut m.pieces) {
            return Err(WireError::Malformed("record longer than the payload"));
        }
        m.ends.push(m.pieces.len());
        m.bytes += len as u64;
    }
    if !c.at_end() {
        return Err(WireError::Malformed("bytes after the last record"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(format: Format, count: u32) -> Header {
        Header {
            format,
            stream: 7,
            seq: 41,
            count,
            end: false,
        }
    }

    #[test]
    fn headers_round_trip_and_garbage_is_refused() {
        let elems = Format::of(&shm_queue::ElementType::of::<u64>());
        for h in [header(Format::Bytes, 3), header(elems.clone(), 9)] {
            let b = h.encode();
            assert_eq!(Header::decode(&b).unwrap(), h);
            for cut in 0..b.len() {
                assert!(Header::decode(&b[..cut]).is_err(), "cut at {cut}");
            }
            let mut bad = b.clone();
            bad[5] = 9;
            assert!(Header::decode(&bad).is_err());
        }
        // Every single-byte corruption either decodes to something or is refused: no panic.
        let b = header(elems, 2).encode();
        for i in 0..b.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut c = b.clone();
                c[i] = v;
                let _ = Header::decode(&c);
            }
        }
    }

    #[test]
    fn batches_split_exactly_or_not_at_all() {
        let mut batch = Batch::default();
        for m in [&b"a"[..], b"", b"hello"] {
            batch.push_message(m);
        }
        let h = header(Format::Bytes, batch.count);
        let whole = |m: &Messages| m.iter().map(|p| p.concat()).collect::<Vec<_>>();
        let got = split(&h, &[&batch.buf]).unwrap();
        assert_eq!(whole(&got), [&b"a"[..], b"", b"hello"]);
        assert_eq!(got.bytes(), 6);
        for cut in 0..batch.buf.len() {
            assert!(split(&h, &[&batch.buf[..cut]]).is_err(), "cut at {cut}");
        }
        let mut long = batch.buf.clone();
        long.push(0);
        assert!(split(&h, &[&long]).is_err());
        let mut huge = batch.buf.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(split(&h, &[&huge]).is_err());
        let e = header(Format::of(&shm_queue::ElementType::of::<u64>()), 2);
        assert_eq!(split(&e, &[&[0; 16]]).unwrap().len(), 2);
        assert!(split(&e, &[&[0; 15]]).is_err());
        let lying = Header {
            count: u32::MAX,
            ..e
        };
        assert!(split(&lying, &[&[0; 16]]).is_err());
    }

    #[test]
    fn a_payload_in_fragments_splits_as_if_whole() {
        let mut batch = Batch::default();
        for m in [&b"abcdefgh"[..], b"", b"hello", b"xy"] {
            batch.push_message(m);
        }
        let h = header(Format::Bytes, batch.count);
        let b = &batch.buf;
        let want = split(&h, &[b]).unwrap();
        let whole = |m: &Messages| m.iter().map(|p| p.concat()).collect::<Vec<_>>();
        // Every way of cutting it in two and in three, empty fragments included.
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let got = split(&h, &[&b[..i], &b[i..j], &b[j..]]).unwrap();
                assert_eq!(whole(&got), whole(&want), "cut at {i} and {j}");
                assert_eq!(got.bytes(), want.bytes());
                // A fragment short anywhere is refused.
                if j > i {
                    let short = split(&h, &[&b[..i], &b[i..j - 1], &b[j..]]);
                    assert!(short.is_err(), "short at {i} and {j}");
                }
            }
        }
        let e = header(Format::of(&shm_queue::ElementType::of::<u64>()), 2);
        let x: Vec<u8> = (0..16).collect();
        let got = split(&e, &[&x[..5], &x[5..11], &x[11..]]).unwrap();
        assert_eq!(whole(&got), [x[..8].to_vec(), x[8..].to_vec()]);
    }
}
