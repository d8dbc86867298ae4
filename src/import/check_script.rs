//! nginx_check.sh-like scripts: recognises "if nginx is not running: start it, sleep, and if it is
//! still not running: stop keepalived", which fdfs-ha expresses as a probe with `on_fail: restart`
//! (and `supervisor.restart_grace` for the sleep) plus a `track` with `weight: fault`.
//!
//! Only the shape is recognised (a process check, a start, a stop of keepalived); the shell is not
//! interpreted. Quirks that make the real script misbehave are reported: a dash that is not ASCII
//! in the `ps` options (procps then prints nothing, so nginx looks dead on every run), and `local`
//! outside a function (bash refuses it, so that line does nothing).

use super::{Ctx, ImportError, Src};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct CheckScript {
    pub file: String,
    /// The process the script checks (`nginx`).
    pub process: Option<(String, Src)>,
    /// Where it starts the process again.
    pub restart: Option<Src>,
    pub sleep: Option<(u64, Src)>,
    /// Where it gives up the VIP by stopping keepalived.
    pub give_up: Option<Src>,
}

impl CheckScript {
    /// The restart-then-give-up pattern.
    pub fn recognised(&self) -> bool {
        self.process.is_some() && self.restart.is_some() && self.give_up.is_some()
    }
    pub fn base_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }
}

pub fn parse_file(path: &Path, ctx: &mut Ctx) -> Result<CheckScript, ImportError> {
    let text = super::read_text(path)?;
    Ok(analyse(&path.display().to_string(), &text, ctx))
}

/// Reads the script's lines for the pattern and its quirks.
pub fn analyse(file: &str, text: &str, ctx: &mut Ctx) -> CheckScript {
    let mut cs = CheckScript {
        file: file.to_string(),
        process: None,
        restart: None,
        sleep: None,
        give_up: None,
    };
    let mut fn_depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let at = Src::new(file, i + 1);
        let code = strip_comment(raw);
        let line = code.trim();
        if line.is_empty() {
            continue;
        }
        if line.contains("()") && line.ends_with('{') || line.starts_with("function ") {
            fn_depth += 1;
        }
        if line == "}" && fn_depth > 0 {
            fn_depth -= 1;
        }
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || "`$();|[]".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(p) = checked_process(&words) {
            if cs.process.is_none() {
                cs.process = Some((p.to_string(), at.clone()));
            }
            for w in &words {
                if w.starts_with('\u{2013}') || w.starts_with('\u{2014}') {
                    ctx.warn(
                        &at,
                        format!(
                            "`{w}` starts with a typographic dash (U+{:04X}), not `--`: procps \
                             answers \"garbage option\" and prints nothing, so this check always \
                             counts 0 processes and the script starts nginx again on every run",
                            w.chars().next().map(|c| c as u32).unwrap_or(0)
                        ),
                    );
                }
            }
            continue;
        }
        if words.first() == Some(&"local") && fn_depth == 0 {
            ctx.warn(
                &at,
                "`local` outside a function: bash refuses it (\"can only be used in a \
                 function\"), so this line does nothing",
            );
        }
        if words.first() == Some(&"sleep") {
            if let Some(n) = words.get(1).and_then(|n| n.parse::<u64>().ok()) {
                cs.sleep.get_or_insert((n, at.clone()));
            }
            continue;
        }
        if gives_up(&words) {
            cs.give_up.get_or_insert(at.clone());
            continue;
        }
        if let Some((p, _)) = &cs.process {
            if starts(&words, p) && cs.restart.is_none() {
                cs.restart = Some(at.clone());
            }
        }
    }
    if !cs.recognised() {
        ctx.warn(
            &Src::new(file, 1),
            "script not recognised as \"check nginx, start it, give up the VIP if it stays \
             down\": not imported",
        );
    }
    cs
}

fn strip_comment(line: &str) -> &str {
    // A `#` that starts a word begins a shell comment (shebangs included).
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace() || b[i - 1] == b';') {
            return &line[..i];
        }
    }
    line
}

/// `ps -C nginx`, `pidof nginx`, `pgrep nginx`, `killall -0 nginx` -> "nginx".
fn checked_process<'a>(w: &[&'a str]) -> Option<&'a str> {
    for (i, x) in w.iter().enumerate() {
        match *x {
            "ps" => {
                if let Some(j) = w.iter().position(|y| *y == "-C") {
                    return w.get(j + 1).copied();
                }
                if let Some(j) = w.iter().position(|y| *y == "grep") {
                    return w[j + 1..].iter().find(|y| !y.starts_with('-')).copied();
                }
            }
            "pidof" | "pgrep" => return w.get(i + 1).copied(),
            _ => {}
        }
    }
    None
}

fn gives_up(w: &[&str]) -> bool {
    let has = |s: &str| w.contains(&s);
    has("keepalived") && (has("killall") || has("pkill") || has("stop") || has("kill"))
        || w.iter().any(|x| x.starts_with("keepalived.service")) && has("stop")
}

/// A line that starts `process`: `/usr/local/nginx/sbin/nginx`, `nginx`, `systemctl start nginx`,
/// `service nginx start`.
fn starts(w: &[&str], process: &str) -> bool {
    let first = w.first().copied().unwrap_or("");
    let bin = first.rsplit('/').next().unwrap_or(first);
    if bin == process && !w.iter().any(|x| *x == "-s" || *x == "-t") {
        return true;
    }
    let svc = w
        .iter()
        .any(|x| *x == process || *x == format!("{process}.service"));
    svc && (first == "systemctl" && w.contains(&"start")
        || first == "service" && w.contains(&"start"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_pattern_is_recognised() {
        let t = "#!/bin/bash\nA=`ps -C nginx --no-header |wc -l`\nif [ $A -eq 0 ];then\n\
                 /usr/local/nginx/sbin/nginx\nsleep 2\nif [ `ps -C nginx --no-header |wc -l` \
                 -eq 0 ];then\nkillall keepalived\nfi\nfi\n";
        let mut ctx = Ctx::default();
        let cs = analyse("nginx_check.sh", t, &mut ctx);
        assert!(cs.recognised());
        assert_eq!(cs.process.as_ref().unwrap().0, "nginx");
        assert_eq!(cs.restart.as_ref().unwrap().line, 4);
        assert_eq!(cs.sleep.as_ref().unwrap().0, 2);
        assert_eq!(cs.give_up.as_ref().unwrap().line, 7);
        assert!(ctx.warnings.is_empty(), "{:?}", ctx.warnings);
    }

    #[test]
    fn en_dash_and_local_are_reported() {
        let t = "A=`ps -C nginx \u{2013}no-header |wc -l`\nnginx\nlocal m=1\n\
                 systemctl stop keepalived.service\n";
        let mut ctx = Ctx::default();
        let cs = analyse("s.sh", t, &mut ctx);
        assert!(cs.recognised());
        let w: Vec<String> = ctx.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            w.iter()
                .any(|w| w.contains("s.sh:1") && w.contains("U+2013")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.contains("s.sh:3") && w.contains("local")),
            "{w:?}"
        );
    }

    #[test]
    fn other_scripts_are_not_recognised() {
        let mut ctx = Ctx::default();
        let cs = analyse("x.sh", "#!/bin/sh\necho hi\n", &mut ctx);
        assert!(!cs.recognised());
        assert_eq!(ctx.warnings.len(), 1);
    }
}
