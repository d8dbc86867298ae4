//! Metadata: SET_METADATA (13) and the `k\x02v\x01k\x02v` list GET_METADATA (15) returns.

use crate::proto::fields::{put_fixed, put_u64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN, METADATA_FIELD_SEP, METADATA_RECORD_SEP};

use super::{name, name_len};

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
    #[error("metadata name of {0} bytes is empty or over {max}", max = crate::proto::METADATA_NAME_MAX)]
    NameLength(usize),
    #[error("metadata value of {0} bytes is over {max}", max = crate::proto::METADATA_VALUE_MAX)]
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
            if k.is_empty() || k.len() > crate::proto::METADATA_NAME_MAX {
                return Err(MetadataError::NameLength(k.len()));
            }
            if v.len() > crate::proto::METADATA_VALUE_MAX {
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
