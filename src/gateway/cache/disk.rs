//! On-disk format of cache entries, and the scan that rebuilds the index at start-up.
//!
//! ```text
//!  <cache dir>/<last 2 hex of key>/<32 hex key>
//!  +----------+--------------+-------------------------------+------------------+
//!  | FDHACHE1 | u32 BE len   | JSON header (key, status,     | body (to EOF)    |
//!  | 8 bytes  |              | headers, expires, created)    |                  |
//!  +----------+--------------+-------------------------------+------------------+
//! ```
//! Entries are written to `<cache dir>/tmp/` and renamed into place, so a crash leaves either the
//! old entry, the new one, or a temp file that the next start deletes; never a torn entry.
//! The file's mtime is the entry's last access, so LRU order and `inactive` survive restarts.

use super::policy::{key_from_hex, key_hex, Key};
use crate::http::file::Representation;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const MAGIC: &[u8; 8] = b"FDHACHE1";
/// Header JSON larger than this is a corrupt file, not a response head.
const MAX_HEADER: u32 = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryHeader {
    /// The cache key text (URI + args), for humans and purge tools.
    pub key: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Unix seconds after which the entry is stale.
    pub expires: u64,
    /// Unix seconds when it was fetched.
    pub created: u64,
}

/// A committed entry: its header plus where its body lies.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    pub key: Key,
    pub path: PathBuf,
    pub head: EntryHeader,
    pub body_offset: u64,
    pub body_len: u64,
    /// Validators and headers derived from `head` on first use, so hits do not re-parse them.
    pub serving: OnceLock<Serving>,
}

/// What a hit needs besides the body.
#[derive(Debug, Clone)]
pub struct Serving {
    pub rep: Representation,
    pub disposition: Option<http::HeaderValue>,
}

impl CachedEntry {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn entry_path(dir: &Path, key: &Key) -> PathBuf {
    let hex = key_hex(key);
    dir.join(&hex[30..]).join(hex)
}

pub fn tmp_dir(dir: &Path) -> PathBuf {
    dir.join("tmp")
}

/// Serialized prefix of an entry file (magic, length, JSON).
pub fn encode_header(h: &EntryHeader) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(h).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(12 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Reads the header of an entry file; the body is the rest of the file.
pub fn read_entry(path: &Path) -> std::io::Result<(CachedEntry, std::fs::Metadata)> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    let mut pre = [0u8; 12];
    f.read_exact(&mut pre)?;
    if &pre[..8] != MAGIC {
        return Err(bad("not a cache entry"));
    }
    let len = u32::from_be_bytes([pre[8], pre[9], pre[10], pre[11]]);
    if len > MAX_HEADER {
        return Err(bad("header too large"));
    }
    let mut json = vec![0u8; len as usize];
    f.read_exact(&mut json)?;
    let head: EntryHeader = serde_json::from_slice(&json).map_err(|e| bad(&e.to_string()))?;
    let body_offset = 12 + len as u64;
    let body_len = meta
        .len()
        .checked_sub(body_offset)
        .ok_or_else(|| bad("truncated"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let key = key_from_hex(name).ok_or_else(|| bad("file name is not a key"))?;
    if key != super::policy::cache_key(&head.key) {
        return Err(bad("key does not match file name"));
    }
    Ok((
        CachedEntry {
            key,
            path: path.to_path_buf(),
            head,
            body_offset,
            body_len,
            serving: OnceLock::new(),
        },
        meta,
    ))
}

fn is_hex_name(name: &std::ffi::OsStr, len: usize) -> bool {
    name.to_str()
        .is_some_and(|n| n.len() == len && n.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// Every valid entry under `dir` with its last access (mtime), oldest first. Unreadable entry
/// files and leftover temp files are deleted: the cache is a copy, losing an entry costs one
/// fetch. Only names the cache itself creates (`hh/<32 hex>`, `tmp/<key>.<rand>`) are ever
/// touched, so a cache path pointed at a directory holding other data deletes none of it.
pub fn scan(dir: &Path) -> std::io::Result<Vec<(CachedEntry, u64)>> {
    let tmp = tmp_dir(dir);
    if tmp.is_dir() {
        for f in std::fs::read_dir(&tmp)? {
            let f = f?;
            let ours = f.file_name().to_str().is_some_and(|n| {
                n.split_once('.').is_some_and(|(k, r)| {
                    is_hex_name(k.as_ref(), 32) && is_hex_name(r.as_ref(), 16)
                })
            });
            if ours {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    std::fs::create_dir_all(&tmp)?;
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir)? {
        let sub = sub?;
        if !is_hex_name(&sub.file_name(), 2) || !sub.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(sub.path())? {
            let f = f?;
            if !is_hex_name(&f.file_name(), 32) {
                continue;
            }
            let p = f.path();
            match read_entry(&p) {
                Ok((e, meta)) => {
                    let atime = meta.modified().map(crate::clock::unix_secs).unwrap_or(0);
                    out.push((e, atime));
                }
                Err(err) => {
                    tracing::warn!(path = %p.display(), error = %err, "dropping bad cache file");
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
    out.sort_by_key(|(_, t)| *t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn header_round_trip_and_scan() {
        let dir = tempfile::tempdir().unwrap();
        let head = EntryHeader {
            key: "/group1/M00/00/00/x?y=1".into(),
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            expires: 99,
            created: 1,
        };
        let key = super::super::policy::cache_key(&head.key);
        let path = entry_path(dir.path(), &key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&encode_header(&head).unwrap()).unwrap();
        f.write_all(b"hello").unwrap();
        drop(f);
        // A corrupt entry next to it is removed by the scan; files the cache never names are
        // left alone, as is a leftover temp file's neighbour that is not ours.
        let junk = path.with_file_name("00000000000000000000000000000000");
        std::fs::write(&junk, b"junk").unwrap();
        let foreign = path.with_file_name("notes.txt");
        std::fs::write(&foreign, b"keep").unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(
            dir.path().join("state/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            b"keep",
        )
        .unwrap();
        std::fs::create_dir_all(tmp_dir(dir.path())).unwrap();
        let stale_tmp = tmp_dir(dir.path()).join(format!("{}.{:016x}", "a".repeat(32), 7));
        std::fs::write(&stale_tmp, b"partial").unwrap();
        let found = scan(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        let e = &found[0].0;
        assert_eq!(e.head, head);
        assert_eq!(e.body_len, 5);
        assert_eq!(e.header("Content-Type"), Some("text/plain"));
        assert!(!junk.exists());
        assert!(!stale_tmp.exists());
        assert!(foreign.exists());
        assert!(dir
            .path()
            .join("state/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .exists());
    }
}
