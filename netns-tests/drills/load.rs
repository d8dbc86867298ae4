//! Drill l's load (issue 23.5): from the client namespace, uploads at full speed through the
//! trackers and 1,000 HTTP clients on keep-alive connections fetching through the VIP, as fast
//! as they are answered, for `DRILL_LOAD_SECS` (default 600). The drill judges what the load
//! must not cause: a VRRP transition (the VIP leaving ha1), a lost or corrupt file.

use super::*;
use http_body_util::{BodyExt, Empty};
use std::sync::atomic::AtomicU64;

/// Concurrent HTTP clients, each on its own keep-alive connection (the gateway's
/// max_connections is 1,024).
const HTTP_CLIENTS: usize = 1000;
/// Concurrent uploaders (64 KiB files, fsync on in the lab).
const UPLOADERS: usize = 8;
/// Files the HTTP clients fetch (uploaded first; cached by the gateway after the first fetch).
const TARGETS: usize = 20;

#[derive(Default)]
struct Counts {
    uploads: AtomicU64,
    uploads_failed: AtomicU64,
    downloads: AtomicU64,
    downloads_failed: AtomicU64,
}

/// Runs the load for `DRILL_LOAD_SECS` and prints what it did.
pub fn run(lab: &Lab) {
    let secs = std::env::var("DRILL_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600u64);
    raise_fd_limit();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let load = in_netns(&lab.ns("client"), {
        let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
        move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("load runtime");
            rt.block_on(generate(stop, counts))
        }
    });
    let mut last = 0;
    for second in 1..=secs {
        std::thread::sleep(Duration::from_secs(1));
        let done = counts.downloads.load(Ordering::Relaxed);
        // One line a minute: the load is really running.
        if second.is_multiple_of(60) {
            println!(
                "  load at {second:>4} s: {} downloads/s, {} uploads so far ({} failed), {} downloads failed",
                done - last,
                counts.uploads.load(Ordering::Relaxed),
                counts.uploads_failed.load(Ordering::Relaxed),
                counts.downloads_failed.load(Ordering::Relaxed)
            );
        }
        last = done;
    }
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "  load: {secs} s, {HTTP_CLIENTS} HTTP clients: {} downloads ({}/s, {} failed); {UPLOADERS} uploaders: {} uploads ({}/s, {} failed)",
        c(&counts.downloads),
        c(&counts.downloads) / secs.max(1),
        c(&counts.downloads_failed),
        c(&counts.uploads),
        c(&counts.uploads) / secs.max(1),
        c(&counts.uploads_failed)
    );
}

/// 1,000 connections need more descriptors than the usual soft limit of 1,024.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

async fn generate(stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let trackers: Vec<SocketAddr> = vec![
        "192.168.3.21:22122".parse().unwrap(),
        "192.168.3.22:22122".parse().unwrap(),
    ];
    let client = Arc::new(FdfsClient::with_timeout(trackers, Duration::from_secs(5)));
    let mut targets = Vec::new();
    while targets.len() < TARGETS && !stop.load(Ordering::Relaxed) {
        let data = vec![targets.len() as u8; 16 * 1024];
        match client.upload_buffer(&data, "bin").await {
            Ok(id) => targets.push(id),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let targets = Arc::new(targets);
    let mut tasks = Vec::new();
    for u in 0..UPLOADERS {
        let (client, stop, counts) = (Arc::clone(&client), Arc::clone(&stop), Arc::clone(&counts));
        tasks.push(tokio::spawn(async move {
            let data = vec![u as u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match client.upload_buffer(&data, "bin").await {
                    Ok(_) => counts.uploads.fetch_add(1, Ordering::Relaxed),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        counts.uploads_failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    for n in 0..HTTP_CLIENTS {
        let (http, stop, counts, targets) = (
            http.clone(),
            Arc::clone(&stop),
            Arc::clone(&counts),
            Arc::clone(&targets),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = n;
            while !stop.load(Ordering::Relaxed) && !targets.is_empty() {
                k += 1;
                let uri: hyper::Uri = format!("http://{VIP}/dfs/{}", targets[k % targets.len()])
                    .parse()
                    .expect("uri");
                let got = tokio::time::timeout(Duration::from_secs(5), async {
                    let resp = http.get(uri).await.ok()?;
                    let ok = resp.status().is_success();
                    let body = resp.into_body().collect().await.ok()?;
                    (ok && body.to_bytes().len() == 16 * 1024).then_some(())
                })
                .await;
                if matches!(got, Ok(Some(()))) {
                    counts.downloads.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.downloads_failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
