//! Realtime detection between scans. `watcher` owns the inotify watches and maps events to the
//! keys a rescan must cover; this module runs one session of it for a configuration: the
//! thread that reads events, and the debounce that turns a burst of writes into one rescan.
//!
//! It never decides what changed and never writes the baseline: the scan loop hands each
//! debounced batch to the agent, which rescans through the scanner. It takes what it needs (the
//! host root, the metrics, where events go), never the agent; starting and stopping a session
//! block (watches are added for every directory), so callers run them off the async runtime.

mod watcher;

use std::{
    mem::MaybeUninit,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kubefim_crds::{
    WorkspaceConfig,
    nodestatus::{ActorsState, RealtimeStatus},
    workspace::ActorsMode,
};
use tokio::sync::mpsc::{Receiver, Sender, error::TrySendError};
pub use watcher::{MOUNT_EVENT, RawEvent, Signal, WatchedEntity, Watcher, read_events, wait_readable};

use crate::{
    actors::Actors, config::WorkspaceKey, hostfs::HostRoot, lock, metrics::Metrics, mounts, resolve,
};

/// Events are gathered until this long passes without a new one...
const DEBOUNCE_QUIET: Duration = Duration::from_millis(20);
/// ...or this long after the first, so a steady stream of writes is still reported promptly.
const DEBOUNCE_MAX: Duration = Duration::from_millis(100);
/// Batches of events read but not yet taken by the scan loop. While a scan runs, the reader
/// stops here and the kernel's queue fills instead; when it overflows, the overflow asks for a
/// full rescan. A write storm costs a rescan, never unbounded memory.
pub const PENDING_BATCHES: usize = 16;

/// Realtime detection for one configuration: the watcher and the thread reading its events.
#[derive(Debug)]
pub struct Session {
    pub watcher: Arc<Mutex<Watcher>>,
    /// Who makes changes, when a realtime workspace asks for actors and fanotify can be used.
    pub actors: Option<Arc<Actors>>,
    /// Why actors were asked for and are not learned.
    actors_refused: Option<String>,
    stop: Arc<AtomicBool>,
    /// Set while the reader thread runs.
    reading: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<()>,
    /// The thread that polls the mount table (None when it cannot be polled: said once).
    mount_poller: Option<std::thread::JoinHandle<()>>,
}

/// What a session's status is read from, for the thread that scans (the watcher's lock may be
/// held by a rescan).
#[derive(Debug, Clone)]
pub struct SessionState {
    watcher: Arc<Mutex<Watcher>>,
    reading: Arc<AtomicBool>,
    actors: Option<Arc<Actors>>,
    actors_refused: Option<String>,
}

impl SessionState {
    /// Active while its reader runs; a reader that failed leaves it inactive, saying why.
    pub fn status(&self) -> RealtimeStatus {
        let watcher = lock(&self.watcher);
        let (actors, actors_reason, actor_events_lost) = match (&self.actors, &self.actors_refused) {
            (Some(actors), _) => actors.status(),
            (None, Some(refused)) => (ActorsState::Unavailable, Some(refused.clone()), 0),
            (None, None) => (ActorsState::Off, None, 0),
        };
        RealtimeStatus {
            active: self.reading.load(Ordering::Acquire),
            watches: watcher.watch_count() as u64,
            degraded_reason: watcher.degraded.clone(),
            actors,
            actors_reason,
            actor_events_lost,
        }
    }
}

impl Session {
    /// Watches every entity of the workspaces with realtime detection on; None when none has
    /// it on or inotify cannot be used (periodic scans then carry on alone).
    pub fn start(
        root: &HostRoot,
        metrics: &Metrics,
        workspaces: &[WorkspaceConfig],
        max_watches: usize,
        events: Sender<Vec<RawEvent>>,
        pod_names: Option<Arc<dyn crate::actors::PodNames>>,
    ) -> Option<Self> {
        if !workspaces.iter().any(|w| w.scan.realtime) {
            return None;
        }
        let mut watcher = match Watcher::new(max_watches) {
            Ok(watcher) => watcher,
            Err(errno) => {
                tracing::error!(error = %errno, "cannot start realtime detection; periodic scans go on");
                metrics.realtime_degraded.set(1);
                return None;
            }
        };
        let wants_actors = |w: &WorkspaceConfig| w.scan.actors == ActorsMode::On;
        let (actors, actors_refused) = if workspaces.iter().any(|w| w.scan.realtime && wants_actors(w)) {
            match Actors::start(root, std::path::PathBuf::from("/proc")) {
                Ok(actors) => {
                    if let Some(pods) = pod_names {
                        actors.set_pod_names(pods);
                    }
                    watcher.set_actors(actors.clone());
                    (Some(actors), None)
                }
                Err(reason) => {
                    tracing::error!(%reason, "actors asked for cannot be learned; changes are reported without them");
                    (None, Some(reason))
                }
            }
        } else {
            (None, None)
        };
        for workspace in workspaces.iter().filter(|w| w.scan.realtime) {
            for entity in &workspace.entities {
                if let Ok(resolved) = resolve::resolve(entity, workspace.scan.hash_algorithm, crate::env_var)
                {
                    watcher.add_entity(
                        root,
                        &WorkspaceKey::of(workspace),
                        resolved,
                        wants_actors(workspace),
                    );
                }
            }
        }
        if let Some(actors) = &actors {
            let (state, reason, _) = actors.status();
            tracing::info!(state = ?state, reason = reason.as_deref().unwrap_or(""), "actors of realtime changes");
        }
        publish(metrics, &watcher);
        if let Some(reason) = &watcher.degraded {
            tracing::warn!(reason = %reason, "realtime detection degraded");
        }
        tracing::info!(watches = watcher.watch_count(), "realtime detection started");
        match watcher.reader_fd() {
            Ok(fd) => {
                let stop = Arc::new(AtomicBool::new(false));
                let watcher = Arc::new(Mutex::new(watcher));
                let degraded = metrics.realtime_degraded.clone();
                let failed = {
                    let watcher = watcher.clone();
                    move |reason: String| {
                        lock(&watcher).degraded = Some(reason);
                        degraded.set(1);
                    }
                };
                let reading = Arc::new(AtomicBool::new(true));
                let mount_poller = spawn_mount_poller(root, events.clone(), stop.clone(), failed.clone());
                let reader = spawn_reader(fd, events, stop.clone(), reading.clone(), failed);
                Some(Self {
                    watcher,
                    actors,
                    actors_refused,
                    stop,
                    reading,
                    reader,
                    mount_poller,
                })
            }
            Err(errno) => {
                tracing::error!(error = %errno, "cannot read inotify events; periodic scans go on");
                metrics.realtime_degraded.set(1);
                None
            }
        }
    }

    /// Stops the reader thread and drops the watches.
    pub fn stop(self) {
        if let Some(actors) = &self.actors {
            actors.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.reader.join();
        if let Some(poller) = self.mount_poller {
            let _ = poller.join();
        }
    }

    /// Where its status is read from.
    pub fn state(&self) -> SessionState {
        SessionState {
            watcher: self.watcher.clone(),
            reading: self.reading.clone(),
            actors: self.actors.clone(),
            actors_refused: self.actors_refused.clone(),
        }
    }
}

/// Publishes the watcher's state in the metrics.
pub fn publish(metrics: &Metrics, watcher: &Watcher) {
    metrics
        .realtime_watches
        .set(i64::try_from(watcher.watch_count()).unwrap_or(i64::MAX));
    metrics
        .realtime_degraded
        .set(i64::from(watcher.degraded.is_some()));
}

/// Reads inotify events on a thread of its own and forwards them, until `stop` is set; calls
/// `failed` with the reason if reading fails for good.
fn spawn_reader(
    fd: std::os::fd::OwnedFd,
    events: Sender<Vec<RawEvent>>,
    stop: Arc<AtomicBool>,
    reading: Arc<AtomicBool>,
    failed: impl FnOnce(String) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // However the thread ends, the session is no longer read.
        struct Reading(Arc<AtomicBool>);
        impl Drop for Reading {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _reading = Reading(reading);
        let mut buffer = vec![MaybeUninit::<u8>::uninit(); 256 << 10];
        while !stop.load(Ordering::Relaxed) {
            let batch = match wait_readable(&fd, Duration::from_millis(200)) {
                Ok(false) => continue,
                Ok(true) => read_events(&fd, &mut buffer),
                Err(errno) => Err(errno),
            };
            match batch {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => {
                    if !forward(&events, batch, &stop) {
                        return;
                    }
                }
                Err(errno) => {
                    tracing::error!(error = %errno, "reading inotify events failed; periodic scans go on");
                    failed(format!(
                        "reading inotify events failed ({errno}); only periodic scans detect changes"
                    ));
                    return;
                }
            }
        }
    })
}

/// Hands a batch to the scan loop, waiting while its queue is full; false once the loop is gone
/// or `stop` is set.
fn forward(events: &Sender<Vec<RawEvent>>, mut batch: Vec<RawEvent>, stop: &AtomicBool) -> bool {
    loop {
        match events.try_send(batch) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                batch = back;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Polls the mount table on a thread of its own until `stop` is set, and sends a `MOUNT_EVENT`
/// for each mount point where something was mounted or unmounted under the host root. When the
/// table cannot be read (None, or the thread ends), mounts are found by the periodic scans
/// alone, and `failed` says so in the realtime status.
fn spawn_mount_poller(
    root: &HostRoot,
    events: Sender<Vec<RawEvent>>,
    stop: Arc<AtomicBool>,
    failed: impl Fn(String) + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    let give_up = move |what: &str, error: &dyn std::fmt::Display| {
        tracing::error!(%error, "{what}; mounts over watched paths are found by the periodic scans only");
        failed(format!(
            "{what} ({error}): mounts over watched paths are found by the periodic scans only"
        ));
    };
    let opened = root.mount_path().and_then(|host_root| {
        let poller = mounts::Poller::open()?;
        let table = mounts::Table::read(&host_root)?;
        Ok((host_root, poller, table))
    });
    let (host_root, poller, mut table) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            give_up("cannot poll the mount table", &error);
            return None;
        }
    };
    Some(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match poller.changed(Duration::from_millis(200)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(errno) => {
                    give_up("polling the mount table failed", &errno);
                    return;
                }
            }
            let now = match mounts::Table::read(&host_root) {
                Ok(now) => now,
                Err(error) => {
                    give_up("reading the mount table failed", &error);
                    return;
                }
            };
            let batch: Vec<RawEvent> = table
                .changed_points(&now)
                .into_iter()
                .map(|point| RawEvent {
                    wd: MOUNT_EVENT,
                    mask: rustix::fs::inotify::ReadFlags::empty(),
                    name: Some(point),
                })
                .collect();
            table = now;
            if !batch.is_empty() && !forward(&events, batch, &stop) {
                return;
            }
        }
    }))
}

/// Gathers the events that closely follow the first one (DEBOUNCE_QUIET, DEBOUNCE_MAX).
pub async fn debounce(first: Vec<RawEvent>, events: &mut Receiver<Vec<RawEvent>>) -> Vec<RawEvent> {
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
