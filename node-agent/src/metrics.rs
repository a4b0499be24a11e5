//! The agent's Prometheus metrics (docs/design.md, "Metrics"), served by kubefim-telemetry's endpoint. Every
//! series carries `node`; no label ever holds a file path (paths are unbounded and sensitive).

use kubefim_crds::{AttributionKind, ChangeCategory, PackageManager, nodestatus::EntityState};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::{Error, Result, diff::Change, scan::ScanOutcome};

/// Every metric the agent exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub changes_total: IntCounterVec,
    pub attributed_changes_total: IntCounterVec,
    pub files_monitored: IntGaugeVec,
    pub scan_duration_seconds: HistogramVec,
    pub scanned_files_total: IntCounter,
    pub hashed_bytes_total: IntCounter,
    pub last_scan_timestamp_seconds: GaugeVec,
    pub scan_errors_total: IntCounterVec,
    pub entity_error: IntGaugeVec,
    pub realtime_watches: IntGauge,
    pub realtime_degraded: IntGauge,
    pub outbox_depth: IntGauge,
    pub reports_total: IntCounterVec,
    pub baseline_resets_total: IntCounter,
}

// Registering freshly built collectors with distinct names in a new registry cannot fail; the
// names and label sets are constants checked by the tests below.
#[allow(clippy::expect_used)]
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique constants");
    collector
}

#[allow(clippy::expect_used)] // constant metric definitions; see register()
impl Metrics {
    pub fn new(node: &str) -> Self {
        let registry = Registry::new_custom(
            Some("kubefim".into()),
            Some([("node".to_string(), node.to_string())].into()),
        )
        .expect("constant prefix and label");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Self {
            changes_total: counter_vec(
                "changes_total",
                "Changes detected, by workspace, entity, type, category and what explains them (attribution: none, Package or BaselineAccepted).",
                &[
                    "namespace",
                    "workspace",
                    "entity",
                    "type",
                    "category",
                    "attribution",
                ],
            ),
            attributed_changes_total: counter_vec(
                "attributed_changes_total",
                "Changes a package operation explains (the package database vouches for them), by workspace and package manager.",
                &["namespace", "workspace", "manager"],
            ),
            files_monitored: gauge_vec(
                "files_monitored",
                "Files in the baseline, by workspace and entity.",
                &["namespace", "workspace", "entity"],
            ),
            scan_duration_seconds: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("scan_duration_seconds", "Duration of full scans, by workspace.")
                        .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
                    &["namespace", "workspace"],
                )
                .expect("valid metric"),
            ),
            scanned_files_total: register(
                &registry,
                IntCounter::new("scanned_files_total", "Filesystem objects examined by scans.")
                    .expect("valid metric"),
            ),
            hashed_bytes_total: register(
                &registry,
                IntCounter::new("hashed_bytes_total", "Bytes read to compute content hashes.")
                    .expect("valid metric"),
            ),
            last_scan_timestamp_seconds: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "last_scan_timestamp_seconds",
                        "Unix time the last full scan of a workspace finished.",
                    ),
                    &["namespace", "workspace"],
                )
                .expect("valid metric"),
            ),
            scan_errors_total: counter_vec(
                "scan_errors_total",
                "Objects a scan could not examine, by workspace, entity and reason.",
                &["namespace", "workspace", "entity", "reason"],
            ),
            entity_error: gauge_vec(
                "entity_error",
                "1 when an entity cannot be monitored on this node (see FimNodeStatus for why).",
                &["namespace", "workspace", "entity"],
            ),
            realtime_watches: register(
                &registry,
                IntGauge::new("realtime_watches", "inotify watches held for realtime detection.")
                    .expect("valid metric"),
            ),
            realtime_degraded: register(
                &registry,
                IntGauge::new(
                    "realtime_degraded",
                    "1 while realtime detection is degraded and scans cover the gap.",
                )
                .expect("valid metric"),
            ),
            outbox_depth: register(
                &registry,
                IntGauge::new(
                    "outbox_depth",
                    "Changes waiting in the durable outbox to be reported.",
                )
                .expect("valid metric"),
            ),
            reports_total: counter_vec(
                "reports_total",
                "FileChange reports sent, by result: created, exists, failed (retried), rejected (refused for good).",
                &["result"],
            ),
            baseline_resets_total: register(
                &registry,
                IntCounter::new(
                    "baseline_resets_total",
                    "Times this node's baseline store was found lost or replaced (BaselineReset).",
                )
                .expect("valid metric"),
            ),
            registry,
        }
    }

    /// Counts a change; a folded report counts every change it stands for, by its category.
    pub fn record_change(&self, change: &Change) {
        let attribution = change
            .attribution
            .as_ref()
            .map_or("none".to_string(), |a| format!("{:?}", a.kind));
        let counts = match &change.aggregated {
            Some(folded) => vec![
                (ChangeCategory::Added, folded.by_category.added),
                (ChangeCategory::Modified, folded.by_category.modified),
                (ChangeCategory::Removed, folded.by_category.removed),
            ],
            None => vec![(change.category, 1)],
        };
        for (category, n) in counts.into_iter().filter(|(_, n)| *n > 0) {
            self.changes_total
                .with_label_values(&[
                    change.namespace.as_str(),
                    change.workspace.as_str(),
                    change.entity.as_str(),
                    &format!("{:?}", change.change_type),
                    &format!("{category:?}"),
                    &attribution,
                ])
                .inc_by(n);
        }
        if let Some(attribution) = &change.attribution
            && attribution.kind == AttributionKind::Package
        {
            let n = change.aggregated.as_ref().map_or(1, |folded| folded.count);
            self.attributed_changes_total
                .with_label_values(&[
                    change.namespace.as_str(),
                    change.workspace.as_str(),
                    attribution.manager.map_or("unknown", PackageManager::as_str),
                ])
                .inc_by(n);
        }
    }

    /// Records a full scan of a workspace.
    pub fn record_scan(&self, outcome: &ScanOutcome) {
        let (ns, ws) = (outcome.namespace.as_str(), outcome.workspace.as_str());
        self.scan_duration_seconds
            .with_label_values(&[ns, ws])
            .observe(outcome.duration.as_secs_f64());
        self.record_partial(outcome);
        for entity in &outcome.entities {
            self.files_monitored
                .with_label_values(&[ns, ws, entity.name.as_str()])
                .set(i64::try_from(entity.files).unwrap_or(i64::MAX));
            let failed = matches!(entity.state, EntityState::Error);
            self.entity_error
                .with_label_values(&[ns, ws, entity.name.as_str()])
                .set(i64::from(failed));
        }
        // Last: a scrape that sees this timestamp sees everything the scan recorded.
        self.last_scan_timestamp_seconds
            .with_label_values(&[ns, ws])
            .set(jiff::Timestamp::now().as_second() as f64);
    }

    /// Records the counters of any scan, full or targeted.
    pub fn record_partial(&self, outcome: &ScanOutcome) {
        self.scanned_files_total.inc_by(outcome.files_scanned);
        self.hashed_bytes_total.inc_by(outcome.bytes_hashed);
        for entity in &outcome.entities {
            for (reason, count) in &entity.errors {
                self.scan_errors_total
                    .with_label_values(&[
                        outcome.namespace.as_str(),
                        outcome.workspace.as_str(),
                        entity.name.as_str(),
                        reason,
                    ])
                    .inc_by(*count);
            }
        }
    }

    /// The names of every metric registered, series or not (for checking dashboards and alerts).
    pub fn names(&self) -> Vec<String> {
        let collectors: [&dyn prometheus::core::Collector; 14] = [
            &self.changes_total,
            &self.attributed_changes_total,
            &self.files_monitored,
            &self.scan_duration_seconds,
            &self.scanned_files_total,
            &self.hashed_bytes_total,
            &self.last_scan_timestamp_seconds,
            &self.scan_errors_total,
            &self.entity_error,
            &self.realtime_watches,
            &self.realtime_degraded,
            &self.outbox_depth,
            &self.reports_total,
            &self.baseline_resets_total,
        ];
        collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| format!("kubefim_{}", d.fq_name))
            .collect()
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec fails only on a family prometheus itself refuses: said, never
        // swallowed into an empty page.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "cannot encode the metrics; the page is cut where it failed");
        }
        String::from_utf8(buffer).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

impl kubefim_telemetry::Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }
}

/// Binds `addr` (when given) and serves `metrics` there; a bind failure is reported before any
/// scan starts.
pub async fn serve(metrics: &Metrics, addr: Option<&str>) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = kubefim_telemetry::bind(addr)
        .await
        .map_err(|source| Error::Metrics {
            addr: addr.to_string(),
            source,
        })?;
    tracing::info!(addr = %addr, "serving /metrics");
    Ok(Some(tokio::spawn(kubefim_telemetry::serve(
        listener,
        std::sync::Arc::new(metrics.clone()),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_design_metric_is_exported_with_the_node_label() {
        let metrics = Metrics::new("node-a");
        // Vec metrics only appear once a series exists.
        metrics
            .changes_total
            .with_label_values(&["fim", "ws", "e", "Files", "Added", "none"])
            .inc();
        metrics
            .attributed_changes_total
            .with_label_values(&["fim", "ws", "dpkg"])
            .inc();
        metrics
            .files_monitored
            .with_label_values(&["fim", "ws", "e"])
            .set(1);
        metrics
            .scan_duration_seconds
            .with_label_values(&["fim", "ws"])
            .observe(1.0);
        metrics
            .last_scan_timestamp_seconds
            .with_label_values(&["fim", "ws"])
            .set(1.0);
        metrics
            .scan_errors_total
            .with_label_values(&["fim", "ws", "e", "io"])
            .inc();
        metrics.entity_error.with_label_values(&["fim", "ws", "e"]).set(0);
        metrics.reports_total.with_label_values(&["created"]).inc();
        let text = metrics.render();
        for name in [
            "kubefim_changes_total",
            "kubefim_attributed_changes_total",
            "kubefim_files_monitored",
            "kubefim_scan_duration_seconds_bucket",
            "kubefim_scanned_files_total",
            "kubefim_hashed_bytes_total",
            "kubefim_last_scan_timestamp_seconds",
            "kubefim_scan_errors_total",
            "kubefim_entity_error",
            "kubefim_realtime_watches",
            "kubefim_realtime_degraded",
            "kubefim_outbox_depth",
            "kubefim_reports_total",
            "kubefim_baseline_resets_total",
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
            assert!(line.contains("node=\"node-a\""), "{line}");
        }
    }
}
