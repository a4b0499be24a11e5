//! A package's info files: `.md5sums` (paths and digests) and `.list` (paths), well formed,
//! malformed and past their bounds.

use super::*;

#[test]
fn md5sums_give_absolute_raw_paths_and_their_digests() {
    let mut text: Vec<u8> = Vec::new();
    text.extend_from_slice(b"108877c29ef6a482337ddc42ea8b0985  lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n");
    text.extend_from_slice(b"6c0d51586d94c272b160eb7ba6c61331  usr/share/alsa/ucm2/Librem 5 Devkit.conf\n");
    text.extend_from_slice(b"D6536C875DDB48F13C5229718BD8094A  usr/share/caf\xe9  two  spaces\n");
    text.extend_from_slice(b"18d0d78ee1ba6145ad7154da9c47c735   leading space\n");
    text.extend_from_slice(b"33f1cb6525f26614bd3a334d63632484  ./usr/bin/dot-slash\n");
    assert_eq!(
        parse_md5sums(&text, &Limits::default()).unwrap(),
        [
            (
                b"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".to_vec(),
                md5("108877c29ef6a482337ddc42ea8b0985")
            ),
            (
                b"/usr/share/alsa/ucm2/Librem 5 Devkit.conf".to_vec(),
                md5("6c0d51586d94c272b160eb7ba6c61331")
            ),
            (
                b"/usr/share/caf\xe9  two  spaces".to_vec(),
                md5("d6536c875ddb48f13c5229718bd8094a")
            ),
            (
                b"/ leading space".to_vec(),
                md5("18d0d78ee1ba6145ad7154da9c47c735")
            ),
            (
                b"/usr/bin/dot-slash".to_vec(),
                md5("33f1cb6525f26614bd3a334d63632484")
            ),
        ]
    );
}

#[test]
fn an_empty_md5sums_file_has_no_files() {
    assert_eq!(parse_md5sums(b"", &Limits::default()), Ok(vec![]));
}

#[test]
fn malformed_md5sums_lines_are_errors_naming_the_line() {
    let limits: Limits = Limits::default();
    let good: &str = "108877c29ef6a482337ddc42ea8b0985  usr/bin/a\n";
    let parse = |second: &[u8]| parse_md5sums(&[good.as_bytes(), second].concat(), &limits);
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b098g  usr/bin/b\n"),
        Err(DpkgError::BadDigest {
            line: 2,
            text: "108877c29ef6a482337ddc42ea8b098g  usr/bin/b".to_string(),
        })
    );
    assert_eq!(
        parse(b"108877c29ef6  usr/bin/b\n"),
        Err(DpkgError::BadDigest {
            line: 2,
            text: "108877c29ef6  usr/bin/b".to_string(),
        })
    );
    assert_eq!(
        parse(b"\n"),
        Err(DpkgError::BadDigest {
            line: 2,
            text: String::new(),
        })
    );
    // dpkg requires two spaces: one is not md5sum's binary-mode `*` either.
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b0985 usr/bin/b\n"),
        Err(DpkgError::MissingSeparator {
            line: 2,
            text: "108877c29ef6a482337ddc42ea8b0985 usr/bin/b".to_string(),
        })
    );
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b0985 *usr/bin/b\n"),
        Err(DpkgError::MissingSeparator {
            line: 2,
            text: "108877c29ef6a482337ddc42ea8b0985 *usr/bin/b".to_string(),
        })
    );
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b0985  \n"),
        Err(DpkgError::EmptyPath { line: 2 })
    );
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b0985  usr/../../etc/shadow\n"),
        Err(DpkgError::ParentComponent {
            line: 2,
            path: "/usr/../../etc/shadow".to_string(),
        })
    );
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b0985  usr/\0\n"),
        Err(DpkgError::NulByte { line: 2 })
    );
    assert_eq!(
        parse(b"108877c29ef6a482337ddc42ea8b0985  usr/bin/b"),
        Err(DpkgError::MissingFinalNewline { line: 2 })
    );
}

#[test]
fn md5sums_paths_and_line_counts_are_bounded() {
    let limits: Limits = Limits {
        max_path_bytes: 16,
        max_lines: 2,
        ..Limits::default()
    };
    // "/usr/share/doc/long" is 19 bytes.
    assert_eq!(
        parse_md5sums(b"108877c29ef6a482337ddc42ea8b0985  usr/share/doc/long\n", &limits),
        Err(DpkgError::PathTooLong {
            line: 1,
            len: 19,
            limit: 16,
        })
    );
    let three_lines: &[u8] = b"108877c29ef6a482337ddc42ea8b0985  a\n108877c29ef6a482337ddc42ea8b0985  b\n\
                               108877c29ef6a482337ddc42ea8b0985  c\n";
    assert_eq!(
        parse_md5sums(three_lines, &limits),
        Err(DpkgError::TooManyLines { limit: 2 })
    );
}

#[test]
fn list_files_skip_the_root_and_keep_raw_paths() {
    let text: &[u8] = b"/.\n/etc\n/etc/ld.so.conf.d\n/etc/ld.so.conf.d/x86_64-linux-gnu.conf\n\
                        /usr/share/caf\xe9 au lait\n/usr/lib/dir/\n";
    let expected: Vec<Vec<u8>> = vec![
        b"/etc".to_vec(),
        b"/etc/ld.so.conf.d".to_vec(),
        b"/etc/ld.so.conf.d/x86_64-linux-gnu.conf".to_vec(),
        b"/usr/share/caf\xe9 au lait".to_vec(),
        b"/usr/lib/dir".to_vec(),
    ];
    assert_eq!(parse_list(text, &Limits::default()), Ok(expected));
}

#[test]
fn malformed_list_lines_are_errors_naming_the_line() {
    let limits: Limits = Limits {
        max_path_bytes: 16,
        max_lines: 3,
        ..Limits::default()
    };
    assert_eq!(
        parse_list(b"/.\nusr/bin/foo\n", &limits),
        Err(DpkgError::RelativePath {
            line: 2,
            path: "usr/bin/foo".to_string(),
        })
    );
    assert_eq!(
        parse_list(b"/.\n\n/usr\n", &limits),
        Err(DpkgError::EmptyPath { line: 2 })
    );
    assert_eq!(parse_list(b"/\n", &limits), Err(DpkgError::EmptyPath { line: 1 }));
    assert_eq!(
        parse_list(b"/usr/share/doc/long\n", &limits),
        Err(DpkgError::PathTooLong {
            line: 1,
            len: 19,
            limit: 16,
        })
    );
    assert_eq!(
        parse_list(b"/usr/../etc\n", &limits),
        Err(DpkgError::ParentComponent {
            line: 1,
            path: "/usr/../etc".to_string(),
        })
    );
    assert_eq!(
        parse_list(b"/a\n/b\n/c\n/d\n", &limits),
        Err(DpkgError::TooManyLines { limit: 3 })
    );
    assert_eq!(
        parse_list(b"/a\n/b", &limits),
        Err(DpkgError::MissingFinalNewline { line: 2 })
    );
}
