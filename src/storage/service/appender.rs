//! APPEND_FILE, MODIFY_FILE and TRUNCATE_FILE: changes to an appender file.

use super::{blocking, einval, Conn, Fail, Handled};
use crate::clock::unix_now;
use crate::proto::cmd::errno;
use crate::proto::storage::{AppendReq, ModifyReq, TruncateReq};
use crate::proto::Header;
use crate::storage::binlog::BinlogOp;
use crate::storage::store::WriteAt;

impl Conn {
    /// Opens an appender file for a change; EINVAL if the name is not an appender's.
    pub(super) fn appender(&self, filename: &str) -> Result<(String, std::path::PathBuf), Fail> {
        let (name, path) = self.locate(filename)?;
        if !name.info.is_appender() || name.is_slave() {
            return Err(einval("not an appender file"));
        }
        Ok((name.to_path_string(), path))
    }

    pub(super) async fn append(&mut self, h: &Header) -> Handled {
        let (head, left) = self
            .streamed_head(h, AppendReq::FIXED_LEN, AppendReq::names_len)
            .await?;
        let req = match AppendReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        let (filename, path) = self
            .streamed_appender(left, req.size, &req.filename, "append")
            .await?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let sink = self.open_for_write(left, &path).await?;
        let old_size = sink.size();
        if old_size.saturating_add(req.size) > st.config().max_file_size.0 {
            return Err(self
                .refuse(left, errno::EINVAL, "file would exceed max_file_size")
                .await);
        }
        if let Err(e) = st.store().check_growth(&path, req.size) {
            return Err(self.refuse(left, e.status, e.msg).await);
        }
        let written = self.receive(sink, req.size).await;
        let sink = match written {
            Ok((s, _)) => s,
            Err(f) => {
                // Cut a partial append back so the file never holds half a request.
                let st = self.state.clone();
                let _ = blocking(move || st.store().cut_back(&path, old_size)).await;
                return Err(f);
            }
        };
        self.finish_appender_write(sink, BinlogOp::Append, &filename, old_size, req.size)
            .await
    }

    pub(super) async fn modify(&mut self, h: &Header) -> Handled {
        let (head, left) = self
            .streamed_head(h, ModifyReq::FIXED_LEN, ModifyReq::names_len)
            .await?;
        let req = match ModifyReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        let (filename, path) = self
            .streamed_appender(left, req.size, &req.filename, "modify")
            .await?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let sink = self.open_for_write(left, &path).await?;
        let size = sink.size();
        if req.offset > size {
            return Err(self
                .refuse(
                    left,
                    errno::EINVAL,
                    format!("offset {} beyond size {size}", req.offset),
                )
                .await);
        }
        if req.offset.saturating_add(req.size) > st.config().max_file_size.0 {
            return Err(self
                .refuse(left, errno::EINVAL, "file would exceed max_file_size")
                .await);
        }
        let grow = req.offset.saturating_add(req.size).saturating_sub(size);
        if let Err(e) = st.store().check_growth(&path, grow) {
            return Err(self.refuse(left, e.status, e.msg).await);
        }
        let (sink, _) = self.receive(sink.starting_at(req.offset), req.size).await?;
        self.finish_appender_write(sink, BinlogOp::Modify, &filename, req.offset, req.size)
            .await
    }

    /// Front half of APPEND and MODIFY: the streamed body must be exactly `size` bytes and the
    /// name an appender's. A refusal drains the body first so the connection stays in step.
    pub(super) async fn streamed_appender(
        &mut self,
        left: u64,
        size: u64,
        raw_name: &str,
        what: &str,
    ) -> Result<(String, std::path::PathBuf), Fail> {
        if size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!("{what} size disagrees with body"),
            ));
        }
        match self.appender(raw_name) {
            Ok(v) => Ok(v),
            Err(Fail::Reply(s, m)) => Err(self.refuse(left, s, m).await),
            Err(f) => Err(f),
        }
    }

    /// Opens an existing file for writing, at its end (refusing, with the body drained, when
    /// it cannot be opened).
    pub(super) async fn open_for_write(
        &mut self,
        left: u64,
        path: &std::path::Path,
    ) -> Result<WriteAt, Fail> {
        let p = path.to_path_buf();
        let st = self.state.clone();
        let opened = blocking(move || st.store().open_for_write(&p)).await;
        match opened {
            Ok(v) => Ok(v),
            Err(Fail::Reply(s, m)) => Err(self.refuse(left, s, m).await),
            Err(f) => Err(f),
        }
    }

    /// Back half of APPEND and MODIFY: make the bytes durable (when fsync is on), log the change
    /// as `<offset> <length>` and count it.
    pub(super) async fn finish_appender_write(
        &self,
        sink: WriteAt,
        op: BinlogOp,
        filename: &str,
        offset: u64,
        len: u64,
    ) -> Handled {
        let st = self.state.clone();
        if sink.needs_flush() {
            blocking(move || sink.finish()).await?;
        }
        self.log(op, unix_now(), filename, Some(format!("{offset} {len}")));
        let bytes = if matches!(op, BinlogOp::Append) {
            &st.stats().append_bytes
        } else {
            &st.stats().modify_bytes
        };
        bytes.record_bytes(len, true);
        st.stats().count_file_write();
        Ok(Some(Vec::new()))
    }

    pub(super) async fn truncate(&mut self, body: &[u8]) -> Handled {
        let req = TruncateReq::decode(body).map_err(einval)?;
        let (filename, path) = self.appender(&req.filename)?;
        let st = self.state.clone();
        let _guard = st.store().lock_file(&filename).await;
        let new_size = req.new_size;
        let max = st.config().max_file_size.0;
        let store = st.clone();
        let old_size = blocking(move || store.store().truncate(&path, new_size, max)).await?;
        self.log(
            BinlogOp::Truncate,
            unix_now(),
            &filename,
            Some(format!("{old_size} {new_size}")),
        );
        Ok(Some(Vec::new()))
    }
}
