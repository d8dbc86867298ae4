//! Reading and writing whole FastDFS messages on a byte stream, with a body-size limit.
//!
//! Servers read the header first and decide from the command whether the body is small (read
//! whole, bounded by `max_body`) or a file stream (read in chunks by the caller via [`read_header`]).

use super::{Header, ProtoError, HEADER_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Proto(#[from] ProtoError),
}

impl ConnError {
    /// True when the peer closed the connection cleanly between messages.
    pub fn is_eof(&self) -> bool {
        matches!(self, ConnError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    }

    /// The errno a peer answered with (`ProtoError::Status`), if that is what this error is.
    pub fn status(&self) -> Option<u8> {
        match self {
            ConnError::Proto(ProtoError::Status(s)) => Some(*s),
            _ => None,
        }
    }
}

/// Reads one header.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Header, ConnError> {
    let mut raw = [0u8; HEADER_LEN];
    r.read_exact(&mut raw).await?;
    Ok(Header::decode(&raw)?)
}

/// Reads a body of `len` bytes into memory, refusing anything over `max_body`.
pub async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    len: u64,
    max_body: u64,
) -> Result<Vec<u8>, ConnError> {
    if len > max_body {
        return Err(ProtoError::TooLong {
            len,
            limit: max_body,
        }
        .into());
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads a header and its whole body.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    max_body: u64,
) -> Result<(Header, Vec<u8>), ConnError> {
    let h = read_header(r).await?;
    let body = read_body(r, h.pkg_len, max_body).await?;
    Ok((h, body))
}

/// Writes a header and body in one write where possible (small messages dominate the protocol).
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    cmd: u8,
    status: u8,
    body: &[u8],
) -> Result<(), ConnError> {
    let mut buf = Vec::with_capacity(HEADER_LEN + body.len());
    buf.extend_from_slice(&Header::new(cmd, status, body.len() as u64).encode());
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    Ok(())
}

/// Writes a response: cmd 100 with `status`; error responses have an empty body.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u8,
    body: &[u8],
) -> Result<(), ConnError> {
    write_message(w, super::cmd::RESP, status, body).await
}

/// Skips `len` bytes of a body that will not be used (so the connection stays in sync).
pub async fn discard<R: AsyncRead + Unpin>(r: &mut R, len: u64) -> Result<(), ConnError> {
    let copied = tokio::io::copy(&mut r.take(len), &mut tokio::io::sink()).await?;
    if copied < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(())
}

/// Refused bodies are skipped at no less than this many bytes per second on average.
pub const SKIP_MIN_RATE: u64 = 1 << 20;

/// Fills `buf`. `idle` bounds each wait for more bytes (inactivity), never the whole read: a
/// slow client that keeps sending is not cut off (C FastDFS only drops a client silent for
/// network_timeout). Silence is `TimedOut`, a close before the end `UnexpectedEof`.
pub async fn read_exact_idle<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    idle: std::time::Duration,
) -> std::io::Result<()> {
    use std::io::ErrorKind;
    let mut got = 0;
    while got < buf.len() {
        match tokio::time::timeout(idle, r.read(&mut buf[got..])).await {
            Ok(Ok(0)) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}

/// Skips `len` bytes of a body that will not be used. They get `timeout` in total (plus time
/// to move a large body at [`SKIP_MIN_RATE`]), not per read: a client dripping a refused body
/// would otherwise hold the connection for as long as its declared length lasts. Running out
/// of time is `TimedOut`, a close before the end `UnexpectedEof`.
pub async fn skip_refused<R: AsyncRead + Unpin>(
    r: &mut R,
    len: u64,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    use std::io::ErrorKind;
    let deadline =
        tokio::time::Instant::now() + timeout + std::time::Duration::from_secs(len / SKIP_MIN_RATE);
    let mut rest = len;
    let mut buf = vec![0u8; (len as usize).clamp(1, 64 * 1024)];
    while rest > 0 {
        let n = (rest as usize).min(buf.len());
        match tokio::time::timeout_at(deadline, r.read(&mut buf[..n])).await {
            Ok(Ok(0)) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(Ok(got)) => rest -= got as u64,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ErrorKind::TimedOut.into()),
        }
    }
    Ok(())
}

/// Copies `count` bytes of `file` from `offset` into `sock` with sendfile(2): the page cache
/// feeds the socket directly, no copy through our memory. Each wait for the socket to take
/// more is bounded by `timeout`. A file shorter than `offset + count` is an `UnexpectedEof`.
pub async fn send_file(
    sock: &tokio::net::TcpStream,
    file: &std::fs::File,
    offset: u64,
    count: u64,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    use std::io;
    use std::os::unix::io::AsRawFd;
    let (out_fd, in_fd) = (sock.as_raw_fd(), file.as_raw_fd());
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "file range beyond off_t");
    let mut off = libc::off_t::try_from(offset).map_err(|_| too_big())?;
    let end = offset
        .checked_add(count)
        .and_then(|e| libc::off_t::try_from(e).ok())
        .ok_or_else(too_big)?;
    while off < end {
        match tokio::time::timeout(timeout, sock.writable()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer did not take the file in time",
                ))
            }
        }
        let want = ((end - off) as usize).min(1 << 30);
        let r = sock.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call; `off` is a valid
            // pointer to an off_t.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn message_round_trip_and_limit() {
        let mut wire = Vec::new();
        write_message(&mut wire, 11, 0, b"abc").await.unwrap();
        let (h, body) = read_message(&mut wire.as_slice(), 16).await.unwrap();
        assert_eq!((h.cmd, h.pkg_len, body.as_slice()), (11, 3, &b"abc"[..]));
        let err = read_message(&mut wire.as_slice(), 2).await.unwrap_err();
        assert!(matches!(err, ConnError::Proto(ProtoError::TooLong { .. })));
    }
}
