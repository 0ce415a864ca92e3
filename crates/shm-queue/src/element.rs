//! What a typed ring holds: an [`Element`] is either a Rust [`Pod`] type, whose size and
//! alignment the compiler knows, or [`Raw`], whose size, alignment and name are given at run
//! time by an [`ElementType`] (for the C and Python bindings, and for any program that
//! shares a ring with one).
//!
//! Both lay out the same bytes: a ring records an element's size, alignment and a
//! fingerprint of its *name*, and a ring made by one kind of handle attaches with the other
//! when the three agree. The default name of a Rust type is `core::any::type_name::<T>()`;
//! a program that shares a channel across languages picks an explicit name both sides use,
//! such as `"myapp.Tick/1"` ([`ElementType::of_named`], [`ElementType::named`]).

use std::borrow::Cow;

use bytemuck::Pod;

use crate::error::Error;
#[cfg(test)]
use crate::header::MAX_ELEMENT_SIZE;

mod sealed {
    pub trait Sealed {}
    impl<T: bytemuck::Pod> Sealed for T {}
    impl Sealed for super::Raw {}
}

/// A ring element: any [`Pod`] type, or [`Raw`] elements whose shape is known only at run
/// time. Sealed: there are exactly these two kinds.
pub trait Element: sealed::Sealed + 'static {
    /// `Some((size, align))` when the compiler knows the element's shape (every `Pod` type),
    /// `None` for [`Raw`], whose ring reads it from its [`ElementType`].
    #[doc(hidden)]
    const FIXED: Option<(usize, usize)>;
}

impl<T: Pod> Element for T {
    const FIXED: Option<(usize, usize)> =
        Some((core::mem::size_of::<T>(), core::mem::align_of::<T>()));
}

/// Elements whose size, alignment and name are given at run time, moved as bytes: a
/// `Ring<Raw>`'s handles push and pop whole elements from byte slices
/// (`try_push_bytes`, `pop_partial_into`, ...). Uninhabited: it only names the kind.
#[derive(Debug)]
pub enum Raw {}

impl Element for Raw {
    const FIXED: Option<(usize, usize)> = None;
}

/// The longest element name (bytes of UTF-8) [`ElementType::named`] accepts.
pub const MAX_NAME_LEN: usize = 128;

/// An element's name, size and alignment, and the fingerprint a ring records for them.
///
/// ```
/// use shm_queue::ElementType;
///
/// // The default for a Rust type is its `type_name`; a cross-language channel names it.
/// let rust = ElementType::of::<u64>();
/// assert_eq!((rust.size(), rust.align()), (8, 8));
/// let tick = ElementType::named("myapp.Tick/1", 32, 8)?;
/// assert_eq!(tick.fingerprint(), ElementType::named("myapp.Tick/1", 32, 8)?.fingerprint());
/// assert!(ElementType::named("myapp.Tick/1", 30, 8).is_err()); // not a multiple of 8
/// # Ok::<(), shm_queue::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ElementType {
    name: Cow<'static, str>,
    size: usize,
    align: usize,
    fingerprint: u64,
}

impl ElementType {
    /// The element type of `T`, named by `core::any::type_name::<T>()` (the fingerprint every
    /// `Ring<T>` has always recorded).
    pub fn of<T: Pod>() -> Self {
        let name = core::any::type_name::<T>();
        let (size, align) = (core::mem::size_of::<T>(), core::mem::align_of::<T>());
        ElementType {
            fingerprint: fingerprint_of(name, size, align),
            name: Cow::Borrowed(name),
            size,
            align,
        }
    }

    /// The element type of `T` under an explicit `name`, to share a ring with a program that
    /// names it the same way (a C or Python peer, or another Rust crate).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedType`] for a name that is empty, longer than [`MAX_NAME_LEN`]
    /// bytes or holds control characters, and for a `T` no ring can hold.
    pub fn of_named<T: Pod>(name: impl Into<Cow<'static, str>>) -> Result<Self, Error> {
        Self::named(name, core::mem::size_of::<T>(), core::mem::align_of::<T>())
    }

    /// An element type given at run time: `size` bytes aligned to `align`, named `name`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedType`] naming the reason: a size of 0 or over 2^30, an alignment
    /// that is not a power of two up to 64, a size that is not a multiple of the alignment
    /// (no C, Rust or aligned numpy type has one), or a name that is empty, longer than
    /// [`MAX_NAME_LEN`] bytes or holds control characters.
    pub fn named(
        name: impl Into<Cow<'static, str>>,
        size: usize,
        align: usize,
    ) -> Result<Self, Error> {
        let name = name.into();
        let bad = |reason| Error::UnsupportedType {
            type_name: name.clone(),
            size,
            align,
            reason,
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(bad("its name must be 1 to 128 bytes of UTF-8"));
        }
        if name.chars().any(char::is_control) {
            return Err(bad("its name holds control characters"));
        }
        crate::header::BlockShape::compute(size, align).map_err(bad)?;
        if !size.is_multiple_of(align) {
            return Err(bad("its size is not a multiple of its alignment"));
        }
        Ok(ElementType {
            fingerprint: fingerprint_of(&name, size, align),
            name,
            size,
            align,
        })
    }

    /// The name the fingerprint covers.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Alignment in bytes (a power of two, at most 64).
    pub fn align(&self) -> usize {
        self.align
    }

    /// The fingerprint a ring records: [`fingerprint_of`] the name, size and alignment.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Checks that this type can be used as `E`: any type for [`Raw`], and for a `Pod`
    /// type, one with `E`'s size and alignment (the name may differ: it is the contract).
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] when the size or alignment differs from `E`'s.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn check_fits<E: Element>(&self) -> Result<(), Error> {
        match E::FIXED {
            Some((size, align)) if (size, align) != (self.size, self.align) => {
                Err(Error::TypeMismatch {
                    type_name: Cow::Borrowed(core::any::type_name::<E>()),
                    expected_size: size as u32,
                    expected_align: align as u32,
                    expected_hash: self.fingerprint,
                    found_size: self.size as u64,
                    found_align: self.align as u64,
                    found_hash: self.fingerprint,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The 64-bit fingerprint of an element named `name` of `size` bytes aligned to `align`:
/// FNV-1a over the name's UTF-8, then the size and alignment as little-endian `u64`s.
///
/// ```
/// use shm_queue::{element::fingerprint_of, header::type_fingerprint};
/// assert_eq!(fingerprint_of("u64", 8, 8), type_fingerprint::<u64>());
/// ```
pub fn fingerprint_of(name: &str, size: usize, align: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    name.bytes().for_each(&mut eat);
    (size as u64).to_le_bytes().into_iter().for_each(&mut eat);
    (align as u64).to_le_bytes().into_iter().for_each(&mut eat);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::type_fingerprint;

    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Tick {
        seq: u64,
        value: f64,
        check: u32,
        pad: u32,
    }

    #[test]
    fn rust_types_keep_their_fingerprint() {
        assert_eq!(
            ElementType::of::<u8>().fingerprint(),
            type_fingerprint::<u8>()
        );
        assert_eq!(
            ElementType::of::<u64>().fingerprint(),
            type_fingerprint::<u64>()
        );
        assert_eq!(
            ElementType::of::<[u32; 3]>().fingerprint(),
            type_fingerprint::<[u32; 3]>()
        );
        assert_eq!(
            ElementType::of::<Tick>().fingerprint(),
            type_fingerprint::<Tick>()
        );
        assert_eq!(ElementType::of::<Tick>().size(), 24);
    }

    #[test]
    fn named_checks_its_input() {
        let ok = ElementType::named("a.B/1", 24, 8).unwrap();
        assert_eq!(ok, ElementType::of_named::<Tick>("a.B/1").unwrap());
        assert_ne!(
            ok.fingerprint(),
            ElementType::named("a.B/2", 24, 8).unwrap().fingerprint()
        );
        for (name, size, align) in [
            ("", 8, 8),
            ("x\n", 8, 8),
            ("x", 0, 1),
            ("x", 8, 3),
            ("x", 8, 128),
            ("x", 12, 8),
            ("x", MAX_ELEMENT_SIZE + 1, 1),
        ] {
            assert!(
                matches!(
                    ElementType::named(name, size, align),
                    Err(Error::UnsupportedType { .. })
                ),
                "{name:?} {size} {align}"
            );
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(ElementType::named(long, 8, 8).is_err());
        assert!(ElementType::named("x".repeat(MAX_NAME_LEN), 8, 8).is_ok());
    }

    #[test]
    fn fits_checks_pod_shapes() {
        let e = ElementType::named("n", 8, 8).unwrap();
        assert!(e.check_fits::<u64>().is_ok());
        assert!(e.check_fits::<f64>().is_ok());
        assert!(e.check_fits::<Raw>().is_ok());
        assert!(matches!(
            e.check_fits::<u32>(),
            Err(Error::TypeMismatch {
                expected_size: 4,
                ..
            })
        ));
        assert!(e.check_fits::<[u8; 8]>().is_err());
    }
}
