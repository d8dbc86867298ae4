//! The tracker's selection alone, in process, without sockets (issue 27.1): what choosing a
//! storage for an upload (101) and for a download (102) costs with the cluster shapes of
//! `tracker_bench`, with the storages' disk reports arriving between the queries at the rate
//! they would at ~130,000 queries a second (2 reports per storage a second).
//!
//! The socket bench measures the whole tracker, where the kernel's loopback path is ~3/4 of a
//! query's cost and the run-to-run spread is ±10 %; this one measures only the part that can
//! grow with the number of groups and storages, to a few ns, so a change to the indexes or
//! the selector shows here first.
//!
//! `cargo bench --bench select_bench`; env `BENCH_SHAPES=10/5,...`, `BENCH_QUERIES` (per
//! query kind and shape, default 2,000,000), `BENCH_REPORTS=0` (no disk reports between the
//! queries). Steadiest under `taskset -c 1`.

#[path = "common/cluster.rs"]
mod cluster;

use cluster::{group_name, shapes_from_env, storage_ip};
use fdfs_ha::proto::fileid::{new_name, FileInfo, Source};
use fdfs_ha::proto::tracker::{JoinReq, PathUsage};
use fdfs_ha::tracker::cluster::{Cluster, Identity};
use fdfs_ha::tracker::select::{SelectConfig, Selector};
use std::hint::black_box;
use std::time::Instant;

/// Queries a second the reports are spread over (the socket bench's order of magnitude).
const QUERY_RATE: f64 = 130_000.0;

fn who(i: usize) -> Identity {
    let ip = storage_ip(i).to_string();
    Identity {
        key: format!("{ip}:23000"),
        id: ip.clone(),
        ip,
    }
}

fn report(c: &mut Cluster, i: usize, groups: usize, n: u64, now: Instant) {
    let paths = vec![PathUsage {
        total_mb: 1_000_000,
        free_mb: 500_000 + (i as u64 * 13 + n) % 1000,
    }];
    let _ = c.disk_usage(&group_name(i % groups), &who(i).key, paths, now);
}

/// A cluster of `n` ACTIVE storages in `groups` groups, as the socket bench's simulator makes.
fn cluster(n: usize, groups: usize, now: Instant) -> Cluster {
    let mut c = Cluster::new();
    for i in 0..n {
        let req = JoinReq::c_storage(&group_name(i % groups), 23000);
        c.join(&who(i), &req, i as u64, now);
        report(&mut c, i, groups, 0, now);
        let _ = c.beat(&group_name(i % groups), &who(i).key, None, now);
    }
    c
}

/// ns per query of `query` over `count` queries, with a disk report every `every` queries.
fn run(
    c: &mut Cluster,
    sel: &mut Selector,
    shape: (usize, usize),
    count: usize,
    mut query: impl FnMut(&Cluster, &mut Selector, usize),
) -> f64 {
    let (n, groups) = shape;
    let now = Instant::now();
    let every = if std::env::var("BENCH_REPORTS").as_deref() == Ok("0") {
        usize::MAX
    } else {
        (QUERY_RATE / (2.0 * n as f64)).max(1.0) as usize
    };
    let mut next_report = 0usize;
    let t0 = Instant::now();
    for k in 0..count {
        if k % every == 0 {
            let i = next_report % n;
            report(c, i, groups, (next_report / n) as u64 + 1, now);
            next_report += 1;
        }
        query(c, sel, k);
    }
    t0.elapsed().as_nanos() as f64 / count as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let shapes = shapes_from_env();
    let count: usize = std::env::var("BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let cfg = fdfs_ha::config::parse_str("node: t\ntracker: {}\n")
        .expect("config")
        .tracker
        .expect("tracker section");
    let unix = fdfs_ha::clock::unix_now_i64();
    println!("select_bench: {count} queries per kind and shape, tracker defaults");
    println!(
        "{:>13} {:>10} {:>7} {:>10} {:>7}",
        "storages/grp", "101 ns", "vs 1st", "102 ns", "vs 1st"
    );
    let mut first: Option<(f64, f64)> = None;
    for &(n, groups) in &shapes {
        let now = Instant::now();
        let mut c = cluster(n, groups, now);
        c.set_reserved(cfg.reserved_storage_space);
        let mut sel = Selector::new(SelectConfig::from_config(&cfg));
        // The 102 requests of the socket bench: a two-day-old file of a rotating group.
        let files: Vec<(String, String)> = (0..groups.min(4096))
            .map(|g| {
                let info = FileInfo {
                    source: Source::Ip(storage_ip(g)),
                    create_time: (unix - 2 * 86400) as u32,
                    size_field: FileInfo::size_field_for(1024, false, 7),
                    crc32: 1,
                };
                (
                    group_name(g),
                    format!("M00/00/00/{}", new_name(&info, "txt", g as u32)),
                )
            })
            .collect();
        let store = run(&mut c, &mut sel, (n, groups), count, |c, sel, _| {
            black_box(sel.store(c, None).expect("101"));
        });
        let fetch = run(&mut c, &mut sel, (n, groups), count, |c, sel, k| {
            let (g, f) = &files[k % files.len()];
            black_box(sel.fetch(c, g, f, unix, false).expect("102"));
        });
        let base = *first.get_or_insert((store, fetch));
        println!(
            "{:>13} {:>10.1} {:>6.2}x {:>10.1} {:>6.2}x",
            format!("{n}/{groups}"),
            store,
            store / base.0,
            fetch,
            fetch / base.1
        );
    }
}
