//! The Node reconcile: render the node's configuration from the index and server-side apply its
//! ConfigMap when the revision changed, and which nodes a workspace or entity change touches.
//! Only the leader writes; the check is made right before the write.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kube::{
    Resource, ResourceExt,
    runtime::{
        controller::{Action, ReconcileRequest},
        events::{Event, EventType},
        reflector::{ObjectRef, Store},
    },
};
use kubefim_crds::keys;

use crate::{Error, Result, apply, context::Context, metrics::ReconcileTimer, validate::ObjectKey};

/// Renders `node`'s configuration and applies its ConfigMap when the revision changed.
pub async fn reconcile_node(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ReconcileTimer::start(&ctx.metrics, "node");
    let index = ctx.index();
    let revision = index.revision(&node);
    let name = keys::node_config_map_name(&node.name_any());
    let current = ctx
        .stores
        .config_maps
        .get(&ObjectRef::new(&name).within(&ctx.settings.namespace));
    let config = index.config(&node);
    let owner = ctx.settings.config_owner.as_ref();
    let cm = apply::node_config_map(&node, &config, &ctx.settings.namespace, owner)?;
    // Its content is compared, not only its revision annotation: an edit by hand that kept the
    // annotation is repaired like a deletion.
    match current.as_deref() {
        Some(current) if apply::holds(current, &cm) => {
            ctx.metrics
                .reconciliations_total
                .with_label_values(&["unchanged"])
                .inc();
            return Ok(Action::await_change());
        }
        Some(current) if apply::applied_revision(current) == Some(revision.as_str()) => {
            tracing::warn!(node = %node.name_any(), configmap = %name,
                "the node's ConfigMap was changed by something other than the operator; restoring it");
        }
        _ => {}
    }
    // Checked at the last moment: a replica that lost the lease must not write.
    if !ctx.is_leader() {
        ctx.metrics
            .reconciliations_total
            .with_label_values(&["standby"])
            .inc();
        return Ok(Action::await_change());
    }
    apply::apply_config_map(&ctx.client, &cm).await?;
    ctx.metrics.configmaps_applied_total.inc();
    ctx.metrics
        .reconciliations_total
        .with_label_values(&["applied"])
        .inc();
    tracing::info!(node = %node.name_any(), revision = %config.revision, workspaces = config.workspaces.len(), "node configuration applied");
    Ok(Action::await_change())
}

/// A transient failure (the API server busy or unreachable) is retried soon; a permanent one
/// (the API server refuses what was rendered, an invalid value) waits for the next change of
/// the node or of what it renders, and says so in the log and a Warning Event on the node.
pub fn error_policy(node: Arc<Node>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors_total
        .with_label_values(&[error.kind()])
        .inc();
    let chain = kubefim_telemetry::error_chain(error);
    if !error.is_permanent() {
        tracing::warn!(node = %node.name_any(), error = %chain, "node reconcile failed; retrying in 10 s");
        return Action::requeue(Duration::from_secs(10));
    }
    tracing::error!(node = %node.name_any(), error = %chain,
        "node configuration refused; waiting for the next change of the node or of its workspaces");
    if ctx.is_leader() {
        let (recorder, reference) = (ctx.recorder.clone(), node.object_ref(&()));
        let event = Event {
            type_: EventType::Warning,
            reason: "ConfigurationRefused".into(),
            note: Some(chain),
            action: "Reconcile".into(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::warn!(error = %e, "cannot publish an event");
            }
        });
    }
    Action::await_change()
}

/// What makes a set of nodes need reconciling.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A workspace changed, or this replica became leader.
    AllNodes,
    /// An entity of this workspace changed: only the nodes the workspace selects.
    NodesOf(ObjectKey),
    /// The ConfigMap of this node changed or was deleted: it is compared with what it must hold.
    Node(String),
}

/// The nodes a trigger asks to reconcile.
pub fn nodes_to_reconcile(
    trigger: &Trigger,
    ctx: &Context,
    nodes: &Store<Node>,
) -> Vec<ReconcileRequest<Node>> {
    let all = nodes.state();
    let chosen: Vec<&Arc<Node>> = match trigger {
        Trigger::AllNodes => all.iter().collect(),
        Trigger::NodesOf(workspace) => ctx.index().nodes_selected_by(workspace, &all),
        Trigger::Node(name) => all.iter().filter(|n| n.name_any() == *name).collect(),
    };
    chosen
        .into_iter()
        .map(|n| ReconcileRequest::from(ObjectRef::from_obj(n.as_ref())))
        .collect()
}

/// Deletes the ConfigMaps of nodes that no longer exist. With the ServiceAccount as their owner,
/// a deleted Node no longer takes its ConfigMap; this does, on the leader, every status round.
pub async fn remove_orphaned_configs(ctx: &Context, nodes: &[Arc<Node>]) -> Result<usize> {
    if !ctx.is_leader() {
        return Ok(0);
    }
    let existing: std::collections::BTreeSet<String> = nodes
        .iter()
        .map(|n| keys::node_config_map_name(&n.name_any()))
        .collect();
    let mut removed = 0;
    for cm in ctx.stores.config_maps.state() {
        let name = cm.name_any();
        if existing.contains(&name) || cm.namespace().as_deref() != Some(ctx.settings.namespace.as_str()) {
            continue;
        }
        apply::delete_config_map(&ctx.client, &ctx.settings.namespace, &name).await?;
        tracing::info!(configmap = %name, "removed the configuration of a node that no longer exists");
        removed += 1;
    }
    Ok(removed)
}
