//! The I/O side of the system-file copy (`sys_files` decides): GET_STATUS to the trackers a
//! held JOIN names, then 61 / 63... / 62 on one connection to the best one with data, then the
//! view is replaced. One copy at a time; JOINs that were held meanwhile find it done.

use super::service::Tracker;
use super::sys_files::{pick_source, to_snapshot, CopyError, SysFileCopy};
use crate::client::tracker::request;
use crate::clock::unix_now_i64;
use crate::proto::tracker_peer::{self as tp, TrackerStatus};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// GET_STATUS of one peer, and the connection it went on (C copies on that same connection,
/// tracker-pair.txt conn#12 and conn#53). None when it is down, refuses, or says it has no
/// data (ENOENT).
async fn status(addr: &str, timeout: Duration) -> Option<(TrackerStatus, TcpStream)> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let body = request(&mut s, tp::TRACKER_GET_STATUS, &[]).await.ok()?;
        Some((TrackerStatus::decode(&body).ok()?, s))
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}

/// The four files of `addr` on `s`, each request bounded by `timeout`.
async fn fetch(addr: &str, mut s: TcpStream, timeout: Duration) -> Result<[Vec<u8>; 4], CopyError> {
    let io = |e: String| CopyError(format!("{addr}: {e}"));
    let mut copy = SysFileCopy::new();
    while let Some((command, body)) = copy.next_request() {
        let answer = tokio::time::timeout(timeout, request(&mut s, command, &body))
            .await
            .map_err(|_| io(format!("command {command} timed out")))?
            .map_err(|e| io(format!("command {command}: {e}")))?;
        copy.on_answer(&answer)
            .map_err(|e| io(format!("command {command}: {e}")))?;
    }
    copy.files().ok_or_else(|| io("copy ended early".into()))
}

/// Copies the system files of the best of `peers` that has data, unless that was done
/// already. Ok: JOINs may be served (copied, or nobody had data); Err: the JOIN gets EAGAIN.
pub(super) async fn copy(tracker: &Tracker, peers: &[String]) -> Result<(), CopyError> {
    let _one = tracker.sys_copy.lock().await;
    if !tracker.sys_files_needed() {
        return Ok(());
    }
    let timeout = tracker
        .cfg
        .network_timeout
        .get()
        .max(Duration::from_millis(200));
    let mut answers = Vec::with_capacity(peers.len());
    let mut streams = Vec::with_capacity(peers.len());
    for p in peers {
        let (st, stream) = status(p, timeout).await.unzip();
        answers.push((p.clone(), st));
        streams.push(stream);
    }
    let Some(source) = pick_source(&answers) else {
        tracing::info!(?peers, "no other tracker has data; serving without a copy");
        tracker.sys_files_copied(None, Instant::now(), unix_now_i64());
        return Ok(());
    };
    let stream = answers
        .iter()
        .zip(streams)
        .find(|((a, _), _)| *a == source)
        .and_then(|(_, s)| s);
    let Some(stream) = stream else {
        return Err(CopyError(format!("{source}: no connection")));
    };
    let result = fetch(&source, stream, timeout)
        .await
        .and_then(|files| to_snapshot(&files, tracker.cfg.use_storage_id));
    match result {
        Ok(snap) => {
            tracing::info!(%source, "system files copied");
            tracker.sys_files_copied(Some(&snap), Instant::now(), unix_now_i64());
            Ok(())
        }
        Err(e) => {
            crate::limited!(tracker.logs, warn, "sys_files", %source, error = %e, "cannot copy the system files; storage JOINs wait");
            Err(e)
        }
    }
}
