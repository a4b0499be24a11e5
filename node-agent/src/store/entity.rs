//! What identifies an entity's baseline: the key its tables are named by, and the identity
//! (fingerprint and baseline revision) it was built for.

use serde::{Deserialize, Serialize};

/// What the store remembers about an entity's baseline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityBaseline {
    pub fingerprint: String,
    pub baseline_revision: String,
}

/// Which entity's tables: (workspace, entity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityKey {
    pub workspace: String,
    pub entity: String,
}

impl EntityKey {
    pub fn new(workspace: &str, entity: &str) -> Self {
        Self {
            workspace: workspace.to_string(),
            entity: entity.to_string(),
        }
    }

    pub(super) fn meta_key(&self) -> String {
        format!("entity/{}/{}", self.workspace, self.entity)
    }

    pub(super) fn records_table(&self) -> String {
        format!("base/{}/{}", self.workspace, self.entity)
    }

    pub(super) fn content_table(&self) -> String {
        format!("content/{}/{}", self.workspace, self.entity)
    }
}
