//! Malformed b-trees: pages out of range, cycles, trees too deep, child pointers to page 1,
//! rows out of rowid order, pages of another type and cell pointers outside the content area.

use super::*;

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
