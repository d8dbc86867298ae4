//! nginx.conf (with its `include`s): parsed into directives the way nginx tokenises them, and
//! mapped to `gateway:` (a caching proxy to the storages, or a front proxy to the trackers' nginx)
//! and `storage.http.listen` (a server with `ngx_fastdfs_module`).
//!
//! nginx's reader: `#` at the start of a token begins a comment; `;` ends a directive; `{ }` hold a
//! block; '...' and "..." quote. Relative `include` paths are resolved against the directory of
//! the main file (nginx's conf prefix). An extra `}` is an error (nginx -t: unexpected "}"); a block
//! still open at the end of the file is a warning, because nginx -t refuses it but several seeds
//! lost only their last `}` when copied into a blog.

use super::emit::{num, s, Field, MapB, Node};
use super::{Ctx, ImportError, Src};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Dir {
    pub name: String,
    pub args: Vec<String>,
    pub at: Src,
    pub block: Option<Vec<Dir>>,
}

impl Dir {
    fn text(&self) -> String {
        let mut t = self.name.clone();
        for a in &self.args {
            t.push(' ');
            t.push_str(a);
        }
        t
    }
    fn arg(&self, i: usize) -> &str {
        self.args.get(i).map(String::as_str).unwrap_or("")
    }
}

#[derive(Debug)]
pub struct NginxConf {
    pub file: String,
    pub dirs: Vec<Dir>,
    pub included: Vec<PathBuf>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String, usize),
    Semi(usize),
    Open(usize),
    Close(usize),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut cur = String::new();
    let mut cur_line = 1;
    let mut it = text.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<Tok>, l: usize| {
        if !cur.is_empty() {
            out.push(Tok::Word(std::mem::take(cur), l));
        }
    };
    while let Some(c) = it.next() {
        match c {
            '\n' => {
                flush(&mut cur, &mut out, cur_line);
                line += 1;
            }
            '#' if cur.is_empty() => {
                while let Some(&d) = it.peek() {
                    if d == '\n' {
                        break;
                    }
                    it.next();
                }
            }
            '"' | '\'' if cur.is_empty() => {
                cur_line = line;
                let mut w = String::new();
                while let Some(d) = it.next() {
                    match d {
                        '\\' => {
                            if let Some(e) = it.next() {
                                if e == '\n' {
                                    line += 1;
                                }
                                w.push(e);
                            }
                        }
                        d if d == c => break,
                        d => {
                            if d == '\n' {
                                line += 1;
                            }
                            w.push(d);
                        }
                    }
                }
                out.push(Tok::Word(w, cur_line));
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out, cur_line),
            ';' | '{' | '}' => {
                flush(&mut cur, &mut out, cur_line);
                out.push(match c {
                    ';' => Tok::Semi(line),
                    '{' => Tok::Open(line),
                    _ => Tok::Close(line),
                });
            }
            c => {
                if cur.is_empty() {
                    cur_line = line;
                }
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut out, cur_line);
    out
}

/// Parses one file's text (no includes).
pub fn parse_text(file: &str, text: &str, ctx: &mut Ctx) -> Result<Vec<Dir>, ImportError> {
    let toks = tokenize(text);
    let mut stack: Vec<(Option<Dir>, Vec<Dir>)> = vec![(None, Vec::new())];
    let mut words: Vec<(String, usize)> = Vec::new();
    for t in toks {
        match t {
            Tok::Word(w, l) => words.push((w, l)),
            Tok::Semi(l) | Tok::Open(l) if words.is_empty() => {
                let what = if matches!(t, Tok::Semi(_)) { ";" } else { "{" };
                return Err(ImportError::at(
                    &Src::new(file, l),
                    format!("unexpected \"{what}\" (no directive before it)"),
                ));
            }
            Tok::Semi(_) => {
                let d = dir(file, std::mem::take(&mut words), None);
                if let Some(l) = stack.last_mut() {
                    l.1.push(d);
                }
            }
            Tok::Open(_) => {
                let d = dir(file, std::mem::take(&mut words), None);
                stack.push((Some(d), Vec::new()));
            }
            Tok::Close(l) => {
                if !words.is_empty() {
                    return Err(ImportError::at(
                        &Src::new(file, words[0].1),
                        format!("`{}`: unexpected \"}}\", expecting \";\"", words[0].0),
                    ));
                }
                if stack.len() == 1 {
                    return Err(ImportError::at(
                        &Src::new(file, l),
                        "unexpected \"}\": no block is open here (unbalanced braces)",
                    ));
                }
                close(&mut stack);
            }
        }
    }
    if let Some((w, l)) = words.first() {
        return Err(ImportError::at(
            &Src::new(file, *l),
            format!("`{w}`: unexpected end of file, expecting \";\" or \"}}\""),
        ));
    }
    while stack.len() > 1 {
        if let Some((Some(h), _)) = stack.last() {
            ctx.warn(
                &h.at,
                format!(
                    "`{} {{` is never closed: nginx -t refuses this file (\"unexpected end of \
                     file, expecting }}\"); imported as if closed at the end",
                    h.text()
                ),
            );
        }
        close(&mut stack);
    }
    Ok(stack.pop().map(|l| l.1).unwrap_or_default())
}

fn close(stack: &mut Vec<(Option<Dir>, Vec<Dir>)>) {
    if let Some((Some(mut h), body)) = stack.pop() {
        h.block = Some(body);
        if let Some(l) = stack.last_mut() {
            l.1.push(h);
        }
    }
}

fn dir(file: &str, words: Vec<(String, usize)>, block: Option<Vec<Dir>>) -> Dir {
    let line = words.first().map(|w| w.1).unwrap_or(0);
    let mut it = words.into_iter().map(|w| w.0);
    Dir {
        name: it.next().unwrap_or_default(),
        args: it.collect(),
        at: Src::new(file, line),
        block,
    }
}

/// Reads a file and splices in what its `include` directives name.
pub fn parse_file(path: &Path, ctx: &mut Ctx) -> Result<NginxConf, ImportError> {
    let prefix = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut included = Vec::new();
    let dirs = read_expanded(path, &prefix, &mut included, ctx, 0)?;
    Ok(NginxConf {
        file: path.display().to_string(),
        dirs,
        included,
    })
}

fn read_expanded(
    path: &Path,
    prefix: &Path,
    included: &mut Vec<PathBuf>,
    ctx: &mut Ctx,
    depth: usize,
) -> Result<Vec<Dir>, ImportError> {
    let text = super::read_text(path)?;
    let dirs = parse_text(&path.display().to_string(), &text, ctx)?;
    expand(dirs, prefix, included, ctx, depth)
}

fn expand(
    dirs: Vec<Dir>,
    prefix: &Path,
    included: &mut Vec<PathBuf>,
    ctx: &mut Ctx,
    depth: usize,
) -> Result<Vec<Dir>, ImportError> {
    let mut out = Vec::new();
    for mut d in dirs {
        if d.name == "include" && d.block.is_none() {
            let pat = d.arg(0).to_string();
            let files = resolve(prefix, &pat);
            if files.is_empty() {
                let why = if pat.ends_with("mime.types") {
                    "not needed: fdfs-ha sets Content-Type from the file extension itself"
                } else {
                    "its directives are not imported"
                };
                ctx.warn(&d.at, format!("include {pat}: no such file given; {why}"));
            }
            for f in files {
                if depth >= 8 {
                    return Err(ImportError::at(&d.at, "include nested too deep (a loop?)"));
                }
                included.push(f.clone());
                out.extend(read_expanded(&f, prefix, included, ctx, depth + 1)?);
            }
            continue;
        }
        if let Some(b) = d.block.take() {
            d.block = Some(expand(b, prefix, included, ctx, depth)?);
        }
        out.push(d);
    }
    Ok(out)
}

/// Files an include pattern names (a `*` in the last component is a wildcard).
fn resolve(prefix: &Path, pat: &str) -> Vec<PathBuf> {
    let p = if Path::new(pat).is_absolute() {
        PathBuf::from(pat)
    } else {
        prefix.join(pat)
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains('*') {
        return if p.is_file() { vec![p] } else { Vec::new() };
    }
    let (head, tail) = name.split_once('*').unwrap_or((&name, ""));
    let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|f| {
                    let n = f.file_name().map(|n| n.to_string_lossy().to_string());
                    f.is_file() && n.is_some_and(|n| n.starts_with(head) && n.ends_with(tail))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// What the HTTP side of a node looks like after reading its nginx files.
#[derive(Debug, Default)]
pub struct NginxPart {
    pub gateway: Option<Gateway>,
    /// Upstream names a FastDFS location uses.
    pub used_upstreams: Vec<String>,
    /// `listen` of the server running ngx_fastdfs_module.
    pub storage_http: Option<(String, Src)>,
}

/// Which nginx role the gateway replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// Proxies (and caches) `/groupN/M00/...` to the storages.
    Storages,
    /// A front proxying a prefix to the trackers' caching nginx.
    TrackersNginx,
}

#[derive(Debug)]
pub struct Gateway {
    pub kind: GatewayKind,
    pub listen: (String, Src),
    pub prefix: Option<(String, Src)>,
    /// `cache`, `expires`, `upstream` fields.
    pub fields: MapB,
    pub purge_allow: Vec<(String, Src)>,
    /// Hosts of the upstream servers (for a front: where the trackers are).
    pub upstream_hosts: Vec<(String, Src)>,
}

#[derive(Default)]
struct Http<'a> {
    upstreams: Vec<&'a Dir>,
    cache_paths: Vec<&'a Dir>,
    connect_timeout: Option<&'a Dir>,
    read_timeout: Option<&'a Dir>,
}

/// Maps one nginx file (includes spliced) to the gateway / storage http it describes.
pub fn map(conf: &NginxConf, part: &mut NginxPart, ctx: &mut Ctx) {
    let https: Vec<&Dir> = conf.dirs.iter().filter(|d| d.name == "http").collect();
    let body: Vec<&Dir> = if https.is_empty() {
        if let Some(first) = conf.dirs.first() {
            ctx.warn(
                &first.at,
                "no http {} block: read as the inside of http {} (a file meant to be included)",
            );
        }
        conf.dirs.iter().collect()
    } else {
        for d in conf.dirs.iter().filter(|d| d.name != "http") {
            top_level(d, ctx);
        }
        https
            .iter()
            .flat_map(|h| h.block.as_deref().unwrap_or(&[]))
            .collect()
    };
    let mut http = Http::default();
    let mut servers: Vec<(&[Dir], &Src)> = Vec::new();
    let mut loose: Vec<&Dir> = Vec::new();
    for d in &body {
        match d.name.as_str() {
            "upstream" => http.upstreams.push(d),
            "server" => servers.push((d.block.as_deref().unwrap_or(&[]), &d.at)),
            "proxy_cache_path" => http.cache_paths.push(d),
            "proxy_connect_timeout" => http.connect_timeout = Some(d),
            "proxy_read_timeout" => http.read_timeout = Some(d),
            "listen" | "location" => loose.push(d),
            _ => other(d, ctx),
        }
    }
    if !loose.is_empty() {
        ctx.warn(
            &loose[0].at,
            "`listen`/`location` outside server {}: read as the body of one server block (a \
             fragment meant to be included inside server {})",
        );
        let owned: Vec<Dir> = loose.iter().map(|d| (*d).clone()).collect();
        server(&owned, &loose[0].at, &http, part, ctx);
    }
    for (b, at) in servers {
        server(b, at, &http, part, ctx);
    }
    for u in &http.upstreams {
        if !part.used_upstreams.iter().any(|n| n == u.arg(0)) {
            ctx.warn(
                &u.at,
                format!(
                    "upstream {}: not used by a FastDFS location here. Not mapped",
                    u.arg(0)
                ),
            );
        }
    }
}

fn top_level(d: &Dir, ctx: &mut Ctx) {
    match d.name.as_str() {
        "user"
        | "worker_processes"
        | "worker_cpu_affinity"
        | "worker_rlimit_nofile"
        | "pid"
        | "error_log"
        | "events" => ctx.warn(
            &d.at,
            format!(
                "`{}`: nginx process setting; fdfs-ha needs none. Not mapped",
                d.text()
            ),
        ),
        _ => other(d, ctx),
    }
}

fn other(d: &Dir, ctx: &mut Ctx) {
    let n = d.name.as_str();
    let why = if n.starts_with("gzip") {
        "fdfs-ha sends files as stored (no gzip)"
    } else if n.contains("log") {
        "fdfs-ha logs to stderr"
    } else if n.starts_with("proxy_") || n.starts_with("client_") || n.starts_with("large_") {
        "proxy/buffer detail that fdfs-ha's gateway handles itself"
    } else if matches!(n, "if" | "rewrite" | "return" | "valid_referers") {
        "CHANGES BEHAVIOUR: rewrites and referer checks are not supported"
    } else {
        "no ha.yaml equivalent"
    };
    ctx.warn(&d.at, format!("`{}`: {why}. Not mapped", clip_dir(d)));
}

fn clip_dir(d: &Dir) -> String {
    super::clip(&d.text(), 70)
}

fn listen_addr(d: &Dir) -> String {
    let a = d.arg(0);
    if a.chars().all(|c| c.is_ascii_digit()) {
        format!("0.0.0.0:{a}")
    } else if a.contains(':') {
        a.to_string()
    } else {
        format!("{a}:80")
    }
}

/// The path of a location, without its match modifier.
fn location_path(d: &Dir) -> (String, bool) {
    let (a0, a1) = (d.arg(0), d.arg(1));
    match a0 {
        "~" | "~*" => (a1.to_string(), true),
        "=" | "^~" => (a1.to_string(), false),
        p if p.starts_with("~*") => (p[2..].to_string(), true),
        p if p.starts_with('~') => (p[1..].to_string(), true),
        p => (p.to_string(), false),
    }
}

fn server(body: &[Dir], at: &Src, http: &Http, part: &mut NginxPart, ctx: &mut Ctx) {
    let listens: Vec<&Dir> = body.iter().filter(|d| d.name == "listen").collect();
    let listen = match listens.first() {
        Some(l) => (listen_addr(l), l.at.clone()),
        None => ("0.0.0.0:80".to_string(), at.clone()),
    };
    for extra in listens.iter().skip(1) {
        ctx.warn(
            &extra.at,
            format!(
                "`{}`: a second listener of one server; ha.yaml has one address per \
                 component. Not mapped",
                extra.text()
            ),
        );
    }
    for d in body {
        match d.name.as_str() {
            "listen" => {}
            "location" => location(d, &listen, http, part, ctx),
            "server_name" | "index" | "root" | "charset" | "error_page" => ctx.warn(
                &d.at,
                format!(
                    "`{}`: fdfs-ha serves only FastDFS URLs (no virtual hosts or static \
                     pages). Not mapped",
                    clip_dir(d)
                ),
            ),
            _ => other(d, ctx),
        }
    }
}

fn location(d: &Dir, listen: &(String, Src), http: &Http, part: &mut NginxPart, ctx: &mut Ctx) {
    let body = d.block.as_deref().unwrap_or(&[]);
    let has = |n: &str| body.iter().find(|x| x.name == n);
    let (path, _regex) = location_path(d);
    if let Some(m) = has("ngx_fastdfs_module") {
        match &part.storage_http {
            None => part.storage_http = Some((listen.0.clone(), listen.1.clone())),
            Some(_) => ctx.warn(
                &m.at,
                "a second ngx_fastdfs_module location; ha.yaml has one storage.http. Not mapped",
            ),
        }
        for x in body.iter().filter(|x| x.name != "ngx_fastdfs_module") {
            other(x, ctx);
        }
        if !path.contains("M00") || path.contains("[0-9]") {
            ctx.warn(
                &d.at,
                format!(
                    "location {path}: nginx passes only these URLs to the module; fdfs-ha's \
                     storage http answers every /<group>/Mxx/ URL of its group"
                ),
            );
        }
        return;
    }
    if let Some(p) = has("proxy_cache_purge") {
        let gw = gateway_for(part, listen, GatewayKind::Storages, ctx);
        for x in body {
            match x.name.as_str() {
                "allow" => {
                    let a = x.arg(0);
                    let cidr = if a == "all" {
                        "0.0.0.0/0".to_string()
                    } else if a.contains('/') {
                        a.to_string()
                    } else {
                        format!("{a}/32")
                    };
                    gw.purge_allow.push((cidr, x.at.clone()));
                }
                "deny" if x.arg(0) == "all" => {}
                "proxy_cache_purge" => {}
                _ => other(x, ctx),
            }
        }
        let _ = p;
        return;
    }
    let Some(pp) = has("proxy_pass") else {
        ctx.warn(
            &d.at,
            format!(
                "location {path}: no proxy_pass or FastDFS module (static content); fdfs-ha \
                 does not serve it. Not mapped"
            ),
        );
        return;
    };
    let target = pp.arg(0);
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let (name, uri) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let up = http.upstreams.iter().find(|u| u.arg(0) == name);
    let servers: Vec<&Dir> = match up {
        Some(u) => u
            .block
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|x| x.name == "server")
            .collect(),
        None => Vec::new(),
    };
    let to_groups = path.contains("group") || path.contains("M00");
    let lname = name.to_ascii_lowercase();
    let fdfs_name = ["fdfs", "fastdfs", "tracker", "storage", "group"]
        .iter()
        .any(|k| lname.contains(k));
    if !to_groups && !fdfs_name {
        ctx.warn(
            &d.at,
            format!(
                "location {path} proxies to {target} ({}), which is not a FastDFS service: \
                 fdfs-ha is not a general reverse proxy; keep nginx for it. Not mapped",
                servers
                    .iter()
                    .map(|s| s.arg(0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return;
    }
    let kind = if to_groups {
        GatewayKind::Storages
    } else {
        GatewayKind::TrackersNginx
    };
    let prefix = if to_groups {
        path.find("/group").map(|i| path[..i].to_string())
    } else {
        Some(path.trim_end_matches('/').to_string())
    }
    .filter(|p| !p.is_empty() && p != "/");
    let same_listener = part.gateway.as_ref().map(|g| g.listen.0 == listen.0);
    if same_listener == Some(false) {
        ctx.warn(
            &d.at,
            format!(
                "location {path} on {}: a second gateway listener; ha.yaml has one \
                 gateway.listen (several listeners are not supported yet). Not mapped",
                listen.0
            ),
        );
        return;
    }
    part.used_upstreams.push(name.to_string());
    let gw = gateway_for(part, listen, kind, ctx);
    if let Some(p) = prefix {
        match &gw.prefix {
            Some((old, _)) if *old != p => ctx.warn(
                &d.at,
                format!("location {path}: prefix {p} differs from {old}; ha.yaml has one prefix"),
            ),
            Some(_) => {}
            None => gw.prefix = Some((p, d.at.clone())),
        }
    }
    if kind == GatewayKind::TrackersNginx && uri == "/" {
        ctx.warn(
            &pp.at,
            format!(
                "proxy_pass {target}: the trailing `/` replaces {path} with `/`, so the trackers' \
                 nginx receives `//group1/M00/...`, which works only through nginx's \
                 merge_slashes. fdfs-ha's gateway strips the prefix itself"
            ),
        );
    }
    upstream_servers(&servers, kind, gw, ctx);
    location_body(body, http, gw, ctx);
}

fn gateway_for<'p>(
    part: &'p mut NginxPart,
    listen: &(String, Src),
    kind: GatewayKind,
    _ctx: &mut Ctx,
) -> &'p mut Gateway {
    part.gateway.get_or_insert_with(|| Gateway {
        kind,
        listen: listen.clone(),
        prefix: None,
        fields: MapB::default(),
        purge_allow: Vec::new(),
        upstream_hosts: Vec::new(),
    })
}

fn upstream_servers(servers: &[&Dir], kind: GatewayKind, gw: &mut Gateway, ctx: &mut Ctx) {
    let mut ports = Vec::new();
    let mut up = MapB::default();
    for sv in servers {
        let addr = sv.arg(0);
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "80"));
        gw.upstream_hosts.push((host.to_string(), sv.at.clone()));
        if let Ok(p) = port.parse::<u16>() {
            ports.push((p, sv.at.clone()));
        }
        for param in &sv.args[1..] {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k {
                "max_fails" => up.set(Field::at("max_fails", num(v), &sv.at, "")),
                "fail_timeout" => up.set(Field::at("fail_timeout", s(&dur(v)), &sv.at, "")),
                "weight" if v == "1" => {}
                _ => ctx.warn(
                    &sv.at,
                    format!("server {addr} {param}: not supported by the gateway. Not mapped"),
                ),
            }
        }
    }
    if kind == GatewayKind::Storages {
        if let Some((p, at)) = ports.first() {
            if ports.iter().any(|(q, _)| q != p) {
                ctx.warn(
                    at,
                    "storages on different HTTP ports; the gateway uses one port",
                );
            }
            up.set(Field::at(
                "storage_http_port",
                num(p),
                at,
                "port of the upstream servers",
            ));
        }
        if let Some(first) = servers.first() {
            ctx.warn(
                &first.at,
                "upstream servers: the storages are learned live from the trackers, not listed. \
                 Not mapped",
            );
        }
    }
    for f in up.fields {
        let sub = gw.fields.map("upstream");
        match sub.iter_mut().find(|x| x.key == f.key) {
            Some(old) => *old = f,
            None => sub.push(f),
        }
    }
}

/// nginx time (`30s`, `12h`, `30d`, bare seconds) as an ha.yaml duration.
fn dur(v: &str) -> String {
    if v.chars().all(|c| c.is_ascii_digit()) {
        format!("{v}s")
    } else {
        v.to_string()
    }
}

fn location_body(body: &[Dir], http: &Http, gw: &mut Gateway, ctx: &mut Ctx) {
    let mut valid: Vec<Field> = Vec::new();
    let mut zone: Option<&Dir> = None;
    for x in body {
        match x.name.as_str() {
            "proxy_pass" => {}
            "proxy_cache" => zone = Some(x),
            "proxy_cache_valid" => {
                let (codes, time) = x.args.split_at(x.args.len().saturating_sub(1));
                let codes = if codes.is_empty() {
                    "200 301 302".to_string()
                } else {
                    codes.join(" ")
                };
                if codes.contains("any") {
                    ctx.warn(&x.at, "proxy_cache_valid any: not supported. Not mapped");
                } else {
                    let t = time.first().map(|t| dur(t)).unwrap_or_default();
                    valid.push(Field::at(&codes, s(&t), &x.at, ""));
                }
            }
            "proxy_cache_key" => {
                if x.arg(0) != "$uri$is_args$args" {
                    ctx.warn(
                        &x.at,
                        format!(
                            "proxy_cache_key {}: the gateway keys its cache by URI (and query). \
                             Not mapped",
                            x.arg(0)
                        ),
                    );
                }
            }
            "expires" => gw
                .fields
                .set(Field::at("expires", s(&dur(x.arg(0))), &x.at, "")),
            "proxy_next_upstream" => ctx.warn(
                &x.at,
                "proxy_next_upstream: the gateway tries another storage of the group on errors \
                 and timeouts by itself. Not mapped",
            ),
            "proxy_connect_timeout" | "proxy_read_timeout" => {
                timeout(x, gw);
            }
            "allow" | "deny" => ctx.warn(
                &x.at,
                format!(
                    "`{}`: CHANGES BEHAVIOUR: the gateway has no client ACL for downloads",
                    x.text()
                ),
            ),
            _ => other(x, ctx),
        }
    }
    for t in [http.connect_timeout, http.read_timeout]
        .into_iter()
        .flatten()
    {
        let key = if t.name == "proxy_connect_timeout" {
            "connect_timeout"
        } else {
            "read_timeout"
        };
        let have = gw
            .fields
            .get("upstream")
            .map(|u| matches!(&u.node, Node::Map(m) if m.iter().any(|f| f.key == key)))
            .unwrap_or(false);
        if !have {
            timeout(t, gw);
        }
    }
    if let Some(z) = zone {
        let zname = z.arg(0);
        let path = http.cache_paths.iter().find(|p| {
            p.args
                .iter()
                .any(|a| a.starts_with(&format!("keys_zone={zname}:")))
        });
        match path {
            Some(p) => cache(p, valid, gw, ctx),
            None => ctx.warn(
                &z.at,
                format!("proxy_cache {zname}: no proxy_cache_path defines this zone; no cache"),
            ),
        }
    } else if let Some(v) = body.iter().find(|x| x.name == "proxy_cache_valid") {
        ctx.warn(
            &v.at,
            "proxy_cache_valid without proxy_cache: nothing is cached here. Not mapped",
        );
    }
}

fn timeout(x: &Dir, gw: &mut Gateway) {
    let key = if x.name == "proxy_connect_timeout" {
        "connect_timeout"
    } else {
        "read_timeout"
    };
    let f = Field::at(key, s(&dur(x.arg(0))), &x.at, &x.name);
    let sub = gw.fields.map("upstream");
    match sub.iter_mut().find(|y| y.key == key) {
        Some(old) => *old = f,
        None => sub.push(f),
    }
}

fn cache(p: &Dir, valid: Vec<Field>, gw: &mut Gateway, ctx: &mut Ctx) {
    if gw.fields.has("cache") {
        // A second location using the cache: only new status lists are added.
        let c = gw.fields.map("cache");
        if let Some(Field {
            node: Node::Map(v), ..
        }) = c.iter_mut().find(|f| f.key == "valid")
        {
            for f in valid {
                if !v.iter().any(|x| x.key == f.key) {
                    v.push(f);
                }
            }
        }
        return;
    }
    let mut c = MapB::default();
    c.set(Field::at("path", s(p.arg(0)), &p.at, "proxy_cache_path"));
    let mut max = None;
    let mut inactive = None;
    for a in &p.args[1..] {
        let (k, v) = a.split_once('=').unwrap_or((a, ""));
        match k {
            "max_size" => max = Some(v.to_string()),
            "inactive" => inactive = Some(v.to_string()),
            "levels" | "keys_zone" => {}
            _ => ctx.warn(
                &p.at,
                format!("proxy_cache_path {a}: not supported. Not mapped"),
            ),
        }
    }
    match max {
        Some(m) => c.set(Field::at("max_size", s(&m), &p.at, "max_size")),
        None => {
            ctx.warn(
                &p.at,
                "proxy_cache_path without max_size: nginx lets the cache grow without bound; \
                 ha.yaml needs a bound: 1GiB",
            );
            c.set(Field::new("max_size", s("1GiB"), "nginx had no max_size"));
        }
    }
    c.set(Field::at(
        "inactive",
        s(&dur(inactive.as_deref().unwrap_or("10m"))),
        &p.at,
        if inactive.is_some() {
            "inactive"
        } else {
            "nginx's default inactive"
        },
    ));
    if !valid.is_empty() {
        c.set(Field::new("valid", Node::Map(valid), ""));
    } else {
        ctx.warn(
            &p.at,
            "no proxy_cache_valid: nginx then caches nothing without Cache-Control from the \
             storage; the gateway caches 200/304 for 12h by default",
        );
    }
    gw.fields.set(Field::at("cache", c.into_node(), &p.at, ""));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_comments_and_quotes() {
        let mut ctx = Ctx::default();
        let d = parse_text(
            "n",
            "http {\n  log_format main '$a \"b\"' # c\n  'x';\n  a#b c;\n}\n",
            &mut ctx,
        )
        .unwrap();
        let b = d[0].block.as_ref().unwrap();
        assert_eq!(b[0].args, vec!["main", "$a \"b\"", "x"]);
        assert_eq!(b[1].name, "a#b");
        assert_eq!(b[1].at.line, 4);
    }

    #[test]
    fn extra_brace_is_an_error_unclosed_block_a_warning() {
        let mut ctx = Ctx::default();
        let e = parse_text("n", "http {\n}\n}\n", &mut ctx).unwrap_err();
        assert!(e.to_string().starts_with("n:3:"), "{e}");
        let e = parse_text("n", "http {\nlisten 80\n}\n", &mut ctx).unwrap_err();
        assert!(e.to_string().starts_with("n:2:"), "{e}");
        let d = parse_text("n", "http {\nserver {\n}\n", &mut ctx).unwrap();
        assert_eq!(d.len(), 1);
        assert!(ctx.warnings[0].to_string().contains("n:1"));
    }
}
