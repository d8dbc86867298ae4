//! Validation beyond types: ranges, cross references, addresses, and paths that must exist or be
//! creatable. Reports every problem (not just the first), each with its key path and line.
//!
//! Nothing here needs root or changes the machine: directories are checked for "exists, or the
//! nearest existing ancestor is a writable directory", interfaces are looked up in /sys (a missing
//! interface is a warning, because `check` often runs on a build host, not on the node).

use super::schema::*;
use super::yaml::Node;
use super::ConfigError;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// Names of the built-in components, as used by `on_fail: restart` / `component:` and in status.
pub const BUILTIN_COMPONENTS: [&str; 4] = ["tracker", "storage", "storage_http", "gateway"];

/// Errors (config refused) and warnings (printed, config accepted).
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

struct V<'a> {
    tree: &'a Node,
    out: Findings,
}

impl V<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let at = self.tree.locate(&path);
        self.out
            .errors
            .push(ConfigError::at(path, Some(at), message.into()));
    }
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let at = self.tree.locate(&path);
        self.out
            .warnings
            .push(ConfigError::at(path, Some(at), message.into()));
    }
}

/// Validates a parsed config; `tree` (the YAML it came from) locates key paths.
pub fn validate(cfg: &Config, tree: &Node) -> Findings {
    let mut v = V {
        tree,
        out: Findings::default(),
    };
    if cfg.node.trim().is_empty() {
        v.err("node", "must not be empty");
    }
    check_dir(&mut v, "data_dir", &cfg.data_dir);
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cfg.log.level) {
        v.err("log.level", format!("invalid tracing filter: {e}"));
    }
    if !matches!(cfg.log.format.as_str(), "text" | "json") {
        v.err(
            "log.format",
            format!("must be `text` or `json`, got {:?}", cfg.log.format),
        );
    }
    if let Some(addr) = cfg.status.listen {
        if !addr.ip().is_loopback() {
            v.err(
                "status.listen",
                format!(
                    "{addr} is not a loopback address (the status endpoint has no authentication)"
                ),
            );
        }
    }
    check_supervisor(&mut v, &cfg.supervisor);
    check_external(&mut v, cfg);
    check_probes(&mut v, cfg);
    if let Some(vr) = &cfg.vrrp {
        check_vrrp(&mut v, vr, cfg);
    }
    if let Some(t) = &cfg.tracker {
        check_tracker(&mut v, t);
    }
    if let Some(s) = &cfg.storage {
        check_storage(&mut v, s);
    }
    if let Some(g) = &cfg.gateway {
        check_gateway(&mut v, g, cfg);
    }
    check_listen_conflicts(&mut v, cfg);
    v.out
}

fn check_supervisor(v: &mut V, s: &SupervisorConfig) {
    if s.restart_backoff_min.get().is_zero() {
        v.err("supervisor.restart_backoff_min", "must be greater than 0");
    }
    if s.restart_backoff_max < s.restart_backoff_min {
        v.err(
            "supervisor.restart_backoff_max",
            "must not be smaller than restart_backoff_min",
        );
    }
    if s.max_restarts == 0 {
        v.err("supervisor.max_restarts", "must be at least 1");
    }
    if s.restart_window.get().is_zero() {
        v.err("supervisor.restart_window", "must be greater than 0");
    }
}

fn check_external(v: &mut V, cfg: &Config) {
    let mut seen = BTreeSet::new();
    for (i, e) in cfg.external.iter().enumerate() {
        let p = format!("external[{i}]");
        if e.name.is_empty() {
            v.err(format!("{p}.name"), "must not be empty");
        } else if BUILTIN_COMPONENTS.contains(&e.name.as_str()) {
            v.err(
                format!("{p}.name"),
                format!("`{}` is the name of a built-in component", e.name),
            );
        } else if !seen.insert(e.name.clone()) {
            v.err(format!("{p}.name"), format!("duplicate name `{}`", e.name));
        }
        match e.command.first() {
            None => v.err(format!("{p}.command"), "must name a program to run"),
            Some(prog) => {
                if let Err(why) = find_program(prog) {
                    v.err(format!("{p}.command[0]"), why);
                }
            }
        }
    }
}

/// Components this config runs, by the names `on_fail`/`component:` use.
pub fn enabled_components(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.tracker.is_some() {
        out.push("tracker".to_string());
    }
    if let Some(s) = &cfg.storage {
        out.push("storage".to_string());
        if s.http.is_some() {
            out.push("storage_http".to_string());
        }
    }
    if cfg.gateway.is_some() {
        out.push("gateway".to_string());
    }
    out.extend(cfg.external.iter().map(|e| e.name.clone()));
    out
}

/// Which component a probe with `on_fail: restart` restarts: `component:` if set, the external
/// component of a `process` probe, else the enabled component listening on the probed port.
pub fn probe_target_component(p: &ProbeConfig, cfg: &Config) -> Option<String> {
    if let Some(c) = &p.component {
        return Some(c.clone());
    }
    if let Some(name) = &p.process {
        return Some(name.clone());
    }
    let target = p
        .tcp
        .as_deref()
        .or(p.fastdfs.as_deref())
        .map(str::to_string)
        .or_else(|| {
            p.http
                .as_deref()
                .and_then(|u| parse_http_url(u).ok())
                .map(|u| format!("{}:{}", u.host, u.port))
        })?;
    let port: u16 = target.rsplit_once(':')?.1.parse().ok()?;
    let mut candidates = Vec::new();
    if let Some(t) = &cfg.tracker {
        candidates.push(("tracker", t.listen.port()));
    }
    if let Some(s) = &cfg.storage {
        candidates.push(("storage", s.listen.port()));
        if let Some(h) = &s.http {
            candidates.push(("storage_http", h.listen.port()));
        }
    }
    if let Some(g) = &cfg.gateway {
        for l in g.effective_listeners() {
            candidates.push(("gateway", l.listen.port()));
        }
    }
    candidates
        .into_iter()
        .find(|(_, p)| *p == port)
        .map(|(n, _)| n.to_string())
}

fn check_probes(v: &mut V, cfg: &Config) {
    let mut seen = BTreeSet::new();
    let components = enabled_components(cfg);
    for (i, p) in cfg.probes.iter().enumerate() {
        let at = |k: &str| format!("probes[{i}].{k}");
        if p.name.is_empty() {
            v.err(at("name"), "must not be empty");
        } else if !seen.insert(p.name.clone()) {
            v.err(at("name"), format!("duplicate probe name `{}`", p.name));
        }
        let kinds: Vec<&str> = [
            ("tcp", p.tcp.is_some()),
            ("http", p.http.is_some()),
            ("fastdfs", p.fastdfs.is_some()),
            ("process", p.process.is_some()),
            ("exec", p.exec.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect();
        match kinds.len() {
            0 => v.err(
                format!("probes[{i}]"),
                "needs exactly one of tcp, http, fastdfs, process, exec",
            ),
            1 => {}
            _ => v.err(
                format!("probes[{i}]"),
                format!(
                    "has several kinds ({}); a probe checks exactly one thing",
                    kinds.join(", ")
                ),
            ),
        }
        if let Some(t) = &p.tcp {
            if let Err(e) = check_host_port(t) {
                v.err(at("tcp"), e);
            }
        }
        if let Some(t) = &p.fastdfs {
            if let Err(e) = check_host_port(t) {
                v.err(at("fastdfs"), e);
            }
        }
        if let Some(u) = &p.http {
            if let Err(e) = parse_http_url(u) {
                v.err(at("http"), e);
            }
        } else {
            if p.expect_status.is_some() {
                v.err(at("expect_status"), "only applies to http probes");
            }
            if p.expect_body.is_some() {
                v.err(at("expect_body"), "only applies to http probes");
            }
        }
        if let Some(s) = p.expect_status {
            if !(100..=599).contains(&s) {
                v.err(at("expect_status"), format!("{s} is not an HTTP status"));
            }
        }
        if let Some(name) = &p.process {
            if !cfg.external.iter().any(|e| &e.name == name) {
                v.err(
                    at("process"),
                    format!("no external component named `{name}`"),
                );
            }
        }
        if let Some(argv) = &p.exec {
            match argv.first() {
                None => v.err(at("exec"), "must name a program to run"),
                // A script that cannot execute must not count as healthy (keepalived's trap).
                Some(prog) => {
                    if let Err(why) = find_program(prog) {
                        v.err(format!("probes[{i}].exec[0]"), why);
                    }
                }
            }
        }
        if p.interval.get().is_zero() {
            v.err(at("interval"), "must be greater than 0");
        }
        if p.timeout.get().is_zero() {
            v.err(at("timeout"), "must be greater than 0");
        }
        if p.rise == 0 {
            v.err(at("rise"), "must be at least 1");
        }
        if p.fall == 0 {
            v.err(at("fall"), "must be at least 1");
        }
        if let Some(c) = &p.component {
            if !components.contains(c) {
                v.err(
                    at("component"),
                    format!(
                        "`{c}` is not a component this config runs (known: {})",
                        components.join(", ")
                    ),
                );
            }
        }
        if p.on_fail == OnFail::Restart && p.component.is_none() {
            match probe_target_component(p, cfg) {
                Some(c) if components.contains(&c) => {}
                _ => v.err(
                    at("on_fail"),
                    format!(
                        "`restart` needs a component to restart: set `component:` to one of [{}]",
                        components.join(", ")
                    ),
                ),
            }
        }
    }
}

fn check_vrrp(v: &mut V, vr: &VrrpConfig, cfg: &Config) {
    // The rules `run` enforces itself (one function, so the two never disagree) ...
    for b in super::vrrp_rules::check(vr) {
        v.err(b.path, b.message);
    }
    // ... and what needs the host or the other sections.
    let probe_names: BTreeSet<&str> = cfg.probes.iter().map(|p| p.name.as_str()).collect();
    for (i, inst) in vr.instances.iter().enumerate() {
        let at = |k: &str| format!("vrrp.instances[{i}].{k}");
        if super::vrrp_rules::check_ifname(&inst.interface).is_ok()
            && !Path::new("/sys/class/net").join(&inst.interface).exists()
        {
            v.warn(
                at("interface"),
                format!("interface {} does not exist on this host", inst.interface),
            );
        }
        if !inst.unicast_peers.is_empty() {
            if let Some(own) = interface_ipv4s(&inst.interface) {
                for (k, peer) in inst.unicast_peers.iter().enumerate() {
                    if own.contains(peer) {
                        v.err(
                            format!("vrrp.instances[{i}].unicast_peers[{k}]"),
                            format!("{peer} is an address of {} on this host", inst.interface),
                        );
                    }
                }
            }
        }
        let mut tracked = BTreeSet::new();
        for (k, t) in inst.track.iter().enumerate() {
            let p = format!("vrrp.instances[{i}].track[{k}]");
            if !probe_names.contains(t.probe.as_str()) {
                v.err(
                    format!("{p}.probe"),
                    format!("no probe named `{}` in `probes`", t.probe),
                );
            } else if !tracked.insert(t.probe.clone()) {
                v.err(
                    format!("{p}.probe"),
                    format!("probe `{}` tracked twice", t.probe),
                );
            }
            if matches!(t.weight, TrackWeight::Weight(_)) && inst.priority == 255 {
                v.warn(
                    format!("{p}.weight"),
                    "an address owner (priority 255) ignores weights; only `fault` applies",
                );
            }
        }
        for (k, cmd) in inst.notify.iter().enumerate() {
            let p = format!("vrrp.instances[{i}].notify[{k}]");
            match cmd.split_whitespace().next() {
                None => v.err(p, "empty command"),
                Some(prog) => {
                    if let Err(why) = find_program(prog) {
                        v.err(p, why);
                    }
                }
            }
        }
    }
}

fn check_tracker(v: &mut V, t: &TrackerConfig) {
    if t.store_lookup == StoreLookup::Specified {
        match &t.store_group {
            None => v.err(
                "tracker.store_group",
                "required when store_lookup is `specified`",
            ),
            Some(g) => {
                if let Err(e) = check_group_name(g) {
                    v.err("tracker.store_group", e);
                }
            }
        }
    }
    if t.max_connections == 0 {
        v.err("tracker.max_connections", "must be at least 1");
    }
    if t.max_groups == 0 {
        v.err("tracker.max_groups", "must be at least 1");
    }
    if t.max_storages_per_group == 0 {
        v.err("tracker.max_storages_per_group", "must be at least 1");
    }
    check_allow_hosts(v, "tracker.allow_hosts", &t.allow_hosts);
    for (i, e) in t.storage_ids.iter().enumerate() {
        if let Err(why) = check_group_name(&e.group) {
            v.err(format!("tracker.storage_ids[{i}].group"), why);
        }
        if e.id.is_empty() || e.id.len() > crate::proto::STORAGE_ID_LEN {
            v.err(
                format!("tracker.storage_ids[{i}].id"),
                format!("must be 1..={} bytes", crate::proto::STORAGE_ID_LEN),
            );
        }
    }
}

/// Syntax only: host names are resolved when the component starts, not by `check`.
fn check_allow_hosts(v: &mut V, at: &str, values: &[String]) {
    let no_dns = |_: &str| Ok(Vec::new());
    if let Err(e) = super::allow_hosts::AllowHosts::parse_with(values, &no_dns) {
        v.err(at, e);
    }
}

fn check_storage(v: &mut V, s: &StorageConfig) {
    if let Err(e) = check_group_name(&s.group) {
        v.err("storage.group", e);
    }
    check_allow_hosts(v, "storage.allow_hosts", &s.allow_hosts);
    if s.trackers.is_empty() {
        v.err(
            "storage.trackers",
            "must list at least one tracker (host:port)",
        );
    }
    for (i, t) in s.trackers.iter().enumerate() {
        if let Err(e) = check_host_port(t) {
            v.err(format!("storage.trackers[{i}]"), e);
        }
    }
    if s.store_paths.is_empty() {
        v.err("storage.store_paths", "must list at least one directory");
    }
    if s.store_paths.len() > 256 {
        v.err("storage.store_paths", "at most 256 store paths (M00..MFF)");
    }
    let mut seen = BTreeSet::new();
    for (i, p) in s.store_paths.iter().enumerate() {
        let at = format!("storage.store_paths[{i}]");
        if !seen.insert(p.clone()) {
            v.err(at, format!("{} is listed twice", p.display()));
        } else if let Err(e) = dir_usable(p).map_err(|e| e.ends_with("read-only file system")) {
            // A store path's disk that went read-only is a failed store path, not a bad
            // config: the node runs, the path takes no new files until it is writable again
            // (issue 18.8; `check` would otherwise make the whole node exit).
            if e {
                v.warn(
                    at,
                    format!(
                        "{} is on a read-only file system: its files are served, new files go to other store paths until it is writable",
                        p.display()
                    ),
                );
            } else {
                check_dir(v, &at, p);
            }
        }
    }
    if let Some(b) = &s.base_path {
        check_dir(v, "storage.base_path", b);
    }
    if !(1..=256).contains(&s.subdir_count_per_path) {
        v.err("storage.subdir_count_per_path", "must be in 1..=256");
    }
    if let Some(id) = &s.id {
        if id.is_empty() || id.len() > crate::proto::STORAGE_ID_LEN {
            v.err(
                "storage.id",
                format!("must be 1..={} bytes", crate::proto::STORAGE_ID_LEN),
            );
        }
    }
    if let Some(ip) = &s.advertise_ip {
        if ip.parse::<IpAddr>().is_err() {
            v.err(
                "storage.advertise_ip",
                format!("{ip:?} is not an IP address"),
            );
        }
    }
    if s.max_connections == 0 {
        v.err("storage.max_connections", "must be at least 1");
    }
    if let Some(h) = &s.http {
        if let Some(a) = &h.anti_steal {
            if a.secret_key.is_empty() {
                v.err("storage.http.anti_steal.secret_key", "must not be empty");
            }
            if let Some(f) = &a.check_fail_file {
                if !f.is_file() {
                    v.err(
                        "storage.http.anti_steal.check_fail_file",
                        format!("{} is not a readable file", f.display()),
                    );
                }
            }
        }
        if h.max_connections == 0 {
            v.err("storage.http.max_connections", "must be at least 1");
        }
    }
}

fn check_prefix(v: &mut V, at: String, p: &str) {
    if !p.starts_with('/') {
        v.err(at, format!("must start with '/', got {p:?}"));
    } else if p.len() > 1 && p.ends_with('/') {
        v.err(at, format!("must not end with '/', got {p:?}"));
    }
}

fn check_gateway(v: &mut V, g: &GatewayConfig, cfg: &Config) {
    if let Some(p) = &g.prefix {
        check_prefix(v, "gateway.prefix".into(), p);
        if !g.listeners.is_empty() {
            v.err(
                "gateway.prefix",
                "unused when gateway.listeners is given: set listeners[].prefixes",
            );
        }
    }
    for (i, l) in g.listeners.iter().enumerate() {
        for (j, p) in l.prefixes.iter().enumerate() {
            if !p.is_empty() {
                check_prefix(v, format!("gateway.listeners[{i}].prefixes[{j}]"), p);
            }
        }
    }
    if g.trackers.is_empty() {
        v.err(
            "gateway.trackers",
            "must list at least one tracker (host:port)",
        );
    }
    for (i, t) in g.trackers.iter().enumerate() {
        if let Err(e) = check_host_port(t) {
            v.err(format!("gateway.trackers[{i}]"), e);
        }
    }
    for (i, c) in g.purge_allow.iter().enumerate() {
        if let Err(e) = parse_cidr_any(c) {
            v.err(format!("gateway.purge_allow[{i}]"), e);
        }
    }
    for k in g.weights.keys() {
        if let Err(e) = check_host_port(k) {
            v.err(format!("gateway.weights.{k}"), e);
        }
    }
    for (i, c) in g.trusted_proxies.iter().enumerate() {
        if let Err(e) = parse_cidr_any(c) {
            v.err(format!("gateway.trusted_proxies[{i}]"), e);
        }
    }
    for codes in g.error_pages.keys() {
        if let Err(e) = super::values::error_page_codes(codes) {
            v.err("gateway.error_pages", e);
        }
    }
    if g.hotlink
        .as_ref()
        .is_some_and(|h| h.valid_referers.is_empty())
    {
        v.err(
            "gateway.hotlink.valid_referers",
            "must list at least one of none, blocked or a server name",
        );
    }
    if let Some(z) = &g.gzip {
        if !(1..=9).contains(&z.level) {
            v.err(
                "gateway.gzip.level",
                format!("must be 1..=9, got {}", z.level),
            );
        }
    }
    if g.anti_steal
        .as_ref()
        .is_some_and(|a| a.secret_key.is_empty())
    {
        v.err("gateway.anti_steal.secret_key", "must not be empty");
    }
    if g.max_connections == 0 {
        v.err("gateway.max_connections", "must be at least 1");
    }
    if let Some(c) = &g.cache {
        let dir = c
            .path
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join("gateway-cache"));
        let at = if c.path.is_some() {
            "gateway.cache.path"
        } else {
            "gateway.cache"
        };
        check_dir(v, at, &dir);
        if c.max_size.0 == 0 {
            v.err("gateway.cache.max_size", "must be greater than 0");
        }
        for key in c.valid.keys() {
            if let Err(e) = parse_status_list(key) {
                v.err(format!("gateway.cache.valid.{key}"), e);
            }
        }
    }
}

/// Two components cannot listen on the same port of overlapping addresses.
fn check_listen_conflicts(v: &mut V, cfg: &Config) {
    let mut listens: Vec<(&str, SocketAddr)> = Vec::new();
    if let Some(a) = cfg.status.listen {
        listens.push(("status.listen", a));
    }
    if let Some(t) = &cfg.tracker {
        listens.push(("tracker.listen", t.listen));
    }
    if let Some(s) = &cfg.storage {
        listens.push(("storage.listen", s.listen));
        if let Some(h) = &s.http {
            listens.push(("storage.http.listen", h.listen));
        }
    }
    if let Some(g) = &cfg.gateway {
        for l in g.effective_listeners() {
            listens.push(("gateway.listen", l.listen));
        }
    }
    for (i, (pa, a)) in listens.iter().enumerate() {
        for (pb, b) in &listens[..i] {
            let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
            if a.port() != 0 && a.port() == b.port() && overlap {
                v.err(*pa, format!("{a} conflicts with {pb} ({b})"));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Value checks (pure, reused by other modules)

/// FastDFS group names: 1..=16 of [A-Za-z0-9_-].
pub fn check_group_name(g: &str) -> Result<(), String> {
    if g.is_empty() || g.len() > crate::proto::GROUP_NAME_LEN {
        return Err(format!(
            "group name {g:?} must be 1..={} characters",
            crate::proto::GROUP_NAME_LEN
        ));
    }
    if !g
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("group name {g:?} may only contain A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

/// `host:port` with a non-zero port and a plausible host name or IPv4 address.
pub fn check_host_port(s: &str) -> Result<(), String> {
    if s.parse::<SocketAddr>().is_ok() {
        return if s.ends_with(":0") {
            Err(format!("{s:?}: port 0 is not a valid target"))
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} is not host:port"));
    };
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(format!("{s:?}: invalid port {port:?}")),
        Ok(_) => {}
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok {
        return Err(format!("{s:?}: invalid host {host:?}"));
    }
    Ok(())
}

/// `a.b.c.d/len` (length 0..=32, default 32).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: Ipv4Addr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address[/prefix]"))?;
    let len = match len {
        None => 32,
        Some(l) => match l.trim().parse::<u8>() {
            Ok(n) if n <= 32 => n,
            _ => return Err(format!("{s:?}: prefix length must be 0..=32")),
        },
    };
    Ok((ip, len))
}

/// An IPv4 or IPv6 CIDR (`purge_allow`).
pub fn parse_cidr_any(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address[/prefix]"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => match l.trim().parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{s:?}: prefix length must be 0..={max}")),
        },
    };
    Ok((ip, len))
}

/// nginx `proxy_cache_valid` status lists: `"200 304"`, `"404"` or `"any"`.
pub fn parse_status_list(s: &str) -> Result<Vec<u16>, String> {
    if s.trim() == "any" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        match tok.parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => out.push(c),
            _ => {
                return Err(format!(
                    "{s:?} is not a list of HTTP statuses (e.g. \"200 304\" or \"any\")"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("empty status list".into());
    }
    Ok(out)
}

/// A parsed `http://host:port/path` probe URL (plain HTTP only: probes target local services).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
}

pub fn parse_http_url(u: &str) -> Result<HttpUrl, String> {
    let rest = u
        .strip_prefix("http://")
        .ok_or_else(|| format!("{u:?}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{u:?}: invalid port {p:?}"))?,
        ),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("{u:?}: missing host"));
    }
    check_host_port(&format!("{host}:{port}")).map_err(|e| format!("{u:?}: {e}"))?;
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        path_and_query: path.to_string(),
    })
}

/// IPv4 addresses of a local interface (None when it does not exist here). No root needed.
fn interface_ipv4s(ifname: &str) -> Option<Vec<Ipv4Addr>> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut found = false;
    let mut out = Vec::new();
    for a in addrs {
        if a.interface_name != ifname {
            continue;
        }
        found = true;
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            out.push(sin.ip());
        }
    }
    found.then_some(out)
}

/// A program is found when it is an existing executable path, or a bare name on $PATH.
pub fn find_program(prog: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if prog.contains('/') {
        return if executable(Path::new(prog)) {
            Ok(())
        } else {
            Err(format!("{prog} is not an executable file"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| executable(&d.join(prog))) {
        Ok(())
    } else {
        Err(format!("program {prog:?} not found on PATH"))
    }
}

/// A directory that exists, or can be created: its nearest existing ancestor is a writable
/// directory. Nothing is created here.
///
/// Not being allowed to create it is only a warning when `check` runs unprivileged: the node
/// runs as root, a build host's user usually cannot write /var/lib.
fn check_dir(v: &mut V, at: &str, dir: &Path) {
    if let Err(e) = dir_usable(dir) {
        let unprivileged = !nix::unistd::geteuid().is_root();
        if unprivileged && e.ends_with("permission denied") {
            v.warn(
                at,
                format!(
                    "{e} (as uid {}; fine if `run` has the rights)",
                    nix::unistd::geteuid()
                ),
            );
        } else {
            v.err(at, e);
        }
    }
}

pub fn dir_usable(dir: &Path) -> Result<(), String> {
    use nix::unistd::{access, AccessFlags};
    if dir.as_os_str().is_empty() {
        return Err("empty path".into());
    }
    if !dir.is_absolute() {
        return Err(format!("{} must be an absolute path", dir.display()));
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            return access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                format!(
                    "directory {} is not writable: {}",
                    dir.display(),
                    errno_text(e)
                )
            });
        }
        Ok(_) => return Err(format!("{} exists and is not a directory", dir.display())),
        Err(_) => {}
    }
    let mut anc = dir.parent();
    while let Some(a) = anc {
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => {
                return access(a, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    format!(
                        "directory {} does not exist and cannot be created: {}",
                        dir.display(),
                        errno_text(e)
                    )
                });
            }
            Ok(_) => {
                return Err(format!(
                    "directory {} does not exist and cannot be created: {} is not a directory",
                    dir.display(),
                    a.display()
                ))
            }
            Err(_) => anc = a.parent(),
        }
    }
    Err(format!(
        "directory {} has no existing ancestor",
        dir.display()
    ))
}

fn errno_text(e: nix::errno::Errno) -> String {
    match e {
        nix::errno::Errno::EACCES | nix::errno::Errno::EPERM => "permission denied".into(),
        nix::errno::Errno::EROFS => "read-only file system".into(),
        other => other.desc().to_lowercase(),
    }
}
