//! ChangeOutbox: the durable queue between detection and the API server. A change is written
//! here in the same redb transaction that advances the baseline, so a crash can never accept a
//! change into the baseline without queuing it. It leaves the queue only once the API server
//! acknowledged it, or refused it for good (then it moves to the bounded dead letters). One lane
//! per workspace lets the reporter serve workspaces in turn; past a scan's
//! `reporting.maxChangesPerScan` or the queue's bound, changes fold into one Aggregated record.
//! It also keeps what FimNodeStatus reports: daily counts, newest changes, refusals.

mod records;

use std::collections::BTreeMap;

use kubefim_crds::{
    WorkspaceConfig,
    nodestatus::{DailyChangeCount, utc_day},
};
pub use records::{DeadLetter, Fold, OutboxPolicy, OutboxRecord, Rejections};
use records::{count_change, counter, counts_key, lane_from_key, lane_key};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};

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
#[derive(Debug)]
pub struct OutboxWriter<'t> {
    update: &'t Update<'t>,
    counts: redb::Table<'t, &'static str, &'static [u8]>,
    last_change: redb::Table<'t, &'static str, &'static str>,
    policy: OutboxPolicy,
    workspace: WorkspaceConfig,
    key: WorkspaceKey,
    queued: u64,
    emitted: u64,
    folded: Option<Fold>,
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
            .and_then(|v| counter(v.value(), &key))
            .unwrap_or(DailyChangeCount {
                day,
                ..Default::default()
            });
        count_change(&mut counts, change);
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
            let record = OutboxRecord::of(change, &self.workspace, &self.policy.node);
            return self.insert(&record);
        }
        match self.folded.as_mut() {
            Some(fold) => fold.add(change),
            None => self.folded = Some(Fold::new(change)),
        }
        Ok(())
    }

    /// Queues the Aggregated record of what was folded, if anything was. Call before commit.
    pub fn finish(mut self) -> Result<()> {
        let Some(fold) = self.folded.take() else {
            return Ok(());
        };
        let path = format!(
            "{} more changes in workspace {}",
            fold.count(),
            self.workspace.name
        );
        let record = fold.into_record(&self.workspace, &self.policy.node, path, "aggregated");
        // Past the bound the aggregate still goes in: one record more never loses anything.
        self.insert(&record)
    }
}

/// The records still queued in a store file that can no longer be used, from whatever queue
/// table its format has, in their order of arrival, if redb can read it at all; an unreadable
/// record is left behind (there is nothing to send).
pub(crate) fn salvage(path: &std::path::Path) -> Vec<OutboxRecord> {
    let Some(txn) = redb::ReadOnlyDatabase::open(path)
        .ok()
        .and_then(|db| db.begin_read().ok())
    else {
        return Vec::new();
    };
    let decode = |value: &[u8]| serde_json::from_slice::<OutboxRecord>(value).ok();
    let mut records: Vec<(u64, OutboxRecord)> = Vec::new();
    if let Ok(table) = txn.open_table(QUEUE)
        && let Ok(range) = table.iter()
    {
        records.extend(range.filter_map(|item| {
            item.ok()
                .and_then(|(k, v)| Some((k.value().1, decode(v.value())?)))
        }));
    }
    if let Ok(table) = txn.open_table(LEGACY_QUEUE)
        && let Ok(range) = table.iter()
    {
        records.extend(
            range.filter_map(|item| item.ok().and_then(|(k, v)| Some((k.value(), decode(v.value())?)))),
        );
    }
    records.sort_by_key(|(seq, _)| *seq);
    records.into_iter().map(|(_, record)| record).collect()
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
    // Format-1 count keys are `<ws>/<day>`: one slash.
    let mut counts = txn.open_table(COUNTS).map_err(|e| store.error(e))?;
    let old = counts
        .extract_if(|key, _| key.matches('/').count() == 1)
        .map_err(|e| store.error(e))?
        .map(|item| item.map(|(k, v)| (k.value().to_string(), v.value().to_vec())))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| store.error(e))?;
    for (key, value) in old {
        if let Some((workspace, day)) = key.split_once('/')
            && let Some(owner) = namespace_of(workspace)
        {
            let key = counts_key(&owner, day);
            counts
                .insert(key.as_str(), value.as_slice())
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
            .filter_map(|lane| lane_from_key(lane))
            .collect())
    }

    /// Up to `limit` oldest records of one lane, with their sequence numbers; a record that
    /// cannot be read back is moved to the dead letters rather than left to block the lane.
    pub fn pending(&self, lane: &WorkspaceKey, limit: usize) -> Result<Vec<(u64, OutboxRecord)>> {
        let key = lane_key(lane);
        let raw = self.read(|txn| {
            let table = txn.open_table(QUEUE)?;
            let range = table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?;
            let raw: std::result::Result<Vec<(u64, Vec<u8>)>, _> = range
                .take(limit)
                .map(|item| item.map(|(k, v)| (k.value().1, v.value().to_vec())))
                .collect();
            Ok(raw?)
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
                .and_then(|v| counter(v.value(), &key))
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
            Ok(table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?.count() as u64)
        })?;
        Ok(count.unwrap_or(0))
    }

    /// The refused reports of one workspace.
    pub fn rejections(&self, workspace: &WorkspaceKey) -> Result<Rejections> {
        let key = lane_key(workspace);
        let value = self.read(|txn| {
            Ok(txn
                .open_table(REJECTED)?
                .get(key.as_str())?
                .map(|v| v.value().to_vec()))
        })?;
        Ok(value
            .flatten()
            .and_then(|v| counter(&v, &key))
            .unwrap_or_default())
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let letters = self.read(|txn| {
            let table = txn.open_table(DEAD_LETTERS)?;
            Ok(table
                .iter()?
                .filter_map(|item| serde_json::from_slice(item.ok()?.1.value()).ok())
                .collect::<Vec<DeadLetter>>())
        })?;
        Ok(letters.unwrap_or_default())
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
