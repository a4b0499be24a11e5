//! The reporter: queued changes from the durable outbox to FileChange objects, oldest first, at
//! a steady rate, each acknowledged (removed from the outbox) only once the API server created
//! it or already had it under its deterministic name. It never decides what changed and never
//! writes the baseline.

use std::{collections::BTreeMap, time::Duration};

use kube::{Api, Client, api::PostParams};
use kubefim_crds::{FileChange, keys};

use super::owner;
use crate::{
    Error, Result,
    metrics::Metrics,
    outbox::{ChangeOutbox, OutboxRecord},
    schedule,
    store::BaselineStore,
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
