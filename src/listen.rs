//! Listening sockets for the FastDFS ports (tracker and storage), with an accept queue sized
//! for a reconnect storm: when a tracker restarts, every storage of the cluster connects again
//! within the same second. `TcpListener::bind` asks the kernel for 1,024; past that the kernel
//! drops the SYNs and each dropped client waits for its retransmit (1 s, then 3, 7, 15 ...):
//! 2,000 simulated storages joining at once took up to 28 s that way, with 3,400 overflows per
//! join (benches/tracker_bench.rs, `nstat TcpExtListenOverflows`). The kernel caps the request at
//! `net.core.somaxconn` (4,096 by default since Linux 5.4).

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may hold for us before we accept them.
pub const BACKLOG: u32 = 4096;

/// Binds `addr` (with SO_REUSEADDR, as `TcpListener::bind`) and listens with [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn proc_number(path: &str) -> Option<u64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// Connects beyond tokio's 1,024 while nobody accepts: each must complete from the queue.
    /// With a 1,024 backlog the ones past it never complete (their SYNs are dropped again and
    /// again while the queue stays full), so this fails on the old bind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_past_1024_connects_waits_in_the_queue() {
        let somaxconn = proc_number("/proc/sys/net/core/somaxconn").unwrap_or(0);
        let n = 1_500.min(somaxconn.saturating_sub(16) as usize);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct we pass.
        let files = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
        if n <= 1_100 || !files || (lim.rlim_cur as usize) < n + 256 {
            eprintln!(
                "SKIP: somaxconn {somaxconn}, open-file limit {}: cannot show a queue past 1,024",
                lim.rlim_cur
            );
            return;
        }
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                    .await
            });
        }
        let (mut ok, mut failed) = (Vec::new(), 0);
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(Ok(s))) => ok.push(s),
                _ => failed += 1,
            }
        }
        assert_eq!(failed, 0, "{failed} of {n} connects did not complete");
        drop(listener);
    }
}
