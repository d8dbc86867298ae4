//! Free space: how much each store path has, and which one takes a new file while keeping
//! `reserved_storage_space` free.

use super::{Store, StoreError, StorePath, StoreResult};
use crate::config::Reserved;
use crate::proto::cmd::errno;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

/// Space on one store path, as reported to trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    pub total_mb: u64,
    pub free_mb: u64,
}

impl Store {
    /// The reserved space may be overridden by the tracker's parameters.
    pub fn set_reserved(&self, r: Reserved) {
        *self.reserved.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }

    pub(super) fn reserved(&self) -> Reserved {
        *self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (total, free) bytes of the file system holding `path`.
    pub(super) fn space(path: &Path) -> io::Result<(u64, u64)> {
        let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
        let frsize = st.fragment_size() as u64;
        Ok((
            st.blocks() as u64 * frsize,
            st.blocks_available() as u64 * frsize,
        ))
    }

    /// Space per store path, in MB, as BEAT / REPORT_DISK_USAGE want it. An unwritable path
    /// (see `health`) reports 0 MB free, so the trackers choose it no more.
    pub fn disk_usage(&self) -> Vec<DiskUsage> {
        self.paths
            .iter()
            .map(|p| match Self::space(&p.root) {
                Ok((total, free)) => DiskUsage {
                    total_mb: total >> 20,
                    free_mb: if self.unwritable(p).is_some() {
                        0
                    } else {
                        free >> 20
                    },
                },
                Err(e) => {
                    tracing::warn!(path = %p.root.display(), error = %e, "statvfs failed");
                    DiskUsage::default()
                }
            })
            .collect()
    }

    pub(super) fn has_room(&self, p: &StorePath, size: u64) -> bool {
        if self.unwritable(p).is_some() {
            return false;
        }
        match Self::space(&p.root) {
            Ok((total, free)) => free.saturating_sub(size) >= self.reserved().bytes_of(total),
            Err(_) => false,
        }
    }

    /// Whether growing the data file `file` by `grow` bytes keeps `reserved_storage_space`
    /// free on its store path: ENOSPC if not. Appends, modifies past the end and growing
    /// truncates are held to the reserve like new files are.
    pub fn check_growth(&self, file: &Path, grow: u64) -> StoreResult<()> {
        if grow == 0 {
            return Ok(());
        }
        match self.paths.iter().find(|p| file.starts_with(&p.root)) {
            Some(p) if !self.has_room(p, grow) => Err(StoreError::new(
                errno::ENOSPC,
                format!("growing by {grow} bytes would go below reserved_storage_space"),
            )),
            _ => Ok(()),
        }
    }

    /// Picks the store path for a new file of `size` bytes: the tracker's choice when it is
    /// valid, writable and has room, else the writable path with the most free space that has
    /// room (255 = "storage chooses"); ENOSPC when none keeps `reserved_storage_space` free,
    /// EIO when no path is writable at all.
    pub fn choose_path(&self, requested: u8, size: u64) -> StoreResult<u8> {
        if requested != 0xFF {
            let p = self.paths.get(requested as usize).ok_or_else(|| {
                StoreError::new(
                    errno::EINVAL,
                    format!("store path index {requested} out of range"),
                )
            })?;
            if self.has_room(p, size) {
                self.last_path.store(requested, Ordering::Relaxed);
                return Ok(requested);
            }
        }
        let reserved = self.reserved();
        let chosen = self
            .paths
            .iter()
            .filter(|p| self.unwritable(p).is_none())
            .filter_map(|p| {
                let (total, free) = Self::space(&p.root).ok()?;
                let left = free.checked_sub(size)?;
                (left >= reserved.bytes_of(total)).then_some((free, p.index))
            })
            .max()
            .map(|(_, i)| i)
            .ok_or_else(|| self.no_path_error())?;
        self.last_path.store(chosen, Ordering::Relaxed);
        Ok(chosen)
    }

    fn no_path_error(&self) -> StoreError {
        let faults: Vec<String> = self
            .paths
            .iter()
            .filter_map(|p| Some(format!("M{:02X}: {}", p.index, self.unwritable(p)?)))
            .collect();
        if faults.len() == self.paths.len() {
            StoreError::new(
                errno::EIO,
                format!("no writable store path ({})", faults.join("; ")),
            )
        } else {
            StoreError::new(errno::ENOSPC, "no store path with enough free space")
        }
    }

    /// Index of the store path that received the last new file.
    pub fn current_write_path(&self) -> u8 {
        self.last_path.load(Ordering::Relaxed)
    }
}
