//! What one drill measured and how it is judged: the per-slot timeline, the figures with their
//! rules, and the analysis that turns a timeline into an outcome.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Req {
    Ok,
    Failed,
    Corrupt,
    /// Failed, and no storage that answered held the file: it was only on a storage the drill
    /// stopped, acknowledged before that storage's binlog flush handed it to its peers
    /// (replication is asynchronous, as in C: up to `binlog_flush_interval`, 1 s). No gateway
    /// retry can serve it; it is readable again once that storage is back (the read-back
    /// checks). Reported, not counted as a failed request.
    Unavailable,
    /// An upload whose storage closed or reset the connection after the request went out: the
    /// storage was killed mid-request. Not acknowledged, and the client cannot know whether it
    /// was stored, so it is not repeated (FastDFS's own clients do not either: a repeat could
    /// store the file twice). Judged on its own (`Outcome::uploads_cut_off`).
    CutOff,
    /// A download whose reused keep-alive connection was closed or reset before any response
    /// byte, repeated on a new connection and served there (drills/download.rs). Served;
    /// counted on its own (`Outcome::repeated_downloads`).
    Retried,
}

impl Req {
    /// A request that counts as failed (Unavailable is reported on its own).
    pub fn bad(self) -> bool {
        matches!(self, Req::Failed | Req::Corrupt)
    }

    /// The client got what it asked for (perhaps after one repeat).
    pub fn served(self) -> bool {
        matches!(self, Req::Ok | Req::Retried)
    }
}

#[derive(Default)]
pub struct Timeline {
    /// Per slot: (ha1 holds VIP, ha2 holds VIP).
    pub vip: Vec<(bool, bool)>,
    pub downloads: Vec<(usize, Req)>,
    pub uploads: Vec<(usize, Req)>,
    pub fault_slot: usize,
    /// The first slot in which a node held the VIP (the client starts then).
    pub first_vip_slot: usize,
}

/// The longest a request is in flight (the uploads' 500 ms deadline), in slots.
const IN_FLIGHT_SLOTS: usize = 25;

/// How long after ha1 takes the VIP back a failed request counts with that handover: its
/// gratuitous ARP follows 50 ms later (`garp.preempt_delay`), then every request's deadline.
const HANDOVER_SLOTS: usize = 25;

impl Timeline {
    /// Slots after the fault in which ha1 took the VIP while ha2 held it (a preempt-back: ha2
    /// answered until then, make-before-break).
    pub fn handovers_back(&self) -> Vec<usize> {
        (self.fault_slot.max(1)..self.vip.len())
            .filter(|&s| self.vip[s].0 && !self.vip[s - 1].0 && self.vip[s - 1].1)
            .collect()
    }

    /// The first slot whose requests the fault may have met: a request is judged by the slot
    /// it started in, and one started up to its deadline before the fault can still be in
    /// flight when it hits. Those count with the fault, not with the start-up.
    pub fn faulted_from(&self) -> usize {
        self.fault_slot.saturating_sub(IN_FLIGHT_SLOTS)
    }
}

/// Everything one drill measured; `figures` pairs each number with the rule that judges it.
pub struct Outcome {
    /// From the drill's start until a node first held the VIP / until the lab settled (ha1
    /// alone for SETTLED); the fault follows.
    pub startup_vip_ms: u64,
    pub startup_settled_ms: u64,
    pub startup_dual: usize,
    pub startup_failed: usize,
    pub gap_ms: u64,
    pub failed_outside_gap: usize,
    pub lost_uploads: usize,
    pub late_uploads: usize,
    pub corrupt: usize,
    /// Downloads of files that no answering storage held (`Req::Unavailable`).
    pub unavailable: usize,
    /// Uploads a killed storage cut off mid-request (`Req::CutOff`), and whether the drill
    /// killed a storage (then the one upload in flight on it may be cut off; else none may).
    pub uploads_cut_off: usize,
    pub storage_killed: bool,
    /// Downloads served only after a repeat on a new connection (`Req::Retried`).
    pub repeated_downloads: usize,
    /// False for drill l: the client gap and the failures outside it are reported, not judged.
    pub requests_judged: bool,
    /// Requests failed within `HANDOVER_SLOTS` of a preempt-back (`Timeline::handovers_back`),
    /// and how many such handovers there were.
    pub failed_at_handover_back: usize,
    pub handovers_back: usize,
    /// Slots after the fault with the VIP on both nodes (during a partition: not judged).
    pub dual_vip_slots: usize,
    pub partition: bool,
    /// d1, h: slots after the fault in which the VIP was anywhere but on ha1 alone.
    pub vip_away: Option<usize>,
    /// h: requests failed after the fault (none may).
    pub failed_after_fault: Option<usize>,
    pub downloads: usize,
    pub uploads: usize,
}

/// One measured number and its rule: `max` is the most it may be (`None`: reported only).
pub struct Figure {
    pub name: &'static str,
    pub value: u64,
    pub max: Option<u64>,
    pub rule: String,
}

impl Figure {
    pub fn judged(name: &'static str, value: usize, max: u64, rule: &str) -> Figure {
        Figure {
            name,
            value: value as u64,
            max: Some(max),
            rule: rule.to_string(),
        }
    }

    pub fn reported(name: &'static str, value: u64, note: &str) -> Figure {
        Figure {
            name,
            value,
            max: None,
            rule: note.to_string(),
        }
    }

    pub fn broken(&self) -> bool {
        self.max.is_some_and(|m| self.value > m)
    }
}

/// A drill moves the VIP at most twice (fault, heal or preempt-back); at each move only the
/// connection a request was just sent on can be caught by the old Master's close.
const MAX_REPEATED_DOWNLOADS: u64 = 2;

/// The client gap's bound: Master_Down_Interval (3 x advert_int + skew) and 2 s to spare.
pub fn gap_bound_ms() -> u64 {
    3 * ADVERT_INT.as_millis() as u64 + 3000
}

/// The make-before-break overlap of a handover is bounded by one advert interval.
pub fn dual_vip_allowed() -> u64 {
    (ADVERT_INT.as_millis() / SLOT.as_millis()) as u64
}

impl Outcome {
    pub fn figures(&self) -> Vec<Figure> {
        let mut f = vec![
            Figure::reported(
                "start-up: ms until a node held the VIP",
                self.startup_vip_ms,
                "reported",
            ),
            Figure::reported(
                "start-up: ms until settled (ha1 alone for 6 s)",
                self.startup_settled_ms,
                "reported (over 60 s fails the run)",
            ),
            Figure::judged(
                "start-up: 20 ms slots with the VIP on both nodes",
                self.startup_dual,
                0,
                "must be 0 (the nodes hear each other)",
            ),
            Figure::judged(
                "start-up: failed requests once a node held the VIP",
                self.startup_failed,
                0,
                "must be 0 (the client starts when a node holds the VIP)",
            ),
            self.request_figure(
                "client gap (downloads via the VIP), ms",
                self.gap_ms as usize,
                gap_bound_ms(),
                &format!("must be <= {} (3 x advert_int + 3 s)", gap_bound_ms()),
            ),
            self.request_figure(
                "failed requests outside the gap",
                self.failed_outside_gap,
                0,
                "must be 0",
            ),
            self.request_figure(
                "failed requests at a preempt-back",
                self.failed_at_handover_back,
                self.handovers_back as u64,
                &format!(
                    "must be <= 1 per preempt-back ({} here): a request whose connection straddled the ARP switch",
                    self.handovers_back
                ),
            ),
            Figure::judged(
                "acknowledged uploads lost",
                self.lost_uploads,
                0,
                &format!(
                    "must be 0 (not readable {} s later)",
                    LATE_READ_GRACE.as_secs()
                ),
            ),
            Figure::judged(
                "acknowledged uploads late",
                self.late_uploads,
                0,
                "must be 0 (not readable through the trackers at once)",
            ),
            Figure::judged("corrupt downloads", self.corrupt, 0, "must be 0"),
            Figure::reported(
                "downloads of files on no answering storage",
                self.unavailable as u64,
                "reported (only on a stopped storage, not replicated yet: async, <= 1 s)",
            ),
        ];
        let cut_off_allowed = usize::from(self.storage_killed);
        f.push(Figure::judged(
            "uploads cut off mid-request by a killed storage",
            self.uploads_cut_off,
            cut_off_allowed as u64,
            if self.storage_killed {
                "must be <= 1 (the one upload in flight on it; not acknowledged, not repeatable)"
            } else {
                "must be 0 (no storage is killed)"
            },
        ));
        f.push(Figure::judged(
            "downloads repeated on a new connection",
            self.repeated_downloads,
            MAX_REPEATED_DOWNLOADS,
            &format!(
                "must be <= {MAX_REPEATED_DOWNLOADS} (one per VIP move: the keep-alive connection in use when the old Master closed it)"
            ),
        ));
        if self.partition {
            f.push(Figure::reported(
                "20 ms slots with the VIP on both nodes",
                self.dual_vip_slots as u64,
                "not judged: a partition, the nodes cannot hear each other",
            ));
        } else {
            f.push(Figure::judged(
                "20 ms slots with the VIP on both nodes",
                self.dual_vip_slots,
                dual_vip_allowed(),
                &format!(
                    "must be <= {} (a handover's make-before-break, one advert interval)",
                    dual_vip_allowed()
                ),
            ));
        }
        if let Some(away) = self.vip_away {
            f.push(Figure::judged(
                "20 ms slots with the VIP not on ha1 alone",
                away,
                0,
                "must be 0 (no VRRP transition expected)",
            ));
        }
        if let Some(n) = self.failed_after_fault {
            f.push(Figure::judged(
                "requests failed after the fault",
                n,
                0,
                "must be 0 (invisible to clients)",
            ));
        }
        f.push(Figure::reported(
            "downloads sent",
            self.downloads as u64,
            "reported",
        ));
        f.push(Figure::reported(
            "uploads sent",
            self.uploads as u64,
            "reported",
        ));
        f
    }

    /// A figure about the drill client's requests: judged, or reported under drill l's load.
    fn request_figure(&self, name: &'static str, value: usize, max: u64, rule: &str) -> Figure {
        if self.requests_judged {
            Figure::judged(name, value, max, rule)
        } else {
            Figure::reported(
                name,
                value as u64,
                "reported (under load a late answer is latency, not a failover)",
            )
        }
    }

    pub fn violations(&self) -> Vec<String> {
        self.figures()
            .iter()
            .filter(|f| f.broken())
            .map(|f| format!("{}: {} ({})", f.name, f.value, f.rule))
            .collect()
    }

    /// One line (timeline files, logs).
    pub fn summary_line(&self, d: &Drill) -> String {
        format!(
            "drill {} ({}): gap {} ms, failed outside gap {}, lost uploads {}, late {}, corrupt {}, dual-VIP slots {}, requests {} down / {} up; start-up: VIP after {} ms, settled after {} ms, {} failed, {} dual-VIP slots",
            d.id, d.title, self.gap_ms, self.failed_outside_gap, self.lost_uploads, self.late_uploads, self.corrupt, self.dual_vip_slots, self.downloads, self.uploads,
            self.startup_vip_ms, self.startup_settled_ms, self.startup_failed, self.startup_dual
        )
    }

    /// Every figure with its rule, one per line.
    pub fn report(&self, d: &Drill, rep: usize) -> String {
        let verdict = if self.violations().is_empty() {
            "passed"
        } else {
            "FAILED"
        };
        let mut out = format!("drill {} rep {rep} ({}): {verdict}\n", d.id, d.title);
        for f in self.figures() {
            let mark = if f.broken() { "  <-- VIOLATION" } else { "" };
            let _ = writeln!(out, "    {:<52} {:>7}   {}{mark}", f.name, f.value, f.rule);
        }
        out
    }
}

/// The client-visible gap is measured on downloads through the VIP (what users of the VIP see):
/// from the first failure at/after the fault to the first success after it.
pub fn analyse(tl: &Timeline, partition: bool, lost: usize) -> Outcome {
    let first_fail = tl
        .downloads
        .iter()
        .find(|(s, r)| *s >= tl.faulted_from() && r.bad())
        .map(|r| r.0);
    let (gap_ms, gap_range) = match first_fail {
        Some(f) => {
            let end = tl
                .downloads
                .iter()
                .find(|(s, r)| *s > f && r.served())
                .map(|r| r.0)
                .unwrap_or(f);
            (((end - f) as u64) * SLOT.as_millis() as u64, f..end)
        }
        None => (0, 0..0),
    };
    let backs = tl.handovers_back();
    // From a little before the sampled slot: a sampler can lag a slot or two.
    let at_back = |s: usize| {
        backs
            .iter()
            .any(|b| (b.saturating_sub(5)..b + HANDOVER_SLOTS).contains(&s))
    };
    let failed_after: Vec<usize> = tl
        .downloads
        .iter()
        .chain(tl.uploads.iter())
        .filter(|(s, r)| *s >= tl.faulted_from() && *r == Req::Failed && !gap_range.contains(s))
        .map(|(s, _)| *s)
        .collect();
    let failed_at_handover_back = failed_after.iter().filter(|s| at_back(**s)).count();
    let failed_outside_gap = failed_after.len() - failed_at_handover_back;
    // Before the fault: the lab's start-up until it settled (judged like the rest).
    let startup_failed = tl
        .downloads
        .iter()
        .chain(tl.uploads.iter())
        .filter(|(s, r)| *s < tl.faulted_from() && r.bad())
        .count();
    let unavailable = tl
        .downloads
        .iter()
        .filter(|(_, r)| *r == Req::Unavailable)
        .count();
    let startup_dual = tl
        .vip
        .iter()
        .take(tl.fault_slot)
        .filter(|(a, b)| *a && *b)
        .count();
    let uploads_cut_off = tl.uploads.iter().filter(|(_, r)| *r == Req::CutOff).count();
    let repeated_downloads = tl
        .downloads
        .iter()
        .filter(|(_, r)| *r == Req::Retried)
        .count();
    let corrupt = tl
        .downloads
        .iter()
        .filter(|(_, r)| *r == Req::Corrupt)
        .count();
    let dual = tl
        .vip
        .iter()
        .skip(tl.fault_slot)
        .filter(|(a, b)| *a && *b)
        .count();
    let ms = |slot: usize| slot as u64 * SLOT.as_millis() as u64;
    Outcome {
        startup_vip_ms: ms(tl.first_vip_slot),
        startup_settled_ms: ms(tl.fault_slot),
        startup_dual,
        startup_failed,
        gap_ms,
        failed_outside_gap,
        lost_uploads: lost,
        late_uploads: 0,
        corrupt,
        unavailable,
        uploads_cut_off,
        storage_killed: false,
        repeated_downloads,
        requests_judged: true,
        failed_at_handover_back,
        handovers_back: backs.len(),
        dual_vip_slots: dual,
        partition,
        vip_away: None,
        failed_after_fault: None,
        downloads: tl.downloads.len(),
        uploads: tl.uploads.len(),
    }
}
