//! Byte-exact checks against `tests/vectors/fastdfs-vectors.txt` (block numbers in test names).
use super::*;
use crate::proto::{cmd, Header, HEADER_LEN};
use crate::proto::{IPV4_ADDRESS_SIZE, IP_ADDRESS_SIZE};

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
    let r2 =
        ReportServerIdReq::decode(&msg("0000000000000010090031303030303200000000000000000000").1)
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
