//! Baseline resets the node has not settled: a store found lost or replaced is recorded per
//! workspace until that workspace's baseline is accepted again, so the finding survives a
//! restart of the agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::BaselineStore;
use crate::{Result, config::WorkspaceKey};

const RESET_PREFIX: &str = "reset/";

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

impl BaselineStore {
    /// The unsettled baseline resets of each workspace.
    pub fn resets(&self) -> Result<BTreeMap<WorkspaceKey, BaselineReset>> {
        Ok(self
            .meta_entries(RESET_PREFIX)?
            .into_iter()
            .filter_map(|(key, value)| {
                let (namespace, name) = key.strip_prefix(RESET_PREFIX)?.split_once('/')?;
                // A reset whose record cannot be read is still a reset: it stays unsettled,
                // with what is known of it, rather than vanishing from the node's status.
                let reset = serde_json::from_slice(&value).unwrap_or_else(|e| {
                    tracing::error!(%key, error = %e, "a baseline reset record is unreadable; it is kept until a baseline is accepted");
                    BaselineReset {
                        previous_generation: "unknown (unreadable record)".into(),
                        detected_at: jiff::Timestamp::UNIX_EPOCH,
                        baseline_revision: String::new(),
                    }
                });
                Some((WorkspaceKey::new(namespace, name), reset))
            })
            .collect())
    }

    /// Records a reset found for `workspace` (Some) or settles it once accepted (None).
    pub fn set_reset(&self, workspace: &WorkspaceKey, reset: Option<&BaselineReset>) -> Result<()> {
        // A struct of strings and a timestamp always serializes.
        let bytes = reset.map(|r| serde_json::to_vec(r).unwrap_or_default());
        let update = self.update()?;
        update.put_meta(&format!("{RESET_PREFIX}{workspace}"), bytes.as_deref())?;
        update.commit()
    }
}
