//! Tests of the SQLite reader. This module holds what every topic shares: the images SQLite
//! itself made (tests/fixtures/sqlite), the WAL helpers and the builders of hand-made images;
//! the tests are in the topic modules below.

use super::{
    btree::{MAX_DEPTH, PAGE_TABLE_INTERIOR, PAGE_TABLE_LEAF},
    record::{be_signed, varint},
    wal::{WAL_FRAME_HEADER_LEN, WAL_HEADER_LEN, WAL_MAGIC_BE, WAL_MAGIC_LE, wal_checksum},
    *,
};
use crate::packages::mutation::XorShift;

mod fixtures;
mod header;
mod hostile;
mod overflow;
mod records;
mod tree_pages;
mod wal_frames;

/// `tests/fixtures/sqlite/README.md` says how the fixtures were made (Python's sqlite3).
const PACKAGES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sqlite/packages.sqlite"
));
const WAL_MAIN: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sqlite/wal-main.sqlite"
));
const WAL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sqlite/wal-main.sqlite-wal"
));
/// One frame of the WAL fixture (page size 1024).
const FRAME: usize = WAL_FRAME_HEADER_LEN + 1024;

/// The generator's `blob(seed, size)`: byte i is (seed*7 + i) % 256.
fn fixture_blob(seed: u64, size: usize) -> Vec<u8> {
    (0..size).map(|i| ((seed * 7 + i as u64) % 256) as u8).collect()
}

/// The generator's `size_of(rowid)` for packages.sqlite.
fn fixture_size(rowid: u64) -> usize {
    if rowid == 150 {
        3000
    } else {
        150 + (rowid * 37 % 100) as usize
    }
}

/// The rows of wal-main.sqlite's Packages after: the main file alone (`last` 10), WAL
/// transaction A (rows 11..=20), B (row 3 rewritten) and C (row 5 deleted).
fn wal_state(last: i64, row3_rewritten: bool, row5_deleted: bool) -> Vec<(i64, Vec<Value>)> {
    let mut rows: Vec<(i64, Vec<Value>)> = Vec::new();
    for rowid in 1..=last {
        if rowid == 5 && row5_deleted {
            continue;
        }
        let seed: u64 = if rowid == 3 && row3_rewritten {
            1003
        } else {
            rowid as u64
        };
        rows.push((rowid, vec![Value::Null, Value::Blob(fixture_blob(seed, 40))]));
    }
    rows
}

fn wal_rows(wal: Option<&[u8]>) -> Vec<(i64, Vec<Value>)> {
    Database::open(WAL_MAIN, wal, Limits::default())
        .unwrap()
        .table_rows("Packages")
        .unwrap()
}

/// The WAL with its magic set for `big_endian` checksums and every checksum recomputed.
fn rechecksum(wal: &[u8], big_endian: bool) -> Vec<u8> {
    let mut out: Vec<u8> = wal.to_vec();
    let magic: u32 = if big_endian { WAL_MAGIC_BE } else { WAL_MAGIC_LE };
    out[0..4].copy_from_slice(&magic.to_be_bytes());
    let mut sum: (u32, u32) = wal_checksum(&out[..24], (0, 0), big_endian);
    out[24..28].copy_from_slice(&sum.0.to_be_bytes());
    out[28..32].copy_from_slice(&sum.1.to_be_bytes());
    let mut offset: usize = WAL_HEADER_LEN;
    while offset + FRAME <= out.len() {
        sum = wal_checksum(&out[offset..offset + 8], sum, big_endian);
        sum = wal_checksum(
            &out[offset + WAL_FRAME_HEADER_LEN..offset + FRAME],
            sum,
            big_endian,
        );
        out[offset + 16..offset + 20].copy_from_slice(&sum.0.to_be_bytes());
        out[offset + 20..offset + 24].copy_from_slice(&sum.1.to_be_bytes());
        offset += FRAME;
    }
    out
}

/// Recomputes only the WAL header's checksum (little-endian words).
fn fix_header_checksum(wal: &mut [u8]) {
    let sum: (u32, u32) = wal_checksum(&wal[..24], (0, 0), false);
    wal[24..28].copy_from_slice(&sum.0.to_be_bytes());
    wal[28..32].copy_from_slice(&sum.1.to_be_bytes());
}

// ---- builders for hand-made images -----------------------------------------------------

fn encode_varint(value: u64) -> Vec<u8> {
    if value > 0x00ff_ffff_ffff_ffff {
        // Nine bytes: 8 x 7 bits of value >> 8, then the low 8 bits whole.
        let high: u64 = value >> 8;
        let mut out: Vec<u8> = Vec::with_capacity(9);
        for i in (0..8u32).rev() {
            out.push((((high >> (7 * i)) & 0x7f) as u8) | 0x80);
        }
        out.push((value & 0xff) as u8);
        return out;
    }
    let mut groups: Vec<u8> = Vec::new();
    let mut rest: u64 = value;
    loop {
        groups.push((rest & 0x7f) as u8);
        rest >>= 7;
        if rest == 0 {
            break;
        }
    }
    groups.reverse();
    let last: usize = groups.len() - 1;
    for (i, group) in groups.iter_mut().enumerate() {
        if i != last {
            *group |= 0x80;
        }
    }
    groups
}

fn encode_record(values: &[Value]) -> Vec<u8> {
    let mut types: Vec<u8> = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    for value in values {
        let serial: u64 = match value {
            Value::Null => 0,
            Value::Integer(v) => {
                body.extend_from_slice(&v.to_be_bytes());
                6
            }
            Value::Real(v) => {
                body.extend_from_slice(&v.to_be_bytes());
                7
            }
            Value::Text(t) => {
                body.extend_from_slice(t);
                13 + 2 * t.len() as u64
            }
            Value::Blob(b) => {
                body.extend_from_slice(b);
                12 + 2 * b.len() as u64
            }
        };
        types.extend_from_slice(&encode_varint(serial));
    }
    assert!(types.len() < 127, "test records keep a one-byte header length");
    let mut out: Vec<u8> = encode_varint(types.len() as u64 + 1);
    out.extend_from_slice(&types);
    out.extend_from_slice(&body);
    out
}

fn leaf_cell(rowid: i64, payload: &[u8]) -> Vec<u8> {
    let mut cell: Vec<u8> = encode_varint(payload.len() as u64);
    cell.extend_from_slice(&encode_varint(rowid as u64));
    cell.extend_from_slice(payload);
    cell
}

fn interior_cell(child: u32, key: i64) -> Vec<u8> {
    let mut cell: Vec<u8> = child.to_be_bytes().to_vec();
    cell.extend_from_slice(&encode_varint(key as u64));
    cell
}

/// A b-tree page of `page_size` bytes whose cells end at `usable`; the page header is at
/// `offset` (100 on page 1); `right` makes it an interior page.
fn btree_page(
    page_size: usize,
    usable: usize,
    offset: usize,
    kind: u8,
    cells: &[Vec<u8>],
    right: Option<u32>,
) -> Vec<u8> {
    let mut page: Vec<u8> = vec![0u8; page_size];
    page[offset] = kind;
    let header_len: usize = if right.is_some() { 12 } else { 8 };
    page[offset + 3..offset + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
    let mut end: usize = usable;
    for (i, cell) in cells.iter().enumerate() {
        end -= cell.len();
        page[end..end + cell.len()].copy_from_slice(cell);
        let at: usize = offset + header_len + 2 * i;
        page[at..at + 2].copy_from_slice(&(end as u16).to_be_bytes());
    }
    page[offset + 5..offset + 7].copy_from_slice(&((end % 65_536) as u16).to_be_bytes());
    if let Some(child) = right {
        page[offset + 8..offset + 12].copy_from_slice(&child.to_be_bytes());
    }
    page
}

fn leaf(page_size: usize, rows: &[(i64, Vec<Value>)]) -> Vec<u8> {
    let cells: Vec<Vec<u8>> = rows
        .iter()
        .map(|(rowid, values)| leaf_cell(*rowid, &encode_record(values)))
        .collect();
    btree_page(page_size, page_size, 0, PAGE_TABLE_LEAF, &cells, None)
}

/// A database image: page 1 holds the header and a schema of `tables` (name, root page),
/// followed by `pages` (pages 2, 3, ...).
fn image(page_size: usize, reserved: u8, tables: &[(&str, u32)], pages: &[Vec<u8>]) -> Vec<u8> {
    let mut schema: Vec<Vec<u8>> = Vec::new();
    for (i, (name, root)) in tables.iter().enumerate() {
        let record: Vec<u8> = encode_record(&[
            Value::Text(b"table".to_vec()),
            Value::Text(name.as_bytes().to_vec()),
            Value::Text(name.as_bytes().to_vec()),
            Value::Integer(i64::from(*root)),
            Value::Text(b"CREATE TABLE t(a, b)".to_vec()),
        ]);
        schema.push(leaf_cell(i as i64 + 1, &record));
    }
    let usable: usize = page_size - usize::from(reserved);
    let mut out: Vec<u8> = btree_page(page_size, usable, HEADER_LEN, PAGE_TABLE_LEAF, &schema, None);
    out[..16].copy_from_slice(MAGIC);
    let raw_size: u16 = if page_size == 65_536 { 1 } else { page_size as u16 };
    out[16..18].copy_from_slice(&raw_size.to_be_bytes());
    out[18] = 1;
    out[19] = 1;
    out[20] = reserved;
    out[21] = 64;
    out[22] = 32;
    out[23] = 32;
    out[28..32].copy_from_slice(&((pages.len() + 1) as u32).to_be_bytes());
    out[44..48].copy_from_slice(&4u32.to_be_bytes());
    out[56..60].copy_from_slice(&1u32.to_be_bytes());
    for page in pages {
        out.extend_from_slice(page);
    }
    out
}

fn read(image: &[u8], table: &str) -> Result<Vec<(i64, Vec<Value>)>, SqliteError> {
    Database::open(image, None, Limits::default())?.table_rows(table)
}

fn two_rows() -> Vec<(i64, Vec<Value>)> {
    vec![
        (1, vec![Value::Null, Value::Blob(b"one".to_vec())]),
        (7, vec![Value::Integer(-3), Value::Text(b"seven".to_vec())]),
    ]
}
