//! Malformed blobs, refused as rpm refuses them: sizes, index counts, offsets, data, strings,
//! types and alignment, tags, and regions.

use super::*;

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
