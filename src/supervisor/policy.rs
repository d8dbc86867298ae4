//! Restart policy, pure: exponential backoff per component and the restart window that makes the
//! node yield. Time is passed in (`now`), so every rule is tested without sleeping.

use crate::config::SupervisorConfig;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// This many restarts within `window` make the node yield (FAULT) so the VIP moves.
    pub max_restarts: u32,
    pub window: Duration,
}

impl From<&SupervisorConfig> for RestartPolicy {
    fn from(c: &SupervisorConfig) -> Self {
        RestartPolicy {
            backoff_min: c.restart_backoff_min.get(),
            backoff_max: c.restart_backoff_max.get(),
            max_restarts: c.max_restarts,
            window: c.restart_window.get(),
        }
    }
}

/// One component's restart history.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    /// Failure times inside the window (older ones are pruned).
    recent: VecDeque<Instant>,
    /// Failures since the component last ran stably; drives the backoff exponent.
    consecutive: u32,
    last_start: Option<Instant>,
    pub total_restarts: u64,
}

impl RestartHistory {
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// Records a failure (exit, crash, failed start, failing probe) and returns the delay before
    /// the restart: `backoff_min * 2^n`, capped at `backoff_max`, where n counts failures since the
    /// component last ran for at least `backoff_max` (a stable run forgets the backoff).
    pub fn failed(&mut self, now: Instant, p: &RestartPolicy) -> Duration {
        if let Some(start) = self.last_start {
            if now.saturating_duration_since(start) >= p.backoff_max {
                self.consecutive = 0;
            }
        }
        let shift = self.consecutive.min(31);
        let delay = p
            .backoff_min
            .checked_mul(1u32 << shift)
            .unwrap_or(p.backoff_max)
            .min(p.backoff_max);
        self.consecutive = self.consecutive.saturating_add(1);
        self.total_restarts += 1;
        self.recent.push_back(now);
        self.prune(now, p);
        delay
    }

    fn prune(&mut self, now: Instant, p: &RestartPolicy) {
        while let Some(first) = self.recent.front() {
            if now.saturating_duration_since(*first) > p.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Restarts within the window ending at `now`.
    pub fn in_window(&self, now: Instant, p: &RestartPolicy) -> usize {
        self.recent
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= p.window)
            .count()
    }

    /// True while `max_restarts` or more restarts happened within the window: the node yields.
    pub fn yielding(&self, now: Instant, p: &RestartPolicy) -> bool {
        self.in_window(now, p) >= p.max_restarts as usize
    }

    /// When yielding at `now`: the instant the window drops below `max_restarts` if nothing else
    /// fails (the (n - max + 1)-th oldest restart ages out). None when not yielding.
    pub fn yield_until(&self, now: Instant, p: &RestartPolicy) -> Option<Instant> {
        let inside: Vec<Instant> = self
            .recent
            .iter()
            .copied()
            .filter(|t| now.saturating_duration_since(*t) <= p.window)
            .collect();
        let max = p.max_restarts.max(1) as usize;
        if inside.len() < max {
            return None;
        }
        inside.get(inside.len() - max).map(|t| *t + p.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            max_restarts: 3,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        h.started(t0);
        let delays: Vec<u128> = (0..7)
            .map(|i| h.failed(t0 + Duration::from_millis(i), &p).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(h.total_restarts, 7);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        h.started(t0);
        h.failed(t0, &p);
        h.failed(t0, &p);
        h.started(t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(h.failed(later, &p), Duration::from_millis(100));
    }

    #[test]
    fn max_restarts_within_window_yields_and_ages_out() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        h.failed(t0, &p);
        h.failed(t0 + Duration::from_secs(10), &p);
        assert!(!h.yielding(t0 + Duration::from_secs(10), &p));
        h.failed(t0 + Duration::from_secs(20), &p);
        assert!(h.yielding(t0 + Duration::from_secs(20), &p));
        assert!(h.yielding(t0 + Duration::from_secs(60), &p));
        assert_eq!(
            h.yield_until(t0 + Duration::from_secs(20), &p),
            Some(t0 + Duration::from_secs(60))
        );
        // The first restart leaves the window: below max_restarts again.
        assert!(!h.yielding(t0 + Duration::from_secs(61), &p));
        assert_eq!(h.yield_until(t0 + Duration::from_secs(61), &p), None);
    }

    #[test]
    fn restarts_spread_wider_than_the_window_never_yield() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        for i in 0..10 {
            let now = t0 + Duration::from_secs(31 * i);
            h.failed(now, &p);
            assert!(!h.yielding(now, &p), "restart {i}");
        }
    }
}
