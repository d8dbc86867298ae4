//! Front HTTP gateway: per-group routing to live storages, upstream health, disk cache, purge.
//!
//! Contract with the supervisor: `Gateway::bind` then `serve(shutdown)`.

use crate::config::GatewayConfig;
use std::net::SocketAddr;
use std::path::Path;
use tokio_util::sync::CancellationToken;

pub struct Gateway {
    listener: tokio::net::TcpListener,
}

impl Gateway {
    pub async fn bind(cfg: &GatewayConfig, _data_dir: &Path) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        Ok(Gateway { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        shutdown.cancelled().await; // interim: replaced by the gateway
        Ok(())
    }
}
