//! Tests of the rpm header reader. This module holds what every topic shares: the real
//! headers (tests/fixtures/rpm) and the builders of hand-made header blobs; the tests are in
//! the topic modules below.

use super::super::sqlite::Limits;
use super::*;
use crate::packages::mutation::XorShift;

mod hand_made;
mod hostile;
mod malformed_blobs;
mod malformed_files;
mod real_headers;

/// kfdemo-1.0-1 as rpm 4.18 stored it in rpmdb.sqlite (`tests/fixtures/rpm/README.md`).
const KFDEMO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rpm/kfdemo-1.0.header"
));
/// An rpmdb.sqlite with three kfdemo headers, a blob that is not a header and a TEXT row.
const RPMDB: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rpm/rpmdb.sqlite"
));
/// Where the data of KFDEMO starts: 8 + 16 x 63 index entries.
const KFDEMO_DATA: usize = 8 + 16 * 63;
/// The region trailer's offset in KFDEMO's data (index[0].offset).
const KFDEMO_TRAILER: usize = 1129;

fn hex(digits: &str) -> Vec<u8> {
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// A file as `rpmhdr.py` prints it, in state 0.
fn file(
    path: &str,
    digest: Option<&str>,
    mode: u16,
    flags: u32,
    link_to: Option<&str>,
    size: u64,
) -> RpmFile {
    RpmFile {
        path: path.as_bytes().to_vec(),
        digest: digest.map(hex),
        mode,
        flags,
        link_to: link_to.map(|target| target.as_bytes().to_vec()),
        state: Some(0),
        size: Some(size),
    }
}

/// One entry of a hand-made header: tag, type, count and the value's bytes.
struct Item {
    tag: u32,
    kind: u32,
    count: u32,
    bytes: Vec<u8>,
}

fn string(tag: u32, value: &str) -> Item {
    let mut bytes: Vec<u8> = value.as_bytes().to_vec();
    bytes.push(0);
    Item {
        tag,
        kind: TYPE_STRING,
        count: 1,
        bytes,
    }
}

fn strings(tag: u32, values: &[&str]) -> Item {
    let mut bytes: Vec<u8> = Vec::new();
    for value in values {
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    Item {
        tag,
        kind: TYPE_STRING_ARRAY,
        count: values.len() as u32,
        bytes,
    }
}

fn int32s(tag: u32, values: &[u32]) -> Item {
    let mut bytes: Vec<u8> = Vec::new();
    for value in values {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    Item {
        tag,
        kind: TYPE_INT32,
        count: values.len() as u32,
        bytes,
    }
}

fn int16s(tag: u32, values: &[u16]) -> Item {
    let mut bytes: Vec<u8> = Vec::new();
    for value in values {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    Item {
        tag,
        kind: TYPE_INT16,
        count: values.len() as u32,
        bytes,
    }
}

fn int64s(tag: u32, values: &[u64]) -> Item {
    let mut bytes: Vec<u8> = Vec::new();
    for value in values {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    Item {
        tag,
        kind: TYPE_INT64,
        count: values.len() as u32,
        bytes,
    }
}

/// NAME demo, VERSION 2.0, RELEASE 3.
fn nvr() -> Vec<Item> {
    vec![
        string(TAG_NAME, "demo"),
        string(TAG_VERSION, "2.0"),
        string(TAG_RELEASE, "3"),
    ]
}

/// Two files, /d/a and /d/b, with the given per-file tags added.
fn two_files(extra: Vec<Item>) -> Vec<Item> {
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_BASENAMES, &["a", "b"]));
    items.push(strings(TAG_DIRNAMES, &["/d/"]));
    items.push(int32s(TAG_DIRINDEXES, &[0, 0]));
    items.extend(extra);
    items
}

/// A header blob: the `region` entries inside a HEADERIMMUTABLE region (when `with_region`;
/// else a legacy header), then the `dribble` entries. Data is laid out in entry order with
/// the alignment each type needs.
fn build(region: Vec<Item>, dribble: Vec<Item>, with_region: bool) -> Vec<u8> {
    fn place(item: &Item, data: &mut Vec<u8>) -> i32 {
        let align: usize = match item.kind {
            TYPE_INT16 => 2,
            TYPE_INT32 => 4,
            TYPE_INT64 => 8,
            _ => 1,
        };
        while !data.len().is_multiple_of(align) {
            data.push(0);
        }
        let offset: i32 = data.len() as i32;
        data.extend_from_slice(&item.bytes);
        offset
    }
    let mut index: Vec<(u32, u32, i32, u32)> = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    for item in &region {
        let offset: i32 = place(item, &mut data);
        index.push((item.tag, item.kind, offset, item.count));
    }
    if with_region {
        let trailer: i32 = data.len() as i32;
        let entries: i32 = region.len() as i32 + 1;
        data.extend_from_slice(&63u32.to_be_bytes());
        data.extend_from_slice(&TYPE_BIN.to_be_bytes());
        data.extend_from_slice(&(-16 * entries).to_be_bytes());
        data.extend_from_slice(&16u32.to_be_bytes());
        index.insert(0, (63, TYPE_BIN, trailer, 16));
    }
    for item in &dribble {
        let offset: i32 = place(item, &mut data);
        index.push((item.tag, item.kind, offset, item.count));
    }
    let mut blob: Vec<u8> = Vec::new();
    blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for &(tag, kind, offset, count) in &index {
        blob.extend_from_slice(&tag.to_be_bytes());
        blob.extend_from_slice(&kind.to_be_bytes());
        blob.extend_from_slice(&offset.to_be_bytes());
        blob.extend_from_slice(&count.to_be_bytes());
    }
    blob.extend_from_slice(&data);
    blob
}

fn legacy(items: Vec<Item>) -> Vec<u8> {
    build(items, Vec::new(), false)
}

/// Field `field` (0 tag, 1 type, 2 offset, 3 count) of index entry `entry`.
fn set_field(blob: &mut [u8], entry: usize, field: usize, value: u32) {
    let at: usize = 8 + 16 * entry + 4 * field;
    blob[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn parse(blob: &[u8]) -> Result<RpmPackage, RpmError> {
    parse_header(blob, 1_000)
}
