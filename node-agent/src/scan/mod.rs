//! The scan engine: for each entity of a workspace, walk the host (or list the units) in key
//! order and merge-join against the stored baseline, hashing in parallel only what the fast
//! path cannot vouch for, emitting one Change per difference, and writing only what changed
//! into one write transaction per scan. Memory is bounded by the batch size and the walk depth,
//! never by the number of files.
//!
//! Realtime detection reuses this engine on a single entity, so there is one source of truth
//! for change records.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use kubefim_crds::{
    ChangeCategory, ChangeSource, EntityConfig, EntityType, FileType, WorkspaceConfig,
    filechange::ChangedAttribute, nodestatus::EntityState, units,
};
use rayon::prelude::*;
use redb::TableError;

use crate::{
    Error, Result,
    diff::{self, Change},
    hash::{self, HashLimits, Hashed},
    hostfs::{FsErrorKind, HostRoot},
    outbox::{OutboxPolicy, OutboxWriter},
    resolve::{self, ResolveError, ResolvedEntity},
    services,
    store::{BaselineStore, EntityBaseline, EntityTables, Record},
    walk::{self, WalkEntry, WalkItem, Walker},
};

/// Entries hashed in parallel at a time: large enough to keep both cores busy, small enough
/// that memory stays flat.
const BATCH: usize = 512;

/// A workspace's scan settings, parsed once.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub interval: Duration,
    pub rehash_every: Duration,
    pub limits: HashLimits,
    pub content_max: u64,
    pub diff_max: usize,
}

impl Settings {
    pub fn from_config(ws: &WorkspaceConfig) -> Result<Self> {
        let field = |field: &'static str| {
            let workspace = ws.name.clone();
            move |source| Error::Settings {
                workspace,
                field,
                source,
            }
        };
        Ok(Self {
            interval: units::parse_duration(&ws.scan.interval).map_err(field("scan.interval"))?,
            rehash_every: units::parse_duration(&ws.scan.rehash_every).map_err(field("scan.rehashEvery"))?,
            limits: HashLimits {
                algorithm: ws.scan.hash_algorithm,
                max_hash_size: units::parse_size(&ws.scan.max_hash_size)
                    .map_err(field("scan.maxHashSize"))?,
                keep_content_up_to: None,
            },
            content_max: units::parse_size(&ws.content.max_file_size)
                .map_err(field("content.maxFileSize"))?,
            diff_max: usize::try_from(
                units::parse_size(&ws.content.max_diff_bytes).map_err(field("content.maxDiffBytes"))?,
            )
            .unwrap_or(usize::MAX),
        })
    }
}

/// What a scan does with what it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanMode {
    /// Report differences and make the current state the baseline (the agent's loop, `update`).
    Detect,
    /// Report differences, write nothing (`check`).
    Check,
    /// Record the current state as the baseline, report nothing (`init`).
    Init,
}

/// The result of one entity's scan.
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
}

/// The result of one workspace scan.
#[derive(Clone, Debug)]
pub struct ScanReport {
    pub workspace: String,
    pub started_at: jiff::Timestamp,
    pub duration: Duration,
    pub files_scanned: u64,
    pub bytes_hashed: u64,
    pub changes: u64,
    pub entities: Vec<EntityOutcome>,
}

impl ScanReport {
    fn empty(workspace: &str, started_at: jiff::Timestamp) -> Self {
        Self {
            workspace: workspace.to_string(),
            started_at,
            duration: Duration::ZERO,
            files_scanned: 0,
            bytes_hashed: 0,
            changes: 0,
            entities: Vec::new(),
        }
    }

    pub fn errors(&self) -> u64 {
        self.entities.iter().flat_map(|e| e.errors.values()).sum()
    }
}

/// What the walk or the unit listing observed at one key.
enum Observed {
    File(WalkEntry),
    Unit { key: Vec<u8>, record: Record },
}

impl Observed {
    fn key(&self) -> &[u8] {
        match self {
            Self::File(entry) => &entry.key,
            Self::Unit { key, .. } => key,
        }
    }
}

enum Item {
    Observed(Observed),
    Unreadable { key: Vec<u8>, kind: FsErrorKind },
}

type Bytes = &'static [u8];

/// Stored (key, record) pairs in key order.
type StoredRecords<'t> = Box<dyn Iterator<Item = Result<(Vec<u8>, Record)>> + 't>;

/// An entity's tables during one scan: the previous contents to diff against, and the tables
/// being written (none in check mode).
struct OpenTables<'r, 'w> {
    old_contents: Option<&'r redb::ReadOnlyTable<Bytes, Bytes>>,
    records: Option<redb::Table<'w, Bytes, Bytes>>,
    contents: Option<redb::Table<'w, Bytes, Bytes>>,
}

/// Queues each change in the outbox (when there is one) before handing it to the caller's sink.
struct Queue<'s, 't> {
    outbox: Option<OutboxWriter<'t>>,
    store: &'s BaselineStore,
    sink: &'s mut dyn FnMut(Change),
    error: Option<Error>,
}

impl Queue<'_, '_> {
    fn push(&mut self, change: Change) {
        if let Some(writer) = self.outbox.as_mut()
            && let Err(e) = writer.push(self.store, &change)
        {
            self.error.get_or_insert(e);
        }
        (self.sink)(change);
    }

    /// Reports a queuing failure, or writes the Aggregated record; consumed, so its borrow of
    /// the write transaction ends before the commit.
    fn finish(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.outbox
            .map(|writer| writer.finish(self.store))
            .transpose()
            .map(|_| ())
    }
}

/// A state observed now, ready to be compared and recorded.
struct Observation {
    key: Vec<u8>,
    /// What the baseline will hold.
    record: Record,
    /// False when the file could not be hashed this time: `record` then carries the last known
    /// digest, which must not be reported as the current one.
    digest_known: bool,
    content: Option<Vec<u8>>,
}

impl From<WalkItem> for Item {
    fn from(item: WalkItem) -> Self {
        match item {
            WalkItem::Entry(entry) => Item::Observed(Observed::File(entry)),
            WalkItem::Unreadable { key, kind, .. } => Item::Unreadable { key, kind },
        }
    }
}

/// Sorted targets without those that lie below another target (already covered by it).
fn minimal_targets(targets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut sorted: Vec<Vec<u8>> = targets.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut minimal: Vec<Vec<u8>> = Vec::new();
    for target in sorted {
        if !minimal.iter().any(|outer| walk::key_within(&target, outer)) {
            minimal.push(target);
        }
    }
    minimal
}

enum Action {
    Removed(Vec<u8>, Record),
    Compare(Option<Record>, Observed),
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
}

impl std::fmt::Debug for Scanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("root", &self.root.path())
            .field("store", &self.store.path())
            .finish()
    }
}

struct EntityScan<'s> {
    ws: &'s WorkspaceConfig,
    entity: &'s EntityConfig,
    resolved: ResolvedEntity,
    settings: Settings,
    mode: ScanMode,
    silent: bool,
    source: ChangeSource,
    now: jiff::Timestamp,
    outcome: EntityOutcome,
    files_scanned: u64,
    bytes_hashed: u64,
    changes: u64,
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
            outcome: EntityOutcome {
                name: entity.name.clone(),
                entity_type: entity.entity_type,
                files: 0,
                state: EntityState::Active,
                message: None,
                baselined: false,
                errors: BTreeMap::new(),
            },
            files_scanned: 0,
            bytes_hashed: 0,
            changes: 0,
        }
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
    ) -> Result<ScanReport> {
        let names: Vec<&str> = ws.entities.iter().map(|e| e.name.as_str()).collect();
        self.scan_entities(ws, &names, mode, source, sink)
    }

    /// Scans the named entities of `ws` only (realtime rescans).
    pub fn scan_entities(
        &self,
        ws: &WorkspaceConfig,
        only: &[&str],
        mode: ScanMode,
        source: ChangeSource,
        sink: &mut dyn FnMut(Change),
    ) -> Result<ScanReport> {
        let settings = Settings::from_config(ws)?;
        let started = Instant::now();
        let started_at = jiff::Timestamp::now();
        let read = self.store.begin_read()?;
        let write = if mode == ScanMode::Check {
            None
        } else {
            Some(self.store.begin_write()?)
        };
        let mut report = ScanReport::empty(&ws.name, started_at);
        let outbox = match (&write, self.outbox) {
            (Some(txn), Some(policy)) => Some(OutboxWriter::open(self.store, txn, policy, ws)?),
            _ => None,
        };
        let mut queue = Queue {
            outbox,
            store: self.store,
            sink,
            error: None,
        };
        let sink: &mut dyn FnMut(Change) = &mut |change| queue.push(change);
        for entity in ws.entities.iter().filter(|e| only.contains(&e.name.as_str())) {
            let outcome = match resolve::resolve(entity, settings.limits.algorithm, self.env) {
                Ok(resolved) => {
                    let mut scan = EntityScan::new(ws, entity, resolved, settings, mode, source, started_at);
                    self.scan_entity(&mut scan, &read, write.as_ref(), sink)?;
                    report.files_scanned += scan.files_scanned;
                    report.bytes_hashed += scan.bytes_hashed;
                    report.changes += scan.changes;
                    scan.outcome
                }
                Err(error) => EntityOutcome {
                    name: entity.name.clone(),
                    entity_type: entity.entity_type,
                    files: 0,
                    state: if matches!(error, ResolveError::Unsupported { .. }) {
                        EntityState::Unsupported
                    } else {
                        EntityState::Error
                    },
                    message: Some(error.to_string()),
                    baselined: false,
                    errors: BTreeMap::new(),
                },
            };
            report.entities.push(outcome);
        }
        queue.finish()?;
        if let Some(write) = write {
            if only.len() == ws.entities.len() {
                self.forget_unconfigured(ws, &write)?;
            }
            write.commit().map_err(|e| self.store.error(e))?;
        }
        report.duration = started.elapsed();
        Ok(report)
    }

    /// Rescans only what lies at or below `targets` (keys inside the entity) for one entity:
    /// realtime detection's way to run an event through the same comparison as a scan. An
    /// entity without a current baseline is left to the next full scan.
    pub fn scan_targets(
        &self,
        ws: &WorkspaceConfig,
        entity_name: &str,
        targets: &[Vec<u8>],
        source: ChangeSource,
        sink: &mut dyn FnMut(Change),
    ) -> Result<ScanReport> {
        let settings = Settings::from_config(ws)?;
        let started = Instant::now();
        let started_at = jiff::Timestamp::now();
        let mut report = ScanReport::empty(&ws.name, started_at);
        let Some(entity) = ws.entities.iter().find(|e| e.name == entity_name) else {
            return Ok(report);
        };
        let Ok(resolved) = resolve::resolve(entity, settings.limits.algorithm, self.env) else {
            return Ok(report);
        };
        let read = self.store.begin_read()?;
        let identity = EntityBaseline {
            fingerprint: resolved.fingerprint.clone(),
            baseline_revision: ws.baseline_revision.clone(),
        };
        if self
            .store
            .entity_baseline(&read, &EntityTables::new(&ws.name, &entity.name))?
            != Some(identity)
        {
            return Ok(report);
        }
        let write = self.store.begin_write()?;
        let mut scan = EntityScan::new(
            ws,
            entity,
            resolved,
            settings,
            ScanMode::Detect,
            source,
            started_at,
        );
        // Services are keyed by unit name, not by path: any event rescans the whole entity.
        let scope = (entity.entity_type != EntityType::LinuxService).then_some(targets);
        let outbox = self
            .outbox
            .map(|policy| OutboxWriter::open(self.store, &write, policy, ws))
            .transpose()?;
        let mut queue = Queue {
            outbox,
            store: self.store,
            sink,
            error: None,
        };
        self.scan_entity_in(&mut scan, &read, Some(&write), scope, &mut |change| {
            queue.push(change)
        })?;
        queue.finish()?;
        write.commit().map_err(|e| self.store.error(e))?;
        report.files_scanned = scan.files_scanned;
        report.bytes_hashed = scan.bytes_hashed;
        report.changes = scan.changes;
        report.entities.push(scan.outcome);
        report.duration = started.elapsed();
        Ok(report)
    }

    /// Entities of this workspace that have a baseline but are no longer configured.
    fn forget_unconfigured(&self, ws: &WorkspaceConfig, write: &redb::WriteTransaction) -> Result<()> {
        self.store.drop_entities_where(write, |workspace, entity| {
            workspace == ws.name && !ws.entities.iter().any(|e| e.name == entity)
        })?;
        Ok(())
    }

    fn scan_entity(
        &self,
        scan: &mut EntityScan<'_>,
        read: &redb::ReadTransaction,
        write: Option<&redb::WriteTransaction>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let tables = EntityTables::new(&scan.ws.name, &scan.entity.name);
        let identity = EntityBaseline {
            fingerprint: scan.resolved.fingerprint.clone(),
            baseline_revision: scan.ws.baseline_revision.clone(),
        };
        let existing = self.store.entity_baseline(read, &tables)?;
        let rebuild = scan.mode == ScanMode::Init || existing.as_ref() != Some(&identity);
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
            if let Some(write) = write {
                self.store.drop_entity(write, &tables)?;
                self.store.set_entity_baseline(write, &tables, &identity)?;
            }
        }
        self.scan_entity_in(scan, read, write, None, sink)?;
        if scan.outcome.files == 0
            && !scan
                .entity
                .name
                .starts_with(kubefim_crds::keys::RECOMMENDED_PREFIX)
        {
            // A recommended item that does not exist on this node is normal (/opt/bin); a custom
            // entity that matches nothing is worth telling its owner about.
            if scan.outcome.errors.is_empty() {
                scan.outcome.message = Some(format!(
                    "path {} matches nothing on this node",
                    scan.resolved.path
                ));
            }
        }
        if !scan.outcome.errors.is_empty() {
            let total: u64 = scan.outcome.errors.values().sum();
            scan.outcome.message = Some(format!(
                "{total} objects under {} could not be examined ({}); their last known state is kept",
                scan.resolved.path,
                scan.outcome.errors.keys().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(())
    }

    /// Merge-joins what is on the host against the stored baseline of one entity: everything
    /// (`scope` None), or only what lies at or below each of the `scope` keys.
    fn scan_entity_in(
        &self,
        scan: &mut EntityScan<'_>,
        read: &redb::ReadTransaction,
        write: Option<&redb::WriteTransaction>,
        scope: Option<&[Vec<u8>]>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let tables = EntityTables::new(&scan.ws.name, &scan.entity.name);
        // A silent scan is a rebuild: its baseline was just dropped, nothing is compared.
        let old_records = if scan.silent {
            None
        } else {
            open_read_table(read, tables.records_def(), self.store)?
        };
        let old_contents = if scan.entity.entity_type == EntityType::FileContent && !scan.silent {
            open_read_table(read, tables.content_def(), self.store)?
        } else {
            None
        };
        let mut open = OpenTables {
            old_contents: old_contents.as_ref(),
            records: write
                .map(|w| w.open_table(tables.records_def()))
                .transpose()
                .map_err(|e| self.store.error(e))?,
            contents: match write {
                Some(w) if scan.entity.entity_type == EntityType::FileContent => Some(
                    w.open_table(tables.content_def())
                        .map_err(|e| self.store.error(e))?,
                ),
                _ => None,
            },
        };
        // The walk borrows the resolved entity while the batches update the scan's counters.
        let resolved = scan.resolved.clone();
        let mut kept = 0;
        match scope {
            None => {
                let items = self.observe(&resolved, scan.settings.limits, scan.now.as_second());
                let old = self.stored(old_records.as_ref(), &[])?;
                kept += self.merge(scan, items, old, &mut open, sink)?;
            }
            Some(targets) => {
                for target in minimal_targets(targets) {
                    let items = Box::new(Walker::at(self.root, &resolved, &target).map(Item::from));
                    let old = self.stored(old_records.as_ref(), &target)?;
                    kept += self.merge(scan, items, old, &mut open, sink)?;
                }
            }
        }
        scan.outcome.files += kept;
        Ok(())
    }

    /// The stored records at or below `prefix` (all of them for an empty prefix), in key order.
    fn stored<'t>(
        &'t self,
        table: Option<&'t redb::ReadOnlyTable<Bytes, Bytes>>,
        prefix: &'t [u8],
    ) -> Result<StoredRecords<'t>> {
        let Some(table) = table else {
            return Ok(Box::new(std::iter::empty()));
        };
        let range = table.range::<&[u8]>(prefix..).map_err(|e| self.store.error(e))?;
        Ok(Box::new(
            range
                .map(|item| {
                    let (key, value) = item.map_err(|e| self.store.error(e))?;
                    let record = Record::decode(value.value()).ok_or_else(|| Error::CorruptRecord {
                        path: self.store.path().to_path_buf(),
                        key: walk::key_to_path(key.value()),
                    })?;
                    Ok((key.value().to_vec(), record))
                })
                .take_while(move |item| {
                    item.as_ref()
                        .map_or(true, |(key, _)| walk::key_within(key, prefix))
                }),
        ))
    }

    /// The merge-join itself; returns how many stored entries were kept unexamined.
    fn merge(
        &self,
        scan: &mut EntityScan<'_>,
        items: Box<dyn Iterator<Item = Item> + '_>,
        mut old_iter: StoredRecords<'_>,
        open: &mut OpenTables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<u64> {
        let mut next_old = old_iter.next().transpose()?;
        let mut unknown: Vec<Vec<u8>> = Vec::new();
        let mut batch: Vec<Action> = Vec::with_capacity(BATCH);
        let mut kept: u64 = 0;
        let is_kept =
            |key: &[u8], unknown: &[Vec<u8>]| unknown.iter().any(|prefix| walk::key_within(key, prefix));
        for item in items {
            match item {
                Item::Unreadable { key, kind } => {
                    *scan.outcome.errors.entry(kind.reason()).or_default() += 1;
                    unknown.push(key);
                }
                Item::Observed(observed) => {
                    let mut previous = None;
                    while let Some((key, record)) = next_old.take() {
                        match key.as_slice().cmp(observed.key()) {
                            std::cmp::Ordering::Less => {
                                if is_kept(&key, &unknown) {
                                    kept += 1;
                                } else {
                                    batch.push(Action::Removed(key, record));
                                }
                                next_old = old_iter.next().transpose()?;
                            }
                            std::cmp::Ordering::Equal => {
                                previous = Some(record);
                                next_old = old_iter.next().transpose()?;
                                break;
                            }
                            std::cmp::Ordering::Greater => {
                                next_old = Some((key, record));
                                break;
                            }
                        }
                    }
                    batch.push(Action::Compare(previous, observed));
                    if batch.len() >= BATCH {
                        self.apply_batch(scan, &mut batch, open, sink)?;
                    }
                }
            }
        }
        while let Some((key, record)) = next_old.take() {
            if is_kept(&key, &unknown) {
                kept += 1;
            } else {
                batch.push(Action::Removed(key, record));
            }
            next_old = old_iter.next().transpose()?;
        }
        self.apply_batch(scan, &mut batch, open, sink)?;
        Ok(kept)
    }

    fn observe<'s>(
        &'s self,
        resolved: &'s ResolvedEntity,
        limits: HashLimits,
        now: i64,
    ) -> Box<dyn Iterator<Item = Item> + 's> {
        if resolved.entity_type == EntityType::LinuxService {
            let Some(pattern) = &resolved.pattern else {
                return Box::new(std::iter::empty());
            };
            let (units, errors) = services::observe_units(self.root, pattern, limits, now);
            let errors = errors.into_iter().map(|(path, kind)| Item::Unreadable {
                key: path.into_bytes(),
                kind,
            });
            // Unit errors concern directories, never a unit key, so no stored unit is kept for them.
            let units = units.into_iter().map(|unit| {
                Item::Observed(Observed::Unit {
                    key: unit.name.into_bytes(),
                    record: unit.record,
                })
            });
            return Box::new(errors.chain(units));
        }
        Box::new(Walker::new(self.root, resolved).map(Item::from))
    }

    fn apply_batch(
        &self,
        scan: &mut EntityScan<'_>,
        batch: &mut Vec<Action>,
        open: &mut OpenTables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let now = scan.now.as_second();
        let settings = scan.settings;
        let limits = HashLimits {
            keep_content_up_to: (scan.entity.entity_type == EntityType::FileContent)
                .then_some(settings.content_max),
            ..settings.limits
        };
        let hashed: Vec<Option<std::result::Result<Hashed, FsErrorKind>>> = batch
            .par_iter()
            .map(|action| match action {
                Action::Compare(old, Observed::File(entry))
                    if needs_hash(entry, old.as_ref(), &settings, now) =>
                {
                    Some(hash::hash_file(&entry.parent, &entry.name, limits))
                }
                _ => None,
            })
            .collect();
        for (action, hashed) in batch.drain(..).zip(hashed) {
            match action {
                Action::Removed(key, old) => self.record_removed(scan, key, old, open, sink)?,
                Action::Compare(old, Observed::Unit { key, record }) => {
                    let observed = Observation {
                        key,
                        record,
                        digest_known: true,
                        content: None,
                    };
                    self.record_observed(scan, observed, old, open, sink)?
                }
                Action::Compare(old, Observed::File(entry)) => {
                    let mut record = Record {
                        meta: entry.meta,
                        link_target: entry.link_target,
                        digest: None,
                        hashed_at: 0,
                        enabled: None,
                    };
                    let mut content = None;
                    let mut digest_known = true;
                    match hashed {
                        Some(Ok(hashed)) => {
                            scan.bytes_hashed += hashed.bytes_read;
                            record.meta = hashed.meta;
                            record.digest = hashed.digest;
                            record.hashed_at = if hashed.digest.is_some() { now } else { 0 };
                            content = hashed.content;
                        }
                        Some(Err(FsErrorKind::Vanished)) => {
                            // Gone between the walk and the open: it is removed, if it was known.
                            if let Some(old) = old {
                                self.record_removed(scan, entry.key, old, open, sink)?;
                            }
                            continue;
                        }
                        Some(Err(kind)) => {
                            // Keep the last known content so that a change made while the file
                            // was unreadable is still caught once it can be read again.
                            *scan.outcome.errors.entry(kind.reason()).or_default() += 1;
                            digest_known = false;
                            if let Some(old) = &old {
                                record.digest = old.digest;
                                record.hashed_at = old.hashed_at;
                            }
                        }
                        None => {
                            if let Some(old) = &old
                                && record.meta.file_type == FileType::File
                                && record.meta.size <= settings.limits.max_hash_size
                            {
                                record.digest = old.digest;
                                record.hashed_at = old.hashed_at;
                            }
                        }
                    }
                    let observed = Observation {
                        key: entry.key,
                        record,
                        digest_known,
                        content,
                    };
                    self.record_observed(scan, observed, old, open, sink)?;
                }
            }
        }
        Ok(())
    }

    fn display_path(scan: &EntityScan<'_>, key: &[u8]) -> String {
        if scan.entity.entity_type == EntityType::LinuxService {
            String::from_utf8_lossy(key).into_owned()
        } else {
            walk::key_to_path(key)
        }
    }

    fn emit(
        scan: &mut EntityScan<'_>,
        category: ChangeCategory,
        key: &[u8],
        (previous, current): (Option<Record>, Option<Record>),
        changed: Vec<ChangedAttribute>,
        diff: Option<diff::ContentDiff>,
        sink: &mut dyn FnMut(Change),
    ) {
        scan.changes += 1;
        sink(Change {
            workspace: scan.ws.name.clone(),
            entity: scan.entity.name.clone(),
            change_type: scan.entity.entity_type.change_type(),
            category,
            path: Self::display_path(scan, key),
            previous,
            current,
            changed,
            diff,
            detected_at: jiff::Timestamp::now(),
            source: scan.source,
        });
    }

    fn record_removed(
        &self,
        scan: &mut EntityScan<'_>,
        key: Vec<u8>,
        old: Record,
        open: &mut OpenTables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        if let Some(table) = open.records.as_mut() {
            table.remove(key.as_slice()).map_err(|e| self.store.error(e))?;
        }
        if let Some(table) = open.contents.as_mut() {
            table.remove(key.as_slice()).map_err(|e| self.store.error(e))?;
        }
        if !scan.silent {
            Self::emit(
                scan,
                ChangeCategory::Removed,
                &key,
                (Some(old), None),
                Vec::new(),
                None,
                sink,
            );
        }
        Ok(())
    }

    fn record_observed(
        &self,
        scan: &mut EntityScan<'_>,
        observed: Observation,
        old: Option<Record>,
        open: &mut OpenTables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let Observation {
            key,
            record,
            digest_known,
            content,
        } = observed;
        scan.files_scanned += 1;
        scan.outcome.files += 1;
        let changed_record = old.as_ref() != Some(&record);
        // The store keeps the last known digest so that a change made while a file could not be
        // hashed is still caught later; what is reported says the digest is unknown now.
        let reported = if digest_known {
            record.clone()
        } else {
            Record {
                digest: None,
                hashed_at: 0,
                ..record.clone()
            }
        };
        match &old {
            None if !scan.silent => {
                Self::emit(
                    scan,
                    ChangeCategory::Added,
                    &key,
                    (None, Some(reported)),
                    Vec::new(),
                    None,
                    sink,
                );
            }
            Some(previous) => {
                let changed = diff::changed_attributes(previous, &reported);
                if !changed.is_empty() && !scan.silent {
                    let content_diff = match (&content, open.old_contents) {
                        (Some(new), Some(table)) if changed.contains(&ChangedAttribute::Content) => table
                            .get(key.as_slice())
                            .map_err(|e| self.store.error(e))?
                            .and_then(|old| {
                                diff::unified_diff(
                                    &Self::display_path(scan, &key),
                                    old.value(),
                                    new,
                                    scan.settings.diff_max,
                                )
                            }),
                        _ => None,
                    };
                    Self::emit(
                        scan,
                        ChangeCategory::Modified,
                        &key,
                        (old.clone(), Some(reported)),
                        changed,
                        content_diff,
                        sink,
                    );
                }
            }
            None => {}
        }
        if changed_record && let Some(table) = open.records.as_mut() {
            table
                .insert(key.as_slice(), record.encode().as_slice())
                .map_err(|e| self.store.error(e))?;
        }
        if let (Some(content), Some(table)) = (content, open.contents.as_mut()) {
            table
                .insert(key.as_slice(), content.as_slice())
                .map_err(|e| self.store.error(e))?;
        }
        Ok(())
    }
}

fn open_read_table(
    txn: &redb::ReadTransaction,
    definition: redb::TableDefinition<'_, &'static [u8], &'static [u8]>,
    store: &BaselineStore,
) -> Result<Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(store.error(e)),
    }
}

/// Whether the stored digest cannot be reused for this entry.
fn needs_hash(entry: &WalkEntry, old: Option<&Record>, settings: &Settings, now: i64) -> bool {
    if entry.meta.file_type != FileType::File || entry.meta.size > settings.limits.max_hash_size {
        return false;
    }
    let rehash_after = i64::try_from(settings.rehash_every.as_secs()).unwrap_or(i64::MAX);
    match old {
        None => true,
        Some(old) => {
            old.digest.is_none()
                || old.meta.file_type != FileType::File
                || !old.meta.same_identity_and_times(&entry.meta)
                || now.saturating_sub(old.hashed_at) >= rehash_after
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_below_another_target_are_covered_by_it() {
        let key = |s: &[u8]| s.to_vec();
        let targets = [
            key(b"srv\0a\0b"),
            key(b"srv\0a"),
            key(b"srv\0ab"),
            key(b"srv\0a"),
            key(b"etc"),
        ];
        assert_eq!(
            minimal_targets(&targets),
            [key(b"etc"), key(b"srv\0a"), key(b"srv\0ab")]
        );
    }
}
