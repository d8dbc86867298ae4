//! Keep-alive connections to trackers and storages, as FastDFS's C client pools them.
//!
//! The pool only stores idle connections; callers take one (or connect), run one exchange, and
//! put it back only when that exchange completed — a connection dropped mid-response is closed,
//! because the stream would be out of sync with the next request. Idle connections are capped per
//! address and not trusted after [`MAX_IDLE_AGE`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an idle connection may wait in the pool before we stop trusting it.
pub const MAX_IDLE_AGE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Pool<T> {
    idle: Mutex<HashMap<SocketAddr, Vec<(T, Instant)>>>,
    max_idle_per_addr: usize,
}

impl<T> Pool<T> {
    pub fn new(max_idle_per_addr: usize) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle_per_addr,
        }
    }

    /// An idle connection to `addr`, if one is fresh enough.
    pub fn take(&self, addr: SocketAddr) -> Option<T> {
        self.take_at(addr, Instant::now())
    }

    fn take_at(&self, addr: SocketAddr, now: Instant) -> Option<T> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some((conn, since)) = list.pop() {
            if now.duration_since(since) < MAX_IDLE_AGE {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection whose last exchange completed.
    pub fn put(&self, addr: SocketAddr, conn: T) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < self.max_idle_per_addr {
            list.push((conn, Instant::now()));
        }
    }

    /// Drops every idle connection to `addr` (after it failed: the others are likely stale too).
    pub fn forget(&self, addr: SocketAddr) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn reuses_per_address_and_caps_idle() {
        let p = Pool::new(2);
        p.put(addr(1), "a");
        p.put(addr(1), "b");
        p.put(addr(1), "c"); // over the cap: closed
        assert_eq!(p.take(addr(2)), None);
        assert_eq!(p.take(addr(1)), Some("b"));
        assert_eq!(p.take(addr(1)), Some("a"));
        assert_eq!(p.take(addr(1)), None);
    }

    #[test]
    fn old_idle_connections_are_not_trusted() {
        let p = Pool::new(4);
        p.put(addr(1), 7);
        let later = Instant::now() + MAX_IDLE_AGE + Duration::from_secs(1);
        assert_eq!(p.take_at(addr(1), later), None);
    }

    #[test]
    fn forget_drops_idle() {
        let p = Pool::new(4);
        p.put(addr(1), 1);
        p.forget(addr(1));
        assert_eq!(p.take(addr(1)), None);
    }
}
