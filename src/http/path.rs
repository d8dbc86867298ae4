//! Request targets of FastDFS download URLs (`/group1/M00/01/FE/<name>?token=..&ts=..`), parsed
//! the same way by the storage http and the gateway.
//!
//! Pure: a string in, a validated `RemoteName` (or a reason) out. Percent-escapes are decoded
//! first and the result must still be a plain `Mxx/XX/YY/<name>`: `..`, `/` inside the name, NUL,
//! backslashes and bad escapes are refused here, so nothing outside `store_path/data/` can ever
//! be named by a URL.

use crate::proto::fileid::RemoteName;
use std::borrow::Cow;

/// Longest request target (path + query) we accept; FastDFS names are < 200 bytes with a group
/// and a token, so anything near this is hostile or broken (nginx answers 414 well before 8 KiB).
pub const MAX_URI_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request target longer than {MAX_URI_LEN} bytes")]
    TooLong,
    #[error("bad percent-escape")]
    BadEscape,
    #[error("NUL byte in path")]
    Nul,
    #[error("path traversal (`..` or backslash)")]
    Traversal,
    #[error("missing group name")]
    NoGroup,
    #[error("bad group name")]
    BadGroup,
    #[error("not a FastDFS file name: {0}")]
    BadName(String),
}

/// A parsed download path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadPath {
    /// The group from the URL (`None` when the URL has no group part).
    pub group: Option<String>,
    pub name: RemoteName,
}

impl DownloadPath {
    /// `M00/01/FE/<name>`: the file ID without the group, as used by the anti-steal token.
    pub fn id_without_group(&self) -> String {
        self.name.to_path_string()
    }
}

/// Decodes `%XX` escapes. Refuses malformed escapes and NUL (raw or escaped). Borrows `raw`
/// when it has no escape (every URL a client library builds): no copy per request.
pub fn percent_decode(raw: &str) -> Result<Cow<'_, [u8]>, PathError> {
    let b = raw.as_bytes();
    if !b.contains(&b'%') {
        if b.contains(&0) {
            return Err(PathError::Nul);
        }
        return Ok(Cow::Borrowed(b));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(PathError::Nul);
    }
    Ok(Cow::Owned(out))
}

/// Group names FastDFS accepts: 1..=16 of `[A-Za-z0-9_-]`.
pub fn valid_group(g: &[u8]) -> bool {
    !g.is_empty()
        && g.len() <= crate::proto::GROUP_NAME_LEN
        && g.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Parses a request path (no query) such as `/group1/M00/01/FE/<name>`.
pub fn parse_download_path(path: &str, with_group: bool) -> Result<DownloadPath, PathError> {
    if path.len() > MAX_URI_LEN {
        return Err(PathError::TooLong);
    }
    let decoded = percent_decode(path)?;
    if decoded.windows(2).any(|w| w == b"..") || decoded.contains(&b'\\') {
        return Err(PathError::Traversal);
    }
    let rest = decoded.strip_prefix(b"/").ok_or(PathError::Traversal)?;
    let (group, name) = if with_group {
        let slash = rest
            .iter()
            .position(|&c| c == b'/')
            .ok_or(PathError::NoGroup)?;
        let (g, n) = (&rest[..slash], &rest[slash + 1..]);
        if !valid_group(g) {
            return Err(PathError::BadGroup);
        }
        // Checked ASCII by valid_group.
        (Some(String::from_utf8_lossy(g).into_owned()), n)
    } else {
        (None, rest)
    };
    let name = RemoteName::parse(name).map_err(|e| PathError::BadName(e.to_string()))?;
    Ok(DownloadPath { group, name })
}

/// The raw value of `key` in a query string (`a=1&b=2`), undecoded; the values we read (token,
/// ts, redirect) are plain hex/digits.
pub fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| match kv.split_once('=') {
        Some((k, v)) if k == key => Some(v),
        None if kv == key => Some(""),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt";

    #[test]
    fn parses_with_and_without_group() {
        let p = parse_download_path(&format!("/group1/M00/01/FE/{NAME}"), true).unwrap();
        assert_eq!(p.group.as_deref(), Some("group1"));
        assert_eq!(p.id_without_group(), format!("M00/01/FE/{NAME}"));
        let p = parse_download_path(&format!("/M00/01/FE/{NAME}"), false).unwrap();
        assert_eq!(p.group, None);
        assert_eq!(p.name.dir2, 0xFE);
    }

    #[test]
    fn decodes_escapes_then_validates() {
        let p = parse_download_path(
            &format!("/group1/M00/01/FE/{}", NAME.replace('.', "%2E")),
            true,
        );
        assert_eq!(p.unwrap().name.name, NAME);
        for (bad, why) in [
            (
                "/group1/M00/00/00/..%2F..%2Fetc%2Fpasswd",
                PathError::Traversal,
            ),
            (
                "/group1/M00/00/00/%2e%2e/%2e%2e/etc/passwd",
                PathError::Traversal,
            ),
            ("/group1/M00/00/00/a%00b", PathError::Nul),
            ("/group1/M00/00/00/%zz", PathError::BadEscape),
            ("/group1/M00/00/00/%4", PathError::BadEscape),
            ("/group1/M00/00/00/..\\x", PathError::Traversal),
            ("/gr%00oup1/M00/00/00/x", PathError::Nul),
            ("/group1", PathError::NoGroup),
        ] {
            assert_eq!(parse_download_path(bad, true).unwrap_err(), why, "{bad}");
        }
        assert!(matches!(
            parse_download_path(&format!("/group1/M00/01/FE/{NAME}%2Fx"), true),
            Err(PathError::BadName(_))
        ));
        assert!(matches!(
            parse_download_path(&format!("/gr.up/M00/01/FE/{NAME}"), true),
            Err(PathError::BadGroup)
        ));
        assert_eq!(
            parse_download_path(&"/a".repeat(MAX_URI_LEN), true).unwrap_err(),
            PathError::TooLong
        );
    }

    #[test]
    fn percent_decode_borrows_plain_paths_and_decodes_escapes() {
        assert!(matches!(
            percent_decode("/group1/a.jpg"),
            Ok(Cow::Borrowed(b"/group1/a.jpg"))
        ));
        assert_eq!(percent_decode("/a%2Eb").unwrap().as_ref(), b"/a.b");
        assert_eq!(percent_decode("/a\0b"), Err(PathError::Nul));
        assert_eq!(percent_decode("/a%00b"), Err(PathError::Nul));
        assert_eq!(percent_decode("/a%zz"), Err(PathError::BadEscape));
    }

    #[test]
    fn query_params() {
        let q = Some("token=abc&ts=12&redirect");
        assert_eq!(query_param(q, "token"), Some("abc"));
        assert_eq!(query_param(q, "ts"), Some("12"));
        assert_eq!(query_param(q, "redirect"), Some(""));
        assert_eq!(query_param(q, "x"), None);
        assert_eq!(query_param(None, "ts"), None);
    }
}
