//! The annotated ha.yaml that `fdfs-ha import` writes: a small YAML tree whose entries carry the
//! source line they came from, rendered in block style with those lines as comments.
//!
//! Written by hand rather than through serde so every key keeps its comment and its order; every
//! string is quoted unless it is plainly safe, so any YAML parser reads it the same way.

use super::{Src, Warning};
use std::fmt::Write as _;

/// One node of the output tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Already rendered as YAML (see [`q`], [`num`], [`boolean`]).
    Scalar(String),
    Map(Vec<Field>),
    Seq(Vec<Field>),
}

/// A key (empty in sequences) with its value and the comment shown next to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: String,
    pub node: Node,
    pub note: String,
}

impl Field {
    pub fn new(key: &str, node: Node, note: impl Into<String>) -> Field {
        Field {
            key: key.to_string(),
            node,
            note: note.into(),
        }
    }
    /// A field whose comment names the line it came from (and an optional remark).
    pub fn at(key: &str, node: Node, src: &Src, remark: &str) -> Field {
        let note = if remark.is_empty() {
            src.to_string()
        } else {
            format!("{src}: {remark}")
        };
        Field::new(key, node, note)
    }
    pub fn item(node: Node, note: impl Into<String>) -> Field {
        Field::new("", node, note)
    }
}

/// A map being built: fields in insertion order; setting a key again replaces it in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapB {
    pub fields: Vec<Field>,
}

impl MapB {
    pub fn set(&mut self, f: Field) {
        match self.fields.iter_mut().find(|x| x.key == f.key) {
            Some(old) => *old = f,
            None => self.fields.push(f),
        }
    }
    pub fn get(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// The sub-map under `key`, created (empty, no comment) when missing.
    pub fn map(&mut self, key: &str) -> &mut Vec<Field> {
        let i = match self.fields.iter().position(|f| f.key == key) {
            Some(i) => i,
            None => {
                self.fields.push(Field::new(key, Node::Map(Vec::new()), ""));
                self.fields.len() - 1
            }
        };
        let f = &mut self.fields[i];
        if let Node::Scalar(_) = f.node {
            f.node = Node::Map(Vec::new());
        }
        match &mut f.node {
            Node::Map(v) | Node::Seq(v) => v,
            Node::Scalar(_) => unreachable!("replaced by a map above"),
        }
    }
    pub fn into_node(self) -> Node {
        Node::Map(self.fields)
    }
}

/// A double-quoted YAML string (always safe).
pub fn q(s: &str) -> Node {
    Node::Scalar(quote(s))
}

/// A string left plain when it cannot be misread (identifiers, paths), quoted otherwise.
pub fn s(v: &str) -> Node {
    let plain = !v.is_empty()
        && v.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        Node::Scalar(v.to_string())
    } else {
        q(v)
    }
}

pub fn num(n: impl std::fmt::Display) -> Node {
    Node::Scalar(n.to_string())
}

pub fn boolean(b: bool) -> Node {
    Node::Scalar(if b { "true" } else { "false" }.into())
}

/// A list of plain/quoted strings.
pub fn str_list<'a>(items: impl IntoIterator<Item = (&'a str, String)>) -> Node {
    Node::Seq(
        items
            .into_iter()
            .map(|(v, note)| Field::item(s(v), note))
            .collect(),
    )
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Comments must stay on one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Renders the document: a header (sources, then every warning), then the tree.
pub fn render(root: &[Field], sources: &[String], warnings: &[Warning]) -> String {
    let mut out = String::new();
    out.push_str(
        "# ha.yaml written by `fdfs-ha import`; check it with `fdfs-ha check -c <file>`.\n",
    );
    out.push_str("# Each key's comment names the file:line it came from. Imported from:\n");
    for s in sources {
        let _ = writeln!(out, "#   {}", one_line(s));
    }
    if warnings.is_empty() {
        out.push_str("# No warnings.\n");
    } else {
        let _ = writeln!(
            out,
            "# {} warning{} (also printed on stderr): keys not mapped, values that change \
             behaviour, quirks of the original programs.",
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
        for w in warnings {
            let _ = writeln!(out, "# {}", one_line(&w.to_string()));
        }
    }
    out.push('\n');
    render_map(root, 0, &mut out);
    out
}

fn line(out: &mut String, text: &str, note: &str) {
    out.push_str(text);
    if !note.is_empty() {
        let width = text.chars().count();
        let pad = if width < 40 { 40 - width } else { 2 };
        for _ in 0..pad {
            out.push(' ');
        }
        out.push_str("# ");
        out.push_str(&one_line(note));
    }
    out.push('\n');
}

fn render_map(fields: &[Field], indent: usize, out: &mut String) {
    let ind = " ".repeat(indent);
    for f in fields {
        let key = render_key(&f.key);
        match &f.node {
            Node::Scalar(v) => line(out, &format!("{ind}{key}: {v}"), &f.note),
            Node::Map(m) if m.is_empty() => line(out, &format!("{ind}{key}: {{}}"), &f.note),
            Node::Seq(m) if m.is_empty() => line(out, &format!("{ind}{key}: []"), &f.note),
            Node::Map(m) => {
                line(out, &format!("{ind}{key}:"), &f.note);
                render_map(m, indent + 2, out);
            }
            Node::Seq(items) => {
                line(out, &format!("{ind}{key}:"), &f.note);
                for it in items {
                    render_item(it, indent + 2, out);
                }
            }
        }
    }
}

fn render_item(it: &Field, indent: usize, out: &mut String) {
    let ind = " ".repeat(indent);
    match &it.node {
        Node::Scalar(v) => line(out, &format!("{ind}- {v}"), &it.note),
        Node::Map(m) if !m.is_empty() => {
            if !it.note.is_empty() {
                let _ = writeln!(out, "{ind}# {}", one_line(&it.note));
            }
            let mut sub = String::new();
            render_map(m, indent + 2, &mut sub);
            // The first key goes on the dash line.
            let body = &sub[indent + 2..];
            out.push_str(&ind);
            out.push_str("- ");
            out.push_str(body);
        }
        Node::Map(_) => line(out, &format!("{ind}- {{}}"), &it.note),
        Node::Seq(_) => line(out, &format!("{ind}- []"), &it.note),
    }
}

fn render_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    {
        k.to_string()
    } else {
        quote(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_maps_and_lists_with_comments() {
        let src = Src {
            file: "k.conf".into(),
            line: 3,
        };
        let mut root = MapB::default();
        root.set(Field::at("node", s("master"), &src, ""));
        let inst = vec![
            Field::at("name", s("VI_1"), &src, ""),
            Field::new("priority", num(100), "k.conf:15"),
        ];
        root.set(Field::new(
            "vrrp",
            Node::Map(vec![Field::new(
                "instances",
                Node::Seq(vec![Field::item(Node::Map(inst), "")]),
                "",
            )]),
            "",
        ));
        root.set(Field::new(
            "valid",
            Node::Map(vec![Field::new("200 304", s("12h"), "")]),
            "",
        ));
        let text = render(&root.fields, &["k.conf".into()], &[]);
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(v["node"].as_str(), Some("master"));
        assert_eq!(v["vrrp"]["instances"][0]["name"].as_str(), Some("VI_1"));
        assert_eq!(v["vrrp"]["instances"][0]["priority"].as_u64(), Some(100));
        assert_eq!(v["valid"]["200 304"].as_str(), Some("12h"));
        assert!(text.contains("# k.conf:3"), "{text}");
    }

    #[test]
    fn strings_that_could_be_misread_are_quoted() {
        assert_eq!(s("true"), Node::Scalar("\"true\"".into()));
        assert_eq!(s("0.0.0.0:80"), Node::Scalar("\"0.0.0.0:80\"".into()));
        assert_eq!(s("/data/x"), Node::Scalar("/data/x".into()));
        assert_eq!(q("a\"b"), Node::Scalar("\"a\\\"b\"".into()));
    }
}
