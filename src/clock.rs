//! Wall-clock time as Unix seconds or milliseconds: the one copy every module uses. A leaf: it
//! imports nothing from the crate, so any module may depend on it without an import cycle.
//!
//! A clock set before 1970 reads 0 rather than failing: the callers compare or store these
//! numbers (FastDFS timestamps, cache ages, status times) and have no better answer than "unset".

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` in whole seconds since the Unix epoch; 0 for a time before 1970.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Now, in whole seconds since the Unix epoch; 0 if the clock reads before 1970.
pub fn unix_now() -> u64 {
    unix_secs(SystemTime::now())
}

/// [`unix_now`] as the `i64` FastDFS's wire format and the tracker's arithmetic use.
pub fn unix_now_i64() -> i64 {
    unix_now() as i64
}

/// Now, in milliseconds since the Unix epoch; 0 if the clock reads before 1970.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn before_1970_reads_zero() {
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(2_999)), 2);
    }

    #[test]
    fn now_agrees_across_units() {
        let (s, ms) = (unix_now(), unix_millis());
        assert!(s > 1_600_000_000);
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1);
        assert!(unix_now_i64() >= s as i64);
    }
}
