//! The merge-join: what is on the host (the walk of an entity, or its units) against what the
//! baseline stores, both in key order, paired into steps that are handed to hashing in batches.
//! Objects that could not be examined keep their stored state (and everything below them):
//! not knowing is not the same as removed.
//!
//! Mounts: when a directory is found to be the root of a mount it was not (or of another
//! mount) at the last scan, what the baseline holds below it and the host no longer shows is
//! covered, not removed: each such record is kept, marked hidden, and neither compared nor
//! reported until the host shows its path again (the mount goes, or the mount holds the same
//! name), when it is compared as usual. A hidden record is reported removed only once no
//! mount covers it any more and its path is still gone. The mount point itself is reported
//! Modified, with `mount` among the changed attributes (`diff`).

use kubefim_crds::EntityType;

use super::{EntityScan, hashing, record::Tables};
use crate::{
    Result,
    diff::Change,
    hash::HashLimits,
    hostfs::{FsErrorKind, HostRoot},
    records::Record,
    resolve::ResolvedEntity,
    services,
    store::StoredRecords,
    walk::{self, ParallelWalk, WalkEntry, WalkItem, Walker},
};

/// Steps handed to hashing at a time: large enough to keep both cores busy, small enough that
/// memory stays flat.
pub(super) const BATCH: usize = 512;

/// An object on the host, as the walk or the unit listing found it.
pub(super) enum HostObject {
    File(WalkEntry),
    Unit { key: Vec<u8>, record: Box<Record> },
}

impl HostObject {
    fn key(&self) -> &[u8] {
        match self {
            Self::File(entry) => &entry.key,
            Self::Unit { key, .. } => key,
        }
    }
}

/// What looking at the host yields, in key order.
pub(super) enum Found {
    Object(HostObject),
    Unreadable { key: Vec<u8>, kind: FsErrorKind },
}

impl From<WalkItem> for Found {
    fn from(item: WalkItem) -> Self {
        match item {
            WalkItem::Entry(entry) => Found::Object(HostObject::File(entry)),
            WalkItem::Unreadable { key, kind, .. } => Found::Unreadable { key, kind },
        }
    }
}

/// One pairing of the merge-join.
pub(super) enum Step {
    /// Stored, no longer on the host.
    Removed(Vec<u8>, Record),
    /// Stored, and covered by a mount that appeared over a directory above it: kept, marked
    /// hidden.
    Hidden(Vec<u8>, Record),
    /// On the host, with what was stored at its key (None: new).
    Compare(Option<Record>, HostObject),
}

/// Everything of an entity on the host, in key order; files are walked on `workers` threads of
/// `threads` (see `walk::ParallelWalk`).
pub(super) fn observe<'r, 'scope>(
    threads: &'scope std::thread::Scope<'scope, 'r>,
    workers: usize,
    root: &'r HostRoot,
    resolved: &'r ResolvedEntity,
    limits: HashLimits,
    now: i64,
) -> Box<dyn Iterator<Item = Found> + 'r> {
    if resolved.entity_type == EntityType::LinuxService {
        let Some(pattern) = &resolved.pattern else {
            return Box::new(std::iter::empty());
        };
        let (units, errors) = services::observe_units(root, pattern, limits, now);
        // An error names the unit whose stored state is kept, or none: the empty key, within
        // which every key lies, keeps them all. Units with an error are not among `units`.
        let mut found: Vec<(Vec<u8>, Found)> = errors
            .into_iter()
            .map(|e| {
                let key = e.unit.unwrap_or_default().into_bytes();
                (key.clone(), Found::Unreadable { key, kind: e.kind })
            })
            .chain(units.into_iter().map(|unit| {
                let key = unit.name.into_bytes();
                let object = HostObject::Unit {
                    key: key.clone(),
                    record: Box::new(unit.record),
                };
                (key, Found::Object(object))
            }))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        return Box::new(found.into_iter().map(|(_, found)| found));
    }
    Box::new(ParallelWalk::new(threads, root, resolved, workers).map(Found::from))
}

/// What lies at or below `target` (a key inside the entity), in key order.
pub(super) fn observe_at<'r>(
    root: &'r HostRoot,
    resolved: &'r ResolvedEntity,
    target: &[u8],
) -> Box<dyn Iterator<Item = Found> + 'r> {
    Box::new(Walker::at(root, resolved, target).map(Found::from))
}

/// The keys that could not be examined, in the order they were found (key order): a stored key
/// within one of them is kept. Stored keys are asked about in increasing order, so a key whose
/// range (the key and everything below it) lies wholly before the asked key is done with and
/// dropped: each check is amortized constant, however many objects are unreadable.
#[derive(Default)]
struct Unknown(std::collections::VecDeque<Vec<u8>>);

impl Unknown {
    fn keeps(&mut self, key: &[u8]) -> bool {
        while let Some(front) = self.0.front() {
            if walk::key_within(key, front) {
                return true;
            }
            if front.as_slice() > key {
                return false;
            }
            self.0.pop_front();
        }
        false
    }
}

/// The steps of a merge on their way to hashing: the batch being filled, the batches in flight,
/// and what could not be examined.
#[derive(Default)]
struct Pending {
    batch: Vec<Step>,
    pipeline: hashing::Pipeline,
    unknown: Unknown,
    /// Directories a mount now covers that it did not at the last scan.
    covered: Unknown,
    /// Every mount root this walk found (a hidden record below one stays hidden).
    mounted: Unknown,
    /// Stored entries kept unexamined (within something that could not be examined).
    kept: u64,
}

impl Pending {
    /// Adds a step to the batch and hands a full batch on. Removals count toward the batch like
    /// comparisons: a removed tree of any size is handed on in batches, never held whole.
    fn push(
        &mut self,
        step: Step,
        scan: &mut EntityScan<'_>,
        tables: &mut Tables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        self.batch.push(step);
        if self.batch.len() >= BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.pipeline.submit(scan, full, tables, sink)?;
        }
        Ok(())
    }

    /// A stored entry the host no longer shows: kept when it lies within something that could
    /// not be examined, removed otherwise.
    fn gone(
        &mut self,
        key: Vec<u8>,
        record: Record,
        scan: &mut EntityScan<'_>,
        tables: &mut Tables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        if self.unknown.keeps(&key) {
            self.kept += 1;
            return Ok(());
        }
        if record.hidden && self.mounted.keeps(&key) {
            scan.outcome.hidden += 1;
            return Ok(());
        }
        if self.covered.keeps(&key) {
            scan.outcome.hidden += 1;
            return self.push(Step::Hidden(key, record), scan, tables, sink);
        }
        self.push(Step::Removed(key, record), scan, tables, sink)
    }

    /// Hands on what is left and records every batch in flight.
    fn finish(
        mut self,
        scan: &mut EntityScan<'_>,
        tables: &mut Tables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<u64> {
        self.pipeline.submit(scan, self.batch, tables, sink)?;
        self.pipeline.finish(scan, tables, sink)?;
        Ok(self.kept)
    }
}

/// Whether `entry`, a mount root, is a mount that was not there at the last scan: the stored
/// state at its path is another object (what the mount now covers, or an earlier mount).
fn newly_mounted(previous: Option<&Record>, entry: &WalkEntry) -> bool {
    previous.is_some_and(|p| (p.meta.dev, p.meta.ino) != (entry.meta.dev, entry.meta.ino))
}

/// The merge-join itself; returns how many stored entries were kept unexamined.
pub(super) fn merge(
    scan: &mut EntityScan<'_>,
    found: Box<dyn Iterator<Item = Found> + '_>,
    mut stored: StoredRecords<'_>,
    tables: &mut Tables<'_, '_>,
    sink: &mut dyn FnMut(Change),
) -> Result<u64> {
    let mut next_stored = stored.next().transpose()?;
    let mut pending = Pending::default();
    for item in found {
        // A signal ends the scan at its next step; the caller drops its update.
        crate::stop::check()?;
        match item {
            Found::Unreadable { key, kind } => {
                *scan.outcome.errors.entry(kind.reason()).or_default() += 1;
                if kind == FsErrorKind::Unresolvable && key == scan.resolved.base.join(&0u8) {
                    // The entity's own path: what it held is gone from view, and that is
                    // reported (AIDE reports every entry removed), never kept silently.
                    scan.root_unresolvable = true;
                } else {
                    pending.unknown.0.push_back(key);
                }
            }
            Found::Object(object) => {
                let mut previous = None;
                while let Some((key, record)) = next_stored.take() {
                    match key.as_slice().cmp(object.key()) {
                        std::cmp::Ordering::Less => {
                            pending.gone(key, record, scan, tables, sink)?;
                            next_stored = stored.next().transpose()?;
                        }
                        std::cmp::Ordering::Equal => {
                            previous = Some(record);
                            next_stored = stored.next().transpose()?;
                            break;
                        }
                        std::cmp::Ordering::Greater => {
                            next_stored = Some((key, record));
                            break;
                        }
                    }
                }
                if let HostObject::File(entry) = &object
                    && entry.meta.mount_root
                {
                    pending.mounted.0.push_back(entry.key.clone());
                    if newly_mounted(previous.as_ref(), entry) {
                        pending.covered.0.push_back(entry.key.clone());
                    }
                }
                pending.push(Step::Compare(previous, object), scan, tables, sink)?;
            }
        }
    }
    while let Some((key, record)) = next_stored.take() {
        crate::stop::check()?;
        pending.gone(key, record, scan, tables, sink)?;
        next_stored = stored.next().transpose()?;
    }
    pending.finish(scan, tables, sink)
}
