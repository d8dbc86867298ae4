//! One check of each probe kind: `Ok(detail)` healthy, `Err(reason)` failing. I/O only; the
//! debouncing lives in [`super::RiseFall`]. Every check is bounded by the probe's timeout, and an
//! exec probe whose program cannot start counts as failing (never as healthy).

use super::{PidTable, ProbeKind};
use crate::config::validate::parse_http_url;
use crate::proto::{cmd, connection, Header, HEADER_LEN};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest HTTP body read when matching `expect_body`: a health page, not a download.
const MAX_HTTP_BODY: usize = 64 * 1024;

pub async fn run_once(
    kind: &ProbeKind,
    timeout: Duration,
    pids: &PidTable,
) -> Result<String, String> {
    let check = async {
        match kind {
            ProbeKind::Tcp(addr) => tcp(addr).await,
            ProbeKind::Http {
                url,
                expect_status,
                expect_body,
            } => http(url, *expect_status, expect_body.as_deref()).await,
            ProbeKind::Fastdfs(addr) => fastdfs_active_test(addr).await,
            ProbeKind::Process(name) => process(name, pids),
            ProbeKind::Exec(argv) => exec(argv).await,
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn connect(addr: &str) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn tcp(addr: &str) -> Result<String, String> {
    connect(addr).await.map(|_| format!("connected to {addr}"))
}

async fn http(
    url: &str,
    expect_status: Option<u16>,
    expect_body: Option<&str>,
) -> Result<String, String> {
    use http_body_util::BodyExt;
    let u = parse_http_url(url)?;
    let stream = connect(&format!("{}:{}", u.host, u.port)).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    let conn_task = tokio::spawn(conn);
    let req = http::Request::get(u.path_and_query.as_str())
        .header(http::header::HOST, format!("{}:{}", u.host, u.port))
        .header(http::header::USER_AGENT, "fdfs-ha-probe")
        .header(http::header::CONNECTION, "close")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let status_ok = match expect_status {
            Some(s) => status == s,
            None => (200..400).contains(&status),
        };
        if !status_ok {
            let want = expect_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "2xx/3xx".into());
            return Err(format!("GET {url}: status {status}, want {want}"));
        }
        if let Some(needle) = expect_body {
            let mut body = resp.into_body();
            let mut seen: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("GET {url}: body: {e}"))?;
                if let Some(data) = frame.data_ref() {
                    let room = MAX_HTTP_BODY.saturating_sub(seen.len());
                    seen.extend_from_slice(&data[..data.len().min(room)]);
                }
                if contains(&seen, needle.as_bytes()) || seen.len() >= MAX_HTTP_BODY {
                    break;
                }
            }
            if !contains(&seen, needle.as_bytes()) {
                return Err(format!("GET {url}: body does not contain {needle:?}"));
            }
        }
        Ok(format!("HTTP {status}"))
    }
    .await;
    conn_task.abort();
    result
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// FastDFS ACTIVE_TEST: header cmd 111 with an empty body; a live tracker or storage answers cmd
/// 100, status 0, empty body.
async fn fastdfs_active_test(addr: &str) -> Result<String, String> {
    let mut s = connect(addr).await?;
    s.write_all(&Header::new(cmd::ACTIVE_TEST, 0, 0).encode())
        .await
        .map_err(|e| format!("{addr}: send ACTIVE_TEST: {e}"))?;
    let mut raw = [0u8; HEADER_LEN];
    s.read_exact(&mut raw)
        .await
        .map_err(|e| format!("{addr}: read ACTIVE_TEST response: {e}"))?;
    let h = Header::decode(&raw).map_err(|e| format!("{addr}: {e}"))?;
    if h.cmd != cmd::RESP {
        return Err(format!(
            "{addr}: answered cmd {}, want {}",
            h.cmd,
            cmd::RESP
        ));
    }
    if h.status != 0 {
        return Err(format!("{addr}: ACTIVE_TEST status {}", h.status));
    }
    if h.pkg_len != 0 {
        // Not fatal for the peer, but not the protocol either: report it.
        let _ = connection::discard(&mut s, h.pkg_len.min(4096)).await;
        return Err(format!(
            "{addr}: ACTIVE_TEST answered a {}-byte body",
            h.pkg_len
        ));
    }
    // Tell the server we are done, as FastDFS clients do; errors here do not matter.
    let _ = s.write_all(&Header::new(cmd::QUIT, 0, 0).encode()).await;
    Ok(format!("{addr}: ACTIVE_TEST ok"))
}

fn process(name: &str, pids: &PidTable) -> Result<String, String> {
    let pid = pids
        .get(name)
        .ok_or_else(|| format!("component {name} has no running process"))?;
    if pid_alive(pid) {
        Ok(format!("{name}: pid {pid} alive"))
    } else {
        Err(format!("{name}: pid {pid} is gone"))
    }
}

/// True when `pid` exists and is not a zombie (a dead child not yet reaped still has a pid).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3, after the parenthesised command name: state letter.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Kills a check's process group when the check is dropped (timed out, probe stopped).
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn exec(argv: &[String]) -> Result<String, String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // Own process group, so a timed-out script is killed with everything it started.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot execute {prog}: {e}"))?;
    let mut group = KillGroupOnDrop(child.id());
    let status = child
        .wait()
        .await
        .map_err(|e| format!("{prog}: wait: {e}"))?;
    // Exited normally: leave any daemon it deliberately started alone.
    group.0 = None;
    if status.success() {
        Ok(format!("{prog} exited 0"))
    } else {
        Err(format!("{prog}: {status}"))
    }
}
