//! BaselineStore: the one owner of the node's state, one redb file under `--state-dir`. It is
//! the only module that knows redb: the scan reads a [`Snapshot`] and writes through an
//! [`Update`], the outbox queues through a [`QueueWriter`], the reporter reads and settles
//! through [`QueueView`], and none of them sees a table. The types it persists are in
//! `records`; this module owns how and where they are kept.
//!
//! Its table families: the baseline (`base/…`, `content/…`; `store/entity_tables`), the
//! entities' identities, the format, the generation and unsettled resets (`meta`;
//! `store/entity`, `store/lifecycle`, `store/reset`), the queue, dead letters, refusal counts,
//! per-day counts and newest changes (`store/queue`), the package ledger's byte tables
//! ([`KvTable`]), and the one-time migration of format 1 (`store/migration`).
//!
//! Layout (format 2): table `meta` (format marker, the store's generation, per-entity
//! fingerprint and baseline revision, unaccepted baseline resets), and per (namespace,
//! workspace, entity) a table `base/<ns>/<ws>/<entity>` of records keyed by walk key (sorted,
//! so a scan merge-joins against a range iterator) and, for FileContent entities, a table
//! `content/<ns>/<ws>/<entity>` with the kept content. A format-1 store (keys without the
//! namespace) is migrated once, when the first configuration tells which namespace each
//! workspace is in.
//!
//! A scan reads a snapshot and writes only what changed into one update, committed once per
//! scan, so a crash mid-scan leaves the previous baseline intact. A store that cannot be opened,
//! or that belongs to something else, is moved aside and rebuilt, never crash-looped on; what it
//! still had queued for the API server is carried over when redb can read it, and the new store
//! gets a new generation, so the cluster learns that the baseline was lost.
//!
//! Other modules that keep state of their own beside the baseline (the package ledger) get the
//! byte tables [`KvTable`] names, `KvRead` in a snapshot and `KvWrite` in an update, and never a
//! redb type. Nothing that fails to encode is written: it is an error.

mod entity;
mod entity_tables;
mod lifecycle;
mod migration;
mod queue;
mod reset;

use std::{
    path::{Path, PathBuf},
    sync::atomic::AtomicBool,
};

pub use entity::EntityKey;
pub use entity_tables::{EntityWriter, StoredEntity, StoredRecords};
pub use lifecycle::OpenOutcome;
pub use migration::Migration;
pub use queue::{DEAD_LETTER_BOUND, Pending, QueueView, QueueWriter, Settlement};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use crate::{Error, Result, records::EntityBaseline};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"kubefim-baseline/2";
/// Keys without the namespace; migrated by [`BaselineStore::migrate_legacy`].
const LEGACY_FORMAT: &[u8] = b"kubefim-baseline/1";
const GENERATION_KEY: &str = "generation";
/// The redb page cache: bounds the store's share of the agent's memory.
const CACHE_BYTES: usize = 4 << 20;
/// The store's file in the state directory.
pub const FILE_NAME: &str = "baseline.redb";

type Bytes = &'static [u8];

fn table(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

/// The byte tables other modules keep their own state in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvTable {
    /// The package ledger's per-path owners.
    LedgerFiles,
    /// The package ledger's database fingerprints and installed packages.
    LedgerState,
}

impl KvTable {
    fn name(self) -> &'static str {
        match self {
            Self::LedgerFiles => "ledger/files",
            Self::LedgerState => "ledger/state",
        }
    }
}

/// The baseline database.
#[derive(Debug)]
pub struct BaselineStore {
    db: Database,
    path: PathBuf,
    generation: String,
    /// A format-1 store not yet migrated.
    legacy: AtomicBool,
}

/// Why a store file could not be opened.
#[derive(Debug)]
enum Refusal {
    /// Another process (a running agent, a one-shot command) holds it: nothing is wrong with it.
    InUse,
    /// Corrupt or foreign: it is moved aside and rebuilt.
    Unusable(String),
}

fn db_error(path: &Path, source: impl Into<redb::Error>) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        source: Box::new(source.into()),
    }
}

impl BaselineStore {
    /// Opens or creates a usable store at `path`; why not, when it cannot. It refuses one that fails redb's integrity check (every page against its
    /// checksum). Root on the node can write anything into the file: a panic inside redb on a
    /// corrupt page is caught here and is a reason to move the file aside, never a crash loop.
    fn try_open(path: &Path) -> std::result::Result<Self, Refusal> {
        let opened = guarded("opening it", || {
            Database::builder().set_cache_size(CACHE_BYTES).create(path)
        })?;
        let mut db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
                Refusal::InUse
            }
            e => Refusal::Unusable(e.to_string()),
        })?;
        match guarded("checking its integrity", || db.check_integrity())? {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refusal::Unusable(
                    "pages failed redb's integrity check (their checksums do not match)".into(),
                ));
            }
            Err(e) => return Err(Refusal::Unusable(format!("integrity check: {e}"))),
        }
        guarded("reading its markers", || Self::read_markers(db, path))?.map_err(Refusal::Unusable)
    }

    /// Reads (or, in a new store, writes) the format and generation markers of an open database.
    fn read_markers(db: Database, path: &Path) -> std::result::Result<Self, String> {
        // A store in use already has both markers: read them without a write (and its sync).
        let (format, generation) = {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            match txn.open_table(META) {
                Ok(meta) => {
                    let read = |key: &str| {
                        meta.get(key)
                            .map(|v| v.map(|v| v.value().to_vec()))
                            .map_err(|e| e.to_string())
                    };
                    (read(FORMAT_KEY)?, read(GENERATION_KEY)?)
                }
                Err(TableError::TableDoesNotExist(_)) => (None, None),
                Err(e) => return Err(e.to_string()),
            }
        };
        let legacy = lifecycle::is_legacy_format(format.as_deref())?;
        let generation = match generation {
            Some(found) if format.is_some() => String::from_utf8_lossy(&found).into_owned(),
            found => {
                // A new store: write what is missing.
                let generation = found.map_or_else(lifecycle::new_generation, |g| {
                    String::from_utf8_lossy(&g).into_owned()
                });
                let txn = db.begin_write().map_err(|e| e.to_string())?;
                {
                    let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
                    if format.is_none() {
                        meta.insert(FORMAT_KEY, FORMAT).map_err(|e| e.to_string())?;
                    }
                    meta.insert(GENERATION_KEY, generation.as_bytes())
                        .map_err(|e| e.to_string())?;
                }
                txn.commit().map_err(|e| e.to_string())?;
                generation
            }
        };
        Ok(Self {
            db,
            path: path.to_path_buf(),
            generation,
            legacy: AtomicBool::new(legacy),
        })
    }

    /// A consistent view of the store as it is now.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        Ok(Snapshot { store: self, txn })
    }

    /// Starts the one write of a scan; nothing is visible until [`Update::commit`].
    pub fn update(&self) -> Result<Update<'_>> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        Ok(Update { store: self, txn })
    }

    /// The meta entries whose key starts with `prefix`, in key order.
    fn meta_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let meta = txn.open_table(META).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for item in meta.range(prefix..).map_err(|e| self.error(e))? {
            let (key, value) = item.map_err(|e| self.error(e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            out.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok(out)
    }

    /// The value of `key` in byte table `table` as the store is now, outside any snapshot.
    pub(crate) fn kv_get(&self, table: KvTable, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snapshot()?.kv(table)?.get(key)
    }

    pub(crate) fn error(&self, source: impl Into<redb::Error>) -> Error {
        db_error(&self.path, source)
    }
}

/// A read-only, consistent view of the store.
#[derive(Debug)]
pub struct Snapshot<'s> {
    store: &'s BaselineStore,
    txn: redb::ReadTransaction,
}

impl Snapshot<'_> {
    pub fn store(&self) -> &BaselineStore {
        self.store
    }

    /// The recorded baseline identity of an entity.
    pub fn entity_baseline(&self, entity: &EntityKey) -> Result<Option<EntityBaseline>> {
        let meta = self.txn.open_table(META).map_err(|e| self.store.error(e))?;
        let value = meta
            .get(entity.meta_key().as_str())
            .map_err(|e| self.store.error(e))?;
        // An identity that cannot be read is an error of the entity, never "no baseline": that
        // would rebuild its baseline silently over whatever changed.
        value
            .map(|v| {
                serde_json::from_slice(v.value()).map_err(|_| Error::CorruptRecord {
                    path: self.store.path.clone(),
                    key: entity.meta_key(),
                })
            })
            .transpose()
    }

    fn open(&self, name: &str) -> Result<Option<redb::ReadOnlyTable<Bytes, Bytes>>> {
        match self.txn.open_table(table(name)) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.store.error(e)),
        }
    }

    /// Byte table `table` as this snapshot sees it.
    pub(crate) fn kv(&self, table: KvTable) -> Result<KvRead<'_>> {
        self.kv_named(table.name())
    }

    fn kv_named(&self, name: &str) -> Result<KvRead<'_>> {
        Ok(KvRead {
            store: self.store,
            table: self.open(name)?,
        })
    }
}

/// A byte table read in a snapshot; one never written reads as empty.
#[derive(Debug)]
pub(crate) struct KvRead<'s> {
    store: &'s BaselineStore,
    table: Option<redb::ReadOnlyTable<Bytes, Bytes>>,
}

impl<'s> KvRead<'s> {
    /// A table with nothing in it.
    fn empty(store: &'s BaselineStore) -> Self {
        Self { store, table: None }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        Ok(table
            .get(key)
            .map_err(|e| self.store.error(e))?
            .map(|value| value.value().to_vec()))
    }

    /// The first `limit` entries with a key in `start..end`, in key order.
    pub(crate) fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some(table) = &self.table else {
            return Ok(Vec::new());
        };
        let range = table
            .range::<&[u8]>(start..end)
            .map_err(|e| self.store.error(e))?;
        range
            .take(limit)
            .map(|item| {
                let (key, value) = item.map_err(|e| self.store.error(e))?;
                Ok((key.value().to_vec(), value.value().to_vec()))
            })
            .collect()
    }

    /// The entries from `start` on, in key order, each turned by `read` into what the caller
    /// wants straight from the table (a scan streams a whole entity through this).
    fn entries_from<'a, T: 'a>(
        &'a self,
        start: &'a [u8],
        read: impl Fn(&[u8], &[u8]) -> Result<T> + 'a,
    ) -> Result<Box<dyn Iterator<Item = Result<T>> + 'a>> {
        let Some(table) = &self.table else {
            return Ok(Box::new(std::iter::empty()));
        };
        let store = self.store;
        let range = table.range::<&[u8]>(start..).map_err(|e| store.error(e))?;
        Ok(Box::new(range.map(move |item| {
            let (key, value) = item.map_err(|e| store.error(e))?;
            read(key.value(), value.value())
        })))
    }
}

/// The one write transaction of a scan.
pub struct Update<'s> {
    store: &'s BaselineStore,
    txn: redb::WriteTransaction,
}

impl std::fmt::Debug for Update<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update").field("store", &self.store.path).finish()
    }
}

impl<'s> Update<'s> {
    pub fn store(&self) -> &'s BaselineStore {
        self.store
    }

    /// Byte table `table`, to read and write in this update (created on first use).
    pub(crate) fn kv(&self, table: KvTable) -> Result<KvWrite<'_>> {
        self.kv_named(table.name())
    }

    fn kv_named(&self, name: &str) -> Result<KvWrite<'_>> {
        Ok(KvWrite {
            store: self.store,
            table: self
                .txn
                .open_table(table(name))
                .map_err(|e| self.store.error(e))?,
        })
    }

    /// Sets (Some) or removes (None) a meta entry; returns what it held.
    fn put_meta(&self, key: &str, value: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let mut meta = self.txn.open_table(META).map_err(|e| self.store.error(e))?;
        let previous = match value {
            Some(value) => meta.insert(key, value),
            None => meta.remove(key),
        }
        .map_err(|e| self.store.error(e))?
        .map(|v| v.value().to_vec());
        Ok(previous)
    }

    /// Renames a table (a missing one is nothing to rename).
    fn rename_table(&self, from: &str, to: &str) -> Result<()> {
        match self.txn.rename_table(table(from), table(to)) {
            Ok(()) | Err(TableError::TableDoesNotExist(_)) => Ok(()),
            Err(e) => Err(self.store.error(e)),
        }
    }

    fn delete_table(&self, name: &str) -> Result<()> {
        self.txn
            .delete_table(table(name))
            .map(|_| ())
            .map_err(|e| self.store.error(e))
    }

    pub fn commit(self) -> Result<()> {
        self.txn.commit().map_err(|e| self.store.error(e))
    }

    /// Ends the update without writing anything (the store file is left untouched).
    pub fn abort(self) -> Result<()> {
        self.txn.abort().map_err(|e| self.store.error(e))
    }
}

/// A byte table written in an [`Update`].
#[derive(Debug)]
pub(crate) struct KvWrite<'u> {
    store: &'u BaselineStore,
    table: redb::Table<'u, Bytes, Bytes>,
}

impl KvWrite<'_> {
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .table
            .get(key)
            .map_err(|e| self.store.error(e))?
            .map(|value| value.value().to_vec()))
    }

    pub(crate) fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.table.insert(key, value).map_err(|e| self.store.error(e))?;
        Ok(())
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.table.remove(key).map_err(|e| self.store.error(e))?;
        Ok(())
    }

    /// Shows `visit` every entry, in key order, without copying any.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&[u8], &[u8])) -> Result<()> {
        for item in self.table.iter().map_err(|e| self.store.error(e))? {
            let (key, value) = item.map_err(|e| self.store.error(e))?;
            visit(key.value(), value.value());
        }
        Ok(())
    }
}

std::thread_local! {
    /// Set while this thread runs redb under [`guarded`]: its panic is caught and reported.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (redb on a file root may have written), turning a panic into a refusal naming
/// `what` was being done. The panic is not printed: the refusal says it, once.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> std::result::Result<T, Refusal> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    result.map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Refusal::Unusable(format!("redb panicked {what}: {message}"))
    })
}
