//! The operator's wiring: a Node controller that renders and applies each node's ConfigMap,
//! reflector stores of workspaces, entities, node reports and agent ConfigMaps, the status and
//! retention loops, and leader election. Only the replica holding the Lease writes; standbys
//! keep their caches warm and take over by reconciling every node.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Node},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        controller::{ReconcileRequest, applier},
        events::{Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use kubefim_crds::{FimNodeStatus, FimWorkspace, MonitoredEntity, keys};
use tokio::sync::watch;

use crate::{
    Error, Result, aggregate,
    metrics::Metrics,
    reconcile::{Trigger, error_policy, nodes_to_reconcile, reconcile_node},
    render::RenderIndex,
    retention,
    validate::ObjectKey,
};

/// How often the periodic loops run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Workspace and entity status is recomputed (default 30 s).
    pub status: Duration,
    /// Retention deletes expired FileChanges (default 5 min).
    pub retention: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            status: Duration::from_secs(30),
            retention: Duration::from_secs(300),
        }
    }
}

/// Everything the reconcilers share.
pub struct Context {
    pub client: Client,
    /// The install namespace, where node ConfigMaps live.
    pub namespace: String,
    pub workspaces: Store<DeserializeGuard<FimWorkspace>>,
    pub entities: Store<DeserializeGuard<MonitoredEntity>>,
    pub node_statuses: Store<DeserializeGuard<FimNodeStatus>>,
    pub config_maps: Store<ConfigMap>,
    /// Set whenever a workspace or entity changes; the index is rebuilt before its next use.
    pub dirty: Arc<AtomicBool>,
    index: Mutex<Arc<RenderIndex>>,
    pub leader: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// (entity, reason) pairs an Event was already published for.
    pub(crate) reported_problems: Mutex<BTreeSet<(ObjectKey, &'static str)>>,
}

/// The objects of a store that deserialized; one malformed object never hides the others.
pub fn valid<K>(store: &Store<DeserializeGuard<K>>) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok().cloned().map(Arc::new))
        .collect()
}

impl Context {
    /// The render index, rebuilt first when workspaces or entities changed.
    pub fn index(&self) -> Arc<RenderIndex> {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if self.dirty.swap(false, Ordering::AcqRel) {
            *index = Arc::new(RenderIndex::build(
                &valid(&self.workspaces),
                &valid(&self.entities),
            ));
        }
        index.clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("namespace", &self.namespace)
            .field("leader", &*self.leader.borrow())
            .finish()
    }
}

/// A context over given stores and client, for tests and tools that drive the reconcilers
/// without the watches.
#[allow(clippy::too_many_arguments)] // one argument per store the reconcilers read
pub fn context(
    client: Client,
    namespace: &str,
    workspaces: Store<DeserializeGuard<FimWorkspace>>,
    entities: Store<DeserializeGuard<MonitoredEntity>>,
    node_statuses: Store<DeserializeGuard<FimNodeStatus>>,
    config_maps: Store<ConfigMap>,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Context {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kubefim-operator".into(),
            instance: None,
        },
    );
    Context {
        client,
        namespace: namespace.to_string(),
        workspaces,
        entities,
        node_statuses,
        config_maps,
        dirty: Arc::new(AtomicBool::new(true)),
        index: Mutex::new(Arc::new(RenderIndex::default())),
        leader,
        metrics,
        recorder,
        reported_problems: Mutex::new(BTreeSet::new()),
    }
}

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

/// Runs the operator until `shutdown` completes.
pub async fn run(
    client: Client,
    namespace: String,
    identity: String,
    intervals: Intervals,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    wait_for_crds(&client).await;
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
    // Reconciles are triggered from the reflectors themselves: each event arrives after its
    // store holds it, so a node is never rendered from a store older than what triggered it.
    let dirty = Arc::new(AtomicBool::new(true));
    let (trigger_sender, triggers) = futures::channel::mpsc::unbounded::<Trigger>();
    let drain = {
        let (dirty, entity_dirty) = (dirty.clone(), dirty.clone());
        let (ws_sender, entity_sender) = (trigger_sender.clone(), trigger_sender);
        async move {
            let ws = ws_events.for_each(move |_| {
                dirty.store(true, Ordering::Release);
                // Its selector may have changed: every node may gain or lose it.
                let _ = ws_sender.unbounded_send(Trigger::AllNodes);
                futures::future::ready(())
            });
            let entity = entity_events.for_each(move |guard| {
                entity_dirty.store(true, Ordering::Release);
                if let Ok(entity) = guard.0 {
                    let workspace = (
                        entity.namespace().unwrap_or_default(),
                        entity.spec.workspace.clone(),
                    );
                    let _ = entity_sender.unbounded_send(Trigger::NodesOf(workspace));
                }
                futures::future::ready(())
            });
            futures::join!(
                ws,
                entity,
                status_events.for_each(|_| futures::future::ready(())),
                cm_events.for_each(|_| futures::future::ready(()))
            );
        }
    };
    tokio::spawn(drain);
    for ready in [
        workspaces.wait_until_ready().await,
        entities.wait_until_ready().await,
        node_statuses.wait_until_ready().await,
        config_maps.wait_until_ready().await,
    ] {
        ready.map_err(|e| Error::Lease(format!("a cache stopped before it synced: {e}")))?;
    }

    let mut ctx = context(
        client.clone(),
        &namespace,
        workspaces,
        entities,
        node_statuses,
        config_maps,
        leader.clone(),
        metrics.clone(),
    );
    ctx.dirty = dirty.clone();
    ctx.recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kubefim-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let ctx = Arc::new(ctx);
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
                    }
                    _ = retention_tick.tick() => {
                        if !ctx.is_leader() { continue; }
                        for workspace in valid(&ctx.workspaces) {
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
