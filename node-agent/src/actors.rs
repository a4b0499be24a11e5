//! Who made a change: fanotify on the filesystems holding watched directories names the pid
//! of every process that modifies, creates, deletes, moves or changes the attributes of an
//! entry in them, and /proc says who that process is, read the moment the event arrives
//! (`process`, `cgroup`). Realtime changes of workspaces with `scan.actors: On` carry the
//! last process seen changing their path.
//!
//! fanotify reports a directory by its file handle and the entry by its name
//! (`FAN_REPORT_DFID_NAME`); the watcher registers the handle of each directory it watches,
//! so an event maps to a path without resolving handles (which would need
//! CAP_DAC_READ_SEARCH) and an event outside the watched directories costs one hash lookup.
//! Bounded everywhere: the kernel's queue (an overflow is counted, logged and forgets what
//! was learned, so nothing stale is attached), at most [`RECENT_MAX`] paths remembered for at
//! most [`RECENT_FOR`], and each process read once per second at most.

mod cgroup;
pub mod events;
pub mod process;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    os::fd::{AsFd, OwnedFd},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use kubefim_crds::{
    WorkspaceConfig,
    filechange::{Actor, ChangedAttribute},
    nodestatus::ActorsState,
    workspace::ActorsMode,
};

use crate::{diff::Change, hostfs::HostRoot, lock, sys};

/// What the agent asks fanotify for.
const MASK: u64 = sys::fan::MODIFY
    | sys::fan::ATTRIB
    | sys::fan::CREATE
    | sys::fan::DELETE
    | sys::fan::MOVED_FROM
    | sys::fan::MOVED_TO
    | sys::fan::OPEN_EXEC
    | sys::fan::ONDIR;
/// A process that execs within this long of being read for a change may have been read as
/// the program it became: its executable, name and command line are dropped.
const EXEC_RACE: Duration = Duration::from_secs(1);
/// Paths remembered with their last actor, at most...
pub const RECENT_MAX: usize = 16_384;
/// ...and for at most this long (a realtime rescan can wait behind a long full scan).
pub const RECENT_FOR: Duration = Duration::from_secs(600);
/// A process is read again after this long (a shell writing in a loop is read once a second).
const PROCESS_FRESH: Duration = Duration::from_secs(1);
/// How long the scan waits for the reader to catch up with events queued before it asked.
const CATCH_UP: Duration = Duration::from_millis(200);

/// Pod names by uid, from the API server (the agent's own node only).
pub trait PodNames: Send + Sync + std::fmt::Debug {
    /// (namespace, name) of the pod with `uid` on this node, if the API server has it.
    fn name(&self, uid: &str) -> Option<(String, String)>;
}

/// Where the actors of changes come from, for the scanner.
pub trait ActorSource: Sync {
    fn actor_of(&self, workspace: &WorkspaceConfig, change: &Change) -> Option<Actor>;
}

#[derive(Debug, Default)]
struct Directories {
    /// (fsid, handle type, handle) → the directory's host-view path.
    by_handle: HashMap<(u64, i32, Vec<u8>), String>,
    /// Filesystems marked, by fsid.
    marked: HashSet<u64>,
    /// Why a filesystem could not be marked (the first such reason).
    refused: Option<String>,
}

#[derive(Debug, Default)]
struct Recent {
    by_path: HashMap<String, (Instant, Actor)>,
    order: VecDeque<(String, Instant)>,
}

impl Recent {
    fn insert(&mut self, path: String, actor: Actor) {
        let now = Instant::now();
        self.order.push_back((path.clone(), now));
        self.by_path.insert(path, (now, actor));
        while self.order.len() > RECENT_MAX {
            if let Some((old, at)) = self.order.pop_front()
                && self.by_path.get(&old).is_some_and(|(seen, _)| *seen == at)
            {
                self.by_path.remove(&old);
            }
        }
    }

    fn clear(&mut self) {
        self.by_path.clear();
        self.order.clear();
    }
}

#[derive(Debug)]
struct Shared {
    directories: Mutex<Directories>,
    recent: Mutex<Recent>,
    lost: AtomicU64,
    /// When the read began whose events the reader has last finished with (every event queued
    /// before it has been read), and a condition to wait for it to move.
    caught_up: Mutex<Instant>,
    caught_up_changed: Condvar,
    /// Set while the reader waits on an empty queue, all it read processed.
    idle: AtomicBool,
    stop: AtomicBool,
    reading: AtomicBool,
    failed: Mutex<Option<String>>,
}

/// One fanotify group and the thread reading it.
#[derive(Debug)]
pub struct Actors {
    group: Arc<OwnedFd>,
    shared: Arc<Shared>,
    reader: Mutex<Option<std::thread::JoinHandle<()>>>,
    pods: Mutex<Option<Arc<dyn PodNames>>>,
}

impl Actors {
    /// A fanotify group whose events are read on a thread of its own; the reason when fanotify
    /// cannot be used (no CAP_SYS_ADMIN, a kernel without FID reporting).
    pub fn start(root: &HostRoot, proc: PathBuf) -> Result<Arc<Self>, String> {
        let group = sys::fanotify_init(
            sys::fan::CLASS_NOTIF
                | sys::fan::CLOEXEC
                | sys::fan::NONBLOCK
                | sys::fan::REPORT_DIR_FID
                | sys::fan::REPORT_NAME,
            (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as u32,
        )
        .map_err(|error| {
            format!("fanotify_init failed ({error}): actors need CAP_SYS_ADMIN and Linux 5.9 or later")
        })?;
        let users = process::Users::new(
            root.dir()
                .map_err(|e| format!("cannot open the host root: {e}"))?,
        );
        let group = Arc::new(group);
        let shared = Arc::new(Shared {
            directories: Mutex::default(),
            recent: Mutex::default(),
            lost: AtomicU64::new(0),
            caught_up: Mutex::new(Instant::now()),
            caught_up_changed: Condvar::new(),
            idle: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            reading: AtomicBool::new(true),
            failed: Mutex::new(None),
        });
        let reader = {
            let (group, shared) = (group.clone(), shared.clone());
            std::thread::Builder::new()
                .name("fanotify".into())
                .spawn(move || read_events(&group, &shared, &proc, users))
                .map_err(|e| format!("cannot start the fanotify reader: {e}"))?
        };
        Ok(Arc::new(Self {
            group,
            shared,
            reader: Mutex::new(Some(reader)),
            pods: Mutex::new(None),
        }))
    }

    /// Where pod names come from (the cluster agent's pod list).
    pub fn set_pod_names(&self, pods: Arc<dyn PodNames>) {
        *lock(&self.pods) = Some(pods);
    }

    /// Registers a watched directory (open, at host-view `path`), marking its filesystem first
    /// if it is new.
    pub fn register(&self, dir: &OwnedFd, path: &str) {
        let (fsid, (handle_type, handle)) =
            match sys::fsid_of(dir.as_fd()).and_then(|fsid| Ok((fsid, sys::handle_of(dir.as_fd())?))) {
                Ok(found) => found,
                Err(error) => {
                    lock(&self.shared.directories).refused.get_or_insert_with(|| {
                    format!(
                        "the file handle of {path} cannot be had ({error}): changes under it carry no actor"
                    )
                });
                    return;
                }
            };
        let mut directories = lock(&self.shared.directories);
        if !directories.marked.contains(&fsid) {
            match sys::fanotify_mark_filesystem(self.group.as_fd(), MASK, dir.as_fd()) {
                Ok(()) => {
                    directories.marked.insert(fsid);
                }
                Err(error) => {
                    tracing::warn!(%path, %error, "fanotify cannot mark the filesystem holding it: changes there carry no actor");
                    directories.refused.get_or_insert_with(|| {
                        format!("fanotify cannot mark the filesystem holding {path} ({error}): changes there carry no actor")
                    });
                    return;
                }
            }
        }
        directories
            .by_handle
            .insert((fsid, handle_type, handle), path.to_string());
    }

    /// Waits (at most [`CATCH_UP`]) until every event queued before now has been read and
    /// mapped, so that the events of what a rescan is about to report are known: a read begun
    /// since has been processed, or the reader is idle on a queue with nothing to read.
    fn catch_up(&self) {
        let asked = Instant::now();
        let deadline = asked + CATCH_UP;
        let mut caught_up = lock(&self.shared.caught_up);
        while *caught_up < asked && self.shared.reading.load(Ordering::Acquire) {
            // The queue first, then the reader: empty and idle means all was processed.
            if !readable(&self.group) && self.shared.idle.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wait = (deadline - now).min(Duration::from_millis(2));
            caught_up = match self.shared.caught_up_changed.wait_timeout(caught_up, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The node status of actors.
    pub fn status(&self) -> (ActorsState, Option<String>, u64) {
        let lost = self.shared.lost.load(Ordering::Relaxed);
        if let Some(failed) = lock(&self.shared.failed).clone() {
            return (ActorsState::Unavailable, Some(failed), lost);
        }
        let directories = lock(&self.shared.directories);
        let state = if directories.marked.is_empty() {
            ActorsState::Unavailable
        } else {
            ActorsState::Active
        };
        let reason = directories.refused.clone().or_else(|| {
            (state == ActorsState::Unavailable).then(|| "no watched filesystem could be marked".to_string())
        });
        (state, reason, lost)
    }

    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = lock(&self.reader).take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Actors {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ActorSource for Actors {
    fn actor_of(&self, workspace: &WorkspaceConfig, change: &Change) -> Option<Actor> {
        // A mount is seen in the mount table, not by fanotify: whatever wrote the path last is
        // not who mounted over it.
        if workspace.scan.actors != ActorsMode::On || change.changed.contains(&ChangedAttribute::Mount) {
            return None;
        }
        self.catch_up();
        let (seen, mut actor) = lock(&self.shared.recent).by_path.remove(&change.path)?;
        if seen.elapsed() > RECENT_FOR {
            return None;
        }
        if let (Some(pod), Some(pods)) = (actor.pod.as_mut(), lock(&self.pods).clone())
            && let Some((namespace, name)) = pods.name(&pod.uid)
        {
            pod.namespace = Some(namespace);
            pod.name = Some(name);
        }
        Some(actor)
    }
}

/// Whether the group has events to read.
fn readable(group: &OwnedFd) -> bool {
    let mut poll = [rustix::event::PollFd::new(group, rustix::event::PollFlags::IN)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut poll, Some(&zero)).is_ok_and(|ready| ready > 0)
}

/// The reader thread: reads events until `stop`, mapping each to a path and reading its
/// process.
fn read_events(group: &OwnedFd, shared: &Shared, proc: &std::path::Path, mut users: process::Users) {
    let own_pid = std::process::id();
    let mut processes: HashMap<u32, (Instant, Actor)> = HashMap::new();
    // The paths attributed from each reading of a process in the last [`EXEC_RACE`].
    let mut readings: HashMap<u32, (Instant, Vec<String>)> = HashMap::new();
    let mut buffer = vec![0u8; 256 << 10];
    let mut last_overflow_log: Option<Instant> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        shared.idle.store(false, Ordering::Release);
        let read = rustix::io::read(group, &mut buffer);
        let len = match read {
            Ok(len) => len,
            Err(rustix::io::Errno::AGAIN) => {
                *lock(&shared.caught_up) = started;
                shared.idle.store(true, Ordering::Release);
                shared.caught_up_changed.notify_all();
                let mut poll = [rustix::event::PollFd::new(group, rustix::event::PollFlags::IN)];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 200_000_000,
                };
                let _ = rustix::event::poll(&mut poll, Some(&timeout));
                continue;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => {
                tracing::error!(%error, "reading fanotify events failed: changes carry no actor from now on");
                *lock(&shared.failed) = Some(format!("reading fanotify events failed ({error})"));
                break;
            }
        };
        let (events, clean) = events::parse(&buffer[..len]);
        if !clean {
            tracing::warn!("a malformed fanotify event ended its batch; the rest of it carries no actor");
        }
        let batch_read = Instant::now();
        readings.retain(|_, (at, _)| at.elapsed() < EXEC_RACE);
        for event in events {
            if event.mask & sys::fan::OPEN_EXEC != 0 {
                // An exec is no change; it may make what was read of its process wrong.
                if let Ok(pid) = u32::try_from(event.pid) {
                    processes.remove(&pid);
                    if let Some((read_at, paths)) = readings.remove(&pid)
                        && (read_at >= batch_read || read_at.elapsed() < EXEC_RACE)
                    {
                        let mut recent = lock(&shared.recent);
                        for path in paths {
                            if let Some((_, actor)) = recent.by_path.get_mut(&path)
                                && actor.pid == pid
                            {
                                actor.executable = None;
                                actor.command_line = None;
                                actor.name = None;
                                actor.exec_after_change = true;
                            }
                        }
                    }
                }
                continue;
            }
            if event.overflow() {
                shared.lost.fetch_add(1, Ordering::Relaxed);
                // What was learned before the gap may no longer be the last writer of a path.
                lock(&shared.recent).clear();
                if last_overflow_log.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    last_overflow_log = Some(Instant::now());
                    tracing::warn!(
                        "fanotify event queue overflowed: changes made meanwhile are reported without an actor"
                    );
                }
                continue;
            }
            let (Some(place), Ok(pid)) = (event.place, u32::try_from(event.pid)) else {
                continue;
            };
            // 0: a process outside the agent's PID namespace, which it cannot name.
            if pid == 0 || pid == own_pid {
                continue;
            }
            let Some(dir) = lock(&shared.directories)
                .by_handle
                .get(&(place.fsid, place.handle_type, place.handle))
                .cloned()
            else {
                continue;
            };
            let path = match place.name.as_slice() {
                b"" | b"." => dir,
                name if dir == "/" => format!("/{}", String::from_utf8_lossy(name)),
                name => format!("{dir}/{}", String::from_utf8_lossy(name)),
            };
            let (read_at, actor) = match processes.get(&pid) {
                Some((at, actor)) if at.elapsed() < PROCESS_FRESH => (*at, actor.clone()),
                _ => {
                    if processes.len() >= 4096 {
                        processes.clear();
                    }
                    let actor = process::read(proc, pid, &mut users);
                    let now = Instant::now();
                    processes.insert(pid, (now, actor.clone()));
                    (now, actor)
                }
            };
            if readings.len() < 4096 {
                let paths = &mut readings.entry(pid).or_insert((read_at, Vec::new())).1;
                if paths.len() < 1024 {
                    paths.push(path.clone());
                }
            }
            lock(&shared.recent).insert(path, actor);
        }
        *lock(&shared.caught_up) = started;
        shared.caught_up_changed.notify_all();
    }
    shared.reading.store(false, Ordering::Release);
    shared.caught_up_changed.notify_all();
}
