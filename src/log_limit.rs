//! Rate limits for repeated log lines: the first line of a kind is written, then at most one
//! per [`LOG_EVERY`] carrying the count of lines suppressed since the previous one. A client that
//! sends a million bad frames costs a few log lines, not a full disk.
//!
//! Kinds are `&'static str` named in the code, so the table is bounded by the program, never by
//! what peers send. [`RateLimit`] is for one task (`&mut self`, e.g. a VRRP instance);
//! [`SharedLimit`] is the same behind a lock for the connections of a server, and also counts
//! every event per kind: a server's refusals all pass through it, so these counts are its
//! `fdfs_ha_refusals_total{reason=<kind>}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line of a kind per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs the first occurrence of a kind, then at most one line per `LOG_EVERY` with a count.
#[derive(Debug, Default)]
pub struct RateLimit {
    last: HashMap<&'static str, (Instant, u64)>,
}

impl RateLimit {
    /// Returns `Some(suppressed_since_last_line)` when a line may be logged now.
    pub fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(kind) {
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
            Some((at, n)) if now.duration_since(*at) >= LOG_EVERY => {
                let suppressed = *n;
                *at = now;
                *n = 0;
                Some(suppressed)
            }
            Some((_, n)) => {
                *n += 1;
                None
            }
        }
    }
}

/// A [`RateLimit`] shared by many tasks, counting the lines it let through and held back
/// (for tests and metrics).
#[derive(Debug, Default)]
pub struct SharedLimit {
    inner: Mutex<(RateLimit, BTreeMap<&'static str, u64>)>,
    written: AtomicU64,
    suppressed: AtomicU64,
}

impl SharedLimit {
    /// Returns `Some(suppressed_since_last_line)` when a line of `kind` may be logged now.
    pub fn allow(&self, kind: &'static str) -> Option<u64> {
        let r = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            *g.1.entry(kind).or_default() += 1;
            g.0.allow(kind, Instant::now())
        };
        match r {
            Some(_) => self.written.fetch_add(1, Ordering::Relaxed),
            None => self.suppressed.fetch_add(1, Ordering::Relaxed),
        };
        r
    }

    /// Lines let through so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Lines held back so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Ordering::Relaxed)
    }

    /// Events so far per kind, written or held back.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter().map(|(k, n)| (*k, *n)).collect()
    }
}

/// Logs at `$level` through a [`SharedLimit`] under `$kind`, adding `suppressed = n`:
/// `limited!(limit, warn, "kind", peer = %p, "message")`.
#[macro_export]
macro_rules! limited {
    ($limit:expr, $level:ident, $kind:expr, $($rest:tt)+) => {
        if let Some(suppressed) = $limit.allow($kind) {
            tracing::$level!(suppressed, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_logs_first_then_counts() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        assert_eq!(r.allow("ttl", t), Some(0));
        assert_eq!(r.allow("ttl", t + Duration::from_secs(1)), None);
        assert_eq!(r.allow("ttl", t + Duration::from_secs(2)), None);
        assert_eq!(r.allow("checksum", t), Some(0));
        assert_eq!(r.allow("ttl", t + LOG_EVERY), Some(2));
    }

    #[test]
    fn shared_limit_counts_what_it_holds_back() {
        let l = SharedLimit::default();
        for _ in 0..1000 {
            limited!(l, warn, "flood", n = 1, "flooding");
        }
        assert_eq!((l.written(), l.suppressed()), (1, 999));
        limited!(l, warn, "other", "other");
        assert_eq!(l.counts(), vec![("flood", 1000), ("other", 1)]);
    }
}
