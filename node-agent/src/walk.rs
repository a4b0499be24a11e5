//! The walker: yields the filesystem objects of one entity in the order of their baseline keys,
//! so a scan can merge-join them against the stored baseline with memory that does not grow with
//! the number of files.
//!
//! A key is the host-view path with components joined by NUL. NUL sorts below every byte a name
//! can hold, so a depth-first walk that visits siblings in bytewise order produces keys in
//! strictly increasing bytewise order: `a`, `a\0b`, `a-c` (whereas `a/b` > `a-c` as strings).
//!
//! Safety (docs/design.md, "Scanner safety"): symlinks are reported, never followed; a directory is only entered with
//! O_NOFOLLOW; a mount inside an entity is walked (it is what the host shows at those paths),
//! a kernel pseudo filesystem (procfs, sysfs...) never is, however it is reached; /proc, /sys
//! and /dev are refused at resolution; an unreadable directory is reported as `Unreadable` so its stored
//! baseline is kept rather than reported as removed; depth is capped.

use std::{ffi::CString, os::fd::OwnedFd, sync::Arc};

use kubefim_crds::FileType;
use rayon::prelude::*;

mod parallel;

pub use parallel::ParallelWalk;

use crate::{
    hostfs::{self, FileMeta, FsErrorKind, HostRoot},
    resolve::{self, HARD_MAX_LEVELS, ResolvedEntity},
};

/// One filesystem object.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    pub key: Vec<u8>,
    /// The directory holding the object, kept open so the object can be opened by name
    /// without resolving its path again.
    pub parent: Arc<OwnedFd>,
    pub name: CString,
    pub meta: FileMeta,
    pub link_target: Option<Vec<u8>>,
    /// Levels below the entity's base (0 for the base itself).
    pub depth: u32,
}

impl WalkEntry {
    /// Host-view path for reports; bytes that are not UTF-8 become U+FFFD. Built on demand: a
    /// walk yields millions of entries and reports few of them.
    pub fn path(&self) -> String {
        key_to_path(&self.key)
    }
}

/// What the walker yields.
#[derive(Debug)]
pub enum WalkItem {
    Entry(WalkEntry),
    /// The object at `key` (or everything below it) could not be examined. Its baseline must be
    /// kept as it is: not knowing is not the same as removed.
    Unreadable {
        key: Vec<u8>,
        path: String,
        kind: FsErrorKind,
    },
}

/// The lstat of each name of a window of a frame, made ahead on the thread pool: a walk is
/// mostly waiting on lstat, and the kernel serves them in parallel.
type Prefetched = Vec<Result<FileMeta, rustix::io::Errno>>;

/// Names stat'ed ahead at a time: enough to keep both cores busy, few enough that memory stays
/// flat however large a directory is.
const PREFETCH: usize = 512;
/// Below this many names a window is stat'ed in place: handing it to the pool costs more.
const PARALLEL_STATS: usize = 24;

struct Frame {
    dir: Arc<OwnedFd>,
    key: Vec<u8>,
    names: Vec<CString>,
    next: usize,
    /// Depth of the names in this frame below the entity base (1 for the base's own entries).
    depth: u32,
    /// The metadata of `names[window_start..window_start + prefetched.len()]`.
    prefetched: Prefetched,
    window_start: usize,
}

impl Frame {
    fn new(dir: Arc<OwnedFd>, key: Vec<u8>, names: Vec<CString>, depth: u32) -> Self {
        Self {
            dir,
            key,
            names,
            next: 0,
            depth,
            prefetched: Vec::new(),
            window_start: 0,
        }
    }

    /// The lstat of `names[index]`, from the window, stat'ing the next window first when needed
    /// (on the thread pool when `parallel`).
    fn meta(&mut self, index: usize, parallel: bool) -> Result<FileMeta, rustix::io::Errno> {
        if index < self.window_start || index >= self.window_start + self.prefetched.len() {
            let end = (index + PREFETCH).min(self.names.len());
            let window = &self.names[index..end];
            let dir = &self.dir;
            self.prefetched = if !parallel || window.len() < PARALLEL_STATS {
                window.iter().map(|name| hostfs::stat_at(dir, name)).collect()
            } else {
                window.par_iter().map(|name| hostfs::stat_at(dir, name)).collect()
            };
            self.window_start = index;
        }
        self.prefetched[index - self.window_start]
    }
}

/// Depth-first walk over one entity.
pub struct Walker<'a> {
    entity: &'a ResolvedEntity,
    stack: Vec<Frame>,
    pending: Vec<WalkItem>,
    dev: u64,
    /// How many levels below the base this walker descends: the entity's, or fewer for the
    /// shallow walk of `parallel`.
    levels: u32,
    /// Stat large windows of a directory on the thread pool (off where the caller already walks
    /// on several threads).
    parallel_stats: bool,
    /// The entity's base path does not exist on this node.
    pub base_missing: bool,
}

impl std::fmt::Debug for Walker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walker")
            .field("entity", &self.entity.name)
            .field("depth", &self.stack.len())
            .finish()
    }
}

pub fn join_key(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parent.len() + 1 + name.len());
    key.extend_from_slice(parent);
    if !parent.is_empty() {
        key.push(0);
    }
    key.extend_from_slice(name);
    key
}

/// The host-view path of a key.
pub fn key_to_path(key: &[u8]) -> String {
    let mut path = String::with_capacity(key.len() + 1);
    for component in key.split(|b| *b == 0) {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(component));
    }
    if path.is_empty() { "/".into() } else { path }
}

/// True when `key` is `prefix` itself or lies below it.
pub fn key_within(key: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty() || (key.starts_with(prefix) && (key.len() == prefix.len() || key[prefix.len()] == 0))
}

impl<'a> Walker<'a> {
    /// A walker that yields nothing (yet).
    fn empty(entity: &'a ResolvedEntity) -> Self {
        Self {
            entity,
            stack: Vec::new(),
            pending: Vec::new(),
            dev: 0,
            levels: entity.levels,
            parallel_stats: true,
            base_missing: false,
        }
    }

    /// Whether a walk descending `levels` below the base enters directory `key` (found at
    /// `depth`, with `meta`): within the depth budget, and never the host's /proc, /sys or
    /// /dev. A mount inside the entity is entered (what is mounted there is what the host now
    /// shows at those paths); a pseudo filesystem is not (`examine`).
    fn enters(&self, key: &[u8], meta: &FileMeta, depth: u32, levels: u32) -> bool {
        let pseudo = !key.contains(&0) && resolve::PSEUDO_FILESYSTEMS.iter().any(|fs| fs.as_bytes() == key);
        meta.file_type == FileType::Directory && depth < levels && !pseudo
    }

    pub fn new(root: &HostRoot, entity: &'a ResolvedEntity) -> Self {
        let mut walker = Self::empty(entity);
        let base_key = entity.base.join(&0u8);
        let unreadable = |errno| WalkItem::Unreadable {
            key: base_key.clone(),
            path: key_to_path(&base_key),
            kind: FsErrorKind::from_errno(errno),
        };
        if entity.pattern.is_some() || entity.base.is_empty() {
            // The base is a directory whose entries (filtered by the pattern) are the entity.
            match root
                .open_dir(&entity.base)
                .and_then(|dir| Ok((hostfs::list_sorted(&dir)?, dir)))
            {
                Ok((names, dir)) => {
                    walker.dev = rustix::fs::fstat(&dir)
                        .map(|s| FileMeta::from_stat(&s).dev)
                        .unwrap_or(0);
                    let names = walker.matching(names, 1);
                    walker.stack.push(Frame::new(Arc::new(dir), base_key, names, 1));
                }
                Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => {
                    walker.base_missing = true
                }
                Err(errno) => walker.pending.push(unreadable(errno)),
            }
            return walker;
        }
        let (parent_components, name) = entity.base.split_at(entity.base.len() - 1);
        let parent = match root.open_dir(parent_components) {
            Ok(dir) => Arc::new(dir),
            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => {
                walker.base_missing = true;
                return walker;
            }
            Err(errno) => {
                walker.pending.push(unreadable(errno));
                return walker;
            }
        };
        let Ok(name) = CString::new(name[0].clone()) else {
            return walker;
        };
        let key = join_key(&parent_components.join(&0u8), name.to_bytes());
        match walker.examine(&parent, key, name, 0, None) {
            Some(WalkItem::Entry(entry)) => {
                walker.dev = entry.meta.dev;
                walker.pending.push(WalkItem::Entry(entry));
            }
            Some(item) => walker.pending.push(item),
            None => walker.base_missing = true,
        }
        walker
    }

    /// The names of a frame at `depth` that belong to the entity: at the base's own level only
    /// those matching the entity's pattern (filtered before anything is stat'ed).
    fn matching(&self, names: Vec<CString>, depth: u32) -> Vec<CString> {
        match (&self.entity.pattern, depth) {
            (Some(pattern), 1) => names
                .into_iter()
                .filter(|name| pattern.is_match(String::from_utf8_lossy(name.to_bytes()).as_ref()))
                .collect(),
            _ => names,
        }
    }

    /// Walks only the object at `target` (a key inside the entity) and what lies below it, as a
    /// full walk would see it: same depth budget, pattern, excludes and filesystem boundary.
    /// Realtime detection uses it to rescan just what an event touched.
    pub fn at(root: &HostRoot, entity: &'a ResolvedEntity, target: &[u8]) -> Self {
        let base_key = entity.base.join(&0u8);
        if target == base_key.as_slice() {
            return Self::new(root, entity);
        }
        let mut walker = Self::empty(entity);
        let components: Vec<Vec<u8>> = target.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        let within =
            components.len() > entity.base.len() && components[..entity.base.len()] == entity.base[..];
        let depth = u32::try_from(components.len() - entity.base.len()).unwrap_or(u32::MAX);
        if !within || depth > walker.levels {
            return walker;
        }
        let name = &components[components.len() - 1];
        if depth == 1
            && let Some(pattern) = &entity.pattern
            && !pattern.is_match(String::from_utf8_lossy(name).as_ref())
        {
            return walker;
        }
        // The filesystem boundary is the base's, not the target's.
        walker.dev = match root
            .open_dir(&entity.base)
            .and_then(|dir| rustix::fs::fstat(&dir))
        {
            Ok(stat) => FileMeta::from_stat(&stat).dev,
            Err(_) => return walker,
        };
        let parent_components = &components[..components.len() - 1];
        let parent = match root.open_dir(parent_components) {
            Ok(dir) => Arc::new(dir),
            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => return walker,
            Err(errno) => {
                walker.pending.push(WalkItem::Unreadable {
                    key: target.to_vec(),
                    path: key_to_path(target),
                    kind: FsErrorKind::from_errno(errno),
                });
                return walker;
            }
        };
        let Ok(name) = CString::new(name.clone()) else {
            return walker;
        };
        // examine() reports a mount point inside the entity without entering it, as a full walk.
        if let Some(item) = walker.examine(&parent, target.to_vec(), name, depth, None) {
            walker.pending.push(item);
        }
        walker
    }

    /// lstat one name, and when it is a directory to descend into, push its frame (after the
    /// entry itself has been yielded, since `pending` is drained before the stack).
    fn examine(
        &mut self,
        dir: &Arc<OwnedFd>,
        key: Vec<u8>,
        name: CString,
        depth: u32,
        prefetched: Option<Result<FileMeta, rustix::io::Errno>>,
    ) -> Option<WalkItem> {
        if self
            .entity
            .exclude
            .as_ref()
            .is_some_and(|set| set.is_match(key_to_path(&key)))
        {
            return None;
        }
        let meta = match prefetched.unwrap_or_else(|| hostfs::stat_at(dir, &name)) {
            Ok(meta) => meta,
            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => return None,
            Err(errno) => {
                return Some(WalkItem::Unreadable {
                    path: key_to_path(&key),
                    key,
                    kind: FsErrorKind::from_errno(errno),
                });
            }
        };
        let link_target = match meta.file_type {
            FileType::Symlink => hostfs::read_link_at(dir, &name).ok(),
            _ => None,
        };
        if self.enters(&key, &meta, depth, self.levels) {
            let crosses = meta.mount_root || meta.dev != self.dev;
            match hostfs::open_subdir(dir, &name)
                .and_then(|sub| match crosses && hostfs::is_pseudo_filesystem(&sub) {
                    true => Err(rustix::io::Errno::XDEV),
                    false => Ok(sub),
                })
                .and_then(|sub| Ok((hostfs::list_sorted(&sub)?, sub)))
            {
                Ok((names, sub)) => {
                    let names = self.matching(names, depth + 1);
                    self.stack
                        .push(Frame::new(Arc::new(sub), key.clone(), names, depth + 1))
                }
                Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => {}
                Err(errno) => self.pending.push(WalkItem::Unreadable {
                    key: key.clone(),
                    path: key_to_path(&key),
                    kind: FsErrorKind::from_errno(errno),
                }),
            }
        } else if meta.file_type == FileType::Directory && depth == HARD_MAX_LEVELS {
            self.pending.push(WalkItem::Unreadable {
                key: key.clone(),
                path: key_to_path(&key),
                kind: FsErrorKind::TooDeep,
            });
        }
        Some(WalkItem::Entry(WalkEntry {
            key,
            parent: dir.clone(),
            name,
            meta,
            link_target,
            depth,
        }))
    }
}

impl Iterator for Walker<'_> {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            if let Some(item) = self.pending.pop() {
                return Some(item);
            }
            let frame = self.stack.last_mut()?;
            let index = frame.next;
            if index >= frame.names.len() {
                self.stack.pop();
                continue;
            }
            frame.next += 1;
            // The stat first: it may read ahead from this name on.
            let meta = frame.meta(index, self.parallel_stats);
            // Each name is taken once: the frame has no further use for it.
            let name = std::mem::take(&mut frame.names[index]);
            let (dir, key, depth) = (
                frame.dir.clone(),
                join_key(&frame.key, name.to_bytes()),
                frame.depth,
            );
            // A frame or an Unreadable that examine() pushes comes after the entry returned now.
            if let Some(item) = self.examine(&dir, key, name, depth, Some(meta)) {
                return Some(item);
            }
        }
    }
}
