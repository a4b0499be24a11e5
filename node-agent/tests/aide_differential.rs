//! Differential test against AIDE (Debian `aide`, sha256 rules): the same generated tree, the
//! same 36 mutations, and both tools must report exactly the same set of changed paths.
//! AIDE is the oracle; `scripts/install-tools.sh` installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::{PermissionsExt, symlink},
    path::Path,
    process::Command,
};

const RULE: &str = "p+i+n+u+g+s+m+c+l+ftype+sha256";

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

#[test]
fn kubefim_and_aide_find_the_same_changed_paths() {
    assert!(
        Command::new("aide")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "aide is not installed: run scripts/install-tools.sh (Debian package aide)"
    );
    assert!(
        rustix::process::geteuid().is_root(),
        "the mutation set includes chown, which needs root; CI runs as root"
    );
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("host");
    let tree = host.join("tree");
    generate(&tree);

    let db = work.path().join("aide.db");
    let aide_conf = work.path().join("aide.conf");
    fs::write(
        &aide_conf,
        format!(
            "database_in=file:{db}\ndatabase_out=file:{db}.new\ngzip_dbout=no\nreport_url=stdout\nFIM = {RULE}\n{tree} FIM\n",
            db = db.display(),
            tree = tree.display()
        ),
    )
    .unwrap();
    let kubefim_conf = work.path().join("kubefim.yaml");
    fs::write(
        &kubefim_conf,
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: diff}\nspec:\n  recommended: {enabled: false}\n  scan: {hashAlgorithm: sha256}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: tree}\nspec: {workspace: diff, type: LinuxFile, path: /tree, recursive: true}\n",
    )
    .unwrap();
    let agent = |verb: &str| {
        Command::new(env!("CARGO_BIN_EXE_kubefim-agent"))
            .args([verb, "--json", "--node-name", "diff", "--config"])
            .arg(&kubefim_conf)
            .arg("--host-root")
            .arg(&host)
            .arg("--state-dir")
            .arg(work.path().join("state"))
            .output()
            .unwrap()
    };

    let init = Command::new("aide")
        .arg("-c")
        .arg(&aide_conf)
        .arg("--init")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "aide --init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    fs::rename(format!("{}.new", db.display()), &db).unwrap();
    assert!(agent("init").status.success());

    // AIDE compares times at one-second resolution: mutate in a later second than the baseline.
    let baseline_second = jiff::Timestamp::now().as_second();
    while jiff::Timestamp::now().as_second() <= baseline_second {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mutations = mutations();
    for mutation in &mutations {
        mutation(&tree);
    }
    let mutations = mutations.len();
    assert!(mutations >= 30, "{mutations} mutations");

    let check = Command::new("aide")
        .arg("-c")
        .arg(&aide_conf)
        .arg("--check")
        .output()
        .unwrap();
    let aide_report = String::from_utf8_lossy(&check.stdout).into_owned();
    let prefix = format!("{}", tree.display());
    let aide_paths = aide_changed_paths(&aide_report, &prefix);
    assert_ne!(check.status.code(), Some(0), "aide saw no change:\n{aide_report}");

    let ours = agent("check");
    assert_eq!(
        ours.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let kubefim_paths: BTreeSet<String> = String::from_utf8_lossy(&ours.stdout)
        .lines()
        .map(|line| serde_json::from_str::<kubefim_crds::FileChangeSpec>(line).unwrap())
        .map(|change| change.path.strip_prefix("/tree").unwrap().to_string())
        .collect();

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
