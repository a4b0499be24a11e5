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
    api::core::v1::{ConfigMap, Node, ObjectReference},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        controller::{Action, ReconcileRequest, applier},
        events::{Event, EventType, Recorder, Reporter},
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use kubefim_crds::{FimNodeStatus, FimWorkspace, MonitoredEntity, keys};
use tokio::sync::watch;

use crate::{
    Error, Result, apply,
    metrics::{Metrics, ReconcileTimer},
    render::RenderIndex,
    retention, status,
    validate::{self, ObjectKey},
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
    reported_problems: Mutex<BTreeSet<(ObjectKey, &'static str)>>,
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

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }
}

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

fn error_policy(_node: Arc<Node>, error: &Error, ctx: Arc<Context>) -> Action {
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

fn object_reference(entity: &MonitoredEntity) -> ObjectReference {
    entity.object_ref(&())
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
                        if ctx.is_leader() && let Err(e) = update_status(&ctx, &nodes.state(), jiff::Timestamp::now()).await {
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
