//! What the outbox keeps: a queued FileChange with what is needed to create it, a record the
//! API server refused for good, and how many reports of a workspace were refused.

use kubefim_crds::FileChangeSpec;
use serde::{Deserialize, Serialize};

use crate::config::WorkspaceKey;

/// One queued FileChange, with what is needed to create it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRecord {
    /// The object name: deterministic, so a retried create meets AlreadyExists.
    pub name: String,
    pub namespace: String,
    /// The workspace's uid, for the owner reference.
    pub workspace_uid: String,
    pub spec: FileChangeSpec,
}

impl OutboxRecord {
    pub fn lane(&self) -> WorkspaceKey {
        WorkspaceKey::new(&self.namespace, &self.spec.workspace)
    }
}

/// A record the API server refused for good.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub record: Option<OutboxRecord>,
    /// The HTTP status code, 0 for a record that could not even be read back.
    pub code: u16,
    pub reason: String,
    pub at: jiff::Timestamp,
}

/// How many reports of a workspace were refused, and when the last one was.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rejections {
    pub count: u64,
    pub last_at: Option<jiff::Timestamp>,
}
