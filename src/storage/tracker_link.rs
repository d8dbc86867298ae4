//! Connects a running storage to its trackers: the [`ReporterSource`] view of [`StorageState`].
//!
//! The reporter (storage/reporter.rs) speaks the protocol; this adapter only translates between
//! what trackers say (our address, cluster parameters, storage ids, the group's members) and the
//! storage's state, so neither side knows the other's internals.

use super::reporter::{ReporterSource, StorageBrief, StorageIdRecord, StorageStats, TrackerParams};
use super::state::{GroupParams, StorageState};
use crate::config::{IdType, Reserved};
use crate::proto::fileid::Source;
use crate::proto::tracker::{StorageStatus, STAT_COUNTERS};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

pub struct TrackerLink {
    state: Arc<StorageState>,
    /// The bound port (differs from the configured one when that was 0).
    port: u16,
    group_servers: RwLock<Vec<StorageBrief>>,
}

impl TrackerLink {
    pub fn new(state: Arc<StorageState>, port: u16) -> Self {
        TrackerLink {
            state,
            port,
            group_servers: RwLock::new(Vec::new()),
        }
    }

    /// The group's members as last reported by a tracker (replication's peer list).
    pub fn group_servers(&self) -> Vec<StorageBrief> {
        self.group_servers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Our own status in a tracker's server list (found by the id trackers know us by, and port).
fn own_status(
    servers: &[StorageBrief],
    me: Option<(String, String)>,
    port: u16,
) -> Option<StorageStatus> {
    let (id, _) = me?;
    servers
        .iter()
        .find(|b| b.id == id && b.port == port)
        .and_then(|b| StorageStatus::from_u8(b.status))
}

/// FastDFS writes `reserved_storage_space` as `20.00%` or a byte count.
fn parse_reserved(text: &str) -> Option<Reserved> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return p.trim().parse().ok().map(Reserved::Percent);
    }
    crate::config::values::parse_size(t)
        .ok()
        .map(Reserved::Bytes)
}

/// Which source goes into new file IDs, given what the tracker told us.
fn file_id_source(
    params: &TrackerParams,
    configured_id: Option<&str>,
    advertise_ip: Option<Ipv4Addr>,
    my_ip: &str,
) -> Option<Source> {
    if params.use_storage_id && params.id_type_in_filename == "id" {
        if let Some(id) = configured_id.and_then(|s| s.parse::<u32>().ok()) {
            return Some(Source::Id(id));
        }
    }
    advertise_ip.or_else(|| my_ip.parse().ok()).map(Source::Ip)
}

impl ReporterSource for TrackerLink {
    fn group(&self) -> String {
        self.state.group().to_string()
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn storage_id(&self) -> Option<String> {
        self.state.storage_id().map(str::to_owned)
    }

    fn store_path_count(&self) -> u32 {
        self.state.store_path_count() as u32
    }

    fn subdir_count(&self) -> u32 {
        self.state.subdir_count()
    }

    fn upload_priority(&self) -> i64 {
        self.state.upload_priority()
    }

    fn join_time(&self) -> i64 {
        self.state.join_time() as i64
    }

    fn up_time(&self) -> i64 {
        self.state.up_time() as i64
    }

    fn disk_usage(&self) -> Vec<(u64, u64)> {
        self.state
            .disk_usage()
            .iter()
            .map(|d| (d.total_mb, d.free_mb))
            .collect()
    }

    fn stats(&self) -> StorageStats {
        let s = self.state.stats().snapshot();
        let pairs = [
            &s.upload,
            &s.append,
            &s.modify,
            &s.truncate,
            &s.set_meta,
            &s.delete,
            &s.download,
            &s.get_meta,
            &s.create_link,
            &s.delete_link,
            &s.upload_bytes,
            &s.append_bytes,
            &s.modify_bytes,
            &s.download_bytes,
            &s.sync_in_bytes,
            &s.sync_out_bytes,
            &s.file_open,
            &s.file_read,
            &s.file_write,
        ];
        let mut counters = [0i64; STAT_COUNTERS];
        for (i, c) in pairs.iter().enumerate() {
            counters[2 * i] = c.total as i64;
            counters[2 * i + 1] = c.success as i64;
        }
        let tail = [
            s.last_source_update,
            s.last_sync_update,
            s.last_synced_timestamp,
            s.last_heart_beat_time,
        ];
        for (i, v) in tail.iter().enumerate() {
            counters[2 * pairs.len() + i] = *v as i64;
        }
        let clamp = |v: u64| v.min(u32::MAX as u64) as u32;
        StorageStats {
            connections: [
                clamp(s.connections_total),
                clamp(s.connections_current),
                clamp(s.connections_max),
            ],
            counters,
        }
    }

    fn sync_progress(&self) -> Vec<(String, u32)> {
        self.state.synced_from()
    }

    fn needs_initial_sync(&self) -> bool {
        !self.state.sync_old_done()
    }

    fn local_ip(&self) -> Option<std::net::IpAddr> {
        let ip = self.state.config().listen.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    fn on_identity(&self, my_ip: String, params: TrackerParams) {
        let advertise = self
            .state
            .config()
            .advertise_ip
            .as_deref()
            .and_then(|s| s.parse().ok());
        if let Some(src) = file_id_source(&params, self.state.storage_id(), advertise, &my_ip) {
            self.state.set_source(src);
        }
        // How trackers name us (cluster::identify): our id with storage ids, else our address.
        let id = match (params.use_storage_id, self.state.storage_id()) {
            (true, Some(id)) => id.to_string(),
            _ => my_ip.clone(),
        };
        self.state.set_tracker_identity(id, my_ip.clone());
        let id_type = if params.id_type_in_filename == "id" {
            IdType::Id
        } else {
            IdType::Ip
        };
        self.state.set_group_params(GroupParams {
            use_storage_id: params.use_storage_id,
            id_type_in_filename: id_type,
            reserved_storage_space: parse_reserved(&params.reserved_storage_space),
            response_ip_addr_size: params.response_ip_addr_size,
        });
    }

    fn on_storage_ids(&self, ids: Vec<StorageIdRecord>) {
        let map: HashMap<u32, String> = ids
            .into_iter()
            .filter_map(|r| {
                let ip = r
                    .addr
                    .rsplit_once(':')
                    .map_or(r.addr.as_str(), |(ip, _)| ip);
                Some((r.id.parse().ok()?, ip.to_string()))
            })
            .collect();
        self.state.set_storage_ips(map);
    }

    fn group_list_known(&self) -> bool {
        self.state.group_list_known()
    }

    fn on_group_servers(&self, servers: Vec<StorageBrief>) {
        if let Some(st) = own_status(&servers, self.state.tracker_identity(), self.port) {
            // Trackers moved us past INIT / WAIT_SYNC / SYNCING: our copy of the group's data
            // is complete (or there was none to copy).
            if !self.state.sync_old_done()
                && matches!(
                    st,
                    StorageStatus::Online | StorageStatus::Offline | StorageStatus::Active
                )
            {
                if let Err(e) = self.state.set_sync_old_done() {
                    tracing::error!(error = %e, "storage: cannot record that the initial copy is done");
                }
            }
        }
        self.state.set_group_servers(servers.clone());
        *self
            .group_servers
            .write()
            .unwrap_or_else(|e| e.into_inner()) = servers;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(use_id: bool, id_type: &str) -> TrackerParams {
        TrackerParams {
            use_storage_id: use_id,
            id_type_in_filename: id_type.into(),
            trust_storage_server_id: true,
            response_ip_addr_size: 16,
            storage_ip_changed_auto_adjust: true,
            storage_sync_file_max_delay: 86400,
            store_path: 0,
            reserved_storage_space: "10%".into(),
            store_slave_file_use_link: false,
            raw: Default::default(),
        }
    }

    #[test]
    fn id_mode_names_carry_the_storage_id() {
        let p = params(true, "id");
        assert_eq!(
            file_id_source(&p, Some("100001"), None, "127.0.0.1"),
            Some(Source::Id(100001))
        );
    }

    #[test]
    fn ip_mode_prefers_the_advertised_address_over_what_the_tracker_saw() {
        let p = params(true, "ip");
        let nat = Some(Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(
            file_id_source(&p, Some("100001"), nat, "10.0.0.5"),
            nat.map(Source::Ip)
        );
        assert_eq!(
            file_id_source(&p, None, None, "10.0.0.5"),
            Some(Source::Ip(Ipv4Addr::new(10, 0, 0, 5)))
        );
    }

    #[test]
    fn own_status_is_found_by_tracker_id_and_port() {
        let b = |id: &str, port, st: StorageStatus| StorageBrief {
            status: st as u8,
            port,
            id: id.into(),
            ip: "127.0.0.2".into(),
        };
        let list = vec![
            b("127.0.0.2", 23000, StorageStatus::WaitSync),
            b("127.0.0.2", 23001, StorageStatus::Active),
        ];
        let me = Some(("127.0.0.2".to_string(), "127.0.0.2".to_string()));
        assert_eq!(
            own_status(&list, me.clone(), 23000),
            Some(StorageStatus::WaitSync)
        );
        assert_eq!(
            own_status(&list, me.clone(), 23001),
            Some(StorageStatus::Active)
        );
        assert_eq!(own_status(&list, me, 23002), None);
        assert_eq!(own_status(&list, None, 23000), None);
    }

    #[test]
    fn reserved_space_in_fastdfs_text_form() {
        assert_eq!(parse_reserved("20.00%"), Some(Reserved::Percent(20.0)));
        assert_eq!(parse_reserved("1048576"), Some(Reserved::Bytes(1 << 20)));
    }
}
