//! The daemon's side of the guard: spawns `fdfs-ha vip-guard` per instance (a fresh exec of
//! this binary, never a fork of the multi-threaded daemon), keeps its stdin pipe's write end
//! for the instance's whole life and tells it the state. Only the `fdfs-ha run` binary enables
//! it ([`enable`]): a library user or a test binary has no `vip-guard` subcommand.

use super::{Msg, Setup};
use crate::config::VrrpInstanceConfig;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::super::LOG;

/// Set by `fdfs-ha run`: guards are spawned, logging as JSON or text.
static ENABLED: OnceLock<bool> = OnceLock::new();

/// Enables guards in this process (`fdfs-ha run` only); `json_log` is `log.format == json`.
pub fn enable(json_log: bool) {
    let _ = ENABLED.set(json_log);
}

/// An instance's guard; a no-op when guards are not enabled or it could not be started.
pub struct Guard {
    instance: String,
    inner: Mutex<Option<(Child, ChildStdin)>>,
}

impl Guard {
    /// Starts the guard of instance `ic` (advert source `src`); failures are logged.
    pub fn start(ic: &VrrpInstanceConfig, ifindex: u32, src: IpAddr) -> Guard {
        let g = Guard {
            instance: ic.name.clone(),
            inner: Mutex::new(None),
        };
        let Some(json_log) = ENABLED.get().copied() else {
            return g;
        };
        match spawn() {
            Ok(child) => {
                *g.lock() = Some(child);
                g.setup(ic, ifindex, src, json_log);
            }
            Err(e) => tracing::warn!(target: LOG, instance = %ic.name, error = %e,
                "cannot start the vip-guard; after a crash the VIPs are left to expire"),
        }
        g
    }

    /// The instance's (new) settings.
    pub fn setup(&self, ic: &VrrpInstanceConfig, ifindex: u32, src: IpAddr, json_log: bool) {
        self.send(&Msg::Setup(Box::new(Setup {
            cfg: ic.clone(),
            ifindex,
            src,
            json_log,
        })));
    }

    /// `setup` after a reload (the log format stays).
    pub fn reconfigure(&self, ic: &VrrpInstanceConfig, ifindex: u32, src: IpAddr) {
        self.setup(ic, ifindex, src, ENABLED.get().copied().unwrap_or(false));
    }

    /// The VIPs are (about to be) on the interface, or are off it.
    pub fn held(&self, held: bool) {
        self.send(&Msg::Held(held));
    }

    /// Clean stop: the guard exits without touching anything.
    pub fn bye(&self) {
        self.send(&Msg::Bye);
        self.close();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Child, ChildStdin)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, m: &Msg) {
        let mut inner = self.lock();
        let Some((_, stdin)) = inner.as_mut() else {
            return;
        };
        // Non-blocking (see `spawn`): a guard that stopped reading never stalls VRRP.
        if let Err(e) = stdin.write_all(m.encode().as_bytes()) {
            tracing::warn!(target: LOG, instance = %self.instance, error = %e,
                "the vip-guard stopped listening; after a crash the VIPs are left to expire");
            drop(inner);
            self.close();
        }
    }

    /// Closes the pipe (without Bye the guard takes it for a death) and reaps the guard.
    fn close(&self) {
        if let Some((mut child, stdin)) = self.lock().take() {
            drop(stdin);
            // It exits at once after Bye, within its lifetime bound otherwise.
            let _ = std::thread::Builder::new()
                .name("vip-guard-reap".into())
                .spawn(move || child.wait());
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.close();
    }
}

/// Spawns `fdfs-ha vip-guard` from a short-lived thread that raises CAP_NET_RAW and
/// CAP_NET_ADMIN into its inheritable and ambient sets first: capabilities are per thread, a
/// node that dropped root (`run_by_user`) keeps them only in the permitted set, and execve
/// passes on only ambient ones. The daemon's other threads (and the commands they run) keep
/// none inheritable.
fn spawn() -> std::io::Result<(Child, ChildStdin)> {
    let mut cmd = Command::new("/proc/self/exe");
    // /proc/self/exe: this very binary, even after a package upgrade replaced the file.
    cmd.arg0("fdfs-ha")
        .arg("vip-guard")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = std::thread::scope(|s| {
        s.spawn(|| {
            raise_ambient();
            cmd.spawn()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("spawning thread panicked")))
    })?;
    let Some(stdin) = child.stdin.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other("no stdin pipe"));
    };
    let fd = stdin.as_raw_fd();
    let flags =
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
    Ok((child, stdin))
}

/// On the calling thread only: CAP_NET_RAW and CAP_NET_ADMIN, where permitted, made
/// inheritable and ambient. Failures leave the guard without them; it then logs why it cannot
/// guard when it is needed.
fn raise_ambient() {
    use caps::{CapSet, Capability};
    for cap in [Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN] {
        if caps::has_cap(None, CapSet::Permitted, cap).unwrap_or(false) {
            let _ = caps::raise(None, CapSet::Inheritable, cap);
            let _ = caps::raise(None, CapSet::Ambient, cap);
        }
    }
}
