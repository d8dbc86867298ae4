//! Resident memory the allocator does not own: the pages of code and read-only data this
//! process mapped from files (the binary, libc) only while it started.
//!
//! Why: the kernel maps file pages in 64 KiB windows around each page a process touches
//! (fault-around), and start-up touches a lot that never runs again: argument and config
//! parsing, validation, creating a store's 65,536 directories, the first tracker join. An idle
//! storage kept those pages resident (several MB of its RSS; C FastDFS's storage idles at
//! 5.6 MB, issue 21.5). Once start-up is over, [`release_startup_pages`] unmaps the file pages
//! of every read-only private mapping (`MADV_DONTNEED`); what the node runs from then on maps
//! its pages again on first use (a minor fault each: they stay in the page cache), so what
//! stays resident is what the node keeps running. Nothing is lost: such a mapping holds only
//! the file's bytes, and a mapping holding anything else (a page written, e.g. relocated or
//! patched by a debugger: `Anonymous` in smaps) is left alone.

use std::io;

/// A read-only, private, file-backed mapping of this process with nothing but the file's
/// bytes in it: `(start, end)` addresses and the kB resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRange {
    pub start: usize,
    pub end: usize,
    pub rss_kb: u64,
}

/// The mappings of an `/proc/<pid>/smaps` text whose resident pages can be dropped and read
/// again from their file: a path, no write permission, private (`p`), no anonymous (copied)
/// page, none locked.
pub fn droppable(smaps: &str) -> Vec<FileRange> {
    let mut out = Vec::new();
    let mut cur: Option<(FileRange, bool)> = None;
    let finish = |c: Option<(FileRange, bool)>, out: &mut Vec<FileRange>| {
        if let Some((r, true)) = c {
            if r.rss_kb > 0 {
                out.push(r);
            }
        }
    };
    for line in smaps.lines() {
        if let Some((range, ok)) = header(line) {
            finish(cur.take(), &mut out);
            cur = Some((range, ok));
            continue;
        }
        let Some((range, ok)) = cur.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kb = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        match (key, kb) {
            ("Rss", Some(kb)) => range.rss_kb = kb,
            ("Anonymous" | "Locked", Some(kb)) if kb > 0 => *ok = false,
            _ => {}
        }
    }
    finish(cur, &mut out);
    out
}

/// A mapping's first smaps line (`start-end perms offset dev inode path`): its range and
/// whether its kind qualifies. `None` for the `Key: value` lines.
fn header(line: &str) -> Option<(FileRange, bool)> {
    let mut f = line.split_whitespace();
    let (start, end) = f.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = f.next()?.as_bytes();
    if perms.len() != 4 {
        return None;
    }
    let path = f.nth(3);
    let ok = perms[0] == b'r'
        && perms[1] == b'-'
        && perms[3] == b'p'
        && path.is_some_and(|p| p.starts_with('/'));
    Some((
        FileRange {
            start,
            end,
            rss_kb: 0,
        },
        ok,
    ))
}

/// Unmaps the resident file pages of this process's read-only private file mappings (see the
/// module doc). Returns the kB that were resident in them. Linux only; elsewhere 0.
pub fn release_startup_pages() -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        let mut released = 0;
        for r in droppable(&smaps) {
            // SAFETY: the range is a whole mapping of this process that holds only a file's
            // bytes and is never written (no write permission, no anonymous page): after
            // MADV_DONTNEED the next access reads the same bytes from the page cache. Code
            // running in it, this function's included, faults its page back in.
            let rc = unsafe {
                libc::madvise(
                    r.start as *mut libc::c_void,
                    r.end - r.start,
                    libc::MADV_DONTNEED,
                )
            };
            if rc == 0 {
                released += r.rss_kb;
            }
        }
        Ok(released)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0a00000-55d0c0b75000 r--p 00000000 fd:01 1234   /usr/bin/fdfs-ha
Size:               1492 kB
Rss:                 816 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c0b76000-55d0c1312000 r-xp 00175000 fd:01 1234   /usr/bin/fdfs-ha
Size:               7792 kB
Rss:                5296 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c1312000-55d0c133d000 r--p 00910000 fd:01 1234   /usr/bin/fdfs-ha
Rss:                 172 kB
Anonymous:           172 kB
Locked:                0 kB
55d0c133d000-55d0c1340000 rw-p 0093b000 fd:01 1234   /usr/bin/fdfs-ha
Rss:                  12 kB
Anonymous:            12 kB
55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0      [heap]
Rss:                 156 kB
Anonymous:           156 kB
7f0000000000-7f0000100000 r--s 00000000 fd:01 99     /var/lib/shared.db
Rss:                  40 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r-xp 00028000 fd:01 77     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1008 kB
Anonymous:             0 kB
Locked:                0 kB
7f0000400000-7f0000500000 r--p 00000000 fd:01 78     /locked.bin
Rss:                  64 kB
Anonymous:             0 kB
Locked:               64 kB
7f0000600000-7f0000601000 r--p 00000000 fd:01 79     /cold.bin
Rss:                   0 kB
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0      [vdso]
Rss:                   4 kB
Anonymous:             0 kB
";

    #[test]
    fn only_unwritten_private_file_pages_are_dropped() {
        let got: Vec<(usize, u64)> = droppable(SMAPS)
            .iter()
            .map(|r| (r.start, r.rss_kb))
            .collect();
        // The binary's read-only data and code, and libc's code: not its relocated (written,
        // anonymous) part, its writable data, the heap, a shared mapping, a locked one, one
        // with nothing resident, or the vdso.
        assert_eq!(
            got,
            [
                (0x55d0c0a00000, 816),
                (0x55d0c0b76000, 5296),
                (0x7f0000200000, 1008),
            ]
        );
        assert_eq!(droppable(SMAPS)[1].end, 0x55d0c1312000);
        assert!(droppable("").is_empty());
        assert!(droppable("garbage\nRss: 5 kB\n").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_pages_leave_rss_and_code_keeps_running() {
        let file_kb = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap()
        };
        let before = file_kb();
        let released = release_startup_pages().unwrap();
        assert!(released > 0, "nothing released (RssFile {before} kB)");
        // This code, the test harness and libc run on; what they touch maps again.
        let after = file_kb();
        assert!(after < before, "RssFile {before} kB -> {after} kB");
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
