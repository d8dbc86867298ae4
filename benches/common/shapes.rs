//! The cluster shapes the tracker benchmarks run: `BENCH_SHAPES=storages/groups,...` or the
//! bench's own list. Shared by `tracker_bench` (over sockets) and `select_bench` (in process)
//! so both read the same variable the same way.

pub fn from_env(default: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let Ok(v) = std::env::var("BENCH_SHAPES") else {
        return default.to_vec();
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
