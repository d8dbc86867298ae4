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

use super::fields::{put_fixed, put_u32, put_u64, Reader};
use super::{
    ProtoError, FILE_EXT_NAME_LEN, FILE_PREFIX_LEN, GROUP_NAME_LEN, IPV4_ADDRESS_SIZE,
    IP_ADDRESS_SIZE, METADATA_FIELD_SEP, METADATA_RECORD_SEP, STORAGE_ID_LEN,
};

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

// ------------------------------------------------------------------------------------------------
// Client commands

/// UPLOAD_FILE (11) and UPLOAD_APPENDER_FILE (23): the 15-byte prefix in front of the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReq {
    /// Store path chosen by the tracker; 0xFF lets the storage choose.
    pub store_path_index: u8,
    pub file_size: u64,
    pub ext: String,
}

impl UploadReq {
    pub const FIXED_LEN: usize = 1 + 8 + FILE_EXT_NAME_LEN;

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let store_path_index = r.u8()?;
        let file_size = r.len64("file_size")?;
        let ext = r.fixed_string(FILE_EXT_NAME_LEN, "ext")?;
        r.expect_end()?;
        Ok(UploadReq {
            store_path_index,
            file_size,
            ext,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN);
        out.push(self.store_path_index);
        put_u64(&mut out, self.file_size);
        put_fixed(&mut out, self.ext.as_bytes(), FILE_EXT_NAME_LEN);
        out
    }
}

/// UPLOAD_SLAVE_FILE (21) head: fixed fields plus the master filename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSlaveReq {
    pub file_size: u64,
    pub prefix: String,
    pub ext: String,
    /// Master remote filename (`M00/..`), no group.
    pub master_filename: String,
}

impl UploadSlaveReq {
    pub const FIXED_LEN: usize = 8 + 8 + FILE_PREFIX_LEN + FILE_EXT_NAME_LEN;

    /// How many name bytes follow the fixed part.
    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "master_filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "master_filename_len")?;
        let file_size = r.len64("file_size")?;
        let prefix = r.fixed_string(FILE_PREFIX_LEN, "prefix")?;
        let ext = r.fixed_string(FILE_EXT_NAME_LEN, "ext")?;
        let master_filename = name(&mut r, len, "master_filename")?;
        r.expect_end()?;
        Ok(UploadSlaveReq {
            file_size,
            prefix,
            ext,
            master_filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.master_filename.len());
        put_u64(&mut out, self.master_filename.len() as u64);
        put_u64(&mut out, self.file_size);
        put_fixed(&mut out, self.prefix.as_bytes(), FILE_PREFIX_LEN);
        put_fixed(&mut out, self.ext.as_bytes(), FILE_EXT_NAME_LEN);
        out.extend_from_slice(self.master_filename.as_bytes());
        out
    }
}

/// Response to the upload commands: group and remote filename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadResp {
    pub group: String,
    pub filename: String,
}

impl UploadResp {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = text(r.rest(), "filename")?;
        if filename.is_empty() {
            return Err(ProtoError::Truncated {
                need: GROUP_NAME_LEN + 1,
                have: body.len(),
            });
        }
        Ok(UploadResp { group, filename })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + self.filename.len());
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }

    /// `group1/M00/..`
    pub fn file_id(&self) -> String {
        format!("{}/{}", self.group, self.filename)
    }
}

/// APPEND_FILE (24) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReq {
    pub filename: String,
    pub size: u64,
}

impl AppendReq {
    pub const FIXED_LEN: usize = 16;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "appender_filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "appender_filename_len")?;
        let size = r.len64("append_size")?;
        let filename = name(&mut r, len, "appender_filename")?;
        r.expect_end()?;
        Ok(AppendReq { filename, size })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.size);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// MODIFY_FILE (34) head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifyReq {
    pub filename: String,
    pub offset: u64,
    pub size: u64,
}

impl ModifyReq {
    pub const FIXED_LEN: usize = 24;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "appender_filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "appender_filename_len")?;
        let offset = r.len64("file_offset")?;
        let size = r.len64("modify_size")?;
        let filename = name(&mut r, len, "appender_filename")?;
        r.expect_end()?;
        Ok(ModifyReq {
            filename,
            offset,
            size,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.size);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// TRUNCATE_FILE (36).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateReq {
    pub filename: String,
    pub new_size: u64,
}

impl TruncateReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let len = name_len(&mut r, "appender_filename_len")?;
        let new_size = r.len64("truncated_file_size")?;
        let filename = name(&mut r, len, "appender_filename")?;
        r.expect_end()?;
        Ok(TruncateReq { filename, new_size })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.new_size);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SET_METADATA op flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaOp {
    /// `O`: replace the whole list.
    Overwrite,
    /// `M`: add or replace the given names, keep the others.
    Merge,
}

impl MetaOp {
    pub fn byte(self) -> u8 {
        match self {
            MetaOp::Overwrite => b'O',
            MetaOp::Merge => b'M',
        }
    }
}

/// One metadata pair (names and values are bytes on the wire; FastDFS does not require UTF-8).
pub type MetaPair = (Vec<u8>, Vec<u8>);

/// SET_METADATA (13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMetadataReq {
    pub op: MetaOp,
    pub group: String,
    pub filename: String,
    /// Raw metadata list (`k\x02v\x01k\x02v`); parse with [`decode_metadata`].
    pub metadata: Vec<u8>,
}

impl SetMetadataReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let len = name_len(&mut r, "filename_len")?;
        let meta_len = r.len64("meta_size")?;
        let op = match r.u8()? {
            b'O' => MetaOp::Overwrite,
            b'M' => MetaOp::Merge,
            other => {
                return Err(ProtoError::InvalidField {
                    field: "op_flag",
                    reason: format!("expected 'O' or 'M', got {other:#04x}"),
                })
            }
        };
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        if meta_len != r.remaining() as u64 {
            return Err(ProtoError::BadLength {
                have: body.len(),
                expected: format!("{}", body.len() - r.remaining() + meta_len as usize),
            });
        }
        let metadata = r.rest().to_vec();
        Ok(SetMetadataReq {
            op,
            group,
            filename,
            metadata,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33 + self.filename.len() + self.metadata.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.metadata.len() as u64);
        out.push(self.op.byte());
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out.extend_from_slice(&self.metadata);
        out
    }
}

/// Why a metadata list is refused (FastDFS limits: name 64, value 256 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata record {0} has no name/value separator")]
    NoSeparator(usize),
    #[error("metadata name of {0} bytes is empty or over {max}", max = super::METADATA_NAME_MAX)]
    NameLength(usize),
    #[error("metadata value of {0} bytes is over {max}", max = super::METADATA_VALUE_MAX)]
    ValueLength(usize),
}

/// Parses `k\x02v\x01k\x02v`. An empty list is valid (no pairs).
pub fn decode_metadata(raw: &[u8]) -> Result<Vec<MetaPair>, MetadataError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(|&b| b == METADATA_RECORD_SEP)
        .enumerate()
        .map(|(i, rec)| {
            let sep = rec
                .iter()
                .position(|&b| b == METADATA_FIELD_SEP)
                .ok_or(MetadataError::NoSeparator(i))?;
            let (k, v) = (&rec[..sep], &rec[sep + 1..]);
            if k.is_empty() || k.len() > super::METADATA_NAME_MAX {
                return Err(MetadataError::NameLength(k.len()));
            }
            if v.len() > super::METADATA_VALUE_MAX {
                return Err(MetadataError::ValueLength(v.len()));
            }
            Ok((k.to_vec(), v.to_vec()))
        })
        .collect()
}

/// Joins pairs as `k\x02v\x01k\x02v` (no trailing separator).
pub fn encode_metadata(pairs: &[MetaPair]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(METADATA_RECORD_SEP);
        }
        out.extend_from_slice(k);
        out.push(METADATA_FIELD_SEP);
        out.extend_from_slice(v);
    }
    out
}

/// DELETE_FILE (12), GET_METADATA (15), QUERY_FILE_INFO (22): group + filename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReq {
    pub group: String,
    pub filename: String,
}

impl FileReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let rest = r.rest();
        if rest.is_empty() || rest.len() as u64 > MAX_FILENAME_LEN {
            return Err(ProtoError::InvalidField {
                field: "filename",
                reason: format!("length {} out of range", rest.len()),
            });
        }
        Ok(FileReq {
            group,
            filename: text(rest, "filename")?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + self.filename.len());
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// DOWNLOAD_FILE (14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReq {
    pub offset: u64,
    /// 0 = to the end of the file.
    pub count: u64,
    pub group: String,
    pub filename: String,
}

impl DownloadReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let offset = r.len64("file_offset")?;
        let count = r.len64("download_bytes")?;
        let f = FileReq::decode(r.rest())?;
        Ok(DownloadReq {
            offset,
            count,
            group: f.group,
            filename: f.filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.filename.len());
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.count);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// QUERY_FILE_INFO (22) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfoResp {
    pub file_size: u64,
    pub create_timestamp: u64,
    pub crc32: u32,
    pub source_ip: String,
}

impl FileInfoResp {
    /// `ip_size` is 16 (IPv4 responses) or 46.
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + ip_size);
        put_u64(&mut out, self.file_size);
        put_u64(&mut out, self.create_timestamp);
        // C FastDFS stores the crc32 in an int and sign-extends it into the 8-byte field.
        put_u64(&mut out, self.crc32 as i32 as i64 as u64);
        put_fixed(&mut out, self.source_ip.as_bytes(), ip_size);
        out
    }

    /// Accepts both address sizes (40 or 70 bytes).
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let ip_size = match body.len() {
            n if n == 24 + IPV4_ADDRESS_SIZE => IPV4_ADDRESS_SIZE,
            n if n == 24 + IP_ADDRESS_SIZE => IP_ADDRESS_SIZE,
            n => {
                return Err(ProtoError::BadLength {
                    have: n,
                    expected: "40 or 70".into(),
                })
            }
        };
        let mut r = Reader::new(body);
        let file_size = r.len64("file_size")?;
        let create_timestamp = r.len64("create_timestamp")?;
        // Sign-extended by C servers, zero-extended by older fdfs-ha: the low 32 bits either way.
        let crc = r.i64()?;
        let source_ip = r.fixed_string(ip_size, "source_ip")?;
        Ok(FileInfoResp {
            file_size,
            create_timestamp,
            crc32: crc as u32,
            source_ip,
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Storage -> storage sync

/// REPORT_SERVER_ID (9): the sending storage's id, first message of a sync connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportServerIdReq {
    pub storage_id: String,
}

impl ReportServerIdReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let storage_id = r.fixed_string(STORAGE_ID_LEN, "storage_id")?;
        r.expect_end()?;
        Ok(ReportServerIdReq { storage_id })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STORAGE_ID_LEN);
        put_fixed(&mut out, self.storage_id.as_bytes(), STORAGE_ID_LEN);
        out
    }
}

/// SYNC_CREATE_FILE (16) and SYNC_UPDATE_FILE (18) head; the file content follows
/// (absent when the header status is EEXIST: the peer only announces the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFileReq {
    pub filename: String,
    pub file_size: u64,
    /// Timestamp of the binlog record being replayed.
    pub timestamp: u32,
    pub group: String,
}

impl SyncFileReq {
    pub const FIXED_LEN: usize = 8 + 8 + 4 + GROUP_NAME_LEN;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "filename_len")?;
        let file_size = r.len64("file_size")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        r.expect_end()?;
        Ok(SyncFileReq {
            filename,
            file_size,
            timestamp,
            group,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.file_size);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_DELETE_FILE (17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDeleteReq {
    pub timestamp: u32,
    pub group: String,
    pub filename: String,
}

impl SyncDeleteReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let timestamp = r.u32()?;
        let f = FileReq::decode(r.rest())?;
        Ok(SyncDeleteReq {
            timestamp,
            group: f.group,
            filename: f.filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + GROUP_NAME_LEN + self.filename.len());
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_APPEND_FILE (25) and SYNC_MODIFY_FILE (35) head; `length` content bytes follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRangeReq {
    pub filename: String,
    pub offset: u64,
    pub length: u64,
    pub timestamp: u32,
    pub group: String,
}

impl SyncRangeReq {
    pub const FIXED_LEN: usize = 8 + 8 + 8 + 4 + GROUP_NAME_LEN;

    pub fn names_len(fixed: &[u8]) -> Result<u64, ProtoError> {
        name_len(&mut Reader::new(fixed), "filename_len")
    }

    pub fn decode(head: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(head);
        let len = name_len(&mut r, "filename_len")?;
        let offset = r.len64("start_offset")?;
        let length = r.len64("length")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        r.expect_end()?;
        Ok(SyncRangeReq {
            filename,
            offset,
            length,
            timestamp,
            group,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::FIXED_LEN + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.offset);
        put_u64(&mut out, self.length);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_TRUNCATE_FILE (37).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTruncateReq {
    pub filename: String,
    pub old_size: u64,
    pub new_size: u64,
    pub timestamp: u32,
    pub group: String,
}

impl SyncTruncateReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let len = name_len(&mut r, "filename_len")?;
        let old_size = r.len64("old_size")?;
        let new_size = r.len64("new_size")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let filename = name(&mut r, len, "filename")?;
        r.expect_end()?;
        Ok(SyncTruncateReq {
            filename,
            old_size,
            new_size,
            timestamp,
            group,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(44 + self.filename.len());
        put_u64(&mut out, self.filename.len() as u64);
        put_u64(&mut out, self.old_size);
        put_u64(&mut out, self.new_size);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }
}

/// SYNC_CREATE_LINK (19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCreateLinkReq {
    pub timestamp: u32,
    pub group: String,
    pub dest_filename: String,
    pub src_filename: String,
}

impl SyncCreateLinkReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let dest_len = name_len(&mut r, "dest_filename_len")?;
        let src_len = name_len(&mut r, "src_filename_len")?;
        let timestamp = r.u32()?;
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let dest_filename = name(&mut r, dest_len, "dest_filename")?;
        let src_filename = name(&mut r, src_len, "src_filename")?;
        r.expect_end()?;
        Ok(SyncCreateLinkReq {
            timestamp,
            group,
            dest_filename,
            src_filename,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u64(&mut out, self.dest_filename.len() as u64);
        put_u64(&mut out, self.src_filename.len() as u64);
        put_u32(&mut out, self.timestamp);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.extend_from_slice(self.dest_filename.as_bytes());
        out.extend_from_slice(self.src_filename.as_bytes());
        out
    }
}

/// FETCH_ONE_PATH_BINLOG (26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOnePathBinlogReq {
    pub group: String,
    pub store_path_index: u8,
}

impl FetchOnePathBinlogReq {
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = r.fixed_string(GROUP_NAME_LEN, "group")?;
        let store_path_index = r.u8()?;
        r.expect_end()?;
        Ok(FetchOnePathBinlogReq {
            group,
            store_path_index,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GROUP_NAME_LEN + 1);
        put_fixed(&mut out, self.group.as_bytes(), GROUP_NAME_LEN);
        out.push(self.store_path_index);
        out
    }
}

#[cfg(test)]
mod tests {
    //! Byte-exact checks against `tests/vectors/fastdfs-vectors.txt` (block numbers in test names).
    use super::*;
    use crate::proto::{cmd, Header, HEADER_LEN};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Splits a captured message into header and body, checking the header's length.
    fn msg(s: &str) -> (Header, Vec<u8>) {
        let raw = hex(s);
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&raw[..HEADER_LEN]);
        let header = Header::decode(&h).unwrap();
        let body = raw[HEADER_LEN..].to_vec();
        assert_eq!(header.pkg_len as usize, body.len());
        (header, body)
    }

    fn frame(cmd: u8, status: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Header::new(cmd, status, body.len() as u64)
            .encode()
            .to_vec();
        out.extend_from_slice(body);
        out
    }

    const NAME_788: &str = "M00/01/FE/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt";
    const NAME_966: &str = "M00/01/FE/ooYBAGsBrViEDNbfAAAAADYQpoY966.txt";
    const NAME_262: &str = "M00/01/FE/oYYBAGsBrcaAHu-lAAAABTYQpoY262.txt";
    const EMPTY_OK: &str = "00000000000000006400";

    fn assert_empty_ok(s: &str) {
        let (h, body) = msg(s);
        assert_eq!((h.cmd, h.status, body.len()), (cmd::RESP, 0, 0));
        assert_eq!(frame(cmd::RESP, 0, &[]), hex(EMPTY_OK));
    }

    #[test]
    fn block10_34_upload_file() {
        let req = "00000000000000140b0000000000000000000574787400000068656c6c6f";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::UPLOAD_FILE);
        let u = UploadReq::decode(&body[..UploadReq::FIXED_LEN]).unwrap();
        assert_eq!(
            u,
            UploadReq {
                store_path_index: 0,
                file_size: 5,
                ext: "txt".into()
            }
        );
        assert_eq!(&body[UploadReq::FIXED_LEN..], b"hello");
        let mut again = u.encode();
        again.extend_from_slice(b"hello");
        assert_eq!(frame(cmd::UPLOAD_FILE, 0, &again), hex(req));

        let resp = "000000000000003c640067726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e747874";
        let (h, body) = msg(resp);
        assert_eq!((h.cmd, h.status), (cmd::RESP, 0));
        let r = UploadResp::decode(&body).unwrap();
        assert_eq!(
            (r.group.as_str(), r.filename.as_str()),
            ("group1", NAME_788)
        );
        assert_eq!(r.file_id(), format!("group1/{NAME_788}"));
        assert_eq!(frame(cmd::RESP, 0, &r.encode()), hex(resp));

        // Block [34] is the same request; its response names file 262.
        let resp34 = "000000000000003c640067726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e747874";
        let r = UploadResp::decode(&msg(resp34).1).unwrap();
        assert_eq!(r.filename, NAME_262);
        assert_eq!(frame(cmd::RESP, 0, &r.encode()), hex(resp34));
    }

    #[test]
    fn block22_upload_appender_file() {
        let req = "0000000000000014170000000000000000000574787400000068656c6c6f";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::UPLOAD_APPENDER_FILE);
        let u = UploadReq::decode(&body[..UploadReq::FIXED_LEN]).unwrap();
        assert_eq!((u.file_size, u.ext.as_str()), (5, "txt"));
        let mut again = u.encode();
        again.extend_from_slice(b"hello");
        assert_eq!(frame(cmd::UPLOAD_APPENDER_FILE, 0, &again), hex(req));
        let resp = "000000000000003c640067726f757031000000000000000000004d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e747874";
        let r = UploadResp::decode(&msg(resp).1).unwrap();
        assert_eq!(r.filename, NAME_966);
        assert_eq!(frame(cmd::RESP, 0, &r.encode()), hex(resp));
    }

    #[test]
    fn slave_upload_layout() {
        // No capture exists; the layout is PROTOCOL.md section 4 (38 fixed bytes + master name).
        let req = UploadSlaveReq {
            file_size: 3,
            prefix: "_150x150".into(),
            ext: "jpg".into(),
            master_filename: NAME_788.into(),
        };
        let head = req.encode();
        assert_eq!(head.len(), 38 + 44);
        assert_eq!(&head[0..8], &44u64.to_be_bytes());
        assert_eq!(&head[8..16], &3u64.to_be_bytes());
        assert_eq!(&head[16..32], b"_150x150\0\0\0\0\0\0\0\0");
        assert_eq!(&head[32..38], b"jpg\0\0\0");
        assert_eq!(&head[38..], NAME_788.as_bytes());
        assert_eq!(
            UploadSlaveReq::names_len(&head[..UploadSlaveReq::FIXED_LEN]).unwrap(),
            44
        );
        assert_eq!(UploadSlaveReq::decode(&head).unwrap(), req);
        assert!(UploadSlaveReq::decode(&head[..60]).is_err());
    }

    #[test]
    fn block12_36_set_metadata() {
        let req = "00000000000000630d00000000000000002c00000000000000164f67726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e7478747769647468023130323401617574686f720266646673";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::SET_METADATA);
        let m = SetMetadataReq::decode(&body).unwrap();
        assert_eq!(m.op, MetaOp::Overwrite);
        assert_eq!(
            (m.group.as_str(), m.filename.as_str()),
            ("group1", NAME_788)
        );
        assert_eq!(
            decode_metadata(&m.metadata).unwrap(),
            vec![
                (b"width".to_vec(), b"1024".to_vec()),
                (b"author".to_vec(), b"fdfs".to_vec())
            ]
        );
        assert_eq!(frame(cmd::SET_METADATA, 0, &m.encode()), hex(req));
        assert_empty_ok("00000000000000006400");

        let req36 = "00000000000000630d00000000000000002c00000000000000164f67726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e7478747769647468023130323401617574686f720266646673";
        let m = SetMetadataReq::decode(&msg(req36).1).unwrap();
        assert_eq!(m.filename, NAME_262);
        assert_eq!(frame(cmd::SET_METADATA, 0, &m.encode()), hex(req36));
    }

    #[test]
    fn block14_get_metadata() {
        let req = "000000000000003c0f0067726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e747874";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::GET_METADATA);
        let f = FileReq::decode(&body).unwrap();
        assert_eq!(
            (f.group.as_str(), f.filename.as_str()),
            ("group1", NAME_788)
        );
        assert_eq!(frame(cmd::GET_METADATA, 0, &f.encode()), hex(req));
        let resp = "00000000000000166400617574686f7202666466730177696474680231303234";
        let (_, body) = msg(resp);
        let pairs = decode_metadata(&body).unwrap();
        assert_eq!(
            pairs,
            vec![
                (b"author".to_vec(), b"fdfs".to_vec()),
                (b"width".to_vec(), b"1024".to_vec())
            ]
        );
        assert_eq!(frame(cmd::RESP, 0, &encode_metadata(&pairs)), hex(resp));
    }

    #[test]
    fn block16_26_download_file() {
        let req = "000000000000004c0e000000000000000000000000000000000067726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e747874";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::DOWNLOAD_FILE);
        let d = DownloadReq::decode(&body).unwrap();
        assert_eq!((d.offset, d.count, d.filename.as_str()), (0, 0, NAME_788));
        assert_eq!(frame(cmd::DOWNLOAD_FILE, 0, &d.encode()), hex(req));
        let (h, body) = msg("0000000000000005640068656c6c6f");
        assert_eq!(
            (h.cmd, h.status, body.as_slice()),
            (cmd::RESP, 0, &b"hello"[..])
        );

        let req26 = "000000000000004c0e000000000000000000000000000000000067726f757031000000000000000000004d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e747874";
        let d = DownloadReq::decode(&msg(req26).1).unwrap();
        assert_eq!(d.filename, NAME_966);
        assert_eq!(frame(cmd::DOWNLOAD_FILE, 0, &d.encode()), hex(req26));
        let resp26 = "000000000000000b640068656c6c6f20776f726c64";
        assert_eq!(frame(cmd::RESP, 0, b"hello world"), hex(resp26));

        // A ranged request encodes offset and count in the first 16 bytes.
        let ranged = DownloadReq {
            offset: 2,
            count: 3,
            ..d
        };
        let enc = ranged.encode();
        assert_eq!(&enc[..16], &hex("00000000000000020000000000000003")[..]);
        assert_eq!(DownloadReq::decode(&enc).unwrap(), ranged);
    }

    #[test]
    fn block18_query_file_info() {
        let req = "000000000000003c160067726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e747874";
        let (h, body) = msg(req);
        assert_eq!((h.cmd, h.status), (cmd::QUERY_FILE_INFO, 0));
        let f = FileReq::decode(&body).unwrap();
        assert_eq!(f.filename, NAME_788);
        assert_eq!(frame(cmd::QUERY_FILE_INFO, 0, &f.encode()), hex(req));
        let resp = "000000000000002864000000000000000005000000006b01ad51000000003610a6863132372e302e302e3100000000000000";
        let info = FileInfoResp::decode(&msg(resp).1).unwrap();
        assert_eq!(
            info,
            FileInfoResp {
                file_size: 5,
                create_timestamp: 1795272017,
                crc32: 907060870,
                source_ip: "127.0.0.1".into()
            }
        );
        assert_eq!(
            frame(cmd::RESP, 0, &info.encode(IPV4_ADDRESS_SIZE)),
            hex(resp)
        );
        let wide = info.encode(IP_ADDRESS_SIZE);
        assert_eq!(wide.len(), 70);
        // A crc32 with the top bit set is sign-extended, as C FastDFS sends it (issue 17).
        let high = FileInfoResp {
            crc32: 0x9abc_def0,
            ..info.clone()
        };
        let enc = high.encode(IPV4_ADDRESS_SIZE);
        assert_eq!(
            &enc[16..24],
            &[0xff, 0xff, 0xff, 0xff, 0x9a, 0xbc, 0xde, 0xf0]
        );
        assert_eq!(FileInfoResp::decode(&enc).unwrap(), high);
        let mut zero_ext = enc.clone();
        zero_ext[16..20].fill(0);
        assert_eq!(FileInfoResp::decode(&zero_ext).unwrap(), high);
        assert_eq!(FileInfoResp::decode(&wide).unwrap(), info);
    }

    #[test]
    fn block20_active_test() {
        let (h, body) = msg("00000000000000006f00");
        assert_eq!((h.cmd, body.len()), (cmd::ACTIVE_TEST, 0));
        assert_eq!(frame(cmd::ACTIVE_TEST, 0, &[]), hex("00000000000000006f00"));
        assert_empty_ok("00000000000000006400");
    }

    #[test]
    fn block24_append_file() {
        let req = "00000000000000421800000000000000002c00000000000000064d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e74787420776f726c64";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::APPEND_FILE);
        let fixed = &body[..AppendReq::FIXED_LEN];
        let n = AppendReq::names_len(fixed).unwrap() as usize;
        let a = AppendReq::decode(&body[..AppendReq::FIXED_LEN + n]).unwrap();
        assert_eq!((a.filename.as_str(), a.size), (NAME_966, 6));
        assert_eq!(&body[AppendReq::FIXED_LEN + n..], b" world");
        let mut again = a.encode();
        again.extend_from_slice(b" world");
        assert_eq!(frame(cmd::APPEND_FILE, 0, &again), hex(req));
    }

    #[test]
    fn modify_and_truncate_layouts() {
        let m = ModifyReq {
            filename: NAME_966.into(),
            offset: 6,
            size: 5,
        };
        let head = m.encode();
        assert_eq!(
            &head[..24],
            &hex("000000000000002c00000000000000060000000000000005")[..]
        );
        assert_eq!(ModifyReq::names_len(&head[..24]).unwrap(), 44);
        assert_eq!(ModifyReq::decode(&head).unwrap(), m);
        let t = TruncateReq {
            filename: NAME_966.into(),
            new_size: 5,
        };
        let body = t.encode();
        assert_eq!(&body[..16], &hex("000000000000002c0000000000000005")[..]);
        assert_eq!(&body[16..], NAME_966.as_bytes());
        assert_eq!(TruncateReq::decode(&body).unwrap(), t);
        assert!(TruncateReq::decode(&body[..50]).is_err());
    }

    #[test]
    fn block28_41_delete_file() {
        for req in [
            "000000000000003c0c0067726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e747874",
            "000000000000003c0c0067726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e747874",
        ] {
            let (h, body) = msg(req);
            assert_eq!(h.cmd, cmd::DELETE_FILE);
            let f = FileReq::decode(&body).unwrap();
            assert_eq!(f.group, "group1");
            assert_eq!(frame(cmd::DELETE_FILE, 0, &f.encode()), hex(req));
        }
        assert_empty_ok("00000000000000006400");
    }

    #[test]
    fn block29_30_report_server_id_and_sync_errors() {
        let req = "0000000000000010090031303030303100000000000000000000";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::REPORT_SERVER_ID);
        let r = ReportServerIdReq::decode(&body).unwrap();
        assert_eq!(r.storage_id, "100001");
        assert_eq!(frame(cmd::REPORT_SERVER_ID, 0, &r.encode()), hex(req));
        let r2 = ReportServerIdReq::decode(
            &msg("0000000000000010090031303030303200000000000000000000").1,
        )
        .unwrap();
        assert_eq!(r2.storage_id, "100002");
        // [29] SYNC_DELETE of a file the peer never had: ENOENT.
        let (h, _) = msg("00000000000000006402");
        assert_eq!((h.cmd, h.status), (cmd::RESP, cmd::errno::ENOENT));
        assert_eq!(
            frame(cmd::RESP, cmd::errno::ENOENT, &[]),
            hex("00000000000000006402")
        );
    }

    #[test]
    fn block29_31_37_38_sync_delete_file() {
        for (req, ts, name) in [
            ("000000000000004011006b01ad5b67726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e747874", 1795272027, NAME_788.to_string()),
            ("000000000000004211006b01ad5b67726f757031000000000000000000004d30302f30312f46452f6f5959424147734272564741634e622d4141414142545951706f593738382e7478742d6d", 1795272027, format!("{NAME_788}-m")),
            ("000000000000004011006b01adcc67726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e747874", 1795272140, NAME_262.to_string()),
            ("000000000000004211006b01adcc67726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e7478742d6d", 1795272140, format!("{NAME_262}-m")),
        ] {
            let (h, body) = msg(req);
            assert_eq!(h.cmd, cmd::SYNC_DELETE_FILE);
            let d = SyncDeleteReq::decode(&body).unwrap();
            assert_eq!((d.timestamp, d.group.as_str(), &d.filename), (ts, "group1", &name));
            assert_eq!(frame(cmd::SYNC_DELETE_FILE, 0, &d.encode()), hex(req));
        }
    }

    /// Re-encodes a sync head and compares it with the capture, except the group field, where the
    /// C sender leaves stack garbage after the NUL (blocks [30] and [32]).
    fn same_except_group(ours: &[u8], captured: &[u8], group_at: usize) {
        assert_eq!(ours.len(), captured.len());
        assert_eq!(&ours[..group_at], &captured[..group_at]);
        assert_eq!(
            &ours[group_at..group_at + 7],
            &captured[group_at..group_at + 7]
        );
        assert_eq!(&ours[group_at + 16..], &captured[group_at + 16..]);
    }

    fn split_sync_file(body: &[u8]) -> (SyncFileReq, &[u8]) {
        let n = SyncFileReq::names_len(&body[..SyncFileReq::FIXED_LEN]).unwrap() as usize;
        let head_len = SyncFileReq::FIXED_LEN + n;
        (
            SyncFileReq::decode(&body[..head_len]).unwrap(),
            &body[head_len..],
        )
    }

    #[test]
    fn block37_38_sync_create_file() {
        let req = "00000000000000551000000000000000002c00000000000000056b01adc667726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e74787468656c6c6f";
        let (h, body) = msg(req);
        assert_eq!((h.cmd, h.status), (cmd::SYNC_CREATE_FILE, 0));
        let (s, content) = split_sync_file(&body);
        assert_eq!(
            s,
            SyncFileReq {
                filename: NAME_262.into(),
                file_size: 5,
                timestamp: 1795272134,
                group: "group1".into()
            }
        );
        assert_eq!(content, b"hello");
        let mut again = s.encode();
        again.extend_from_slice(content);
        assert_eq!(frame(cmd::SYNC_CREATE_FILE, 0, &again), hex(req));

        let req38 = "00000000000000681000000000000000002e00000000000000166b01adc667726f757031000000000000000000004d30302f30312f46452f6f595942414773427263614148752d6c4141414142545951706f593236322e7478742d6d617574686f7202666466730177696474680231303234";
        let (_, body) = msg(req38);
        let (s, content) = split_sync_file(&body);
        assert_eq!(s.filename, format!("{NAME_262}-m"));
        assert_eq!(s.file_size, 22);
        assert_eq!(decode_metadata(content).unwrap().len(), 2);
        let mut again = s.encode();
        again.extend_from_slice(content);
        assert_eq!(frame(cmd::SYNC_CREATE_FILE, 0, &again), hex(req38));
    }

    #[test]
    fn block30_sync_create_file_with_garbage_after_group() {
        let req = "000000000000005b1000000000000000002c000000000000000b6b01ad5867726f7570310023203320ee32332e314d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e74787468656c6c6f20776f726c64";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::SYNC_CREATE_FILE);
        let (s, content) = split_sync_file(&body);
        assert_eq!(s.group, "group1");
        assert_eq!(
            (s.filename.as_str(), s.file_size, s.timestamp),
            (NAME_966, 11, 1795272024)
        );
        assert_eq!(content, b"hello world");
        let mut again = s.encode();
        again.extend_from_slice(content);
        same_except_group(&again, &body, 20);
    }

    #[test]
    fn block32_sync_append_then_update() {
        let req = "000000000000005e1900000000000000002c000000000000000500000000000000066b01ad5967726f757031000000003132372e302e4d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e74787420776f726c64";
        let (h, body) = msg(req);
        assert_eq!(h.cmd, cmd::SYNC_APPEND_FILE);
        let n = SyncRangeReq::names_len(&body[..SyncRangeReq::FIXED_LEN]).unwrap() as usize;
        let head = &body[..SyncRangeReq::FIXED_LEN + n];
        let a = SyncRangeReq::decode(head).unwrap();
        assert_eq!(
            a,
            SyncRangeReq {
                filename: NAME_966.into(),
                offset: 5,
                length: 6,
                timestamp: 1795272025,
                group: "group1".into()
            }
        );
        assert_eq!(&body[head.len()..], b" world");
        let mut again = a.encode();
        again.extend_from_slice(b" world");
        same_except_group(&again, &body, 28);
        assert_eq!(
            frame(cmd::RESP, cmd::errno::ENOENT, &[]),
            hex("00000000000000006402")
        );

        let upd = "000000000000005b1200000000000000002c000000000000000b6b01ad5967726f75703100445951706f593936364d30302f30312f46452f6f6f59424147734272566945444e62664141414141445951706f593936362e74787468656c6c6f20776f726c64";
        let (h, body) = msg(upd);
        assert_eq!(h.cmd, cmd::SYNC_UPDATE_FILE);
        let (s, content) = split_sync_file(&body);
        assert_eq!(
            (s.filename.as_str(), s.file_size, s.timestamp),
            (NAME_966, 11, 1795272025)
        );
        assert_eq!(content, b"hello world");
        let mut again = s.encode();
        again.extend_from_slice(content);
        same_except_group(&again, &body, 20);
        assert_empty_ok("00000000000000006400");
    }

    #[test]
    fn sync_modify_truncate_link_layouts() {
        let m = SyncRangeReq {
            filename: NAME_966.into(),
            offset: 1,
            length: 2,
            timestamp: 7,
            group: "group1".into(),
        };
        let enc = m.encode();
        assert_eq!(enc.len(), SyncRangeReq::FIXED_LEN + 44);
        assert_eq!(SyncRangeReq::decode(&enc).unwrap(), m);
        let t = SyncTruncateReq {
            filename: NAME_966.into(),
            old_size: 11,
            new_size: 5,
            timestamp: 9,
            group: "group1".into(),
        };
        let enc = t.encode();
        assert_eq!(
            &enc[..28],
            &hex("000000000000002c000000000000000b000000000000000500000009")[..]
        );
        assert_eq!(SyncTruncateReq::decode(&enc).unwrap(), t);
        let l = SyncCreateLinkReq {
            timestamp: 3,
            group: "group1".into(),
            dest_filename: NAME_262.into(),
            src_filename: NAME_788.into(),
        };
        let enc = l.encode();
        assert_eq!(enc.len(), 36 + 88);
        assert_eq!(SyncCreateLinkReq::decode(&enc).unwrap(), l);
        let f = FetchOnePathBinlogReq {
            group: "group1".into(),
            store_path_index: 1,
        };
        assert_eq!(FetchOnePathBinlogReq::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert!(UploadReq::decode(&[0; 3]).is_err());
        assert!(FileReq::decode(b"group1").is_err());
        assert!(DownloadReq::decode(&[0xff; 20]).is_err());
        // Negative lengths.
        let mut neg = vec![0xffu8; 8];
        neg.extend_from_slice(&[0; 8]);
        assert!(AppendReq::names_len(&neg).is_err());
        // Name length beyond the limit.
        let mut long = 4096u64.to_be_bytes().to_vec();
        long.extend_from_slice(&[0; 8]);
        assert!(AppendReq::names_len(&long).is_err());
        // meta_size disagreeing with the body.
        let mut m = SetMetadataReq {
            op: MetaOp::Merge,
            group: "g".into(),
            filename: NAME_788.into(),
            metadata: b"a\x02b".to_vec(),
        }
        .encode();
        m.pop();
        assert!(SetMetadataReq::decode(&m).is_err());
        assert!(decode_metadata(b"novalue").is_err());
        assert!(decode_metadata(
            &[b'k'; 65]
                .iter()
                .chain(b"\x02v")
                .copied()
                .collect::<Vec<_>>()
        )
        .is_err());
        assert!(decode_metadata(
            &b"k\x02"
                .iter()
                .chain([b'v'; 257].iter())
                .copied()
                .collect::<Vec<_>>()
        )
        .is_err());
        assert_eq!(decode_metadata(b"").unwrap(), vec![]);
    }

    proptest::proptest! {
        /// No body, however malformed, makes a decoder panic.
        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = UploadReq::decode(&body);
            let _ = UploadSlaveReq::names_len(&body);
            let _ = UploadSlaveReq::decode(&body);
            let _ = UploadResp::decode(&body);
            let _ = AppendReq::names_len(&body);
            let _ = AppendReq::decode(&body);
            let _ = ModifyReq::names_len(&body);
            let _ = ModifyReq::decode(&body);
            let _ = TruncateReq::decode(&body);
            let _ = SetMetadataReq::decode(&body);
            let _ = decode_metadata(&body);
            let _ = FileReq::decode(&body);
            let _ = DownloadReq::decode(&body);
            let _ = FileInfoResp::decode(&body);
            let _ = ReportServerIdReq::decode(&body);
            let _ = SyncFileReq::names_len(&body);
            let _ = SyncFileReq::decode(&body);
            let _ = SyncDeleteReq::decode(&body);
            let _ = SyncRangeReq::names_len(&body);
            let _ = SyncRangeReq::decode(&body);
            let _ = SyncTruncateReq::decode(&body);
            let _ = SyncCreateLinkReq::decode(&body);
            let _ = FetchOnePathBinlogReq::decode(&body);
        }

        /// Every request survives encode -> decode unchanged.
        #[test]
        fn requests_round_trip(
            name in "M0[0-9]/[0-9A-F]{2}/[0-9A-F]{2}/[A-Za-z0-9_-]{27}[0-9]{3}\\.txt",
            a in 0u64..(1 << 40), b in 0u64..(1 << 40), ts in proptest::num::u32::ANY,
        ) {
            let m = ModifyReq { filename: name.clone(), offset: a, size: b };
            proptest::prop_assert_eq!(ModifyReq::decode(&m.encode()).unwrap(), m);
            let d = DownloadReq { offset: a, count: b, group: "group1".into(), filename: name.clone() };
            proptest::prop_assert_eq!(DownloadReq::decode(&d.encode()).unwrap(), d);
            let s = SyncRangeReq { filename: name.clone(), offset: a, length: b, timestamp: ts, group: "g".into() };
            proptest::prop_assert_eq!(SyncRangeReq::decode(&s.encode()).unwrap(), s);
            let t = SyncTruncateReq { filename: name, old_size: a, new_size: b, timestamp: ts, group: "g".into() };
            proptest::prop_assert_eq!(SyncTruncateReq::decode(&t.encode()).unwrap(), t);
        }
    }
}
