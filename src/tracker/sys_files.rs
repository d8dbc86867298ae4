//! The copying side of C FastDFS trackers' system-file copy (issue 17.1), pure: which tracker
//! to copy from, the requests in order, and how the four files become a cluster view.
//!
//! A C 6.16.1 tracker that starts without data (or after more than 600 s down) holds the
//! first storage JOIN, asks the trackers that JOIN names for GET_STATUS (64), and copies the
//! system files of the best one that has data before it answers (tracker-pair.txt #23-#36,
//! phase D #962-#969), all on one connection:
//!
//! ```text
//!  61 GET_SYS_FILES_START                 <- empty
//!  63 GET_ONE_SYS_FILE index 0, offset 0  <- file_size 8 | bytes from offset
//!     ... again with offset += bytes while offset < file_size, then index 1, 2, 3
//!  62 GET_SYS_FILES_END                   <- empty
//! ```
//! Files 0-2 (storage_groups_new.dat, storage_servers_new.dat, storage_sync_timestamp.dat;
//! formats in tests/vectors/c-cluster/store-layout/LAYOUT.md) become a `persist::Snapshot`
//! (groups, storages with status, sync source and join time, the sync-progress matrix);
//! file 3 (storage_changelog.dat) is fetched as C fetches it and not used: storages read it
//! from the tracker with CHANGELOG_REQ, which fdfs-ha answers empty.
//! `sys_files_link` does the I/O.

use super::persist::{SavedGroup, SavedStorage, Snapshot};
use crate::proto::fields::put_u64;
use crate::proto::tracker_peer::{self as tp, TrackerStatus};
use std::collections::BTreeMap;

/// A tracker down longer than this copies the system files again at start (C's rule).
pub const COPY_AFTER_DOWN_SECS: i64 = 600;

/// Largest system file accepted (a storage entry is ~1.2 KB: room for thousands).
pub const MAX_SYS_FILE: u64 = 16 << 20;

/// A copy that cannot go on: the peer's answer does not fit the protocol or the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyError(pub String);

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CopyError {}

fn fail<T>(why: impl Into<String>) -> Result<T, CopyError> {
    Err(CopyError(why.into()))
}

/// Where the copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Start,
    File { index: usize },
    End,
    Done,
}

/// The client side of 61 / 63 / 62: `next_request`, send it, `on_answer` with the answer's
/// body (a non-zero status ends the copy before it gets here), until `next_request` is None.
#[derive(Debug)]
pub struct SysFileCopy {
    step: Step,
    files: [Vec<u8>; 4],
    /// Whole size of the file being fetched, from its first answer.
    size: Option<u64>,
}

impl Default for SysFileCopy {
    fn default() -> Self {
        Self::new()
    }
}

impl SysFileCopy {
    pub fn new() -> Self {
        SysFileCopy {
            step: Step::Start,
            files: Default::default(),
            size: None,
        }
    }

    /// The next request (command, body), None when the copy is complete.
    pub fn next_request(&self) -> Option<(u8, Vec<u8>)> {
        match self.step {
            Step::Start => Some((tp::TRACKER_GET_SYS_FILES_START, Vec::new())),
            Step::File { index } => {
                let mut body = Vec::with_capacity(9);
                body.push(index as u8);
                put_u64(&mut body, self.files[index].len() as u64);
                Some((tp::TRACKER_GET_ONE_SYS_FILE, body))
            }
            Step::End => Some((tp::TRACKER_GET_SYS_FILES_END, Vec::new())),
            Step::Done => None,
        }
    }

    /// The OK answer to the last request.
    pub fn on_answer(&mut self, body: &[u8]) -> Result<(), CopyError> {
        match self.step {
            Step::Start | Step::End => {
                if !body.is_empty() {
                    return fail(format!("{} bytes in a 61/62 answer", body.len()));
                }
                self.step = if self.step == Step::Start {
                    Step::File { index: 0 }
                } else {
                    Step::Done
                };
            }
            Step::File { index } => self.file_answer(index, body)?,
            Step::Done => return fail("answer after the copy ended"),
        }
        Ok(())
    }

    fn file_answer(&mut self, index: usize, body: &[u8]) -> Result<(), CopyError> {
        let Some((head, chunk)) = body.split_first_chunk::<8>() else {
            return fail(format!("63 answer of {} bytes", body.len()));
        };
        let size = u64::from_be_bytes(*head);
        if size > MAX_SYS_FILE {
            return fail(format!("{} is {size} bytes", tp::SYS_FILE_NAMES[index]));
        }
        if self.size.is_some_and(|s| s != size) {
            return fail(format!("{} changed size", tp::SYS_FILE_NAMES[index]));
        }
        let have = self.files[index].len() as u64;
        if have + chunk.len() as u64 > size {
            return fail(format!(
                "{} longer than announced",
                tp::SYS_FILE_NAMES[index]
            ));
        }
        // An empty piece of an unfinished file would have us ask the same offset forever.
        if chunk.is_empty() && have < size {
            return fail(format!("{} stopped short", tp::SYS_FILE_NAMES[index]));
        }
        self.files[index].extend_from_slice(chunk);
        if (self.files[index].len() as u64) < size {
            self.size = Some(size);
            return Ok(());
        }
        self.size = None;
        self.step = if index + 1 < self.files.len() {
            Step::File { index: index + 1 }
        } else {
            Step::End
        };
        Ok(())
    }

    /// The four files, once the copy is complete.
    pub fn files(self) -> Option<[Vec<u8>; 4]> {
        (self.step == Step::Done).then_some(self.files)
    }
}

/// The tracker to copy from: of those that answered GET_STATUS (ENOENT, refused or down:
/// None, "has no data"), the one C's election would rank first (the leader, then the longest
/// running, ...). None: nobody has data, serve with what we have.
pub fn pick_source(answers: &[(String, Option<TrackerStatus>)]) -> Option<String> {
    super::leader::best(
        answers
            .iter()
            .filter_map(|(a, s)| s.map(|s| (a.as_str(), s))),
    )
    .map(str::to_string)
}

/// `[Section]` then tab-indented `key=value` lines; `#` comments.
fn sections(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.to_string(), BTreeMap::new()));
        } else if let (Some((k, v)), Some(last)) = (line.split_once('='), out.last_mut()) {
            last.1.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

fn num<T: std::str::FromStr + Default>(s: &BTreeMap<String, String>, key: &str) -> T {
    s.get(key).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn text(bytes: &[u8], index: usize) -> Result<&str, CopyError> {
    std::str::from_utf8(bytes)
        .or_else(|_| fail(format!("{} is not text", tp::SYS_FILE_NAMES[index])))
}

/// The copied files as a cluster view. `use_storage_id`: storages are keyed by id (an `id`
/// line, else the address), else by `ip:port`, as JOINs key them. Statuses are as the other
/// tracker saved them; `persist::restore` of a snapshot saved at time 0 turns ONLINE/ACTIVE
/// into OFFLINE until each storage JOINs again.
pub fn to_snapshot(files: &[Vec<u8>; 4], use_storage_id: bool) -> Result<Snapshot, CopyError> {
    let mut groups: Vec<SavedGroup> = Vec::new();
    for (name, s) in sections(text(&files[0], 0)?) {
        if !name.starts_with("Group") {
            continue;
        }
        let Some(g) = s.get("group_name").filter(|g| !g.is_empty()) else {
            return fail(format!("[{name}] without group_name"));
        };
        crate::proto::tracker::validate_group(g)
            .or_else(|e| fail(format!("[{name}] group_name: {e}")))?;
        if !groups.iter().any(|x| &x.name == g) {
            groups.push(SavedGroup {
                name: g.clone(),
                storages: Vec::new(),
            });
        }
    }
    for (name, s) in sections(text(&files[1], 1)?) {
        if !name.starts_with("Storage") {
            continue;
        }
        let group = s.get("group_name").cloned().unwrap_or_default();
        let ip = s.get("ip_addr").cloned().unwrap_or_default();
        let port: u16 = num(&s, "storage_port");
        let id = s.get("id").filter(|v| !v.is_empty()).unwrap_or(&ip).clone();
        if ip.is_empty() || id.len() > crate::proto::STORAGE_ID_LEN {
            return fail(format!("[{name}]: bad ip_addr / id"));
        }
        let Some(g) = groups.iter_mut().find(|g| g.name == group) else {
            return fail(format!("[{name}]: group {group:?} not in the group file"));
        };
        let src: String = s.get("sync_src_server").cloned().unwrap_or_default();
        g.storages.push(SavedStorage {
            key: if use_storage_id {
                id.clone()
            } else {
                format!("{ip}:{port}")
            },
            id,
            ip,
            port,
            status: num(&s, "status"),
            version: s.get("version").cloned().unwrap_or_default(),
            join_time: num(&s, "join_time"),
            up_time: 0,
            store_path_count: num(&s, "store_path_count"),
            subdir_count_per_path: num(&s, "subdir_count_per_path"),
            upload_priority: num(&s, "upload_priority"),
            paths: Vec::new(),
            sync_src: (!src.is_empty()).then(|| (src, num(&s, "sync_until_timestamp"))),
            synced_from: BTreeMap::new(),
        });
    }
    // One line per source storage: group, source id, then what each storage of the group (in
    // the servers file's order) reported for it.
    for line in text(&files[2], 2)?.lines() {
        let mut parts = line.trim().split(',');
        let (Some(group), Some(src)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(g) = groups.iter_mut().find(|g| g.name == group) else {
            continue;
        };
        for (dst, ts) in g.storages.iter_mut().zip(parts) {
            let ts: u32 = ts.trim().parse().unwrap_or(0);
            if ts != 0 && dst.id != src {
                dst.synced_from.insert(src.to_string(), ts);
            }
        }
    }
    Ok(Snapshot {
        saved_at_unix: 0,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::cluster::Cluster;
    use crate::tracker::peers::system_files;

    /// The answers T1 gave in tracker-pair.txt #26-#36 (sizes 0, 199, 2407, 44, 0 bytes).
    fn answer(size: u64, bytes: &[u8]) -> Vec<u8> {
        let mut b = size.to_be_bytes().to_vec();
        b.extend_from_slice(bytes);
        b
    }

    /// The requests T2 sent in #25-#35, byte for byte.
    #[test]
    fn requests_are_the_captured_ones() {
        let mut c = SysFileCopy::new();
        assert_eq!(c.next_request(), Some((61, vec![])));
        c.on_answer(&[]).unwrap();
        for (i, size) in [(0u8, 199u64), (1, 2407), (2, 44), (3, 0)] {
            assert_eq!(
                c.next_request(),
                Some((63, vec![i, 0, 0, 0, 0, 0, 0, 0, 0]))
            );
            c.on_answer(&answer(size, &vec![b'x'; size as usize]))
                .unwrap();
        }
        assert_eq!(c.next_request(), Some((62, vec![])));
        c.on_answer(&[]).unwrap();
        assert_eq!(c.next_request(), None);
        let f = c.files().unwrap();
        assert_eq!(f.map(|x| x.len()), [199, 2407, 44, 0]);
    }

    /// A file larger than one answer is asked again from where the last piece ended.
    #[test]
    fn a_file_in_pieces_and_bad_answers() {
        let mut c = SysFileCopy::new();
        c.on_answer(&[]).unwrap();
        c.on_answer(&answer(5, b"abc")).unwrap();
        assert_eq!(
            c.next_request(),
            Some((63, vec![0, 0, 0, 0, 0, 0, 0, 0, 3]))
        );
        assert!(c.files().is_none());
        let mut c = SysFileCopy::new();
        c.on_answer(&[]).unwrap();
        c.on_answer(&answer(5, b"abc")).unwrap();
        c.on_answer(&answer(5, b"de")).unwrap();
        assert_eq!(
            c.next_request(),
            Some((63, vec![1, 0, 0, 0, 0, 0, 0, 0, 0]))
        );
        for bad in [
            answer(4, b"abc"),  // size changed
            answer(5, b""),     // no progress: would loop
            answer(5, b"defg"), // more than announced
            vec![0; 7],         // no size
            answer(MAX_SYS_FILE + 1, b""),
        ] {
            let mut c = SysFileCopy::new();
            c.on_answer(&[]).unwrap();
            c.on_answer(&answer(5, b"abc")).unwrap();
            assert!(c.on_answer(&bad).is_err(), "{bad:?}");
        }
        let mut c = SysFileCopy::new();
        assert!(c.on_answer(&[1]).is_err());
    }

    #[test]
    fn the_source_is_the_best_tracker_with_data() {
        let st = |if_leader, running_time| {
            Some(TrackerStatus {
                if_leader,
                running_time,
                restart_interval: 0,
            })
        };
        assert_eq!(pick_source(&[("a:1".into(), None)]), None);
        let answers = [
            ("10.0.0.9:22122".into(), st(false, 600)),
            ("10.0.0.1:22122".into(), st(true, 0)),
            ("10.0.0.8:22122".into(), None),
        ];
        assert_eq!(pick_source(&answers).as_deref(), Some("10.0.0.1:22122"));
        assert_eq!(
            pick_source(&answers[..1]).as_deref(),
            Some("10.0.0.9:22122")
        );
    }

    /// T1's files of #28/#32 (the servers file as T1 wrote it: two INIT storages) and the end
    /// state of LAYOUT.md's sync matrix, loaded as a view.
    #[test]
    fn c_files_become_a_view() {
        let groups = "[Global]\n\tgroup_count=1\n\n# group: group1\n[Group001]\n\
                      \tgroup_name=group1\n\tstorage_port=23000\n\tstore_path_count=1\n\
                      \tsubdir_count_per_path=256\n\tcurrent_trunk_file_id=0\n\ttrunk_server=\n\
                      \tlast_trunk_server=\n\n";
        let storage = |ip: &str, status: u8, src: &str| {
            format!(
                "# storage: {ip}:23000\n[Storage001]\n\tgroup_name=group1\n\tip_addr={ip}\n\
                 \tstatus={status}\n\tversion=6.16.1\n\tjoin_time=1796459533\n\
                 \tstorage_port=23000\n\tsync_src_server={src}\n\tsync_until_timestamp=17\n\
                 \ttotal_mb=0\n\tfree_mb=0\n\tstore_path_count=1\n\tsubdir_count_per_path=256\n\
                 \tupload_priority=10\n\ttotal_upload_count=3\n\n"
            )
        };
        let servers = format!(
            "{}{}{}\n[Global]\n\tstorage_count=3\n",
            storage("127.0.0.24", 7, "127.0.0.23"),
            storage("127.0.0.23", 7, ""),
            storage("127.0.0.25", 0, "127.0.0.24"),
        );
        let sync = "group1,127.0.0.24,0,1796460017,1796460017\n\
                    group1,127.0.0.23,1796460007,0,1796460007\n\
                    group1,127.0.0.25,0,0,0\n";
        let files = [
            groups.as_bytes().to_vec(),
            servers.into_bytes(),
            sync.as_bytes().to_vec(),
            Vec::new(),
        ];
        let snap = to_snapshot(&files, false).unwrap();
        assert_eq!(snap.groups.len(), 1);
        let s = &snap.groups[0].storages;
        assert_eq!(
            s.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
            ["127.0.0.24:23000", "127.0.0.23:23000", "127.0.0.25:23000"]
        );
        assert_eq!(s[0].sync_src, Some(("127.0.0.23".into(), 17)));
        assert_eq!(s[1].sync_src, None);
        assert_eq!((s[0].status, s[2].status), (7, 0));
        assert_eq!((s[0].join_time, s[0].upload_priority), (1796459533, 10));
        assert_eq!(s[0].synced_from.get("127.0.0.23"), Some(&1796460007));
        assert_eq!(s[1].synced_from.get("127.0.0.24"), Some(&1796460017));
        assert_eq!(s[2].synced_from.len(), 2);
        assert!(!s[0].synced_from.contains_key("127.0.0.24"));
        // Keyed by id when storages are.
        let snap = to_snapshot(&files, true).unwrap();
        assert_eq!(snap.groups[0].storages[0].key, "127.0.0.24");
        // A storage of a group the group file does not list, and a bad group name.
        let bad = [
            groups
                .replace("group_name=group1", "group_name=g2")
                .into_bytes(),
            files[1].clone(),
            Vec::new(),
            Vec::new(),
        ];
        assert!(to_snapshot(&bad, false).is_err());
        let bad = [
            b"[Group001]\n\tgroup_name=a/b\n".to_vec(),
            vec![],
            vec![],
            vec![],
        ];
        assert!(to_snapshot(&bad, false).is_err());
        assert!(to_snapshot(&[vec![0xff], vec![], vec![], vec![]], false).is_err());
    }

    /// What we serve (peers::system_files) reads back as the same view.
    #[test]
    fn our_own_files_round_trip() {
        let mut c = Cluster::new();
        let now = std::time::Instant::now();
        for (ip, flag) in [("10.0.0.1", 0), ("10.0.0.2", 1)] {
            let req = crate::proto::tracker::JoinReq {
                store_path_count: 2,
                join_time: 5,
                up_time: 6,
                init_flag: flag,
                current_tracker_ip: "10.0.0.9".into(),
                ..crate::proto::tracker::JoinReq::c_storage("g1", 23000)
            };
            let who = crate::tracker::cluster::identify(false, &[], "g1", "", ip, 23000).unwrap();
            c.join(&who, &req, 1, now);
        }
        let files = system_files(&c).map(String::into_bytes);
        let snap = to_snapshot(&files, false).unwrap();
        let back =
            crate::tracker::persist::restore(&snap, now, 100, std::time::Duration::from_secs(30));
        assert_eq!(
            system_files(&back),
            system_files(&c).map(|f| f.replace("status=6", "status=5"))
        );
    }
}
