//! File bodies, and sending them with sendfile(2) on a hyper connection.
//!
//! hyper owns the connection and only writes bytes it holds in memory, so a file body that is to
//! go out with sendfile is handed to it as *markers*: frames that point into `WINDOW`, a static
//! region nobody ever reads. The connection's stream (`SendfileIo`) knows the region: a write
//! whose buffers reach a marker sends the head bytes before it (with MSG_MORE, so head and data
//! leave together) and then the file's bytes with sendfile, from the position the marker's
//! offset names. hyper keeps doing everything else (parsing, keep-alive, Content-Length,
//! chunking, pipelining), and the bytes never pass through user space.
//!
//! ```text
//!  handler ─> Response<Body::File(FileBody)> ─> server: FileBody::use_socket(jobs)
//!     FileBody::poll_frame ─> push Job{file, pos, len} ─> frame = &WINDOW[..len]
//!     hyper writev([head, &WINDOW[k..len]]) ─> SendfileIo: sendmsg(head, MORE); sendfile(fd, pos + k)
//! ```
//! Frames are written in the order they were yielded, so the front job is always the one the
//! first marker in a write belongs to; how far into it the write starts is the marker's offset
//! from the start of `WINDOW` (hyper advances the buffer by what was written).
//!
//! A file body read any other way (a filter, a test, a connection that did not opt in) yields
//! the file's bytes: read inline up to `INLINE_READ_MAX`, in `STREAM_CHUNK` reads on the blocking
//! pool above. Before a large sendfile frame the blocking pool brings its pages into the page
//! cache (readahead(2)), so a cold file blocks a pool thread, never the runtime.

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Bodies up to this size are read in one `pread` on the request's task: a page-cache hit costs
/// microseconds, less than a round trip through the blocking pool (nginx reads inline too).
pub const INLINE_READ_MAX: u64 = 256 * 1024;
/// Larger bodies read through user space stream in chunks this big, each read on the blocking
/// pool, so a slow disk never stalls the runtime and memory per transfer stays bounded.
pub const STREAM_CHUNK: u64 = 512 * 1024;
/// File bodies at least this big go to the socket with sendfile; smaller ones are read and leave
/// with the head in one writev (one copy of a few KiB costs less than a second syscall).
pub const SENDFILE_MIN: u64 = 16 * 1024;

const WINDOW_LEN: usize = 1 << 20;

/// The marker region: never read or written, it only lends addresses to marker frames. In a
/// cell so that it lands in .bss (no pages in the binary or in memory) instead of .rodata.
struct Window(std::cell::UnsafeCell<[u8; WINDOW_LEN]>);
// SAFETY: nothing ever writes the region; shared references to it are all there are.
unsafe impl Sync for Window {}
static WINDOW: Window = Window(std::cell::UnsafeCell::new([0; WINDOW_LEN]));

/// The first `n` bytes of the window, as a marker frame's buffer.
fn window(n: usize) -> &'static [u8] {
    // SAFETY: see `Window`: no `&mut` to it exists anywhere.
    let all: &'static [u8; WINDOW_LEN] = unsafe { &*WINDOW.0.get() };
    &all[..n.min(WINDOW_LEN)]
}

fn window_offset(p: *const u8) -> Option<usize> {
    let base = WINDOW.0.get() as usize;
    let p = p as usize;
    (p >= base && p < base + WINDOW_LEN).then(|| p - base)
}

/// One marker frame: `len` bytes of `file` from `pos`.
struct Job {
    file: Arc<std::fs::File>,
    pos: u64,
    len: u64,
}

/// The marker frames a connection has been handed and not yet fully sent, in order.
#[derive(Default, Clone)]
pub struct Jobs(Arc<Mutex<VecDeque<Job>>>);

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `count` bytes of a file from `pos`, optionally after a few bytes of its own (flv's header).
pub struct FileBody {
    file: Arc<std::fs::File>,
    prefix: Option<Bytes>,
    pos: u64,
    remaining: u64,
    /// Set by the connection: frames become markers for `SendfileIo`.
    socket: Option<Jobs>,
    reading: Option<JoinHandle<std::io::Result<Bytes>>>,
    /// sendfile mode: the readahead before the next marker frame.
    warming: Option<JoinHandle<()>>,
}

impl FileBody {
    pub fn new(file: Arc<std::fs::File>, pos: u64, count: u64) -> Self {
        FileBody {
            file,
            prefix: None,
            pos,
            remaining: count,
            socket: None,
            reading: None,
            warming: None,
        }
    }

    /// Sends `prefix` before the file's bytes.
    pub fn with_prefix(mut self, prefix: Bytes) -> Self {
        self.prefix = Some(prefix);
        self
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining + self.prefix.as_ref().map_or(0, |p| p.len() as u64)
    }

    /// Called by a connection whose stream is a `SendfileIo` over `jobs`: from now on the file's
    /// bytes leave with sendfile. False (nothing changes) below `SENDFILE_MIN` or once reading
    /// has started.
    pub fn use_socket(&mut self, jobs: &Jobs) -> bool {
        if self.remaining < SENDFILE_MIN || self.reading.is_some() || self.socket.is_some() {
            return false;
        }
        self.socket = Some(jobs.clone());
        true
    }

    fn poll_marker(&mut self, cx: &mut Context<'_>, jobs: Jobs) -> Poll<Frame<Bytes>> {
        let n = self.remaining.min(WINDOW_LEN as u64);
        if n > INLINE_READ_MAX {
            let warming = self.warming.get_or_insert_with(|| {
                let (file, pos) = (self.file.clone(), self.pos);
                tokio::task::spawn_blocking(move || {
                    // Only a hint: if it fails, sendfile reads the pages itself.
                    // SAFETY: plain syscall on an open descriptor we own.
                    unsafe { libc::readahead(file.as_raw_fd(), pos as libc::off64_t, n as usize) };
                })
            });
            let _ = ready!(Pin::new(warming).poll(cx));
            self.warming = None;
        }
        jobs.lock().push_back(Job {
            file: self.file.clone(),
            pos: self.pos,
            len: n,
        });
        self.pos += n;
        self.remaining -= n;
        Poll::Ready(Frame::data(Bytes::from_static(window(n as usize))))
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<Bytes>> {
        if self.remaining <= INLINE_READ_MAX && self.reading.is_none() {
            let mut buf = vec![0u8; self.remaining as usize];
            self.file.read_exact_at(&mut buf, self.pos)?;
            self.pos += self.remaining;
            self.remaining = 0;
            return Poll::Ready(Ok(Bytes::from(buf)));
        }
        let n = self.remaining.min(STREAM_CHUNK);
        let reading = self.reading.get_or_insert_with(|| {
            let (file, pos) = (self.file.clone(), self.pos);
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n as usize];
                file.read_exact_at(&mut buf, pos).map(|_| Bytes::from(buf))
            })
        });
        let r =
            ready!(Pin::new(reading).poll(cx)).unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.reading = None;
        let b = r?;
        self.pos += n;
        self.remaining -= n;
        Poll::Ready(Ok(b))
    }
}

use std::future::Future;

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(jobs) = this.socket.clone() {
            return this.poll_marker(cx, jobs).map(|f| Some(Ok(f)));
        }
        match ready!(this.poll_read(cx)) {
            Ok(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            // A file shrinking under us ends the body with an error: the client sees a
            // truncated transfer instead of wrong bytes.
            Err(e) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

/// A client connection's stream that sends marker frames (see the module doc) with sendfile.
pub struct SendfileIo {
    stream: TcpStream,
    jobs: Jobs,
}

impl SendfileIo {
    pub fn new(stream: TcpStream, jobs: Jobs) -> Self {
        SendfileIo { stream, jobs }
    }

    /// One non-blocking socket call once the socket is writable (tokio's readiness protocol).
    fn poll_op(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(i32) -> std::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        let fd = self.stream.as_raw_fd();
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_io(Interest::WRITABLE, || op(fd)) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// `bufs` (the head before a marker) with MSG_MORE: they leave with the file's first bytes.
    fn poll_head(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_op(cx, |fd| {
            // SAFETY: an all-zero msghdr is a valid empty one (no name, no control data).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = bufs.len() as _;
            // SAFETY: msghdr points at `bufs` (IoSlice is ABI-compatible with iovec), alive for
            // the call; the kernel only reads them.
            let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) };
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        })
    }

    /// The file bytes a marker stands for, `marker` being what is left of it.
    fn poll_file(&self, cx: &mut Context<'_>, marker: &[u8]) -> Poll<std::io::Result<usize>> {
        let Some(k) = window_offset(marker.as_ptr()) else {
            return Poll::Ready(Err(std::io::Error::other("not a marker")));
        };
        let (file, pos, len) = match self.jobs.lock().front() {
            Some(j) => (j.file.clone(), j.pos, j.len),
            None => return Poll::Ready(Err(std::io::Error::other("marker without a file"))),
        };
        let want = marker.len().min((len as usize).saturating_sub(k));
        let n = ready!(self.poll_op(cx, |fd| {
            let mut off = (pos + k as u64) as libc::off_t;
            // SAFETY: both descriptors are open for the call; `off` is a valid pointer.
            let r = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut off, want) };
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        }))?;
        if n == 0 && want > 0 {
            // The file is shorter than when its length was sent: end the transfer.
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being sent",
            )));
        }
        if k + n >= len as usize {
            self.jobs.lock().pop_front();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncRead for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if window_offset(buf.as_ptr()).is_some() {
            return self.poll_file(cx, buf);
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first_marker = bufs
            .iter()
            .position(|b| !b.is_empty() && window_offset(b.as_ptr()).is_some());
        match first_marker {
            None => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
            Some(0) => self.poll_file(cx, &bufs[0]),
            Some(i) => {
                let head_len: usize = bufs[..i].iter().map(|b| b.len()).sum();
                let n = ready!(self.poll_head(cx, &bufs[..i]))?;
                if n < head_len {
                    return Poll::Ready(Ok(n));
                }
                // The head is out (held back by MSG_MORE): a pending or failed file write is
                // reported by the next call, this one reports the head.
                match self.poll_file(cx, &bufs[i]) {
                    Poll::Ready(Ok(m)) => Poll::Ready(Ok(n + m)),
                    _ => Poll::Ready(Ok(n)),
                }
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
