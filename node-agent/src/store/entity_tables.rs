//! An entity's baseline tables: its stored records, streamed in walk-key order so that a scan
//! merge-joins against them, and the contents kept for FileContent entities; read in a
//! snapshot and written in the scan's update. It never opens a table itself: it goes through
//! the store's byte tables.

use super::{BaselineStore, EntityKey, KvRead, KvWrite, Snapshot, Update};
use crate::{Error, Result, records::Record, walk};

/// Stored (key, record) pairs in key order.
pub type StoredRecords<'t> = Box<dyn Iterator<Item = Result<(Vec<u8>, Record)>> + 't>;

/// One entity's tables in a snapshot (absent tables read as empty).
#[derive(Debug)]
pub struct StoredEntity<'t> {
    store: &'t BaselineStore,
    records: KvRead<'t>,
    contents: KvRead<'t>,
}

impl<'t> StoredEntity<'t> {
    /// An entity with nothing stored: what a rebuild compares against.
    pub fn empty(store: &'t BaselineStore) -> Self {
        Self {
            store,
            records: KvRead::empty(store),
            contents: KvRead::empty(store),
        }
    }

    /// The stored records at or below `prefix` (all of them for an empty prefix), in key order.
    pub fn records_at<'a>(&'a self, prefix: &'a [u8]) -> Result<StoredRecords<'a>> {
        let store = self.store;
        let records = self.records.entries_from(prefix, move |key, value| {
            let record = Record::decode(value).ok_or_else(|| Error::CorruptRecord {
                path: store.path().to_path_buf(),
                key: walk::key_to_path(key),
            })?;
            Ok((key.to_vec(), record))
        })?;
        Ok(Box::new(records.take_while(move |item| {
            item.as_ref()
                .map_or(true, |(key, _)| walk::key_within(key, prefix))
        })))
    }

    /// The content kept for `key`, if any.
    pub fn content(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.contents.get(key)
    }
}

impl Snapshot<'_> {
    /// An entity's stored records and, when `with_content`, its kept contents.
    pub fn entity(&self, entity: &EntityKey, with_content: bool) -> Result<StoredEntity<'_>> {
        Ok(StoredEntity {
            store: self.store(),
            records: self.kv_named(&entity.records_table())?,
            contents: if with_content {
                self.kv_named(&entity.content_table())?
            } else {
                KvRead::empty(self.store())
            },
        })
    }
}

/// Writes one entity's records and contents inside an [`Update`].
#[derive(Debug)]
pub struct EntityWriter<'u> {
    records: KvWrite<'u>,
    contents: Option<KvWrite<'u>>,
}

impl Update<'_> {
    /// An entity's tables, to write its new records (and contents when `with_content`).
    pub fn entity(&self, entity: &EntityKey, with_content: bool) -> Result<EntityWriter<'_>> {
        Ok(EntityWriter {
            records: self.kv_named(&entity.records_table())?,
            contents: with_content
                .then(|| self.kv_named(&entity.content_table()))
                .transpose()?,
        })
    }
}

impl EntityWriter<'_> {
    pub fn put(&mut self, key: &[u8], record: &Record) -> Result<()> {
        self.records.insert(key, &record.encode())
    }

    pub fn put_content(&mut self, key: &[u8], content: &[u8]) -> Result<()> {
        if let Some(table) = self.contents.as_mut() {
            table.insert(key, content)?;
        }
        Ok(())
    }

    /// Removes only the content kept for `key`.
    pub fn remove_content(&mut self, key: &[u8]) -> Result<()> {
        if let Some(table) = self.contents.as_mut() {
            table.remove(key)?;
        }
        Ok(())
    }

    /// Removes the record and the content kept for `key`.
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        self.records.remove(key)?;
        if let Some(table) = self.contents.as_mut() {
            table.remove(key)?;
        }
        Ok(())
    }
}
