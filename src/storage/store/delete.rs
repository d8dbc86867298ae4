//! Removing files: a data file with its metadata, and the sealed name or journal record that
//! would otherwise bring an unsettled file back after a crash.

use super::{Store, StoreResult};
use std::io;
use std::path::Path;

impl Store {
    /// Removes a data file and its metadata; returns whether metadata existed. ENOENT when the
    /// file does not exist.
    pub fn delete(&self, data_path: &Path) -> StoreResult<bool> {
        self.remove(data_path)?;
        let had_meta = match std::fs::remove_file(Self::meta_path(data_path)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        Ok(had_meta)
    }

    /// Removes one file (a data file or a `-m`). A file removed before it settled (or was
    /// flushed) loses its sealed name too, or gets a `Deleted` record in the upload journal,
    /// or a crash would bring it back at start-up.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        // Held until the file is unlinked: its segment is not retired before.
        let mut deleted_records = Vec::new();
        for p in &self.paths {
            let (Some(journal), Ok(name)) = (&p.journal, path.strip_prefix(&p.data)) else {
                continue;
            };
            if let Some(name) = name.to_str() {
                deleted_records.extend(journal.forget(path, name)?);
            }
        }
        std::fs::remove_file(path)?;
        drop(deleted_records);
        for pending in [&self.unsettled, &self.unflushed] {
            let sealed = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(path);
            if let Some(sealed) = sealed {
                let _ = std::fs::remove_file(sealed);
            }
        }
        Ok(())
    }
}
