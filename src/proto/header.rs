//! The 10-byte header in front of every FastDFS message.
//!
//! ```text
//!  0                   8        9        10
//! +-------------------+--------+--------+----------------------+
//! | pkg_len (i64 BE)  |  cmd   | status |  body (pkg_len bytes) |
//! +-------------------+--------+--------+----------------------+
//! ```
//! `pkg_len` counts the body only. Requests carry status 0 (QUERY_FILE_INFO puts flags there);
//! responses use cmd 100 and an errno in `status` (0 = success).

use super::ProtoError;

/// Size of the fixed header on the wire.
pub const HEADER_LEN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the body that follows (header excluded).
    pub pkg_len: u64,
    pub cmd: u8,
    pub status: u8,
}

impl Header {
    pub fn new(cmd: u8, status: u8, pkg_len: u64) -> Self {
        Header {
            pkg_len,
            cmd,
            status,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&(self.pkg_len as i64).to_be_bytes());
        out[8] = self.cmd;
        out[9] = self.status;
        out
    }

    /// Decodes a header; a negative length is malformed (the C code treats it as EINVAL).
    pub fn decode(buf: &[u8; HEADER_LEN]) -> Result<Self, ProtoError> {
        let mut len = [0u8; 8];
        len.copy_from_slice(&buf[..8]);
        let pkg_len = i64::from_be_bytes(len);
        if pkg_len < 0 {
            return Err(ProtoError::NegativeLength(pkg_len));
        }
        Ok(Header {
            pkg_len: pkg_len as u64,
            cmd: buf[8],
            status: buf[9],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_matches_captured_active_test() {
        // ACTIVE_TEST request from vectors.txt block [19]: 00000000000000006f00
        let h = Header::new(super::super::cmd::ACTIVE_TEST, 0, 0);
        assert_eq!(h.encode(), [0, 0, 0, 0, 0, 0, 0, 0, 0x6f, 0]);
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn negative_length_is_rejected() {
        let mut raw = [0xffu8; HEADER_LEN];
        raw[8] = 11;
        assert!(matches!(
            Header::decode(&raw),
            Err(ProtoError::NegativeLength(_))
        ));
    }
}
