//! Parallel hashing of merged batches: the files whose stored digest cannot be reused are
//! hashed on the rayon pool while the walk goes on, then each step becomes a current state for
//! `record`, in key order.
//! The stored digest is reused only when the fast path vouches for it (same size, times, inode
//! and device, and `rehashEvery` not yet elapsed).

use kubefim_crds::{EntityType, FileType};
use rayon::prelude::*;

use super::{
    EntityScan,
    merge::{HostObject, Step},
    record::{self, CurrentState, Tables},
};
use crate::{
    Result,
    attributes::{self, Attributes},
    config::Settings,
    diff::Change,
    hash::{self, HashLimits, Hashed},
    hostfs::{FileMeta, FsErrorKind},
    records::Record,
    walk::WalkEntry,
};

/// What hashing a step produced (None: nothing to hash).
type HashResult = Option<std::result::Result<Hashed, FsErrorKind>>;

/// What the thread pool read of one step: its content, and its extended attributes (None:
/// the stored ones stand).
#[derive(Default)]
struct Work {
    hashed: HashResult,
    attributes: Option<std::result::Result<Attributes, rustix::io::Errno>>,
}

/// A batch being hashed on the thread pool, or one with nothing to hash.
enum InFlight {
    Hashing(std::sync::mpsc::Receiver<(Vec<Step>, Vec<Work>)>),
    Ready(Vec<Step>, Vec<Work>),
}

/// Batches handed to the thread pool and not yet recorded: enough that a large file at the end
/// of one batch does not leave the other threads idle, few enough that memory stays flat.
const IN_FLIGHT: usize = 4;

/// Hashes batches in the background while the walk goes on, and records them in key order: the
/// oldest batch is recorded once [`IN_FLIGHT`] are handed over (the rest at the end), so
/// walking, reading and hashing overlap.
#[derive(Default)]
pub(super) struct Pipeline {
    in_flight: std::collections::VecDeque<InFlight>,
}

impl Pipeline {
    /// Starts hashing `batch`; records the oldest batch when the pipeline is full.
    pub(super) fn submit(
        &mut self,
        scan: &mut EntityScan<'_>,
        batch: Vec<Step>,
        tables: &mut Tables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        self.in_flight.push_back(start(scan, batch));
        while self.in_flight.len() > IN_FLIGHT {
            self.record_oldest(scan, tables, sink)?;
        }
        Ok(())
    }

    /// Records every batch in flight, in order.
    pub(super) fn finish(
        &mut self,
        scan: &mut EntityScan<'_>,
        tables: &mut Tables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.record_oldest(scan, tables, sink)?;
        }
        Ok(())
    }

    fn record_oldest(
        &mut self,
        scan: &mut EntityScan<'_>,
        tables: &mut Tables<'_, '_>,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        let (batch, hashed) = match self.in_flight.pop_front() {
            None => return Ok(()),
            Some(InFlight::Ready(batch, hashed)) => (batch, hashed),
            Some(InFlight::Hashing(results)) => match results.recv() {
                Ok(done) => done,
                // The hashing task cannot vanish without sending unless it panicked.
                Err(_) => return Err(crate::Error::Internal("a hashing task ended without a result")),
            },
        };
        record_batch(scan, batch, hashed, tables, sink)
    }
}

/// Hands `batch` to the thread pool when any of it must be hashed.
fn start(scan: &EntityScan<'_>, batch: Vec<Step>) -> InFlight {
    let now = scan.now.as_second();
    let settings = scan.settings;
    let keeps_content = scan.entity.entity_type == EntityType::FileContent;
    let wanted = |step: &Step| match step {
        Step::Compare(old, HostObject::File(entry)) => {
            needs_hash(entry, old.as_ref(), &settings, now) || needs_attributes(entry, old.as_ref())
        }
        _ => false,
    };
    if !batch.iter().any(wanted) {
        let nothing = batch.iter().map(|_| Work::default()).collect();
        return InFlight::Ready(batch, nothing);
    }
    let (sender, results) = std::sync::mpsc::channel();
    let throttle = scan.throttle.clone();
    rayon::spawn(move || {
        let hashed: Vec<Work> = batch
            .par_iter()
            .map(|step| match step {
                Step::Compare(old, HostObject::File(entry)) => {
                    let hash = needs_hash(entry, old.as_ref(), &settings, now);
                    let hashed = hash.then(|| {
                        // The content of a secret is never kept, so it can never be diffed.
                        let limits = HashLimits {
                            keep_content_up_to: (keeps_content
                                && !record::withheld(&settings, &entry.path()))
                            .then_some(settings.content_max),
                            ..settings.limits
                        };
                        hash::hash_file(&entry.parent, &entry.name, limits, throttle.as_deref())
                    });
                    let attributes = (hash || needs_attributes(entry, old.as_ref()))
                        .then(|| attributes::read(&entry.parent, &entry.name, entry.meta.flags));
                    Work { hashed, attributes }
                }
                _ => Work::default(),
            })
            .collect();
        let _ = sender.send((batch, hashed));
    });
    InFlight::Hashing(results)
}

/// Records a hashed batch, in key order.
fn record_batch(
    scan: &mut EntityScan<'_>,
    batch: Vec<Step>,
    work: Vec<Work>,
    tables: &mut Tables<'_, '_>,
    sink: &mut dyn FnMut(Change),
) -> Result<()> {
    let now = scan.now.as_second();
    let settings = scan.settings;
    for (step, Work { hashed, attributes }) in batch.into_iter().zip(work) {
        match step {
            Step::Removed(key, old) => record::removed(scan, key, old, tables, sink)?,
            Step::Hidden(key, old) => record::hidden(key, old, tables)?,
            Step::Compare(old, HostObject::Unit { key, record }) => {
                let current = CurrentState {
                    key,
                    record: *record,
                    digest_known: true,
                    content: None,
                };
                record::observed(scan, current, old, tables, sink)?
            }
            Step::Compare(old, HostObject::File(entry)) => {
                let mut record = Record {
                    meta: entry.meta,
                    link_target: entry.link_target,
                    digest: None,
                    hashed_at: 0,
                    enabled: None,
                    drop_ins: Vec::new(),
                    hidden: false,
                    attributes: None,
                };
                record.attributes = match attributes {
                    Some(Ok(read)) => {
                        if old.as_ref().is_some_and(|o| o.attributes.is_none()) {
                            scan.outcome.first_attributes += 1;
                        }
                        Some(read)
                    }
                    // Unchanged since they were read (a change to them moves the ctime): the
                    // stored ones stand, with the flags statx gave now.
                    None => old
                        .as_ref()
                        .and_then(|o| o.attributes.clone())
                        .map(|kept| Attributes {
                            flags: entry.meta.flags,
                            ..kept
                        }),
                    Some(Err(errno)) => {
                        let kind = FsErrorKind::from_errno(errno);
                        if kind != FsErrorKind::Vanished {
                            *scan.outcome.errors.entry(kind.reason()).or_default() += 1;
                        }
                        old.as_ref().and_then(|o| o.attributes.clone())
                    }
                };
                let mut content = None;
                let mut digest_known = true;
                match hashed {
                    Some(Ok(hashed)) => {
                        scan.bytes_hashed += hashed.bytes_read;
                        super::progress::bytes(hashed.bytes_read);
                        // The open's fstat cannot tell a mount root; the walk's statx did.
                        record.meta = FileMeta {
                            mount_root: entry.meta.mount_root,
                            flags: entry.meta.flags,
                            ..hashed.meta
                        };
                        record.digest = hashed.digest;
                        record.hashed_at = if hashed.digest.is_some() { now } else { 0 };
                        content = hashed.content;
                    }
                    Some(Err(FsErrorKind::Stopped)) => {
                        // Nothing more of this scan is recorded: its update is dropped.
                        crate::stop::check()?;
                        return Err(crate::Error::Internal("a read stopped with no stop asked for"));
                    }
                    Some(Err(FsErrorKind::Vanished)) => {
                        // Gone between the walk and the open: it is removed, if it was known.
                        if let Some(old) = old {
                            record::removed(scan, entry.key, old, tables, sink)?;
                        }
                        continue;
                    }
                    Some(Err(kind)) => {
                        // Keep the last known content so that a change made while the file
                        // was unreadable is still caught once it can be read again.
                        *scan.outcome.errors.entry(kind.reason()).or_default() += 1;
                        digest_known = false;
                        if let Some(old) = &old {
                            record.digest = old.digest;
                            record.hashed_at = old.hashed_at;
                        }
                    }
                    None => {
                        if let Some(old) = &old
                            && record.meta.file_type == FileType::File
                            && record.meta.size <= settings.limits.max_hash_size
                        {
                            record.digest = old.digest;
                            record.hashed_at = old.hashed_at;
                        }
                    }
                }
                let current = CurrentState {
                    key: entry.key,
                    record,
                    digest_known,
                    content,
                };
                record::observed(scan, current, old, tables, sink)?;
            }
        }
    }
    Ok(())
}

/// Whether the stored extended attributes cannot be reused for this entry: it is new, was
/// recorded before they were tracked, or its inode or times moved (setting or removing one
/// moves the ctime). `needs_hash` (rehashEvery) reads them again too.
fn needs_attributes(entry: &WalkEntry, old: Option<&Record>) -> bool {
    old.is_none_or(|old| old.attributes.is_none() || !old.meta.same_identity_and_times(&entry.meta))
}

/// Whether the stored digest cannot be reused for this entry.
fn needs_hash(entry: &WalkEntry, old: Option<&Record>, settings: &Settings, now: i64) -> bool {
    if entry.meta.file_type != FileType::File || entry.meta.size > settings.limits.max_hash_size {
        return false;
    }
    let rehash_after = i64::try_from(settings.rehash_every.as_secs()).unwrap_or(i64::MAX);
    match old {
        None => true,
        Some(old) => {
            old.digest.is_none()
                || old.meta.file_type != FileType::File
                || !old.meta.same_identity_and_times(&entry.meta)
                || now.saturating_sub(old.hashed_at) >= rehash_after
        }
    }
}
