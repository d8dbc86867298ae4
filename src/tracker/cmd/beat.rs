//! What a joined storage sends on its beat connection: BEAT, REPORT_DISK_USAGE, SYNC_REPORT
//! (each answered as C does: by the leader only, with its brief and the group's server list
//! when they changed; `Peers::report_answer`) and CHANGELOG_REQ.

use super::{done, Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{decode_beat, decode_disk_usage, decode_sync_report};
use crate::tracker::service::{log_transitions, Reply};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    match r.command {
        cmd::STORAGE_BEAT => {
            let (group, key) = r.joined()?;
            let stats = r.decode(decode_beat(r.body))?;
            let mut st = r.tracker.lock();
            let t = done(st.cluster.beat(&group, &key, stats, r.now))?;
            let out = r.tracker.server_list(&mut st, r.conn, &group, &key);
            drop(st);
            log_transitions(t);
            Ok(Reply::ok(out))
        }
        cmd::STORAGE_REPORT_DISK_USAGE => {
            let (group, key) = r.joined()?;
            let paths = r.decode(decode_disk_usage(r.body))?;
            let mut st = r.tracker.lock();
            let t = done(st.cluster.disk_usage(&group, &key, paths, r.now))?;
            let out = r.tracker.server_list(&mut st, r.conn, &group, &key);
            drop(st);
            log_transitions(t);
            Ok(Reply::ok(out))
        }
        cmd::STORAGE_SYNC_REPORT => {
            let (group, key) = r.joined()?;
            let positions = r.decode(decode_sync_report(r.body))?;
            let mut st = r.tracker.lock();
            done(st.cluster.sync_report(&group, &key, &positions, r.now))?;
            let out = r.tracker.server_list(&mut st, r.conn, &group, &key);
            Ok(Reply::ok(out))
        }
        _ => {
            // CHANGELOG_REQ: on its beat connection (empty body), or, from a C storage
            // restarted after a crash, on a short connection with group 16 + storage id 16 and
            // no JOIN (storage-sync.txt #711). Trackers here keep no changelog file: storages
            // learn changes from BEAT replies, so the answer is always empty.
            if r.conn.storage.is_none() && r.body.len() != 32 {
                return Err(Reply::err(errno::EINVAL));
            }
            if r.conn.storage.is_some() && !r.body.is_empty() && r.body.len() != 32 {
                return Err(Reply::err(errno::EINVAL));
            }
            Ok(Reply::ok(Vec::new()))
        }
    }
}
