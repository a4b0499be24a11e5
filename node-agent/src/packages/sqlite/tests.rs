use super::{
    record::be_signed,
    wal::{WAL_FRAME_HEADER_LEN, WAL_HEADER_LEN, WAL_MAGIC_BE, WAL_MAGIC_LE, wal_checksum},
    *,
};
use crate::packages::mutation::XorShift;

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

// ---- the fixtures made by SQLite itself -------------------------------------------------

#[test]
fn reads_a_three_level_table_with_an_overflow_chain() {
    let db = Database::open(PACKAGES, None, Limits::default()).unwrap();
    assert_eq!(db.page_size, 512);
    assert_eq!(db.pages, 163);
    let rows = db.table_rows("Packages").unwrap();
    assert_eq!(rows.len(), 300);
    for (i, (rowid, values)) in rows.iter().enumerate() {
        let expected: u64 = i as u64 + 1;
        assert_eq!(*rowid, expected as i64);
        let blob: Vec<u8> = fixture_blob(expected, fixture_size(expected));
        assert_eq!(values.as_slice(), [Value::Null, Value::Blob(blob)], "row {rowid}");
    }
}

#[test]
fn decodes_every_serial_type() {
    let rows = read(PACKAGES, "Other").unwrap();
    let expected: Vec<(i64, Vec<Value>)> = vec![
        (-1, vec![Value::Null, Value::Integer(0), Value::Integer(1)]),
        (
            1,
            vec![Value::Integer(127), Value::Integer(-128), Value::Integer(32_767)],
        ),
        (
            2,
            vec![
                Value::Integer(-8_388_608),
                Value::Integer(2_147_483_647),
                Value::Integer(-140_737_488_355_328),
            ],
        ),
        (
            3,
            vec![
                Value::Integer(i64::MAX),
                Value::Integer(i64::MIN),
                Value::Real(1.5),
            ],
        ),
        (
            1_i64 << 40,
            vec![
                Value::Text("héllo".as_bytes().to_vec()),
                Value::Blob(Vec::new()),
                Value::Text(Vec::new()),
            ],
        ),
    ];
    assert_eq!(rows, expected);
}

#[test]
fn a_missing_table_is_named() {
    assert_eq!(
        read(PACKAGES, "Nope"),
        Err(SqliteError::NoSuchTable {
            name: "Nope".to_owned()
        })
    );
}

#[test]
fn limits_bound_rows_pages_and_records() {
    let limits = |max_pages_visited: usize, max_rows: usize, max_record_bytes: usize| Limits {
        max_pages_visited,
        max_rows,
        max_record_bytes,
    };
    let rows = |limits: Limits| -> Result<Vec<(i64, Vec<Value>)>, SqliteError> {
        Database::open(PACKAGES, None, limits)?.table_rows("Packages")
    };
    assert_eq!(
        rows(limits(1_000, 10, 1 << 20)),
        Err(SqliteError::TooManyRows { limit: 10 })
    );
    assert_eq!(rows(limits(1_000, 300, 1 << 20)).unwrap().len(), 300);
    // Page 1 (the schema) plus the 160 pages of the table and its overflow chain.
    assert_eq!(rows(limits(161, 300, 1 << 20)).unwrap().len(), 300);
    assert_eq!(
        rows(limits(160, 300, 1 << 20)),
        Err(SqliteError::TooManyPages { limit: 160 })
    );
    assert_eq!(
        rows(limits(5, 300, 1 << 20)),
        Err(SqliteError::TooManyPages { limit: 5 })
    );
    // Row 150's record: a 4-byte header and its 3000-byte blob.
    assert!(matches!(
        rows(limits(1_000, 300, 1_000)),
        Err(SqliteError::RecordTooLarge {
            len: 3004,
            limit: 1_000,
            ..
        })
    ));
}

#[test]
fn committed_wal_frames_are_applied() {
    let db = Database::open(WAL_MAIN, Some(WAL), Limits::default()).unwrap();
    assert_eq!(db.wal_frames, 4);
    assert_eq!(db.pages, 3);
    assert_eq!(db.wal_index.len(), 2);
    assert_eq!(wal_rows(Some(WAL)), wal_state(20, true, true));
}

#[test]
fn without_wal_only_the_checkpointed_rows_are_seen() {
    assert_eq!(wal_rows(None), wal_state(10, false, false));
    // rpm truncates the WAL to 0 bytes on every clean close.
    assert_eq!(wal_rows(Some(&WAL[..0])), wal_state(10, false, false));
    assert_eq!(
        wal_rows(Some(&WAL[..WAL_HEADER_LEN])),
        wal_state(10, false, false)
    );
}

#[test]
fn frames_after_the_last_commit_are_ignored() {
    // Frame 1 (page 2 of transaction A) is not a commit frame; frame 2 commits A, 3 B, 4 C.
    assert_eq!(
        wal_rows(Some(&WAL[..WAL_HEADER_LEN + FRAME])),
        wal_state(10, false, false)
    );
    assert_eq!(
        wal_rows(Some(&WAL[..WAL_HEADER_LEN + 2 * FRAME])),
        wal_state(20, false, false)
    );
    assert_eq!(
        wal_rows(Some(&WAL[..WAL_HEADER_LEN + 3 * FRAME])),
        wal_state(20, true, false)
    );
    // A torn last frame.
    assert_eq!(wal_rows(Some(&WAL[..WAL.len() - 1])), wal_state(20, true, false));
}

#[test]
fn a_bad_checksum_ends_the_wal() {
    let mut wal: Vec<u8> = WAL.to_vec();
    wal[WAL_HEADER_LEN + 3 * FRAME + WAL_FRAME_HEADER_LEN + 100] ^= 0x40;
    assert_eq!(wal_rows(Some(&wal)), wal_state(20, true, false));
    let mut wal: Vec<u8> = WAL.to_vec();
    wal[WAL_HEADER_LEN + FRAME + 2] ^= 0x01;
    assert_eq!(wal_rows(Some(&wal)), wal_state(10, false, false));
    // A header with a bad checksum: the whole WAL is ignored.
    let mut wal: Vec<u8> = WAL.to_vec();
    wal[12] ^= 0x01;
    assert_eq!(wal_rows(Some(&wal)), wal_state(10, false, false));
}

#[test]
fn frames_with_other_salts_are_ignored() {
    let mut wal: Vec<u8> = WAL.to_vec();
    wal[16] ^= 0x01;
    fix_header_checksum(&mut wal);
    assert_eq!(wal_rows(Some(&wal)), wal_state(10, false, false));
}

#[test]
fn a_wal_of_another_page_size_or_version_is_ignored() {
    let mut wal: Vec<u8> = WAL.to_vec();
    wal[8..12].copy_from_slice(&4096u32.to_be_bytes());
    fix_header_checksum(&mut wal);
    assert_eq!(wal_rows(Some(&wal)), wal_state(10, false, false));
    let mut wal: Vec<u8> = WAL.to_vec();
    wal[4..8].copy_from_slice(&3_007_001u32.to_be_bytes());
    fix_header_checksum(&mut wal);
    assert_eq!(wal_rows(Some(&wal)), wal_state(10, false, false));
}

#[test]
fn wal_checksums_match_sqlite_in_both_byte_orders() {
    // Recomputing the little-endian checksums SQLite wrote reproduces the file exactly.
    assert_eq!(rechecksum(WAL, false), WAL);
    let big: Vec<u8> = rechecksum(WAL, true);
    assert_ne!(big, WAL);
    assert_eq!(wal_rows(Some(&big)), wal_state(20, true, true));
}

// ---- hand-made images ------------------------------------------------------------------

#[test]
fn a_hand_made_image_reads() {
    let img = image(512, 0, &[("T", 2)], &[leaf(512, &two_rows())]);
    assert_eq!(read(&img, "T"), Ok(two_rows()));
}

#[test]
fn page_size_65536_is_stored_as_1() {
    let img = image(65_536, 0, &[("T", 2)], &[leaf(65_536, &two_rows())]);
    let db = Database::open(&img, None, Limits::default()).unwrap();
    assert_eq!(db.page_size, 65_536);
    assert_eq!(db.table_rows("T"), Ok(two_rows()));
}

#[test]
fn reserved_bytes_shrink_the_usable_area() {
    let cells: Vec<Vec<u8>> = two_rows()
        .iter()
        .map(|(rowid, values)| leaf_cell(*rowid, &encode_record(values)))
        .collect();
    // Cells that end at the usable size read; cells in the reserved bytes do not.
    let inside = btree_page(512, 480, 0, PAGE_TABLE_LEAF, &cells, None);
    assert_eq!(read(&image(512, 32, &[("T", 2)], &[inside]), "T"), Ok(two_rows()));
    let outside = btree_page(512, 512, 0, PAGE_TABLE_LEAF, &cells, None);
    assert!(matches!(
        read(&image(512, 32, &[("T", 2)], &[outside]), "T"),
        Err(SqliteError::BadPage { page: 2, .. })
    ));
}

#[test]
fn refuses_what_is_not_sqlite() {
    fn open(bytes: &[u8]) -> Result<(), SqliteError> {
        Database::open(bytes, None, Limits::default()).map(|_| ())
    }
    assert_eq!(open(b""), Err(SqliteError::NotSqlite));
    assert_eq!(open(b"hello"), Err(SqliteError::NotSqlite));
    assert_eq!(open(&[0u8; 4096]), Err(SqliteError::NotSqlite));
    let mut short: Vec<u8> = MAGIC.to_vec();
    short.extend_from_slice(&[2, 0, 1, 1]);
    assert_eq!(open(&short), Err(SqliteError::TruncatedHeader { len: 20 }));
    assert_eq!(
        open(&PACKAGES[..99]),
        Err(SqliteError::TruncatedHeader { len: 99 })
    );

    let good = image(512, 0, &[("T", 2)], &[leaf(512, &two_rows())]);
    for (raw, size) in [(1000u16, 1000usize), (256, 256), (0, 0), (32_768 + 1, 32_769)] {
        let mut bad = good.clone();
        bad[16..18].copy_from_slice(&raw.to_be_bytes());
        assert_eq!(open(&bad), Err(SqliteError::BadPageSize { size }));
    }
    let mut bad = good.clone();
    bad[20] = 40;
    assert_eq!(open(&bad), Err(SqliteError::UsableSizeTooSmall { usable: 472 }));
    let mut bad = good.clone();
    bad[56..60].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(open(&bad), Err(SqliteError::NotUtf8 { encoding: 2 }));
}

#[test]
fn a_root_page_out_of_range() {
    let img = image(512, 0, &[("T", 9)], &[leaf(512, &two_rows())]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::PageOutOfRange { page: 9, pages: 2 })
    );
    let img = image(512, 0, &[("T", 0)], &[leaf(512, &two_rows())]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::BadRootPage { name: "T".to_owned() })
    );
    // A file cut short: page 2 is no longer in it.
    let img = image(512, 0, &[("T", 2)], &[leaf(512, &two_rows())]);
    assert_eq!(
        read(&img[..1000], "T"),
        Err(SqliteError::PageOutOfRange { page: 2, pages: 1 })
    );
}

#[test]
fn a_child_page_out_of_range() {
    let interior = btree_page(512, 512, 0, PAGE_TABLE_INTERIOR, &[interior_cell(3, 1)], Some(0));
    let img = image(512, 0, &[("T", 2)], &[interior, leaf(512, &two_rows())]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::PageOutOfRange { page: 0, pages: 3 })
    );
}

#[test]
fn an_interior_page_pointing_to_itself_is_a_cycle() {
    let interior = btree_page(512, 512, 0, PAGE_TABLE_INTERIOR, &[interior_cell(2, 1)], Some(2));
    let img = image(512, 0, &[("T", 2)], &[interior]);
    assert_eq!(read(&img, "T"), Err(SqliteError::Cycle { page: 2 }));
}

#[test]
fn a_longer_cycle_and_a_too_deep_tree() {
    let to_3 = btree_page(512, 512, 0, PAGE_TABLE_INTERIOR, &[], Some(3));
    let to_2 = btree_page(512, 512, 0, PAGE_TABLE_INTERIOR, &[], Some(2));
    let img = image(512, 0, &[("T", 2)], &[to_3, to_2]);
    assert_eq!(read(&img, "T"), Err(SqliteError::Cycle { page: 2 }));

    // `interiors` interior pages from page 2 on, each leading to the next, then a leaf.
    let chain = |interiors: u32| {
        let mut pages: Vec<Vec<u8>> = Vec::new();
        for number in 2..2 + interiors {
            pages.push(btree_page(
                512,
                512,
                0,
                PAGE_TABLE_INTERIOR,
                &[],
                Some(number + 1),
            ));
        }
        pages.push(leaf(512, &two_rows()));
        read(&image(512, 0, &[("T", 2)], &pages), "T")
    };
    // The leaf at depth 40 reads; at depth 41 (page 43) it is too deep.
    assert_eq!(chain(40), Ok(two_rows()));
    assert_eq!(
        chain(41),
        Err(SqliteError::TooDeep {
            page: 43,
            limit: MAX_DEPTH
        })
    );
}

#[test]
fn a_child_pointer_to_page_1() {
    let interior = btree_page(512, 512, 0, PAGE_TABLE_INTERIOR, &[interior_cell(1, 1)], Some(3));
    let img = image(512, 0, &[("T", 2)], &[interior, leaf(512, &two_rows())]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::BadPage {
            page: 2,
            reason: "a child pointer to page 1"
        })
    );
}

#[test]
fn rows_out_of_rowid_order() {
    let rows: Vec<(i64, Vec<Value>)> = vec![(5, vec![Value::Null]), (3, vec![Value::Null])];
    let img = image(512, 0, &[("T", 2)], &[leaf(512, &rows)]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::RowidOrder {
            page: 2,
            rowid: 3,
            previous: 5
        })
    );
    // Across leaves: the left leaf holds 5, the right one 3.
    let interior = btree_page(512, 512, 0, PAGE_TABLE_INTERIOR, &[interior_cell(3, 5)], Some(4));
    let left = leaf(512, &[(5, vec![Value::Null])]);
    let right = leaf(512, &[(3, vec![Value::Null])]);
    let img = image(512, 0, &[("T", 2)], &[interior, left, right]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::RowidOrder {
            page: 4,
            rowid: 3,
            previous: 5
        })
    );
}

#[test]
fn a_page_that_is_not_a_table_page() {
    let mut page = leaf(512, &two_rows());
    page[0] = 0x0a;
    let img = image(512, 0, &[("T", 2)], &[page]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::NotTablePage { page: 2, kind: 0x0a })
    );
}

#[test]
fn bad_cell_pointers() {
    let outside = SqliteError::BadPage {
        page: 2,
        reason: "a cell pointer is outside the cell content area",
    };
    for pointer in [0u16, 9, 512, 600, u16::MAX] {
        let mut page = leaf(512, &two_rows());
        page[8..10].copy_from_slice(&pointer.to_be_bytes());
        let img = image(512, 0, &[("T", 2)], &[page]);
        assert_eq!(read(&img, "T"), Err(outside.clone()), "pointer {pointer}");
    }
    let mut page = leaf(512, &two_rows());
    page[3..5].copy_from_slice(&u16::MAX.to_be_bytes());
    let img = image(512, 0, &[("T", 2)], &[page]);
    assert_eq!(
        read(&img, "T"),
        Err(SqliteError::BadPage {
            page: 2,
            reason: "the cell pointer array exceeds the page"
        })
    );
}

/// A leaf (page 2) with one cell declaring `declared` payload bytes, whose local part and
/// overflow pointer are all `fill` bytes except an overflow pointer `first_overflow` placed
/// where a 512-byte page puts it for a 1000-byte payload (after 39 local bytes).
fn overflowing_leaf(declared: u64, fill: u8, first_overflow: Option<u32>) -> Vec<u8> {
    let mut cell: Vec<u8> = encode_varint(declared);
    cell.extend_from_slice(&encode_varint(1));
    let head: usize = cell.len();
    cell.extend_from_slice(&[fill; 481]);
    if let Some(pointer) = first_overflow {
        cell[head + 39..head + 43].copy_from_slice(&pointer.to_be_bytes());
    }
    btree_page(512, 512, 0, PAGE_TABLE_LEAF, &[cell], None)
}

fn overflow_page(next: u32) -> Vec<u8> {
    let mut page: Vec<u8> = vec![0u8; 512];
    page[..4].copy_from_slice(&next.to_be_bytes());
    page
}

#[test]
fn broken_and_cyclic_overflow_chains() {
    // A 1000-byte payload on 512-byte pages keeps 39 bytes local and needs 2 overflow pages.
    let chain = |first: u32, next: u32| {
        let img = image(
            512,
            0,
            &[("T", 2)],
            &[overflowing_leaf(1000, 0, Some(first)), overflow_page(next)],
        );
        read(&img, "T")
    };
    assert_eq!(
        chain(3, 3),
        Err(SqliteError::OverflowChain { page: 2, overflow: 3 })
    );
    assert_eq!(
        chain(2, 0),
        Err(SqliteError::OverflowChain { page: 2, overflow: 2 })
    );
    assert_eq!(
        chain(1, 0),
        Err(SqliteError::OverflowChain { page: 2, overflow: 1 })
    );
    assert_eq!(
        chain(3, 0),
        Err(SqliteError::OverflowChain { page: 2, overflow: 0 })
    );
    assert_eq!(
        chain(0, 0),
        Err(SqliteError::OverflowChain { page: 2, overflow: 0 })
    );
    assert_eq!(
        chain(3, 77),
        Err(SqliteError::PageOutOfRange { page: 77, pages: 3 })
    );
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    let declared = |declared: u64, fill: u8| {
        let img = image(
            512,
            0,
            &[("T", 2)],
            &[overflowing_leaf(declared, fill, None), overflow_page(0)],
        );
        read(&img, "T")
    };
    let limit: usize = Limits::default().max_record_bytes;
    assert_eq!(
        declared(1 << 40, 0),
        Err(SqliteError::RecordTooLarge {
            page: 2,
            len: 1 << 40,
            limit
        })
    );
    assert_eq!(
        declared(u64::MAX, 0),
        Err(SqliteError::RecordTooLarge {
            page: 2,
            len: u64::MAX,
            limit
        })
    );
    // 60 MiB is within the limit, but would need far more overflow pages than the file has.
    assert_eq!(
        declared(60 << 20, 7),
        Err(SqliteError::OverflowChain {
            page: 2,
            overflow: 0x0707_0707
        })
    );
}

#[test]
fn malformed_records() {
    let record = |payload: &[u8]| {
        let cell: Vec<u8> = leaf_cell(1, payload);
        let page = btree_page(512, 512, 0, PAGE_TABLE_LEAF, &[cell], None);
        read(&image(512, 0, &[("T", 2)], &[page]), "T")
    };
    let malformed = |reason: &'static str| -> Result<Vec<(i64, Vec<Value>)>, SqliteError> {
        Err(SqliteError::MalformedRecord { page: 2, reason })
    };
    assert_eq!(record(&[]), malformed("the header length runs past the record"));
    assert_eq!(
        record(&[0x7f, 0x01]),
        malformed("the header length does not fit the record")
    );
    assert_eq!(
        record(&[0x00]),
        malformed("the header length does not fit the record")
    );
    assert_eq!(
        record(&[0x02, 0x0a]),
        malformed("a reserved serial type (10 or 11)")
    );
    assert_eq!(
        record(&[0x02, 0x0b]),
        malformed("a reserved serial type (10 or 11)")
    );
    assert_eq!(record(&[0x02, 0x20]), malformed("a value runs past the record"));
    assert_eq!(
        record(&[0x02, 0x06, 1, 2, 3]),
        malformed("a value runs past the record")
    );
    assert_eq!(
        record(&[0x02, 0x81]),
        malformed("a serial type runs past the header")
    );
    // A header of only its length: a row without columns.
    assert_eq!(record(&[0x01]), Ok(vec![(1, Vec::new())]));
}

#[test]
fn varints() {
    for value in [
        0u64,
        1,
        127,
        128,
        16_383,
        16_384,
        0x00ff_ffff_ffff_ffff,
        0x0100_0000_0000_0000,
        1 << 63,
        u64::MAX,
    ] {
        let bytes: Vec<u8> = encode_varint(value);
        assert_eq!(
            varint(&bytes, 0, bytes.len()),
            Some((value, bytes.len())),
            "{value}"
        );
        assert_eq!(varint(&bytes, 0, bytes.len() - 1), None, "{value}");
    }
    assert_eq!(varint(&[0xff; 9], 0, 9), Some((u64::MAX, 9)));
    assert_eq!(varint(&[0xff; 12], 0, 12), Some((u64::MAX, 9)));
    assert_eq!(varint(&[0x81, 0x00], 0, 2), Some((128, 2)));
    assert_eq!(varint(&[0x80], 0, 1), None);
    assert_eq!(varint(&[0x05], 0, 5), Some((5, 1)));
    assert_eq!(varint(&[0x85], 0, 5), None);
    assert_eq!(be_signed(&[0xff]), -1);
    assert_eq!(be_signed(&[0x7f]), 127);
    assert_eq!(be_signed(&[0x80, 0x00]), -32_768);
    assert_eq!(be_signed(&[0x80, 0, 0, 0, 0, 0, 0, 0]), i64::MIN);
    assert_eq!(be_signed(&[0xff, 0xff, 0xff]), -1);
    assert_eq!(be_signed(&[0x00, 0x80, 0x00]), 32_768);
}

#[test]
fn mutated_databases_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut img: Vec<u8> = PACKAGES.to_vec();
    let pages: usize = PACKAGES.len() / 512;
    for _ in 0..2_000 {
        let flips: usize = 1 + rng.below(3);
        let mut saved: Vec<(usize, u8)> = Vec::new();
        for _ in 0..flips {
            // Half of the flips hit the first bytes of a page: b-tree page headers,
            // cell pointers, overflow pointers.
            let at: usize = if rng.below(2) == 0 {
                rng.below(pages) * 512 + rng.below(16)
            } else {
                rng.below(img.len())
            };
            saved.push((at, img[at]));
            img[at] = rng.next_u64() as u8;
        }
        if let Ok(db) = Database::open(&img, None, Limits::default()) {
            let _ = db.table_rows("Packages");
            let _ = db.table_rows("Other");
        }
        for (at, byte) in saved.into_iter().rev() {
            img[at] = byte;
        }
    }
    assert_eq!(img, PACKAGES);
}

#[test]
fn mutated_wals_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut main: Vec<u8> = WAL_MAIN.to_vec();
    let mut wal: Vec<u8> = WAL.to_vec();
    for round in 0..1_000 {
        let flips: usize = 1 + rng.below(3);
        let mut saved_main: Vec<(usize, u8)> = Vec::new();
        let mut saved_wal: Vec<(usize, u8)> = Vec::new();
        for _ in 0..flips {
            if round % 2 == 0 {
                let at: usize = rng.below(main.len());
                saved_main.push((at, main[at]));
                main[at] = rng.next_u64() as u8;
            } else {
                let at: usize = rng.below(wal.len());
                saved_wal.push((at, wal[at]));
                wal[at] = rng.next_u64() as u8;
            }
        }
        // A flipped WAL byte with valid checksums afterwards exercises the b-tree reader on
        // WAL pages too.
        let rechecked: Vec<u8> = rechecksum(&wal, round % 4 == 1);
        for candidate in [wal.as_slice(), rechecked.as_slice()] {
            if let Ok(db) = Database::open(&main, Some(candidate), Limits::default()) {
                let _ = db.table_rows("Packages");
            }
        }
        let cut: usize = rng.below(wal.len() + 1);
        if let Ok(db) = Database::open(&main, Some(&wal[..cut]), Limits::default()) {
            let _ = db.table_rows("Packages");
        }
        for (at, byte) in saved_main.into_iter().rev() {
            main[at] = byte;
        }
        for (at, byte) in saved_wal.into_iter().rev() {
            wal[at] = byte;
        }
    }
    assert_eq!(main, WAL_MAIN);
    assert_eq!(wal, WAL);
}
