//! The FastDFS wire protocol: header, command codes, field encodings, message codecs, file IDs.
//!
//! Pure code only: bytes in, typed values out (and back). Sockets live in [`connection`], which
//! is the one place that reads and writes whole messages on a stream. Nothing here touches files.
//! Facts come from FastDFS 6.16.1 (see docs/PROTOCOL.md); byte-exact tests use `tests/vectors/fastdfs-vectors.txt`.

pub mod cmd;
pub mod connection;
pub mod fields;
pub mod fileid;
pub mod header;
pub mod rename;
pub mod storage;
pub mod sync;
pub mod tracker;

/// The tracker-to-tracker messages, by their older path.
pub use tracker::peer as tracker_peer;

pub use header::{Header, HEADER_LEN};

/// Group names are 16 bytes on the wire (`FDFS_GROUP_NAME_MAX_LEN`), 17 inside JOIN / GET_MY_IP.
pub const GROUP_NAME_LEN: usize = 16;
/// Storage IDs are 16 bytes (`FDFS_STORAGE_ID_MAX_SIZE`).
pub const STORAGE_ID_LEN: usize = 16;
/// IP address fields in server-to-server structs (INET6_ADDRSTRLEN).
pub const IP_ADDRESS_SIZE: usize = 46;
/// IPv4-sized address field used towards clients when `response_ip_addr_size` resolves to IPv4.
pub const IPV4_ADDRESS_SIZE: usize = 16;
/// File extension field, no dot (`FDFS_FILE_EXT_NAME_MAX_LEN`).
pub const FILE_EXT_NAME_LEN: usize = 6;
/// Slave file prefix field (`FDFS_FILE_PREFIX_MAX_LEN`).
pub const FILE_PREFIX_LEN: usize = 16;
/// Version string field in JOIN.
pub const VERSION_LEN: usize = 8;
/// Metadata limits (name / value), as FastDFS.
pub const METADATA_NAME_MAX: usize = 64;
pub const METADATA_VALUE_MAX: usize = 256;
/// Metadata separators: records joined by 0x01, name and value split by 0x02.
pub const METADATA_RECORD_SEP: u8 = 0x01;
pub const METADATA_FIELD_SEP: u8 = 0x02;

/// Why a message could not be decoded. Servers turn these into EINVAL responses, never panics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("negative body length {0} in header")]
    NegativeLength(i64),
    #[error("body of {len} bytes exceeds the limit of {limit} bytes")]
    TooLong { len: u64, limit: u64 },
    #[error("body too short: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("body length {have} is wrong for this command (expected {expected})")]
    BadLength { have: usize, expected: String },
    #[error("invalid field {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("unexpected command {0}")]
    UnexpectedCommand(u8),
    #[error("peer answered with status {0}")]
    Status(u8),
}
