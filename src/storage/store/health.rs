//! Whether a store path takes new files (issue 18.8). A path that is read-only, gone (its
//! `data/.tmp` directory missing, its file system unreadable) or failing writes (EIO, EROFS,
//! EACCES on a new file) is unwritable: uploads go to another store path of the node, and the
//! trackers are told it has 0 MB free (REPORT_DISK_USAGE, as C FastDFS reports a path it
//! cannot use), so they stop choosing it, and the storage altogether once no path is left.
//!
//! The checks are cheap enough for every path choice: `statvfs` (already made for the free
//! space) gives the read-only flag, one `stat` the directory. A write failure has no such
//! check: it marks the path until a probe write succeeds, tried at most every [`REPROBE`].
//! Each change of a path's state is logged once (warn when it fails, info when it recovers).

use super::{Store, StoreError, StorePath};
use crate::proto::cmd::errno;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a path marked by a failed write is probed again.
pub const REPROBE: Duration = Duration::from_secs(10);

/// Write errors that say the path itself is broken (not the request).
const PATH_ERRORS: [u8; 4] = [
    errno::EIO,
    30, /* EROFS */
    errno::EACCES,
    1, /* EPERM */
];

#[derive(Debug, Default)]
pub(super) struct PathHealth {
    /// The reason last reported (to log only changes).
    reported: Mutex<Option<String>>,
    /// A failed write: why, and when to probe again.
    write_fault: Mutex<Option<(String, Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Why store path `p` takes no new files now, or `None` when it does.
    pub(super) fn unwritable(&self, p: &StorePath) -> Option<String> {
        let why = Self::check(p);
        let mut reported = lock(&p.health.reported);
        if *reported != why {
            match &why {
                Some(w) => {
                    tracing::warn!(store_path = %p.root.display(), index = p.index, reason = %w,
                    "store path unwritable: new files go to other paths, trackers are told 0 MB free")
                }
                None => tracing::info!(store_path = %p.root.display(), index = p.index,
                    "store path writable again"),
            }
            reported.clone_from(&why);
        }
        why
    }

    fn check(p: &StorePath) -> Option<String> {
        match nix::sys::statvfs::statvfs(&p.root) {
            Err(e) => return Some(format!("file system unreadable: {e}")),
            Ok(st) if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) => {
                return Some("read-only file system".into())
            }
            Ok(_) => {}
        }
        if !p.tmp.is_dir() {
            return Some(format!("{} is missing", p.tmp.display()));
        }
        let mut fault = lock(&p.health.write_fault);
        let (why, next) = fault.as_ref()?;
        if Instant::now() < *next {
            return Some(why.clone());
        }
        match probe(p) {
            Ok(()) => {
                *fault = None;
                None
            }
            Err(e) => {
                let why = format!("writes fail: {e}");
                *fault = Some((why.clone(), Instant::now() + REPROBE));
                Some(why)
            }
        }
    }

    /// Notes a failed write of a new file on store path `index`: an error that says the path is
    /// broken marks it unwritable until a probe write succeeds. Returns the error.
    pub(super) fn note_write_error(&self, index: u8, e: StoreError) -> StoreError {
        if PATH_ERRORS.contains(&e.status) {
            if let Some(p) = self.paths.get(index as usize) {
                *lock(&p.health.write_fault) =
                    Some((format!("writes fail: {}", e.msg), Instant::now() + REPROBE));
                self.unwritable(p);
            }
        }
        e
    }

    /// Per store path, why it takes no new files (`None`: it does), for status and metrics.
    pub fn path_faults(&self) -> Vec<Option<String>> {
        self.paths.iter().map(|p| self.unwritable(p)).collect()
    }
}

/// Why store path `root` cannot be prepared at start (its `tmp` directory made): a read-only
/// file system or a path error (EIO, EACCES, EPERM) creating it. Other errors are returned.
pub(super) fn failed_at_start(
    root: &std::path::Path,
    tmp: &std::path::Path,
) -> std::io::Result<Option<String>> {
    if let Ok(st) = nix::sys::statvfs::statvfs(root) {
        if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return Ok(Some("read-only file system".into()));
        }
    }
    match std::fs::create_dir_all(tmp) {
        Ok(()) => Ok(None),
        Err(e)
            if e.raw_os_error()
                .and_then(|n| u8::try_from(n).ok())
                .is_some_and(|n| PATH_ERRORS.contains(&n)) =>
        {
            Ok(Some(format!("cannot create {}: {e}", tmp.display())))
        }
        Err(e) => Err(e),
    }
}

/// Writes and removes a small file in the path's temp directory.
fn probe(p: &StorePath) -> std::io::Result<()> {
    use std::io::Write;
    let path = p.tmp.join(format!(".probe-{}", std::process::id()));
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(b"probe"));
    let _ = std::fs::remove_file(&path);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn store(paths: &[&std::path::Path]) -> Store {
        let list: Vec<String> = paths
            .iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect();
        let yaml = format!(
            "group: group1\ntrackers: []\nstore_paths: [{}]\nreserved_storage_space: 0%\n",
            list.join(", ")
        );
        Store::open(&serde_saphyr::from_str(&yaml).unwrap()).unwrap()
    }

    #[test]
    fn a_path_whose_data_dir_is_gone_takes_no_new_files_and_reports_no_space() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let s = store(&[a.path(), b.path()]);
        assert_eq!(s.choose_path(1, 10).unwrap(), 1);
        let data: PathBuf = b.path().join("data");
        std::fs::remove_dir_all(&data).unwrap();
        // The tracker's choice (M01) is overruled, any choice lands on M00.
        assert_eq!(s.choose_path(1, 10).unwrap(), 0);
        assert_eq!(s.choose_path(0xFF, 10).unwrap(), 0);
        let usage = s.disk_usage();
        assert!(usage[0].free_mb > 0 && usage[1].total_mb > 0, "{usage:?}");
        assert_eq!(usage[1].free_mb, 0, "the trackers must stop choosing M01");
        let faults = s.path_faults();
        assert_eq!(faults[0], None);
        assert!(
            faults[1].as_deref().unwrap().contains("missing"),
            "{faults:?}"
        );
        // Back once the directory is.
        std::fs::create_dir_all(data.join(".tmp")).unwrap();
        assert_eq!(s.path_faults(), vec![None, None]);
        assert_eq!(s.choose_path(1, 10).unwrap(), 1);
    }

    #[test]
    fn a_failed_write_marks_the_path_until_a_probe_write_succeeds() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let s = store(&[a.path(), b.path()]);
        let e = s.note_write_error(0, StoreError::new(errno::EIO, "Input/output error"));
        assert_eq!(e.status, errno::EIO);
        assert_eq!(s.choose_path(0, 10).unwrap(), 1);
        assert!(s.path_faults()[0]
            .as_deref()
            .unwrap()
            .contains("Input/output"));
        // A request's own error (a name taken, a bad argument) says nothing about the path.
        s.note_write_error(1, StoreError::new(errno::EEXIST, "exists"));
        s.note_write_error(1, StoreError::new(errno::EINVAL, "bad"));
        assert_eq!(s.path_faults()[1], None);
        // Both paths out: EIO naming each, not ENOSPC.
        s.note_write_error(1, StoreError::new(30, "Read-only file system"));
        let err = s.choose_path(0xFF, 10).unwrap_err();
        assert_eq!(err.status, errno::EIO, "{err}");
        assert!(err.msg.contains("M00") && err.msg.contains("M01"), "{err}");
        // Due for a probe: the probe write succeeds here, so the path is back.
        *lock(&s.paths[0].health.write_fault) = Some(("writes fail: x".into(), Instant::now()));
        assert_eq!(s.path_faults()[0], None);
        assert_eq!(s.choose_path(0, 10).unwrap(), 0);
    }

    #[test]
    fn temp_file_creation_failing_on_a_gone_directory_is_an_error_not_a_panic() {
        let a = tempfile::tempdir().unwrap();
        let s = store(&[a.path()]);
        std::fs::remove_dir_all(a.path().join("data")).unwrap();
        assert!(s.temp_file(0, 10).is_err());
        assert_eq!(s.choose_path(0xFF, 10).unwrap_err().status, errno::EIO);
    }
}
