//! Baseline resets the node has not settled: a store found lost or replaced is recorded per
//! workspace until that workspace's baseline is accepted again, so the finding survives a
//! restart of the agent.

use std::collections::BTreeMap;

use super::BaselineStore;
use crate::{
    Result,
    config::WorkspaceKey,
    records::{BaselineReset, encode_json},
};

const RESET_PREFIX: &str = "reset/";

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
        let bytes = reset.map(|r| encode_json("a baseline reset", r)).transpose()?;
        let update = self.update()?;
        update.put_meta(&format!("{RESET_PREFIX}{workspace}"), bytes.as_deref())?;
        update.commit()
    }
}
