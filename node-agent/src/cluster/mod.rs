//! In-cluster mode (`kubefim-agent run`): the configuration comes from the node's ConfigMap
//! (`config_source`), changes go from the durable outbox to FileChange objects (`reporter`),
//! each workspace's state goes to its FimNodeStatus (`node_status`) and entity errors become
//! Events (`events`). This module wires those tasks around the shared scan loop. Nothing is
//! lost to an API outage: a change leaves the outbox only once the API server acknowledged it,
//! and the outbox lives in the node's state directory across restarts.

mod config_source;
mod events;
mod node_status;
mod reporter;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

pub use config_source::{LAST_CONFIG_FILE, load_last_config, save_last_config, watch_config};
pub use events::publish_entity_errors;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};
use kubefim_crds::{AgentConfig, WorkspaceConfig, nodestatus::FimNodeStatusStatus};
use kubefim_telemetry::error_chain;
pub use node_status::{node_status, publish_node_status};
pub use reporter::{Backoff, RateLimiter, ReportError, file_change, report_pending};
use tokio::sync::watch;

use crate::{
    Error, Result,
    agent::Agent,
    hostfs::HostRoot,
    metrics,
    outbox::{ChangeOutbox, OutboxPolicy},
    schedule::{self, ScanDone},
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

pub(crate) fn owner(workspace: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", kubefim_crds::GROUP, kubefim_crds::VERSION),
        kind: "FimWorkspace".into(),
        name: workspace.to_string(),
        uid: uid.to_string(),
        ..Default::default()
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
    let server = metrics::serve(&agent.metrics, options.metrics_addr.as_deref()).await?;
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
                    tracing::warn!(error = %error_chain(&e), "cannot keep the configuration in the state directory");
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
                        tracing::warn!(error = %error_chain(&e), retry_in = ?delay, "reporting changes failed; they stay queued");
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

    let result = schedule::run_loop(
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
