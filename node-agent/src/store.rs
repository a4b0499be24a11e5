//! BaselineStore: the agent's durable state on the node, in one redb file under `--state-dir`.
//!
//! Layout: table `meta` (format marker; per-entity fingerprint and baseline revision), and per
//! (workspace, entity) a table `base/<ws>/<entity>` of records keyed by walk key (sorted, so a
//! scan merge-joins against a range iterator) and, for FileContent entities, a table
//! `content/<ws>/<entity>` with the kept content.
//!
//! A scan reads a snapshot (read transaction) and writes only what changed into one write
//! transaction, committed once per scan, so a crash mid-scan leaves the previous baseline intact.
//! A store that cannot be opened, or that belongs to something else, is moved aside and rebuilt:
//! the agent re-baselines silently and logs why, rather than crash-looping on the node.

use std::path::{Path, PathBuf};

use kubefim_crds::{FileType, HashAlgorithm};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, hash::Digest, hostfs::FileMeta};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"kubefim-baseline/1";
/// The redb page cache: bounds the store's share of the agent's memory.
const CACHE_BYTES: usize = 16 << 20;
const FILE_NAME: &str = "baseline.redb";

/// The state of one filesystem object (or unit) as recorded in the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub meta: FileMeta,
    pub link_target: Option<Vec<u8>>,
    pub digest: Option<Digest>,
    /// Unix seconds when the digest was computed (drives rehashEvery); 0 when never.
    pub hashed_at: i64,
    /// Services: whether the unit is enabled.
    pub enabled: Option<bool>,
}

fn file_type_code(file_type: FileType) -> u8 {
    match file_type {
        FileType::File => 0,
        FileType::Directory => 1,
        FileType::Symlink => 2,
        FileType::Fifo => 3,
        FileType::Socket => 4,
        FileType::CharDevice => 5,
        FileType::BlockDevice => 6,
        FileType::Unit => 7,
    }
}

fn file_type_from(code: u8) -> Option<FileType> {
    Some(match code {
        0 => FileType::File,
        1 => FileType::Directory,
        2 => FileType::Symlink,
        3 => FileType::Fifo,
        4 => FileType::Socket,
        5 => FileType::CharDevice,
        6 => FileType::BlockDevice,
        7 => FileType::Unit,
        _ => return None,
    })
}

const RECORD_VERSION: u8 = 1;

impl Record {
    /// A compact fixed-layout encoding: a million records must stay small and fast to compare.
    pub fn encode(&self) -> Vec<u8> {
        let m = &self.meta;
        let mut out = Vec::with_capacity(96 + self.link_target.as_ref().map_or(0, Vec::len));
        out.push(RECORD_VERSION);
        out.push(file_type_code(m.file_type));
        for v in [m.mode, m.uid, m.gid, m.mtime.1, m.ctime.1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [m.size, m.ino, m.dev, m.nlink] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [m.mtime.0, m.ctime.0, self.hashed_at] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(match self.enabled {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        match &self.digest {
            None => out.push(0),
            Some(d) => {
                out.push(match d.algorithm {
                    HashAlgorithm::Blake3 => 1,
                    HashAlgorithm::Sha256 => 2,
                });
                out.extend_from_slice(&d.bytes);
            }
        }
        if let Some(target) = &self.link_target {
            out.extend_from_slice(target);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut cursor = Cursor(bytes);
        if cursor.u8()? != RECORD_VERSION {
            return None;
        }
        let file_type = file_type_from(cursor.u8()?)?;
        let (mode, uid, gid, mtime_ns, ctime_ns) = (
            cursor.u32()?,
            cursor.u32()?,
            cursor.u32()?,
            cursor.u32()?,
            cursor.u32()?,
        );
        let (size, ino, dev, nlink) = (cursor.u64()?, cursor.u64()?, cursor.u64()?, cursor.u64()?);
        let (mtime, ctime, hashed_at) = (cursor.i64()?, cursor.i64()?, cursor.i64()?);
        let enabled = match cursor.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return None,
        };
        let digest = match cursor.u8()? {
            0 => None,
            code @ (1 | 2) => Some(Digest {
                algorithm: if code == 1 {
                    HashAlgorithm::Blake3
                } else {
                    HashAlgorithm::Sha256
                },
                bytes: cursor.take(32)?.try_into().ok()?,
            }),
            _ => return None,
        };
        // Symlinks and masked or aliased units carry a target; an empty tail means none.
        let link_target = (!cursor.0.is_empty() || file_type == FileType::Symlink).then(|| cursor.0.to_vec());
        Some(Self {
            meta: FileMeta {
                file_type,
                mode,
                uid,
                gid,
                size,
                mtime: (mtime, mtime_ns),
                ctime: (ctime, ctime_ns),
                ino,
                dev,
                nlink,
            },
            link_target,
            digest,
            hashed_at,
            enabled,
        })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
}

/// What the store remembers about an entity's baseline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityBaseline {
    pub fingerprint: String,
    pub baseline_revision: String,
}

/// Names of the tables of one entity.
#[derive(Clone, Debug)]
pub struct EntityTables {
    pub meta_key: String,
    pub records: String,
    pub content: String,
}

impl EntityTables {
    pub fn new(workspace: &str, entity: &str) -> Self {
        Self {
            meta_key: format!("entity/{workspace}/{entity}"),
            records: format!("base/{workspace}/{entity}"),
            content: format!("content/{workspace}/{entity}"),
        }
    }

    pub fn records_def(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.records)
    }

    pub fn content_def(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.content)
    }
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
        source: Box::new(source.into()),
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

    pub fn begin_read(&self) -> Result<redb::ReadTransaction> {
        self.db.begin_read().map_err(|e| db_error(&self.path, e))
    }

    pub fn begin_write(&self) -> Result<redb::WriteTransaction> {
        self.db.begin_write().map_err(|e| db_error(&self.path, e))
    }

    /// The recorded baseline identity of an entity, from a read transaction.
    pub fn entity_baseline(
        &self,
        txn: &redb::ReadTransaction,
        tables: &EntityTables,
    ) -> Result<Option<EntityBaseline>> {
        let meta = txn.open_table(META).map_err(|e| db_error(&self.path, e))?;
        let value = meta
            .get(tables.meta_key.as_str())
            .map_err(|e| db_error(&self.path, e))?;
        Ok(value.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    pub fn set_entity_baseline(
        &self,
        txn: &redb::WriteTransaction,
        tables: &EntityTables,
        baseline: &EntityBaseline,
    ) -> Result<()> {
        let mut meta = txn.open_table(META).map_err(|e| db_error(&self.path, e))?;
        let bytes = serde_json::to_vec(baseline).unwrap_or_default();
        meta.insert(tables.meta_key.as_str(), bytes.as_slice())
            .map_err(|e| db_error(&self.path, e))?;
        Ok(())
    }

    /// Forgets an entity entirely (records, content, identity).
    pub fn drop_entity(&self, txn: &redb::WriteTransaction, tables: &EntityTables) -> Result<()> {
        txn.delete_table(tables.records_def())
            .map_err(|e| db_error(&self.path, e))?;
        txn.delete_table(tables.content_def())
            .map_err(|e| db_error(&self.path, e))?;
        let mut meta = txn.open_table(META).map_err(|e| db_error(&self.path, e))?;
        meta.remove(tables.meta_key.as_str())
            .map_err(|e| db_error(&self.path, e))?;
        Ok(())
    }

    /// Drops every entity whose (workspace, entity) `stale` says is no longer configured;
    /// returns how many were dropped.
    pub fn drop_entities_where(
        &self,
        txn: &redb::WriteTransaction,
        stale: impl Fn(&str, &str) -> bool,
    ) -> Result<usize> {
        let mut dropped = 0;
        for (workspace, entity) in self.entities()? {
            if stale(&workspace, &entity) {
                self.drop_entity(txn, &EntityTables::new(&workspace, &entity))?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    /// The (workspace, entity) pairs that have a baseline.
    pub fn entities(&self) -> Result<Vec<(String, String)>> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(|e| db_error(&self.path, e))?;
        let mut out = Vec::new();
        for item in meta
            .range("entity/".."entity0")
            .map_err(|e| db_error(&self.path, e))?
        {
            let (key, _) = item.map_err(|e| db_error(&self.path, e))?;
            if let Some((ws, entity)) = key.value().trim_start_matches("entity/").split_once('/') {
                out.push((ws.to_string(), entity.to_string()));
            }
        }
        Ok(out)
    }

    pub fn error(&self, source: impl Into<redb::Error>) -> Error {
        db_error(&self.path, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file_type: FileType, link: Option<&[u8]>) -> Record {
        Record {
            meta: FileMeta {
                file_type,
                mode: 0o4755,
                uid: 1000,
                gid: 100,
                size: 1 << 40,
                mtime: (-5, 999_999_999),
                ctime: (1_700_000_000, 1),
                ino: u64::MAX,
                dev: 42,
                nlink: 3,
            },
            link_target: link.map(<[u8]>::to_vec),
            digest: Some(Digest {
                algorithm: HashAlgorithm::Sha256,
                bytes: [7; 32],
            }),
            hashed_at: 1_700_000_123,
            enabled: Some(true),
        }
    }

    #[test]
    fn records_round_trip_including_non_utf8_link_targets() {
        for original in [
            record(FileType::File, None),
            record(FileType::Symlink, Some(b"../\xff\xfe/target")),
        ] {
            assert_eq!(Record::decode(&original.encode()).unwrap(), original);
        }
    }

    #[test]
    fn truncated_or_foreign_records_do_not_decode() {
        let bytes = record(FileType::File, None).encode();
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Record::decode(b"\x09garbage").is_none());
    }

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
