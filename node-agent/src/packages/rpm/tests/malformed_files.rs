//! Malformed file lists: per-file tags of the wrong count, directory indexes out of range,
//! paths past PATH_MAX, digests of the wrong algorithm or length, and too many files.

use super::*;

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
