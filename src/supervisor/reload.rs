//! Reloading the configuration (SIGHUP / `fdfs-ha reload`): read and check the file, then apply
//! the difference to the running supervisor: VRRP instances reconfigured in place or restarted,
//! probes and components started, stopped or restarted when their settings changed.

use super::*;

impl Sup {
    pub(super) async fn reload(&mut self) {
        let Some(path) = self.path.clone() else {
            tracing::warn!("reload requested but no config file is known");
            return;
        };
        let new = match config::check_file(&path) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "reload refused");
                }
                tracing::error!(
                    path = %path.display(),
                    errors = errors.len(),
                    "new config is invalid; keeping the running config"
                );
                status::lock(&self.board).last_reload = Some(status::ReloadView {
                    at_unix_ms: crate::clock::unix_millis(),
                    ok: false,
                    message: errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                });
                return;
            }
        };
        for w in &new.warnings {
            tracing::warn!(warning = %w, "config warning");
        }
        let summary = self.apply(new.config).await;
        tracing::info!(changes = %summary, "config reloaded");
        status::lock(&self.board).last_reload = Some(status::ReloadView {
            at_unix_ms: crate::clock::unix_millis(),
            ok: true,
            message: summary,
        });
    }

    /// Applies a validated new config: restarts only what changed.
    async fn apply(&mut self, new: Config) -> String {
        let mut changes: Vec<String> = Vec::new();
        let old = std::mem::replace(&mut self.cfg, new.clone());
        self.apply_log_and_status(&old, &new, &mut changes).await;
        self.apply_components(&old, &new, &mut changes).await;
        self.apply_probes(&new, &mut changes).await;
        self.apply_vrrp(&new, &mut changes).await;
        self.update_yield();
        self.update_tracking();
        if changes.is_empty() {
            "no changes".into()
        } else {
            changes.join("; ")
        }
    }

    /// `log.level` live, `log.format` at the next start, the node name, the status endpoint.
    async fn apply_log_and_status(
        &mut self,
        old: &Config,
        new: &Config,
        changes: &mut Vec<String>,
    ) {
        if old.log.level != new.log.level {
            match LOG_RELOADER.get().map(|f| f(&new.log.level)) {
                Some(Ok(())) => changes.push(format!("log.level now {:?}", new.log.level)),
                Some(Err(e)) => changes.push(format!("log.level not applied: {e}")),
                None => changes.push("log.level applies at next start".into()),
            }
        }
        if old.log.format != new.log.format {
            changes.push("log.format applies at next start".into());
        }
        if old.node != new.node {
            status::lock(&self.board).node = new.node.clone();
        }
        // Status endpoint.
        if old.status != new.status {
            if let Some((_, stop, task)) = self.status_server.take() {
                stop.cancel();
                let _ = task.await;
            }
            match self.start_status_server().await {
                Ok(()) => changes.push("status endpoint rebound".into()),
                Err(e) => changes.push(format!("status endpoint not rebound: {e:#}")),
            }
        }
    }

    /// Components: stop removed/changed, start added/changed, keep the rest running.
    async fn apply_components(&mut self, old: &Config, new: &Config, changes: &mut Vec<String>) {
        let specs = (self.hooks.components)(new, &self.env);
        let wanted: BTreeMap<String, String> = specs
            .iter()
            .map(|s| (s.name.clone(), s.fingerprint.clone()))
            .collect();
        let running: Vec<String> = self.components.keys().cloned().collect();
        for name in running {
            let keep = wanted.get(&name) == self.components.get(&name).map(|c| &c.fingerprint);
            if !keep {
                if let Some(c) = self.components.remove(&name) {
                    c.stop.cancel();
                    let _ = c.task.await;
                }
                self.comp_events.remove(&name);
                self.graces.forget(&name);
                status::lock(&self.board).components.remove(&name);
                changes.push(format!("component {name} stopped"));
            }
        }
        let policy = self.policy();
        for spec in specs {
            if self.components.contains_key(&spec.name) {
                if old.supervisor != new.supervisor {
                    if let Some(c) = self.components.get(&spec.name) {
                        let _ = c.cmd.send(ComponentCmd::Policy(policy));
                    }
                }
                continue;
            }
            let name = spec.name.clone();
            match self.start_component(spec, false).await {
                Ok(()) => changes.push(format!("component {name} started")),
                Err(e) => changes.push(format!("component {name}: {e:#}")),
            }
        }
    }

    /// Probes: changed ones restart keeping their last verdict, removed ones stop.
    async fn apply_probes(&mut self, new: &Config, changes: &mut Vec<String>) {
        let new_probes: BTreeMap<String, ProbeConfig> = new
            .probes
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        let old_names: Vec<String> = self.probes.keys().cloned().collect();
        // A probe whose settings changed (interval, timeout, ...) keeps its last verdict until
        // it checks again: restarting it as Unknown would count as failing and, with a `fault`
        // track, make a healthy Master yield on a mere reload.
        let mut carried: BTreeMap<String, Health> = BTreeMap::new();
        for name in old_names {
            if new_probes.get(&name) != self.probes.get(&name).map(|p| &p.cfg) {
                if new_probes.contains_key(&name) {
                    if let Some(h) = self.health.get(&name) {
                        carried.insert(name.clone(), *h);
                    }
                }
                self.stop_probe(&name).await;
                changes.push(format!("probe {name} stopped"));
            }
        }
        for (name, p) in &new_probes {
            if !self.probes.contains_key(name) {
                match self.start_probe(p) {
                    Ok(()) => {
                        if let Some(h) = carried.remove(name) {
                            self.health.insert(name.clone(), h);
                            if let Some(v) = status::lock(&self.board).probes.get_mut(name) {
                                v.health = h;
                            }
                        }
                        changes.push(format!("probe {name} started"))
                    }
                    Err(e) => changes.push(format!("probe {name}: {e}")),
                }
            }
        }
    }

    /// VRRP instances: applied live when possible, restarted otherwise.
    async fn apply_vrrp(&mut self, new: &Config, changes: &mut Vec<String>) {
        // VRRP instances keep running through a reload (no flap): track/notify changes are the
        // supervisor's, the rest is applied in place by the engine; only what the instance is
        // bound to (interface, VRID, source, peers) or a global change restarts it.
        let new_vrrp = new.vrrp.clone();
        let new_insts: BTreeMap<String, VrrpInstanceConfig> = new_vrrp
            .iter()
            .flat_map(|v| v.instances.iter())
            .map(|i| (i.name.clone(), i.clone()))
            .collect();
        let new_global = new_vrrp.as_ref().map(global_fingerprint);
        let names: Vec<String> = self.instances.keys().cloned().collect();
        for name in names {
            let live = match (self.instances.get_mut(&name), new_insts.get(&name)) {
                (Some(r), Some(n))
                    if Some(&r.global_fp) == new_global.as_ref()
                        && crate::vrrp::reload::restart_needed(&r.cfg, n).is_none() =>
                {
                    let applied = if same_but_tracking(&r.cfg, n) {
                        Ok(())
                    } else {
                        r.handle.reconfigure(n)
                    };
                    match applied {
                        Ok(()) => {
                            let what = crate::vrrp::reload::describe(&r.cfg, n);
                            if !what.is_empty() {
                                changes.push(format!(
                                    "vrrp {name}: applied live: {}",
                                    what.join(", ")
                                ));
                            }
                            if !track_notify_unchanged(&r.cfg, n) {
                                changes.push(format!("vrrp {name}: track/notify applied live"));
                            }
                            r.cfg = n.clone();
                            true
                        }
                        Err(e) => {
                            tracing::warn!(instance = %name, error = %format!("{e:#}"), "cannot apply the reload in place; restarting the instance");
                            false
                        }
                    }
                }
                _ => false,
            };
            if !live {
                self.stop_instance(&name).await;
                changes.push(format!("vrrp {name} stopped (changed or removed)"));
            }
        }
        if let Some(vr) = &new_vrrp {
            for inst in &vr.instances {
                if self.instances.contains_key(&inst.name) {
                    continue;
                }
                match self.start_instance(vr, inst).await {
                    Ok(()) => changes.push(format!("vrrp {} started", inst.name)),
                    Err(e) => {
                        tracing::error!(instance = %inst.name, error = %format!("{e:#}"), "cannot start vrrp instance");
                        changes.push(format!("vrrp {}: {e:#}", inst.name));
                    }
                }
            }
        }
    }
}

pub(super) fn global_fingerprint(v: &VrrpConfig) -> String {
    let mut g = v.clone();
    g.instances.clear();
    component::fp(&g)
}

/// True when two instance configs differ at most in `track` and `notify` (applied live).
/// Whether track and notify are unchanged.
fn track_notify_unchanged(a: &VrrpInstanceConfig, b: &VrrpInstanceConfig) -> bool {
    a.track == b.track && a.notify == b.notify
}

fn same_but_tracking(a: &VrrpInstanceConfig, b: &VrrpInstanceConfig) -> bool {
    let strip = |c: &VrrpInstanceConfig| {
        let mut c = c.clone();
        c.track.clear();
        c.notify.clear();
        c
    };
    strip(a) == strip(b)
}
