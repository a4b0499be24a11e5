//! docs/design.md, "Scanner safety": the host is hostile. Every rule has a test here on a real temporary tree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{
    ffi::OsStr,
    fs,
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use common::*;
use kubefim_agent::scan::ScanMode;
use kubefim_crds::{ChangeCategory as C, FileType, filechange::ChangedAttribute as A};

#[test]
fn symlink_loop_is_recorded_not_followed() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.path("/srv/dir")).unwrap();
    std::os::unix::fs::symlink("b", fx.path("/srv/a")).unwrap();
    std::os::unix::fs::symlink("a", fx.path("/srv/b")).unwrap();
    std::os::unix::fs::symlink("..", fx.path("/srv/dir/up")).unwrap();
    let ws = workspace(vec![files("srv", "/srv")]);
    let outcome = fx.init(&ws);
    assert_eq!(outcome.entities[0].files, 5, "srv, a, b, dir, dir/up: each once");
    assert!(outcome.entities[0].errors.is_empty());
}

#[test]
fn symlink_out_of_root_is_not_followed() {
    let fx = Fixture::new();
    // Intermediate symlinks pointing out of the root, absolute or by climbing, resolve inside it.
    std::os::unix::fs::symlink("/etc", fx.path("/abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", fx.path("/climb")).unwrap();
    let ws = workspace(vec![
        files("abs", "/abs/passwd"),
        files("climb", "/climb/passwd"),
        files("link", "/climb"),
    ]);
    let outcome = fx.init(&ws);
    assert_eq!(
        outcome.entities[0].files, 0,
        "the host's real /etc/passwd must not be reached"
    );
    assert_eq!(outcome.entities[1].files, 0);
    // The symlink itself is monitored as a symlink, and its target is not descended.
    assert_eq!(outcome.entities[2].files, 1);
    fx.write("/etc/passwd", "inside the root");
    let changes = fx.detect(&ws);
    // Now both resolve, inside the root, to the fixture's own /etc/passwd.
    assert_eq!(
        changes.iter().filter(|c| c.category == C::Added).count(),
        2,
        "{:#?}",
        paths(&changes)
    );
    assert!(
        changes
            .iter()
            .all(|c| c.path != "/climb" || c.category != C::Added)
    );
}

#[test]
fn fifo_socket_and_devices_are_never_opened() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.path("/srv")).unwrap();
    let fifo = fx.path("/srv/pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(fx.path("/srv/sock")).unwrap();
    let ws = workspace(vec![files("srv", "/srv")]);
    // Opening the FIFO for reading would block this scan forever: finishing is the assertion.
    let outcome = fx.init(&ws);
    assert_eq!(outcome.bytes_hashed, 0);
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o600)).unwrap();
    let changes = fx.detect(&ws);
    let change = only_change(&changes, "/srv/pipe");
    assert_eq!(change.current.as_ref().unwrap().meta.file_type, FileType::Fifo);
    assert!(change.current.as_ref().unwrap().digest.is_none() && change.changed.contains(&A::Mode));
}

#[test]
fn files_deleted_mid_scan_never_fail_the_scan() {
    let fx = Fixture::new();
    for i in 0..3000 {
        fx.write(&format!("/srv/d{}/f{i}", i % 30), vec![b'x'; 4096]);
    }
    let ws = workspace(vec![files("srv", "/srv")]);
    fx.init(&ws);
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, base) = (stop.clone(), fx.path("/srv"));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 3000 {
                let _ = fs::remove_file(base.join(format!("d{}/f{i}", i % 30)));
                i += 1;
            }
        })
    };
    for _ in 0..3 {
        // Every change found while files vanish must be true: a removal of a known file.
        let (_, changes) = fx.scan(&ws, ScanMode::Detect);
        assert!(
            changes
                .iter()
                .all(|c| c.category == C::Removed || c.path.matches('/').count() == 2),
            "{:#?}",
            paths(&changes)
        );
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    fx.detect(&ws);
    assert!(
        fx.detect(&ws).is_empty(),
        "once the tree is still, the baseline matches it"
    );
}

#[test]
fn file_truncated_while_hashed_is_never_recorded_with_a_foreign_hash() {
    let fx = Fixture::new();
    let path = fx.write("/srv/big", vec![7u8; 32 << 20]);
    let ws = workspace(vec![files("srv", "/srv")]);
    fx.init(&ws);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(0));
                let _ = fs::write(&path, vec![9u8; 32 << 20]);
            }
        })
    };
    for _ in 0..5 {
        let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
        assert!(outcome.entities[0].state == kubefim_crds::nodestatus::EntityState::Active);
        for change in changes.iter().filter(|c| c.path == "/srv/big") {
            // A recorded digest must be one of the whole contents, never of a torn read.
            if let Some(digest) = change.current.as_ref().and_then(|r| r.digest) {
                let size = change.current.as_ref().unwrap().meta.size as usize;
                let candidates = [blake3::hash(&vec![7u8; size]), blake3::hash(&vec![9u8; size])];
                assert!(
                    candidates.iter().any(|h| h.as_bytes() == &digest.bytes),
                    "torn hash recorded at size {size}"
                );
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn non_utf8_names_are_tracked_by_their_exact_bytes() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.path("/srv")).unwrap();
    let name = OsStr::from_bytes(b"bad\xff\xfename");
    let real = fx.path("/srv").join(name);
    fs::write(&real, "one").unwrap();
    fs::write(
        fx.path("/srv").join(OsStr::from_bytes(b"bad\xff\xfdname")),
        "other",
    )
    .unwrap();
    let ws = workspace(vec![files("srv", "/srv")]);
    assert_eq!(fx.init(&ws).entities[0].files, 3);
    fs::write(&real, "two").unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(
        changes.len(),
        1,
        "only the modified one of two names that look alike: {:#?}",
        paths(&changes)
    );
    assert_eq!(changes[0].path, "/srv/bad\u{fffd}\u{fffd}name");
    assert_eq!(changes[0].category, C::Modified);
}

#[test]
fn a_200_level_deep_tree_is_walked_to_the_bottom() {
    let fx = Fixture::new();
    let deep = (0..200).map(|i| format!("d{i}")).collect::<Vec<_>>().join("/");
    fx.write(&format!("/srv/{deep}/leaf"), "v1");
    let ws = workspace(vec![files("srv", "/srv")]);
    assert_eq!(fx.init(&ws).entities[0].files, 202);
    fx.write(&format!("/srv/{deep}/leaf"), "v2");
    let changes = fx.detect(&ws);
    assert_eq!(
        only_change(&changes, &format!("/srv/{deep}/leaf")).changed[0],
        A::Content
    );
}

#[test]
fn sparse_and_huge_files_are_bounded_by_max_hash_size() {
    let fx = Fixture::new();
    fs::create_dir_all(fx.path("/srv")).unwrap();
    let huge = fs::File::create(fx.path("/srv/huge.img")).unwrap();
    huge.set_len(64 << 30).unwrap(); // 64 GiB of holes
    fx.write("/srv/small", "x");
    let ws = workspace(vec![files("srv", "/srv")]);
    let outcome = fx.init(&ws);
    assert_eq!(
        outcome.bytes_hashed, 1,
        "the huge file is tracked by metadata only"
    );
    huge.set_len(65 << 30).unwrap();
    let changes = fx.detect(&ws);
    assert!(only_change(&changes, "/srv/huge.img").changed.contains(&A::Size));
}

#[test]
fn proc_sys_and_dev_are_never_descended() {
    let fx = Fixture::new();
    for dir in ["proc", "sys", "dev"] {
        fx.write(&format!("/{dir}/inside"), "x");
    }
    fx.write("/etc/real", "x");
    let mut everything = files("root", "/");
    everything.max_depth = None;
    let ws = workspace(vec![everything]);
    let outcome = fx.init(&ws);
    assert_eq!(
        outcome.entities[0].files, 5,
        "proc, sys, dev themselves, etc and etc/real"
    );
    fx.write("/proc/inside", "changed");
    assert!(fx.detect(&ws).iter().all(|c| !c.path.starts_with("/proc/")));
}

#[test]
fn a_mount_over_a_monitored_directory_is_reported_and_covers_what_it_hides_rather_than_removing_it() {
    assert_root("mount a tmpfs");
    let fx = Fixture::new();
    fx.write("/srv/local", "x");
    fx.write("/srv/lib/libreal.so", "real");
    let ws = workspace(vec![files("srv", "/srv")]);
    fx.init(&ws);

    let mount = Mounted::new(&["-t", "tmpfs", "kubefim-test"], &fx.path("/srv/lib"));
    fs::write(fx.path("/srv/lib/libevil.so"), "evil").unwrap();
    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    let point = only_change(&changes, "/srv/lib");
    assert_eq!(point.category, C::Modified);
    assert!(point.changed.contains(&A::Mount), "{:?}", point.changed);
    let mounted = point.mount.as_ref().expect("what is mounted there");
    assert_eq!(
        (mounted.fs_type.as_str(), mounted.source.as_str()),
        ("tmpfs", "kubefim-test")
    );
    assert_eq!(
        only_change(&changes, "/srv/lib/libevil.so").category,
        C::Added,
        "the mount's files are walked"
    );
    assert!(
        changes.iter().all(|c| c.path != "/srv/lib/libreal.so"),
        "a covered file is hidden, not removed: {:#?}",
        paths(&changes)
    );
    assert_eq!(outcome.entities[0].hidden, 1);
    assert!(
        outcome.entities[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("hidden by a mount")
    );

    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(
        changes.is_empty(),
        "the next scan keeps it hidden: {:#?}",
        paths(&changes)
    );
    assert_eq!(outcome.entities[0].hidden, 1);

    mount.unmount();
    let changes = fx.detect(&ws);
    let point = only_change(&changes, "/srv/lib");
    assert!(
        point.changed.contains(&A::Mount) && point.mount.is_none(),
        "{point:#?}"
    );
    assert_eq!(only_change(&changes, "/srv/lib/libevil.so").category, C::Removed);
    assert!(
        changes.iter().all(|c| c.path != "/srv/lib/libreal.so"),
        "uncovered and unchanged: no change"
    );
    fs::remove_file(fx.path("/srv/lib/libreal.so")).unwrap();
    assert_eq!(
        only_change(&fx.detect(&ws), "/srv/lib/libreal.so").category,
        C::Removed
    );
}

#[test]
fn a_bind_mount_over_a_monitored_file_is_a_change_of_that_file() {
    assert_root("bind-mount a file");
    let fx = Fixture::new();
    fx.write("/srv/bin/tool", "genuine");
    let impostor = fx.write("/elsewhere/tool", "impostor");
    let ws = workspace(vec![files("srv", "/srv")]);
    fx.init(&ws);
    let _mount = Mounted::new(&["--bind", impostor.to_str().unwrap()], &fx.path("/srv/bin/tool"));
    let changes = fx.detect(&ws);
    let tool = only_change(&changes, "/srv/bin/tool");
    assert!(
        tool.changed.contains(&A::Content) && tool.changed.contains(&A::Mount),
        "{:?}",
        tool.changed
    );
    assert_eq!(
        tool.mount.as_ref().map(|m| m.root.ends_with("/elsewhere/tool")),
        Some(true),
        "{tool:#?}"
    );
}

#[test]
fn a_procfs_is_never_walked_however_it_is_reached() {
    assert_root("mount a procfs");
    let fx = Fixture::new();
    fx.write("/srv/local", "x");
    fs::create_dir_all(fx.path("/srv/kernel")).unwrap();
    fs::create_dir_all(fx.path("/realproc")).unwrap();
    let _inside = Mounted::new(&["-t", "proc", "proc"], &fx.path("/srv/kernel"));
    let _elsewhere = Mounted::new(&["-t", "proc", "proc"], &fx.path("/realproc"));
    std::os::unix::fs::symlink("/realproc", fx.path("/opt-p")).unwrap();
    let ws = workspace(vec![files("srv", "/srv"), files("through-link", "/opt-p/self")]);
    let outcome = fx.init(&ws);
    assert_eq!(
        outcome.entities[0].files, 3,
        "srv, srv/local and the procfs mount point, never what is in it"
    );
    assert_eq!(
        outcome.entities[1].files, 0,
        "a path through a symlink to a procfs resolves to nothing"
    );
    assert_eq!(outcome.entities[1].errors.get("unresolvable"), Some(&1));
}

#[test]
fn unreadable_files_and_directories_are_kept_not_reported() {
    assert_root("drop to nobody");
    let fx = Fixture::new();
    fx.write("/srv/public", "p");
    fx.write("/srv/secret", "s");
    fx.write("/srv/private/inner", "i");
    fs::set_permissions(fx.path("/srv/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(fx.path("/srv/private"), fs::Permissions::from_mode(0o700)).unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        config.path(),
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: srv}\nspec: {workspace: ws, type: LinuxFile, path: /srv, recursive: true}\n",
    )
    .unwrap();
    for dir in [fx.host.path(), fx.state.path(), config.path().parent().unwrap()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(config.path(), fs::Permissions::from_mode(0o644)).unwrap();
    let agent = env!("CARGO_BIN_EXE_kubefim-agent");
    let run = |user: Option<&str>, verb: &str, json: bool| {
        let mut command = match user {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={uid}"),
                    "--clear-groups",
                    agent,
                ]);
                c
            }
            None => Command::new(agent),
        };
        command
            .args([verb, "--config"])
            .arg(config.path())
            .arg("--host-root")
            .arg(fx.host.path());
        command.arg("--state-dir").arg(fx.state.path().join("store"));
        if json {
            command.arg("--json");
        }
        command.output().unwrap()
    };
    // The baseline is taken by root, who can read everything; nobody then checks.
    assert!(run(None, "init", false).status.success());
    std::os::unix::fs::chown(fx.state.path().join("store"), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(
        fx.state.path().join("store/baseline.redb"),
        Some(65534),
        Some(65534),
    )
    .unwrap();
    let output = run(Some("65534"), "check", true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "no change may be invented:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.is_empty(), "{stdout}");
    // And nobody really could not read them: the report says so instead of inventing removals.
    let report = String::from_utf8_lossy(&run(Some("65534"), "check", false).stdout).into_owned();
    assert!(
        report.contains("permission_denied") && report.contains("last known state is kept"),
        "{report}"
    );
    assert!(
        report.contains("Removed entries:\t\t0") && !report.contains("\nRemoved entries:\n"),
        "{report}"
    );
}
