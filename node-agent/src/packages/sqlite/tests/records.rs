//! Records and varints: malformed record headers and the varint decoding they rest on.

use super::*;

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
