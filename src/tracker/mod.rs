//! FastDFS tracker: cluster view (groups, storages, status), storage selection, tracker service.
//!
//! Contract with the supervisor: `TrackerServer::bind` then `serve(shutdown)`; `serve` returns when
//! `shutdown` is cancelled (after in-flight requests finish) or on a fatal error.

use crate::config::TrackerConfig;
use std::net::SocketAddr;
use std::path::Path;
use tokio_util::sync::CancellationToken;

pub struct TrackerServer {
    listener: tokio::net::TcpListener,
}

impl TrackerServer {
    pub async fn bind(cfg: &TrackerConfig, _data_dir: &Path) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        Ok(TrackerServer { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await; // interim: replaced by the tracker service
        Ok(())
    }
}
