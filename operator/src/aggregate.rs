//! The status round: for each workspace, how it is served (namespace policy, enabled,
//! selector, the nodes an agent runs on), the reports of its nodes gathered, its status and its
//! entities' status computed (`status`, pure) and applied when they changed (`apply`), and one
//! Warning Event per new problem (a refused namespace, an entity that cannot be served). One
//! workspace that fails to apply never stops the others. Only the leader runs it.

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::{
    Resource, ResourceExt,
    runtime::events::{Event, EventType},
};
use kubefim_crds::{FimNodeStatus, FimWorkspace, MonitoredEntity, TargetOs};

use crate::{
    Error, Result, apply,
    context::{Context, valid},
    render::node_os,
    selector,
    status::{self, EntityServing, Serving},
    tenancy::NAMESPACE_NOT_ALLOWED,
    validate::{self, ObjectKey},
};

/// Publishes a Warning Event once per (object, reason).
async fn warn_once(
    ctx: &Context,
    key: ObjectKey,
    reference: ObjectReference,
    reason: &'static str,
    note: String,
) {
    // A standby announces nothing and records nothing: the leader it may become announces it.
    if !ctx.is_leader() || !ctx.first_report(key, reason) {
        return;
    }
    let event = Event {
        type_: EventType::Warning,
        reason: reason.to_string(),
        note: Some(note),
        action: "Validate".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &reference).await {
        tracing::warn!(error = %e, reason, "cannot publish an event");
    }
}

/// How `workspace` is served, and the selected nodes the agent runs on.
fn serving<'n>(
    ctx: &Context,
    workspace: &FimWorkspace,
    nodes: &'n [Arc<Node>],
) -> (Serving, Vec<&'n Arc<Node>>) {
    let namespace = workspace.namespace().unwrap_or_default();
    if !ctx.allows(&namespace) {
        return (
            Serving::NamespaceNotAllowed(ctx.settings.policy.refusal(&namespace)),
            Vec::new(),
        );
    }
    if !workspace.spec.enabled {
        return (Serving::Disabled, Vec::new());
    }
    let mut supported = Vec::new();
    let mut unsupported = Vec::new();
    for node in nodes {
        match selector::matches(&workspace.spec.node_selector, node.labels()) {
            Err(invalid) => return (Serving::InvalidNodeSelector(invalid.to_string()), Vec::new()),
            Ok(false) => {}
            Ok(true) if selector::matches(&ctx.settings.agent_nodes, node.labels()).unwrap_or(false) => {
                supported.push(node)
            }
            Ok(true) => unsupported.push(node.name_any()),
        }
    }
    let serving = Serving::Nodes {
        supported: supported.iter().map(|n| n.name_any()).collect(),
        unsupported,
    };
    (serving, supported)
}

/// Recomputes and applies workspace and entity status, and publishes an Event per new
/// problem. Only the leader calls it. Every workspace is attempted; the first failure is
/// returned after the others were done.
pub async fn update_status(ctx: &Context, nodes: &[Arc<Node>], now: jiff::Timestamp) -> Result<()> {
    // In a stable order: one round after another reads and writes alike.
    let mut workspaces = valid(&ctx.stores.workspaces);
    workspaces.sort_by_key(|w| validate::key_of(w.as_ref()));
    let mut entities = valid(&ctx.stores.entities);
    entities.sort_by_key(|e| validate::key_of(e.as_ref()));
    let reports = valid(&ctx.stores.node_statuses);
    // Set again below for every workspace there is: a deleted workspace's series go.
    ctx.metrics.nodes.reset();
    let problems = validate::entity_problems(&ctx.served_workspaces(), &ctx.served_entities());
    let mut first_error: Option<Error> = None;
    let mut keep = |result: Result<()>, what: &dyn std::fmt::Display| {
        if let Err(e) = result {
            tracing::warn!(object = %what, error = %kubefim_telemetry::error_chain(&e), "cannot apply status; retrying next round");
            first_error.get_or_insert(e);
        }
    };
    for workspace in &workspaces {
        let key = validate::key_of(workspace.as_ref());
        let (serving, supported) = serving(ctx, workspace, nodes);
        if let Serving::NamespaceNotAllowed(message) = &serving {
            warn_once(
                ctx,
                key.clone(),
                workspace.object_ref(&()),
                NAMESPACE_NOT_ALLOWED,
                message.clone(),
            )
            .await;
        }
        let served: BTreeSet<String> = supported.iter().map(|n| n.name_any()).collect();
        let mine: Vec<Arc<FimNodeStatus>> = reports
            .iter()
            .filter(|r| {
                r.namespace().unwrap_or_default() == key.0
                    && r.spec.workspace == key.1
                    && served.contains(&r.spec.node_name)
            })
            .cloned()
            .collect();
        let next = status::workspace_status(workspace, &serving, &mine, now);
        // Selected nodes that can run an agent but sent no fresh heartbeat: what the
        // KubefimNodesNotReporting alert watches, whatever made the agent go silent (its pod
        // deleted, a crash loop, the DaemonSet removed), since an agent that is gone exports
        // nothing itself.
        let not_reporting = next
            .nodes_selected
            .saturating_sub(next.nodes_unsupported)
            .saturating_sub(next.nodes_reporting);
        for (state, count) in [
            ("selected", next.nodes_selected),
            ("reporting", next.nodes_reporting),
            ("not_reporting", not_reporting),
            ("unsupported", next.nodes_unsupported),
        ] {
            ctx.metrics
                .nodes
                .with_label_values(&[key.0.as_str(), key.1.as_str(), state])
                .set(i64::from(count));
        }
        if workspace.status.as_ref() != Some(&next) && ctx.is_leader() {
            keep(
                apply::apply_workspace_status(&ctx.client, workspace, &next).await,
                &format!("FimWorkspace {}/{}", key.0, key.1),
            );
        }
        let interval = status::scan_interval(workspace);
        let oses: BTreeSet<TargetOs> = supported.iter().map(|n| node_os(n)).collect();
        for entity in entities
            .iter()
            .filter(|e| e.spec.workspace == key.1 && e.namespace().unwrap_or_default() == key.0)
        {
            let entity_key = validate::key_of(entity.as_ref());
            let entity_os = if entity.spec.entity_type.is_linux() {
                TargetOs::Linux
            } else {
                TargetOs::Windows
            };
            let entity_serving = match &serving {
                Serving::NamespaceNotAllowed(message) => EntityServing::NamespaceNotAllowed(message.clone()),
                Serving::Disabled => EntityServing::WorkspaceDisabled,
                _ => match problems.get(&entity_key) {
                    Some(problem) => EntityServing::Problem(problem),
                    None if !oses.is_empty() && !oses.contains(&entity_os) => {
                        EntityServing::Unsupported(entity.spec.entity_type)
                    }
                    None => EntityServing::Served,
                },
            };
            let next = status::entity_status(entity, &entity_serving, &mine, interval, now);
            if entity.status.as_ref() != Some(&next) && ctx.is_leader() {
                keep(
                    apply::apply_entity_status(&ctx.client, entity, &next).await,
                    &format!("MonitoredEntity {}/{}", entity_key.0, entity_key.1),
                );
            }
        }
    }
    // Entities whose workspace is missing are not reached above; every problem gets its Event.
    for entity in &entities {
        let key = validate::key_of(entity.as_ref());
        let Some(problem) = problems.get(&key) else {
            continue;
        };
        if matches!(problem, validate::Problem::MissingWorkspace { .. }) {
            let next = status::entity_status(
                entity,
                &EntityServing::Problem(problem),
                &[],
                std::time::Duration::ZERO,
                now,
            );
            if entity.status.as_ref() != Some(&next) && ctx.is_leader() {
                keep(
                    apply::apply_entity_status(&ctx.client, entity, &next).await,
                    &format!("MonitoredEntity {}/{}", key.0, key.1),
                );
            }
        }
        warn_once(
            ctx,
            key,
            entity_reference(entity),
            problem.reason(),
            problem.to_string(),
        )
        .await;
    }
    first_error.map_or(Ok(()), Err)
}

fn entity_reference(entity: &MonitoredEntity) -> ObjectReference {
    entity.object_ref(&())
}
