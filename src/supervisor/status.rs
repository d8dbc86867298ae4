//! The local status endpoint (`GET /status`, JSON) and its client used by `fdfs-ha status`.
//!
//! The supervisor loop keeps a [`Board`] up to date; the endpoint serializes it, asking each VRRP
//! instance for its live status at request time.

use super::VrrpHandle;
use crate::clock::unix_millis;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    pub name: String,
    pub kind: String,
    pub health: crate::probe::Health,
    pub last_ok: Option<bool>,
    pub last_detail: String,
    pub last_check_unix_ms: Option<u64>,
    pub last_took_ms: Option<u64>,
    pub checks: u64,
    pub failures: u64,
    pub on_fail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentView {
    pub name: String,
    pub state: super::component::RunState,
    pub restarts: u64,
    pub restarts_in_window: usize,
    pub last_failure: Option<String>,
    pub since_unix_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackingView {
    pub priority_delta: i32,
    pub fault: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadView {
    pub at_unix_ms: u64,
    pub ok: bool,
    pub message: String,
}

/// What the status endpoint shows; written by the supervisor loop only.
#[derive(Default)]
pub struct Board {
    pub node: String,
    pub config_path: Option<String>,
    pub started_unix_ms: u64,
    pub yielding: Option<String>,
    pub last_reload: Option<ReloadView>,
    pub probes: BTreeMap<String, ProbeView>,
    pub components: BTreeMap<String, ComponentView>,
    pub instances: BTreeMap<String, (Arc<dyn VrrpHandle>, Option<TrackingView>)>,
    /// Faults injected through `POST /debug/components/<name>/{kill,break,fix}` (drills).
    pub faults: Arc<super::faults::Faults>,
    /// Served at `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
}

impl Board {
    pub fn to_json(&self) -> serde_json::Value {
        let instances: Vec<serde_json::Value> = self
            .instances
            .iter()
            .map(|(name, (handle, tracking))| {
                let live = handle
                    .status()
                    .into_iter()
                    .find(|s| &s.name == name)
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or_else(|| serde_json::json!({ "name": name, "state": "UNKNOWN" }));
                let mut v = live;
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert(
                        "tracking".into(),
                        serde_json::to_value(tracking).unwrap_or_default(),
                    );
                }
                v
            })
            .collect();
        serde_json::json!({
            "node": self.node,
            "pid": std::process::id(),
            "config": self.config_path,
            "started_unix_ms": self.started_unix_ms,
            "yielding": self.yielding,
            "last_reload": self.last_reload,
            "instances": instances,
            "probes": self.probes.values().collect::<Vec<_>>(),
            "components": self.components.values().collect::<Vec<_>>(),
            // Storage, tracker, ...: what the running components report about themselves.
            "roles": self.metrics.status_sections(),
        })
    }
}

pub type SharedBoard = Arc<Mutex<Board>>;

pub fn lock(b: &SharedBoard) -> std::sync::MutexGuard<'_, Board> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `GET /status` until `stop` is cancelled; the `/debug` fault injection endpoints only
/// with `debug` (`status.debug_endpoints`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    board: SharedBoard,
    debug: bool,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "status endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let board = board.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let board = board.clone();
                    // Rendering reads files (free space, the unsent binlog for the sync lag):
                    // off the async threads.
                    async move {
                        let (parts, _) = req.into_parts();
                        let req = hyper::Request::from_parts(parts, ());
                        let resp =
                            tokio::task::spawn_blocking(move || respond(&req, &board, debug))
                                .await
                                .unwrap_or_else(|_| {
                                    let mut r = hyper::Response::new(Default::default());
                                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                                    r
                                });
                        Ok::<_, Infallible>(resp)
                    }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await
            {
                tracing::debug!(error = %e, "status connection ended");
            }
        });
    }
}

fn respond<B>(
    req: &hyper::Request<B>,
    board: &SharedBoard,
    debug: bool,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    if req.method() == http::Method::GET && req.uri().path() == "/metrics" {
        // Cloned out first: rendering reads the board again (the node's families).
        let metrics = lock(board).metrics.clone();
        let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            metrics.render(),
        )));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        );
        return resp;
    }
    let (code, body) = match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/status") => {
            let json = lock(board).to_json();
            (
                http::StatusCode::OK,
                serde_json::to_vec_pretty(&json).unwrap_or_default(),
            )
        }
        (&http::Method::GET, _) => (http::StatusCode::NOT_FOUND, b"not found\n".to_vec()),
        (&http::Method::POST, path) if debug && path.starts_with("/debug/components/") => {
            inject_fault(path, board)
        }
        _ => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            b"only GET /status and GET /metrics\n".to_vec(),
        ),
    };
    let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// `POST /debug/components/<name>/{kill,break,fix}`: fault injection for drills, served only
/// with `status.debug_endpoints: true`. The endpoint listens on loopback only, so only
/// processes inside the node's host / namespace reach it.
fn inject_fault(path: &str, board: &SharedBoard) -> (http::StatusCode, Vec<u8>) {
    let rest = path.trim_start_matches("/debug/components/");
    let Some((name, action)) = rest.split_once('/') else {
        return (http::StatusCode::NOT_FOUND, b"not found\n".to_vec());
    };
    let b = lock(board);
    if !b.components.contains_key(name) {
        tracing::warn!(component = %name, "fault injection: no such component");
        return (http::StatusCode::NOT_FOUND, b"no such component\n".to_vec());
    }
    match action {
        "kill" => b.faults.kill(name),
        "break" => b.faults.break_component(name),
        "fix" => b.faults.fix(name),
        _ => return (http::StatusCode::NOT_FOUND, b"unknown fault\n".to_vec()),
    }
    tracing::warn!(component = %name, %action, "fault injected via the status endpoint");
    (
        http::StatusCode::OK,
        format!("{action} {name}\n").into_bytes(),
    )
}

/// Fetches `GET /status` from a running node.
pub async fn fetch(addr: SocketAddr) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context;
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| {
            format!("cannot reach the status endpoint at {addr} (is fdfs-ha running?)")
        })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let conn_task = tokio::spawn(conn);
    let req = http::Request::get("/status")
        .header(http::header::HOST, addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    conn_task.abort();
    if !status.is_success() {
        anyhow::bail!("status endpoint answered {status}");
    }
    serde_json::from_slice(&body).context("status endpoint sent invalid JSON")
}

/// Human-readable rendering of a status document, for `fdfs-ha status`.
pub fn render_text(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let s = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        }
    };
    let ago = |v: &serde_json::Value| -> String {
        match v.as_u64() {
            Some(0) | None => "-".into(),
            Some(ms) => format!(
                "{:.1}s ago",
                unix_millis().saturating_sub(ms) as f64 / 1000.0
            ),
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "node {} (pid {})", s(&v["node"]), s(&v["pid"]));
    if !v["yielding"].is_null() {
        let _ = writeln!(out, "YIELDING: {}", s(&v["yielding"]));
    }
    if let Some(r) = v["last_reload"].as_object() {
        let _ = writeln!(
            out,
            "last reload: {} ({})",
            if r.get("ok").and_then(|b| b.as_bool()) == Some(true) {
                "ok"
            } else {
                "REFUSED"
            },
            r.get("message").map(&s).unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\nVRRP instances:");
    for i in v["instances"].as_array().into_iter().flatten() {
        // A stopping Master keeps its VIPs until its successor speaks: say so, not just MASTER.
        let state = if i["handing_over"] == true {
            format!(
                "{} (HANDING OVER: holding the VIPs until the new master is heard)",
                s(&i["state"])
            )
        } else {
            s(&i["state"])
        };
        let _ = writeln!(
            out,
            "  {:<10} {:<7} priority {} (base {}) master {} since {} reason: {}",
            s(&i["name"]),
            state,
            s(&i["effective_priority"]),
            s(&i["base_priority"]),
            s(&i["master"]),
            ago(&i["last_transition_unix_ms"]),
            s(&i["last_reason"]),
        );
        if let Some(iface) = i["interface"].as_str() {
            let _ = write!(out, "             interface {iface}");
            if let Some(vips) = i["vips"].as_array() {
                let held = i["state"].as_str() == Some("MASTER") || i["handing_over"] == true;
                let list: Vec<String> = vips.iter().map(&s).collect();
                let _ = write!(
                    out,
                    "  VIPs {} ({})",
                    list.join(" "),
                    if held { "held here" } else { "not held here" }
                );
            }
            let _ = writeln!(out);
        }
        let mut counts = Vec::new();
        for (key, word) in [
            ("adverts_sent", "adverts sent"),
            ("adverts_received", "adverts received"),
            ("lower_priority_adverts", "lower-priority adverts heard"),
            ("priority_zero_received", "priority-0 adverts received"),
            ("transitions", "transitions"),
        ] {
            if !i[key].is_null() {
                counts.push(format!("{word} {}", s(&i[key])));
            }
        }
        if let Some(t) = i["last_transition_unix_ms"].as_u64().filter(|t| *t > 0) {
            counts.push(format!("last transition {}", date_ms(t)));
        }
        if !counts.is_empty() {
            let _ = writeln!(out, "             {}", counts.join(", "));
        }
        for m in i["peer_mismatches"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "             peer config mismatch: {} {} theirs {} ours {} ({} adverts dropped, last {})",
                s(&m["peer"]),
                s(&m["kind"]),
                s(&m["theirs"]),
                s(&m["ours"]),
                s(&m["count"]),
                ago(&m["last_unix_ms"]),
            );
        }
        let drops: Vec<String> = i["drops"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
            .map(|(why, n)| format!("{} {}", s(n), why.replace('_', " ")))
            .collect();
        let _ = writeln!(
            out,
            "             tracking: delta {} fault {} ({})   dropped adverts: {}",
            s(&i["tracking"]["priority_delta"]),
            s(&i["tracking"]["fault"]),
            s(&i["tracking"]["reason"]),
            if drops.is_empty() {
                "none".into()
            } else {
                drops.join(", ")
            },
        );
    }
    let _ = writeln!(out, "\nProbes:");
    for p in v["probes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<12} {:<8} {:<8} checks {} failures {} last ({}): {}",
            s(&p["name"]),
            s(&p["kind"]),
            s(&p["health"]),
            s(&p["checks"]),
            s(&p["failures"]),
            ago(&p["last_check_unix_ms"]),
            s(&p["last_detail"]),
        );
    }
    let _ = writeln!(out, "\nComponents:");
    for c in v["components"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<12} {:<8} restarts {} (in window {}) last failure: {}",
            s(&c["name"]),
            s(&c["state"]),
            s(&c["restarts"]),
            s(&c["restarts_in_window"]),
            s(&c["last_failure"]),
        );
    }
    render_roles(&mut out, &v["roles"]);
    out
}

/// `2026-12-05 22:48:34 UTC (12.5s ago)` for a Unix time in milliseconds.
pub fn date_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let clf = crate::access_log::clf_time(t);
    let ago = unix_millis().saturating_sub(ms) as f64 / 1000.0;
    format!("{clf} ({ago:.1}s ago)")
}

/// The storage (and other roles') sections.
fn render_roles(out: &mut String, roles: &serde_json::Value) {
    use std::fmt::Write;
    for g in roles["tracker"]["groups"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "\nTracker: group {}",
            g["group"].as_str().unwrap_or("-")
        );
        for s in g["storages"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<16} {}:{:<6} {:<10} free {} MB of {} MB",
                s["id"].as_str().unwrap_or("-"),
                s["ip"].as_str().unwrap_or("-"),
                s["port"],
                s["status"].as_str().unwrap_or("-"),
                s["free_mb"],
                s["total_mb"],
            );
        }
    }
    let st = &roles["storage"];
    if st.is_object() {
        let _ = writeln!(
            out,
            "\nStorage: group {}",
            st["group"].as_str().unwrap_or("-")
        );
        let trackers: Vec<String> = st["trackers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let _ = writeln!(
            out,
            "  trackers {}; joined as {}",
            trackers.join(" "),
            st["joined_as"].as_str().unwrap_or("- (not joined yet)")
        );
        for p in st["store_paths"].as_array().into_iter().flatten() {
            let (free, total) = (
                p["free_mb"].as_u64().unwrap_or(0),
                p["total_mb"].as_u64().unwrap_or(0),
            );
            let health = match p["unwritable"].as_str() {
                Some(why) => format!("; UNWRITABLE: {why}"),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  store path {:<30} free {free} MB of {total} MB ({:.0}%){health}",
                p["path"].as_str().unwrap_or("-"),
                if total > 0 {
                    free as f64 * 100.0 / total as f64
                } else {
                    0.0
                }
            );
        }
        for p in st["sync"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  sync to {:<22} {:<12} binlog {}  behind: {} records, {} bytes, {} s",
                p["peer"].as_str().unwrap_or("-"),
                p["state"].as_str().unwrap_or("-"),
                p["binlog"].as_str().unwrap_or("-"),
                p["records_behind"],
                p["bytes_behind"],
                p["seconds_behind"],
            );
        }
        for j in st["journals"].as_array().into_iter().flatten() {
            let state = if j["failed"] == true {
                "FAILED (a flush failed; small uploads flush their own files until a restart)"
                    .to_string()
            } else if j["stuck_segments"].as_u64().unwrap_or(0) > 0 {
                format!(
                    "{} segment(s) STUCK (settle failed; replayed at start-up)",
                    j["stuck_segments"]
                )
            } else {
                "ok".to_string()
            };
            let _ = writeln!(
                out,
                "  upload journal {}: {state}; {} files not settled yet, {} KiB of {} KiB used, {} flushes",
                j["store_path"].as_str().unwrap_or("-"),
                j["unsettled_files"],
                j["active_used_bytes"].as_u64().unwrap_or(0) / 1024,
                j["segment_room_bytes"].as_u64().unwrap_or(0) / 1024,
                j["flushes"],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(board: &SharedBoard, debug: bool) -> http::StatusCode {
        let req = http::Request::post("/debug/components/tracker/kill")
            .body(())
            .expect("request");
        respond(&req, board, debug).status()
    }

    #[test]
    fn debug_endpoints_exist_only_when_switched_on() {
        let board: SharedBoard = Arc::new(Mutex::new(Board::default()));
        // Off (the default): the route does not exist.
        assert_eq!(post(&board, false), http::StatusCode::METHOD_NOT_ALLOWED);
        assert!(!crate::config::StatusConfig::default().debug_endpoints);
        // On: the route is served (no component of that name on this empty board).
        assert_eq!(post(&board, true), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn text_view_shows_handover_mismatches_reason_and_counters() {
        use crate::vrrp::InstanceStatus;
        use std::net::Ipv4Addr;
        let mut s = InstanceStatus::new("VI_1", 100);
        s.state = "MASTER".into();
        s.handing_over = true;
        s.last_reason = "reload: priority 100 -> 110".into();
        s.adverts_received = 5;
        s.lower_priority_adverts = 3;
        s.priority_zero_received = 1;
        s.transitions = 2;
        s.record_mismatch(
            Ipv4Addr::new(192, 168, 3, 22),
            "advert_int",
            "2s".into(),
            "1s".into(),
            unix_millis(),
        );
        let doc =
            serde_json::json!({ "node": "n", "instances": [serde_json::to_value(&s).unwrap()] });
        let text = render_text(&doc);
        for want in [
            "HANDING OVER",
            "reason: reload: priority 100 -> 110",
            "adverts received 5",
            "lower-priority adverts heard 3",
            "priority-0 adverts received 1",
            "transitions 2",
            "peer config mismatch: 192.168.3.22 advert_int theirs 2s ours 1s (1 adverts dropped",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
    }
}
