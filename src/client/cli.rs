//! The client subcommands (`fdfs-ha upload / download / delete / info / monitor`), FastDFS's
//! fdfs_upload_file, fdfs_download_file, fdfs_delete_file, fdfs_file_info and fdfs_monitor.
//! Each returns the text to print; main.rs only parses arguments and sets the exit code.

use super::{ClientError, FdfsClient};
use crate::proto::fileid::{split_file_id, RemoteName};
use crate::proto::tracker::StorageStatus;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Resolves `--tracker HOST:PORT` arguments (default 127.0.0.1:22122).
pub fn trackers(args: &[String]) -> Result<Vec<SocketAddr>, String> {
    let list: Vec<String> = if args.is_empty() {
        vec!["127.0.0.1:22122".into()]
    } else {
        args.to_vec()
    };
    let mut out = Vec::new();
    for t in &list {
        let addrs = t
            .to_socket_addrs()
            .map_err(|e| format!("--tracker {t}: {e}"))?;
        out.extend(addrs);
    }
    Ok(out)
}

pub async fn upload(client: &FdfsClient, file: &Path) -> Result<String, ClientError> {
    client.upload_path(file).await
}

/// Downloads to `out`, or to the file's own name in the current directory.
pub async fn download(
    client: &FdfsClient,
    id: &str,
    out: Option<PathBuf>,
) -> Result<String, ClientError> {
    let out = match out {
        Some(o) => o,
        None => {
            let name = id.rsplit('/').next().unwrap_or(id);
            PathBuf::from(name)
        }
    };
    let n = client.download_to_path(id, &out).await?;
    Ok(format!("{} bytes -> {}", n, out.display()))
}

pub async fn delete(client: &FdfsClient, id: &str) -> Result<String, ClientError> {
    client.delete(id).await?;
    Ok(format!("deleted {id}"))
}

/// What the file ID says, and what the storage holding it says (as fdfs_file_info prints).
pub async fn info(client: &FdfsClient, id: &str) -> Result<String, ClientError> {
    let (group, name) = split_file_id(id).map_err(ClientError::BadFileId)?;
    let parsed = RemoteName::parse_str(name).map_err(ClientError::BadFileId)?;
    let i = parsed.info;
    let kind = if i.is_appender() {
        "appender"
    } else if parsed.is_slave() {
        "slave"
    } else {
        "normal"
    };
    let mut s = String::new();
    let _ = writeln!(s, "group name: {group}");
    let _ = writeln!(s, "file type: {kind}");
    let _ = writeln!(s, "source storage: {}", i.source);
    let _ = writeln!(
        s,
        "file create timestamp: {} ({})",
        i.create_time,
        httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(i.create_time as u64)
        )
    );
    let _ = writeln!(s, "file size (from ID): {}", i.file_size());
    let _ = writeln!(s, "file crc32 (from ID): {:#010x}", i.crc32);
    match client.file_info(id).await {
        Ok(r) => {
            let _ = writeln!(s, "GET FROM SERVER: true");
            let _ = writeln!(s, "source ip address: {}", r.source_ip);
            let _ = writeln!(s, "file size: {}", r.file_size);
            let _ = writeln!(s, "file crc32: {:#010x}", r.crc32);
        }
        Err(e) => {
            let _ = writeln!(s, "GET FROM SERVER: false ({e})");
        }
    }
    Ok(s)
}

/// Bound on asking one storage for its sync status (a dead storage must not stall the monitor).
const MONITOR_STORAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn status_name(v: u8) -> &'static str {
    StorageStatus::from_u8(v)
        .map(|s| s.name())
        .unwrap_or("UNKNOWN")
}

/// Groups and storages with status and space, as fdfs_monitor shows them.
pub async fn monitor(client: &FdfsClient) -> Result<String, ClientError> {
    let mut s = String::new();
    let groups = client.list_groups().await?;
    let _ = writeln!(s, "group count: {}", groups.len());
    for g in groups {
        let _ = writeln!(
            s,
            "\nGroup {}: storages {}, active (readable/writable) {}/{}, total {} MB, free {} MB, reserved {} MB",
            g.group, g.storage_count, g.readable_count, g.writable_count, g.total_mb, g.free_mb, g.reserved_mb
        );
        for st in client.list_storages(&g.group).await? {
            let id = if st.id.is_empty() {
                "-"
            } else {
                st.id.as_str()
            };
            let _ = writeln!(
                s,
                "  Storage {id} {}:{}  {}  total {} MB, free {} MB, uploads {}/{}, downloads {}/{}, src {}",
                st.ip,
                st.storage_port,
                status_name(st.status),
                st.total_mb,
                st.free_mb,
                st.stats.get("success_upload_count").unwrap_or(0),
                st.stats.get("total_upload_count").unwrap_or(0),
                st.stats.get("success_download_count").unwrap_or(0),
                st.stats.get("total_download_count").unwrap_or(0),
                if st.src_id.is_empty() { "-" } else { st.src_id.as_str() },
            );
            s.push_str(&sync_lag_lines(&st.ip, st.storage_port, MONITOR_STORAGE_TIMEOUT).await);
        }
    }
    Ok(s)
}

/// Per-peer replication lag, asked from the storage itself (SYNC_STATUS_QUERY); one line
/// per peer, or why it could not be asked.
async fn sync_lag_lines(ip: &str, port: i64, timeout: std::time::Duration) -> String {
    let addr = format!("{ip}:{port}");
    let report = async {
        let mut c = super::storage::StorageConn::connect_timeout(addr.as_str(), timeout).await?;
        let r = c.sync_status().await;
        let _ = c.quit().await;
        r
    }
    .await;
    match report {
        Ok(r) => format_sync_report(&r),
        Err(e) => format!("    sync status: unavailable ({e})\n"),
    }
}

/// The monitor's lines for one storage's sync report.
pub fn format_sync_report(r: &crate::proto::sync::SyncReport) -> String {
    let mut s = String::new();
    if !r.sync_old_done {
        let _ = writeln!(s, "    initial copy of the group's data: in progress");
    }
    for p in &r.peers {
        let _ = writeln!(
            s,
            "    sync -> {}: {}, behind {} records / {} bytes / {} s, sent {} records / {} bytes, failures {}{}",
            p.peer,
            p.state,
            p.records_behind,
            p.bytes_behind,
            p.seconds_behind,
            p.records_sent,
            p.bytes_sent,
            p.failures,
            if p.last_error.is_empty() {
                String::new()
            } else {
                format!(" (last: {})", p.last_error)
            }
        );
    }
    for (src, ts) in &r.synced_from {
        let _ = writeln!(s, "    synced from {src} up to {ts}");
    }
    s
}
