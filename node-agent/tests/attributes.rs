//! File capabilities, extended attributes, POSIX ACLs, SELinux labels and inode flags, changed
//! with the real tools on a real ext4 or tmpfs tree and reported by the real binary's one-shot
//! check: each by its own kind with its decoded value; an entity leaving some out; and the
//! first reading after an upgrade of the agent, which reports nothing and says so once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{fs, path::Path, process::Command};

use common::{
    assert_root,
    attributes::{self, judge, tool},
    wait_for_next_second,
};
use kubefim_agent::store::BaselineStore;
use kubefim_crds::{ChangeCategory, FileChangeSpec, filechange::ChangedAttribute as A};

struct Host {
    work: tempfile::TempDir,
}

impl Host {
    /// A host root whose /srv is monitored, with `spec` extra fields of its entity.
    fn new(entity_extra: &str) -> Self {
        let work = tempfile::tempdir().unwrap();
        fs::create_dir_all(work.path().join("host/srv")).unwrap();
        fs::write(
            work.path().join("config.yaml"),
            format!(
                "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {{name: attrs}}\nspec: {{recommended: {{enabled: false}}}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: srv}}\nspec: {{workspace: attrs, type: LinuxFile, path: /srv, recursive: true{entity_extra}}}\n"
            ),
        )
        .unwrap();
        Self { work }
    }

    fn srv(&self) -> std::path::PathBuf {
        self.work.path().join("host/srv")
    }

    fn state(&self) -> std::path::PathBuf {
        self.work.path().join("state")
    }

    /// Runs `verb`; returns its exit code, its JSON lines (check: all of its output; init and
    /// update print a summary line first) and its log.
    fn agent(&self, verb: &str) -> (Option<i32>, Vec<FileChangeSpec>, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_kubefim-agent"))
            .args([verb, "--json", "--node-name", "attrs", "--config"])
            .arg(self.work.path().join("config.yaml"))
            .arg("--host-root")
            .arg(self.work.path().join("host"))
            .arg("--state-dir")
            .arg(self.state())
            .output()
            .unwrap();
        let changes = String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(usize::from(verb != "check"))
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        (
            output.status.code(),
            changes,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `check`'s readable report.
    fn report(&self) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_kubefim-agent"))
            .args(["check", "--node-name", "attrs", "--config"])
            .arg(self.work.path().join("config.yaml"))
            .arg("--host-root")
            .arg(self.work.path().join("host"))
            .arg("--state-dir")
            .arg(self.state())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn init(&self) {
        let (code, changes, log) = self.agent("init");
        assert_eq!(code, Some(0), "{log}");
        assert!(changes.is_empty(), "{changes:#?}");
        wait_for_next_second();
    }
}

fn the_change<'a>(changes: &'a [FileChangeSpec], path: &str) -> &'a FileChangeSpec {
    let found: Vec<_> = changes.iter().filter(|c| c.path == path).collect();
    assert_eq!(found.len(), 1, "one change at {path}: {changes:#?}");
    found[0]
}

#[test]
fn check_reports_each_attribute_change_by_its_kind_with_its_decoded_value() {
    assert_root("set capabilities, security.* xattrs and inode flags");
    let host = Host::new("");
    let _unlock = attributes::prepare(&host.srv());
    host.init();
    attributes::apply(&host.srv());

    let (code, changes, log) = host.agent("check");
    assert_eq!(code, Some(1), "{log}");
    let mut wrong = Vec::new();
    for mutation in attributes::mutations() {
        let change = the_change(&changes, &format!("/srv/{}", mutation.file));
        assert_eq!(change.category, ChangeCategory::Modified, "{change:#?}");
        assert!(!change.changed_attributes.contains(&A::Content), "{change:#?}");
        if let Err(e) = judge(&mutation, &change.changed_attributes, change.current.as_ref()) {
            wrong.push(e);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(changes.len(), attributes::mutations().len(), "{changes:#?}");

    let setcap = the_change(&changes, "/srv/tool");
    assert_eq!(setcap.previous.as_ref().unwrap().capabilities, None);
    let rewritten = the_change(&changes, "/srv/noted");
    let digest = |state: &kubefim_crds::FileState| {
        state
            .xattrs
            .iter()
            .find(|x| x.name == "user.origin")
            .map(|x| x.digest.clone())
    };
    let (before, after) = (
        digest(rewritten.previous.as_ref().unwrap()),
        digest(rewritten.current.as_ref().unwrap()),
    );
    assert!(
        before.is_some() && after.is_some() && before != after,
        "{rewritten:#?}"
    );
    assert_eq!(
        rewritten.current.as_ref().unwrap().xattrs[0].decoded,
        None,
        "a user xattr's value is never shown"
    );

    // The readable report shows each value before and after, as AIDE's detailed section does.
    let report = host.report();
    let detail = |path: &str| -> String {
        let start = report
            .find(&format!("Path: {}", host.srv().join(path).display()))
            .or_else(|| report.find(&format!("Path: /srv/{path}\n")))
            .unwrap_or_else(|| panic!("no detail of {path}:\n{report}"));
        let rest = &report[start..];
        rest[..rest[1..].find("\nPath: ").map_or(rest.len(), |end| end + 1)].to_string()
    };
    for (path, row, value) in [
        ("tool", "Caps    :", "cap_setuid+ep"),
        ("labeled", "SELinux :", "system_u:object_r:shadow_t:s0"),
        ("shared", "ACL     :", "user:1234:rw-"),
        ("inherits", "DefACL  :", "user:1234:r-x"),
        ("locked", "Flags   :", "immutable"),
        ("journal", "Flags   :", "append"),
        ("signed", "XAttrs  :", "(digest sha256:aaaa"),
        ("noted", "XAttrs  :", "user.origin="),
    ] {
        let detail = detail(path);
        assert!(
            detail.contains(row) && detail.contains(value),
            "{path}: {row} {value} in\n{detail}"
        );
    }
    assert!(
        !report.contains("rewritten"),
        "a user xattr's value is never printed"
    );
}

#[test]
fn an_entity_can_leave_attribute_kinds_out() {
    assert_root("set capabilities");
    let host = Host::new(", ignoreAttributes: [xattrs, ctime]");
    fs::write(host.srv().join("noted"), "x").unwrap();
    fs::copy("/usr/bin/true", host.srv().join("tool")).unwrap();
    host.init();
    tool(
        "setfattr",
        &["-n", "user.any", "-v", "thing"],
        &host.srv().join("noted"),
    );
    tool("setcap", &["cap_net_raw+ep"], &host.srv().join("tool"));

    let (code, changes, log) = host.agent("check");
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(changes.len(), 1, "the xattr alone is left out: {changes:#?}");
    assert_eq!(changes[0].path, "/srv/tool");
    assert_eq!(changes[0].changed_attributes, [A::Capabilities]);
    assert_eq!(
        changes[0].current.as_ref().unwrap().capabilities.as_deref(),
        Some("cap_net_raw+ep")
    );
}

/// Every stored record of every entity rewritten as an agent from before attributes were
/// tracked wrote it.
fn forget_attributes(state: &Path) {
    let (store, _) = BaselineStore::open(state).unwrap();
    let entities = store.entities().unwrap();
    assert!(!entities.is_empty());
    let update = store.update().unwrap();
    let mut forgotten = 0;
    for entity in &entities {
        let records: Vec<_> = {
            let snapshot = store.snapshot().unwrap();
            let stored = snapshot.entity(entity, false).unwrap();
            stored.records_at(b"").unwrap().map(Result::unwrap).collect()
        };
        let mut writer = update.entity(entity, false).unwrap();
        for (key, mut record) in records {
            assert!(
                record.attributes.is_some(),
                "{key:?} was stored without attributes"
            );
            record.attributes = None;
            writer.put(&key, &record).unwrap();
            forgotten += 1;
        }
    }
    update.commit().unwrap();
    assert!(forgotten >= 3, "{forgotten}");
}

#[test]
fn attributes_read_first_after_an_upgrade_are_no_change_and_the_log_says_so_once() {
    assert_root("set capabilities");
    let host = Host::new("");
    fs::copy("/usr/bin/true", host.srv().join("tool")).unwrap();
    fs::write(host.srv().join("noted"), "x").unwrap();
    tool("setcap", &["cap_setuid+ep"], &host.srv().join("tool"));
    tool(
        "setfattr",
        &["-n", "user.origin", "-v", "v1"],
        &host.srv().join("noted"),
    );
    host.init();
    forget_attributes(&host.state());

    let announcement = "from before capabilities, xattrs, ACLs, SELinux labels and inode flags were tracked";
    let (code, changes, log) = host.agent("update");
    assert_eq!(code, Some(0), "{log}");
    assert!(changes.is_empty(), "{changes:#?}");
    assert_eq!(log.matches(announcement).count(), 1, "{log}");

    let (code, changes, log) = host.agent("check");
    assert_eq!((code, changes.len()), (Some(0), 0), "{changes:#?}\n{log}");
    assert!(!log.contains(announcement), "announced again:\n{log}");

    // What was read then is the baseline: a change to it is reported.
    tool(
        "setfattr",
        &["-n", "user.origin", "-v", "v2"],
        &host.srv().join("noted"),
    );
    let (code, changes, log) = host.agent("check");
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(
        the_change(&changes, "/srv/noted").changed_attributes,
        [A::Ctime, A::Xattrs]
    );
}

/// Root can hang any number of xattrs on a file where the filesystem allows it (tmpfs here):
/// the agent reads 256 by name, counts the rest, and reports a change of the count; the
/// capabilities are read however many names sort before them.
#[test]
fn xattrs_past_the_bound_are_counted_and_a_change_of_their_number_is_reported() {
    assert_root("mount a tmpfs");
    let host = Host::new("");
    let _mount = common::Mounted::new(&["-t", "tmpfs", "kubefim-xattrs"], &host.srv());
    let crowded = host.srv().join("crowded");
    fs::write(&crowded, "x").unwrap();
    let set = |from: usize, to: usize| {
        for n in from..to {
            rustix::fs::lsetxattr(
                &crowded,
                format!("security.a{n:04}").as_str(),
                b"v",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
    };
    set(0, 300);
    host.init();
    set(300, 310);
    tool("setcap", &["cap_sys_admin+ep"], &crowded);

    let (code, changes, log) = host.agent("check");
    assert_eq!(code, Some(1), "{log}");
    let change = the_change(&changes, "/srv/crowded");
    assert_eq!(
        change.changed_attributes,
        [A::Ctime, A::Capabilities, A::Xattrs],
        "{change:#?}"
    );
    let (before, after) = (
        change.previous.as_ref().unwrap(),
        change.current.as_ref().unwrap(),
    );
    assert_eq!((before.xattrs.len(), before.xattrs_not_read), (256, 44));
    assert_eq!((after.xattrs.len(), after.xattrs_not_read), (256, 55));
    assert_eq!(after.xattrs[0].name, "security.a0000");
    assert!(after.xattrs.iter().any(|x| x.name == "security.capability"));
    assert_eq!(after.capabilities.as_deref(), Some("cap_sys_admin+ep"));
}
