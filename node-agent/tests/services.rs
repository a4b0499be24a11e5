//! systemd units as attackers persist them (issue 18): a unit's state includes the drop-ins
//! that apply to it, in systemd's precedence order, on real unit trees. User units, generators
//! and systemd's own configuration are file entities of the recommended catalog.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::fs;

use common::*;
use kubefim_agent::diff::Change;
use kubefim_crds::{
    ChangeCategory as C, EntityType, TargetOs, WorkspaceConfig, catalog, filechange::ChangedAttribute as A,
};

fn units(pattern: &str) -> WorkspaceConfig {
    workspace(vec![entity("units", EntityType::LinuxService, pattern, false)])
}

/// A unit shipped by the vendor, enabled.
fn ssh(fx: &Fixture) {
    fx.write(
        "/usr/lib/systemd/system/ssh.service",
        "[Service]\nExecStart=/usr/sbin/sshd -D\n",
    );
}

fn changed_drop_ins(changes: &[Change], unit: &str) -> Vec<String> {
    only_change(changes, unit).to_spec("node").changed_drop_ins
}

#[test]
fn a_drop_in_added_edited_masked_and_removed_is_a_modified_unit_naming_the_drop_in() {
    let fx = Fixture::new();
    ssh(&fx);
    let ws = units("ssh.service");
    fx.init(&ws);
    let over = "/etc/systemd/system/ssh.service.d/override.conf";

    // systemctl edit ssh: ExecStart replaced by a drop-in; the unit file itself is untouched.
    fx.write(over, "[Service]\nExecStart=\nExecStart=/tmp/backdoor\n");
    let changes = fx.detect(&ws);
    let unit = only_change(&changes, "ssh.service");
    assert_eq!(
        (unit.category, unit.changed.clone()),
        (C::Modified, vec![A::DropIns])
    );
    assert_eq!(changed_drop_ins(&changes, "ssh.service"), [over]);
    let spec = unit.to_spec("node");
    assert_eq!(spec.current.unwrap().drop_ins[0].path, over);
    assert!(spec.previous.unwrap().drop_ins.is_empty());

    fx.write(over, "[Service]\nExecStart=\nExecStart=/tmp/other-backdoor\n");
    assert_eq!(changed_drop_ins(&fx.detect(&ws), "ssh.service"), [over]);

    // Masked: linked to /dev/null.
    fs::remove_file(fx.path(over)).unwrap();
    std::os::unix::fs::symlink("/dev/null", fx.path(over)).unwrap();
    let changes = fx.detect(&ws);
    let state = only_change(&changes, "ssh.service")
        .to_spec("node")
        .current
        .unwrap();
    assert_eq!(state.drop_ins[0].link_target.as_deref(), Some("/dev/null"));

    fs::remove_file(fx.path(over)).unwrap();
    let changes = fx.detect(&ws);
    assert_eq!(changed_drop_ins(&changes, "ssh.service"), [over]);
    assert!(fx.detect(&ws).is_empty(), "nothing more once reported");
}

#[test]
fn etc_wins_over_run_over_usr_lib_for_a_drop_in_of_one_name() {
    let fx = Fixture::new();
    ssh(&fx);
    fx.write(
        "/usr/lib/systemd/system/ssh.service.d/10-vendor.conf",
        "[Service]\nNice=0\n",
    );
    let ws = units("ssh.service");
    fx.init(&ws);
    // A /run drop-in of the same name replaces the vendor's.
    fx.write(
        "/run/systemd/system/ssh.service.d/10-vendor.conf",
        "[Service]\nNice=5\n",
    );
    let changes = fx.detect(&ws);
    assert_eq!(
        changed_drop_ins(&changes, "ssh.service"),
        [
            "/run/systemd/system/ssh.service.d/10-vendor.conf",
            "/usr/lib/systemd/system/ssh.service.d/10-vendor.conf"
        ]
    );
    // And /etc replaces both; an edit of the now hidden /run file changes nothing.
    fx.write(
        "/etc/systemd/system/ssh.service.d/10-vendor.conf",
        "[Service]\nNice=10\n",
    );
    assert_eq!(only_change(&fx.detect(&ws), "ssh.service").changed, [A::DropIns]);
    fx.write(
        "/run/systemd/system/ssh.service.d/10-vendor.conf",
        "[Service]\nNice=19\n",
    );
    assert!(fx.detect(&ws).is_empty(), "a hidden drop-in does not apply");
    let state = only_change(
        &{
            fx.write(
                "/etc/systemd/system/ssh.service.d/20-more.conf",
                "[Service]\nNice=1\n",
            );
            fx.detect(&ws)
        },
        "ssh.service",
    )
    .to_spec("node")
    .current
    .unwrap();
    let paths: Vec<&str> = state.drop_ins.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/systemd/system/ssh.service.d/10-vendor.conf",
            "/etc/systemd/system/ssh.service.d/20-more.conf"
        ],
        "by file name, each from the directory of highest precedence"
    );
}

#[test]
fn a_prefix_drop_in_applies_to_every_unit_it_names_and_a_type_drop_in_to_all() {
    let fx = Fixture::new();
    for unit in [
        "foo-bar.service",
        "foo-baz.service",
        "other.service",
        "foo-bar.socket",
    ] {
        fx.write(&format!("/usr/lib/systemd/system/{unit}"), "[Unit]\n");
    }
    let ws = units("*");
    fx.init(&ws);
    fx.write(
        "/etc/systemd/system/foo-.service.d/env.conf",
        "[Service]\nEnvironment=LD_PRELOAD=/tmp/x.so\n",
    );
    let changes = fx.detect(&ws);
    let mut names: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["foo-bar.service", "foo-baz.service"],
        "not other.service, not the socket"
    );
    fx.write("/etc/systemd/system/service.d/all.conf", "[Service]\nUser=root\n");
    let changes = fx.detect(&ws);
    assert_eq!(changes.len(), 3, "every service: {:#?}", paths(&changes));
    // A template's drop-in applies to its instances.
    fx.write("/usr/lib/systemd/system/getty@tty1.service", "[Unit]\n");
    fx.detect(&ws);
    fx.write(
        "/etc/systemd/system/getty@.service.d/autologin.conf",
        "[Service]\nExecStart=\n",
    );
    assert_eq!(
        changed_drop_ins(&fx.detect(&ws), "getty@tty1.service"),
        ["/etc/systemd/system/getty@.service.d/autologin.conf"]
    );
}

#[test]
fn user_units_generators_and_systemd_configuration_are_recommended_file_items() {
    let items: Vec<(&str, &str, bool)> = catalog::items_for(TargetOs::Linux, &[])
        .map(|i| (i.id, i.path, i.recursive))
        .collect();
    for expected in [
        ("systemd-user-units", "/etc/systemd/user", true),
        ("systemd-user-units-vendor", "/usr/lib/systemd/user", true),
        (
            "systemd-system-generators",
            "/etc/systemd/system-generators",
            true,
        ),
        (
            "systemd-system-generators-vendor",
            "/usr/lib/systemd/system-generators",
            true,
        ),
        ("systemd-user-generators", "/etc/systemd/user-generators", true),
        ("systemd-config", "/etc/systemd/*.conf", false),
        ("systemd-config-d", "/etc/systemd/*.conf.d", true),
    ] {
        assert!(items.contains(&expected), "{expected:?} missing");
    }
    // On a real tree: a user unit's drop-in, a generator and systemd's configuration, each
    // added, edited and removed, through the recommended entities themselves.
    let fx = Fixture::new();
    fx.write(
        "/etc/systemd/user/agent.service",
        "[Service]\nExecStart=/usr/bin/agent\n",
    );
    fx.write("/etc/systemd/system.conf", "[Manager]\n");
    fx.write("/etc/systemd/journald.conf.d/keep.conf", "[Journal]\n");
    let ws = workspace(
        catalog::items_for(TargetOs::Linux, &[])
            .filter(|i| i.id.starts_with("systemd-") && i.entity_type == EntityType::LinuxFile)
            .map(|i| {
                entity(
                    &format!("recommended.{}", i.id),
                    i.entity_type,
                    i.path,
                    i.recursive,
                )
            })
            .collect(),
    );
    fx.init(&ws);
    let drop_in = "/etc/systemd/user/agent.service.d/override.conf";
    fx.write(drop_in, "[Service]\nExecStart=\nExecStart=/tmp/keylogger\n");
    fx.write("/etc/systemd/system-generators/persist", "#!/bin/sh\n");
    fx.write(
        "/etc/systemd/system.conf",
        "[Manager]\nDefaultEnvironment=LD_PRELOAD=/tmp/x.so\n",
    );
    fx.write(
        "/etc/systemd/journald.conf.d/keep.conf",
        "[Journal]\nStorage=none\n",
    );
    let changes = fx.detect(&ws);
    assert_eq!(only_change(&changes, drop_in).category, C::Added);
    assert_eq!(
        only_change(&changes, "/etc/systemd/system-generators/persist").category,
        C::Added
    );
    assert!(
        only_change(&changes, "/etc/systemd/system.conf")
            .changed
            .contains(&A::Content)
    );
    assert!(
        only_change(&changes, "/etc/systemd/journald.conf.d/keep.conf")
            .changed
            .contains(&A::Content)
    );
    fs::remove_file(fx.path(drop_in)).unwrap();
    assert_eq!(only_change(&fx.detect(&ws), drop_in).category, C::Removed);
}

/// What nobody cannot read is not known, and not knowing is neither removed nor changed: an
/// unreadable unit file (a lower-precedence copy must not stand in for it), an unreadable
/// drop-in and an unreadable unit directory keep the stored units as they are.
#[test]
fn units_nobody_can_read_are_kept_not_reported_removed_or_changed() {
    use std::{os::unix::fs::PermissionsExt, process::Command};
    assert_root("drop to nobody");
    let fx = Fixture::new();
    ssh(&fx);
    fx.write(
        "/etc/systemd/system/ssh.service",
        "[Service]\nExecStart=/usr/sbin/sshd -D -e\n",
    );
    fx.write(
        "/usr/lib/systemd/system/cron.service",
        "[Service]\nExecStart=/usr/sbin/cron\n",
    );
    fx.write(
        "/etc/systemd/system/cron.service.d/limits.conf",
        "[Service]\nLimitNOFILE=1024\n",
    );
    fx.write(
        "/run/systemd/system/atd.service",
        "[Service]\nExecStart=/usr/sbin/atd\n",
    );
    let config = fx.state.path().join("units.yaml");
    fs::write(
        &config,
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: units}\nspec: {workspace: ws, type: LinuxService, path: '*.service'}\n",
    )
    .unwrap();
    for dir in [fx.host.path(), fx.state.path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let store = fx.state.path().join("store");
    let agent = env!("CARGO_BIN_EXE_kubefim-agent");
    let run = |nobody: bool, verb: &str| {
        let mut command = if nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", agent]);
            c
        } else {
            Command::new(agent)
        };
        command
            .args([verb, "--json", "--config"])
            .arg(&config)
            .arg("--host-root")
            .arg(fx.host.path())
            .arg("--state-dir")
            .arg(&store)
            .output()
            .unwrap()
    };
    assert!(run(false, "init").status.success());
    std::os::unix::fs::chown(&store, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(store.join("baseline.redb"), Some(65534), Some(65534)).unwrap();
    let unreadable =
        |path: &str, mode: u32| fs::set_permissions(fx.path(path), fs::Permissions::from_mode(mode)).unwrap();
    let clean = |why: &str| {
        let output = run(true, "check");
        assert_eq!(
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned()
            ),
            (Some(0), String::new()),
            "{why}: no change may be invented; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    clean("everything readable");
    unreadable("/etc/systemd/system/ssh.service", 0o600);
    clean("the winning ssh.service unreadable, the vendor copy readable");
    unreadable("/etc/systemd/system/cron.service.d/limits.conf", 0o600);
    clean("a drop-in of cron.service unreadable");
    unreadable("/run/systemd/system", 0o700);
    clean("a whole unit directory unreadable");
    // Root, who can read it all, sees that nothing changed either: nothing was lost.
    let output = run(false, "check");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
