//! FastDFS file IDs: `group1/M00/01/FE/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt`.
//!
//! ```text
//!  <group>/M<store path, 2 hex>/<dir1, 2 hex>/<dir2, 2 hex>/<27 base64 chars><suffix>
//!  base64 (A-Z a-z 0-9 - _, no padding) of 20 bytes:
//!   0      4          8                      16       20
//!  +------+----------+----------------------+--------+
//!  |source| created  | size field           | crc32  |
//!  |LE u32| BE i32   | BE i64 (flags + rand)| BE u32 |
//!  +------+----------+----------------------+--------+
//!  suffix: random digits padding the extension to 6 chars, then `.ext` (7 chars in all);
//!  slave files: master name without its extension + prefix + `.ext`.
//! ```
//! `source` is a numeric storage id (1 .. 2^24-1) or the IPv4 octets in order. The size field of a
//! normal file < 4 GiB is `(0x80000000 | rand23) << 32 | size`; appender files set bit 58, trunk
//! files bit 59. This module parses and builds names; it never touches the disk.

use super::ProtoError;
use std::net::Ipv4Addr;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Length of the base64 part of every FastDFS file name.
pub const B64_NAME_LEN: usize = 27;
/// Length of a normal (non-slave) file name: 27 base64 + 7-char suffix.
pub const NORMAL_NAME_LEN: usize = B64_NAME_LEN + 7;
/// `M00/00/00/` in front of the name.
pub const PATH_PREFIX_LEN: usize = 10;
/// Upper-half marker of a normal file's size field (`COMBINE_RAND_FILE_SIZE`).
const SIZE_RAND_MARK: u64 = 0x8000_0000 << 32;
pub const APPENDER_FLAG: u64 = 1 << 58;
pub const TRUNK_FLAG: u64 = 1 << 59;
/// Suffix appended to a data file's name for its metadata sidecar.
pub const METADATA_SUFFIX: &str = "-m";

/// Who created a file: a numeric storage id or an IPv4 address (`id_type_in_filename`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Id(u32),
    Ip(Ipv4Addr),
}

impl Source {
    fn to_bytes(self) -> [u8; 4] {
        match self {
            Source::Id(id) => id.to_le_bytes(),
            Source::Ip(ip) => ip.octets(),
        }
    }

    fn from_bytes(b: [u8; 4]) -> Self {
        let v = u32::from_le_bytes(b);
        if (1..(1 << 24)).contains(&v) {
            Source::Id(v)
        } else {
            Source::Ip(Ipv4Addr::from(b))
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Id(id) => write!(f, "{id}"),
            Source::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The 20 bytes encoded in a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub source: Source,
    /// Unix seconds when the file was created on its source storage.
    pub create_time: u32,
    /// Raw size field, flags and random bits included.
    pub size_field: u64,
    pub crc32: u32,
}

impl FileInfo {
    /// Size field for a normal file (`rand` supplies the 23 random bits FastDFS mixes in).
    pub fn size_field_for(size: u64, appender: bool, rand: u32) -> u64 {
        let mut v = if size < (1 << 32) {
            SIZE_RAND_MARK | (((rand & 0x7F_FFFF) as u64) << 32) | size
        } else {
            size
        };
        if appender {
            // An appender's size changes, so the ID keeps only the flag and random bits.
            v = SIZE_RAND_MARK | (((rand & 0x7F_FFFF) as u64) << 32) | APPENDER_FLAG;
        }
        v
    }

    pub fn is_appender(&self) -> bool {
        self.size_field & SIZE_RAND_MARK != 0 && self.size_field & APPENDER_FLAG != 0
    }

    pub fn is_trunk(&self) -> bool {
        self.size_field & SIZE_RAND_MARK != 0 && self.size_field & TRUNK_FLAG != 0
    }

    /// The size at creation time (0 for appender files, whose size is not in the name).
    pub fn file_size(&self) -> u64 {
        if self.size_field & SIZE_RAND_MARK != 0 {
            if self.is_appender() {
                0
            } else {
                self.size_field & 0xFFFF_FFFF
            }
        } else {
            self.size_field
        }
    }

    pub fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0..4].copy_from_slice(&self.source.to_bytes());
        b[4..8].copy_from_slice(&self.create_time.to_be_bytes());
        b[8..16].copy_from_slice(&self.size_field.to_be_bytes());
        b[16..20].copy_from_slice(&self.crc32.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8; 20]) -> Self {
        let mut src = [0u8; 4];
        src.copy_from_slice(&b[0..4]);
        let mut ts = [0u8; 4];
        ts.copy_from_slice(&b[4..8]);
        let mut sz = [0u8; 8];
        sz.copy_from_slice(&b[8..16]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&b[16..20]);
        FileInfo {
            source: Source::from_bytes(src),
            create_time: u32::from_be_bytes(ts),
            size_field: u64::from_be_bytes(sz),
            crc32: u32::from_be_bytes(crc),
        }
    }
}

/// Encodes 20 bytes into FastDFS's 27-character base64 (no padding).
pub fn b64_encode(b: &[u8; 20]) -> String {
    let mut out = String::with_capacity(B64_NAME_LEN);
    for chunk in b.chunks(3) {
        let n = match chunk.len() {
            3 => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32,
            _ => (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8, // 20 = 6*3 + 2
        };
        let chars = if chunk.len() == 3 { 4 } else { 3 };
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 0x3F) as usize] as char);
        }
    }
    out
}

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Decodes the 27-character base64 part of a name.
pub fn b64_decode(s: &[u8]) -> Option<[u8; 20]> {
    if s.len() != B64_NAME_LEN {
        return None;
    }
    let mut out = [0u8; 20];
    let mut o = 0;
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= b64_value(c)? << (18 - 6 * i);
        }
        let bytes = chunk.len() - 1;
        for i in 0..bytes {
            out[o] = (n >> (16 - 8 * i)) as u8;
            o += 1;
        }
    }
    Some(out)
}

/// A parsed remote filename (`M00/01/FE/<name>`), validated so that it can only ever map to
/// `store_path/data/XX/YY/<name>`: no `..`, `/`, NUL or characters FastDFS never produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteName {
    pub store_path_index: u8,
    pub dir1: u8,
    pub dir2: u8,
    /// The file name inside the data directory.
    pub name: String,
    pub info: FileInfo,
}

fn hex2(s: &[u8], field: &'static str) -> Result<u8, ProtoError> {
    let ok = s.len() == 2 && s.iter().all(|c| c.is_ascii_hexdigit());
    let text = std::str::from_utf8(s).ok().filter(|_| ok);
    text.and_then(|t| u8::from_str_radix(t, 16).ok())
        // Lazily: the error's String would otherwise be allocated on every valid name.
        .ok_or_else(|| ProtoError::InvalidField {
            field,
            reason: "expected two hex digits".into(),
        })
}

/// `{:02X}` of a byte, without formatting.
fn hex_upper(b: u8) -> &'static str {
    const HEX: &[u8; 512] = &{
        let mut t = [0u8; 512];
        let digits = b"0123456789ABCDEF";
        let mut i = 0;
        while i < 256 {
            t[2 * i] = digits[i >> 4];
            t[2 * i + 1] = digits[i & 15];
            i += 1;
        }
        t
    };
    let i = 2 * b as usize;
    // The table holds only ASCII hex digits.
    std::str::from_utf8(&HEX[i..i + 2]).unwrap_or("00")
}

fn bad_name(reason: &str) -> ProtoError {
    ProtoError::InvalidField {
        field: "filename",
        reason: reason.into(),
    }
}

impl RemoteName {
    /// Parses the part after `group/`.
    pub fn parse(raw: &[u8]) -> Result<Self, ProtoError> {
        if raw.len() < PATH_PREFIX_LEN + B64_NAME_LEN || raw.len() > 128 {
            return Err(bad_name("length out of range"));
        }
        if raw[0] != b'M' || raw[3] != b'/' || raw[6] != b'/' || raw[9] != b'/' {
            return Err(bad_name("expected Mxx/XX/YY/<name>"));
        }
        let store_path_index = hex2(&raw[1..3], "store path")?;
        let dir1 = hex2(&raw[4..6], "dir1")?;
        let dir2 = hex2(&raw[7..9], "dir2")?;
        let name = &raw[PATH_PREFIX_LEN..];
        if !name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        {
            return Err(bad_name("character outside [A-Za-z0-9._-]"));
        }
        if name.windows(2).any(|w| w == b"..") || name.ends_with(METADATA_SUFFIX.as_bytes()) {
            return Err(bad_name("reserved name"));
        }
        let bytes = b64_decode(&name[..B64_NAME_LEN]).ok_or_else(|| bad_name("bad base64 part"))?;
        Ok(RemoteName {
            store_path_index,
            dir1,
            dir2,
            // Checked ASCII above.
            name: String::from_utf8_lossy(name).into_owned(),
            info: FileInfo::decode(&bytes),
        })
    }

    pub fn parse_str(s: &str) -> Result<Self, ProtoError> {
        Self::parse(s.as_bytes())
    }

    /// `M00/01/FE/<name>`
    pub fn to_path_string(&self) -> String {
        // Sized up front: one allocation per call (the HTTP servers call this per request).
        let mut s = String::with_capacity(PATH_PREFIX_LEN + self.name.len());
        for (lead, b) in [
            ("M", self.store_path_index),
            ("/", self.dir1),
            ("/", self.dir2),
        ] {
            s.push_str(lead);
            s.push_str(hex_upper(b));
        }
        s.push('/');
        s.push_str(&self.name);
        s
    }

    /// Path relative to the store path: `data/01/FE/<name>`.
    pub fn relative_data_path(&self) -> String {
        format!("data/{:02X}/{:02X}/{}", self.dir1, self.dir2, self.name)
    }

    /// `<store>/data/01/FE/<name>`: `store.join(self.relative_data_path())` in one allocation.
    pub fn data_path_in(&self, store: &std::path::Path) -> std::path::PathBuf {
        let mut p = std::path::PathBuf::with_capacity(
            store.as_os_str().len() + "/data/01/FE/".len() + self.name.len(),
        );
        p.push(store);
        for part in [
            "data",
            hex_upper(self.dir1),
            hex_upper(self.dir2),
            &self.name,
        ] {
            p.push(part);
        }
        p
    }

    /// A slave file's name is longer than a normal name (master base + prefix + ext).
    pub fn is_slave(&self) -> bool {
        self.name.len() > NORMAL_NAME_LEN
    }

    /// The extension (without dot), if any.
    pub fn ext(&self) -> Option<&str> {
        let tail = &self.name[B64_NAME_LEN..];
        tail.rfind('.').map(|i| &tail[i + 1..])
    }
}

/// Builds the name for a new file: base64 of `info` + random digits padding `ext` to 6 + `.ext`.
/// `ext` must already be validated (at most 6 chars of [A-Za-z0-9]).
pub fn new_name(info: &FileInfo, ext: &str, rand_digits: u32) -> String {
    let mut name = b64_encode(&info.encode());
    let digits = if ext.is_empty() {
        7
    } else {
        6usize.saturating_sub(ext.len())
    };
    let rd = format!("{:07}", rand_digits % 10_000_000);
    name.push_str(&rd[7 - digits..]);
    if !ext.is_empty() {
        name.push('.');
        name.push_str(ext);
    }
    name
}

/// Slave file name: master name without its extension + prefix + `.ext` (or the master's ext).
pub fn slave_name(master: &str, prefix: &str, ext: &str) -> String {
    let base = match master[B64_NAME_LEN.min(master.len())..].rfind('.') {
        Some(i) => &master[..B64_NAME_LEN + i],
        None => master,
    };
    if ext.is_empty() {
        format!("{base}{prefix}")
    } else {
        format!("{base}{prefix}.{ext}")
    }
}

/// Splits a full file ID `group1/M00/...` into group and remote filename.
pub fn split_file_id(id: &str) -> Result<(&str, &str), ProtoError> {
    let (group, rest) = id
        .split_once('/')
        .ok_or_else(|| bad_name("file ID has no group part"))?;
    if group.is_empty() || group.len() > super::GROUP_NAME_LEN {
        return Err(ProtoError::InvalidField {
            field: "group",
            reason: "length out of range".into(),
        });
    }
    Ok((group, rest))
}

/// Extensions are at most 6 characters of [A-Za-z0-9._-] (FastDFS truncates; we refuse). A dot
/// inside is allowed: fdfs_upload_file sends `tar.gz` for `x.tar.gz`, and C FastDFS stores it
/// (seed 002's file IDs end in `.tar.gz`); a leading or trailing dot is not an extension.
pub fn valid_ext(ext: &str) -> bool {
    ext.len() <= super::FILE_EXT_NAME_LEN
        && !ext.starts_with('.')
        && !ext.ends_with('.')
        && ext
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_without_formatting_match_the_formatted_ones() {
        for b in 0..=255u8 {
            assert_eq!(hex_upper(b), format!("{b:02X}"));
        }
        let name = RemoteName {
            store_path_index: 0x0A,
            dir1: 0x01,
            dir2: 0xFE,
            name: "oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt".into(),
            info: FileInfo::decode(&[0; 20]),
        };
        assert_eq!(name.to_path_string(), format!("M0A/01/FE/{}", name.name));
        for store in ["/srv/fdfs", "/srv/fdfs/", "rel/store", "/"] {
            let store = std::path::Path::new(store);
            assert_eq!(
                name.data_path_in(store),
                store.join(name.relative_data_path())
            );
        }
    }

    #[test]
    fn decodes_captured_id_mode_name() {
        // vectors.txt block [10]: 'hello' uploaded to storage id 100001.
        let n = RemoteName::parse_str("M00/01/FE/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt").unwrap();
        assert_eq!((n.store_path_index, n.dir1, n.dir2), (0, 1, 0xFE));
        assert_eq!(n.info.source, Source::Id(100001));
        assert_eq!(n.info.file_size(), 5);
        assert_eq!(n.info.crc32, crc32fast::hash(b"hello"));
        assert!(!n.info.is_appender());
        assert_eq!(n.ext(), Some("txt"));
        assert_eq!(
            n.relative_data_path(),
            "data/01/FE/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt"
        );
    }

    #[test]
    fn decodes_captured_ip_mode_appender() {
        let n = RemoteName::parse_str("M00/00/00/fwAAAWsBrhKEXq-1AAAAADYQpoY867.txt").unwrap();
        assert_eq!(n.info.source, Source::Ip(Ipv4Addr::new(127, 0, 0, 1)));
        assert!(n.info.is_appender());
        assert_eq!(n.info.file_size(), 0);
    }

    #[test]
    fn encode_reproduces_captured_name() {
        let raw = "oYYBAGsBrVGAcNb-AAAABTYQpoY";
        let bytes = b64_decode(raw.as_bytes()).unwrap();
        assert_eq!(b64_encode(&bytes), raw);
        let info = FileInfo::decode(&bytes);
        assert_eq!(
            new_name(&info, "txt", 788),
            "oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt"
        );
    }

    #[test]
    fn new_names_are_44_chars_with_path() {
        let info = FileInfo {
            source: Source::Ip(Ipv4Addr::new(192, 168, 3, 23)),
            create_time: 1_795_000_000,
            size_field: FileInfo::size_field_for(1234, false, 99),
            crc32: 7,
        };
        for ext in ["", "a", "jpg", "abcdef"] {
            let name = new_name(&info, ext, 1234567);
            assert_eq!(name.len(), NORMAL_NAME_LEN, "{name}");
            let parsed = RemoteName::parse_str(&format!("M00/0A/0B/{name}")).unwrap();
            assert_eq!(parsed.info, info);
            assert_eq!(parsed.info.file_size(), 1234);
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "M00/00/00/../../../../etc/passwd",
            "M00/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt/x",
            "M00/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788\0txt",
            "M00/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt-m",
            "M0G/00/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt",
            "M00/00/00/oYYBAGsBrVGAcNb-AAAA..TYQpoY788.txt",
            "M00/00/00/short",
        ] {
            assert!(RemoteName::parse_str(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn slave_names_follow_master() {
        let m = "oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt";
        assert_eq!(
            slave_name(m, "_150x150", "jpg"),
            "oYYBAGsBrVGAcNb-AAAABTYQpoY788_150x150.jpg"
        );
        assert!(
            RemoteName::parse_str(&format!("M00/00/00/{}", slave_name(m, "_s", "txt")))
                .unwrap()
                .is_slave()
        );
    }
}
