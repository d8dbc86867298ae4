//! What `Store::open` finishes after a crash: sealed temp files moved into place (or removed),
//! the upload journal's records made true again, and the files found that must be logged again.

use super::layout::{name_promises, plain_file, JOURNAL_DIR};
use super::{Store, StorePath, StoreResult};
use crate::proto::fileid::RemoteName;
use crate::storage::durable::{fsync_dir, rename_noreplace, syncfs};
use crate::storage::journal::{self, Journal};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// What start-up did with one upload journal record.
pub(super) enum Replayed {
    /// The file is in place and whole (`moved`: it was missing or torn, and written again).
    Found(SealedFile),
    /// A file deleted after its record: removed, if a crash had brought it back.
    Removed,
    /// A record naming no file of this store (ignored).
    Refused,
}

/// A file that a crash caught between its reply and its directory fsync, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    /// `M00/XX/YY/<name>`
    pub filename: String,
    pub create_time: u32,
    /// True when only the sealed name had survived and the file was moved into place now.
    pub moved: bool,
    /// A peer's file replicated here (`create_at`), not one created here.
    pub replica: bool,
}

impl Store {
    /// Start-up: makes true, durably, what the upload journal's records that still count ask
    /// for (files written again where a crash lost or tore them, files deleted since their
    /// record removed), then starts the journal afresh (with fsync on) or removes it.
    pub(super) fn replay_journal(&self, p: &StorePath) -> StoreResult<Option<Arc<Journal>>> {
        let dir = p.data.join(JOURNAL_DIR);
        let plan = journal::read_pending(&dir)?;
        if !plan.is_empty() {
            let (mut kept, mut restored, mut removed) = (0, 0, 0);
            for (name, content) in plan {
                match self.replay_record(p, &name, content)? {
                    Replayed::Found(f) => {
                        *(if f.moved { &mut restored } else { &mut kept }) += 1;
                        self.found_at_start(f);
                    }
                    Replayed::Removed => removed += 1,
                    Replayed::Refused => {}
                }
            }
            // What was written and removed here must be on the disk before the records go.
            syncfs(&File::open(&p.data)?)?;
            tracing::info!(path = %p.root.display(), kept, restored, removed,
                "upload journal replayed: files a crash caught before they settled");
        }
        if self.fsync {
            let started = Journal::start(&dir, journal::SEGMENT_SIZE, self.settle_wanted.clone());
            return Ok(Some(started?));
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(None),
        }
    }

    /// Makes one journal record true: `content` under `name` (`XX/YY/<file name>`), or no file
    /// there at all (`None`: deleted after its record).
    pub(super) fn replay_record(
        &self,
        p: &StorePath,
        name: &str,
        content: Option<Vec<u8>>,
    ) -> StoreResult<Replayed> {
        let path = format!("M{:02X}/{name}", p.index);
        let target = RemoteName::parse_str(&path).ok().filter(|rn| {
            (rn.dir1 as u32) < self.subdir_count
                && (rn.dir2 as u32) < self.subdir_count
                && plain_file(rn)
        });
        let Some(target) = target else {
            tracing::warn!(record = %name, "upload journal: a record names no file of this store; ignored");
            return Ok(Replayed::Refused);
        };
        let dst = p
            .data
            .join(format!("{:02X}/{:02X}", target.dir1, target.dir2))
            .join(&target.name);
        let Some(content) = content else {
            for gone in [Self::meta_path(&dst), dst] {
                match std::fs::remove_file(gone) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            return Ok(Replayed::Removed);
        };
        if !name_promises(&target, &content) {
            tracing::warn!(record = %name, "upload journal: a record's content is not what its name says; ignored");
            return Ok(Replayed::Refused);
        }
        let found = SealedFile {
            filename: path,
            create_time: target.info.create_time,
            moved: false,
            replica: false,
        };
        match std::fs::read(&dst) {
            Ok(now) if name_promises(&target, &now) => return Ok(Replayed::Found(found)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        // Missing, short or torn: written again, in place of whatever is there.
        let mut tmp = self.temp_file(p.index, content.len() as u64)?;
        tmp.write_all(&content)?;
        self.commit_to(tmp, &dst, true)?;
        tracing::warn!(file = %found.filename, "upload journal: wrote again a file a crash had lost or torn");
        Ok(Replayed::Found(SealedFile {
            moved: true,
            ..found
        }))
    }

    /// Notes a file found at start-up that must be logged again (once).
    pub(super) fn found_at_start(&self, file: SealedFile) {
        let mut list = self
            .sealed_at_start
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|f| f.filename == file.filename) {
            list.push(file);
        }
    }

    /// Start-up: a sealed file is finished (moved into place if only its sealed name survived,
    /// after checking its size and CRC32 against its name); every other temp file is what an
    /// interrupted upload left, and is removed.
    pub(super) fn sweep_temp_dir(&self, p: &StorePath) -> anyhow::Result<()> {
        let mut stale = 0;
        for entry in std::fs::read_dir(&p.tmp)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let found = file_name
                .to_str()
                .and_then(|n| self.sealed_target(p, n))
                .map(|(target, replica)| self.finish_sealed(p, &entry.path(), target, replica));
            match found {
                Some(Ok(Some(sealed))) => self.found_at_start(sealed),
                Some(Err(e)) => {
                    anyhow::bail!(
                        "storage.store_paths[{}]: cannot finish {}: {e}",
                        p.index,
                        entry.path().display()
                    )
                }
                Some(Ok(None)) | None => {
                    if std::fs::remove_file(entry.path()).is_ok() {
                        stale += 1;
                    }
                }
            }
        }
        if stale > 0 {
            tracing::info!(path = %p.tmp.display(), stale, "removed temp files of interrupted uploads");
        }
        Ok(())
    }

    /// Finishes one sealed file: Some if it names a real file (already in place, or moved there
    /// now), None if it is garbage (to be removed).
    pub(super) fn finish_sealed(
        &self,
        p: &StorePath,
        sealed: &Path,
        target: RemoteName,
        replica: bool,
    ) -> io::Result<Option<SealedFile>> {
        let mut found = SealedFile {
            filename: target.to_path_string(),
            create_time: target.info.create_time,
            moved: false,
            replica,
        };
        let dir = self.ensure_dir(p, target.dir1, target.dir2)?;
        let dst = dir.join(&target.name);
        if dst.exists() {
            // The link into place had reached the disk; only the directory fsync was pending.
            // A peer's file was linked before its content was flushed: a power cut may have
            // left it short or empty. Its sender resends what we had not confirmed.
            if replica && !name_promises(&target, &std::fs::read(&dst)?) {
                tracing::warn!(file = %found.filename, "a peer's file lost its content in a crash; removed (its source sends it again)");
                std::fs::remove_file(&dst)?;
                return Ok(None);
            }
            std::fs::remove_file(sealed)?;
            return Ok(Some(found));
        }
        // Only the sealed name survived: the content must be exactly what its name promises.
        let content = std::fs::read(sealed)?;
        if !name_promises(&target, &content) {
            tracing::warn!(path = %sealed.display(), "sealed temp file does not match its name; removed");
            return Ok(None);
        }
        rename_noreplace(sealed, &dst)?;
        if self.fsync {
            fsync_dir(&dir)?;
        }
        tracing::warn!(file = %found.filename, "finished a file whose move into place a crash had lost");
        found.moved = true;
        Ok(Some(found))
    }

    /// Sealed files found by `open` (each once): the storage re-logs them, as their binlog
    /// records may not have been flushed before the crash.
    pub fn take_sealed_at_start(&self) -> Vec<SealedFile> {
        std::mem::take(
            &mut *self
                .sealed_at_start
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}
