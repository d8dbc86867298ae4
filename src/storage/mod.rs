//! FastDFS storage: file store, storage service, reporting to trackers, binlog and sync, http.
//!
//! Contract with the supervisor: `StorageServer::bind` then `serve(shutdown)`; `serve` returns when
//! `shutdown` is cancelled (after in-flight requests finish) or on a fatal error.

use crate::config::StorageConfig;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

pub struct StorageServer {
    listener: tokio::net::TcpListener,
}

impl StorageServer {
    pub async fn bind(cfg: &StorageConfig, _node: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        Ok(StorageServer { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await; // interim: replaced by the storage service
        Ok(())
    }
}
pub mod http;
