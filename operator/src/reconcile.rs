//! The Node reconcile: render the node's configuration from the index and server-side apply its
//! ConfigMap when the revision changed, and which nodes a workspace or entity change touches.
//! Only the leader writes; the check is made right before the write.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kube::{
    ResourceExt,
    runtime::{
        controller::{Action, ReconcileRequest},
        reflector::{ObjectRef, Store},
    },
};
use kubefim_crds::keys;

use crate::{Error, Result, apply, controller::Context, metrics::ReconcileTimer, validate::ObjectKey};

/// Renders `node`'s configuration and applies its ConfigMap when the revision changed.
pub async fn reconcile_node(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ReconcileTimer::start(&ctx.metrics, "node");
    let index = ctx.index();
    let revision = index.revision(&node);
    let name = keys::node_config_map_name(&node.name_any());
    let current = ctx.config_maps.get(&ObjectRef::new(&name).within(&ctx.namespace));
    if current.as_deref().and_then(apply::applied_revision) == Some(revision.as_str()) {
        ctx.metrics
            .reconciliations_total
            .with_label_values(&["unchanged"])
            .inc();
        return Ok(Action::await_change());
    }
    let config = index.config(&node);
    let cm = apply::node_config_map(&node, &config, &ctx.namespace)?;
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

pub fn error_policy(_node: Arc<Node>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors_total
        .with_label_values(&[error.kind()])
        .inc();
    tracing::warn!(error = %kubefim_telemetry::error_chain(error), "node reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

/// What makes a set of nodes need reconciling.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A workspace changed, or this replica became leader.
    AllNodes,
    /// An entity of this workspace changed: only the nodes the workspace selects.
    NodesOf(ObjectKey),
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
    };
    chosen
        .into_iter()
        .map(|n| ReconcileRequest::from(ObjectRef::from_obj(n.as_ref())))
        .collect()
}
