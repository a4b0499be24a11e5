//! `kubectl fim`: reads kubefim's results the way Defender for Cloud's FIM pages present them
//! (workspace dashboard, changes with summaries and CSV export, the servers tab, the settings
//! tab) and makes the few changes an operator needs (enable, disable, opt out of a recommended
//! item, accept a new baseline). It reads as `query` (what to select) → `api` (the calls) →
//! `summary` (pure counting) → `output` (pure rendering; `dashboard`, the workspace dashboard)
//! → `commands`.

pub mod api;
pub mod commands;
pub mod dashboard;
pub mod output;
pub mod query;
pub mod summary;

/// Errors of the plugin, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error(
        "the kubefim CRDs are not installed in this cluster: install them with `helm install kubefim charts/kubefim -n kubefim-system --create-namespace`"
    )]
    CrdsMissing,

    #[error(
        "{kind} {name:?} not found in namespace {namespace:?}: list them with `kubectl get {plural} -n {namespace}` or pass -n"
    )]
    NotFound {
        kind: &'static str,
        plural: &'static str,
        name: String,
        namespace: String,
    },

    #[error("the Kubernetes API request failed; check your kubeconfig and context")]
    Kube(#[source] kube::Error),

    #[error("cannot write CSV")]
    Csv(#[source] csv::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
