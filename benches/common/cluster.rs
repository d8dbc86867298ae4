//! The simulated clusters the tracker benchmarks share: `tracker_bench` (over sockets) and
//! `select_bench` (in process) build the same shapes from the same storages, so their figures
//! can be read side by side.

use std::net::Ipv4Addr;

/// (storages, groups): issue 27's shapes.
pub const SHAPES: &[(usize, usize)] = &[
    (10, 5),
    (100, 50),
    (500, 250),
    (2000, 1000),
    (500, 4),
    (2000, 4),
];

/// `BENCH_SHAPES=storages/groups,...`, or all of `SHAPES`.
pub fn shapes_from_env() -> Vec<(usize, usize)> {
    let Ok(v) = std::env::var("BENCH_SHAPES") else {
        return SHAPES.to_vec();
    };
    v.split(',')
        .map(|s| {
            let parsed = s
                .split_once('/')
                .and_then(|(n, g)| Some((n.trim().parse().ok()?, g.trim().parse().ok()?)));
            parsed.unwrap_or_else(|| panic!("BENCH_SHAPES: storages/groups,... (got {s:?})"))
        })
        .collect()
}

/// Storage `i`'s address: 127.1.x.y, y in 1..=250.
pub fn storage_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// Storage `i` of `groups` is in group `i % groups`.
pub fn group_name(g: usize) -> String {
    format!("group{}", g + 1)
}
