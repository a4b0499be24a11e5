//! Kubernetes Events the agent publishes: one Warning per new per-node entity error, on the
//! MonitoredEntity or, for a recommended item, on its workspace.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};
use kubefim_crds::{FimWorkspace, MonitoredEntity, keys};

use crate::schedule::ScanDone;

/// Publishes one Warning Event per new per-node entity error, on the MonitoredEntity (or, for a
/// recommended item, on its workspace); the same error is not published twice.
pub async fn publish_entity_errors(
    recorder: &Recorder,
    node: &str,
    done: &ScanDone,
    published: &mut BTreeSet<(String, String, String)>,
) {
    for entity in done
        .outcome
        .entities
        .iter()
        .filter(|e| e.state == kubefim_crds::nodestatus::EntityState::Error)
    {
        let message = entity.message.clone().unwrap_or_default();
        if !published.insert((done.workspace.name.clone(), entity.name.clone(), message.clone())) {
            continue;
        }
        let reference = if entity.name.starts_with(keys::RECOMMENDED_PREFIX) {
            ObjectReference {
                api_version: Some(FimWorkspace::api_version(&()).into()),
                kind: Some("FimWorkspace".into()),
                name: Some(done.workspace.name.clone()),
                namespace: Some(done.workspace.namespace.clone()),
                uid: Some(done.workspace.uid.clone()).filter(|u| !u.is_empty()),
                ..Default::default()
            }
        } else {
            ObjectReference {
                api_version: Some(MonitoredEntity::api_version(&()).into()),
                kind: Some("MonitoredEntity".into()),
                name: Some(entity.name.clone()),
                namespace: Some(done.workspace.namespace.clone()),
                ..Default::default()
            }
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "EntityError".into(),
            note: Some(format!("node {node}: {message}")),
            action: "Scan".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, entity = %entity.name, "cannot publish an event");
        }
    }
}
