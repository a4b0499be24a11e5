//! Limits: over-long lines and paths, too many packages or files, and hostile values shown
//! only in part.

use super::*;

#[test]
fn an_over_long_line_is_an_error_naming_it() {
    let limits: Limits = Limits {
        max_line_bytes: 40,
        ..Limits::default()
    };
    // "T:the musl c library (libc) implementation" is 42 bytes long.
    assert_eq!(
        parse_installed(INSTALLED, &limits),
        Err(ApkError::LineTooLong {
            line: 7,
            len: 42,
            limit: 40,
        })
    );
}

#[test]
fn too_many_packages_is_an_error_naming_the_first_past_the_limit() {
    let limits: Limits = Limits {
        max_packages: 2,
        ..Limits::default()
    };
    assert_eq!(
        parse_installed(INSTALLED, &limits),
        Err(ApkError::TooManyPackages { line: 49, limit: 2 })
    );
    let limits: Limits = Limits {
        max_packages: 5,
        ..Limits::default()
    };
    assert_eq!(
        parse_installed(INSTALLED, &limits).map(|packages| packages.len()),
        Ok(5)
    );
}

#[test]
fn too_many_files_is_an_error_naming_the_first_past_the_limit() {
    let limits: Limits = Limits {
        max_files: 5,
        ..Limits::default()
    };
    assert_eq!(
        parse_installed(INSTALLED, &limits),
        Err(ApkError::TooManyFiles { line: 43, limit: 5 })
    );
}

#[test]
fn an_over_long_path_is_an_error_naming_the_package() {
    let limits: Limits = Limits {
        max_path_bytes: 20,
        ..Limits::default()
    };
    // "/lib/ld-musl-x86_64.so.1" is 24 bytes long.
    assert_eq!(
        parse_installed(INSTALLED, &limits),
        Err(ApkError::PathTooLong {
            line: 16,
            package: "musl".to_string(),
            len: 24,
            limit: 20,
        })
    );
}

#[test]
fn an_error_shows_at_most_200_bytes_of_a_hostile_value() {
    let long: String = "x".repeat(1000);
    let Err(ApkError::BadLine { text, .. }) = parse(format!("{long}\n").as_bytes()) else {
        panic!("expected BadLine");
    };
    assert_eq!(text, format!("{}...", "x".repeat(200)));
}
