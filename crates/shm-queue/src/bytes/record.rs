//! Records in the data area: an 8-byte header word (tag, kind, length) and the payload,
//! 8-aligned; a padding record fills the end of the area so every message is contiguous.

use super::*;

/// The tag in the top 16 bits of every record header word.
pub(super) const TAG: u64 = 0x5a1e;

/// Record kind: a message.
pub(super) const KIND_MESSAGE: u64 = 1;

/// Record kind: padding up to the end of the area.
pub(super) const KIND_PADDING: u64 = 2;

/// Size of a record header.
pub(super) const RECORD_HEADER: usize = 8;

#[inline]
pub(super) fn encode(kind: u64, len: usize) -> u64 {
    (TAG << 48) | (kind << 32) | (len as u64 & 0xffff_ffff)
}

/// Bytes a record of `len` payload bytes takes: header plus payload, rounded up to 8.
#[inline]
pub(super) fn record_size(len: usize) -> usize {
    (RECORD_HEADER + len + 7) & !7
}

/// A record header word, checked.
#[derive(Debug, Clone, Copy)]
pub(super) enum Record {
    /// A message of `len` bytes.
    Message { len: usize },
    /// Padding to the end of the area, `size` bytes in all.
    Padding { size: usize },
}

impl Record {
    /// Bytes the record occupies.
    pub(super) fn size(self) -> usize {
        match self {
            Record::Message { len } => record_size(len),
            Record::Padding { size } => size,
        }
    }
}

/// Validates the (non-zero) header word found at data offset `offset`.
#[inline]
pub(super) fn decode(word: u64, offset: usize, s: &ByteStorage) -> Result<Record, TryError> {
    let len = (word & 0xffff_ffff) as usize;
    let kind = (word >> 32) & 0xffff;
    if word >> 48 != TAG {
        return Err(corrupted(Word::RecordTag, word >> 48));
    }
    let to_end = s.cap - offset;
    match kind {
        KIND_MESSAGE => {
            let max = s.max_message.min(to_end - RECORD_HEADER);
            if len > max {
                return Err(corrupted(Word::RecordLength, len as u64));
            }
            Ok(Record::Message { len })
        }
        KIND_PADDING => {
            let want = (to_end - RECORD_HEADER) as u64;
            // A padding record at offset 0 would cover the whole area: never written, and a
            // loop hazard if accepted.
            if len as u64 != want || offset == 0 {
                return Err(corrupted(Word::PaddingLength, len as u64));
            }
            Ok(Record::Padding { size: to_end })
        }
        _ => Err(corrupted(Word::RecordKind, kind)),
    }
}
