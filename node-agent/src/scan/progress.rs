//! How far the full scan in progress is, for the people waiting on it: files and bytes so far
//! and the entity being scanned, kept in process-wide atomics the engine bumps as it goes (a
//! relaxed add per file, nothing it waits on). The agent's modes log a line every 10 s of a
//! long scan; the one-shot commands draw a progress line on a terminal instead.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

static RUNNING: AtomicBool = AtomicBool::new(false);
static FILES: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// What a full scan has done so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `namespace/workspace/entity` being scanned.
    pub entity: String,
    pub files: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Marks a full scan of workspace `namespace/name` as running until the guard drops.
pub(super) fn begin(namespace: &str, name: &str) -> Guard {
    FILES.store(0, Ordering::Relaxed);
    BYTES.store(0, Ordering::Relaxed);
    if let Ok(mut current) = CURRENT.lock() {
        *current = Some((format!("{namespace}/{name}"), Instant::now()));
    }
    RUNNING.store(true, Ordering::Release);
    Guard
}

pub(super) struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

/// The entity a full scan is at; nothing outside one (a realtime rescan pays no lock).
pub(super) fn entity(namespace: &str, workspace: &str, name: &str) {
    if !RUNNING.load(Ordering::Acquire) {
        return;
    }
    if let Ok(mut current) = CURRENT.lock()
        && let Some((label, _)) = current.as_mut()
    {
        *label = format!("{namespace}/{workspace}/{name}");
    }
}

pub(super) fn file() {
    FILES.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn bytes(n: u64) {
    BYTES.fetch_add(n, Ordering::Relaxed);
}

/// The full scan in progress, if one is.
pub fn snapshot() -> Option<Snapshot> {
    if !RUNNING.load(Ordering::Acquire) {
        return None;
    }
    let (entity, since) = CURRENT.lock().ok()?.clone()?;
    Some(Snapshot {
        entity,
        files: FILES.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
        elapsed: since.elapsed(),
    })
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {:.1} MiB read in {}s, now {}",
            self.files,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.elapsed.as_secs(),
            self.entity
        )
    }
}

/// Logs the scan in progress every `every` (from the first `every` of each scan on), on a
/// thread of its own for the life of the process.
pub fn log_every(every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("scan-progress".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                if let Some(now) = snapshot().filter(|s| s.elapsed >= every) {
                    tracing::info!(files = now.files, bytes = now.bytes, entity = %now.entity,
                        elapsed_seconds = now.elapsed.as_secs(), "scan in progress: {now}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the scan progress log; scans run without it");
    }
}
