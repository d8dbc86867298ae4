use super::file_io::open_direct;
use super::*;
use crate::proto::fileid::RemoteName;
use crate::proto::storage::MetaOp;
use crate::storage::journal;
use std::fs::File;
use std::path::Path;

fn cfg(paths: Vec<PathBuf>) -> StorageConfig {
    let yaml = format!(
        "group: group1\ntrackers: []\nstore_paths: [{}]\nreserved_storage_space: 0%\nfile_distribute_rotate_count: 2\n",
        paths
            .iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    serde_saphyr::from_str(&yaml).unwrap()
}

#[test]
fn large_uploads_bypass_the_page_cache_and_keep_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![dir.path().into()]);
    c.direct_io_min_size = Some(crate::config::ByteSize(1 << 20));
    let store = Store::open(&c).unwrap();
    let content: Vec<u8> = (0..(2 << 20) + 1234).map(|i| (i * 7 % 251) as u8).collect();
    // Under the threshold: page cache only.
    assert!(!store.temp_file(0, (1 << 20) - 1).unwrap().is_direct());
    let mut t = store.temp_file(0, content.len() as u64).unwrap();
    // Where the filesystem has O_DIRECT (tmpfs before 6.6 does not), large files use it.
    let fs_has_direct = open_direct(t.path()).is_some();
    assert_eq!(t.is_direct(), fs_has_direct);
    // Aligned chunks, a misaligned buffer, an unaligned offset, then aligned again: the
    // file holds exactly the bytes in order whichever handle wrote them.
    let mut buf = AlignedBuf::default();
    let mut at = 0;
    for n in [512 << 10, 512 << 10] {
        buf.resize(n);
        buf.copy_from_slice(&content[at..at + n]);
        t.write_all(&buf).unwrap();
        at += n;
    }
    let misaligned = content[at..at + 8192].to_vec().into_boxed_slice();
    t.write_all(&misaligned[..100]).unwrap();
    t.write_all(&misaligned[100..]).unwrap();
    at += 8192;
    buf.resize(content.len() - at);
    buf.copy_from_slice(&content[at..]);
    t.write_all(&buf).unwrap();
    let (d1, d2, name) = store.commit(t, || "big.bin".into(), |_| (0, 0)).unwrap();
    let dst = dir
        .path()
        .join(format!("data/{d1:02X}/{d2:02X}"))
        .join(name);
    assert_eq!(std::fs::read(dst).unwrap(), content);
}

/// Flushes `path` and asks the kernel to drop its (now clean) pages from the page cache.
fn drop_from_page_cache(path: &Path) {
    use std::os::unix::io::AsRawFd;
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a valid open descriptor; fadvise only changes caching.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

/// How many of `path`'s pages are in the page cache (mincore of a mapping of it; mapping
/// a file does not read it).
fn pages_in_page_cache(path: &Path) -> usize {
    use std::os::unix::io::AsRawFd;
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of an open file, unmapped before returning;
    // mincore writes one byte per page into `resident`, which has one per page.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        let rc = libc::mincore(addr, len, resident.as_mut_ptr());
        libc::munmap(addr, len);
        assert_eq!(rc, 0);
    }
    resident.iter().filter(|b| *b & 1 == 1).count()
}

#[test]
fn large_files_are_read_for_sending_past_the_page_cache_and_whole() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![dir.path().into()]);
    c.direct_io_min_size = Some(crate::config::ByteSize(1 << 20));
    let store = Store::open(&c).unwrap();
    let content: Vec<u8> = (0..(3 << 20) + 4097)
        .map(|i| (i * 13 % 251) as u8)
        .collect();
    let (big, small) = (dir.path().join("big"), dir.path().join("small"));
    std::fs::write(&big, &content).unwrap();
    std::fs::write(&small, &content[..(1 << 20) - 1]).unwrap();
    assert!(store.open_to_send(&small).unwrap().direct.is_none());
    let mut f = store.open_to_send(&big).unwrap();
    assert_eq!(f.size, content.len() as u64);
    assert_eq!(f.direct.is_some(), open_direct(&big).is_some());
    // As after an O_DIRECT upload: none of the file in the page cache.
    drop_from_page_cache(&big);
    assert_eq!(pages_in_page_cache(&big), 0);
    // Whole aligned chunks, the last one past the end of the file: the bytes in order.
    let mut buf = AlignedBuf::default();
    buf.resize(1 << 20);
    let mut got = Vec::new();
    loop {
        let n = f.read_chunk(got.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, content);
    // Read past the page cache: still none of it there (where direct reads are possible).
    if f.direct.is_some() {
        assert_eq!(pages_in_page_cache(&big), 0);
    }
    // An unaligned offset or buffer is read through the page cache, as exactly.
    let mut odd = vec![0u8; 10_000];
    assert_eq!(f.read_chunk(4097, &mut odd[1..]).unwrap(), 9_999);
    assert_eq!(&odd[1..], &content[4097..4097 + 9_999]);
    // Asked for more than `size` holds (the file grew since it was opened): only `size`.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .write_all_at(b"later", content.len() as u64)
        .unwrap();
    let at = content.len() as u64 - 10;
    assert_eq!(f.read_chunk(at, &mut buf).unwrap(), 10);
    // Shrunk since it was opened: short, then 0.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    assert_eq!(f.read_chunk(0, &mut buf).unwrap(), 1 << 20);
    assert_eq!(f.read_chunk(1 << 20, &mut buf).unwrap(), 0);
}

#[test]
fn direct_io_needs_fsync_on_and_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![dir.path().into()]);
    c.fsync = false;
    let store = Store::open(&c).unwrap();
    assert!(!store.temp_file(0, 1 << 30).unwrap().is_direct());
    // Files written through the page cache are also sent from it.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![1u8; 2 << 20]).unwrap();
    assert!(store.open_to_send(&big).unwrap().direct.is_none());
    c.fsync = true;
    c.direct_io_min_size = None;
    let store = Store::open(&c).unwrap();
    assert!(!store.temp_file(0, 1 << 30).unwrap().is_direct());
    assert!(store.open_to_send(&big).unwrap().direct.is_none());
}

#[test]
fn commit_is_atomic_and_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let mut t = store.temp_file(0, 0).unwrap();
    t.write_all(b"one").unwrap();
    let tmp_path = t.path().to_path_buf();
    let (d1, d2, name) = store.commit(t, || "a.txt".into(), |_| (1, 2)).unwrap();
    assert_eq!((d1, d2), (1, 2));
    assert!(!tmp_path.exists());
    let dst = dir.path().join("data/01/02").join(&name);
    assert_eq!(std::fs::read(&dst).unwrap(), b"one");
    // Same name again: a second name is asked for.
    let mut t = store.temp_file(0, 0).unwrap();
    t.write_all(b"two").unwrap();
    let mut names = vec!["b.txt".to_string(), "a.txt".to_string()];
    let (_, _, name2) = store
        .commit(t, || names.pop().unwrap(), |_| (1, 2))
        .unwrap();
    assert_eq!(name2, "b.txt");
    assert_eq!(std::fs::read(&dst).unwrap(), b"one");
}

/// A valid name for `content` (size and CRC32 in it), as the upload path makes them.
fn name_for(content: &[u8], rand: u32) -> String {
    use crate::proto::fileid::{new_name, FileInfo, Source};
    let info = FileInfo {
        source: Source::Ip(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        create_time: 1_700_000_000,
        size_field: FileInfo::size_field_for(content.len() as u64, false, rand),
        crc32: crc32fast::hash(content),
    };
    new_name(&info, "jpg", rand)
}

fn tmp_names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("data/.tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn create_links_into_place_and_settle_drops_the_sealed_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    // The way small files take when the upload journal is full.
    store.paths[0].journal = None;
    let name = name_for(b"photo", 1);
    let made = store
        .create(0, b"photo", || name.clone(), |_| (3, 4))
        .unwrap();
    assert_eq!((made.dirs, made.name.as_str()), ((3, 4), name.as_str()));
    assert!(made.record.is_none());
    let dst = dir.path().join("data/03/04").join(&name);
    assert_eq!(std::fs::read(&dst).unwrap(), b"photo");
    // Until settled, the sealed name keeps the file reachable from `.tmp`.
    assert_eq!(tmp_names(dir.path()), vec![format!("sealed-03-04-{name}")]);
    assert_eq!(store.unsettled_count(), 1);
    // A batch that could not be settled (the binlog flush before it failed) comes back.
    store.put_back(store.unsettled());
    assert_eq!(store.unsettled_count(), 1);
    assert_eq!(store.settle(store.unsettled()).unwrap(), 1);
    assert!(tmp_names(dir.path()).is_empty());
    assert_eq!(std::fs::read(&dst).unwrap(), b"photo");
    assert_eq!(store.settle(store.unsettled()).unwrap(), 0);
    // A taken name makes `create` ask for another; nothing is replaced. (Every name
    // `make_name` offers describes the content, as the upload path builds them.)
    let taken = name_for(b"other", 2);
    let taken_path = dir.path().join("data/03/04").join(&taken);
    std::fs::write(&taken_path, b"earlier").unwrap();
    let mut names = vec![name_for(b"other", 3), taken.clone()];
    let second = store
        .create(0, b"other", || names.pop().unwrap(), |_| (3, 4))
        .unwrap()
        .name;
    assert_ne!(second, name);
    assert_ne!(second, taken);
    assert_eq!(std::fs::read(&taken_path).unwrap(), b"earlier");
    assert_eq!(std::fs::read(&dst).unwrap(), b"photo");
    assert_eq!(
        tmp_names(dir.path()).len(),
        1,
        "only the second file's sealed name"
    );
}

#[test]
fn create_at_stores_a_peers_file_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let name = name_for(b"replica", 10);
    let target = RemoteName::parse_str(&format!("M00/0A/0B/{name}")).unwrap();
    store.create_at(&target, b"replica").unwrap();
    let dst = dir.path().join("data/0A/0B").join(&name);
    assert_eq!(std::fs::read(&dst).unwrap(), b"replica");
    // Not flushed yet: it waits for the next batch flush, not for a directory fsync.
    assert_eq!((store.unflushed_count(), store.unsettled_count()), (1, 0));
    // Its sealed name says it is a peer's file (logged again as a replica after a crash).
    assert_eq!(tmp_names(dir.path()), vec![format!("replica-0A-0B-{name}")]);
    let err = store.create_at(&target, b"replica").unwrap_err();
    assert_eq!(err.status, errno::EEXIST);
    // Content that is not what the name says (an appender grown since) is stored all the
    // same, the two-flush way: a sealed name must never promise what the file is not.
    let grown = RemoteName::parse_str(&format!("M00/0A/0C/{}", name_for(b"x", 11))).unwrap();
    store.create_at(&grown, b"x and more").unwrap();
    assert_eq!((store.unflushed_count(), store.unsettled_count()), (1, 0));
    assert_eq!(
        std::fs::read(dir.path().join("data/0A/0C").join(&grown.name)).unwrap(),
        b"x and more"
    );
    // One flush for the batch, and the sealed name goes with it.
    assert_eq!(store.flush_replicas().unwrap(), 1);
    assert_eq!(store.unflushed_count(), 0);
    assert!(tmp_names(dir.path()).is_empty());
    assert_eq!(std::fs::read(&dst).unwrap(), b"replica");
    assert_eq!(store.flush_replicas().unwrap(), 0);
    // A peer's file deleted before its flush loses its sealed name too.
    let gone = RemoteName::parse_str(&format!("M00/0A/0B/{}", name_for(b"gone", 12))).unwrap();
    store.create_at(&gone, b"gone").unwrap();
    store
        .remove(&dir.path().join("data/0A/0B").join(&gone.name))
        .unwrap();
    assert!(tmp_names(dir.path()).is_empty());
    assert_eq!(store.flush_replicas().unwrap(), 0);
}

/// Stores peer's file number `k` (a small file of its own content) in `M00/0A/0B`.
fn put_replica(store: &Store, k: u32) {
    let content = format!("replica {k}");
    let name = name_for(content.as_bytes(), k);
    let target = RemoteName::parse_str(&format!("M00/0A/0B/{name}")).unwrap();
    store.create_at(&target, content.as_bytes()).unwrap();
}

/// Issue 27.2: a newcomer receiving thousands of small files a second must not wait for the
/// flush tick with all of them pending: the 1,024th pending file asks for the flush at once.
#[test]
fn the_1024th_pending_replica_asks_for_a_flush_at_once() {
    use futures::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let put = |k: u32| put_replica(&store, k);
    for k in 0..1023 {
        put(k);
    }
    assert!(
        store.settle_wanted().now_or_never().is_none(),
        "asked too early"
    );
    put(1023);
    assert!(
        store.settle_wanted().now_or_never().is_some(),
        "not asked at 1,024"
    );
    assert_eq!(store.flush_replicas().unwrap(), 1024);
}

/// ... and when nobody flushes them (the flush task starved), the 4,096th is flushed with the
/// rest by the one storing it, before it answers.
#[test]
fn the_4096th_pending_replica_flushes_the_batch_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let put = |k: u32| put_replica(&store, k);
    for k in 0..4095 {
        put(k);
    }
    assert_eq!(store.unflushed_count(), 4095);
    put(4095);
    assert_eq!(store.unflushed_count(), 0);
    assert!(tmp_names(dir.path()).is_empty(), "sealed names dropped");
}

/// `data/XX/YY/<name>` of a file named `M00/XX/YY/<name>`.
fn placed(root: &Path, file: &Created) -> PathBuf {
    let (d1, d2) = file.dirs;
    root.join(format!("data/{d1:02X}/{d2:02X}"))
        .join(&file.name)
}

#[test]
fn small_files_are_journaled_and_settle_with_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let name = name_for(b"thumb", 1);
    let mut made = store
        .create(0, b"thumb", || name.clone(), |_| (1, 2))
        .unwrap();
    assert_eq!(std::fs::read(placed(dir.path(), &made)).unwrap(), b"thumb");
    // No sealed name, no temp file: the journal's record stands for the file.
    assert!(tmp_names(dir.path()).is_empty());
    assert_eq!(store.unsettled_count(), 0);
    assert!(store.journal_pending());
    let journal_dir = dir.path().join("data/.journal");
    let pending = journal::read_pending(&journal_dir).unwrap();
    assert_eq!(
        pending.get(&format!("01/02/{name}")),
        Some(&Some(b"thumb".to_vec()))
    );
    // A taken name is refused before anything is journaled.
    let segments = || ["0", "1"].map(|i| std::fs::read(journal_dir.join(i)).unwrap());
    let before = segments();
    let err = store
        .create(0, b"thumb", || name.clone(), |_| (1, 2))
        .unwrap_err();
    assert_eq!(err.status, errno::EEXIST);
    assert!(segments() == before, "a refused upload wrote a record");
    // Settling: the segment closes; once the upload has queued its binlog record (it
    // drops its ticket), its files are made durable and its records stop counting.
    store.close_journals();
    std::thread::scope(|s| {
        let retire = s.spawn(|| store.retire_journals().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !retire.is_finished(),
            "retired before the binlog record was queued"
        );
        made.record = None;
        assert_eq!(retire.join().unwrap(), 1);
    });
    assert!(!store.journal_pending());
    assert!(journal::read_pending(&dir.path().join("data/.journal"))
        .unwrap()
        .is_empty());
    // Larger files, and any while the journal is full, take the sealed way.
    let big = vec![7u8; journal::MAX_CONTENT + 1];
    let big_name = name_for(&big, 2);
    store
        .create(0, &big, || big_name.clone(), |_| (1, 2))
        .unwrap();
    assert_eq!(
        tmp_names(dir.path()),
        vec![format!("sealed-01-02-{big_name}")]
    );
    assert!(!store.journal_pending());
}

#[test]
fn start_up_writes_again_the_journaled_files_a_crash_lost_or_tore() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let mut rand = 10;
    let mut create = |content: &[u8]| {
        rand += 1;
        let name = name_for(content, rand);
        let mut made = store
            .create(0, content, || name.clone(), |_| (3, 3))
            .unwrap();
        made.record = None;
        made
    };
    let (lost, torn, whole, deleted) = (
        create(b"lost"),
        create(b"torn by a power cut"),
        create(b"whole"),
        create(b"deleted"),
    );
    store
        .set_metadata(
            &placed(dir.path(), &deleted),
            MetaOp::Overwrite,
            vec![(b"k".to_vec(), b"v".to_vec())],
            1024,
        )
        .unwrap();
    store.delete(&placed(dir.path(), &deleted)).unwrap();
    // A crash: nothing settles. Then stage what a power cut can leave: an entry lost, a
    // file whose data never reached the disk (zeros, or empty), and a delete undone.
    drop(store);
    std::fs::remove_file(placed(dir.path(), &lost)).unwrap();
    std::fs::write(placed(dir.path(), &torn), [0u8; 19]).unwrap();
    std::fs::write(placed(dir.path(), &deleted), b"deleted").unwrap();
    std::fs::write(Store::meta_path(&placed(dir.path(), &deleted)), b"k\x02v").unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    assert_eq!(std::fs::read(placed(dir.path(), &lost)).unwrap(), b"lost");
    assert_eq!(
        std::fs::read(placed(dir.path(), &torn)).unwrap(),
        b"torn by a power cut"
    );
    assert_eq!(std::fs::read(placed(dir.path(), &whole)).unwrap(), b"whole");
    assert!(!placed(dir.path(), &deleted).exists());
    assert!(!Store::meta_path(&placed(dir.path(), &deleted)).exists());
    assert!(tmp_names(dir.path()).is_empty());
    // Each is logged again once (its binlog record may not have been flushed).
    let mut found = store.take_sealed_at_start();
    found.sort_by_key(|f| f.filename.clone());
    let mut want: Vec<SealedFile> = [(&lost, true), (&torn, true), (&whole, false)]
        .into_iter()
        .map(|(file, moved)| SealedFile {
            filename: format!("M00/{:02X}/{:02X}/{}", file.dirs.0, file.dirs.1, file.name),
            create_time: 1_700_000_000,
            moved,
            replica: false,
        })
        .collect();
    want.sort_by_key(|f| f.filename.clone());
    assert_eq!(found, want);
    // The journal starts afresh: a second start finds nothing to do.
    assert!(!store.journal_pending());
    drop(store);
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    assert!(store.take_sealed_at_start().is_empty());
    // With fsync off the journal is replayed the same, then removed.
    let name = name_for(b"last", 99);
    let last = store
        .create(0, b"last", || name.clone(), |_| (4, 4))
        .unwrap();
    drop(store);
    std::fs::remove_file(placed(dir.path(), &last)).unwrap();
    let mut c = cfg(vec![dir.path().into()]);
    c.fsync = false;
    let store = Store::open(&c).unwrap();
    assert_eq!(std::fs::read(placed(dir.path(), &last)).unwrap(), b"last");
    assert!(!dir.path().join("data/.journal").exists());
    assert_eq!(store.take_sealed_at_start().len(), 1);
}

#[test]
fn a_file_deleted_before_it_settles_does_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let name = name_for(b"gone", 3);
    store
        .create(0, b"gone", || name.clone(), |_| (0, 0))
        .unwrap();
    let dst = dir.path().join("data/00/00").join(&name);
    store.delete(&dst).unwrap();
    assert!(tmp_names(dir.path()).is_empty());
    drop(store);
    let _store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    assert!(!dst.exists());
}

#[test]
fn start_up_finishes_sealed_files_and_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("data/.tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let seal = |dirs: &str, name: &str, content: &[u8]| {
        std::fs::write(tmp.join(format!("sealed-{dirs}-{name}")), content).unwrap()
    };
    // 1: a crash lost the link into place of a peer's file: moved there at start-up.
    let lost = name_for(b"only the sealed name survived", 4);
    std::fs::write(
        tmp.join(format!("replica-01-02-{lost}")),
        b"only the sealed name survived",
    )
    .unwrap();
    // 2: the link survived, the sealed name was not dropped yet: the name goes.
    let kept = name_for(b"in place", 5);
    std::fs::create_dir_all(dir.path().join("data/05/06")).unwrap();
    std::fs::write(dir.path().join("data/05/06").join(&kept), b"in place").unwrap();
    std::fs::hard_link(
        dir.path().join("data/05/06").join(&kept),
        tmp.join(format!("sealed-05-06-{kept}")),
    )
    .unwrap();
    // 2b: a peer's file in place whose content a power cut lost before its batch flush
    // (linked, then cut short): removed with its sealed name; its sender sends it again.
    let short = name_for(b"a peer's file", 9);
    std::fs::write(dir.path().join("data/05/06").join(&short), b"").unwrap();
    std::fs::hard_link(
        dir.path().join("data/05/06").join(&short),
        tmp.join(format!("replica-05-06-{short}")),
    )
    .unwrap();
    // 3: content that is not what its name promises (torn by a crash): removed.
    let torn = name_for(b"full content", 6);
    seal("07-08", &torn, b"full con");
    let same_size = name_for(b"full content", 7);
    seal("07-08", &same_size, b"\0\0\0\0\0\0\0\0\0\0\0\0");
    // 4: names that are not sealed files: removed (outside the directory range, bad shape).
    seal("FF-FF", &name_for(b"x", 8), b"x");
    seal("01-02", "..%2f", b"x");
    std::fs::write(tmp.join("123-4.tmp"), b"partial").unwrap();

    let mut c = cfg(vec![dir.path().into()]);
    c.subdir_count_per_path = 16;
    let store = Store::open(&c).unwrap();
    assert!(tmp_names(dir.path()).is_empty());
    assert_eq!(
        std::fs::read(dir.path().join("data/01/02").join(&lost)).unwrap(),
        b"only the sealed name survived"
    );
    assert_eq!(
        std::fs::read(dir.path().join("data/05/06").join(&kept)).unwrap(),
        b"in place"
    );
    assert!(!dir.path().join("data/07/08").join(&torn).exists());
    assert!(!dir.path().join("data/05/06").join(&short).exists());
    assert!(!dir.path().join("data/07/08").join(&same_size).exists());
    let mut found = store.take_sealed_at_start();
    found.sort_by(|a, b| a.filename.cmp(&b.filename));
    assert_eq!(
        found,
        vec![
            SealedFile {
                filename: format!("M00/01/02/{lost}"),
                create_time: 1_700_000_000,
                moved: true,
                replica: true,
            },
            SealedFile {
                filename: format!("M00/05/06/{kept}"),
                create_time: 1_700_000_000,
                moved: false,
                replica: false,
            },
        ]
    );
    assert!(store.take_sealed_at_start().is_empty());
}

#[test]
fn an_appender_is_created_the_two_flush_way() {
    use crate::proto::fileid::{new_name, FileInfo, Source};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    // An appender's name keeps no size (it grows): nothing a sealed name could vouch for.
    let info = FileInfo {
        source: Source::Ip(std::net::Ipv4Addr::LOCALHOST),
        create_time: 1_700_000_000,
        size_field: FileInfo::size_field_for(4, true, 12),
        crc32: crc32fast::hash(b"log1"),
    };
    let name = new_name(&info, "log", 12);
    store
        .create(0, b"log1", || name.clone(), |_| (2, 2))
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("data/02/02").join(&name)).unwrap(),
        b"log1"
    );
    assert_eq!(store.unsettled_count(), 0);
    assert!(tmp_names(dir.path()).is_empty());
}

#[test]
fn create_without_fsync_renames_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![dir.path().into()]);
    c.fsync = false;
    let store = Store::open(&c).unwrap();
    let name = name_for(b"quick", 9);
    store
        .create(0, b"quick", || name.clone(), |_| (0, 1))
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("data/00/01").join(&name)).unwrap(),
        b"quick"
    );
    assert!(tmp_names(dir.path()).is_empty());
    assert_eq!(store.unsettled_count(), 0);
}

#[test]
fn dropped_temp_files_vanish_and_stale_ones_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let t = store.temp_file(0, 0).unwrap();
    let p = t.path().to_path_buf();
    assert!(p.exists());
    drop(t);
    assert!(!p.exists());
    std::fs::write(dir.path().join("data/.tmp/old.tmp"), b"x").unwrap();
    let _store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/.tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn round_robin_rotates_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let seq: Vec<_> = (0..5).map(|_| store.next_dirs(0)).collect();
    assert_eq!(seq, vec![(0, 0), (0, 0), (0, 1), (0, 1), (0, 2)]);
}

#[test]
fn hash_mode_and_small_subdir_counts_stay_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![dir.path().into()]);
    c.subdir_count_per_path = 4;
    c.file_distribute_path_mode = DistributePathMode::Hash;
    let store = Store::open(&c).unwrap();
    for h in [0u32, 7, 0xFFFF_FFFF, 0x1234_5678] {
        let (a, b) = store.next_dirs(h);
        assert!(a < 4 && b < 4);
    }
    // Names pointing past subdir_count are refused instead of mapped.
    let name = RemoteName::parse_str("M00/05/00/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt").unwrap();
    assert_eq!(store.data_path(&name).unwrap_err().status, errno::EINVAL);
    let ok = RemoteName::parse_str("M00/03/01/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt").unwrap();
    assert!(store
        .data_path(&ok)
        .unwrap()
        .ends_with("data/03/01/oYYBAGsBrVGAcNb-AAAABTYQpoY788.txt"));
    c.file_distribute_path_mode = DistributePathMode::RoundRobin;
    let rr = Store::open(&c).unwrap();
    let seq: Vec<_> = (0..40).map(|_| rr.next_dirs(0)).collect();
    // Two files per directory (rotate count 2), YY first, then XX, wrapping after 4x4.
    assert_eq!(
        &seq[..10],
        &[
            (0, 0),
            (0, 0),
            (0, 1),
            (0, 1),
            (0, 2),
            (0, 2),
            (0, 3),
            (0, 3),
            (1, 0),
            (1, 0)
        ]
    );
    assert!(seq.iter().all(|&(a, b)| a < 4 && b < 4));
    assert_eq!(seq[32], (0, 0));
}

#[test]
fn path_choice_and_reserved_space() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut c = cfg(vec![a.path().into(), b.path().into()]);
    let store = Store::open(&c).unwrap();
    assert_eq!(store.choose_path(1, 10).unwrap(), 1);
    assert!(store.choose_path(0xFF, 10).unwrap() < 2);
    assert_eq!(store.choose_path(7, 10).unwrap_err().status, errno::EINVAL);
    c.reserved_storage_space = Reserved::Percent(99.99);
    let full = Store::open(&c).unwrap();
    assert_eq!(full.choose_path(0, 10).unwrap_err().status, errno::ENOSPC);
    assert_eq!(store.disk_usage().len(), 2);
    assert!(store.disk_usage()[0].total_mb > 0);
}

#[test]
fn metadata_overwrite_merge_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let f = dir.path().join("data/f");
    let pair = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
    assert_eq!(
        store
            .set_metadata(&f, MetaOp::Merge, vec![], 1024)
            .unwrap_err()
            .status,
        errno::ENOENT
    );
    std::fs::write(&f, b"x").unwrap();
    assert_eq!(store.get_metadata(&f).unwrap_err().status, errno::ENOENT);
    let ch = store
        .set_metadata(
            &f,
            MetaOp::Overwrite,
            vec![pair("width", "1024"), pair("author", "fdfs")],
            1024,
        )
        .unwrap();
    assert_eq!(ch, MetaChange::Created);
    assert_eq!(
        store.get_metadata(&f).unwrap(),
        b"author\x02fdfs\x01width\x021024"
    );
    let ch = store
        .set_metadata(
            &f,
            MetaOp::Merge,
            vec![pair("width", "800"), pair("color", "red")],
            1024,
        )
        .unwrap();
    assert_eq!(ch, MetaChange::Updated);
    assert_eq!(
        store.get_metadata(&f).unwrap(),
        b"author\x02fdfs\x01color\x02red\x01width\x02800"
    );
    assert_eq!(
        store
            .set_metadata(&f, MetaOp::Merge, vec![pair("k", &"v".repeat(200))], 64)
            .unwrap_err()
            .status,
        errno::EINVAL
    );
    assert_eq!(
        store
            .set_metadata(&f, MetaOp::Overwrite, vec![], 1024)
            .unwrap(),
        MetaChange::Removed
    );
    assert!(!Store::meta_path(&f).exists());
    assert!(store.delete(&f).is_ok_and(|had| !had));
    assert_eq!(store.delete(&f).unwrap_err().status, errno::ENOENT);
}

#[test]
fn appender_writes_append_modify_cut_back_and_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg(vec![dir.path().into()])).unwrap();
    let f = dir.path().join("data/appender");
    let missing = store.open_for_write(&f).err().unwrap();
    assert_eq!(missing.status, errno::ENOENT);
    std::fs::write(&f, b"hello").unwrap();
    // Append: from the end.
    let mut w = store.open_for_write(&f).unwrap();
    assert_eq!(w.size(), 5);
    w.write_chunk(b" wor").unwrap();
    w.write_chunk(b"ld").unwrap();
    w.finish().unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"hello world");
    // Modify: from a given offset, in place.
    let mut w = store.open_for_write(&f).unwrap().starting_at(6);
    w.write_chunk(b"WO").unwrap();
    w.finish().unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"hello WOrld");
    // A failed append is cut back to where it started.
    store.cut_back(&f, 5).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"hello");
    // TRUNCATE shrinks, or grows with zeros up to the size limit; a peer's truncate sets
    // whatever length its source has.
    let too_big = store.truncate(&f, 11, 10).unwrap_err();
    assert_eq!(too_big.status, errno::EINVAL);
    assert_eq!(store.truncate(&f, 2, 10).unwrap(), 5);
    assert_eq!(std::fs::read(&f).unwrap(), b"he");
    assert_eq!(store.truncate(&f, 3, 10).unwrap(), 2);
    assert_eq!(std::fs::read(&f).unwrap(), b"he\0");
    store.truncate_replica(&f, 1).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"h");
}

#[test]
fn a_failing_journal_flush_marks_its_store_path_like_a_failed_file_write() {
    use super::create::NewSmall;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::open(&cfg(vec![a.path().into(), b.path().into()])).unwrap();
    assert!(
        store.paths[0].journal.is_some(),
        "fsync on: small files are journaled"
    );
    let eio = i32::from(crate::proto::cmd::errno::EIO);
    store.paths[0]
        .journal
        .as_ref()
        .unwrap()
        .fail_flushes_with(eio);
    // The small-file writer's batch: the journal's flush fails, its files fail with EIO.
    let small = |i: u32| NewSmall {
        index: 0,
        content: format!("small {i}").into_bytes(),
        make_name: Box::new(move || name_for(format!("small {i}").as_bytes(), i)),
    };
    let out = store.create_many(vec![small(1), small(2)]);
    assert!(out
        .iter()
        .all(|r| r.as_ref().is_err_and(|e| e.status == errno::EIO)));
    // M00 is unwritable now, as after a failed file write: new files go to M01, and the
    // trackers are told 0 MB free for M00.
    let why = store.path_faults()[0].clone();
    assert!(
        why.as_deref().is_some_and(|w| w.contains("journal")),
        "{why:?}"
    );
    assert_eq!(store.choose_path(0, 10).unwrap(), 1);
    assert_eq!(store.disk_usage()[0].free_mb, 0);
    assert_eq!(store.path_faults()[1], None);
    // The journal keeps its own rule: closed until a restart (its later records refused).
    let stats = store.journal_stats()[0].unwrap();
    assert!(stats.failed, "{stats:?}");
}

#[test]
fn a_failing_journal_flush_in_a_single_upload_marks_its_store_path() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::open(&cfg(vec![a.path().into(), b.path().into()])).unwrap();
    let erofs = 30;
    store.paths[1]
        .journal
        .as_ref()
        .unwrap()
        .fail_flushes_with(erofs);
    let name = name_for(b"photo", 7);
    let err = store
        .create(1, b"photo", || name.clone(), |_| (3, 4))
        .unwrap_err();
    assert_eq!(err.status, 30, "{err}");
    assert!(store.path_faults()[1].is_some());
    assert_eq!(store.choose_path(1, 10).unwrap(), 0);
}
