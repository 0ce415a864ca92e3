//! [`Options`]: the one set of settings for every backend, and the rule that a setting the
//! chosen backend cannot honour is an error rather than silently dropped.
//!
//! The builder methods live here, each documented once; the entry points that make a region
//! (`create_shm`, `create_memfd`, `open_file`, ...) live with their backend's code.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::region::Backend;

/// Builder methods that set a `bool` field of the same name (each with its own doc).
macro_rules! flag_setters {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, yes: bool) -> Self {
            self.$name = yes;
            self
        }
    )*};
}

/// How to create or open a [`Region`](crate::Region), for every backend.
///
/// Set what you need, then call the entry point of the backend you want:
///
/// | backend | entry points |
/// |---|---|
/// | named POSIX shm (`/dev/shm/NAME`) | [`create_shm`](Options::create_shm), [`open_shm`](Options::open_shm), [`open_or_create_shm`](Options::open_or_create_shm) |
/// | anonymous `MAP_SHARED` | [`create_anonymous`](Options::create_anonymous) |
/// | memfd | [`create_memfd`](Options::create_memfd), [`map_memfd`](Options::map_memfd) |
/// | regular file | [`create_file`](Options::create_file), [`open_file`](Options::open_file), [`open_or_create_file`](Options::open_or_create_file) |
/// | System V segment | [`create_sysv`](Options::create_sysv), [`attach_sysv`](Options::attach_sysv), [`open_sysv_key`](Options::open_sysv_key) |
///
/// Which backend honours which setting (`create` = when making the object, `open` = when
/// mapping an existing one):
///
/// | setting | default | POSIX shm | anonymous | memfd | file | System V |
/// |---|---|---|---|---|---|---|
/// | [`mode`](Options::mode) | `0o600` | create | | | create | create |
/// | [`keep_name`](Options::keep_name) | no | create | | | | create |
/// | [`allocate`](Options::allocate) | per backend | create (yes) | | create (yes) | create (no) | |
/// | [`huge_pages`](Options::huge_pages) | no | | create | create | | create |
/// | [`populate`](Options::populate) | no | | create | | | |
/// | [`allow_foreign_owner`](Options::allow_foreign_owner) | no | open | | | | open |
/// | [`allow_shared_write`](Options::allow_shared_write) | no | open | | | | open |
/// | [`min_len`](Options::min_len) | 1 byte | open | | open | open | open |
/// | [`open_wait`](Options::open_wait) | 200 ms | open or create | | | | |
/// | [`seal`](Options::seal) | no | | | create | | |
/// | [`require_seals`](Options::require_seals) | no | | | open | | |
/// | [`follow_symlinks`](Options::follow_symlinks) | no | | | | create, open | |
/// | [`copy_on_write`](Options::copy_on_write) | no | | | | create, open | |
///
/// A setting changed from its default on a backend whose column is empty fails with
/// [`Error::UnsupportedOption`] before any system call: asking for seals on POSIX shm, or
/// huge pages on a file, would otherwise be ignored without a word. Within one backend, a
/// setting for the other side is ignored (`mode` when opening, `allow_foreign_owner` when
/// creating), so one `Options` value serves both the creating and the opening process.
///
/// The defaults are the safe ones: objects are created `0600` and exclusively, opening
/// refuses another user's object and one that group or others may write, and the creator
/// removes the name when its region drops.
///
/// # Example
///
/// ```
/// use shm_region::{Error, Options};
///
/// let name = format!("shm-region-doc-{}", std::process::id());
/// let opts = Options::new().min_len(4096);
/// let creator = opts.create_shm(&name, 4096)?;
/// let other = opts.open_shm(&name)?; // in real use, another process
/// creator.write_at(0, b"ping")?;
/// let mut buf = [0u8; 4];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"ping");
///
/// // Seals exist only on memfds: asking for them elsewhere is an error, not a no-op.
/// let err = Options::new().seal(true).create_anonymous(4096).unwrap_err();
/// assert!(matches!(err, Error::UnsupportedOption { option: "seal", .. }));
/// # Ok::<(), shm_region::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "options do nothing until passed to an entry point such as `create_shm`"]
pub struct Options {
    pub(crate) mode: u32,
    pub(crate) keep_name: bool,
    /// `None`: the backend's default (yes for POSIX shm and memfd, no for files).
    pub(crate) allocate: Option<bool>,
    pub(crate) huge_pages: bool,
    pub(crate) populate: bool,
    pub(crate) allow_foreign_owner: bool,
    pub(crate) allow_shared_write: bool,
    pub(crate) min_len: usize,
    pub(crate) open_wait: Duration,
    pub(crate) seal: bool,
    pub(crate) require_seals: bool,
    pub(crate) follow_symlinks: bool,
    pub(crate) copy_on_write: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl Options {
    /// The defaults listed in the table above: mode `0600`, strict checks on open, names
    /// removed by their creator, memory allocated at creation where the backend does so by
    /// default, base pages, no seals, symbolic links refused.
    pub fn new() -> Self {
        Options {
            mode: 0o600,
            keep_name: false,
            allocate: None,
            huge_pages: false,
            populate: false,
            allow_foreign_owner: false,
            allow_shared_write: false,
            min_len: 0,
            open_wait: Duration::from_millis(200),
            seal: false,
            require_seals: false,
            follow_symlinks: false,
            copy_on_write: false,
        }
    }

    /// Permission bits for a new object (default `0o600`; bits above `0o777` are dropped).
    ///
    /// POSIX shm applies them with `fchmod`, so the umask does not change them; a file gets
    /// them at `open(O_CREAT)`, subject to the umask; a System V segment gets them in
    /// `shmget`.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Allocate the memory or disk blocks for the whole length at creation
    /// (`posix_fallocate`), so that exhaustion (of `/dev/shm`, memory, huge pages or the
    /// disk) is an error now, [`Error::NoSpace`] or [`Error::HugePagesUnavailable`], rather
    /// than `SIGBUS` on a later access.
    ///
    /// Default: yes for POSIX shm and memfd; no for files, so that large sparse files stay
    /// sparse. A copy-on-write file view never allocates.
    pub fn allocate(mut self, yes: bool) -> Self {
        self.allocate = Some(yes);
        self
    }

    /// When mapping an existing object whole ([`Options::open_shm`],
    /// [`Options::map_memfd`], [`Options::open_file`], [`Options::attach_sysv`],
    /// [`Options::open_sysv_key`]), require at least this many bytes (default: at least
    /// one), or fail with [`Error::TooSmall`]. [`Options::open_or_create_shm`] requires the
    /// larger of this and its `len`; the other entry points that take a length map exactly
    /// that length and ignore this.
    pub fn min_len(mut self, len: usize) -> Self {
        self.min_len = len;
        self
    }

    /// How long [`Options::open_or_create_shm`] waits for a concurrent creator to finish
    /// sizing the object (default 200 ms).
    pub fn open_wait(mut self, wait: Duration) -> Self {
        self.open_wait = wait;
        self
    }

    flag_setters! {
        /// Keep the POSIX shm name or the System V segment when the creating region drops
        /// (default: remove it). [`Region::keep_name`](crate::Region::keep_name) decides the
        /// same later, on a region already made.
        keep_name;
        /// Back the region with reserved huge pages (`MAP_HUGETLB`, `MFD_HUGETLB` or
        /// `SHM_HUGETLB`; default: base pages). Anonymous and memfd lengths are rounded up to
        /// whole huge pages. For transparent huge pages on any backend, use
        /// [`Region::advise`](crate::Region::advise) with
        /// [`Advice::HugePage`](crate::Advice::HugePage) instead.
        huge_pages;
        /// Fault every page in at creation (`MAP_POPULATE`; default: lazily, on first touch).
        /// Other backends can do the same after mapping with
        /// [`Region::prefault`](crate::Region::prefault).
        populate;
        /// Open objects owned by another uid (default: refuse them with
        /// [`Error::ForeignOwner`]).
        allow_foreign_owner;
        /// Open objects that group or others may write (default: refuse them with
        /// [`Error::InsecureMode`]).
        allow_shared_write;
        /// Seal the size at creation (`F_SEAL_SHRINK | F_SEAL_GROW`, then `F_SEAL_SEAL` so no
        /// one can remove them), so a peer can never truncate the memory under a mapping.
        seal;
        /// When mapping a received descriptor, refuse one whose size is not sealed, with
        /// [`Error::MissingSeals`].
        require_seals;
        /// Follow a symbolic link in the last path component (default: refuse it with
        /// [`Error::Symlink`], `O_NOFOLLOW`).
        follow_symlinks;
        /// Map `MAP_PRIVATE`: writes go to private copies of the pages and never reach the file
        /// or other processes. The file is never grown for such a view.
        copy_on_write;
    }

    /// Fails with [`Error::UnsupportedOption`] if a setting changed from its default does
    /// not apply to `backend` (see the table on [`Options`]).
    pub(crate) fn check_backend(&self, backend: Backend, region: &str) -> Result<()> {
        use Backend::{Anonymous, File, FilePrivate, Memfd, PosixShm, SysV};
        let backend = if backend == FilePrivate {
            File
        } else {
            backend
        };
        let d = Options::new();
        // (setting, changed from its default, the backends that honour it, in words)
        let settings: [(&'static str, bool, &[Backend], &'static str); 13] = [
            (
                "mode",
                self.mode != d.mode,
                &[PosixShm, File, SysV],
                "POSIX shm, file and System V regions",
            ),
            (
                "keep_name",
                self.keep_name,
                &[PosixShm, SysV],
                "POSIX shm and System V regions (the others have no name to remove)",
            ),
            (
                "allocate",
                self.allocate.is_some(),
                &[PosixShm, Memfd, File],
                "POSIX shm, memfd and file regions",
            ),
            (
                "huge_pages",
                self.huge_pages,
                &[Anonymous, Memfd, SysV],
                "anonymous, memfd and System V regions (for the others, \
                 `Region::advise(Advice::HugePage)`)",
            ),
            (
                "populate",
                self.populate,
                &[Anonymous],
                "anonymous regions (for the others, `Region::prefault()` after mapping)",
            ),
            (
                "allow_foreign_owner",
                self.allow_foreign_owner,
                &[PosixShm, SysV],
                "POSIX shm and System V regions (the others are not checked for their owner)",
            ),
            (
                "allow_shared_write",
                self.allow_shared_write,
                &[PosixShm, SysV],
                "POSIX shm and System V regions (the others are not checked for their mode)",
            ),
            (
                "min_len",
                self.min_len != d.min_len,
                &[PosixShm, Memfd, File, SysV],
                "regions that map an existing object (not anonymous ones)",
            ),
            (
                "open_wait",
                self.open_wait != d.open_wait,
                &[PosixShm],
                "POSIX shm (`open_or_create_shm`)",
            ),
            ("seal", self.seal, &[Memfd], "memfd regions"),
            (
                "require_seals",
                self.require_seals,
                &[Memfd],
                "memfd regions",
            ),
            (
                "follow_symlinks",
                self.follow_symlinks,
                &[File],
                "file regions",
            ),
            ("copy_on_write", self.copy_on_write, &[File], "file regions"),
        ];
        for (option, changed, honoured_by, applies_to) in settings {
            if changed && !honoured_by.contains(&backend) {
                return Err(Error::UnsupportedOption {
                    region: region.to_string(),
                    option,
                    backend,
                    applies_to,
                });
            }
        }
        Ok(())
    }

    /// The owner and mode checks to apply when opening an existing object.
    pub(crate) fn trust(&self) -> crate::checks::Trust {
        crate::checks::Trust {
            foreign_owner: self.allow_foreign_owner,
            shared_write: self.allow_shared_write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_everywhere() {
        for b in [
            Backend::PosixShm,
            Backend::Anonymous,
            Backend::Memfd,
            Backend::File,
            Backend::FilePrivate,
            Backend::SysV,
        ] {
            assert!(Options::new().check_backend(b, "r").is_ok(), "{b}");
            // Setting a default value explicitly is not a change.
            assert!(Options::new().mode(0o600).check_backend(b, "r").is_ok());
        }
    }

    #[test]
    fn each_setting_is_refused_where_it_does_not_apply() {
        let refused = |o: Options, b: Backend| match o.check_backend(b, "r") {
            Err(Error::UnsupportedOption { option, .. }) => Some(option),
            _ => None,
        };
        assert_eq!(
            refused(Options::new().seal(true), Backend::PosixShm),
            Some("seal")
        );
        assert_eq!(refused(Options::new().seal(true), Backend::Memfd), None);
        assert_eq!(
            refused(Options::new().huge_pages(true), Backend::File),
            Some("huge_pages")
        );
        assert_eq!(
            refused(Options::new().copy_on_write(true), Backend::FilePrivate),
            None
        );
        assert_eq!(
            refused(Options::new().allocate(false), Backend::SysV),
            Some("allocate")
        );
        assert_eq!(
            refused(Options::new().min_len(1), Backend::Anonymous),
            Some("min_len")
        );
        assert_eq!(refused(Options::new().keep_name(true), Backend::SysV), None);
    }
}
