//! Unit tests of the upload journal: record format, replay plan, segments' life.

use super::*;

fn segment(header: (u64, u64), records: &[Vec<u8>]) -> Vec<u8> {
    let mut seg = encode_header(header.0, header.1);
    for r in records {
        seg.extend_from_slice(r);
    }
    seg.resize(64 << 10, 0);
    seg
}

#[test]
fn records_round_trip_and_only_their_epochs_count() {
    let a = encode_record(7, RecordKind::Created, "00/01/a.jpg", b"photo");
    assert_eq!(a.len() % RECORD_ALIGN, 0);
    let stale = encode_record(6, RecordKind::Created, "00/01/old.jpg", b"old");
    let gone = encode_record(7, RecordKind::Deleted, "00/01/a.jpg", b"");
    let seg = segment((1, 7), &[a, stale, gone]);
    assert_eq!(
        records(&seg, 7),
        vec![
            Record {
                kind: RecordKind::Created,
                name: "00/01/a.jpg",
                content: b"photo",
            },
            Record {
                kind: RecordKind::Deleted,
                name: "00/01/a.jpg",
                content: b"",
            },
        ]
    );
    assert!(records(&seg, 8).is_empty());
}

#[test]
fn a_record_not_written_hides_neither_the_next_nor_lets_content_pose_as_one() {
    // Uploaded content holding a whole record on a 512-byte boundary, where the scan looks.
    let posing = |epoch: u64, name: &str| {
        let fake = encode_record(epoch, RecordKind::Created, "00/00/fake.jpg", b"x");
        let mut content = vec![0u8; RECORD_ALIGN - RECORD_HEAD - name.len()];
        content.extend_from_slice(&fake);
        content.extend_from_slice(&[5; 1000]);
        encode_record(9, RecordKind::Created, name, &content)
    };
    // Of the same epoch inside a whole record: skipped with the record that holds it.
    let outer = posing(9, "00/00/real.jpg");
    // Inside a record torn by a crash (its last bytes never written), the scan goes on
    // into its content: what poses there does not know the segment's random epoch.
    let mut torn = posing(1234, "00/00/torn.jpg");
    let cut = torn.len() - 600;
    torn[cut..].fill(0);
    let after = encode_record(9, RecordKind::Created, "00/00/after.jpg", b"y");
    let seg = segment((1, 9), &[outer, torn, after]);
    let names: Vec<&str> = records(&seg, 9).iter().map(|r| r.name).collect();
    assert_eq!(names, vec!["00/00/real.jpg", "00/00/after.jpg"]);
    // A flipped bit anywhere fails the CRC.
    let mut bad = segment(
        (1, 9),
        &[encode_record(9, RecordKind::Created, "n", b"abc")],
    );
    bad[HEADER_LEN as usize + RECORD_HEAD + 2] ^= 1;
    assert!(records(&bad, 9).is_empty());
}

#[test]
fn the_plan_takes_the_older_segment_first_and_the_last_record_wins() {
    let newer = segment(
        (5, 50),
        &[
            encode_record(50, RecordKind::Deleted, "00/00/a", b""),
            encode_record(50, RecordKind::Created, "00/00/c", b"c"),
        ],
    );
    let older = segment(
        (4, 40),
        &[
            encode_record(40, RecordKind::Created, "00/00/a", b"a"),
            encode_record(40, RecordKind::Created, "00/00/b", b"b"),
        ],
    );
    let mut torn_header = segment((6, 60), &[encode_record(60, RecordKind::Created, "x", b"")]);
    torn_header[3] = 0;
    let plan = replay_plan(&[newer, older, torn_header]);
    let want: BTreeMap<String, Option<Vec<u8>>> = [
        ("00/00/a".to_string(), None),
        ("00/00/b".to_string(), Some(b"b".to_vec())),
        ("00/00/c".to_string(), Some(b"c".to_vec())),
    ]
    .into();
    assert_eq!(plan, want);
}

#[test]
fn segments_switch_when_full_and_count_until_retired() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    // Room for three 1,000-byte records (1,024 padded) per segment.
    let size = HEADER_LEN + 3 * 1024 + 100;
    let wanted = Arc::new(Notify::new());
    let j = Journal::start(&jdir, size, wanted.clone()).unwrap();
    assert!(read_pending(&jdir).unwrap().is_empty());
    let body = [1u8; 1000 - RECORD_HEAD - 7];
    let put = |n: usize| {
        j.append(RecordKind::Created, &format!("00/00/{n}"), &body, false)
            .unwrap()
            .map(|t| t.placed(PathBuf::from(format!("/f/{n}"))))
            .is_some()
    };
    let told = || {
        let mut wait = std::pin::pin!(wanted.notified());
        std::future::Future::poll(
            wait.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        )
        .is_ready()
    };
    assert!(put(0));
    assert!(!told(), "a third full is no reason to settle");
    assert!(put(1) && put(2));
    assert!(told(), "half full: settle now");
    // The active segment is full: the next record goes to the other one.
    assert!(put(3));
    assert_eq!(read_pending(&jdir).unwrap().len(), 4);
    assert!(put(4) && put(5));
    // Both are used: no room until one is retired.
    assert!(!put(6));
    assert!(j.holds(Path::new("/f/0")));
    let mut synced = false;
    assert_eq!(
        j.retire_closed(|| {
            synced = true;
            Ok(())
        })
        .unwrap(),
        3
    );
    assert!(synced);
    assert!(!j.holds(Path::new("/f/0")));
    let pending = read_pending(&jdir).unwrap();
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["00/00/3", "00/00/4", "00/00/5"]
    );
    assert!(put(6));
    // Delete of a file whose record counts is journaled, and holds its segment until the
    // file is unlinked; of one settled, not.
    let unlinking = j.forget(Path::new("/f/6"), "00/00/6").unwrap();
    assert!(unlinking.is_some());
    assert!(j.forget(Path::new("/f/0"), "00/00/0").unwrap().is_none());
    let pending = read_pending(&jdir).unwrap();
    assert_eq!(pending.get("00/00/6"), Some(&None));
    assert!(!pending.contains_key("00/00/0"));
    drop(unlinking);
    assert_eq!(j.retire_closed(|| Ok(())).unwrap(), 3);
    j.close_active();
    assert_eq!(j.retire_closed(|| Ok(())).unwrap(), 0);
    assert!(!j.has_records());
    assert!(read_pending(&jdir).unwrap().is_empty());
    // A failed flush: the segment is never reset by this process (a second syncfs could
    // report success for pages whose write-back failed); start-up replays it.
    assert!(put(7));
    j.close_active();
    let err = j
        .retire_closed(|| Err(io::Error::other("EIO")))
        .unwrap_err();
    assert!(err.to_string().starts_with("EIO"), "{err}");
    assert_eq!(j.retire_closed(|| Ok(())).unwrap(), 0);
    assert!(j.holds(Path::new("/f/7")));
    assert!(!j.has_records(), "nothing a retire can settle");
    // What /metrics and status show: 6 settled by the two good retires, /f/7 waiting in a
    // stuck segment, the other one empty.
    let stats = j.stats();
    assert_eq!(
        (
            stats.settled_files,
            stats.unsettled_files,
            stats.stuck_segments
        ),
        (6, 1, 1),
        "{stats:?}"
    );
    assert!(!stats.failed && stats.flushes >= 8, "{stats:?}");
    assert_eq!(stats.segment_room_bytes, 3 * 1024 + 100);
    // The other segment fills; then small uploads find no room (they flush their own).
    assert!(put(8) && put(9) && put(10));
    assert!(!put(11));
    j.close_active();
    assert_eq!(j.retire_closed(|| Ok(())).unwrap(), 0);
    let pending = read_pending(&jdir).unwrap();
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["00/00/10", "00/00/7", "00/00/8", "00/00/9"]
    );
    // Start-up resets whatever was there (after the store has replayed it).
    drop(j);
    let _j = Journal::start(&jdir, size, wanted).unwrap();
    assert!(read_pending(&jdir).unwrap().is_empty());
}

#[test]
fn records_handed_over_together_share_one_write_and_one_flush() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    // Room for three 1 KiB records per segment: eight spill over, the last two find none.
    let size = HEADER_LEN + 3 * 1024 + 100;
    let j = Journal::start(&jdir, size, Arc::default()).unwrap();
    let body = [3u8; 1000 - RECORD_HEAD - 7];
    let names: Vec<String> = (0..8).map(|n| format!("00/00/{n}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &body[..])).collect();
    let tickets = j.append_created(&files).unwrap();
    let placed: Vec<bool> = tickets.iter().map(Option::is_some).collect();
    assert_eq!(placed, [true, true, true, true, true, true, false, false]);
    assert_eq!(j.flush_state().done, 1, "one flush for the whole group");
    assert_eq!(read_pending(&jdir).unwrap().len(), 6);
    // Both segments were written: the one flush covered both.
    assert!(j.flush_state().dirty.iter().all(|d| !d));
}

#[test]
fn concurrent_appends_are_all_durable_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let jdir = dir.path().join("j");
    let j = Journal::start(&jdir, 1 << 20, Arc::default()).unwrap();
    let acked: Vec<String> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let j = &j;
                s.spawn(move || {
                    (0..20)
                        .map(|n| {
                            let name = format!("00/00/{t}-{n}");
                            let ticket = j.append(RecordKind::Created, &name, b"x", false);
                            assert!(ticket.unwrap().is_some());
                            name
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let f = j.flush_state();
    assert!(!f.running && f.done == f.started && f.done <= 160);
    drop(f);
    // Every acknowledged record is in the segment (a flush started after it was written
    // ended before its append returned).
    let pending = read_pending(&jdir).unwrap();
    assert_eq!(pending.len(), 160);
    assert!(acked.iter().all(|n| pending.contains_key(n)));
}

#[test]
fn a_failed_flush_fails_its_group_and_closes_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::start(&dir.path().join("j"), 64 << 10, Arc::default()).unwrap();
    assert!(j
        .append(RecordKind::Created, "00/00/a", b"a", false)
        .unwrap()
        .is_some());
    j.flush_state().failed = Some(2);
    let err = j.flush([true, false]).unwrap_err();
    assert!(err.to_string().contains("flush failed"), "{err}");
    assert!(j.stats().failed, "shown as failed in /metrics and status");
    assert!(j
        .append(RecordKind::Created, "00/00/b", b"b", false)
        .unwrap()
        .is_none());
    assert!(j.append(RecordKind::Deleted, "00/00/a", b"", true).is_err());
}

#[test]
fn a_segment_is_not_retired_while_a_record_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::start(&dir.path().join("j"), 64 << 10, Arc::default()).unwrap();
    let ticket = j
        .append(RecordKind::Created, "00/00/a", b"a", false)
        .unwrap()
        .unwrap();
    j.close_active();
    std::thread::scope(|s| {
        let retire = s.spawn(|| j.retire_closed(|| Ok(())).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!retire.is_finished(), "retired with a record in flight");
        ticket.placed(PathBuf::from("/f/a"));
        drop(ticket);
        assert_eq!(retire.join().unwrap(), 1);
    });
}
