//! Every file pacstap writes goes through here: learned state, evidence pcaps, events files,
//! and the temporary files beside them.
//!
//! # Why
//!
//! pacstap often runs as root (or with capabilities) and writes into directories others may
//! write to as well (a shared evidence share, `/tmp` in a test setup). A name pacstap is about
//! to write that someone else controls is an attack:
//!
//! * a **symbolic link** planted at the name (`state.json.tmp -> /etc/passwd`) makes a plain
//!   `open(O_CREAT|O_TRUNC)` truncate and overwrite the link's target, or put patient payload
//!   into a file the attacker can read. Every open here passes `O_NOFOLLOW`, so a link at the
//!   final component is refused (`ELOOP`), never followed.
//! * a **hard link** or a **file owned by someone else** at the name would receive the data
//!   while its owner keeps read access (a `chmod` by root does not take that away). An existing
//!   file is only written when it is a regular file with one link, owned by our effective uid;
//!   it is checked on the opened descriptor (`fstat`), after the open, so there is no window
//!   between check and use. Truncation happens after the checks, never by `O_TRUNC`.
//! * a **predictable temporary name** can be pre-created: temporary files get a name with 64
//!   random bits and are created with `O_EXCL` (`create_new`), which never follows a link.
//!
//! Files are created with mode 0600 and set to 0600 whatever the umask: evidence holds patient
//! payload, learned state and events hold user names and addresses.
//!
//! Directories given by the operator (`--evidence-dir`, the state file's directory) are trusted
//! as paths: `O_NOFOLLOW` guards the last component only, which is the one an attacker with
//! write access to that directory controls.
//!
//! Errors are `io::Error`s whose message says what was refused and why; the caller names the
//! path (as every caller already does for other I/O errors), so it is said once.
//!
//! A separate crate because both `pacstap-detect` (state) and `pacstap-output` (evidence,
//! events) write files, and `pacstap-core` does no I/O by design.

// Every length, count and offset here comes from the wire or a file: no slice indexing that
// input controls (use `get`); a site that is provably in bounds says why in an `expect`.
#![deny(clippy::indexing_slicing)]

use rustix::fs::OFlags;
use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions, Permissions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every file pacstap creates: owner read/write only.
pub const PRIVATE_MODE: u32 = 0o600;

/// Attempts at a fresh temporary name before giving up (each collision with 64 random bits
/// means someone is creating names on purpose; a few retries cover a racing second pacstap).
const TEMP_ATTEMPTS: u32 = 8;

/// How [`open_private`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Empty it (after the checks): `replay --events`.
    Truncate,
    /// Write at its end: live events files, growing evidence pcaps.
    Append,
}

/// What may be at the path besides a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only a regular file (evidence, state).
    Regular,
    /// Also a FIFO or a character device (`--events /dev/null`, a named pipe to a log shipper):
    /// written as they are, never truncated or chmod-ed.
    RegularOrStream,
}

/// The `O_NOFOLLOW` flag for [`OpenOptionsExt::custom_flags`].
fn nofollow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}

/// Turns the kernel's "a link is in the way" answer into a message that says so.
fn explain_open_error(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symbolic link: refusing to write through it",
        )
    } else {
        e
    }
}

/// Opens `path` for writing without following a symbolic link, creating it with mode 0600.
///
/// An existing file must be a regular file (or, with [`Kind::RegularOrStream`], a FIFO or a
/// character device) owned by our effective uid with a single link; a regular file is set to
/// mode 0600 and, with [`Existing::Truncate`], emptied. Anything else is an error saying why.
pub fn open_private(path: &Path, existing: Existing, kind: Kind) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true)
        .create(true)
        .mode(PRIVATE_MODE)
        .custom_flags(nofollow());
    if existing == Existing::Append {
        opts.append(true);
    }
    // A regular file is also opened for reading, so the caller can check what is already in
    // it through the same descriptor (an evidence pcap's header); never a FIFO, which would
    // then open without waiting for its reader.
    if kind == Kind::Regular {
        opts.read(true);
    }
    let file = opts.open(path).map_err(explain_open_error)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if ft.is_file() {
        check_owned_single(&meta)?;
        if meta.permissions().mode() & 0o777 != PRIVATE_MODE {
            file.set_permissions(Permissions::from_mode(PRIVATE_MODE))?;
        }
        if existing == Existing::Truncate && meta.len() > 0 {
            file.set_len(0)?;
        }
        return Ok(file);
    }
    use std::os::unix::fs::FileTypeExt;
    if kind == Kind::RegularOrStream && (ft.is_fifo() || ft.is_char_device()) {
        return Ok(file);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "it is not a regular file: refusing to write to it",
    ))
}

/// An existing file we are about to write: ours, and reachable by this one name only.
fn check_owned_single(meta: &std::fs::Metadata) -> io::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to uid {}, not to pacstap's uid {me}: refusing to write to it",
                meta.uid()
            ),
        ));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "it has {} hard links: refusing to write to it (another name could read it)",
                meta.nlink()
            ),
        ));
    }
    Ok(())
}

/// The directory a file at `path` lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// 64 bits nobody outside the process can predict: std's hash keys come from the OS's random
/// source once per thread; the counter and the clock make each call differ.
fn random_u64() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// Creates a new, empty, mode-0600 file with an unpredictable name `.<base>.<random>.tmp` in
/// `dir`. `O_EXCL` makes the create fail on anything already there, a link included.
pub fn create_temp(dir: &Path, base: &str) -> io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let tmp = dir.join(format!(".{base}.{:016x}.tmp", random_u64()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .custom_flags(nofollow())
            .open(&tmp)
        {
            Ok(f) => {
                // Whatever the umask.
                if let Err(e) = f.set_permissions(Permissions::from_mode(PRIVATE_MODE)) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                return Ok((f, tmp));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Replaces `path` atomically with what `fill` writes: a fresh temporary file beside it
/// ([`create_temp`]), fsync, rename over `path`, fsync of the directory. A crash leaves the
/// old file or the new one, never a torn one; a link at `path` is replaced, its target never
/// touched; the result has mode 0600. On error the temporary file is removed.
pub fn write_atomic<T>(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>) -> io::Result<T> {
    let dir = parent_dir(path);
    let base = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?
        .to_string_lossy()
        .into_owned();
    let (file, tmp) = create_temp(&dir, &base)?;
    let result = (|| {
        let mut w = BufWriter::new(file);
        let value = fill(&mut w)?;
        let file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        Ok(value)
    })();
    match result {
        Ok(v) => {
            // Directory fsync makes the rename durable (POSIX leaves it to the directory entry).
            File::open(&dir)?.sync_all()?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes what a crash in the middle of [`write_atomic`] for `path` left behind: regular
/// files named like its temporaries (`.<name>.<16 hex digits>.tmp`) beside it. Returns how
/// many were removed. A link or anything else with such a name is left alone.
pub fn remove_stale_temps(path: &Path) -> io::Result<usize> {
    let Some(base) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(0);
    };
    let prefix = format!(".{base}.");
    let mut removed = 0;
    for entry in std::fs::read_dir(parent_dir(path))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(rand) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".tmp"))
        else {
            continue;
        };
        if rand.len() == 16
            && rand.bytes().all(|b| b.is_ascii_hexdigit())
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates `dir` and its missing parents with mode 0700 (what exists already is left as it
/// is): evidence file names carry the alert's entity (a user name, an AE title), so the
/// listing is private too.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Checks, before any work depends on it, that files can be created in `dir`: it exists, is
/// a directory, and a temporary file can be created (and is removed again) there.
pub fn check_dir_writable(dir: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "it is not a directory"));
    }
    let (f, tmp) = create_temp(dir, "pacstap-probe")?;
    drop(f);
    std::fs::remove_file(&tmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pacstap-safefile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn open_private_refuses_a_symlink_and_leaves_its_target_alone() {
        let d = tempdir("link");
        let target = d.join("target");
        std::fs::write(&target, b"precious").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o644)).unwrap();
        let link = d.join("out");
        symlink(&target, &link).unwrap();
        for existing in [Existing::Truncate, Existing::Append] {
            let e = open_private(&link, existing, Kind::RegularOrStream).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        // A dangling link is refused too (a plain O_CREAT would create its target).
        let dangling = d.join("dangling");
        symlink(d.join("created-elsewhere"), &dangling).unwrap();
        assert!(open_private(&dangling, Existing::Truncate, Kind::Regular).is_err());
        assert!(!d.join("created-elsewhere").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(mode(&target), 0o644);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn open_private_creates_0600_truncates_or_appends_and_tightens_a_lax_mode() {
        let d = tempdir("modes");
        let p = d.join("events.jsonl");
        open_private(&p, Existing::Append, Kind::Regular)
            .unwrap()
            .write_all(b"one\n")
            .unwrap();
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        open_private(&p, Existing::Append, Kind::Regular)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        assert_eq!(mode(&p), 0o600);
        open_private(&p, Existing::Truncate, Kind::Regular)
            .unwrap()
            .write_all(b"3\n")
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"3\n");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn open_private_refuses_hard_links_and_non_files_but_takes_dev_null_as_a_stream() {
        let d = tempdir("hard");
        let a = d.join("a");
        std::fs::write(&a, b"x").unwrap();
        std::fs::hard_link(&a, d.join("b")).unwrap();
        let e = open_private(&a, Existing::Append, Kind::Regular).unwrap_err();
        assert!(e.to_string().contains("2 hard links"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"x");
        assert!(open_private(&d, Existing::Append, Kind::RegularOrStream).is_err());
        assert!(open_private(Path::new("/dev/null"), Existing::Truncate, Kind::RegularOrStream).is_ok());
        let e = open_private(Path::new("/dev/null"), Existing::Append, Kind::Regular).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn write_atomic_replaces_a_link_not_its_target_and_leaves_no_temporary() {
        let d = tempdir("atomic");
        let target = d.join("target");
        std::fs::write(&target, b"precious").unwrap();
        let p = d.join("state.json");
        symlink(&target, &p).unwrap();
        // The old fixed temporary name, planted as a link: not used.
        symlink(&target, d.join("state.json.tmp")).unwrap();
        write_atomic(&p, |w| w.write_all(b"{}\n")).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&p).unwrap(), b"{}\n");
        assert_eq!(mode(&p), 0o600);
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "target, state.json, the planted link: {names:?}");
        // A failing writer leaves nothing behind and the old file in place.
        let e = write_atomic(&p, |_| -> io::Result<()> { Err(io::Error::other("boom")) }).unwrap_err();
        assert_eq!(e.to_string(), "boom");
        assert_eq!(std::fs::read(&p).unwrap(), b"{}\n");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 3);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn stale_temporaries_of_one_file_are_removed_and_nothing_else() {
        let d = tempdir("stale");
        let p = d.join("s.json");
        let (_, stale) = create_temp(&d, "s.json").unwrap();
        let (_, other) = create_temp(&d, "t.json").unwrap();
        symlink(&other, d.join(".s.json.0123456789abcdef.tmp")).unwrap();
        assert_eq!(remove_stale_temps(&p).unwrap(), 1);
        assert!(!stale.exists());
        assert!(other.exists());
        assert!(std::fs::symlink_metadata(d.join(".s.json.0123456789abcdef.tmp")).is_ok());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn temp_names_differ_and_dir_check_says_why() {
        let d = tempdir("probe");
        let (_, a) = create_temp(&d, "x").unwrap();
        let (_, b) = create_temp(&d, "x").unwrap();
        assert_ne!(a, b);
        assert_eq!(mode(&a), 0o600);
        assert!(check_dir_writable(&d).is_ok());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2, "the probe is removed");
        let e = check_dir_writable(&a).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = check_dir_writable(&d.join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        create_private_dir(&d.join("a/b")).unwrap();
        assert_eq!(mode(&d.join("a/b")), 0o700);
        create_private_dir(&d.join("a/b")).unwrap();
        std::fs::remove_dir_all(&d).ok();
    }
}
