//! The operator's wiring: a Node controller that renders and applies each node's ConfigMap,
//! reflector stores of workspaces, entities, node reports, agent ConfigMaps and (when the
//! namespace policy uses labels) namespaces, the status and retention loops, and leader
//! election. Only the replica holding the Lease writes; standbys keep their caches warm and take
//! over by reconciling every node. A malformed object is logged and announced by an Event; it
//! never stops a watch.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace, Node, ObjectReference},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        controller::{ReconcileRequest, applier},
        events::{Event, EventType},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use kubefim_crds::{FimNodeStatus, FimWorkspace, MonitoredEntity, keys};

use crate::context::{Context, Settings, Stores};
use crate::{
    Error, Result, aggregate,
    metrics::Metrics,
    reconcile::{Trigger, error_policy, nodes_to_reconcile, reconcile_node, remove_orphaned_configs},
    retention,
};

async fn wait_for_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in kubefim_crds::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        loop {
            match api.get_opt(&name).await {
                Ok(Some(_)) => break,
                Ok(None) => {
                    tracing::warn!(crd = %name, "waiting for the kubefim CRDs: install them with the Helm chart (charts/kubefim/crds)")
                }
                Err(e) => tracing::warn!(crd = %name, error = %e, "cannot read CRDs yet"),
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// A reflector store and the stream that fills it; each item comes after the store holds it.
fn store<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, impl futures::Stream<Item = K> + Send)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .touched_objects()
        .filter_map(|item| futures::future::ready(item.ok()));
    (reader, stream)
}

/// Logs and announces (once per object and message) an object that cannot be read as its
/// kind; the watch goes on without it.
fn report_malformed<K>(ctx: &Arc<Context>, guard: &DeserializeGuard<K>)
where
    K: Resource<DynamicType = ()>,
{
    let Err(invalid) = &guard.0 else { return };
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let namespace = invalid.metadata.namespace.clone().unwrap_or_default();
    tracing::error!(kind = %K::kind(&()), %namespace, %name, error = %invalid.error,
        "an object cannot be read and is ignored until it is fixed");
    // A standby announces nothing and records nothing: the leader it may become announces it.
    if !ctx.is_leader()
        || !ctx.first_report(
            (
                namespace.clone(),
                format!("{}/{name}: {}", K::kind(&()), invalid.error),
            ),
            "Malformed",
        )
    {
        return;
    }
    let reference = ObjectReference {
        api_version: Some(K::api_version(&()).into()),
        kind: Some(K::kind(&()).into()),
        name: Some(name),
        namespace: Some(namespace).filter(|n| !n.is_empty()),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "Malformed".into(),
        note: Some(format!(
            "the operator cannot read this object and ignores it: {}",
            invalid.error
        )),
        action: "Read".into(),
        secondary: None,
    };
    let recorder = ctx.recorder.clone();
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "cannot publish an event");
        }
    });
}

/// Runs the operator until `shutdown` completes.
pub async fn run(
    client: Client,
    settings: Settings,
    identity: String,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    wait_for_crds(&client).await;
    let namespace = settings.namespace.clone();
    let intervals = settings.intervals;
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), keys::OPERATOR_LEASE)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .build()
        .await
        .map_err(|e| Error::Lease(e.to_string()))?;
    let (leader, lease_task) = lease.watch().await;

    let (workspaces, ws_events) = store(
        Api::<DeserializeGuard<FimWorkspace>>::all(client.clone()),
        watcher::Config::default(),
    );
    let (entities, entity_events) = store(
        Api::<DeserializeGuard<MonitoredEntity>>::all(client.clone()),
        watcher::Config::default(),
    );
    let (node_statuses, status_events) = store(
        Api::<DeserializeGuard<FimNodeStatus>>::all(client.clone()),
        watcher::Config::default(),
    );
    let (config_maps, cm_events) = store(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace),
        watcher::Config::default().labels(&format!(
            "{}={}",
            keys::LABEL_COMPONENT,
            keys::COMPONENT_AGENT_CONFIG
        )),
    );
    let watch_namespaces = settings.policy.uses_labels();
    let (namespaces, ns_events) = if watch_namespaces {
        let (reader, events) = store(Api::<Namespace>::all(client.clone()), watcher::Config::default());
        (reader, events.boxed())
    } else {
        // Nothing to watch: allowed namespaces are listed by name.
        (reflector::store().0, futures::stream::empty().boxed())
    };
    let stores = Stores {
        workspaces,
        entities,
        node_statuses,
        config_maps,
        namespaces,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        stores.clone(),
        leader.clone(),
        metrics.clone(),
        Some(identity.clone()),
    ));
    // Reconciles are triggered from the reflectors themselves: each event arrives after its
    // store holds it, so a node is never rendered from a store older than what triggered it.
    let (trigger_sender, triggers) = futures::channel::mpsc::unbounded::<Trigger>();
    let drain = {
        let (ws_ctx, entity_ctx, status_ctx, ns_ctx) = (ctx.clone(), ctx.clone(), ctx.clone(), ctx.clone());
        let (ws_sender, entity_sender, ns_sender, cm_sender) = (
            trigger_sender.clone(),
            trigger_sender.clone(),
            trigger_sender.clone(),
            trigger_sender,
        );
        async move {
            let ws = ws_events.for_each(move |guard| {
                report_malformed(&ws_ctx, &guard);
                ws_ctx.dirty.store(true, Ordering::Release);
                // Its selector may have changed: every node may gain or lose it.
                let _ = ws_sender.unbounded_send(Trigger::AllNodes);
                futures::future::ready(())
            });
            let entity = entity_events.for_each(move |guard| {
                report_malformed(&entity_ctx, &guard);
                entity_ctx.dirty.store(true, Ordering::Release);
                if let Ok(entity) = guard.0 {
                    let workspace = (
                        entity.namespace().unwrap_or_default(),
                        entity.spec.workspace.clone(),
                    );
                    let _ = entity_sender.unbounded_send(Trigger::NodesOf(workspace));
                }
                futures::future::ready(())
            });
            let statuses = status_events.for_each(move |guard| {
                report_malformed(&status_ctx, &guard);
                futures::future::ready(())
            });
            // A namespace's labels decide whether its workspaces are served.
            let namespaces = ns_events.for_each(move |_| {
                ns_ctx.dirty.store(true, Ordering::Release);
                let _ = ns_sender.unbounded_send(Trigger::AllNodes);
                futures::future::ready(())
            });
            futures::join!(
                ws,
                entity,
                statuses,
                namespaces,
                // The operator owns these: one changed or deleted by anyone is compared again.
                cm_events.for_each(move |cm| {
                    if let Some(node) = cm.labels().get(keys::LABEL_NODE) {
                        let _ = cm_sender.unbounded_send(Trigger::Node(node.clone()));
                    }
                    futures::future::ready(())
                })
            );
        }
    };
    tokio::spawn(drain);
    for ready in [
        stores.workspaces.wait_until_ready().await,
        stores.entities.wait_until_ready().await,
        stores.node_statuses.wait_until_ready().await,
        stores.config_maps.wait_until_ready().await,
    ] {
        ready.map_err(|e| Error::Lease(format!("a cache stopped before it synced: {e}")))?;
    }
    if watch_namespaces {
        stores
            .namespaces
            .wait_until_ready()
            .await
            .map_err(|e| Error::Lease(format!("a cache stopped before it synced: {e}")))?;
    }
    ctx.dirty.store(true, Ordering::Release);
    metrics.ready.store(true, Ordering::Relaxed);

    let (nodes, node_events) = store(Api::<Node>::all(client.clone()), watcher::Config::default());
    // Becoming leader reconciles every node, so a new leader converges whatever it inherits.
    let on_leadership = futures::stream::unfold(leader.clone(), |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow() {
                return Some((Trigger::AllNodes, rx));
            }
        }
    });
    let (trigger_ctx, trigger_nodes) = (ctx.clone(), nodes.clone());
    let triggered = futures::stream::select(triggers, on_leadership).flat_map(move |trigger| {
        futures::stream::iter(nodes_to_reconcile(&trigger, &trigger_ctx, &trigger_nodes))
    });
    let own = node_events.map(|node| ReconcileRequest::from(ObjectRef::from_obj(&node)));
    // Like Controller's graceful shutdown: the queue ends, reconciles in flight finish.
    let queue = futures::stream::select(own, triggered)
        .take_until(shutdown)
        .map(Ok::<_, std::convert::Infallible>);

    let loops = {
        let (ctx, nodes) = (ctx.clone(), nodes.clone());
        async move {
            let mut status_tick = tokio::time::interval(intervals.status);
            let mut retention_tick = tokio::time::interval(intervals.retention);
            loop {
                tokio::select! {
                    _ = status_tick.tick() => {
                        if ctx.is_leader() && let Err(e) = aggregate::update_status(&ctx, &nodes.state(), jiff::Timestamp::now()).await {
                            tracing::warn!(error = %kubefim_telemetry::error_chain(&e), "status update failed; retrying next round");
                        }
                        if let Err(e) = remove_orphaned_configs(&ctx, &nodes.state()).await {
                            tracing::warn!(error = %kubefim_telemetry::error_chain(&e), "cannot remove the configuration of a deleted node; retrying next round");
                        }
                    }
                    _ = retention_tick.tick() => {
                        if !ctx.is_leader() { continue; }
                        for workspace in ctx.valid_workspaces() {
                            match retention::sweep(&ctx.client, &workspace, jiff::Timestamp::now()).await {
                                Ok(deleted) => ctx.metrics.filechanges_collected_total.inc_by(deleted),
                                Err(e) => tracing::warn!(workspace = %workspace.name_any(), error = %kubefim_telemetry::error_chain(&e), "retention failed"),
                            }
                        }
                    }
                }
            }
        }
    };
    let loops = tokio::spawn(loops);
    let leader_metric = {
        let (mut leader, metrics) = (leader.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                let holding = *leader.borrow_and_update();
                metrics.is_leader.set(i64::from(holding));
                if !holding {
                    // Only the holder counts nodes; a standby's last counts would go stale.
                    metrics.nodes.reset();
                }
                tracing::info!(leader = holding, "leadership");
                if leader.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let reconcile = |node, ctx| Box::pin(reconcile_node(node, ctx));
    applier(reconcile, error_policy, ctx, nodes, queue, Default::default())
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
            futures::future::ready(())
        })
        .await;
    loops.abort();
    leader_metric.abort();
    drop(leader);
    lease_task.abort();
    Ok(())
}
