//! The ha.yaml schema: one struct per section, serde defaults = FastDFS / keepalived / nginx defaults.
//!
//! Every struct denies unknown keys, so a typo is an error naming its key and line, never a silently
//! ignored setting. Validation that needs more than types (paths exist, ports free, ...) lives in
//! `config::validate`. Components receive their own section and never parse YAML themselves.
//! The `probes`, `supervisor` and `external` sections live in `supervision`.

use super::values::{ByteSize, Dur, Reserved};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

mod supervision;
pub use supervision::*;
use supervision::{default_backoff_max, default_backoff_min};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this node in logs and status (keepalived's router_id).
    pub node: String,
    /// Where fdfs-ha keeps its own state (tracker's cluster view, caches by default).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub log: LogConfig,
    /// When started as root: the user (and group) to run as once the process is set up
    /// (FastDFS's `run_by_user` / `run_by_group`); VRRP keeps CAP_NET_RAW and CAP_NET_ADMIN.
    #[serde(default)]
    pub run_by_user: Option<String>,
    #[serde(default)]
    pub run_by_group: Option<String>,
    /// Write the process id here at start, remove it at exit (`--pidfile` overrides).
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// Local status endpoint read by `fdfs-ha status`.
    #[serde(default)]
    pub status: StatusConfig,
    #[serde(default)]
    pub vrrp: Option<VrrpConfig>,
    #[serde(default)]
    pub probes: Vec<ProbeConfig>,
    #[serde(default)]
    pub supervisor: SupervisorConfig,
    #[serde(default)]
    pub tracker: Option<TrackerConfig>,
    #[serde(default)]
    pub storage: Option<StorageConfig>,
    #[serde(default)]
    pub gateway: Option<GatewayConfig>,
    /// External components the supervisor starts and watches (e.g. a real nginx).
    #[serde(default)]
    pub external: Vec<ExternalComponent>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/fdfs-ha")
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. `info` or `fdfs_ha::vrrp=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// HTTP access log of the gateway and storage http (nginx `combined` + request time and
    /// cache status): `off`, `stdout` or a file path. Files are reopened on SIGUSR1.
    #[serde(default = "default_off")]
    pub access_log: String,
    /// Clients' FastDFS requests to the storage, one line each, as FastDFS's `use_access_log`
    /// (peers' sync traffic is not logged, nor tracker requests: C has no tracker access log):
    /// `off`, `stdout` or a file path. Files are reopened on SIGUSR1.
    #[serde(default = "default_off")]
    pub protocol_log: String,
}

fn default_off() -> String {
    "off".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            format: default_log_format(),
            access_log: default_off(),
            protocol_log: default_off(),
        }
    }
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_format() -> String {
    "text".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Loopback address of the status endpoint; `null` disables it.
    #[serde(default = "default_status_listen")]
    pub listen: Option<SocketAddr>,
    /// Serve `POST /debug/components/<name>/{kill,break,fix}` (fault injection for drills).
    /// Off by default: with it on, any local user can make the node yield its VIPs.
    #[serde(default)]
    pub debug_endpoints: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: default_status_listen(),
            debug_endpoints: false,
        }
    }
}
fn default_status_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 8399)))
}

// ------------------------------------------------------------------------------------------------
// VRRP (keepalived's vrrp_instance)

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VrrpConfig {
    pub instances: Vec<VrrpInstanceConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstanceConfig {
    pub name: String,
    pub interface: String,
    pub virtual_router_id: u8,
    /// 1..=255; 255 means this node owns the addresses (goes Master at once).
    pub priority: u8,
    /// VRRP version: 2 (RFC 3768, keepalived's default) or 3 (RFC 5798: centisecond intervals,
    /// no authentication; keepalived `vrrp_version 3`).
    #[serde(default = "default_vrrp_version")]
    pub version: u8,
    /// Whole seconds in VRRPv2; multiples of 10 ms from 10 ms to 40.95 s in VRRPv3.
    #[serde(default = "default_advert_int")]
    pub advert_int: Dur,
    /// keepalived's `nopreempt` is `preempt: false`.
    #[serde(default = "default_true")]
    pub preempt: bool,
    /// Wait this long after start-up before preempting a lower-priority Master.
    #[serde(default)]
    pub preempt_delay: Dur,
    #[serde(default)]
    pub auth: Option<VrrpAuth>,
    /// VIPs as `a.b.c.d/len` (length defaults to 32 when omitted).
    pub virtual_ipaddress: Vec<String>,
    /// Source address for adverts; default: the interface's first address that is not a VIP.
    #[serde(default)]
    pub src_ip: Option<Ipv4Addr>,
    /// Send adverts by unicast to these peers instead of multicast 224.0.0.18.
    #[serde(default)]
    pub unicast_peers: Vec<Ipv4Addr>,
    #[serde(default)]
    pub garp: GarpConfig,
    #[serde(default)]
    pub track: Vec<TrackConfig>,
    /// Commands run on every state change: `<cmd...> <instance> <MASTER|BACKUP|FAULT>`.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Make-before-break: on stop a Master keeps its VIPs until the peer's advert is heard or
    /// `3 x advert_int` passes.
    #[serde(default = "default_true")]
    pub graceful_handover: bool,
    /// With `graceful_handover`, a Master that has heard no peer since it started still waits
    /// one advert interval on stop for a Backup (silent until it takes over) to answer. Off:
    /// it releases at once, as keepalived does.
    #[serde(default)]
    pub handover_to_silent_backup: bool,
}

fn default_vrrp_version() -> u8 {
    2
}
fn default_advert_int() -> Dur {
    Dur::secs(1)
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub enum VrrpAuth {
    None,
    /// RFC 2338 simple password: at most 8 bytes, zero padded.
    Pass {
        password: String,
    },
    /// HMAC-SHA256 tags and a replay guard, between fdfs-ha nodes only (see
    /// `vrrp::auth_hmac`): the first key signs, every key listed is accepted (rotation).
    Hmac {
        keys: Vec<String>,
    },
}

/// Gratuitous ARP on becoming Master (keepalived: garp_master_delay 5, garp_master_repeat 5).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GarpConfig {
    /// ARPs per VIP in each burst.
    #[serde(default = "default_garp_repeat")]
    pub repeat: u32,
    /// Spacing between ARPs of one burst.
    #[serde(default = "default_garp_interval")]
    pub interval: Dur,
    /// Delay of the second burst after becoming Master (0 = no second burst).
    #[serde(default = "default_garp_master_delay")]
    pub master_delay: Dur,
    /// Periodic refresh while Master (0 = off).
    #[serde(default)]
    pub refresh: Dur,
    /// Re-send a burst when a lower-priority advert is heard (heals a brief split brain).
    #[serde(default = "default_true")]
    pub lower_prio_repeat: bool,
    /// When preempting a live Master, wait this long after our first advert before the first
    /// burst, so the old Master (fdfs-ha) closes its keep-alive connections before clients'
    /// traffic moves. 0 = at once; use 0 when the peer is keepalived, which drops the VIP on
    /// hearing us.
    #[serde(default = "default_garp_preempt_delay")]
    pub preempt_delay: Dur,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            repeat: default_garp_repeat(),
            interval: default_garp_interval(),
            master_delay: default_garp_master_delay(),
            refresh: Dur::default(),
            lower_prio_repeat: true,
            preempt_delay: default_garp_preempt_delay(),
        }
    }
}
fn default_garp_repeat() -> u32 {
    5
}
fn default_garp_interval() -> Dur {
    Dur::millis(0)
}
fn default_garp_master_delay() -> Dur {
    Dur::secs(5)
}
fn default_garp_preempt_delay() -> Dur {
    Dur::millis(50)
}

/// `track: [{probe: gateway, weight: -20}]`; `weight: fault` puts the instance in FAULT.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackConfig {
    pub probe: String,
    #[serde(default)]
    pub weight: TrackWeight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrackWeight {
    /// Added to the priority while healthy (> 0) or while failing (< 0), keepalived-style.
    Weight(i32),
    /// The string `fault`: the instance is in FAULT while the probe fails. The default, made
    /// explicit because keepalived's implicit "weight 0 = fault" confuses operators.
    #[default]
    Fault,
}

impl Serialize for TrackWeight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TrackWeight::Weight(w) => s.serialize_i32(*w),
            TrackWeight::Fault => s.serialize_str("fault"),
        }
    }
}

impl<'de> Deserialize<'de> for TrackWeight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TrackWeight;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a weight such as -20 or 10, or `fault`")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TrackWeight, E> {
                i32::try_from(v)
                    .map(TrackWeight::Weight)
                    .map_err(|_| E::custom(format!("weight {v} out of range")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TrackWeight, E> {
                i32::try_from(v)
                    .map(TrackWeight::Weight)
                    .map_err(|_| E::custom(format!("weight {v} out of range")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TrackWeight, E> {
                if v == "fault" {
                    Ok(TrackWeight::Fault)
                } else {
                    Err(E::custom(format!(
                        "expected a number or `fault`, got {v:?}"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

// ------------------------------------------------------------------------------------------------
// Tracker (tracker.conf)

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    #[serde(default = "default_tracker_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub store_lookup: StoreLookup,
    /// The group used by `store_lookup: specified`.
    #[serde(default)]
    pub store_group: Option<String>,
    #[serde(default)]
    pub store_server: StoreServer,
    #[serde(default)]
    pub store_path: StorePathLookup,
    #[serde(default)]
    pub download_server: DownloadServer,
    #[serde(default)]
    pub reserved_storage_space: Reserved,
    /// A storage silent for this long goes OFFLINE (tracker.conf check_active_interval).
    #[serde(default = "default_check_active")]
    pub check_active_interval: Dur,
    #[serde(default)]
    pub response_ip_addr_size: IpAddrSize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_network_timeout")]
    pub network_timeout: Dur,
    /// Largest request body the tracker accepts.
    #[serde(default = "default_tracker_max_body")]
    pub max_body: ByteSize,
    #[serde(default = "default_sync_max_delay")]
    pub storage_sync_file_max_delay: Dur,
    #[serde(default = "default_sync_max_time")]
    pub storage_sync_file_max_time: Dur,
    #[serde(default)]
    pub use_storage_id: bool,
    #[serde(default)]
    pub id_type_in_filename: IdType,
    /// storage_ids.conf as YAML.
    #[serde(default)]
    pub storage_ids: Vec<StorageIdEntry>,
    /// Client addresses accepted (tracker.conf allow_hosts: `*`, addresses, `10.0.0.[1-15,20]`,
    /// CIDR, host names); empty = every address.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Most groups the tracker keeps; a JOIN naming one more is refused (ENOSPC).
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    /// Most storages in one group; a JOIN of one more is refused (ENOSPC).
    #[serde(default = "default_max_storages_per_group")]
    pub max_storages_per_group: usize,
    /// Most simultaneous connections from one client address (0 = only `max_connections`).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
}

fn default_max_groups() -> usize {
    1024
}
fn default_max_storages_per_group() -> usize {
    64
}
fn default_max_connections_per_ip() -> usize {
    512
}
fn default_tracker_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 22122))
}
fn default_check_active() -> Dur {
    Dur::secs(100)
}
fn default_max_connections() -> usize {
    1024
}
fn default_network_timeout() -> Dur {
    Dur::secs(30)
}
fn default_tracker_max_body() -> ByteSize {
    ByteSize(64 * 1024)
}
fn default_sync_max_delay() -> Dur {
    Dur::secs(86400)
}
fn default_sync_max_time() -> Dur {
    Dur::secs(300)
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreLookup {
    #[default]
    RoundRobin,
    Specified,
    LoadBalance,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreServer {
    #[default]
    RoundRobin,
    FirstByIp,
    ByPriority,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StorePathLookup {
    #[default]
    RoundRobin,
    LoadBalance,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DownloadServer {
    #[default]
    RoundRobin,
    SourceFirst,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum IpAddrSize {
    #[default]
    Auto,
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    #[default]
    Ip,
    Id,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageIdEntry {
    pub id: String,
    pub group: String,
    pub ip: String,
    #[serde(default)]
    pub port: Option<u16>,
}

// ------------------------------------------------------------------------------------------------
// Storage (storage.conf)

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub group: String,
    #[serde(default = "default_storage_listen")]
    pub listen: SocketAddr,
    /// Address announced to trackers and written into file IDs (default: as seen by the tracker).
    #[serde(default)]
    pub advertise_ip: Option<String>,
    /// Storage ID when the trackers use `use_storage_id`.
    #[serde(default)]
    pub id: Option<String>,
    pub trackers: Vec<String>,
    pub store_paths: Vec<PathBuf>,
    /// Where the binlog and sync marks live (default: store_paths[0]).
    #[serde(default)]
    pub base_path: Option<PathBuf>,
    #[serde(default = "default_subdir_count")]
    pub subdir_count_per_path: u32,
    #[serde(default)]
    pub file_distribute_path_mode: DistributePathMode,
    #[serde(default = "default_rotate_count")]
    pub file_distribute_rotate_count: u32,
    #[serde(default = "default_heart_beat")]
    pub heart_beat_interval: Dur,
    #[serde(default = "default_stat_report")]
    pub stat_report_interval: Dur,
    #[serde(default = "default_upload_priority")]
    pub upload_priority: i64,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most simultaneous connections from one client address (0 = only `max_connections`).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Client addresses accepted (storage.conf allow_hosts, same syntax as the tracker's);
    /// empty = every address.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default = "default_network_timeout")]
    pub network_timeout: Dur,
    /// fsync every uploaded file before acknowledging it (FastDFS never does).
    #[serde(default = "default_true")]
    pub fsync: bool,
    /// With `fsync` on, uploads of at least this size are written with O_DIRECT: straight from
    /// the receive buffer to the disk (which the reply waits for anyway), not copied into and
    /// evicting the page cache, like nginx's `directio`; replication then reads such files with
    /// O_DIRECT too. `null` writes every upload through the page cache (as FastDFS does), as
    /// does `fsync: false`.
    #[serde(default = "default_direct_io_min_size")]
    pub direct_io_min_size: Option<ByteSize>,
    /// Largest non-file request body (metadata, names).
    #[serde(default = "default_storage_max_body")]
    pub max_body: ByteSize,
    /// Largest file accepted by an upload.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: ByteSize,
    #[serde(default = "default_max_metadata")]
    pub max_metadata_size: ByteSize,
    #[serde(default)]
    pub reserved_storage_space: Reserved,
    #[serde(default)]
    pub http: Option<StorageHttpConfig>,
    #[serde(default)]
    pub sync: SyncConfig,
}

fn default_storage_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 23000))
}
fn default_subdir_count() -> u32 {
    256
}
fn default_rotate_count() -> u32 {
    100
}
fn default_heart_beat() -> Dur {
    Dur::secs(30)
}
fn default_stat_report() -> Dur {
    Dur::secs(60)
}
fn default_upload_priority() -> i64 {
    10
}
fn default_storage_max_body() -> ByteSize {
    ByteSize(1024 * 1024)
}
fn default_direct_io_min_size() -> Option<ByteSize> {
    Some(ByteSize(1 << 20))
}
fn default_max_file_size() -> ByteSize {
    ByteSize(64 << 30)
}
fn default_max_metadata() -> ByteSize {
    ByteSize(64 * 1024)
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DistributePathMode {
    #[default]
    RoundRobin,
    Hash,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// binlog fsync interval (sync_binlog_buff_interval).
    #[serde(default = "default_binlog_flush")]
    pub binlog_flush_interval: Dur,
    #[serde(default = "default_backoff_min")]
    pub retry_backoff_min: Dur,
    #[serde(default = "default_backoff_max")]
    pub retry_backoff_max: Dur,
    /// Persist a peer's mark after this many records (write_mark_file_freq).
    #[serde(default = "default_mark_freq")]
    pub write_mark_every: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            binlog_flush_interval: default_binlog_flush(),
            retry_backoff_min: default_backoff_min(),
            retry_backoff_max: default_backoff_max(),
            write_mark_every: default_mark_freq(),
        }
    }
}
fn default_binlog_flush() -> Dur {
    Dur::secs(1)
}
fn default_mark_freq() -> u32 {
    500
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageHttpConfig {
    #[serde(default = "default_storage_http_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_true")]
    pub url_have_group_name: bool,
    #[serde(default)]
    pub response_mode: ResponseMode,
    #[serde(default)]
    pub anti_steal: Option<AntiStealConfig>,
    /// mod_fastdfs `flv_support`: `.flv` files honour `?start=<offset>` (pseudo-streaming).
    #[serde(default = "default_true")]
    pub flv_support: bool,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Dur,
    /// Port of the storage http on the source storage, for proxying unsynced files.
    #[serde(default)]
    pub source_port: Option<u16>,
    /// A file missing locally and older than this is gone, not unsynced: 404 instead of asking
    /// its source (storage.conf storage_sync_file_max_delay).
    #[serde(default = "default_sync_max_delay")]
    pub sync_file_max_delay: Dur,
    /// A client that reads nothing of a response for this long is disconnected (nginx send_timeout).
    #[serde(default = "default_send_timeout")]
    pub send_timeout: Dur,
}

fn default_send_timeout() -> Dur {
    Dur::secs(60)
}

fn default_storage_http_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8888))
}
fn default_header_timeout() -> Dur {
    Dur::secs(10)
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    #[default]
    Proxy,
    Redirect,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AntiStealConfig {
    pub secret_key: String,
    #[serde(default = "default_token_ttl")]
    pub token_ttl: Dur,
    /// File returned (200) when the token check fails; 403 when unset.
    #[serde(default)]
    pub check_fail_file: Option<PathBuf>,
}
fn default_token_ttl() -> Dur {
    Dur::secs(900)
}

// ------------------------------------------------------------------------------------------------
// Gateway (the caching nginx in front)

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default = "default_gateway_listen")]
    pub listen: SocketAddr,
    /// URL prefix such as `/dfs` in front of `/<group>/M00/...`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Several listeners, each with its own prefixes (`:80` with `/dfs`, `:8000` with none), so
    /// one node serves every URL shape of a site. When given, `listen` and `prefix` are unused.
    #[serde(default)]
    pub listeners: Vec<GatewayListener>,
    pub trackers: Vec<String>,
    /// How often the group/storage list is refreshed from the trackers.
    #[serde(default = "default_refresh")]
    pub refresh_interval: Dur,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Sets Cache-Control max-age and Expires on responses (nginx `expires 30d`).
    #[serde(default)]
    pub expires: Option<Dur>,
    #[serde(default = "default_purge_allow")]
    pub purge_allow: Vec<String>,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Dur,
    #[serde(default = "default_header_timeout")]
    pub body_timeout: Dur,
    /// Static weights per storage address (`ip:port: weight`), default 1.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// A client that reads nothing of a response for this long is disconnected (nginx send_timeout).
    #[serde(default = "default_send_timeout")]
    pub send_timeout: Dur,
    /// The storages' anti-steal settings: tokens are checked here, before a cached answer is
    /// served, and left out of cache keys. Without it, tokened requests bypass the cache.
    #[serde(default)]
    pub anti_steal: Option<AntiStealConfig>,
    /// The other gateways of the VRRP pair (`ip:port` of a listener): purges are forwarded to
    /// them and the keys this node fetches warm their caches. Each must be in the other's
    /// `purge_allow`.
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// Proxies in front whose X-Forwarded-For / X-Forwarded-Proto are believed (CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// nginx `valid_referers` for some extensions (403 otherwise).
    #[serde(default)]
    pub hotlink: Option<HotlinkConfig>,
    /// nginx `gzip on; gzip_types ...`.
    #[serde(default)]
    pub gzip: Option<GzipConfig>,
    /// nginx `error_page 500 502 503 504 /50x.html`: `{"500 502 503 504": /srv/50x.html}`.
    #[serde(default)]
    pub error_pages: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HotlinkConfig {
    /// Extensions guarded (`[jpg, png, flv]`); empty: every file.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// `none`, `blocked`, host names (`www.example.com`, `*.example.com`, `example.*`) or
    /// host/path prefixes.
    pub valid_referers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GzipConfig {
    #[serde(default = "default_gzip_types")]
    pub types: Vec<String>,
    #[serde(default = "default_gzip_min_length")]
    pub min_length: ByteSize,
    #[serde(default = "default_gzip_level")]
    pub level: u32,
}
fn default_gzip_types() -> Vec<String> {
    [
        "text/plain",
        "text/css",
        "text/xml",
        "application/javascript",
        "application/json",
        "application/xml",
    ]
    .map(String::from)
    .to_vec()
}
fn default_gzip_min_length() -> ByteSize {
    ByteSize(1024)
}
fn default_gzip_level() -> u32 {
    2
}

/// One address of the gateway and the URL prefixes it serves (none: `/<group>/M00/...`; `""` or
/// `/` in the list also accepts the bare shape beside the prefixed ones).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayListener {
    pub listen: SocketAddr,
    #[serde(default)]
    pub prefixes: Vec<String>,
}

impl GatewayListener {
    /// The prefixes to strip, longest first, `""` standing for "no prefix".
    pub fn effective_prefixes(&self) -> Vec<String> {
        let mut v: Vec<String> = if self.prefixes.is_empty() {
            vec![String::new()]
        } else {
            self.prefixes
                .iter()
                .map(|p| if p == "/" { String::new() } else { p.clone() })
                .collect()
        };
        v.sort_by_key(|p| std::cmp::Reverse(p.len()));
        v.dedup();
        v
    }
}

impl GatewayConfig {
    /// `listeners`, or the single `listen` + `prefix` of the older form.
    pub fn effective_listeners(&self) -> Vec<GatewayListener> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        vec![GatewayListener {
            listen: self.listen,
            prefixes: self.prefix.iter().cloned().collect(),
        }]
    }
}

fn default_gateway_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8000))
}
fn default_refresh() -> Dur {
    Dur::secs(2)
}
fn default_purge_allow() -> Vec<String> {
    vec!["127.0.0.1/32".into()]
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout: Dur,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Dur,
    /// Port of the storage http on each storage (default 8888).
    #[serde(default = "default_storage_http_port")]
    pub storage_http_port: u16,
    /// Idle keep-alive connections kept per upstream.
    #[serde(default = "default_keepalive")]
    pub keepalive: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            max_fails: default_max_fails(),
            fail_timeout: default_fail_timeout(),
            connect_timeout: default_connect_timeout(),
            read_timeout: default_read_timeout(),
            storage_http_port: default_storage_http_port(),
            keepalive: default_keepalive(),
        }
    }
}
fn default_max_fails() -> u32 {
    2
}
fn default_fail_timeout() -> Dur {
    Dur::secs(30)
}
fn default_connect_timeout() -> Dur {
    Dur::secs(2)
}
fn default_read_timeout() -> Dur {
    Dur::secs(30)
}
fn default_storage_http_port() -> u16 {
    8888
}
fn default_keepalive() -> usize {
    32
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache directory (default: `<data_dir>/gateway-cache`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default = "default_cache_size")]
    pub max_size: ByteSize,
    #[serde(default = "default_inactive")]
    pub inactive: Dur,
    /// Validity per status list, nginx-style: `{"200 304": 12h, "404": 1m}`.
    #[serde(default = "default_valid")]
    pub valid: BTreeMap<String, Dur>,
}

fn default_cache_size() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_inactive() -> Dur {
    Dur::secs(30 * 86400)
}
fn default_valid() -> BTreeMap<String, Dur> {
    BTreeMap::from([("200 304".to_string(), Dur::secs(12 * 3600))])
}
