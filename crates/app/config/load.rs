//! Reading a configuration: TOML text or a file in, a validated [`Config`] out (errors located
//! at their key), and the effective configuration rendered back as TOML.

use super::check::{Finding, Level};
use super::{locate, Config, ConfigError};
use std::path::Path;

impl Config {
    /// Parse and validate a TOML document; the first semantic error (`check.rs`) refuses it.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse_validated(s)?;
        if let Some((_, key, message)) = cfg.semantic().into_iter().find(|f| f.0 == Level::Error) {
            return Err(ConfigError::Invalid(locate::at_key(s, &key, message)));
        }
        Ok(cfg)
    }

    /// TOML and cross-field validation, without the semantic checks.
    pub(super) fn parse_validated(s: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(s).map_err(|e| ConfigError::Invalid(locate::from_toml_error(s, &e)))?;
        cfg.validate()
            .map_err(|(key, message)| ConfigError::Invalid(locate::at_key(s, &key, message)))?;
        Ok(cfg)
    }

    /// [`Config::load`] with every semantic finding kept (for `pacstap config check`).
    pub fn check_file(path: &Path) -> Result<(Config, Vec<Finding>), ConfigError> {
        let s = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut cfg, findings) = Config::check_str(&s)?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        Ok((cfg, findings))
    }

    /// Read, parse and validate a file. Relative file paths in it (`geoip.database`,
    /// `geoip.csv`) are resolved against the file's directory, not the working directory: a
    /// service started from `/` and a replay started from a checkout read the same database,
    /// and [`Config::render_effective`] shows the path that is opened.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let s = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::from_toml_str(&s)?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        Ok(cfg)
    }

    /// Make relative file paths absolute against `base` (the config file's directory).
    /// Absolute paths are kept as written.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.geoip.database, &mut self.geoip.csv].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        self.publish.resolve_paths(base);
    }

    /// Every effective setting, defaults included, as TOML (for `pacstap config check`).
    pub fn render_effective(&self) -> String {
        match toml::to_string(self) {
            Ok(s) => format!("# pacstap effective configuration (defaults included)\n\n{s}"),
            // Serialization of these plain types cannot fail; say so rather than panic.
            Err(e) => format!("# cannot render the effective config: {e}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn err(s: &str) -> String {
        Config::from_toml_str(s).unwrap_err().to_string()
    }

    #[test]
    fn render_effective_round_trips_defaults() {
        let c = Config::default();
        let text = c.render_effective();
        assert!(text.contains("[rules.bulk_export]"), "{text}");
        assert!(text.contains("window = \"30m\""), "{text}");
        assert_eq!(Config::from_toml_str(&text).unwrap(), c);
    }

    #[test]
    fn relative_geoip_paths_resolve_against_the_config_file() {
        let dir = std::env::temp_dir().join(format!("pacstap-cfg-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pacstap.toml");
        std::fs::write(&file, "[geoip]\ncsv = \"geo/countries.csv\"\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.geoip.csv.as_deref(), Some(dir.join("geo/countries.csv").as_path()));
        std::fs::write(
            &file,
            "[geoip]\ndatabase = \"/usr/share/GeoIP/GeoLite2-Country.mmdb\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(
            c.geoip.database.as_deref(),
            Some(Path::new("/usr/share/GeoIP/GeoLite2-Country.mmdb")),
            "absolute paths are kept"
        );
        // From a string there is no file: paths stay as written.
        let c = Config::from_toml_str("[geoip]\ncsv = \"geo.csv\"\n").unwrap();
        assert_eq!(c.geoip.csv.as_deref(), Some(Path::new("geo.csv")));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[rules\nthreshold = 3\n");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn type_error_names_key_and_line() {
        let s = "[rules.login_failures_user]\nthreshold = 8\n\n[rules.bulk_export]\nthreshold = \"many\"\n";
        let e = err(s);
        assert!(
            e.starts_with("rules.bulk_export.threshold at line 5, column 13: "),
            "{e}"
        );
        assert!(
            e.ends_with("expected a non-negative integer, found string \"many\""),
            "{e}"
        );
    }
}
