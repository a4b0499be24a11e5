//! The inotify watches on every monitored directory, and the mapping from events to the keys a
//! targeted rescan must cover. It never decides what changed: the keys go
//! through the scanner (`Scanner::scan_targets`), so a change has one source of truth.
//!
//! What it watches, per entity:
//! - an *anchor*: the directory holding the entity's base, filtered to the base's name (or, for
//!   a wildcard entity, the base directory filtered by the pattern), so the base appearing,
//!   vanishing or being replaced is seen;
//! - for a directory entity, the base and every directory below it within the depth budget
//!   (new directories are watched before they are rescanned, so nothing created in them is
//!   missed);
//! - for services, the unit directories, the enablement directories and the drop-in directories.
//!
//! Watches are added through `/proc/self/fd/N` of a directory opened safely inside the host
//! root, so a watch can never land outside it. When events are lost (queue overflow), a watched
//! directory disappears, or the watch limit is reached, the caller rescans to cover the gap and
//! `degraded` says why until the gap is covered (or, for the watch limit, for good: periodic
//! scans then carry the entities that could not be watched).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    ffi::CStr,
    os::fd::{AsFd, AsRawFd, OwnedFd},
};

use globset::GlobMatcher;
use kubefim_crds::{EntityType, FileType};
use rustix::{
    fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags},
    io::Errno,
};

use crate::{
    config::WorkspaceKey,
    hostfs::{self, HostRoot},
    resolve::ResolvedEntity,
    services,
    walk::{self, WalkItem, Walker},
};

/// The `wd` of an event that is no inotify event: the mount table changed at the mount point
/// its `name` holds (a key of the host view), `mounts::Poller` saw it.
pub const MOUNT_EVENT: i32 = -1;

/// A raw event, copied out of the kernel buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub wd: i32,
    pub mask: ReadFlags,
    pub name: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
enum Filter {
    /// Every name in the directory belongs to the entity.
    Any,
    /// Only this name (the anchor of an entity's base).
    Name(Vec<u8>),
    /// Names matching the entity's last-segment pattern.
    Pattern(GlobMatcher),
}

#[derive(Clone, Debug)]
struct Watch {
    /// Index of the entity in the watcher's entity list.
    entity: usize,
    dir_key: Vec<u8>,
    filter: Filter,
}

/// An entity the watcher serves, identified by (workspace, entity name).
#[derive(Clone, Debug)]
pub struct WatchedEntity {
    pub workspace: WorkspaceKey,
    pub resolved: ResolvedEntity,
    /// Its workspace names the actors of changes: its directories are registered with them.
    pub actors: bool,
}

/// What the events of one batch ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Signal {
    /// (workspace, entity) → keys to rescan (the empty key: the whole entity).
    pub targets: BTreeMap<(WorkspaceKey, String), BTreeSet<Vec<u8>>>,
    /// Events were lost: every watched entity must be rescanned.
    pub overflow: bool,
}

/// The inotify instance and its watch registry.
#[derive(Debug)]
pub struct Watcher {
    fd: OwnedFd,
    entities: Vec<WatchedEntity>,
    watches: HashMap<i32, Vec<Watch>>,
    /// The most watches this agent adds (its own budget, below the kernel's limit).
    budget: usize,
    /// Why realtime detection is degraded, if it is.
    pub degraded: Option<String>,
    /// Where directories watched for entities with actors are registered.
    actors: Option<std::sync::Arc<crate::actors::Actors>>,
}

const DIR_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR)
    .union(WatchFlags::EXCL_UNLINK);

impl Watcher {
    /// A watcher that adds at most `budget` watches.
    pub fn new(budget: usize) -> Result<Self, Errno> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        Ok(Self {
            fd,
            entities: Vec::new(),
            watches: HashMap::new(),
            budget,
            degraded: None,
            actors: None,
        })
    }

    /// The inotify descriptor, for the thread that reads events.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A duplicate of the inotify descriptor for the reader thread.
    pub fn reader_fd(&self) -> Result<OwnedFd, Errno> {
        rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
    }

    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    pub fn entities(&self) -> &[WatchedEntity] {
        &self.entities
    }

    /// Watches an entity: its anchor and every directory of it.
    /// Registers every directory watched from now on for an entity with actors.
    pub fn set_actors(&mut self, actors: std::sync::Arc<crate::actors::Actors>) {
        self.actors = Some(actors);
    }

    pub fn add_entity(
        &mut self,
        root: &HostRoot,
        workspace: &WorkspaceKey,
        resolved: ResolvedEntity,
        actors: bool,
    ) {
        let index = self.entities.len();
        self.entities.push(WatchedEntity {
            workspace: workspace.clone(),
            resolved,
            actors,
        });
        let resolved = self.entities[index].resolved.clone();
        if resolved.entity_type == EntityType::LinuxService {
            for dir in services::UNIT_DIRS {
                let components: Vec<Vec<u8>> = dir.split('/').map(|s| s.as_bytes().to_vec()).collect();
                self.add(root, index, &components, Filter::Any);
            }
            self.watch_unit_subdirs(root, index);
            return;
        }
        match (&resolved.pattern, resolved.base.split_last()) {
            (Some(pattern), _) => self.add(root, index, &resolved.base, Filter::Pattern(pattern.clone())),
            (None, Some((name, parent))) => self.add(root, index, parent, Filter::Name(name.clone())),
            (None, None) => {}
        }
        self.watch_tree(root, index, &resolved.base.join(&0u8));
    }

    /// Watches the directories inside the unit directories that hold a unit's state: the
    /// enablement links (`*.wants`, `*.requires` under /etc/systemd/system) and the drop-ins
    /// (`*.d`). Called again after each event, for directories created since.
    fn watch_unit_subdirs(&mut self, root: &HostRoot, index: usize) {
        for unit_dir in services::UNIT_DIRS {
            let components: Vec<Vec<u8>> = unit_dir.split('/').map(|s| s.as_bytes().to_vec()).collect();
            let Ok(dir) = root.open_dir(&components) else {
                continue;
            };
            let Ok(names) = hostfs::list_sorted(&dir) else {
                continue;
            };
            for name in names {
                let text = String::from_utf8_lossy(name.to_bytes());
                let enablement = unit_dir == "etc/systemd/system"
                    && (text.ends_with(".wants") || text.ends_with(".requires"));
                if enablement || text.ends_with(".d") {
                    let mut sub = components.clone();
                    sub.push(name.to_bytes().to_vec());
                    self.add(root, index, &sub, Filter::Any);
                }
            }
        }
    }

    /// Watches every directory at or below `key` that lies within the entity's depth budget.
    /// Called before a targeted rescan of `key`, so what is created in a new directory after
    /// this point raises an event, and what was created before is found by the rescan.
    pub fn watch_tree(&mut self, root: &HostRoot, index: usize, key: &[u8]) {
        let resolved = self.entities[index].resolved.clone();
        if resolved.entity_type == EntityType::LinuxService {
            self.watch_unit_subdirs(root, index);
            return;
        }
        let mut directories = Vec::new();
        let target = if key.is_empty() {
            resolved.base.join(&0u8)
        } else {
            key.to_vec()
        };
        for item in Walker::at(root, &resolved, &target) {
            if let WalkItem::Entry(entry) = item
                && entry.meta.file_type == FileType::Directory
                && entry.depth < resolved.levels
            {
                directories.push(entry.key);
            }
        }
        for dir_key in directories {
            let components: Vec<Vec<u8>> = dir_key.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
            self.add(root, index, &components, Filter::Any);
        }
    }

    fn add(&mut self, root: &HostRoot, entity: usize, components: &[Vec<u8>], filter: Filter) {
        if self
            .degraded
            .as_deref()
            .is_some_and(|reason| reason.contains("watch limit"))
        {
            return;
        }
        let Ok(dir) = root.open_dir(components) else {
            return;
        };
        if self.watches.len() >= self.budget {
            self.degraded = Some(format!(
                "watch limit reached: the agent's budget of {} inotify watches is used; changes beyond it are found by the periodic scans",
                self.budget
            ));
            return;
        }
        // The descriptor was opened safely inside the root; watching it through /proc keeps the
        // watch there even if the path is swapped for a symlink meanwhile.
        let path = format!("/proc/self/fd/{}", dir.as_raw_fd());
        match inotify::add_watch(&self.fd, path.as_str(), DIR_EVENTS) {
            Ok(wd) => {
                if let Some(actors) = &self.actors
                    && self.entities[entity].actors
                {
                    actors.register(&dir, &walk::key_to_path(&components.join(&0u8)));
                }
                let dir_key = components.join(&0u8);
                let watches = self.watches.entry(wd).or_default();
                if !watches.iter().any(|w| w.entity == entity && w.dir_key == dir_key) {
                    watches.push(Watch {
                        entity,
                        dir_key,
                        filter,
                    });
                }
            }
            Err(Errno::NOSPC) => {
                self.degraded = Some(
                    "watch limit reached: the kernel's fs.inotify.max_user_watches is exhausted; raise it, changes beyond it are found by the periodic scans"
                        .to_string(),
                );
            }
            Err(_) => {}
        }
    }

    /// Maps a batch of events to rescan targets, and forgets watches the kernel dropped.
    pub fn interpret(&mut self, events: &[RawEvent]) -> Signal {
        let mut signal = Signal::default();
        for event in events {
            if event.mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                signal.overflow = true;
                continue;
            }
            if event.wd == MOUNT_EVENT {
                self.mount_changed(event.name.as_deref().unwrap_or_default(), &mut signal);
                continue;
            }
            let Some(watches) = self.watches.get(&event.wd) else {
                continue;
            };
            for watch in watches {
                let entity = &self.entities[watch.entity];
                let key = match (&event.name, &watch.filter) {
                    (_, _) if entity.resolved.entity_type == EntityType::LinuxService => Vec::new(),
                    (Some(name), Filter::Any) => walk::join_key(&watch.dir_key, name),
                    (Some(name), Filter::Name(wanted)) if name == wanted => {
                        walk::join_key(&watch.dir_key, name)
                    }
                    (Some(name), Filter::Pattern(pattern))
                        if pattern.is_match(String::from_utf8_lossy(name).as_ref()) =>
                    {
                        walk::join_key(&watch.dir_key, name)
                    }
                    (Some(_), _) => continue,
                    // The watched directory itself went away or moved: rescan what it held.
                    (None, Filter::Any) => watch.dir_key.clone(),
                    (None, _) => entity.resolved.base.join(&0u8),
                };
                signal
                    .targets
                    .entry((entity.workspace.clone(), entity.resolved.name.clone()))
                    .or_default()
                    .insert(key);
            }
            if event.mask.contains(ReadFlags::IGNORED) {
                self.watches.remove(&event.wd);
            }
        }
        signal
    }

    /// A mount appeared or went at `point`: an entity it lies in rescans the mount point, an
    /// entity it lies above (a mount over an ancestor of its base) rescans whole. The rescan
    /// watches the tree it finds first, so the watches follow the mount.
    fn mount_changed(&self, point: &[u8], signal: &mut Signal) {
        for entity in &self.entities {
            let base = entity.resolved.base.join(&0u8);
            let key = if entity.resolved.entity_type == EntityType::LinuxService
                || walk::key_within(&base, point)
            {
                base
            } else if walk::key_within(point, &base) {
                point.to_vec()
            } else {
                continue;
            };
            signal
                .targets
                .entry((entity.workspace.clone(), entity.resolved.name.clone()))
                .or_default()
                .insert(key);
        }
    }

    /// The index of an entity in the registry.
    pub fn entity_index(&self, workspace: &WorkspaceKey, entity: &str) -> Option<usize> {
        self.entities
            .iter()
            .position(|e| &e.workspace == workspace && e.resolved.name == entity)
    }
}

/// Reads every event available on `fd` (non-blocking) into owned events.
pub fn read_events(fd: impl AsFd, buffer: &mut [std::mem::MaybeUninit<u8>]) -> Result<Vec<RawEvent>, Errno> {
    let mut reader = inotify::Reader::new(fd, buffer);
    let mut events = Vec::new();
    loop {
        match reader.next() {
            Ok(event) => events.push(RawEvent {
                wd: event.wd(),
                mask: event.events(),
                name: event
                    .file_name()
                    .map(|n: &CStr| n.to_bytes().to_vec())
                    .filter(|n| !n.is_empty()),
            }),
            Err(Errno::AGAIN) => return Ok(events),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno),
        }
        if reader.is_buffer_empty() && events.len() >= 4096 {
            return Ok(events);
        }
    }
}

/// Waits up to `timeout` for the inotify descriptor to become readable.
pub fn wait_readable(fd: impl AsFd, timeout: std::time::Duration) -> Result<bool, Errno> {
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let timeout = rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(Errno::INTR) => Ok(false),
        Err(errno) => Err(errno),
    }
}
