//! This node's FimNodeStatus for each workspace: built from a finished scan (pure), created
//! when it is not known to exist, then its status applied with the agent's field manager.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
};
use kubefim_crds::{
    FimNodeStatus, FimNodeStatusSpec, WorkspaceConfig, keys,
    nodestatus::{DailyChangeCount, EntityNodeState, FimNodeStatusStatus, ScanSummary},
};
use serde_json::json;

use super::owner;
use crate::{VERSION, schedule::ScanDone};

/// The status of one workspace on this node after a scan.
pub fn node_status(
    done: &ScanDone,
    counts: Vec<DailyChangeCount>,
    now: jiff::Timestamp,
) -> FimNodeStatusStatus {
    let outcome = &done.outcome;
    FimNodeStatusStatus {
        agent_version: VERSION.to_string(),
        config_revision: done.config_revision.clone(),
        baseline_revision: done.workspace.baseline_revision.clone(),
        last_heartbeat_time: Some(Time(now)),
        last_scan: Some(ScanSummary {
            started_at: Time(outcome.started_at),
            duration_seconds: outcome.duration.as_secs_f64(),
            files_scanned: outcome.files_scanned,
            bytes_hashed: outcome.bytes_hashed,
            changes: outcome.changes,
            errors: outcome.errors(),
        }),
        files_monitored: outcome.entities.iter().map(|e| e.files).sum(),
        realtime: done.realtime.clone(),
        entities: outcome
            .entities
            .iter()
            .map(|e| EntityNodeState {
                name: e.name.clone(),
                entity_type: e.entity_type,
                files_monitored: e.files,
                state: e.state,
                message: e.message.clone(),
            })
            .collect(),
        change_counts: counts,
        conditions: Vec::new(),
    }
}

/// Creates this node's FimNodeStatus for a workspace when it is not known to exist, then
/// applies its status.
pub async fn publish_node_status(
    client: &Client,
    workspace: &WorkspaceConfig,
    node: &str,
    status: &FimNodeStatusStatus,
    created: &mut BTreeSet<String>,
) -> Result<(), kube::Error> {
    let name = keys::node_status_name(&workspace.name, node);
    let api: Api<FimNodeStatus> = Api::namespaced(client.clone(), &workspace.namespace);
    if !created.contains(&name) {
        let mut object = FimNodeStatus::new(
            &name,
            FimNodeStatusSpec {
                workspace: workspace.name.clone(),
                node_name: node.to_string(),
            },
        );
        object.metadata.namespace = Some(workspace.namespace.clone());
        object.metadata.labels = Some(BTreeMap::from([
            (keys::LABEL_WORKSPACE.to_string(), workspace.name.clone()),
            (keys::LABEL_NODE.to_string(), node.to_string()),
        ]));
        if !workspace.uid.is_empty() {
            object.metadata.owner_references = Some(vec![owner(&workspace.name, &workspace.uid)]);
        }
        let params = PostParams {
            field_manager: Some(keys::AGENT_MANAGER.into()),
            ..Default::default()
        };
        match api.create(&params, &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e),
        }
        created.insert(name.clone());
    }
    let body = json!({
        "apiVersion": FimNodeStatus::api_version(&()),
        "kind": FimNodeStatus::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(keys::AGENT_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}
