//! keepalived.conf: parsed into blocks the way keepalived reads it, and mapped to
//! `vrrp.instances` (plus the vrrp_script facts the probes need).
//!
//! keepalived's reader: one statement per line; a token starting with `#` or `!` ends the line
//! (a comment); `{` opens and `}` closes a block; `"..."` quotes a token. An unknown keyword is
//! reported by `keepalived -t` and then IGNORED, which is why a typo such as `nopreemt` silently
//! leaves the node preempting: such keywords are warnings here, with the nearest real keyword.

use super::emit::{boolean, num, q, s, Field, MapB, Node};
use super::{Ctx, ImportError, Src};
use std::path::Path;

/// One statement: its words, its line, and its `{ ... }` block if it has one.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub words: Vec<String>,
    pub at: Src,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    fn key(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    fn args(&self) -> String {
        self.words[1.min(self.words.len())..].join(" ")
    }
}

/// Reads a keepalived.conf (and the files its `include` lines name).
pub fn parse_file(path: &Path, ctx: &mut Ctx) -> Result<Vec<Stmt>, ImportError> {
    let text = super::read_text(path)?;
    let file = path.display().to_string();
    let stmts = parse_text(&file, &text)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for st in stmts {
        if st.key() == "include" {
            let inc = st.arg(1).unwrap_or("");
            let p = if Path::new(inc).is_absolute() {
                Path::new(inc).to_path_buf()
            } else {
                base.join(inc)
            };
            if p.is_file() {
                out.extend(parse_file(&p, ctx)?);
            } else {
                ctx.warn(
                    &st.at,
                    format!("include {inc}: {} was not given; not imported", p.display()),
                );
            }
        } else {
            out.push(st);
        }
    }
    Ok(out)
}

fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                    cur.push(d);
                }
                out.push(std::mem::take(&mut cur));
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            '{' | '}' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            '#' | '!' if cur.is_empty() => break,
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Parses keepalived syntax; unbalanced braces are errors with file:line.
pub fn parse_text(file: &str, text: &str) -> Result<Vec<Stmt>, ImportError> {
    // Each open block: its header statement and the statements read so far inside it.
    let mut stack: Vec<(Option<Stmt>, Vec<Stmt>)> = vec![(None, Vec::new())];
    for (i, raw) in text.lines().enumerate() {
        let at = Src::new(file, i + 1);
        let mut words: Vec<String> = Vec::new();
        for t in tokens(raw) {
            match t.as_str() {
                "{" => {
                    let header = if words.is_empty() {
                        // `{` on its own line opens the previous statement's block.
                        let level = &mut stack.last_mut().map(|l| &mut l.1);
                        match level.as_mut().and_then(|l| l.pop()) {
                            Some(st) if st.block.is_none() => st,
                            _ => return Err(ImportError::at(&at, "`{` without a keyword")),
                        }
                    } else {
                        Stmt {
                            words: std::mem::take(&mut words),
                            at: at.clone(),
                            block: None,
                        }
                    };
                    stack.push((Some(header), Vec::new()));
                }
                "}" => {
                    if !words.is_empty() {
                        push(&mut stack, std::mem::take(&mut words), &at);
                    }
                    if stack.len() == 1 {
                        return Err(ImportError::at(
                            &at,
                            "unexpected `}`: no block is open here (unbalanced braces)",
                        ));
                    }
                    if let Some((Some(mut header), body)) = stack.pop() {
                        header.block = Some(body);
                        if let Some(l) = stack.last_mut() {
                            l.1.push(header);
                        }
                    }
                }
                _ => words.push(t),
            }
        }
        if !words.is_empty() {
            push(&mut stack, words, &at);
        }
    }
    if stack.len() > 1 {
        let open = stack
            .last()
            .and_then(|l| l.0.as_ref())
            .map(|h| (h.at.clone(), h.words.join(" ")))
            .unwrap_or((Src::new(file, 0), String::new()));
        return Err(ImportError::at(
            &open.0,
            format!(
                "`{} {{` is never closed: missing `}}` before the end of the file (unbalanced \
                 braces)",
                open.1
            ),
        ));
    }
    Ok(stack.pop().map(|l| l.1).unwrap_or_default())
}

fn push(stack: &mut [(Option<Stmt>, Vec<Stmt>)], words: Vec<String>, at: &Src) {
    if let Some(l) = stack.last_mut() {
        l.1.push(Stmt {
            words,
            at: at.clone(),
            block: None,
        });
    }
}

/// A vrrp_script block.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub at: Src,
    /// The command (first word: the program), with its line.
    pub script: Option<(String, Src)>,
    pub interval: Option<(u64, Src)>,
    pub weight: Option<(i64, Src)>,
    pub fall: Option<(u64, Src)>,
    pub rise: Option<(u64, Src)>,
    pub timeout: Option<(u64, Src)>,
}

/// One `track_script` entry of an instance.
#[derive(Debug, Clone)]
pub struct TrackRef {
    pub script: String,
    pub weight: Option<(i64, Src)>,
    pub at: Src,
}

/// A vrrp_instance mapped to ha.yaml fields (tracks are resolved later, with the probes).
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub at: Src,
    pub fields: MapB,
    pub tracks: Vec<TrackRef>,
    pub priority: u8,
    pub vips: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Keepalived {
    pub file: String,
    pub router_id: Option<(String, Src)>,
    pub scripts: Vec<Script>,
    pub instances: Vec<Instance>,
}

const GLOBAL_KNOWN: &[&str] = &[
    "router_id",
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_connect_timeout",
    "smtp_helo_name",
    "enable_script_security",
    "script_user",
    "vrrp_skip_check_adv_addr",
    "vrrp_strict",
    "vrrp_garp_interval",
    "vrrp_gna_interval",
    "vrrp_mcast_group4",
    "vrrp_version",
    "lvs_id",
    "max_auto_priority",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "dynamic_interfaces",
];

const INSTANCE_KNOWN: &[&str] = &[
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "nopreempt",
    "preempt",
    "preempt_delay",
    "authentication",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "track_script",
    "track_interface",
    "track_process",
    "track_file",
    "mcast_src_ip",
    "unicast_src_ip",
    "unicast_peer",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "smtp_alert",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "lvs_sync_daemon_interface",
    "dont_track_primary",
    "version",
    "use_vmac",
    "vmac_xmit_base",
    "native_ipv6",
    "accept",
    "no_accept",
    "strict_mode",
    "skip_check_adv_addr",
    "debug",
];

const SCRIPT_KNOWN: &[&str] = &[
    "script",
    "interval",
    "weight",
    "fall",
    "rise",
    "timeout",
    "user",
    "init_fail",
];

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn unknown(st: &Stmt, known: &[&str], ctx: &mut Ctx) {
    let k = st.key();
    let hint = known
        .iter()
        .map(|c| (distance(k, c), *c))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    let extra = if k == "nopreemt" || hint.contains("`nopreempt`") {
        "; as written, keepalived does not turn preemption off, so this node DOES preempt: \
         imported as preempt: true"
    } else {
        ""
    };
    ctx.warn(
        &st.at,
        format!(
            "unknown keyword `{k}`{hint}: keepalived -t reports \"Unknown keyword\" and ignores \
             the line{extra}"
        ),
    );
}

fn not_mapped(st: &Stmt, why: &str, ctx: &mut Ctx) {
    ctx.warn(
        &st.at,
        format!("`{}`: {why}. Not mapped", st.words.join(" ")),
    );
}

fn number(st: &Stmt, ctx: &mut Ctx) -> Option<i64> {
    match st.arg(1).and_then(|v| v.parse::<i64>().ok()) {
        Some(n) => Some(n),
        None => {
            ctx.warn(
                &st.at,
                format!("`{}`: expected a number; ignored", st.words.join(" ")),
            );
            None
        }
    }
}

/// Maps the parsed file to instances, scripts and router_id.
pub fn map(file: &str, stmts: &[Stmt], ctx: &mut Ctx) -> Keepalived {
    let mut k = Keepalived {
        file: file.to_string(),
        ..Keepalived::default()
    };
    for st in stmts {
        match (st.key(), &st.block) {
            ("global_defs", Some(b)) => {
                for g in b {
                    match g.key() {
                        "router_id" => {
                            k.router_id = g.arg(1).map(|r| (r.to_string(), g.at.clone()));
                            if g.arg(1) == Some("LVS_DEVEL") {
                                ctx.warn(
                                    &g.at,
                                    "router_id LVS_DEVEL is keepalived's sample default, likely \
                                     the same on every node: imported as `node`, but give each \
                                     node its own name (--node) so logs and status tell them apart",
                                );
                            }
                        }
                        key if GLOBAL_KNOWN.contains(&key) => not_mapped(
                            g,
                            if key.starts_with("smtp") || key.starts_with("notification") {
                                "e-mail alerts are not sent by fdfs-ha; use `notify:` commands"
                            } else {
                                "global keepalived setting with no ha.yaml equivalent"
                            },
                            ctx,
                        ),
                        _ => unknown(g, GLOBAL_KNOWN, ctx),
                    }
                }
            }
            ("vrrp_script", Some(b)) => k.scripts.push(script(st, b, ctx)),
            ("vrrp_instance", Some(b)) => k.instances.push(instance(st, b, ctx)),
            ("vrrp_sync_group", _) => not_mapped(
                st,
                "sync groups are not supported: each instance moves on its own",
                ctx,
            ),
            ("virtual_server" | "virtual_server_group", _) => not_mapped(
                st,
                "LVS virtual servers are not part of fdfs-ha (the gateway balances HTTP itself)",
                ctx,
            ),
            _ => unknown(
                st,
                &[
                    "global_defs",
                    "vrrp_script",
                    "vrrp_instance",
                    "vrrp_sync_group",
                ],
                ctx,
            ),
        }
    }
    k
}

fn script(st: &Stmt, body: &[Stmt], ctx: &mut Ctx) -> Script {
    let mut sc = Script {
        name: st.arg(1).unwrap_or("chk").to_string(),
        at: st.at.clone(),
        script: None,
        interval: None,
        weight: None,
        fall: None,
        rise: None,
        timeout: None,
    };
    for b in body {
        let pos = |n: Option<i64>| n.map(|n| n.max(0) as u64);
        match b.key() {
            "script" => sc.script = Some((b.args(), b.at.clone())),
            "interval" => sc.interval = pos(number(b, ctx)).map(|n| (n, b.at.clone())),
            "weight" => sc.weight = number(b, ctx).map(|n| (n, b.at.clone())),
            "fall" => sc.fall = pos(number(b, ctx)).map(|n| (n, b.at.clone())),
            "rise" => sc.rise = pos(number(b, ctx)).map(|n| (n, b.at.clone())),
            "timeout" => sc.timeout = pos(number(b, ctx)).map(|n| (n, b.at.clone())),
            key if SCRIPT_KNOWN.contains(&key) => {
                not_mapped(b, "probes run inside fdfs-ha, not as a user", ctx)
            }
            _ => unknown(b, SCRIPT_KNOWN, ctx),
        }
    }
    sc
}

fn instance(st: &Stmt, body: &[Stmt], ctx: &mut Ctx) -> Instance {
    let name = st.arg(1).unwrap_or("VI_1").to_string();
    let mut f = MapB::default();
    f.set(Field::at("name", s(&name), &st.at, ""));
    let mut inst = Instance {
        name,
        at: st.at.clone(),
        fields: MapB::default(),
        tracks: Vec::new(),
        priority: 100,
        vips: Vec::new(),
    };
    let mut state_master: Option<Src> = None;
    let mut nopreempt: Option<Src> = None;
    let mut garp = MapB::default();
    for b in body {
        let at = &b.at;
        match b.key() {
            "state" => {
                if b.arg(1) == Some("MASTER") {
                    state_master = Some(at.clone());
                }
                not_mapped(
                    b,
                    "not needed: the priority decides who is Master (keepalived's MASTER only \
                     skips the initial wait)",
                    ctx,
                );
            }
            "interface" => f.set(Field::at("interface", s(b.arg(1).unwrap_or("")), at, "")),
            "virtual_router_id" => {
                if let Some(n) = number(b, ctx) {
                    f.set(Field::at("virtual_router_id", num(n), at, ""));
                }
            }
            "priority" => {
                if let Some(n) = number(b, ctx) {
                    let p = n.clamp(1, 255);
                    if p != n {
                        ctx.warn(
                            at,
                            format!("priority {n} is outside 1..255; imported as {p}"),
                        );
                    }
                    inst.priority = p as u8;
                    f.set(Field::at("priority", num(p), at, ""));
                }
            }
            "advert_int" => {
                let v = b.arg(1).unwrap_or("1");
                f.set(Field::at("advert_int", s(&format!("{v}s")), at, ""));
            }
            "nopreempt" => nopreempt = Some(at.clone()),
            "preempt" => f.set(Field::at("preempt", boolean(true), at, "")),
            "preempt_delay" => {
                if let Some(n) = number(b, ctx) {
                    f.set(Field::at("preempt_delay", s(&format!("{n}s")), at, ""));
                }
            }
            "authentication" => auth(b, &mut f, ctx),
            "virtual_ipaddress" => virtual_ipaddress(b, &mut inst, &mut f, ctx),
            "track_script" => track_script(b, &mut inst),
            "mcast_src_ip" | "unicast_src_ip" => {
                f.set(Field::at("src_ip", s(b.arg(1).unwrap_or("")), at, b.key()))
            }
            "unicast_peer" => {
                let peers = b
                    .block
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .map(|p| Field::item(s(p.key()), p.at.to_string()))
                    .collect();
                f.set(Field::at("unicast_peers", Node::Seq(peers), at, ""));
            }
            _ => other_key(b, &mut f, &mut garp, ctx),
        }
    }
    let preempt_at = match (&nopreempt, &state_master) {
        (Some(np), Some(sm)) => {
            ctx.warn(
                np,
                format!(
                    "nopreempt with `state MASTER` ({sm}): keepalived clears nopreempt in that \
                     case, so this node DOES preempt: imported as preempt: true"
                ),
            );
            None
        }
        (Some(np), None) => Some(np.clone()),
        _ => None,
    };
    if let Some(np) = preempt_at {
        f.set(Field::at("preempt", boolean(false), &np, "nopreempt"));
    } else if !f.has("preempt") {
        f.set(Field::new(
            "preempt",
            boolean(true),
            "keepalived's default (no nopreempt in effect)",
        ));
    }
    if !garp.fields.is_empty() {
        f.set(Field::new("garp", garp.into_node(), ""));
    }
    for required in [
        "interface",
        "virtual_router_id",
        "priority",
        "virtual_ipaddress",
    ] {
        if !f.has(required) {
            ctx.warn(
                &st.at,
                format!("vrrp_instance {}: no `{required}`", inst.name),
            );
        }
    }
    if !f.has("priority") {
        f.set(Field::new("priority", num(100), "keepalived's default"));
    }
    inst.fields = f;
    inst
}

/// `virtual_ipaddress { ... }`: each address (with /32 when keepalived would add it).
fn virtual_ipaddress(b: &Stmt, inst: &mut Instance, f: &mut MapB, ctx: &mut Ctx) {
    let at = &b.at;
    let mut items = Vec::new();
    for v in b.block.as_deref().unwrap_or(&[]) {
        let ip = v.key();
        if v.words.len() > 1 {
            ctx.warn(
                &v.at,
                format!(
                    "`{}`: only the address is imported (dev/label/brd/scope are \
                     not supported; the VIP goes on the instance's interface)",
                    v.words.join(" ")
                ),
            );
        }
        let (addr, note) = if ip.contains('/') {
            (ip.to_string(), v.at.to_string())
        } else {
            (
                format!("{ip}/32"),
                format!("{}: no prefix length, keepalived adds it as /32", v.at),
            )
        };
        inst.vips.push(addr.clone());
        items.push(Field::item(s(&addr), note));
    }
    f.set(Field::at("virtual_ipaddress", Node::Seq(items), at, ""));
}

/// `track_script { name [weight N] }`: resolved against the vrrp_script blocks later.
fn track_script(b: &Stmt, inst: &mut Instance) {
    for t in b.block.as_deref().unwrap_or(&[]) {
        let weight = match (t.arg(1), t.arg(2)) {
            (Some("weight"), Some(w)) => w.parse().ok().map(|w| (w, t.at.clone())),
            _ => None,
        };
        inst.tracks.push(TrackRef {
            script: t.key().to_string(),
            weight,
            at: t.at.clone(),
        });
    }
}

/// The rarer vrrp_instance keywords: garp timing, notify scripts, and what is not mapped.
fn other_key(b: &Stmt, f: &mut MapB, garp: &mut MapB, ctx: &mut Ctx) {
    let at = &b.at;
    match b.key() {
        "garp_master_delay" => {
            if let Some(n) = number(b, ctx) {
                garp.set(Field::at("master_delay", s(&format!("{n}s")), at, ""));
            }
        }
        "garp_master_repeat" => {
            if let Some(n) = number(b, ctx) {
                garp.set(Field::at("repeat", num(n.max(1)), at, ""));
            }
        }
        "garp_master_refresh" => {
            if let Some(n) = number(b, ctx) {
                garp.set(Field::at("refresh", s(&format!("{n}s")), at, ""));
            }
        }
        "garp_lower_prio_repeat" => {
            if let Some(n) = number(b, ctx) {
                garp.set(Field::at("lower_prio_repeat", boolean(n > 0), at, ""));
            }
        }
        "notify" => {
            let cmd = b.args();
            ctx.warn(
                at,
                "notify: fdfs-ha runs the command with `<instance> <MASTER|BACKUP|FAULT>` \
                 appended, keepalived with `INSTANCE <name> <state> <priority>`: check the \
                 script's arguments",
            );
            f.set(Field::at(
                "notify",
                Node::Seq(vec![Field::item(q(&cmd), "")]),
                at,
                "",
            ));
        }
        "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => not_mapped(
            b,
            "no per-state scripts: use `notify:` (called with the instance and the new state \
             appended) and a wrapper that picks the state",
            ctx,
        ),
        "track_interface" | "track_process" | "track_file" => not_mapped(
            b,
            "CHANGES BEHAVIOUR: fdfs-ha does not watch this; add a probe and a `track` entry",
            ctx,
        ),
        key if INSTANCE_KNOWN.contains(&key) => not_mapped(b, "no ha.yaml equivalent", ctx),
        _ => unknown(b, INSTANCE_KNOWN, ctx),
    }
}

fn auth(b: &Stmt, f: &mut MapB, ctx: &mut Ctx) {
    let mut ty: Option<&Stmt> = None;
    let mut pass: Option<&Stmt> = None;
    for a in b.block.as_deref().unwrap_or(&[]) {
        match a.key() {
            "auth_type" => ty = Some(a),
            "auth_pass" => pass = Some(a),
            _ => unknown(a, &["auth_type", "auth_pass"], ctx),
        }
    }
    match ty.and_then(|t| t.arg(1)) {
        Some("PASS") => {
            let mut p = pass.and_then(|p| p.arg(1)).unwrap_or("").to_string();
            let at = pass.map(|p| p.at.clone()).unwrap_or_else(|| b.at.clone());
            if p.len() > 8 {
                ctx.warn(
                    &at,
                    format!(
                        "auth_pass is {} bytes; keepalived sends only the first 8: imported \
                         truncated",
                        p.len()
                    ),
                );
                while p.len() > 8 {
                    p.pop();
                }
            }
            f.set(Field::at(
                "auth",
                Node::Map(vec![
                    Field::new("type", s("pass"), ""),
                    Field::new("password", q(&p), ""),
                ]),
                &at,
                "authentication { auth_type PASS; auth_pass }",
            ));
        }
        Some(other) => ctx.warn(
            &b.at,
            format!(
                "auth_type {other}: CHANGES BEHAVIOUR: only PASS is supported; imported without \
                 authentication, and peers that still use {other} will not accept the adverts"
            ),
        ),
        None => ctx.warn(&b.at, "authentication without auth_type; ignored"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_blocks() {
        let t = "! x\nvrrp_script chk {\nscript \"/a b.sh\" # c\n}\nvrrp_instance VI_1 {\n\
                 virtual_ipaddress {\n1.2.3.4 # vip\n}\n}\n";
        let st = parse_text("k", t).unwrap();
        assert_eq!(st.len(), 2);
        let b = st[0].block.as_ref().unwrap();
        assert_eq!(b[0].words, vec!["script", "/a b.sh"]);
        let vi = st[1].block.as_ref().unwrap();
        assert_eq!(vi[0].block.as_ref().unwrap()[0].words, vec!["1.2.3.4"]);
    }

    #[test]
    fn unbalanced_braces_are_errors_with_lines() {
        let e = parse_text("k", "a {\nb 1\n").unwrap_err();
        assert!(e.to_string().starts_with("k:1:"), "{e}");
        let e = parse_text("k", "a {\n}\n}\n").unwrap_err();
        assert!(e.to_string().starts_with("k:3:"), "{e}");
    }

    #[test]
    fn nopreemt_is_unknown_and_the_node_preempts() {
        let t = "vrrp_instance VI_1 {\nstate BACKUP\ninterface eth0\nvirtual_router_id 3\n\
                 priority 90\nnopreemt\nvirtual_ipaddress {\n10.0.0.1\n}\n}\n";
        let mut ctx = Ctx::default();
        let k = map("k", &parse_text("k", t).unwrap(), &mut ctx);
        let w: Vec<String> = ctx.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            w.iter()
                .any(|w| w.contains("k:6") && w.contains("nopreemt") && w.contains("`nopreempt`")),
            "{w:?}"
        );
        assert_eq!(
            k.instances[0].fields.get("preempt").map(|f| &f.node),
            Some(&boolean(true))
        );
        assert_eq!(k.instances[0].vips, vec!["10.0.0.1/32"]);
    }
}
