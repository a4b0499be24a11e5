//! Summaries of changes (the reference document's "changes counted by computer and type") and
//! the workspace dashboard's figures. Pure.

use std::collections::BTreeMap;

use kubefim_crds::FileChange;

/// What changes can be counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    Node,
    Type,
    Category,
    Entity,
    Workspace,
    /// What explains the change: Unexplained, Package or BaselineAccepted.
    Attribution,
}

impl Dimension {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "node" | "computer" => Self::Node,
            "type" => Self::Type,
            "category" => Self::Category,
            "entity" => Self::Entity,
            "workspace" => Self::Workspace,
            "attribution" | "explained" => Self::Attribution,
            _ => return None,
        })
    }

    pub fn header(self) -> &'static str {
        match self {
            Self::Node => "NODE",
            Self::Type => "TYPE",
            Self::Category => "CATEGORY",
            Self::Entity => "ENTITY",
            Self::Workspace => "WORKSPACE",
            Self::Attribution => "ATTRIBUTION",
        }
    }

    fn value(self, change: &FileChange) -> String {
        let spec = &change.spec;
        match self {
            Self::Node => spec.node_name.clone(),
            Self::Type => format!("{:?}", spec.change_type),
            Self::Category => format!("{:?}", spec.category),
            Self::Entity => spec.entity.clone(),
            Self::Workspace => spec.workspace.clone(),
            Self::Attribution => spec
                .attribution
                .as_ref()
                .map_or("Unexplained".to_string(), |a| format!("{:?}", a.kind)),
        }
    }
}

/// How many changes a FileChange stands for: an Aggregated one stands for many.
pub fn weight(change: &FileChange) -> u64 {
    change.spec.aggregated.as_ref().map_or(1, |a| a.count)
}

/// Counts changes by the given dimensions, most frequent first, ties in key order.
pub fn summarize(changes: &[FileChange], by: &[Dimension]) -> Vec<(Vec<String>, u64)> {
    let mut counts: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for change in changes {
        *counts
            .entry(by.iter().map(|d| d.value(change)).collect())
            .or_default() += weight(change);
    }
    let mut rows: Vec<(Vec<String>, u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// Sorts changes as the reference document's details query: by node, then path, then time.
pub fn sort_for_details(changes: &mut [FileChange]) {
    changes.sort_by(|a, b| {
        (&a.spec.node_name, &a.spec.path, &a.spec.detected_at).cmp(&(
            &b.spec.node_name,
            &b.spec.path,
            &b.spec.detected_at,
        ))
    });
}
