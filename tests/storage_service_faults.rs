//! The storage over real sockets on 127.0.0.1, in-process, given what a client should not send:
//! bad requests and random garbage, a full disk, limits (connections, sizes), clients that
//! vanish or stall mid-upload and interrupted appends.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

#[path = "storage_service_support/mod.rs"]
mod support;

use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::storage::MetaOp;
use fdfs_ha::proto::{Header, HEADER_LEN};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errno_and_never_escape_the_store() {
    let st = Storage::start("max_body: 4096\n", 1).await;
    let mut c = st.conn().await;
    let f = c.upload(0, b"x", "txt").await.unwrap();
    // Wrong group.
    assert_eq!(
        status(c.download("group2", &f.filename, 0, 0).await),
        errno::EINVAL
    );
    assert_eq!(status(c.delete("other", &f.filename).await), errno::EINVAL);
    // Hostile or non-FastDFS names.
    for bad in [
        "M00/00/00/../../../../../etc/passwd",
        "M00/00/00/../../data/00/00/x",
        "M00/00/00/abc/def",
        "M00/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788\0.txt",
        "M00/00/00/notafastdfsname",
        "/etc/passwd",
        "M05/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt",
        "M00/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt-m",
    ] {
        assert_eq!(
            status(c.download("group1", bad, 0, 0).await),
            errno::EINVAL,
            "{bad:?}"
        );
        assert_eq!(
            status(c.delete("group1", bad).await),
            errno::EINVAL,
            "{bad:?}"
        );
        assert_eq!(
            status(c.set_metadata("group1", bad, &[], MetaOp::Merge).await),
            errno::EINVAL,
            "{bad:?}"
        );
    }
    // Bad extension, store path out of range. (`tar.gz` is a good one: C FastDFS stores it, seed
    // 002's file IDs end in `.tar.gz`.)
    assert_eq!(status(c.upload(0, b"x", "a b").await), errno::EINVAL);
    assert_eq!(status(c.upload(0, b"x", ".ab").await), errno::EINVAL);
    assert_eq!(status(c.upload(0, b"x", "../x").await), errno::EINVAL);
    assert_eq!(status(c.upload(7, b"x", "txt").await), errno::EINVAL);
    c.active_test().await.unwrap();

    // Unknown command with a small body: EINVAL, connection stays usable.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let (h, _) = raw_request(&mut s, &frame(250, b"junk")).await.unwrap();
    assert_eq!((h.cmd, h.status), (cmd::RESP, errno::EINVAL));
    let (h, _) = raw_request(&mut s, &frame(cmd::ACTIVE_TEST, &[]))
        .await
        .unwrap();
    assert_eq!(h.status, 0);
    // A FastDFS command we do not serve (CREATE_LINK) is refused the same way.
    let (h, _) = raw_request(&mut s, &frame(20, &[0; 30])).await.unwrap();
    assert_eq!(h.status, errno::EINVAL);

    // Body length over max_body on a small-body command: EINVAL, then closed.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let hdr = Header::new(cmd::DELETE_FILE, 0, 1 << 20).encode();
    let (h, _) = raw_request(&mut s, &hdr).await.unwrap();
    assert_eq!(h.status, errno::EINVAL);
    assert!(closed_by_server(&mut s).await);

    // Negative length.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let mut neg = [0xffu8; HEADER_LEN];
    neg[8] = cmd::UPLOAD_FILE;
    neg[9] = 0;
    let (h, _) = raw_request(&mut s, &neg).await.unwrap();
    assert_eq!(h.status, errno::EINVAL);
    assert!(closed_by_server(&mut s).await);

    // Upload whose file_size disagrees with the header: EINVAL, closed.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let mut body = vec![0u8];
    body.extend_from_slice(&100u64.to_be_bytes());
    body.extend_from_slice(b"txt\0\0\0");
    body.extend_from_slice(b"abc");
    let (h, _) = raw_request(&mut s, &frame(cmd::UPLOAD_FILE, &body))
        .await
        .unwrap();
    assert_eq!(h.status, errno::EINVAL);
    assert!(closed_by_server(&mut s).await);

    // A body too short for its command.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let (h, _) = raw_request(&mut s, &frame(cmd::UPLOAD_FILE, b"abc"))
        .await
        .unwrap();
    assert_eq!(h.status, errno::EINVAL);
    let (h, _) = raw_request(&mut s, &frame(cmd::DOWNLOAD_FILE, &[0; 20]))
        .await
        .unwrap();
    assert_eq!(h.status, errno::EINVAL);
    let (h, _) = raw_request(&mut s, &frame(cmd::ACTIVE_TEST, &[]))
        .await
        .unwrap();
    assert_eq!(h.status, 0);

    // Truncated body (client promises 60 bytes, sends 10, hangs up): nothing breaks.
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let mut partial = Header::new(cmd::DELETE_FILE, 0, 60).encode().to_vec();
    partial.extend_from_slice(b"group1\0\0\0\0");
    s.write_all(&partial).await.unwrap();
    drop(s);

    // Nothing was created outside the store, and the store holds only the one upload.
    st.settle();
    let data_files: Vec<_> = stored_files(&st.paths[0]);
    assert_eq!(data_files.len(), 1, "{data_files:?}");
    assert!(st.state.stats().snapshot().bad_requests >= 10);
    let mut c = st.conn().await;
    c.active_test().await.unwrap();
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_space_is_enospc() {
    let st = Storage::start("", 1).await;
    st.state.set_group_params(fdfs_ha::storage::GroupParams {
        reserved_storage_space: Some(fdfs_ha::config::Reserved::Percent(99.999)),
        ..Default::default()
    });
    let mut c = st.conn().await;
    assert_eq!(status(c.upload(0, b"x", "txt").await), errno::ENOSPC);
    assert_eq!(status(c.upload(255, b"x", "txt").await), errno::ENOSPC);
    c.active_test().await.unwrap();
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_upload_leaves_no_file() {
    let st = Storage::start("", 1).await;
    for (size, sent) in [(4u64 << 20, 1usize << 20), (100_000, 1_000)] {
        let mut s = TcpStream::connect(st.addr).await.unwrap();
        let mut head = vec![0u8];
        head.extend_from_slice(&size.to_be_bytes());
        head.extend_from_slice(b"bin\0\0\0");
        let mut msg = Header::new(cmd::UPLOAD_FILE, 0, head.len() as u64 + size)
            .encode()
            .to_vec();
        msg.extend_from_slice(&head);
        msg.extend(std::iter::repeat_n(7u8, sent));
        s.write_all(&msg).await.unwrap();
        if size > 1 << 20 {
            // The large upload is streaming into a temp file by now.
            let tmp = st.tmp_dir(0);
            wait_until("temp file appears", || !files_under(&tmp).is_empty()).await;
        }
        drop(s);
        let tmp = st.tmp_dir(0);
        wait_until("temp file removed", || files_under(&tmp).is_empty()).await;
    }
    let data_files: Vec<_> = stored_files(&st.paths[0]);
    assert!(data_files.is_empty(), "{data_files:?}");
    assert!(st.binlog_ops().is_empty());
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_is_dropped_and_its_temp_file_removed() {
    let st = Storage::start("network_timeout: 300ms\n", 1).await;
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let size = 2u64 << 20;
    let mut msg = Header::new(cmd::UPLOAD_FILE, 0, 15 + size)
        .encode()
        .to_vec();
    msg.push(0);
    msg.extend_from_slice(&size.to_be_bytes());
    msg.extend_from_slice(b"bin\0\0\0");
    msg.extend(std::iter::repeat_n(1u8, 600_000));
    s.write_all(&msg).await.unwrap();
    let tmp = st.tmp_dir(0);
    wait_until("temp file appears", || !files_under(&tmp).is_empty()).await;
    // Stall: the storage gives up after network_timeout.
    assert!(closed_by_server(&mut s).await);
    wait_until("temp file removed", || files_under(&tmp).is_empty()).await;
    // An idle connection is closed as well.
    let mut idle = TcpStream::connect(st.addr).await.unwrap();
    assert!(closed_by_server(&mut idle).await);
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_enforced() {
    let st = Storage::start("max_connections: 2\n", 1).await;
    let mut a = st.conn().await;
    let mut b = st.conn().await;
    a.active_test().await.unwrap();
    b.active_test().await.unwrap();
    let mut third = TcpStream::connect(st.addr).await.unwrap();
    let _ = third.write_all(&frame(cmd::ACTIVE_TEST, &[])).await;
    assert!(closed_by_server(&mut third).await);
    assert_eq!(st.state.stats().snapshot().connections_refused, 1);
    drop(a);
    let state = st.state.clone();
    wait_until("a slot frees up", || {
        state.stats().snapshot().connections_current < 2
    })
    .await;
    let mut c = st.conn().await;
    c.active_test().await.unwrap();
    b.active_test().await.unwrap();
    assert_eq!(st.state.stats().snapshot().connections_max, 2);
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_upload_and_interrupted_append() {
    let st = Storage::start("max_file_size: 1000\n", 1).await;
    let mut c = st.conn().await;
    // Over max_file_size: EINVAL and the connection is closed (the body is not read).
    assert_eq!(
        status(c.upload(0, &[0u8; 2000], "bin").await),
        errno::EINVAL
    );
    let mut c = st.conn().await;
    let a = c.upload_appender(0, b"keep", "log").await.unwrap();
    assert_eq!(
        status(c.append(&a.filename, &[1u8; 1000]).await),
        errno::EINVAL
    );
    st.stop().await;

    // An append whose client vanishes half way (after a first chunk reached the disk) is cut
    // back to the old size.
    let st = Storage::start("", 1).await;
    let mut c = st.conn().await;
    let a = c.upload_appender(0, b"keep", "log").await.unwrap();
    let mut s = TcpStream::connect(st.addr).await.unwrap();
    let size = 3u64 << 20;
    let mut head = (a.filename.len() as u64).to_be_bytes().to_vec();
    head.extend_from_slice(&size.to_be_bytes());
    head.extend_from_slice(a.filename.as_bytes());
    let mut msg = Header::new(cmd::APPEND_FILE, 0, head.len() as u64 + size)
        .encode()
        .to_vec();
    msg.extend_from_slice(&head);
    msg.extend_from_slice(&[2u8; 300]);
    s.write_all(&msg).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.download("group1", &a.filename, 0, 0).await.unwrap(),
        b"keep"
    );
    assert_eq!(st.state.current_write_path(), 0);
    st.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_never_takes_the_storage_down() {
    use rand::{Rng, SeedableRng};
    let st = Storage::start("network_timeout: 500ms\nmax_body: 4096\n", 1).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let commands = [
        cmd::UPLOAD_FILE,
        cmd::UPLOAD_APPENDER_FILE,
        cmd::UPLOAD_SLAVE_FILE,
        cmd::APPEND_FILE,
        cmd::MODIFY_FILE,
        cmd::TRUNCATE_FILE,
        cmd::DOWNLOAD_FILE,
        cmd::DELETE_FILE,
        cmd::SET_METADATA,
        cmd::GET_METADATA,
        cmd::QUERY_FILE_INFO,
        cmd::REPORT_SERVER_ID,
        200,
    ];
    for _ in 0..150 {
        let mut s = TcpStream::connect(st.addr).await.unwrap();
        let body_len: usize = rng.gen_range(0..300);
        let mut body: Vec<u8> = (0..body_len).map(|_| rng.gen()).collect();
        // Make some bodies look plausible: small big-endian lengths in the first fields.
        if rng.gen_bool(0.5) && body.len() >= 16 {
            body[..8].copy_from_slice(&(rng.gen_range(0..64u64)).to_be_bytes());
            body[8..16].copy_from_slice(&(rng.gen_range(0..64u64)).to_be_bytes());
        }
        let c = commands[rng.gen_range(0..commands.len())];
        // Sometimes lie about the length (longer or shorter than what is sent).
        let claimed = match rng.gen_range(0..3) {
            0 => body.len() as u64,
            1 => body.len() as u64 + rng.gen_range(1..100),
            _ => (body.len() as u64).saturating_sub(rng.gen_range(0..10)),
        };
        let mut msg = Header::new(c, 0, claimed).encode().to_vec();
        msg.extend_from_slice(&body);
        let _ = s.write_all(&msg).await;
        let mut sink = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_millis(20), s.read(&mut sink)).await;
    }
    let mut c = st.conn().await;
    c.active_test().await.unwrap();
    let f = c.upload(0, b"still fine", "txt").await.unwrap();
    assert_eq!(
        c.download("group1", &f.filename, 0, 0).await.unwrap(),
        b"still fine"
    );
    // Nothing landed outside the store path.
    for p in files_under(st._dir.path()) {
        assert!(p.starts_with(&st.paths[0]), "{}", p.display());
    }
    st.stop().await;
}
