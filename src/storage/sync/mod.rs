//! Replication inside a group, sending side: replays this storage's binlog to every other
//! storage of its group, one sender task per peer. (The receiving side — applying SYNC_* and
//! logging lower-case replica records — is in service.rs.)
//!
//! ```text
//!  trackers ──BEAT replies: group server list──> StorageState::group_servers
//!  run_sync (manager): one peer_task per member except us; a member that leaves the list or
//!    turns DELETED / IP_CHANGED has its task stopped; a new one gets a task
//!  peer_task: LANES (4) connections, each opened with REPORT_SERVER_ID(our id); then, per
//!    batch of up to 256 binlog records from the mark:
//!    plan(record, mark) -> SYNC_CREATE_FILE / SYNC_UPDATE_FILE / SYNC_DELETE_FILE /
//!                          SYNC_APPEND_FILE / SYNC_MODIFY_FILE / SYNC_TRUNCATE_FILE / skip
//!    lane_of(file): one file's records go in order over one connection, different files
//!    in parallel (the peer's fsyncs overlap); a batch counts as applied once every lane's
//!    records were answered. The peer flushes small new files in batches, so an answer is not
//!    yet durability: the mark moves only to what the peer confirmed by answering a
//!    SYNC_WATERMARK (sent when the watermark moves, and at idle when something is
//!    unconfirmed); it is persisted every `write_mark_every` records, when idle and on exit.
//!    On a connect / I/O / refusal error: log the reason, back off (sync.retry_backoff_min
//!    doubling to _max), reconnect and replay from the mark (every record is safe to apply
//!    twice: EEXIST / ENOENT / same bytes at the same offset).
//!    Idle connections get ACTIVE_TEST every network_timeout/3 (peers drop idle ones).
//! ```
//!
//! Content: small files go with sendfile(2) from the page cache. With fsync on, files of
//! `direct_io_min_size` and more were uploaded with O_DIRECT and are not cached; they are read
//! with O_DIRECT in 1 MiB chunks, one chunk ahead of the socket (`DirectChunks`), instead of
//! filling the page cache with a stream read once.
//!
//! What is sent (FastDFS's rules): only source records (upper case: a client did it here);
//! replica records (lower case) are not forwarded, except by the *designated source* of a
//! newcomer while it copies the old data (below). Files are read at send time: a file
//! deleted since is skipped, an append/modify whose range no longer exists (truncated since)
//! and one the peer refuses with ENOENT are sent as a whole-file SYNC_UPDATE_FILE. The peer answering EEXIST to a create or
//! ENOENT to a delete counts as done. Metadata travels as the `<name>-m` sidecar file
//! (C/U/D records of that name). File IDs, bytes and timestamps are the source's: the receiver
//! writes the same name, and the record timestamp travels in the request.
//!
//! Mark files: `<base>/data/sync/<ip>_<port>.mark` (or `<storage id>.mark` with
//! `use_storage_id`), key=value lines written atomically (temp + fsync + rename):
//! `binlog_index`, `binlog_offset` (next record to send; the peer confirmed every record
//! before it), `need_sync_old` (1: we copy all old
//! data to this peer), `sync_old_done`, `until_timestamp` (the newcomer's sync-source time),
//! `scan_row_count` (records looked at), `sync_row_count` (records sent), `sync_bytes`,
//! `synced_timestamp` (timestamp of the newest record sent).
//!
//! Newcomers (status moves, as FastDFS): an empty storage joins with init_flag=1 -> INIT; it
//! asks SYNC_DEST_REQ and the tracker picks a source S and `until = now` -> WAIT_SYNC. Every
//! member, on first meeting a peer (no mark file yet, peer not INIT), asks a tracker
//! SYNC_SRC_REQ for that peer. S (the answer names it) sets `need_sync_old`, reports the peer
//! SYNCING (REPORT_STATUS), replays its whole binlog from the start (source records, and
//! replica records stamped <= until), and at the end of the binlog reports the peer OFFLINE
//! on every tracker; the newcomer's next BEAT makes it ACTIVE (trackers hand out only ACTIVE
//! storages). Unlike FastDFS, the other members do not skip their own records stamped
//! <= until: they send the newcomer all of their own records from their binlog start, so a
//! record still travelling to S when S's copy ended is not lost (what S already copied is
//! answered EEXIST). S stops forwarding replica records when its copy ends, so a file deleted
//! at its source later is not brought back. (Remaining window: S forwards a create during the
//! copy after the file's source already had its delete applied on the newcomer; the source
//! replays its binlog from the start, so its delete normally arrives later.) The newcomer
//! learns it is done from the server list (itself ONLINE/OFFLINE/ACTIVE) and writes
//! `<base>/data/.data_init_flag` (sync_old_done=1), so it joins with init_flag=0 afterwards.
//!
//! Progress for reads: once the peer has applied every record before a binlog position, the
//! sender tells it a watermark (SYNC_WATERMARK): every file we created before that second is
//! there (`StorageState::sync_checkpoint` keeps it below files still being written and records
//! not yet readable). The peer answers once everything it acknowledged is on its disk (the
//! confirmation above; a peer that refuses the command, a C storage, is taken at its
//! acknowledgements). The peer reports it with SYNC_REPORT; trackers hand a storage out for
//! QUERY_FETCH only for files created before it (select.rs). A record failing on one lane
//! therefore holds the watermark back while the other lanes deliver newer files.
//!
//! Lag: every sender publishes its position, bytes of binlog left, seconds behind and counters
//! (`StorageState::peer_sync`); `fdfs-ha monitor` asks each storage for them with the fdfs-ha
//! command SYNC_STATUS_QUERY (200, empty body -> JSON).
//!
//! Where things are: `mark` (a peer's mark file), `plan` (what a record turns into on the
//! wire), `sender` (one task per peer: sessions, watermarks, the newcomer's copy), `lane`
//! (one connection of a sender: sends records, reads file content), `report` (lag, the
//! status query). The manager (`run_sync`) is here.

mod lane;
mod mark;
mod plan;
mod report;
mod sender;

pub use lane::{lane_of, local_path};
pub use mark::{initial_mark, mark_is_stale, mark_name, mark_path, Mark, MarkError};
pub use plan::{plan, Plan};
pub use report::{bytes_between, records_between, sync_report};
pub use sender::{settled_watermark, Backoff, LANES};

use super::state::StorageState;
use crate::proto::tracker::{StorageBrief, StorageStatus};
use sender::peer_task;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A peer's status as the trackers' server list gives it.
pub(super) fn status_of(b: &StorageBrief) -> Option<StorageStatus> {
    StorageStatus::from_u8(b.status)
}

/// Whether a member of the list should have a sender (not us, not removed).
pub fn wants_sender(peer: &StorageBrief, my_id: &str, my_port: u16) -> bool {
    if peer.id == my_id && peer.port == my_port {
        return false;
    }
    !matches!(
        status_of(peer),
        Some(StorageStatus::Deleted) | Some(StorageStatus::IpChanged)
    )
}

/// Keeps one sender per group peer running until `shutdown`.
pub async fn run_sync(state: Arc<StorageState>, shutdown: CancellationToken) {
    let mut tasks: HashMap<String, (watch::Sender<StorageBrief>, CancellationToken)> =
        HashMap::new();
    let mut set = tokio::task::JoinSet::new();
    loop {
        if let Some((my_id, _)) = state.tracker_identity() {
            let use_id = state.group_params().use_storage_id;
            let mut seen = Vec::new();
            for peer in state.group_servers() {
                let name = mark_name(&peer, use_id);
                if !wants_sender(&peer, &my_id, state.port()) {
                    // Its sender (stopped below) sees why: a DELETED peer's mark says so.
                    if let Some((tx, _)) = tasks.get(&name) {
                        tx.send_replace(peer.clone());
                    }
                    continue;
                }
                seen.push(name.clone());
                match tasks.get(&name) {
                    Some((tx, _)) => {
                        tx.send_if_modified(|cur| {
                            let changed = *cur != peer;
                            *cur = peer.clone();
                            changed
                        });
                    }
                    None => {
                        tracing::info!(peer = %name, status = %crate::proto::tracker::status_name(peer.status), "sync: starting sender");
                        let (tx, rx) = watch::channel(peer.clone());
                        let stop = shutdown.child_token();
                        set.spawn(peer_task(state.clone(), name.clone(), rx, stop.clone()));
                        tasks.insert(name, (tx, stop));
                    }
                }
            }
            tasks.retain(|name, (_, stop)| {
                let keep = seen.contains(name);
                if !keep {
                    tracing::info!(peer = %name, "sync: peer left the group; stopping its sender");
                    stop.cancel();
                }
                keep
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.group_servers_changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            Some(_) = set.join_next(), if !set.is_empty() => {}
        }
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
