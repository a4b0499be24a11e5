//! The scan loop every long-running mode shares (standalone and in-cluster): each workspace is
//! scanned on its interval with jitter, realtime batches are rescanned in between, and the loop
//! starts over whenever the configuration changes (new entities are baselined silently,
//! removed ones forgotten). Scans run on blocking threads; the loop itself never touches the
//! host or the store.

use std::{
    hash::BuildHasher,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use kubefim_crds::{AgentConfig, WorkspaceConfig, nodestatus::RealtimeStatus};
use kubefim_telemetry::error_chain;

use crate::{
    Result,
    agent::Agent,
    config::Settings,
    lock,
    realtime::{self, Session},
    scan::ScanOutcome,
};

/// A uniformly spread random delay below `spread` (zero for a zero spread), so that agents
/// started together, or retrying together, do not act in lockstep.
pub fn jitter(spread: Duration) -> Duration {
    let millis = spread.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    Duration::from_millis(random % millis)
}

/// Up to 10% of the interval.
fn interval_jitter(interval: Duration) -> Duration {
    jitter(interval / 10)
}

/// A finished scan, for whoever reports on it (the in-cluster agent's FimNodeStatus).
#[derive(Debug, Clone)]
pub struct ScanDone {
    pub workspace: WorkspaceConfig,
    pub config_revision: String,
    pub outcome: ScanOutcome,
    pub realtime: RealtimeStatus,
}

/// Runs the loop until `shutdown` completes (or, with `once`, until every workspace was
/// scanned once). Each finished full scan is sent to `done`, when given.
pub async fn run_loop(
    agent: Arc<Agent>,
    mut configs: tokio::sync::watch::Receiver<AgentConfig>,
    max_watches: usize,
    once: bool,
    done: Option<tokio::sync::mpsc::UnboundedSender<ScanDone>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    loop {
        let config = configs.borrow_and_update().clone();
        let settings: Vec<Settings> = match config
            .workspaces
            .iter()
            .map(Settings::from_config)
            .collect::<Result<_>>()
        {
            Ok(settings) => settings,
            Err(error) => {
                tracing::error!(error = %error_chain(&error), revision = %config.revision, "configuration refused; waiting for the next one");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    changed = configs.changed() => if changed.is_err() { return Ok(()) } else { continue },
                }
            }
        };
        if let Err(error) = agent.forget_workspaces_except(&config.workspaces) {
            tracing::error!(error = %error_chain(&error), "cannot drop the baselines of removed workspaces");
        }
        tracing::info!(revision = %config.revision, workspaces = config.workspaces.len(), "configuration applied");
        let workspaces = Arc::new(config.workspaces.clone());
        let (event_sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        // Watches go up before the first scan, so nothing changed during it slips between the two.
        let realtime = if once {
            None
        } else {
            Session::start(&agent, &workspaces, max_watches, event_sender)
        };
        let mut due: Vec<Instant> = vec![Instant::now(); workspaces.len()];
        let mut scanned_once = vec![false; workspaces.len()];
        let reload = loop {
            if once && scanned_once.iter().all(|done| *done) {
                break false;
            }
            let next = due.iter().copied().enumerate().min_by_key(|(_, when)| *when);
            let sleep = next.map_or(Duration::from_secs(3600), |(_, when)| {
                when.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                () = &mut shutdown => break false,
                changed = configs.changed() => {
                    if changed.is_err() { break false; }
                    break true;
                }
                () = tokio::time::sleep(sleep) => {
                    let Some((index, _)) = next else { continue };
                    let (task_agent, task_workspaces) = (agent.clone(), workspaces.clone());
                    let scan = tokio::task::spawn_blocking(move || task_agent.scan_and_print(&task_workspaces[index]));
                    match scan.await {
                        Ok(Ok(outcome)) => {
                            if let Some(done) = &done {
                                let realtime = realtime.as_ref().map(Session::status).unwrap_or_default();
                                let _ = done.send(ScanDone { workspace: workspaces[index].clone(), config_revision: config.revision.clone(), outcome, realtime });
                            }
                        }
                        Ok(Err(error)) => tracing::error!(workspace = %workspaces[index].name, error = %error_chain(&error), "scan failed"),
                        Err(join) => tracing::error!(workspace = %workspaces[index].name, error = %join, "scan task failed"),
                    }
                    scanned_once[index] = true;
                    due[index] = Instant::now() + settings[index].interval + interval_jitter(settings[index].interval);
                }
                Some(first) = events.recv(), if realtime.is_some() => {
                    let batch = realtime::debounce(first, &mut events).await;
                    let Some(watcher) = realtime.as_ref().map(|r| r.watcher.clone()) else { continue };
                    let signal = lock(&watcher).interpret(&batch);
                    let (task_agent, task_workspaces) = (agent.clone(), workspaces.clone());
                    let scan = tokio::task::spawn_blocking(move || task_agent.realtime_scan(&task_workspaces, &watcher, signal));
                    match scan.await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::error!(error = %error_chain(&error), "realtime rescan failed; the next scan covers it"),
                        Err(join) => tracing::error!(error = %join, "realtime rescan task failed"),
                    }
                }
            }
        };
        if let Some(realtime) = realtime {
            realtime.stop();
        }
        let _ = std::io::stdout().flush();
        if !reload {
            return Ok(());
        }
    }
}
