//! ChangeOutbox: the durable queue between detection and the API server. A change is written
//! here inside the same redb transaction that advances the baseline, so a crash can never leave
//! a change accepted into the baseline but not queued for reporting. It leaves the queue only
//! when the API server acknowledged it (created, or already there under its deterministic name)
//! or refused it for good, in which case it moves to a bounded dead-letter table.
//!
//! The queue has one lane per workspace (namespace/name), so the reporter can serve every
//! workspace in turn and one workspace's backlog or failures never hold up another's. Two
//! limits fold changes into one `Aggregated` record instead of dropping them: a scan's
//! `reporting.maxChangesPerScan`, and the outbox's own bound (default 100,000 records).
//!
//! It also keeps what FimNodeStatus reports per workspace: change counts per UTC day, the time
//! of each entity's newest change, and how many reports were refused.

use std::collections::BTreeMap;

use kubefim_crds::{
    ChangeCategory, ChangeSource, ChangeType, FileChangeSpec, WorkspaceConfig,
    filechange::{AggregatedChanges, MAX_SAMPLE_PATHS, change_name},
    nodestatus::{DailyChangeCount, utc_day},
};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use crate::{
    Result,
    config::WorkspaceKey,
    diff::Change,
    store::{BaselineStore, Update},
};

/// (lane, sequence) → record.
const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
const SEQUENCE: TableDefinition<&str, u64> = TableDefinition::new("queue-sequence");
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead-letters");
/// `<ns>/<ws>/<day>` → DailyChangeCount.
const COUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("change-counts");
/// `<ns>/<ws>/<entity>` → RFC 3339 time of its newest change.
const LAST_CHANGE: TableDefinition<&str, &str> = TableDefinition::new("last-change");
/// `<ns>/<ws>` → Rejections.
const REJECTED: TableDefinition<&str, &[u8]> = TableDefinition::new("rejected");
/// The single queue of a format-1 store (sequence → record), migrated into lanes.
const LEGACY_QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// The default bound on queued records.
pub const DEFAULT_BOUND: u64 = 100_000;
/// Refused records kept for inspection; past it the oldest go (they are counted and logged).
pub const DEAD_LETTER_BOUND: u64 = 1_000;

/// One queued FileChange, with what is needed to create it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRecord {
    /// The object name: deterministic, so a retried create meets AlreadyExists.
    pub name: String,
    pub namespace: String,
    /// The workspace's uid, for the owner reference.
    pub workspace_uid: String,
    pub spec: FileChangeSpec,
}

impl OutboxRecord {
    pub fn lane(&self) -> WorkspaceKey {
        WorkspaceKey::new(&self.namespace, &self.spec.workspace)
    }
}

/// A record the API server refused for good.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub record: Option<OutboxRecord>,
    /// The HTTP status code, 0 for a record that could not even be read back.
    pub code: u16,
    pub reason: String,
    pub at: jiff::Timestamp,
}

/// How many reports of a workspace were refused, and when the last one was.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rejections {
    pub count: u64,
    pub last_at: Option<jiff::Timestamp>,
}

/// How changes enter the outbox.
#[derive(Clone, Debug)]
pub struct OutboxPolicy {
    pub node: String,
    pub bound: u64,
}

fn lane_key(lane: &WorkspaceKey) -> String {
    lane.to_string()
}

fn counts_key(workspace: &WorkspaceKey, day: &str) -> String {
    format!("{workspace}/{day}")
}

fn count_into(counts: &mut DailyChangeCount, category: ChangeCategory, change_type: ChangeType, n: u64) {
    match category {
        ChangeCategory::Added => counts.by_category.added += n,
        ChangeCategory::Modified => counts.by_category.modified += n,
        ChangeCategory::Removed => counts.by_category.removed += n,
        ChangeCategory::Aggregated => {}
    }
    match change_type {
        ChangeType::Files => counts.by_type.files += n,
        ChangeType::FileContent => counts.by_type.content += n,
        ChangeType::Services => counts.by_type.services += n,
        ChangeType::Registry => counts.by_type.registry += n,
    }
}

/// Appends `record` to its lane; the sequence keeps the queue's global order of arrival.
fn enqueue(update: &Update<'_>, record: &OutboxRecord) -> Result<()> {
    let (store, txn) = (update.store(), update.transaction());
    let mut sequence = txn.open_table(SEQUENCE).map_err(|e| store.error(e))?;
    let next = sequence
        .get("next")
        .map_err(|e| store.error(e))?
        .map_or(0, |v| v.value());
    sequence.insert("next", next + 1).map_err(|e| store.error(e))?;
    // A record of strings and numbers always serializes.
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    let lane = lane_key(&record.lane());
    txn.open_table(QUEUE)
        .map_err(|e| store.error(e))?
        .insert((lane.as_str(), next), bytes.as_slice())
        .map_err(|e| store.error(e))?;
    Ok(())
}

/// Queues the changes of one workspace scan, inside that scan's write transaction.
pub struct OutboxWriter<'t> {
    update: &'t Update<'t>,
    counts: redb::Table<'t, &'static str, &'static [u8]>,
    last_change: redb::Table<'t, &'static str, &'static str>,
    policy: OutboxPolicy,
    workspace: WorkspaceConfig,
    key: WorkspaceKey,
    queued: u64,
    emitted: u64,
    folded: Option<(
        AggregatedChanges,
        BTreeMap<ChangeType, u64>,
        jiff::Timestamp,
        ChangeSource,
    )>,
}

impl std::fmt::Debug for OutboxWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxWriter")
            .field("workspace", &self.key)
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl<'t> OutboxWriter<'t> {
    pub fn open(update: &'t Update<'t>, policy: &OutboxPolicy, workspace: &WorkspaceConfig) -> Result<Self> {
        let (store, txn) = (update.store(), update.transaction());
        let queued = txn
            .open_table(QUEUE)
            .map_err(|e| store.error(e))?
            .len()
            .map_err(|e| store.error(e))?;
        Ok(Self {
            update,
            counts: txn.open_table(COUNTS).map_err(|e| store.error(e))?,
            last_change: txn.open_table(LAST_CHANGE).map_err(|e| store.error(e))?,
            policy: policy.clone(),
            key: WorkspaceKey::of(workspace),
            workspace: workspace.clone(),
            queued,
            emitted: 0,
            folded: None,
        })
    }

    fn insert(&mut self, record: &OutboxRecord) -> Result<()> {
        enqueue(self.update, record)?;
        self.queued += 1;
        Ok(())
    }

    fn count(&mut self, change: &Change) -> Result<()> {
        let store = self.update.store();
        let day = utc_day(change.detected_at, 0);
        let key = counts_key(&self.key, &day);
        let mut counts: DailyChangeCount = self
            .counts
            .get(key.as_str())
            .map_err(|e| store.error(e))?
            .and_then(|v| serde_json::from_slice(v.value()).ok())
            .unwrap_or(DailyChangeCount {
                day,
                ..Default::default()
            });
        count_into(&mut counts, change.category, change.change_type, 1);
        let bytes = serde_json::to_vec(&counts).unwrap_or_default();
        self.counts
            .insert(key.as_str(), bytes.as_slice())
            .map_err(|e| store.error(e))?;
        let entity = format!("{}/{}", self.key, change.entity);
        self.last_change
            .insert(entity.as_str(), change.detected_at.to_string().as_str())
            .map_err(|e| store.error(e))?;
        Ok(())
    }

    /// Queues one change, or folds it when the scan's or the outbox's limit is reached.
    pub fn push(&mut self, change: &Change) -> Result<()> {
        self.count(change)?;
        let limit = u64::from(self.workspace.reporting.max_changes_per_scan);
        if self.emitted < limit && self.queued < self.policy.bound {
            self.emitted += 1;
            let spec = change.to_spec(&self.policy.node);
            let record = OutboxRecord {
                name: change_name(&self.policy.node, &spec.path, spec.category, &spec.detected_at),
                namespace: self.workspace.namespace.clone(),
                workspace_uid: self.workspace.uid.clone(),
                spec,
            };
            return self.insert(&record);
        }
        let (aggregate, types, _, _) = self.folded.get_or_insert_with(|| {
            (
                AggregatedChanges::default(),
                BTreeMap::new(),
                change.detected_at,
                change.source,
            )
        });
        aggregate.count += 1;
        let mut counts = DailyChangeCount::default();
        count_into(&mut counts, change.category, change.change_type, 1);
        aggregate.by_category.added += counts.by_category.added;
        aggregate.by_category.modified += counts.by_category.modified;
        aggregate.by_category.removed += counts.by_category.removed;
        *types.entry(change.change_type).or_default() += 1;
        if aggregate.sample_paths.len() < MAX_SAMPLE_PATHS {
            aggregate.sample_paths.push(change.path.clone());
        }
        Ok(())
    }

    /// Queues the Aggregated record of what was folded, if anything was. Call before commit.
    pub fn finish(mut self) -> Result<()> {
        let Some((aggregate, types, first_at, source)) = self.folded.take() else {
            return Ok(());
        };
        let change_type = types
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or(ChangeType::Files, |(t, _)| *t);
        let detected_at = first_at.to_string();
        let path = format!(
            "{} more changes in workspace {}",
            aggregate.count, self.workspace.name
        );
        let spec = FileChangeSpec {
            workspace: self.workspace.name.clone(),
            entity: "aggregated".into(),
            node_name: self.policy.node.clone(),
            change_type,
            category: ChangeCategory::Aggregated,
            path: path.clone(),
            detected_at: detected_at.clone(),
            source,
            changed_attributes: Vec::new(),
            previous: None,
            current: None,
            content_diff: None,
            content_diff_truncated: false,
            aggregated: Some(aggregate),
        };
        let record = OutboxRecord {
            name: change_name(&self.policy.node, &path, ChangeCategory::Aggregated, &detected_at),
            namespace: self.workspace.namespace.clone(),
            workspace_uid: self.workspace.uid.clone(),
            spec,
        };
        // Past the bound the aggregate still goes in: one record more never loses anything.
        self.insert(&record)
    }
}

/// The records of every lane of a queue table, oldest first within a lane.
fn read_queue(table: &impl ReadableTable<(&'static str, u64), &'static [u8]>) -> Vec<OutboxRecord> {
    let Ok(range) = table.iter() else {
        return Vec::new();
    };
    let mut records: Vec<(u64, OutboxRecord)> = range
        .filter_map(|item| {
            let (key, value) = item.ok()?;
            Some((key.value().1, serde_json::from_slice(value.value()).ok()?))
        })
        .collect();
    records.sort_by_key(|(seq, _)| *seq);
    records.into_iter().map(|(_, record)| record).collect()
}

/// The records still queued in a store that can no longer be used, read from whatever queue
/// table its format has; an unreadable record is left behind (there is nothing to send).
pub(crate) fn salvage(db: &impl ReadableDatabase) -> Vec<OutboxRecord> {
    let Ok(txn) = db.begin_read() else {
        return Vec::new();
    };
    let mut records = txn
        .open_table(QUEUE)
        .map(|table| read_queue(&table))
        .unwrap_or_default();
    if let Ok(legacy) = txn.open_table(LEGACY_QUEUE)
        && let Ok(range) = legacy.iter()
    {
        records.extend(range.filter_map(|item| serde_json::from_slice(item.ok()?.1.value()).ok()));
    }
    records
}

/// Queues salvaged records in a new store, in their order.
pub(crate) fn requeue(update: &Update<'_>, records: &[OutboxRecord]) -> Result<()> {
    records.iter().try_for_each(|record| enqueue(update, record))
}

/// Moves a format-1 store's single queue into lanes (records carry their namespace) and its
/// per-day counts under their namespace (`namespace_of` a workspace name; counts of a name it
/// cannot place are dropped).
pub(crate) fn migrate_legacy(
    update: &Update<'_>,
    namespace_of: &dyn Fn(&str) -> Option<WorkspaceKey>,
) -> Result<()> {
    let (store, txn) = (update.store(), update.transaction());
    let legacy: Vec<OutboxRecord> = match txn.open_table(LEGACY_QUEUE) {
        Ok(table) => table
            .iter()
            .map_err(|e| store.error(e))?
            .filter_map(|item| serde_json::from_slice(item.ok()?.1.value()).ok())
            .collect(),
        Err(TableError::TableDoesNotExist(_)) => Vec::new(),
        Err(e) => return Err(store.error(e)),
    };
    requeue(update, &legacy)?;
    txn.delete_table(LEGACY_QUEUE).map_err(|e| store.error(e))?;
    let mut counts = txn.open_table(COUNTS).map_err(|e| store.error(e))?;
    let old: Vec<(String, Vec<u8>)> = counts
        .iter()
        .map_err(|e| store.error(e))?
        .filter_map(|item| {
            let (key, value) = item.ok()?;
            (key.value().matches('/').count() == 1).then(|| (key.value().to_string(), value.value().to_vec()))
        })
        .collect();
    for (key, value) in old {
        counts.remove(key.as_str()).map_err(|e| store.error(e))?;
        if let Some((workspace, day)) = key.split_once('/')
            && let Some(owner) = namespace_of(workspace)
        {
            counts
                .insert(counts_key(&owner, day).as_str(), value.as_slice())
                .map_err(|e| store.error(e))?;
        }
    }
    Ok(())
}

/// Reading, acknowledging and refusing queued records, and what FimNodeStatus reports.
#[derive(Debug)]
pub struct ChangeOutbox<'s> {
    pub store: &'s BaselineStore,
}

impl ChangeOutbox<'_> {
    fn read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, TableError>,
    ) -> Result<Option<T>> {
        let txn = self.store.db().begin_read().map_err(|e| self.store.error(e))?;
        match read(&txn) {
            Ok(value) => Ok(Some(value)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.store.error(e)),
        }
    }

    fn write(&self, write: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>) -> Result<()> {
        let txn = self.store.db().begin_write().map_err(|e| self.store.error(e))?;
        write(&txn).map_err(|e| self.store.error(e))?;
        txn.commit().map_err(|e| self.store.error(e))
    }

    /// The workspaces with queued records, in order.
    pub fn lanes(&self) -> Result<Vec<WorkspaceKey>> {
        let lanes = self.read(|txn| {
            let table = txn.open_table(QUEUE)?;
            let mut lanes = Vec::new();
            let mut from = String::new();
            // One seek per lane: the first key at or after the end of the previous lane.
            loop {
                let next = table
                    .range((from.as_str(), 0)..)?
                    .next()
                    .transpose()?
                    .map(|(key, _)| key.value().0.to_string());
                let Some(lane) = next else { break };
                from = format!("{lane}\0");
                lanes.push(lane);
            }
            Ok(lanes)
        })?;
        Ok(lanes
            .unwrap_or_default()
            .iter()
            .filter_map(|lane| lane.split_once('/'))
            .map(|(namespace, name)| WorkspaceKey::new(namespace, name))
            .collect())
    }

    /// Up to `limit` oldest records of one lane, with their sequence numbers; a record that
    /// cannot be read back is moved to the dead letters rather than left to block the lane.
    pub fn pending(&self, lane: &WorkspaceKey, limit: usize) -> Result<Vec<(u64, OutboxRecord)>> {
        let key = lane_key(lane);
        let raw = self.read(|txn| {
            let table = txn.open_table(QUEUE)?;
            let mut raw = Vec::new();
            for item in table
                .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
                .take(limit)
            {
                let (k, v) = item?;
                raw.push((k.value().1, v.value().to_vec()));
            }
            Ok(raw)
        })?;
        let mut out = Vec::new();
        for (seq, bytes) in raw.unwrap_or_default() {
            match serde_json::from_slice(&bytes) {
                Ok(record) => out.push((seq, record)),
                Err(e) => {
                    tracing::error!(lane = %lane, seq, error = %e, "unreadable queued record moved to the dead letters");
                    self.reject(lane, seq, None, 0, &format!("unreadable record: {e}"))?;
                }
            }
        }
        Ok(out)
    }

    /// Removes an acknowledged record.
    pub fn ack(&self, lane: &WorkspaceKey, seq: u64) -> Result<()> {
        let key = lane_key(lane);
        self.write(|txn| {
            txn.open_table(QUEUE)?.remove((key.as_str(), seq))?;
            Ok(())
        })
    }

    /// Moves a refused record to the dead letters (dropping the oldest past the bound) and
    /// counts it against its workspace, in one transaction.
    pub fn reject(
        &self,
        lane: &WorkspaceKey,
        seq: u64,
        record: Option<OutboxRecord>,
        code: u16,
        reason: &str,
    ) -> Result<()> {
        let key = lane_key(lane);
        let at = jiff::Timestamp::now();
        let letter = DeadLetter {
            record,
            code,
            reason: reason.to_string(),
            at,
        };
        self.write(|txn| {
            txn.open_table(QUEUE)?.remove((key.as_str(), seq))?;
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            dead.insert(seq, serde_json::to_vec(&letter).unwrap_or_default().as_slice())?;
            while dead.len()? > DEAD_LETTER_BOUND {
                dead.pop_first()?;
            }
            let mut rejected = txn.open_table(REJECTED)?;
            let mut counts: Rejections = rejected
                .get(key.as_str())?
                .and_then(|v| serde_json::from_slice(v.value()).ok())
                .unwrap_or_default();
            counts.count += 1;
            counts.last_at = Some(at);
            rejected.insert(
                key.as_str(),
                serde_json::to_vec(&counts).unwrap_or_default().as_slice(),
            )?;
            Ok(())
        })
    }

    /// Records queued, in every lane.
    pub fn depth(&self) -> Result<u64> {
        Ok(self.read(|txn| Ok(txn.open_table(QUEUE)?.len()?))?.unwrap_or(0))
    }

    /// Records queued for one workspace.
    pub fn depth_of(&self, lane: &WorkspaceKey) -> Result<u64> {
        let key = lane_key(lane);
        let count = self.read(|txn| {
            let table = txn.open_table(QUEUE)?;
            let mut count = 0;
            for item in table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))? {
                item?;
                count += 1;
            }
            Ok(count)
        })?;
        Ok(count.unwrap_or(0))
    }

    /// The refused reports of one workspace.
    pub fn rejections(&self, workspace: &WorkspaceKey) -> Result<Rejections> {
        let key = lane_key(workspace);
        let value = self.read(|txn| {
            let table = txn.open_table(REJECTED)?;
            let value = table.get(key.as_str())?.map(|v| v.value().to_vec());
            Ok(value)
        })?;
        Ok(value
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default())
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let letters = self.read(|txn| {
            let table = txn.open_table(DEAD_LETTERS)?;
            let mut letters = Vec::new();
            for item in table.iter()? {
                letters.push(item?.1.value().to_vec());
            }
            Ok(letters)
        })?;
        Ok(letters
            .unwrap_or_default()
            .iter()
            .filter_map(|v| serde_json::from_slice(v).ok())
            .collect())
    }

    /// The per-day change counts of `workspace` for the 8 days ending at `today`.
    pub fn daily_counts(
        &self,
        workspace: &WorkspaceKey,
        today: jiff::Timestamp,
    ) -> Result<Vec<DailyChangeCount>> {
        let days = self.read(|txn| {
            let table = txn.open_table(COUNTS)?;
            let mut days = Vec::new();
            for back in (0..8).rev() {
                let day = utc_day(today, back);
                if let Some(value) = table.get(counts_key(workspace, &day).as_str())?
                    && let Ok(counts) = serde_json::from_slice::<DailyChangeCount>(value.value())
                {
                    days.push(counts);
                }
            }
            Ok(days)
        })?;
        Ok(days.unwrap_or_default())
    }

    /// The time of each entity's newest change in `workspace`.
    pub fn last_changes(&self, workspace: &WorkspaceKey) -> Result<BTreeMap<String, jiff::Timestamp>> {
        let prefix = format!("{workspace}/");
        let entries = self.read(|txn| {
            let table = txn.open_table(LAST_CHANGE)?;
            let mut entries = BTreeMap::new();
            for item in table.range(prefix.as_str()..)? {
                let (key, value) = item?;
                let Some(entity) = key.value().strip_prefix(prefix.as_str()) else {
                    break;
                };
                if let Ok(at) = value.value().parse() {
                    entries.insert(entity.to_string(), at);
                }
            }
            Ok(entries)
        })?;
        Ok(entries.unwrap_or_default())
    }
}
