//! A lost baseline is a finding, not a fresh start. The store's generation (a random id made
//! when it was created) is compared with the one this node's FimNodeStatus of each workspace
//! names; a different one means the store was deleted, corrupted or replaced since the node
//! last reported. The reset is recorded in the store (it stands until the workspace's baseline
//! is accepted again), counted, and announced by a Warning Event.

use kube::{Api, Client, runtime::events::Recorder};
use kubefim_crds::{FimNodeStatus, WorkspaceConfig, keys};

use super::{events::publish_reset, store_access::StoreAccess};
use crate::{config::WorkspaceKey, metrics::Metrics, records::BaselineReset};

/// Why a check could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read FimNodeStatus {name} in namespace {namespace}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::Error),
}

/// Compares the store's generation with each workspace's FimNodeStatus on this node and
/// records, counts and announces every reset found.
pub async fn check(
    client: &Client,
    access: &StoreAccess,
    metrics: &Metrics,
    recorder: &Recorder,
    node: &str,
    workspaces: &[WorkspaceConfig],
) -> Result<(), CheckError> {
    let generation = access.store().generation().to_string();
    let generation = generation.as_str();
    for workspace in workspaces {
        let key = WorkspaceKey::of(workspace);
        let name = keys::node_status_name(&workspace.name, node);
        let api: Api<FimNodeStatus> = Api::namespaced(client.clone(), &workspace.namespace);
        let known = api.get_opt(&name).await.map_err(|source| CheckError::Api {
            namespace: workspace.namespace.clone(),
            name: name.clone(),
            source,
        })?;
        let Some(previous) = known
            .and_then(|object| object.status)
            .map(|status| status.store_generation)
            .filter(|previous| !previous.is_empty() && previous != generation)
        else {
            continue;
        };
        let recorded = access.read(|store| store.resets()).await?;
        if recorded
            .get(&key)
            .is_some_and(|reset| reset.previous_generation == previous)
        {
            continue;
        }
        let reset = BaselineReset {
            previous_generation: previous,
            detected_at: jiff::Timestamp::now(),
            baseline_revision: workspace.baseline_revision.clone(),
        };
        tracing::error!(workspace = %key, previous = %reset.previous_generation, current = %generation,
            "the baseline store was lost or replaced since this node last reported: BaselineReset");
        access.set_reset(&key, Some(reset.clone())).await?;
        metrics.baseline_resets_total.inc();
        publish_reset(recorder, node, &key, &workspace.uid, &reset, generation).await;
    }
    Ok(())
}
