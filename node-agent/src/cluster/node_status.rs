//! This node's FimNodeStatus for each workspace: built (pure) from the last finished scan and
//! what the store knows now (counts, newest changes, the queue, refusals, a lost baseline),
//! created when it is not known to exist (again after a 404: a workspace deleted and
//! re-created), then its status applied with the agent's field manager.
//!
//! The heartbeat says the scan loop is alive only while it makes progress: once no scan of the
//! workspace has completed for two intervals, `lastHeartbeatTime` stops moving and Ready turns
//! False, so a wedged agent reads as not reporting rather than as healthy.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams, PostParams},
};
use kubefim_crds::{
    FimNodeStatus, FimNodeStatusSpec, WorkspaceConfig,
    conditions::condition,
    keys,
    nodestatus::{
        DailyChangeCount, EntityNodeState, EntityState, FimNodeStatusStatus, ReportingCounts, ScanSummary,
        reasons,
    },
};
use serde_json::json;

use super::{owner, store_access::StoreAccess};
use crate::{
    Result, VERSION,
    config::WorkspaceKey,
    records::{BaselineReset, Rejections},
    schedule::ScanDone,
};

/// How long a refused report keeps the workspace Degraded on this node.
pub const REJECTION_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What the store knows of one workspace on this node, beyond its last scan.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub counts: Vec<DailyChangeCount>,
    pub last_changes: BTreeMap<String, jiff::Timestamp>,
    pub queued: u64,
    pub rejections: Rejections,
    pub reset: Option<BaselineReset>,
    /// The node's queue is at its bound: further changes are folded.
    pub outbox_full: bool,
    pub store_generation: String,
}

impl NodeFacts {
    /// What the store knows of `workspace` now, read off the async runtime.
    pub async fn gather(
        access: &StoreAccess,
        workspace: &WorkspaceKey,
        bound: u64,
        now: jiff::Timestamp,
    ) -> Result<Self> {
        let queued = access.depth(Some(workspace)).await?;
        let outbox_full = access.depth(None).await? >= bound;
        let key = workspace.clone();
        access
            .read(move |store| {
                let queue = store.queue();
                Ok(Self {
                    counts: queue.daily_counts(&key, now)?,
                    last_changes: queue.last_changes(&key)?,
                    queued,
                    rejections: queue.rejections(&key)?,
                    reset: store.resets()?.remove(&key),
                    outbox_full,
                    store_generation: store.generation().to_string(),
                })
            })
            .await
    }
}

/// When a scan ended.
pub fn finished_at(done: &ScanDone) -> jiff::Timestamp {
    let duration =
        jiff::SignedDuration::try_from(done.outcome.duration).unwrap_or(jiff::SignedDuration::ZERO);
    done.outcome.started_at + duration
}

/// Whether the scan loop made progress for this workspace within two intervals.
pub fn scan_is_fresh(done: &ScanDone, interval: Duration, now: jiff::Timestamp) -> bool {
    kubefim_crds::nodestatus::heartbeat_is_fresh(Some(&Time(finished_at(done))), interval, now)
}

/// The Degraded reasons that hold, most serious first, each with its message.
fn degraded_reasons(done: &ScanDone, facts: &NodeFacts, now: jiff::Timestamp) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    if let Some(reset) = &facts.reset {
        found.push((
            reasons::BASELINE_RESET,
            format!(
                "the baseline store was lost or replaced (generation {} became {}, found {}); changes made before that are unknown: check the node, then accept a new baseline (kubectl fim baseline accept)",
                reset.previous_generation, facts.store_generation, reset.detected_at
            ),
        ));
    }
    let window = jiff::SignedDuration::try_from(REJECTION_WINDOW).unwrap_or(jiff::SignedDuration::MAX);
    if let Some(last) = facts.rejections.last_at
        && now.duration_since(last) <= window
    {
        found.push((
            reasons::REPORTS_REJECTED,
            format!(
                "the API server refused {} changes of this workspace for good (last at {last}); they are in the node's dead letters and the agent's log",
                facts.rejections.count
            ),
        ));
    }
    if facts.outbox_full {
        found.push((
            reasons::OUTBOX_FULL,
            "the node's queue of changes is full: further changes are folded into Aggregated ones until the API server catches up".into(),
        ));
    }
    let errors: Vec<&str> = done
        .outcome
        .entities
        .iter()
        .filter(|e| e.state == EntityState::Error)
        .map(|e| e.name.as_str())
        .collect();
    if !errors.is_empty() {
        found.push((
            reasons::ENTITY_ERRORS,
            format!("entities with errors on this node: {}", errors.join(", ")),
        ));
    }
    if let Some(reason) = &done.realtime.degraded_reason {
        found.push((reasons::REALTIME_DEGRADED, reason.clone()));
    }
    found
}

/// The status of one workspace on this node. `heartbeat` is the time to publish as the last
/// heartbeat: now while the scan loop makes progress, the previous one once it stalls.
pub fn node_status(
    done: &ScanDone,
    facts: &NodeFacts,
    heartbeat: Option<jiff::Timestamp>,
    fresh: bool,
    previous: &[Condition],
    now: jiff::Timestamp,
) -> FimNodeStatusStatus {
    let outcome = &done.outcome;
    let (ready, ready_reason, ready_message) = if fresh {
        (
            true,
            "Monitoring",
            format!("last scan finished at {}", finished_at(done)),
        )
    } else {
        (
            false,
            reasons::SCAN_STALLED,
            format!(
                "no scan of this workspace completed since {} (more than two scan intervals); the heartbeat stopped with it",
                finished_at(done)
            ),
        )
    };
    let degraded = degraded_reasons(done, facts, now);
    let degraded_condition = match degraded.first() {
        Some((reason, _)) => {
            let message = degraded
                .iter()
                .map(|(reason, message)| format!("{reason}: {message}"))
                .collect::<Vec<_>>()
                .join("; ");
            condition("Degraded", true, reason, message, previous, now)
        }
        None => condition(
            "Degraded",
            false,
            "AsExpected",
            "nothing to report".into(),
            previous,
            now,
        ),
    };
    FimNodeStatusStatus {
        agent_version: VERSION.to_string(),
        config_revision: done.config_revision.clone(),
        baseline_revision: done.workspace.baseline_revision.clone(),
        last_heartbeat_time: heartbeat.map(Time),
        last_scan: Some(ScanSummary {
            started_at: Time(outcome.started_at),
            duration_seconds: outcome.duration.as_secs_f64(),
            files_scanned: outcome.files_scanned,
            bytes_hashed: outcome.bytes_hashed,
            changes: outcome.changes,
            errors: outcome.errors(),
        }),
        files_monitored: outcome.entities.iter().map(|e| e.files).sum(),
        realtime: done.realtime.clone(),
        entities: outcome
            .entities
            .iter()
            .map(|e| EntityNodeState {
                name: e.name.clone(),
                entity_type: e.entity_type,
                files_monitored: e.files,
                state: e.state,
                message: e.message.clone(),
                last_change_time: facts.last_changes.get(&e.name).copied().map(Time),
            })
            .collect(),
        change_counts: facts.counts.clone(),
        store_generation: facts.store_generation.clone(),
        reporting: ReportingCounts {
            queued: facts.queued,
            rejected: facts.rejections.count,
        },
        conditions: vec![
            condition("Ready", ready, ready_reason, ready_message, previous, now),
            degraded_condition,
        ],
    }
}

async fn create(
    api: &Api<FimNodeStatus>,
    workspace: &WorkspaceConfig,
    node: &str,
) -> Result<(), kube::Error> {
    let name = keys::node_status_name(&workspace.name, node);
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
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates this node's FimNodeStatus for a workspace when it is not known to exist (`created`
/// holds the (namespace, name) of those that are), then applies its status. A 404 on the status
/// means the object is gone (its workspace was deleted and re-created): it is created again.
pub async fn publish_node_status(
    client: &Client,
    workspace: &WorkspaceConfig,
    node: &str,
    status: &FimNodeStatusStatus,
    created: &mut BTreeSet<(String, String)>,
) -> Result<(), kube::Error> {
    let name = keys::node_status_name(&workspace.name, node);
    let key = (workspace.namespace.clone(), name.clone());
    let api: Api<FimNodeStatus> = Api::namespaced(client.clone(), &workspace.namespace);
    let body = json!({
        "apiVersion": FimNodeStatus::api_version(&()),
        "kind": FimNodeStatus::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(keys::AGENT_MANAGER).force();
    for _attempt in 0..2 {
        if !created.contains(&key) {
            create(&api, workspace, node).await?;
            created.insert(key.clone());
        }
        match api.patch_status(&name, &params, &Patch::Apply(&body)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                tracing::info!(workspace = %WorkspaceKey::of(workspace), "FimNodeStatus is gone; creating it again");
                created.remove(&key);
            }
            Err(e) => return Err(e),
        }
    }
    Err(kube::Error::Api(Box::new(kube::core::Status::failure(
        &format!("FimNodeStatus {name} disappeared again right after it was created"),
        "NotFound",
    ))))
}
