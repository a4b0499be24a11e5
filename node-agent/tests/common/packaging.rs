//! Real packages in a temporary host root: .deb files built with dpkg-deb and installed with
//! `dpkg --root`, .rpm files built with rpmbuild and installed with `rpm --root --dbpath`, and
//! an apk database written in apk's own format (apk itself is not packaged for Debian).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use md5::Digest as _;

/// A file a test package ships.
#[derive(Clone, Debug)]
pub enum Item {
    File {
        path: &'static str,
        content: String,
    },
    Conffile {
        path: &'static str,
        content: String,
    },
    Symlink {
        path: &'static str,
        target: &'static str,
    },
}

pub fn file(path: &'static str, content: &str) -> Item {
    Item::File {
        path,
        content: content.to_string(),
    }
}

pub fn conffile(path: &'static str, content: &str) -> Item {
    Item::Conffile {
        path,
        content: content.to_string(),
    }
}

pub fn symlink(path: &'static str, target: &'static str) -> Item {
    Item::Symlink { path, target }
}

/// Asserts `tool` is installed: CI installs it (scripts/install-tools.sh), so a missing tool is
/// a failure, never a skipped test.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .status()
        .unwrap()
        .success();
    assert!(found, "{tool} is not installed: run scripts/install-tools.sh");
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn place(stage: &Path, item: &Item) {
    match item {
        Item::File { path, content } | Item::Conffile { path, content } => {
            let at = stage.join(path.trim_start_matches('/'));
            // A file already in place is left alone, as a package manager leaves the files of
            // packages it does not touch.
            if std::fs::read(&at).ok().as_deref() != Some(content.as_bytes()) {
                write(&at, content.as_bytes());
            }
        }
        Item::Symlink { path, target } => {
            let at = stage.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&at);
            std::os::unix::fs::symlink(target, at).unwrap();
        }
    }
}

/// A dpkg database in `root`, empty.
pub fn dpkg_init(root: &Path) {
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    write(&root.join("var/lib/dpkg/status"), b"");
}

/// Builds `name_version_all.deb` in `dir` with its md5sums and conffiles, as debhelper would.
pub fn build_deb(dir: &Path, name: &str, version: &str, items: &[Item]) -> PathBuf {
    build_deb_with_scripts(dir, name, version, items, &[])
}

/// `build_deb` with maintainer scripts: (`postinst`, its text) and so on.
pub fn build_deb_with_scripts(
    dir: &Path,
    name: &str,
    version: &str,
    items: &[Item],
    scripts: &[(&str, &str)],
) -> PathBuf {
    let stage = dir.join(format!("stage-{name}-{version}"));
    let _ = std::fs::remove_dir_all(&stage);
    let mut md5sums = String::new();
    let mut conffiles = String::new();
    for item in items {
        place(&stage, item);
        match item {
            Item::File { path, content } => md5sums.push_str(&format!(
                "{:x}  {}\n",
                md5::Md5::digest(content.as_bytes()),
                path.trim_start_matches('/')
            )),
            Item::Conffile { path, .. } => conffiles.push_str(&format!("{path}\n")),
            Item::Symlink { .. } => {}
        }
    }
    write(
        &stage.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: kubefim tests <tests@kubefim.dev>\nDescription: a package of the attribution tests\n"
        )
        .as_bytes(),
    );
    write(&stage.join("DEBIAN/md5sums"), md5sums.as_bytes());
    if !conffiles.is_empty() {
        write(&stage.join("DEBIAN/conffiles"), conffiles.as_bytes());
    }
    for (script, text) in scripts {
        let at = stage.join("DEBIAN").join(script);
        write(&at, text.as_bytes());
        std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&stage)
        .arg(&deb));
    deb
}

/// Runs dpkg on the database in `root` (`-i file.deb`, `-r name`, `-P name`).
pub fn dpkg(root: &Path, args: &[&str]) {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .arg("--force-script-chrootless")
        .arg("--force-not-root")
        .args(args));
}

/// Builds `name-version-1.noarch.rpm` in `dir` with rpmbuild (SHA-256 file digests).
pub fn build_rpm(dir: &Path, name: &str, version: &str, items: &[Item]) -> PathBuf {
    let top = dir.join(format!("rpmbuild-{name}-{version}"));
    let _ = std::fs::remove_dir_all(&top);
    let stage = top.join("stage");
    let mut listed = String::new();
    for item in items {
        place(&stage, item);
        match item {
            Item::File { path, .. } | Item::Symlink { path, .. } => listed.push_str(&format!("{path}\n")),
            Item::Conffile { path, .. } => listed.push_str(&format!("%config(noreplace) {path}\n")),
        }
    }
    let spec = format!(
        "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: a package of the attribution tests\nLicense: MIT\nBuildArch: noarch\n\n%description\nattribution tests\n\n%install\ncp -a {stage}/. %{{buildroot}}/\n\n%files\n{listed}",
        stage = stage.display()
    );
    let spec_path = top.join(format!("{name}.spec"));
    write(&spec_path, spec.as_bytes());
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg("_binary_filedigest_algorithm 8")
        .arg("--define")
        .arg("__os_install_post %{nil}")
        .arg("--define")
        .arg("_build_id_links none")
        .arg(&spec_path));
    let rpm = top.join(format!("RPMS/noarch/{name}-{version}-1.noarch.rpm"));
    assert!(rpm.exists(), "rpmbuild wrote no {}", rpm.display());
    rpm
}

/// Runs rpm on the database in `root`'s /var/lib/rpm (`-i`, `-U`, `-e`).
pub fn rpm(root: &Path, args: &[&str]) {
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "--nodeps",
            "--nosignature",
            "--nodigest",
        ])
        .args(args));
}

/// A package in an apk database.
pub struct ApkPackage<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub items: &'a [Item],
}

/// Writes each package's files under `root` and `root`/lib/apk/db/installed listing them, as apk
/// does: `F:` per directory, `R:` per file, `Z:` the SHA-1 of its content (of its target for a
/// symlink) in apk's `Q1` base64 form.
pub fn apk_install(root: &Path, packages: &[ApkPackage<'_>]) {
    let mut db = String::new();
    for package in packages {
        db.push_str(&format!(
            "C:Q1placeholderchecksumforthepkg=\nP:{}\nV:{}\nA:x86_64\n",
            package.name, package.version
        ));
        let mut by_dir: std::collections::BTreeMap<String, Vec<(String, [u8; 20])>> = Default::default();
        for item in package.items {
            place(root, item);
            let (path, hashed) = match item {
                Item::File { path, content } | Item::Conffile { path, content } => {
                    (*path, content.as_bytes())
                }
                Item::Symlink { path, target } => (*path, target.as_bytes()),
            };
            let sha1: [u8; 20] = sha1::Sha1::digest(hashed).into();
            let (dir, name) = path.trim_start_matches('/').rsplit_once('/').unwrap();
            by_dir
                .entry(dir.to_string())
                .or_default()
                .push((name.to_string(), sha1));
        }
        for (dir, files) in by_dir {
            db.push_str(&format!("F:{dir}\n"));
            for (name, sha1) in files {
                db.push_str(&format!(
                    "R:{name}\nZ:{}\n",
                    kubefim_agent::packages::apk::checksum_line(&sha1)
                ));
            }
        }
        db.push('\n');
    }
    write(&root.join("lib/apk/db/installed"), db.as_bytes());
}
