//! The checked form of a header blob: its index entries verified as rpm verifies them, and
//! typed access to the value of each tag.

use std::collections::BTreeMap;

use super::{RpmError, TAG_BASENAMES, TAG_OLDFILENAMES};

// Entry types (rpmtag.h rpmTagType_e).
pub(super) const TYPE_NULL: u32 = 0;
pub(super) const TYPE_CHAR: u32 = 1;
pub(super) const TYPE_INT8: u32 = 2;
pub(super) const TYPE_INT16: u32 = 3;
pub(super) const TYPE_INT32: u32 = 4;
pub(super) const TYPE_INT64: u32 = 5;
pub(super) const TYPE_STRING: u32 = 6;
pub(super) const TYPE_BIN: u32 = 7;
pub(super) const TYPE_STRING_ARRAY: u32 = 8;
pub(super) const TYPE_I18NSTRING: u32 = 9;

/// HEADERIMAGE, HEADERSIGNATURES, HEADERIMMUTABLE.
pub(super) const REGION_TAGS: [u32; 3] = [61, 62, 63];
/// HEADERI18NTABLE: the first tag of a header proper.
pub(super) const HEADER_I18NTABLE: u32 = 100;
// Limits (rpm-4.18 lib/header.c).
pub(super) const HEADER_TAGS_MAX: u32 = 0xFFFF;
pub(super) const HEADER_DATA_MAX: u32 = 0x0FFF_FFFF;
/// The largest count of an entry that is not BIN.
pub(super) const HEADER_ARRAY_MAX: u32 = 0xF_FFFF;
/// headerMaxbytes: 256 MiB.
pub(super) const HEADER_MAX_BYTES: usize = 256 << 20;
pub(super) const PREAMBLE_LEN: usize = 8;
pub(super) const ENTRY_LEN: usize = 16;
/// An index entry as stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawEntry {
    pub(super) tag: u32,
    pub(super) kind: u32,
    pub(super) offset: i32,
    pub(super) count: u32,
}

/// A checked entry: its value is `data[offset..offset + length]`, `count` items of `kind`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) tag: u32,
    pub(super) kind: u32,
    pub(super) offset: usize,
    pub(super) count: usize,
    pub(super) length: usize,
    pub(super) in_region: bool,
}

/// A checked header: its data and the entry in effect for each tag.
#[derive(Debug)]
pub(super) struct Header<'a> {
    pub(super) data: &'a [u8],
    pub(super) tags: BTreeMap<u32, Entry>,
}

impl<'a> Header<'a> {
    /// Checks a blob as rpm's hdrblobInit, hdrblobVerifyRegion and hdrblobVerifyInfo do and
    /// indexes its entries by tag.
    pub(super) fn parse(blob: &'a [u8]) -> Result<Self, RpmError> {
        let len: usize = blob.len();
        let (Some(il), Some(dl)) = (be_u32(blob, 0), be_u32(blob, 4)) else {
            return Err(RpmError::Truncated { len });
        };
        if !(1..=HEADER_TAGS_MAX).contains(&il) {
            return Err(RpmError::BadIndexCount { il });
        }
        if dl > HEADER_DATA_MAX {
            return Err(RpmError::BadDataLength { dl });
        }
        if len >= HEADER_MAX_BYTES {
            return Err(RpmError::TooLarge { len });
        }
        let expected: u64 = 8 + 16 * u64::from(il) + u64::from(dl);
        if u64::try_from(len).ok() != Some(expected) {
            return Err(RpmError::SizeMismatch {
                len,
                il,
                dl,
                expected,
            });
        }
        let entries: usize = to_usize(il);
        let index_end: usize = PREAMBLE_LEN + ENTRY_LEN * entries;
        let index: &'a [u8] = blob
            .get(PREAMBLE_LEN..index_end)
            .ok_or(RpmError::Truncated { len })?;
        let data: &'a [u8] = blob.get(index_end..).ok_or(RpmError::Truncated { len })?;
        let dl: usize = data.len();
        let entry = |i: usize| -> Result<RawEntry, RpmError> {
            raw_entry(index, i * ENTRY_LEN).ok_or(RpmError::Truncated { len })
        };

        // The region (hdrblobVerifyRegion); without one every entry counts as in the region.
        let first: RawEntry = entry(0)?;
        let mut region_entries: usize = entries;
        let mut region_end: usize = dl;
        let has_region: bool = REGION_TAGS.contains(&first.tag);
        if has_region {
            let tag: u32 = first.tag;
            if first.kind != TYPE_BIN || first.count != 16 {
                return Err(RpmError::BadRegion {
                    tag,
                    reason: "it is not a 16-byte BIN entry",
                });
            }
            let outside = RpmError::BadRegion {
                tag,
                reason: "its trailer is outside the data",
            };
            let trailer_at: usize = match usize::try_from(first.offset) {
                Ok(at) if at.checked_add(ENTRY_LEN).is_some_and(|end| end <= dl) => at,
                _ => return Err(outside),
            };
            let trailer: RawEntry = raw_entry(data, trailer_at).ok_or(outside)?;
            if trailer.tag != tag || trailer.kind != TYPE_BIN || trailer.count != 16 || trailer.offset > 0 {
                return Err(RpmError::BadRegion {
                    tag,
                    reason: "its trailer does not match it",
                });
            }
            // The trailer's offset is -16 x the number of entries in the region.
            let span: u64 = i64::from(trailer.offset).unsigned_abs();
            if !span.is_multiple_of(16) {
                return Err(RpmError::BadRegion {
                    tag,
                    reason: "its trailer's offset is not a multiple of 16",
                });
            }
            let count: usize = usize::try_from(span / 16).unwrap_or(usize::MAX);
            if !(1..=entries).contains(&count) {
                return Err(RpmError::BadRegion {
                    tag,
                    reason: "its trailer's entry count is not within the index",
                });
            }
            region_entries = count;
            region_end = trailer_at + ENTRY_LEN;
        } else if first.tag < HEADER_I18NTABLE {
            return Err(RpmError::BadFirstTag { tag: first.tag });
        }

        // The entries (hdrblobVerifyInfo), then which one is in effect for each tag.
        let mut tags: BTreeMap<u32, Entry> = BTreeMap::new();
        let mut end: i64 = 0;
        let start: usize = usize::from(has_region);
        for i in start..entries {
            let raw: RawEntry = entry(i)?;
            if raw.tag < HEADER_I18NTABLE {
                return Err(RpmError::IllegalTag {
                    index: i,
                    tag: raw.tag,
                });
            }
            // "Previous data must not overlap": offsets ascend, so checking is linear in dl.
            if i64::from(raw.offset) < end {
                return Err(RpmError::Overlap {
                    index: i,
                    offset: raw.offset,
                    end,
                });
            }
            let (offset, length) = entry_span(data, raw)?;
            let entry_end: usize = offset + length;
            end = i64::try_from(entry_end).unwrap_or(i64::MAX);
            let in_region: bool = i < region_entries;
            if in_region && has_region && offset < region_end && entry_end > region_end - ENTRY_LEN {
                return Err(RpmError::OverlapsTrailer { index: i });
            }
            if let Some(previous) = tags.get(&raw.tag) {
                if previous.in_region == in_region {
                    return Err(RpmError::DuplicateTag { tag: raw.tag });
                }
                if in_region {
                    // A dribble entry for this tag came first: it stays in effect.
                    continue;
                }
            }
            tags.insert(
                raw.tag,
                Entry {
                    tag: raw.tag,
                    kind: raw.kind,
                    offset,
                    count: to_usize(raw.count),
                    length,
                    in_region,
                },
            );
            if !in_region && raw.tag == TAG_BASENAMES {
                tags.remove(&TAG_OLDFILENAMES);
            }
        }
        Ok(Self { data, tags })
    }

    /// The entry in effect for `tag`, checked to have one of the `kinds`.
    pub(super) fn entry(&self, tag: u32, kinds: &[u32]) -> Result<Option<Entry>, RpmError> {
        match self.tags.get(&tag) {
            None => Ok(None),
            Some(entry) if kinds.contains(&entry.kind) => Ok(Some(*entry)),
            Some(entry) => Err(RpmError::WrongType {
                tag,
                kind: entry.kind,
            }),
        }
    }

    /// The bytes of an entry's value.
    pub(super) fn span(&self, entry: &Entry) -> Result<&'a [u8], RpmError> {
        let data: &'a [u8] = self.data;
        let end: usize = entry.offset.saturating_add(entry.length);
        data.get(entry.offset..end).ok_or(RpmError::DataOutOfRange {
            tag: entry.tag,
            end,
            dl: data.len(),
        })
    }

    /// A STRING value, without its terminating NUL.
    pub(super) fn string(&self, tag: u32) -> Result<Option<&'a [u8]>, RpmError> {
        let Some(entry) = self.entry(tag, &[TYPE_STRING])? else {
            return Ok(None);
        };
        match self.span(&entry)?.split_last() {
            Some((&0, value)) => Ok(Some(value)),
            _ => Err(RpmError::UnterminatedString { tag }),
        }
    }

    /// A STRING_ARRAY value.
    pub(super) fn strings(&self, tag: u32) -> Result<Option<Vec<&'a [u8]>>, RpmError> {
        self.entry(tag, &[TYPE_STRING_ARRAY])?
            .map(|entry| self.strings_of(&entry))
            .transpose()
    }

    /// The `count` NUL-terminated strings of a string entry.
    pub(super) fn strings_of(&self, entry: &Entry) -> Result<Vec<&'a [u8]>, RpmError> {
        let mut rest: &'a [u8] = self.span(entry)?;
        // Every string takes at least its NUL: count <= length.
        let mut out: Vec<&'a [u8]> = Vec::with_capacity(entry.count.min(rest.len()));
        for _ in 0..entry.count {
            let unterminated = RpmError::UnterminatedString { tag: entry.tag };
            let nul: usize = rest.iter().position(|&b| b == 0).ok_or(unterminated.clone())?;
            let value: &'a [u8] = rest.get(..nul).ok_or(unterminated.clone())?;
            rest = rest.get(nul + 1..).ok_or(unterminated)?;
            out.push(value);
        }
        Ok(out)
    }

    pub(super) fn u16s(&self, tag: u32) -> Result<Option<Vec<u16>>, RpmError> {
        self.entry(tag, &[TYPE_INT16])?
            .map(|entry| self.numbers(&entry, u16::from_be_bytes))
            .transpose()
    }

    pub(super) fn u32s(&self, tag: u32) -> Result<Option<Vec<u32>>, RpmError> {
        self.entry(tag, &[TYPE_INT32])?
            .map(|entry| self.u32s_of(&entry))
            .transpose()
    }

    pub(super) fn u32s_of(&self, entry: &Entry) -> Result<Vec<u32>, RpmError> {
        self.numbers(entry, u32::from_be_bytes)
    }

    pub(super) fn u64s(&self, tag: u32) -> Result<Option<Vec<u64>>, RpmError> {
        self.entry(tag, &[TYPE_INT64])?
            .map(|entry| self.numbers(&entry, u64::from_be_bytes))
            .transpose()
    }

    /// The `count` numbers of an INT16, INT32 or INT64 entry: `N` bytes each, big-endian.
    fn numbers<const N: usize, T>(
        &self,
        entry: &Entry,
        decode: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, RpmError> {
        let bytes: &'a [u8] = self.span(entry)?;
        let mut out: Vec<T> = Vec::with_capacity(entry.count);
        for i in 0..entry.count {
            let number: [u8; N] =
                bytes_at::<N>(bytes, i.saturating_mul(N)).ok_or(RpmError::DataOutOfRange {
                    tag: entry.tag,
                    end: entry.offset.saturating_add(entry.length),
                    dl: self.data.len(),
                })?;
            out.push(decode(number));
        }
        Ok(out)
    }

    /// An INT32 tag that must hold exactly one value.
    pub(super) fn scalar_u32(&self, tag: u32) -> Result<Option<u32>, RpmError> {
        match self.u32s(tag)? {
            None => Ok(None),
            Some(values) => match values.as_slice() {
                [value] => Ok(Some(*value)),
                other => Err(RpmError::NotScalar {
                    tag,
                    count: other.len(),
                }),
            },
        }
    }
}

/// Checks one entry as hdrblobVerifyInfo and dataLength do, and returns where its value is:
/// (offset, length) in `data`.
pub(super) fn entry_span(data: &[u8], raw: RawEntry) -> Result<(usize, usize), RpmError> {
    let dl: usize = data.len();
    let RawEntry {
        tag,
        kind,
        offset,
        count,
    } = raw;
    if kind == TYPE_NULL || kind > TYPE_I18NSTRING {
        return Err(RpmError::BadType { tag, kind });
    }
    let items: usize = to_usize(count);
    if count < 1 || items > dl {
        return Err(RpmError::BadCount { tag, count });
    }
    if kind != TYPE_BIN && count > HEADER_ARRAY_MAX {
        return Err(RpmError::BadCount { tag, count });
    }
    let start: usize = match usize::try_from(offset) {
        Ok(start) if start <= dl => start,
        _ => return Err(RpmError::OffsetOutOfRange { tag, offset, dl }),
    };
    let align: usize = match kind {
        TYPE_INT16 => 2,
        TYPE_INT32 => 4,
        TYPE_INT64 => 8,
        _ => 1,
    };
    if !start.is_multiple_of(align) {
        return Err(RpmError::Misaligned { tag, offset, kind });
    }
    if kind == TYPE_STRING || kind == TYPE_STRING_ARRAY || kind == TYPE_I18NSTRING {
        if kind == TYPE_STRING && count != 1 {
            return Err(RpmError::StringCount { tag, count });
        }
        // `count` strings, each ended by a NUL inside the data.
        let mut pos: usize = start;
        for _ in 0..count {
            let rest: &[u8] = data.get(pos..).ok_or(RpmError::UnterminatedString { tag })?;
            let nul: usize = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(RpmError::UnterminatedString { tag })?;
            pos = pos + nul + 1;
        }
        return Ok((start, pos - start));
    }
    // CHAR, INT8 and BIN are bytes; INT16, INT32 and INT64 are 2, 4 and 8 bytes each.
    let length: usize = align.saturating_mul(items);
    let end: usize = start.saturating_add(length);
    if end > dl {
        return Err(RpmError::DataOutOfRange { tag, end, dl });
    }
    Ok((start, length))
}

pub(super) fn raw_entry(bytes: &[u8], at: usize) -> Option<RawEntry> {
    Some(RawEntry {
        tag: be_u32(bytes, at)?,
        kind: be_u32(bytes, at.checked_add(4)?)?,
        offset: bytes_at::<4>(bytes, at.checked_add(8)?).map(i32::from_be_bytes)?,
        count: be_u32(bytes, at.checked_add(12)?)?,
    })
}

pub(super) fn bytes_at<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    let end: usize = offset.checked_add(N)?;
    let slice: &[u8] = buf.get(offset..end)?;
    <[u8; N]>::try_from(slice).ok()
}

pub(super) fn be_u32(buf: &[u8], offset: usize) -> Option<u32> {
    bytes_at::<4>(buf, offset).map(u32::from_be_bytes)
}

pub(super) fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
