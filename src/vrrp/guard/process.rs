//! The guard process (`fdfs-ha vip-guard`, spawned by `spawn`): reads its stdin until the
//! daemon says Bye or dies; after a death while holding VIPs, listens for the peer's adverts
//! and removes the stale VIPs (`super` decides what and when). One thread, blocking stdin, then
//! a current-thread runtime for netlink and the raw socket only.

use super::super::socket::{AdvertSocket, VrrpSocket};
use super::super::socket6::VrrpSocket6;
use super::super::vip::Netlink;
use super::super::{auth_hmac, lifetime_secs, v4, Settings, LOG};
use super::{guarded, peer_is_master, stale, Attached, Checks, Msg, Setup, Step, Watch};
use crate::clock::unix_millis;
use anyhow::Context;
use std::io::BufRead;
use std::net::IpAddr;
use std::time::Instant;

/// The guard's `main`: its exit code.
pub fn main() -> u8 {
    // systemd's stop signals the whole cgroup; the daemon's Bye (or its death) ends the guard.
    let mut block = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGINT,
    ] {
        block.add(s);
    }
    let _ = block.thread_block();
    let _ = nix::sys::prctl::set_name(c"fdfs-ha-guard");
    let mut attached = Attached::default();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(m) = Msg::decode(&line) {
            if !attached.on_msg(m) {
                return 0;
            }
        }
    }
    let Some(setup) = attached.on_eof() else {
        return 0;
    };
    init_log(setup.json_log);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: LOG, error = %e, "vip-guard: no runtime; stale VIPs are left to expire");
            return 1;
        }
    };
    match rt.block_on(orphaned(&setup)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(target: LOG, instance = %setup.cfg.name, error = %format!("{e:#}"),
                "vip-guard failed; stale VIPs are left to expire");
            1
        }
    }
}

fn init_log(json: bool) {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let registry =
        tracing_subscriber::registry().with(EnvFilter::new(crate::logs::filter_directives("info")));
    if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(fmt::layer().with_ansi(false).with_writer(std::io::stderr))
            .init();
    }
}

/// The daemon died holding VIPs: wait for the peer's takeover, then remove them.
async fn orphaned(setup: &Setup) -> anyhow::Result<()> {
    let eof = Instant::now();
    let ic = &setup.cfg;
    let s = Settings::of(ic, setup.src)?;
    let netlink = Netlink::connect().context("opening rtnetlink")?;
    let present = netlink.addr_states(setup.ifindex).await?;
    let guarded = guarded(&s.vips, &present);
    if guarded.is_empty() {
        return Ok(());
    }
    // This node's own adverts (a new run here) never count as the peer's.
    let mut own: Vec<IpAddr> = present.iter().map(|a| a.vip.addr).collect();
    own.push(setup.src);
    let socket = match setup.src {
        IpAddr::V4(src) => {
            VrrpSocket::open(&ic.interface, setup.ifindex, src, ic.unicast_peers.clone())
                .map(AdvertSocket::V4)
        }
        IpAddr::V6(src) => {
            VrrpSocket6::open(&ic.interface, setup.ifindex, src).map(AdvertSocket::V6)
        }
    }
    .with_context(|| format!("opening the VRRP socket on {}", ic.interface))?;
    let mut checks = Checks {
        version3: s.fsm.version3,
        v2: super::super::packet::Expect {
            vrid: ic.virtual_router_id,
            auth: s.auth,
            adver_int: s.adver_int,
            addrs: s.vips.iter().filter_map(|v| v4(v.addr)).collect(),
            unicast_peers: ic.unicast_peers.clone(),
            hmac_keys: s.hmac_keys.clone(),
        },
        v3: super::super::packet_v3::ExpectV3 {
            vrid: ic.virtual_router_id,
            addrs: s.vips.iter().map(|v| v.addr).collect(),
            unicast_peers: ic.unicast_peers.iter().map(|a| IpAddr::V4(*a)).collect(),
        },
        replay: auth_hmac::ReplayGuard::default(),
    };
    let mut watch = Watch::new(eof, s.fsm.advert_int, lifetime_secs(s.fsm.advert_int));
    tracing::info!(target: LOG, instance = %ic.name, vips = ?guarded.iter().map(|g| g.vip.to_string()).collect::<Vec<_>>(),
        "vip-guard: fdfs-ha ended holding VIPs; they go when the peer takes over");
    let mut buf = vec![0u8; 4096];
    loop {
        let now_states = netlink.addr_states(setup.ifindex).await?;
        let left = stale(&guarded, &now_states);
        match watch.next(Instant::now(), !left.is_empty()) {
            Step::Exit(why) => {
                tracing::info!(target: LOG, instance = %ic.name, "vip-guard: exiting: {why}");
                return Ok(());
            }
            Step::Delete { master } => {
                for v in left {
                    match netlink.del(setup.ifindex, v).await {
                        Ok(()) => tracing::warn!(target: LOG, instance = %ic.name, vip = %v,
                            interface = %ic.interface, %master, after_ms = eof.elapsed().as_millis() as u64,
                            "vip-guard: removed the stale VIP of a dead fdfs-ha; the peer is Master"),
                        Err(e) => tracing::error!(target: LOG, instance = %ic.name, vip = %v,
                            error = %e, "vip-guard: removing the stale VIP failed"),
                    }
                }
                return Ok(());
            }
            Step::Wait(until) => {
                let until = tokio::time::Instant::from_std(until);
                match tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
                    Ok(Ok((n, meta))) => {
                        let heard = checks.accept(&buf[..n], meta, unix_millis());
                        if let Some((src, prio)) = heard {
                            if peer_is_master(src, prio, &own) {
                                watch.heard_master(src, Instant::now());
                            }
                        }
                    }
                    Ok(Err(_)) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    Err(_elapsed) => {}
                }
            }
        }
    }
}
