//! Standalone mode: the agent's scan loop on one machine with no cluster. Entities come from a
//! local file of FimWorkspace / MonitoredEntity manifests; each change is one JSON line on
//! stdout; metrics are served over HTTP; logs go to stderr. The first scan of an entity builds
//! its baseline silently, later scans report every difference and accept it.

use std::{
    hash::BuildHasher,
    io::Write,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use kubefim_crds::{AgentConfig, ChangeSource, WorkspaceConfig};

use crate::{
    Result, config,
    hostfs::HostRoot,
    metrics::{self, Metrics},
    report,
    scan::{ScanMode, ScanReport, Scanner, Settings},
    store::BaselineStore,
};

/// Options of the standalone mode.
#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub host_root: PathBuf,
    pub state_dir: PathBuf,
    pub node: String,
    /// Where to serve /metrics; None serves nothing.
    pub metrics_addr: Option<String>,
    /// Scan every workspace once, then return.
    pub once: bool,
}

/// Everything a scan needs, shared with the blocking scan tasks.
#[derive(Debug)]
pub struct Agent {
    pub node: String,
    pub root: HostRoot,
    pub store: BaselineStore,
    pub metrics: Metrics,
}

impl Agent {
    /// Scans one workspace in full, printing each change as a JSON line on stdout.
    pub fn scan_and_print(&self, workspace: &WorkspaceConfig) -> Result<ScanReport> {
        let env = |name: &str| std::env::var(name).ok();
        let scanner = Scanner {
            root: &self.root,
            store: &self.store,
            env: &env,
        };
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut write_error = None;
        let report = scanner.scan(workspace, ScanMode::Detect, ChangeSource::Scan, &mut |change| {
            self.metrics.record_change(&change);
            if let Err(e) = report::write_json_line(&mut out, &change, &self.node) {
                write_error.get_or_insert(e);
            }
        })?;
        self.metrics.record_scan(&report);
        log_scan(&report);
        write_error.map_or(Ok(report), Err)
    }
}

fn log_scan(report: &ScanReport) {
    let baselined = report.entities.iter().filter(|e| e.baselined).count();
    tracing::info!(
        workspace = %report.workspace,
        files = report.files_scanned,
        changes = report.changes,
        errors = report.errors(),
        baselined_entities = baselined,
        duration_ms = report.duration.as_millis() as u64,
        "scan finished"
    );
    for entity in report.entities.iter().filter(|e| e.message.is_some()) {
        tracing::warn!(workspace = %report.workspace, entity = %entity.name, state = ?entity.state,
            message = entity.message.as_deref().unwrap_or(""), "entity needs attention");
    }
}

/// Up to 10% of the interval, so many agents started together do not scan in lockstep.
fn jitter(interval: Duration) -> Duration {
    let spread = interval.as_millis() as u64 / 10;
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    Duration::from_millis(if spread == 0 { 0 } else { random % spread })
}

/// Runs the standalone loop until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let config: AgentConfig = config::load_standalone(&options.config, &options.node)?;
    let settings: Vec<Settings> = config
        .workspaces
        .iter()
        .map(Settings::from_config)
        .collect::<Result<_>>()?;
    let (store, opened) = BaselineStore::open(&options.state_dir)?;
    let agent = Arc::new(Agent {
        node: options.node.clone(),
        root: HostRoot::open(&options.host_root)?,
        store,
        metrics: Metrics::new(&options.node),
    });
    tracing::info!(node = %agent.node, config = %options.config.display(), revision = %config.revision,
        workspaces = config.workspaces.len(), store = %agent.store.path().display(), ?opened, "kubefim standalone agent started");
    let server = match &options.metrics_addr {
        Some(addr) => {
            let listener = metrics::bind(addr).await?;
            tracing::info!(addr = %addr, "serving /metrics");
            Some(tokio::spawn(metrics::serve(
                listener,
                Arc::new(agent.metrics.clone()),
            )))
        }
        None => None,
    };
    let mut due: Vec<Instant> = vec![Instant::now(); config.workspaces.len()];
    let workspaces = Arc::new(config.workspaces);
    tokio::pin!(shutdown);
    let mut scanned_once = vec![false; workspaces.len()];
    loop {
        if options.once && scanned_once.iter().all(|done| *done) {
            break;
        }
        let Some((index, when)) = due.iter().copied().enumerate().min_by_key(|(_, when)| *when) else {
            // No enabled workspace: nothing to do but wait for shutdown.
            shutdown.as_mut().await;
            break;
        };
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(when.into()) => {}
        }
        let (task_agent, task_workspaces) = (agent.clone(), workspaces.clone());
        let scan = tokio::task::spawn_blocking(move || task_agent.scan_and_print(&task_workspaces[index]));
        match scan.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(workspace = %workspaces[index].name, error = %error_chain(&error), "scan failed")
            }
            Err(join) => {
                tracing::error!(workspace = %workspaces[index].name, error = %join, "scan task failed")
            }
        }
        scanned_once[index] = true;
        due[index] = Instant::now() + settings[index].interval + jitter(settings[index].interval);
    }
    if let Some(server) = server {
        server.abort();
    }
    let _ = std::io::stdout().flush();
    tracing::info!("kubefim standalone agent stopped");
    Ok(())
}

/// An error and its sources on one line, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
