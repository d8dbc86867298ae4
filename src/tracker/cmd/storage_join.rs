//! GET_MY_IP and JOIN: a storage asks which address the tracker sees, then announces itself on
//! its long-lived connection.

use super::{Handled, Req};
use crate::proto::cmd;
use crate::proto::tracker::{GetMyIpReq, JoinReply, JoinReq};
use crate::tracker::cluster::identify;
use crate::tracker::service::{log_transitions, Reply};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    if r.command == cmd::STORAGE_GET_MY_IP {
        r.decode(GetMyIpReq::decode(r.body))?;
        return Ok(Reply::ok(r.conn.peer_ip.clone().into_bytes()));
    }
    join(r)
}

fn join(r: &mut Req<'_>) -> Handled {
    let req: JoinReq = r.decode(JoinReq::decode(r.body))?;
    let cfg = &r.tracker.cfg;
    let who = match identify(
        cfg.use_storage_id,
        &cfg.storage_ids,
        &req.group,
        &req.storage_id,
        &r.conn.peer_ip,
        req.storage_port,
    ) {
        Ok(w) => w,
        Err(e) => {
            crate::limited!(r.tracker.logs, warn, "join_refused", peer = %r.conn.peer_ip, group = %req.group, id = %req.storage_id, errno = e, "storage refused at JOIN");
            return Err(Reply::err(e));
        }
    };
    let mut st = r.tracker.lock();
    // Like C, a tracker without data first copies the system files of a tracker this JOIN
    // names that has some (`sys_files`); the JOIN is answered after that.
    if st.peers.sys_files_needed {
        st.peers
            .election
            .learn(&req.current_tracker_ip, cfg.listen.port(), &req.trackers);
        let peers = st.peers.election.peers();
        if !peers.is_empty() {
            return Ok(Reply::Hold(peers));
        }
        st.peers.sys_files_needed = false;
    }
    // max_groups / max_storages_per_group: the view stays bounded whatever JOINs arrive.
    if let Err(why) = st.cluster.join_fits(&req.group, &who.key, cfg) {
        drop(st);
        r.tracker
            .counters
            .refused_joins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::limited!(r.tracker.logs, warn, "join_cap", peer = %r.conn.peer_ip, group = %req.group, reason = why, "storage refused at JOIN");
        return Err(Reply::err(crate::proto::cmd::errno::ENOSPC));
    }
    let (status, src, t) = st.cluster.join(&who, &req, r.conn.id, r.now);
    st.peers
        .election
        .learn(&req.current_tracker_ip, cfg.listen.port(), &req.trackers);
    drop(st);
    tracing::info!(group = %req.group, storage = %who.key, ip = %who.ip, port = req.storage_port, status = status.name(), "storage joined");
    log_transitions(t);
    r.conn.storage = Some((req.group.clone(), who.key));
    Ok(Reply::ok(
        JoinReply {
            status: status as u8,
            src_id: src.map(|s| s.src_id).unwrap_or_default(),
        }
        .encode(),
    ))
}
