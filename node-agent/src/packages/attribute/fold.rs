//! Summarize mode: the changes one package operation explains, folded into one Aggregated
//! change that counts them all (up to 20 sample paths) and says whether every package file in
//! it had its content verified; and the words that name an operation in a report.

use std::collections::BTreeMap;

use kubefim_crds::{
    Attribution, AttributionKind, ChangeCategory, ChangeType, PackageManager,
    filechange::{AggregatedChanges, MAX_SAMPLE_PATHS},
};

use crate::diff::Change;

/// One package operation's changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FoldKey {
    kind: AttributionKind,
    manager: Option<PackageManager>,
    package: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl FoldKey {
    pub(super) fn of(attribution: &Attribution) -> Self {
        Self {
            kind: attribution.kind,
            manager: attribution.manager,
            package: attribution.package.clone(),
            from: attribution.from_version.clone(),
            to: attribution.to_version.clone(),
        }
    }
}

#[derive(Debug)]
pub(super) struct Fold {
    first: Change,
    attribution: Attribution,
    aggregate: AggregatedChanges,
    types: BTreeMap<ChangeType, u64>,
    entities: std::collections::BTreeSet<String>,
    /// Whether every package file in the fold had its content verified (None: there was none).
    files_verified: Option<bool>,
}

impl Fold {
    pub(super) fn new(first: &Change, attribution: Attribution) -> Self {
        Self {
            first: Change {
                diff: None,
                previous: None,
                current: None,
                ..first.clone()
            },
            attribution,
            aggregate: AggregatedChanges::default(),
            types: BTreeMap::new(),
            entities: Default::default(),
            files_verified: None,
        }
    }

    /// Adds a change; `file_verified` is whether a package file's content was verified (None
    /// for what has no digest).
    pub(super) fn add(&mut self, change: &Change, file_verified: Option<bool>) {
        self.aggregate.count += 1;
        match change.category {
            ChangeCategory::Added => self.aggregate.by_category.added += 1,
            ChangeCategory::Modified => self.aggregate.by_category.modified += 1,
            ChangeCategory::Removed => self.aggregate.by_category.removed += 1,
            ChangeCategory::Aggregated => {}
        }
        *self.types.entry(change.change_type).or_default() += 1;
        self.entities.insert(change.entity.clone());
        if let Some(verified) = file_verified {
            self.files_verified = Some(self.files_verified.unwrap_or(true) && verified);
        }
        if self.aggregate.sample_paths.len() < MAX_SAMPLE_PATHS {
            self.aggregate.sample_paths.push(change.path.clone());
        }
    }

    pub(super) fn into_change(mut self) -> Change {
        // The report vouches for content when every package file in it was verified.
        self.attribution.digest_verified = self.files_verified == Some(true);
        let change_type = self
            .types
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or(ChangeType::Files, |(t, _)| *t);
        let entity = match self.entities.len() {
            1 => self.entities.into_iter().next().unwrap_or_default(),
            _ => "packages".to_string(),
        };
        Change {
            entity,
            change_type,
            category: ChangeCategory::Aggregated,
            path: format!(
                "{} {} explained by {}",
                self.aggregate.count,
                if self.aggregate.count == 1 {
                    "change"
                } else {
                    "changes"
                },
                describe(&self.attribution)
            ),
            changed: Vec::new(),
            content_withheld: None,
            attribution: Some(self.attribution),
            aggregated: Some(self.aggregate),
            mount: None,
            unexplained: None,
            actor: None,
            ..self.first
        }
    }
}

/// "the dpkg upgrade of coreutils 9.1-1 -> 9.1-2" and the like.
pub fn describe(attribution: &Attribution) -> String {
    if attribution.kind == AttributionKind::BaselineAccepted {
        return match &attribution.revision {
            Some(revision) if !revision.is_empty() => format!("the baseline accept of revision {revision}"),
            _ => "a baseline accept".to_string(),
        };
    }
    let manager = attribution.manager.map_or("package", PackageManager::as_str);
    if attribution.kind == AttributionKind::OperationUnverified {
        let packages = match &attribution.package {
            Some(package) => package.clone(),
            None => "several packages".to_string(),
        };
        return format!("nothing verifiable: it changed while a {manager} operation on {packages} ran");
    }
    let Some(package) = &attribution.package else {
        return format!("a {manager} operation on several packages");
    };
    match (&attribution.from_version, &attribution.to_version) {
        (Some(from), Some(to)) if from == to => format!("the {manager} reinstall of {package} {to}"),
        (Some(from), Some(to)) => format!("the {manager} upgrade of {package} {from} -> {to}"),
        (None, Some(to)) => format!("the {manager} install of {package} {to}"),
        (Some(from), None) => format!("the {manager} removal of {package} {from}"),
        (None, None) => format!("a {manager} operation on {package}"),
    }
}
