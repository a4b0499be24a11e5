//! Differential tests against AIDE (Debian `aide`, sha256 rules): the same generated tree, the
//! same 36 mutations, and both tools must report exactly the same set of changed paths; and an
//! ancestor symlink loop and a mount, where they agree but on what a mount covers. AIDE is the
//! oracle; `scripts/install-tools.sh` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::Path,
    process::Command,
};

use common::{Mounted, assert_root, wait_for_next_second};
use kubefim_crds::{FileChangeSpec, filechange::ChangedAttribute as A};

const RULE: &str = "p+i+n+u+g+s+m+c+l+ftype+sha256";
/// With AIDE's attribute checks: its `X` group (acl, selinux, xattrs, e2fsattrs) and caps.
const ATTRIBUTE_RULE: &str = "p+i+n+u+g+s+m+c+l+ftype+sha256+acl+selinux+xattrs+e2fsattrs+caps";

fn generate(tree: &Path) {
    for d in 0..8 {
        for f in 0..12 {
            let dir = tree.join(format!("dir{d}"));
            fs::create_dir_all(dir.join("nested")).unwrap();
            fs::write(
                dir.join(format!("file{f}.txt")),
                format!("dir {d} file {f}\n").repeat(f + 1),
            )
            .unwrap();
            fs::write(
                dir.join("nested").join(format!("n{f}")),
                vec![(d * 12 + f) as u8; 300 * f],
            )
            .unwrap();
        }
        symlink(format!("file{d}.txt"), tree.join(format!("dir{d}/link"))).unwrap();
    }
    fs::create_dir_all(tree.join("doomed/inner")).unwrap();
    fs::write(tree.join("doomed/inner/x"), "x").unwrap();
}

fn set_times(path: &Path, seconds: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

type Mutation = Box<dyn Fn(&Path)>;

/// The mutation set: every kind of change a FIM must catch, each on its own path.
fn mutations() -> Vec<Mutation> {
    let mut list: Vec<Mutation> = Vec::new();
    for d in 0..4 {
        list.push(Box::new(move |t| {
            fs::write(t.join(format!("dir{d}/file3.txt")), "appended and rewritten\n").unwrap()
        }));
    }
    for d in 4..6 {
        // Same size, different bytes.
        list.push(Box::new(move |t| {
            let path = t.join(format!("dir{d}/file0.txt"));
            let mut bytes = fs::read(&path).unwrap();
            bytes[0] ^= 0x20;
            fs::write(&path, bytes).unwrap();
        }));
    }
    for d in 0..3 {
        list.push(Box::new(move |t| {
            fs::set_permissions(
                t.join(format!("dir{d}/file5.txt")),
                fs::Permissions::from_mode(0o4755),
            )
            .unwrap()
        }));
    }
    for d in 0..2 {
        list.push(Box::new(move |t| {
            std::os::unix::fs::chown(t.join(format!("dir{d}/file6.txt")), Some(1234), Some(5678)).unwrap()
        }));
    }
    for d in 0..3 {
        list.push(Box::new(move |t| {
            set_times(&t.join(format!("dir{d}/file7.txt")), 1_500_000_000)
        }));
    }
    for d in 0..3 {
        list.push(Box::new(move |t| {
            fs::remove_file(t.join(format!("dir{d}/file8.txt"))).unwrap()
        }));
    }
    for d in 0..3 {
        list.push(Box::new(move |t| {
            fs::write(t.join(format!("dir{d}/added.conf")), "new").unwrap()
        }));
    }
    for d in 0..2 {
        list.push(Box::new(move |t| {
            fs::rename(
                t.join(format!("dir{d}/file9.txt")),
                t.join(format!("dir{d}/renamed.txt")),
            )
            .unwrap()
        }));
    }
    list.push(Box::new(|t| {
        fs::hard_link(t.join("dir5/file1.txt"), t.join("dir5/hardlink")).unwrap()
    }));
    list.push(Box::new(|t| {
        fs::remove_file(t.join("dir6/link")).unwrap();
        symlink("file11.txt", t.join("dir6/link")).unwrap();
    }));
    list.push(Box::new(|t| {
        fs::remove_file(t.join("dir6/file2.txt")).unwrap();
        fs::create_dir(t.join("dir6/file2.txt")).unwrap();
    }));
    list.push(Box::new(|t| {
        fs::create_dir_all(t.join("newdir/sub")).unwrap();
        fs::write(t.join("newdir/sub/payload"), "payload").unwrap();
    }));
    list.push(Box::new(|t| fs::remove_dir_all(t.join("doomed")).unwrap()));
    list.push(Box::new(|t| {
        fs::File::options()
            .write(true)
            .open(t.join("dir7/file4.txt"))
            .unwrap()
            .set_len(0)
            .unwrap()
    }));
    list.push(Box::new(|t| {
        // Content changed, mtime forged back: only ctime and the hash give it away.
        let path = t.join("dir7/file10.txt");
        let mtime = old_mtime(&fs::metadata(&path).unwrap());
        let mut bytes = fs::read(&path).unwrap();
        bytes[1] ^= 0x01;
        fs::write(&path, bytes).unwrap();
        set_times(&path, mtime);
    }));
    list.push(Box::new(|t| {
        fs::remove_file(t.join("dir7/link")).unwrap();
        fs::write(t.join("dir7/link"), "was a symlink").unwrap();
    }));
    list.push(Box::new(|t| {
        fs::write(t.join("dir4/nested/n5"), vec![0u8; 1500]).unwrap()
    }));
    list.push(Box::new(|t| fs::remove_file(t.join("dir3/nested/n2")).unwrap()));
    list
}

fn old_mtime(metadata: &fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    metadata.mtime()
}

/// The paths AIDE lists as added, removed or changed, relative to `prefix`.
fn aide_changed_paths(report: &str, prefix: &str) -> BTreeSet<String> {
    report
        .lines()
        .take_while(|line| !line.starts_with("Detailed information"))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| {
            line.split_once(&format!(": {prefix}"))
                .map(|(_, rest)| rest.to_string())
        })
        .collect()
}

fn assert_prerequisites() {
    assert!(
        Command::new("aide")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "aide is not installed: run scripts/install-tools.sh (Debian package aide)"
    );
    assert_root("chown and mount, as the mutations do");
}

/// AIDE and kubefim set up on the same host root: AIDE's selection lines and kubefim's entities
/// name the same directories (`/tree`, or those given).
struct Both {
    work: tempfile::TempDir,
    host: std::path::PathBuf,
}

impl Both {
    fn new(dirs: &[&str]) -> Self {
        Self::with_rule(dirs, RULE)
    }

    fn with_rule(dirs: &[&str], rule: &str) -> Self {
        let work = tempfile::tempdir().unwrap();
        let host = work.path().join("host");
        let db = work.path().join("aide.db");
        let mut aide = format!(
            "database_in=file:{db}\ndatabase_out=file:{db}.new\ngzip_dbout=no\nreport_url=stdout\nFIM = {rule}\n",
            db = db.display()
        );
        let mut kubefim = "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: diff}\nspec:\n  recommended: {enabled: false}\n  scan: {hashAlgorithm: sha256}\n".to_string();
        for (index, dir) in dirs.iter().enumerate() {
            aide.push_str(&format!("{}{dir} FIM\n", host.display()));
            kubefim.push_str(&format!(
                "---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: e{index}}}\nspec: {{workspace: diff, type: LinuxFile, path: {dir}, recursive: true}}\n"
            ));
        }
        fs::write(work.path().join("aide.conf"), aide).unwrap();
        fs::write(work.path().join("kubefim.yaml"), kubefim).unwrap();
        Self { work, host }
    }

    fn aide(&self, verb: &str) -> std::process::Output {
        Command::new("aide")
            .arg("-c")
            .arg(self.work.path().join("aide.conf"))
            .arg(verb)
            .output()
            .unwrap()
    }

    fn agent(&self, verb: &str) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_kubefim-agent"))
            .args([verb, "--json", "--node-name", "diff", "--config"])
            .arg(self.work.path().join("kubefim.yaml"))
            .arg("--host-root")
            .arg(&self.host)
            .arg("--state-dir")
            .arg(self.work.path().join("state"))
            .output()
            .unwrap()
    }

    /// Both baselines, then a wait into the next second (AIDE compares times at one-second
    /// resolution).
    fn init(&self) {
        let init = self.aide("--init");
        assert!(
            init.status.success(),
            "aide --init: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let db = self.work.path().join("aide.db");
        fs::rename(format!("{}.new", db.display()), &db).unwrap();
        assert!(self.agent("init").status.success());
        wait_for_next_second();
    }

    /// What each tool's check reports as changed, as host-view paths; asserts both say
    /// something changed (kubefim: exit 1).
    fn check(&self) -> (BTreeSet<String>, BTreeSet<String>, String) {
        let (report, changes) = self.check_changes();
        let aide = aide_changed_paths(&report, &self.host.display().to_string());
        (aide, changes.into_iter().map(|c| c.path).collect(), report)
    }

    /// AIDE's check report and kubefim's changes.
    fn check_changes(&self) -> (String, Vec<FileChangeSpec>) {
        let check = self.aide("--check");
        let report = String::from_utf8_lossy(&check.stdout).into_owned();
        assert_ne!(check.status.code(), Some(0), "aide saw no change:\n{report}");
        let ours = self.agent("check");
        assert_eq!(
            ours.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let changes = String::from_utf8_lossy(&ours.stdout)
            .lines()
            .map(|line| serde_json::from_str::<FileChangeSpec>(line).unwrap())
            .collect();
        (report, changes)
    }
}

#[test]
fn kubefim_and_aide_find_the_same_changed_paths() {
    assert_prerequisites();
    let both = Both::new(&["/tree"]);
    let tree = both.host.join("tree");
    generate(&tree);
    both.init();
    let mutations = mutations();
    for mutation in &mutations {
        mutation(&tree);
    }
    let mutations = mutations.len();
    assert!(mutations >= 30, "{mutations} mutations");

    let (aide_paths, kubefim_paths, aide_report) = both.check();
    eprintln!(
        "{mutations} mutations; AIDE: {} paths; kubefim: {} paths",
        aide_paths.len(),
        kubefim_paths.len()
    );
    assert!(aide_paths.len() >= mutations, "{aide_paths:#?}");
    let only_aide: Vec<_> = aide_paths.difference(&kubefim_paths).collect();
    let only_kubefim: Vec<_> = kubefim_paths.difference(&aide_paths).collect();
    assert!(
        only_aide.is_empty() && only_kubefim.is_empty(),
        "only AIDE: {only_aide:#?}\nonly kubefim: {only_kubefim:#?}\nAIDE report:\n{aide_report}"
    );
}

/// An ancestor of a monitored tree turned into a symlink loop, and a tmpfs mounted over a
/// monitored directory with a planted library: both tools report every entry of the looped
/// tree removed, the mount point changed and the planted file added. They differ, by design,
/// on what the mount covers: AIDE reports it removed, kubefim keeps it hidden (it is still on
/// the disk beneath) and says so.
#[test]
fn kubefim_and_aide_agree_on_an_ancestor_loop_and_a_mount_except_that_covered_files_are_hidden() {
    assert_prerequisites();
    let both = Both::new(&["/opt/app", "/srv"]);
    let host = &both.host;
    for file in [
        "opt/app/bin/tool",
        "opt/app/lib/libapp.so",
        "srv/lib/libreal.so",
        "srv/lib/libother.so",
        "srv/keep",
    ] {
        let path = host.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, file).unwrap();
    }
    both.init();

    fs::rename(host.join("opt"), host.join("opt.real")).unwrap();
    symlink("opt", host.join("opt")).unwrap();
    let lib = host.join("srv/lib");
    let mount = Mounted::new(&["-t", "tmpfs", "kubefim-aide-diff"], &lib);
    fs::write(lib.join("libevil.so"), "evil").unwrap();
    let (aide_paths, kubefim_paths, aide_report) = both.check();
    mount.unmount();

    let covered: BTreeSet<String> = ["/srv/lib/libother.so", "/srv/lib/libreal.so"]
        .map(String::from)
        .into();
    let expected: BTreeSet<String> = [
        "/opt/app",
        "/opt/app/bin",
        "/opt/app/bin/tool",
        "/opt/app/lib",
        "/opt/app/lib/libapp.so",
        "/srv/lib",
        "/srv/lib/libevil.so",
    ]
    .map(String::from)
    .into();
    assert_eq!(kubefim_paths, expected, "AIDE report:\n{aide_report}");
    let aide_minus_covered: BTreeSet<String> = aide_paths.difference(&covered).cloned().collect();
    assert_eq!(aide_minus_covered, expected, "AIDE report:\n{aide_report}");
    assert!(
        covered.is_subset(&aide_paths),
        "AIDE reports the covered files removed:\n{aide_report}"
    );
}

/// The attribute checks AIDE's detailed report names for each path (relative to `prefix`),
/// among ACL, XAttrs, SELinux and E2FSAttrs.
fn aide_attribute_checks(report: &str, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut checks: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut path = None;
    for line in report
        .lines()
        .skip_while(|line| !line.starts_with("Detailed information"))
    {
        if let Some((_, rest)) = line.split_once(&format!(": {prefix}")) {
            path = Some(rest.to_string());
        } else if let (Some(path), Some(check)) = (&path, line.strip_prefix(' ')) {
            let name = check.split(':').next().unwrap_or_default().trim();
            if !check.starts_with(' ') && ["ACL", "XAttrs", "SELinux", "E2FSAttrs"].contains(&name) {
                checks.entry(path.clone()).or_default().insert(name.to_string());
            }
        }
    }
    checks
}

/// The same ten attribute changes (setcap, setfattr of user.* and security.* values, one
/// removed, setfacl of an access and a default ACL, chattr +i and +a): AIDE with its attribute
/// checks and kubefim report the same paths, and for each path the same kinds, AIDE's XAttrs
/// standing for kubefim's capabilities, selinux and xattrs (AIDE shows a label in XAttrs where
/// SELinux is off, as here, and in SELinux where it is on).
#[test]
fn kubefim_and_aide_agree_on_capabilities_xattrs_acls_selinux_labels_and_inode_flags() {
    assert_prerequisites();
    let both = Both::with_rule(&["/tree"], ATTRIBUTE_RULE);
    let tree = both.host.join("tree");
    let _unlock = common::attributes::prepare(&tree);
    both.init();
    common::attributes::apply(&tree);

    let (report, changes) = both.check_changes();
    let aide = aide_attribute_checks(&report, &both.host.display().to_string());
    let kubefim: BTreeMap<String, BTreeSet<String>> = changes
        .iter()
        .map(|change| {
            let kinds = change
                .changed_attributes
                .iter()
                .filter_map(|a| match a {
                    A::Capabilities | A::Xattrs => Some("XAttrs"),
                    A::Selinux if !aide_sees_selinux() => Some("XAttrs"),
                    A::Selinux => Some("SELinux"),
                    A::Acl => Some("ACL"),
                    A::Flags => Some("E2FSAttrs"),
                    _ => None,
                })
                .map(String::from)
                .collect();
            (change.path.clone(), kinds)
        })
        .collect();
    assert_eq!(
        kubefim.len(),
        common::attributes::mutations().len(),
        "{changes:#?}"
    );
    assert_eq!(aide, kubefim, "AIDE report:\n{report}");
    let aide_paths = aide_changed_paths(&report, &both.host.display().to_string());
    assert_eq!(
        aide_paths,
        kubefim.keys().cloned().collect(),
        "AIDE report:\n{report}"
    );
}

/// Whether AIDE reads labels through SELinux (the kernel has it enabled).
fn aide_sees_selinux() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}
