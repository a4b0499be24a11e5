//! Signals as a pod's termination sends them: SIGTERM one second into a scan of 100,000 files
//! stops it within two seconds, says so, exits 143, and writes nothing of that scan (the
//! baseline is the one before, so its changes are still found); when the first signal cannot
//! end the scan (stuck writing to a full pipe), a second one exits at once.
//! Real processes of the agent binary on a real tree.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const AGENT: &str = env!("CARGO_BIN_EXE_kubefim-agent");
const FILES: usize = 100_000;

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// 100,000 files of 1 KiB under /srv, in 400 directories, and a configuration watching them.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let block = vec![b'x'; 1024];
        for i in 0..FILES {
            let d = dir.path().join(format!("host/srv/d{:03}", i % 400));
            if i < 400 {
                std::fs::create_dir_all(&d).unwrap();
            }
            std::fs::write(d.join(format!("f{i:06}")), &block).unwrap();
        }
        std::fs::write(
            dir.path().join("config.yaml"),
            "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}, scan: {realtime: false}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: srv}\nspec: {workspace: ws, type: LinuxFile, path: /srv, recursive: true}\n",
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(AGENT);
        command
            .args([verb, "--node-name", "n", "--config"])
            .arg(self.path("config.yaml"))
            .arg("--host-root")
            .arg(self.path("host"))
            .arg("--state-dir")
            .arg(self.path("state"));
        if verb == "standalone" {
            command.args(["--metrics-addr", "none"]);
        }
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        command
    }

    /// Changes every file's content (same size), so the next scan must hash all of them.
    fn change_every_file(&self) {
        let block = vec![b'y'; 1024];
        for i in 0..FILES {
            let path = self.path(&format!("host/srv/d{:03}/f{i:06}", i % 400));
            std::fs::write(path, &block).unwrap();
        }
    }
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal).unwrap();
}

/// Waits for `child` to exit, at most `within`; its exit code and stderr.
fn exit_within(mut child: Child, within: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.code(), stderr, started.elapsed());
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            panic!("still running {within:?} after the signal:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_exit(tree: &Tree) -> Option<i32> {
    let mut command = tree.command("check");
    command.arg("--json").stderr(Stdio::null());
    command.output().unwrap().status.code()
}

fn store_exists(state: &Path) -> bool {
    state.join("baseline.redb").exists()
}

#[test]
fn sigterm_one_second_into_a_scan_stops_it_within_two_seconds_and_writes_nothing() {
    let tree = Tree::new();
    assert_eq!(tree.command("init").status().unwrap().code(), Some(0));
    tree.change_every_file();

    let child = tree.command("standalone").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, rustix::process::Signal::TERM);
    let (code, stderr, took) = exit_within(child, Duration::from_secs(2));
    assert_eq!(code, Some(143), "128 + SIGTERM:\n{stderr}");
    assert!(
        !stderr.contains("scan finished"),
        "the scan was still running when the signal came (else this test shows nothing):\n{stderr}"
    );
    assert!(
        stderr.contains("SIGTERM"),
        "the signal is logged when it arrives:\n{stderr}"
    );
    assert!(stderr.contains("scan stopped before its end"), "{stderr}");
    eprintln!("stopped {took:?} after SIGTERM");
    // The changed files were not accepted into the baseline by the stopped scan.
    assert_eq!(
        check_exit(&tree),
        Some(1),
        "the baseline is the one before the stopped scan"
    );
}

#[test]
fn sigterm_during_init_leaves_no_baseline_behind() {
    let tree = Tree::new();
    let child = tree.command("init").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, rustix::process::Signal::TERM);
    let (code, stderr, _) = exit_within(child, Duration::from_secs(2));
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("nothing of this scan was written"), "{stderr}");
    assert!(store_exists(&tree.path("state")), "the store itself was opened");
    assert_eq!(check_exit(&tree), Some(2), "no baseline was recorded");
}

#[test]
fn a_second_signal_exits_at_once_when_the_first_cannot_end_the_scan() {
    let tree = Tree::new();
    assert_eq!(tree.command("init").status().unwrap().code(), Some(0));
    tree.change_every_file();
    // Nobody reads its stdout: once the pipe is full the scan waits in a write of its JSON
    // lines (a stalled log pipeline), where no stop can reach it.
    let mut command = tree.command("standalone");
    command.stdout(Stdio::piped());
    let child = command.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    signal(&child, rustix::process::Signal::INT);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.id() > 0
            && rustix::process::test_kill_process(rustix::process::Pid::from_child(&child)).is_ok(),
        "still running: the first signal could not end the scan"
    );
    signal(&child, rustix::process::Signal::TERM);
    let (code, stderr, _) = exit_within(child, Duration::from_secs(2));
    assert_eq!(
        code,
        Some(130),
        "the first signal's code, 128 + SIGINT:\n{stderr}"
    );
    assert!(stderr.contains("second signal: exiting now"), "{stderr}");
    assert_eq!(
        check_exit(&tree),
        Some(1),
        "the baseline is the one before the stopped scan"
    );
}
