//! Authenticated adverts between fdfs-ha nodes (issue 23.3): `auth: {type: hmac, keys: [...]}`.
//! Pure: bytes and keys in, verdicts out.
//!
//! PASS is a password in clear text: anyone on the link who saw one advert can make a node
//! yield (priority 255) or take over (priority 0). With `hmac`, an advert is a normal VRRPv2
//! message with
//! - Auth Type [`AUTH_TYPE_HMAC`] (an unassigned code: RFC 3768 knows 0 and 1, so a peer not
//!   configured for it, keepalived included, drops it as an auth type mismatch);
//! - Authentication Data = a 64-bit sequence number, big-endian: the sender's clock in
//!   milliseconds since the Unix epoch, bumped to stay strictly increasing;
//! - after the message (outside the VRRP checksum, inside the IP payload) a 16-byte tag:
//!   HMAC-SHA256(key, DOMAIN || IPv4 source || VRRP message)[..16].
//!
//! Only nodes configured with `hmac` ever send or accept this; keepalived peers keep PASS.
//!
//! The tag makes a forged advert (any priority, any source address) fail without the key. The
//! replay guard ([`ReplayGuard`]) refuses a captured advert sent again: a sender's sequence
//! must grow; the first advert heard from a sender must be within [`FRESH`] of our clock (so a
//! capture replayed after we restart is refused too, given clocks agree within that).
//!
//! Key rotation without a flap: every key listed is accepted, the first one signs. Roll out
//! `[old, new]` everywhere, then `[new, old]`, then `[new]`; each step is a reload in place.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::Ipv4Addr;

/// Auth Type carried by HMAC adverts.
pub const AUTH_TYPE_HMAC: u8 = 0x80;
/// Length of the tag after the VRRP message.
pub const TAG_LEN: usize = 16;
pub use crate::config::vrrp_rules::{HMAC_MAX_KEYS as MAX_KEYS, HMAC_MIN_KEY_LEN as MIN_KEY_LEN};
/// A sender heard for the first time must be within this of our clock (milliseconds).
pub const FRESH: u64 = 30_000;
/// Senders remembered by the replay guard; only senders with a valid tag get in.
const SENDERS: usize = 64;
/// Binds the tag to this use of the key.
const DOMAIN: &[u8] = b"fdfs-ha vrrp hmac v1";

type HmacSha256 = Hmac<Sha256>;

/// The configured keys, first one signing. Debug never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HmacKeys(pub Vec<Vec<u8>>);

impl std::fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacKeys({} keys)", self.0.len())
    }
}

fn tag(key: &[u8], src: Ipv4Addr, msg: &[u8]) -> Option<[u8; TAG_LEN]> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(DOMAIN);
    mac.update(&src.octets());
    mac.update(msg);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    Some(out)
}

/// The tag to append to `msg` (an encoded VRRP message with the sequence in its auth data),
/// signed with `key`, for an advert sent from `src`.
pub fn sign(key: &[u8], src: Ipv4Addr, msg: &[u8]) -> Vec<u8> {
    tag(key, src, msg).map(|t| t.to_vec()).unwrap_or_default()
}

/// Whether `payload` (VRRP message of `msg_len` bytes, then the tag) carries a valid tag
/// under any of `keys` for source `src`. Constant-time comparison (`verify_truncated_left`).
pub fn verify(keys: &[Vec<u8>], src: Ipv4Addr, payload: &[u8], msg_len: usize) -> bool {
    let (Some(msg), Some(got)) = (
        payload.get(..msg_len),
        payload.get(msg_len..msg_len + TAG_LEN),
    ) else {
        return false;
    };
    keys.iter().any(|k| {
        let Ok(mut mac) = HmacSha256::new_from_slice(k) else {
            return false;
        };
        mac.update(DOMAIN);
        mac.update(&src.octets());
        mac.update(msg);
        mac.verify_truncated_left(got).is_ok()
    })
}

/// The next sequence number to send: our clock, or one more than the last when the clock
/// has not moved (or went back).
pub fn next_seq(last: u64, now_ms: u64) -> u64 {
    now_ms.max(last.saturating_add(1))
}

/// Why the replay guard refused an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Not above the last sequence accepted from this sender.
    Old { seq: u64, last: u64 },
    /// First advert from this sender, and its sequence is not within `FRESH` of our clock.
    Stale { seq: u64, now: u64 },
}

/// Last sequence accepted per sender.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    last: Vec<(Ipv4Addr, u64)>,
}

impl ReplayGuard {
    /// Accepts `seq` from `src` (whose tag was valid) at our clock `now_ms`, or says why not.
    pub fn check(&mut self, src: Ipv4Addr, seq: u64, now_ms: u64) -> Result<(), Replay> {
        match self.last.iter_mut().find(|(a, _)| *a == src) {
            Some((_, last)) => {
                if seq <= *last {
                    return Err(Replay::Old { seq, last: *last });
                }
                *last = seq;
            }
            None => {
                if seq.abs_diff(now_ms) > FRESH {
                    return Err(Replay::Stale { seq, now: now_ms });
                }
                if self.last.len() >= SENDERS {
                    // The sender heard longest ago goes (its sequence is the lowest, roughly).
                    if let Some(i) = self
                        .last
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, s))| *s)
                        .map(|(i, _)| i)
                    {
                        self.last.swap_remove(i);
                    }
                }
                self.last.push((src, seq));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 3, 21);
    const K1: &[u8] = b"0123456789abcdef-key-one";
    const K2: &[u8] = b"0123456789abcdef-key-two";

    fn signed(key: &[u8], src: Ipv4Addr, msg: &[u8]) -> Vec<u8> {
        let mut p = msg.to_vec();
        p.extend(sign(key, src, msg));
        p
    }

    #[test]
    fn a_tag_verifies_under_its_key_only_and_binds_source_and_bytes() {
        let msg = b"\x21\x21\x64\x01\x80\x01\x00\x00abcdefgh12345678";
        let p = signed(K1, SRC, msg);
        assert_eq!(p.len(), msg.len() + TAG_LEN);
        assert!(verify(&[K1.to_vec()], SRC, &p, msg.len()));
        // Rotation: any listed key is accepted.
        assert!(verify(&[K2.to_vec(), K1.to_vec()], SRC, &p, msg.len()));
        assert!(!verify(&[K2.to_vec()], SRC, &p, msg.len()));
        // Another source address, a flipped bit, a missing tag: refused.
        assert!(!verify(
            &[K1.to_vec()],
            Ipv4Addr::new(192, 168, 3, 50),
            &p,
            msg.len()
        ));
        let mut flipped = p.clone();
        flipped[2] ^= 1;
        assert!(!verify(&[K1.to_vec()], SRC, &flipped, msg.len()));
        assert!(!verify(&[K1.to_vec()], SRC, msg, msg.len()));
        assert!(!verify(&[], SRC, &p, msg.len()));
    }

    #[test]
    fn replay_guard_wants_growing_and_fresh_sequences() {
        let mut g = ReplayGuard::default();
        let now = 1_800_000_000_000u64;
        assert_eq!(
            g.check(SRC, now - FRESH - 1, now),
            Err(Replay::Stale {
                seq: now - FRESH - 1,
                now
            })
        );
        assert_eq!(g.check(SRC, now - 5, now), Ok(()));
        assert_eq!(
            g.check(SRC, now - 5, now),
            Err(Replay::Old {
                seq: now - 5,
                last: now - 5
            })
        );
        assert!(g.check(SRC, now - 6, now + 1000).is_err());
        assert_eq!(g.check(SRC, now + 1, now), Ok(()));
        // Once known, a sender's clock may drift: only growth counts.
        assert_eq!(g.check(SRC, now + 10 * FRESH, now), Ok(()));
        // Bounded.
        for i in 0..200u32 {
            let a = Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(g.check(a, now + u64::from(i), now), Ok(()));
        }
        assert!(g.last.len() <= SENDERS);
    }

    #[test]
    fn sequence_grows_even_when_the_clock_does_not() {
        assert_eq!(next_seq(0, 1000), 1000);
        assert_eq!(next_seq(1000, 1000), 1001);
        assert_eq!(next_seq(5000, 1000), 5001);
        assert_eq!(next_seq(u64::MAX, 1), u64::MAX);
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::VrrpConfig;

    fn problems(auth: &str) -> String {
        let yaml = format!(
            "instances:\n  - {{ name: VI_1, interface: eth0, virtual_router_id: 33, priority: 100,\n      auth: {auth}, virtual_ipaddress: [\"192.168.3.100/24\"] }}\n"
        );
        let cfg: VrrpConfig = serde_saphyr::from_str(&yaml).unwrap();
        crate::config::vrrp_rules::check(&cfg)
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn hmac_keys_are_checked_by_count_and_length() {
        let ok = "{ type: hmac, keys: [\"0123456789abcdef\", \"fedcba9876543210x\"] }";
        assert_eq!(problems(ok), "");
        let short = problems("{ type: hmac, keys: [\"0123456789abcdef\", \"short\"] }");
        assert!(short.contains("auth.keys[1]"), "{short}");
        let none = problems("{ type: hmac, keys: [] }");
        assert!(none.contains("auth.keys"), "{none}");
    }
}
