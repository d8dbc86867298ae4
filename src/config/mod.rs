//! ha.yaml: schema, defaults, loading and validation.
//!
//! Owns turning a YAML file into a [`Config`] or into a list of [`ConfigError`]s that each name the
//! key path and line (`storage.store_paths[0]: line 31: ...`). Components never read YAML.

pub mod schema;
pub mod values;

pub use schema::*;
pub use values::{ByteSize, Dur, Reserved};

use std::path::Path;

/// One problem in a config file, located by key path (`storage.store_paths[0]`) and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}: line {}: {}", self.path, l, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Parses YAML text into a Config (types and unknown keys only; see `validate` for the rest).
pub fn parse_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        vec![ConfigError {
            path,
            line,
            message: inner.to_string(),
        }]
    })
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            path: path.display().to_string(),
            line: None,
            message: e.to_string(),
        }]
    })?;
    parse_str(&text)
}
