//! Storage command codecs: client commands (upload, download, metadata, ...) and the
//! storage-to-storage `SYNC_*` commands, as pure functions on bytes.
//!
//! Commands that carry file content (uploads, append, modify, sync create/update/append/modify)
//! are split in two: a *head* (fixed fields plus file names) decoded here, and the content, which
//! the service streams straight to disk. For those, `FIXED_LEN` bytes are read first,
//! `names_len(fixed)` says how many name bytes follow, and `decode(head)` takes fixed + names.
//! Everything else is small and decoded whole with `decode(body)`.
//!
//! Layouts (PROTOCOL.md sections 4 and 7; all integers big-endian, strings NUL padded):
//! ```text
//! UPLOAD_FILE / UPLOAD_APPENDER_FILE  path_index 1 | file_size 8 | ext 6 | content
//! UPLOAD_SLAVE_FILE    master_len 8 | file_size 8 | prefix 16 | ext 6 | master | content
//! APPEND_FILE          name_len 8 | size 8 | name | content
//! MODIFY_FILE          name_len 8 | offset 8 | size 8 | name | content
//! TRUNCATE_FILE        name_len 8 | new_size 8 | name
//! SET_METADATA         name_len 8 | meta_len 8 | op 1 ('O'/'M') | group 16 | name | metadata
//! DOWNLOAD_FILE        offset 8 | count 8 | group 16 | name
//! DELETE / GET_METADATA / QUERY_FILE_INFO   group 16 | name
//! upload response      group 16 | remote filename
//! QUERY_FILE_INFO resp file_size 8 | create_time 8 | crc32 8 | source ip 16 (or 46)
//! SYNC_CREATE/UPDATE   name_len 8 | file_size 8 | ts 4 | group 16 | name | content
//! SYNC_DELETE          ts 4 | group 16 | name
//! SYNC_APPEND/MODIFY   name_len 8 | offset 8 | length 8 | ts 4 | group 16 | name | content
//! SYNC_TRUNCATE        name_len 8 | old_size 8 | new_size 8 | ts 4 | group 16 | name
//! SYNC_CREATE_LINK     dest_len 8 | src_len 8 | ts 4 | group 16 | dest | src
//! REPORT_SERVER_ID     storage_id 16
//! FETCH_ONE_PATH_BINLOG group 16 | path_index 1
//! ```
//!
//! One file per command family, all re-exported here: `upload`, `appender` (append, modify,
//! truncate), `metadata`, `file` (delete, download, query info), `sync` (storage -> storage).

use super::fields::Reader;
use super::ProtoError;

mod appender;
mod file;
mod metadata;
mod sync;
mod upload;

pub use appender::*;
pub use file::*;
pub use metadata::*;
pub use sync::*;
pub use upload::*;

#[cfg(test)]
mod tests;

/// Longest remote filename accepted in any request (FastDFS: 128 bytes).
pub const MAX_FILENAME_LEN: u64 = 128;

/// Header status flags of QUERY_FILE_INFO.
pub const QUERY_FLAG_NO_CRC32: u8 = 1;
pub const QUERY_FLAG_SILENT: u8 = 2;

fn text(raw: &[u8], field: &'static str) -> Result<String, ProtoError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| ProtoError::InvalidField {
            field,
            reason: "not UTF-8".into(),
        })
}

fn name_len(r: &mut Reader<'_>, field: &'static str) -> Result<u64, ProtoError> {
    let n = r.len64(field)?;
    if n == 0 || n > MAX_FILENAME_LEN {
        return Err(ProtoError::InvalidField {
            field,
            reason: format!("length {n} out of range 1..={MAX_FILENAME_LEN}"),
        });
    }
    Ok(n)
}

fn name(r: &mut Reader<'_>, len: u64, field: &'static str) -> Result<String, ProtoError> {
    text(r.bytes(len as usize)?, field)
}
