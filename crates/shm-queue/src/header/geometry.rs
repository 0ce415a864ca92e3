//! Where a ring's elements sit: [`BlockShape`] for one element type and [`Geometry`] for a
//! whole ring, computed from a capacity with checked arithmetic.

use super::*;

/// How elements of one type sit in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockShape {
    pub elem_size: usize,
    pub elem_align: usize,
    pub type_hash: u64,
    /// Offset of element 0 within its block: `round_up(8, elem_align)`.
    pub elem_offset: usize,
    /// Bytes per block, a multiple of 64.
    pub block_size: usize,
    /// Elements per block, at least 1.
    pub elems_per_block: usize,
}

impl BlockShape {
    /// The shape for elements of `size` bytes aligned to `align` (a power of two).
    ///
    /// A block is one 64-byte line holding its 8-byte published-position word and as many
    /// elements as fit after it; an element too big for that gets a block of its own, rounded
    /// up to whole 64-byte lines.
    pub(crate) fn compute(
        size: usize,
        align: usize,
    ) -> Result<(usize, usize, usize), &'static str> {
        if size == 0 {
            return Err("zero-sized types carry no data");
        }
        if size > MAX_ELEMENT_SIZE {
            return Err("it is larger than 2^30 bytes");
        }
        if !align.is_power_of_two() || align > MAX_ELEMENT_ALIGN {
            return Err("its alignment is above 64");
        }
        let offset = round_up(8, align);
        if offset + size <= BLOCK_BYTES {
            Ok((offset, BLOCK_BYTES, (BLOCK_BYTES - offset) / size))
        } else {
            Ok((offset, round_up(offset + size, BLOCK_BYTES), 1))
        }
    }

    /// The shape of `elem`.
    ///
    /// # Errors
    ///
    /// As [`BlockShape::of`].
    pub(crate) fn of_element(elem: &ElementType) -> Result<Self, Error> {
        Self::of(
            elem.size(),
            elem.align(),
            elem.fingerprint(),
            elem.name().to_owned().into(),
        )
    }

    /// The shape of elements of `size` bytes aligned to `align`, with fingerprint `hash`;
    /// `type_name` names them in the error.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedType`] if no ring can hold such elements.
    pub(crate) fn of(
        size: usize,
        align: usize,
        hash: u64,
        type_name: std::borrow::Cow<'static, str>,
    ) -> Result<Self, Error> {
        let (elem_offset, block_size, elems_per_block) =
            Self::compute(size, align).map_err(|reason| Error::UnsupportedType {
                type_name,
                size,
                align,
                reason,
            })?;
        Ok(BlockShape {
            elem_size: size,
            elem_align: align,
            type_hash: hash,
            elem_offset,
            block_size,
            elems_per_block,
        })
    }
}

/// The full geometry of one ring: the block shape and the number of blocks.
///
/// Invariants (checked by every constructor): `block_count` is a power of two in
/// `1..=MAX_BLOCKS` and `HEADER_SIZE + block_count * block_size` fits in an `isize`
/// ([`checked_area`]), so `capacity()` and `area_size()` cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub elem_size: usize,
    pub elem_align: usize,
    pub type_hash: u64,
    pub elem_offset: usize,
    pub block_size: usize,
    pub elems_per_block: usize,
    pub block_count: usize,
}

impl Geometry {
    /// The geometry of `block_count` blocks of shape `s`, if the whole area (header
    /// included) fits in an address space ([`checked_area`]).
    pub(crate) fn from_shape(s: BlockShape, block_count: usize) -> Result<Self, Error> {
        checked_area(HEADER_SIZE, block_count, s.block_size)?;
        Ok(Geometry {
            elem_size: s.elem_size,
            elem_align: s.elem_align,
            type_hash: s.type_hash,
            elem_offset: s.elem_offset,
            block_size: s.block_size,
            elems_per_block: s.elems_per_block,
            block_count,
        })
    }

    /// The smallest geometry for elements of `shape` with room for at least `min_capacity`.
    pub(crate) fn for_capacity(shape: BlockShape, min_capacity: usize) -> Result<Self, Error> {
        let blocks = (min_capacity as u64)
            .div_ceil(shape.elems_per_block as u64)
            .checked_next_power_of_two()
            .unwrap_or(u64::MAX);
        if min_capacity == 0 {
            return Err(Error::BadCapacity {
                blocks: 0,
                max_blocks: MAX_BLOCKS,
                reason: "zero",
            });
        }
        check_block_count(blocks)?;
        Self::from_shape(shape, blocks as usize)
    }

    /// A geometry with a chosen number of elements per block, for loom models, which need
    /// rings of 2 to 4 elements with several elements per block.
    #[cfg(loom)]
    pub(crate) fn for_model(
        shape: BlockShape,
        block_count: usize,
        elems_per_block: usize,
    ) -> Result<Self, Error> {
        let mut g = Self::for_capacity(shape, 1)?;
        check_block_count(block_count as u64)?;
        g.block_count = block_count;
        g.elems_per_block = elems_per_block.max(1);
        Ok(g)
    }

    /// Checks that this geometry puts elements of `size` bytes aligned to `align` where the
    /// ring views read them: element 0 at `round_up(8, align)`, `size` bytes apart, every
    /// element of a block inside its 64-byte-multiple block.
    ///
    /// # Errors
    ///
    /// [`Error::LayoutMismatch`] naming `elem_offset` otherwise.
    pub(crate) fn check_holds(&self, size: usize, align: usize) -> Result<(), Error> {
        let offset = round_up(8, align);
        if self.elem_offset != offset
            || self.elem_size != size
            || self.elem_align != align
            || !self.block_size.is_multiple_of(64)
            || self.elem_offset + self.elems_per_block * self.elem_size > self.block_size
        {
            return Err(Error::LayoutMismatch {
                field: "elem_offset",
                found: self.elem_offset as u64,
                expected: offset as u64,
            });
        }
        Ok(())
    }

    /// Capacity in elements.
    pub(crate) fn capacity(&self) -> usize {
        self.block_count * self.elems_per_block
    }

    /// Bytes of header plus slot area.
    pub(crate) fn area_size(&self) -> usize {
        HEADER_SIZE + self.block_count * self.block_size
    }
}

/// `head + count * each` bytes, if that fits in an `isize` (no mapping can be larger).
///
/// # Errors
///
/// [`Error::BadCapacity`] when it does not: a caller's capacity (or a peer's recorded count)
/// times the slot size that would wrap, instead of wrapping to a small, wrong size.
pub(crate) fn checked_area(head: usize, count: usize, each: usize) -> Result<usize, Error> {
    count
        .checked_mul(each)
        .and_then(|x| x.checked_add(head))
        .filter(|&x| x <= isize::MAX as usize)
        .ok_or(Error::BadCapacity {
            blocks: count as u64,
            max_blocks: ((isize::MAX as usize).saturating_sub(head) / each.max(1)) as u64,
            reason: "the ring would be larger than any address space",
        })
}

/// `x` rounded up to a multiple of `to` (a power of two).
pub(crate) const fn round_up(x: usize, to: usize) -> usize {
    (x + to - 1) & !(to - 1)
}
