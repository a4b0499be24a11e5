//! The publisher of this node's FimNodeStatus objects: after every full scan, at every
//! heartbeat, and soon after a realtime rescan found changes (so counts never lag a scan
//! interval). Each publish gathers what the store knows now, through `StoreAccess`, so a long
//! scan never delays it; a workspace that left the configuration is no longer published (its
//! status then ages out as not reporting).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Client, runtime::events::Recorder};
use kubefim_crds::AgentConfig;
use kubefim_telemetry::error_chain;
use tokio::sync::watch;

use super::{
    baseline_reset,
    events::{publish_accepted, publish_entity_errors},
    node_status::{NodeFacts, node_status, publish_node_status, scan_is_fresh},
    store_access::StoreAccess,
};
use crate::{config::WorkspaceKey, metrics::Metrics, schedule::ScanDone};

/// How long after a realtime change the counts are published (changes come in bursts).
pub const AFTER_CHANGES: Duration = Duration::from_secs(1);

/// What was last published for one workspace.
#[derive(Debug)]
struct Published {
    done: ScanDone,
    heartbeat: Option<jiff::Timestamp>,
    conditions: Vec<Condition>,
}

/// Publishes FimNodeStatus objects for the workspaces this node scanned.
pub struct Heartbeat {
    pub client: Client,
    pub access: StoreAccess,
    pub metrics: Metrics,
    /// Notified when a realtime rescan found changes.
    pub changes_seen: Arc<tokio::sync::Notify>,
    pub recorder: Recorder,
    pub node: String,
    pub outbox_bound: u64,
    published: BTreeMap<WorkspaceKey, Published>,
    created: BTreeSet<(String, String)>,
    errors_announced: BTreeSet<(WorkspaceKey, String, String)>,
    /// Workspaces whose store generation was compared with their FimNodeStatus.
    pub generation_checked: BTreeSet<WorkspaceKey>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("node", &self.node)
            .field("workspaces", &self.published.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Heartbeat {
    pub fn new(
        client: Client,
        access: StoreAccess,
        metrics: Metrics,
        changes_seen: Arc<tokio::sync::Notify>,
        recorder: Recorder,
        node: &str,
        outbox_bound: u64,
    ) -> Self {
        Self {
            client,
            access,
            metrics,
            changes_seen,
            recorder,
            node: node.to_string(),
            outbox_bound,
            published: BTreeMap::new(),
            created: BTreeSet::new(),
            errors_announced: BTreeSet::new(),
            generation_checked: BTreeSet::new(),
        }
    }

    /// A full scan finished: announce new entity errors and publish its workspace at once.
    pub async fn scanned(&mut self, done: ScanDone) {
        let key = WorkspaceKey::of(&done.workspace);
        if !self.generation_checked.contains(&key) {
            // A workspace that appeared after start-up: its first baseline is already built,
            // but a lost store is still reported.
            let checked = baseline_reset::check(
                &self.client,
                &self.access,
                &self.metrics,
                &self.recorder,
                &self.node,
                std::slice::from_ref(&done.workspace),
            )
            .await;
            match checked {
                Ok(()) => {
                    self.generation_checked.insert(key.clone());
                }
                Err(e) => {
                    tracing::warn!(workspace = %key, error = %error_chain(&e), "cannot compare the store generation yet; retrying after the next scan")
                }
            }
        }
        publish_entity_errors(&self.recorder, &self.node, &done, &mut self.errors_announced).await;
        publish_accepted(&self.recorder, &self.node, &done).await;
        let previous = self.published.remove(&key);
        self.published.insert(
            key.clone(),
            Published {
                done,
                heartbeat: previous.as_ref().and_then(|p| p.heartbeat),
                conditions: previous.map(|p| p.conditions).unwrap_or_default(),
            },
        );
        self.publish(&key).await;
    }

    /// Publishes every workspace still configured, and forgets the others.
    pub async fn beat(&mut self, config: &AgentConfig) {
        let configured: BTreeSet<WorkspaceKey> = config.workspaces.iter().map(WorkspaceKey::of).collect();
        self.published.retain(|key, _| configured.contains(key));
        let keys: Vec<WorkspaceKey> = self.published.keys().cloned().collect();
        for key in keys {
            self.publish(&key).await;
        }
    }

    async fn publish(&mut self, key: &WorkspaceKey) {
        let now = jiff::Timestamp::now();
        let Some(entry) = self.published.get(key) else {
            return;
        };
        let revision = entry.done.workspace.baseline_revision.clone();
        let mut facts = match NodeFacts::gather(&self.access, key, self.outbox_bound, now).await {
            Ok(facts) => facts,
            Err(e) => {
                tracing::error!(workspace = %key, error = %error_chain(&e), "cannot read the node's state for FimNodeStatus");
                return;
            }
        };
        // An accepted baseline (a new baseline.revision) settles a reset; the write may wait
        // for a scan, the status need not.
        if facts
            .reset
            .as_ref()
            .is_some_and(|reset| reset.baseline_revision != revision)
        {
            self.access.clear_reset_later(key);
            facts.reset = None;
        }
        let Some(entry) = self.published.get_mut(key) else {
            return;
        };
        let interval = crate::config::Settings::from_config(&entry.done.workspace)
            .map(|s| s.interval)
            .unwrap_or(Duration::from_secs(900));
        let fresh = scan_is_fresh(&entry.done, interval, now);
        if fresh {
            entry.heartbeat = Some(now);
        }
        let status = node_status(
            &entry.done,
            &facts,
            entry.heartbeat,
            fresh,
            &entry.conditions,
            now,
        );
        entry.conditions = status.conditions.clone();
        let workspace = entry.done.workspace.clone();
        if let Err(e) =
            publish_node_status(&self.client, &workspace, &self.node, &status, &mut self.created).await
        {
            tracing::warn!(workspace = %key, error = %e, "cannot update FimNodeStatus; the next heartbeat retries");
        }
    }
}

/// Runs the publisher until `stop` is set.
pub async fn run(
    mut heartbeat: Heartbeat,
    mut done: tokio::sync::mpsc::UnboundedReceiver<ScanDone>,
    configs: watch::Receiver<AgentConfig>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    let changes = heartbeat.changes_seen.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            Some(scan) = done.recv() => heartbeat.scanned(scan).await,
            _ = ticks.tick() => {
                let config = configs.borrow().clone();
                heartbeat.beat(&config).await;
            }
            () = changes.notified() => {
                tokio::time::sleep(AFTER_CHANGES).await;
                let config = configs.borrow().clone();
                heartbeat.beat(&config).await;
            }
        }
    }
}
