//! ChangeOutbox: the durable queue between detection and the API server. A change is written
//! here inside the same redb transaction that advances the baseline, so a crash can never leave
//! a change accepted into the baseline but not queued for reporting. It leaves the outbox only
//! when the API server acknowledged it (created, or already there under its deterministic name).
//!
//! Two limits fold changes into one `Aggregated` record instead of dropping them: a scan's
//! `reporting.maxChangesPerScan`, and the outbox's own bound (default 100,000 records).

use std::collections::BTreeMap;

use kubefim_crds::{
    ChangeCategory, ChangeSource, ChangeType, FileChangeSpec, WorkspaceConfig,
    filechange::{AggregatedChanges, MAX_SAMPLE_PATHS, change_name},
    nodestatus::{DailyChangeCount, utc_day},
};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{
    Result,
    diff::Change,
    store::{BaselineStore, Update},
};

const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const COUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("change-counts");

/// The default bound on queued records.
pub const DEFAULT_BOUND: u64 = 100_000;

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

/// How changes enter the outbox.
#[derive(Clone, Debug)]
pub struct OutboxPolicy {
    pub node: String,
    pub bound: u64,
}

fn counts_key(workspace: &str, day: &str) -> String {
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

/// Queues the changes of one workspace scan, inside that scan's write transaction.
pub struct OutboxWriter<'t> {
    store: &'t BaselineStore,
    table: redb::Table<'t, u64, &'static [u8]>,
    counts: redb::Table<'t, &'static str, &'static [u8]>,
    policy: OutboxPolicy,
    workspace: WorkspaceConfig,
    next: u64,
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
            .field("workspace", &self.workspace.name)
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl<'t> OutboxWriter<'t> {
    pub fn open(update: &'t Update<'_>, policy: &OutboxPolicy, workspace: &WorkspaceConfig) -> Result<Self> {
        let (store, txn) = (update.store(), update.transaction());
        let table = txn.open_table(OUTBOX).map_err(|e| store.error(e))?;
        let counts = txn.open_table(COUNTS).map_err(|e| store.error(e))?;
        let next = table
            .last()
            .map_err(|e| store.error(e))?
            .map_or(0, |(k, _)| k.value() + 1);
        let queued = table.len().map_err(|e| store.error(e))?;
        Ok(Self {
            store,
            table,
            counts,
            policy: policy.clone(),
            workspace: workspace.clone(),
            next,
            queued,
            emitted: 0,
            folded: None,
        })
    }

    fn insert(&mut self, record: &OutboxRecord) -> Result<()> {
        let store = self.store;
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.table
            .insert(self.next, bytes.as_slice())
            .map_err(|e| store.error(e))?;
        self.next += 1;
        self.queued += 1;
        Ok(())
    }

    fn count(&mut self, change: &Change) -> Result<()> {
        let store = self.store;
        let day = utc_day(change.detected_at, 0);
        let key = counts_key(&self.workspace.name, &day);
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

/// Reading and acknowledging the queue.
#[derive(Debug)]
pub struct ChangeOutbox<'s> {
    pub store: &'s BaselineStore,
}

impl ChangeOutbox<'_> {
    /// Up to `limit` oldest records, with their sequence numbers.
    pub fn pending(&self, limit: usize) -> Result<Vec<(u64, OutboxRecord)>> {
        let txn = self.store.db().begin_read().map_err(|e| self.store.error(e))?;
        let table = match txn.open_table(OUTBOX) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.store.error(e)),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.store.error(e))?.take(limit) {
            let (seq, bytes) = item.map_err(|e| self.store.error(e))?;
            match serde_json::from_slice(bytes.value()) {
                Ok(record) => out.push((seq.value(), record)),
                Err(e) => tracing::error!(seq = seq.value(), error = %e, "unreadable outbox record skipped"),
            }
        }
        Ok(out)
    }

    /// Removes an acknowledged record.
    pub fn ack(&self, seq: u64) -> Result<()> {
        let txn = self.store.db().begin_write().map_err(|e| self.store.error(e))?;
        txn.open_table(OUTBOX)
            .map_err(|e| self.store.error(e))?
            .remove(seq)
            .map_err(|e| self.store.error(e))?;
        txn.commit().map_err(|e| self.store.error(e))
    }

    pub fn depth(&self) -> Result<u64> {
        let txn = self.store.db().begin_read().map_err(|e| self.store.error(e))?;
        match txn.open_table(OUTBOX) {
            Ok(table) => table.len().map_err(|e| self.store.error(e)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(self.store.error(e)),
        }
    }

    /// The per-day change counts of `workspace` for the 8 days ending at `today`.
    pub fn daily_counts(&self, workspace: &str, today: jiff::Timestamp) -> Result<Vec<DailyChangeCount>> {
        let txn = self.store.db().begin_read().map_err(|e| self.store.error(e))?;
        let table = match txn.open_table(COUNTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.store.error(e)),
        };
        let mut days = Vec::new();
        for back in (0..8).rev() {
            let day = utc_day(today, back);
            if let Some(value) = table
                .get(counts_key(workspace, &day).as_str())
                .map_err(|e| self.store.error(e))?
                && let Ok(counts) = serde_json::from_slice::<DailyChangeCount>(value.value())
            {
                days.push(counts);
            }
        }
        Ok(days)
    }
}
