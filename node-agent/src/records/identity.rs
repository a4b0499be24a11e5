//! What the store remembers about baselines as a whole: the identity an entity's baseline was
//! built for, and a baseline reset the node has not settled.

use serde::{Deserialize, Serialize};

/// What an entity's baseline was built for: the fingerprint of its scope and the workspace's
/// baseline revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityBaseline {
    pub fingerprint: String,
    pub baseline_revision: String,
}

/// A lost or replaced store found on a node whose cluster record names another generation;
/// it stands until the workspace's baseline is accepted again (a new `baseline.revision`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineReset {
    /// The generation the cluster knew.
    pub previous_generation: String,
    pub detected_at: jiff::Timestamp,
    /// The workspace's baseline.revision when the reset was found.
    pub baseline_revision: String,
}
