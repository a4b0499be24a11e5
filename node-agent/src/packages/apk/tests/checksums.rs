//! Checksums: the Q1 form apk writes, read back, and the ones refused.

use super::*;

#[test]
fn checksum_line_writes_q1_and_the_base64_of_the_sha1() {
    // python3 -c 'import base64, hashlib; print(base64.b64encode(hashlib.sha1(b"").digest()))'
    assert_eq!(checksum_line(&sha1(EMPTY_SHA1)), EMPTY_CHECKSUM);
}

#[test]
fn checksums_written_by_checksum_line_read_back() {
    let mut counting: [u8; 20] = [0; 20];
    for (byte, value) in counting.iter_mut().zip(0u8..) {
        *byte = value.wrapping_mul(13);
    }
    let digests: [[u8; 20]; 4] = [[0; 20], [0xff; 20], counting, sha1(EMPTY_SHA1)];
    let mut text: String = String::from("P:p\nV:1\nF:etc\n");
    for (index, digest) in digests.iter().enumerate() {
        text.push_str(&format!("R:f{index}\nZ:{}\n", checksum_line(digest)));
    }
    let packages: Vec<ApkPackage> = parse(text.as_bytes()).unwrap();
    let read: Vec<Option<[u8; 20]>> = packages[0].files.iter().map(|file| file.sha1).collect();
    let written: Vec<Option<[u8; 20]>> = digests.iter().copied().map(Some).collect();
    assert_eq!(read, written);
}

#[test]
fn a_checksum_that_is_not_q1_and_20_bytes_of_base64_is_an_error_naming_package_and_file() {
    let bad: [&str; 12] = [
        "Q1abc",
        // A SHA-1 in hexadecimal, without Q1.
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        // Q2: the SHA-256 of apk-tools 3.
        "Q247DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        // 19 and 21 bytes.
        "Q1AAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        // Padding missing, then too much.
        "Q12jmj7l5rSw0yVb/vlWAYkK/YBwk",
        "Q12jmj7l5rSw0yVb/vlWAYkK/YBwk===",
        // The last symbol's unused bits set: a second spelling of another digest.
        "Q12jmj7l5rSw0yVb/vlWAYkK/YBwl=",
        // A symbol outside the alphabet, and padding inside.
        "Q12jmj7l5rSw0yVb*vlWAYkK/YBwk=",
        "Q12jmj7l5rSw0yVb=vlWAYkK/YBwk=",
        "q12jmj7l5rSw0yVb/vlWAYkK/YBwk=",
        "Q1",
    ];
    for value in bad {
        assert_eq!(
            one_package(&format!("F:etc\nR:passwd\nZ:{value}\n")),
            Err(bad_checksum(value)),
            "{value}"
        );
    }
}

#[test]
fn truncated_sha256_checksums_of_apk_tools_3_are_refused() {
    assert_eq!(
        one_package("f:S\nF:etc\nR:passwd\n"),
        Err(ApkError::UnsupportedFlags {
            line: 3,
            flags: "S".to_string(),
        })
    );
}

#[test]
fn a_second_checksum_or_mode_for_one_file_is_an_error() {
    let checksum: String = format!("Z:{EMPTY_CHECKSUM}\n");
    assert_eq!(
        one_package(&format!("F:etc\nR:passwd\n{checksum}{checksum}")),
        Err(ApkError::DuplicateFileEntry {
            line: 6,
            package: "p".to_string(),
            path: "/etc/passwd".to_string(),
            key: 'Z',
        })
    );
    assert_eq!(
        one_package(&format!("F:etc\nR:passwd\na:0:0:644\n{checksum}a:0:0:600\n")),
        Err(ApkError::DuplicateFileEntry {
            line: 7,
            package: "p".to_string(),
            path: "/etc/passwd".to_string(),
            key: 'a',
        })
    );
}
