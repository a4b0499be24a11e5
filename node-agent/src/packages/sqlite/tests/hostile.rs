//! Hostile input: mutated databases and WALs never make the reader panic.

use super::*;

#[test]
fn mutated_databases_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut img: Vec<u8> = PACKAGES.to_vec();
    let pages: usize = PACKAGES.len() / 512;
    // How many mutated images reached the b-tree reader, and how many it read to the end:
    // the test must exercise the reader, not only the header check.
    let (mut opened, mut read) = (0, 0);
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
            opened += 1;
            read += usize::from(db.table_rows("Packages").is_ok());
            let _ = db.table_rows("Other");
        }
        for (at, byte) in saved.into_iter().rev() {
            img[at] = byte;
        }
    }
    assert_eq!(img, PACKAGES);
    assert!(
        opened > 1_000 && read > 100,
        "opened {opened}, read {read} of 2,000 mutated images"
    );
}

#[test]
fn mutated_wals_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut main: Vec<u8> = WAL_MAIN.to_vec();
    let mut wal: Vec<u8> = WAL.to_vec();
    let mut read = 0;
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
                read += usize::from(db.table_rows("Packages").is_ok());
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
    assert!(
        read > 100,
        "only {read} mutated WAL rounds reached the end of the b-tree"
    );
}
