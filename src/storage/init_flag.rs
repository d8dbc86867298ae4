//! `<base_path>/data/.data_init_flag`, in C FastDFS's place and format (issue 17), so a C
//! storage started on a base path fdfs-ha used takes it back as an old member instead of
//! joining as a new one and being copied in full (LAYOUT.md in tests/vectors/c-cluster).
//!
//! Text, one `name=value` per line: `storage_join_time`, `sync_old_done`, `sync_src_server`,
//! `sync_until_timestamp`, `last_ip_addr`, `last_server_port`, the trunk keys and one
//! `store_path_markN` per store path (a copy of `<store path>/data/.fastdfs_vars`). Keys this
//! module does not use are kept as they were. Older fdfs-ha releases wrote only
//! `sync_old_done` under `data/sync/`; that file is read when C's is missing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

const FILE: &str = ".data_init_flag";

/// The keys C writes, in its order, with the value a storage starts with.
const C_KEYS: [(&str, &str); 9] = [
    ("storage_join_time", "0"),
    ("sync_old_done", "0"),
    ("sync_src_server", ""),
    ("sync_until_timestamp", "0"),
    ("last_ip_addr", ""),
    ("last_server_port", "0"),
    ("current_trunk_file_id", "0"),
    ("trunk_last_compress_time", "0"),
    ("trunk_binlog_compress_stage", "0"),
];

/// The file's lines, in order, unknown keys included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitFlag {
    entries: Vec<(String, String)>,
}

impl InitFlag {
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        InitFlag { entries }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Puts C's keys first, in C's order, with C's defaults for missing ones; other keys
    /// (store path marks, anything newer) follow as they were.
    pub fn complete(&mut self) {
        let mut out: Vec<(String, String)> = C_KEYS
            .iter()
            .map(|(k, v)| (k.to_string(), self.get(k).unwrap_or(v).to_string()))
            .collect();
        out.extend(
            self.entries
                .iter()
                .filter(|(k, _)| !C_KEYS.iter().any(|(c, _)| c == k))
                .cloned(),
        );
        self.entries = out;
    }

    pub fn sync_old_done(&self) -> bool {
        self.get("sync_old_done").is_some_and(|v| v == "1")
    }

    pub fn join_time(&self) -> Option<u64> {
        self.get("storage_join_time")
            .and_then(|v| v.parse().ok())
            .filter(|t| *t > 0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

pub fn path(base: &Path) -> PathBuf {
    base.join("data").join(FILE)
}

/// The flag as found: C's place first, then where older fdfs-ha wrote it. None if neither.
pub fn load(base: &Path) -> io::Result<Option<InitFlag>> {
    for p in [path(base), base.join("data").join("sync").join(FILE)] {
        match std::fs::read_to_string(&p) {
            Ok(text) => return Ok(Some(InitFlag::parse(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The mark C keeps in `<store path>/data/.fastdfs_vars`, if the store path has one.
pub fn store_path_mark(store_path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(store_path.join("data").join(".fastdfs_vars")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("store_path_mark="))
        .map(str::to_string)
        .filter(|m| !m.is_empty())
}

/// Writes the flag in C's place and format, durably (temp file, fsync, rename, fsync dir).
pub fn save(base: &Path, flag: &InitFlag) -> io::Result<()> {
    let dir = base.join("data");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(flag.render().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path(base))?;
    super::durable::fsync_dir(&dir)
}

/// Opens the flag at start: (sync_old_done, storage_join_time). A missing flag is created
/// (done when the binlog has history); store path marks C wrote are copied in, so a C storage
/// finds its `.fastdfs_vars` and the flag agree.
pub fn open(
    base: &Path,
    store_paths: &[PathBuf],
    has_history: bool,
    now: u64,
    port: u16,
) -> io::Result<(bool, u64)> {
    let mut flag = match load(base)? {
        Some(f) => f,
        None => {
            let mut f = InitFlag::default();
            f.set("sync_old_done", if has_history { "1" } else { "0" });
            f
        }
    };
    if flag.join_time().is_none() {
        flag.set("storage_join_time", now.to_string());
    }
    if flag.get("last_server_port").is_none_or(|p| p == "0") {
        flag.set("last_server_port", port.to_string());
    }
    flag.complete();
    for (i, p) in store_paths.iter().enumerate() {
        let key = format!("store_path_mark{i}");
        if flag.get(&key).is_none() {
            if let Some(mark) = store_path_mark(p) {
                flag.set(&key, mark);
            }
        }
    }
    save(base, &flag)?;
    let join_time = flag.join_time().unwrap_or(now);
    Ok((flag.sync_old_done(), join_time))
}

/// Records that the initial copy is done.
pub fn set_done(base: &Path) -> io::Result<()> {
    let mut flag = load(base)?.unwrap_or_default();
    flag.set("sync_old_done", "1");
    flag.complete();
    save(base, &flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S1's flag as C 6.16.1 wrote it (store-layout.tar.gz).
    const C_FLAG: &str = "storage_join_time=1796459533\nsync_old_done=1\nsync_src_server=\n\
        sync_until_timestamp=0\nlast_ip_addr=127.0.0.23\nlast_server_port=23000\n\
        current_trunk_file_id=0\ntrunk_last_compress_time=0\ntrunk_binlog_compress_stage=0\n\
        store_path_mark0=MTI3LjAuMC4yMwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAANhZAAAAAA3ME2s\n";

    #[test]
    fn a_c_flag_is_kept_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("data")).unwrap();
        std::fs::write(path(base), C_FLAG).unwrap();
        let (done, join) = open(base, &[base.join("store0")], false, 1, 23000).unwrap();
        assert!(done);
        assert_eq!(join, 1796459533);
        assert_eq!(std::fs::read_to_string(path(base)).unwrap(), C_FLAG);
        set_done(base).unwrap();
        assert_eq!(std::fs::read_to_string(path(base)).unwrap(), C_FLAG);
    }

    #[test]
    fn a_new_or_old_fdfs_ha_flag_becomes_a_c_flag() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let store = base.join("store0");
        std::fs::create_dir_all(store.join("data")).unwrap();
        std::fs::write(
            store.join("data/.fastdfs_vars"),
            "store_path_mark=MTI3LjAuMC4yMwAAAAAA\n",
        )
        .unwrap();
        // An older fdfs-ha flag under data/sync/.
        std::fs::create_dir_all(base.join("data/sync")).unwrap();
        std::fs::write(base.join("data/sync").join(FILE), "sync_old_done=0\n").unwrap();
        let (done, join) =
            open(base, std::slice::from_ref(&store), true, 1796459000, 23000).unwrap();
        assert!(!done, "the flag's word wins over the binlog");
        assert_eq!(join, 1796459000);
        set_done(base).unwrap();
        let text = std::fs::read_to_string(path(base)).unwrap();
        let flag = InitFlag::parse(&text);
        assert!(flag.sync_old_done());
        for (k, _) in C_KEYS {
            assert!(flag.get(k).is_some(), "{k} missing in\n{text}");
        }
        assert_eq!(flag.get("last_server_port"), Some("23000"));
        assert_eq!(flag.get("store_path_mark0"), Some("MTI3LjAuMC4yMwAAAAAA"));
        // A restart keeps the join time.
        assert_eq!(
            open(base, &[store], true, 5, 23000).unwrap(),
            (true, 1796459000)
        );
        // Nothing at all: done when the binlog has history.
        let fresh = tempfile::tempdir().unwrap();
        assert!(!open(fresh.path(), &[], false, 7, 1).unwrap().0);
        assert!(std::fs::read_to_string(path(fresh.path()))
            .unwrap()
            .contains("storage_join_time=7\n"));
    }
}
