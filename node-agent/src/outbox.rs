//! The outbox: what detection hands to the API server. A change is queued in the same store
//! update that advances the baseline, so a crash can never accept a change into the baseline
//! without queuing it; it leaves the queue only once the API server acknowledged it, or
//! refused it for good (the reporter settles it). One lane per workspace lets the reporter
//! serve workspaces in turn; past a scan's `reporting.maxChangesPerScan` or the queue's bound,
//! changes fold into one Aggregated record. Every change is counted per day for FimNodeStatus,
//! folded or not.
//!
//! It decides what is queued, never how it is kept: the queue family is the store's
//! (`store::queue`), and this module never names a table or a transaction.

mod fold;

use fold::count_change;
pub use fold::{Fold, OutboxPolicy, record_of};
use kubefim_crds::WorkspaceConfig;

use crate::{
    Result,
    config::WorkspaceKey,
    diff::Change,
    store::{QueueWriter, Update},
};

/// The default bound on queued records.
pub const DEFAULT_BOUND: u64 = 100_000;

/// Queues the changes of one workspace scan, inside that scan's update.
#[derive(Debug)]
pub struct OutboxWriter<'t> {
    queue: QueueWriter<'t>,
    policy: OutboxPolicy,
    workspace: WorkspaceConfig,
    key: WorkspaceKey,
    queued: u64,
    emitted: u64,
    folded: Option<Fold>,
}

impl<'t> OutboxWriter<'t> {
    pub fn open(update: &'t Update<'t>, policy: &OutboxPolicy, workspace: &WorkspaceConfig) -> Result<Self> {
        let queue = QueueWriter::open(update)?;
        Ok(Self {
            queued: queue.queued()?,
            queue,
            policy: policy.clone(),
            key: WorkspaceKey::of(workspace),
            workspace: workspace.clone(),
            emitted: 0,
            folded: None,
        })
    }

    /// Queues one change, or folds it when the scan's or the outbox's limit is reached.
    pub fn push(&mut self, change: &Change) -> Result<()> {
        self.queue.count(&self.key, change.detected_at, |counts| {
            count_change(counts, change)
        })?;
        self.queue
            .note_last_change(&self.key, &change.entity, change.detected_at)?;
        let limit = u64::from(self.workspace.reporting.max_changes_per_scan);
        if self.emitted < limit && self.queued < self.policy.bound {
            self.emitted += 1;
            self.queue
                .enqueue(&record_of(change, &self.workspace, &self.policy.node))?;
            self.queued += 1;
            return Ok(());
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
        self.queue.enqueue(&record)
    }
}
