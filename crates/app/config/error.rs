//! Configuration errors: each names the key and where it is in the file.

use std::fmt;
use std::path::PathBuf;

/// A configuration problem, located in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The TOML is malformed or a value is not acceptable.
    #[error("{0}")]
    Invalid(ConfigIssue),
}

/// What is wrong and where: `key at line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path (`rules.bulk_export.threshold`, `inventory.dicom[1].ip`), when known.
    pub key: Option<String>,
    /// 1-based; 0 when the position is unknown.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.key, self.line) {
            (Some(k), 0) => write!(f, "{k}: {}", self.message),
            (Some(k), l) => write!(f, "{k} at line {l}, column {}: {}", self.column, self.message),
            (None, 0) => f.write_str(&self.message),
            (None, l) => write!(f, "line {l}, column {}: {}", self.column, self.message),
        }
    }
}

impl ConfigError {
    /// The key the error is about, if known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid(i) => i.key.as_deref(),
            ConfigError::Io { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn an_invalid_config_names_its_key_and_a_missing_file_none() {
        let e = Config::from_toml_str("[detect]\nmax_entities = \"lots\"\n").unwrap_err();
        assert_eq!(e.key(), Some("detect.max_entities"));
        let io = Config::load(std::path::Path::new("/nonexistent/pacstap.toml")).unwrap_err();
        assert_eq!(io.key(), None);
        assert!(io.to_string().contains("/nonexistent/pacstap.toml"), "{io}");
    }
}
