//! The client library's upload when the storage the tracker names cannot be connected to
//! (killed a moment ago; the tracker has not noticed yet): nothing was sent, so the client asks
//! the tracker again instead of failing the upload. A scripted tracker on 127.0.0.1 names a
//! closed port first and a storage that answers after that; a storage that takes the body and
//! then drops the connection is not retried (the file may have been stored).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::client::{ClientError, FdfsClient};
use fdfs_ha::proto::cmd;
use fdfs_ha::proto::connection::{read_message, write_message};
use fdfs_ha::proto::storage::UploadResp;
use fdfs_ha::proto::tracker::{StorageAddr, StoreTarget};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Answers every store query with the next port of `ports` (the last one repeats); counts them.
async fn scripted_tracker(ports: Vec<u16>) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (ports, count) = (ports.clone(), count.clone());
            tokio::spawn(async move {
                while let Ok((h, _)) = read_message(&mut s, 1024).await {
                    assert_eq!(h.cmd, cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE);
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let target = StoreTarget {
                        group: "group1".into(),
                        addr: StorageAddr {
                            ip: "127.0.0.1".into(),
                            port: ports[n.min(ports.len() - 1)],
                        },
                        store_path_index: 0,
                    };
                    let body = target.encode(16);
                    if write_message(&mut s, cmd::RESP, 0, &body).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, asked)
}

/// A storage that reads one upload and answers with a file ID, or (`drop_after_body`) closes
/// the connection without answering, as a storage killed mid-request does.
async fn storage(drop_after_body: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                while let Ok((h, _)) = read_message(&mut s, 1 << 20).await {
                    assert_eq!(h.cmd, cmd::UPLOAD_FILE);
                    if drop_after_body {
                        return;
                    }
                    let resp = UploadResp {
                        group: "group1".into(),
                        filename: "M00/00/00/wKgDF2sVwZaAbH6YAAAEQBy3fGU965.txt".into(),
                    };
                    if write_message(&mut s, cmd::RESP, 0, &resp.encode())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn client(tracker: SocketAddr) -> FdfsClient {
    FdfsClient::with_timeout(vec![tracker], Duration::from_secs(2))
}

#[tokio::test]
async fn an_unreachable_storage_makes_the_upload_ask_the_tracker_again() {
    let (dead, live) = (closed_port().await, storage(false).await);
    let (tracker, asked) = scripted_tracker(vec![dead, dead, live]).await;
    let id = client(tracker)
        .upload_buffer(b"hello", "txt")
        .await
        .expect("the third storage named answers");
    assert_eq!(id, "group1/M00/00/00/wKgDF2sVwZaAbH6YAAAEQBy3fGU965.txt");
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_tracker_is_asked_again_at_most_twice() {
    let dead = closed_port().await;
    let (tracker, asked) = scripted_tracker(vec![dead]).await;
    let e = client(tracker)
        .upload_buffer(b"hello", "txt")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::StorageUnreachable { .. }), "{e:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_upload_cut_off_after_its_body_is_not_repeated() {
    let (cut, live) = (storage(true).await, storage(false).await);
    let (tracker, asked) = scripted_tracker(vec![cut, live]).await;
    let e = client(tracker)
        .upload_buffer(b"hello", "txt")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Storage { .. }), "{e:?}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "an upload that may be stored was sent again"
    );
}

#[tokio::test]
async fn a_streamed_upload_asks_the_tracker_again_too() {
    let (dead, live) = (closed_port().await, storage(false).await);
    let (tracker, asked) = scripted_tracker(vec![dead, live]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.txt");
    std::fs::write(&file, b"hello").unwrap();
    client(tracker)
        .upload_path(&file)
        .await
        .expect("the second storage named answers");
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}
