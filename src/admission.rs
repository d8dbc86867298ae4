//! Who may open a connection to a tracker or storage port, decided at accept before a byte is
//! read: `allow_hosts` (FastDFS's host list) and the per-address connection cap
//! (`max_connections_per_ip`, so one client cannot take every `max_connections` slot).
//!
//! Refusals are counted and logged through a [`SharedLimit`] (one line per kind per 10 s with
//! the count held back), so a flood of refused connections costs a few log lines.

use crate::config::allow_hosts::AllowHosts;
use crate::log_limit::SharedLimit;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not in `allow_hosts`.
    NotAllowed,
    /// `max_connections_per_ip` connections from this address are already open.
    PerIpCap,
}

/// The accept-time checks of one server, shared by its connection tasks.
#[derive(Debug)]
pub struct Admission {
    /// Which server ("tracker", "storage"), for log lines.
    what: &'static str,
    allow: AllowHosts,
    per_ip_max: usize,
    /// Open connections per address; an entry goes when its last connection closes, so the
    /// table is bounded by `max_connections`.
    open: Mutex<HashMap<IpAddr, usize>>,
    pub refused_not_allowed: AtomicU64,
    pub refused_per_ip: AtomicU64,
    pub logs: Arc<SharedLimit>,
}

/// Held by a connection task; closing the connection (dropping this) frees its per-address slot.
#[derive(Debug)]
pub struct Admitted {
    adm: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.adm.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    /// `per_ip_max` 0 means no per-address cap.
    pub fn new(
        what: &'static str,
        allow: AllowHosts,
        per_ip_max: usize,
        logs: Arc<SharedLimit>,
    ) -> Self {
        Admission {
            what,
            allow,
            per_ip_max,
            open: Mutex::new(HashMap::new()),
            refused_not_allowed: AtomicU64::new(0),
            refused_per_ip: AtomicU64::new(0),
            logs,
        }
    }

    /// From a config's `allow_hosts` (already checked by `bind`; a list that cannot be read
    /// here lets nobody in) and `max_connections_per_ip`.
    pub fn from_config(
        what: &'static str,
        allow_hosts: &[String],
        per_ip_max: usize,
        logs: Arc<SharedLimit>,
    ) -> Arc<Self> {
        let allow = AllowHosts::parse(allow_hosts).unwrap_or_else(|_| AllowHosts::nobody());
        Arc::new(Self::new(what, allow, per_ip_max, logs))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip` or says why not (counted and logged, rate-limited).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let ip = ip.to_canonical();
        if !self.allow.allows(ip) {
            self.refused_not_allowed.fetch_add(1, Ordering::Relaxed);
            crate::limited!(self.logs, warn, "not_allowed", server = self.what, peer = %ip,
                "connection refused: address not in allow_hosts");
            return Err(Refusal::NotAllowed);
        }
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if self.per_ip_max > 0 && *n >= self.per_ip_max {
            drop(open);
            self.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            crate::limited!(self.logs, warn, "per_ip_cap", server = self.what, peer = %ip,
                max = self.per_ip_max, "connection refused: max_connections_per_ip reached");
            return Err(Refusal::PerIpCap);
        }
        *n += 1;
        drop(open);
        Ok(Admitted {
            adm: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip` (tests, status).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_strangers_and_caps_each_address() {
        let allow = AllowHosts::parse(&["127.0.0.[1-2]".to_string()]).unwrap();
        let logs = Arc::new(SharedLimit::default());
        let a = Arc::new(Admission::new("test", allow, 2, logs.clone()));
        assert_eq!(a.admit(ip("127.0.0.3")).unwrap_err(), Refusal::NotAllowed);
        let c1 = a.admit(ip("127.0.0.1")).unwrap();
        let _c2 = a.admit(ip("::ffff:127.0.0.1")).unwrap();
        assert_eq!(a.admit(ip("127.0.0.1")).unwrap_err(), Refusal::PerIpCap);
        // Another allowed address has its own slots.
        let _d = a.admit(ip("127.0.0.2")).unwrap();
        drop(c1);
        assert_eq!(a.open_from(ip("127.0.0.1")), 1);
        let _c3 = a.admit(ip("127.0.0.1")).unwrap();
        for _ in 0..100 {
            let _ = a.admit(ip("127.0.0.9"));
        }
        assert_eq!(a.refused_not_allowed.load(Ordering::Relaxed), 101);
        assert_eq!(a.refused_per_ip.load(Ordering::Relaxed), 1);
        // 102 refusals, 2 kinds: two lines written, the rest counted.
        assert_eq!((logs.written(), logs.suppressed()), (2, 100));
    }
}
