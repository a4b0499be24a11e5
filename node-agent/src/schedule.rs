//! The scan loop every long-running mode shares (standalone and in-cluster): each workspace is
//! scanned on its interval with jitter, realtime batches are rescanned in between, and the loop
//! starts over whenever the configuration changes (new entities are baselined silently,
//! removed ones forgotten). Scans, and starting or stopping realtime detection, run on threads
//! of their own; the loop itself never touches the host or the store, and never blocks the
//! async runtime.

use std::{
    collections::BTreeMap,
    hash::BuildHasher,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use kubefim_crds::{
    AgentConfig, WorkspaceConfig, agent_config::workspace_digest, nodestatus::RealtimeStatus,
};
use kubefim_telemetry::error_chain;

use crate::{
    Result,
    agent::Agent,
    config::{Settings, WorkspaceKey},
    lock,
    realtime::{self, Session, SessionState},
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

/// How the loop runs.
#[derive(Clone, Copy, Debug)]
pub struct LoopOptions {
    /// The most inotify watches realtime detection adds.
    pub max_watches: usize,
    /// Scan every workspace once, then return.
    pub once: bool,
    /// Delay the first scan of each workspace by up to 10% of its interval, so that agents
    /// started together (a DaemonSet rollout) do not scan in lockstep.
    pub start_jitter: bool,
}

/// A finished scan, for whoever reports on it (the in-cluster agent's FimNodeStatus).
#[derive(Debug, Clone)]
pub struct ScanDone {
    pub workspace: WorkspaceConfig,
    pub config_revision: String,
    pub outcome: ScanOutcome,
    pub realtime: RealtimeStatus,
}

/// When each workspace is next due, carried across configuration changes so that only the
/// workspaces whose configuration changed are scanned again at once.
#[derive(Debug, Default)]
struct Schedule {
    due: BTreeMap<WorkspaceKey, ([u8; 32], Instant)>,
}

impl Schedule {
    /// The due times of `workspaces`: kept for an unchanged workspace, now for a new or
    /// changed one (after a jitter on the first configuration when asked).
    fn plan(
        &mut self,
        workspaces: &[WorkspaceConfig],
        settings: &[Settings],
        jitter_start: bool,
    ) -> Vec<Instant> {
        let now = Instant::now();
        let due: Vec<Instant> = workspaces
            .iter()
            .zip(settings)
            .map(|(workspace, settings)| {
                let digest = workspace_digest(workspace);
                match self.due.get(&WorkspaceKey::of(workspace)) {
                    Some((known, due)) if *known == digest => *due,
                    _ if jitter_start => now + interval_jitter(settings.interval),
                    _ => now,
                }
            })
            .collect();
        self.due = workspaces
            .iter()
            .zip(&due)
            .map(|(workspace, due)| (WorkspaceKey::of(workspace), (workspace_digest(workspace), *due)))
            .collect();
        due
    }

    fn set(&mut self, workspace: &WorkspaceConfig, due: Instant) {
        if let Some(entry) = self.due.get_mut(&WorkspaceKey::of(workspace)) {
            entry.1 = due;
        }
    }
}

/// Runs the loop until `shutdown` completes (or, with `once`, until every workspace was
/// scanned once). Each finished full scan is sent to `done`, when given.
pub async fn run_loop(
    agent: Arc<Agent>,
    mut configs: tokio::sync::watch::Receiver<AgentConfig>,
    options: LoopOptions,
    done: Option<tokio::sync::mpsc::UnboundedSender<ScanDone>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let LoopOptions {
        max_watches,
        once,
        start_jitter,
    } = options;
    let mut schedule = Schedule::default();
    let mut first = true;
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
        if let Err(error) = agent.migrate_store(&config.workspaces) {
            tracing::error!(error = %error_chain(&error), "cannot migrate the baseline store; waiting for the next configuration");
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                changed = configs.changed() => if changed.is_err() { return Ok(()) } else { continue },
            }
        }
        if let Err(error) = agent.forget_workspaces_except(&config.workspaces) {
            tracing::error!(error = %error_chain(&error), "cannot drop the baselines of removed workspaces");
        }
        tracing::info!(revision = %config.revision, workspaces = config.workspaces.len(), "configuration applied");
        let workspaces = Arc::new(config.workspaces.clone());
        let (event_sender, mut events) = tokio::sync::mpsc::channel(crate::realtime::PENDING_BATCHES);
        // Watches go up before the first scan, so nothing changed during it slips between the two.
        let realtime = if once {
            None
        } else {
            let (task_agent, task_workspaces) = (agent.clone(), workspaces.clone());
            let started = tokio::task::spawn_blocking(move || {
                Session::start(
                    &task_agent.root,
                    &task_agent.metrics,
                    &task_workspaces,
                    max_watches,
                    event_sender,
                    task_agent.pod_names.clone(),
                )
            });
            started.await.unwrap_or_else(|join| {
                tracing::error!(error = %join, "starting realtime detection failed; periodic scans go on");
                None
            })
        };
        let realtime_state = realtime.as_ref().map(Session::state);
        let mut due = schedule.plan(&workspaces, &settings, start_jitter && first);
        first = false;
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
                    let (task_agent, task_workspaces, task_state) = (agent.clone(), workspaces.clone(), realtime_state.clone());
                    let scan = crate::resources::on_scan_thread(move || {
                        let outcome = task_agent.scan_and_print(&task_workspaces[index]);
                        let realtime = task_state.as_ref().map(SessionState::status).unwrap_or_default();
                        outcome.map(|outcome| (outcome, realtime))
                    });
                    match scan.await {
                        Ok(Ok((outcome, realtime))) => {
                            if let Some(done) = &done {
                                let _ = done.send(ScanDone { workspace: workspaces[index].clone(), config_revision: config.revision.clone(), outcome, realtime });
                            }
                        }
                        Ok(Err(crate::Error::Stopped { .. })) => {
                            tracing::info!(workspace = %workspaces[index].name, "scan stopped before its end; nothing of it was written, the next start scans again");
                            break false;
                        }
                        Ok(Err(error)) => tracing::error!(workspace = %workspaces[index].name, error = %error_chain(&error), "scan failed"),
                        Err(join) => tracing::error!(workspace = %workspaces[index].name, error = %join, "scan task failed"),
                    }
                    scanned_once[index] = true;
                    due[index] = Instant::now() + settings[index].interval + interval_jitter(settings[index].interval);
                    schedule.set(&workspaces[index], due[index]);
                }
                Some(first) = events.recv(), if realtime.is_some() => {
                    let batch = realtime::debounce(first, &mut events).await;
                    let Some(watcher) = realtime.as_ref().map(|r| r.watcher.clone()) else { continue };
                    let actors = realtime.as_ref().and_then(|r| r.actors.clone());
                    let (task_agent, task_workspaces) = (agent.clone(), workspaces.clone());
                    let scan = crate::resources::on_scan_thread(move || {
                        let signal = lock(&watcher).interpret(&batch);
                        task_agent.realtime_scan(&task_workspaces, &watcher, signal, actors.as_deref())
                    });
                    match scan.await {
                        Ok(Ok(())) => {}
                        Ok(Err(crate::Error::Stopped { .. })) => break false,
                        Ok(Err(error)) => tracing::error!(error = %error_chain(&error), "realtime rescan failed; the next scan covers it"),
                        Err(join) => tracing::error!(error = %join, "realtime rescan task failed"),
                    }
                }
            }
        };
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(realtime) = realtime {
                realtime.stop();
            }
            let _ = std::io::stdout().flush();
        })
        .await;
        if !reload {
            return Ok(());
        }
    }
}
