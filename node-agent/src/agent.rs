//! The agent's shared state (host root, store, metrics) and the scans every mode runs through
//! it: a full scan of a workspace, the rescans a batch of realtime events asks for, and
//! forgetting workspaces that are no longer configured. Each change is printed as a JSON line
//! and counted here, whatever the mode; one scan runs at a time.
//!
//! It never schedules (that is `schedule`) and never talks to the API server (that is
//! `cluster`): in the cluster, changes reach the API through the outbox the scans fill.

use std::sync::{Arc, Mutex};

use kubefim_crds::{ChangeSource, WorkspaceConfig};

use crate::{
    Result,
    config::WorkspaceKey,
    diff::Change,
    hostfs::HostRoot,
    lock,
    metrics::Metrics,
    outbox::OutboxPolicy,
    output, packages,
    realtime::{self, Signal, Watcher},
    scan::{ScanMode, ScanOutcome, Scanner},
    store::BaselineStore,
};

/// The longest a scan waits for a package operation to end.
const PACKAGE_OPERATION_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Everything a scan needs, shared with the blocking scan tasks.
#[derive(Debug)]
pub struct Agent {
    pub node: String,
    pub root: HostRoot,
    /// Shared with the in-cluster mode's async side, which reaches it through `StoreAccess`.
    pub store: Arc<BaselineStore>,
    pub metrics: Metrics,
    /// One scan at a time: a full scan and a realtime rescan running together could both report
    /// the same change.
    scan_lock: Mutex<()>,
    /// In the cluster, changes are also queued for the API server in the durable outbox.
    pub outbox: Option<OutboxPolicy>,
    /// Notified when a realtime rescan found changes, so status is refreshed soon.
    pub changes_seen: Arc<tokio::sync::Notify>,
    /// Notified when a scan queued changes in the outbox: the reporter sends them at once
    /// rather than at its next idle poll.
    pub outbox_filled: Arc<tokio::sync::Notify>,
    /// In the cluster, the names of the pods actors run in.
    pub pod_names: Option<Arc<dyn crate::actors::PodNames>>,
}

impl Agent {
    pub fn new(node: &str, root: HostRoot, store: BaselineStore) -> Self {
        Self {
            node: node.to_string(),
            root,
            store: Arc::new(store),
            metrics: Metrics::new(node),
            scan_lock: Mutex::new(()),
            outbox: None,
            changes_seen: Arc::new(tokio::sync::Notify::new()),
            outbox_filled: Arc::new(tokio::sync::Notify::new()),
            pod_names: None,
        }
    }

    /// Runs `scan` with a sink that prints each change as a JSON line and counts it.
    fn print_changes(
        &self,
        actors: Option<&dyn crate::actors::ActorSource>,
        scan: impl FnOnce(&Scanner<'_>, &mut dyn FnMut(Change)) -> Result<ScanOutcome>,
    ) -> Result<ScanOutcome> {
        let scanner = Scanner {
            root: &self.root,
            store: &self.store,
            env: &crate::env_var,
            outbox: self.outbox.as_ref(),
            walkers: crate::resources::walk_threads(),
            actors,
        };
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut write_error = None;
        let mut queued = false;
        let outcome = scan(&scanner, &mut |change| {
            queued = true;
            self.metrics.record_change(&change);
            if let Err(e) = output::write_json_line(&mut out, &change, &self.node) {
                write_error.get_or_insert(e);
            }
        })?;
        if self.outbox.is_some() {
            if queued {
                self.outbox_filled.notify_one();
            }
            // The gauge follows every commit, not only the reporter's passes.
            let depth = self.store.queue().depth()?;
            self.metrics
                .outbox_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        write_error.map_or(Ok(outcome), Err)
    }

    /// Scans one workspace in full, printing each change as a JSON line on stdout.
    pub fn scan_and_print(&self, workspace: &WorkspaceConfig) -> Result<ScanOutcome> {
        let _serial = lock(&self.scan_lock);
        self.wait_for_package_operations();
        self.full_scan(workspace, ChangeSource::Scan)
    }

    /// Waits (on the scan thread) while a package manager holds its lock: mid-operation the
    /// host has half-unpacked files (`.dpkg-new`) and a database not yet written. At most
    /// [`PACKAGE_OPERATION_WAIT`], so a lock held forever delays detection but never stops it.
    fn wait_for_package_operations(&self) {
        if !packages::in_progress(&self.root) {
            return;
        }
        tracing::info!("a package operation is in progress; scanning once it ends");
        let started = std::time::Instant::now();
        while packages::in_progress(&self.root) {
            if started.elapsed() >= PACKAGE_OPERATION_WAIT {
                tracing::warn!(
                    waited_s = started.elapsed().as_secs(),
                    "a package manager has held its lock too long; scanning anyway"
                );
                return;
            }
            if crate::stop::requested().is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn full_scan(&self, workspace: &WorkspaceConfig, source: ChangeSource) -> Result<ScanOutcome> {
        let outcome = self.print_changes(None, |scanner, sink| {
            scanner.scan(workspace, ScanMode::Detect, source, sink)
        })?;
        self.metrics.record_scan(&outcome);
        log_scan(&outcome);
        Ok(outcome)
    }

    /// Migrates a store written before state was keyed by namespace, once, with the namespaces
    /// `workspaces` give; announced in the log.
    pub fn migrate_store(&self, workspaces: &[WorkspaceConfig]) -> Result<()> {
        let _serial = lock(&self.scan_lock);
        if let Some(migration) = self.store.migrate_legacy(workspaces)? {
            tracing::warn!(moved = migration.moved.len(), dropped = ?migration.dropped,
                "the baseline store was migrated to namespaced keys (format 2); the entities moved keep their baselines");
        }
        Ok(())
    }

    /// Drops the baselines of workspaces that are no longer configured, so re-enabling one later
    /// starts from a silent baseline rather than reporting everything that changed meanwhile.
    pub fn forget_workspaces_except(&self, workspaces: &[WorkspaceConfig]) -> Result<()> {
        let _serial = lock(&self.scan_lock);
        let update = self.store.update()?;
        let dropped = update.drop_entities_where(|stored| {
            !workspaces.iter().any(|w| WorkspaceKey::of(w) == stored.workspace)
        })?;
        if dropped == 0 {
            // Nothing to forget: leave the store file untouched.
            return update.abort();
        }
        update.commit()
    }

    /// Runs what a batch of events asks for: targeted rescans or, after lost events, a full
    /// rescan of every realtime workspace.
    pub fn realtime_scan(
        &self,
        workspaces: &[WorkspaceConfig],
        watcher: &Mutex<Watcher>,
        signal: Signal,
        actors: Option<&crate::actors::Actors>,
    ) -> Result<()> {
        let _serial = lock(&self.scan_lock);
        self.wait_for_package_operations();
        if signal.overflow {
            tracing::warn!(
                "inotify event queue overflowed; rescanning every watched entity to cover the gap"
            );
            self.metrics.realtime_degraded.set(1);
            for workspace in workspaces.iter().filter(|w| w.scan.realtime) {
                self.full_scan(workspace, ChangeSource::Realtime)?;
            }
            let mut watcher = lock(watcher);
            for index in 0..watcher.entities().len() {
                watcher.watch_tree(&self.root, index, &[]);
            }
        }
        for ((workspace, entity), keys) in signal.targets {
            let Some(ws) = workspaces.iter().find(|w| WorkspaceKey::of(w) == workspace) else {
                continue;
            };
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            {
                // Watch new directories before rescanning them: what is created in them afterwards
                // raises an event, what was created before is found by the rescan.
                let mut watcher = lock(watcher);
                if let Some(index) = watcher.entity_index(&workspace, &entity) {
                    for key in &keys {
                        watcher.watch_tree(&self.root, index, key);
                    }
                }
            }
            let actors = actors.map(|a| a as &dyn crate::actors::ActorSource);
            let outcome = self.print_changes(actors, |scanner, sink| {
                scanner.scan_targets(ws, &entity, &keys, ChangeSource::Realtime, sink)
            })?;
            self.metrics.record_partial(&outcome);
            if outcome.changes > 0 {
                self.changes_seen.notify_one();
            }
        }
        realtime::publish(&self.metrics, &lock(watcher));
        Ok(())
    }
}

fn log_scan(outcome: &ScanOutcome) {
    let baselined = outcome.entities.iter().filter(|e| e.baselined).count();
    tracing::info!(
        workspace = %outcome.workspace,
        files = outcome.files_scanned,
        changes = outcome.changes,
        errors = outcome.errors(),
        baselined_entities = baselined,
        duration_ms = outcome.duration.as_millis() as u64,
        "scan finished"
    );
    for entity in outcome.entities.iter().filter(|e| e.message.is_some()) {
        tracing::warn!(workspace = %outcome.workspace, entity = %entity.name, state = ?entity.state,
            message = entity.message.as_deref().unwrap_or(""), "entity needs attention");
    }
}
