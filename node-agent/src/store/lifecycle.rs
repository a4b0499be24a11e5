//! Opening the store: a usable one is opened or created; an unusable one (corrupt, foreign, or
//! of a format this agent does not know) is moved aside and replaced, never crash-looped on,
//! after what it still had queued for the API server is read out and carried over. Every new
//! store gets a new random generation, so the cluster can tell that a baseline was lost.

use std::path::{Path, PathBuf};

use super::{BaselineStore, FILE_NAME, FORMAT, LEGACY_FORMAT, Refusal, queue};
use crate::{Error, Result};

/// What opening the store found.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenOutcome {
    Opened,
    Created,
    /// The previous file was unusable; it was moved to `moved_to` and a new store created,
    /// carrying over the `salvaged` changes it still had queued.
    Rebuilt {
        reason: String,
        moved_to: PathBuf,
        salvaged: usize,
    },
}

/// A new random generation id (16 hex digits).
pub(super) fn new_generation() -> String {
    let mut bytes = [0u8; 8];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        // No entropy source: the time and the process still make the id unique enough to
        // tell one store from the next on one node.
        let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
        bytes = (nanos ^ u64::from(std::process::id()).rotate_left(32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a store with format marker `found` (None: a new store) is a format-1 store; why
/// it cannot be used, when the marker is another one.
pub(super) fn is_legacy_format(found: Option<&[u8]>) -> std::result::Result<bool, String> {
    match found {
        Some(found) if found == FORMAT => Ok(false),
        Some(found) if found == LEGACY_FORMAT => Ok(true),
        Some(found) => Err(format!(
            "format marker is {:?}, expected {:?}",
            String::from_utf8_lossy(found),
            String::from_utf8_lossy(FORMAT)
        )),
        None => Ok(false),
    }
}

impl BaselineStore {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The random id made when this store was created.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// The store file `open` would use in `state_dir`, when there is one.
    pub fn existing(state_dir: &Path) -> Option<PathBuf> {
        let path = state_dir.join(FILE_NAME);
        path.exists().then_some(path)
    }

    /// Opens (or creates) the store in `state_dir`, rebuilding it when it is corrupt or foreign.
    pub fn open(state_dir: &Path) -> Result<(Self, OpenOutcome)> {
        std::fs::create_dir_all(state_dir).map_err(|source| Error::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(FILE_NAME);
        let existed = path.exists();
        let reason = match Self::try_open(&path) {
            Ok(store) if existed => return Ok((store, OpenOutcome::Opened)),
            Ok(store) => return Ok((store, OpenOutcome::Created)),
            // A store another process holds is in use, not broken: never move it aside.
            Err(Refusal::InUse) => return Err(Error::StoreInUse { path }),
            Err(Refusal::Unusable(reason)) if existed => reason,
            Err(Refusal::Unusable(reason)) => return Err(Error::StoreUnusable { path, reason }),
        };
        // Drain what the old file still holds for the API server before it is moved aside.
        // What a corrupt file still holds is read under the same guard: a panic loses the
        // salvage, never the process.
        let queued = super::guarded("salvaging its queue", || queue::salvage(&path)).unwrap_or_else(|refusal| {
            tracing::error!(path = %path.display(), ?refusal, "nothing of the unusable store's queue is carried over");
            Vec::new()
        });
        let moved_to = state_dir.join(format!(
            "{FILE_NAME}.unusable-{}",
            jiff::Timestamp::now().as_second()
        ));
        std::fs::rename(&path, &moved_to).map_err(|source| Error::StateDir {
            path: path.clone(),
            source,
        })?;
        tracing::error!(path = %path.display(), moved_to = %moved_to.display(), %reason, salvaged = queued.len(),
            "baseline store is unusable; moved aside, every entity will be baselined again");
        let store = Self::try_open(&path).map_err(|refusal| match refusal {
            Refusal::InUse => Error::StoreInUse { path: path.clone() },
            Refusal::Unusable(reason) => Error::StoreUnusable {
                path: path.clone(),
                reason,
            },
        })?;
        if !queued.is_empty() {
            let update = store.update()?;
            queue::requeue(&update, &queued)?;
            update.commit()?;
        }
        let salvaged = queued.len();
        Ok((
            store,
            OpenOutcome::Rebuilt {
                reason,
                moved_to,
                salvaged,
            },
        ))
    }
}
