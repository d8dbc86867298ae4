//! The storage node's metrics, read from its state at scrape time: content bytes, free space per
//! store path, sync lag per peer, upload journal, connections; plus its live [`Requests`].
//!
//! Sync lag is the exact report `fdfs-ha monitor` shows (`sync::sync_report`: unsent records
//! counted in the binlog, unflushed ones included, and the age of the oldest), not the senders'
//! cheap live view, whose record count is not kept. It reads the unsent binlog (at most 64 MiB
//! per peer), so scrapes render off the async threads (`supervisor::status`).

use crate::metrics::{
    labels, set_counter, set_gauge, CounterFamily, GaugeFamily, Requests, Source,
};
use crate::storage::state::StorageState;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

pub struct StorageSource {
    pub state: Arc<StorageState>,
    pub requests: Requests,
}

impl Source for StorageSource {
    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.state.logs().counts()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let st = &self.state;
        let cfg = st.config();
        let faults = st.store().path_faults();
        let paths: Vec<serde_json::Value> = st
            .disk_usage()
            .iter()
            .enumerate()
            .map(|(i, u)| {
                serde_json::json!({
                    "path": cfg.store_paths.get(i).map(|p| p.display().to_string()),
                    "free_mb": u.free_mb,
                    "total_mb": u.total_mb,
                    "unwritable": faults.get(i).cloned().flatten(),
                })
            })
            .collect();
        let peers: Vec<serde_json::Value> = crate::storage::sync::sync_report(st)
            .peers
            .iter()
            .map(|p| {
                serde_json::json!({
                    "peer": p.peer,
                    "state": p.state,
                    "binlog": format!("{}:{}", p.binlog_index, p.binlog_offset),
                    "records_behind": p.records_behind,
                    "bytes_behind": p.bytes_behind,
                    "seconds_behind": p.seconds_behind,
                })
            })
            .collect();
        Some(serde_json::json!({
            "group": st.group(),
            "trackers": cfg.trackers,
            "joined_as": st.tracker_identity().map(|(id, ip)| format!("{id} ({ip})")),
            "store_paths": paths,
            "sync": peers,
            "journal_pending": st.store().journal_pending(),
            "journals": st.store().journal_stats().iter().enumerate().filter_map(|(i, j)| {
                j.map(|j| serde_json::json!({
                    "store_path": format!("M{i:02}"),
                    "active_used_bytes": j.active_used_bytes,
                    "segment_room_bytes": j.segment_room_bytes,
                    "unsettled_files": j.unsettled_files,
                    "settled_files": j.settled_files,
                    "flushes": j.flushes,
                    "failed": j.failed,
                    "stuck_segments": j.stuck_segments,
                }))
            }).collect::<Vec<_>>(),
        }))
    }

    fn register(&self, reg: &mut Registry) {
        self.requests.register(reg);
        let st = &self.state;
        let s = st.stats().snapshot();
        let bytes = CounterFamily::default();
        for (op, c) in [
            ("upload", s.upload_bytes),
            ("append", s.append_bytes),
            ("modify", s.modify_bytes),
            ("download", s.download_bytes),
            ("sync_in", s.sync_in_bytes),
            ("sync_out", s.sync_out_bytes),
        ] {
            set_counter(&bytes, labels([("op", op)]), c.success);
        }
        reg.register_with_unit(
            "storage_file",
            "file content stored, sent or replicated, by operation",
            Unit::Bytes,
            bytes,
        );
        let ops = CounterFamily::default();
        for (op, c) in [
            ("upload", s.upload),
            ("download", s.download),
            ("delete", s.delete),
            ("append", s.append),
            ("modify", s.modify),
            ("truncate", s.truncate),
        ] {
            set_counter(&ops, labels([("op", op), ("result", "ok")]), c.success);
            set_counter(
                &ops,
                labels([("op", op), ("result", "error")]),
                c.total.saturating_sub(c.success),
            );
        }
        reg.register("storage_operations", "file operations by result", ops);

        let (free, total) = (GaugeFamily::default(), GaugeFamily::default());
        let writable = GaugeFamily::default();
        let paths = &st.config().store_paths;
        let faults = st.store().path_faults();
        for (i, u) in st.disk_usage().iter().enumerate() {
            let p = paths
                .get(i)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let l = labels([("store_path", &format!("M{i:02}")), ("path", &p)]);
            set_gauge(&free, l.clone(), (u.free_mb * 1024 * 1024) as f64);
            set_gauge(&total, l.clone(), (u.total_mb * 1024 * 1024) as f64);
            let ok = faults.get(i).is_some_and(|f| f.is_none());
            set_gauge(&writable, l, if ok { 1.0 } else { 0.0 });
        }
        reg.register(
            "storage_store_path_writable",
            "1 while the store path takes new files; 0 when read-only, gone or failing writes \
             (reported to the trackers with 0 MB free)",
            writable,
        );
        reg.register_with_unit(
            "storage_store_path_free",
            "free space per store path",
            Unit::Bytes,
            free,
        );
        reg.register_with_unit(
            "storage_store_path_size",
            "size of each store path's file system",
            Unit::Bytes,
            total,
        );

        let (recs, lag_bytes, secs, state) = (
            GaugeFamily::default(),
            GaugeFamily::default(),
            GaugeFamily::default(),
            GaugeFamily::default(),
        );
        for p in crate::storage::sync::sync_report(st).peers {
            let l = labels([("peer", &p.peer)]);
            set_gauge(&recs, l.clone(), p.records_behind as f64);
            set_gauge(&lag_bytes, l.clone(), p.bytes_behind as f64);
            set_gauge(&secs, l, p.seconds_behind as f64);
            set_gauge(
                &state,
                labels([("peer", &p.peer), ("state", &p.state)]),
                1.0,
            );
        }
        reg.register(
            "storage_sync_lag_records",
            "binlog records the peer has not applied yet (flushed or not)",
            recs,
        );
        reg.register_with_unit(
            "storage_sync_lag",
            "binlog bytes the peer has not applied yet (flushed or not)",
            Unit::Bytes,
            lag_bytes,
        );
        reg.register_with_unit(
            "storage_sync_lag",
            "age of the oldest change the peer has not applied yet (0 when caught up)",
            Unit::Seconds,
            secs,
        );
        reg.register(
            "storage_sync_peer_state",
            "the sender's state per peer (1 for the current one)",
            state,
        );

        let j = GaugeFamily::default();
        set_gauge(
            &j,
            Vec::new(),
            if st.store().journal_pending() {
                1.0
            } else {
                0.0
            },
        );
        reg.register(
            "storage_journal_pending",
            "1 while the upload journal holds files not yet settled",
            j,
        );
        register_journals(reg, &st.store().journal_stats());
        let conns = GaugeFamily::default();
        set_gauge(&conns, Vec::new(), s.connections_current as f64);
        reg.register("storage_connections", "open client connections", conns);
        let refused = CounterFamily::default();
        set_counter(&refused, Vec::new(), s.connections_refused);
        reg.register(
            "storage_connections_refused",
            "connections refused at max_connections",
            refused,
        );
        let bad = CounterFamily::default();
        set_counter(&bad, Vec::new(), s.bad_requests);
        reg.register("storage_bad_requests", "malformed requests", bad);
    }
}

/// The upload journals' state per store path (`M00`, ...): how full, what waits to settle,
/// flushes, and the two failure states an operator must act on (a failed flush: the journal is
/// off until a restart; a stuck segment: records kept for start-up to replay).
fn register_journals(
    reg: &mut Registry,
    journals: &[Option<crate::storage::journal::JournalStats>],
) {
    let (used, room, unsettled, failed, stuck) = (
        GaugeFamily::default(),
        GaugeFamily::default(),
        GaugeFamily::default(),
        GaugeFamily::default(),
        GaugeFamily::default(),
    );
    let (settled, flushes) = (CounterFamily::default(), CounterFamily::default());
    for (i, j) in journals.iter().enumerate() {
        let Some(j) = j else { continue };
        let l = labels([("store_path", &format!("M{i:02}"))]);
        set_gauge(&used, l.clone(), j.active_used_bytes as f64);
        set_gauge(&room, l.clone(), j.segment_room_bytes as f64);
        set_gauge(&unsettled, l.clone(), j.unsettled_files as f64);
        set_gauge(&failed, l.clone(), if j.failed { 1.0 } else { 0.0 });
        set_gauge(&stuck, l.clone(), j.stuck_segments as f64);
        set_counter(&settled, l.clone(), j.settled_files);
        set_counter(&flushes, l, j.flushes);
    }
    reg.register_with_unit(
        "storage_journal_active_segment_used",
        "bytes of records in the upload journal's active segment",
        Unit::Bytes,
        used,
    );
    reg.register_with_unit(
        "storage_journal_segment_room",
        "room for records in one journal segment (a settle is asked for at half)",
        Unit::Bytes,
        room,
    );
    reg.register(
        "storage_journal_unsettled_files",
        "journaled files whose own blocks are not known to be on the disk yet",
        unsettled,
    );
    reg.register(
        "storage_journal_settled_files",
        "journaled files settled (their segment retired) since start",
        settled,
    );
    reg.register(
        "storage_journal_flushes",
        "flushes of the upload journal (shared by concurrent uploads) since start",
        flushes,
    );
    reg.register(
        "storage_journal_failed",
        "1 after a journal flush failed: small uploads flush their own files until a restart",
        failed,
    );
    reg.register(
        "storage_journal_stuck_segments",
        "segments whose settle failed; their records wait for start-up to replay them",
        stuck,
    );
}
