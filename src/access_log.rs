//! Access logs: one line per request, to a file, to stdout, or nowhere (`log.access_log`,
//! `log.protocol_log`). Files are opened for append and reopened on SIGUSR1, so logrotate can
//! move them away (`postrotate: kill -USR1`).
//!
//! Owns the sink and the line formats; the servers call [`AccessLog::write`] after answering.
//! A write error is logged once per reopen and the line dropped: a full disk must not stop
//! serving.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

enum Sink {
    Off,
    Stdout,
    File {
        path: PathBuf,
        file: Mutex<Option<std::fs::File>>,
        warned: AtomicBool,
    },
}

/// A cheap handle to one access log; clones share the sink.
#[derive(Clone)]
pub struct AccessLog(Arc<Sink>);

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog(Arc::new(Sink::Off))
    }
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl AccessLog {
    /// `off`, `stdout`, or a file path (opened now; an error is returned for the log).
    pub fn new(target: &str) -> (AccessLog, Option<String>) {
        match target {
            "" | "off" => (AccessLog::default(), None),
            "stdout" | "-" => (AccessLog(Arc::new(Sink::Stdout)), None),
            p => {
                let path = PathBuf::from(p);
                let (file, err) = match open(&path) {
                    Ok(f) => (Some(f), None),
                    Err(e) => (None, Some(format!("access log {p}: {e}"))),
                };
                let sink = Sink::File {
                    path,
                    file: Mutex::new(file),
                    warned: AtomicBool::new(false),
                };
                (AccessLog(Arc::new(sink)), err)
            }
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(*self.0, Sink::Off)
    }

    /// Appends one line (`line` without its newline).
    pub fn write(&self, line: &str) {
        match &*self.0 {
            Sink::Off => {}
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            Sink::File { path, file, warned } => {
                let mut g = file.lock().unwrap_or_else(|p| p.into_inner());
                let Some(f) = g.as_mut() else { return };
                // One write per line: O_APPEND keeps lines whole.
                let mut buf = Vec::with_capacity(line.len() + 1);
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                if let Err(e) = f.write_all(&buf) {
                    if !warned.swap(true, Ordering::Relaxed) {
                        tracing::warn!(path = %path.display(), error = %e, "access log write failed; dropping lines until reopened");
                    }
                }
            }
        }
    }

    /// Reopens a file sink (SIGUSR1 after logrotate moved it).
    pub fn reopen(&self) {
        if let Sink::File { path, file, warned } = &*self.0 {
            let mut g = file.lock().unwrap_or_else(|p| p.into_inner());
            match open(path) {
                Ok(f) => {
                    *g = Some(f);
                    warned.store(false, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "access log: reopen failed; keeping the old file")
                }
            }
        }
    }
}

/// The node's two access logs (HTTP and FastDFS protocol).
#[derive(Clone, Default)]
pub struct AccessLogs {
    pub http: AccessLog,
    pub protocol: AccessLog,
}

impl AccessLogs {
    pub fn from_config(log: &crate::config::LogConfig) -> AccessLogs {
        let (http, e1) = AccessLog::new(&log.access_log);
        let (protocol, e2) = AccessLog::new(&log.protocol_log);
        for e in [e1, e2].into_iter().flatten() {
            tracing::error!(error = %e, "cannot open access log");
        }
        AccessLogs { http, protocol }
    }

    pub fn reopen(&self) {
        self.http.reopen();
        self.protocol.reopen();
    }
}

/// nginx's `[10/Oct/2000:13:55:36 +0000]` time, in UTC.
pub fn clf_time(t: std::time::SystemTime) -> String {
    let secs = crate::clock::unix_secs(t) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MON[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One HTTP request, as the access log prints it.
pub struct HttpEntry<'a> {
    pub remote: std::net::IpAddr,
    pub time: std::time::SystemTime,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_secs: f64,
    pub cache: Option<&'a str>,
}

/// nginx `combined` (`$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`) plus `$request_time` and the cache
/// status (`-` where there is none). Quotes and control bytes inside fields are escaped as
/// nginx does (`\xHH`), so a client cannot forge a line.
pub fn format_http(e: &HttpEntry<'_>) -> String {
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {:.3} {}",
        e.remote,
        clf_time(e.time),
        esc(e.method),
        esc(e.target),
        e.version,
        e.status,
        e.bytes,
        esc(e.referer.unwrap_or("-")),
        esc(e.user_agent.unwrap_or("-")),
        e.request_secs,
        e.cache.unwrap_or("-"),
    )
}

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out.into()
}

/// One FastDFS request, in the spirit of FastDFS's access log (`use_access_log`): client,
/// time, command, status (errno), request length in bytes (as C's `request_length`), time
/// taken, and the file ID if any.
pub fn format_protocol(
    remote: &str,
    time: std::time::SystemTime,
    command: &str,
    status: u8,
    bytes: u64,
    secs: f64,
    file_id: Option<&str>,
) -> String {
    format!(
        "{remote} [{}] {command} {status} {bytes} {:.3} {}",
        clf_time(time),
        secs,
        esc(file_id.unwrap_or("-"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn combined_format_plus_request_time_and_cache() {
        let e = HttpEntry {
            remote: "192.168.3.5".parse().unwrap(),
            time: UNIX_EPOCH + Duration::from_secs(971_186_136), // 2000-10-10 13:55:36 UTC
            method: "GET",
            target: "/dfs/group1/M00/00/00/a.jpg",
            version: "HTTP/1.1",
            status: 200,
            bytes: 2326,
            referer: None,
            user_agent: Some("curl/8.0 \"x\""),
            request_secs: 0.0123,
            cache: Some("HIT"),
        };
        assert_eq!(
            format_http(&e),
            "192.168.3.5 - - [10/Oct/2000:13:55:36 +0000] \"GET /dfs/group1/M00/00/00/a.jpg HTTP/1.1\" 200 2326 \"-\" \"curl/8.0 \\x22x\\x22\" 0.012 HIT"
        );
    }

    #[test]
    fn dates_across_leap_years() {
        let t = |s: u64| clf_time(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(t(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(t(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
    }

    #[test]
    fn protocol_line() {
        let l = format_protocol(
            "10.0.0.1:5000",
            UNIX_EPOCH,
            "upload_file",
            0,
            4096,
            0.0005,
            Some("group1/M00/00/00/x.jpg"),
        );
        assert_eq!(
            l,
            "10.0.0.1:5000 [01/Jan/1970:00:00:00 +0000] upload_file 0 4096 0.001 group1/M00/00/00/x.jpg"
        );
    }

    /// logrotate moves the file; after reopen, new lines go to a new file at the old path.
    #[test]
    fn reopen_follows_a_rotated_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("access.log");
        let (log, err) = AccessLog::new(path.to_str().unwrap());
        assert!(err.is_none());
        log.write("one");
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        log.write("two"); // still the moved file
        log.reopen();
        log.write("three");
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old, "one\ntwo\n");
        assert_eq!(new, "three\n");
    }

    #[test]
    fn off_writes_nothing() {
        let (log, _) = AccessLog::new("off");
        assert!(!log.enabled());
        log.write("x");
        log.reopen();
    }
}
