//! A storage telling the tracker about one server's status: REPLICA_CHG (its own brief) and
//! REPORT_STATUS (a peer's).

use super::{done, Handled, Req};
use crate::proto::cmd::{self, errno};
use crate::proto::tracker::{ReportStatusReq, BRIEF_LEN};
use crate::tracker::service::{log_transitions, Reply};

pub(super) fn handle(r: &mut Req<'_>) -> Handled {
    if r.command == cmd::STORAGE_REPLICA_CHG {
        // A C storage sends its own brief when a server list moved it (e.g. SYNCING ->
        // OFFLINE at the end of its copy). The statuses here come from the reports
        // every storage makes; the brief is checked and acknowledged as C does.
        r.joined()?;
        if r.body.is_empty() || !r.body.len().is_multiple_of(BRIEF_LEN) {
            return Err(Reply::err(errno::EINVAL));
        }
        return Ok(Reply::ok(Vec::new()));
    }
    let req = r.decode(ReportStatusReq::decode(r.body))?;
    let t = done(
        r.tracker
            .lock()
            .cluster
            .report_status(&req.group, &req.brief),
    )?;
    log_transitions(t);
    Ok(Reply::ok(Vec::new()))
}
