//! The kubefim operator. It reads as
//! `validate` (what CEL cannot check) → `render` (pure: each node's AgentConfig) → `reconcile`
//! (one node) → `apply` (server-side apply of ConfigMaps and status) → `status` (pure
//! aggregation of node reports) → `aggregate` (the status round) and `retention`;
//! `controller` wires them to the API server with leader election.

pub mod aggregate;
pub mod apply;
pub mod context;
pub mod controller;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod retention;
pub mod selector;
pub mod status;
pub mod tenancy;
pub mod validate;

/// Errors of the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed")]
    Kube(#[source] kube::Error),

    #[error("{object} has an invalid value")]
    Spec {
        object: String,
        #[source]
        source: kubefim_crds::Error,
    },

    #[error("cannot serialize an object")]
    Serialize(#[source] serde_json::Error),

    #[error("leader election failed: {0}")]
    Lease(String),
}

impl Error {
    /// Whether retrying the same request cannot succeed: the API server refused it for good (a
    /// 4xx other than conflicts, throttling and authentication), or a value is invalid.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(status)) => {
                (400..500).contains(&status.code) && ![401, 408, 409, 429].contains(&status.code)
            }
            Self::Kube(_) | Self::Lease(_) => false,
            Self::Spec { .. } | Self::Serialize(_) => true,
        }
    }

    /// The `kind` label of the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "api",
            Self::Spec { .. } => "spec",
            Self::Serialize(_) => "serialize",
            Self::Lease(_) => "lease",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
