//! The metadata sidecar (`<name>-m`): read, and SET_METADATA's overwrite or merge.

use super::{Store, StoreError, StoreResult};
use crate::proto::cmd::errno;
use crate::proto::storage::{decode_metadata, encode_metadata, MetaOp, MetaPair};
use std::io;
use std::path::Path;

impl Store {
    /// Reads the metadata list of a file: ENOENT if the file, or its metadata, does not exist.
    pub fn get_metadata(&self, data_path: &Path) -> StoreResult<Vec<u8>> {
        if !data_path.is_file() {
            return Err(StoreError::new(errno::ENOENT, "no such file"));
        }
        Ok(std::fs::read(Self::meta_path(data_path))?)
    }

    /// Applies SET_METADATA; returns what happened to the sidecar for the binlog.
    pub fn set_metadata(
        &self,
        data_path: &Path,
        op: MetaOp,
        new: Vec<MetaPair>,
        max_size: u64,
    ) -> StoreResult<MetaChange> {
        if !data_path.is_file() {
            return Err(StoreError::new(errno::ENOENT, "no such file"));
        }
        let meta = Self::meta_path(data_path);
        let old = match std::fs::read(&meta) {
            Ok(raw) => Some(raw),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let mut map = std::collections::BTreeMap::new();
        if op == MetaOp::Merge {
            if let Some(raw) = &old {
                // A sidecar we cannot parse is replaced rather than blocking every later change.
                for (k, v) in decode_metadata(raw).unwrap_or_default() {
                    map.insert(k, v);
                }
            }
        }
        for (k, v) in new {
            map.insert(k, v);
        }
        if map.is_empty() {
            if old.is_some() && op == MetaOp::Overwrite {
                std::fs::remove_file(&meta)?;
                return Ok(MetaChange::Removed);
            }
            return Ok(MetaChange::Unchanged);
        }
        let pairs: Vec<MetaPair> = map.into_iter().collect();
        let raw = encode_metadata(&pairs);
        if raw.len() as u64 > max_size {
            return Err(StoreError::new(
                errno::EINVAL,
                "metadata over max_metadata_size",
            ));
        }
        // Written to the store path's temp directory (swept at start-up), then renamed over the
        // old sidecar.
        let index = self
            .paths
            .iter()
            .find(|p| data_path.starts_with(&p.data))
            .map(|p| p.index)
            .ok_or_else(|| StoreError::new(errno::EINVAL, "path outside the store"))?;
        let mut tmp = self.temp_file(index, 0)?;
        tmp.write_all(&raw)?;
        self.commit_to(tmp, &meta, true)?;
        Ok(if old.is_some() {
            MetaChange::Updated
        } else {
            MetaChange::Created
        })
    }
}

/// What SET_METADATA did to the `-m` sidecar (binlog: C, U or D of `<name>-m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaChange {
    Created,
    Updated,
    Removed,
    Unchanged,
}
