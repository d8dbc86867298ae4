//! Tracker request handlers, one file per command family (the way mini-redis splits `cmd/`):
//! [`dispatch`] picks the family, the family's `handle` decodes, asks the cluster view or the
//! selection rules, and encodes the reply.
//!
//! - `storage_join`: GET_MY_IP, JOIN (a storage announcing itself).
//! - `params`: PARAMETER_REQ, FETCH_STORAGE_IDS (what a storage fetches at start).
//! - `beat`: BEAT, REPORT_DISK_USAGE, SYNC_REPORT, CHANGELOG_REQ (the beat connection's reports).
//! - `sync`: SYNC_DEST_REQ, SYNC_DEST_QUERY, SYNC_NOTIFY, SYNC_SRC_REQ (who copies to whom).
//! - `status`: REPLICA_CHG, REPORT_STATUS (a storage telling the status of one server).
//! - `query_store`: QUERY_STORE_* (where to upload).
//! - `query_fetch`: QUERY_FETCH_*, QUERY_UPDATE (where to read or change a file).
//! - `list`: SERVER_LIST_* (fdfs_monitor's views).
//! - `admin`: SERVER_DELETE_STORAGE, SERVER_DELETE_GROUP.
//! - `cluster_stat`: SERVER_GET_LEADER and the monitoring lists 96-98 (fdfs_*_stat).
//! - `peer`: tracker <-> tracker commands (`tracker::peers`).
//!
//! Handlers return `Err(reply)` to answer early (a refused or failed request); [`dispatch`]
//! sends either side.

mod admin;
mod beat;
mod cluster_stat;
mod list;
mod params;
mod peer;
mod query_fetch;
mod query_store;
mod status;
mod storage_join;
mod sync;

use super::cluster::Errno;
use super::service::{ConnState, Reply, Tracker};
use crate::proto::cmd::{self, errno};
use crate::proto::ProtoError;
use std::time::Instant;

/// A handler's outcome: `Err` is an early answer (refusal or failure), sent as is.
type Handled = Result<Reply, Reply>;

/// One request as the handlers see it.
pub(super) struct Req<'a> {
    pub tracker: &'a Tracker,
    pub conn: &'a mut ConnState,
    pub command: u8,
    pub body: &'a [u8],
    pub now: Instant,
    pub unix: i64,
}

impl Req<'_> {
    /// A decoded body, or EINVAL (logged) when it is malformed.
    fn decode<T>(&self, r: Result<T, ProtoError>) -> Result<T, Reply> {
        r.map_err(|e| {
            crate::limited!(self.tracker.logs, warn, "malformed", peer = %self.conn.peer_ip, command = self.command, error = %e, "malformed request refused");
            Reply::err(errno::EINVAL)
        })
    }

    /// EINVAL (logged) unless the body is empty.
    fn empty_body(&self) -> Result<(), Reply> {
        if !self.body.is_empty() {
            crate::limited!(self.tracker.logs, warn, "body_not_empty", peer = %self.conn.peer_ip, command = self.command, len = self.body.len(), "request body must be empty");
            return Err(Reply::err(errno::EINVAL));
        }
        Ok(())
    }

    /// The `(group, key)` of the storage joined on this connection, or EINVAL before JOIN.
    fn joined(&self) -> Result<(String, String), Reply> {
        match self.conn.storage.clone() {
            Some(v) => Ok(v),
            None => {
                crate::limited!(self.tracker.logs, warn, "before_join", peer = %self.conn.peer_ip, command = self.command, "storage command before JOIN");
                Err(Reply::err(errno::EINVAL))
            }
        }
    }
}

/// A cluster or selection result, or its errno as the reply.
fn done<T>(r: Result<T, Errno>) -> Result<T, Reply> {
    r.map_err(Reply::err)
}

/// A family's handler.
type Handler = fn(&mut Req<'_>) -> Handled;

/// The handler of `command`, None for a command this tracker does not know.
fn handler(command: u8) -> Option<Handler> {
    Some(match command {
        cmd::QUIT => |_| Ok(Reply::Close),
        cmd::ACTIVE_TEST => |req| req.empty_body().map(|()| Reply::ok(Vec::new())),
        cmd::STORAGE_GET_MY_IP | cmd::STORAGE_JOIN => storage_join::handle,
        cmd::STORAGE_PARAMETER_REQ | cmd::STORAGE_FETCH_STORAGE_IDS => params::handle,
        cmd::STORAGE_BEAT
        | cmd::STORAGE_REPORT_DISK_USAGE
        | cmd::STORAGE_SYNC_REPORT
        | cmd::STORAGE_CHANGELOG_REQ => beat::handle,
        cmd::STORAGE_SYNC_DEST_REQ
        | cmd::STORAGE_SYNC_DEST_QUERY
        | cmd::STORAGE_SYNC_NOTIFY
        | cmd::STORAGE_SYNC_SRC_REQ => sync::handle,
        cmd::STORAGE_REPLICA_CHG | cmd::STORAGE_REPORT_STATUS => status::handle,
        cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE
        | cmd::SERVICE_QUERY_STORE_WITH_GROUP_ONE
        | cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL
        | cmd::SERVICE_QUERY_STORE_WITH_GROUP_ALL => query_store::handle,
        cmd::SERVICE_QUERY_FETCH_ONE | cmd::SERVICE_QUERY_FETCH_ALL | cmd::SERVICE_QUERY_UPDATE => {
            query_fetch::handle
        }
        cmd::SERVER_LIST_ONE_GROUP | cmd::SERVER_LIST_ALL_GROUPS | cmd::SERVER_LIST_STORAGE => {
            list::handle
        }
        cmd::SERVER_DELETE_STORAGE | cmd::SERVER_DELETE_GROUP => admin::handle,
        cmd::SERVER_GET_LEADER
        | cmd::SERVER_TRACKER_CLUSTER_STAT
        | cmd::SERVER_STORAGE_CLUSTER_STAT
        | cmd::SERVER_STORAGE_VOLUMN_STAT => cluster_stat::handle,
        c if super::peers::Peers::handles(c) => peer::handle,
        _ => return None,
    })
}

/// Commands whose body is empty. Their handlers refuse a body too; this list lets the
/// connection refuse one unread, so a client cannot drip it at the pace of inactivity.
const EMPTY_BODY: [u8; 8] = [
    cmd::ACTIVE_TEST,
    cmd::SERVER_GET_LEADER,
    cmd::SERVER_LIST_ALL_GROUPS,
    cmd::STORAGE_PARAMETER_REQ,
    cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ONE,
    cmd::SERVICE_QUERY_STORE_WITHOUT_GROUP_ALL,
    cmd::STORAGE_SYNC_DEST_REQ,
    cmd::STORAGE_SYNC_DEST_QUERY,
];

/// Why a request is refused from its header alone (the refusal kind), before its body is read:
/// a command this tracker does not know, or a body declared for a command that has none.
pub(super) fn refused_unread(command: u8, pkg_len: u64) -> Option<&'static str> {
    if handler(command).is_none() {
        Some("unknown_command")
    } else if pkg_len > 0 && EMPTY_BODY.contains(&command) {
        Some("body_not_empty")
    } else {
        None
    }
}

/// Routes one request to its family's handler.
pub(super) fn dispatch(req: &mut Req<'_>) -> Reply {
    let handled = match handler(req.command) {
        Some(h) => h(req),
        None => {
            crate::limited!(req.tracker.logs, warn, "unknown_command", peer = %req.conn.peer_ip, command = req.command, "unknown command refused");
            Err(Reply::err(errno::EINVAL))
        }
    };
    handled.unwrap_or_else(|early| early)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_unread_names_unknown_commands_and_bodies_of_bodiless_ones() {
        assert_eq!(refused_unread(250, 0), Some("unknown_command"));
        assert_eq!(refused_unread(250, 100), Some("unknown_command"));
        for c in EMPTY_BODY {
            assert!(handler(c).is_some(), "{c}");
            assert_eq!(refused_unread(c, 0), None, "{c}");
            assert_eq!(refused_unread(c, 1), Some("body_not_empty"), "{c}");
        }
        assert_eq!(refused_unread(cmd::STORAGE_JOIN, 200), None);
        assert_eq!(refused_unread(cmd::STORAGE_BEAT, 0), None);
    }
}
