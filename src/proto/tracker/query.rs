//! Client queries: where to upload (QUERY_STORE_*), where to read or update a file
//! (QUERY_FETCH_* / QUERY_UPDATE).

use super::{bad_len, invalid, port_from, read_group, IP_SIZES};
use crate::proto::fields::{fixed_str, put_fixed, put_u64, Reader};
use crate::proto::{ProtoError, GROUP_NAME_LEN};

/// Body of QUERY_STORE_WITH_GROUP_* / SERVER_LIST_ONE_GROUP: `group 16`.
pub fn encode_group(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GROUP_NAME_LEN);
    put_fixed(&mut out, group.as_bytes(), GROUP_NAME_LEN);
    out
}

pub fn decode_group(body: &[u8]) -> Result<String, ProtoError> {
    let mut r = Reader::new(body);
    let g = read_group(&mut r, GROUP_NAME_LEN)?;
    r.expect_end()?;
    Ok(g)
}

/// Body of QUERY_FETCH_ONE / QUERY_FETCH_ALL / QUERY_UPDATE: `group 16, remote filename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileQuery {
    pub group: String,
    pub filename: String,
}

impl FileQuery {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        out.extend_from_slice(self.filename.as_bytes());
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let rest = r.rest();
        if rest.is_empty() || rest.len() > 256 {
            return Err(invalid(
                "filename",
                format!("length {} not in 1..=256", rest.len()),
            ));
        }
        let filename = std::str::from_utf8(rest)
            .map_err(|_| invalid("filename", "not UTF-8"))?
            .to_string();
        Ok(FileQuery { group, filename })
    }
}

/// A storage address as clients receive it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageAddr {
    pub ip: String,
    pub port: u16,
}

fn put_addr(out: &mut Vec<u8>, a: &StorageAddr, ip_size: usize) {
    put_fixed(out, a.ip.as_bytes(), ip_size - 1);
    put_u64(out, a.port as u64);
}

fn read_addr(r: &mut Reader<'_>, ip_size: usize) -> Result<StorageAddr, ProtoError> {
    let raw = r.bytes(ip_size - 1)?;
    let ip = std::str::from_utf8(fixed_str(raw))
        .map_err(|_| invalid("ip", "not UTF-8"))?
        .to_string();
    let port = port_from(r.i64()?, "port")?;
    Ok(StorageAddr { ip, port })
}

/// Reading an IP field of the wrong width leaves text after the NUL padding or a non-address;
/// used to choose between the 16- and 46-byte layouts when a length fits both.
pub(super) fn plausible_ip(ip: &str) -> bool {
    !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_ok()
}

/// QUERY_STORE_*_ONE reply: where to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTarget {
    pub group: String,
    pub addr: StorageAddr,
    pub store_path_index: u8,
}

impl StoreTarget {
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        put_addr(&mut out, &self.addr, ip_size);
        out.push(self.store_path_index);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let ip_size = IP_SIZES
            .into_iter()
            .find(|s| body.len() == GROUP_NAME_LEN + s - 1 + 8 + 1)
            .ok_or_else(|| bad_len(body.len(), "40 or 70"))?;
        let mut r = Reader::new(body);
        let group = read_group(&mut r, GROUP_NAME_LEN)?;
        let addr = read_addr(&mut r, ip_size)?;
        let store_path_index = r.u8()?;
        Ok(StoreTarget {
            group,
            addr,
            store_path_index,
        })
    }
}

/// QUERY_STORE_*_ALL reply: `group 16, n x (ip, port 8), store_path_index 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTargets {
    pub group: String,
    pub addrs: Vec<StorageAddr>,
    pub store_path_index: u8,
}

impl StoreTargets {
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        for a in &self.addrs {
            put_addr(&mut out, a, ip_size);
        }
        out.push(self.store_path_index);
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let inner = body
            .len()
            .checked_sub(GROUP_NAME_LEN + 1)
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_len(body.len(), "group + n x (ip, port) + 1"))?;
        let mut last_err = bad_len(body.len(), "group + n x (ip, port) + 1");
        for ip_size in IP_SIZES {
            let rec = ip_size - 1 + 8;
            if inner % rec != 0 {
                continue;
            }
            let attempt = (|| {
                let mut r = Reader::new(body);
                let group = read_group(&mut r, GROUP_NAME_LEN)?;
                let mut addrs = Vec::new();
                for _ in 0..inner / rec {
                    let a = read_addr(&mut r, ip_size)?;
                    if !plausible_ip(&a.ip) {
                        return Err(invalid("ip", format!("{:?}", a.ip)));
                    }
                    addrs.push(a);
                }
                let store_path_index = r.u8()?;
                Ok(StoreTargets {
                    group,
                    addrs,
                    store_path_index,
                })
            })();
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

/// QUERY_FETCH_ONE / QUERY_UPDATE reply (`group 16, ip, port 8`, 39 or 69 bytes) and
/// QUERY_FETCH_ALL reply (`group 16, n x (ip, port 8)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTargets {
    pub group: String,
    pub addrs: Vec<StorageAddr>,
}

impl FetchTargets {
    pub fn encode(&self, ip_size: usize) -> Vec<u8> {
        let mut out = encode_group(&self.group);
        for a in &self.addrs {
            put_addr(&mut out, a, ip_size);
        }
        out
    }

    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let inner = body
            .len()
            .checked_sub(GROUP_NAME_LEN)
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_len(body.len(), "group + n x (ip, port)"))?;
        let mut last_err = bad_len(body.len(), "group + n x (ip, port)");
        for ip_size in IP_SIZES {
            let rec = ip_size - 1 + 8;
            if inner % rec != 0 {
                continue;
            }
            let attempt = (|| {
                let mut r = Reader::new(body);
                let group = read_group(&mut r, GROUP_NAME_LEN)?;
                let mut addrs = Vec::new();
                for _ in 0..inner / rec {
                    let a = read_addr(&mut r, ip_size)?;
                    if !plausible_ip(&a.ip) {
                        return Err(invalid("ip", format!("{:?}", a.ip)));
                    }
                    addrs.push(a);
                }
                Ok(FetchTargets { group, addrs })
            })();
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}
