//! Puts one node's parsed files together into the ha.yaml tree: decides which file wins where
//! two say the same thing (and warns when they disagree), turns check scripts + vrrp_script into
//! probes and tracks, and finds the trackers the gateway asks.

use super::check_script::{self, CheckScript};
use super::emit::{boolean, num, q, s, Field, MapB, Node};
use super::fastdfs_conf::{self as fc, ClientPart, ModPart, StoragePart, TrackerPart};
use super::keepalived::{self, Keepalived};
use super::nginx::{self, GatewayKind, NginxPart};
use super::{same_file, Ctx, ImportError, Kind, Options, Src};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Every input, read and mapped per format.
#[derive(Default)]
pub struct Parsed {
    pub keepalived: Vec<Keepalived>,
    pub scripts: Vec<CheckScript>,
    pub trackers: Vec<TrackerPart>,
    pub storages: Vec<(StoragePart, Src)>,
    pub mods: Vec<ModPart>,
    pub clients: Vec<ClientPart>,
    pub nginx: NginxPart,
    pub included: Vec<PathBuf>,
}

/// Reads every file by its kind; files that another input includes are read only there.
pub fn read_all(kinds: &[(PathBuf, Kind)], ctx: &mut Ctx) -> Result<Parsed, ImportError> {
    let mut p = Parsed::default();
    let mut nginx_confs = Vec::new();
    let mut fdfs = Vec::new();
    for (path, kind) in kinds {
        match kind {
            Kind::Nginx => {
                let c = nginx::parse_file(path, ctx)?;
                p.included.extend(c.included.iter().cloned());
                nginx_confs.push(c);
            }
            Kind::Tracker | Kind::Storage | Kind::ModFastdfs | Kind::Client => {
                let c = fc::parse_file(path, ctx)?;
                p.included.extend(c.included.iter().cloned());
                fdfs.push((*kind, c, path.clone()));
            }
            _ => {}
        }
    }
    let included = p.included.clone();
    let is_included = |path: &PathBuf| included.iter().any(|i| same_file(i, path));
    for c in &nginx_confs {
        if !is_included(&PathBuf::from(&c.file)) {
            nginx::map(c, &mut p.nginx, ctx);
        }
    }
    for (kind, c, path) in &fdfs {
        if is_included(path) {
            continue;
        }
        match kind {
            Kind::Tracker => p.trackers.push(fc::map_tracker(c, ctx)),
            Kind::Storage => p
                .storages
                .push((fc::map_storage(c, ctx), Src::new(&c.file, 1))),
            Kind::ModFastdfs => p.mods.push(fc::map_mod_fastdfs(c, ctx)),
            _ => p.clients.push(fc::map_client(c, ctx)),
        }
    }
    for (path, kind) in kinds {
        match kind {
            Kind::Keepalived => {
                let st = keepalived::parse_file(path, ctx)?;
                let file = path.display().to_string();
                p.keepalived.push(keepalived::map(&file, &st, ctx));
            }
            Kind::Script => p.scripts.push(check_script::parse_file(path, ctx)?),
            Kind::Other if !is_included(path) => ctx.warn(
                &Src::new(&path.display().to_string(), 1),
                "not a file this import reads (keepalived.conf, nginx.conf, tracker/storage/\
                 client/mod_fastdfs.conf, check script): skipped",
            ),
            _ => {}
        }
    }
    Ok(p)
}

fn first<'a, T>(v: &'a [T], what: &str, ctx: &mut Ctx) -> Option<&'a T> {
    if v.len() > 1 {
        ctx.warn_global(format!(
            "{} {what} files given; one node has one: only the first is imported",
            v.len()
        ));
    }
    v.first()
}

/// Builds the top-level fields of ha.yaml.
pub fn build(p: &Parsed, opts: &Options, ctx: &mut Ctx) -> Vec<Field> {
    let mut root = MapB::default();
    let ka = first(&p.keepalived, "keepalived.conf", ctx);
    let tracker = first(&p.trackers, "tracker.conf", ctx);
    let storage = first(&p.storages, "storage.conf", ctx);
    let modf = first(&p.mods, "mod_fastdfs.conf", ctx);
    let client = first(&p.clients, "client.conf", ctx);
    match (&opts.node, ka.and_then(|k| k.router_id.as_ref())) {
        (Some(n), _) => root.set(Field::new("node", s(n), "--node")),
        (None, Some((r, at))) => root.set(Field::at("node", s(r), at, "router_id")),
        (None, None) => {
            ctx.warn_global(
                "no router_id (keepalived.conf) and no --node: node name set to `fdfs-ha`",
            );
            root.set(Field::new("node", s("fdfs-ha"), "set a name with --node"));
        }
    }
    if let Some((b, at)) = tracker.and_then(|t| t.base_path.as_ref()) {
        root.set(Field::at(
            "data_dir",
            s(b),
            at,
            "tracker base_path (fdfs-ha keeps its own tracker state here)",
        ));
    }
    let level = tracker
        .and_then(|t| t.log_level.clone())
        .or_else(|| storage.and_then(|s| s.0.log_level.clone()));
    if let Some((l, at)) = level {
        let mapped = match l.to_ascii_lowercase().as_str() {
            "debug" => "debug",
            "info" | "notice" => "info",
            "warn" | "warning" => "warn",
            _ => "error",
        };
        root.set(Field::new(
            "log",
            Node::Map(vec![Field::at("level", s(mapped), &at, "log_level")]),
            "",
        ));
    }
    let gw_port = p.nginx.gateway.as_ref().and_then(|g| {
        g.listen
            .0
            .rsplit_once(':')
            .and_then(|(_, x)| x.parse().ok())
    });
    if let Some(k) = ka {
        vrrp(k, &p.scripts, gw_port, &mut root, ctx);
    } else if let Some(sc) = p.scripts.first() {
        ctx.warn(
            &Src::new(&sc.file, 1),
            "check script without a keepalived.conf: nothing tracks it, not imported",
        );
    }
    if let Some(t) = tracker {
        root.set(Field::new("tracker", t.section.clone().into_node(), ""));
    }
    storage_section(
        storage.map(|x| &x.0),
        storage.map(|x| &x.1),
        modf,
        &p.nginx,
        &mut root,
        ctx,
    );
    gateway(
        p,
        tracker,
        storage.map(|x| &x.0),
        modf,
        client,
        &mut root,
        ctx,
    );
    root.fields
}

fn group_ok(g: &str) -> bool {
    !g.is_empty() && g.len() <= 16 && g.chars().all(|c| c.is_ascii_alphanumeric())
}

fn storage_section(
    st: Option<&StoragePart>,
    st_at: Option<&Src>,
    m: Option<&ModPart>,
    ng: &NginxPart,
    root: &mut MapB,
    ctx: &mut Ctx,
) {
    if st.is_none() && m.is_none() {
        if let Some((_, at)) = &ng.storage_http {
            ctx.warn(
                at,
                "a server with ngx_fastdfs_module, but no storage.conf or mod_fastdfs.conf was \
                 given: the storage (and its http) is not imported",
            );
        }
        return;
    }
    let mut sec = MapB::default();
    storage_group(st, m, &mut sec, ctx);
    let port = st
        .and_then(|s| s.port.clone())
        .or_else(|| m.and_then(|m| m.storage_port.clone()));
    if let Some(l) = st.and_then(|s| s.section.get("listen")) {
        sec.set(l.clone());
    } else if let Some((n, at)) = &port {
        sec.set(Field::at("listen", s(&format!("0.0.0.0:{n}")), at, "port"));
    }
    let empty = Vec::new();
    let trackers = fc::pick_trackers(
        &[
            ("storage.conf", st.map(|s| &s.trackers).unwrap_or(&empty)),
            ("mod_fastdfs.conf", m.map(|m| &m.trackers).unwrap_or(&empty)),
        ],
        ctx,
    );
    if trackers.is_empty() {
        ctx.warn_global(
            "no tracker_server for the storage: storage.trackers set to 127.0.0.1:22122",
        );
        sec.set(Field::new(
            "trackers",
            Node::Seq(vec![Field::item(
                s("127.0.0.1:22122"),
                "no tracker_server given",
            )]),
            "",
        ));
    } else {
        sec.set(Field::new(
            "trackers",
            fc::tracker_list(&trackers),
            "tracker_server",
        ));
    }
    storage_paths(st, m, &mut sec, ctx);
    storage_conf_fields(st, st_at, &mut sec, ctx);
    storage_http(st, m, ng, &mut sec, ctx);
    root.set(Field::new("storage", sec.into_node(), ""));
}

/// `storage.group`: storage.conf's group_name, else mod_fastdfs.conf's, else group1.
fn storage_group(st: Option<&StoragePart>, m: Option<&ModPart>, sec: &mut MapB, ctx: &mut Ctx) {
    let group = st
        .and_then(|s| s.group.clone())
        .or_else(|| m.and_then(|m| m.group.clone()));
    if let (Some((a, aat)), Some((b, _))) = (
        st.and_then(|s| s.group.clone()),
        m.and_then(|m| m.group.clone()),
    ) {
        if a != b {
            ctx.warn(
                &aat,
                format!("storage.conf says group {a}, mod_fastdfs.conf says {b}: imported {a}"),
            );
        }
    }
    match group {
        Some((g, at)) => {
            if !group_ok(&g) {
                ctx.warn(
                    &at,
                    format!(
                        "group_name `{g}`: FastDFS group names are 1..16 letters and digits; \
                         FastDFS would refuse it"
                    ),
                );
            }
            sec.set(Field::at("group", s(&g), &at, "group_name"));
        }
        None => {
            ctx.warn_global("no group_name: storage.group set to group1");
            sec.set(Field::new("group", s("group1"), "no group_name given"));
        }
    }
}

/// `storage.store_paths`: storage.conf's store_pathN (or base_path), else mod_fastdfs.conf's.
fn storage_paths(st: Option<&StoragePart>, m: Option<&ModPart>, sec: &mut MapB, ctx: &mut Ctx) {
    let mut paths: Vec<(String, Src)> = st.map(|s| s.store_paths.clone()).unwrap_or_default();
    if paths.is_empty() {
        if let Some(b) = st.and_then(|s| s.base_path.clone()) {
            paths.push((b.0, b.1));
        } else if let Some(m) = m {
            paths = m.store_paths.clone();
        }
    }
    if let (Some(m), Some(s0)) = (m, paths.first()) {
        if let Some(m0) = m.store_paths.first() {
            if m0.0 != s0.0 {
                ctx.warn(
                    &m0.1,
                    format!(
                        "mod_fastdfs.conf store_path0 {} differs from storage.conf's {}: the \
                         nginx module would look for files in the wrong place",
                        m0.0, s0.0
                    ),
                );
            }
        }
    }
    if paths.is_empty() {
        ctx.warn_global(
            "no store_path0 or base_path: storage.store_paths set to /var/lib/fdfs-ha/store0",
        );
        paths.push(("/var/lib/fdfs-ha/store0".into(), Src::new("(none)", 0)));
    }
    sec.set(Field::new(
        "store_paths",
        Node::Seq(
            paths
                .iter()
                .map(|(p, at)| Field::item(s(p), at.to_string()))
                .collect(),
        ),
        match st.and_then(|s| s.store_path_count.clone()) {
            Some(at) => format!("store_pathN; store_path_count {at}"),
            None => "store_pathN".into(),
        },
    ));
}

/// `storage.base_path`, the other storage.conf keys, and `fsync` (with its warning).
fn storage_conf_fields(
    st: Option<&StoragePart>,
    st_at: Option<&Src>,
    sec: &mut MapB,
    ctx: &mut Ctx,
) {
    if let Some((b, at)) = st.and_then(|s| s.base_path.clone()) {
        sec.set(Field::at("base_path", s(&b), &at, "binlog and sync marks"));
    }
    if let Some(st) = st {
        for f in &st.section.fields {
            if f.key != "listen" {
                sec.set(f.clone());
            }
        }
        let at = st.fsync_after.clone().or_else(|| st_at.cloned());
        if let Some(at) = &at {
            ctx.warn(
                at,
                "storage.fsync: true: fdfs-ha fsyncs each upload before acknowledging it; \
                 FastDFS never does (safer, slower for small files). Set `fsync: false` for \
                 FastDFS's behaviour",
            );
        }
        sec.set(Field::new(
            "fsync",
            boolean(true),
            "FastDFS never fsyncs; see the warning above",
        ));
        if !st.sync.fields.is_empty() {
            sec.set(Field::new("sync", st.sync.clone().into_node(), ""));
        }
    }
}

/// `storage.http`: from the ngx_fastdfs_module server and mod_fastdfs.conf, or storage.conf's
/// http.server_port.
fn storage_http(
    st: Option<&StoragePart>,
    m: Option<&ModPart>,
    ng: &NginxPart,
    sec: &mut MapB,
    ctx: &mut Ctx,
) {
    if m.is_some() || ng.storage_http.is_some() {
        let mut http = MapB::default();
        let conf_port = st.and_then(|s| s.http_port.clone());
        match (&ng.storage_http, &conf_port) {
            (Some((l, at)), cp) => {
                let remark = match cp {
                    Some((_, cat)) => format!(
                        "listen of the ngx_fastdfs_module server; storage.conf http.server_port {cat}"
                    ),
                    None => "listen of the ngx_fastdfs_module server".into(),
                };
                http.set(Field::at("listen", s(l), at, &remark));
                if let Some((cport, cat)) = cp {
                    if !l.ends_with(&format!(":{cport}")) {
                        ctx.warn(
                            cat,
                            format!(
                                "http.server_port = {cport}, but nginx serves the module on {l}: \
                                 the port the storage reports differs from where files are served"
                            ),
                        );
                    }
                }
            }
            (None, Some((cport, at))) => http.set(Field::at(
                "listen",
                s(&format!("0.0.0.0:{cport}")),
                at,
                "http.server_port (no nginx.conf given)",
            )),
            (None, None) => {}
        }
        if let Some(m) = m {
            for f in &m.http.fields {
                http.set(f.clone());
            }
        }
        if http.fields.is_empty() {
            http.set(Field::new("listen", s("0.0.0.0:8888"), "default"));
        }
        sec.set(Field::new("http", http.into_node(), ""));
    } else if let Some((p, at)) = st.and_then(|s| s.http_port.clone()) {
        ctx.warn(
            &at,
            format!(
                "http.server_port = {p}, but no mod_fastdfs.conf or nginx.conf with \
                 ngx_fastdfs_module was given: storage.http not imported"
            ),
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn gateway(
    p: &Parsed,
    tracker: Option<&TrackerPart>,
    st: Option<&StoragePart>,
    m: Option<&ModPart>,
    client: Option<&ClientPart>,
    root: &mut MapB,
    ctx: &mut Ctx,
) {
    let Some(g) = &p.nginx.gateway else {
        return;
    };
    let mut sec = MapB::default();
    sec.set(Field::at("listen", s(&g.listen.0), &g.listen.1, "listen"));
    if let Some((pre, at)) = &g.prefix {
        sec.set(Field::at("prefix", s(pre), at, "location"));
    }
    let empty = Vec::new();
    let mut trackers = fc::pick_trackers(
        &[
            ("client.conf", client.map(|c| &c.trackers).unwrap_or(&empty)),
            ("storage.conf", st.map(|s| &s.trackers).unwrap_or(&empty)),
            ("mod_fastdfs.conf", m.map(|m| &m.trackers).unwrap_or(&empty)),
        ],
        ctx,
    );
    if trackers.is_empty() && g.kind == GatewayKind::TrackersNginx {
        let port = tracker.map(|t| t.port).unwrap_or(22122);
        let mut seen = Vec::new();
        for (h, at) in &g.upstream_hosts {
            if !seen.contains(h) {
                seen.push(h.clone());
                trackers.push((format!("{h}:{port}"), at.clone()));
            }
        }
        if let Some((_, at)) = g.upstream_hosts.first() {
            ctx.warn(
                at,
                format!(
                    "this nginx proxies to the trackers' nginx ({}); fdfs-ha's gateway asks the \
                     FastDFS trackers on those hosts (port {port} assumed: give a client.conf \
                     to take the list from there) and routes to the storages itself",
                    seen.join(", ")
                ),
            );
        }
    }
    if trackers.is_empty() {
        let port = tracker.map(|t| t.port).unwrap_or(22122);
        ctx.warn(
            &g.listen.1,
            format!(
                "no tracker list for the gateway (no client.conf/storage.conf): it asks \
                 127.0.0.1:{port} only"
            ),
        );
        trackers.push((format!("127.0.0.1:{port}"), g.listen.1.clone()));
    }
    sec.set(Field::new("trackers", fc::tracker_list(&trackers), ""));
    for f in &g.fields.fields {
        sec.set(f.clone());
    }
    if !g.purge_allow.is_empty() {
        purge_subnets(p, g, ctx);
        sec.set(Field::new(
            "purge_allow",
            Node::Seq(
                g.purge_allow
                    .iter()
                    .map(|(c, at)| Field::item(s(c), at.to_string()))
                    .collect(),
            ),
            "location ~/purge: allow",
        ));
    } else if sec.has("cache") {
        sec.set(Field::new(
            "purge_allow",
            Node::Seq(Vec::new()),
            "nginx has no purge location: nobody may purge",
        ));
    }
    if let Some((cp, at)) = client.and_then(|c| c.http_tracker_port.clone()) {
        let lp = g.listen.0.rsplit(':').next().unwrap_or("");
        if lp != cp.to_string() {
            ctx.warn(
                &at,
                format!(
                    "client.conf's http port {cp} is not the gateway's port {lp}: download URLs \
                     built from client.conf point elsewhere"
                ),
            );
        }
    }
    root.set(Field::new("gateway", sec.into_node(), ""));
}

/// Every IPv4 address the inputs name: what "this cluster's network" is.
fn cluster_ips(p: &Parsed) -> Vec<Ipv4Addr> {
    let mut v = Vec::new();
    let mut add = |h: &str| {
        let host = h.split(':').next().unwrap_or(h);
        let host = host.split('/').next().unwrap_or(host);
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            if !ip.is_loopback() {
                v.push(ip);
            }
        }
    };
    for t in p.storages.iter().flat_map(|s| s.0.trackers.iter()) {
        add(&t.0);
    }
    for t in p.mods.iter().flat_map(|s| s.trackers.iter()) {
        add(&t.0);
    }
    for t in p.clients.iter().flat_map(|s| s.trackers.iter()) {
        add(&t.0);
    }
    if let Some(g) = &p.nginx.gateway {
        for h in &g.upstream_hosts {
            add(&h.0);
        }
    }
    for k in &p.keepalived {
        for i in &k.instances {
            for vip in &i.vips {
                add(vip);
            }
        }
    }
    v
}

/// A purge ACL that admits none of the cluster's addresses is probably for another network.
fn purge_subnets(p: &Parsed, g: &nginx::Gateway, ctx: &mut Ctx) {
    let ips = cluster_ips(p);
    if ips.is_empty() {
        return;
    }
    for (cidr, at) in &g.purge_allow {
        let Some((net, len)) = cidr
            .split_once('/')
            .and_then(|(a, l)| Some((a.parse::<Ipv4Addr>().ok()?, l.parse::<u32>().ok()?)))
        else {
            continue;
        };
        if net.is_loopback() || len == 0 || len > 32 {
            continue;
        }
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        let inside = ips
            .iter()
            .any(|ip| u32::from(*ip) & mask == u32::from(net) & mask);
        if !inside {
            let mut uniq = ips.clone();
            uniq.sort();
            uniq.dedup();
            let mut sample: Vec<String> = uniq.iter().map(|i| i.to_string()).collect();
            sample.truncate(3);
            ctx.warn(
                at,
                format!(
                    "purge ACL allows {cidr}, but none of this cluster's addresses ({}, ...) is \
                     in it: a different subnet (typo?). Imported as written",
                    sample.join(", ")
                ),
            );
        }
    }
}

/// vrrp.instances + the probes their tracks need (+ restart_grace from the script's sleep).
fn vrrp(
    k: &Keepalived,
    scripts: &[CheckScript],
    gw_port: Option<u16>,
    root: &mut MapB,
    ctx: &mut Ctx,
) {
    let mut instances = Vec::new();
    let mut probes: Vec<Field> = Vec::new();
    let mut probe_names: Vec<String> = Vec::new();
    for inst in &k.instances {
        let mut f = inst.fields.clone();
        let mut tracks = Vec::new();
        for t in &inst.tracks {
            let Some(sc) = k.scripts.iter().find(|s| s.name == t.script) else {
                ctx.warn(
                    &t.at,
                    format!(
                        "track_script {}: no vrrp_script of that name; ignored",
                        t.script
                    ),
                );
                continue;
            };
            let weight = t.weight.clone().or(sc.weight.clone());
            let (probe, track_weight, grace) =
                probe_for(sc, weight.as_ref(), scripts, gw_port, ctx);
            if !probe_names.contains(&sc.name) {
                probe_names.push(sc.name.clone());
                probes.push(Field::item(
                    probe,
                    format!("vrrp_script {} ({})", sc.name, sc.at),
                ));
            }
            if let Some((g, at)) = grace {
                let sup = root.map("supervisor");
                if !sup.iter().any(|f| f.key == "restart_grace") {
                    sup.push(Field::at(
                        "restart_grace",
                        s(&format!("{g}s")),
                        &at,
                        "the script's sleep before it re-checks",
                    ));
                }
            }
            tracks.push(Field::item(
                Node::Map(vec![
                    Field::new("probe", s(&sc.name), ""),
                    Field::new("weight", track_weight, ""),
                ]),
                t.at.to_string(),
            ));
        }
        if !tracks.is_empty() {
            f.set(Field::new("track", Node::Seq(tracks), "track_script"));
        }
        instances.push(Field::item(
            f.into_node(),
            format!("vrrp_instance {}", inst.at),
        ));
    }
    for c in scripts {
        let used = k.instances.iter().flat_map(|i| &i.tracks).any(|t| {
            k.scripts.iter().any(|sc| {
                sc.name == t.script
                    && sc.script.as_ref().is_some_and(|(cmd, _)| {
                        let prog = cmd.split_whitespace().next().unwrap_or("");
                        prog.rsplit('/').next() == Some(c.base_name())
                    })
            })
        });
        if !used {
            ctx.warn(
                &Src::new(&c.file, 1),
                format!(
                    "{}: no track_script of {} runs this script, so it has no effect on this \
                     node; not imported",
                    c.base_name(),
                    k.file
                ),
            );
        }
    }
    if instances.is_empty() {
        ctx.warn_global("keepalived.conf has no vrrp_instance: no vrrp section");
        return;
    }
    root.set(Field::new(
        "vrrp",
        Node::Map(vec![Field::new("instances", Node::Seq(instances), "")]),
        "",
    ));
    if !probes.is_empty() {
        root.set(Field::new("probes", Node::Seq(probes), ""));
    }
}

type ProbeOut = (Node, Node, Option<(u64, Src)>);

/// The probe for one vrrp_script, its track weight, and the restart grace its script implies.
fn probe_for(
    sc: &keepalived::Script,
    weight: Option<&(i64, Src)>,
    scripts: &[CheckScript],
    gw_port: Option<u16>,
    ctx: &mut Ctx,
) -> ProbeOut {
    let (cmd, cmd_at) = sc
        .script
        .clone()
        .unwrap_or_else(|| (String::new(), sc.at.clone()));
    let prog = cmd.split_whitespace().next().unwrap_or("").to_string();
    let base = prog.rsplit('/').next().unwrap_or(&prog).to_string();
    let found = scripts.iter().find(|c| c.base_name() == base);
    let nginx_named = base.contains("nginx");
    let mut p = MapB::default();
    p.set(Field::at("name", s(&sc.name), &sc.at, "vrrp_script"));
    let interval = sc.interval.clone();
    let recognised = found.filter(|c| c.recognised());
    let nginx_check = recognised.is_some() || (found.is_none() && nginx_named);
    if found.is_none() {
        ctx.warn(
            &cmd_at,
            if nginx_named {
                format!(
                    "script {prog} was not given; assumed to be the usual nginx check (restart \
                     nginx, give up the VIP if it stays down). Pass the script to check that"
                )
            } else {
                format!("script {prog} was not given: run as an exec probe; check what it does")
            },
        );
    }
    let mut grace = None;
    let track_weight = if nginx_check {
        match gw_port {
            Some(port) => {
                p.set(Field::at(
                    "tcp",
                    s(&format!("127.0.0.1:{port}")),
                    &cmd_at,
                    "the script checks nginx; the gateway replaces it",
                ));
                p.set(Field::new(
                    "on_fail",
                    s("restart"),
                    recognised_note(recognised),
                ));
                p.set(Field::new(
                    "component",
                    s("gateway"),
                    "nginx's role is the gateway's",
                ));
            }
            None => {
                ctx.warn(
                    &cmd_at,
                    "the checked nginx is not a FastDFS gateway here (no nginx.conf with a \
                     FastDFS location was given): the probe only watches 127.0.0.1:80 and does \
                     not restart it; to restart it, run nginx as an `external` component",
                );
                p.set(Field::at("tcp", s("127.0.0.1:80"), &cmd_at, "nginx's port"));
            }
        }
        if let Some(c) = recognised {
            if let Some((n, at)) = &c.sleep {
                grace = Some((*n, at.clone()));
            } else {
                ctx.warn(
                    &Src::new(&c.file, 1),
                    "the script checks again at once after starting nginx (no sleep): \
                     supervisor.restart_grace keeps its default 2s",
                );
            }
        }
        if let Some((w, at)) = weight {
            let give_up = recognised
                .and_then(|c| c.give_up.clone())
                .map(|g| format!(" at {g}"))
                .unwrap_or_default();
            ctx.warn(
                at,
                format!(
                    "weight {w}: replaced by `weight: fault`. The script exits 0 on almost every \
                     path, so keepalived seldom applied the weight; the VIP really moves when the \
                     script stops keepalived{give_up}, which `fault` does"
                ),
            );
        }
        s("fault")
    } else {
        p.set(Field::at(
            "exec",
            Node::Seq(
                cmd.split_whitespace()
                    .map(|w| Field::item(q(w), ""))
                    .collect(),
            ),
            &cmd_at,
            "script",
        ));
        match weight {
            Some((w, at)) if *w != 0 => {
                let _ = at;
                num(w)
            }
            _ => s("fault"),
        }
    };
    match &interval {
        Some((n, at)) => p.set(Field::at(
            "interval",
            s(&format!("{}s", (*n).max(1))),
            at,
            "",
        )),
        None => p.set(Field::new(
            "interval",
            s("1s"),
            "keepalived's default interval",
        )),
    }
    if let Some((n, at)) = &sc.timeout {
        p.set(Field::at(
            "timeout",
            s(&format!("{}s", (*n).max(1))),
            at,
            "",
        ));
    }
    for (key, v) in [("fall", &sc.fall), ("rise", &sc.rise)] {
        match v {
            Some((n, at)) => p.set(Field::at(key, num((*n).max(1)), at, "")),
            None => p.set(Field::new(
                key,
                num(1),
                format!("keepalived's default {key} 1"),
            )),
        }
    }
    (p.into_node(), track_weight, grace)
}

fn recognised_note(c: Option<&CheckScript>) -> String {
    match c.and_then(|c| c.restart.clone()) {
        Some(at) => format!("the script starts nginx again at {at}"),
        None => "assumed: the usual nginx check restarts nginx".into(),
    }
}
