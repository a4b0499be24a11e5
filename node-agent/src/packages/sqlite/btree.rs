//! Walking a table b-tree (fileformat2 §1.6): interior pages to their children, leaf cells to
//! their rowid and payload, following each payload's overflow chain. Every page it visits is
//! counted against the limits and may be seen only once, so a cycle is an error, not a loop.

use std::collections::HashSet;

use super::{
    Database, HEADER_LEN, SqliteError,
    record::{be_u16, be_u32, to_usize, varint},
};

/// B-tree page types.
pub(super) const PAGE_TABLE_INTERIOR: u8 = 0x05;
pub(super) const PAGE_TABLE_LEAF: u8 = 0x0d;
/// SQLite gives up at 20 levels (BTCURSOR_MAX_DEPTH); this is the specification's bound.
pub(super) const MAX_DEPTH: usize = 40;

impl Database {
    /// Walks the table b-tree rooted at `root` in key order, handing every leaf cell's rowid and
    /// full payload to `on_row`, with the number of the leaf page it is on.
    pub(super) fn walk<F>(&self, root: u32, visits: &mut usize, on_row: &mut F) -> Result<(), SqliteError>
    where
        F: FnMut(u32, i64, Vec<u8>) -> Result<(), SqliteError>,
    {
        // Every page of this tree and of its overflow chains: each may be seen once.
        let mut visited: HashSet<u32> = HashSet::new();
        // (page, depth); children are pushed right to left so that the leftmost is read first.
        let mut stack: Vec<(u32, usize)> = vec![(root, 0)];
        let mut previous: Option<i64> = None;
        while let Some((number, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(SqliteError::TooDeep {
                    page: number,
                    limit: MAX_DEPTH,
                });
            }
            if !visited.insert(number) {
                return Err(SqliteError::Cycle { page: number });
            }
            self.count_visit(visits)?;
            let page: &[u8] = self.page(number)?;
            // Page 1 starts with the database header; its cell offsets still count from byte 0.
            let header: usize = if number == 1 { HEADER_LEN } else { 0 };
            let kind: u8 = page.get(header).copied().ok_or(SqliteError::BadPage {
                page: number,
                reason: "the page header is truncated",
            })?;
            let header_len: usize = match kind {
                PAGE_TABLE_INTERIOR => 12,
                PAGE_TABLE_LEAF => 8,
                other => {
                    return Err(SqliteError::NotTablePage {
                        page: number,
                        kind: other,
                    });
                }
            };
            let cells: usize = usize::from(be_u16(page, header + 3).ok_or(SqliteError::BadPage {
                page: number,
                reason: "the page header is truncated",
            })?);
            let pointers: usize = header + header_len;
            // The cell content area starts after the cell pointer array.
            let content_start: usize = pointers + 2 * cells;
            if content_start > self.usable {
                return Err(SqliteError::BadPage {
                    page: number,
                    reason: "the cell pointer array exceeds the page",
                });
            }
            if kind == PAGE_TABLE_INTERIOR {
                let right_most: u32 = be_u32(page, header + 8).ok_or(SqliteError::BadPage {
                    page: number,
                    reason: "the page header is truncated",
                })?;
                let mut children: Vec<u32> = Vec::with_capacity(cells + 1);
                for i in 0..cells {
                    let cell: usize = self.cell_offset(page, number, pointers, i, content_start)?;
                    // An interior cell: a 4-byte left child page number, then the key (unused).
                    if cell + 4 > self.usable {
                        return Err(SqliteError::BadPage {
                            page: number,
                            reason: "an interior cell exceeds the page",
                        });
                    }
                    let child: u32 = be_u32(page, cell).ok_or(SqliteError::BadPage {
                        page: number,
                        reason: "an interior cell exceeds the page",
                    })?;
                    children.push(child);
                }
                children.push(right_most);
                // Page 1 is the schema's root and never anybody's child.
                if children.contains(&1) {
                    return Err(SqliteError::BadPage {
                        page: number,
                        reason: "a child pointer to page 1",
                    });
                }
                for &child in children.iter().rev() {
                    stack.push((child, depth + 1));
                }
                continue;
            }
            for i in 0..cells {
                let cell: usize = self.cell_offset(page, number, pointers, i, content_start)?;
                // A leaf cell: payload length, rowid, payload (its head if it overflows).
                let (declared, at) = varint(page, cell, self.usable).ok_or(SqliteError::BadPage {
                    page: number,
                    reason: "a cell's payload length runs past the page",
                })?;
                let (raw_rowid, at) = varint(page, at, self.usable).ok_or(SqliteError::BadPage {
                    page: number,
                    reason: "a cell's rowid runs past the page",
                })?;
                // A rowid is a 64-bit two's complement integer stored as a varint.
                let rowid: i64 = raw_rowid as i64;
                if let Some(before) = previous
                    && rowid <= before
                {
                    return Err(SqliteError::RowidOrder {
                        page: number,
                        rowid,
                        previous: before,
                    });
                }
                previous = Some(rowid);
                let payload: Vec<u8> = self.payload(page, number, at, declared, &mut visited, visits)?;
                on_row(number, rowid, payload)?;
            }
        }
        Ok(())
    }

    /// The offset of cell `i` of a b-tree page, checked to lie in the cell content area.
    fn cell_offset(
        &self,
        page: &[u8],
        number: u32,
        pointers: usize,
        i: usize,
        content_start: usize,
    ) -> Result<usize, SqliteError> {
        let cell: usize = usize::from(be_u16(page, pointers + 2 * i).ok_or(SqliteError::BadPage {
            page: number,
            reason: "the cell pointer array exceeds the page",
        })?);
        if !(content_start..self.usable).contains(&cell) {
            return Err(SqliteError::BadPage {
                page: number,
                reason: "a cell pointer is outside the cell content area",
            });
        }
        Ok(cell)
    }

    /// The full payload of a table leaf cell whose payload starts at `start` on `page` (page
    /// number `number`) and is `declared` bytes long, following its overflow chain.
    fn payload(
        &self,
        page: &[u8],
        number: u32,
        start: usize,
        declared: u64,
        visited: &mut HashSet<u32>,
        visits: &mut usize,
    ) -> Result<Vec<u8>, SqliteError> {
        let limit: usize = self.limits.max_record_bytes;
        let total: usize = match usize::try_from(declared) {
            Ok(total) if total <= limit => total,
            _ => {
                return Err(SqliteError::RecordTooLarge {
                    page: number,
                    len: declared,
                    limit,
                });
            }
        };
        // How much of the payload is stored on the leaf page itself (fileformat2 §1.6, table
        // b-tree leaf cell): U usable size, P payload size, X = U-35,
        // M = ((U-12)*32/255)-23, K = M+((P-M)%(U-4)); all of it if P <= X, else K if
        // K <= X, else M. U >= 480, so none of these subtractions can underflow.
        let u: usize = self.usable;
        let max_local: usize = u - 35;
        let local: usize = if total <= max_local {
            total
        } else {
            let min_local: usize = (u - 12) * 32 / 255 - 23;
            let k: usize = min_local + (total - min_local) % (u - 4);
            if k <= max_local { k } else { min_local }
        };
        let exceeds = SqliteError::BadPage {
            page: number,
            reason: "a cell's payload exceeds the page",
        };
        let local_end: usize = match start.checked_add(local) {
            Some(end) if end <= u => end,
            _ => return Err(exceeds),
        };
        let head: &[u8] = page.get(start..local_end).ok_or(exceeds)?;
        if local == total {
            return Ok(head.to_vec());
        }
        // The page number of the first overflow page follows the local part.
        if local_end + 4 > u {
            return Err(SqliteError::BadPage {
                page: number,
                reason: "a cell's overflow pointer exceeds the page",
            });
        }
        let mut next: u32 = be_u32(page, local_end).ok_or(SqliteError::BadPage {
            page: number,
            reason: "a cell's overflow pointer exceeds the page",
        })?;
        // Each overflow page holds a 4-byte next pointer and U-4 bytes of payload. Refuse a
        // chain the file cannot hold, or the page budget does not allow, before reserving
        // memory for it.
        let per_page: usize = u - 4;
        let needed: usize = (total - local).div_ceil(per_page);
        if needed > to_usize(self.pages) {
            return Err(SqliteError::OverflowChain {
                page: number,
                overflow: next,
            });
        }
        if needed > self.limits.max_pages_visited.saturating_sub(*visits) {
            return Err(SqliteError::TooManyPages {
                limit: self.limits.max_pages_visited,
            });
        }
        let mut out: Vec<u8> = Vec::with_capacity(total);
        out.extend_from_slice(head);
        while out.len() < total {
            // 0 ends a chain; page 1 is the schema's root, never an overflow page.
            if next <= 1 || !visited.insert(next) {
                return Err(SqliteError::OverflowChain {
                    page: number,
                    overflow: next,
                });
            }
            self.count_visit(visits)?;
            let overflow: &[u8] = self.page(next)?;
            let following: u32 = be_u32(overflow, 0).ok_or(SqliteError::PageBeyondFile { page: next })?;
            let take: usize = per_page.min(total - out.len());
            let chunk: &[u8] = overflow
                .get(4..4 + take)
                .ok_or(SqliteError::PageBeyondFile { page: next })?;
            out.extend_from_slice(chunk);
            next = following;
        }
        Ok(out)
    }

    /// Counts one page visit against the limit.
    fn count_visit(&self, visits: &mut usize) -> Result<(), SqliteError> {
        *visits = visits.saturating_add(1);
        if *visits > self.limits.max_pages_visited {
            return Err(SqliteError::TooManyPages {
                limit: self.limits.max_pages_visited,
            });
        }
        Ok(())
    }
}
