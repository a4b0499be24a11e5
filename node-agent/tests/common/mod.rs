//! Shared fixture of the agent's integration tests: a real temporary host root and a real
//! baseline store, scanned through the library's own Scanner.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses part of it

pub mod attributes;
pub mod node;
pub mod packaging;

use std::path::{Path, PathBuf};

use kubefim_agent::{
    diff::Change,
    hostfs::HostRoot,
    scan::{ScanMode, ScanOutcome, Scanner},
    store::BaselineStore,
};
use kubefim_crds::{
    ChangeCategory, ChangeSource, EntityConfig, EntityType, WorkspaceConfig, filechange::ChangedAttribute,
};

pub struct Fixture {
    pub host: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub root: HostRoot,
    pub store: BaselineStore,
}

impl Fixture {
    pub fn new() -> Self {
        let host = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let root = HostRoot::open(host.path()).unwrap();
        let (store, _) = BaselineStore::open(state.path()).unwrap();
        Self {
            host,
            state,
            root,
            store,
        }
    }

    /// The real path of host path `path` ("/etc/x" → <tmp>/etc/x).
    pub fn path(&self, path: &str) -> PathBuf {
        self.host.path().join(path.trim_start_matches('/'))
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let real = self.path(path);
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, content).unwrap();
        real
    }

    /// A scanner of this fixture's host and store, the variable KUBEFIM_TEST_DIR set to /data.
    pub fn scanner(&self) -> Scanner<'_> {
        Scanner {
            root: &self.root,
            store: &self.store,
            env: &test_env,
            outbox: None,
            walkers: kubefim_agent::resources::walk_threads(),
            actors: None,
        }
    }

    pub fn scan(&self, ws: &WorkspaceConfig, mode: ScanMode) -> (ScanOutcome, Vec<Change>) {
        let scanner = self.scanner();
        let mut changes = Vec::new();
        let report = scanner
            .scan(ws, mode, ChangeSource::Scan, &mut |c| changes.push(c))
            .unwrap();
        (report, changes)
    }

    /// Builds the baseline, asserting it is silent.
    pub fn init(&self, ws: &WorkspaceConfig) -> ScanOutcome {
        let (report, changes) = self.scan(ws, ScanMode::Detect);
        assert!(changes.is_empty(), "the first scan must be silent: {changes:#?}");
        report
    }

    pub fn detect(&self, ws: &WorkspaceConfig) -> Vec<Change> {
        self.scan(ws, ScanMode::Detect).1
    }
}

fn test_env(name: &str) -> Option<String> {
    match name {
        "KUBEFIM_TEST_DIR" => Some("/data".to_string()),
        _ => None,
    }
}

pub fn entity(name: &str, entity_type: EntityType, path: &str, recursive: bool) -> EntityConfig {
    EntityConfig {
        name: name.into(),
        entity_type,
        path: path.into(),
        recursive,
        max_depth: None,
        exclude: vec![],
        ignore_attributes: vec![],
    }
}

pub fn files(name: &str, path: &str) -> EntityConfig {
    entity(name, EntityType::LinuxFile, path, true)
}

pub fn workspace(entities: Vec<EntityConfig>) -> WorkspaceConfig {
    let mut ws: WorkspaceConfig =
        serde_json::from_value(serde_json::json!({"name": "ws", "namespace": "default"})).unwrap();
    ws.entities = entities;
    ws
}

/// The single change at `path`, asserting there is exactly one.
pub fn only_change<'a>(changes: &'a [Change], path: &str) -> &'a Change {
    let found: Vec<&Change> = changes.iter().filter(|c| c.path == path).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one change at {path}, got {found:#?}\nall: {:#?}",
        paths(changes)
    );
    found[0]
}

pub fn paths(changes: &[Change]) -> Vec<(String, ChangeCategory, Vec<ChangedAttribute>)> {
    changes
        .iter()
        .map(|c| (c.path.clone(), c.category, c.changed.clone()))
        .collect()
}

pub fn set_mtime(path: &Path, seconds: i64) {
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: seconds,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: seconds,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A mount made with `mount ARGS AT`, unmounted when dropped (or by `unmount`, which asserts
/// it worked).
pub struct Mounted(PathBuf);

impl Mounted {
    pub fn new(args: &[&str], at: &Path) -> Self {
        let status = std::process::Command::new("mount")
            .args(args)
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount {args:?} {}", at.display());
        Self(at.to_path_buf())
    }

    pub fn unmount(self) {
        let status = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "umount {}", self.0.display());
        std::mem::forget(self);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Returns once the wall clock is in a later second than when called: for what records time
/// in whole seconds (AIDE's comparisons, rpm's transaction ids).
pub fn wait_for_next_second() {
    let now = jiff::Timestamp::now().as_second();
    while jiff::Timestamp::now().as_second() <= now {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A test that needs root fails without it (CI runs as root): it never passes by skipping.
pub fn assert_root(needs: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root to {needs}; run it as root (CI does)"
    );
}
