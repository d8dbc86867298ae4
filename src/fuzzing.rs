//! Entry points of the FastDFS request fuzz targets (fuzz/fuzz_targets/), kept in the library so
//! that tests/fuzz_corpus.rs runs every target's corpus as an ordinary test (cargo-fuzz is not
//! needed for CI to exercise them). Each must never panic, whatever the bytes.

use crate::proto::fileid::RemoteName;
use crate::proto::storage as st;
use crate::tracker::service::Tracker;
use std::time::Instant;

/// Tracker request path: `data[0]` is the command, the rest its body, answered by a fresh
/// tracker after a storage JOIN on the same connection (so storage commands reach their
/// decoders too). Every reply must be well formed: an errno or a body, never a panic.
pub fn tracker_request(data: &[u8]) {
    let Some((&command, body)) = data.split_first() else {
        return;
    };
    let Ok(cfg) = crate::config::parse_str("node: fuzz\ntracker: {}\n") else {
        return;
    };
    let Some(cfg) = cfg.tracker else {
        return;
    };
    let t = Tracker::new(cfg);
    let now = Instant::now();
    let mut conn = t.new_conn("127.0.0.1".into());
    let join = crate::proto::tracker::JoinReq {
        join_time: 1,
        up_time: 1,
        current_tracker_ip: "127.0.0.1".into(),
        trackers: vec!["127.0.0.1:22122".into()],
        ..crate::proto::tracker::JoinReq::c_storage("group1", 23000)
    };
    let _ = t.handle(
        &mut conn,
        crate::proto::cmd::STORAGE_JOIN,
        &join.encode(),
        now,
        0,
    );
    let _ = t.handle(&mut conn, command, body, now, 0);
    // The same bytes from a connection that did not JOIN (a client).
    let mut client = t.new_conn("127.0.0.2".into());
    let _ = t.handle(&mut client, command, body, now, 0);
}

/// Storage request decoders: every fixed head, name length and body the storage service reads.
pub fn storage_request(data: &[u8]) {
    let _ = st::UploadReq::decode(data);
    let _ = st::UploadSlaveReq::names_len(data);
    let _ = st::UploadSlaveReq::decode(data);
    let _ = st::AppendReq::names_len(data);
    let _ = st::AppendReq::decode(data);
    let _ = st::ModifyReq::names_len(data);
    let _ = st::ModifyReq::decode(data);
    let _ = st::TruncateReq::decode(data);
    let _ = st::FileReq::decode(data);
    let _ = st::DownloadReq::decode(data);
    let _ = st::SetMetadataReq::decode(data);
    let _ = st::decode_metadata(data);
    let _ = st::ReportServerIdReq::decode(data);
    let _ = st::SyncFileReq::names_len(data);
    let _ = st::SyncFileReq::decode(data);
    let _ = st::SyncDeleteReq::decode(data);
    let _ = st::SyncRangeReq::names_len(data);
    let _ = st::SyncRangeReq::decode(data);
    let _ = st::SyncTruncateReq::decode(data);
    let _ = st::SyncCreateLinkReq::decode(data);
    let _ = crate::proto::sync::WatermarkReq::decode(data);
    let _ = crate::proto::rename::SyncRenameReq::decode(data);
    if let Some(raw) = data.first_chunk::<{ crate::proto::HEADER_LEN }>() {
        let _ = crate::proto::Header::decode(raw);
    }
}

/// File ID parsing: whatever parses prints back to a name that parses to the same thing.
pub fn file_id(data: &[u8]) {
    if let Ok(name) = RemoteName::parse(data) {
        let again = RemoteName::parse_str(&name.to_path_string());
        assert_eq!(again.as_ref(), Ok(&name), "{:?}", name.to_path_string());
        let _ = name.relative_data_path();
    }
}
