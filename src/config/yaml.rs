//! YAML text -> a tree of located nodes -> typed values.
//!
//! Owns the YAML side of ha.yaml. serde-saphyr (a maintained, fuzzed, panic-free parser with
//! budgets) reads the text once into a [`Node`] tree in which every key, item and value carries
//! its `line:column`; the typed [`super::Config`] is then deserialized from that tree. Keeping the
//! tree (rather than deserializing the text straight into `Config`) is what lets `check` report
//! every error and not only the first: a bad value is replaced by a neutral "poisoned" node and
//! the tree deserialized again (see `super::parse_tree`), and a key path found by validation is
//! located by walking the same tree.
//!
//! Bounded by construction: the parser's budget caps nesting, node and event counts and scalar
//! bytes, so no input can make it run long or grow memory without bound.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use std::fmt;

/// Largest config text read: a real ha.yaml is a few KiB.
pub const MAX_TEXT: usize = 1 << 20;

/// A 1-based line and column (in characters) in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: Pos,
    pub kind: Kind,
    /// Source text of a plain non-string scalar (`0755`, `1_000`, `true`), so a string field
    /// written as a number keeps the operator's spelling.
    raw: Option<String>,
    /// Byte range of the node in the text (for `raw`).
    span: Option<(usize, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; the key node is located at the key.
    Map(Vec<(Node, Node)>),
    /// A value already reported as wrong: deserializes as the neutral value of whatever type is
    /// asked for (0, "", empty, None), so the rest of the file can still be checked.
    Poisoned,
}

/// A syntax error (or budget breach) with its position when the parser gave one.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub at: Option<Pos>,
    pub message: String,
}

/// Parses `text` into a located tree. Never panics, never runs unbounded.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.len() > MAX_TEXT {
        return Err(SyntaxError {
            at: None,
            message: format!(
                "the file is {} bytes; a config is at most {MAX_TEXT}",
                text.len()
            ),
        });
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 32,
            max_nodes: 50_000,
            max_events: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: 1,
            max_total_scalar_bytes: MAX_TEXT,
        },
        // YAML 1.2 booleans only: `yes`/`no` stay strings (as with serde_yaml before).
        strict_booleans: true,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<serde_saphyr::Spanned<Node>>(text, options) {
        Ok(root) => {
            let mut node = located(root);
            fill_raw(&mut node, text);
            Ok(node)
        }
        Err(e) => Err(SyntaxError {
            at: e.location().filter(|l| l.line() > 0).map(|l| Pos {
                line: l.line() as usize,
                column: l.column() as usize,
            }),
            message: plain_message(&e),
        }),
    }
}

/// The parser's message without its own "at line X, column Y" suffix (we print the position
/// ourselves, as `file:line:column`) and without a snippet.
fn plain_message(e: &serde_saphyr::Error) -> String {
    struct NoLocation;
    impl serde_saphyr::Localizer for NoLocation {
        fn attach_location<'a>(
            &self,
            base: std::borrow::Cow<'a, str>,
            _loc: serde_saphyr::Location,
        ) -> std::borrow::Cow<'a, str> {
            base
        }
    }
    struct Plain;
    impl serde_saphyr::MessageFormatter for Plain {
        fn localizer(&self) -> &dyn serde_saphyr::Localizer {
            &NoLocation
        }
        fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
            serde_saphyr::MessageFormatter::format_message(&serde_saphyr::UserMessageFormatter, err)
        }
    }
    let options = serde_saphyr::render_options! {
        formatter: &Plain,
        snippets: serde_saphyr::SnippetMode::Off,
    };
    e.render_with_options(options)
}

fn located(s: serde_saphyr::Spanned<Node>) -> Node {
    let mut n = s.value;
    let l = s.referenced;
    n.at = Pos {
        line: l.line() as usize,
        column: l.column() as usize,
    };
    let span = l.span();
    n.span = span
        .byte_offset()
        .zip(span.byte_len())
        .map(|(o, len)| (o as usize, len as usize));
    n
}

fn fill_raw(n: &mut Node, text: &str) {
    match &mut n.kind {
        Kind::Bool(_) | Kind::Int(_) | Kind::UInt(_) | Kind::Float(_) => {
            n.raw = n
                .span
                .and_then(|(o, len)| text.get(o..o.checked_add(len)?))
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
        Kind::Seq(items) => items.iter_mut().for_each(|i| fill_raw(i, text)),
        Kind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            fill_raw(k, text);
            fill_raw(v, text);
        }),
        Kind::Null | Kind::Str(_) | Kind::Poisoned => {}
    }
}

impl Node {
    fn new(kind: Kind) -> Node {
        Node {
            at: Pos::default(),
            kind,
            raw: None,
            span: None,
        }
    }

    /// A string node (a key added for a missing field).
    pub fn string(s: &str, at: Pos) -> Node {
        Node {
            at,
            ..Node::new(Kind::Str(s.to_string()))
        }
    }

    pub fn poisoned(at: Pos) -> Node {
        Node {
            at,
            ..Node::new(Kind::Poisoned)
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    /// The text of a scalar as a string field would read it.
    fn scalar_text(&self) -> Option<String> {
        Some(match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Bool(b) => self.raw.clone().unwrap_or_else(|| b.to_string()),
            Kind::Int(i) => self.raw.clone().unwrap_or_else(|| i.to_string()),
            Kind::UInt(u) => self.raw.clone().unwrap_or_else(|| u.to_string()),
            Kind::Float(f) => self.raw.clone().unwrap_or_else(|| f.to_string()),
            _ => return None,
        })
    }

    /// Key text of a map entry (scalar keys only).
    pub fn key_text(&self) -> Option<String> {
        self.scalar_text()
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match &self.kind {
            Kind::Null | Kind::Poisoned => Unexpected::Unit,
            Kind::Bool(b) => Unexpected::Bool(*b),
            Kind::Int(i) => Unexpected::Signed(*i),
            Kind::UInt(u) => Unexpected::Unsigned(*u),
            Kind::Float(f) => Unexpected::Float(*f),
            Kind::Str(s) => Unexpected::Str(s),
            Kind::Seq(_) => Unexpected::Seq,
            Kind::Map(_) => Unexpected::Map,
        }
    }

    /// Position of the node a key path (`vrrp.instances[0].priority`) names: the key of a map
    /// entry, the item of a sequence. A path that goes further than the tree (a default value,
    /// a missing key) gets its deepest existing ancestor's position.
    pub fn locate(&self, path: &str) -> Pos {
        let mut node = self;
        let mut at = self.at;
        let mut rest = path;
        loop {
            rest = rest.strip_prefix('.').unwrap_or(rest);
            if rest.is_empty() {
                return at;
            }
            let next = if let Some(r) = rest.strip_prefix('[') {
                let Some((idx, after)) = r.split_once(']') else {
                    return at;
                };
                let item = match (&node.kind, idx.parse::<usize>()) {
                    (Kind::Seq(items), Ok(i)) => items.get(i),
                    _ => None,
                };
                item.map(|n| (n.at, n, after))
            } else {
                // Keys may contain dots (`weights.10.0.0.1:80`): take the longest key that
                // matches up to a separator.
                let Kind::Map(entries) = &node.kind else {
                    return at;
                };
                entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let key = k.key_text()?;
                        let after = rest.strip_prefix(key.as_str())?;
                        (after.is_empty() || after.starts_with(['.', '['])).then_some((
                            key.len(),
                            k.at,
                            v,
                            after,
                        ))
                    })
                    .max_by_key(|(len, ..)| *len)
                    .map(|(_, at, v, after)| (at, v, after))
            };
            match next {
                Some((pos, n, after)) => {
                    at = pos;
                    node = n;
                    rest = after;
                }
                None => return at,
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Text -> tree (through serde-saphyr, every node wrapped in `Spanned` for its position)

impl<'de> de::Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::new(Kind::Null))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::new(Kind::Null))
            }
            fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                de::Deserialize::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::new(Kind::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::new(Kind::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::new(Kind::UInt(v)))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
                i64::try_from(v)
                    .map(Kind::Int)
                    .map(Node::new)
                    .map_err(|_| E::custom(format!("integer {v} is out of range")))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
                u64::try_from(v)
                    .map(Kind::UInt)
                    .map(Node::new)
                    .map_err(|_| E::custom(format!("integer {v} is out of range")))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::new(Kind::Float(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::new(Kind::Str(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::new(Kind::Str(v)))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
                Err(E::custom("binary values are not supported"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element::<serde_saphyr::Spanned<Node>>()? {
                    items.push(located(item));
                }
                Ok(Node::new(Kind::Seq(items)))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = a.next_key::<serde_saphyr::Spanned<Node>>()? {
                    let v = a.next_value::<serde_saphyr::Spanned<Node>>()?;
                    entries.push((located(k), located(v)));
                }
                Ok(Node::new(Kind::Map(entries)))
            }
        }
        d.deserialize_any(V)
    }
}

// ------------------------------------------------------------------------------------------------
// Tree -> typed values

pub type Error = de::value::Error;

impl<'a> IntoDeserializer<'a, Error> for &'a Node {
    type Deserializer = &'a Node;
    fn into_deserializer(self) -> &'a Node {
        self
    }
}

fn visit_seq<'a, V: Visitor<'a>>(items: &'a [Node], visitor: V) -> Result<V::Value, Error> {
    let mut seq = SeqDeserializer::new(items.iter());
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

fn visit_map<'a, V: Visitor<'a>>(
    entries: &'a [(Node, Node)],
    visitor: V,
) -> Result<V::Value, Error> {
    let mut map = MapDeserializer::new(entries.iter().map(|(k, v)| (k, v)));
    let value = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(value)
}

/// Fields of a poisoned struct: each one poisoned too.
struct PoisonedFields(&'static [&'static str]);

impl<'de> de::MapAccess<'de> for PoisonedFields {
    type Error = Error;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.0.split_first() {
            None => Ok(None),
            Some((first, rest)) => {
                self.0 = rest;
                seed.deserialize(first.into_deserializer()).map(Some)
            }
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&POISON)
    }
}

static POISON: Node = Node {
    at: Pos { line: 0, column: 0 },
    kind: Kind::Poisoned,
    raw: None,
    span: None,
};

/// A poisoned enum takes its first variant with poisoned content.
struct PoisonedEnum(&'static str);

impl<'de> de::EnumAccess<'de> for PoisonedEnum {
    type Error = Error;
    type Variant = &'static Node;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, &'static Node), Error> {
        let v = seed.deserialize(de::value::StrDeserializer::<Error>::new(self.0))?;
        Ok((v, &POISON))
    }
}

impl<'de> de::VariantAccess<'de> for &'static Node {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        visit_seq(&[], visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(PoisonedFields(fields))
    }
}

impl<'de> de::Deserializer<'de> for &'de Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => visitor.visit_i64(*i),
            Kind::UInt(u) => visitor.visit_u64(*u),
            Kind::Float(f) => visitor.visit_f64(*f),
            Kind::Str(s) => visitor.visit_borrowed_str(s),
            Kind::Seq(items) => visit_seq(items, visitor),
            Kind::Map(entries) => visit_map(entries, visitor),
            // Durations, sizes and weights accept a number; other types fail and the error
            // moves the poison one level up.
            Kind::Poisoned => visitor.visit_u64(0),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Null | Kind::Poisoned => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.kind {
            Kind::Str(s) => visitor.visit_borrowed_str(s),
            Kind::Poisoned => visitor.visit_borrowed_str(""),
            _ => match self.scalar_text() {
                Some(t) => visitor.visit_string(t),
                None => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
            },
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Poisoned => visitor.visit_bool(false),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Null | Kind::Poisoned => visitor.visit_unit(),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Poisoned => visit_seq(&[], visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Poisoned => visit_map(&[], visitor),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.kind {
            Kind::Poisoned => visitor.visit_map(PoisonedFields(fields)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.kind {
            Kind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Kind::Poisoned => match variants.first() {
                Some(v) => visitor.visit_enum(PoisonedEnum(v)),
                None => Err(de::Error::custom("an enum without variants")),
            },
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"node: lb1   # comment
vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_ipaddress:
        - 192.168.3.100/24
      track: [{ probe: gw, weight: -20 }]
probes:
  - { name: gw, http: "http://127.0.0.1:80/" }
  - name: t
    tcp: 127.0.0.1:22122
gateway:
  cache:
    valid:
      "200 304": 12h
  weights:
    192.168.3.23:8888: 2
notes: |
  free text: with colon
external: []
"#;

    #[test]
    fn keys_and_items_are_located_by_line_and_column() {
        let t = parse(SAMPLE).unwrap();
        let at = |p: &str| {
            let pos = t.locate(p);
            (pos.line, pos.column)
        };
        assert_eq!(at("node"), (1, 1));
        assert_eq!(at("vrrp.instances[0]"), (4, 7));
        assert_eq!(at("vrrp.instances[0].interface"), (5, 7));
        assert_eq!(at("vrrp.instances[0].virtual_ipaddress[0]"), (7, 11));
        assert_eq!(at("vrrp.instances[0].track[0].weight"), (8, 28));
        assert_eq!(at("probes[0].http"), (10, 17));
        assert_eq!(at("probes[1].tcp"), (12, 5));
        assert_eq!(at("gateway.cache.valid.200 304"), (16, 7));
        assert_eq!(at("gateway.weights.192.168.3.23:8888"), (18, 5));
        assert_eq!(at("notes"), (19, 1));
        assert_eq!(at("external"), (21, 1));
        // Paths beyond the tree fall back to the nearest ancestor.
        assert_eq!(at("gateway.cache.nope"), (14, 3));
        assert_eq!(at("probes[7].tcp"), (9, 1));
    }

    #[test]
    fn the_inputs_that_hung_the_old_scanner_answer_with_a_position() {
        for (text, line) in [("a: {[x]: 1}", 1), ("trackers: [\"127.0.0.1:22122\"}\n", 1)] {
            match parse(text) {
                Err(e) => assert_eq!(e.at.map(|p| p.line), Some(line), "{text}: {e:?}"),
                // A composite key parses; typing it is what fails (see config tests).
                Ok(t) => assert!(matches!(t.kind, Kind::Map(_)), "{text}"),
            }
        }
    }

    #[test]
    fn numbers_keep_their_spelling_as_strings() {
        let t = parse("a: 0755\nb: 1_000\nc: true\n").unwrap();
        let Kind::Map(e) = &t.kind else {
            panic!("{t:?}")
        };
        let texts: Vec<_> = e.iter().map(|(_, v)| v.scalar_text().unwrap()).collect();
        assert_eq!(texts, ["0755", "1_000", "true"]);
    }
}
