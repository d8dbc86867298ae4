//! Commands on one stored file: DELETE_FILE (12), GET_METADATA (15) and QUERY_FILE_INFO (22)
//! requests, DOWNLOAD_FILE (14), the QUERY_FILE_INFO reply.

use crate::proto::fields::{put_fixed, put_u64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE};

use super::{text, MAX_FILENAME_LEN};

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
