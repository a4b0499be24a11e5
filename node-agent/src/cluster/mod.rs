//! In-cluster mode (`kubefim-agent run`): the configuration comes from the node's ConfigMap
//! (`config_source`), changes go from the durable outbox to FileChange objects (`reporter`),
//! each workspace's state goes to its FimNodeStatus (`node_status`, published by `heartbeat`),
//! a lost store is found before new baselines are built (`baseline_reset`), and problems
//! become Events (`events`). This module wires those tasks around the shared scan loop. Nothing is
//! lost to an API outage: a change leaves the outbox only once the API server acknowledged it,
//! and the outbox lives in the node's state directory across restarts.

mod baseline_reset;
mod config_source;
mod events;
mod heartbeat;
mod node_status;
mod pods;
mod reporter;
mod store_access;

use std::{path::PathBuf, sync::Arc, time::Duration};

pub use baseline_reset::{CheckError, check as check_baseline_reset};
pub use config_source::{
    LAST_CONFIG_FILE, load_last_config, revision_mismatch, save_last_config, watch_config,
};
pub use events::{publish_entity_errors, publish_rejections};
pub use heartbeat::Heartbeat;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{
    Client,
    runtime::events::{Recorder, Reporter as EventReporter},
};
use kubefim_crds::AgentConfig;
use kubefim_telemetry::error_chain;
pub use node_status::{NodeFacts, node_status, publish_node_status, scan_is_fresh};
pub use reporter::{Answer, Backoff, Pass, RateLimiter, Rejection, Reporter, classify, file_change};
pub use store_access::StoreAccess;
use tokio::sync::watch;

use crate::{
    Error, Result,
    agent::Agent,
    hostfs::HostRoot,
    metrics,
    outbox::OutboxPolicy,
    schedule::{self, LoopOptions, ScanDone},
    store::{BaselineStore, OpenOutcome},
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

/// How long start-up waits for the API server to compare a new store's generation before
/// scanning anyway (the comparison then goes on in the background).
const GENERATION_CHECK_WAIT: Duration = Duration::from_secs(30);

/// Records FileChange creates per lane before the next workspace's turn.
const PER_LANE: usize = 20;

fn recorder(client: &Client, node: &str) -> Recorder {
    Recorder::new(
        client.clone(),
        EventReporter {
            controller: "kubefim-agent".into(),
            instance: Some(node.to_string()),
        },
    )
}

/// Sends the outbox until `stop` is set: a pass over every lane, Warning Events for what was
/// refused, then a pause (none while there is work, until new changes are queued or a second
/// passes when idle, backoff while the API is unreachable).
async fn report(
    agent: Arc<Agent>,
    access: StoreAccess,
    mut reporter: Reporter,
    recorder: Recorder,
    mut stop: watch::Receiver<bool>,
) {
    let mut unreachable = Backoff::default();
    while !*stop.borrow() {
        let pause = match reporter.pass(&access, &agent.metrics).await {
            Ok(pass) => {
                publish_rejections(&recorder, &agent.node, &pass.rejected).await;
                if let Some(reason) = pass.unreachable {
                    let delay = unreachable.next_delay();
                    tracing::warn!(%reason, retry_in = ?delay, "the API server cannot be reached; changes stay queued");
                    delay
                } else {
                    unreachable.reset();
                    if pass.acknowledged + pass.rejected.len() > 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(1)
                    }
                }
            }
            Err(e) => {
                let delay = unreachable.next_delay();
                tracing::error!(error = %error_chain(&e), retry_in = ?delay, "cannot read the outbox");
                delay
            }
        };
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(pause) => {}
            // New changes end an idle pause (not a backoff: the API is still unreachable).
            () = agent.outbox_filled.notified(), if unreachable.is_reset() => {}
        }
    }
}

/// Runs the in-cluster agent until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let client = Client::try_default().await.map_err(Error::Kube)?;
    let (store, opened) = BaselineStore::open(&options.state_dir)?;
    let new_store = !matches!(opened, OpenOutcome::Opened);
    let mut agent = Agent::new(&options.node, HostRoot::open(&options.host_root)?, store);
    agent.outbox = Some(OutboxPolicy {
        node: options.node.clone(),
        bound: options.outbox_bound,
    });
    agent.pod_names = Some(Arc::new(pods::NodePods::new(
        client.clone(),
        &options.node,
        tokio::runtime::Handle::current(),
    )));
    let agent = Arc::new(agent);
    let access = StoreAccess::start(agent.store.clone())?;
    tracing::info!(node = %options.node, namespace = %options.namespace, store = %agent.store.path().display(),
        generation = %agent.store.generation(), ?opened, "kubefim agent started");
    let server = metrics::serve(&agent.metrics, options.metrics_addr.as_deref()).await?;
    // Start from the last configuration applied, so an API outage at start-up changes nothing;
    // with none (first start) wait for the operator's. Never act on a placeholder: an empty
    // configuration would drop every baseline.
    let last = {
        let (state_dir, node) = (options.state_dir.clone(), options.node.clone());
        tokio::task::spawn_blocking(move || load_last_config(&state_dir, &node))
            .await
            .map_err(|_| Error::Internal("reading the last configuration panicked"))?
    };
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
    let recorder = recorder(&client, &options.node);
    let mut heartbeat = Heartbeat::new(
        client.clone(),
        access.clone(),
        agent.metrics.clone(),
        agent.changes_seen.clone(),
        recorder.clone(),
        &options.node,
        options.outbox_bound,
    );
    // A new store is compared with what the cluster knows before any baseline is built.
    let workspaces = configs.borrow().workspaces.clone();
    let deadline = tokio::time::Instant::now() + GENERATION_CHECK_WAIT;
    loop {
        match check_baseline_reset(
            &client,
            &access,
            &agent.metrics,
            &recorder,
            &options.node,
            &workspaces,
        )
        .await
        {
            Ok(()) => {
                heartbeat
                    .generation_checked
                    .extend(workspaces.iter().map(crate::config::WorkspaceKey::of));
                break;
            }
            Err(e) if new_store && tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %error_chain(&e), "a new store must be compared with the cluster's record first; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot compare the store generation yet; it is compared after each workspace's next scan");
                break;
            }
        }
    }
    // Persist every configuration the loop is about to apply.
    let persisted = {
        let (mut configs, state_dir) = (configs.clone(), options.state_dir.clone());
        tokio::spawn(async move {
            loop {
                let config = configs.borrow_and_update().clone();
                let state_dir = state_dir.clone();
                let saved = tokio::task::spawn_blocking(move || save_last_config(&state_dir, &config)).await;
                if let Ok(Err(e)) = saved {
                    tracing::warn!(error = %error_chain(&e), "cannot keep the configuration in the state directory");
                }
                if configs.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let (stop_sender, stop) = watch::channel(false);
    // Between records the reporter checks for shutdown, so a create in flight always
    // completes (or times out) before the agent stops.
    let reporter = tokio::spawn(report(
        agent.clone(),
        access.clone(),
        Reporter::new(
            client.clone(),
            RateLimiter::per_second(options.reports_per_second),
            PER_LANE,
            options.request_timeout,
        ),
        recorder.clone(),
        stop.clone(),
    ));
    let (done_sender, done) = tokio::sync::mpsc::unbounded_channel::<ScanDone>();
    let status_task = tokio::spawn(heartbeat::run(
        heartbeat,
        done,
        configs.clone(),
        options.heartbeat,
        stop.clone(),
    ));
    let loop_options = LoopOptions {
        max_watches: options.max_watches,
        once: false,
        start_jitter: true,
    };
    let result = schedule::run_loop(agent.clone(), configs, loop_options, Some(done_sender), shutdown).await;
    let _ = stop_sender.send(true);
    let _ = reporter.await;
    let _ = status_task.await;
    config_task.abort();
    persisted.abort();
    if let Some(server) = server {
        server.abort();
    }
    // What the reporter settled is written before the agent stops (the scan loop is over, so
    // the writer is free).
    access.flush().await;
    let queued = access.depth(None).await.unwrap_or(0);
    let _ = tokio::task::spawn_blocking(move || access.close()).await;
    tracing::info!(queued, "kubefim agent stopped");
    result
}
