//! Hand-made well-formed headers: legacy headers, the epoch, the files from DIRNAMES and
//! BASENAMES or OLDFILENAMES, file sizes and states, and dribble entries.

use super::*;

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
