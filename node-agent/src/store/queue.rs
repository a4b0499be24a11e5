//! The store's queue family: the durable queue of changes for the API server (one lane per
//! workspace, a global sequence), the bounded dead letters, the refusal counts, and the
//! per-day change counts and newest change per entity that FimNodeStatus reports. Records are
//! written inside a scan's own update, so a change is never accepted into the baseline without
//! being queued; they are settled (acknowledged or refused) in updates of their own.
//!
//! It knows how these are kept, never when: the outbox decides what is queued and folded, the
//! reporter what is settled.

use std::collections::BTreeMap;

use kubefim_crds::nodestatus::{DailyChangeCount, utc_day};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};

use super::{BaselineStore, Update};
use crate::{
    Result,
    config::WorkspaceKey,
    records::{DeadLetter, OutboxRecord, Rejections, encode_json},
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

/// Refused records kept for inspection; past it the oldest go (they are counted and logged).
pub const DEAD_LETTER_BOUND: u64 = 1_000;

fn lane_key(lane: &WorkspaceKey) -> String {
    lane.to_string()
}

/// The workspace a [`lane_key`] names.
fn lane_from_key(key: &str) -> Option<WorkspaceKey> {
    let (namespace, name) = key.split_once('/')?;
    Some(WorkspaceKey::new(namespace, name))
}

fn counts_key(workspace: &WorkspaceKey, day: &str) -> String {
    format!("{workspace}/{day}")
}

/// A stored count, or None (counting again from 0) when it cannot be read: said in the log.
fn counter<T: serde::de::DeserializeOwned>(bytes: &[u8], key: &str) -> Option<T> {
    let read = serde_json::from_slice(bytes);
    read.inspect_err(
        |e| tracing::error!(%key, error = %e, "a stored count is unreadable; counting again from 0"),
    )
    .ok()
}

/// Appends `record` to its lane, in `txn`; the sequence keeps the queue's global order of arrival.
fn enqueue(store: &BaselineStore, txn: &redb::WriteTransaction, record: &OutboxRecord) -> Result<()> {
    let bytes = encode_json("a queued change", record)?;
    let mut sequence = txn.open_table(SEQUENCE).map_err(|e| store.error(e))?;
    let next = sequence
        .get("next")
        .map_err(|e| store.error(e))?
        .map_or(0, |v| v.value());
    sequence.insert("next", next + 1).map_err(|e| store.error(e))?;
    let lane = lane_key(&record.lane());
    txn.open_table(QUEUE)
        .map_err(|e| store.error(e))?
        .insert((lane.as_str(), next), bytes.as_slice())
        .map_err(|e| store.error(e))?;
    Ok(())
}

/// What a scan's update writes to the queue family: queued records, per-day counts, and the
/// newest change of each entity.
#[derive(Debug)]
pub struct QueueWriter<'t> {
    update: &'t Update<'t>,
    counts: redb::Table<'t, &'static str, &'static [u8]>,
    last_change: redb::Table<'t, &'static str, &'static str>,
}

impl<'t> QueueWriter<'t> {
    pub fn open(update: &'t Update<'t>) -> Result<Self> {
        let (store, txn) = (update.store, &update.txn);
        Ok(Self {
            update,
            counts: txn.open_table(COUNTS).map_err(|e| store.error(e))?,
            last_change: txn.open_table(LAST_CHANGE).map_err(|e| store.error(e))?,
        })
    }

    /// Records queued in every lane, as this update sees them.
    pub fn queued(&self) -> Result<u64> {
        let (store, txn) = (self.update.store, &self.update.txn);
        txn.open_table(QUEUE)
            .map_err(|e| store.error(e))?
            .len()
            .map_err(|e| store.error(e))
    }

    pub fn enqueue(&mut self, record: &OutboxRecord) -> Result<()> {
        enqueue(self.update.store, &self.update.txn, record)
    }

    /// Adds to `workspace`'s counts of the day `at` falls on, through `count`.
    pub fn count(
        &mut self,
        workspace: &WorkspaceKey,
        at: jiff::Timestamp,
        count: impl FnOnce(&mut DailyChangeCount),
    ) -> Result<()> {
        let store = self.update.store;
        let day = utc_day(at, 0);
        let key = counts_key(workspace, &day);
        let mut counts: DailyChangeCount = self
            .counts
            .get(key.as_str())
            .map_err(|e| store.error(e))?
            .and_then(|v| counter(v.value(), &key))
            .unwrap_or(DailyChangeCount {
                day,
                ..Default::default()
            });
        count(&mut counts);
        let bytes = encode_json("a day's change counts", &counts)?;
        self.counts
            .insert(key.as_str(), bytes.as_slice())
            .map_err(|e| store.error(e))?;
        Ok(())
    }

    /// Records `at` as the time of the newest change of `entity`.
    pub fn note_last_change(
        &mut self,
        workspace: &WorkspaceKey,
        entity: &str,
        at: jiff::Timestamp,
    ) -> Result<()> {
        let key = format!("{workspace}/{entity}");
        self.last_change
            .insert(key.as_str(), at.to_string().as_str())
            .map_err(|e| self.update.store.error(e))?;
        Ok(())
    }
}

/// How one queued record is settled.
#[derive(Clone, Debug, PartialEq)]
pub enum Settlement {
    /// The API server acknowledged it: it leaves the queue.
    Acknowledged { lane: WorkspaceKey, seq: u64 },
    /// Refused for good (or unreadable): it moves to the dead letters and counts against its
    /// workspace.
    Refused {
        lane: WorkspaceKey,
        seq: u64,
        letter: Box<DeadLetter>,
    },
}

/// A record read back from a lane; `Err` holds why a record could not be decoded.
pub type Pending = (u64, std::result::Result<OutboxRecord, String>);

/// The queue family as the store is now, outside any update.
#[derive(Debug)]
pub struct QueueView<'s> {
    store: &'s BaselineStore,
}

impl BaselineStore {
    /// The queue family, for reading and settling.
    pub fn queue(&self) -> QueueView<'_> {
        QueueView { store: self }
    }
}

impl QueueView<'_> {
    fn read<T>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, TableError>,
    ) -> Result<Option<T>> {
        let txn = self.store.db.begin_read().map_err(|e| self.store.error(e))?;
        match read(&txn) {
            Ok(value) => Ok(Some(value)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.store.error(e)),
        }
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

    /// Up to `limit` oldest records of one lane that `skip` does not name, with their sequence
    /// numbers; a record that cannot be decoded comes back as the reason why, for the caller to
    /// refuse (a pure read: nothing is written here).
    pub fn pending(
        &self,
        lane: &WorkspaceKey,
        limit: usize,
        skip: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Pending>> {
        let key = lane_key(lane);
        let raw = self.read(|txn| {
            let table = txn.open_table(QUEUE)?;
            let range = table.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?;
            let mut raw = Vec::new();
            for item in range {
                let (k, v) = item?;
                let seq = k.value().1;
                if skip(seq) {
                    continue;
                }
                raw.push((seq, v.value().to_vec()));
                if raw.len() >= limit {
                    break;
                }
            }
            Ok(raw)
        })?;
        Ok(raw
            .unwrap_or_default()
            .into_iter()
            .map(|(seq, bytes)| {
                (
                    seq,
                    serde_json::from_slice(&bytes).map_err(|e| format!("unreadable record: {e}")),
                )
            })
            .collect())
    }

    /// Settles records in one update: acknowledged ones leave the queue, refused ones move to
    /// the dead letters (dropping the oldest past the bound) and count against their workspace.
    /// `before_commit` runs once everything is written, just before the commit, and what it
    /// returns is handed back after it (a lock the caller holds across the commit).
    pub fn settle<G>(&self, settlements: &[Settlement], before_commit: impl FnOnce() -> G) -> Result<G> {
        let store = self.store;
        let txn = store.db.begin_write().map_err(|e| store.error(e))?;
        {
            let mut queue = txn.open_table(QUEUE).map_err(|e| store.error(e))?;
            let mut dead = txn.open_table(DEAD_LETTERS).map_err(|e| store.error(e))?;
            let mut rejected = txn.open_table(REJECTED).map_err(|e| store.error(e))?;
            for settlement in settlements {
                match settlement {
                    Settlement::Acknowledged { lane, seq } => {
                        queue
                            .remove((lane_key(lane).as_str(), *seq))
                            .map_err(|e| store.error(e))?;
                    }
                    Settlement::Refused { lane, seq, letter } => {
                        let key = lane_key(lane);
                        let bytes = encode_json("a dead letter", letter.as_ref())?;
                        queue.remove((key.as_str(), *seq)).map_err(|e| store.error(e))?;
                        dead.insert(*seq, bytes.as_slice()).map_err(|e| store.error(e))?;
                        while dead.len().map_err(|e| store.error(e))? > DEAD_LETTER_BOUND {
                            dead.pop_first().map_err(|e| store.error(e))?;
                        }
                        let mut counts: Rejections = rejected
                            .get(key.as_str())
                            .map_err(|e| store.error(e))?
                            .and_then(|v| counter(v.value(), &key))
                            .unwrap_or_default();
                        counts.count += 1;
                        counts.last_at = Some(letter.at);
                        let bytes = encode_json("a refusal count", &counts)?;
                        rejected
                            .insert(key.as_str(), bytes.as_slice())
                            .map_err(|e| store.error(e))?;
                    }
                }
            }
        }
        let guard = before_commit();
        txn.commit().map_err(|e| store.error(e))?;
        Ok(guard)
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
            let mut letters = Vec::new();
            for item in table.iter()? {
                let (key, value) = item?;
                match serde_json::from_slice(value.value()) {
                    Ok(letter) => letters.push(letter),
                    Err(e) => {
                        tracing::error!(seq = key.value(), error = %e, "a dead letter is unreadable; it is left out")
                    }
                }
            }
            Ok(letters)
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
                let key = counts_key(workspace, &utc_day(today, back));
                if let Some(value) = table.get(key.as_str())?
                    && let Some(counts) = counter::<DailyChangeCount>(value.value(), &key)
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
                match value.value().parse() {
                    Ok(at) => {
                        entries.insert(entity.to_string(), at);
                    }
                    Err(e) => {
                        tracing::error!(key = key.value(), error = %e, "a stored change time is unreadable; it is left out")
                    }
                }
            }
            Ok(entries)
        })?;
        Ok(entries.unwrap_or_default())
    }
}

/// The records still queued in a store file that can no longer be used, from whatever queue
/// table its format has, in their order of arrival, if redb can read it at all; an unreadable
/// record is left behind (there is nothing to send).
pub(super) fn salvage(path: &std::path::Path) -> Vec<OutboxRecord> {
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
pub(super) fn requeue(update: &Update<'_>, records: &[OutboxRecord]) -> Result<()> {
    records
        .iter()
        .try_for_each(|record| enqueue(update.store, &update.txn, record))
}

/// Moves a format-1 store's single queue into lanes (records carry their namespace) and its
/// per-day counts under their namespace (`namespace_of` a workspace name; counts of a name it
/// cannot place are dropped).
pub(super) fn migrate_legacy(
    update: &Update<'_>,
    namespace_of: &dyn Fn(&str) -> Option<WorkspaceKey>,
) -> Result<()> {
    let (store, txn) = (update.store, &update.txn);
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
