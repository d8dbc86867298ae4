//! QUERY_FILE_INFO.

use super::CHUNK;
use super::{blocking, einval, Conn, Handled};
use crate::proto::storage::{FileInfoResp, FileReq, QUERY_FLAG_NO_CRC32};
use std::os::unix::fs::FileExt;

impl Conn {
    pub(super) async fn query_file_info(&mut self, body: &[u8], flags: u8) -> Handled {
        let req = FileReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (name, path) = self.locate(&req.filename)?;
        // Appender and slave files changed after their name was made: size and CRC come from
        // the content (the CRC only when the client did not ask to skip it).
        let from_content = name.info.is_appender() || name.is_slave();
        let want_crc = from_content && flags & QUERY_FLAG_NO_CRC32 == 0;
        let (size, crc) = blocking(move || {
            let f = std::fs::File::open(&path)?;
            let size = f.metadata()?.len();
            let crc = if want_crc {
                let mut h = crc32fast::Hasher::new();
                let mut buf = vec![0u8; CHUNK];
                let mut off = 0u64;
                loop {
                    let n = f.read_at(&mut buf, off)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    off += n as u64;
                }
                Some(h.finalize())
            } else {
                None
            };
            Ok((size, crc))
        })
        .await?;
        let resp = FileInfoResp {
            file_size: size,
            create_timestamp: name.info.create_time as u64,
            crc32: crc.unwrap_or(name.info.crc32),
            source_ip: self.state.source_ip(name.info.source),
        };
        Ok(Some(
            resp.encode(self.state.group_params().response_ip_addr_size),
        ))
    }
}
