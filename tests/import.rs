//! `fdfs-ha import` (issue 20.1): every node of every seed in tests/seed-configs imports into an
//! ha.yaml that passes `check`, with the seeds' quirks reported as warnings at their file:line; the
//! lab's configs come back from seed-shaped input; syntax errors are clear errors with file:line.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::config::{self, Config, OnFail, TrackWeight, VrrpAuth};
use fdfs_ha::import::{import_files, Imported, Options, Warning};
use std::path::{Path, PathBuf};
use std::process::Command;

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed-configs")
}

/// Each node the seeds' INDEX.md describes, with the files that node holds.
fn seed_nodes() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        (
            "000 lb-master .21",
            vec![
                "000/lb-master/keepalived.conf",
                "000/lb/nginx_check.sh",
                "000/lb/nginx.conf",
            ],
        ),
        (
            "000 lb-backup .22",
            vec![
                "000/lb-backup/keepalived.conf",
                "000/lb/nginx_check.sh",
                "000/lb/nginx.conf",
            ],
        ),
        (
            "000 tracker .19/.20",
            vec![
                "000/tracker/tracker.conf",
                "000/tracker/client.conf",
                "000/tracker/nginx.conf",
            ],
        ),
        (
            "000 storage .23 (group1)",
            vec![
                "000/storage-group1/storage.conf",
                "000/storage-group1/mod_fastdfs.conf",
                "000/storage/conf.d/storage.conf",
            ],
        ),
        (
            "001 lb-master .130",
            vec![
                "001/lb-master/keepalived.conf",
                "001/lb/check_nginx_pid.sh",
                "001/lb/nginx.conf",
            ],
        ),
        (
            "001 lb-backup .129",
            vec![
                "001/lb-backup/keepalived.conf",
                "001/lb/check_nginx_pid.sh",
                "001/lb/nginx.conf",
            ],
        ),
        (
            "002 tracker .131/.132",
            vec![
                "002/tracker/tracker.conf",
                "002/tracker/client.conf",
                "002/tracker/nginx.conf",
            ],
        ),
        (
            "002 storage .135-.138",
            vec![
                "002/storage-group1/storage.conf",
                "002/storage-group1/mod_fastdfs.conf",
                "002/storage/nginx.conf",
            ],
        ),
        ("002 java client", vec!["002/java-client/fdfs_client.conf"]),
        (
            "003 lb-master .84",
            vec![
                "003/lb-master/keepalived.conf",
                "003/lb/nginx_check.sh",
                "003/lb/nginx.conf",
            ],
        ),
        (
            "003 lb-backup .85",
            vec![
                "003/lb-backup/keepalived.conf",
                "003/lb/nginx_check.sh",
                "003/lb/nginx.conf",
            ],
        ),
        (
            "003 tracker+storage .80/.81",
            vec![
                "003/tracker/tracker.conf",
                "003/storage-group1/storage.conf",
                "003/storage-group1/mod_fastdfs.conf",
                "003/tracker/nginx.conf",
                "003/storage/nginx.conf",
            ],
        ),
        (
            "003 storage .82/.83",
            vec![
                "003/storage-group1/storage.conf",
                "003/storage-group1/mod_fastdfs.conf",
                "003/storage/nginx.conf",
            ],
        ),
        ("003 client", vec!["003/client/client.conf"]),
        (
            "004 tracker+keepalived .36",
            vec![
                "004/lb-master/keepalived.conf",
                "004/lb/chk_nginx.sh",
                "004/tracker/tracker.conf",
                "004/tracker/client.conf",
                "004/tracker/nginx.conf",
            ],
        ),
        (
            "004 storage .38-.41",
            vec![
                "004/storage-group1/storage.conf",
                "004/storage-group1/mod_fastdfs.conf",
                "004/storage/nginx.conf",
            ],
        ),
        (
            "004 storage, the author's changed lines",
            vec![
                "004/storage-group1/changed-lines/storage.conf",
                "004/storage-group1/mod_fastdfs.conf",
                "004/storage/nginx.conf",
            ],
        ),
    ]
}

fn import(files: &[&str]) -> Imported {
    let paths: Vec<PathBuf> = files.iter().map(|f| seeds().join(f)).collect();
    import_files(&paths, &Options::default())
        .unwrap_or_else(|e| panic!("import of {files:?} failed: {e}"))
}

/// The output passes `check` (the library's validation, the same as `fdfs-ha check`).
fn checked(name: &str, imp: &Imported) -> Config {
    match config::check_str(&imp.yaml) {
        Ok(c) => c.config,
        Err(errs) => panic!(
            "{name}: output does not pass check:\n{}\n---\n{}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            imp.yaml
        ),
    }
}

/// The warning at `file:line` (file given by its end) that contains `text`.
fn has_warning(ws: &[Warning], file_line: &str, text: &str) -> bool {
    ws.iter().any(|w| {
        w.at.as_ref()
            .is_some_and(|a| format!("{}:{}", a.file, a.line).ends_with(file_line))
            && w.message.contains(text)
    })
}

fn assert_warning(imp: &Imported, file_line: &str, text: &str) {
    assert!(
        has_warning(&imp.warnings, file_line, text),
        "no warning at {file_line} containing {text:?}; warnings:\n{}",
        imp.warnings
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Warnings are also written into the output, as comments.
    assert!(imp
        .yaml
        .contains(&format!(":{}", file_line.rsplit(':').next().unwrap())));
}

#[test]
fn every_seed_node_imports_and_passes_check() {
    for (name, files) in seed_nodes() {
        let imp = import(&files);
        checked(name, &imp);
        for w in &imp.warnings {
            assert!(
                imp.yaml.contains(&format!("# {w}")),
                "{name}: warning not in the output: {w}"
            );
        }
    }
}

#[test]
fn every_line_of_the_fastdfs_files_is_mapped_or_warned() {
    // Each key line of 000's tracker, client, storage and mod_fastdfs files either appears as a
    // source comment on an imported key or has a warning: nothing is dropped silently.
    for node in [2, 3] {
        let files = &seed_nodes()[node].1;
        let imp = import(files);
        for f in files
            .iter()
            .filter(|f| !f.contains("nginx") && !f.contains("conf.d"))
        {
            let text = std::fs::read_to_string(seeds().join(f)).unwrap();
            let short = f.rsplit('/').next().unwrap();
            for (i, line) in text.lines().enumerate() {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') || l.starts_with('[') {
                    continue;
                }
                let tag = format!("{short}:{}", i + 1);
                let in_yaml = imp.yaml.lines().any(|l| {
                    !l.starts_with('#') && (l.contains(&format!("{tag}:")) || l.ends_with(&tag))
                });
                let warned = has_warning(&imp.warnings, &tag, "");
                assert!(in_yaml || warned, "{f}:{} neither mapped nor warned", i + 1);
            }
        }
    }
}

#[test]
fn seed_000_front_nopreemt_and_en_dash() {
    let imp = import(&seed_nodes()[0].1);
    let c = checked("000 lb-master", &imp);
    assert_warning(
        &imp,
        "000/lb-master/keepalived.conf:16",
        "unknown keyword `nopreemt`",
    );
    assert_warning(&imp, "000/lb-master/keepalived.conf:16", "DOES preempt");
    assert_warning(&imp, "000/lb/nginx_check.sh:2", "U+2013");
    assert_warning(&imp, "000/lb/nginx.conf:45", "merge_slashes");
    let v = &c.vrrp.as_ref().unwrap().instances[0];
    assert!(
        v.preempt,
        "keepalived ignores `nopreemt`, so the pair preempts"
    );
    assert_eq!((v.virtual_router_id, v.priority), (33, 100));
    assert_eq!(v.virtual_ipaddress, vec!["192.168.3.100/32"]);
    assert_eq!(v.src_ip, Some("192.168.3.21".parse().unwrap()));
    assert_eq!(
        v.auth,
        Some(VrrpAuth::Pass {
            password: "1111".into()
        })
    );
    // nginx_check.sh: restart nginx (the gateway), and give up the VIP when that fails.
    assert_eq!(v.track.len(), 1);
    assert_eq!(v.track[0].weight, TrackWeight::Fault);
    let p = c
        .probes
        .iter()
        .find(|p| p.name == v.track[0].probe)
        .unwrap();
    assert_eq!(p.on_fail, OnFail::Restart);
    assert_eq!(p.component.as_deref(), Some("gateway"));
    assert_eq!(p.tcp.as_deref(), Some("127.0.0.1:80"));
    assert_eq!(p.interval.get().as_secs(), 2);
    assert_eq!(c.supervisor.restart_grace.get().as_secs(), 2, "sleep 2");
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.prefix.as_deref(), Some("/dfs"));
    assert_eq!(g.listen.port(), 80);
    assert_eq!(g.trackers, vec!["192.168.3.19:22122", "192.168.3.20:22122"]);
}

#[test]
fn seed_000_tracker_and_storage() {
    let imp = import(&seed_nodes()[2].1);
    let c = checked("000 tracker", &imp);
    // allow_hosts = * is ha.yaml's default (every host): noted, nothing written.
    assert_warning(&imp, "000/tracker/tracker.conf:21", "allow_hosts = *");
    assert!(c.tracker.as_ref().unwrap().allow_hosts.is_empty());
    assert_warning(
        &imp,
        "000/tracker/tracker.conf:13",
        "store_group has no effect",
    );
    let t = c.tracker.as_ref().unwrap();
    assert_eq!(t.listen.port(), 22122);
    assert_eq!(t.check_active_interval.get().as_secs(), 120);
    assert_eq!(c.data_dir, PathBuf::from("/data/tracker"));
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.listen.port(), 8000);
    assert_eq!(g.prefix, None);
    // client.conf's order (.20 first).
    assert_eq!(g.trackers, vec!["192.168.3.20:22122", "192.168.3.19:22122"]);
    let cache = g.cache.as_ref().unwrap();
    assert_eq!(cache.max_size.0, 1 << 30);
    assert_eq!(cache.inactive.get().as_secs(), 30 * 86400);
    assert_eq!(g.expires.unwrap().get().as_secs(), 30 * 86400);
    assert!(g.purge_allow.is_empty(), "no purge location in this nginx");

    let imp = import(&seed_nodes()[3].1);
    let c = checked("000 storage", &imp);
    let s = c.storage.as_ref().unwrap();
    assert_eq!(s.group, "group1");
    assert_eq!(s.store_paths, vec![PathBuf::from("/data/storage")]);
    assert_eq!(s.trackers, vec!["192.168.3.19:22122", "192.168.3.20:22122"]);
    assert_eq!(s.http.as_ref().unwrap().listen.port(), 8888);
    assert_warning(
        &imp,
        "000/storage-group1/mod_fastdfs.conf:21",
        "group_count = 2",
    );
}

#[test]
fn seed_001_unknown_global_keyword_and_a_non_fastdfs_front() {
    let imp = import(&seed_nodes()[4].1);
    let c = checked("001 lb-master", &imp);
    assert_warning(
        &imp,
        "001/lb-master/keepalived.conf:8",
        "unknown keyword `smtp_connection_timeout`",
    );
    assert_warning(
        &imp,
        "001/lb-master/keepalived.conf:8",
        "`smtp_connect_timeout`",
    );
    assert_warning(&imp, "001/lb/nginx.conf:80", "not a FastDFS service");
    assert_warning(&imp, "001/lb/check_nginx_pid.sh:1", "no sleep");
    assert!(c.gateway.is_none());
    let v = &c.vrrp.as_ref().unwrap().instances[0];
    assert_eq!((v.virtual_router_id, v.priority), (66, 100));
    assert_eq!(v.track[0].weight, TrackWeight::Fault);
}

#[test]
fn seed_002_hash_in_values_and_purge() {
    let imp = import(&seed_nodes()[6].1);
    let c = checked("002 tracker", &imp);
    assert_warning(
        &imp,
        "002/tracker/tracker.conf:3",
        "`#` after a value is not a comment",
    );
    assert_eq!(c.data_dir, PathBuf::from("/fastdfs/tracker"));
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.purge_allow, vec!["127.0.0.1/32", "192.168.1.0/24"]);
    assert!(
        !has_warning(&imp.warnings, "nginx.conf:66", "purge ACL"),
        "192.168.1.0/24 is this cluster's network"
    );

    let imp = import(&seed_nodes()[7].1);
    let c = checked("002 storage", &imp);
    assert_warning(
        &imp,
        "002/storage-group1/storage.conf:2",
        "FastDFS uses the whole text",
    );
    assert_warning(
        &imp,
        "002/storage-group1/mod_fastdfs.conf:6",
        "`#` after a value",
    );
    let s = c.storage.as_ref().unwrap();
    assert_eq!(s.group, "group1");
    assert_eq!(s.store_paths, vec![PathBuf::from("/fastdfs/storage")]);
}

#[test]
fn seed_003_purge_acl_for_another_subnet_and_unclosed_http() {
    let imp = import(&seed_nodes()[11].1);
    let c = checked("003 tracker+storage", &imp);
    assert_warning(
        &imp,
        "003/tracker/nginx.conf:81",
        "purge ACL allows 192.168.1.0/24",
    );
    assert_warning(&imp, "003/tracker/nginx.conf:5", "never closed");
    assert_warning(&imp, "003/storage/nginx.conf:1", "fragment");
    assert_eq!(
        c.storage.as_ref().unwrap().store_paths,
        vec![PathBuf::from("/data01/fastdfs")]
    );
    assert_eq!(c.gateway.as_ref().unwrap().listen.port(), 8000);
    assert_eq!(
        c.storage
            .as_ref()
            .unwrap()
            .http
            .as_ref()
            .unwrap()
            .listen
            .port(),
        8888
    );

    let imp = import(&seed_nodes()[10].1);
    checked("003 lb-backup", &imp);
    assert_warning(&imp, "003/lb/nginx_check.sh:1", "no track_script");
    let imp = import(&seed_nodes()[9].1);
    let c = checked("003 lb-master", &imp);
    assert_eq!(
        c.gateway.as_ref().unwrap().prefix.as_deref(),
        Some("/fastdfs")
    );
    assert_eq!(c.vrrp.as_ref().unwrap().instances[0].priority, 150);
}

#[test]
fn seed_004_wrong_trackers_group3_and_local() {
    let imp = import(&seed_nodes()[15].1);
    checked("004 storage", &imp);
    assert_warning(
        &imp,
        "004/storage-group1/mod_fastdfs.conf:8",
        "different trackers",
    );
    assert_warning(
        &imp,
        "004/storage-group1/mod_fastdfs.conf:28",
        "group_name=group3",
    );

    let imp = import(&seed_nodes()[16].1);
    let c = checked("004 changed lines", &imp);
    assert_warning(&imp, "changed-lines/storage.conf:6", "`#` after a value");
    assert_eq!(
        c.storage.as_ref().unwrap().trackers,
        vec!["192.168.162.193:22122", "192.168.162.194:22122"]
    );

    let imp = import(&seed_nodes()[14].1);
    let c = checked("004 tracker+keepalived", &imp);
    assert_warning(&imp, "004/lb/chk_nginx.sh:10", "`local` outside a function");
    assert_warning(&imp, "004/lb-master/keepalived.conf:4", "sample default");
    assert_warning(
        &imp,
        "004/tracker/client.conf:12",
        "not the gateway's port 80",
    );
    assert_warning(&imp, "004/tracker/nginx.conf:18", "never closed");
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.listen.port(), 80);
    assert_eq!(c.probes[0].tcp.as_deref(), Some("127.0.0.1:80"));
    assert_eq!(c.probes[0].interval.get().as_secs(), 6);
    assert_eq!(c.supervisor.restart_grace.get().as_secs(), 3, "sleep 3");
    assert_eq!(g.upstream.max_fails, 3);
}

#[test]
fn a_whole_seed_directory_imports_with_unknown_files_reported() {
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["import", "--dir"])
        .arg(seeds().join("004"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("iptables:1: not a file this import reads"),
        "{err}"
    );
    let c = config::check_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert!(c.config.vrrp.is_some() && c.config.storage.is_some());
}

#[test]
fn the_binary_writes_a_file_that_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("ha.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"));
    cmd.arg("import");
    for f in &seed_nodes()[0].1 {
        cmd.arg(seeds().join(f));
    }
    let out = cmd.arg("-o").arg(&out_path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("keepalived.conf:16: unknown keyword `nopreemt`"),
        "{err}"
    );
    let chk = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["check", "-c"])
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        chk.status.success(),
        "{}",
        String::from_utf8_lossy(&chk.stderr)
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn syntax_errors_are_clear_errors_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "nginx.conf",
            "http {\n    server {\n        listen 80;\n    }\n}\n}\n",
            "nginx.conf:6",
            "unexpected \"}\"",
        ),
        (
            "keepalived.conf",
            "vrrp_instance VI_1 {\n    state MASTER\n    authentication {\n        auth_type PASS\n}\n",
            "keepalived.conf:1",
            "never closed",
        ),
        (
            "tracker.conf",
            "port=22122\nbase_path /data/tracker\n",
            "tracker.conf:2",
            "not `key = value`",
        ),
    ];
    for (name, text, at, msg) in cases {
        let p = write(dir.path(), name, text);
        let e = import_files(std::slice::from_ref(&p), &Options::default()).unwrap_err();
        let s = e.to_string();
        assert!(s.contains(at) && s.contains(msg), "{name}: {s}");
        let out = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
            .arg("import")
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(at) && err.contains(msg), "{name}: {err}");
    }
}

// ------------------------------------------------------------------------------------------------
// The lab (netns-tests/lab) regenerated from seed-shaped input.

/// The lab's own yaml for a node, produced by the lab script's functions (bash).
fn lab_yaml(func: &str, args: &str, lab_dir: &Path) -> Config {
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("netns-tests/lab");
    let script = format!(
        "set -e; eval \"$(sed -n '/^storage_yaml()/,/^}}/p;/^ha_yaml()/,/^}}/p' '{}')\"; \
         NET=192.168.3; VIP=$NET.100; LAB_DIR='{}'; {func} {args}",
        lab.display(),
        lab_dir.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    config::parse_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

const LAB_KEEPALIVED: &str = "! Configuration File for keepalived
global_defs {
   router_id ha1
}
vrrp_script chk_nginx {
    script \"/etc/keepalived/nginx_check.sh\"
    interval 2
    weight -20
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 33
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    track_script {
        chk_nginx
    }
    virtual_ipaddress {
        192.168.3.100/24
    }
}
";

const LAB_CHECK: &str = "#!/bin/bash
A=`ps -C nginx --no-header |wc -l`
if [ $A -eq 0 ];then
    /usr/local/nginx/sbin/nginx
    sleep 2
    if [ `ps -C nginx --no-header |wc -l` -eq 0 ];then
        killall keepalived
    fi
fi
";

const LAB_NGINX: &str = "worker_processes 1;
events {
    worker_connections 1024;
}
http {
    proxy_cache_path /var/cache/fdfs levels=1:2 keys_zone=http-cache:200m max_size=256m inactive=1d;
    upstream fdfs_group1 {
        server 192.168.3.23:8888 weight=1 max_fails=2 fail_timeout=30s;
        server 192.168.3.24:8888 weight=1 max_fails=2 fail_timeout=30s;
    }
    upstream fdfs_group2 {
        server 192.168.3.25:8888 weight=1 max_fails=2 fail_timeout=30s;
        server 192.168.3.26:8888 weight=1 max_fails=2 fail_timeout=30s;
    }
    server {
        listen 80;
        location /dfs/group1/M00 {
            proxy_cache http-cache;
            proxy_cache_valid 200 304 12h;
            proxy_cache_key $uri$is_args$args;
            proxy_pass http://fdfs_group1/group1/M00;
            expires 30d;
        }
        location /dfs/group2/M00 {
            proxy_cache http-cache;
            proxy_cache_valid 200 304 12h;
            proxy_cache_key $uri$is_args$args;
            proxy_pass http://fdfs_group2/group2/M00;
            expires 30d;
        }
        location ~/purge(/.*) {
            allow 127.0.0.1;
            allow 192.168.3.0/24;
            deny all;
            proxy_cache_purge http-cache $1$is_args$args;
        }
    }
}
";

#[test]
fn the_lab_front_node_is_regenerated_from_seed_shaped_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = vec![
        write(d, "ha1/keepalived.conf", LAB_KEEPALIVED),
        write(d, "ha1/nginx_check.sh", LAB_CHECK),
        write(d, "ha1/nginx.conf", LAB_NGINX),
        write(
            d,
            "ha1/tracker.conf",
            "port=22122\nbase_path=/var/lib/fdfs-ha\ncheck_active_interval = 10\n",
        ),
        write(
            d,
            "ha1/client.conf",
            "tracker_server=192.168.3.21:22122\ntracker_server=192.168.3.22:22122\n",
        ),
    ];
    let imp = import_files(&files, &Options::default()).unwrap();
    let got = checked("lab ha1", &imp);
    let want = lab_yaml("ha_yaml", "ha1 21 100", d);

    assert_eq!(got.node, want.node);
    let (gv, wv) = (
        &got.vrrp.as_ref().unwrap().instances[0],
        &want.vrrp.as_ref().unwrap().instances[0],
    );
    assert_eq!(gv.name, wv.name);
    assert_eq!(gv.interface, wv.interface);
    assert_eq!(gv.virtual_router_id, wv.virtual_router_id);
    assert_eq!(gv.priority, wv.priority);
    assert_eq!(gv.advert_int, wv.advert_int);
    assert_eq!(gv.preempt, wv.preempt);
    assert_eq!(gv.auth, wv.auth);
    assert_eq!(gv.virtual_ipaddress, wv.virtual_ipaddress);
    // One track that gives up the VIP while the gateway's probe fails, and that probe restarts
    // the gateway.
    assert_eq!(gv.track.len(), wv.track.len());
    assert_eq!(gv.track[0].weight, wv.track[0].weight);
    let probe = |c: &Config, name: &str| c.probes.iter().find(|p| p.name == name).cloned().unwrap();
    let (gp, wp) = (
        probe(&got, &gv.track[0].probe),
        probe(&want, &wv.track[0].probe),
    );
    assert_eq!(gp.on_fail, wp.on_fail);
    assert_eq!(
        config::probe_target_component(&gp, &got),
        config::probe_target_component(&wp, &want)
    );

    let (gt, wt) = (
        got.tracker.as_ref().unwrap(),
        want.tracker.as_ref().unwrap(),
    );
    assert_eq!(gt.listen, wt.listen);
    assert_eq!(gt.check_active_interval, wt.check_active_interval);

    let (gg, wg) = (
        got.gateway.as_ref().unwrap(),
        want.gateway.as_ref().unwrap(),
    );
    assert_eq!(gg.listen, wg.listen);
    assert_eq!(gg.prefix, wg.prefix);
    assert_eq!(gg.trackers, wg.trackers);
    assert_eq!(gg.expires, wg.expires);
    assert_eq!(gg.purge_allow, wg.purge_allow);
    let (gc, wc) = (gg.cache.as_ref().unwrap(), wg.cache.as_ref().unwrap());
    assert_eq!(gc.max_size, wc.max_size);
    assert_eq!(gc.inactive, wc.inactive);
    assert_eq!(gc.valid, wc.valid);
}

#[test]
fn the_lab_storages_are_regenerated_from_seed_shaped_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, oct, group) in [("s23", 23, "group1"), ("s25", 25, "group2")] {
        let files = vec![
            write(
                d,
                &format!("{name}/storage.conf"),
                &format!(
                    "group_name={group}\nport=23000\nbase_path={0}/{name}/store0\n\
                     store_path0={0}/{name}/store0\ntracker_server=192.168.3.21:22122\n\
                     tracker_server=192.168.3.22:22122\nheart_beat_interval=2\n\
                     stat_report_interval=5\nhttp.server_port=8888\n",
                    d.display()
                ),
            ),
            write(
                d,
                &format!("{name}/mod_fastdfs.conf"),
                &format!(
                    "tracker_server=192.168.3.21:22122\ntracker_server=192.168.3.22:22122\n\
                     storage_server_port=23000\ngroup_name={group}\nurl_have_group_name = true\n\
                     store_path0={}/{name}/store0\n",
                    d.display()
                ),
            ),
            write(
                d,
                &format!("{name}/nginx.conf"),
                "http {\n server {\n  listen 8888;\n  location ~/group([0-9])/M00 {\n   \
                 ngx_fastdfs_module;\n  }\n }\n}\n",
            ),
        ];
        let opts = Options {
            node: Some(name.to_string()),
        };
        let imp = import_files(&files, &opts).unwrap();
        let got = checked(name, &imp);
        let want = lab_yaml("storage_yaml", &format!("{name} {oct} {group}"), d);
        assert_eq!(got.node, want.node);
        let (gs, ws) = (
            got.storage.as_ref().unwrap(),
            want.storage.as_ref().unwrap(),
        );
        assert_eq!(gs.group, ws.group);
        assert_eq!(gs.listen, ws.listen);
        assert_eq!(gs.trackers, ws.trackers);
        assert_eq!(gs.store_paths, ws.store_paths);
        assert_eq!(gs.heart_beat_interval, ws.heart_beat_interval);
        assert_eq!(gs.stat_report_interval, ws.stat_report_interval);
        let (gh, wh) = (gs.http.as_ref().unwrap(), ws.http.as_ref().unwrap());
        assert_eq!(gh.listen, wh.listen);
        assert_eq!(gh.url_have_group_name, wh.url_have_group_name);
    }
}
