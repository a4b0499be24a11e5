//! Reading the images SQLite itself made: a three-level table with an overflow chain, every
//! serial type, a missing table, and the limits on rows, pages and records.

use super::*;

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
