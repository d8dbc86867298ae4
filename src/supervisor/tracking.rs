//! Probe health -> VRRP priority and FAULT, keepalived's `track_script` semantics, pure.
//!
//! - weight > 0: added to the priority while the probe is healthy;
//! - weight < 0: added while the probe is failing (or has no verdict yet);
//! - `fault`: the instance is in FAULT while the probe is failing (or has no verdict yet);
//! - the effective priority is clamped to 1..=254; an address owner (255) keeps 255 and only
//!   `fault` applies to it;
//! - a supervisor yield (a component restarted too often) is a FAULT too;
//! - a component the supervisor holds in backoff (it died or could not start) makes every probe
//!   watching it count as failing at once, whatever its last verdict ([`tracked_health`]): a
//!   probe needs `fall` failed checks to notice, and a probe that cannot see the component at
//!   all (`exec`, a port in front of it) never would;
//! - restart grace ([`Graces`]): while the supervisor restarts a component that was healthy, the
//!   probes watching it keep their healthy verdict for up to `supervisor.restart_grace`, so a
//!   quick restart does not move the VIP (the seeds' nginx_check.sh restarted nginx and waited
//!   2 s before killing keepalived). A component that stays down or comes back broken still
//!   moves it once the grace ends; a crash loop gets no new grace.

use crate::config::{TrackConfig, TrackWeight};
use crate::probe::Health;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the supervisor hands to `VrrpControl::set_tracking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    pub priority_delta: i32,
    pub fault: bool,
    /// Human summary of what applies, for logs and status (`probe gateway failing: -20`).
    pub reason: String,
}

pub fn compute(
    tracks: &[TrackConfig],
    health: impl Fn(&str) -> Health,
    yield_reason: Option<&str>,
) -> Tracking {
    let mut delta = 0i32;
    let mut fault = false;
    let mut why = Vec::new();
    for t in tracks {
        let h = health(&t.probe);
        let failing = h != Health::Healthy;
        let state = match h {
            Health::Healthy => "healthy",
            Health::Failing => "failing",
            Health::Unknown => "not yet checked",
        };
        match t.weight {
            TrackWeight::Fault if failing => {
                fault = true;
                why.push(format!("probe {} {state}: fault", t.probe));
            }
            TrackWeight::Weight(w) if w > 0 && !failing => {
                delta = delta.saturating_add(w);
                why.push(format!("probe {} {state}: +{w}", t.probe));
            }
            TrackWeight::Weight(w) if w < 0 && failing => {
                delta = delta.saturating_add(w);
                why.push(format!("probe {} {state}: {w}", t.probe));
            }
            _ => {}
        }
    }
    if let Some(y) = yield_reason {
        fault = true;
        why.push(format!("supervisor yields: {y}"));
    }
    let reason = if why.is_empty() {
        "all tracked probes healthy".to_string()
    } else {
        why.join("; ")
    };
    Tracking {
        priority_delta: delta,
        fault,
        reason,
    }
}

/// The verdict VRRP tracking uses for a probe watching a component: held healthy while the
/// component is in a restart grace (`grace_holds`), failing while the component is down
/// (`component_down`: in backoff, no grace), else the probe's own `verdict`.
pub fn tracked_health(verdict: Health, component_down: bool, grace_holds: bool) -> Health {
    if grace_holds {
        Health::Healthy
    } else if component_down {
        Health::Failing
    } else {
        verdict
    }
}

/// The priority an instance advertises: base + delta clamped to 1..=254; 255 (owner) is kept.
pub fn effective_priority(base: u8, delta: i32) -> u8 {
    if base == 255 {
        return 255;
    }
    (i32::from(base).saturating_add(delta)).clamp(1, 254) as u8
}

/// Restart graces per component name (see the module comment). Pure: time is passed in.
#[derive(Debug, Default)]
pub struct Graces {
    by_component: BTreeMap<String, Grace>,
}

#[derive(Debug, Clone, Copy)]
struct Grace {
    since: Instant,
    /// Set when the component runs again; the next verdict of its (fresh) probes ends the grace.
    running_again: Option<Instant>,
}

impl Graces {
    /// The component went down (exit, crash, failed start or probe-ordered restart). A grace
    /// starts only if every probe watching it was healthy (`probes_healthy`) and none is running:
    /// a component that was already failing, or fails again inside its grace, gets none.
    /// Returns whether a new grace started.
    pub fn component_down(&mut self, component: &str, probes_healthy: bool, now: Instant) -> bool {
        if !probes_healthy || self.by_component.contains_key(component) {
            return false;
        }
        self.by_component.insert(
            component.to_string(),
            Grace {
                since: now,
                running_again: None,
            },
        );
        true
    }

    /// The component runs again; returns whether it was in a grace (its probes should restart
    /// so that a fresh verdict judges the new instance).
    pub fn component_running(&mut self, component: &str, now: Instant) -> bool {
        match self.by_component.get_mut(component) {
            Some(g) => {
                g.running_again = Some(now);
                true
            }
            None => false,
        }
    }

    /// A probe watching `component` reached a verdict at `at`: once the component runs again,
    /// that verdict (not the grace) decides.
    pub fn verdict(&mut self, component: &str, at: Instant) {
        if let Some(g) = self.by_component.get(component) {
            if g.running_again.is_some_and(|r| at >= r) {
                self.by_component.remove(component);
            }
        }
    }

    /// Whether probes watching `component` are held healthy at `now`.
    pub fn holds(&self, component: &str, now: Instant, grace: Duration) -> bool {
        self.by_component
            .get(component)
            .is_some_and(|g| now < g.since + grace)
    }

    /// Drops expired graces; returns the names that expired (their live verdicts apply now).
    pub fn expire(&mut self, now: Instant, grace: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .by_component
            .iter()
            .filter(|(_, g)| now >= g.since + grace)
            .map(|(c, _)| c.clone())
            .collect();
        for c in &gone {
            self.by_component.remove(c);
        }
        gone
    }

    /// When the earliest grace ends (to wake up and re-evaluate tracking then).
    pub fn next_deadline(&self, grace: Duration) -> Option<Instant> {
        self.by_component.values().map(|g| g.since + grace).min()
    }

    pub fn forget(&mut self, component: &str) {
        self.by_component.remove(component);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(2);

    #[test]
    fn quick_restart_of_a_healthy_component_is_held_until_its_fresh_probe_decides() {
        let t0 = Instant::now();
        let mut g = Graces::default();
        assert!(g.component_down("gateway", true, t0));
        assert!(g.holds("gateway", t0 + Duration::from_millis(300), GRACE));
        // Running again at +100 ms; a verdict from before that (the old probe) decides nothing.
        assert!(g.component_running("gateway", t0 + Duration::from_millis(100)));
        g.verdict("gateway", t0 + Duration::from_millis(50));
        assert!(g.holds("gateway", t0 + Duration::from_millis(400), GRACE));
        // The fresh probe's verdict ends the grace: from now on the live verdict applies.
        g.verdict("gateway", t0 + Duration::from_millis(500));
        assert!(!g.holds("gateway", t0 + Duration::from_millis(600), GRACE));
    }

    #[test]
    fn a_component_that_stays_down_loses_the_grace_when_it_expires() {
        let t0 = Instant::now();
        let mut g = Graces::default();
        g.component_down("gateway", true, t0);
        assert_eq!(g.next_deadline(GRACE), Some(t0 + GRACE));
        assert!(g.expire(t0 + Duration::from_millis(1999), GRACE).is_empty());
        assert_eq!(g.expire(t0 + GRACE, GRACE), vec!["gateway".to_string()]);
        assert!(!g.holds("gateway", t0 + GRACE, GRACE));
        assert_eq!(g.next_deadline(GRACE), None);
    }

    #[test]
    fn no_grace_for_a_component_that_was_already_failing_or_fails_again_inside_it() {
        let t0 = Instant::now();
        let mut g = Graces::default();
        assert!(!g.component_down("gateway", false, t0));
        assert!(!g.holds("gateway", t0, GRACE));
        assert!(g.component_down("tracker", true, t0));
        g.component_running("tracker", t0 + Duration::from_millis(100));
        // Crashes again inside the grace: the grace is not renewed (a crash loop moves the VIP).
        assert!(!g.component_down("tracker", true, t0 + Duration::from_millis(200)));
        assert!(!g.holds("tracker", t0 + GRACE, GRACE));
    }

    fn track(probe: &str, weight: TrackWeight) -> TrackConfig {
        TrackConfig {
            probe: probe.into(),
            weight,
        }
    }

    fn health_of<'a>(table: &'a [(&'a str, Health)]) -> impl Fn(&str) -> Health + 'a {
        move |n| {
            table
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, h)| *h)
                .unwrap_or(Health::Unknown)
        }
    }

    #[test]
    fn negative_weight_applies_while_failing_positive_while_healthy() {
        let tracks = [
            track("gw", TrackWeight::Weight(-20)),
            track("disk", TrackWeight::Weight(10)),
        ];
        let all_ok = compute(
            &tracks,
            health_of(&[("gw", Health::Healthy), ("disk", Health::Healthy)]),
            None,
        );
        assert_eq!((all_ok.priority_delta, all_ok.fault), (10, false));
        let gw_down = compute(
            &tracks,
            health_of(&[("gw", Health::Failing), ("disk", Health::Healthy)]),
            None,
        );
        assert_eq!((gw_down.priority_delta, gw_down.fault), (-10, false));
        assert!(
            gw_down.reason.contains("probe gw failing: -20"),
            "{}",
            gw_down.reason
        );
        let both_down = compute(
            &tracks,
            health_of(&[("gw", Health::Failing), ("disk", Health::Failing)]),
            None,
        );
        assert_eq!(both_down.priority_delta, -20);
    }

    #[test]
    fn unknown_counts_as_failing() {
        let tracks = [
            track("gw", TrackWeight::Weight(-20)),
            track("disk", TrackWeight::Weight(10)),
            track("link", TrackWeight::Fault),
        ];
        let t = compute(&tracks, health_of(&[]), None);
        assert_eq!((t.priority_delta, t.fault), (-20, true));
    }

    #[test]
    fn fault_track_and_yield_put_the_instance_in_fault() {
        let tracks = [track("link", TrackWeight::Fault)];
        let down = compute(&tracks, health_of(&[("link", Health::Failing)]), None);
        assert!(down.fault);
        let up = compute(&tracks, health_of(&[("link", Health::Healthy)]), None);
        assert_eq!(
            up,
            Tracking {
                priority_delta: 0,
                fault: false,
                reason: "all tracked probes healthy".into()
            }
        );
        let yielded = compute(
            &tracks,
            health_of(&[("link", Health::Healthy)]),
            Some("gateway restarted 5 times in 60s"),
        );
        assert!(yielded.fault);
        assert!(yielded.reason.contains("gateway restarted 5 times"));
    }

    #[test]
    fn a_component_in_backoff_fails_its_probes_unless_a_grace_holds_them() {
        for verdict in [Health::Healthy, Health::Unknown, Health::Failing] {
            // Running, no grace: the probe decides.
            assert_eq!(tracked_health(verdict, false, false), verdict);
            // Down: failing, even with a probe that still says healthy.
            assert_eq!(tracked_health(verdict, true, false), Health::Failing);
            // A grace holds whatever the probe or the component says.
            assert_eq!(tracked_health(verdict, true, true), Health::Healthy);
            assert_eq!(tracked_health(verdict, false, true), Health::Healthy);
        }
        // With a track of -30, a downed component lowers the priority it tracks.
        let tracks = [track("web", TrackWeight::Weight(-30))];
        let down = compute(
            &tracks,
            |_| tracked_health(Health::Healthy, true, false),
            None,
        );
        assert_eq!((down.priority_delta, down.fault), (-30, false));
        assert_eq!(effective_priority(100, down.priority_delta), 70);
    }

    #[test]
    fn effective_priority_is_clamped_and_owner_is_kept() {
        assert_eq!(effective_priority(100, -20), 80);
        assert_eq!(effective_priority(100, -150), 1);
        assert_eq!(effective_priority(250, 10), 254);
        assert_eq!(effective_priority(255, -50), 255);
        assert_eq!(effective_priority(1, i32::MIN), 1);
        assert_eq!(effective_priority(254, i32::MAX), 254);
    }
}
