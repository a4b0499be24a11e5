//! The write-ahead log: which frames are applied (committed ones, with the right salts and
//! checksums, of a WAL of this page size and version) and which are ignored.

use super::*;

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
