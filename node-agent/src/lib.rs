//! The kubefim node agent. It reads as the data flow (docs/design.md, "Module map"):
//! `config` (what to monitor) → `resolve` (entity paths) → `hostfs` / `walk` / `services` (what
//! is on the host, safely) → `hash` → `store` (the baseline) → `scan` (the merge-join, split by
//! job) → `diff` (what changed) → `outbox` (queued for the API) → `output` (JSON lines, the
//! readable listing). `records` holds the types the node's state is made of; `store` is the
//! one owner of where they are kept. `agent` runs scans for every mode, `schedule` is the loop the long-running
//! modes share, `realtime` owns inotify; `cluster`, `standalone` and `oneshot` are the modes.

pub mod actors;
pub mod agent;
pub mod attributes;
pub mod cluster;
pub mod config;
pub mod diff;
pub mod fuzzing;
pub mod handover;
pub mod hash;
pub mod hostfs;
pub mod metrics;
pub mod mounts;
pub mod oneshot;
pub mod outbox;
pub mod output;
pub mod packages;
pub mod realtime;
pub mod records;
pub mod resolve;
pub mod resources;
pub mod scan;
pub mod schedule;
pub mod services;
pub mod standalone;
pub mod stop;
pub mod store;
pub mod sys;
pub mod walk;

use std::{
    path::PathBuf,
    sync::{Mutex, MutexGuard, PoisonError},
};

/// Errors of the agent library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot open the host root {path}: {source}; pass --host-root with the directory where the host's / is mounted"
    )]
    HostRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot use the state directory {path}: {source}; pass a writable --state-dir")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("baseline store {path} failed")]
    Store {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("baseline store {path} cannot be used: {reason}")]
    StoreUnusable { path: PathBuf, reason: String },

    #[error(
        "baseline store {path} is open in another process (a running agent or one-shot command on the same --state-dir); stop it or use another --state-dir"
    )]
    StoreInUse { path: PathBuf },

    #[error(
        "there is no baseline in {state_dir}: run `kubefim-agent init` first (or pass the --state-dir init used); nothing was scanned or written"
    )]
    NoBaseline { state_dir: PathBuf },

    #[error(
        "baseline reset: the baseline store was unusable ({reason}); it was moved to {moved_to} for inspection, and there is no baseline to compare with: run `kubefim-agent init` to build a new one"
    )]
    BaselineReset { reason: String, moved_to: PathBuf },

    #[error(
        "a baseline already exists at {path}: init would replace it, taking whatever changed since as the truth; run `check` to see what changed, `update` to accept it, or `init --force` to start over"
    )]
    BaselineExists { path: PathBuf },

    #[error(
        "baseline store {path} holds an unreadable record for {key}; remove the file to rebuild the baseline"
    )]
    CorruptRecord { path: PathBuf, key: String },

    #[error("cannot read configuration {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },

    #[error("workspace {workspace}: {field} is invalid")]
    Settings {
        workspace: String,
        field: &'static str,
        #[source]
        source: kubefim_crds::Error,
    },

    #[error("cannot serve metrics on {addr}: {source}; pass another --metrics-addr")]
    Metrics {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot reach the Kubernetes API: set KUBECONFIG or run in a pod")]
    Kube(#[source] kube::Error),

    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),

    #[error("cannot encode {what} for the store; this is a bug in kubefim-agent, please report it")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("stopped by {} before the end; nothing of this scan was written", stop::signal_name(*signal))]
    Stopped { signal: i32 },

    #[error("internal error: {0}; this is a bug in kubefim-agent, please report it")]
    Internal(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The agent's version, reported in FimNodeStatus.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Reads an environment variable for path expansion.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A scan that panicked leaves nothing half-done behind a lock (its write transaction was
/// dropped uncommitted), so a poisoned lock is safe to take.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
