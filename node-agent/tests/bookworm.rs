//! Package attribution on a real distribution: a minimal Debian bookworm made by debootstrap
//! (merged /usr: /bin, /sbin and /lib are links into /usr, while dpkg records coreutils, bash,
//! util-linux and login under /bin and /sbin), cached outside the repository by
//! scripts/bookworm-root.sh and copied for each test. Packages are reinstalled with dpkg in a
//! chroot, maintainer scripts and triggers included, from the .debs debootstrap left in the
//! root; the agent binary watches the root's default recommended items with `init`, `check
//! --json` and `update`, as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use common::{assert_root, packaging::*};
use kubefim_crds::{AttributionKind, ChangeCategory, FileChangeSpec, FileType};

const AGENT: &str = env!("CARGO_BIN_EXE_kubefim-agent");

/// The base packages reinstalled: their files are recorded under /bin, /sbin and /lib, and
/// libc-bin's trigger runs ldconfig.
const BASE: [&str; 5] = ["coreutils", "bash", "util-linux", "login", "libc-bin"];

/// A copy of the cached bookworm root, and the agent's state and configuration beside it.
struct Bookworm {
    dir: tempfile::TempDir,
}

impl Bookworm {
    /// The recommended items of the root, each change reported with its attribution.
    fn new() -> Self {
        Self::with_config("spec:\n  packages: {attribution: Report}\n")
    }

    fn with_config(spec: &str) -> Self {
        assert_root("chroot and dpkg in the bookworm root");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bookworm-root.sh");
        let out = Command::new("bash").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/bookworm-root.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cached = String::from_utf8(out.stdout).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(cached.trim())
            .arg(dir.path().join("host"))
            .status()
            .unwrap();
        assert!(copied.success(), "copy of the bookworm root");
        std::fs::write(
            dir.path().join("config.yaml"),
            format!(
                "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {{name: bookworm}}\n{spec}"
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.dir.path().join("host").join(path.trim_start_matches('/'))
    }

    /// Runs the agent's `verb`, returning its exit code and the changes it printed.
    fn agent(&self, verb: &str) -> (i32, Vec<FileChangeSpec>) {
        let out = Command::new(AGENT)
            .args([verb, "--json", "--node-name", "bookworm", "--config"])
            .arg(self.dir.path().join("config.yaml"))
            .arg("--host-root")
            .arg(self.dir.path().join("host"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert!(
            code < 2,
            "{verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let changes = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (code, changes)
    }

    fn init(&self) {
        let out = Command::new(AGENT)
            .args(["init", "--node-name", "bookworm", "--config"])
            .arg(self.dir.path().join("config.yaml"))
            .arg("--host-root")
            .arg(self.dir.path().join("host"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `dpkg -i` in a chroot of the cached .debs of `packages`: a reinstall at the same version.
    fn reinstall(&self, packages: &[&str]) {
        let archives = self.host("/var/cache/apt/archives");
        let debs: Vec<String> = packages
            .iter()
            .map(|package| {
                let prefix = format!("{package}_");
                let name = std::fs::read_dir(&archives)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .find(|name| name.starts_with(&prefix) && name.ends_with(".deb"))
                    .unwrap_or_else(|| panic!("no cached .deb of {package}"));
                format!("/var/cache/apt/archives/{name}")
            })
            .collect();
        self.chroot(
            &[
                &["dpkg", "-i"][..],
                &debs.iter().map(String::as_str).collect::<Vec<_>>(),
            ]
            .concat(),
        );
    }

    /// Installs a .deb built outside the root, through the root's own dpkg.
    fn install(&self, deb: &Path) {
        let inside = format!("/tmp/{}", deb.file_name().unwrap().to_string_lossy());
        std::fs::copy(deb, self.host(&inside)).unwrap();
        self.chroot(&["dpkg", "-i", &inside]);
    }

    fn chroot(&self, command: &[&str]) {
        let out = Command::new("chroot")
            .arg(self.dir.path().join("host"))
            .args(command)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chroot {command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn is_file(change: &FileChangeSpec) -> bool {
    change
        .current
        .as_ref()
        .is_some_and(|c| c.file_type == Some(FileType::File))
}

fn at<'c>(changes: &'c [FileChangeSpec], path: &str) -> &'c FileChangeSpec {
    let found: Vec<&FileChangeSpec> = changes.iter().filter(|c| c.path == path).collect();
    assert_eq!(found.len(), 1, "one change at {path} in {changes:#?}");
    found[0]
}

#[test]
fn a_reinstall_of_base_packages_recorded_under_bin_sbin_and_lib_is_explained_and_a_hand_change_to_bin_ls_is_not()
 {
    let root = Bookworm::new();
    assert_eq!(
        std::fs::read_link(root.host("/bin")).unwrap(),
        Path::new("usr/bin"),
        "debootstrap made a merged-/usr root"
    );
    let coreutils = std::fs::read_to_string(root.host("/var/lib/dpkg/info/coreutils.list")).unwrap();
    assert!(coreutils.lines().any(|l| l == "/bin/ls"), "dpkg records /bin/ls");
    root.init();
    root.reinstall(&BASE);
    let (code, changes) = root.agent("check");
    assert_eq!(code, 1, "the reinstall changed files");
    let unexplained: Vec<(&str, Option<&str>)> = changes
        .iter()
        .filter(|c| c.attribution.is_none())
        .map(|c| (c.path.as_str(), c.unexplained.as_deref()))
        .collect();
    assert_eq!(unexplained, [], "nothing of the reinstall is unexplained");
    let files: Vec<&FileChangeSpec> = changes
        .iter()
        .filter(|c| is_file(c) && !c.path.starts_with("/var/lib/dpkg/"))
        .collect();
    assert!(
        files.len() > 100,
        "the binaries of five packages: {}",
        files.len()
    );
    for change in &files {
        let attribution = change.attribution.as_ref().unwrap();
        // Every file of the recommended items these packages touch is one they own, checked
        // against its md5sum.
        assert_eq!(
            (attribution.kind, attribution.digest_verified),
            (AttributionKind::Package, true),
            "{} explained by {:?}",
            change.path,
            attribution.package
        );
    }
    let ls = at(&changes, "/usr/bin/ls");
    assert_eq!(
        ls.attribution.as_ref().unwrap().package.as_deref(),
        Some("coreutils")
    );
    assert!(ls.attribution.as_ref().unwrap().digest_verified);
    for (path, package) in [
        ("/usr/sbin/agetty", "util-linux"),
        ("/usr/sbin/ldconfig", "libc-bin"),
    ] {
        let attribution = at(&changes, path).attribution.as_ref().unwrap();
        assert_eq!(
            (
                attribution.kind,
                attribution.package.as_deref(),
                attribution.digest_verified
            ),
            (AttributionKind::Package, Some(package), true),
            "{path}, recorded under /sbin by {package}"
        );
    }
    let login = at(&changes, "/usr/bin/login");
    assert_eq!(
        login.attribution.as_ref().unwrap().package.as_deref(),
        Some("login"),
        "/bin/login in login.list is /usr/bin/login"
    );

    assert_eq!(root.agent("update").0, 1, "the reinstall accepted");
    let mut ls_bytes = std::fs::read(root.host("/bin/ls")).unwrap();
    let last = ls_bytes.len() - 1;
    ls_bytes[last] ^= 1;
    std::fs::write(root.host("/bin/ls"), ls_bytes).unwrap();
    let (code, changes) = root.agent("check");
    assert_eq!(code, 1);
    let ls = at(&changes, "/usr/bin/ls");
    assert_eq!(ls.attribution, None, "a hand change to /bin/ls is unexplained");
    assert_eq!(
        ls.unexplained.as_deref(),
        Some("owned by coreutils (dpkg), which no package operation changed since the baseline")
    );
}

#[test]
fn an_alternatives_link_a_maintainer_script_repoints_is_explained_and_one_repointed_by_hand_or_to_an_alternative_no_package_ships_is_not()
 {
    let root = Bookworm::with_config(
        "spec:\n  recommended: {enabled: false}\n  packages: {attribution: Report}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: alternatives}\nspec: {workspace: bookworm, type: LinuxFile, path: /etc/alternatives, recursive: true}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: bin}\nspec: {workspace: bookworm, type: LinuxFile, path: /usr/bin, recursive: true}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: groups}\nspec: {workspace: bookworm, type: LinuxFile, path: /var/lib/dpkg/alternatives, recursive: true}\n",
    );
    let debs = root.dir.path().join("debs");
    // A pager as a Debian package registers one: update-alternatives in its postinst, at a
    // priority above more's, so the pager link moves to it.
    let deb = build_deb_with_scripts(
        &debs,
        "kfpager",
        "1.0",
        &[file("/usr/bin/kfpager", "#!/bin/sh\nexec cat \"$@\"\n")],
        &[(
            "postinst",
            "#!/bin/sh\nset -e\nupdate-alternatives --install /usr/bin/pager pager /usr/bin/kfpager 200\n",
        )],
    );
    assert_eq!(
        std::fs::read_link(root.host("/etc/alternatives/pager")).unwrap(),
        Path::new("/bin/more")
    );
    root.init();
    root.install(&deb);
    assert_eq!(
        std::fs::read_link(root.host("/etc/alternatives/pager")).unwrap(),
        Path::new("/usr/bin/kfpager"),
        "the postinst repointed the pager"
    );
    let (_, changes) = root.agent("check");
    let pager = at(&changes, "/etc/alternatives/pager");
    let attribution = pager
        .attribution
        .as_ref()
        .unwrap_or_else(|| panic!("the link is explained: {pager:#?}"));
    assert_eq!(attribution.kind, AttributionKind::Package);
    assert_eq!(attribution.package.as_deref(), Some("kfpager"));
    assert!(!attribution.digest_verified, "a link has no digest");
    assert_eq!(
        changes.iter().filter(|c| c.attribution.is_none()).count(),
        0,
        "{changes:#?}"
    );

    assert_eq!(root.agent("update").0, 1);
    std::fs::remove_file(root.host("/etc/alternatives/pager")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/bash", root.host("/etc/alternatives/pager")).unwrap();
    let (_, changes) = root.agent("check");
    let pager = at(&changes, "/etc/alternatives/pager");
    assert_eq!(pager.attribution, None);
    assert_eq!(
        pager.unexplained.as_deref(),
        Some(
            "an alternatives link of group pager leading to /usr/bin/bash, which the alternatives database does not register for it"
        )
    );

    // Root registers its own pager while util-linux (which ships more, a pager) is reinstalled:
    // the database now lists it, but no package ships it. (update-alternatives leaves a link
    // it did not make alone, so the hand repoint is undone first.)
    std::fs::remove_file(root.host("/etc/alternatives/pager")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/kfpager", root.host("/etc/alternatives/pager")).unwrap();
    assert_eq!(root.agent("update").0, 1);
    root.reinstall(&["util-linux"]);
    std::fs::write(root.host("/usr/local/bin/evil"), "#!/bin/sh\n").unwrap();
    root.chroot(&[
        "update-alternatives",
        "--install",
        "/usr/bin/pager",
        "pager",
        "/usr/local/bin/evil",
        "999",
    ]);
    assert_eq!(
        std::fs::read_link(root.host("/etc/alternatives/pager")).unwrap(),
        Path::new("/usr/local/bin/evil")
    );
    let (_, changes) = root.agent("check");
    let pager = at(&changes, "/etc/alternatives/pager");
    assert_eq!(pager.attribution, None, "{pager:#?}");
    assert_eq!(
        pager.unexplained.as_deref(),
        Some(
            "an alternatives link of group pager leading to /usr/local/bin/evil, registered for an alternative no package ships with it"
        )
    );
    let group = at(&changes, "/var/lib/dpkg/alternatives/pager");
    assert_eq!(
        group.attribution.as_ref().map(|a| a.package.as_deref()),
        Some(Some("util-linux")),
        "util-linux ships more, an alternative of the group it rewrote: {group:#?}"
    );

    // A group planted by hand while an unrelated package (login) is reinstalled, its links
    // leading to bash, a package's own binary: nothing of it is explained.
    assert_eq!(root.agent("update").0, 1);
    root.reinstall(&["login"]);
    std::fs::write(
        root.host("/var/lib/dpkg/alternatives/kfplanted"),
        "auto\n/usr/bin/kfplanted\n\n/usr/bin/bash\n10\n\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr/bin/bash", root.host("/etc/alternatives/kfplanted")).unwrap();
    std::os::unix::fs::symlink("/etc/alternatives/kfplanted", root.host("/usr/bin/kfplanted")).unwrap();
    let (_, changes) = root.agent("check");
    let reasons: Vec<(&str, Option<&str>, Option<&str>)> = changes
        .iter()
        .filter(|c| c.path.contains("kfplanted"))
        .map(|c| {
            let package = c.attribution.as_ref().and_then(|a| a.package.as_deref());
            (c.path.as_str(), package, c.unexplained.as_deref())
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                "/etc/alternatives/kfplanted",
                None,
                Some(
                    "an alternatives link of group kfplanted leading to /usr/bin/bash of bash, changed while no package shipping one of its alternatives was operated"
                )
            ),
            (
                "/usr/bin/kfplanted",
                None,
                Some(
                    "an alternatives link of group kfplanted leading to /usr/bin/bash of bash, changed while no package shipping one of its alternatives was operated"
                )
            ),
            (
                "/var/lib/dpkg/alternatives/kfplanted",
                None,
                Some(
                    "the alternatives group file of kfplanted, changed while no package shipping one of its alternatives was operated"
                )
            ),
        ]
    );
}

#[test]
fn a_symlink_a_package_owns_repointed_during_its_reinstall_is_unexplained_with_the_reason() {
    let root = Bookworm::new();
    assert_eq!(
        std::fs::read_link(root.host("/usr/bin/sg")).unwrap(),
        Path::new("newgrp")
    );
    root.init();
    root.reinstall(&["login"]);
    // During the window of login's reinstall, its symlink sg is repointed by someone else.
    std::fs::remove_file(root.host("/usr/bin/sg")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/bash", root.host("/usr/bin/sg")).unwrap();
    let (_, changes) = root.agent("check");
    let sg = at(&changes, "/usr/bin/sg");
    assert_eq!(sg.category, ChangeCategory::Modified);
    assert_eq!(
        sg.attribution, None,
        "dpkg records no target to vouch for /usr/bin/bash"
    );
    assert_eq!(
        sg.unexplained.as_deref(),
        Some(
            "the symlink now points to /usr/bin/bash (was newgrp); dpkg records no symlink targets, so the new one cannot be checked against login"
        )
    );
    // Its sibling newgrp, replaced by the reinstall with the same content, is explained.
    let newgrp = at(&changes, "/usr/bin/newgrp");
    assert!(newgrp.attribution.as_ref().unwrap().digest_verified);
}
