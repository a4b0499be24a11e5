//! The walk of one entity on several threads, in exactly the order of [`Walker::new`], so the
//! merge-join keeps its sorted order and flat memory. A shallow walker yields the base and its
//! own entries; each entry that is a directory the walk enters has its subtree walked ahead by a
//! worker thread (with [`Walker::at`], the same rules) into a bounded queue, and the subtree's
//! items are yielded right after the directory itself. At most one queue per worker is filled
//! ahead of the consumer, so memory stays bounded whatever the size of the tree.
//!
//! Workers take subtrees in the order the consumer needs them, so the subtree being consumed
//! is always walked (or done): bounded queues cannot deadlock.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    thread::Scope,
};

use super::{WalkItem, Walker};
use crate::{hostfs::HostRoot, lock, resolve::ResolvedEntity};

/// Items sent at a time from a worker.
const CHUNK: usize = 256;
/// Chunks a subtree's queue holds before its worker waits for the consumer.
const QUEUED_CHUNKS: usize = 16;
/// Entries of the base's own level read ahead to find the next subtrees to start.
const LOOKAHEAD: usize = 4096;

/// A subtree to walk: the key of its directory, and where its items go.
struct Job {
    key: Vec<u8>,
    items: SyncSender<Vec<WalkItem>>,
}

/// What comes next, in order.
enum Upcoming {
    Item(WalkItem),
    /// The items below the directory yielded just before.
    Subtree(Receiver<Vec<WalkItem>>),
}

/// An entity walked with its subtrees on `workers` threads of a scope.
pub struct ParallelWalk<'a> {
    shallow: Walker<'a>,
    shallow_done: bool,
    upcoming: VecDeque<Upcoming>,
    /// Subtrees handed to the workers and not yet consumed.
    ahead: usize,
    workers: usize,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    draining: Option<Receiver<Vec<WalkItem>>>,
    chunk: std::vec::IntoIter<WalkItem>,
}

impl std::fmt::Debug for ParallelWalk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelWalk")
            .field("workers", &self.workers)
            .field("ahead", &self.ahead)
            .finish()
    }
}

impl<'a> ParallelWalk<'a> {
    /// Starts `workers` threads in `scope` (none for a walk on this thread alone).
    pub fn new<'scope>(
        scope: &'scope Scope<'scope, 'a>,
        root: &'a HostRoot,
        entity: &'a ResolvedEntity,
        workers: usize,
    ) -> Self {
        let mut shallow = Walker::new(root, entity);
        let jobs = if workers == 0 || entity.levels <= 1 {
            None
        } else {
            shallow.levels = 1;
            let (sender, receiver) = std::sync::mpsc::channel::<Job>();
            let receiver = Arc::new(Mutex::new(receiver));
            for _ in 0..workers {
                let receiver = receiver.clone();
                scope.spawn(move || {
                    crate::resources::scan_thread_started();
                    // The lock is held only to take the next job, in order.
                    while let Ok(job) = { lock(&receiver).recv() } {
                        walk_subtree(root, entity, job);
                    }
                });
            }
            Some(sender)
        };
        Self {
            shallow,
            shallow_done: false,
            upcoming: VecDeque::new(),
            ahead: 0,
            workers,
            jobs,
            draining: None,
            chunk: Vec::new().into_iter(),
        }
    }

    /// Reads the shallow walk ahead until `workers` subtrees are started (or the lookahead is
    /// full, or the shallow walk ends).
    fn read_ahead(&mut self) {
        while !self.shallow_done && self.ahead < self.workers.max(1) && self.upcoming.len() < LOOKAHEAD {
            let Some(item) = self.shallow.next() else {
                self.shallow_done = true;
                return;
            };
            let subtree = match (&item, &self.jobs) {
                (WalkItem::Entry(entry), Some(jobs))
                    if entry.depth == 1
                        && self
                            .shallow
                            .enters(&entry.key, &entry.meta, 1, self.shallow.entity.levels) =>
                {
                    let (items, receiver) = sync_channel(QUEUED_CHUNKS);
                    let job = Job {
                        key: entry.key.clone(),
                        items,
                    };
                    jobs.send(job).ok().map(|()| receiver)
                }
                _ => None,
            };
            self.upcoming.push_back(Upcoming::Item(item));
            if let Some(receiver) = subtree {
                self.ahead += 1;
                self.upcoming.push_back(Upcoming::Subtree(receiver));
            }
        }
    }
}

impl Iterator for ParallelWalk<'_> {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            if let Some(item) = self.chunk.next() {
                return Some(item);
            }
            if let Some(receiver) = &self.draining {
                match receiver.recv() {
                    Ok(chunk) => {
                        self.chunk = chunk.into_iter();
                        continue;
                    }
                    // The worker finished the subtree.
                    Err(_) => {
                        self.draining = None;
                        self.ahead -= 1;
                    }
                }
            }
            self.read_ahead();
            match self.upcoming.pop_front()? {
                Upcoming::Item(item) => return Some(item),
                Upcoming::Subtree(receiver) => self.draining = Some(receiver),
            }
        }
    }
}

/// Walks what lies below `job.key` (the directory itself was yielded by the shallow walk) into
/// the job's queue, in chunks; stops when the consumer is gone.
fn walk_subtree(root: &HostRoot, entity: &ResolvedEntity, job: Job) {
    let mut walker = Walker::at(root, entity, &job.key);
    walker.parallel_stats = false;
    let mut items = walker.peekable();
    // Walker::at yields the directory first; it was already yielded, in order, by the shallow walk.
    if let Some(WalkItem::Entry(entry)) = items.peek()
        && entry.key == job.key
    {
        items.next();
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    for item in items {
        chunk.push(item);
        if chunk.len() == CHUNK
            && job
                .items
                .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                .is_err()
        {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = job.items.send(chunk);
    }
}
