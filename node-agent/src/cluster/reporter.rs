//! The reporter: queued changes from the durable outbox to FileChange objects, at a steady rate,
//! each workspace's lane in turn (oldest first within a lane). Every answer is classed:
//! - success (201, 409 AlreadyExists under the deterministic name): the record leaves the queue;
//! - transient (5xx, 429, 401, 408): the record stays, its lane backs off, other lanes go on;
//! - unreachable (no connection, a timeout): the pass stops and the reporter backs off;
//! - permanent (400, 403, 404, 413, 422 and any other 4xx): the record moves to the bounded
//!   dead letters, is counted, and the pass goes on; the caller publishes a Warning Event.
//!
//! No record holds up another, and no workspace's backlog starves another's. It never decides
//! what changed and never writes the baseline.

use std::{collections::BTreeMap, time::Duration};

use kube::{Api, Client, api::PostParams};
use kubefim_crds::{FileChange, keys};

use super::{owner, store_access::StoreAccess};
use crate::{
    Result,
    config::WorkspaceKey,
    metrics::Metrics,
    records::{DeadLetter, OutboxRecord},
    schedule,
};

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
        base / 2 + schedule::jitter(base / 2)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// No failure since the last success.
    pub fn is_reset(&self) -> bool {
        self.failures == 0
    }
}

/// How the API server answered one create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Created,
    Exists,
    /// Worth retrying later: the record stays, its lane backs off.
    Transient(String),
    /// Refused for good: the record goes to the dead letters.
    Rejected {
        code: u16,
        reason: String,
    },
    /// The API server could not be reached (or did not answer in time): the pass stops.
    Unreachable(String),
}

/// Classes the outcome of one create.
pub fn classify(
    result: std::result::Result<std::result::Result<FileChange, kube::Error>, Duration>,
) -> Answer {
    match result {
        Ok(Ok(_)) => Answer::Created,
        Ok(Err(kube::Error::Api(status))) => match status.code {
            409 => Answer::Exists,
            401 | 408 | 429 => Answer::Transient(format!("{} {}", status.code, status.message)),
            code @ 400..=499 => Answer::Rejected {
                code,
                reason: format!("{} {}: {}", code, status.reason, status.message),
            },
            code => Answer::Transient(format!("{code} {}", status.message)),
        },
        Ok(Err(other)) => Answer::Unreachable(kubefim_telemetry::error_chain(&other)),
        Err(timeout) => Answer::Unreachable(format!("no answer within {timeout:?}")),
    }
}

/// A record the API server refused, for the Warning Event that announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub workspace: WorkspaceKey,
    pub workspace_uid: String,
    pub path: String,
    pub code: u16,
    pub reason: String,
}

/// What one pass over the queue did.
#[derive(Debug, Default)]
pub struct Pass {
    pub acknowledged: usize,
    pub rejected: Vec<Rejection>,
    /// Lanes skipped (backing off) or stopped by a transient answer.
    pub deferred: usize,
    /// Set when the API server could not be reached; the pass stopped there.
    pub unreachable: Option<String>,
}

/// A lane's backoff after a transient answer.
#[derive(Debug, Default)]
struct LaneBackoff {
    backoff: Backoff,
    until: Option<tokio::time::Instant>,
}

/// Sends queued records, lane by lane.
pub struct Reporter {
    client: Client,
    limiter: RateLimiter,
    /// Records sent from one lane per pass before the next lane's turn.
    per_lane: usize,
    timeout: Duration,
    lanes: BTreeMap<WorkspaceKey, LaneBackoff>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("per_lane", &self.per_lane)
            .field("lanes", &self.lanes)
            .finish()
    }
}

impl Reporter {
    pub fn new(client: Client, limiter: RateLimiter, per_lane: usize, timeout: Duration) -> Self {
        Self {
            client,
            limiter,
            per_lane: per_lane.max(1),
            timeout,
            lanes: BTreeMap::new(),
        }
    }

    /// One turn of every lane that is not backing off. `kubefim_outbox_depth` is set at the
    /// end whatever happened. Settlements go to the store's writer and do not wait for a scan
    /// (see `store_access`).
    pub async fn pass(&mut self, access: &StoreAccess, metrics: &Metrics) -> Result<Pass> {
        let mut pass = Pass::default();
        let result = self.serve_lanes(access, metrics, &mut pass).await;
        metrics
            .outbox_depth
            .set(i64::try_from(access.depth(None).await?).unwrap_or(i64::MAX));
        result.map(|()| pass)
    }

    async fn serve_lanes(&mut self, access: &StoreAccess, metrics: &Metrics, pass: &mut Pass) -> Result<()> {
        let now = tokio::time::Instant::now();
        let lanes = access.lanes().await?;
        self.lanes.retain(|lane, _| lanes.contains(lane));
        for lane in lanes {
            let state = self.lanes.entry(lane.clone()).or_default();
            if state.until.is_some_and(|until| until > now) {
                pass.deferred += 1;
                continue;
            }
            for (seq, record) in access.pending(&lane, self.per_lane).await? {
                let record = match record {
                    Ok(record) => record,
                    Err(reason) => {
                        // A record that cannot be read back would block its lane for good.
                        tracing::error!(lane = %lane, seq, %reason, "unreadable queued record moved to the dead letters");
                        let letter = DeadLetter {
                            record: None,
                            code: 0,
                            reason,
                            at: jiff::Timestamp::now(),
                        };
                        access.refuse(&lane, seq, letter).await;
                        continue;
                    }
                };
                self.limiter.acquire().await;
                let api: Api<FileChange> = Api::namespaced(self.client.clone(), &record.namespace);
                let params = PostParams {
                    field_manager: Some(keys::AGENT_MANAGER.into()),
                    ..Default::default()
                };
                let sent =
                    tokio::time::timeout(self.timeout, api.create(&params, &file_change(&record))).await;
                let state = self.lanes.entry(lane.clone()).or_default();
                match classify(sent.map_err(|_| self.timeout)) {
                    answer @ (Answer::Created | Answer::Exists) => {
                        let result = if answer == Answer::Created {
                            "created"
                        } else {
                            "exists"
                        };
                        metrics.reports_total.with_label_values(&[result]).inc();
                        access.acknowledge(&lane, seq).await;
                        *state = LaneBackoff::default();
                        pass.acknowledged += 1;
                    }
                    Answer::Rejected { code, reason } => {
                        metrics.reports_total.with_label_values(&["rejected"]).inc();
                        tracing::error!(workspace = %lane, path = %record.spec.path, code, %reason,
                            "the API server refused a change for good; it moves to the dead letters and the queue goes on");
                        let rejection = Rejection {
                            workspace: lane.clone(),
                            workspace_uid: record.workspace_uid.clone(),
                            path: record.spec.path.clone(),
                            code,
                            reason: reason.clone(),
                        };
                        let letter = DeadLetter {
                            record: Some(record),
                            code,
                            reason,
                            at: jiff::Timestamp::now(),
                        };
                        access.refuse(&lane, seq, letter).await;
                        pass.rejected.push(rejection);
                    }
                    Answer::Transient(reason) => {
                        metrics.reports_total.with_label_values(&["failed"]).inc();
                        let delay = state.backoff.next_delay();
                        state.until = Some(tokio::time::Instant::now() + delay);
                        tracing::warn!(workspace = %lane, %reason, retry_in = ?delay,
                            "reporting a change failed; it stays queued, other workspaces go on");
                        pass.deferred += 1;
                        break;
                    }
                    Answer::Unreachable(reason) => {
                        metrics.reports_total.with_label_values(&["failed"]).inc();
                        pass.unreachable = Some(reason);
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}
