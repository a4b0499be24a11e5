//! How changes become queued records: the record of one change, the per-day counting that
//! FimNodeStatus reports, and the folding of many changes into one Aggregated record (every
//! change still counted, up to 20 sample paths).

use std::collections::BTreeMap;

use kubefim_crds::{
    Attribution, ChangeCategory, ChangeSource, ChangeType, FileChangeSpec, WorkspaceConfig,
    filechange::{AggregatedChanges, MAX_SAMPLE_PATHS, change_name},
    nodestatus::DailyChangeCount,
};

use crate::{diff::Change, records::OutboxRecord};

/// How changes enter the outbox.
#[derive(Clone, Debug)]
pub struct OutboxPolicy {
    pub node: String,
    pub bound: u64,
}

/// The queued record of one change of `workspace` on `node`.
pub fn record_of(change: &Change, workspace: &WorkspaceConfig, node: &str) -> OutboxRecord {
    let spec = change.to_spec(node);
    OutboxRecord {
        name: change_name(node, &spec.path, spec.category, &spec.detected_at),
        namespace: workspace.namespace.clone(),
        workspace_uid: workspace.uid.clone(),
        spec,
    }
}

/// Counts `change` into its day's counts.
pub(super) fn count_change(counts: &mut DailyChangeCount, change: &Change) {
    match &change.aggregated {
        // A folded report counts every change it stands for.
        Some(folded) => {
            for (category, n) in [
                (ChangeCategory::Added, folded.by_category.added),
                (ChangeCategory::Modified, folded.by_category.modified),
                (ChangeCategory::Removed, folded.by_category.removed),
            ] {
                count_into(counts, category, change.change_type, n);
            }
        }
        None => count_into(counts, change.category, change.change_type, 1),
    }
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

/// Changes folded into one Aggregated record.
#[derive(Clone, Debug)]
pub struct Fold {
    aggregate: AggregatedChanges,
    /// What explains every folded change, when one thing does (a baseline accept, one package
    /// operation); None as soon as two differ.
    attribution: Option<Attribution>,
    types: BTreeMap<ChangeType, u64>,
    first_at: jiff::Timestamp,
    source: ChangeSource,
}

impl Fold {
    pub fn new(first: &Change) -> Self {
        let mut fold = Self {
            aggregate: AggregatedChanges::default(),
            attribution: first.attribution.clone(),
            types: BTreeMap::new(),
            first_at: first.detected_at,
            source: first.source,
        };
        fold.add(first);
        fold
    }

    pub fn add(&mut self, change: &Change) {
        if self.attribution != change.attribution {
            self.attribution = None;
        }
        // A change that is itself a fold (a package operation's) adds everything it stands for.
        if let Some(folded) = &change.aggregated {
            self.aggregate.count += folded.count;
            self.aggregate.by_category.added += folded.by_category.added;
            self.aggregate.by_category.modified += folded.by_category.modified;
            self.aggregate.by_category.removed += folded.by_category.removed;
            *self.types.entry(change.change_type).or_default() += folded.count;
            for path in &folded.sample_paths {
                if self.aggregate.sample_paths.len() < MAX_SAMPLE_PATHS {
                    self.aggregate.sample_paths.push(path.clone());
                }
            }
            return;
        }
        self.aggregate.count += 1;
        let mut counts = DailyChangeCount::default();
        count_into(&mut counts, change.category, change.change_type, 1);
        self.aggregate.by_category.added += counts.by_category.added;
        self.aggregate.by_category.modified += counts.by_category.modified;
        self.aggregate.by_category.removed += counts.by_category.removed;
        *self.types.entry(change.change_type).or_default() += 1;
        if self.aggregate.sample_paths.len() < MAX_SAMPLE_PATHS {
            self.aggregate.sample_paths.push(change.path.clone());
        }
    }

    pub fn count(&self) -> u64 {
        self.aggregate.count
    }

    /// The Aggregated record, named by `path` (a description) and `entity`; its type is the
    /// most frequent type folded.
    pub fn into_record(
        self,
        workspace: &WorkspaceConfig,
        node: &str,
        path: String,
        entity: &str,
    ) -> OutboxRecord {
        let change_type = self
            .types
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or(ChangeType::Files, |(t, _)| *t);
        let detected_at = self.first_at.to_string();
        let spec = FileChangeSpec {
            workspace: workspace.name.clone(),
            entity: entity.into(),
            node_name: node.into(),
            change_type,
            category: ChangeCategory::Aggregated,
            path: path.clone(),
            detected_at: detected_at.clone(),
            source: self.source,
            changed_attributes: Vec::new(),
            previous: None,
            current: None,
            content_diff: None,
            content_diff_truncated: false,
            aggregated: Some(self.aggregate),
            content_withheld: None,
            attribution: self.attribution,
            changed_drop_ins: Vec::new(),
            mount: None,
            unexplained: None,
            actor: None,
        };
        OutboxRecord {
            name: change_name(node, &path, ChangeCategory::Aggregated, &detected_at),
            namespace: workspace.namespace.clone(),
            workspace_uid: workspace.uid.clone(),
            spec,
        }
    }
}
