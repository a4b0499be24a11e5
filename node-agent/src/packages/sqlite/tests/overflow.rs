//! Overflow chains: broken and cyclic chains, and declared lengths too large to allocate.

use super::*;

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
