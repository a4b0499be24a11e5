//! The image scripts/image.sh assembles (umoci and skopeo, from this build's binaries and
//! Debian's packages) is the image the Dockerfile describes: the same files at the same paths,
//! the same user and entrypoint, every library the binaries link, and the commands the chart's
//! pods run. Read from the real OCI archive.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What the Dockerfile's final stage says: COPY destinations, USER, ENTRYPOINT.
struct Dockerfile {
    copied: Vec<String>,
    user: String,
    entrypoint: Vec<String>,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let mut file = Dockerfile {
        copied: Vec::new(),
        user: String::new(),
        entrypoint: Vec::new(),
    };
    for line in last_stage.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            Some(&"COPY") => file.copied.push(words.last().unwrap().to_string()),
            Some(&"USER") => file.user = words[1].to_string(),
            Some(&"ENTRYPOINT") => {
                file.entrypoint = serde_json::from_str(line.trim_start_matches("ENTRYPOINT").trim()).unwrap()
            }
            _ => {}
        }
    }
    file
}

/// The blob `digest` of an extracted OCI layout.
fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The image assembled from this build's binaries: its config and every path its layers hold
/// (with the mode of each, as tar lists them).
fn assembled() -> (Value, BTreeSet<(String, String)>, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let agent = PathBuf::from(env!("CARGO_BIN_EXE_kubefim-agent"));
    let binaries = agent.parent().unwrap();
    assert!(
        binaries.join("kubefim-operator").exists(),
        "the operator binary is built beside the agent's (cargo builds the workspace's binaries)"
    );
    let output = run(Command::new("bash")
        .arg(repo().join("scripts/image.sh"))
        .env("KUBEFIM_BINARIES", binaries)
        .env("KUBEFIM_IMAGE_OUT", dir.path())
        .env("KUBEFIM_IMAGE_TAG", "test"));
    let archive = PathBuf::from(output.lines().last().unwrap());
    assert!(archive.exists(), "the last line names the archive: {output}");
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));
    let index = json(&layout.join("index.json"));
    let manifest = &index["manifests"][0];
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.ref.name"],
        "localhost/kubefim/kubefim:test"
    );
    let manifest = json(&blob(&layout, manifest["digest"].as_str().unwrap()));
    let config = json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
    let mut paths = BTreeSet::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let listing = run(Command::new("tar")
            .arg("-tvzf")
            .arg(blob(&layout, layer["digest"].as_str().unwrap())));
        for line in listing.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches("./").trim_end_matches('/');
            paths.insert((format!("/{path}"), fields[0].to_string()));
        }
    }
    (config, paths, layout, dir)
}

/// One assembly (half a minute with debug binaries) for both checks.
#[test]
fn the_assembled_image_is_the_dockerfiles_and_holds_what_the_charts_pods_run() {
    let (config, paths, layout, _dir) = assembled();
    is_the_dockerfiles(&config, &paths);
    holds_what_the_charts_pods_run(&paths, &layout);
}

fn is_the_dockerfiles(config: &Value, paths: &BTreeSet<(String, String)>) {
    let docker = dockerfile();
    let has = |path: &str| {
        paths
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, mode)| mode.clone())
    };
    assert_eq!(config["config"]["User"], docker.user.as_str());
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::to_value(&docker.entrypoint).unwrap()
    );
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    assert_eq!(docker.copied, ["/kubefim-agent", "/kubefim-operator"]);
    for copied in &docker.copied {
        let mode = has(copied).unwrap_or_else(|| panic!("{copied} is not in the image"));
        assert!(mode.starts_with("-rwxr-xr-x"), "{copied} is executable: {mode}");
    }
    // Every library the binaries link is in the image, where the loader looks for it.
    for binary in ["kubefim-agent", "kubefim-operator"] {
        let path = Path::new(env!("CARGO_BIN_EXE_kubefim-agent")).with_file_name(binary);
        let ldd = run(Command::new("ldd").arg(&path));
        for lib in ldd.lines().filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.as_slice() {
                [name, "=>", _, ..] => Some(name.to_string()),
                [loader, ..] if loader.starts_with('/') => Some(loader.to_string()),
                _ => None,
            }
        }) {
            let found = paths.iter().any(|(p, _)| {
                if lib.starts_with('/') {
                    p == &lib
                } else {
                    p.ends_with(&format!("/{lib}"))
                }
            });
            assert!(found, "{binary} links {lib}, which is not in the image");
        }
    }
    // No shell, no package manager: what is not needed cannot be used by an intruder.
    for absent in ["/bin/sh", "/usr/bin/apt", "/usr/bin/dpkg"] {
        assert!(has(absent).is_none(), "{absent} is in the image");
    }
}

fn holds_what_the_charts_pods_run(paths: &BTreeSet<(String, String)>, layout: &Path) {
    let has = |path: &str| paths.iter().any(|(p, _)| p == path);
    assert!(has("/etc/passwd") && has("/etc/group") && has("/tmp"));
    // The passwd file itself, from the layer.
    let manifest_index = json(&layout.join("index.json"));
    let manifest = json(&blob(
        layout,
        manifest_index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layer = blob(layout, manifest["layers"][0]["digest"].as_str().unwrap());
    let passwd = run(Command::new("tar").arg("-xzOf").arg(&layer).arg("etc/passwd"));
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");

    let helm = repo().join(".tools/bin/helm");
    let rendered = run(Command::new(if helm.exists() {
        helm
    } else {
        PathBuf::from("helm")
    })
    .args(["template", "kubefim"])
    .arg(repo().join("charts/kubefim"))
    .args(["--namespace", "kubefim-system"]));
    let mut commands = BTreeSet::new();
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(document).unwrap();
        let Some(containers) = value
            .get("spec")
            .and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec"))
            .and_then(|s| s.get("containers"))
            .and_then(|c| c.as_sequence())
        else {
            continue;
        };
        for container in containers {
            let command = container["command"][0].as_str().unwrap().to_string();
            commands.insert(command);
        }
    }
    assert_eq!(
        commands.iter().map(String::as_str).collect::<Vec<_>>(),
        ["/kubefim-agent", "/kubefim-operator"]
    );
    for command in &commands {
        assert!(
            has(command),
            "the chart runs {command}, which is not in the image"
        );
    }
}
