//! Malformed status files: every error names what was wrong and where, and hostile values
//! are shown only in part.

use super::*;

#[test]
fn a_paragraph_without_package_is_an_error_naming_its_first_line() {
    let text: &str = "Package: a\nStatus: install ok installed\n\nVersion: 1\nStatus: install ok installed\n";
    assert_eq!(status(text), Err(DpkgError::MissingPackage { line: 4 }));
}

#[test]
fn a_paragraph_without_status_is_an_error() {
    assert_eq!(
        status("Package: a\nVersion: 1\n"),
        Err(DpkgError::MissingField {
            line: 1,
            package: "a".to_string(),
            field: "Status",
        })
    );
}

#[test]
fn a_nul_byte_is_an_error_naming_its_line() {
    assert_eq!(
        status("Package: a\nStatus: install ok\0 installed\n"),
        Err(DpkgError::NulByte { line: 2 })
    );
}

#[test]
fn a_missing_final_newline_is_an_error() {
    assert_eq!(
        status("Package: a\nStatus: install ok installed"),
        Err(DpkgError::MissingFinalNewline { line: 2 })
    );
}

#[test]
fn too_many_packages_is_an_error_naming_the_paragraph_past_the_limit() {
    let limits: Limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert_eq!(
        parse_status(STATUS.as_bytes(), &limits),
        Err(DpkgError::TooManyEntries { line: 38, limit: 2 })
    );
}

#[test]
fn an_over_long_field_is_an_error_naming_the_field_and_its_line() {
    let limits: Limits = Limits {
        max_field_bytes: 40,
        ..Limits::default()
    };
    // The Maintainer of adduser is 55 bytes long.
    assert_eq!(
        parse_status(STATUS.as_bytes(), &limits),
        Err(DpkgError::FieldTooLong {
            line: 6,
            field: "Maintainer".to_string(),
            limit: 40,
        })
    );
    // adduser's Conffiles is 52 bytes after its first line, 104 after its second.
    let limits: Limits = Limits {
        max_field_bytes: 60,
        ..Limits::default()
    };
    assert_eq!(
        parse_status(STATUS.as_bytes(), &limits),
        Err(DpkgError::FieldTooLong {
            line: 11,
            field: "Conffiles".to_string(),
            limit: 60,
        })
    );
}

#[test]
fn an_over_long_conffile_path_is_an_error_naming_its_line() {
    let limits: Limits = Limits {
        max_path_bytes: 20,
        ..Limits::default()
    };
    assert_eq!(
        parse_status(STATUS.as_bytes(), &limits),
        Err(DpkgError::PathTooLong {
            line: 32,
            len: 39,
            limit: 20,
        })
    );
}

#[test]
fn malformed_conffile_lines_are_errors_naming_the_line() {
    assert_eq!(
        conffile_error(" /etc/a 0123456789abcdef0123456789abcdeg"),
        bad_conffile(
            " /etc/a 0123456789abcdef0123456789abcdeg",
            "the digest is neither an MD5 nor newconffile"
        )
    );
    assert_eq!(
        conffile_error(" /etc/a 0123"),
        bad_conffile(" /etc/a 0123", "the digest is neither an MD5 nor newconffile")
    );
    assert_eq!(
        conffile_error("\t/etc/a 0123456789abcdef0123456789abcdef"),
        bad_conffile(
            "\t/etc/a 0123456789abcdef0123456789abcdef",
            "a conffile line starts with one space"
        )
    );
    assert_eq!(
        conffile_error(" /etc/a"),
        bad_conffile(" /etc/a", "expected a path, a space and a digest")
    );
    // Trailing blanks of the field are trimmed, so the space must end a line before the last.
    assert_eq!(
        conffile_error(" /etc/a 0123456789abcdef0123456789abcdef \n /etc/b newconffile"),
        bad_conffile(
            " /etc/a 0123456789abcdef0123456789abcdef ",
            "expected a path, a space and a digest"
        )
    );
    assert_eq!(
        conffile_error(" obsolete"),
        bad_conffile(" obsolete", "expected a path, a space and a digest")
    );
    assert_eq!(
        conffile_error(" / 0123456789abcdef0123456789abcdef"),
        bad_conffile(
            " / 0123456789abcdef0123456789abcdef",
            "the root directory cannot be a conffile"
        )
    );
    // The flags come in dpkg's order, obsolete first.
    assert_eq!(
        conffile_error(" /etc/a 0123456789abcdef0123456789abcdef remove-on-upgrade obsolete"),
        bad_conffile(
            " /etc/a 0123456789abcdef0123456789abcdef remove-on-upgrade obsolete",
            "the digest is neither an MD5 nor newconffile"
        )
    );
}

#[test]
fn a_conffile_path_with_a_parent_component_is_an_error() {
    assert_eq!(
        conffile_error(" /etc/../../root/.ssh/authorized_keys newconffile"),
        DpkgError::ParentComponent {
            line: 4,
            path: "/etc/../../root/.ssh/authorized_keys".to_string(),
        }
    );
}

#[test]
fn a_package_name_that_could_escape_the_info_directory_is_an_error() {
    assert_eq!(
        status("Package: ../../etc/shadow\nStatus: install ok installed\n"),
        Err(DpkgError::BadPackageName {
            line: 1,
            name: "../../etc/shadow".to_string(),
            reason: "it must start with an ASCII letter or digit",
        })
    );
    assert_eq!(
        status("Status: install ok installed\nPackage: foo/../bar\n"),
        Err(DpkgError::BadPackageName {
            line: 2,
            name: "foo/../bar".to_string(),
            reason: "it may hold only ASCII letters, digits and + - . _",
        })
    );
}

#[test]
fn a_bad_architecture_is_an_error_naming_the_value() {
    assert_eq!(
        one_package("Architecture: amd64/../x\n"),
        Err(DpkgError::BadArchitecture {
            line: 3,
            package: "p".to_string(),
            value: "amd64/../x".to_string(),
        })
    );
}

#[test]
fn a_status_that_is_not_three_of_dpkgs_words_is_an_error() {
    for value in [
        "install ok",
        "install ok installed now",
        "install fine installed",
        "want ok installed",
    ] {
        assert_eq!(
            status(&format!("Package: p\nStatus: {value}\n")),
            Err(DpkgError::BadStatus {
                line: 2,
                package: "p".to_string(),
                value: value.to_string(),
            }),
            "{value}"
        );
    }
}

#[test]
fn multi_arch_must_be_a_known_value_and_same_needs_a_real_architecture() {
    assert_eq!(
        one_package("Architecture: amd64\nMulti-Arch: sometimes\n"),
        Err(DpkgError::BadMultiArch {
            line: 4,
            package: "p".to_string(),
            value: "sometimes".to_string(),
        })
    );
    assert_eq!(
        one_package("Multi-Arch: same\n"),
        Err(DpkgError::MultiArchSameWithoutArchitecture {
            line: 3,
            package: "p".to_string(),
            architecture: String::new(),
        })
    );
    assert_eq!(
        one_package("Architecture: all\nMulti-Arch: same\n"),
        Err(DpkgError::MultiArchSameWithoutArchitecture {
            line: 4,
            package: "p".to_string(),
            architecture: "all".to_string(),
        })
    );
}

#[test]
fn a_version_with_whitespace_or_invalid_utf8_is_an_error() {
    assert_eq!(
        one_package("Version: 1.0 2.0\n"),
        Err(DpkgError::BadVersion {
            line: 3,
            package: "p".to_string(),
            value: "1.0 2.0".to_string(),
        })
    );
    assert_eq!(
        parse_status(
            b"Package: p\nStatus: install ok installed\nVersion: 1.0\xff\n",
            &Limits::default()
        ),
        Err(DpkgError::NotUtf8 {
            line: 3,
            field: "Version",
            value: "1.0\u{fffd}".to_string(),
        })
    );
}

#[test]
fn lines_that_are_not_fields_are_errors() {
    assert_eq!(
        status("Package a\n"),
        Err(DpkgError::NotAField {
            line: 1,
            text: "Package a".to_string(),
        })
    );
    assert_eq!(
        status("Package: a\n: value\n"),
        Err(DpkgError::NotAField {
            line: 2,
            text: ": value".to_string(),
        })
    );
    assert_eq!(
        status(" Package: a\n"),
        Err(DpkgError::ContinuationWithoutField { line: 1 })
    );
    assert_eq!(
        status("Package: a\nStatus: install ok installed\n\n Version: 1\n"),
        Err(DpkgError::ContinuationWithoutField { line: 4 })
    );
    assert_eq!(
        status("Package: a\nDescription: x\n \t\nStatus: install ok installed\n"),
        Err(DpkgError::BlankContinuation {
            line: 3,
            field: "Description".to_string(),
        })
    );
}

#[test]
fn a_field_given_twice_is_an_error_whatever_its_case() {
    assert_eq!(
        status("Package: a\nStatus: install ok installed\nstatus: deinstall ok installed\n"),
        Err(DpkgError::DuplicateField {
            line: 3,
            field: "status".to_string(),
        })
    );
}

#[test]
fn multiple_instances_that_are_not_multi_arch_same_are_refused() {
    let text: &str = "Package: tool\nStatus: install ok installed\nArchitecture: i386\n\n\
                      Package: tool\nStatus: install ok installed\nArchitecture: amd64\n";
    assert_eq!(
        status(text),
        Err(DpkgError::NotCoInstallable {
            package: "tool".to_string(),
            architectures: "amd64, i386".to_string(),
        })
    );
}

#[test]
fn crlf_line_ends_are_refused_not_misread() {
    assert_eq!(
        status("Package: a\r\nStatus: install ok installed\r\n"),
        Err(DpkgError::BadPackageName {
            line: 1,
            name: "a\r".to_string(),
            reason: "it may hold only ASCII letters, digits and + - . _",
        })
    );
}

#[test]
fn an_error_shows_at_most_200_bytes_of_a_hostile_value() {
    let long: String = "x".repeat(1000);
    let Err(DpkgError::NotAField { text, .. }) = status(&format!("{long}\n")) else {
        panic!("expected NotAField");
    };
    assert_eq!(text, format!("{}...", "x".repeat(200)));
}
