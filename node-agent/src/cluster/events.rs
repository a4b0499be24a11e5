//! Kubernetes Events the agent publishes: a Warning per new per-node entity error (on the
//! MonitoredEntity or, for a recommended item, on its workspace), per kind of refused report
//! and per lost baseline (on the workspace), and a Normal one per baseline accept that took
//! differences (on the workspace). An Event that cannot be published is logged: the
//! same facts are in FimNodeStatus and the metrics.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Resource,
    runtime::events::{Event, EventType, Recorder},
};
use kubefim_crds::{FimWorkspace, MonitoredEntity, keys};

use super::reporter::Rejection;
use crate::{config::WorkspaceKey, records::BaselineReset, schedule::ScanDone};

fn workspace_reference(workspace: &WorkspaceKey, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(FimWorkspace::api_version(&()).into()),
        kind: Some("FimWorkspace".into()),
        name: Some(workspace.name.clone()),
        namespace: Some(workspace.namespace.clone()),
        uid: Some(uid.to_string()).filter(|u| !u.is_empty()),
        ..Default::default()
    }
}

async fn warn(recorder: &Recorder, reference: &ObjectReference, reason: &str, action: &str, note: String) {
    publish(recorder, reference, EventType::Warning, reason, action, note).await;
}

async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason, object = ?reference.name, "cannot publish an event");
    }
}

/// Publishes one Warning Event per new per-node entity error; the same error is not published
/// twice (`published` holds (workspace, entity, message)).
pub async fn publish_entity_errors(
    recorder: &Recorder,
    node: &str,
    done: &ScanDone,
    published: &mut BTreeSet<(WorkspaceKey, String, String)>,
) {
    let workspace = WorkspaceKey::of(&done.workspace);
    // Forget what this workspace no longer reports, so the set holds only current errors and an
    // error that comes back after a recovery is announced again.
    published.retain(|(w, entity, message)| {
        *w != workspace
            || done.outcome.entities.iter().any(|e| {
                &e.name == entity
                    && e.state == kubefim_crds::nodestatus::EntityState::Error
                    && e.message.as_deref().unwrap_or_default() == message
            })
    });
    for entity in done
        .outcome
        .entities
        .iter()
        .filter(|e| e.state == kubefim_crds::nodestatus::EntityState::Error)
    {
        let message = entity.message.clone().unwrap_or_default();
        if !published.insert((workspace.clone(), entity.name.clone(), message.clone())) {
            continue;
        }
        let reference = if entity.name.starts_with(keys::RECOMMENDED_PREFIX) {
            workspace_reference(&workspace, &done.workspace.uid)
        } else {
            ObjectReference {
                api_version: Some(MonitoredEntity::api_version(&()).into()),
                kind: Some("MonitoredEntity".into()),
                name: Some(entity.name.clone()),
                namespace: Some(workspace.namespace.clone()),
                ..Default::default()
            }
        };
        warn(
            recorder,
            &reference,
            "EntityError",
            "Scan",
            format!("node {node}: {message}"),
        )
        .await;
    }
}

/// One Warning Event per workspace and status code among `rejections` (a burst of refusals of
/// one kind is one Event; the log and the dead letters hold each record).
pub async fn publish_rejections(recorder: &Recorder, node: &str, rejections: &[Rejection]) {
    let mut seen = BTreeSet::new();
    for rejection in rejections {
        if !seen.insert((rejection.workspace.clone(), rejection.code)) {
            continue;
        }
        let count = rejections
            .iter()
            .filter(|r| r.workspace == rejection.workspace && r.code == rejection.code)
            .count();
        warn(
            recorder,
            &workspace_reference(&rejection.workspace, &rejection.workspace_uid),
            "ReportsRejected",
            "Report",
            format!(
                "node {node}: the API server refused {count} FileChange(s) of workspace {} for good (first: {}: {}); they were moved to the node's dead letters and reporting goes on",
                rejection.workspace, rejection.path, rejection.reason
            ),
        )
        .await;
    }
}

/// The Warning Event of a lost baseline.
pub async fn publish_reset(
    recorder: &Recorder,
    node: &str,
    workspace: &WorkspaceKey,
    uid: &str,
    reset: &BaselineReset,
    generation: &str,
) {
    warn(
        recorder,
        &workspace_reference(workspace, uid),
        "BaselineReset",
        "Scan",
        format!(
            "node {node}: the baseline store was lost or replaced (its generation was {}, it is now {generation}); changes made before it was rebuilt are unknown. Check the node, then accept a new baseline with kubectl fim baseline accept",
            reset.previous_generation
        ),
    )
    .await;
}

/// The Normal Event of a baseline accept that took differences as the new baseline: how many,
/// on which node, at which revision (each is also a FileChange with attribution
/// BaselineAccepted).
pub async fn publish_accepted(recorder: &Recorder, node: &str, done: &ScanDone) {
    let accepted = done.outcome.accepted;
    if accepted == 0 {
        return;
    }
    let workspace = WorkspaceKey::of(&done.workspace);
    publish(
        recorder,
        &workspace_reference(&workspace, &done.workspace.uid),
        EventType::Normal,
        "BaselineAccepted",
        "Scan",
        format!(
            "node {node}: baseline revision {} accepted {accepted} difference(s) as the new baseline; each is reported as a FileChange with attribution BaselineAccepted",
            done.workspace.baseline_revision
        ),
    )
    .await;
}
