//! In-cluster mode (`kubefim-agent run`): the configuration comes from the node's ConfigMap,
//! changes go from the durable outbox to FileChange objects, and each workspace's state goes
//! to its FimNodeStatus. Nothing is lost to an API outage: a change leaves the outbox only once
//! the API server acknowledged it (created, or already there under its deterministic name),
//! and the outbox lives in the node's state directory across restarts.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::BuildHasher,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{OwnerReference, Time},
};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use kubefim_crds::{
    AgentConfig, FileChange, FimNodeStatus, FimNodeStatusSpec, FimWorkspace, MonitoredEntity,
    WorkspaceConfig, keys,
    nodestatus::{DailyChangeCount, EntityNodeState, FimNodeStatusStatus, ScanSummary},
};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    Error, Result, VERSION,
    hostfs::HostRoot,
    metrics::Metrics,
    outbox::{ChangeOutbox, OutboxPolicy, OutboxRecord},
    standalone::{self, Agent, ScanDone},
    store::BaselineStore,
};

/// Options of the in-cluster mode.
#[derive(Clone, Debug)]
pub struct Options {
    pub node: String,
    /// Where the node's ConfigMap lives (the install namespace).
    pub namespace: String,
    pub host_root: PathBuf,
    pub state_dir: PathBuf,
    pub metrics_addr: Option<String>,
    pub max_watches: usize,
    /// FileChange creates per second, at most.
    pub reports_per_second: f64,
    /// Records the outbox holds before it folds changes into Aggregated ones.
    pub outbox_bound: u64,
    /// How often FimNodeStatus is refreshed between scans.
    pub heartbeat: Duration,
    /// How long one API request may take before it is retried.
    pub request_timeout: Duration,
}

fn owner(workspace: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", kubefim_crds::GROUP, kubefim_crds::VERSION),
        kind: "FimWorkspace".into(),
        name: workspace.to_string(),
        uid: uid.to_string(),
        ..Default::default()
    }
}

/// The FileChange object of a queued record: its deterministic name, every label, and the
/// owner reference to its workspace (deleting the workspace deletes its history).
pub fn file_change(record: &OutboxRecord) -> FileChange {
    let spec = &record.spec;
    let mut change = FileChange::new(&record.name, spec.clone());
    change.metadata.namespace = Some(record.namespace.clone());
    change.metadata.labels = Some(BTreeMap::from([
        (keys::LABEL_WORKSPACE.to_string(), spec.workspace.clone()),
        (keys::LABEL_NODE.to_string(), spec.node_name.clone()),
        (keys::LABEL_ENTITY.to_string(), spec.entity.clone()),
        (keys::LABEL_TYPE.to_string(), format!("{:?}", spec.change_type)),
        (keys::LABEL_CATEGORY.to_string(), format!("{:?}", spec.category)),
    ]));
    if !record.workspace_uid.is_empty() {
        change.metadata.owner_references = Some(vec![owner(&spec.workspace, &record.workspace_uid)]);
    }
    change
}

/// Spaces API writes out to a steady rate.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: tokio::time::Instant,
}

impl RateLimiter {
    pub fn per_second(rate: f64) -> Self {
        let interval = if rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next: tokio::time::Instant::now(),
        }
    }

    pub async fn acquire(&mut self) {
        let now = tokio::time::Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next = self.next.max(now) + self.interval;
    }
}

/// Exponential backoff with jitter, from 1 s up to 60 s.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = Duration::from_secs(1u64 << self.failures.min(6)).min(Duration::from_secs(60));
        let jitter = std::collections::hash_map::RandomState::new().hash_one(self.failures)
            % (base.as_millis() as u64 / 2 + 1);
        base / 2 + Duration::from_millis(jitter)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Why a report did not go through; the record stays queued.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the API server refused or failed the request")]
    Api(#[source] kube::Error),
    #[error("the API server did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] Error),
}

/// Creates queued FileChanges oldest first, each acknowledged (removed from the outbox) once
/// created or found already there. Stops at the first failure so the next attempt retries the
/// same record under the same name. Returns how many were acknowledged.
pub async fn report_pending(
    client: &Client,
    store: &BaselineStore,
    limiter: &mut RateLimiter,
    metrics: &Metrics,
    batch: usize,
    timeout: Duration,
) -> Result<usize, ReportError> {
    let outbox = ChangeOutbox { store };
    let mut acknowledged = 0;
    for (seq, record) in outbox.pending(batch)? {
        limiter.acquire().await;
        let api: Api<FileChange> = Api::namespaced(client.clone(), &record.namespace);
        let params = PostParams {
            field_manager: Some(keys::AGENT_MANAGER.into()),
            ..Default::default()
        };
        let result = tokio::time::timeout(timeout, api.create(&params, &file_change(&record))).await;
        let outcome = match result {
            Ok(Ok(_)) => "created",
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => "already_exists",
            Ok(Err(e)) => {
                metrics.reports_total.with_label_values(&["failed"]).inc();
                return Err(ReportError::Api(e));
            }
            Err(_) => {
                metrics.reports_total.with_label_values(&["timeout"]).inc();
                return Err(ReportError::Timeout(timeout));
            }
        };
        metrics.reports_total.with_label_values(&[outcome]).inc();
        outbox.ack(seq)?;
        acknowledged += 1;
    }
    metrics
        .outbox_depth
        .set(i64::try_from(outbox.depth()?).unwrap_or(i64::MAX));
    Ok(acknowledged)
}

/// The status of one workspace on this node after a scan.
pub fn node_status(
    done: &ScanDone,
    counts: Vec<DailyChangeCount>,
    now: jiff::Timestamp,
) -> FimNodeStatusStatus {
    let report = &done.report;
    FimNodeStatusStatus {
        agent_version: VERSION.to_string(),
        config_revision: done.config_revision.clone(),
        baseline_revision: done.workspace.baseline_revision.clone(),
        last_heartbeat_time: Some(Time(now)),
        last_scan: Some(ScanSummary {
            started_at: Time(report.started_at),
            duration_seconds: report.duration.as_secs_f64(),
            files_scanned: report.files_scanned,
            bytes_hashed: report.bytes_hashed,
            changes: report.changes,
            errors: report.errors(),
        }),
        files_monitored: report.entities.iter().map(|e| e.files).sum(),
        realtime: done.realtime.clone(),
        entities: report
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

/// Publishes one Warning Event per new per-node entity error, on the MonitoredEntity (or, for a
/// recommended item, on its workspace); the same error is not published twice.
pub async fn publish_entity_errors(
    recorder: &Recorder,
    node: &str,
    done: &ScanDone,
    published: &mut BTreeSet<(String, String, String)>,
) {
    for entity in done
        .report
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

/// The file in the state directory that keeps the last configuration applied, so an agent that
/// starts while the API server is unreachable monitors what it monitored before.
pub const LAST_CONFIG_FILE: &str = "agent-config.yaml";

/// The last configuration this node applied, if any (and if it is this node's).
pub fn load_last_config(state_dir: &std::path::Path, node: &str) -> Option<AgentConfig> {
    let text = std::fs::read_to_string(state_dir.join(LAST_CONFIG_FILE)).ok()?;
    AgentConfig::from_yaml(&text).ok().filter(|c| c.node == node)
}

/// Keeps `config` as the last applied one (written to a temporary file, then renamed).
pub fn save_last_config(state_dir: &std::path::Path, config: &AgentConfig) -> Result<()> {
    let yaml = config.to_yaml().map_err(|e| Error::Config {
        path: state_dir.join(LAST_CONFIG_FILE),
        message: e.to_string(),
    })?;
    let temporary = state_dir.join(format!("{LAST_CONFIG_FILE}.tmp"));
    std::fs::write(&temporary, yaml)
        .and_then(|()| std::fs::rename(&temporary, state_dir.join(LAST_CONFIG_FILE)))
        .map_err(|source| Error::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })
}

/// Follows this node's ConfigMap and publishes each configuration it holds. A ConfigMap that
/// disappears means no workspace; one that cannot be parsed is logged and the current
/// configuration kept.
pub async fn watch_config(
    client: Client,
    namespace: String,
    node: String,
    configs: watch::Sender<AgentConfig>,
) {
    let name = keys::node_config_map_name(&node);
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).boxed();
    while let Some(event) = events.next().await {
        let cm = match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => cm,
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!(configmap = %name, "configuration removed: monitoring nothing until the operator writes it again");
                let _ = configs.send(AgentConfig::new(node.clone(), Vec::new()));
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(configmap = %name, error = %e, "watching the configuration failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let yaml = cm
            .data
            .as_ref()
            .and_then(|d| d.get(keys::CONFIG_KEY))
            .cloned()
            .unwrap_or_default();
        match AgentConfig::from_yaml(&yaml) {
            Ok(config) if config.node == node => {
                if configs.borrow().revision != config.revision {
                    let _ = configs.send(config);
                }
            }
            Ok(config) => {
                tracing::error!(configmap = %name, for_node = %config.node, "configuration is for another node; ignored")
            }
            Err(e) => {
                tracing::error!(configmap = %name, error = %kubefim_telemetry::error_chain(&e), "configuration cannot be parsed; keeping the current one")
            }
        }
    }
}

/// Runs the in-cluster agent until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let client = Client::try_default().await.map_err(Error::Kube)?;
    let (store, opened) = BaselineStore::open(&options.state_dir)?;
    let mut agent = Agent::new(&options.node, HostRoot::open(&options.host_root)?, store);
    agent.outbox = Some(OutboxPolicy {
        node: options.node.clone(),
        bound: options.outbox_bound,
    });
    let agent = Arc::new(agent);
    tracing::info!(node = %options.node, namespace = %options.namespace, store = %agent.store.path().display(), ?opened, "kubefim agent started");
    let server = standalone::serve_metrics(&agent, options.metrics_addr.as_deref()).await?;
    // Start from the last configuration applied, so an API outage at start-up changes nothing;
    // with none (first start) wait for the operator's. Never act on a placeholder: an empty
    // configuration would drop every baseline.
    let last = load_last_config(&options.state_dir, &options.node);
    let started_from_last = last.is_some();
    let (config_sender, mut configs) =
        watch::channel(last.unwrap_or_else(|| AgentConfig::new(options.node.clone(), Vec::new())));
    let config_task = tokio::spawn(watch_config(
        client.clone(),
        options.namespace.clone(),
        options.node.clone(),
        config_sender,
    ));
    tokio::pin!(shutdown);
    if started_from_last {
        tracing::info!(revision = %configs.borrow().revision, "monitoring with the last applied configuration until the API server answers");
    } else {
        tracing::info!("waiting for this node's configuration from the operator");
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            changed = configs.changed() => if changed.is_err() { return Ok(()) },
        }
    }
    // Persist every configuration the loop is about to apply.
    let persisted = {
        let (mut configs, state_dir) = (configs.clone(), options.state_dir.clone());
        tokio::spawn(async move {
            loop {
                let config = configs.borrow_and_update().clone();
                if let Err(e) = save_last_config(&state_dir, &config) {
                    tracing::warn!(error = %kubefim_telemetry::error_chain(&e), "cannot keep the configuration in the state directory");
                }
                if configs.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let (stop_sender, stop) = watch::channel(false);

    // Reporter: drains the outbox; between records it checks for shutdown, so a create in
    // flight always completes (or times out) before the agent stops.
    let reporter = {
        let (client, agent, options, mut stop) =
            (client.clone(), agent.clone(), options.clone(), stop.clone());
        tokio::spawn(async move {
            let mut limiter = RateLimiter::per_second(options.reports_per_second);
            let mut backoff = Backoff::default();
            while !*stop.borrow() {
                let pass = report_pending(
                    &client,
                    &agent.store,
                    &mut limiter,
                    &agent.metrics,
                    100,
                    options.request_timeout,
                )
                .await;
                let pause = match pass {
                    Ok(0) => Duration::from_secs(1),
                    Ok(_) => {
                        backoff.reset();
                        Duration::ZERO
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %kubefim_telemetry::error_chain(&e), retry_in = ?delay, "reporting changes failed; they stay queued");
                        delay
                    }
                };
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        })
    };

    // Node status: after every scan, and as a heartbeat in between.
    let (done_sender, mut done) = tokio::sync::mpsc::unbounded_channel::<ScanDone>();
    let status_task = {
        let (client, agent, options, mut stop) =
            (client.clone(), agent.clone(), options.clone(), stop.clone());
        tokio::spawn(async move {
            let recorder = Recorder::new(
                client.clone(),
                Reporter {
                    controller: "kubefim-agent".into(),
                    instance: Some(options.node.clone()),
                },
            );
            let mut last: BTreeMap<String, (WorkspaceConfig, FimNodeStatusStatus)> = BTreeMap::new();
            let mut created = BTreeSet::new();
            let mut published = BTreeSet::new();
            let mut heartbeat = tokio::time::interval(options.heartbeat);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    Some(scan) = done.recv() => {
                        let counts = ChangeOutbox { store: &agent.store }
                            .daily_counts(&scan.workspace.name, jiff::Timestamp::now())
                            .unwrap_or_default();
                        let status = node_status(&scan, counts, jiff::Timestamp::now());
                        publish_entity_errors(&recorder, &options.node, &scan, &mut published).await;
                        if let Err(e) = publish_node_status(&client, &scan.workspace, &options.node, &status, &mut created).await {
                            tracing::warn!(workspace = %scan.workspace.name, error = %e, "cannot update FimNodeStatus; next heartbeat retries");
                        }
                        last.insert(scan.workspace.name.clone(), (scan.workspace, status));
                    }
                    _ = heartbeat.tick() => {
                        for (workspace, status) in last.values_mut() {
                            status.last_heartbeat_time = Some(Time(jiff::Timestamp::now()));
                            if let Err(e) = publish_node_status(&client, workspace, &options.node, status, &mut created).await {
                                tracing::warn!(workspace = %workspace.name, error = %e, "heartbeat failed");
                            }
                        }
                    }
                }
            }
        })
    };

    let result = standalone::run_loop(
        agent.clone(),
        configs,
        options.max_watches,
        false,
        Some(done_sender),
        shutdown,
    )
    .await;
    let _ = stop_sender.send(true);
    let _ = reporter.await;
    let _ = status_task.await;
    config_task.abort();
    persisted.abort();
    if let Some(server) = server {
        server.abort();
    }
    tracing::info!(
        queued = ChangeOutbox { store: &agent.store }.depth().unwrap_or(0),
        "kubefim agent stopped"
    );
    result
}
