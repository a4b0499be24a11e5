//! The status round: the node reports of each workspace gathered, its status and its entities'
//! status computed (`status`, pure) and applied when they changed (`apply`), and one Warning
//! Event per new entity problem. Only the leader runs it.

use std::{
    collections::BTreeSet,
    sync::{Arc, PoisonError},
};

use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::{
    Resource, ResourceExt,
    runtime::events::{Event, EventType},
};
use kubefim_crds::{FimNodeStatus, MonitoredEntity};

use crate::{
    Result, apply,
    controller::{Context, valid},
    status, validate,
};

/// Recomputes and applies workspace and entity status, and publishes an Event per new entity
/// problem. Only the leader calls it.
pub async fn update_status(ctx: &Context, nodes: &[Arc<Node>], now: jiff::Timestamp) -> Result<()> {
    let workspaces = valid(&ctx.workspaces);
    let entities = valid(&ctx.entities);
    let reports = valid(&ctx.node_statuses);
    let index = ctx.index();
    let problems = validate::entity_problems(&workspaces, &entities);
    for workspace in &workspaces {
        let key = validate::key_of(workspace.as_ref());
        let selected: BTreeSet<String> = index
            .nodes_selected_by(&key, nodes)
            .iter()
            .map(|n| n.name_any())
            .collect();
        let mine: Vec<Arc<FimNodeStatus>> = reports
            .iter()
            .filter(|r| {
                r.namespace().unwrap_or_default() == key.0
                    && r.spec.workspace == key.1
                    && selected.contains(&r.spec.node_name)
            })
            .cloned()
            .collect();
        let entities_active = u32::try_from(
            entities
                .iter()
                .filter(|e| {
                    e.spec.enabled && e.spec.workspace == key.1 && e.namespace().unwrap_or_default() == key.0
                })
                .filter(|e| !problems.contains_key(&validate::key_of(e.as_ref())))
                .count(),
        )
        .unwrap_or(u32::MAX);
        let selected_count = u32::try_from(selected.len()).unwrap_or(u32::MAX);
        let next = status::workspace_status(workspace, selected_count, &mine, entities_active, now);
        ctx.metrics
            .nodes
            .with_label_values(&[key.1.as_str(), "selected"])
            .set(i64::from(next.nodes_selected));
        ctx.metrics
            .nodes
            .with_label_values(&[key.1.as_str(), "reporting"])
            .set(i64::from(next.nodes_reporting));
        if workspace.status.as_ref() != Some(&next) && ctx.is_leader() {
            apply::apply_workspace_status(&ctx.client, workspace, &next).await?;
        }
        for entity in entities
            .iter()
            .filter(|e| e.spec.workspace == key.1 && e.namespace().unwrap_or_default() == key.0)
        {
            let problem = problems.get(&validate::key_of(entity.as_ref()));
            let next = status::entity_status(entity, problem, &mine, now);
            if entity.status.as_ref() != Some(&next) && ctx.is_leader() {
                apply::apply_entity_status(&ctx.client, entity, &next).await?;
            }
        }
    }
    // Entities whose workspace is missing are not reached above.
    for entity in &entities {
        let key = validate::key_of(entity.as_ref());
        let Some(problem) = problems.get(&key) else {
            continue;
        };
        if matches!(problem, validate::Problem::MissingWorkspace { .. }) {
            let next = status::entity_status(entity, Some(problem), &[], now);
            if entity.status.as_ref() != Some(&next) && ctx.is_leader() {
                apply::apply_entity_status(&ctx.client, entity, &next).await?;
            }
        }
        let first_time = ctx
            .reported_problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((key, problem.reason()));
        if first_time && ctx.is_leader() {
            let event = Event {
                type_: EventType::Warning,
                reason: problem.reason().to_string(),
                note: Some(problem.to_string()),
                action: "Validate".into(),
                secondary: None,
            };
            if let Err(e) = ctx
                .recorder
                .publish(&event, &object_reference(entity.as_ref()))
                .await
            {
                tracing::warn!(error = %e, "cannot publish an event");
            }
        }
    }
    Ok(())
}

fn object_reference(entity: &MonitoredEntity) -> ObjectReference {
    entity.object_ref(&())
}
