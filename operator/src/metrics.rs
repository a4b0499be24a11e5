//! The operator's Prometheus metrics (prefix `kubefim_operator_`), served by kubefim-telemetry's
//! endpoint: `/metrics`, `/healthz` (the process is alive), `/readyz` (its caches are synced).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the operator exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconciliations_total: IntCounterVec,
    pub reconcile_errors_total: IntCounterVec,
    pub reconcile_duration_seconds: HistogramVec,
    pub configmaps_applied_total: IntCounter,
    pub nodes: IntGaugeVec,
    pub filechanges_collected_total: IntCounter,
    pub is_leader: prometheus::IntGauge,
    pub ready: Arc<AtomicBool>,
}

#[allow(clippy::expect_used)] // constant metric definitions registered once in a fresh registry
impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("kubefim_operator".into()), None).expect("constant prefix");
        let register =
            |c: Box<dyn prometheus::core::Collector>| registry.register(c).expect("unique metric names");
        let reconciliations_total = IntCounterVec::new(
            Opts::new("reconciliations_total", "Node reconciliations, by result."),
            &["result"],
        )
        .expect("valid");
        let reconcile_errors_total = IntCounterVec::new(
            Opts::new("reconcile_errors_total", "Failed reconciliations, by kind."),
            &["kind"],
        )
        .expect("valid");
        let reconcile_duration_seconds = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Duration of node reconciliations.")
                .buckets(vec![0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["controller"],
        )
        .expect("valid");
        let configmaps_applied_total = IntCounter::new(
            "configmaps_applied_total",
            "Node ConfigMaps written (revision changed).",
        )
        .expect("valid");
        let nodes = IntGaugeVec::new(
            Opts::new(
                "nodes",
                "Nodes per workspace and state (selected, reporting, not_reporting, unsupported), exported by the replica that holds the lease.",
            ),
            &["namespace", "workspace", "state"],
        )
        .expect("valid");
        let filechanges_collected_total =
            IntCounter::new("filechanges_collected_total", "FileChanges deleted by retention.")
                .expect("valid");
        let is_leader =
            prometheus::IntGauge::new("is_leader", "1 on the replica that holds the lease.").expect("valid");
        register(Box::new(reconciliations_total.clone()));
        register(Box::new(reconcile_errors_total.clone()));
        register(Box::new(reconcile_duration_seconds.clone()));
        register(Box::new(configmaps_applied_total.clone()));
        register(Box::new(nodes.clone()));
        register(Box::new(filechanges_collected_total.clone()));
        register(Box::new(is_leader.clone()));
        Self {
            registry,
            reconciliations_total,
            reconcile_errors_total,
            reconcile_duration_seconds,
            configmaps_applied_total,
            nodes,
            filechanges_collected_total,
            is_leader,
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The names of every metric registered, series or not (for checking dashboards and alerts).
    pub fn names(&self) -> Vec<String> {
        let collectors: [&dyn prometheus::core::Collector; 7] = [
            &self.reconciliations_total,
            &self.reconcile_errors_total,
            &self.reconcile_duration_seconds,
            &self.configmaps_applied_total,
            &self.nodes,
            &self.filechanges_collected_total,
            &self.is_leader,
        ];
        collectors
            .iter()
            .flat_map(|c| c.desc())
            .map(|d| format!("kubefim_operator_{}", d.fq_name))
            .collect()
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records a reconcile's duration when dropped, however the reconcile ends.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: prometheus::Histogram,
    started: std::time::Instant,
}

impl ReconcileTimer {
    pub fn start(metrics: &Metrics, controller: &str) -> Self {
        Self {
            histogram: metrics
                .reconcile_duration_seconds
                .with_label_values(&[controller]),
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

impl kubefim_telemetry::Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_operator_prefix() {
        let names = Metrics::new().names();
        assert_eq!(names.len(), 7);
        assert!(
            names.iter().all(|n| n.starts_with("kubefim_operator_")),
            "{names:?}"
        );
        assert!(names.contains(&"kubefim_operator_nodes".to_string()));
    }
}
