//! `fdfs-ha import`: turns one node's keepalived.conf, FastDFS confs (tracker, storage, client,
//! mod_fastdfs), nginx.conf (with includes) and nginx_check.sh-like scripts into an annotated
//! ha.yaml.
//!
//! Owns reading those formats (one module each), deciding what each file is, and the mapping to
//! ha.yaml. Every key that is mapped carries a comment naming its file:line; every key that is
//! not, every value that changes behaviour, and every quirk the original program treats specially
//! becomes a [`Warning`] with file:line (printed and written into the output), never dropped
//! silently. Syntax errors (unbalanced braces, a FastDFS line without `=`) are [`ImportError`]s.

mod assemble;
pub mod check_script;
pub mod emit;
pub mod fastdfs_conf;
pub mod keepalived;
pub mod nginx;

use std::fmt;
use std::path::{Path, PathBuf};

/// A line of an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Src {
    pub file: String,
    pub line: usize,
}

impl Src {
    pub fn new(file: &str, line: usize) -> Src {
        Src {
            file: file.to_string(),
            line,
        }
    }
}

impl fmt::Display for Src {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Something the operator must know about the translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Option<Src>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(a) => write!(f, "WARNING {a}: {}", self.message),
            None => write!(f, "WARNING: {}", self.message),
        }
    }
}

/// A file that cannot be read as what it is (syntax error), or cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub at: Option<Src>,
    pub message: String,
}

impl ImportError {
    pub fn at(at: &Src, message: impl Into<String>) -> ImportError {
        ImportError {
            at: Some(at.clone()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(a) => write!(f, "{a}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ImportError {}

/// Collects warnings while reading and mapping.
#[derive(Debug, Default)]
pub struct Ctx {
    pub warnings: Vec<Warning>,
}

impl Ctx {
    pub fn warn(&mut self, at: &Src, message: impl Into<String>) {
        self.warnings.push(Warning {
            at: Some(at.clone()),
            message: message.into(),
        });
    }
    pub fn warn_global(&mut self, message: impl Into<String>) {
        self.warnings.push(Warning {
            at: None,
            message: message.into(),
        });
    }
}

/// What an input file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Keepalived,
    Nginx,
    Tracker,
    Storage,
    ModFastdfs,
    Client,
    Script,
    /// Not a file this import reads (systemd unit, iptables, build file...).
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Keepalived => "keepalived.conf",
            Kind::Nginx => "nginx.conf",
            Kind::Tracker => "tracker.conf",
            Kind::Storage => "storage.conf",
            Kind::ModFastdfs => "mod_fastdfs.conf",
            Kind::Client => "client.conf",
            Kind::Script => "check script",
            Kind::Other => "not imported",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `node:` of the output (default: keepalived's router_id).
    pub node: Option<String>,
}

/// The result: the ha.yaml text and the warnings it also lists in its header.
#[derive(Debug, Clone)]
pub struct Imported {
    pub yaml: String,
    pub warnings: Vec<Warning>,
    /// Each input with what it was read as.
    pub files: Vec<(String, Kind)>,
}

/// Reads a file as text (invalid UTF-8 is replaced, as the configs are mostly ASCII).
pub(crate) fn read_text(path: &Path) -> Result<String, ImportError> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| ImportError {
            at: None,
            message: format!("{}: cannot read: {e}", path.display()),
        })
}

/// At most `n` characters of `s`, with `…` when cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

/// Every regular file under `dir`, sorted (what `--dir` imports).
pub fn files_in_dir(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| ImportError {
            at: None,
            message: format!("{}: cannot list: {e}", d.display()),
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Decides what a file is, from its name and its contents.
pub fn classify(path: &Path, text: &str) -> Kind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".sh") || text.starts_with("#!") {
        return Kind::Script;
    }
    let code: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .collect();
    let first_word = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    if code.iter().any(|l| {
        matches!(
            first_word(l).as_str(),
            "vrrp_instance" | "vrrp_script" | "global_defs" | "virtual_server"
        )
    }) {
        return Kind::Keepalived;
    }
    let nginxish = code
        .iter()
        .filter(|l| l.ends_with(';') || l.ends_with('{') || *l == &"}")
        .count();
    let kv = code
        .iter()
        .filter(|l| {
            l.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
        })
        .count();
    if nginxish > kv {
        return Kind::Nginx;
    }
    if kv == 0 || code.iter().any(|l| l.starts_with("[Unit]")) {
        return Kind::Other;
    }
    let stem = name.split('.').next().unwrap_or("");
    let has = |k: &str| {
        code.iter()
            .any(|l| l.split_once('=').is_some_and(|(a, _)| a.trim() == k))
    };
    match stem {
        "tracker" => return Kind::Tracker,
        "storage" => return Kind::Storage,
        "client" | "fdfs_client" => return Kind::Client,
        "mod_fastdfs" => return Kind::ModFastdfs,
        _ => {}
    }
    if has("url_have_group_name") || has("storage_server_port") || has("response_mode") {
        Kind::ModFastdfs
    } else if has("group_name") || has("store_path0") {
        Kind::Storage
    } else if has("store_lookup") || has("reserved_storage_space") || has("store_server") {
        Kind::Tracker
    } else if has("tracker_server") {
        Kind::Client
    } else {
        Kind::Other
    }
}

/// Imports a set of files describing one node.
pub fn import_files(paths: &[PathBuf], opts: &Options) -> Result<Imported, ImportError> {
    let mut ctx = Ctx::default();
    let mut kinds = Vec::new();
    for p in paths {
        let text = read_text(p)?;
        kinds.push((p.clone(), classify(p, &text)));
    }
    let parsed = assemble::read_all(&kinds, &mut ctx)?;
    let root = assemble::build(&parsed, opts, &mut ctx);
    let files: Vec<(String, Kind)> = kinds
        .iter()
        .map(|(p, k)| {
            let k = if parsed.included.iter().any(|i| same_file(i, p)) {
                Kind::Other
            } else {
                *k
            };
            (p.display().to_string(), k)
        })
        .collect();
    let sources: Vec<String> = files
        .iter()
        .map(|(p, k)| format!("{p} ({})", k.name()))
        .collect();
    let yaml = emit::render(&root, &sources, &ctx.warnings);
    Ok(Imported {
        yaml,
        warnings: ctx.warnings,
        files,
    })
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
