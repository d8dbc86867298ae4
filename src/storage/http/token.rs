//! FastDFS anti-steal tokens (`http.anti_steal.check_token` of fastdfs-nginx-module).
//!
//! `token = lowercase hex MD5(file_id_without_group + secret_key + decimal(ts))`, carried as
//! `?token=<32 hex>&ts=<unix seconds>`. Pure: `now` is an argument.

use md5::{Digest, Md5};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token or ts missing")]
    Missing,
    #[error("token is not 32 characters")]
    BadLength,
    #[error("ts is not a number")]
    BadTimestamp,
    #[error("token expired")]
    Expired,
    #[error("token mismatch")]
    Mismatch,
}

/// The token a client must present for `id_without_group` (`M00/00/00/xxx.jpg`) at `ts`.
pub fn make_token(id_without_group: &str, secret_key: &str, ts: u64) -> String {
    let mut h = Md5::new();
    h.update(id_without_group.as_bytes());
    h.update(secret_key.as_bytes());
    h.update(ts.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a presented token. As FastDFS: `ts == 0` never expires; a `ts` in the future is valid.
pub fn check_token(
    id_without_group: &str,
    secret_key: &str,
    ttl_secs: u64,
    token: Option<&str>,
    ts: Option<&str>,
    now_unix: u64,
) -> Result<(), TokenError> {
    let (token, ts) = match (token, ts) {
        (Some(t), Some(s)) => (t, s),
        _ => return Err(TokenError::Missing),
    };
    if token.len() != 32 {
        return Err(TokenError::BadLength);
    }
    let ts: u64 = ts.parse().map_err(|_| TokenError::BadTimestamp)?;
    if ts != 0 && now_unix.saturating_sub(ts) > ttl_secs {
        return Err(TokenError::Expired);
    }
    // Case-insensitive: the format says lowercase, but hex case carries no meaning.
    if !make_token(id_without_group, secret_key, ts).eq_ignore_ascii_case(token) {
        return Err(TokenError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "M00/00/00/wKgDF2sBqcmADUP9AAAABTYQpoY354.jpg";

    #[test]
    fn token_is_md5_of_id_secret_ts() {
        // md5("M00/00/00/wKgDF2sBqcmADUP9AAAABTYQpoY354.jpgFastDFS12345678901234567890")
        let t = make_token(ID, "FastDFS1234567890", 1234567890);
        let mut h = Md5::new();
        h.update(b"M00/00/00/wKgDF2sBqcmADUP9AAAABTYQpoY354.jpgFastDFS12345678901234567890");
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(t, want);
        assert_eq!(t.len(), 32);
    }

    #[test]
    fn accepts_fresh_rejects_expired_wrong_short() {
        let now = 1_800_000_000;
        let ok = make_token(ID, "k", now - 10);
        let ts = (now - 10).to_string();
        assert_eq!(check_token(ID, "k", 60, Some(&ok), Some(&ts), now), Ok(()));
        assert_eq!(
            check_token(ID, "k", 5, Some(&ok), Some(&ts), now),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check_token(ID, "other", 60, Some(&ok), Some(&ts), now),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            check_token(ID, "k", 60, Some(&ok[..31]), Some(&ts), now),
            Err(TokenError::BadLength)
        );
        assert_eq!(
            check_token(ID, "k", 60, None, Some(&ts), now),
            Err(TokenError::Missing)
        );
        assert_eq!(
            check_token(ID, "k", 60, Some(&ok), Some("x"), now),
            Err(TokenError::BadTimestamp)
        );
        let zero = make_token(ID, "k", 0);
        assert_eq!(
            check_token(ID, "k", 60, Some(&zero), Some("0"), now),
            Ok(())
        );
    }
}
