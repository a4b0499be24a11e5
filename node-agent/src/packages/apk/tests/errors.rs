//! Malformed databases: lines out of place, missing or repeated fields, bad paths and modes;
//! every error names the line.

use super::*;

#[test]
fn a_file_line_before_any_directory_line_is_an_error_as_in_apk() {
    assert_eq!(
        one_package("R:init\n"),
        Err(ApkError::Misplaced {
            line: 3,
            key: 'R',
            needs: "F:",
        })
    );
}

#[test]
fn lines_describing_a_file_or_directory_need_it_before_them() {
    let checksum: String = format!("Z:{EMPTY_CHECKSUM}\n");
    assert_eq!(
        one_package(&format!("F:etc\n{checksum}")),
        Err(ApkError::Misplaced {
            line: 4,
            key: 'Z',
            needs: "R:",
        })
    );
    // A new directory ends the file before it.
    assert_eq!(
        one_package(&format!("F:etc\nR:a\nF:usr\n{checksum}")),
        Err(ApkError::Misplaced {
            line: 6,
            key: 'Z',
            needs: "R:",
        })
    );
    assert_eq!(
        one_package("a:0:0:644\n"),
        Err(ApkError::Misplaced {
            line: 3,
            key: 'a',
            needs: "R:",
        })
    );
    assert_eq!(
        one_package("M:0:0:755\n"),
        Err(ApkError::Misplaced {
            line: 3,
            key: 'M',
            needs: "F:",
        })
    );
    assert_eq!(
        parse(b"V:1\nF:etc\nP:p\n"),
        Err(ApkError::Misplaced {
            line: 2,
            key: 'F',
            needs: "P:",
        })
    );
    // A new package ends the file of the one before.
    let text: String = format!("P:a\nV:1\nF:etc\nR:x\n\nP:b\nV:1\n{checksum}");
    assert_eq!(
        parse(text.as_bytes()),
        Err(ApkError::Misplaced {
            line: 8,
            key: 'Z',
            needs: "R:",
        })
    );
}

#[test]
fn a_package_without_name_or_version_is_an_error_naming_its_first_line() {
    assert_eq!(
        parse(b"V:1\nA:x86_64\n\nP:b\nV:1\n"),
        Err(ApkError::MissingKey { line: 1, key: 'P' })
    );
    assert_eq!(
        parse(b"P:a\nV:1\n\nC:Q1abc\nP:b\n"),
        Err(ApkError::MissingKey { line: 4, key: 'V' })
    );
}

#[test]
fn name_version_and_architecture_are_given_once_not_empty_and_utf8() {
    assert_eq!(
        one_package("P:q\n"),
        Err(ApkError::DuplicateKey { line: 3, key: 'P' })
    );
    assert_eq!(
        one_package("A:x86_64\nA:aarch64\n"),
        Err(ApkError::DuplicateKey { line: 4, key: 'A' })
    );
    assert_eq!(
        parse(b"P:\nV:1\n"),
        Err(ApkError::EmptyValue { line: 1, key: 'P' })
    );
    assert_eq!(
        parse(b"P:caf\xe9\nV:1\n"),
        Err(ApkError::NotUtf8 {
            line: 1,
            key: 'P',
            value: "caf\u{fffd}".to_string(),
        })
    );
}

#[test]
fn lines_that_are_not_key_colon_value_are_errors() {
    let cases: [(&[u8], &str); 4] = [
        (b"P:p\nVersion 1\n", "Version 1"),
        (b"P:p\nV\n", "V"),
        (b"P:p\n\xc3\xa9:x\n", "\u{e9}:x"),
        (b"P:p\n-:x\n", "-:x"),
    ];
    for (text, shown) in cases {
        assert_eq!(
            parse(text),
            Err(ApkError::BadLine {
                line: 2,
                text: shown.to_string(),
            })
        );
    }
}

#[test]
fn a_nul_byte_or_a_missing_final_newline_is_an_error_naming_the_line() {
    assert_eq!(parse(b"P:p\nV:1\0\n"), Err(ApkError::NulByte { line: 2 }));
    assert_eq!(parse(b"P:p\nV:1"), Err(ApkError::MissingFinalNewline { line: 2 }));
}

#[test]
fn paths_that_are_not_plain_names_are_errors() {
    for value in ["/etc", "etc/../..", "etc/", "etc//x", "."] {
        assert_eq!(
            one_package(&format!("F:{value}\n")),
            Err(bad_path(3, value, BAD_DIRECTORY)),
            "{value}"
        );
    }
    for value in ["..", "a/b", ".", ""] {
        assert_eq!(
            one_package(&format!("F:etc\nR:{value}\n")),
            Err(bad_path(4, value, BAD_FILE_NAME)),
            "{value}"
        );
    }
}

#[test]
fn a_mode_line_that_is_not_uid_gid_octal_mode_is_an_error() {
    for value in [
        "0:0:8",
        "0:0:17777",
        "root:0:644",
        "0:0",
        "0:0:644:",
        "-1:0:644",
        "0:0:+644",
        "4294967296:0:644",
    ] {
        assert_eq!(
            one_package(&format!("F:etc\nR:passwd\na:{value}\n")),
            Err(ApkError::BadAcl {
                line: 5,
                package: "p".to_string(),
                path: "/etc/passwd".to_string(),
                value: value.to_string(),
            }),
            "{value}"
        );
    }
    assert_eq!(
        one_package("F:etc\nM:0:0:755x\n"),
        Err(ApkError::BadAcl {
            line: 4,
            package: "p".to_string(),
            path: "/etc".to_string(),
            value: "0:0:755x".to_string(),
        })
    );
    let packages: Vec<ApkPackage> = one_package("F:etc\nR:passwd\na:4294967295:4294967295:7777\n").unwrap();
    assert_eq!(packages[0].files[0].mode, Some(0o7777));
}
