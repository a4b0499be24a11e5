//! Change detection on real temporary trees: each kind of change gives the right category and
//! changedAttributes, baselines are silent, and the fast path and rehashEvery behave.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{fs, os::unix::fs::PermissionsExt};

use common::*;
use kubefim_agent::scan::ScanMode;
use kubefim_crds::{
    ChangeCategory as C, EntityType,
    filechange::{ChangedAttribute as A, ContentWithheld},
};

fn tree() -> (Fixture, kubefim_crds::WorkspaceConfig) {
    let fx = Fixture::new();
    fx.write("/srv/app/config.yaml", "replicas: 1\n");
    fx.write("/srv/app/bin/run", "#!/bin/sh\necho run\n");
    fx.write("/srv/app/keep", "unchanged\n");
    let ws = workspace(vec![files("app", "/srv/app")]);
    fx.init(&ws);
    (fx, ws)
}

#[test]
fn an_unchanged_tree_reports_nothing_and_hashes_nothing() {
    let (fx, ws) = tree();
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(changes.is_empty(), "{:#?}", paths(&changes));
    assert_eq!(outcome.bytes_hashed, 0, "the fast path must skip unchanged files");
    assert_eq!(outcome.entities[0].files, 5); // app, app/bin, app/bin/run, app/config.yaml, app/keep
}

#[test]
fn added_file_is_added() {
    let (fx, ws) = tree();
    fx.write("/srv/app/new.conf", "x");
    let changes = fx.detect(&ws);
    let added = only_change(&changes, "/srv/app/new.conf");
    assert_eq!(added.category, C::Added);
    assert!(added.previous.is_none() && added.current.as_ref().unwrap().digest.is_some());
    assert_eq!(only_change(&changes, "/srv/app").changed, [A::Mtime, A::Ctime]);
}

#[test]
fn modified_content_names_content_size_and_times() {
    let (fx, ws) = tree();
    fx.write("/srv/app/config.yaml", "replicas: 10\n");
    let changes = fx.detect(&ws);
    let change = only_change(&changes, "/srv/app/config.yaml");
    assert_eq!(change.category, C::Modified);
    assert_eq!(change.changed, [A::Content, A::Size, A::Mtime, A::Ctime]);
    assert_eq!(changes.len(), 1, "{:#?}", paths(&changes));
}

#[test]
fn removed_file_is_removed() {
    let (fx, ws) = tree();
    fs::remove_file(fx.path("/srv/app/keep")).unwrap();
    let changes = fx.detect(&ws);
    let change = only_change(&changes, "/srv/app/keep");
    assert_eq!(change.category, C::Removed);
    assert!(change.current.is_none() && change.previous.is_some());
}

#[test]
fn chmod_names_mode_and_ctime_only() {
    let (fx, ws) = tree();
    fs::set_permissions(fx.path("/srv/app/bin/run"), fs::Permissions::from_mode(0o4755)).unwrap();
    let changes = fx.detect(&ws);
    let change = only_change(&changes, "/srv/app/bin/run");
    assert_eq!(
        (change.category, change.changed.clone()),
        (C::Modified, vec![A::Mode, A::Ctime])
    );
    assert_eq!(change.current.as_ref().unwrap().meta.mode, 0o4755);
}

#[test]
fn chown_names_owner_and_group() {
    assert_root("change ownership");
    let (fx, ws) = tree();
    std::os::unix::fs::chown(fx.path("/srv/app/keep"), Some(4242), Some(4343)).unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(
        only_change(&changes, "/srv/app/keep").changed,
        [A::Owner, A::Group, A::Ctime]
    );
}

#[test]
fn touch_only_names_times_not_content() {
    let (fx, ws) = tree();
    set_mtime(&fx.path("/srv/app/keep"), 1_000_000);
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert_eq!(
        only_change(&changes, "/srv/app/keep").changed,
        [A::Mtime, A::Ctime]
    );
    assert!(outcome.bytes_hashed > 0, "changed times must force a re-hash");
}

#[test]
fn rename_is_removed_plus_added_with_the_same_inode() {
    let (fx, ws) = tree();
    fs::rename(fx.path("/srv/app/keep"), fx.path("/srv/app/kept")).unwrap();
    let changes = fx.detect(&ws);
    let removed = only_change(&changes, "/srv/app/keep");
    let added = only_change(&changes, "/srv/app/kept");
    assert_eq!((removed.category, added.category), (C::Removed, C::Added));
    assert_eq!(
        removed.previous.as_ref().unwrap().meta.ino,
        added.current.as_ref().unwrap().meta.ino
    );
}

#[test]
fn hard_link_adds_the_link_and_touches_the_original_ctime() {
    let (fx, ws) = tree();
    fs::hard_link(fx.path("/srv/app/keep"), fx.path("/srv/app/alias")).unwrap();
    let changes = fx.detect(&ws);
    let added = only_change(&changes, "/srv/app/alias");
    assert_eq!(added.category, C::Added);
    assert_eq!(added.current.as_ref().unwrap().meta.nlink, 2);
    assert_eq!(only_change(&changes, "/srv/app/keep").changed, [A::Ctime]);
}

#[test]
fn symlink_retarget_names_link_target() {
    let fx = Fixture::new();
    fx.write("/srv/app/v1/run", "1");
    fx.write("/srv/app/v2/run", "2");
    std::os::unix::fs::symlink("v1", fx.path("/srv/app/current")).unwrap();
    let ws = workspace(vec![files("app", "/srv/app")]);
    fx.init(&ws);
    fs::remove_file(fx.path("/srv/app/current")).unwrap();
    std::os::unix::fs::symlink("v2", fx.path("/srv/app/current")).unwrap();
    let changes = fx.detect(&ws);
    let change = only_change(&changes, "/srv/app/current");
    assert!(change.changed.contains(&A::LinkTarget), "{:?}", change.changed);
    assert_eq!(
        change.current.as_ref().unwrap().link_target.as_deref(),
        Some(b"v2".as_slice())
    );
}

#[test]
fn content_change_with_mtime_put_back_is_caught_through_ctime() {
    let (fx, ws) = tree();
    let path = fx.path("/srv/app/config.yaml");
    set_mtime(&path, 1_600_000_000);
    fx.detect(&ws);
    // Same size, different bytes, and the mtime forged back to what the baseline holds.
    fs::write(&path, "replicas: 9\n").unwrap();
    set_mtime(&path, 1_600_000_000);
    let changes = fx.detect(&ws);
    let change = only_change(&changes, "/srv/app/config.yaml");
    assert!(
        change.changed.contains(&A::Content) && change.changed.contains(&A::Ctime),
        "{:?}",
        change.changed
    );
    assert!(!change.changed.contains(&A::Mtime));
}

#[test]
fn rehash_every_forces_a_full_rehash_of_unchanged_files() {
    let (fx, mut ws) = tree();
    ws.scan.rehash_every = "0s".into();
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(changes.is_empty());
    assert_eq!(
        outcome.bytes_hashed,
        ("replicas: 1\n".len() + "#!/bin/sh\necho run\n".len() + "unchanged\n".len()) as u64
    );
}

#[test]
fn a_new_baseline_revision_reports_what_it_accepts_then_nothing_more() {
    let (fx, mut ws) = tree();
    fx.write("/srv/app/config.yaml", "accepted change\n");
    ws.baseline_revision = "2".into();
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    let accepted = only_change(&changes, "/srv/app/config.yaml");
    let attribution = accepted.attribution.as_ref().expect("an accepted change says so");
    assert_eq!(
        (attribution.kind, attribution.revision.as_deref()),
        (kubefim_crds::AttributionKind::BaselineAccepted, Some("2"))
    );
    assert!(accepted.changed.contains(&A::Content));
    assert_eq!((outcome.accepted, outcome.entities[0].baselined), (1, false));
    assert!(
        fx.detect(&ws).is_empty(),
        "accepted: nothing more on the next scan"
    );
    // A change after the accept is an ordinary one.
    fx.write("/srv/app/config.yaml", "later\n");
    assert!(
        only_change(&fx.detect(&ws), "/srv/app/config.yaml")
            .attribution
            .is_none()
    );
}

#[test]
fn update_reports_every_difference_as_accepted() {
    let (fx, ws) = tree();
    fx.write("/srv/app/config.yaml", "changed by hand\n");
    let (outcome, changes) = fx.scan(&ws, ScanMode::Accept);
    let change = only_change(&changes, "/srv/app/config.yaml");
    assert_eq!(
        change.attribution.as_ref().map(|a| a.kind),
        Some(kubefim_crds::AttributionKind::BaselineAccepted)
    );
    assert_eq!(outcome.accepted, 1);
    assert!(fx.detect(&ws).is_empty());
}

#[test]
fn a_changed_entity_scope_rebaselines_silently() {
    let (fx, mut ws) = tree();
    ws.entities[0].exclude = vec!["/srv/app/bin/**".into()];
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(changes.is_empty() && outcome.entities[0].baselined);
    fx.write("/srv/app/bin/other", "ignored");
    let changes = fx.detect(&ws);
    assert!(
        changes.iter().all(|c| !c.path.starts_with("/srv/app/bin/")),
        "{:#?}",
        paths(&changes)
    );
}

#[test]
fn wildcard_entities_match_only_the_pattern() {
    let fx = Fixture::new();
    fx.write("/etc/a.conf", "a");
    fx.write("/etc/passwd", "root");
    let ws = workspace(vec![entity("conf", EntityType::LinuxFile, "/etc/*.conf", false)]);
    fx.init(&ws);
    fx.write("/etc/b.conf", "b");
    fx.write("/etc/passwd", "root\nmallory");
    fx.write("/etc/a.conf", "aa");
    let changes = fx.detect(&ws);
    let mut got: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.category)).collect();
    got.sort();
    assert_eq!(got, [("/etc/a.conf", C::Modified), ("/etc/b.conf", C::Added)]);
}

#[test]
fn max_depth_limits_descent() {
    let fx = Fixture::new();
    fx.write("/srv/l1/l2/l3/deep", "x");
    let mut limited = files("srv", "/srv");
    limited.max_depth = Some(1);
    let ws = workspace(vec![limited]);
    let outcome = fx.init(&ws);
    // /srv, /srv/l1, /srv/l1/l2 (depth 2 = maxDepth + 1), not l3 nor deep.
    assert_eq!(outcome.entities[0].files, 3);
    fx.write("/srv/l1/l2/l3/deep", "changed");
    assert!(fx.detect(&ws).iter().all(|c| c.path != "/srv/l1/l2/l3/deep"));
}

#[test]
fn environment_variables_expand_and_unset_ones_are_entity_errors() {
    let fx = Fixture::new();
    fx.write("/data/file", "x");
    let ws = workspace(vec![
        files("ok", "$KUBEFIM_TEST_DIR"),
        files("bad", "${KUBEFIM_NOT_SET}/x"),
    ]);
    let outcome = fx.init(&ws);
    assert_eq!(outcome.entities[0].files, 2);
    assert_eq!(
        outcome.entities[1].state,
        kubefim_crds::nodestatus::EntityState::Error
    );
    assert!(
        outcome.entities[1]
            .message
            .as_ref()
            .unwrap()
            .contains("KUBEFIM_NOT_SET")
    );
}

#[test]
fn entities_removed_from_the_config_are_dropped_from_the_store() {
    let (fx, mut ws) = tree();
    fx.write("/srv/other/x", "x");
    ws.entities.push(files("other", "/srv/other"));
    fx.init(&ws);
    assert_eq!(fx.store.entities().unwrap().len(), 2);
    ws.entities.retain(|e| e.name != "other");
    fx.detect(&ws);
    assert_eq!(
        fx.store.entities().unwrap(),
        [kubefim_agent::store::EntityKey::new("default", "ws", "app")]
    );
}

#[test]
fn check_writes_nothing_and_update_accepts() {
    let (fx, ws) = tree();
    fx.write("/srv/app/keep", "changed\n");
    assert_eq!(fx.scan(&ws, ScanMode::Check).1.len(), 1);
    assert_eq!(
        fx.scan(&ws, ScanMode::Check).1.len(),
        1,
        "check must not accept the change"
    );
    assert_eq!(fx.scan(&ws, ScanMode::Detect).1.len(), 1);
    assert!(fx.scan(&ws, ScanMode::Check).1.is_empty());
}

#[test]
fn check_without_a_baseline_is_an_error_not_a_clean_result() {
    let fx = Fixture::new();
    fx.write("/srv/x", "x");
    let ws = workspace(vec![files("app", "/srv")]);
    let (outcome, changes) = fx.scan(&ws, ScanMode::Check);
    assert!(changes.is_empty());
    assert_eq!(
        outcome.entities[0].state,
        kubefim_crds::nodestatus::EntityState::Error
    );
}

#[test]
fn file_content_changes_carry_a_unified_diff() {
    let fx = Fixture::new();
    fx.write("/etc/hosts", "127.0.0.1 localhost\n");
    let ws = workspace(vec![entity(
        "hosts",
        EntityType::FileContent,
        "/etc/hosts",
        false,
    )]);
    fx.init(&ws);
    fx.write("/etc/hosts", "127.0.0.1 localhost\n10.0.0.66 bank.example\n");
    let changes = fx.detect(&ws);
    let diff = only_change(&changes, "/etc/hosts").diff.as_ref().expect("a diff");
    assert!(!diff.truncated);
    assert!(diff.text.contains("+10.0.0.66 bank.example\n"), "{}", diff.text);
    assert_eq!(changes[0].change_type, kubefim_crds::ChangeType::FileContent);
}

#[test]
fn long_diffs_are_truncated_and_binary_files_get_none() {
    let fx = Fixture::new();
    fx.write(
        "/etc/big.txt",
        (0..2000).map(|i| format!("line {i}\n")).collect::<String>(),
    );
    fx.write("/etc/blob", b"\x7fELF\0\x01\x02");
    let mut ws = workspace(vec![
        entity("big", EntityType::FileContent, "/etc/big.txt", false),
        entity("blob", EntityType::FileContent, "/etc/blob", false),
    ]);
    ws.content.max_diff_bytes = "1Ki".into();
    fx.init(&ws);
    fx.write(
        "/etc/big.txt",
        (0..2000).map(|i| format!("LINE {i}\n")).collect::<String>(),
    );
    fx.write("/etc/blob", b"\x7fELF\0\x09\x02");
    let changes = fx.detect(&ws);
    let big = only_change(&changes, "/etc/big.txt").diff.as_ref().unwrap();
    assert!(big.truncated && big.text.len() <= 1024);
    let blob = only_change(&changes, "/etc/blob");
    assert!(blob.changed.contains(&A::Content) && blob.diff.is_none());
}

#[test]
fn services_report_units_added_removed_modified_enabled_and_disabled() {
    let fx = Fixture::new();
    fx.write(
        "/lib/systemd/system/web.service",
        "[Service]\nExecStart=/usr/bin/web\n",
    );
    fx.write(
        "/lib/systemd/system/db.service",
        "[Service]\nExecStart=/usr/bin/db\n",
    );
    fx.write("/lib/systemd/system/README", "not a unit");
    fs::create_dir_all(fx.path("/etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "/lib/systemd/system/db.service",
        fx.path("/etc/systemd/system/multi-user.target.wants/db.service"),
    )
    .unwrap();
    let ws = workspace(vec![entity("units", EntityType::LinuxService, "*", false)]);
    let outcome = fx.init(&ws);
    assert_eq!(outcome.entities[0].files, 2);

    fx.write(
        "/lib/systemd/system/web.service",
        "[Service]\nExecStart=/tmp/backdoor\n",
    );
    fx.write(
        "/etc/systemd/system/miner.service",
        "[Service]\nExecStart=/tmp/miner\n",
    );
    std::os::unix::fs::symlink(
        "/etc/systemd/system/miner.service",
        fx.path("/etc/systemd/system/multi-user.target.wants/miner.service"),
    )
    .unwrap();
    fs::remove_file(fx.path("/etc/systemd/system/multi-user.target.wants/db.service")).unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(only_change(&changes, "web.service").changed, [A::Content]);
    assert_eq!(only_change(&changes, "db.service").changed, [A::Enablement]);
    let miner = only_change(&changes, "miner.service");
    assert_eq!(
        (miner.category, miner.current.as_ref().unwrap().enabled),
        (C::Added, Some(true))
    );
    assert!(
        changes
            .iter()
            .all(|c| c.change_type == kubefim_crds::ChangeType::Services)
    );

    fs::remove_file(fx.path("/lib/systemd/system/web.service")).unwrap();
    assert_eq!(only_change(&fx.detect(&ws), "web.service").category, C::Removed);
}

#[test]
fn unit_precedence_prefers_etc_over_lib() {
    let fx = Fixture::new();
    fx.write("/lib/systemd/system/ssh.service", "vendor");
    let ws = workspace(vec![entity(
        "ssh",
        EntityType::LinuxService,
        "ssh.service",
        false,
    )]);
    fx.init(&ws);
    // An administrator's override in /etc replaces the vendor unit: that is a modification.
    fx.write("/etc/systemd/system/ssh.service", "override");
    assert_eq!(only_change(&fx.detect(&ws), "ssh.service").changed, [A::Content]);
}

#[test]
fn a_secret_is_never_diffed_unless_the_workspace_reveals_it() {
    let fx = Fixture::new();
    fx.write("/etc/kubernetes/admin.conf", "token: old-secret\n");
    fx.write("/etc/hosts", "127.0.0.1 localhost\n");
    let mut ws = workspace(vec![
        entity(
            "kubeconfig",
            EntityType::FileContent,
            "/etc/kubernetes/admin.conf",
            false,
        ),
        entity("hosts", EntityType::FileContent, "/etc/hosts", false),
    ]);
    fx.init(&ws);
    fx.write("/etc/kubernetes/admin.conf", "token: new-secret\n");
    fx.write("/etc/hosts", "10.0.0.9 example\n");
    let changes = fx.detect(&ws);
    let secret = only_change(&changes, "/etc/kubernetes/admin.conf");
    assert!(secret.diff.is_none(), "{secret:?}");
    assert_eq!(secret.content_withheld, Some(ContentWithheld::SensitivePath));
    assert!(secret.changed.contains(&A::Content));
    let line = serde_json::to_string(&secret.to_spec("n1")).unwrap();
    assert!(
        !line.contains("old-secret") && !line.contains("new-secret"),
        "the JSON line holds no content: {line}"
    );
    assert!(line.contains("\"contentWithheld\":\"SensitivePath\""), "{line}");
    let spec = secret.to_spec("n1");
    assert!(spec.previous.unwrap().hash.is_some() && spec.current.unwrap().hash.is_some());
    let ordinary = only_change(&changes, "/etc/hosts");
    assert!(ordinary.diff.is_some() && ordinary.content_withheld.is_none());

    // An admin who sets revealSensitive gets diffs from the next change on.
    ws.content.reveal_sensitive = true;
    fx.write("/etc/kubernetes/admin.conf", "token: newest-secret\n");
    let changes = fx.detect(&ws);
    let secret = only_change(&changes, "/etc/kubernetes/admin.conf");
    assert!(secret.content_withheld.is_none());
    fx.write("/etc/kubernetes/admin.conf", "token: rotated\n");
    let changes = fx.detect(&ws);
    let diff = only_change(&changes, "/etc/kubernetes/admin.conf")
        .diff
        .clone()
        .unwrap();
    assert!(diff.text.contains("+token: rotated"), "{diff:?}");
}

#[test]
fn a_max_read_rate_spreads_the_reads_of_a_scan_over_time() {
    let fx = Fixture::new();
    // 192 KiB at 64 KiB/s: the first second's worth at once, the rest at the rate.
    fx.write("/srv/a", vec![1u8; 96 << 10]);
    fx.write("/srv/b", vec![2u8; 96 << 10]);
    let mut ws = workspace(vec![files("srv", "/srv")]);
    ws.scan.max_read_rate = Some("64Ki".to_string());
    let started = std::time::Instant::now();
    let outcome = fx.init(&ws);
    let took = started.elapsed();
    assert_eq!(outcome.bytes_hashed, 192 << 10);
    assert!(
        took >= std::time::Duration::from_millis(1900),
        "read 192Ki at 64Ki/s in {took:?}"
    );
}

#[test]
fn an_invalid_max_read_rate_is_an_error_naming_it() {
    let fx = Fixture::new();
    fx.write("/srv/a", "x");
    let mut ws = workspace(vec![files("srv", "/srv")]);
    ws.scan.max_read_rate = Some("fast".to_string());
    let scanner = fx.scanner();
    let error = scanner
        .scan(
            &ws,
            ScanMode::Detect,
            kubefim_crds::ChangeSource::Scan,
            &mut |_| {},
        )
        .unwrap_err();
    let message = kubefim_telemetry::error_chain(&error);
    assert!(
        message.contains("scan.maxReadRate") && message.contains("fast"),
        "{message}"
    );
}
