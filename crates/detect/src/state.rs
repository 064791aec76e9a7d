//! Persisting learned state: write a temporary file, fsync it, rename it over the old one,
//! fsync the directory — so a crash (or `kill -9`) leaves either the old or the new state,
//! never a torn one. The temporary file has an unpredictable name and is created exclusively
//! with mode 0600, never through a symbolic link (`pacstap_safefile::write_atomic`): the state
//! names devices, users and destinations, and the directory may be writable by others. A file that does not parse is set aside as `<path>.corrupt-<n>` and
//! reported, never silently discarded.

use crate::error::DetectError;
use crate::learned::{LearnedState, STATE_VERSION};
use std::fs;
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
        // (`<path>.tmp` is the fixed name older versions used; removing a link never follows it.)
        let _ = fs::remove_file(with_suffix(path, ".tmp"));
        let _ = pacstap_safefile::remove_stale_temps(path);
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

    /// Write atomically: a fresh temporary file (mode 0600, unpredictable name, created
    /// exclusively), fsync, rename over the state, fsync the directory. A symbolic link at the
    /// state's path is replaced, never written through.
    pub fn save(&self, st: &LearnedState) -> Result<(), DetectError> {
        let json = serde_json::to_vec(st).map_err(|e| DetectError::StateEncode {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        pacstap_safefile::write_atomic(&self.path, |w| {
            w.write_all(&json)?;
            w.write_all(b"\n")
        })
        .map_err(|e| io_err(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// The attack of issue #10: `capture --state D/s.json` used to truncate whatever a planted
    /// `D/s.json.tmp` pointed to, and then write the learned state (mode 0644) through it.
    #[test]
    fn planted_temporary_links_are_never_written_through() {
        let dir = std::env::temp_dir().join(format!("pacstap-state-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.join("s.json");
        symlink(&victim, with_suffix(&path, ".tmp")).unwrap();
        let (store, learned, warning) = StateStore::open(&path).unwrap();
        assert!(learned.is_none() && warning.is_none());
        // Planted again after start-up, when the old code would have used it.
        let _ = symlink(&victim, with_suffix(&path, ".tmp"));
        store.save(&LearnedState::default()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A link at the state path itself is replaced by the new state, its target untouched.
        fs::remove_file(&path).unwrap();
        symlink(&victim, &path).unwrap();
        let store = StateStore { path: path.clone() };
        store.save(&LearnedState::default()).unwrap();
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_dir_all(&dir).ok();
    }
}
