//! Reading a well-formed installed database: packages, files, directories, symlinks, raw
//! path bytes, and the lines apk writes that are accepted and not kept.

use super::*;

#[test]
fn reads_every_package_file_and_directory_of_a_real_looking_database() {
    let expected: Vec<ApkPackage> = vec![
        package(
            "musl",
            "1.2.4-r2",
            Some("x86_64"),
            vec![
                file(
                    b"/lib/ld-musl-x86_64.so.1",
                    Some("363c64248d4f1a6ff70892fd758960938ff184a9"),
                    Some(0o755),
                ),
                file(
                    b"/lib/libc.musl-x86_64.so.1",
                    Some("ef2277245372a40e26c61249af4a2ee82cec2552"),
                    Some(0o777),
                ),
            ],
            &[b"/lib"],
        ),
        package(
            "busybox",
            "1.36.1-r15",
            Some("x86_64"),
            vec![
                file(
                    b"/bin/busybox",
                    Some("861c3dc2280543ef1dbc463ec0dfc30a6fe60b5f"),
                    Some(0o755),
                ),
                file(
                    b"/etc/securetty",
                    Some("0ba625917ab068d0a6e9567bb6e1eed05502e49b"),
                    None,
                ),
                file(
                    b"/etc/logrotate.d/acpid",
                    Some("7319d72e2d5cd07c53a21324445495510de1b6a0"),
                    None,
                ),
                file(
                    b"/etc/network/if-up.d/dad",
                    Some("23a6da33604e0ab34823ed02854148cdfe8e38d2"),
                    Some(0o775),
                ),
            ],
            &[
                b"/bin",
                b"/etc",
                b"/etc/logrotate.d",
                b"/etc/network",
                b"/etc/network/if-up.d",
                b"/var/cache/misc",
            ],
        ),
        package(
            "alpine-baselayout-data",
            "3.6.5-r0",
            Some("x86_64"),
            vec![
                file(
                    b"/root-file",
                    Some("67aa926767285d8fed85a700ee11755c1d82fa9a"),
                    None,
                ),
                file(
                    b"/etc/fstab",
                    Some("c09beb0bae9492c85aafd955c2d096b281e36955"),
                    Some(0o644),
                ),
                file(b"/etc/no-checksum", None, None),
            ],
            &[b"/", b"/etc"],
        ),
        package(
            "caf\u{e9}-docs",
            "1.0-r0",
            None,
            vec![file(
                b"/usr/share/caf\xe9/na\xefve.txt",
                Some("6faf166142e6fa460e85841f3986681f91bd0ac2"),
                None,
            )],
            &[b"/usr/share/caf\xe9"],
        ),
        package("build-base", "0.5-r3", Some("x86_64"), vec![], &[]),
    ];
    assert_eq!(parse(INSTALLED).unwrap(), expected);
}

#[test]
fn a_symlink_records_the_sha1_of_its_target() {
    let packages: Vec<ApkPackage> = parse(INSTALLED).unwrap();
    // python3 -c 'import hashlib; print(hashlib.sha1(b"ld-musl-x86_64.so.1").hexdigest())'
    assert_eq!(packages[0].files[1].path, b"/lib/libc.musl-x86_64.so.1");
    assert_eq!(
        packages[0].files[1].sha1,
        Some(sha1("ef2277245372a40e26c61249af4a2ee82cec2552"))
    );
}

#[test]
fn non_utf8_path_bytes_are_kept_raw() {
    let packages: Vec<ApkPackage> = parse(INSTALLED).unwrap();
    assert_eq!(packages[3].dirs, [b"/usr/share/caf\xe9".to_vec()]);
    assert_eq!(packages[3].files[0].path, b"/usr/share/caf\xe9/na\xefve.txt");
}

#[test]
fn an_empty_f_line_is_the_root_directory() {
    assert_eq!(
        one_package("F:\nR:init\n"),
        Ok(vec![package(
            "p",
            "1",
            None,
            vec![file(b"/init", None, None)],
            &[b"/"]
        )])
    );
}

#[test]
fn blank_lines_separate_packages_and_an_empty_database_has_none() {
    assert_eq!(parse(b""), Ok(vec![]));
    assert_eq!(parse(b"\n\n"), Ok(vec![]));
    assert_eq!(
        parse(b"\n\nP:a\nV:1\n\n\n\nP:b\nV:2\n"),
        Ok(vec![
            package("a", "1", None, vec![], &[]),
            package("b", "2", None, vec![], &[])
        ])
    );
}

#[test]
fn an_extended_attribute_checksum_after_the_mode_is_accepted_and_not_kept() {
    let packages: Vec<ApkPackage> = one_package("F:etc\nR:passwd\na:0:0:644:Q1abc\n").unwrap();
    assert_eq!(packages[0].files, [file(b"/etc/passwd", None, Some(0o644))]);
}

#[test]
fn package_flags_of_apk_tools_2_are_accepted() {
    assert!(one_package("f:fsx\n").is_ok());
}
