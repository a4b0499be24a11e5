//! Standalone mode: the agent's scan loop on one machine with no cluster. Entities come from a
//! local file of FimWorkspace / MonitoredEntity manifests; each change is one JSON line on
//! stdout; metrics are served over HTTP; logs go to stderr. The first scan of an entity builds
//! its baseline silently, later scans report every difference and accept it. Between scans,
//! realtime detection rescans what inotify events point at.

use std::{
    hash::BuildHasher,
    io::Write,
    mem::MaybeUninit,
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use kubefim_crds::{AgentConfig, ChangeSource, WorkspaceConfig};

use crate::{
    Result, config,
    diff::Change,
    hostfs::HostRoot,
    metrics::{self, Metrics},
    realtime::{self, RawEvent, Signal, Watcher},
    report, resolve,
    scan::{ScanMode, ScanReport, Scanner, Settings},
    store::BaselineStore,
};

/// Events are gathered until this long passes without a new one...
const DEBOUNCE_QUIET: Duration = Duration::from_millis(20);
/// ...or this long after the first, so a steady stream of writes is still reported promptly.
const DEBOUNCE_MAX: Duration = Duration::from_millis(100);

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
    /// The most inotify watches realtime detection adds.
    pub max_watches: usize,
}

/// Everything a scan needs, shared with the blocking scan tasks.
#[derive(Debug)]
pub struct Agent {
    pub node: String,
    pub root: HostRoot,
    pub store: BaselineStore,
    pub metrics: Metrics,
    /// One scan at a time: a full scan and a realtime rescan running together could both report
    /// the same change.
    scan_lock: Mutex<()>,
    /// In the cluster, changes are also queued for the API server in the durable outbox.
    pub outbox: Option<crate::outbox::OutboxPolicy>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A scan that panicked leaves nothing half-done behind a lock (its write transaction was
/// dropped uncommitted), so a poisoned lock is safe to take.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Agent {
    pub fn new(node: &str, root: HostRoot, store: BaselineStore) -> Self {
        Self {
            node: node.to_string(),
            root,
            store,
            metrics: Metrics::new(node),
            scan_lock: Mutex::new(()),
            outbox: None,
        }
    }

    /// Runs `scan` with a sink that prints each change as a JSON line and counts it.
    fn print_changes(
        &self,
        scan: impl FnOnce(&Scanner<'_>, &mut dyn FnMut(Change)) -> Result<ScanReport>,
    ) -> Result<ScanReport> {
        let scanner = Scanner {
            root: &self.root,
            store: &self.store,
            env: &env_var,
            outbox: self.outbox.as_ref(),
        };
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut write_error = None;
        let report = scan(&scanner, &mut |change| {
            self.metrics.record_change(&change);
            if let Err(e) = report::write_json_line(&mut out, &change, &self.node) {
                write_error.get_or_insert(e);
            }
        })?;
        write_error.map_or(Ok(report), Err)
    }

    /// Scans one workspace in full, printing each change as a JSON line on stdout.
    pub fn scan_and_print(&self, workspace: &WorkspaceConfig) -> Result<ScanReport> {
        let _serial = lock(&self.scan_lock);
        self.full_scan(workspace, ChangeSource::Scan)
    }

    fn full_scan(&self, workspace: &WorkspaceConfig, source: ChangeSource) -> Result<ScanReport> {
        let report =
            self.print_changes(|scanner, sink| scanner.scan(workspace, ScanMode::Detect, source, sink))?;
        self.metrics.record_scan(&report);
        log_scan(&report);
        Ok(report)
    }

    /// Sets up watches for every workspace with realtime detection on.
    pub fn start_watching(&self, workspaces: &[WorkspaceConfig], max_watches: usize) -> Option<Watcher> {
        if !workspaces.iter().any(|w| w.scan.realtime) {
            return None;
        }
        let mut watcher = match Watcher::new(max_watches) {
            Ok(watcher) => watcher,
            Err(errno) => {
                tracing::error!(error = %errno, "cannot start realtime detection; periodic scans go on");
                self.metrics.realtime_degraded.set(1);
                return None;
            }
        };
        for workspace in workspaces.iter().filter(|w| w.scan.realtime) {
            for entity in &workspace.entities {
                if let Ok(resolved) = resolve::resolve(entity, workspace.scan.hash_algorithm, env_var) {
                    watcher.add_entity(&self.root, &workspace.name, resolved);
                }
            }
        }
        self.record_watcher(&watcher);
        if let Some(reason) = &watcher.degraded {
            tracing::warn!(reason = %reason, "realtime detection degraded");
        }
        tracing::info!(watches = watcher.watch_count(), "realtime detection started");
        Some(watcher)
    }

    /// Drops the baselines of workspaces that are no longer configured, so re-enabling one later
    /// starts from a silent baseline rather than reporting everything that changed meanwhile.
    pub fn forget_workspaces_except(&self, workspaces: &[WorkspaceConfig]) -> Result<()> {
        let _serial = lock(&self.scan_lock);
        let txn = self.store.begin_write()?;
        let dropped = self.store.drop_entities_where(&txn, |workspace, _| {
            !workspaces.iter().any(|w| w.name == workspace)
        })?;
        if dropped == 0 {
            // Nothing to forget: leave the store file untouched.
            txn.abort().map_err(|e| self.store.error(e))?;
            return Ok(());
        }
        txn.commit().map_err(|e| self.store.error(e))
    }

    fn record_watcher(&self, watcher: &Watcher) {
        self.metrics
            .realtime_watches
            .set(i64::try_from(watcher.watch_count()).unwrap_or(i64::MAX));
        self.metrics
            .realtime_degraded
            .set(i64::from(watcher.degraded.is_some()));
    }

    /// Runs what a batch of events asks for: targeted rescans or, after lost events, a full
    /// rescan of every realtime workspace.
    pub fn realtime_scan(
        &self,
        workspaces: &[WorkspaceConfig],
        watcher: &Mutex<Watcher>,
        signal: Signal,
    ) -> Result<()> {
        let _serial = lock(&self.scan_lock);
        if signal.overflow {
            tracing::warn!(
                "inotify event queue overflowed; rescanning every watched entity to cover the gap"
            );
            self.metrics.realtime_degraded.set(1);
            for workspace in workspaces.iter().filter(|w| w.scan.realtime) {
                self.full_scan(workspace, ChangeSource::Realtime)?;
            }
            let mut watcher = lock(watcher);
            for index in 0..watcher.entities().len() {
                watcher.watch_tree(&self.root, index, &[]);
            }
        }
        for ((workspace, entity), keys) in signal.targets {
            let Some(ws) = workspaces.iter().find(|w| w.name == workspace) else {
                continue;
            };
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            {
                // Watch new directories before rescanning them: what is created in them afterwards
                // raises an event, what was created before is found by the rescan.
                let mut watcher = lock(watcher);
                if let Some(index) = watcher.entity_index(&workspace, &entity) {
                    for key in &keys {
                        watcher.watch_tree(&self.root, index, key);
                    }
                }
            }
            let report = self.print_changes(|scanner, sink| {
                scanner.scan_targets(ws, &entity, &keys, ChangeSource::Realtime, sink)
            })?;
            self.metrics.record_partial(&report);
        }
        self.record_watcher(&lock(watcher));
        Ok(())
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

/// Reads inotify events on a thread of its own and forwards them, until `stop` is set.
fn spawn_reader(
    fd: std::os::fd::OwnedFd,
    events: tokio::sync::mpsc::UnboundedSender<Vec<RawEvent>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = vec![MaybeUninit::<u8>::uninit(); 256 << 10];
        while !stop.load(Ordering::Relaxed) {
            let batch = match realtime::wait_readable(&fd, Duration::from_millis(200)) {
                Ok(false) => continue,
                Ok(true) => realtime::read_events(&fd, &mut buffer),
                Err(errno) => Err(errno),
            };
            match batch {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => {
                    if events.send(batch).is_err() {
                        return;
                    }
                }
                Err(errno) => {
                    tracing::error!(error = %errno, "reading inotify events failed; periodic scans go on");
                    return;
                }
            }
        }
    })
}

/// Gathers the events that closely follow the first one (DEBOUNCE_QUIET, DEBOUNCE_MAX).
async fn debounce(
    first: Vec<RawEvent>,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<RawEvent>>,
) -> Vec<RawEvent> {
    let mut batch = first;
    let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
    loop {
        let quiet = tokio::time::Instant::now() + DEBOUNCE_QUIET;
        match tokio::time::timeout_at(quiet.min(deadline), events.recv()).await {
            Ok(Some(more)) => batch.extend(more),
            _ => return batch,
        }
    }
}

/// A finished scan, for whoever reports on it (the in-cluster agent's FimNodeStatus).
#[derive(Debug, Clone)]
pub struct ScanDone {
    pub workspace: WorkspaceConfig,
    pub config_revision: String,
    pub report: ScanReport,
    pub realtime: kubefim_crds::nodestatus::RealtimeStatus,
}

/// Runs the standalone loop until `shutdown` completes.
pub async fn run(options: Options, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let config: AgentConfig = config::load_standalone(&options.config, &options.node)?;
    let (store, opened) = BaselineStore::open(&options.state_dir)?;
    let agent = Arc::new(Agent::new(
        &options.node,
        HostRoot::open(&options.host_root)?,
        store,
    ));
    tracing::info!(node = %agent.node, config = %options.config.display(), revision = %config.revision,
        workspaces = config.workspaces.len(), store = %agent.store.path().display(), ?opened, "kubefim standalone agent started");
    let server = serve_metrics(&agent, options.metrics_addr.as_deref()).await?;
    // The configuration never changes in standalone mode; the sender lives as long as the loop.
    let (_config_sender, configs) = tokio::sync::watch::channel(config);
    let result = run_loop(agent, configs, options.max_watches, options.once, None, shutdown).await;
    if let Some(server) = server {
        server.abort();
    }
    tracing::info!("kubefim standalone agent stopped");
    result
}

/// Binds and serves the metrics endpoint, if an address is given.
pub async fn serve_metrics(agent: &Agent, addr: Option<&str>) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = metrics::bind(addr).await?;
    tracing::info!(addr = %addr, "serving /metrics");
    Ok(Some(tokio::spawn(kubefim_telemetry::serve(
        listener,
        Arc::new(agent.metrics.clone()),
    ))))
}

/// Realtime detection for one configuration: the watcher and the thread reading its events.
struct Realtime {
    watcher: Arc<Mutex<Watcher>>,
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<()>,
}

impl Realtime {
    fn start(
        agent: &Agent,
        workspaces: &[WorkspaceConfig],
        max_watches: usize,
        events: tokio::sync::mpsc::UnboundedSender<Vec<RawEvent>>,
    ) -> Option<Self> {
        let watcher = agent.start_watching(workspaces, max_watches)?;
        match watcher.reader_fd() {
            Ok(fd) => {
                let stop = Arc::new(AtomicBool::new(false));
                let reader = spawn_reader(fd, events, stop.clone());
                Some(Self {
                    watcher: Arc::new(Mutex::new(watcher)),
                    stop,
                    reader,
                })
            }
            Err(errno) => {
                tracing::error!(error = %errno, "cannot read inotify events; periodic scans go on");
                None
            }
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.reader.join();
    }

    fn status(&self) -> kubefim_crds::nodestatus::RealtimeStatus {
        let watcher = lock(&self.watcher);
        kubefim_crds::nodestatus::RealtimeStatus {
            active: true,
            watches: watcher.watch_count() as u64,
            degraded_reason: watcher.degraded.clone(),
        }
    }
}

/// The agent's loop, shared by standalone and in-cluster modes: scan each workspace on its
/// interval, rescan what realtime events point at, and start over whenever `configs` changes
/// (new entities are baselined silently, removed ones forgotten). Each finished full scan is
/// sent to `done`, when given.
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
                tracing::error!(error = %kubefim_telemetry::error_chain(&error), revision = %config.revision, "configuration refused; waiting for the next one");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    changed = configs.changed() => if changed.is_err() { return Ok(()) } else { continue },
                }
            }
        };
        if let Err(error) = agent.forget_workspaces_except(&config.workspaces) {
            tracing::error!(error = %kubefim_telemetry::error_chain(&error), "cannot drop the baselines of removed workspaces");
        }
        tracing::info!(revision = %config.revision, workspaces = config.workspaces.len(), "configuration applied");
        let workspaces = Arc::new(config.workspaces.clone());
        let (event_sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        // Watches go up before the first scan, so nothing changed during it slips between the two.
        let realtime = if once {
            None
        } else {
            Realtime::start(&agent, &workspaces, max_watches, event_sender)
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
                        Ok(Ok(report)) => {
                            if let Some(done) = &done {
                                let realtime = realtime.as_ref().map(Realtime::status).unwrap_or_default();
                                let _ = done.send(ScanDone { workspace: workspaces[index].clone(), config_revision: config.revision.clone(), report, realtime });
                            }
                        }
                        Ok(Err(error)) => tracing::error!(workspace = %workspaces[index].name, error = %kubefim_telemetry::error_chain(&error), "scan failed"),
                        Err(join) => tracing::error!(workspace = %workspaces[index].name, error = %join, "scan task failed"),
                    }
                    scanned_once[index] = true;
                    due[index] = Instant::now() + settings[index].interval + jitter(settings[index].interval);
                }
                Some(first) = events.recv(), if realtime.is_some() => {
                    let batch = debounce(first, &mut events).await;
                    let Some(watcher) = realtime.as_ref().map(|r| r.watcher.clone()) else { continue };
                    let signal = lock(&watcher).interpret(&batch);
                    let (task_agent, task_workspaces) = (agent.clone(), workspaces.clone());
                    let scan = tokio::task::spawn_blocking(move || task_agent.realtime_scan(&task_workspaces, &watcher, signal));
                    match scan.await {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::error!(error = %kubefim_telemetry::error_chain(&error), "realtime rescan failed; the next scan covers it"),
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
