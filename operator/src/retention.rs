//! Retention: which FileChanges of a workspace are past `retention.maxAge`, beyond
//! `retention.maxChangesPerNode` on their node, or beyond `retention.maxChanges` in the whole
//! workspace (oldest first in both). The selection is pure; the sweep lists only object
//! metadata, page by page, and deletes nothing but FileChanges of that workspace.

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams},
};
use kubefim_crds::{FileChange, FimWorkspace, keys, units};

use crate::{Error, Result};

/// What retention needs to know of one stored change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChange {
    pub name: String,
    pub node: String,
    pub created: jiff::Timestamp,
}

/// What retention keeps of a workspace's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_age: std::time::Duration,
    pub max_per_node: usize,
    pub max_total: usize,
}

/// Newest first, and by name among changes created in the same second.
fn newest_first(a: &&StoredChange, b: &&StoredChange) -> std::cmp::Ordering {
    b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name))
}

/// The names to delete: every change older than `max_age`, per node every change beyond the
/// `max_per_node` newest, and of what is left every change beyond the `max_total` newest.
pub fn expired(changes: &[StoredChange], limits: Limits, now: jiff::Timestamp) -> Vec<String> {
    let Limits {
        max_age,
        max_per_node,
        max_total,
    } = limits;
    let cutoff = now - jiff::SignedDuration::try_from(max_age).unwrap_or(jiff::SignedDuration::MAX);
    let mut by_node: BTreeMap<&str, Vec<&StoredChange>> = BTreeMap::new();
    let mut doomed = Vec::new();
    for change in changes {
        if change.created < cutoff {
            doomed.push(change.name.clone());
        } else {
            by_node.entry(change.node.as_str()).or_default().push(change);
        }
    }
    let mut kept: Vec<&StoredChange> = Vec::new();
    for node in by_node.values_mut() {
        node.sort_by(newest_first);
        doomed.extend(node.iter().skip(max_per_node).map(|c| c.name.clone()));
        kept.extend(node.iter().take(max_per_node));
    }
    kept.sort_by(newest_first);
    doomed.extend(kept.iter().skip(max_total).map(|c| c.name.clone()));
    doomed.sort();
    doomed
}

/// Page size of retention lists.
pub const PAGE: u32 = 500;
/// Deletes sent at once: one at a time, 90,000 deletes would take minutes of round trips.
const DELETES_IN_FLIGHT: usize = 16;

/// Deletes the expired FileChanges of `workspace`; returns how many were deleted.
pub async fn sweep(client: &Client, workspace: &FimWorkspace, now: jiff::Timestamp) -> Result<u64> {
    let namespace = workspace.metadata.namespace.clone().unwrap_or_default();
    let name = workspace.metadata.name.clone().unwrap_or_default();
    let api: Api<FileChange> = Api::namespaced(client.clone(), &namespace);
    let max_age = units::parse_duration(&workspace.spec.retention.max_age).map_err(|source| Error::Spec {
        object: format!("FimWorkspace {namespace}/{name}"),
        source,
    })?;
    let mut params = ListParams::default()
        .labels(&format!("{}={name}", keys::LABEL_WORKSPACE))
        .limit(PAGE);
    let mut stored = Vec::new();
    loop {
        let page = api.list_metadata(&params).await.map_err(Error::Kube)?;
        for item in &page.items {
            let (Some(change), Some(created)) = (
                item.metadata.name.clone(),
                item.metadata.creation_timestamp.clone(),
            ) else {
                continue;
            };
            let node = item
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(keys::LABEL_NODE))
                .cloned()
                .unwrap_or_default();
            stored.push(StoredChange {
                name: change,
                node,
                created: created.0,
            });
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let limits = Limits {
        max_age,
        max_per_node: workspace.spec.retention.max_changes_per_node as usize,
        max_total: workspace.spec.retention.max_changes as usize,
    };
    let doomed = expired(&stored, limits, now);
    drop(stored);
    let deleted = futures::stream::iter(doomed)
        .map(|change| {
            let api = api.clone();
            async move {
                match api.delete(&change, &DeleteParams::default()).await {
                    Ok(_) => Ok(1u64),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(0),
                    Err(e) => Err(Error::Kube(e)),
                }
            }
        })
        .buffer_unordered(DELETES_IN_FLIGHT)
        .try_fold(0u64, |count, one| async move { Ok(count + one) })
        .await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, node: &str, hours_ago: i64, now: jiff::Timestamp) -> StoredChange {
        StoredChange {
            name: name.into(),
            node: node.into(),
            created: now - jiff::SignedDuration::from_hours(hours_ago),
        }
    }

    #[test]
    fn old_changes_and_the_oldest_beyond_the_per_node_limit_go() {
        let now: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().unwrap();
        let changes = [
            change("ancient", "a", 24 * 15, now),
            change("a1", "a", 1, now),
            change("a2", "a", 2, now),
            change("a3", "a", 3, now),
            change("b1", "b", 1, now),
        ];
        let limits = Limits {
            max_age: std::time::Duration::from_secs(14 * 86_400),
            max_per_node: 2,
            max_total: 100,
        };
        assert_eq!(expired(&changes, limits, now), ["a3", "ancient"]);
    }

    #[test]
    fn the_whole_workspace_keeps_at_most_its_newest_max_changes() {
        let now: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().unwrap();
        let changes = [
            change("a1", "a", 1, now),
            change("a2", "a", 4, now),
            change("b1", "b", 2, now),
            change("b2", "b", 5, now),
            change("c1", "c", 3, now),
        ];
        let limits = Limits {
            max_age: std::time::Duration::from_secs(86_400),
            max_per_node: 10,
            max_total: 3,
        };
        assert_eq!(
            expired(&changes, limits, now),
            ["a2", "b2"],
            "the two oldest of five go"
        );
    }

    #[test]
    fn nothing_goes_when_within_limits() {
        let now: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().unwrap();
        let changes = [change("a1", "a", 1, now), change("b1", "b", 1, now)];
        let limits = Limits {
            max_age: std::time::Duration::from_secs(86_400),
            max_per_node: 1,
            max_total: 2,
        };
        assert!(expired(&changes, limits, now).is_empty());
    }
}
