//! `fdfs-ha check` and config validation: every error names its key path and line.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use fdfs_ha::config::{check_str, parse_str, ConfigError};
use std::process::Command;

fn errors_of(text: &str) -> Vec<ConfigError> {
    match check_str(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts an error at `path` on `line` whose message contains `needle`.
fn expect(errors: &[ConfigError], path: &str, line: usize, needle: &str) {
    let found = errors
        .iter()
        .any(|e| e.path == path && e.line == Some(line) && e.message.contains(needle));
    assert!(
        found,
        "no error `{path}: line {line}: ...{needle}...` in:\n{}",
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn base(dir: &std::path::Path) -> String {
    format!(
        "node: t1
data_dir: {d}/data
status:
  listen: 127.0.0.1:0
tracker:
  listen: 127.0.0.1:0
storage:
  group: group1
  listen: 127.0.0.1:0
  trackers: [\"127.0.0.1:22122\"]
  store_paths:
    - {d}/store0
",
        d = dir.display()
    )
}

#[test]
fn shipped_ha_yaml_checks_clean() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ha.yaml");
    let checked = fdfs_ha::config::check_file(std::path::Path::new(path))
        .unwrap_or_else(|e| panic!("ha.yaml: {e:?}"));
    let vrrp = checked.config.vrrp.as_ref().expect("ha.yaml has vrrp");
    assert_eq!(vrrp.instances[0].virtual_router_id, 33);
    assert_eq!(vrrp.instances[0].priority, 100);
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["check", "-c", path])
        .output()
        .expect("run fdfs-ha check");
    assert!(
        out.status.success(),
        "check ha.yaml failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn minimal_config_without_vrrp_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = check_str(&base(dir.path())).expect("valid").config;
    assert!(cfg.vrrp.is_none());
}

#[test]
fn every_unknown_key_is_an_error_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}  grup: group2\ngateway:\n  trackers: [\"127.0.0.1:22122\"]\n  cahce: {{}}\n",
        base(dir.path())
    );
    let errors = errors_of(&text);
    expect(&errors, "storage.grup", 13, "unknown key `grup`");
    expect(&errors, "gateway.cahce", 16, "unknown key `cahce`");
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn wrong_types_name_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}probes:\n  - name: p\n    tcp: 127.0.0.1:1\n    interval: soon\n    rise: many\n",
        base(dir.path())
    );
    let errors = errors_of(&text);
    expect(&errors, "probes[0].interval", 16, "invalid duration");
    expect(&errors, "probes[0].rise", 17, "invalid type");
    let errors = errors_of("node: [1, 2]\n");
    expect(&errors, "node", 1, "invalid type");
}

#[test]
fn missing_required_key_is_reported() {
    let errors = errors_of("data_dir: /tmp\n");
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("missing field `node`")),
        "{errors:?}"
    );
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let errors = errors_of("node: a\nstorage: [\n  x: y\n");
    assert!(errors[0].line.is_some(), "{errors:?}");
    assert!(errors[0].message.contains("YAML syntax"));
}

#[test]
fn vrrp_validation_errors_each_have_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{}probes:
  - {{ name: gw, tcp: "127.0.0.1:80" }}
vrrp:
  instances:
    - name: VI_1
      interface: lo
      virtual_router_id: 0
      priority: 0
      advert_int: 1500ms
      auth: {{ type: pass, password: "123456789" }}
      virtual_ipaddress: [192.168.3.100/33, 224.0.0.1]
      unicast_peers: [224.0.0.18, 10.0.0.2, 10.0.0.2]
      track:
        - {{ probe: nope, weight: -20 }}
        - {{ probe: gw, weight: 0 }}
    - name: VI_1
      interface: "bad/name"
      virtual_router_id: 7
      priority: 100
      virtual_ipaddress: [10.9.9.9]
"#,
        base(dir.path())
    );
    let errors = errors_of(&text);
    let l = 18; // line of `interface: lo`
    expect(
        &errors,
        "vrrp.instances[0].virtual_router_id",
        l + 1,
        "1..=255",
    );
    expect(&errors, "vrrp.instances[0].priority", l + 2, "1..=255");
    expect(
        &errors,
        "vrrp.instances[0].advert_int",
        l + 3,
        "whole seconds",
    );
    expect(
        &errors,
        "vrrp.instances[0].auth.password",
        l + 4,
        "1..=8 bytes",
    );
    expect(
        &errors,
        "vrrp.instances[0].virtual_ipaddress[0]",
        l + 5,
        "prefix length",
    );
    expect(
        &errors,
        "vrrp.instances[0].virtual_ipaddress[1]",
        l + 5,
        "cannot be a virtual address",
    );
    expect(
        &errors,
        "vrrp.instances[0].unicast_peers[0]",
        l + 6,
        "not a unicast peer",
    );
    expect(
        &errors,
        "vrrp.instances[0].unicast_peers[2]",
        l + 6,
        "duplicate peer",
    );
    expect(
        &errors,
        "vrrp.instances[0].track[0].probe",
        l + 8,
        "no probe named `nope`",
    );
    expect(
        &errors,
        "vrrp.instances[0].track[1].weight",
        l + 9,
        "0 has no effect",
    );
    expect(
        &errors,
        "vrrp.instances[1].name",
        l + 10,
        "duplicate instance name",
    );
    expect(
        &errors,
        "vrrp.instances[1].interface",
        l + 11,
        "not a valid interface name",
    );
}

#[test]
fn probe_storage_gateway_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        r#"node: t1
data_dir: {d}/data
external:
  - name: nginx
    command: ["/bin/sleep", "1000"]
probes:
  - name: two
    tcp: 127.0.0.1:1
    http: http://127.0.0.1:1/
  - name: none
  - name: badproc
    process: apache
  - name: restart-nothing
    tcp: 127.0.0.1:9
    on_fail: restart
  - name: badexec
    exec: ["/nonexistent/check.sh"]
  - name: badurl
    http: https://127.0.0.1/
storage:
  group: "group/1-with-a-long-name"
  trackers: ["nohost", "127.0.0.1:0"]
  store_paths: []
gateway:
  prefix: dfs
  trackers: ["127.0.0.1:22122"]
  purge_allow: [127.0.0.1/40, banana]
  cache:
    valid:
      "200 304": 1h
      "2xx": 1m
"#
    );
    let errors = errors_of(&text);
    expect(&errors, "probes[0]", 7, "several kinds");
    expect(&errors, "probes[1]", 10, "exactly one of");
    expect(
        &errors,
        "probes[2].process",
        12,
        "no external component named `apache`",
    );
    expect(&errors, "probes[3].on_fail", 15, "needs a component");
    expect(&errors, "probes[4].exec[0]", 17, "not an executable");
    expect(&errors, "probes[5].http", 19, "only http://");
    expect(&errors, "storage.group", 21, "1..=16");
    expect(&errors, "storage.trackers[0]", 22, "not host:port");
    expect(&errors, "storage.trackers[1]", 22, "port 0");
    expect(&errors, "storage.store_paths", 23, "at least one");
    expect(&errors, "gateway.prefix", 25, "must start with '/'");
    expect(&errors, "gateway.purge_allow[0]", 27, "prefix length");
    expect(&errors, "gateway.purge_allow[1]", 27, "not an IP address");
    expect(
        &errors,
        "gateway.cache.valid.2xx",
        31,
        "not a list of HTTP statuses",
    );
}

#[test]
fn a_directory_that_cannot_be_created_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let text = base(dir.path()).replace(
        &format!("- {}/store0", dir.path().display()),
        &format!("- {}/sub/store0", file.display()),
    );
    let errors = errors_of(&text);
    expect(
        &errors,
        "storage.store_paths[0]",
        12,
        "does not exist and cannot be created",
    );
    assert!(
        errors[0]
            .to_string()
            .starts_with("12:7: storage.store_paths[0]: directory "),
        "{}",
        errors[0]
    );
    // A path under a missing but creatable parent is fine.
    let ok = base(dir.path()).replace("/store0", "/a/b/c/store0");
    check_str(&ok).expect("creatable path accepted");
}

#[test]
fn listen_conflicts_and_status_must_be_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let text = base(dir.path())
        .replace(
            "listen: 127.0.0.1:0\ntracker",
            "listen: 0.0.0.0:8399\ntracker",
        )
        .replace(
            "tracker:\n  listen: 127.0.0.1:0",
            "tracker:\n  listen: 127.0.0.1:8399",
        );
    let errors = errors_of(&text);
    expect(&errors, "status.listen", 4, "not a loopback address");
    expect(&errors, "tracker.listen", 6, "conflicts with status.listen");
}

#[test]
fn check_command_prints_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let text = format!(
        "{}gateway:\n  prefix: dfs\n  trackers: [\"x:1\"]\n  purge_allow: [nope]\n",
        base(dir.path())
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run fdfs-ha check");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display();
    assert!(
        stderr.contains(&format!("{file}:14:3: gateway.prefix: must start with '/'")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:16:17: gateway.purge_allow[0]: ")),
        "{stderr}"
    );
}

#[test]
fn track_weight_accepts_numbers_and_fault_only() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}probes: [{{ name: p, tcp: \"127.0.0.1:1\" }}]\nvrrp:\n  instances:\n    - {{ name: V, interface: lo, virtual_router_id: 1, priority: 100, virtual_ipaddress: [10.1.1.1], track: [{{ probe: p, weight: heavy }}] }}\n",
        base(dir.path())
    );
    let errors = match parse_str(&text) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    expect(
        &errors,
        "vrrp.instances[0].track[0].weight",
        16,
        "expected a number or `fault`",
    );
}

#[test]
fn unknown_keys_inside_list_items_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}probes:\n  - name: a\n    tcp: \"127.0.0.1:1\"\n  - name: b\n    tpc: \"127.0.0.1:2\"\n    intervall: 1s\n",
        base(dir.path())
    );
    let errors = errors_of(&text);
    expect(&errors, "probes[1].tpc", 17, "unknown key `tpc`");
    expect(
        &errors,
        "probes[1].intervall",
        18,
        "unknown key `intervall`",
    );
}

#[test]
fn type_errors_and_value_errors_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "node: t1
data_dir: {d}/data
storage:
  group: \"group/1\"
  grup: 1
  trackers: [\"nohost\"]
  store_paths: [{d}/s]
  max_connections: lots
probes:
  - name: a
    tcp: 127.0.0.1:1
    interval: 5 parsecs
",
        d = dir.path().display()
    );
    let errors = errors_of(&text);
    expect(&errors, "storage.group", 4, "may only contain");
    expect(&errors, "storage.grup", 5, "unknown key");
    expect(&errors, "storage.trackers[0]", 6, "not host:port");
    expect(&errors, "storage.max_connections", 8, "invalid type");
    expect(&errors, "probes[0].interval", 12, "invalid duration unit");
    assert_eq!(errors.len(), 5, "{errors:?}");
    let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "errors come in file order");
}

#[test]
fn direct_io_min_size_takes_a_size_or_null() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}  direct_io_min_size: 1 potato\n", base(dir.path()));
    let errors = errors_of(&text);
    expect(
        &errors,
        "storage.direct_io_min_size",
        13,
        "invalid size unit",
    );
    let off = parse_str(&format!("{}  direct_io_min_size: null\n", base(dir.path()))).unwrap();
    assert_eq!(off.storage.unwrap().direct_io_min_size, None);
    let set = parse_str(&format!("{}  direct_io_min_size: 8MiB\n", base(dir.path()))).unwrap();
    assert_eq!(
        set.storage.unwrap().direct_io_min_size,
        Some(fdfs_ha::config::ByteSize(8 << 20))
    );
    let default = parse_str(&base(dir.path())).unwrap();
    assert_eq!(
        default.storage.unwrap().direct_io_min_size,
        Some(fdfs_ha::config::ByteSize(1 << 20))
    );
}

/// Runs `fdfs-ha check` on `text`; returns (exit code, stderr).
fn check_cli(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ha.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fdfs-ha"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .expect("run fdfs-ha check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn the_inputs_that_hung_the_old_scanner_answer_with_a_position() {
    // A composite key, and a flow sequence closed by the wrong bracket (issue 26).
    let (code, stderr, file) = check_cli("a: {[x]: 1}\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{file}:1:")), "{stderr}");
    let (code, stderr, file) = check_cli("node: x\ntrackers: [\"127.0.0.1:22122\"}\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{file}:2:11: (top level): YAML syntax: ")),
        "{stderr}"
    );
    assert!(stderr.contains("1 error\n"), "{stderr}");
}

#[test]
fn a_bad_priority_does_not_hide_the_errors_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}vrrp:
  instances:
    - name: VI_1
      interface: lo
      virtual_router_id: 7
      priority: 300
      virtual_ipaddress: [10.9.9.9]
      preemt: false
gateway:
  trackers: [\"127.0.0.1:22122\"]
  cahce: {{}}
",
        base(dir.path())
    );
    let errors = errors_of(&text);
    expect(&errors, "vrrp.instances[0].priority", 18, "invalid value");
    expect(
        &errors,
        "vrrp.instances[0].preemt",
        20,
        "unknown key `preemt` (did you mean `preempt`?)",
    );
    expect(
        &errors,
        "gateway.cahce",
        23,
        "unknown key `cahce` (did you mean `cache`?)",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    let (code, stderr, file) = check_cli(&text);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!(
            "{file}:18:7: vrrp.instances[0].priority: invalid value"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:23:3: gateway.cahce")),
        "{stderr}"
    );
    assert!(stderr.ends_with("3 errors\n"), "{stderr}");
}

#[test]
fn check_refuses_256_vips_with_the_words_run_uses() {
    let dir = tempfile::tempdir().unwrap();
    let vips: Vec<String> = (0..256)
        .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
        .collect();
    let text = format!(
        "{}vrrp:\n  instances:\n    - {{ name: V, interface: lo, virtual_router_id: 9, priority: 100, virtual_ipaddress: [{}] }}\n",
        base(dir.path()),
        vips.join(", ")
    );
    let errors = errors_of(&text);
    let cfg: fdfs_ha::config::VrrpConfig = serde_saphyr::from_str(
        &format!(
            "instances:\n  - {{ name: V, interface: lo, virtual_router_id: 9, priority: 100, virtual_ipaddress: [{}] }}\n",
            vips.join(", ")
        ),
    )
    .unwrap();
    // `run` (vrrp start-up) and `check` apply the same rule set, so the same words.
    let run_words = fdfs_ha::config::vrrp_rules::check(&cfg);
    assert_eq!(run_words.len(), 1, "{run_words:?}");
    let words = &run_words[0];
    assert_eq!(words.path, "vrrp.instances[0].virtual_ipaddress");
    assert!(words.message.contains("at most 255"), "{words}");
    expect(&errors, &words.path, 15, &words.message);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn every_corpus_input_returns_without_panicking() {
    // The config fuzz target's corpus, run through the parser as a plain test (the CI form when
    // cargo-fuzz and a nightly toolchain are not available).
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/config");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("fuzz/corpus/config") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = text.to_string();
        std::thread::spawn(move || {
            let _ = check_str(&t);
            let _ = tx.send(());
        });
        // A hang shows as a failure naming the input, not as a stuck test run.
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{} did not return", path.display()));
        n += 1;
    }
    assert!(n >= 2, "corpus has {n} inputs");
}

#[test]
fn gateway_listeners_and_http_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}gateway:\n  prefix: /dfs\n  trackers: [\"127.0.0.1:22122\"]\n  listeners:\n    - listen: 127.0.0.1:8080\n      prefixes: [dfs, \"\"]\n  trusted_proxies: [nope]\n  gzip: {{level: 12}}\n  hotlink: {{valid_referers: []}}\n  error_pages: {{\"200\": /x}}\n  anti_steal: {{secret_key: \"\"}}\n",
        base(dir.path())
    );
    let errors = errors_of(&text);
    for (path, needle) in [
        ("gateway.prefix", "unused when gateway.listeners"),
        ("gateway.listeners[0].prefixes[0]", "must start with '/'"),
        ("gateway.trusted_proxies[0]", ""),
        ("gateway.gzip.level", "1..=9"),
        ("gateway.hotlink.valid_referers", "at least one"),
        ("gateway.error_pages", "bad status"),
        ("gateway.anti_steal.secret_key", "empty"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.path == path && e.message.contains(needle)),
            "no {path}: {needle} in {errors:?}"
        );
    }
    assert_eq!(errors.len(), 7, "{errors:?}");
}

#[test]
fn ipv6_vips_need_version_3_and_one_family_per_instance_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ok = format!(
        "{}vrrp:\n  instances:\n    - name: VI_6\n      interface: lo\n      virtual_router_id: 33\n      priority: 100\n      version: 3\n      advert_int: 100ms\n      virtual_ipaddress:\n        - \"fd00:3::100/64\"\n        - \"fd00:3::101/64\"\n",
        base(dir.path())
    );
    check_str(&ok).unwrap_or_else(|e| panic!("{e:?}"));
    let lines = ok.lines().count();
    let mixed = ok.replace("\"fd00:3::101/64\"", "192.168.3.100/24");
    expect(
        &errors_of(&mixed),
        "vrrp.instances[0].virtual_ipaddress[1]",
        lines,
        "192.168.3.100 is IPv4 but vrrp.instances[0].virtual_ipaddress[0] (fd00:3::100) is IPv6: one address family per instance",
    );
    let v2 = ok.replace("      version: 3\n      advert_int: 100ms\n", "");
    expect(
        &errors_of(&v2),
        "vrrp.instances[0].virtual_ipaddress",
        lines - 4,
        "IPv6 VIPs need `version: 3`",
    );
}
