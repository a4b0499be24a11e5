//! Reading a well-formed status file: packages in file order, info file names, which entries
//! count as installed, field syntax, conffiles and repeated packages.

use super::*;

#[test]
fn reads_every_installed_package_of_a_status_file_in_file_order() {
    let expected: Vec<StatusEntry> = vec![
        entry(
            "adduser",
            Some("all"),
            false,
            Some("3.134"),
            "install",
            "installed",
            vec![
                conffile(
                    "/etc/adduser.conf",
                    Some("cc3493ecd2d09837ffdcc3e25fdfff18"),
                    false,
                ),
                conffile(
                    "/etc/deluser.conf",
                    Some("11a06baf8245fd8d690b99024d228c1f"),
                    false,
                ),
            ],
        ),
        entry(
            "libc6",
            Some("amd64"),
            true,
            Some("2.36-9+deb12u14"),
            "install",
            "installed",
            vec![conffile(
                "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                Some("d4e7a7b88a71b5ffd9e2644e71a0cfab"),
                false,
            )],
        ),
        entry(
            "libc6",
            Some("i386"),
            true,
            Some("2.36-9+deb12u14"),
            "install",
            "installed",
            vec![conffile(
                "/etc/ld.so.conf.d/i386-linux-gnu.conf",
                Some("0123456789abcdef0123456789abcdef"),
                false,
            )],
        ),
        entry(
            "pkgconf",
            Some("amd64"),
            false,
            Some("1.8.1-1"),
            "install",
            "unpacked",
            vec![conffile("/etc/dpkg/dpkg.cfg.d/pkgconf-hook-config", None, false)],
        ),
        entry(
            "ntp",
            Some("amd64"),
            false,
            Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1"),
            "deinstall",
            "config-files",
            vec![
                conffile("/etc/ntp.conf", Some("7b2a1ddea3b0f5a5bf1c3a7d7b2c5b1e"), false),
                conffile("/etc/init.d/ntp", Some("1f0b7e5e4d2f0a9c8b7a6d5e4f3a2b1c"), true),
                conffile(
                    "/etc/ntp dir/with space.conf",
                    Some("00112233445566778899aabbccddeeff"),
                    true,
                ),
            ],
        ),
        entry(
            "broken",
            Some("amd64"),
            false,
            Some("1.0"),
            "install",
            "half-installed",
            vec![],
        ),
    ];
    assert_eq!(status(STATUS).unwrap(), expected);
}

#[test]
fn info_files_of_multi_arch_same_packages_are_named_with_the_architecture() {
    let names: Vec<String> = status(STATUS)
        .unwrap()
        .iter()
        .map(StatusEntry::info_name)
        .collect();
    assert_eq!(
        names,
        ["adduser", "libc6:amd64", "libc6:i386", "pkgconf", "ntp", "broken"]
    );
}

#[test]
fn files_are_on_disk_from_the_unpacked_state_on() {
    let cases: [(&str, bool); 7] = [
        ("config-files", false),
        ("half-installed", false),
        ("unpacked", true),
        ("half-configured", true),
        ("triggers-awaited", true),
        ("triggers-pending", true),
        ("installed", true),
    ];
    for (state, on_disk) in cases {
        let entries: Vec<StatusEntry> = status(&format!("Package: p\nStatus: install ok {state}\n")).unwrap();
        assert_eq!(entries.len(), 1, "{state}");
        assert_eq!(entries[0].files_installed(), on_disk, "{state}");
    }
}

#[test]
fn not_installed_entries_are_dropped() {
    let text: &str =
        "Package: gone\nStatus: purge ok not-installed\n\nPackage: kept\nStatus: hold ok installed\n";
    let names: Vec<String> = status(text).unwrap().iter().map(StatusEntry::info_name).collect();
    assert_eq!(names, ["kept"]);
}

#[test]
fn field_names_and_status_words_ignore_case_and_package_names_are_lowercased() {
    let text: &str = "PACKAGE: LibFoo1\nstatus: Install OK Installed\narchitecture: amd64\n\
                      MULTI-ARCH: Same\nversion: 2.0\n\
                      conffiles:\n /etc/foo 0123456789abcdef0123456789abcdef\n";
    let entries: Vec<StatusEntry> = status(text).unwrap();
    let expected: StatusEntry = entry(
        "libfoo1",
        Some("amd64"),
        true,
        Some("2.0"),
        "install",
        "installed",
        vec![conffile(
            "/etc/foo",
            Some("0123456789abcdef0123456789abcdef"),
            false,
        )],
    );
    assert_eq!(entries, [expected]);
    assert_eq!(entries[0].info_name(), "libfoo1:amd64");
}

#[test]
fn continuation_lines_belong_to_the_field_above_even_when_they_look_like_fields() {
    let text: &str = "Package: p\nDescription: first line\n Status: purge ok not-installed\n\tConffiles:\n \
                      /etc/x 0123456789abcdef0123456789abcdef\n .\n\
                      Status : install ok installed\nVersion:   1.0  \n";
    assert_eq!(
        status(text).unwrap(),
        [entry(
            "p",
            None,
            false,
            Some("1.0"),
            "install",
            "installed",
            vec![]
        )]
    );
}

#[test]
fn a_field_value_may_start_on_a_continuation_line() {
    let text: &str = "Package: p\nStatus:\n install ok installed\nArchitecture:\nVersion:\n";
    assert_eq!(
        status(text).unwrap(),
        [entry("p", None, false, None, "install", "installed", vec![])]
    );
}

#[test]
fn dpkg_conffile_markers_mean_no_digest_and_paths_are_made_absolute() {
    let text: &str = "Conffiles:\n /etc/a newconffile\n /etc/b nonexistent\n /etc/c -\n etc/d \
                      0123456789abcdef0123456789abcdef\n .//etc/e \
                      0123456789abcdef0123456789abcdef obsolete\n";
    let entries: Vec<StatusEntry> = one_package(text).unwrap();
    assert_eq!(
        entries[0].conffiles,
        [
            conffile("/etc/a", None, false),
            conffile("/etc/b", None, false),
            conffile("/etc/c", None, false),
            conffile("/etc/d", Some("0123456789abcdef0123456789abcdef"), false),
            conffile("/etc/e", Some("0123456789abcdef0123456789abcdef"), true),
        ]
    );
}

#[test]
fn a_package_repeated_in_status_keeps_its_first_place_and_its_last_paragraph() {
    let text: &str = "Package: a\nStatus: install ok installed\nVersion: 1\n\n\
                      Package: b\nStatus: install ok installed\nVersion: 1\n\n\
                      Package: a\nStatus: install ok installed\nVersion: 2\n";
    let got: Vec<String> = status(text)
        .unwrap()
        .iter()
        .map(|entry| format!("{} {}", entry.package, entry.version.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(got, ["a 2", "b 1"]);
}

#[test]
fn blank_lines_around_paragraphs_and_an_empty_file_are_fine() {
    assert_eq!(status(""), Ok(vec![]));
    assert_eq!(status("\n\n"), Ok(vec![]));
    let entries: Vec<StatusEntry> = status("\n\nPackage: p\nStatus: install ok installed\n\n\n").unwrap();
    assert_eq!(entries.len(), 1);
}
