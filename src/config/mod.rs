//! ha.yaml: schema, defaults, loading and validation.
//!
//! Owns turning a YAML file into a [`Config`] or into a list of [`ConfigError`]s that each name the
//! key path and line (`storage.store_paths[0]: line 31: ...`). Components never read YAML.
//!
//! Pipeline: YAML syntax (serde_yaml, located) -> types and unknown keys (serde_path_to_error over
//! a `Value`, repeated so every unknown key is reported, not only the first) -> [`validate`]
//! (ranges, cross references, paths). Lines of errors found on the `Value` come from [`LineMap`].

pub mod lines;
pub mod schema;
pub mod validate;
pub mod values;

pub use lines::LineMap;
pub use schema::*;
pub use validate::{enabled_components, probe_target_component, Findings};
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
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        match self.line {
            Some(l) => write!(f, "{}: line {}: {}", path, l, self.message),
            None => write!(f, "{}: {}", path, self.message),
        }
    }
}

/// A config that passed every check, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}

/// Parses YAML text into a Config: syntax, types and unknown keys (every unknown key is
/// reported). No validation of values; see [`check_str`].
pub fn parse_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    let p = parse_with_lines(text, &LineMap::build(text));
    match p.config {
        Some(c) if p.errors.is_empty() => Ok(c),
        _ => Err(p.errors),
    }
}

/// Result of the type pass: the errors, and (when the rest of the file deserializes once the
/// offending keys are removed) the config without them, so values can still be validated.
struct Parsed {
    config: Option<Config>,
    errors: Vec<ConfigError>,
    removed: Vec<String>,
}

fn parse_with_lines(text: &str, lines: &LineMap) -> Parsed {
    let fail = |errors| Parsed {
        config: None,
        errors,
        removed: Vec::new(),
    };
    let mut value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return fail(vec![ConfigError {
                path: String::new(),
                line: e.location().map(|l| l.line()),
                message: format!("YAML syntax: {e}"),
            }])
        }
    };
    if value.is_null() {
        return fail(vec![ConfigError {
            path: String::new(),
            line: None,
            message: "empty config".into(),
        }]);
    }
    let mut errors = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    // Each round reports one error; unknown keys and bad optional values are removed so the next
    // round can find the next error. Bounded, and stops at errors that removal cannot get past.
    for _ in 0..64 {
        let attempt = serde_path_to_error::deserialize::<_, Config>(value.clone());
        let err = match attempt {
            Ok(cfg) => {
                return Parsed {
                    config: Some(cfg),
                    errors,
                    removed,
                }
            }
            Err(e) => e,
        };
        let mut segs: Vec<Seg> = err.path().iter().filter_map(Seg::from_path).collect();
        let message = err.inner().to_string();
        let mut removable = true;
        if let Some(key) = unknown_field_name(&message) {
            if segs.last() != Some(&Seg::Key(key.clone())) {
                segs.push(Seg::Key(key));
            }
        } else if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            // A required key we removed for its own error is not missing a second time.
            let mut full = segs.clone();
            full.push(Seg::Key(field.to_string()));
            if removed.contains(&render(&full)) {
                break;
            }
            removable = false;
        }
        let path = render(&segs);
        let line = lines.line_of(&path);
        let message = message
            .split(", expected one of")
            .next()
            .map(|m| {
                if message.starts_with("unknown field") {
                    format!("unknown key {}", m.trim_start_matches("unknown field "))
                } else {
                    m.to_string()
                }
            })
            .unwrap_or(message.clone());
        let already = errors.iter().any(|e: &ConfigError| e.path == path);
        if !already {
            errors.push(ConfigError {
                path,
                line,
                message,
            });
        }
        // Removing a sequence element would shift the indices of later errors; stop there.
        if already
            || !removable
            || !matches!(segs.last(), Some(Seg::Key(_)))
            || !remove(&mut value, &segs)
        {
            break;
        }
        removed.push(render(&segs));
    }
    Parsed {
        config: None,
        errors,
        removed,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn from_path(s: &serde_path_to_error::Segment) -> Option<Seg> {
        match s {
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        }
    }
}

fn render(segs: &[Seg]) -> String {
    let mut out = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Removes the node at `segs` (a mapping key) from `value`; false when it is not there.
fn remove(value: &mut serde_yaml::Value, segs: &[Seg]) -> bool {
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut node = value;
    for s in parents {
        let next = match (s, node) {
            (Seg::Key(k), serde_yaml::Value::Mapping(m)) => m.get_mut(k.as_str()),
            (Seg::Index(i), serde_yaml::Value::Sequence(v)) => v.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, node) {
        (Seg::Key(k), serde_yaml::Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

/// Parses and validates YAML text: every error (types first; values when the types are right).
pub fn check_str(text: &str) -> Result<Checked, Vec<ConfigError>> {
    let lines = LineMap::build(text);
    let parsed = parse_with_lines(text, &lines);
    let Some(config) = parsed.config else {
        return Err(parsed.errors);
    };
    let Findings { errors, warnings } = validate::validate(&config, &lines);
    if parsed.errors.is_empty() && errors.is_empty() {
        return Ok(Checked { config, warnings });
    }
    // Values next to a key with a type error are still checked; the removed keys themselves were
    // replaced by defaults, so findings about them would be noise.
    let mut all = parsed.errors;
    all.extend(errors.into_iter().filter(|e| {
        !parsed.removed.iter().any(|r| {
            e.path == *r
                || e.path.starts_with(&format!("{r}."))
                || e.path.starts_with(&format!("{r}["))
        })
    }));
    all.sort_by_key(|e| e.line.unwrap_or(0));
    Err(all)
}

/// Reads, parses and validates a config file.
pub fn check_file(path: &Path) -> Result<Checked, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            path: path.display().to_string(),
            line: None,
            message: format!("cannot read config: {e}"),
        }]
    })?;
    check_str(&text)
}

/// Reads, parses and validates a config file (warnings are dropped; see [`check_file`]).
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    check_file(path).map(|c| c.config)
}
