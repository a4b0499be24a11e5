//! fanotify events in FID mode (`FAN_REPORT_DFID_NAME`), parsed from the bytes read(2) gave,
//! in safe Rust. Every length comes from the buffer and is checked against it: a short or
//! inconsistent record ends the parse of the batch, never reads past it.

use crate::sys::fan;

/// One event: what happened, which process did it, and where (the directory's file handle and
/// the entry's name; `.` for the directory itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub mask: u64,
    pub pid: i32,
    pub place: Option<Place>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Place {
    pub fsid: u64,
    pub handle_type: i32,
    pub handle: Vec<u8>,
    pub name: Vec<u8>,
}

impl Event {
    pub fn overflow(&self) -> bool {
        self.mask & fan::Q_OVERFLOW != 0
    }
}

const METADATA_LEN: usize = 24;
const INFO_DFID_NAME: u8 = 2;
const INFO_OLD_DFID_NAME: u8 = 10;
const INFO_NEW_DFID_NAME: u8 = 12;

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(bytes: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The events in `buffer`, and whether it ended cleanly (false: a malformed record, where the
/// parse stopped).
pub fn parse(buffer: &[u8]) -> (Vec<Event>, bool) {
    let mut events = Vec::new();
    let mut at = 0;
    while at < buffer.len() {
        let Some(event) = parse_one(&buffer[at..]) else {
            return (events, false);
        };
        at += event.1;
        events.push(event.0);
    }
    (events, true)
}

/// One event at the start of `bytes`, and its length.
fn parse_one(bytes: &[u8]) -> Option<(Event, usize)> {
    let event_len = u32_at(bytes, 0)? as usize;
    let metadata_len = usize::from(u16_at(bytes, 6)?);
    if event_len < METADATA_LEN || metadata_len < METADATA_LEN || metadata_len > event_len {
        return None;
    }
    let record = bytes.get(..event_len)?;
    let mask = u64_at(record, 8)?;
    let pid = i32_at(record, 20)?;
    let mut place = None;
    let mut info = metadata_len;
    while info < event_len {
        let info_type = *record.get(info)?;
        let len = usize::from(u16_at(record, info + 2)?);
        if len < 4 || info + len > event_len {
            return None;
        }
        let body = &record[info + 4..info + len];
        if matches!(
            info_type,
            INFO_DFID_NAME | INFO_OLD_DFID_NAME | INFO_NEW_DFID_NAME
        ) && place.is_none()
        {
            place = Some(parse_place(body)?);
        }
        info += len;
    }
    Some((Event { mask, pid, place }, event_len))
}

/// `__kernel_fsid_t fsid; struct file_handle handle; char name[]`.
fn parse_place(body: &[u8]) -> Option<Place> {
    let fsid_low = u32_at(body, 0)?;
    let fsid_high = u32_at(body, 4)?;
    let handle_bytes = u32_at(body, 8)? as usize;
    let handle_type = i32_at(body, 12)?;
    let handle = body.get(16..16 + handle_bytes)?.to_vec();
    let rest = &body[16 + handle_bytes..];
    let name = rest.split(|b| *b == 0).next().unwrap_or_default().to_vec();
    Some(Place {
        fsid: u64::from(fsid_low) | (u64::from(fsid_high) << 32),
        handle_type,
        handle,
        name,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The bytes the kernel writes for one event with a DFID_NAME record.
    pub(crate) fn encoded(mask: u64, pid: i32, fsid: u64, handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut info = Vec::new();
        info.extend_from_slice(&(fsid as u32).to_ne_bytes());
        info.extend_from_slice(&((fsid >> 32) as u32).to_ne_bytes());
        info.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        info.extend_from_slice(&1i32.to_ne_bytes());
        info.extend_from_slice(handle);
        info.extend_from_slice(name);
        info.push(0);
        while (info.len() + 4) % 4 != 0 {
            info.push(0);
        }
        let info_len = info.len() + 4;
        let event_len = METADATA_LEN + info_len;
        let mut out = Vec::new();
        out.extend_from_slice(&(event_len as u32).to_ne_bytes());
        out.push(3);
        out.push(0);
        out.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&(-1i32).to_ne_bytes());
        out.extend_from_slice(&pid.to_ne_bytes());
        out.push(INFO_DFID_NAME);
        out.push(0);
        out.extend_from_slice(&(info_len as u16).to_ne_bytes());
        out.extend_from_slice(&info);
        out
    }

    #[test]
    fn events_with_a_directory_handle_and_a_name_parse() {
        let mut bytes = encoded(
            fan::MODIFY,
            4242,
            0x1122_3344_5566_7788,
            &[1, 2, 3, 4, 5, 6, 7, 8],
            b"passwd",
        );
        bytes.extend(encoded(fan::CREATE, 7, 9, &[9; 8], b"new"));
        let (events, clean) = parse(&bytes);
        assert!(clean);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].pid, 4242);
        assert_eq!(events[0].mask, fan::MODIFY);
        let place = events[0].place.as_ref().unwrap();
        assert_eq!(place.fsid, 0x1122_3344_5566_7788);
        assert_eq!(
            (place.handle_type, place.handle.as_slice()),
            (1, &[1, 2, 3, 4, 5, 6, 7, 8][..])
        );
        assert_eq!(place.name, b"passwd");
        assert_eq!(events[1].place.as_ref().unwrap().name, b"new");
    }

    #[test]
    fn an_overflow_event_has_no_place() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&24u32.to_ne_bytes());
        bytes.extend_from_slice(&[3, 0]);
        bytes.extend_from_slice(&24u16.to_ne_bytes());
        bytes.extend_from_slice(&fan::Q_OVERFLOW.to_ne_bytes());
        bytes.extend_from_slice(&(-1i32).to_ne_bytes());
        bytes.extend_from_slice(&0i32.to_ne_bytes());
        let (events, clean) = parse(&bytes);
        assert!(clean && events.len() == 1 && events[0].overflow() && events[0].place.is_none());
    }

    #[test]
    fn every_truncation_and_corrupted_length_stops_the_parse_without_reading_past_the_buffer() {
        let bytes = encoded(fan::MODIFY, 1, 2, &[3; 8], b"name");
        for cut in 0..bytes.len() {
            let (events, clean) = parse(&bytes[..cut]);
            assert!(events.is_empty() && (cut == 0) == clean, "cut at {cut}");
        }
        for at in 0..bytes.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[at] = value;
                let _ = parse(&corrupt);
            }
        }
    }
}
