//! Key path -> line map for ha.yaml, so errors found after parsing still name their line.
//!
//! serde_yaml's `Value` carries no positions, so this scanner reads the YAML shapes operators write
//! (block mappings, block sequences, `- key: v` items, one-line flow collections, block scalars)
//! and records the line where each key or item starts, under the same path syntax serde_path_to_error
//! prints (`storage.store_paths[0]`). Anything it does not understand falls back to the nearest
//! ancestor's line, so a located error is never further off than its parent key.

use std::collections::HashMap;

#[derive(Debug, Default, Clone)]
pub struct LineMap {
    lines: HashMap<String, usize>,
}

#[derive(Debug)]
struct Frame {
    /// Column of the entries of this collection.
    indent: usize,
    path: String,
    seq: bool,
    next_index: usize,
}

impl LineMap {
    pub fn build(text: &str) -> LineMap {
        let mut s = Scanner {
            map: LineMap::default(),
            stack: Vec::new(),
            pending: None,
        };
        let mut block_scalar_parent: Option<usize> = None;
        let mut open_flow = 0i32;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = strip_comment(raw);
            if content.trim().is_empty() {
                continue;
            }
            let indent = content.len() - content.trim_start_matches(' ').len();
            if let Some(parent) = block_scalar_parent {
                if indent > parent {
                    continue;
                }
                block_scalar_parent = None;
            }
            if open_flow > 0 {
                // Inside a flow collection spanning lines: children fall back to its key's line.
                open_flow += bracket_balance(content);
                continue;
            }
            let t = content.trim();
            if t == "---" || t == "..." || t.starts_with("%") {
                continue;
            }
            let outcome = s.entry(indent, content[indent..].trim_end(), line);
            match outcome {
                Outcome::BlockScalar(col) => block_scalar_parent = Some(col),
                Outcome::OpenFlow(depth) => open_flow = depth,
                Outcome::Done => {}
            }
        }
        s.map
    }

    /// Line of `path`, or of its nearest recorded ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Line of exactly `path` (no fallback).
    pub fn exact(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    fn record(&mut self, path: &str, line: usize) {
        self.lines.entry(path.to_string()).or_insert(line);
    }
}

enum Outcome {
    Done,
    BlockScalar(usize),
    OpenFlow(i32),
}

struct Scanner {
    map: LineMap,
    stack: Vec<Frame>,
    /// Path of the last key or item whose value is a nested block still to come.
    pending: Option<String>,
}

impl Scanner {
    fn entry(&mut self, col: usize, t: &str, line: usize) -> Outcome {
        let is_item = t == "-" || t.starts_with("- ");
        while let Some(top) = self.stack.last() {
            let sequence_under_key_same_column =
                top.indent == col && !top.seq && is_item && self.pending.is_some();
            if top.indent > col
                || (top.indent == col && top.seq && !is_item)
                || sequence_under_key_same_column
            {
                if sequence_under_key_same_column {
                    break;
                }
                self.stack.pop();
            } else {
                break;
            }
        }
        let need_new = match self.stack.last() {
            None => true,
            Some(top) => top.indent < col || (top.indent == col && top.seq != is_item),
        };
        if need_new {
            let path = self.pending.take().unwrap_or_else(|| {
                self.stack
                    .last()
                    .map(|f| f.path.clone())
                    .unwrap_or_default()
            });
            self.stack.push(Frame {
                indent: col,
                path,
                seq: is_item,
                next_index: 0,
            });
        }
        self.pending = None;
        let Some(frame) = self.stack.last_mut() else {
            return Outcome::Done;
        };
        if is_item {
            let item_path = format!("{}[{}]", frame.path, frame.next_index);
            frame.next_index += 1;
            self.map.record(&item_path, line);
            let rest = t[1..].trim_start();
            if rest.is_empty() {
                self.pending = Some(item_path);
                return Outcome::Done;
            }
            let rest_col = col + (t.len() - rest.len());
            if rest.starts_with('{') || rest.starts_with('[') {
                return self.flow(rest, &item_path, line);
            }
            if split_key(rest).is_some() || rest == "-" || rest.starts_with("- ") {
                self.pending = Some(item_path);
                return self.entry(rest_col, rest, line);
            }
            return Outcome::Done;
        }
        let Some((key, value)) = split_key(t) else {
            return Outcome::Done; // continuation of a multi-line plain scalar
        };
        let path = join(&frame.path, &key);
        self.map.record(&path, line);
        let value = value.trim();
        if value.is_empty() {
            self.pending = Some(path);
            Outcome::Done
        } else if value.starts_with('|') || value.starts_with('>') {
            Outcome::BlockScalar(col)
        } else if value.starts_with('{') || value.starts_with('[') {
            self.flow(value, &path, line)
        } else {
            Outcome::Done
        }
    }

    fn flow(&mut self, text: &str, base: &str, line: usize) -> Outcome {
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        flow_value(&chars, &mut pos, base, line, &mut self.map);
        let depth = bracket_balance(text);
        if depth > 0 {
            Outcome::OpenFlow(depth)
        } else {
            Outcome::Done
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Splits `key: value` / `key:` (key plain or quoted). None when the line is not a mapping entry.
fn split_key(t: &str) -> Option<(String, &str)> {
    if t.starts_with('{') || t.starts_with('[') {
        return None;
    }
    if let Some(q) = t.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = t[1..].find(q)? + 1;
        let key = t[1..end].to_string();
        let after = t[end + 1..].trim_start();
        let value = after.strip_prefix(':')?;
        if !(value.is_empty() || value.starts_with(' ')) {
            return None;
        }
        return Some((key, value));
    }
    let bytes = t.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            return Some((t[..i].trim_end().to_string(), &t[i + 1..]));
        }
    }
    None
}

/// Reads one flow node at `pos` (collection or scalar) and records children of collections.
fn flow_value(c: &[char], pos: &mut usize, base: &str, line: usize, map: &mut LineMap) {
    skip_ws(c, pos);
    match c.get(*pos) {
        Some('{') => {
            *pos += 1;
            loop {
                skip_ws(c, pos);
                match c.get(*pos) {
                    None => return,
                    Some('}') => {
                        *pos += 1;
                        return;
                    }
                    Some(',') => {
                        *pos += 1;
                        continue;
                    }
                    _ => {}
                }
                let key = flow_scalar(c, pos, true);
                let path = join(base, &key);
                map.record(&path, line);
                skip_ws(c, pos);
                if c.get(*pos) == Some(&':') {
                    *pos += 1;
                    flow_value(c, pos, &path, line, map);
                }
            }
        }
        Some('[') => {
            *pos += 1;
            let mut idx = 0;
            loop {
                skip_ws(c, pos);
                match c.get(*pos) {
                    None => return,
                    Some(']') => {
                        *pos += 1;
                        return;
                    }
                    Some(',') => {
                        *pos += 1;
                        continue;
                    }
                    _ => {}
                }
                let path = format!("{base}[{idx}]");
                idx += 1;
                map.record(&path, line);
                flow_value(c, pos, &path, line, map);
            }
        }
        _ => {
            flow_scalar(c, pos, false);
        }
    }
}

/// Reads a flow scalar; a key stops at `:` followed by a space or delimiter.
fn flow_scalar(c: &[char], pos: &mut usize, is_key: bool) -> String {
    skip_ws(c, pos);
    let mut out = String::new();
    if let Some(q) = c.get(*pos).copied().filter(|c| *c == '"' || *c == '\'') {
        *pos += 1;
        while let Some(ch) = c.get(*pos) {
            *pos += 1;
            if *ch == q {
                break;
            }
            out.push(*ch);
        }
        return out;
    }
    while let Some(ch) = c.get(*pos) {
        if matches!(ch, ',' | '}' | ']') {
            break;
        }
        if is_key && *ch == ':' {
            let next = c.get(*pos + 1);
            if next.is_none() || matches!(next, Some(' ' | ',' | '}' | ']')) {
                break;
            }
        }
        out.push(*ch);
        *pos += 1;
    }
    out.trim().to_string()
}

fn skip_ws(c: &[char], pos: &mut usize) {
    while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
        *pos += 1;
    }
}

/// Open minus closed brackets outside quotes.
fn bracket_balance(s: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None => match ch {
                '"' | '\'' => quote = Some(ch),
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ => {}
            },
        }
    }
    depth
}

/// Drops a `# comment` (a `#` at line start or after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_ws = true;
    for (i, ch) in line.char_indices() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None => {
                if ch == '#' && prev_ws {
                    return &line[..i];
                }
                if ch == '"' || ch == '\'' {
                    quote = Some(ch);
                }
            }
        }
        prev_ws = ch.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"node: ha1   # comment
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_ipaddress:
        - 192.168.3.100/24
      track: [{ probe: gateway, weight: -20 }]
probes:
  - { name: gateway, http: "http://127.0.0.1:80/dfs/healthz", interval: 500ms }
  - name: tracker
    tcp: 127.0.0.1:22122
storage:
  store_paths:
  - /data/fdfs
  - /data/fdfs2
  http:
    listen: 0.0.0.0:8888
gateway:
  cache:
    valid:
      "200 304": 12h
  weights:
    192.168.3.23:8888: 2
notes: |
  free text: with colon
  - not an item
external: []
"#;

    #[test]
    fn block_flow_and_quoted_keys_are_located() {
        let m = LineMap::build(SAMPLE);
        assert_eq!(m.exact("node"), Some(1));
        assert_eq!(m.exact("vrrp.instances[0]"), Some(4));
        assert_eq!(m.exact("vrrp.instances[0].name"), Some(4));
        assert_eq!(m.exact("vrrp.instances[0].interface"), Some(5));
        assert_eq!(m.exact("vrrp.instances[0].virtual_ipaddress[0]"), Some(7));
        assert_eq!(m.exact("vrrp.instances[0].track[0].weight"), Some(8));
        assert_eq!(m.exact("probes[0].http"), Some(10));
        assert_eq!(m.exact("probes[1].tcp"), Some(12));
        assert_eq!(m.exact("storage.store_paths[1]"), Some(16));
        assert_eq!(m.exact("storage.http.listen"), Some(18));
        assert_eq!(m.exact("gateway.cache.valid.200 304"), Some(22));
        assert_eq!(m.exact("gateway.weights.192.168.3.23:8888"), Some(24));
        assert_eq!(m.exact("external"), Some(28));
        assert_eq!(m.exact("notes.free text"), None);
        assert_eq!(m.exact("notes"), Some(25));
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(m.line_of("storage.http.nope"), Some(17));
    }

    #[test]
    fn sequences_at_the_key_column_and_null_values() {
        let m = LineMap::build(
            "probes:\n- name: a\n  tcp: x\n- name: b\nstatus:\n  listen:\nnode: x\n",
        );
        assert_eq!(m.exact("probes[0].tcp"), Some(3));
        assert_eq!(m.exact("probes[1].name"), Some(4));
        assert_eq!(m.exact("status.listen"), Some(6));
        assert_eq!(m.exact("node"), Some(7));
    }
}
