//! FastDFS key=value files (tracker.conf, storage.conf, client.conf, mod_fastdfs.conf), read with
//! libfastcommon's rules, and mapped to ha.yaml's `tracker:` / `storage:` / `storage.http:`.
//!
//! libfastcommon's reader: lines are trimmed; `#include FILE` includes another file (relative to
//! the directory of the first file read); any other line starting with `#` is a comment; `[name]`
//! starts a section; `key = value` is split at the first `=` and both sides trimmed. A `#` after a
//! value is NOT a comment: it stays in the value (`base_path=/data #logs` is a directory named
//! `/data #logs`). A line without `=` is skipped silently by FastDFS; here it is an error, because
//! it is almost always a mistake the operator wants to hear about. Integers are read with atoi
//! (leading digits), booleans accept true/yes/on/1.

use super::emit::{boolean, num, s, str_list, Field, MapB, Node};
use super::{Ctx, ImportError, Src};
use std::path::{Path, PathBuf};

/// One `key = value` line.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: String,
    /// The value as FastDFS reads it (trimmed, `#...` included).
    pub value: String,
    pub at: Src,
}

impl Kv {
    /// What the operator meant: the value without an inline `#...` remark.
    pub fn meant(&self) -> &str {
        match self.value.find('#') {
            Some(i) => self.value[..i].trim(),
            None => &self.value,
        }
    }
}

/// A parsed file: items before the first section, then each `[section]`.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    pub file: String,
    pub items: Vec<Kv>,
    pub sections: Vec<(String, Src, Vec<Kv>)>,
    /// Files pulled in by `#include`.
    pub included: Vec<PathBuf>,
}

impl Conf {
    pub fn get(&self, key: &str) -> Option<&Kv> {
        self.items.iter().find(|k| k.key == key)
    }
}

/// Reads a file and its `#include`s. Every inline `#` in a value is warned about here, once.
pub fn parse_file(path: &Path, ctx: &mut Ctx) -> Result<Conf, ImportError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut conf = Conf {
        file: path.display().to_string(),
        ..Conf::default()
    };
    read_into(path, &base, &mut conf, ctx, 0)?;
    Ok(conf)
}

fn read_into(
    path: &Path,
    base: &Path,
    conf: &mut Conf,
    ctx: &mut Ctx,
    depth: usize,
) -> Result<(), ImportError> {
    let text = super::read_text(path)?;
    parse_text(&path.display().to_string(), &text, base, conf, ctx, depth)
}

/// Parses text of one file into `conf`; `base` resolves relative `#include`s.
pub fn parse_text(
    file: &str,
    text: &str,
    base: &Path,
    conf: &mut Conf,
    ctx: &mut Ctx,
    depth: usize,
) -> Result<(), ImportError> {
    for (i, raw) in text.lines().enumerate() {
        let at = Src::new(file, i + 1);
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(inc) = line.strip_prefix("#include ") {
            let inc = inc.trim();
            let p = if Path::new(inc).is_absolute() {
                PathBuf::from(inc)
            } else {
                base.join(inc)
            };
            if depth >= 8 {
                return Err(ImportError::at(&at, "#include nested too deep (a loop?)"));
            }
            if p.is_file() {
                conf.included.push(p.clone());
                read_into(&p, base, conf, ctx, depth + 1)?;
            } else {
                ctx.warn(
                    &at,
                    format!(
                        "`#include {inc}` is a directive to FastDFS, not a comment, and {} was not \
                         given: its keys (e.g. http.conf's http.anti_steal.*) are not imported",
                        p.display()
                    ),
                );
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            let name = line[1..line.len() - 1].trim().to_string();
            conf.sections.push((name, at, Vec::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(ImportError::at(
                &at,
                format!(
                    "`{}`: not `key = value` (FastDFS would skip this line silently; fix or \
                     comment it out)",
                    super::clip(line, 60)
                ),
            ));
        };
        let key = k.trim().to_string();
        if key.is_empty() {
            return Err(ImportError::at(&at, "`= value` without a key"));
        }
        let kv = Kv {
            key,
            value: v.trim().to_string(),
            at: at.clone(),
        };
        if kv.value.contains('#') {
            ctx.warn(
                &at,
                format!(
                    "{} = `{}`: `#` after a value is not a comment in FastDFS files; FastDFS uses \
                     the whole text as the value. Imported as `{}`",
                    kv.key,
                    super::clip(&kv.value, 60),
                    kv.meant()
                ),
            );
        }
        match conf.sections.last_mut() {
            Some((_, _, items)) => items.push(kv),
            None => conf.items.push(kv),
        }
    }
    Ok(())
}

/// C's atoi: leading whitespace and sign, then digits; 0 when there are none.
pub fn atoi(v: &str) -> i64 {
    let t = v.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let digits: String = t
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(18)
        .collect();
    let n = digits.parse::<i64>().unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}

/// libfastcommon's boolean: true, yes, on or 1 (any case); anything else is false.
pub fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1")
}

/// An integer value read as FastDFS reads it, warning when atoi ignores trailing text.
fn int(kv: &Kv, ctx: &mut Ctx) -> i64 {
    let n = atoi(&kv.value);
    let m = kv.meant();
    if m.is_empty()
        || !m
            .trim_start_matches(['-', '+'])
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        ctx.warn(
            &kv.at,
            format!(
                "{} = `{}` is not a plain number; FastDFS reads it with atoi as {n}",
                kv.key, kv.value
            ),
        );
    }
    n
}

fn secs(n: i64) -> Node {
    s(&format!("{}s", n.max(0)))
}

/// What ha.yaml's `tracker:` section gets from tracker.conf, and what the rest of the import needs.
#[derive(Debug, Default)]
pub struct TrackerPart {
    pub section: MapB,
    pub port: u16,
    pub base_path: Option<(String, Src)>,
    pub log_level: Option<(String, Src)>,
    pub http_port: Option<(u16, Src)>,
}

/// tracker.conf -> `tracker:`.
pub fn map_tracker(c: &Conf, ctx: &mut Ctx) -> TrackerPart {
    let mut t = TrackerPart {
        port: 22122,
        ..TrackerPart::default()
    };
    let mut bind: Option<&Kv> = None;
    let mut port: Option<&Kv> = None;
    let mut store_lookup = 0;
    let mut allow: Vec<(String, Src)> = Vec::new();
    for kv in &c.items {
        let v = kv.meant();
        let f = |k: &str, n: Node| Field::at(k, n, &kv.at, "");
        match kv.key.as_str() {
            "bind_addr" => bind = Some(kv),
            "port" => port = Some(kv),
            "store_lookup" => {
                store_lookup = int(kv, ctx);
                let name = match store_lookup {
                    0 => "round_robin",
                    1 => "specified",
                    _ => "load_balance",
                };
                t.section.set(f("store_lookup", s(name)));
            }
            "store_group" => {
                if !v.is_empty() {
                    t.section.set(f("store_group", s(v)));
                }
            }
            "store_server" => {
                let name = match int(kv, ctx) {
                    1 => "first_by_ip",
                    2 => "by_priority",
                    _ => "round_robin",
                };
                t.section.set(f("store_server", s(name)));
            }
            "store_path" => {
                let name = if int(kv, ctx) == 2 {
                    "load_balance"
                } else {
                    "round_robin"
                };
                t.section.set(f("store_path", s(name)));
            }
            "download_server" => {
                let name = if int(kv, ctx) == 1 {
                    "source_first"
                } else {
                    "round_robin"
                };
                t.section.set(f("download_server", s(name)));
            }
            "reserved_storage_space" => t.section.set(f("reserved_storage_space", reserved(v))),
            "check_active_interval" => t
                .section
                .set(f("check_active_interval", secs(int(kv, ctx)))),
            "max_connections" => t
                .section
                .set(f("max_connections", num(int(kv, ctx).max(1)))),
            "network_timeout" => t.section.set(f("network_timeout", secs(int(kv, ctx)))),
            "storage_sync_file_max_delay" | "storage_sync_file_max_time" => {
                t.section.set(f(&kv.key, secs(int(kv, ctx))))
            }
            "use_storage_id" => t.section.set(f("use_storage_id", boolean(truthy(v)))),
            "id_type_in_filename" => {
                let id = if v.eq_ignore_ascii_case("id") {
                    "id"
                } else {
                    "ip"
                };
                t.section.set(f("id_type_in_filename", s(id)));
            }
            "response_ip_addr_size" => {
                let x = match v.to_ascii_lowercase().as_str() {
                    "ipv4" => "ipv4",
                    "ipv6" => "ipv6",
                    _ => "auto",
                };
                t.section.set(f("response_ip_addr_size", s(x)));
            }
            "base_path" => t.base_path = Some((v.to_string(), kv.at.clone())),
            "log_level" => t.log_level = Some((v.to_string(), kv.at.clone())),
            "http.server_port" => {
                t.http_port = Some((int(kv, ctx).clamp(0, 65535) as u16, kv.at.clone()));
                ctx.warn(
                    &kv.at,
                    format!(
                        "http.server_port = {v}: FastDFS's tracker has no HTTP server since 4.x; \
                         the port is only informational (what the tracker's nginx may listen on). \
                         Not mapped"
                    ),
                );
            }
            "storage_ids_filename" if !truthy_key(c, "use_storage_id") => ctx.warn(
                &kv.at,
                unused_without("storage_ids_filename", "use_storage_id"),
            ),
            "storage_ids_filename" => ctx.warn(
                &kv.at,
                format!(
                    "storage_ids_filename = {v}: copy that file's entries into \
                     tracker.storage_ids: [{{id, group, ip}}] by hand (not read by this import)"
                ),
            ),
            "allow_hosts" => allow_host_line(kv, &mut allow, ctx),
            _ => unmapped(kv, "tracker.conf", ctx),
        }
    }
    if let Some(field) = allow_hosts(&allow) {
        t.section.set(field);
    }
    let port_n = port.map(|p| int(p, ctx)).unwrap_or(22122).clamp(0, 65535) as u16;
    t.port = port_n;
    let ip = bind
        .map(|b| b.meant())
        .filter(|b| !b.is_empty())
        .unwrap_or("0.0.0.0");
    let at = port.or(bind).map(|k| k.at.clone());
    let listen = format!("{ip}:{port_n}");
    t.section.fields.insert(
        0,
        match at {
            Some(a) => Field::at("listen", s(&listen), &a, &bind_remark(bind)),
            None => Field::new("listen", s(&listen), "default (no port in tracker.conf)"),
        },
    );
    if store_lookup == 2 {
        if let Some(g) = c.get("store_group").filter(|g| !g.meant().is_empty()) {
            ctx.warn(
                &g.at,
                "store_group has no effect with store_lookup=2 (load balance): kept, but unused",
            );
        }
    }
    t
}

/// The listen comment: port, plus where bind_addr was (an empty one means every address).
fn bind_remark(bind: Option<&Kv>) -> String {
    match bind {
        Some(b) if b.meant().is_empty() => {
            format!("port; bind_addr {}: empty = all addresses", b.at)
        }
        Some(b) => format!("port; bind_addr {}", b.at),
        None => "port".into(),
    }
}

fn truthy_key(c: &Conf, key: &str) -> bool {
    c.get(key).map(|k| truthy(k.meant())).unwrap_or(false)
}

fn unused_without(key: &str, needs: &str) -> String {
    format!("{key}: only used with {needs} = true, which is off here. Not mapped")
}

fn reserved(v: &str) -> Node {
    let v = v.trim();
    if v.ends_with('%') {
        s(v)
    } else {
        // FastDFS sizes: 20G, 1024M, bytes.
        s(v)
    }
}

/// What `storage:` gets from storage.conf.
#[derive(Debug, Default)]
pub struct StoragePart {
    pub section: MapB,
    pub sync: MapB,
    pub group: Option<(String, Src)>,
    pub trackers: Vec<(String, Src)>,
    pub port: Option<(u16, Src)>,
    pub store_paths: Vec<(String, Src)>,
    pub base_path: Option<(String, Src)>,
    pub http_port: Option<(u16, Src)>,
    pub log_level: Option<(String, Src)>,
    pub fsync_after: Option<Src>,
    pub store_path_count: Option<Src>,
}

/// storage.conf -> `storage:`.
pub fn map_storage(c: &Conf, ctx: &mut Ctx) -> StoragePart {
    let mut p = StoragePart::default();
    let mut bind: Option<&Kv> = None;
    let mut store_path_count: Option<(i64, Src)> = None;
    let mut allow: Vec<(String, Src)> = Vec::new();
    for kv in &c.items {
        let v = kv.meant();
        let f = |k: &str, n: Node| Field::at(k, n, &kv.at, "");
        match kv.key.as_str() {
            "group_name" => p.group = Some((v.to_string(), kv.at.clone())),
            "bind_addr" => bind = Some(kv),
            "port" => p.port = Some((int(kv, ctx).clamp(0, 65535) as u16, kv.at.clone())),
            "tracker_server" => p.trackers.push((v.to_string(), kv.at.clone())),
            "base_path" => p.base_path = Some((v.to_string(), kv.at.clone())),
            "store_path_count" => store_path_count = Some((int(kv, ctx), kv.at.clone())),
            k if k.starts_with("store_path") && k[10..].chars().all(|c| c.is_ascii_digit()) => {
                p.store_paths.push((v.to_string(), kv.at.clone()))
            }
            "subdir_count_per_path" => p.section.set(f(&kv.key, num(int(kv, ctx)))),
            "file_distribute_path_mode" => {
                let m = if int(kv, ctx) == 1 {
                    "hash"
                } else {
                    "round_robin"
                };
                p.section.set(f(&kv.key, s(m)));
            }
            "file_distribute_rotate_count" | "upload_priority" => {
                p.section.set(f(&kv.key, num(int(kv, ctx))))
            }
            "max_connections" => p.section.set(f(&kv.key, num(int(kv, ctx).max(1)))),
            "heart_beat_interval" | "stat_report_interval" | "network_timeout" => {
                p.section.set(f(&kv.key, secs(int(kv, ctx))))
            }
            "sync_binlog_buff_interval" => p
                .sync
                .set(f("binlog_flush_interval", secs(int(kv, ctx).max(1)))),
            "write_mark_file_freq" => p.sync.set(f("write_mark_every", num(int(kv, ctx).max(1)))),
            "reserved_storage_space" => p.section.set(f(&kv.key, reserved(v))),
            "http.server_port" => {
                p.http_port = Some((int(kv, ctx).clamp(0, 65535) as u16, kv.at.clone()))
            }
            "log_level" => p.log_level = Some((v.to_string(), kv.at.clone())),
            "fsync_after_written_bytes" => {
                p.fsync_after = Some(kv.at.clone());
                if int(kv, ctx) > 0 {
                    ctx.warn(
                        &kv.at,
                        "fsync_after_written_bytes > 0: fdfs-ha fsyncs every upload before \
                         acknowledging it (storage.fsync: true), which covers this",
                    );
                }
            }
            "sync_start_time" | "sync_end_time" => sync_window(c, kv, ctx),
            "allow_hosts" => allow_host_line(kv, &mut allow, ctx),
            _ => unmapped(kv, "storage.conf", ctx),
        }
    }
    if let Some(field) = allow_hosts(&allow) {
        p.section.set(field);
    }
    if bind.is_some() || p.port.is_some() {
        let port = p.port.as_ref().map(|x| x.0).unwrap_or(23000);
        let ip = bind
            .map(|b| b.meant())
            .filter(|b| !b.is_empty())
            .unwrap_or("0.0.0.0");
        let at = p
            .port
            .as_ref()
            .map(|x| x.1.clone())
            .or(bind.map(|b| b.at.clone()))
            .unwrap_or_else(|| Src::new(&c.file, 1));
        p.section.set(Field::at(
            "listen",
            s(&format!("{ip}:{port}")),
            &at,
            &bind_remark(bind),
        ));
    }
    p.store_path_count = store_path_count.as_ref().map(|x| x.1.clone());
    if let Some((n, at)) = store_path_count {
        if n != p.store_paths.len() as i64 && !(n == 1 && p.store_paths.is_empty()) {
            ctx.warn(
                &at,
                format!(
                    "store_path_count = {n} but {} store_pathN line(s) were found; FastDFS \
                     refuses to start when a store_pathN is missing. Imported the lines found",
                    p.store_paths.len()
                ),
            );
        }
    }
    p
}

fn sync_window(c: &Conf, kv: &Kv, ctx: &mut Ctx) {
    let start = c
        .get("sync_start_time")
        .map(|k| k.meant())
        .unwrap_or("00:00");
    let end = c.get("sync_end_time").map(|k| k.meant()).unwrap_or("23:59");
    let whole_day = start == "00:00" && (end == "23:59" || end == "00:00");
    if whole_day {
        ctx.warn(
            &kv.at,
            format!(
                "{} = {}: the whole day, as fdfs-ha always replicates. Not mapped (same meaning)",
                kv.key,
                kv.meant()
            ),
        );
    } else {
        ctx.warn(
            &kv.at,
            format!(
                "{} = {}: CHANGES BEHAVIOUR: FastDFS replicates only between {start} and {end}; \
                 fdfs-ha replicates at all times",
                kv.key,
                kv.meant()
            ),
        );
    }
}

/// What mod_fastdfs.conf gives: `storage.http` keys plus the storage facts it repeats.
#[derive(Debug, Default)]
pub struct ModPart {
    pub http: MapB,
    pub group: Option<(String, Src)>,
    pub trackers: Vec<(String, Src)>,
    pub storage_port: Option<(u16, Src)>,
    pub store_paths: Vec<(String, Src)>,
}

/// mod_fastdfs.conf -> `storage.http:` (the rest is cross-checked against storage.conf).
pub fn map_mod_fastdfs(c: &Conf, ctx: &mut Ctx) -> ModPart {
    let mut m = ModPart::default();
    let mut secret: Option<&Kv> = None;
    let mut ttl: Option<&Kv> = None;
    let mut fail_file: Option<&Kv> = None;
    let mut anti_on: Option<&Kv> = None;
    for kv in &c.items {
        let v = kv.meant();
        match kv.key.as_str() {
            "url_have_group_name" => m.http.set(Field::at(
                "url_have_group_name",
                boolean(truthy(v)),
                &kv.at,
                "",
            )),
            "response_mode" => {
                let mode = if v.eq_ignore_ascii_case("redirect") {
                    "redirect"
                } else {
                    "proxy"
                };
                m.http.set(Field::at("response_mode", s(mode), &kv.at, ""));
            }
            "storage_sync_file_max_delay" => m.http.set(Field::at(
                "sync_file_max_delay",
                secs(int(kv, ctx)),
                &kv.at,
                "",
            )),
            "group_name" => m.group = Some((v.to_string(), kv.at.clone())),
            "tracker_server" => m.trackers.push((v.to_string(), kv.at.clone())),
            "storage_server_port" => {
                m.storage_port = Some((int(kv, ctx).clamp(0, 65535) as u16, kv.at.clone()))
            }
            k if k.starts_with("store_path") && k[10..].chars().all(|c| c.is_ascii_digit()) => {
                m.store_paths.push((v.to_string(), kv.at.clone()))
            }
            "store_path_count" => {}
            "http.anti_steal.check_token" => anti_on = Some(kv),
            "http.anti_steal.secret_key" => secret = Some(kv),
            "http.anti_steal.token_ttl" => ttl = Some(kv),
            "http.anti_steal.token_check_fail" => fail_file = Some(kv),
            "group_count" => {
                let n = int(kv, ctx);
                if n > 0 {
                    ctx.warn(
                        &kv.at,
                        format!(
                            "group_count = {n} with [groupN] sections: the nginx module then \
                             serves every listed group from this host. fdfs-ha's storage http \
                             serves its own group only; other groups' URLs get 404 here"
                        ),
                    );
                }
            }
            _ => unmapped(kv, "mod_fastdfs.conf", ctx),
        }
        if matches!(
            kv.key.as_str(),
            "group_name" | "tracker_server" | "storage_server_port" | "store_path_count"
        ) || kv.key.starts_with("store_path")
        {
            ctx.warn(
                &kv.at,
                format!(
                    "{} = {v}: the nginx module's copy of a storage setting; fdfs-ha's storage \
                     http uses `storage:` itself (differences from storage.conf are reported \
                     separately). Not mapped",
                    kv.key
                ),
            );
        }
    }
    for (name, at, items) in &c.sections {
        let gname = items.iter().find(|k| k.key == "group_name");
        match gname {
            Some(g) if g.meant() != name && name.starts_with("group") => ctx.warn(
                &g.at,
                format!(
                    "section [{name}] says group_name={}: the nginx module serves that section \
                     as group `{}`, not `{name}`",
                    g.meant(),
                    g.meant()
                ),
            ),
            _ => {}
        }
        let _ = at;
        for kv in items {
            ctx.warn(
                &kv.at,
                format!(
                    "[{name}] {} = {}: per-group setting of the nginx module. Not mapped \
                     (fdfs-ha serves the storage's own group from storage.store_paths)",
                    kv.key,
                    kv.meant()
                ),
            );
        }
    }
    if let Some(on) = anti_on.filter(|k| truthy(k.meant())) {
        let mut a = Vec::new();
        match secret {
            Some(k) => a.push(Field::at(
                "secret_key",
                super::emit::q(k.meant()),
                &k.at,
                "",
            )),
            None => ctx.warn(
                &on.at,
                "anti-steal tokens are on but http.anti_steal.secret_key is missing",
            ),
        }
        if let Some(k) = ttl {
            a.push(Field::at("token_ttl", secs(int(k, ctx)), &k.at, ""));
        }
        if let Some(k) = fail_file.filter(|k| !k.meant().is_empty()) {
            a.push(Field::at("check_fail_file", s(k.meant()), &k.at, ""));
        }
        if secret.is_some() {
            m.http
                .set(Field::at("anti_steal", Node::Map(a), &on.at, ""));
        }
    } else {
        for k in [secret, ttl, fail_file].into_iter().flatten() {
            ctx.warn(
                &k.at,
                format!("{}: anti-steal tokens are off here. Not mapped", k.key),
            );
        }
        if let Some(k) = anti_on {
            ctx.warn(&k.at, "http.anti_steal.check_token is off. Not mapped");
        }
    }
    m
}

/// What a client.conf contributes: the trackers it names, and its HTTP port claim.
#[derive(Debug, Default)]
pub struct ClientPart {
    pub trackers: Vec<(String, Src)>,
    pub http_tracker_port: Option<(u16, Src)>,
}

/// client.conf: not part of ha.yaml (the CLI reads it with `-c`); its trackers feed the gateway.
pub fn map_client(c: &Conf, ctx: &mut Ctx) -> ClientPart {
    let mut p = ClientPart::default();
    for kv in &c.items {
        let v = kv.meant();
        match kv.key.as_str() {
            "tracker_server" => p.trackers.push((v.to_string(), kv.at.clone())),
            "http.tracker_server_port" | "http.tracker_http_port" => {
                p.http_tracker_port = Some((int(kv, ctx).clamp(0, 65535) as u16, kv.at.clone()));
                ctx.warn(
                    &kv.at,
                    format!(
                        "{} = {v}: only used by clients to build download URLs; not mapped (the \
                         gateway's port is gateway.listen)",
                        kv.key
                    ),
                );
            }
            "connect_timeout" | "network_timeout" | "use_storage_id" | "base_path" => ctx.warn(
                &kv.at,
                format!(
                    "{} = {v}: a client setting; `fdfs-ha upload -c {}` reads it. Not part of \
                     ha.yaml",
                    kv.key, c.file
                ),
            ),
            _ => unmapped(kv, "client.conf", ctx),
        }
    }
    p
}

/// One `allow_hosts` line: kept for the list, or (`*`, empty) noted as the default.
fn allow_host_line(kv: &Kv, allow: &mut Vec<(String, Src)>, ctx: &mut Ctx) {
    let v = kv.meant();
    if v == "*" || v.is_empty() {
        ctx.warn(
            &kv.at,
            format!("allow_hosts = {v} (every host): ha.yaml's default, same meaning. Not written"),
        );
    }
    allow.push((v.to_string(), kv.at.clone()));
}

/// `allow_hosts` lines (one value each, as FastDFS reads them) -> the section's list; `*` or
/// none means every host, ha.yaml's default, so nothing is written.
fn allow_hosts(lines: &[(String, Src)]) -> Option<Field> {
    let values: Vec<&(String, Src)> = lines.iter().filter(|(v, _)| !v.is_empty()).collect();
    if values.is_empty() || values.iter().any(|(v, _)| v == "*") {
        return None;
    }
    Some(Field::new(
        "allow_hosts",
        str_list(values.iter().map(|(v, at)| (v.as_str(), at.to_string()))),
        "allow_hosts lines",
    ))
}

/// The warning for a key ha.yaml has no place for, with why that is (or is not) a problem.
fn unmapped(kv: &Kv, file: &str, ctx: &mut Ctx) {
    let v = kv.meant();
    let k = kv.key.as_str();
    let why: String = match k {
        "allow_hosts" => format!(
            "allow_hosts = {v}: only tracker.conf's and storage.conf's are read (mapped to \
             tracker/storage.allow_hosts). Not mapped"
        ),
        "disabled" if truthy(v) => format!(
            "disabled = {v}: FastDFS refuses to start with this file; the section is imported \
             anyway"
        ),
        "disabled" => "disabled = false: not needed. Not mapped".into(),
        "use_trunk_file" if truthy(v) => format!(
            "use_trunk_file = {v}: CHANGES BEHAVIOUR: fdfs-ha stores each file as its own file \
             (no trunk files); existing trunk-stored files are not readable by it"
        ),
        "check_file_duplicate" if atoi(v) != 0 => format!(
            "check_file_duplicate = {v}: CHANGES BEHAVIOUR: deduplication through FastDHT is not \
             supported; duplicates are stored twice"
        ),
        "run_by_user" | "run_by_group" if !v.is_empty() => format!(
            "{k} = {v}: fdfs-ha runs as the user that starts it (systemd User=). Not mapped"
        ),
        "connect_timeout" => format!(
            "connect_timeout = {v}: fdfs-ha uses fixed connect timeouts between its components. \
             Not mapped"
        ),
        "load_fdfs_parameters_from_tracker" => {
            format!("{k} = {v}: fdfs-ha's storage http knows its settings from ha.yaml. Not mapped")
        }
        "base_path" => {
            format!("base_path = {v}: logs of the nginx module; fdfs-ha logs to stderr. Not mapped")
        }
        _ if k.starts_with("trunk_") || k.starts_with("slot_") => {
            format!("{k} = {v}: trunk-file setting; fdfs-ha has no trunk files. Not mapped")
        }
        _ if k.contains("thread") || k.contains("buff") || k == "disk_rw_separated" => {
            format!("{k} = {v}: tuning that fdfs-ha does not need (async I/O). Not mapped")
        }
        _ if k.contains("log") => {
            format!("{k} = {v}: fdfs-ha logs to stderr (log.level, log.format). Not mapped")
        }
        _ => format!("{k} = {v}: no ha.yaml equivalent ({file}). Not mapped"),
    };
    ctx.warn(&kv.at, why);
}

/// The first tracker list among `lists`; each later list that differs is warned about.
pub fn pick_trackers(lists: &[(&str, &[(String, Src)])], ctx: &mut Ctx) -> Vec<(String, Src)> {
    let mut chosen: Option<(&str, &[(String, Src)])> = None;
    for (name, l) in lists {
        if l.is_empty() {
            continue;
        }
        match chosen {
            None => chosen = Some((name, l)),
            Some((cname, c)) => {
                let a: std::collections::BTreeSet<&str> = c.iter().map(|x| x.0.as_str()).collect();
                let b: std::collections::BTreeSet<&str> = l.iter().map(|x| x.0.as_str()).collect();
                if a != b {
                    ctx.warn(
                        &l[0].1,
                        format!(
                            "{name} names trackers {} but {cname} names {}: the processes would \
                             report to different trackers. Imported {cname}'s list",
                            b.into_iter().collect::<Vec<_>>().join(", "),
                            a.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
        }
    }
    chosen.map(|(_, l)| l.to_vec()).unwrap_or_default()
}

/// A list node of `host:port` strings with their lines.
pub fn tracker_list(l: &[(String, Src)]) -> Node {
    str_list(l.iter().map(|(v, at)| (v.as_str(), at.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Result<Conf, ImportError>, Ctx) {
        let mut ctx = Ctx::default();
        let mut conf = Conf {
            file: "t.conf".into(),
            ..Conf::default()
        };
        let r = parse_text(
            "t.conf",
            text,
            Path::new("/nonexistent"),
            &mut conf,
            &mut ctx,
            0,
        )
        .map(|()| conf);
        (r, ctx)
    }

    #[test]
    fn inline_hash_stays_in_the_value_and_is_warned() {
        let (c, ctx) = parse("base_path=/fastdfs/tracker      #logs\nport=22122#x\n");
        let c = c.unwrap();
        assert_eq!(c.items[0].value, "/fastdfs/tracker      #logs");
        assert_eq!(c.items[0].meant(), "/fastdfs/tracker");
        assert_eq!(atoi(&c.items[1].value), 22122);
        assert_eq!(ctx.warnings.len(), 2);
        assert!(ctx.warnings[0].to_string().contains("t.conf:1"));
    }

    #[test]
    fn allow_hosts_lines_become_the_list_and_star_is_the_default() {
        let (c, mut ctx) = parse("allow_hosts=10.0.0.[1-15,20]\nallow_hosts=192.168.5.64/26\n");
        let t = map_tracker(&c.unwrap(), &mut ctx);
        let f = t.section.fields.iter().find(|f| f.key == "allow_hosts");
        match f.map(|f| &f.node) {
            Some(Node::Seq(items)) => assert_eq!(items.len(), 2),
            other => panic!("{other:?}"),
        }
        let (c, mut ctx) = parse("allow_hosts=*\n");
        let p = map_storage(&c.unwrap(), &mut ctx);
        assert!(!p.section.fields.iter().any(|f| f.key == "allow_hosts"));
    }

    #[test]
    fn sections_and_trimmed_lines() {
        let (c, _) = parse("a = 1 \n \n[group1] \ngroup_name=group1 \n");
        let c = c.unwrap();
        assert_eq!(c.items[0].value, "1");
        assert_eq!(c.sections[0].0, "group1");
        assert_eq!(c.sections[0].2[0].value, "group1");
    }

    #[test]
    fn a_line_without_equals_is_an_error_with_its_line() {
        let (r, _) = parse("port=22122\nbase_path /data\n");
        let e = r.unwrap_err();
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(2));
        assert!(e.to_string().contains("t.conf:2"), "{e}");
    }

    #[test]
    fn missing_include_is_warned_not_fatal() {
        let (r, ctx) = parse("#include http.conf\n# a comment\nx=1\n");
        assert_eq!(r.unwrap().items.len(), 1);
        assert!(ctx.warnings[0].message.contains("#include http.conf"));
    }

    #[test]
    fn atoi_and_booleans_follow_libc_and_libfastcommon() {
        assert_eq!(atoi("  42abc"), 42);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
        assert!(truthy("Yes") && truthy("1") && truthy("ON"));
        assert!(!truthy("no") && !truthy("2"));
    }
}
