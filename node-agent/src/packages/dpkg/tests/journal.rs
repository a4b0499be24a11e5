//! The journal (`updates/`): which files are read, in which order, and how their paragraphs
//! replace, add and remove entries of the status file.

use super::*;

#[test]
fn journal_files_are_the_all_digit_names_in_numeric_order() {
    let names: [&[u8]; 7] = [b"0010", b"tmp.i", b"0002", b"", b"12a", b"0003", b"1"];
    assert_eq!(update_file_order(&names), [6, 2, 5, 0]);
    // Equal numbers keep a fixed order; numbers longer than u64 compare correctly.
    let names: [&[u8]; 4] = [
        b"1",
        b"0001",
        b"100000000000000000000000",
        b"99999999999999999999999",
    ];
    assert_eq!(update_file_order(&names), [1, 0, 3, 2]);
}

#[test]
fn journal_paragraphs_replace_add_and_remove_entries_in_order() {
    let limits: Limits = Limits::default();
    let mut entries: Vec<StatusEntry> = status(STATUS).unwrap();
    let names: [&[u8]; 3] = [b"0010", b"tmp.i", b"0002"];
    let contents: [&str; 3] = [UPDATE_0010, "not a journal file", UPDATE_0002];
    for index in update_file_order(&names) {
        apply_update(&mut entries, contents[index].as_bytes(), &limits).unwrap();
    }
    let got: Vec<String> = entries
        .iter()
        .map(|entry| format!("{} {}", entry.info_name(), entry.state))
        .collect();
    // Applied the other way round, newpkg would be left half-installed.
    assert_eq!(
        got,
        [
            "libc6:amd64 installed",
            "libc6:i386 installed",
            "pkgconf unpacked",
            "ntp config-files",
            "broken half-installed",
            "newpkg installed",
        ]
    );
}

#[test]
fn an_empty_journal_file_changes_nothing() {
    let mut entries: Vec<StatusEntry> = status(STATUS).unwrap();
    let before: Vec<StatusEntry> = entries.clone();
    apply_update(&mut entries, b"", &Limits::default()).unwrap();
    assert_eq!(entries, before);
}

#[test]
fn a_journal_paragraph_cross_grades_the_only_instance_of_a_package() {
    let mut entries: Vec<StatusEntry> =
        status("Package: tool\nStatus: install ok installed\nArchitecture: i386\nVersion: 1\n").unwrap();
    let update: &[u8] = b"Package: tool\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 2\n";
    apply_update(&mut entries, update, &Limits::default()).unwrap();
    assert_eq!(
        entries,
        [entry(
            "tool",
            Some("amd64"),
            false,
            Some("2"),
            "install",
            "unpacked",
            vec![]
        )]
    );
}

#[test]
fn a_journal_paragraph_adds_a_multi_arch_same_instance_beside_the_others() {
    let mut entries: Vec<StatusEntry> =
        status("Package: libz\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\n")
            .unwrap();
    let update: &[u8] = b"Package: libz\nStatus: install ok unpacked\nArchitecture: i386\nMulti-Arch: same\n";
    apply_update(&mut entries, update, &Limits::default()).unwrap();
    let names: Vec<String> = entries.iter().map(StatusEntry::info_name).collect();
    assert_eq!(names, ["libz:amd64", "libz:i386"]);
}

#[test]
fn a_bad_journal_file_leaves_the_entries_unchanged() {
    let mut entries: Vec<StatusEntry> = status(STATUS).unwrap();
    let before: Vec<StatusEntry> = entries.clone();
    let update: &[u8] = b"Package: newpkg\nStatus: install ok installed\n\nStatus: install ok installed\n";
    assert_eq!(
        apply_update(&mut entries, update, &Limits::default()),
        Err(DpkgError::MissingPackage { line: 4 })
    );
    assert_eq!(entries, before);
}

#[test]
fn a_journal_may_not_grow_the_database_past_the_limit() {
    let limits: Limits = Limits {
        max_entries: 6,
        ..Limits::default()
    };
    let mut entries: Vec<StatusEntry> = parse_status(STATUS.as_bytes(), &limits).unwrap();
    assert_eq!(
        apply_update(&mut entries, UPDATE_0002.as_bytes(), &limits),
        Err(DpkgError::TooManyEntries { line: 1, limit: 6 })
    );
    assert_eq!(entries.len(), 6);
}
