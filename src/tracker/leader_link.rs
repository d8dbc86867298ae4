//! The I/O side of the tracker leader election (`leader` decides): asks the other trackers'
//! GET_STATUS (64) when no leader is known, announces a win with NOTIFY_NEXT_LEADER (66) and
//! COMMIT_NEXT_LEADER (67), and follows the leader with JOIN_LEADER (58) then one
//! PING_LEADER (65) per second on the same connection, as C 6.16.1 trackers do
//! (tracker-pair.txt #67-#74, #127-#130). Outgoing connections are not bound (C's are not).

use super::leader::{Decision, Role};
use super::service::Tracker;
use crate::client::tracker::request;
use crate::clock::unix_now_i64;
use crate::proto::fields::{put_fixed, put_u64};
use crate::proto::tracker_peer::{self as tp, TrackerStatus};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// C's version string in JOIN_LEADER (8 bytes, NUL-padded).
pub(super) const VERSION: &str = "6.16.1";

/// One request on a fresh connection, bounded by `timeout` as a whole.
async fn call_once(addr: &str, command: u8, body: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        request(&mut s, command, body).await.ok()
    };
    tokio::time::timeout(timeout, fut).await.ok().flatten()
}

/// GET_STATUS of one peer; None when it is down, refuses, or says it has no data.
async fn get_status(addr: &str, timeout: Duration) -> Option<TrackerStatus> {
    let body = call_once(addr, tp::TRACKER_GET_STATUS, &[], timeout).await?;
    TrackerStatus::decode(&body).ok()
}

/// NOTIFY then COMMIT on one connection; a peer that does not answer is skipped (C does).
async fn announce(addr: &str, me: &str, timeout: Duration) {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        request(&mut s, tp::TRACKER_NOTIFY_NEXT_LEADER, me.as_bytes())
            .await
            .ok()?;
        request(&mut s, tp::TRACKER_COMMIT_NEXT_LEADER, me.as_bytes())
            .await
            .ok()
    };
    if tokio::time::timeout(timeout, fut)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        tracing::info!(peer = %addr, "tracker did not take our leader announcement");
    }
}

/// The connection to the leader we follow.
struct Following {
    addr: String,
    stream: TcpStream,
}

/// JOIN_LEADER body: up_time 8 | version 8 | port 8 (#127).
fn join_leader_body(start_unix: i64, port: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    put_u64(&mut b, start_unix as u64);
    put_fixed(&mut b, VERSION.as_bytes(), 8);
    put_u64(&mut b, port as u64);
    b
}

/// One ping to `addr`, joining it first on a new connection. False on any failure.
async fn ping(
    following: &mut Option<Following>,
    addr: &str,
    join_body: &[u8],
    counters: [u32; 3],
    timeout: Duration,
) -> bool {
    if following.as_ref().is_some_and(|f| f.addr != addr) {
        *following = None;
    }
    if following.is_none() {
        let fut = async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            request(&mut s, tp::TRACKER_JOIN_LEADER, join_body)
                .await
                .ok()?;
            Some(s)
        };
        match tokio::time::timeout(timeout, fut).await.ok().flatten() {
            Some(stream) => {
                *following = Some(Following {
                    addr: addr.to_string(),
                    stream,
                })
            }
            None => return false,
        }
    }
    let Some(f) = following.as_mut() else {
        return false;
    };
    let body: Vec<u8> = counters.iter().flat_map(|c| c.to_be_bytes()).collect();
    let ok = tokio::time::timeout(
        timeout,
        request(&mut f.stream, tp::TRACKER_PING_LEADER, &body),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !ok {
        *following = None;
    }
    ok
}

/// Runs until `shutdown`: one step per second.
pub async fn run(tracker: Arc<Tracker>, start_unix: i64, shutdown: CancellationToken) {
    let timeout = tracker
        .cfg
        .network_timeout
        .get()
        .max(Duration::from_millis(200));
    let join_body = join_leader_body(start_unix, tracker.cfg.listen.port());
    let mut following: Option<Following> = None;
    let mut next_round = Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let (role, peers) = {
            let st = tracker.state.lock().unwrap_or_else(|p| p.into_inner());
            (st.peers.election.role().clone(), st.peers.election.peers())
        };
        match role {
            Role::Leader => following = None,
            Role::Unknown => {
                following = None;
                if peers.is_empty() || Instant::now() < next_round {
                    continue;
                }
                let mut answers = Vec::with_capacity(peers.len());
                for p in &peers {
                    answers.push((p.clone(), get_status(p, timeout).await));
                }
                let decision = tracker
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .peers
                    .election
                    .round(unix_now_i64(), &answers);
                match decision {
                    Decision::Lead { notify, me } => {
                        tracing::info!(%me, "this tracker leads");
                        for p in notify {
                            announce(&p, &me, timeout).await;
                        }
                    }
                    Decision::Follow(leader) => tracing::info!(%leader, "following tracker"),
                    // C sleeps a random 1-10 s after a round that named another tracker
                    // which has not announced itself yet.
                    Decision::Wait => {
                        let secs = rand::thread_rng().gen_range(1..=10);
                        next_round = Instant::now() + Duration::from_secs(secs);
                    }
                }
            }
            Role::Follower(addr) => {
                let conns = tracker
                    .counters
                    .connections
                    .load(std::sync::atomic::Ordering::Relaxed);
                let counters = [tracker.cfg.max_connections as u32, conns as u32, 0];
                let ok = ping(&mut following, &addr, &join_body, counters, timeout).await;
                tracker
                    .state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .peers
                    .election
                    .leader_ping(ok);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tracker-pair.txt #127.
    #[test]
    fn join_leader_body_as_captured() {
        let b = join_leader_body(1796459528, 22122);
        assert_eq!(
            b,
            [
                0, 0, 0, 0, 0x6b, 0x13, 0xcc, 0x08, b'6', b'.', b'1', b'6', b'.', b'1', 0, 0, 0, 0,
                0, 0, 0, 0, 0x56, 0x6a
            ]
        );
    }
}
