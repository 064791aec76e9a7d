//! Persisting learned state: write a temporary file, fsync it, rename it over the old one,
//! fsync the directory — so a crash (or `kill -9`) leaves either the old or the new state,
//! never a torn one. A file that does not parse is set aside as `<path>.corrupt-<n>` and
//! reported, never silently discarded.

use crate::error::DetectError;
use crate::learned::{LearnedState, STATE_VERSION};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// The learned-state file.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

fn io_err(path: &Path, source: std::io::Error) -> DetectError {
    DetectError::StateIo {
        path: path.to_path_buf(),
        source,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

impl StateStore {
    /// Open the store at `path` and load what it holds. Returns the store, the state (none if
    /// the file does not exist or was corrupt), and a warning when a corrupt file was set
    /// aside (the warning names where it went). I/O failures other than a missing file are
    /// errors; so is a state written by a newer pacstap (left in place, untouched).
    pub fn open(path: &Path) -> Result<(Self, Option<LearnedState>, Option<String>), DetectError> {
        let store = StateStore {
            path: path.to_path_buf(),
        };
        // A temporary file left by a crash mid-save is not the state; the rename never happened.
        let tmp = store.tmp_path();
        if tmp.exists() {
            let _ = fs::remove_file(&tmp);
        }
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((store, None, None)),
            Err(e) => return Err(io_err(path, e)),
        };
        let parsed: Result<LearnedState, String> = serde_json::from_slice(&bytes).map_err(|e| e.to_string());
        match parsed {
            Ok(st) if st.version > STATE_VERSION => Err(DetectError::StateVersion {
                found: st.version,
                supported: STATE_VERSION,
            }),
            Ok(st) if st.version == 0 => {
                let warning = store.set_aside("version 0 is not a valid state version")?;
                Ok((store, None, Some(warning)))
            }
            Ok(st) => Ok((store, Some(st), None)),
            Err(why) => {
                let warning = store.set_aside(&why)?;
                Ok((store, None, Some(warning)))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tmp_path(&self) -> PathBuf {
        with_suffix(&self.path, ".tmp")
    }

    /// Rename the unreadable file to the first free `<path>.corrupt-<n>`.
    fn set_aside(&self, why: &str) -> Result<String, DetectError> {
        for n in 1..10_000u32 {
            let dest = with_suffix(&self.path, &format!(".corrupt-{n}"));
            if dest.exists() {
                continue;
            }
            fs::rename(&self.path, &dest).map_err(|e| io_err(&self.path, e))?;
            return Ok(format!(
                "learned state {} is corrupt ({why}); set aside as {} and starting fresh",
                self.path.display(),
                dest.display()
            ));
        }
        Err(io_err(
            &self.path,
            std::io::Error::other("too many corrupt state files set aside already"),
        ))
    }

    /// Write atomically: temporary file (mode 0600), fsync, rename, fsync the directory.
    pub fn save(&self, st: &LearnedState) -> Result<(), DetectError> {
        let json = serde_json::to_vec(st).map_err(|e| DetectError::StateEncode {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.tmp_path();
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(&json).map_err(|e| io_err(&tmp, e))?;
        f.write_all(b"\n").map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Directory fsync makes the rename durable (POSIX leaves it to the directory entry).
        #[cfg(unix)]
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&dir, e))?;
        #[cfg(not(unix))]
        let _ = dir;
        Ok(())
    }
}
