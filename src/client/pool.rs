//! Keep-alive TCP connections to trackers and storages, as FastDFS's C client pools them.
//!
//! A connection goes back to the pool only when the caller says the last exchange completed
//! ([`PooledConn::release`]); one dropped mid-response is closed, because the stream would be out
//! of sync with the next request. Idle connections are capped per address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long an idle connection may wait in the pool before we stop trusting it.
const MAX_IDLE_AGE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(TcpStream, Instant)>>>,
    max_idle_per_addr: usize,
    connect_timeout: Duration,
}

impl Pool {
    pub fn new(max_idle_per_addr: usize, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle_per_addr,
            connect_timeout,
        })
    }

    /// An idle connection to `addr`, or a new one.
    pub async fn get(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<PooledConn> {
        if let Some(stream) = self.take_idle(addr) {
            return Ok(PooledConn {
                stream: Some(stream),
                addr,
                pool: Arc::clone(self),
                reused: true,
            });
        }
        self.connect(addr).await
    }

    /// Always a fresh connection (used to retry once when a pooled one turned out to be stale).
    pub async fn connect(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<PooledConn> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                )
            })??;
        stream.set_nodelay(true)?;
        Ok(PooledConn {
            stream: Some(stream),
            addr,
            pool: Arc::clone(self),
            reused: false,
        })
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some((stream, since)) = list.pop() {
            if since.elapsed() < MAX_IDLE_AGE {
                return Some(stream);
            }
        }
        None
    }

    fn put_back(&self, addr: SocketAddr, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < self.max_idle_per_addr {
            list.push((stream, Instant::now()));
        }
    }
}

/// A connection borrowed from the pool; closed on drop unless released.
#[derive(Debug)]
pub struct PooledConn {
    stream: Option<TcpStream>,
    addr: SocketAddr,
    pool: Arc<Pool>,
    reused: bool,
}

impl PooledConn {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True when this connection came from the pool (it may have been closed by the peer).
    pub fn was_reused(&self) -> bool {
        self.reused
    }

    /// The exchange finished cleanly: keep the connection for the next request.
    pub fn release(mut self) {
        if let Some(s) = self.stream.take() {
            self.pool.put_back(self.addr, s);
        }
    }
}

impl Deref for PooledConn {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        self.stream.as_ref().expect("stream present until release")
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut TcpStream {
        self.stream.as_mut().expect("stream present until release")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn released_connections_are_reused_dropped_ones_are_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = tokio::spawn(async move {
            let mut n = 0;
            while let Ok(Ok((mut s, _))) =
                tokio::time::timeout(Duration::from_millis(300), listener.accept()).await
            {
                n += 1;
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    while s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                    }
                });
            }
            n
        });
        let pool = Pool::new(4, Duration::from_secs(1));
        for _ in 0..3 {
            let mut c = pool.get(addr).await.unwrap();
            c.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            c.release();
        }
        let c = pool.get(addr).await.unwrap();
        assert!(c.was_reused());
        drop(c); // not released: closed
        let c = pool.get(addr).await.unwrap();
        assert!(!c.was_reused());
        drop(c);
        assert_eq!(accepts.await.unwrap(), 2);
    }
}
