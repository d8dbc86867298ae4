//! fdfs-ha: one binary replacing keepalived + FastDFS tracker/storage + nginx for a FastDFS cluster.
//!
//! Module map (see docs/ARCHITECTURE.md): `config` (ha.yaml), `supervisor` (lifecycle),
//! `vrrp` (RFC 3768), `probe` (health checks), `proto` (FastDFS wire format, pure),
//! `tracker`, `storage`, `gateway` (HTTP front), `http` (the HTTP server both use), `client` (FastDFS client),
//! `import` (keepalived/FastDFS/nginx configs -> ha.yaml).

pub mod access_log;
pub mod admission;
pub mod client;
pub mod clock;
pub mod config;
pub mod fuzzing;
pub mod gateway;
pub mod http;
pub mod import;
pub mod listen;
pub mod log_limit;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod probe;
pub mod proto;
pub mod storage;
pub mod supervisor;
pub mod systemd;
pub mod tracker;
pub mod vrrp;
