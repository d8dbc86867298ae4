//! Probe health -> VRRP priority and FAULT, keepalived's `track_script` semantics, pure.
//!
//! - weight > 0: added to the priority while the probe is healthy;
//! - weight < 0: added while the probe is failing (or has no verdict yet);
//! - `fault`: the instance is in FAULT while the probe is failing (or has no verdict yet);
//! - the effective priority is clamped to 1..=254; an address owner (255) keeps 255 and only
//!   `fault` applies to it;
//! - a supervisor yield (a component restarted too often) is a FAULT too.

use crate::config::{TrackConfig, TrackWeight};
use crate::probe::Health;

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

/// The priority an instance advertises: base + delta clamped to 1..=254; 255 (owner) is kept.
pub fn effective_priority(base: u8, delta: i32) -> u8 {
    if base == 255 {
        return 255;
    }
    (i32::from(base).saturating_add(delta)).clamp(1, 254) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn effective_priority_is_clamped_and_owner_is_kept() {
        assert_eq!(effective_priority(100, -20), 80);
        assert_eq!(effective_priority(100, -150), 1);
        assert_eq!(effective_priority(250, 10), 254);
        assert_eq!(effective_priority(255, -50), 255);
        assert_eq!(effective_priority(1, i32::MIN), 1);
        assert_eq!(effective_priority(254, i32::MAX), 254);
    }
}
