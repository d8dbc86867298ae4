//! Reads the C FastDFS captures (`tests/vectors/c-cluster/*.pcap`) into FastDFS messages.
//!
//! The listings (`*.txt`) show at most 256 bytes of a message; the pcaps hold every byte, so the
//! replay works from the pcap and uses the listing only to check this decoder (same connections,
//! same messages, in the same order). Loopback capture, Ethernet link type, IPv4, TCP: each
//! direction of a connection is reassembled by sequence number (retransmissions dropped,
//! out-of-order segments held back) and split into messages by the 10-byte header.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

/// One decoded FastDFS message.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Connection number, as in the listing (`conn#N`, counted from 1 in order of first packet).
    pub conn: usize,
    /// Sent by the side that connected.
    pub from_client: bool,
    /// Seconds since the first packet, when the message's last byte was captured.
    pub t: f64,
    /// Unix time of that packet (seconds, fractional).
    pub abs: f64,
    pub cmd: u8,
    pub status: u8,
    pub body: Vec<u8>,
    /// The length the header announced (more than `body.len()` only for a message cut short,
    /// e.g. by the receiver's `kill -9`).
    pub declared: usize,
}

/// What happened, in capture order.
#[derive(Debug, Clone)]
pub enum Event {
    Open {
        conn: usize,
    },
    Msg(Msg),
    /// FIN or RST from either side.
    Close {
        conn: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Conn {
    pub client: SocketAddrV4,
    pub server: SocketAddrV4,
}

#[derive(Debug, Default)]
pub struct Capture {
    pub conns: Vec<Conn>,
    pub events: Vec<Event>,
}

impl Capture {
    pub fn conn(&self, id: usize) -> &Conn {
        &self.conns[id - 1]
    }
    pub fn messages(&self) -> impl Iterator<Item = &Msg> {
        self.events.iter().filter_map(|e| match e {
            Event::Msg(m) => Some(m),
            _ => None,
        })
    }
}

#[derive(Default)]
struct Dir {
    next: Option<u32>,
    held: BTreeMap<u32, Vec<u8>>,
    buf: Vec<u8>,
    closed: bool,
}

impl Dir {
    fn push(&mut self, seq: u32, data: &[u8]) {
        let next = *self.next.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            self.held.insert(seq, data.to_vec());
            return;
        }
        let skip = (-ahead) as usize;
        if skip < data.len() {
            self.buf.extend_from_slice(&data[skip..]);
            self.next = Some(next.wrapping_add((data.len() - skip) as u32));
        }
        // Segments that were waiting for this one.
        while let Some((&s, _)) = self.held.iter().next() {
            let n = self.next.unwrap_or(s);
            if (s.wrapping_sub(n) as i32) > 0 {
                break;
            }
            let d = self.held.remove(&s).unwrap_or_default();
            let skip = n.wrapping_sub(s) as usize;
            if skip < d.len() {
                self.buf.extend_from_slice(&d[skip..]);
                self.next = Some(n.wrapping_add((d.len() - skip) as u32));
            }
        }
    }

    fn take_messages(&mut self, partial: bool) -> Vec<(u8, u8, Vec<u8>, usize)> {
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 10 {
                return out;
            }
            let len = u64::from_be_bytes(self.buf[..8].try_into().expect("8 bytes")) as usize;
            if self.buf.len() < 10 + len {
                if partial {
                    let body = self.buf[10..].to_vec();
                    out.push((self.buf[8], self.buf[9], body, len));
                    self.buf.clear();
                }
                return out;
            }
            let cmd = self.buf[8];
            let status = self.buf[9];
            let body = self.buf[10..10 + len].to_vec();
            self.buf.drain(..10 + len);
            out.push((cmd, status, body, len));
        }
    }
}

const SERVER_PORTS: [u16; 2] = [22122, 23000];

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes a classic pcap file (Ethernet, IPv4, TCP).
pub fn read(bytes: &[u8]) -> Capture {
    let magic = u32::from_le_bytes(bytes[..4].try_into().expect("pcap header"));
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        m => panic!("not a little-endian pcap: magic {m:#x}"),
    };
    let mut cap = Capture::default();
    let mut ids: HashMap<(SocketAddrV4, SocketAddrV4), usize> = HashMap::new();
    let mut dirs: HashMap<(usize, bool), Dir> = HashMap::new();
    let mut first: Option<f64> = None;
    let mut last = (0.0, 0.0);
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let le = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().expect("4"));
        let (sec, frac, incl) = (le(0), le(4), le(8) as usize);
        let pkt = &bytes[at + 16..at + 16 + incl];
        at += 16 + incl;
        let ts = sec as f64 + frac as f64 / if nanos { 1e9 } else { 1e6 };
        let t = ts - *first.get_or_insert(ts);
        last = (t, ts);
        if pkt.len() < 14 + 20 || be16(&pkt[12..]) != 0x0800 {
            continue;
        }
        let ip = &pkt[14..];
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let total = be16(&ip[2..]) as usize;
        if ip[9] != 6 {
            continue;
        }
        let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let tcp = &ip[ihl..total.min(ip.len())];
        let (sport, dport) = (be16(tcp), be16(&tcp[2..]));
        let seq = be32(&tcp[4..]);
        let off = (tcp[12] >> 4) as usize * 4;
        let flags = tcp[13];
        let (syn, ack, fin, rst) = (
            flags & 2 != 0,
            flags & 16 != 0,
            flags & 1 != 0,
            flags & 4 != 0,
        );
        let payload = &tcp[off..];
        let src = SocketAddrV4::new(src_ip, sport);
        let dst = SocketAddrV4::new(dst_ip, dport);
        // Which side connected: the SYN's sender, or (connection open before the capture) the
        // side not on a server port.
        let key_known = ids.get(&(src, dst)).map(|&id| (id, true));
        let key_known = key_known.or_else(|| ids.get(&(dst, src)).map(|&id| (id, false)));
        let (id, from_client) = match key_known {
            Some(k)
                if !(syn && !ack && k.1 && dirs.get(&(k.0, true)).is_some_and(|d| d.closed)) =>
            {
                k
            }
            _ => {
                let client_is_src = if syn {
                    !ack
                } else {
                    !SERVER_PORTS.contains(&sport) || SERVER_PORTS.contains(&dport)
                };
                let (c, s) = if client_is_src {
                    (src, dst)
                } else {
                    (dst, src)
                };
                let id = cap.conns.len() + 1;
                cap.conns.push(Conn {
                    client: c,
                    server: s,
                });
                ids.insert((c, s), id);
                cap.events.push(Event::Open { conn: id });
                (id, client_is_src)
            }
        };
        let dir = dirs.entry((id, from_client)).or_default();
        if syn {
            dir.next = Some(seq.wrapping_add(1));
        }
        let closing = (fin || rst) && !dir.closed;
        if !payload.is_empty() || closing {
            if !payload.is_empty() {
                dir.push(seq, payload);
            }
            for (cmd, status, body, declared) in dir.take_messages(closing) {
                cap.events.push(Event::Msg(Msg {
                    conn: id,
                    from_client,
                    t,
                    abs: ts,
                    cmd,
                    status,
                    body,
                    declared,
                }));
            }
        }
        if closing {
            dir.closed = true;
            cap.events.push(Event::Close { conn: id });
        }
    }
    // Messages cut short by the end of the capture or a killed peer.
    let mut left: Vec<_> = dirs.into_iter().collect();
    left.sort_by_key(|(k, _)| *k);
    let (t, abs) = last;
    for ((id, from_client), mut dir) in left {
        for (cmd, status, body, declared) in dir.take_messages(true) {
            cap.events.push(Event::Msg(Msg {
                conn: id,
                from_client,
                t,
                abs,
                cmd,
                status,
                body,
                declared,
            }));
        }
    }
    cap
}

/// One message as the listing shows it. For a response, `cmd` is the request's command (the
/// listing's "to N").
#[derive(Debug, Clone, Default)]
pub struct Listed {
    /// The listing's message number (`#N`).
    pub num: usize,
    pub conn: usize,
    pub from_client: bool,
    pub cmd: u8,
    pub status: u8,
    pub len: usize,
    /// The decoded fields: (offset, width, name).
    pub fields: Vec<(usize, usize, String)>,
}

/// A field line: `off 17  len 8  storage_port   23000` -> (17, 8, "storage_port").
fn field_line(l: &str) -> Option<(usize, usize, String)> {
    let rest = l.strip_prefix("off")?.trim_start();
    let (off, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start().strip_prefix("len")?.trim_start();
    let (len, rest) = rest.split_once(' ')?;
    let rest = rest.trim_start();
    let name = rest.split("  ").next()?.trim().to_string();
    Some((off.parse().ok()?, len.parse().ok()?, name))
}

/// Parses the message headers of a listing (`#N ... conn#M A addr -> B addr` then
/// `REQUEST cmd=..` / `RESPONSE cmd=100 to ..`). The client of a connection is the side named
/// first on its OPEN line or, for a connection open before the capture, in the connection table.
pub fn read_listing(text: &str) -> Vec<Listed> {
    let mut clients: HashMap<usize, String> = HashMap::new();
    for line in text.lines() {
        // Connection table: "conn#12  T2 127.0.0.22:38280  -> T1 127.0.0.21:22122 ..."
        if let Some(rest) = line.strip_prefix("conn#") {
            let mut w = rest.split_whitespace();
            if let (Some(n), Some(_), Some(addr)) = (w.next(), w.next(), w.next()) {
                if let Ok(n) = n.parse() {
                    clients.entry(n).or_insert_with(|| addr.to_string());
                }
            }
        }
    }
    let mut out: Vec<Listed> = Vec::new();
    let mut pending: Option<(usize, usize, bool)> = None;
    let mut in_body = false;
    for line in text.lines() {
        if line.starts_with('#') {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() >= 6 && w[3].starts_with("conn#") {
                let num: usize = w[0][1..].parse().unwrap_or(0);
                let conn: usize = w[3][5..].parse().unwrap_or(0);
                let from = w[5];
                pending = Some((num, conn, clients.get(&conn).is_some_and(|c| c == from)));
            }
            in_body = false;
            continue;
        }
        let l = line.trim_start();
        if in_body {
            if let Some(f) = field_line(l) {
                if let Some(last) = out.last_mut() {
                    last.fields.push(f);
                }
            }
            continue;
        }
        let Some((num, conn, from_client)) = pending else {
            continue;
        };
        let num_after = |key: &str| -> Option<usize> {
            let i = l.find(key)? + key.len();
            l[i..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let base = Listed {
            num,
            conn,
            from_client,
            ..Listed::default()
        };
        if l.starts_with("REQUEST") {
            let (Some(cmd), Some(len)) = (num_after("cmd="), num_after("body_len=")) else {
                continue;
            };
            out.push(Listed {
                cmd: cmd as u8,
                len,
                ..base
            });
        } else if l.starts_with("RESPONSE") {
            let (Some(cmd), Some(st), Some(len)) = (
                num_after(" to "),
                num_after("status="),
                num_after("body_len="),
            ) else {
                continue;
            };
            out.push(Listed {
                cmd: cmd as u8,
                status: st as u8,
                len,
                ..base
            });
        } else {
            continue;
        }
        pending = None;
        in_body = true;
    }
    out
}
