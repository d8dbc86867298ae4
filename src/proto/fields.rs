//! Field encodings shared by every message: big-endian integers and NUL-padded fixed-size strings.
//!
//! [`Reader`] walks a body and reports truncation as a typed error instead of panicking, so a
//! malformed request from the network can only ever become an EINVAL reply.

use super::ProtoError;

/// Appends `s` as a fixed-size field: truncated to `size` bytes, NUL padded.
pub fn put_fixed(out: &mut Vec<u8>, s: &[u8], size: usize) {
    let n = s.len().min(size);
    out.extend_from_slice(&s[..n]);
    out.resize(out.len() + (size - n), 0);
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A fixed field's text up to the first NUL (full-width fields need not be NUL-terminated).
pub fn fixed_str(raw: &[u8]) -> &[u8] {
    match raw.iter().position(|&b| b == 0) {
        Some(i) => &raw[..i],
        None => raw,
    }
}

/// Cursor over a message body.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.remaining() < n {
            return Err(ProtoError::Truncated {
                need: self.pos + n,
                have: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, ProtoError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_be_bytes(b))
    }

    pub fn i64(&mut self) -> Result<i64, ProtoError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.bytes(8)?);
        Ok(i64::from_be_bytes(b))
    }

    /// A length or offset: 8 bytes BE that must not be negative.
    pub fn len64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        let v = self.i64()?;
        if v < 0 {
            return Err(ProtoError::InvalidField {
                field,
                reason: format!("negative value {v}"),
            });
        }
        Ok(v as u64)
    }

    /// A NUL-padded fixed field, returned without its padding.
    pub fn fixed(&mut self, size: usize) -> Result<&'a [u8], ProtoError> {
        Ok(fixed_str(self.bytes(size)?))
    }

    /// A fixed field that must be UTF-8 text (group names, IDs, IPs).
    pub fn fixed_string(&mut self, size: usize, field: &'static str) -> Result<String, ProtoError> {
        let raw = self.fixed(size)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| ProtoError::InvalidField {
                field,
                reason: "not UTF-8".into(),
            })
    }

    pub fn expect_end(&self) -> Result<(), ProtoError> {
        if self.remaining() != 0 {
            return Err(ProtoError::BadLength {
                have: self.buf.len(),
                expected: format!("{}", self.pos),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_fields_pad_and_strip() {
        let mut out = Vec::new();
        put_fixed(&mut out, b"group1", 16);
        assert_eq!(out.len(), 16);
        let mut r = Reader::new(&out);
        assert_eq!(r.fixed(16).unwrap(), b"group1");
        assert!(r.u8().is_err());
    }

    #[test]
    fn full_width_field_needs_no_nul() {
        let raw = *b"0123456789abcdef";
        assert_eq!(fixed_str(&raw), &raw[..]);
    }
}
