//! The database header of hand-made images: page sizes, reserved bytes, and what is not an
//! SQLite 3 database at all.

use super::*;

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
