//! The write-ahead log of a database (fileformat2 §4): only its committed frames count.

use std::collections::HashMap;

use super::record::{be_u32, bytes_at};

/// WAL magic numbers: the low bit says whether the checksums read words big-endian.
pub(super) const WAL_MAGIC_LE: u32 = 0x377f_0682;
pub(super) const WAL_MAGIC_BE: u32 = 0x377f_0683;
pub(super) const WAL_VERSION: u32 = 3_007_000;
pub(super) const WAL_HEADER_LEN: usize = 32;
pub(super) const WAL_FRAME_HEADER_LEN: usize = 24;

/// The committed part of a WAL.
pub(super) struct WalImage {
    /// The WAL's bytes up to the end of the last commit frame.
    pub(super) bytes: Vec<u8>,
    /// Page number -> offset in `bytes` of the page's latest committed content.
    pub(super) index: HashMap<u32, usize>,
    /// The database size in pages, from the last commit frame.
    pub(super) db_pages: u32,
    /// Committed frames.
    pub(super) frames: usize,
}

/// Reads a WAL as SQLite recovers one (walIndexRecover): a valid header (magic, version, page
/// size, checksum), then frames in order while each carries the header's salts, a non-zero page
/// number and the right cumulative checksum; the frames up to the last commit frame among them
/// are the committed ones. None when nothing is committed or the header is invalid.
pub(super) fn read_wal(wal: &[u8], page_size: usize) -> Option<WalImage> {
    let header: &[u8] = wal.get(..WAL_HEADER_LEN)?;
    let magic: u32 = be_u32(header, 0)?;
    if magic != WAL_MAGIC_LE && magic != WAL_MAGIC_BE {
        return None;
    }
    if be_u32(header, 4)? != WAL_VERSION {
        return None;
    }
    if usize::try_from(be_u32(header, 8)?).ok()? != page_size {
        return None;
    }
    let salt: (u32, u32) = (be_u32(header, 16)?, be_u32(header, 20)?);
    let big_endian: bool = magic == WAL_MAGIC_BE;
    let mut sum: (u32, u32) = wal_checksum(header.get(..24)?, (0, 0), big_endian);
    if sum != (be_u32(header, 24)?, be_u32(header, 28)?) {
        return None;
    }
    let frame_len: usize = WAL_FRAME_HEADER_LEN + page_size;
    let mut pending: Vec<(u32, usize)> = Vec::new();
    let mut index: HashMap<u32, usize> = HashMap::new();
    let mut db_pages: Option<u32> = None;
    let mut committed_end: usize = WAL_HEADER_LEN;
    let mut frames: usize = 0;
    let mut seen: usize = 0;
    let mut offset: usize = WAL_HEADER_LEN;
    while let Some(end) = offset.checked_add(frame_len) {
        // A partial last frame is a torn write: ignored.
        let Some(frame) = wal.get(offset..end) else {
            break;
        };
        let (Some(number), Some(commit), Some(salt1), Some(salt2), Some(check0), Some(check1)) = (
            be_u32(frame, 0),
            be_u32(frame, 4),
            be_u32(frame, 8),
            be_u32(frame, 12),
            be_u32(frame, 16),
            be_u32(frame, 20),
        ) else {
            break;
        };
        // Other salts: a frame of an older WAL generation, left behind by a restart.
        if (salt1, salt2) != salt || number == 0 {
            break;
        }
        let (Some(frame_head), Some(content)) = (frame.get(..8), frame.get(WAL_FRAME_HEADER_LEN..)) else {
            break;
        };
        let next: (u32, u32) = wal_checksum(content, wal_checksum(frame_head, sum, big_endian), big_endian);
        if next != (check0, check1) {
            break;
        }
        sum = next;
        seen += 1;
        pending.push((number, offset + WAL_FRAME_HEADER_LEN));
        offset = end;
        if commit != 0 {
            // A commit frame: its transaction is complete; `commit` is the database size.
            for (page, at) in pending.drain(..) {
                index.insert(page, at);
            }
            db_pages = Some(commit);
            committed_end = end;
            frames = seen;
        }
    }
    // Frames after the last commit frame belong to an unfinished transaction: ignored.
    let db_pages: u32 = db_pages?;
    let bytes: Vec<u8> = wal.get(..committed_end)?.to_vec();
    Some(WalImage {
        bytes,
        index,
        db_pages,
        frames,
    })
}

/// SQLite's WAL checksum (walChecksumBytes) of `data`, continued from `start`: 32-bit words
/// read in the byte order the WAL magic gives, summed in pairs. `data` is a multiple of 8 bytes
/// long (24, 8 or a page); a trailing partial pair would be ignored.
pub(super) fn wal_checksum(data: &[u8], start: (u32, u32), big_endian: bool) -> (u32, u32) {
    let (mut s0, mut s1) = start;
    for pair in data.chunks_exact(8) {
        let (Some(first), Some(second)) = (bytes_at::<4>(pair, 0), bytes_at::<4>(pair, 4)) else {
            break;
        };
        let (first, second): (u32, u32) = if big_endian {
            (u32::from_be_bytes(first), u32::from_be_bytes(second))
        } else {
            (u32::from_le_bytes(first), u32::from_le_bytes(second))
        };
        s0 = s0.wrapping_add(first).wrapping_add(s1);
        s1 = s1.wrapping_add(second).wrapping_add(s0);
    }
    (s0, s1)
}
