//! UPLOAD_FILE, UPLOAD_APPENDER_FILE and UPLOAD_SLAVE_FILE.

use super::SMALL_FILE;
use super::{blocking, Conn, Fail, Handled};
use crate::proto::cmd::errno;
use crate::proto::fileid::{self, FileInfo, RemoteName};
use crate::proto::storage::{UploadReq, UploadResp, UploadSlaveReq};
use crate::proto::Header;
use crate::storage::binlog::BinlogOp;
use crate::storage::small_writer::SmallWriter;
use crate::storage::store::{Created, NewSmall, TempFile};
use rand::Rng;

/// The content of an upload once received.
pub(super) enum Content {
    Memory(Vec<u8>),
    File(TempFile),
}

impl Conn {
    pub(super) async fn upload(&mut self, h: &Header, appender: bool) -> Handled {
        let fixed = UploadReq::FIXED_LEN as u64;
        if h.pkg_len < fixed {
            return Err(self
                .refuse(h.pkg_len, errno::EINVAL, "upload body too short")
                .await);
        }
        let head = self.read_vec(UploadReq::FIXED_LEN).await?;
        let left = h.pkg_len - fixed;
        let req = match UploadReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        if req.file_size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!("file_size {} but {left} body bytes follow", req.file_size),
            ));
        }
        if !fileid::valid_ext(&req.ext) {
            return Err(self
                .refuse(left, errno::EINVAL, format!("bad extension {:?}", req.ext))
                .await);
        }
        let max = self.state.config().max_file_size.0;
        if req.file_size > max {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                format!("file of {} bytes over max_file_size {max}", req.file_size),
            ));
        }
        let index = match self
            .state
            .store()
            .choose_path(req.store_path_index, req.file_size)
        {
            Ok(i) => i,
            Err(e) => return Err(self.refuse(left, e.status, e.msg).await),
        };
        let size = req.file_size;
        let st = self.state.clone();
        // Small files are received into memory and written, synced and renamed in one blocking
        // task; larger ones stream into a temp file first.
        let (content, crc32) = if size <= SMALL_FILE {
            let content = self.read_vec(size as usize).await?;
            let crc = crc32fast::hash(&content);
            (Content::Memory(content), crc)
        } else {
            let st2 = st.clone();
            let tmp = match blocking(move || st2.store().temp_file(index, size)).await {
                Ok(t) => t,
                Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
                Err(f) => return Err(f),
            };
            let (tmp, crc) = self.receive(tmp, size).await?;
            (Content::File(tmp), crc)
        };
        let ext = req.ext;
        let source = st.source();
        // Held until the binlog record is queued: replication watermarks stay below this file.
        let creating = st.begin_create();
        let now = creating.time();
        let make_name = move || {
            let mut rng = rand::thread_rng();
            let info = FileInfo {
                source,
                create_time: now as u32,
                size_field: FileInfo::size_field_for(size, appender, rng.gen()),
                crc32,
            };
            fileid::new_name(&info, &ext, rng.gen())
        };
        let created = match content {
            // On the small-file writer: one hand-off, and the journal's flush shared with the
            // other uploads waiting.
            Content::Memory(content) => {
                let file = NewSmall {
                    index,
                    content,
                    make_name: Box::new(make_name),
                };
                SmallWriter::create(&st, file).await?
            }
            Content::File(t) => {
                let st2 = st.clone();
                blocking(move || {
                    let store = st2.store();
                    let dirs = |name: &str| store.next_dirs(crc32fast::hash(name.as_bytes()));
                    store
                        .commit(t, make_name, dirs)
                        .map(|(d1, d2, name)| Created {
                            dirs: (d1, d2),
                            name,
                            record: None,
                        })
                })
                .await?
            }
        };
        let (d1, d2) = created.dirs;
        let filename = format!("M{index:02X}/{d1:02X}/{d2:02X}/{}", created.name);
        self.log(BinlogOp::Create, now, &filename, None);
        // Its journal record may stop counting once the binlog record is queued.
        drop(created.record);
        drop(creating);
        st.stats().upload_bytes.record_bytes(size, true);
        st.stats().count_file_write();
        Ok(Some(
            UploadResp {
                group: st.group().to_string(),
                filename,
            }
            .encode(),
        ))
    }

    pub(super) async fn upload_slave(&mut self, h: &Header) -> Handled {
        let (head, left) = self
            .streamed_head(h, UploadSlaveReq::FIXED_LEN, UploadSlaveReq::names_len)
            .await?;
        let req = match UploadSlaveReq::decode(&head) {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(left, errno::EINVAL, e.to_string()).await),
        };
        if req.file_size != left {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                "file_size disagrees with body".into(),
            ));
        }
        let prefix_ok = !req.prefix.is_empty()
            && req
                .prefix
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            && !req.prefix.ends_with(fileid::METADATA_SUFFIX);
        if !prefix_ok {
            return Err(self
                .refuse(
                    left,
                    errno::EINVAL,
                    format!("bad slave prefix {:?}", req.prefix),
                )
                .await);
        }
        if !fileid::valid_ext(&req.ext) {
            return Err(self
                .refuse(left, errno::EINVAL, format!("bad extension {:?}", req.ext))
                .await);
        }
        if req.file_size > self.state.config().max_file_size.0 {
            return Err(Fail::ReplyClose(
                errno::EINVAL,
                "file over max_file_size".into(),
            ));
        }
        let located = self.locate(&req.master_filename);
        let (master, master_path) = match located {
            Ok(v) => v,
            Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
            Err(f) => return Err(f),
        };
        if !master_path.is_file() {
            return Err(self
                .refuse(left, errno::ENOENT, "master file does not exist")
                .await);
        }
        // Like FastDFS, a slave without its own extension keeps the master's.
        let ext = match req.ext.as_str() {
            "" => master.ext().unwrap_or(""),
            e => e,
        };
        let slave = fileid::slave_name(&master.name, &req.prefix, ext);
        let filename = format!(
            "M{:02X}/{:02X}/{:02X}/{slave}",
            master.store_path_index, master.dir1, master.dir2
        );
        if RemoteName::parse_str(&filename).is_err() {
            return Err(self.refuse(left, errno::EINVAL, "slave name invalid").await);
        }
        let dst = master_path.with_file_name(&slave);
        if dst.exists() {
            return Err(self.refuse(left, errno::EEXIST, "slave file exists").await);
        }
        let index = master.store_path_index;
        match self.state.store().choose_path(index, req.file_size) {
            Ok(i) if i == index => {}
            _ => return Err(self.refuse(left, errno::ENOSPC, "store path full").await),
        }
        let st = self.state.clone();
        let tmp = match blocking(move || st.store().temp_file(index, left)).await {
            Ok(t) => t,
            Err(Fail::Reply(s, m)) => return Err(self.refuse(left, s, m).await),
            Err(f) => return Err(f),
        };
        let (tmp, _crc) = self.receive(tmp, req.file_size).await?;
        let st = self.state.clone();
        let creating = self.state.begin_create();
        blocking(move || st.store().commit_as(tmp, &dst)).await?;
        self.log(BinlogOp::Create, creating.time(), &filename, None);
        drop(creating);
        self.state
            .stats()
            .upload_bytes
            .record_bytes(req.file_size, true);
        self.state.stats().count_file_write();
        Ok(Some(
            UploadResp {
                group: self.state.group().to_string(),
                filename,
            }
            .encode(),
        ))
    }
}
