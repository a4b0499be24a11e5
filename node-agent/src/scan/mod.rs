//! The scan engine: for each entity of a workspace, what is on the host is merge-joined against
//! the stored baseline in key order, only what the fast path cannot vouch for is hashed (in
//! parallel), one Change is emitted per difference, and only what changed is written, in one
//! update per scan. Memory is bounded by the batch size and the walk depth, never by the number
//! of files (unreadable keys aside: one per object that could not be examined). Split by job:
//! - `merge`: what is on the host (walk or units) against what is stored, in key order;
//! - `hashing`: the parallel hashing that turns a merged batch into current states;
//! - `record`: comparing a current state with the stored one, emitting the change, writing it;
//! - `targets`: realtime rescans of only what events point at.
//!
//! It never prints, never talks to the API server and never opens a table of the store: changes
//! go to the caller's sink (and the outbox, when there is one), storage goes through the store.

mod attributing;
mod hashing;
mod merge;
pub mod progress;
mod record;
mod targets;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use kubefim_crds::{
    ChangeSource, EntityConfig, EntityType, WorkspaceConfig,
    filechange::{ChangedAttribute, MountedFilesystem},
    nodestatus::EntityState,
};

use crate::{
    Error, Result,
    config::{Settings, WorkspaceKey},
    diff::Change,
    hostfs::HostRoot,
    outbox::{OutboxPolicy, OutboxWriter},
    records::EntityBaseline,
    resolve::{self, ResolveError, ResolvedEntity},
    resources::Throttle,
    store::{BaselineStore, EntityKey, Snapshot, StoredEntity, Update},
};

/// What a scan does with what it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanMode {
    /// Report differences and make the current state the baseline (the agent's loop).
    Detect,
    /// As Detect, each difference reported as accepted (`update`): attribution
    /// BaselineAccepted.
    Accept,
    /// Report differences, leave the baseline as it is (`check`); the package ledger is updated.
    Check,
    /// Record the current state as the baseline, report nothing (`init`).
    Init,
}

/// What one entity's scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityOutcome {
    pub name: String,
    pub entity_type: EntityType,
    pub files: u64,
    pub state: EntityState,
    pub message: Option<String>,
    /// The entity was (re)baselined silently in this scan.
    pub baselined: bool,
    pub errors: BTreeMap<&'static str, u64>,
    /// Entries of the baseline a mount covers: kept, neither compared nor reported removed.
    pub hidden: u64,
    /// Stored records from before attributes were tracked whose attributes this scan read
    /// for the first time: taken as they are, no change reported.
    pub first_attributes: u64,
}

impl EntityOutcome {
    /// A custom entity (not a recommended item, which may well be absent on a node, such as
    /// /opt/bin) whose scan found nothing and could examine everything: its path is worth a
    /// word to its owner.
    pub fn matched_nothing(&self) -> bool {
        self.files == 0
            && self.errors.is_empty()
            && !self.name.starts_with(kubefim_crds::keys::RECOMMENDED_PREFIX)
    }

    fn new(entity: &EntityConfig) -> Self {
        Self {
            name: entity.name.clone(),
            entity_type: entity.entity_type,
            files: 0,
            state: EntityState::Active,
            message: None,
            baselined: false,
            errors: BTreeMap::new(),
            hidden: 0,
            first_attributes: 0,
        }
    }
}

/// What one workspace scan found.
#[derive(Clone, Debug)]
pub struct ScanOutcome {
    pub namespace: String,
    pub workspace: String,
    pub started_at: jiff::Timestamp,
    pub duration: Duration,
    pub files_scanned: u64,
    pub bytes_hashed: u64,
    pub changes: u64,
    /// Differences a baseline accept took as the new baseline (each reported as accepted).
    pub accepted: u64,
    pub entities: Vec<EntityOutcome>,
}

impl ScanOutcome {
    /// The start of a scan of `ws`: its parsed settings, the clock, and an empty outcome.
    fn begin(ws: &WorkspaceConfig) -> Result<(Settings, Instant, Self)> {
        let settings = Settings::from_config(ws)?;
        let outcome = Self {
            namespace: ws.namespace.clone(),
            workspace: ws.name.clone(),
            started_at: jiff::Timestamp::now(),
            duration: Duration::ZERO,
            files_scanned: 0,
            bytes_hashed: 0,
            changes: 0,
            accepted: 0,
            entities: Vec::new(),
        };
        Ok((settings, Instant::now(), outcome))
    }

    pub fn errors(&self) -> u64 {
        self.entities.iter().flat_map(|e| e.errors.values()).sum()
    }

    fn add(&mut self, scan: EntityScan<'_>) {
        self.files_scanned += scan.files_scanned;
        self.bytes_hashed += scan.bytes_hashed;
        self.changes += scan.changes;
        if scan.accepting.is_some() {
            self.accepted += scan.changes;
        }
        self.entities.push(scan.outcome);
    }
}

/// Scans workspaces against one store and host root.
pub struct Scanner<'a> {
    pub root: &'a HostRoot,
    pub store: &'a BaselineStore,
    /// Reads environment variables for path expansion.
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// In the cluster: every change is also queued in the durable outbox, in the scan's own
    /// write transaction.
    pub outbox: Option<&'a OutboxPolicy>,
    /// Threads that walk an entity's subtrees ahead of the merge-join (0: walk on the scan's
    /// own thread).
    pub walkers: usize,
    /// Names the process behind each change of a targeted (realtime) rescan, when actors are on.
    pub actors: Option<&'a dyn crate::actors::ActorSource>,
}

impl std::fmt::Debug for Scanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("root", &self.root.path())
            .field("store", &self.store.path())
            .finish()
    }
}

/// One entity's scan in progress: what it is, how it is scanned, and what it found so far.
/// A change of a mount root says what is mounted there now, from the node's mount table (read
/// for such a change only: they are rare).
fn describe_mount(root: &HostRoot, change: &mut Change) {
    if !change.changed.contains(&ChangedAttribute::Mount)
        || !change.current.as_ref().is_some_and(|c| c.meta.mount_root)
    {
        return;
    }
    let key = change
        .path
        .trim_start_matches('/')
        .replace('/', "\0")
        .into_bytes();
    match root
        .mount_path()
        .and_then(|path| crate::mounts::Table::read(&path))
    {
        Ok(table) => {
            change.mount = table.at(&key).map(|m| MountedFilesystem {
                fs_type: m.fs_type.clone(),
                source: m.source.clone(),
                root: m.root.clone(),
            })
        }
        Err(error) => {
            tracing::warn!(%error, path = %change.path, "cannot read the mount table to say what is mounted")
        }
    }
}

struct EntityScan<'s> {
    ws: &'s WorkspaceConfig,
    entity: &'s EntityConfig,
    resolved: ResolvedEntity,
    settings: Settings,
    mode: ScanMode,
    /// Nothing is reported: the scan builds a baseline.
    silent: bool,
    source: ChangeSource,
    now: jiff::Timestamp,
    outcome: EntityOutcome,
    files_scanned: u64,
    bytes_hashed: u64,
    changes: u64,
    /// Set while a baseline accept is reported: the accepted revision (empty for `update`).
    accepting: Option<String>,
    /// The workspace's read rate (`scan.maxReadRate`): entities are scanned one after another,
    /// so one throttle per entity holds the workspace to it.
    throttle: Option<std::sync::Arc<Throttle>>,
    /// The entity's own path no longer resolves (a symlink loop at it or above it, a path
    /// leaving the host root): unlike one unreadable file deep in a tree, that is the change,
    /// and every stored entry is reported removed.
    root_unresolvable: bool,
}

impl<'s> EntityScan<'s> {
    fn new(
        ws: &'s WorkspaceConfig,
        entity: &'s EntityConfig,
        resolved: ResolvedEntity,
        settings: Settings,
        mode: ScanMode,
        source: ChangeSource,
        now: jiff::Timestamp,
    ) -> Self {
        Self {
            ws,
            entity,
            resolved,
            settings,
            mode,
            silent: mode == ScanMode::Init,
            source,
            now,
            outcome: EntityOutcome::new(entity),
            files_scanned: 0,
            bytes_hashed: 0,
            changes: 0,
            accepting: (mode == ScanMode::Accept).then(|| ws.baseline_revision.clone()),
            throttle: Throttle::per_second(settings.max_read_rate).map(std::sync::Arc::new),
            root_unresolvable: false,
        }
    }

    fn key(&self) -> EntityKey {
        EntityKey::new(&self.ws.namespace, &self.ws.name, &self.entity.name)
    }

    fn identity(&self) -> EntityBaseline {
        EntityBaseline {
            fingerprint: self.resolved.fingerprint.clone(),
            baseline_revision: self.ws.baseline_revision.clone(),
        }
    }

    fn keeps_content(&self) -> bool {
        self.entity.entity_type == EntityType::FileContent
    }
}

/// Queues each change in the outbox (when there is one) before handing it to the caller's sink.
struct Queue<'s, 't> {
    outbox: Option<OutboxWriter<'t>>,
    sink: &'s mut dyn FnMut(Change),
    error: Option<Error>,
}

impl<'s, 't> Queue<'s, 't> {
    fn open(
        update: Option<&'t Update<'_>>,
        policy: Option<&OutboxPolicy>,
        ws: &WorkspaceConfig,
        sink: &'s mut dyn FnMut(Change),
    ) -> Result<Self> {
        let outbox = match (update, policy) {
            (Some(update), Some(policy)) => Some(OutboxWriter::open(update, policy, ws)?),
            _ => None,
        };
        Ok(Self {
            outbox,
            sink,
            error: None,
        })
    }

    fn push(&mut self, change: Change) {
        if let Some(writer) = self.outbox.as_mut()
            && let Err(e) = writer.push(&change)
        {
            self.error.get_or_insert(e);
        }
        (self.sink)(change);
    }

    /// Reports a queuing failure, or writes the Aggregated record; consumed, so its borrow of
    /// the update ends before the commit.
    fn finish(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.outbox.map(OutboxWriter::finish).transpose().map(|_| ())
    }
}

impl Scanner<'_> {
    /// Scans every entity of `ws`, sending each change to `sink`.
    pub fn scan(
        &self,
        ws: &WorkspaceConfig,
        mode: ScanMode,
        source: ChangeSource,
        sink: &mut dyn FnMut(Change),
    ) -> Result<ScanOutcome> {
        let names: Vec<&str> = ws.entities.iter().map(|e| e.name.as_str()).collect();
        let _running = progress::begin(&ws.namespace, &ws.name);
        self.scan_entities(ws, &names, mode, source, sink)
    }

    /// Scans the named entities of `ws` only.
    pub fn scan_entities(
        &self,
        ws: &WorkspaceConfig,
        only: &[&str],
        mode: ScanMode,
        source: ChangeSource,
        sink: &mut dyn FnMut(Change),
    ) -> Result<ScanOutcome> {
        let (settings, started, mut outcome) = ScanOutcome::begin(ws)?;
        let started_at = outcome.started_at;
        let package_errors = attributing::prepare(self.root, self.store, ws)?;
        let snapshot = self.store.snapshot()?;
        let update = if mode == ScanMode::Check {
            None
        } else {
            Some(self.store.update()?)
        };
        let mut queue = Queue::open(update.as_ref(), self.outbox, ws, sink)?;
        let mut attribution = attributing::Attribution::open(self.root, &snapshot, ws, package_errors)?;
        let sink: &mut dyn FnMut(Change) = &mut |mut change| {
            describe_mount(self.root, &mut change);
            attribution.push(change, &mut |c| queue.push(c))
        };
        for entity in ws.entities.iter().filter(|e| only.contains(&e.name.as_str())) {
            match resolve::resolve(entity, settings.limits.algorithm, self.env) {
                Ok(resolved) => {
                    progress::entity(&ws.namespace, &ws.name, &entity.name);
                    let mut scan = EntityScan::new(ws, entity, resolved, settings, mode, source, started_at);
                    self.scan_entity(&mut scan, &snapshot, update.as_ref(), sink)?;
                    outcome.add(scan);
                }
                Err(error) => {
                    let mut failed = EntityOutcome::new(entity);
                    failed.state = if matches!(error, ResolveError::Unsupported { .. }) {
                        EntityState::Unsupported
                    } else {
                        EntityState::Error
                    };
                    failed.message = Some(error.to_string());
                    outcome.entities.push(failed);
                }
            }
        }
        // What the baseline has seen of the packages moves on with scans of every entity only.
        let whole = update.as_ref().filter(|_| only.len() == ws.entities.len());
        attribution.finish(ws, whole, &mut outcome, &mut |c| queue.push(c))?;
        queue.finish()?;
        if let Some(update) = update {
            if only.len() == ws.entities.len() {
                // Entities of this workspace that have a baseline but are no longer configured.
                let key = WorkspaceKey::of(ws);
                update.drop_entities_where(|stored| {
                    stored.workspace == key && !ws.entities.iter().any(|e| e.name == stored.entity)
                })?;
            }
            update.commit()?;
        }
        outcome.duration = started.elapsed();
        Ok(outcome)
    }

    /// Decides whether the entity's baseline is current or must be rebuilt, scans it, and says
    /// what its owner should know.
    fn scan_entity(
        &self,
        scan: &mut EntityScan<'_>,
        snapshot: &Snapshot<'_>,
        update: Option<&Update<'_>>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let key = scan.key();
        let identity = scan.identity();
        let existing = match snapshot.entity_baseline(&key) {
            // Its stored state stays as it is, unscanned, and the entity says why.
            Err(error @ Error::CorruptRecord { .. }) => {
                (scan.outcome.state, scan.outcome.message) = (EntityState::Error, Some(error.to_string()));
                return Ok(());
            }
            other => other?,
        };
        // A new baseline revision with the same scope: what differs is reported as accepted,
        // never wiped silently (a history that a revision bump could erase is no audit trail).
        let new_revision = existing.as_ref().is_some_and(|e| {
            e.fingerprint == identity.fingerprint && e.baseline_revision != identity.baseline_revision
        });
        let rebuild = scan.mode == ScanMode::Init || (existing.as_ref() != Some(&identity) && !new_revision);
        if rebuild && scan.mode == ScanMode::Check {
            scan.outcome.state = EntityState::Error;
            scan.outcome.message = Some(format!(
                "no baseline for entity {} of workspace {} (or its path, scope or the baseline revision changed): run `kubefim-agent init` or `update` first",
                scan.entity.name, scan.ws.name
            ));
            return Ok(());
        }
        if rebuild {
            scan.silent = true;
            scan.outcome.baselined = true;
            if let Some(update) = update {
                update.drop_entity(&key)?;
                update.set_entity_baseline(&key, &identity)?;
            }
        } else if new_revision && scan.mode != ScanMode::Check {
            scan.accepting = Some(identity.baseline_revision.clone());
            if let Some(update) = update {
                update.set_entity_baseline(&key, &identity)?;
            }
        }
        self.scan_entity_in(scan, snapshot, update, None, sink)?;
        if scan.outcome.first_attributes > 0 {
            tracing::info!(
                entity = %scan.outcome.name,
                records = scan.outcome.first_attributes,
                "baseline records from before capabilities, xattrs, ACLs, SELinux labels and inode flags were tracked: read now and taken as they are, no change reported; from the next scan on they are compared{}",
                if scan.mode == ScanMode::Check { " (check stores nothing: run update to keep them)" } else { "" }
            );
        }
        if scan.outcome.matched_nothing() {
            scan.outcome.message = Some(format!(
                "path {} matches nothing on this node",
                scan.resolved.path
            ));
        }
        if scan.root_unresolvable {
            scan.outcome.message = Some(format!(
                "path {} no longer resolves on the host (a symlink loop at it or above it, or a path leaving the host root): every entry of its baseline is reported removed",
                scan.resolved.path
            ));
        } else if !scan.outcome.errors.is_empty() {
            let total: u64 = scan.outcome.errors.values().sum();
            scan.outcome.message = Some(format!(
                "{total} objects under {} could not be examined ({}); their last known state is kept",
                scan.resolved.path,
                scan.outcome.errors.keys().copied().collect::<Vec<_>>().join(", ")
            ));
        } else if scan.outcome.hidden > 0 {
            scan.outcome.message = Some(format!(
                "{} entries of the baseline under {} are hidden by a mount over them; they are kept, and compared again once the host shows them",
                scan.outcome.hidden, scan.resolved.path
            ));
        }
        Ok(())
    }

    /// Merge-joins what is on the host against the stored baseline of one entity: everything
    /// (`scope` None), or only what lies at or below each of the `scope` keys.
    fn scan_entity_in(
        &self,
        scan: &mut EntityScan<'_>,
        snapshot: &Snapshot<'_>,
        update: Option<&Update<'_>>,
        scope: Option<&[Vec<u8>]>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let key = scan.key();
        // A silent scan is a rebuild: its baseline was just dropped, nothing is compared.
        let stored = if scan.silent {
            StoredEntity::empty(self.store)
        } else {
            snapshot.entity(&key, scan.keeps_content())?
        };
        let mut writer = update
            .map(|update| update.entity(&key, scan.keeps_content()))
            .transpose()?;
        let mut tables = record::Tables {
            stored: &stored,
            writer: writer.as_mut(),
        };
        // The walk borrows the resolved entity while the batches update the scan's counters.
        let resolved = scan.resolved.clone();
        let mut kept = 0;
        match scope {
            None => {
                let (limits, now) = (scan.settings.limits, scan.now.as_second());
                // The walk's threads live for this entity's merge-join only.
                kept += std::thread::scope(|threads| {
                    let found = merge::observe(threads, self.walkers, self.root, &resolved, limits, now);
                    merge::merge(scan, found, stored.records_at(&[])?, &mut tables, sink)
                })?;
            }
            Some(targets) => {
                for target in targets::minimal(targets) {
                    let found = merge::observe_at(self.root, &resolved, &target);
                    kept += merge::merge(scan, found, stored.records_at(&target)?, &mut tables, sink)?;
                }
            }
        }
        scan.outcome.files += kept;
        Ok(())
    }
}
