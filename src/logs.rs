//! The process log (tracing): where it goes, its filter and whether it is coloured.
//!
//! Owns the subscriber set-up only; access logs are [`crate::access_log`]'s.
//! - Written to stderr (stdout stays free for access logs sent to `stdout`).
//! - ANSI colours only when stderr is a terminal and `NO_COLOR` is unset: a log written through a
//!   pipe or into the journal is plain text.
//! - Third-party crates that log harmless things at `warn` (netlink-packet-route warns about
//!   every IPv6 link attribute a newer kernel sends) are held at `error`, unless the operator's
//!   filter names them.
//! - `json` is tracing-subscriber's JSON format, unchanged.

use std::io::IsTerminal;

/// Crates whose warnings are noise to an operator, with the level they are held at.
const QUIET: &[(&str, &str)] = &[
    ("netlink_packet_route", "error"),
    ("netlink_packet_core", "error"),
    ("netlink_proto", "error"),
    ("rtnetlink", "error"),
];

/// The filter for `log.level`: the operator's directives plus [`QUIET`] for each noisy crate
/// the operator's filter does not mention.
pub fn filter_directives(level: &str) -> String {
    let mut out = level.trim().to_string();
    for (krate, lvl) in QUIET {
        if !level.contains(krate) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("{krate}={lvl}"));
        }
    }
    out
}

/// Whether text logs are coloured: only for a person watching a terminal.
pub fn use_ansi(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.map(|v| v.is_empty()).unwrap_or(true)
}

/// Installs the process-wide subscriber and hands the supervisor a way to change `log.level`
/// on reload.
pub fn init(log: &crate::config::LogConfig) {
    use tracing_subscriber::{fmt, prelude::*, reload, EnvFilter};
    // Validated by `check`; fall back to `info` rather than refusing to start.
    let filter = EnvFilter::try_new(filter_directives(&log.level))
        .unwrap_or_else(|_| EnvFilter::new(filter_directives("info")));
    // The filter sits behind a reload handle so SIGHUP can change `log.level` live.
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = use_ansi(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    if log.format == "json" {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .init();
    }
    crate::supervisor::set_log_reloader(Box::new(move |level| {
        let f = EnvFilter::try_new(filter_directives(level)).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noisy_crates_are_held_at_error_unless_named() {
        let f = filter_directives("info");
        assert!(f.starts_with("info,"));
        assert!(f.contains("netlink_packet_route=error"));
        let f = filter_directives("debug,netlink_packet_route=warn");
        assert!(f.contains("netlink_packet_route=warn"));
        assert!(!f.contains("netlink_packet_route=error"));
        assert!(f.contains("rtnetlink=error"));
        // Every combination is a filter tracing accepts.
        for l in ["info", "", "fdfs_ha::vrrp=debug,info", "warn"] {
            tracing_subscriber::EnvFilter::try_new(filter_directives(l)).expect(l);
        }
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_ansi(true, None));
        assert!(!use_ansi(false, None));
        assert!(!use_ansi(true, Some(std::ffi::OsStr::new("1"))));
        assert!(use_ansi(true, Some(std::ffi::OsStr::new(""))));
    }

    /// A netlink warning does not pass the default filter; our own info lines do.
    #[test]
    fn netlink_warning_is_filtered_at_info() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::prelude::*;
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(filter_directives(
                "info",
            )))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || w.clone()),
            );
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(target: "netlink_packet_route::link::af_spec::inet6", "Specified IFLA_INET6_CONF NLA attribute holds more data");
            tracing::info!(target: "fdfs_ha::vrrp", "VRRP state change");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("IFLA_INET6_CONF"), "{out}");
        assert!(out.contains("VRRP state change"), "{out}");
        assert!(!out.contains('\u{1b}'), "no ANSI: {out}");
    }
}
