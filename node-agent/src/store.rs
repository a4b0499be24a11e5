//! BaselineStore: the agent's durable state on the node, in one redb file under `--state-dir`.
//! It is the only module besides the outbox that knows redb: the scan reads a [`Snapshot`] and
//! writes through an [`Update`], and never sees a table.
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

mod entity;
mod lifecycle;
mod migration;
mod record;
mod reset;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use entity::{ENTITY_PREFIX, LegacyEntity};
pub use entity::{EntityBaseline, EntityKey};
pub use lifecycle::OpenOutcome;
pub use migration::Migration;
pub use record::{DropIn, Record};
use redb::{Database, ReadableDatabase, TableDefinition, TableError};
pub use reset::BaselineReset;

use crate::{Error, Result, walk};

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

/// The baseline database.
#[derive(Debug)]
pub struct BaselineStore {
    db: Database,
    path: PathBuf,
    generation: String,
    /// A format-1 store not yet migrated.
    legacy: AtomicBool,
}

fn db_error(path: &Path, source: impl Into<redb::Error>) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        source: Box::new(source.into()),
    }
}

impl BaselineStore {
    /// Opens or creates a usable store at `path`; why not, when it cannot.
    fn try_open(path: &Path) -> std::result::Result<Self, String> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| e.to_string())?;
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
        let legacy = match &format {
            Some(found) if found == FORMAT => false,
            Some(found) if found == LEGACY_FORMAT => true,
            Some(found) => {
                return Err(format!(
                    "format marker is {:?}, expected {:?}",
                    String::from_utf8_lossy(found),
                    String::from_utf8_lossy(FORMAT)
                ));
            }
            None => false,
        };
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The random id made when this store was created.
    pub fn generation(&self) -> &str {
        &self.generation
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

    /// The entities that have a baseline.
    pub fn entities(&self) -> Result<Vec<EntityKey>> {
        Ok(self
            .meta_entries(ENTITY_PREFIX)?
            .iter()
            .filter_map(|(key, _)| EntityKey::from_meta_key(key))
            .collect())
    }

    /// Whether this is a format-1 store not yet migrated.
    fn is_legacy(&self) -> bool {
        self.legacy.load(Ordering::Acquire)
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

    /// The database itself, for the outbox's own tables.
    pub(crate) fn db(&self) -> &Database {
        &self.db
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
    /// The transaction itself, for the package ledger's own tables.
    pub(crate) fn transaction(&self) -> &redb::ReadTransaction {
        &self.txn
    }

    pub fn store(&self) -> &BaselineStore {
        self.store
    }

    /// The recorded baseline identity of an entity.
    pub fn entity_baseline(&self, entity: &EntityKey) -> Result<Option<EntityBaseline>> {
        let meta = self.txn.open_table(META).map_err(|e| self.store.error(e))?;
        let value = meta
            .get(entity.meta_key().as_str())
            .map_err(|e| self.store.error(e))?;
        Ok(value.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    fn open(&self, name: &str) -> Result<Option<redb::ReadOnlyTable<Bytes, Bytes>>> {
        match self.txn.open_table(table(name)) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.store.error(e)),
        }
    }

    /// An entity's stored records and, when `with_content`, its kept contents.
    pub fn entity(&self, entity: &EntityKey, with_content: bool) -> Result<StoredEntity<'_>> {
        Ok(StoredEntity {
            store: self.store,
            records: self.open(&entity.records_table())?,
            contents: if with_content {
                self.open(&entity.content_table())?
            } else {
                None
            },
        })
    }
}

/// Stored (key, record) pairs in key order.
pub type StoredRecords<'t> = Box<dyn Iterator<Item = Result<(Vec<u8>, Record)>> + 't>;

/// One entity's tables in a snapshot (absent tables read as empty).
#[derive(Debug)]
pub struct StoredEntity<'t> {
    store: &'t BaselineStore,
    records: Option<redb::ReadOnlyTable<Bytes, Bytes>>,
    contents: Option<redb::ReadOnlyTable<Bytes, Bytes>>,
}

impl<'t> StoredEntity<'t> {
    /// An entity with nothing stored: what a rebuild compares against.
    pub fn empty(store: &'t BaselineStore) -> Self {
        Self {
            store,
            records: None,
            contents: None,
        }
    }

    /// The stored records at or below `prefix` (all of them for an empty prefix), in key order.
    pub fn records_at<'a>(&'a self, prefix: &'a [u8]) -> Result<StoredRecords<'a>> {
        let Some(table) = &self.records else {
            return Ok(Box::new(std::iter::empty()));
        };
        let store = self.store;
        let range = table.range::<&[u8]>(prefix..).map_err(|e| store.error(e))?;
        Ok(Box::new(
            range
                .map(move |item| {
                    let (key, value) = item.map_err(|e| store.error(e))?;
                    let record = Record::decode(value.value()).ok_or_else(|| Error::CorruptRecord {
                        path: store.path.clone(),
                        key: walk::key_to_path(key.value()),
                    })?;
                    Ok((key.value().to_vec(), record))
                })
                .take_while(move |item| {
                    item.as_ref()
                        .map_or(true, |(key, _)| walk::key_within(key, prefix))
                }),
        ))
    }

    /// The content kept for `key`, if any.
    pub fn content(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(table) = &self.contents else {
            return Ok(None);
        };
        Ok(table
            .get(key)
            .map_err(|e| self.store.error(e))?
            .map(|value| value.value().to_vec()))
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

    /// The transaction itself, for the outbox, which queues changes in the same commit.
    pub(crate) fn transaction(&self) -> &redb::WriteTransaction {
        &self.txn
    }

    pub fn set_entity_baseline(&self, entity: &EntityKey, baseline: &EntityBaseline) -> Result<()> {
        // A struct of two strings always serializes.
        let bytes = serde_json::to_vec(baseline).unwrap_or_default();
        self.put_meta(&entity.meta_key(), Some(&bytes)).map(|_| ())
    }

    /// Forgets an entity entirely (records, content, identity).
    pub fn drop_entity(&self, entity: &EntityKey) -> Result<()> {
        self.delete_table(&entity.records_table())?;
        self.delete_table(&entity.content_table())?;
        self.put_meta(&entity.meta_key(), None).map(|_| ())
    }

    /// Drops every entity `stale` says is no longer configured; returns how many were dropped.
    pub fn drop_entities_where(&self, stale: impl Fn(&EntityKey) -> bool) -> Result<usize> {
        let mut dropped = 0;
        for entity in self.store.entities()? {
            if stale(&entity) {
                self.drop_entity(&entity)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// An entity's tables, to write its new records (and contents when `with_content`).
    pub fn entity(&self, entity: &EntityKey, with_content: bool) -> Result<EntityWriter<'_>> {
        let open = |name: String| self.txn.open_table(table(&name)).map_err(|e| self.store.error(e));
        Ok(EntityWriter {
            store: self.store,
            records: open(entity.records_table())?,
            contents: with_content.then(|| open(entity.content_table())).transpose()?,
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

/// Writes one entity's records and contents inside an [`Update`].
#[derive(Debug)]
pub struct EntityWriter<'u> {
    store: &'u BaselineStore,
    records: redb::Table<'u, Bytes, Bytes>,
    contents: Option<redb::Table<'u, Bytes, Bytes>>,
}

impl EntityWriter<'_> {
    pub fn put(&mut self, key: &[u8], record: &Record) -> Result<()> {
        self.records
            .insert(key, record.encode().as_slice())
            .map_err(|e| self.store.error(e))?;
        Ok(())
    }

    pub fn put_content(&mut self, key: &[u8], content: &[u8]) -> Result<()> {
        if let Some(table) = self.contents.as_mut() {
            table.insert(key, content).map_err(|e| self.store.error(e))?;
        }
        Ok(())
    }

    /// Removes only the content kept for `key`.
    pub fn remove_content(&mut self, key: &[u8]) -> Result<()> {
        if let Some(table) = self.contents.as_mut() {
            table.remove(key).map_err(|e| self.store.error(e))?;
        }
        Ok(())
    }

    /// Removes the record and the content kept for `key`.
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.records.remove(key).map_err(|e| self.store.error(e))?;
        if let Some(table) = self.contents.as_mut() {
            table.remove(key).map_err(|e| self.store.error(e))?;
        }
        Ok(())
    }
}
