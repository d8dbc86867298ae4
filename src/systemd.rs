//! Service-manager integration: readiness notifications (sd_notify through the `sd-notify`
//! crate), the pid file and the privilege drop of a node started as root.
//!
//! Notifications are no-ops unless `NOTIFY_SOCKET` is set (systemd `Type=notify`).
//! The privilege drop happens before the runtime starts, while the process has one thread:
//! capabilities and ids are per thread in the kernel, and threads started afterwards inherit
//! them. The capabilities kept are the ones the node needs to bind again after a component
//! restart or reload: CAP_NET_RAW and CAP_NET_ADMIN for VRRP (raw sockets, VIPs), and
//! CAP_NET_BIND_SERVICE when a listener is below port 1024. Nothing else.

use sd_notify::NotifyState;
use std::path::{Path, PathBuf};

/// Startup finished: the listeners are bound and VRRP instances are running.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// A SIGHUP reload starts; [`ready`] ends it.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    // systemd 253+ asks for the monotonic time with RELOADING=1.
    if let Ok(t) = NotifyState::monotonic_usec_now() {
        states.push(t);
    }
    send(&states);
}

/// Graceful stop has begun (VRRP hands over, components drain).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// The pid file: written at start (the file holds `<pid>\n`), removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Which capabilities a node keeps after dropping root: see the module doc.
pub fn kept_capabilities(cfg: &crate::config::Config) -> Vec<caps::Capability> {
    use caps::Capability::*;
    let mut keep = Vec::new();
    if cfg.vrrp.as_ref().is_some_and(|v| !v.instances.is_empty()) {
        keep.extend([CAP_NET_RAW, CAP_NET_ADMIN]);
    }
    let mut ports = Vec::new();
    if let Some(t) = &cfg.tracker {
        ports.push(t.listen.port());
    }
    if let Some(s) = &cfg.storage {
        ports.push(s.listen.port());
        if let Some(h) = &s.http {
            ports.push(h.listen.port());
        }
    }
    if let Some(g) = &cfg.gateway {
        ports.extend(g.effective_listeners().iter().map(|l| l.listen.port()));
    }
    if ports.iter().any(|p| *p != 0 && *p < 1024) {
        keep.push(CAP_NET_BIND_SERVICE);
    }
    keep
}

/// When running as root and `run_by_user` is set: switch to that user (and `run_by_group`, or
/// the user's group), keeping only [`kept_capabilities`]. Must run before any thread starts.
/// Returns what was done, for the log.
pub fn drop_privileges(cfg: &crate::config::Config) -> anyhow::Result<Option<String>> {
    use anyhow::Context;
    use nix::unistd::{Gid, Group, Uid, User};
    let Some(user) = &cfg.run_by_user else {
        return Ok(None);
    };
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let u = User::from_name(user)
        .with_context(|| format!("run_by_user {user}"))?
        .with_context(|| format!("run_by_user {user}: no such user"))?;
    let gid: Gid = match &cfg.run_by_group {
        Some(g) => {
            Group::from_name(g)
                .with_context(|| format!("run_by_group {g}"))?
                .with_context(|| format!("run_by_group {g}: no such group"))?
                .gid
        }
        None => u.gid,
    };
    let keep: caps::CapsHashSet = kept_capabilities(cfg).into_iter().collect();
    // Keep the permitted set across setuid; effective is cleared by it and raised again below.
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")?;
    nix::unistd::setgroups(&[gid]).context("setgroups")?;
    nix::unistd::setgid(gid).context("setgid")?;
    nix::unistd::setuid(u.uid).context("setuid")?;
    nix::sys::prctl::set_keepcaps(false).context("prctl(PR_SET_KEEPCAPS)")?;
    for set in [caps::CapSet::Permitted, caps::CapSet::Effective] {
        caps::set(None, set, &keep).with_context(|| format!("setting {set:?} capabilities"))?;
    }
    // Nothing is inherited by commands this node runs (notify scripts, externals).
    caps::clear(None, caps::CapSet::Inheritable).context("clearing inheritable capabilities")?;
    let mut names: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    names.sort();
    Ok(Some(format!(
        "running as {user} (uid {}, gid {gid}), capabilities: {}",
        u.uid,
        if names.is_empty() {
            "none".into()
        } else {
            names.join(" ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_holds_the_pid_and_goes_away() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("run/fdfs-ha.pid");
        let f = PidFile::create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
        drop(f);
        assert!(!path.exists());
    }

    /// READY / RELOADING / STOPPING reach a fake NOTIFY_SOCKET as sd_notify datagrams.
    #[test]
    fn notifications_reach_the_notify_socket() {
        let dir = tempfile::TempDir::new().unwrap();
        let sock = dir.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // The only test in this binary that sets the variable.
        std::env::set_var("NOTIFY_SOCKET", &sock);
        let mut buf = [0u8; 512];
        // Other tests of this binary may notify meanwhile: wait for the datagram wanted.
        let mut expect = |what: &str| loop {
            let n = rx.recv(&mut buf).expect(what);
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.contains(what) {
                return m;
            }
        };
        ready();
        expect("READY=1\n");
        reloading();
        let m = expect("RELOADING=1\n");
        assert!(m.contains("MONOTONIC_USEC="), "{m}");
        stopping();
        expect("STOPPING=1\n");
        std::env::remove_var("NOTIFY_SOCKET");
    }

    #[test]
    fn a_node_without_vrrp_keeps_no_capability() {
        let yaml = "node: n\nstorage:\n  group: g\n  listen: 127.0.0.1:23000\n  trackers: [\"127.0.0.1:22122\"]\n  store_paths: [/tmp/x]\n";
        let cfg = crate::config::parse_str(yaml).unwrap();
        assert!(kept_capabilities(&cfg).is_empty());
    }
}
