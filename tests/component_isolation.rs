//! Issue 18.8: a component that cannot start does not take the node's other components down;
//! it is retried with backoff and runs once its cause is gone (a read-only store path used to
//! make the whole process exit, tracker and gateway included).
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::proto::cmd;
use fdfs_ha::proto::connection::{read_message, write_message};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn component_state(status_port: u16, name: &str) -> Option<String> {
    let v = fdfs_ha::supervisor::status::fetch(([127, 0, 0, 1], status_port).into())
        .await
        .ok()?;
    v["components"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["state"].as_str().map(|s| s.to_lowercase()))
}

async fn wait_state(status_port: u16, name: &str, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = component_state(status_port, name).await;
        if st.as_deref().is_some_and(|s| want.contains(&s)) {
            return;
        }
        assert!(Instant::now() < deadline, "{name}: {st:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_storage_that_cannot_start_leaves_the_tracker_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (status, tracker) = (free_port(), free_port());
    // The storage's port is taken: it cannot start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let storage = taken.local_addr().unwrap().port();
    let cfg = dir.path().join("node.yaml");
    std::fs::write(
        &cfg,
        format!(
            "node: iso\ndata_dir: {d}/data\nstatus: {{ listen: \"127.0.0.1:{status}\" }}\n\
             supervisor: {{ restart_backoff_min: 100ms, restart_backoff_max: 200ms, max_restarts: 1000 }}\n\
             tracker: {{ listen: \"127.0.0.1:{tracker}\" }}\n\
             storage:\n  group: group1\n  listen: \"127.0.0.1:{storage}\"\n  trackers: [\"127.0.0.1:{tracker}\"]\n  store_paths: [\"{d}/store\"]\n  reserved_storage_space: 0%\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
            .args(["run", "-c"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_state(status, "tracker", &["running"]).await;
    wait_state(status, "storage", &["backoff", "starting"]).await;
    // The node lives on and its tracker answers.
    assert!(child.0.try_wait().unwrap().is_none(), "the node exited");
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tracker))
        .await
        .unwrap();
    write_message(&mut s, cmd::ACTIVE_TEST, 0, &[])
        .await
        .unwrap();
    let (h, _) = read_message(&mut s, 16).await.unwrap();
    assert_eq!(h.status, 0);
    // Once the port is free the storage starts on a later attempt.
    drop(taken);
    wait_state(status, "storage", &["running"]).await;
    assert!(child.0.try_wait().unwrap().is_none());
}
