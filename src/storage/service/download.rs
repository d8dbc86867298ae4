//! DOWNLOAD_FILE: small files with the header in one write, larger ones with sendfile(2).

use super::connection::timed;
use super::SMALL_DOWNLOAD;
use super::{einval, Conn, Fail, Handled};
use crate::proto::cmd;
use crate::proto::cmd::errno;
use crate::proto::connection::send_file;
use crate::proto::storage::DownloadReq;
use crate::proto::{Header, HEADER_LEN};
use crate::storage::store::StoreError;
use std::io;
use std::os::unix::fs::FileExt;
use tokio::io::AsyncWriteExt;

impl Conn {
    pub(super) async fn download(&mut self, body: &[u8]) -> Handled {
        let req = DownloadReq::decode(body).map_err(einval)?;
        self.check_group(&req.group)?;
        let (_, path) = self.locate(&req.filename)?;
        let file = std::fs::File::open(&path).map_err(StoreError::from)?;
        let size = file.metadata().map_err(StoreError::from)?.len();
        if req.offset > size {
            return Err(einval(format!("offset {} beyond size {size}", req.offset)));
        }
        let avail = size - req.offset;
        let count = if req.count == 0 {
            avail
        } else {
            req.count.min(avail)
        };
        if count <= SMALL_DOWNLOAD {
            let mut out = Vec::with_capacity(HEADER_LEN + count as usize);
            out.extend_from_slice(&Header::new(cmd::RESP, 0, count).encode());
            out.resize(HEADER_LEN + count as usize, 0);
            let mut got = 0;
            while got < count as usize {
                let n = file
                    .read_at(&mut out[HEADER_LEN + got..], req.offset + got as u64)
                    .map_err(StoreError::from)?;
                if n == 0 {
                    return Err(Fail::Reply(errno::EIO, "file shrank while reading".into()));
                }
                got += n;
            }
            timed(self.timeout, self.io.get_mut().write_all(&out)).await?;
        } else {
            let hdr = Header::new(cmd::RESP, 0, count).encode();
            timed(self.timeout, self.io.get_mut().write_all(&hdr)).await?;
            self.sendfile(&file, req.offset, count).await?;
        }
        let stats = self.state.stats();
        stats.download_bytes.record_bytes(count, true);
        stats.file_open.record(true);
        stats.file_read.record(true);
        Ok(None)
    }

    /// Copies `count` bytes of `file` from `offset` into the socket with sendfile(2).
    pub(super) async fn sendfile(
        &mut self,
        file: &std::fs::File,
        offset: u64,
        count: u64,
    ) -> Result<(), Fail> {
        match send_file(self.io.get_mut(), file, offset, count, self.timeout).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                Err(Fail::Drop("network timeout during download".into()))
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(Fail::Drop("file shrank during download".into()))
            }
            Err(e) => Err(Fail::Drop(format!("sendfile: {e}"))),
        }
    }
}
