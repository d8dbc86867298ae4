//! Fault injection for drills and tests: kill one embedded component as if it crashed, or make
//! every further start of it fail. Reached only through the loopback status endpoint
//! (`POST /debug/components/<name>/kill|break|fix`), which listens on 127.0.0.1 only.
//!
//! [`Injectable`] wraps each component the supervisor starts; it consults the shared [`Faults`]
//! at every start and races the serving future against a kill request, so the supervisor sees a
//! real failure and applies its restart policy (and yields once `max_restarts` is reached).

use super::component::{Component, ServeFuture};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Entry {
    broken: bool,
    /// Bumped on each kill request; a running instance watches it.
    kills: Option<watch::Sender<u64>>,
}

/// Faults requested per component name.
#[derive(Default)]
pub struct Faults {
    by_name: Mutex<HashMap<String, Entry>>,
}

impl Faults {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_name.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kill_rx(&self, name: &str) -> watch::Receiver<u64> {
        let mut m = self.entries();
        let e = m.entry(name.to_string()).or_default();
        e.kills
            .get_or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn is_broken(&self, name: &str) -> bool {
        self.entries().get(name).is_some_and(|e| e.broken)
    }

    /// Aborts the running instance of `name` (the supervisor restarts it per policy).
    pub fn kill(&self, name: &str) {
        let mut m = self.entries();
        let e = m.entry(name.to_string()).or_default();
        e.kills
            .get_or_insert_with(|| watch::channel(0).0)
            .send_modify(|n| *n += 1);
    }

    /// Makes every further start of `name` fail, and kills the running instance.
    pub fn break_component(&self, name: &str) {
        self.entries().entry(name.to_string()).or_default().broken = true;
        self.kill(name);
    }

    /// Lets `name` start again.
    pub fn fix(&self, name: &str) {
        if let Some(e) = self.entries().get_mut(name) {
            e.broken = false;
        }
    }
}

/// A component with fault injection around it.
pub struct Injectable {
    pub name: String,
    pub inner: Arc<dyn Component>,
    pub faults: Arc<Faults>,
}

impl Component for Injectable {
    fn start(&self, shutdown: CancellationToken) -> BoxFuture<'_, anyhow::Result<ServeFuture>> {
        Box::pin(async move {
            if self.faults.is_broken(&self.name) {
                anyhow::bail!("{}: start refused (fault injected: break)", self.name);
            }
            let mut kills = self.faults.kill_rx(&self.name);
            kills.borrow_and_update();
            let serve = self.inner.start(shutdown).await?;
            let name = self.name.clone();
            Ok(Box::pin(async move {
                tokio::select! {
                    r = serve => r,
                    Ok(()) = kills.changed() => {
                        // Dropping `serve` aborts the component, listeners included.
                        tracing::warn!(component = %name, "killed (fault injected)");
                        Err(anyhow::anyhow!("killed (fault injected)"))
                    }
                }
            }) as ServeFuture)
        })
    }
}
