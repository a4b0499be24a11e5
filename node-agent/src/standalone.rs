//! Standalone mode: the agent on one machine with no cluster. Entities come from a local file
//! of FimWorkspace / MonitoredEntity manifests; each change is one JSON line on stdout; metrics
//! are served over HTTP; logs go to stderr. It runs the shared scan loop (`schedule`) with a
//! configuration that never changes. At its start it says whether its store is the one it
//! left and reports what `update` accepted meanwhile (`handover`).

use std::{io::Write, sync::Arc};

use kubefim_crds::AgentConfig;

use crate::{
    Result,
    agent::Agent,
    config::{self, LocalSetup},
    handover,
    hostfs::HostRoot,
    metrics, schedule,
    store::BaselineStore,
};

/// Options of the standalone mode.
#[derive(Clone, Debug)]
pub struct Options {
    pub local: LocalSetup,
    /// Where to serve /metrics; None serves nothing.
    pub metrics_addr: Option<String>,
    /// Scan every workspace once, then return.
    pub once: bool,
    /// The most inotify watches realtime detection adds.
    pub max_watches: usize,
}

/// Runs the standalone loop until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let local = &options.local;
    let config: AgentConfig = config::load_standalone(&local.config, &local.node)?;
    let previous = handover::recorded_generation(&local.state_dir);
    let (store, opened) = BaselineStore::open(&local.state_dir)?;
    {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if let Some(line) = handover::reset_line(&local.node, previous.as_deref(), &store, &opened) {
            tracing::warn!(%line, "baseline reset: the store is not the one this agent left");
            writeln!(out, "{line}").map_err(crate::Error::Output)?;
        }
        let accepted = handover::drain(&store, &mut out)?;
        if accepted > 0 {
            tracing::warn!(
                accepted,
                "reported the changes another command (update) accepted while this agent was stopped"
            );
        }
    }
    handover::record_generation(&local.state_dir, &store)?;
    let agent = Arc::new(Agent::new(&local.node, HostRoot::open(&local.host_root)?, store));
    tracing::info!(node = %agent.node, config = %local.config.display(), revision = %config.revision,
        workspaces = config.workspaces.len(), store = %agent.store.path().display(), ?opened, "kubefim standalone agent started");
    let server = metrics::serve(&agent.metrics, options.metrics_addr.as_deref()).await?;
    // The configuration never changes in standalone mode; the sender lives as long as the loop.
    let (_config_sender, configs) = tokio::sync::watch::channel(config);
    let loop_options = schedule::LoopOptions {
        max_watches: options.max_watches,
        once: options.once,
        start_jitter: false,
    };
    let result = schedule::run_loop(agent, configs, loop_options, None, shutdown).await;
    if let Some(server) = server {
        server.abort();
    }
    tracing::info!("kubefim standalone agent stopped");
    result
}
