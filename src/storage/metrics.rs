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
