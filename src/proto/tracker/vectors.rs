//! A small reader for `tests/vectors/fastdfs-vectors.txt`: blocks of captured messages, as bytes.
use crate::proto::{Header, HEADER_LEN};
use std::collections::BTreeMap;

/// One captured message: who sent it and its complete bytes (header + body).
pub(crate) struct Msg {
    pub(crate) to_tracker: bool,
    pub(crate) raw: Vec<u8>,
}

impl Msg {
    pub(crate) fn header(&self) -> Header {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.raw[..HEADER_LEN]);
        Header::decode(&h).expect("captured header")
    }
    pub(crate) fn body(&self) -> &[u8] {
        &self.raw[HEADER_LEN..]
    }
    pub(crate) fn cmd(&self) -> u8 {
        self.header().cmd
    }
}

pub(crate) fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// The FastDFS 6.16.1 captures, kept in the repository (tests/vectors/) so a clone tests alone.
pub(crate) fn vectors_text() -> String {
    const PATH: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fastdfs-vectors.txt"
    );
    std::fs::read_to_string(PATH).unwrap_or_else(|e| panic!("{PATH}: {e}"))
}

/// Block number -> its messages in capture order.
pub(crate) fn blocks() -> BTreeMap<u32, Vec<Msg>> {
    let text = vectors_text();
    let mut out: BTreeMap<u32, Vec<Msg>> = BTreeMap::new();
    let mut current: Option<u32> = None;
    let mut to_tracker = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("### [") {
            let n = rest.split(']').next().and_then(|n| n.parse().ok());
            current = n;
            if let Some(n) = n {
                out.entry(n).or_default();
            }
        } else if line.starts_with("  ") && !line.starts_with("   ") && line.contains(" -> ") {
            // Direction line: `  client(...) -> tracker:22122  cmd=...`.
            let (_, dest) = line.split_once(" -> ").expect("arrow");
            to_tracker = dest.starts_with("tracker") || dest.starts_with("storage");
            to_tracker = to_tracker && !line.trim_start().starts_with("tracker");
        } else if let Some(h) = line.trim_start().strip_prefix("HEX ") {
            if let Some(n) = current {
                out.entry(n).or_default().push(Msg {
                    to_tracker,
                    raw: hex(h.trim()),
                });
            }
        }
    }
    out
}

pub(crate) fn block(all: &BTreeMap<u32, Vec<Msg>>, n: u32) -> &Vec<Msg> {
    let b = all.get(&n).unwrap_or_else(|| panic!("block [{n}] missing"));
    assert!(!b.is_empty(), "block [{n}] has no messages");
    b
}

/// Re-frames `body` as `msg`'s command/status and compares with the captured bytes.
pub(crate) fn assert_same(msg: &Msg, body: Vec<u8>) {
    let h = msg.header();
    let mut framed = Header::new(h.cmd, h.status, body.len() as u64)
        .encode()
        .to_vec();
    framed.extend_from_slice(&body);
    assert_eq!(hex_of(&framed), hex_of(&msg.raw), "cmd {}", h.cmd);
}

pub(crate) fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
