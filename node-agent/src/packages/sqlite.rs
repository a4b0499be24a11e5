//! A read-only reader of the SQLite file format, enough to read one table of rpm's database
//! without linking SQLite (whose readers write the -shm file as root, which a file integrity
//! monitor on /var/lib/rpm would then see as its own events). It trusts nothing in the file.
//!
//! What it reads (<https://www.sqlite.org/fileformat2.html>): the database header (§1.3), table
//! b-tree pages (§1.6) with their overflow chains, records (§2.1), and the committed frames of
//! the write-ahead log (§4). It opens no file itself: the caller reads `rpmdb.sqlite` and
//! `rpmdb.sqlite-wal` (never `-shm`) and hands over their bytes.
//!
//! Every offset taken from the file is bounds-checked; every page visit is recorded, so that a
//! cycle is an error, and counted against [`Limits`]; b-trees are walked with an explicit stack;
//! nothing is allocated from a length read in the file before the length is checked against the
//! limits. A hostile file can only produce a [`SqliteError`].
//!
//! This is the Rust form of `sqliteraw.py`, the executable specification. It is stricter in a
//! few places, all of which SQLite itself treats as corruption: a record header shorter than its
//! own length varint, a cell pointer into the page header or cell pointer array, a child or
//! overflow pointer to page 1, and rows out of rowid order are errors.

mod btree;
mod record;
mod wal;

use std::{collections::HashMap, fmt};

use record::{be_u16, be_u32, decode_record, to_usize};
use wal::read_wal;

/// The first 16 bytes of every SQLite 3 database.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The database header at the start of page 1.
const HEADER_LEN: usize = 100;
/// The smallest usable page size SQLite accepts (page size minus reserved bytes).
const MIN_USABLE: usize = 480;

/// A value of a SQLite record.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    /// Text as stored (the database encoding is UTF-8, but the bytes are not validated).
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

/// What is wrong with a database image.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SqliteError {
    #[error("not an SQLite 3 database: the file does not start with \"SQLite format 3\"")]
    NotSqlite,

    #[error("the database header is truncated: the file has {len} bytes, the header needs 100")]
    TruncatedHeader { len: usize },

    #[error("the database header gives the invalid page size {size}")]
    BadPageSize { size: usize },

    #[error("the usable page size {usable} is below SQLite's minimum of 480")]
    UsableSizeTooSmall { usable: usize },

    #[error("the database text encoding is {encoding}, not UTF-8 (1)")]
    NotUtf8 { encoding: u32 },

    #[error("page {page} is out of range (the file has {pages})")]
    PageOutOfRange { page: u32, pages: u32 },

    #[error("page {page} is beyond the end of the file")]
    PageBeyondFile { page: u32 },

    #[error("page {page} is not a table b-tree page (its type is {kind:#04x})")]
    NotTablePage { page: u32, kind: u8 },

    #[error("a b-tree cycle at page {page}")]
    Cycle { page: u32 },

    #[error("the b-tree is more than {limit} levels deep at page {page}")]
    TooDeep { page: u32, limit: usize },

    #[error("page {page} is malformed: {reason}")]
    BadPage { page: u32, reason: &'static str },

    #[error("the overflow chain of a cell on page {page} is broken or cyclic at page {overflow}")]
    OverflowChain { page: u32, overflow: u32 },

    #[error("a record on page {page} declares {len} bytes, more than the limit of {limit}")]
    RecordTooLarge { page: u32, len: u64, limit: usize },

    #[error("a record is malformed at page {page}: {reason}")]
    MalformedRecord { page: u32, reason: &'static str },

    #[error("rows are out of rowid order at page {page}: rowid {rowid} after {previous}")]
    RowidOrder { page: u32, rowid: i64, previous: i64 },

    #[error("more than {limit} pages visited")]
    TooManyPages { limit: usize },

    #[error("more than {limit} rows")]
    TooManyRows { limit: usize },

    #[error("table {name} is not in the schema")]
    NoSuchTable { name: String },

    #[error("the schema gives table {name} an invalid root page")]
    BadRootPage { name: String },
}

/// Limits that bound the work and memory spent on a hostile file.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// B-tree and overflow pages one read of a table may visit (the schema's pages included).
    pub max_pages_visited: usize,
    /// Rows one read of a table may return.
    pub max_rows: usize,
    /// The largest record (row payload) accepted, in bytes.
    pub max_record_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pages_visited: 1_000_000,
            max_rows: 200_000,
            max_record_bytes: 64 << 20,
        }
    }
}

/// The database image: the main file's bytes with the committed frames of its WAL applied.
pub struct Database {
    /// The main database file.
    main: Vec<u8>,
    page_size: usize,
    /// The page size minus the reserved bytes at the end of every page.
    usable: usize,
    /// The database size in pages: from the last committed WAL frame, else the file length.
    pages: u32,
    /// The committed part of the WAL (header and frames up to the last commit frame).
    wal: Vec<u8>,
    /// Page number -> offset in `wal` of the latest committed content of that page.
    wal_index: HashMap<u32, usize>,
    /// How many WAL frames are committed (and so applied).
    wal_frames: usize,
    limits: Limits,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("file_len", &self.main.len())
            .field("page_size", &self.page_size)
            .field("usable", &self.usable)
            .field("pages", &self.pages)
            .field("wal_pages", &self.wal_index.len())
            .field("wal_frames", &self.wal_frames)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Database {
    /// `main` is the database file, `wal` the -wal file when present (only frames up to the last
    /// commit frame whose salts match the WAL header, with valid cumulative checksums as SQLite
    /// requires, are used). A WAL whose header is invalid is ignored, as SQLite does; an empty
    /// WAL (rpm truncates it on every clean close) adds nothing.
    pub fn open(main: &[u8], wal: Option<&[u8]>, limits: Limits) -> Result<Self, SqliteError> {
        if main.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(SqliteError::NotSqlite);
        }
        if main.len() < HEADER_LEN {
            return Err(SqliteError::TruncatedHeader { len: main.len() });
        }
        let truncated = SqliteError::TruncatedHeader { len: main.len() };
        let raw_page_size: u16 = be_u16(main, 16).ok_or(truncated.clone())?;
        // 65536 does not fit the two-byte field and is stored as 1.
        let page_size: usize = if raw_page_size == 1 {
            65_536
        } else {
            usize::from(raw_page_size)
        };
        if !(512..=65_536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(SqliteError::BadPageSize { size: page_size });
        }
        let reserved: u8 = main.get(20).copied().ok_or(truncated.clone())?;
        let usable: usize = page_size.saturating_sub(usize::from(reserved));
        if usable < MIN_USABLE {
            return Err(SqliteError::UsableSizeTooSmall { usable });
        }
        let encoding: u32 = be_u32(main, 56).ok_or(truncated)?;
        if encoding > 1 {
            // 0 is a database whose encoding is not set yet (no tables): UTF-8 by default.
            return Err(SqliteError::NotUtf8 { encoding });
        }
        let file_pages: u32 = u32::try_from(main.len() / page_size).unwrap_or(u32::MAX);
        let mut db = Self {
            main: main.to_vec(),
            page_size,
            usable,
            pages: file_pages,
            wal: Vec::new(),
            wal_index: HashMap::new(),
            wal_frames: 0,
            limits,
        };
        if let Some(image) = wal.and_then(|bytes| read_wal(bytes, page_size)) {
            db.pages = image.db_pages;
            db.wal = image.bytes;
            db.wal_index = image.index;
            db.wal_frames = image.frames;
        }
        Ok(db)
    }

    /// Every row of table `name` (found through sqlite_master, page 1), as (rowid, columns), in
    /// rowid order. Bounded by the limits. A column that is the table's INTEGER PRIMARY KEY is
    /// stored (and returned) as `Value::Null`: its value is the rowid.
    pub fn table_rows(&self, name: &str) -> Result<Vec<(i64, Vec<Value>)>, SqliteError> {
        let mut rows: Vec<(i64, Vec<Value>)> = Vec::new();
        self.for_each_row(name, |rowid, values| rows.push((rowid, values)))?;
        Ok(rows)
    }

    /// Like [`Database::table_rows`], but hands each row to `on_row` as it is read instead of
    /// collecting them; rows before an error have been handed over already.
    pub fn for_each_row<F>(&self, name: &str, mut on_row: F) -> Result<(), SqliteError>
    where
        F: FnMut(i64, Vec<Value>),
    {
        let mut visits: usize = 0;
        let root: u32 = self.root_page(name, &mut visits)?;
        let limit: usize = self.limits.max_rows;
        let mut rows: usize = 0;
        let mut on_cell = |page: u32, rowid: i64, payload: Vec<u8>| -> Result<(), SqliteError> {
            rows = rows.saturating_add(1);
            if rows > limit {
                return Err(SqliteError::TooManyRows { limit });
            }
            let values: Vec<Value> = decode_record(&payload, page)?;
            on_row(rowid, values);
            Ok(())
        };
        self.walk(root, &mut visits, &mut on_cell)?;
        Ok(())
    }

    /// The root page of table `name`, from the schema table (sqlite_master) rooted at page 1.
    fn root_page(&self, name: &str, visits: &mut usize) -> Result<u32, SqliteError> {
        let mut found: Option<Result<u32, SqliteError>> = None;
        let mut on_cell = |page: u32, _rowid: i64, payload: Vec<u8>| -> Result<(), SqliteError> {
            if found.is_some() {
                return Ok(());
            }
            // Columns: type, name, tbl_name, rootpage, sql.
            let values: Vec<Value> = decode_record(&payload, page)?;
            if let [Value::Text(kind), Value::Text(table), _, root, ..] = values.as_slice()
                && kind.as_slice() == b"table"
                && table.as_slice() == name.as_bytes()
            {
                let number: Option<u32> = match root {
                    Value::Integer(number) => u32::try_from(*number).ok().filter(|&n| n >= 1),
                    _ => None,
                };
                found = Some(number.ok_or_else(|| SqliteError::BadRootPage {
                    name: name.to_owned(),
                }));
            }
            Ok(())
        };
        self.walk(1, visits, &mut on_cell)?;
        found.unwrap_or_else(|| {
            Err(SqliteError::NoSuchTable {
                name: name.to_owned(),
            })
        })
    }

    /// Page `number` (1-based): its latest committed WAL frame, else the main file's copy.
    fn page(&self, number: u32) -> Result<&[u8], SqliteError> {
        if number == 0 || number > self.pages {
            return Err(SqliteError::PageOutOfRange {
                page: number,
                pages: self.pages,
            });
        }
        let beyond = SqliteError::PageBeyondFile { page: number };
        if let Some(&at) = self.wal_index.get(&number) {
            let end: usize = at.checked_add(self.page_size).ok_or(beyond.clone())?;
            return self.wal.get(at..end).ok_or(beyond);
        }
        let start: usize = to_usize(number - 1)
            .checked_mul(self.page_size)
            .ok_or(beyond.clone())?;
        let end: usize = start.checked_add(self.page_size).ok_or(beyond.clone())?;
        self.main.get(start..end).ok_or(beyond)
    }
}

#[cfg(test)]
mod tests;
