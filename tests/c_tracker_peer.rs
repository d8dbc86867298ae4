//! Over real sockets, an fdfs-ha tracker next to stand-in C trackers that send exactly the bytes
//! C FastDFS 6.16.1 trackers sent (tracker-pair.pcap; issue 17, acceptance 1): a C tracker
//! starting empty copies the system files from us (T2's #23-#35 against T1), a C leader
//! announces itself and is followed (#69-#74 against T1, then T2's pings #720-#725); we win an
//! election and announce ourselves (#67-#74 with the roles swapped), lead storages (BEAT flags
//! 5), follow a C leader with JOIN_LEADER + pings and take over when it is gone (phase C).
//! The stand-in C trackers answer what the capture's C trackers answered; the storages' JOIN
//! bodies are the captured ones with the tracker list naming the sockets of this test.
#![allow(clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

mod node_support;
use node_support::connect_from;

// Shared with c_replay.rs, which uses every part of it.
#[allow(dead_code)]
#[path = "c_cluster/pcap.rs"]
mod pcap;

use fdfs_ha::proto::cmd::{self, errno};
use fdfs_ha::proto::tracker::{JoinReq, ServerListReply};
use fdfs_ha::proto::tracker_peer as tp;
use fdfs_ha::proto::{Header, HEADER_LEN};
use fdfs_ha::tracker::TrackerServer;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const PCAP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/c-cluster/tracker-pair.pcap"
);

/// The client-side messages of capture connection `conn` (requests only), in order.
fn requests(cap: &pcap::Capture, conn: usize) -> Vec<pcap::Msg> {
    cap.messages()
        .filter(|m| m.conn == conn && m.from_client)
        .cloned()
        .collect()
}

fn frame(m: &pcap::Msg) -> Vec<u8> {
    let mut out = Header::new(m.cmd, m.status, m.body.len() as u64)
        .encode()
        .to_vec();
    out.extend_from_slice(&m.body);
    out
}

async fn call(s: &mut TcpStream, bytes: &[u8]) -> (u8, Vec<u8>) {
    s.write_all(bytes).await.unwrap();
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).await.unwrap();
    let h = Header::decode(&h).unwrap();
    let mut body = vec![0u8; h.pkg_len as usize];
    s.read_exact(&mut body).await.unwrap();
    (h.status, body)
}

/// The messages a stand-in C tracker received: (cmd, body).
/// (cmd, body, connection number in accept order).
type Received = Arc<Mutex<Vec<(u8, Vec<u8>, usize)>>>;

/// What a stand-in C tracker answers besides empty OKs.
struct Script {
    /// GET_STATUS (17 bytes as in #24/#68, or #426 when it leads) ...
    status: tp::TrackerStatus,
    /// ... after this many ENOENT ("no data yet", #22).
    enoent_first: usize,
    /// GET_ONE_SYS_FILE request body -> the captured answer body.
    files: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The system-file answers of capture connection `conn` (T1's #28-#34 on conn#12, phase D's
/// #963-#969 on conn#53), by request body.
fn captured_files(cap: &pcap::Capture, conn: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let msgs: Vec<&pcap::Msg> = cap.messages().filter(|m| m.conn == conn).collect();
    msgs.windows(2)
        .filter(|w| w[0].from_client && w[0].cmd == tp::TRACKER_GET_ONE_SYS_FILE)
        .map(|w| (w[0].body.clone(), w[1].body.clone()))
        .collect()
}

fn script(status: tp::TrackerStatus) -> Script {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    Script {
        status,
        enoent_first: 0,
        files: captured_files(&cap, 12),
    }
}

/// A stand-in C tracker on `ip` (any port) with `status`; see [`stand_in_with`].
async fn stand_in(
    ip: &str,
    status: tp::TrackerStatus,
) -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    stand_in_with(ip, script(status)).await
}

/// A stand-in C tracker on `ip` (any port): answers GET_STATUS and GET_ONE_SYS_FILE as
/// `script` says and every other tracker command with an empty OK, as the capture's trackers
/// did; records what it got. Dropping the task closes it.
async fn stand_in_with(
    ip: &str,
    script: Script,
) -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let got: Received = Arc::default();
    let rec = got.clone();
    let script = Arc::new(script);
    let statuses = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let task = tokio::spawn(async move {
        // Aborting this task drops the set, which ends every connection (a tracker gone).
        let mut conns = tokio::task::JoinSet::new();
        for conn in 0.. {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let rec = rec.clone();
            let script = script.clone();
            let statuses = statuses.clone();
            conns.spawn(async move {
                loop {
                    let mut h = [0u8; HEADER_LEN];
                    if s.read_exact(&mut h).await.is_err() {
                        return;
                    }
                    let h = Header::decode(&h).unwrap();
                    let mut body = vec![0u8; h.pkg_len as usize];
                    s.read_exact(&mut body).await.unwrap();
                    rec.lock().unwrap().push((h.cmd, body.clone(), conn));
                    let (status, out) = match h.cmd {
                        tp::TRACKER_GET_STATUS => {
                            let n = statuses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if n < script.enoent_first {
                                (2, Vec::new())
                            } else {
                                (0, script.status.encode())
                            }
                        }
                        tp::TRACKER_GET_ONE_SYS_FILE => script
                            .files
                            .iter()
                            .find(|(req, _)| *req == body)
                            .map(|(_, a)| (0, a.clone()))
                            .unwrap_or((22, Vec::new())),
                        _ => (0, Vec::new()),
                    };
                    let mut frame = Header::new(cmd::RESP, status, out.len() as u64)
                        .encode()
                        .to_vec();
                    frame.extend_from_slice(&out);
                    if s.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, got, task)
}

/// A captured JOIN body with the tracker list naming `trackers` (current tracker: `to`).
fn join_naming(m: &pcap::Msg, to: SocketAddr, trackers: &[SocketAddr]) -> Vec<u8> {
    let mut req = JoinReq::decode(&m.body).unwrap();
    req.current_tracker_ip = to.ip().to_string();
    req.trackers = trackers.iter().map(|a| a.to_string()).collect();
    let mut out = Header::new(m.cmd, 0, 0).encode().to_vec();
    let body = req.encode();
    out[..8].copy_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

async fn start(
    ip: &str,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tempfile::TempDir,
) {
    let y = format!("node: t\ntracker:\n  listen: {ip}:0\n  reserved_storage_space: 1%\n");
    let cfg = fdfs_ha::config::parse_str(&y).unwrap().tracker.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TrackerServer::bind(&cfg, dir.path()).await.unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));
    (addr, stop, task, dir)
}

/// Our GET_STATUS answer, asked from `from`.
async fn status_of(from: &str, addr: SocketAddr) -> tp::TrackerStatus {
    let mut c = connect_from(from, addr).await;
    let mut req = Header::new(tp::TRACKER_GET_STATUS, 0, 0).encode().to_vec();
    req.truncate(HEADER_LEN);
    let (st, body) = call(&mut c, &req).await;
    assert_eq!(st, 0);
    tp::TrackerStatus::decode(&body).unwrap()
}

/// Polls `f` every 100 ms for up to 20 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

const EQUAL: tp::TrackerStatus = tp::TrackerStatus {
    if_leader: false,
    running_time: 0,
    restart_interval: 0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_trackers_copy_our_system_files_and_lead_us() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (addr, stop, task, _dir) = start("127.0.0.21").await;
    // T2, reachable, without data while our first JOINs are held (#22: nothing to copy),
    // then answering as in #68: it ranks above us (larger address), so we wait for its
    // announcement instead of leading.
    let (t2_addr, t2_got, _t2) = stand_in_with(
        "127.0.0.22",
        Script {
            enoent_first: 1,
            ..script(EQUAL)
        },
    )
    .await;
    let trackers = [addr, t2_addr];

    // Before any storage joined: GET_STATUS is ENOENT (#19/#22: "nobody has data").
    let t2 = requests(&cap, 12);
    let mut peer = connect_from("127.0.0.22", addr).await;
    assert_eq!(call(&mut peer, &frame(&t2[0])).await.0, 2);

    // S2 and S1 join as in #16 and #20 (kept open, as storages keep them).
    let mut s2 = connect_from("127.0.0.24", addr).await;
    let j = join_naming(&requests(&cap, 7)[0], addr, &trackers);
    assert_eq!(call(&mut s2, &j).await.0, 0);
    let mut s1 = connect_from("127.0.0.23", addr).await;
    let j = join_naming(&requests(&cap, 10)[0], addr, &trackers);
    assert_eq!(call(&mut s1, &j).await.0, 0);
    // We asked T2 before the first JOIN was answered and copied nothing (#19/#22).
    assert_eq!(cmds(&t2_got)[..1], [tp::TRACKER_GET_STATUS]);
    assert!(!cmds(&t2_got).contains(&tp::TRACKER_GET_SYS_FILES_START));

    // T2 starting empty (#23-#35): status, then the four system files on one connection.
    assert_eq!(t2[0].cmd, tp::TRACKER_GET_STATUS);
    let (st, body) = call(&mut peer, &frame(&t2[0])).await;
    assert_eq!((st, body.len()), (0, 17));
    let status = tp::TrackerStatus::decode(&body).unwrap();
    assert!(!status.if_leader);
    assert_eq!((status.running_time, status.restart_interval), (0, 0));
    let copy: Vec<u8> = t2[1..7].iter().map(|m| m.cmd).collect();
    assert_eq!(copy, [61, 63, 63, 63, 63, 62]);
    let mut files = Vec::new();
    for m in &t2[1..7] {
        let (st, body) = call(&mut peer, &frame(m)).await;
        assert_eq!(st, 0, "cmd {}", m.cmd);
        if m.cmd == tp::TRACKER_GET_ONE_SYS_FILE {
            let size = u64::from_be_bytes(body[..8].try_into().unwrap()) as usize;
            assert_eq!(size, body.len() - 8, "whole file in one answer");
            files.push(String::from_utf8(body[8..].to_vec()).unwrap());
        }
    }
    assert!(files[0].contains("[Group001]\n\tgroup_name=group1\n\tstorage_port=23000\n"));
    assert!(files[1].contains("# storage: 127.0.0.23:23000\n"));
    assert!(files[1].contains("# storage: 127.0.0.24:23000\n"));
    assert!(files[1].ends_with("\n[Global]\n\tstorage_count=2\n"));
    assert_eq!(files[2].lines().count(), 2);
    assert!(files[3].is_empty());

    // Election (#69-#74): T2 asks our status, then announces itself (its address here); we
    // accept.
    assert_eq!(
        t2[7..10].iter().map(|m| m.cmd).collect::<Vec<_>>(),
        [64, 66, 67]
    );
    assert_eq!(t2[8].body, b"127.0.0.22:22122");
    let (st, body) = call(&mut peer, &frame(&t2[7])).await;
    assert_eq!(
        (st, tp::TrackerStatus::decode(&body).unwrap().if_leader),
        (0, false)
    );
    for c in [
        tp::TRACKER_NOTIFY_NEXT_LEADER,
        tp::TRACKER_COMMIT_NEXT_LEADER,
    ] {
        let me = t2_addr.to_string();
        let mut f = Header::new(c, 0, me.len() as u64).encode().to_vec();
        f.extend_from_slice(me.as_bytes());
        assert_eq!(call(&mut peer, &f).await.0, 0);
    }
    // Storages are still served; as a follower we tell them nothing (flags 0, #47).
    let beat = requests(&cap, 10)
        .into_iter()
        .find(|m| m.cmd == cmd::STORAGE_BEAT)
        .unwrap();
    assert_eq!(call(&mut s1, &frame(&beat)).await, (0, vec![0]));
    assert!(!status_of("127.0.0.22", addr).await.if_leader);

    // A follower's JOIN_LEADER and pings (T2 -> T1 after phase C, conn#48, when T1 led): the
    // first ping gets the group list (one 32-byte entry), later ones an empty body. We lead
    // first (told so as T2 told us above); a follower refuses pings, as C does.
    let mut pinger = connect_from("127.0.0.22", addr).await;
    let ping = requests(&cap, 48)
        .into_iter()
        .find(|m| m.cmd == tp::TRACKER_PING_LEADER)
        .unwrap();
    assert_eq!(call(&mut pinger, &frame(&ping)).await.0, errno::EOPNOTSUPP);
    for c in [
        tp::TRACKER_NOTIFY_NEXT_LEADER,
        tp::TRACKER_COMMIT_NEXT_LEADER,
    ] {
        let me = addr.to_string();
        let mut f = Header::new(c, 0, me.len() as u64).encode().to_vec();
        f.extend_from_slice(me.as_bytes());
        assert_eq!(call(&mut peer, &f).await.0, 0);
    }
    let f = requests(&cap, 48);
    let mut follower = connect_from("127.0.0.22", addr).await;
    let (st, _) = call(&mut follower, &frame(&f[0])).await;
    assert_eq!(st, 0);
    let pings: Vec<&pcap::Msg> = f
        .iter()
        .filter(|m| m.cmd == tp::TRACKER_PING_LEADER)
        .collect();
    let (st, first) = call(&mut follower, &frame(&f[1])).await;
    assert_eq!((f[1].cmd, st, first.len()), (tp::TRACKER_JOIN_LEADER, 0, 0));
    let (st, first) = call(&mut follower, &frame(pings[0])).await;
    assert_eq!((st, first.len()), (0, 32));
    assert_eq!(&first[..6], b"group1");
    let (st, next) = call(&mut follower, &frame(pings[1])).await;
    assert_eq!((st, next.len()), (0, 0));

    assert!(status_of("127.0.0.22", addr).await.if_leader);

    stop.cancel();
    drop((peer, follower, s1, s2));
    task.await.unwrap().unwrap();
}

/// A storage's BEAT on its JOIN connection; the answer body.
async fn beat(s: &mut TcpStream) -> Vec<u8> {
    let f = Header::new(cmd::STORAGE_BEAT, 0, 0).encode().to_vec();
    let (st, body) = call(s, &f).await;
    assert_eq!(st, 0);
    body
}

fn cmds(got: &Received) -> Vec<u8> {
    got.lock().unwrap().iter().map(|(c, _, _)| *c).collect()
}

/// Roles swapped from phase A (#67-#74): the C tracker has the smaller address, so we win,
/// announce ourselves with 66 + 67 ("ip:port", no NUL), lead the storages (flags 5, our brief
/// first, #95) and answer the C follower's JOIN_LEADER and pings (#127-#132).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_win_the_election_and_lead_c_trackers_and_storages() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (addr, stop, task, _dir) = start("127.0.0.21").await;
    let (c_addr, got, _c) = stand_in("127.0.0.20", EQUAL).await;
    let mut s1 = connect_from("127.0.0.23", addr).await;
    let j = join_naming(&requests(&cap, 10)[0], addr, &[c_addr, addr]);
    assert_eq!(call(&mut s1, &j).await.0, 0);
    eventually("our announcement", || cmds(&got).ends_with(&[64, 66, 67])).await;
    let me = addr.to_string();
    {
        let g = got.lock().unwrap();
        let n = g.len();
        assert_eq!(g[n - 2].1, me.as_bytes());
        assert_eq!(g[n - 1].1, me.as_bytes());
    }
    let st = status_of("127.0.0.20", addr).await;
    assert!(st.if_leader);
    // The storage hears of its leader and its group (flags 5), once each.
    let r = ServerListReply::decode(&beat(&mut s1).await).unwrap();
    assert_eq!(r.flags(), 5);
    let l = r.leader.unwrap();
    assert_eq!(
        (l.status, l.port, l.id.as_str(), l.ip.as_str()),
        (0, addr.port(), "127.0.0.21", "127.0.0.21")
    );
    // Both storages of the C tracker's system files, copied when we started empty (#28-#34).
    assert_eq!(r.group_servers.unwrap().len(), 2);
    assert_eq!(beat(&mut s1).await, vec![0]);
    // The C tracker follows us: JOIN_LEADER and pings as T1 sent them (#127, #129, #131).
    let f = requests(&cap, 13);
    let mut follower = connect_from("127.0.0.20", addr).await;
    let join = f.iter().find(|m| m.cmd == tp::TRACKER_JOIN_LEADER).unwrap();
    assert_eq!(call(&mut follower, &frame(join)).await, (0, vec![]));
    let pings: Vec<&pcap::Msg> = f
        .iter()
        .filter(|m| m.cmd == tp::TRACKER_PING_LEADER)
        .collect();
    let (st, first) = call(&mut follower, &frame(pings[0])).await;
    assert_eq!((st, first.len(), &first[..6]), (0, 32, &b"group1"[..]));
    assert_eq!(call(&mut follower, &frame(pings[1])).await, (0, vec![]));
    stop.cancel();
    drop((follower, s1));
    task.await.unwrap().unwrap();
}

/// Phases B and C with us as T1: a C tracker that says it leads (#426) is followed with
/// JOIN_LEADER (24 bytes: up_time, "6.16.1", port) and a ping per second; when it is gone,
/// three failed pings later we lead (#653: flags 5 with our brief).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_follow_a_c_leader_and_take_over_when_it_is_gone() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (addr, stop, task, _dir) = start("127.0.0.21").await;
    let leads = tp::TrackerStatus {
        if_leader: true,
        ..EQUAL
    };
    let (c_addr, got, c_task) = stand_in("127.0.0.22", leads).await;
    let mut s1 = connect_from("127.0.0.23", addr).await;
    let j = join_naming(&requests(&cap, 10)[0], addr, &[addr, c_addr]);
    assert_eq!(call(&mut s1, &j).await.0, 0);
    // Starting empty, we copied the leader's system files before answering the JOIN (on the
    // connection of the GET_STATUS that found data), then joined it and pinged it.
    eventually("two pings", || {
        cmds(&got).ends_with(&[65, 65]) && cmds(&got).contains(&58)
    })
    .await;
    {
        let g = got.lock().unwrap();
        let copy_conn = g.iter().find(|x| x.0 == 61).unwrap().2;
        let copy: Vec<u8> = g.iter().filter(|x| x.2 == copy_conn).map(|x| x.0).collect();
        assert_eq!(copy[..7], [64, 61, 63, 63, 63, 63, 62]);
        let join = g
            .iter()
            .position(|x| x.0 == tp::TRACKER_JOIN_LEADER)
            .unwrap();
        assert!(join > g.iter().position(|x| x.0 == 62).unwrap());
        let b = &g[join].1;
        assert_eq!(b.len(), 24);
        assert_eq!(&b[8..16], b"6.16.1\0\0");
        assert_eq!(
            u64::from_be_bytes(b[16..24].try_into().unwrap()),
            addr.port() as u64
        );
        assert_eq!(g[join + 1].1.len(), 12);
    }
    assert!(!status_of("127.0.0.22", addr).await.if_leader);
    assert_eq!(
        beat(&mut s1).await,
        vec![0],
        "a follower tells storages nothing"
    );
    // The C leader goes away (its connections with it).
    c_task.abort();
    let _ = c_task.await;
    let mut led = false;
    for _ in 0..200 {
        if status_of("127.0.0.22", addr).await.if_leader {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(led, "we never took over");
    let r = ServerListReply::decode(&beat(&mut s1).await).unwrap();
    assert_eq!(r.flags(), 5);
    assert_eq!(r.leader.unwrap().port, addr.port());
    stop.cancel();
    drop(s1);
    task.await.unwrap().unwrap();
}

/// A storage (127.0.0.23) JOINs both trackers naming both; its connections stay open.
async fn join_storage_to_both(
    cap: &pcap::Capture,
    a1: SocketAddr,
    a2: SocketAddr,
) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for a in [a1, a2] {
        let mut s = connect_from("127.0.0.23", a).await;
        let j = join_naming(&requests(cap, 10)[0], a, &[a1, a2]);
        assert_eq!(call(&mut s, &j).await.0, 0);
        conns.push(s);
    }
    conns
}

/// Polls both trackers' GET_STATUS every 100 ms (at most `polls` times) until exactly one
/// says it leads; their `if_leader` flags at the end.
async fn one_leader_within(a1: SocketAddr, a2: SocketAddr, polls: usize) -> (bool, bool) {
    let mut roles = (false, false);
    for _ in 0..polls {
        roles = (
            status_of("127.0.0.23", a1).await.if_leader,
            status_of("127.0.0.23", a2).await.if_leader,
        );
        if roles.0 != roles.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    roles
}

/// Two fdfs-ha trackers elect one leader between them, the other follows it (which one wins
/// depends on whether the first round finds the other with data yet: a tracker without any
/// group answers ENOENT and is no candidate, as in C); when the leader stops, the follower
/// leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fdfs_ha_trackers_keep_one_leader() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (a1, stop1, task1, _d1) = start("127.0.0.21").await;
    let (a2, stop2, task2, _d2) = start("127.0.0.22").await;
    let mut conns = join_storage_to_both(&cap, a1, a2).await;
    let roles = one_leader_within(a1, a2, 300).await;
    assert!(roles.0 != roles.1, "one leader, one follower: {roles:?}");
    let (lead, follow) = if roles.0 { (0, 1) } else { (1, 0) };
    assert_eq!(beat(&mut conns[follow]).await, vec![0]);
    assert_eq!(
        ServerListReply::decode(&beat(&mut conns[lead]).await)
            .unwrap()
            .flags(),
        5
    );
    // Still one leader a while later (the follower pings it).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let again = (
        status_of("127.0.0.23", a1).await.if_leader,
        status_of("127.0.0.23", a2).await.if_leader,
    );
    assert_eq!(again, roles);
    let (stop_lead, task_lead, left, left_stop, left_task) = if lead == 0 {
        (stop1, task1, a2, stop2, task2)
    } else {
        (stop2, task2, a1, stop1, task1)
    };
    stop_lead.cancel();
    task_lead.await.unwrap().unwrap();
    let mut led = false;
    for _ in 0..300 {
        if status_of("127.0.0.23", left).await.if_leader {
            led = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(led, "the follower never took over");
    left_stop.cancel();
    drop(conns);
    left_task.await.unwrap().unwrap();
}

/// Two trackers told at the same moment that the other one leads (crossed announcements) follow
/// each other. A follower refuses pings as C does ("i am not the leader!", EOPNOTSUPP), so both
/// give up after three pings and elect one leader again; before, each answered the other's
/// pings and neither led for good (1 run in 5 of the test above ended that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackers_following_each_other_elect_a_leader_again() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (a1, stop1, task1, _d1) = start("127.0.0.21").await;
    let (a2, stop2, task2, _d2) = start("127.0.0.22").await;
    let conns = join_storage_to_both(&cap, a1, a2).await;
    for (to, leader) in [(a1, a2), (a2, a1)] {
        let mut s = connect_from("127.0.0.23", to).await;
        let body = leader.to_string().into_bytes();
        for command in [
            tp::TRACKER_NOTIFY_NEXT_LEADER,
            tp::TRACKER_COMMIT_NEXT_LEADER,
        ] {
            let mut req = Header::new(command, 0, 0).encode().to_vec();
            req.truncate(HEADER_LEN);
            req[..8].copy_from_slice(&(body.len() as u64).to_be_bytes());
            req.extend_from_slice(&body);
            assert_eq!(call(&mut s, &req).await.0, 0);
        }
    }
    let roles = one_leader_within(a1, a2, 200).await;
    assert!(
        roles.0 != roles.1,
        "one leader again within 20 s: {roles:?}"
    );
    for (stop, task) in [(stop1, task1), (stop2, task2)] {
        stop.cancel();
        task.await.unwrap().unwrap();
    }
    drop(conns);
}

/// A tracker restarted after more than 10 minutes down says so in GET_STATUS (restart_interval
/// in whole 300 s steps), so the C trackers keep their leader and it copies nothing from us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_down_for_eleven_minutes_reports_its_restart_interval() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (a, stop, task, dir) = start("127.0.0.21").await;
    let (c_addr, _, _c) = stand_in("127.0.0.22", EQUAL).await;
    let mut s = connect_from("127.0.0.23", a).await;
    let j = join_naming(&requests(&cap, 10)[0], a, &[a, c_addr]);
    assert_eq!(call(&mut s, &j).await.0, 0);
    stop.cancel();
    drop(s);
    task.await.unwrap().unwrap();
    let path = fdfs_ha::tracker::persist::path_in(dir.path());
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let saved = v["saved_at_unix"].as_i64().unwrap();
    v["saved_at_unix"] = (saved - 660).into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let y = format!("node: t\ntracker:\n  listen: {}:0\n", a.ip());
    let cfg = fdfs_ha::config::parse_str(&y).unwrap().tracker.unwrap();
    let server = TrackerServer::bind(&cfg, dir.path()).await.unwrap();
    let addr = server.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.serve(stop.clone()));
    let st = status_of("127.0.0.22", addr).await;
    assert_eq!((st.if_leader, st.restart_interval), (false, 600));
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The captured answer body to the `k`-th request of capture connection `conn`.
fn answer_to(cap: &pcap::Capture, conn: usize, k: usize) -> (u8, Vec<u8>) {
    let m = cap
        .messages()
        .filter(|m| m.conn == conn && !m.from_client)
        .nth(k)
        .unwrap();
    (m.status, m.body.clone())
}

/// Issue 17.1, phase D with us as the empty T2: the storages' JOINs (#956/#957) are held
/// while we ask the C leader's status and copy its four system files with exactly the
/// requests T2 sent (#958-#970, conn#53); the JOINs are then answered as C answered them
/// (#972: S2 ONLINE with its sync source 127.0.0.23, known only from the copied files; #973),
/// and the copied view lists the group and both storages before any BEAT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_tracker_copies_the_c_leader_s_system_files_before_it_answers_joins() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (leader_status, leader_body) = answer_to(&cap, 53, 0);
    assert_eq!(leader_status, 0);
    let leads = tp::TrackerStatus::decode(&leader_body).unwrap();
    assert!(leads.if_leader);
    let (t1, got, _t1) = stand_in_with(
        "127.0.0.21",
        Script {
            status: leads,
            enoent_first: 0,
            files: captured_files(&cap, 53),
        },
    )
    .await;
    let (addr, stop, task, _dir) = start("127.0.0.22").await;
    let trackers = [t1, addr];
    let mut s2 = connect_from("127.0.0.24", addr).await;
    let j = join_naming(&requests(&cap, 51)[0], addr, &trackers);
    assert_eq!(call(&mut s2, &j).await, answer_to(&cap, 51, 0));
    let mut s1 = connect_from("127.0.0.23", addr).await;
    let j = join_naming(&requests(&cap, 52)[0], addr, &trackers);
    assert_eq!(call(&mut s1, &j).await, answer_to(&cap, 52, 0));
    // What the C leader got before the JOIN answers: T2's requests of conn#53, byte for byte.
    let want: Vec<(u8, Vec<u8>)> = requests(&cap, 53)
        .iter()
        .map(|m| (m.cmd, m.body.clone()))
        .collect();
    let want = &want[..7];
    assert_eq!(want[6].0, tp::TRACKER_GET_SYS_FILES_END);
    // On one connection, as C: the GET_STATUS that found data, then the copy (the election
    // may ask GET_STATUS on its own connection meanwhile).
    let got = got.lock().unwrap().clone();
    let copy_conn = got.iter().find(|g| g.0 == 61).unwrap().2;
    let on_conn: Vec<(u8, Vec<u8>)> = got
        .into_iter()
        .filter(|g| g.2 == copy_conn)
        .map(|g| (g.0, g.1))
        .collect();
    assert_eq!(on_conn[..7], *want);
    // The group list (SERVER_LIST_ALL_GROUPS: one group of two storages) and its storages.
    let mut client = connect_from("127.0.0.29", addr).await;
    let f = Header::new(cmd::SERVER_LIST_ALL_GROUPS, 0, 0)
        .encode()
        .to_vec();
    let (st, body) = call(&mut client, &f).await;
    assert_eq!(st, 0);
    let groups = fdfs_ha::proto::tracker::GroupStat::decode_list(&body).unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].group.as_str(), groups[0].storage_count),
        ("group1", 2)
    );
    let mut f = Header::new(cmd::SERVER_LIST_STORAGE, 0, 16)
        .encode()
        .to_vec();
    let mut g = b"group1".to_vec();
    g.resize(16, 0);
    f.extend_from_slice(&g);
    let (st, body) = call(&mut client, &f).await;
    assert_eq!(st, 0);
    let mut ids: Vec<String> = fdfs_ha::proto::tracker::StorageStat::decode_list(&body)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["127.0.0.23", "127.0.0.24"]);
    stop.cancel();
    drop((s1, s2, client));
    task.await.unwrap().unwrap();
}

/// A C tracker that says it has data but fails the copy (fdfs-ha before issue 17 answered 61
/// with EINVAL): the JOIN is refused with EAGAIN, as C refuses it, and the storage's next JOIN
/// tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_refuses_the_join_with_eagain() {
    let cap = pcap::read(&std::fs::read(PCAP).unwrap());
    let (t1, got, _t1) = stand_in_with(
        "127.0.0.21",
        Script {
            files: Vec::new(),
            ..script(EQUAL)
        },
    )
    .await;
    let (addr, stop, task, _dir) = start("127.0.0.22").await;
    let mut s1 = connect_from("127.0.0.23", addr).await;
    let j = join_naming(&requests(&cap, 52)[0], addr, &[t1, addr]);
    assert_eq!(call(&mut s1, &j).await, (11, vec![]));
    assert_eq!(call(&mut s1, &j).await, (11, vec![]));
    assert_eq!(
        cmds(&got)
            .iter()
            .filter(|&&c| c == tp::TRACKER_GET_SYS_FILES_START)
            .count(),
        2
    );
    stop.cancel();
    drop(s1);
    task.await.unwrap().unwrap();
}
