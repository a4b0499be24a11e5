//! Records (fileformat2 §2.1) and the integers they and the pages are made of.

use super::{SqliteError, Value};

/// Decodes a record (fileformat2 §2.1): a header of serial types, then the values.
pub(super) fn decode_record(payload: &[u8], page: u32) -> Result<Vec<Value>, SqliteError> {
    let len: usize = payload.len();
    let (header_len, mut pos) = varint(payload, 0, len).ok_or(SqliteError::MalformedRecord {
        page,
        reason: "the header length runs past the record",
    })?;
    let header_end: usize = match usize::try_from(header_len) {
        Ok(end) if (pos..=len).contains(&end) => end,
        _ => {
            return Err(SqliteError::MalformedRecord {
                page,
                reason: "the header length does not fit the record",
            });
        }
    };
    // At most one serial type per header byte.
    let mut types: Vec<u64> = Vec::new();
    while pos < header_end {
        let (serial, next) = varint(payload, pos, header_end).ok_or(SqliteError::MalformedRecord {
            page,
            reason: "a serial type runs past the header",
        })?;
        types.push(serial);
        pos = next;
    }
    let mut body: usize = header_end;
    let mut values: Vec<Value> = Vec::with_capacity(types.len());
    for serial in types {
        let size: usize = match serial {
            0 | 8 | 9 => 0,
            1 => 1,
            2 => 2,
            3 => 3,
            4 => 4,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => {
                return Err(SqliteError::MalformedRecord {
                    page,
                    reason: "a reserved serial type (10 or 11)",
                });
            }
            // 12+: a blob of (N-12)/2 bytes when N is even, text of (N-13)/2 bytes when odd.
            _ => match usize::try_from((serial - 12) / 2) {
                Ok(size) => size,
                Err(_) => {
                    return Err(SqliteError::MalformedRecord {
                        page,
                        reason: "a value runs past the record",
                    });
                }
            },
        };
        let end: usize = match body.checked_add(size) {
            Some(end) if end <= len => end,
            _ => {
                return Err(SqliteError::MalformedRecord {
                    page,
                    reason: "a value runs past the record",
                });
            }
        };
        let raw: &[u8] = payload.get(body..end).ok_or(SqliteError::MalformedRecord {
            page,
            reason: "a value runs past the record",
        })?;
        body = end;
        let value: Value = match serial {
            0 => Value::Null,
            8 => Value::Integer(0),
            9 => Value::Integer(1),
            1..=6 => Value::Integer(be_signed(raw)),
            7 => match bytes_at::<8>(raw, 0) {
                Some(bytes) => Value::Real(f64::from_be_bytes(bytes)),
                None => {
                    return Err(SqliteError::MalformedRecord {
                        page,
                        reason: "a value runs past the record",
                    });
                }
            },
            _ if serial.is_multiple_of(2) => Value::Blob(raw.to_vec()),
            _ => Value::Text(raw.to_vec()),
        };
        values.push(value);
    }
    Ok(values)
}

/// An SQLite varint at `buf[pos..end)`: 1 to 9 bytes, big-endian, 7 bits from each of the first
/// eight bytes (high bit set: more follow) and all 8 bits of a ninth. Returns the value and the
/// position after it; None when it runs past `end`.
pub(super) fn varint(buf: &[u8], pos: usize, end: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut at: usize = pos;
    for i in 0..9 {
        if at >= end {
            return None;
        }
        let byte: u8 = buf.get(at).copied()?;
        at += 1;
        if i == 8 {
            return Some(((value << 8) | u64::from(byte), at));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte < 0x80 {
            return Some((value, at));
        }
    }
    None
}

/// A big-endian two's complement integer of 1 to 8 bytes, sign-extended.
pub(super) fn be_signed(raw: &[u8]) -> i64 {
    let negative: bool = raw.first().is_some_and(|&b| b & 0x80 != 0);
    let mut value: i64 = if negative { -1 } else { 0 };
    for &byte in raw {
        value = (value << 8) | i64::from(byte);
    }
    value
}

pub(super) fn bytes_at<const N: usize>(buf: &[u8], offset: usize) -> Option<[u8; N]> {
    let end: usize = offset.checked_add(N)?;
    let slice: &[u8] = buf.get(offset..end)?;
    <[u8; N]>::try_from(slice).ok()
}

pub(super) fn be_u16(buf: &[u8], offset: usize) -> Option<u16> {
    bytes_at::<2>(buf, offset).map(u16::from_be_bytes)
}

pub(super) fn be_u32(buf: &[u8], offset: usize) -> Option<u32> {
    bytes_at::<4>(buf, offset).map(u32::from_be_bytes)
}

pub(super) fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
