//! ha.yaml: schema, defaults, loading and validation.
//!
//! Owns turning a YAML file into a [`Config`] or into a list of [`ConfigError`]s that each name
//! the file, line and column, and the key path (`ha.yaml:31:7: storage.store_paths[0]: ...`).
//! Components never read YAML.
//!
//! Pipeline: YAML syntax ([`yaml`]: serde-saphyr into a tree of located nodes, bounded by a
//! budget) -> types and unknown keys (serde_path_to_error over the tree, repeated with each bad
//! value poisoned so every error is reported, not only the first) -> [`validate`] (ranges, cross
//! references, paths), whose key paths are located in the same tree.

pub mod allow_hosts;
pub mod schema;
pub mod validate;
pub mod values;
pub mod vip;
pub mod vrrp_rules;
pub mod yaml;

pub use schema::*;
pub use validate::{enabled_components, probe_target_component, Findings};
pub use values::{ByteSize, Dur, Reserved};

use std::path::Path;
use yaml::{Kind, Node, Pos};

/// One problem in a config file, located by file, line and column and by key path
/// (`storage.store_paths[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The config file, when the text came from one.
    pub file: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn at(path: impl Into<String>, pos: Option<Pos>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            file: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    /// `file:line:column: key.path: message` (parts that are unknown are left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut loc: Vec<String> = self.file.iter().cloned().collect();
        if let Some(l) = self.line {
            loc.push(l.to_string());
            if let Some(c) = self.column {
                loc.push(c.to_string());
            }
        }
        if !loc.is_empty() {
            write!(f, "{}: ", loc.join(":"))?;
        }
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        write!(f, "{}: {}", path, self.message)
    }
}

/// A config that passed every check, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: Config,
    pub warnings: Vec<ConfigError>,
}

/// At most this many errors are collected from one file (each costs one pass over the tree).
const MAX_ERRORS: usize = 100;

fn syntax_error(e: yaml::SyntaxError) -> Vec<ConfigError> {
    vec![ConfigError::at(
        "",
        e.at,
        format!("YAML syntax: {}", e.message),
    )]
}

/// Parses YAML text into a Config: syntax, types and unknown keys (every one is reported). No
/// validation of values; see [`check_str`].
pub fn parse_str(text: &str) -> Result<Config, Vec<ConfigError>> {
    let tree = yaml::parse(text).map_err(syntax_error)?;
    let p = parse_tree(&tree);
    match p.config {
        Some(c) if p.errors.is_empty() => Ok(c),
        _ => Err(sorted(p.errors)),
    }
}

/// Result of the type pass: the errors, and the config with every bad value replaced by a
/// neutral one (so the values around them can still be validated), unless even that failed.
struct Parsed {
    config: Option<Config>,
    errors: Vec<ConfigError>,
    /// Key paths whose values were replaced: validation findings under them are noise.
    poisoned: Vec<String>,
}

fn parse_tree(tree: &Node) -> Parsed {
    let mut parsed = Parsed {
        config: None,
        errors: Vec::new(),
        poisoned: Vec::new(),
    };
    if tree.is_null() {
        parsed
            .errors
            .push(ConfigError::at("", None, "empty config"));
        return parsed;
    }
    let mut work = tree.clone();
    // Each round finds one error and changes the tree so the next round gets past it; every
    // change poisons, removes or adds a node, so the rounds are bounded.
    for _ in 0..MAX_ERRORS * 4 {
        let err = match serde_path_to_error::deserialize::<_, Config>(&work) {
            Ok(cfg) => {
                parsed.config = Some(cfg);
                return parsed;
            }
            Err(e) => e,
        };
        let mut segs: Vec<Seg> = err.path().iter().filter_map(Seg::from_path).collect();
        let message = err.inner().to_string();
        let unknown = unknown_field_name(&message);
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .map(str::to_string);
        if let Some(key) = &unknown {
            if segs.last() != Some(&Seg::Key(key.clone())) {
                segs.push(Seg::Key(key.clone()));
            }
        }
        let path = render(&segs);
        let subject = match &missing {
            Some(field) => join(&path, field),
            None => path.clone(),
        };
        let seen = parsed.poisoned.iter().any(|p| is_under(&subject, p))
            || parsed
                .errors
                .iter()
                .any(|e| e.path == path && e.message == message);
        if !seen && parsed.errors.len() < MAX_ERRORS {
            parsed.errors.push(ConfigError::at(
                path.clone(),
                Some(tree.locate(&path)),
                friendly(&message),
            ));
        }
        let changed = if seen {
            poison(&mut work, &segs)
        } else if unknown.is_some() {
            remove_key(&mut work, &segs).or_else(|| poison(&mut work, &segs))
        } else if let Some(field) = &missing {
            add_poisoned_key(&mut work, &segs, field).or_else(|| poison(&mut work, &segs))
        } else {
            poison(&mut work, &segs)
        };
        match changed {
            Some(p) => parsed.poisoned.push(p),
            None => break,
        }
    }
    parsed
}

/// serde's wording, in the file's terms: "unknown key `grup` (did you mean `group`?)".
fn friendly(message: &str) -> String {
    let Some(name) = unknown_field_name(message) else {
        return message.to_string();
    };
    let expected: Vec<&str> = message
        .split_once("expected one of ")
        .map(|(_, list)| list.split(", ").map(|s| s.trim_matches('`')).collect())
        .or_else(|| {
            message
                .split_once("expected `")
                .map(|(_, one)| vec![one.trim_end_matches('`')])
        })
        .unwrap_or_default();
    let best = expected
        .iter()
        .map(|k| (edit_distance(&name, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min();
    match best {
        Some((_, k)) => format!("unknown key `{name}` (did you mean `{k}`?)"),
        None => format!("unknown key `{name}`"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
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
            Seg::Key(k) => out = join(&out, k),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `path` is `prefix` or inside it.
fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with(['.', '[']))
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn node_at_mut<'a>(mut node: &'a mut Node, segs: &[Seg]) -> Option<&'a mut Node> {
    for s in segs {
        node = match (s, &mut node.kind) {
            (Seg::Key(k), Kind::Map(entries)) => entries
                .iter_mut()
                .find(|(key, _)| key.key_text().as_deref() == Some(k.as_str()))
                .map(|(_, v)| v)?,
            (Seg::Index(i), Kind::Seq(items)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Poisons the node at `segs`, or its deepest existing ancestor; one level further up when that
/// is poisoned already (its neutral value did not fit the type). Returns the poisoned path.
fn poison(tree: &mut Node, segs: &[Seg]) -> Option<String> {
    let mut n = segs.len();
    while n > 0 && node_at_mut(tree, &segs[..n]).is_none() {
        n -= 1;
    }
    loop {
        let node = node_at_mut(tree, &segs[..n])?;
        if !matches!(node.kind, Kind::Poisoned) {
            *node = Node::poisoned(node.at);
            return Some(render(&segs[..n]));
        }
        n = n.checked_sub(1)?;
    }
}

/// Removes the mapping entry `segs` names (an unknown key).
fn remove_key(tree: &mut Node, segs: &[Seg]) -> Option<String> {
    let (Seg::Key(k), parent) = segs.split_last()? else {
        return None;
    };
    let Kind::Map(entries) = &mut node_at_mut(tree, parent)?.kind else {
        return None;
    };
    let before = entries.len();
    entries.retain(|(key, _)| key.key_text().as_deref() != Some(k.as_str()));
    (entries.len() < before).then(|| render(segs))
}

/// Adds a poisoned value for a missing required key.
fn add_poisoned_key(tree: &mut Node, segs: &[Seg], field: &str) -> Option<String> {
    let node = node_at_mut(tree, segs)?;
    let at = node.at;
    let Kind::Map(entries) = &mut node.kind else {
        return None;
    };
    entries.push((Node::string(field, at), Node::poisoned(at)));
    Some(join(&render(segs), field))
}

fn sorted(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors.sort_by_key(|e| (e.line.unwrap_or(0), e.column.unwrap_or(0)));
    errors
}

/// Parses and validates YAML text: every error (types, unknown keys and values together).
pub fn check_str(text: &str) -> Result<Checked, Vec<ConfigError>> {
    let tree = yaml::parse(text).map_err(syntax_error)?;
    let parsed = parse_tree(&tree);
    let Some(config) = parsed.config else {
        return Err(sorted(parsed.errors));
    };
    let Findings { errors, warnings } = validate::validate(&config, &tree);
    if parsed.errors.is_empty() && errors.is_empty() {
        return Ok(Checked { config, warnings });
    }
    // Values next to a bad one are still checked; the poisoned ones themselves hold neutral
    // values, so findings about them would be noise.
    let mut all = parsed.errors;
    all.extend(
        errors
            .into_iter()
            .filter(|e| !parsed.poisoned.iter().any(|p| is_under(&e.path, p))),
    );
    Err(sorted(all))
}

/// Reads at most [`yaml::MAX_TEXT`] bytes of a config file (a device or a huge file cannot make
/// `check` or a reload read forever).
fn read_config(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read config: {e}"))?;
    let mut buf = Vec::new();
    file.take(yaml::MAX_TEXT as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read config: {e}"))?;
    if buf.len() > yaml::MAX_TEXT {
        return Err(format!(
            "the file is larger than {} bytes; a config is at most that",
            yaml::MAX_TEXT
        ));
    }
    String::from_utf8(buf).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Reads, parses and validates a config file; every error and warning names the file.
pub fn check_file(path: &Path) -> Result<Checked, Vec<ConfigError>> {
    let name = path.display().to_string();
    let with_file = |mut errors: Vec<ConfigError>| {
        for e in &mut errors {
            e.file = Some(name.clone());
        }
        errors
    };
    let text = read_config(path).map_err(|m| with_file(vec![ConfigError::at("", None, m)]))?;
    let mut checked = check_str(&text).map_err(with_file)?;
    checked.warnings = with_file(checked.warnings);
    Ok(checked)
}

/// Reads, parses and validates a config file (warnings are dropped; see [`check_file`]).
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    check_file(path).map(|c| c.config)
}
