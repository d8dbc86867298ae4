//! The client subcommands, FastDFS's fdfs_* tools: upload (fdfs_upload_file, also to a given
//! storage and store path), upload-appender, append, modify, truncate, regenerate, download (whole
//! or a range), delete, info (fdfs_file_info), crc32 (fdfs_crc32), monitor (fdfs_monitor).
//! They read client.conf like the C tools (`tracker_server`, `connect_timeout`,
//! `network_timeout`, `use_storage_id`). Each returns the text to print; main.rs only parses
//! arguments and sets the exit code (the errno the server answered, when it refused).

use super::storage::StorageConn;
use super::{ClientError, FdfsClient};
use crate::proto::connection::ConnError;
use crate::proto::fileid::{split_file_id, RemoteName};
use crate::proto::tracker::StorageStatus;
use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// What the client reads from client.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConf {
    pub trackers: Vec<String>,
    pub connect_timeout: Duration,
    pub network_timeout: Duration,
    pub use_storage_id: bool,
}

impl Default for ClientConf {
    /// The C client's defaults (connect 10 s, network 30 s).
    fn default() -> Self {
        ClientConf {
            trackers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            network_timeout: Duration::from_secs(30),
            use_storage_id: false,
        }
    }
}

/// Reads a client.conf with libfastcommon's rules; also returns warnings (e.g. an inline `#`,
/// which the C client would keep in the value; here the text before it is used).
pub fn read_client_conf(path: &Path) -> Result<(ClientConf, Vec<String>), String> {
    use crate::import::fastdfs_conf::{atoi, parse_file, truthy};
    let mut ctx = crate::import::Ctx::default();
    let conf = parse_file(path, &mut ctx).map_err(|e| e.to_string())?;
    let mut c = ClientConf::default();
    for kv in &conf.items {
        let v = kv.meant();
        match kv.key.as_str() {
            "tracker_server" => c.trackers.push(v.to_string()),
            "connect_timeout" if atoi(v) > 0 => {
                c.connect_timeout = Duration::from_secs(atoi(v) as u64)
            }
            "network_timeout" if atoi(v) > 0 => {
                c.network_timeout = Duration::from_secs(atoi(v) as u64)
            }
            "use_storage_id" => c.use_storage_id = truthy(v),
            _ => {}
        }
    }
    if c.trackers.is_empty() {
        return Err(format!("{}: no tracker_server line", path.display()));
    }
    Ok((c, ctx.warnings.iter().map(|w| w.to_string()).collect()))
}

/// The client for `--tracker` arguments (which win) or a client.conf.
pub fn make_client(
    conf: Option<&Path>,
    tracker_args: &[String],
) -> Result<(FdfsClient, ClientConf, Vec<String>), String> {
    let (mut cc, warnings) = match conf {
        Some(p) => read_client_conf(p)?,
        None => (ClientConf::default(), Vec::new()),
    };
    if !tracker_args.is_empty() {
        cc.trackers = tracker_args.to_vec();
    }
    let addrs = trackers(&cc.trackers)?;
    let client = FdfsClient::with_timeout(addrs, cc.network_timeout);
    Ok((client, cc, warnings))
}

/// The extension fdfs_upload_file sends: after the last dot if at most 6 bytes, widened to a
/// second dot when both parts still fit in 6 (`x.tar.gz` -> `tar.gz`); none when too long.
pub fn ext_of(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let Some(dot) = base.rfind('.') else {
        return String::new();
    };
    let ext = &base[dot + 1..];
    if ext.len() > crate::proto::FILE_EXT_NAME_LEN {
        return String::new();
    }
    // C: look back at most (6 - len) more bytes for another dot, never at the name's start.
    let start = dot.saturating_sub(crate::proto::FILE_EXT_NAME_LEN - ext.len() + 1);
    let before = &base.as_bytes()[..dot];
    let mut p = dot;
    while p > start + 1 && before[p - 1] != b'.' {
        p -= 1;
    }
    if p > start + 1 && before[p - 1] == b'.' {
        return base[p..].to_string();
    }
    ext.to_string()
}

/// Options of `upload` / `upload-appender`.
#[derive(Debug, Clone, Default)]
pub struct UploadOpts {
    /// Upload to this storage instead of asking a tracker (fdfs_upload_file's 3rd argument).
    pub storage: Option<SocketAddr>,
    /// Store path index on that storage (4th argument); default: the storage chooses.
    pub store_path_index: Option<u8>,
    pub appender: bool,
}

fn status_or(addr: SocketAddr) -> impl Fn(ConnError) -> ClientError {
    move |e| match e.status() {
        Some(s) => ClientError::Status(s),
        None => ClientError::Storage {
            addr: addr.to_string(),
            source: e,
        },
    }
}

/// A fresh storage connection for a streamed transfer: client.conf's connect_timeout for the
/// connect, its network_timeout for each exchange.
async fn connect(cc: &ClientConf, addr: SocketAddr) -> Result<StorageConn, ClientError> {
    let io = |e: std::io::Error| status_or(addr)(ConnError::Io(e));
    let stream = tokio::time::timeout(cc.connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    Ok(StorageConn::from_stream(stream, cc.network_timeout))
}

/// Uploads a local file (streamed, with progress on a terminal); prints the file ID.
pub async fn upload(
    client: &FdfsClient,
    cc: &ClientConf,
    file: &Path,
    o: &UploadOpts,
) -> Result<String, ClientError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let ext = ext_of(&name);
    let size = tokio::fs::metadata(file)
        .await
        .map_err(ClientError::Local)?
        .len();
    let (addr, index) = match o.storage {
        Some(a) => (a, o.store_path_index.unwrap_or(255)),
        None => {
            let t = client
                .tracker_call(|mut s| {
                    Box::pin(async move {
                        let r = super::tracker::query_store(&mut s, None).await;
                        (s, r)
                    })
                })
                .await?;
            let idx = o.store_path_index.unwrap_or(t.store_path_index);
            (super::socket_addr(&t.addr)?, idx)
        }
    };
    let mut conn = connect(cc, addr).await?;
    let f = tokio::fs::File::open(file)
        .await
        .map_err(ClientError::Local)?;
    let mut r = Progress::reader(f, size, "upload");
    let stored = if o.appender {
        conn.upload_appender_from(index, &mut r, size, &ext).await
    } else {
        conn.upload_from(index, &mut r, size, &ext).await
    }
    .map_err(status_or(addr))?;
    r.done();
    let _ = conn.quit().await;
    Ok(format!("{}/{}", stored.group, stored.filename))
}

/// APPEND_FILE: appends a local file to an appender file.
pub async fn append(
    client: &FdfsClient,
    cc: &ClientConf,
    id: &str,
    file: &Path,
) -> Result<String, ClientError> {
    let (_, name, addr) = client.locate_for_update(id).await?;
    let size = tokio::fs::metadata(file)
        .await
        .map_err(ClientError::Local)?
        .len();
    let mut conn = connect(cc, addr).await?;
    let f = tokio::fs::File::open(file)
        .await
        .map_err(ClientError::Local)?;
    let mut r = Progress::reader(f, size, "append");
    conn.append_from(name, &mut r, size)
        .await
        .map_err(status_or(addr))?;
    r.done();
    let _ = conn.quit().await;
    Ok(format!("appended {size} bytes to {id}"))
}

/// Largest local file `modify` sends (it is sent from memory).
pub const MODIFY_MAX: u64 = 256 << 20;

/// MODIFY_FILE: overwrites an appender file from `offset` with a local file's bytes.
pub async fn modify(
    client: &FdfsClient,
    id: &str,
    offset: u64,
    file: &Path,
) -> Result<String, ClientError> {
    let size = tokio::fs::metadata(file)
        .await
        .map_err(ClientError::Local)?
        .len();
    if size > MODIFY_MAX {
        return Err(ClientError::Local(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("modify sends at most {MODIFY_MAX} bytes; {size} given"),
        )));
    }
    let data = tokio::fs::read(file).await.map_err(ClientError::Local)?;
    let (_, name, addr) = client.locate_for_update(id).await?;
    let data = &data;
    client
        .storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.modify(name, offset, data).await;
                (c, r)
            })
        })
        .await?;
    Ok(format!(
        "modified {} bytes of {id} at offset {offset}",
        data.len()
    ))
}

/// TRUNCATE_FILE: cuts (or extends with zeros) an appender file to `size`.
pub async fn truncate(client: &FdfsClient, id: &str, size: u64) -> Result<String, ClientError> {
    let (_, name, addr) = client.locate_for_update(id).await?;
    client
        .storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.truncate(name, size).await;
                (c, r)
            })
        })
        .await?;
    Ok(format!("truncated {id} to {size} bytes"))
}

/// REGENERATE_APPENDER_FILENAME (38): the appender becomes a normal file; prints its new ID.
pub async fn regenerate(client: &FdfsClient, id: &str) -> Result<String, ClientError> {
    let (_, name, addr) = client.locate_for_update(id).await?;
    client
        .storage_call(addr, |mut c| {
            Box::pin(async move {
                let r = c.regenerate_appender(name).await;
                (c, r)
            })
        })
        .await
}

/// fdfs_crc32: the CRC-32 of a local file, in decimal as the C tool prints it.
pub fn crc32(file: &Path) -> Result<String, ClientError> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).map_err(ClientError::Local)?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(ClientError::Local)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_string())
}

/// Downloads to `out` (default: the file's own name in the current directory), the whole file
/// or `length` bytes from `offset` (0 = to the end), with progress on a terminal.
pub async fn download(
    client: &FdfsClient,
    cc: &ClientConf,
    id: &str,
    out: Option<PathBuf>,
    offset: u64,
    length: u64,
) -> Result<String, ClientError> {
    let out = match out {
        Some(o) => o,
        None => PathBuf::from(id.rsplit('/').next().unwrap_or(id)),
    };
    let (group, name, addr) = client.locate_for_fetch(id).await?;
    let total = if Progress::wanted() {
        match client.file_info(id).await {
            Ok(i) if length == 0 => i.file_size.saturating_sub(offset),
            _ => length,
        }
    } else {
        length
    };
    let tmp = out.with_extension("fdfs-ha-part");
    let f = tokio::fs::File::create(&tmp)
        .await
        .map_err(ClientError::Local)?;
    let mut w = Progress::writer(f, total, "download");
    let mut conn = connect(cc, addr).await?;
    let r = conn.download_to(group, name, offset, length, &mut w).await;
    let n = match r {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(status_or(addr)(e));
        }
    };
    w.done();
    use tokio::io::AsyncWriteExt;
    w.inner.flush().await.map_err(ClientError::Local)?;
    tokio::fs::rename(&tmp, &out)
        .await
        .map_err(ClientError::Local)?;
    let _ = conn.quit().await;
    Ok(format!("{} bytes -> {}", n, out.display()))
}

pub async fn delete(client: &FdfsClient, id: &str) -> Result<String, ClientError> {
    client.delete(id).await?;
    Ok(format!("deleted {id}"))
}

/// What the file ID says, and what the storage holding it says (as fdfs_file_info prints).
/// With `use_storage_id` (client.conf), a source written as a storage ID is also shown as the
/// address the trackers list for that ID, as fdfs_file_info does.
pub async fn info(
    client: &FdfsClient,
    id: &str,
    use_storage_id: bool,
) -> Result<String, ClientError> {
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
    if let (true, crate::proto::fileid::Source::Id(n)) = (use_storage_id, i.source) {
        let ip = client
            .list_storages(group)
            .await
            .ok()
            .and_then(|l| l.into_iter().find(|st| st.id == n.to_string()))
            .map(|st| st.ip)
            .unwrap_or_else(|| "(not listed by the tracker)".into());
        let _ = writeln!(s, "source storage id {n}: {ip}");
    }
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
    let now = crate::clock::unix_now_i64();
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
            s.push_str(&storage_times(&st, now));
            s.push_str(
                &sync_lag_lines(&st.ip, st.storage_port, MONITOR_STORAGE_TIMEOUT, now).await,
            );
        }
    }
    Ok(s)
}

/// A Unix time as a date and how long before `now` it was; `never` for 0 (FastDFS's "unset").
pub fn when(unix: i64, now: i64) -> String {
    if unix <= 0 {
        return "never".to_string();
    }
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix as u64);
    let date = crate::access_log::clf_time(t);
    match now - unix {
        d if d >= 0 => format!("{date} ({d} s ago)"),
        d => format!("{date} ({} s ahead of this host's clock)", -d),
    }
}

/// The times fdfs_monitor prints for a storage, as dates with what each one is.
fn storage_times(st: &crate::proto::tracker::StorageStat, now: i64) -> String {
    let stat = |name| st.stats.get(name).unwrap_or(0);
    format!(
        "    joined the group {}; running since {}; last heartbeat {}\n    \
         has every peer's file created before {}; last file from a client {}, from a peer {}\n",
        when(st.join_time, now),
        when(st.up_time, now),
        when(stat("last_heart_beat_time"), now),
        when(stat("last_synced_timestamp"), now),
        when(stat("last_source_update"), now),
        when(stat("last_sync_update"), now),
    )
}

/// Per-peer replication lag, asked from the storage itself (SYNC_STATUS_QUERY); one line
/// per peer, or why it could not be asked.
async fn sync_lag_lines(ip: &str, port: i64, timeout: std::time::Duration, now: i64) -> String {
    let addr = format!("{ip}:{port}");
    let report = async {
        let mut c = super::storage::StorageConn::connect_timeout(addr.as_str(), timeout).await?;
        let r = c.sync_status().await;
        let _ = c.quit().await;
        r
    }
    .await;
    match report {
        Ok(r) => format_sync_report(&r, now),
        Err(e) => format!("    sync status: unavailable ({e})\n"),
    }
}

/// The monitor's lines for one storage's sync report, its times told against `now` (Unix s).
pub fn format_sync_report(r: &crate::proto::sync::SyncReport, now: i64) -> String {
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
        let _ = writeln!(
            s,
            "    has every file {src} created before {}",
            when(i64::from(*ts), now)
        );
    }
    s
}

/// Transfers at least this large show progress (on a terminal only).
const PROGRESS_MIN: u64 = 1 << 20;

/// Byte counter shown on stderr as `label: n/total MiB (p%)`, only when stderr is a terminal.
pub struct Progress<T> {
    pub inner: T,
    label: &'static str,
    total: u64,
    done: u64,
    shown: Option<Instant>,
    on: bool,
}

impl Progress<()> {
    /// Progress goes to stderr only when it is a terminal (quiet when piped or in scripts).
    pub fn wanted() -> bool {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal()
    }
}

impl<T> Progress<T> {
    fn new(inner: T, total: u64, label: &'static str) -> Self {
        Progress {
            inner,
            label,
            total,
            done: 0,
            shown: None,
            on: Progress::wanted() && total >= PROGRESS_MIN,
        }
    }
    pub fn reader(inner: T, total: u64, label: &'static str) -> Self {
        Self::new(inner, total, label)
    }
    pub fn writer(inner: T, total: u64, label: &'static str) -> Self {
        Self::new(inner, total, label)
    }
    fn add(&mut self, n: usize) {
        self.done += n as u64;
        if !self.on {
            return;
        }
        let due = self
            .shown
            .map(|t| t.elapsed() >= Duration::from_millis(200))
            .unwrap_or(true);
        if due {
            self.shown = Some(Instant::now());
            eprint!("\r{}", progress_line(self.label, self.done, self.total));
        }
    }
    /// Ends the progress line.
    pub fn done(&self) {
        if self.on {
            eprintln!("\r{}", progress_line(self.label, self.done, self.total));
        }
    }
}

/// `upload: 12.0/100.0 MiB (12%)`.
pub fn progress_line(label: &str, done: u64, total: u64) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let pct = (done.saturating_mul(100))
        .checked_div(total)
        .unwrap_or(100)
        .min(100);
    format!("{label}: {:.1}/{:.1} MiB ({pct}%)", mib(done), mib(total))
}

impl<T: AsyncRead + Unpin> AsyncRead for Progress<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = buf.filled().len() - before;
            self.add(n);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Progress<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            self.add(n);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_follow_fdfs_upload_file() {
        assert_eq!(ext_of("x.tar.gz"), "tar.gz");
        assert_eq!(ext_of("/a/b/photo.jpg"), "jpg");
        assert_eq!(ext_of("a.b.tar.gz"), "tar.gz");
        // tar.bz2 is 7 bytes: only the last part fits.
        assert_eq!(ext_of("x.tar.bz2"), "bz2");
        assert_eq!(ext_of("noext"), "");
        assert_eq!(ext_of("x.toolong7"), "");
        assert_eq!(ext_of(".bashrc"), "bashrc");
        assert_eq!(ext_of("a.b"), "b");
    }

    #[test]
    fn client_conf_is_read_like_the_c_tools() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("client.conf");
        std::fs::write(
            &p,
            "connect_timeout=5\nnetwork_timeout = 60\n# c\ntracker_server=10.0.0.1:22122\n\
             tracker_server=10.0.0.2:22122 #second\nuse_storage_id = true\n",
        )
        .unwrap();
        let (c, w) = read_client_conf(&p).unwrap();
        assert_eq!(c.trackers, vec!["10.0.0.1:22122", "10.0.0.2:22122"]);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.network_timeout, Duration::from_secs(60));
        assert!(c.use_storage_id);
        assert_eq!(w.len(), 1, "the inline # is reported");
    }

    #[test]
    fn progress_line_is_bounded() {
        assert_eq!(
            progress_line("upload", 1 << 20, 4 << 20),
            "upload: 1.0/4.0 MiB (25%)"
        );
        assert_eq!(
            progress_line("download", 5, 0),
            "download: 0.0/0.0 MiB (100%)"
        );
    }

    #[test]
    fn monitor_times_are_dates_with_their_meaning() {
        assert_eq!(when(0, 100), "never");
        assert_eq!(
            when(1_764_892_800, 1_764_892_812),
            "05/Dec/2025:00:00:00 +0000 (12 s ago)"
        );
        assert!(when(200, 100).ends_with("(100 s ahead of this host's clock)"));
        let mut st = crate::proto::tracker::StorageStat {
            join_time: 1_764_892_800,
            ..Default::default()
        };
        st.stats.counters[crate::proto::tracker::STAT_LAST_HEART_BEAT_TIME] = 1_764_892_810;
        let text = storage_times(&st, 1_764_892_812);
        assert!(
            text.contains("joined the group 05/Dec/2025:00:00:00 +0000 (12 s ago)"),
            "{text}"
        );
        assert!(
            text.contains("last heartbeat 05/Dec/2025:00:00:10 +0000 (2 s ago)"),
            "{text}"
        );
        assert!(text.contains("running since never"), "{text}");
        assert!(!text.contains("1764892"), "no raw Unix time: {text}");
    }
}
