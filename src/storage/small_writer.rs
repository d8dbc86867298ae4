//! The small-file writer: one thread that does the file work of small new files (uploads and
//! peers' files received into memory) for every connection, in batches.
//!
//! Why a thread of its own: running that work in place on an async worker
//! (`block_in_place`) handed the worker's core to another thread and back for every upload —
//! 8 futex calls and 1.3 sched_yield per upload under strace — and a blocking-pool task per
//! upload costs two thread hand-offs. Here a connection sends a job over a channel and awaits
//! its answer: at most one wake each way, none while the writer is busy. And a batch is the
//! upload journal's group: every upload waiting when a batch starts shares one journal write
//! and one flush (`Store::create_many`), so eight concurrent uploads cost one device flush.
//!
//! With fsync off there is no flush to share: the work runs in place (`block_in_place`), which
//! measured 1.7x the hand-off's rate there (docs/BENCHMARKS.md, issue 21, 2026-12-06 07:44).
//!
//! The thread starts with the first job and ends when the storage's state is dropped (the
//! channel closes). It holds the state weakly: a job in flight keeps it alive.

use super::state::StorageState;
use super::store::{Created, NewSmall, Store, StoreError, StoreResult};
use crate::proto::cmd::errno;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::oneshot;

/// Most jobs taken into one batch (bounds the time the first of them waits for the last).
const MAX_BATCH: usize = 64;

enum Job {
    /// A new small file (`Store::create_many`).
    Create(NewSmall, oneshot::Sender<StoreResult<Created>>),
    /// Any other short file work, run in turn.
    Run(Box<dyn FnOnce(&Store) + Send>),
}

/// The channel to the writer thread, made on first use.
#[derive(Default)]
pub struct SmallWriter {
    jobs: OnceLock<mpsc::Sender<Job>>,
}

impl SmallWriter {
    fn send(&self, state: &Arc<StorageState>, job: Job) -> Result<(), StoreError> {
        let jobs = self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let weak = Arc::downgrade(state);
            let spawned = std::thread::Builder::new()
                .name("small-writer".into())
                .spawn(move || run(weak, rx));
            if let Err(e) = spawned {
                // The receiver is gone with the closure: every send fails below.
                tracing::error!(error = %e, "cannot start the small-file writer thread");
            }
            tx
        });
        jobs.send(job)
            .map_err(|_| StoreError::new(errno::EIO, "the small-file writer has stopped"))
    }

    /// Stores a new small file (see `Store::create_many`), sharing the journal's flush with
    /// the others waiting.
    pub async fn create(state: &Arc<StorageState>, file: NewSmall) -> StoreResult<Created> {
        // fsync off: no flush to share, so no batch to wait for; in place (block_in_place) was
        // 1.7x as fast as the hand-off at c=1 and c=8 (docs/BENCHMARKS.md, issue 21).
        if !state.store().fsync_enabled() {
            return in_place(state, move |s| one(s, file)).await;
        }
        let (tx, rx) = oneshot::channel();
        state.small_writer().send(state, Job::Create(file, tx))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::new(errno::EIO, "the small-file writer failed")))
    }

    /// Runs `f` on the writer thread (short file work: a peer's small file, say).
    pub async fn run<T: Send + 'static>(
        state: &Arc<StorageState>,
        f: impl FnOnce(&Store) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        if !state.store().fsync_enabled() {
            return in_place(state, f).await;
        }
        let (tx, rx) = oneshot::channel();
        let job = Job::Run(Box::new(move |store| {
            let _ = tx.send(f(store));
        }));
        state.small_writer().send(state, job)?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::new(errno::EIO, "the small-file writer failed")))
    }
}

/// The writer thread: takes what is queued (up to `MAX_BATCH`), stores the new files of the
/// batch together, runs the rest, answers each.
fn run(state: Weak<StorageState>, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(state) = state.upgrade() else {
            return; // answers dropped: the connections see the writer gone
        };
        // A bug in one batch must not stop every later small upload: its answers are dropped
        // (those connections see an error), the thread goes on.
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(&state, batch)));
        if done.is_err() {
            tracing::error!("the small-file writer panicked on a batch; its uploads failed");
        }
    }
}

/// One batch: the new files together, the rest in turn.
fn serve(state: &StorageState, batch: Vec<Job>) {
    {
        let store = state.store();
        let mut files = Vec::new();
        let mut answers = Vec::new();
        for job in batch {
            match job {
                Job::Create(file, answer) => {
                    files.push(file);
                    answers.push(answer);
                }
                Job::Run(f) => f(store),
            }
        }
        if !files.is_empty() {
            for (result, answer) in store.create_many(files).into_iter().zip(answers) {
                // A connection gone meanwhile drops its answer (and the file's journal ticket
                // with it, after the file is in place: it is simply a file nobody knows).
                let _ = answer.send(result);
            }
        }
    }
}

/// One new small file, stored at once.
fn one(store: &Store, file: NewSmall) -> StoreResult<Created> {
    store
        .create_many(vec![file])
        .pop()
        .unwrap_or_else(|| Err(StoreError::new(errno::EIO, "not stored")))
}

/// Runs `f` on this thread, off the async scheduling (`block_in_place`); on the blocking pool
/// where that is not allowed (current-thread runtimes in tests).
async fn in_place<T: Send + 'static>(
    state: &Arc<StorageState>,
    f: impl FnOnce(&Store) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(|| f(state.store()));
    }
    spawned(state, f).await
}

/// Runs `f` on the blocking pool.
async fn spawned<T: Send + 'static>(
    state: &Arc<StorageState>,
    f: impl FnOnce(&Store) -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    let st = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(st.store()))
        .await
        .unwrap_or_else(|e| Err(StoreError::new(errno::EIO, format!("blocking task: {e}"))))
}
