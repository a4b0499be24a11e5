//! BaselineStore: the agent's durable state on the node, in one redb file under `--state-dir`.
//! It is the only module besides the outbox that knows redb: the scan reads a [`Snapshot`] and
//! writes through an [`Update`], and never sees a table.
//!
//! Layout: table `meta` (format marker; per-entity fingerprint and baseline revision), and per
//! (workspace, entity) a table `base/<ws>/<entity>` of records keyed by walk key (sorted, so a
//! scan merge-joins against a range iterator) and, for FileContent entities, a table
//! `content/<ws>/<entity>` with the kept content.
//!
//! A scan reads a snapshot and writes only what changed into one update, committed once per
//! scan, so a crash mid-scan leaves the previous baseline intact. A store that cannot be opened,
//! or that belongs to something else, is moved aside and rebuilt: the agent re-baselines and
//! logs why, rather than crash-looping on the node.

mod entity;
mod record;

use std::path::{Path, PathBuf};

pub use entity::{EntityBaseline, EntityKey};
pub use record::Record;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use crate::{Error, Result, walk};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"kubefim-baseline/1";
/// The redb page cache: bounds the store's share of the agent's memory.
const CACHE_BYTES: usize = 16 << 20;
const FILE_NAME: &str = "baseline.redb";

type Bytes = &'static [u8];

/// A failure of the storage engine, kept opaque so that no other module depends on it.
#[derive(Debug)]
pub struct StoreFailure(Box<redb::Error>);

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

fn table(name: &str) -> TableDefinition<'_, Bytes, Bytes> {
    TableDefinition::new(name)
}

/// The baseline database.
#[derive(Debug)]
pub struct BaselineStore {
    db: Database,
    path: PathBuf,
}

/// What opening the store found.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenOutcome {
    Opened,
    Created,
    /// The previous file was unusable; it was moved to `moved_to` and a new store created.
    Rebuilt {
        reason: String,
        moved_to: PathBuf,
    },
}

fn db_error(path: &Path, source: impl Into<redb::Error>) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        source: StoreFailure(Box::new(source.into())),
    }
}

impl BaselineStore {
    /// Opens (or creates) the store in `state_dir`, rebuilding it when it is corrupt or foreign.
    pub fn open(state_dir: &Path) -> Result<(Self, OpenOutcome)> {
        std::fs::create_dir_all(state_dir).map_err(|source| Error::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(FILE_NAME);
        let existed = path.exists();
        match Self::try_open(&path) {
            Ok(store) => Ok((
                store,
                if existed {
                    OpenOutcome::Opened
                } else {
                    OpenOutcome::Created
                },
            )),
            Err(reason) if existed => {
                let moved_to = state_dir.join(format!(
                    "{FILE_NAME}.unusable-{}",
                    jiff::Timestamp::now().as_second()
                ));
                std::fs::rename(&path, &moved_to).map_err(|source| Error::StateDir {
                    path: path.clone(),
                    source,
                })?;
                tracing::error!(path = %path.display(), moved_to = %moved_to.display(), %reason,
                    "baseline store is unusable; moved aside, every entity will be baselined again");
                let store = Self::try_open(&path).map_err(|reason| Error::StoreUnusable {
                    path: path.clone(),
                    reason,
                })?;
                Ok((store, OpenOutcome::Rebuilt { reason, moved_to }))
            }
            Err(reason) => Err(Error::StoreUnusable { path, reason }),
        }
    }

    fn try_open(path: &Path) -> std::result::Result<Self, String> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| e.to_string())?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            let format = meta
                .get(FORMAT_KEY)
                .map_err(|e| e.to_string())?
                .map(|v| v.value().to_vec());
            match format {
                Some(found) if found != FORMAT => {
                    return Err(format!(
                        "format marker is {:?}, expected {:?}",
                        String::from_utf8_lossy(&found),
                        String::from_utf8_lossy(FORMAT)
                    ));
                }
                Some(_) => {}
                None => {
                    meta.insert(FORMAT_KEY, FORMAT).map_err(|e| e.to_string())?;
                }
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

    /// The (workspace, entity) pairs that have a baseline.
    pub fn entities(&self) -> Result<Vec<EntityKey>> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let meta = txn.open_table(META).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for item in meta.range("entity/".."entity0").map_err(|e| self.error(e))? {
            let (key, _) = item.map_err(|e| self.error(e))?;
            if let Some((workspace, entity)) = key.value().trim_start_matches("entity/").split_once('/') {
                out.push(EntityKey::new(workspace, entity));
            }
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
        let mut meta = self.txn.open_table(META).map_err(|e| self.store.error(e))?;
        // A struct of two strings always serializes.
        let bytes = serde_json::to_vec(baseline).unwrap_or_default();
        meta.insert(entity.meta_key().as_str(), bytes.as_slice())
            .map_err(|e| self.store.error(e))?;
        Ok(())
    }

    /// Forgets an entity entirely (records, content, identity).
    pub fn drop_entity(&self, entity: &EntityKey) -> Result<()> {
        for name in [entity.records_table(), entity.content_table()] {
            self.txn
                .delete_table(table(&name))
                .map_err(|e| self.store.error(e))?;
        }
        let mut meta = self.txn.open_table(META).map_err(|e| self.store.error(e))?;
        meta.remove(entity.meta_key().as_str())
            .map_err(|e| self.store.error(e))?;
        Ok(())
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
        let records = entity.records_table();
        let contents = entity.content_table();
        Ok(EntityWriter {
            store: self.store,
            records: self
                .txn
                .open_table(table(&records))
                .map_err(|e| self.store.error(e))?,
            contents: if with_content {
                Some(
                    self.txn
                        .open_table(table(&contents))
                        .map_err(|e| self.store.error(e))?,
                )
            } else {
                None
            },
        })
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

    /// Removes the record and the content kept for `key`.
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.records.remove(key).map_err(|e| self.store.error(e))?;
        if let Some(table) = self.contents.as_mut() {
            table.remove(key).map_err(|e| self.store.error(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_store_is_moved_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"this is not a redb file, it is a note left by someone",
        )
        .unwrap();
        let (store, outcome) = BaselineStore::open(dir.path()).unwrap();
        let OpenOutcome::Rebuilt { moved_to, .. } = outcome else {
            panic!("{outcome:?}")
        };
        assert!(moved_to.exists());
        assert!(store.entities().unwrap().is_empty());
        drop(store);
        assert_eq!(BaselineStore::open(dir.path()).unwrap().1, OpenOutcome::Opened);
    }

    #[test]
    fn a_store_of_another_format_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, b"someone-else/9".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let (_store, outcome) = BaselineStore::open(dir.path()).unwrap();
        assert!(
            matches!(outcome, OpenOutcome::Rebuilt { ref reason, .. } if reason.contains("someone-else")),
            "{outcome:?}"
        );
    }
}
