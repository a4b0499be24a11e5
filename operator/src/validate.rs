//! Validation beyond what CEL can see at admission: an entity naming a workspace that does not
//! exist, or two entities of one workspace watching the same thing. A problem keeps that one
//! entity out of the rendered configuration and is reported on it; it never blocks the others.

use std::{collections::BTreeMap, sync::Arc};

use kube::ResourceExt;
use kubefim_crds::{FimWorkspace, MonitoredEntity};

/// (namespace, name) of an object.
pub type ObjectKey = (String, String);

pub fn key_of(object: &impl ResourceExt) -> ObjectKey {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Why an entity cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(
        "workspace {workspace:?} does not exist in namespace {namespace:?}; create it or fix spec.workspace"
    )]
    MissingWorkspace { namespace: String, workspace: String },
    #[error(
        "entity {first:?} of the same workspace already monitors {entity_type} {path:?}; delete one of the two"
    )]
    DuplicatePath {
        first: String,
        entity_type: String,
        path: String,
    },
}

impl Problem {
    /// The condition and event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingWorkspace { .. } => "WorkspaceNotFound",
            Self::DuplicatePath { .. } => "DuplicatePath",
        }
    }
}

/// The problems of every entity that has one. Of two enabled entities with the same type and
/// path in one workspace, the first by name is kept.
pub fn entity_problems(
    workspaces: &[Arc<FimWorkspace>],
    entities: &[Arc<MonitoredEntity>],
) -> BTreeMap<ObjectKey, Problem> {
    let existing: std::collections::BTreeSet<ObjectKey> =
        workspaces.iter().map(|w| key_of(w.as_ref())).collect();
    let mut problems = BTreeMap::new();
    let mut sorted: Vec<&Arc<MonitoredEntity>> = entities.iter().collect();
    sorted.sort_by_key(|e| key_of(e.as_ref()));
    let mut seen: BTreeMap<(String, String, String, String), String> = BTreeMap::new();
    for entity in sorted {
        let (namespace, name) = key_of(entity.as_ref());
        let spec = &entity.spec;
        if !existing.contains(&(namespace.clone(), spec.workspace.clone())) {
            problems.insert(
                (namespace.clone(), name),
                Problem::MissingWorkspace {
                    namespace,
                    workspace: spec.workspace.clone(),
                },
            );
            continue;
        }
        if !spec.enabled {
            continue;
        }
        let identity = (
            namespace.clone(),
            spec.workspace.clone(),
            spec.entity_type.to_string(),
            spec.path.clone(),
        );
        match seen.get(&identity) {
            Some(first) => {
                problems.insert(
                    (namespace, name),
                    Problem::DuplicatePath {
                        first: first.clone(),
                        entity_type: spec.entity_type.to_string(),
                        path: spec.path.clone(),
                    },
                );
            }
            None => {
                seen.insert(identity, name);
            }
        }
    }
    problems
}
