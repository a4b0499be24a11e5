//! The SQLite reader (the rpm database's format) against SQLite itself, through rusqlite with
//! SQLite bundled: databases of many shapes are written by SQLite (page sizes from 512 to
//! 65,536 bytes, overflow chains, interior pages, deleted rows on the freelist, a WAL not yet
//! checkpointed) and both must read the same rows. Then the same databases damaged at random:
//! the reader must never panic, and where SQLite's own integrity check passes and SQLite reads
//! the table, both must agree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use kubefim_agent::packages::sqlite::{Database, Limits, Value};
use rusqlite::{Connection, types::ValueRef};

fn sqlite_rows(connection: &Connection, table: &str) -> rusqlite::Result<Vec<(i64, Vec<Value>)>> {
    let columns = connection
        .prepare(&format!("SELECT * FROM {table}"))?
        .column_count();
    let mut statement = connection.prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid"))?;
    let rows = statement.query_map([], |row| {
        let rowid: i64 = row.get(0)?;
        let mut values = Vec::with_capacity(columns);
        for i in 1..=columns {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(r) => Value::Real(r),
                ValueRef::Text(t) => Value::Text(t.to_vec()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        Ok((rowid, values))
    })?;
    rows.collect()
}

/// Our rows, with trailing NULL columns SQLite returns for columns a record does not hold
/// (a record written before an ALTER TABLE ADD COLUMN) filled in as SQLite does.
fn our_rows(
    main: &[u8],
    wal: Option<&[u8]>,
    table: &str,
    columns: usize,
) -> Result<Vec<(i64, Vec<Value>)>, String> {
    let db = Database::open(main, wal, Limits::default()).map_err(|e| e.to_string())?;
    let mut rows = db.table_rows(table).map_err(|e| e.to_string())?;
    for (rowid, values) in &mut rows {
        values.resize(columns.max(values.len()), Value::Null);
        // The INTEGER PRIMARY KEY column is the rowid: SQLite stores NULL in the record and
        // returns the rowid for it (as the rpm reader reads hnum).
        if values[0] == Value::Null {
            values[0] = Value::Integer(*rowid);
        }
    }
    rows.sort_by_key(|(rowid, _)| *rowid);
    Ok(rows)
}

/// A row with long values cut, for a readable failure.
fn short(row: &(i64, Vec<Value>)) -> String {
    format!("{:.300}", format!("{row:?}"))
}

/// xorshift64*, seeded: the same databases and damage for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Writes a database of `rows` random rows with page size `page_size` into `dir`; with
/// `wal`, the last part is left in the WAL. Returns (main, wal) bytes.
fn make(
    dir: &std::path::Path,
    seed: u64,
    page_size: u32,
    rows: usize,
    wal: bool,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let path = dir.join(format!("db-{seed}-{page_size}-{rows}-{wal}.sqlite"));
    let connection = Connection::open(&path).unwrap();
    connection.pragma_update(None, "page_size", page_size).unwrap();
    if wal {
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    }
    connection
        .execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL, name TEXT, score REAL, flag INTEGER)")
        .unwrap();
    let mut rng = Rng(seed | 1);
    let insert = |connection: &Connection, rng: &mut Rng| {
        let size = match rng.below(10) {
            0 => rng.below(200_000) as usize, // overflow chains
            1..=3 => rng.below(4_000) as usize,
            _ => rng.below(300) as usize,
        };
        let blob: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        let name = (rng.below(3) > 0).then(|| format!("pkg-{}", rng.next()));
        let score = (rng.below(2) == 0).then(|| (rng.next() as f64) / 7.0);
        let flag = match rng.below(4) {
            0 => None,
            1 => Some(0i64),
            2 => Some(rng.next() as i64),
            _ => Some(-(rng.below(1_000) as i64)),
        };
        connection
            .execute(
                "INSERT INTO Packages (blob, name, score, flag) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![blob, name, score, flag],
            )
            .unwrap();
    };
    for _ in 0..rows {
        insert(&connection, &mut rng);
    }
    // Deleted rows leave freelist pages and free blocks behind.
    connection
        .execute("DELETE FROM Packages WHERE hnum % 7 = 3", [])
        .unwrap();
    if wal {
        connection.pragma_update(None, "wal_checkpoint", "TRUNCATE").ok();
        for _ in 0..rows / 3 + 1 {
            insert(&connection, &mut rng);
        }
        connection
            .execute("DELETE FROM Packages WHERE hnum % 11 = 5", [])
            .unwrap();
    }
    let main = std::fs::read(&path).unwrap();
    let wal_bytes = wal.then(|| std::fs::read(path.with_extension("sqlite-wal")).unwrap_or_default());
    // Keep the connection open until both files are read: closing checkpoints the WAL.
    drop(connection);
    (main, wal_bytes)
}

#[test]
fn the_reader_reads_what_sqlite_wrote_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = 0;
    for (seed, page_size, rows, wal) in [
        (1, 512, 50, false),
        (2, 1024, 400, false),
        (3, 4096, 2_000, false),
        (4, 4096, 3_000, true),
        (5, 8192, 500, true),
        (6, 65_536, 300, false),
        (7, 32_768, 1_000, true),
        (8, 2048, 0, false),
    ] {
        let (main, wal_bytes) = make(dir.path(), seed, page_size, rows, wal);
        let copy = dir.path().join(format!("read-{seed}.sqlite"));
        std::fs::write(&copy, &main).unwrap();
        if let Some(w) = &wal_bytes {
            std::fs::write(copy.with_extension("sqlite-wal"), w).unwrap();
        }
        let expected = sqlite_rows(&Connection::open(&copy).unwrap(), "Packages").unwrap();
        let ours = our_rows(&main, wal_bytes.as_deref(), "Packages", 5).unwrap();
        assert_eq!(ours.len(), expected.len(), "seed {seed}: row count");
        if let Some((a, b)) = ours.iter().zip(&expected).find(|(a, b)| a != b) {
            panic!(
                "seed {seed}: rows differ: ours {:?}, SQLite's {:?}",
                short(a),
                short(b)
            );
        }
        cases += 1;
    }
    assert_eq!(cases, 8);
}

#[test]
fn damaged_databases_never_panic_and_agree_with_sqlite_where_sqlite_vouches_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let (pristine, _) = make(dir.path(), 42, 1024, 800, false);
    let mut rng = Rng(0x5eed);
    let (mut agreed, mut refused) = (0, 0);
    for round in 0..300 {
        let mut damaged = pristine.clone();
        for _ in 0..=rng.below(8) {
            let at = rng.below(damaged.len() as u64) as usize;
            damaged[at] = rng.next() as u8;
        }
        if rng.below(10) == 0 {
            damaged.truncate(rng.below(damaged.len() as u64) as usize);
        }
        let ours = std::panic::catch_unwind(|| our_rows(&damaged, None, "Packages", 5))
            .unwrap_or_else(|_| panic!("round {round}: the reader panicked"));
        let path = dir.path().join(format!("damaged-{round}.sqlite"));
        std::fs::write(&path, &damaged).unwrap();
        let Ok(connection) = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        else {
            continue;
        };
        let intact = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get::<_, String>(0))
            .is_ok_and(|verdict| verdict == "ok");
        match (intact, sqlite_rows(&connection, "Packages"), ours) {
            (true, Ok(expected), Ok(ours)) => {
                assert!(
                    ours == expected,
                    "round {round}: SQLite vouches for the file and reads other rows"
                );
                agreed += 1;
            }
            (true, Ok(expected), Err(e)) => {
                // Damage SQLite does not check (unused header fields, free space) must not
                // make the reader refuse what SQLite reads.
                panic!(
                    "round {round}: refused ({e}) a database SQLite reads ({} rows) and vouches for",
                    expected.len()
                );
            }
            (_, _, Err(_)) => refused += 1,
            _ => {}
        }
    }
    assert!(
        agreed > 0 && refused > 0,
        "agreed {agreed}, refused {refused}: the damage should do both"
    );
}
