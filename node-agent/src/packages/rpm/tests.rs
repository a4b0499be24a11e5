use super::super::sqlite::Limits;
use super::*;
use crate::packages::mutation::XorShift;

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

// ---- real headers -----------------------------------------------------------------------

#[test]
fn parses_the_real_kfdemo_header() {
    // python3 rpmhdr.py --blob blob-1.0.bin
    let package: RpmPackage = parse(KFDEMO).unwrap();
    assert_eq!(package.name, "kfdemo");
    assert_eq!(package.epoch, None);
    assert_eq!(package.version, "1.0");
    assert_eq!(package.release, "1");
    assert_eq!(package.evr(), "1.0-1");
    assert_eq!(package.arch.as_deref(), Some("noarch"));
    assert_eq!(package.install_time, Some(1_795_615_972));
    assert_eq!(package.install_tid, Some(1_795_615_972));
    assert_eq!(
        package.sha256_header.as_deref(),
        Some("04cfc50c529c814677853dba89fbfdbb5a56a3a1b86751044813d9df5be7512b")
    );
    assert_eq!(package.digest_algorithm, DigestAlgorithm::Sha256);
    let expected: Vec<RpmFile> = vec![
        file(
            "/etc/kfdemo.conf",
            Some("fabd481de0eada87620bcb1432a4284ad681598987b8511ed3df2153285d6441"),
            0o100644,
            0x11,
            None,
            12,
        ),
        file("/etc/kfdemo.d", None, 0o40755, 0, None, 0),
        file(
            "/usr/bin/kfdemo",
            Some("e0f9d1321b926f50b034d3c838f8c09a307807dee313aca8578be93b29f3102e"),
            0o100755,
            0,
            None,
            26,
        ),
        file("/usr/bin/kfdemo-link", None, 0o120777, 0, Some("kfdemo"), 6),
        file("/var/log/kfdemo.log", None, 0o100644, 0x40, None, 0),
    ];
    assert_eq!(package.files, expected);
}

#[test]
fn parses_every_package_of_a_database() {
    // python3 rpmhdr.py --raw tests/fixtures/rpm/rpmdb.sqlite
    let db = Database::open(RPMDB, None, Limits::default()).unwrap();
    let results: Vec<PackageResult> = packages(&db, 1_000).unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], Ok(parse(KFDEMO).unwrap()));

    let upgraded: &RpmPackage = results[1].as_ref().unwrap();
    assert_eq!(upgraded.evr(), "1:1.1-1");
    assert_eq!(upgraded.epoch, Some(1));
    assert_eq!(upgraded.install_time, Some(1_795_616_149));
    assert_eq!(upgraded.digest_algorithm, DigestAlgorithm::Sha256);
    assert_eq!(upgraded.files.len(), 5);
    assert_eq!(
        upgraded.files[0].digest,
        Some(hex(
            "04ae5d8052e9a77fb6f1ef7601d01fb6e8fe85ba4f9ad610404ce1ea3379b275"
        ))
    );
    assert_eq!(
        upgraded.files[2].digest,
        Some(hex(
            "021652e01519a72c80786321cf234c10480b70eae8816ea15410e340199beea6"
        ))
    );

    // Built with MD5 file digests: rpmbuild then writes no FILEDIGESTALGO at all.
    let md5: &RpmPackage = results[2].as_ref().unwrap();
    assert_eq!(md5.evr(), "1.0-1");
    assert_eq!(md5.install_time, Some(1_795_616_342));
    assert_eq!(md5.digest_algorithm, DigestAlgorithm::Md5);
    let paths: Vec<&[u8]> = md5.files.iter().map(|f| f.path.as_slice()).collect();
    let expected_paths: [&[u8]; 5] = [
        b"/etc/kfdemo.conf",
        b"/etc/kfdemo.d",
        b"/usr/bin/kfdemo",
        b"/usr/bin/kfdemo-link",
        b"/var/log/kfdemo.log",
    ];
    assert_eq!(paths, expected_paths.to_vec());
    assert_eq!(md5.files[0].digest, Some(hex("ac593c483ad4e2efab00a86b2d466b46")));
    assert_eq!(md5.files[2].digest, Some(hex("de44afba8eb8173c980cac737a1501f1")));

    assert_eq!(
        results[3],
        Err((4, RpmError::BadDataLength { dl: 1_734_439_522 }))
    );
    assert_eq!(results[4], Err((5, RpmError::NotABlob)));
}

// ---- hand-made headers ------------------------------------------------------------------

#[test]
fn a_legacy_header_without_files() {
    assert_eq!(
        parse(&legacy(nvr())),
        Ok(RpmPackage {
            name: "demo".to_owned(),
            epoch: None,
            version: "2.0".to_owned(),
            release: "3".to_owned(),
            arch: None,
            install_time: None,
            install_tid: None,
            sha256_header: None,
            digest_algorithm: DigestAlgorithm::Md5,
            files: Vec::new(),
        })
    );
}

#[test]
fn the_epoch_is_part_of_the_evr() {
    let mut items: Vec<Item> = nvr();
    items.push(int32s(TAG_EPOCH, &[7]));
    let package: RpmPackage = parse(&build(items, Vec::new(), true)).unwrap();
    assert_eq!(package.epoch, Some(7));
    assert_eq!(package.evr(), "7:2.0-3");
}

#[test]
fn files_from_dirnames_and_basenames() {
    let mut items: Vec<Item> = nvr();
    items.push(string(TAG_ARCH, "x86_64"));
    items.push(int32s(TAG_FILESIZES, &[10, 0, 20]));
    items.push(int16s(TAG_FILEMODES, &[0o100644, 0o40755, 0o100600]));
    items.push(strings(
        TAG_FILEDIGESTS,
        &[
            "00112233445566778899aabbccddeeff",
            "",
            "FFEEDDCCBBAA99887766554433221100",
        ],
    ));
    items.push(strings(TAG_FILELINKTOS, &["", "", ""]));
    items.push(int32s(TAG_FILEFLAGS, &[1, 0, 64]));
    items.push(int32s(TAG_DIRINDEXES, &[0, 1, 1]));
    items.push(strings(TAG_BASENAMES, &["a", "b", "c"]));
    items.push(strings(TAG_DIRNAMES, &["/x/", "/y/"]));
    items.push(int32s(TAG_FILEDIGESTALGO, &[1]));
    let package: RpmPackage = parse(&build(items, Vec::new(), true)).unwrap();
    assert_eq!(package.arch.as_deref(), Some("x86_64"));
    assert_eq!(package.digest_algorithm, DigestAlgorithm::Md5);
    let expected: Vec<RpmFile> = vec![
        RpmFile {
            path: b"/x/a".to_vec(),
            digest: Some(hex("00112233445566778899aabbccddeeff")),
            mode: 0o100644,
            flags: 1,
            link_to: None,
            state: None,
            size: Some(10),
        },
        RpmFile {
            path: b"/y/b".to_vec(),
            digest: None,
            mode: 0o40755,
            flags: 0,
            link_to: None,
            state: None,
            size: Some(0),
        },
        RpmFile {
            path: b"/y/c".to_vec(),
            digest: Some(hex("ffeeddccbbaa99887766554433221100")),
            mode: 0o100600,
            flags: 64,
            link_to: None,
            state: None,
            size: Some(20),
        },
    ];
    assert_eq!(package.files, expected);
}

#[test]
fn old_file_names_and_absent_per_file_tags() {
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_OLDFILENAMES, &["/a", "/b/c"]));
    let package: RpmPackage = parse(&legacy(items)).unwrap();
    let expected: Vec<RpmFile> = vec![
        RpmFile {
            path: b"/a".to_vec(),
            digest: None,
            mode: 0,
            flags: 0,
            link_to: None,
            state: None,
            size: None,
        },
        RpmFile {
            path: b"/b/c".to_vec(),
            digest: None,
            mode: 0,
            flags: 0,
            link_to: None,
            state: None,
            size: None,
        },
    ];
    assert_eq!(package.files, expected);
}

#[test]
fn long_file_sizes_win_and_states_are_read() {
    let blob = build(
        two_files(vec![
            int32s(TAG_FILESIZES, &[1, 2]),
            int64s(TAG_LONGFILESIZES, &[5_000_000_000, 7]),
        ]),
        vec![Item {
            tag: TAG_FILESTATES,
            kind: TYPE_CHAR,
            count: 2,
            bytes: vec![0, 2],
        }],
        true,
    );
    let package: RpmPackage = parse(&blob).unwrap();
    assert_eq!(package.files[0].size, Some(5_000_000_000));
    assert_eq!(package.files[1].size, Some(7));
    assert_eq!(package.files[0].state, Some(0));
    assert_eq!(package.files[1].state, Some(2));
}

#[test]
fn dribble_entries_replace_region_entries() {
    let blob = build(
        nvr(),
        vec![string(TAG_NAME, "new"), int32s(TAG_INSTALLTIME, &[5])],
        true,
    );
    let package: RpmPackage = parse(&blob).unwrap();
    assert_eq!(package.name, "new");
    assert_eq!(package.install_time, Some(5));
    // Twice in the region, or twice among the dribbles, is an error.
    let mut twice: Vec<Item> = nvr();
    twice.push(string(TAG_NAME, "again"));
    assert_eq!(
        parse(&build(twice, Vec::new(), true)),
        Err(RpmError::DuplicateTag { tag: TAG_NAME })
    );
    let mut twice: Vec<Item> = nvr();
    twice.push(string(TAG_NAME, "again"));
    assert_eq!(
        parse(&legacy(twice)),
        Err(RpmError::DuplicateTag { tag: TAG_NAME })
    );
    let blob = build(
        nvr(),
        vec![string(TAG_NAME, "new"), string(TAG_NAME, "newer")],
        true,
    );
    assert_eq!(parse(&blob), Err(RpmError::DuplicateTag { tag: TAG_NAME }));
}

// ---- malformed blobs --------------------------------------------------------------------

#[test]
fn truncated_and_mis_sized_blobs() {
    assert_eq!(parse(&[]), Err(RpmError::Truncated { len: 0 }));
    assert_eq!(parse(&[0, 0, 0]), Err(RpmError::Truncated { len: 3 }));
    assert_eq!(
        parse(&KFDEMO[..KFDEMO.len() - 1]),
        Err(RpmError::SizeMismatch {
            len: 2_315,
            il: 63,
            dl: 1_300,
            expected: 2_316
        })
    );
    let mut longer: Vec<u8> = KFDEMO.to_vec();
    longer.push(0);
    assert_eq!(
        parse(&longer),
        Err(RpmError::SizeMismatch {
            len: 2_317,
            il: 63,
            dl: 1_300,
            expected: 2_316
        })
    );
}

#[test]
fn il_and_dl_out_of_bounds() {
    assert_eq!(parse(&[0; 8]), Err(RpmError::BadIndexCount { il: 0 }));
    assert_eq!(
        parse(&[0, 1, 0, 0, 0, 0, 0, 0]),
        Err(RpmError::BadIndexCount { il: 0x1_0000 })
    );
    assert_eq!(
        parse(&[0, 0, 0, 1, 0x10, 0, 0, 0]),
        Err(RpmError::BadDataLength { dl: 0x1000_0000 })
    );
    assert_eq!(parse(&[0xff; 8]), Err(RpmError::BadIndexCount { il: u32::MAX }));
    // il and dl in bounds, but the blob is far shorter than they say.
    assert_eq!(
        parse(&[0, 0, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff]),
        Err(RpmError::SizeMismatch {
            len: 8,
            il: 0xffff,
            dl: 0x0fff_ffff,
            expected: 8 + 16 * 0xffff + 0x0fff_ffff
        })
    );
}

#[test]
fn offsets_past_or_before_the_data() {
    // Data: "demo\0" [0, 5), "2.0\0" [5, 9), "3\0" [9, 11).
    let mut blob: Vec<u8> = legacy(nvr());
    set_field(&mut blob, 2, 2, 12);
    assert_eq!(
        parse(&blob),
        Err(RpmError::OffsetOutOfRange {
            tag: TAG_RELEASE,
            offset: 12,
            dl: 11
        })
    );
    let mut blob: Vec<u8> = legacy(nvr());
    set_field(&mut blob, 2, 2, 11);
    assert_eq!(
        parse(&blob),
        Err(RpmError::UnterminatedString { tag: TAG_RELEASE })
    );
    let mut blob: Vec<u8> = legacy(nvr());
    set_field(&mut blob, 0, 2, (-4i32) as u32);
    assert_eq!(
        parse(&blob),
        Err(RpmError::Overlap {
            index: 0,
            offset: -4,
            end: 0
        })
    );
    let mut blob: Vec<u8> = legacy(nvr());
    set_field(&mut blob, 1, 2, 0);
    assert_eq!(
        parse(&blob),
        Err(RpmError::Overlap {
            index: 1,
            offset: 0,
            end: 5
        })
    );
}

#[test]
fn data_past_the_end() {
    // Two INT32 values at offset 8 of 12 data bytes.
    let mut items: Vec<Item> = vec![string(TAG_NAME, "demo")];
    items.push(int32s(TAG_EPOCH, &[1]));
    let mut blob: Vec<u8> = legacy(items);
    set_field(&mut blob, 1, 3, 2);
    assert_eq!(
        parse(&blob),
        Err(RpmError::DataOutOfRange {
            tag: TAG_EPOCH,
            end: 16,
            dl: 12
        })
    );
}

#[test]
fn unterminated_strings() {
    let name = Item {
        tag: TAG_NAME,
        kind: TYPE_STRING,
        count: 1,
        bytes: b"demo".to_vec(),
    };
    let blob = legacy(vec![string(TAG_VERSION, "2.0"), string(TAG_RELEASE, "3"), name]);
    assert_eq!(parse(&blob), Err(RpmError::UnterminatedString { tag: TAG_NAME }));
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_OLDFILENAMES, &["/a", "/b"]));
    let mut blob: Vec<u8> = legacy(items);
    set_field(&mut blob, 3, 3, 3);
    assert_eq!(
        parse(&blob),
        Err(RpmError::UnterminatedString {
            tag: TAG_OLDFILENAMES
        })
    );
}

#[test]
fn bad_types_counts_and_alignment() {
    let mut blob: Vec<u8> = legacy(nvr());
    set_field(&mut blob, 0, 1, 0);
    assert_eq!(
        parse(&blob),
        Err(RpmError::BadType {
            tag: TAG_NAME,
            kind: 0
        })
    );
    set_field(&mut blob, 0, 1, 10);
    assert_eq!(
        parse(&blob),
        Err(RpmError::BadType {
            tag: TAG_NAME,
            kind: 10
        })
    );

    let mut blob: Vec<u8> = legacy(nvr());
    set_field(&mut blob, 0, 3, 0);
    assert_eq!(
        parse(&blob),
        Err(RpmError::BadCount {
            tag: TAG_NAME,
            count: 0
        })
    );
    set_field(&mut blob, 0, 3, 12);
    assert_eq!(
        parse(&blob),
        Err(RpmError::BadCount {
            tag: TAG_NAME,
            count: 12
        })
    );
    set_field(&mut blob, 0, 3, 2);
    assert_eq!(
        parse(&blob),
        Err(RpmError::StringCount {
            tag: TAG_NAME,
            count: 2
        })
    );

    // An INT32 moved to offset 5, right after "demo\0".
    let blob_items: Vec<Item> = vec![
        string(TAG_NAME, "demo"),
        int32s(TAG_EPOCH, &[1]),
        string(TAG_VERSION, "2.0"),
        string(TAG_RELEASE, "3"),
    ];
    let mut blob: Vec<u8> = legacy(blob_items);
    set_field(&mut blob, 1, 2, 5);
    assert_eq!(
        parse(&blob),
        Err(RpmError::Misaligned {
            tag: TAG_EPOCH,
            offset: 5,
            kind: TYPE_INT32
        })
    );
}

#[test]
fn tags_that_cannot_be_there() {
    let mut items: Vec<Item> = vec![string(50, "x")];
    items.extend(nvr());
    assert_eq!(parse(&legacy(items)), Err(RpmError::BadFirstTag { tag: 50 }));
    let mut items: Vec<Item> = nvr();
    items.insert(1, string(62, "x"));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::IllegalTag { index: 1, tag: 62 })
    );
}

#[test]
fn wrong_types_missing_tags_and_bad_text() {
    let blob = legacy(vec![
        int32s(TAG_NAME, &[1]),
        string(TAG_VERSION, "2.0"),
        string(TAG_RELEASE, "3"),
    ]);
    assert_eq!(
        parse(&blob),
        Err(RpmError::WrongType {
            tag: TAG_NAME,
            kind: TYPE_INT32
        })
    );
    let blob = legacy(vec![string(TAG_VERSION, "2.0"), string(TAG_RELEASE, "3")]);
    assert_eq!(
        parse(&blob),
        Err(RpmError::MissingTag {
            tag: TAG_NAME,
            name: "NAME"
        })
    );
    let blob = legacy(vec![
        Item {
            tag: TAG_NAME,
            kind: TYPE_STRING,
            count: 1,
            bytes: vec![0xff, 0],
        },
        string(TAG_VERSION, "2.0"),
        string(TAG_RELEASE, "3"),
    ]);
    assert_eq!(parse(&blob), Err(RpmError::NotUtf8 { tag: TAG_NAME }));
    let mut items: Vec<Item> = nvr();
    items.push(int32s(TAG_EPOCH, &[1, 2]));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::NotScalar {
            tag: TAG_EPOCH,
            count: 2
        })
    );
}

#[test]
fn overlapping_the_region_trailer() {
    // Data: "demo\0" [0, 5), "2.0\0" [5, 9), "3\0" [9, 11), BIN [11, 15), trailer [15, 31).
    let mut items: Vec<Item> = nvr();
    items.push(Item {
        tag: 1100,
        kind: TYPE_BIN,
        count: 4,
        bytes: vec![1, 2, 3, 4],
    });
    let mut blob: Vec<u8> = build(items, Vec::new(), true);
    assert!(parse(&blob).is_ok());
    set_field(&mut blob, 4, 3, 20);
    assert_eq!(parse(&blob), Err(RpmError::OverlapsTrailer { index: 4 }));
}

#[test]
fn malformed_regions() {
    let region = |reason: &'static str| -> Result<RpmPackage, RpmError> {
        Err(RpmError::BadRegion { tag: 63, reason })
    };
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    set_field(&mut blob, 0, 3, 17);
    assert_eq!(parse(&blob), region("it is not a 16-byte BIN entry"));
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    set_field(&mut blob, 0, 2, 1_300 - 8);
    assert_eq!(parse(&blob), region("its trailer is outside the data"));
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    set_field(&mut blob, 0, 2, (-16i32) as u32);
    assert_eq!(parse(&blob), region("its trailer is outside the data"));

    let trailer: usize = KFDEMO_DATA + KFDEMO_TRAILER;
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    blob[trailer + 3] = 62;
    assert_eq!(parse(&blob), region("its trailer does not match it"));
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    blob[trailer + 8..trailer + 12].copy_from_slice(&(-863i32).to_be_bytes());
    assert_eq!(
        parse(&blob),
        region("its trailer's offset is not a multiple of 16")
    );
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    blob[trailer + 8..trailer + 12].copy_from_slice(&(-16i32 * 64).to_be_bytes());
    assert_eq!(
        parse(&blob),
        region("its trailer's entry count is not within the index")
    );
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    blob[trailer + 8..trailer + 12].copy_from_slice(&0i32.to_be_bytes());
    assert_eq!(
        parse(&blob),
        region("its trailer's entry count is not within the index")
    );
}

#[test]
fn per_file_counts_must_match() {
    let blob = legacy(two_files(vec![int16s(TAG_FILEMODES, &[0o100644])]));
    assert_eq!(
        parse(&blob),
        Err(RpmError::CountMismatch {
            tag: TAG_FILEMODES,
            count: 1,
            files: 2
        })
    );
    let blob = legacy(two_files(vec![strings(TAG_FILELINKTOS, &["", "", ""])]));
    assert_eq!(
        parse(&blob),
        Err(RpmError::CountMismatch {
            tag: TAG_FILELINKTOS,
            count: 3,
            files: 2
        })
    );
    let blob = legacy(two_files(vec![Item {
        tag: TAG_FILESTATES,
        kind: TYPE_CHAR,
        count: 1,
        bytes: vec![0],
    }]));
    assert_eq!(
        parse(&blob),
        Err(RpmError::CountMismatch {
            tag: TAG_FILESTATES,
            count: 1,
            files: 2
        })
    );
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_BASENAMES, &["a", "b"]));
    items.push(strings(TAG_DIRNAMES, &["/d/"]));
    items.push(int32s(TAG_DIRINDEXES, &[0]));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::CountMismatch {
            tag: TAG_DIRINDEXES,
            count: 1,
            files: 2
        })
    );
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_BASENAMES, &["a", "b"]));
    items.push(int32s(TAG_DIRINDEXES, &[0, 0]));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::MissingTag {
            tag: TAG_DIRNAMES,
            name: "DIRNAMES"
        })
    );
    // A package without files may not have per-file values either.
    let mut items: Vec<Item> = nvr();
    items.push(int32s(TAG_FILEFLAGS, &[0]));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::CountMismatch {
            tag: TAG_FILEFLAGS,
            count: 1,
            files: 0
        })
    );
}

#[test]
fn dir_indexes_must_be_within_dirnames() {
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_BASENAMES, &["a", "b"]));
    items.push(strings(TAG_DIRNAMES, &["/d/"]));
    items.push(int32s(TAG_DIRINDEXES, &[0, 5]));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::DirIndexOutOfRange {
            file: 1,
            index: 5,
            dirs: 1
        })
    );
}

#[test]
fn paths_longer_than_path_max() {
    let long_dir: String = format!("/{}/", "d".repeat(3_998));
    let long_name: String = "f".repeat(96);
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_BASENAMES, &["ok", long_name.as_str()]));
    items.push(strings(TAG_DIRNAMES, &[long_dir.as_str()]));
    items.push(int32s(TAG_DIRINDEXES, &[0, 0]));
    assert_eq!(
        parse(&legacy(items)),
        Err(RpmError::PathTooLong { file: 1, len: 4_096 })
    );
}

#[test]
fn digests_and_their_algorithm() {
    let mut items: Vec<Item> = nvr();
    items.push(int32s(TAG_FILEDIGESTALGO, &[3]));
    assert_eq!(parse(&legacy(items)), Err(RpmError::UnknownDigestAlgorithm(3)));
    for (value, algorithm) in [
        (1u32, DigestAlgorithm::Md5),
        (2, DigestAlgorithm::Sha1),
        (8, DigestAlgorithm::Sha256),
        (9, DigestAlgorithm::Sha384),
        (10, DigestAlgorithm::Sha512),
        (11, DigestAlgorithm::Sha224),
    ] {
        let mut items: Vec<Item> = nvr();
        items.push(int32s(TAG_FILEDIGESTALGO, &[value]));
        assert_eq!(parse(&legacy(items)).unwrap().digest_algorithm, algorithm);
    }

    let not_hex: String = format!("zz{}", "0".repeat(30));
    let blob = legacy(two_files(vec![strings(TAG_FILEDIGESTS, &["", not_hex.as_str()])]));
    assert_eq!(parse(&blob), Err(RpmError::DigestNotHex { file: 1 }));
    let blob = legacy(two_files(vec![strings(TAG_FILEDIGESTS, &["abcd", ""])]));
    assert_eq!(
        parse(&blob),
        Err(RpmError::DigestLength {
            file: 0,
            len: 4,
            algorithm: DigestAlgorithm::Md5,
            expected: 32
        })
    );
    // A SHA-256 package with an MD5-length digest.
    let blob = legacy(two_files(vec![
        strings(TAG_FILEDIGESTS, &["00112233445566778899aabbccddeeff", ""]),
        int32s(TAG_FILEDIGESTALGO, &[8]),
    ]));
    assert_eq!(
        parse(&blob),
        Err(RpmError::DigestLength {
            file: 0,
            len: 32,
            algorithm: DigestAlgorithm::Sha256,
            expected: 64
        })
    );
}

#[test]
fn more_files_than_allowed() {
    assert_eq!(
        parse_header(KFDEMO, 4),
        Err(RpmError::TooManyFiles { files: 5, limit: 4 })
    );
    assert_eq!(parse_header(KFDEMO, 5).unwrap().files.len(), 5);
    let blob = legacy(two_files(Vec::new()));
    assert_eq!(
        parse_header(&blob, 1),
        Err(RpmError::TooManyFiles { files: 2, limit: 1 })
    );
    let mut items: Vec<Item> = nvr();
    items.push(strings(TAG_OLDFILENAMES, &["/a", "/b"]));
    assert_eq!(
        parse_header(&legacy(items), 1),
        Err(RpmError::TooManyFiles { files: 2, limit: 1 })
    );
}

#[test]
fn mutated_headers_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut blob: Vec<u8> = KFDEMO.to_vec();
    let mut parsed: usize = 0;
    for _ in 0..5_000 {
        let flips: usize = 1 + rng.below(4);
        let mut saved: Vec<(usize, u8)> = Vec::new();
        for _ in 0..flips {
            // Half of the flips hit il, dl or the index, where every byte matters.
            let at: usize = if rng.below(2) == 0 {
                rng.below(KFDEMO_DATA)
            } else {
                rng.below(blob.len())
            };
            saved.push((at, blob[at]));
            blob[at] = rng.next_u64() as u8;
        }
        if parse_header(&blob, 1_000).is_ok() {
            parsed += 1;
        }
        let cut: usize = rng.below(blob.len() + 1);
        let _ = parse_header(&blob[..cut], 1_000);
        for (at, byte) in saved.into_iter().rev() {
            blob[at] = byte;
        }
    }
    assert_eq!(blob, KFDEMO);
    // Many bytes (descriptions, signatures) do not affect validity.
    assert!(parsed > 0);
}
