//! A good neighbour on a busy node: scan threads at the lowest CPU priority and in the idle I/O
//! class, and as many of them as the container's CPU quota allows, on the real kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{path::PathBuf, process::Command};

const AGENT: &str = env!("CARGO_BIN_EXE_kubefim-agent");

/// The nice value of the calling thread, from /proc/thread-self/stat (field 19).
fn own_nice() -> i64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The command name (field 2) may hold spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

/// The I/O class of thread `tid` as ionice(1) names it.
fn io_class(tid: i32) -> String {
    let out = Command::new("ionice")
        .arg("-p")
        .arg(tid.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn scan_threads_run_at_nice_19_in_the_idle_io_class() {
    let runtime_nice = own_nice();
    // Both are read on the scan thread while it runs.
    let (nice, class) = kubefim_agent::resources::on_scan_thread(|| {
        (
            own_nice(),
            io_class(rustix::thread::gettid().as_raw_nonzero().get()),
        )
    })
    .await
    .unwrap();
    assert_eq!(nice, 19);
    assert_eq!(class, "idle");
    assert_eq!(
        own_nice(),
        runtime_nice,
        "the runtime's own threads keep their priority"
    );
}

/// A cgroup with a CPU quota of one CPU, removed on drop.
struct OneCpuCgroup {
    dir: PathBuf,
}

impl OneCpuCgroup {
    fn new() -> Self {
        let name = format!("kubefim-test-{}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let dir = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.cfs_period_us"), "100000").unwrap();
            std::fs::write(dir.join("cpu.cfs_quota_us"), "100000").unwrap();
            dir
        } else {
            // cgroup v2: the cpu controller must be enabled for children of the root.
            let root = PathBuf::from("/sys/fs/cgroup");
            std::fs::write(root.join("cgroup.subtree_control"), "+cpu").unwrap();
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.max"), "100000 100000").unwrap();
            dir
        };
        Self { dir }
    }
}

impl Drop for OneCpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn the_scan_threads_follow_the_cgroup_cpu_quota_not_the_host_cores() {
    assert!(
        rustix::process::geteuid().is_root(),
        "creating a cgroup needs root (CI runs as root)"
    );
    let host_cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        host_cpus >= 2,
        "a quota of one CPU only shows on a host of several"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("host/etc")).unwrap();
    std::fs::write(dir.path().join("host/etc/app.conf"), "x").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: ws}\nspec: {recommended: {enabled: false}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: etc}\nspec: {workspace: ws, type: LinuxFile, path: /etc, recursive: true}\n",
    )
    .unwrap();
    let cgroup = OneCpuCgroup::new();
    let threads_in = |inside: bool| {
        // The shell moves itself into the cgroup, then becomes the agent.
        let enter = if inside {
            format!("echo $$ > {}/cgroup.procs && ", cgroup.dir.display())
        } else {
            String::new()
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{enter}exec \"$@\""))
            .arg("sh")
            .arg(AGENT)
            .args(["init", "--log-format", "json", "--config"])
            .arg(&config)
            .arg("--host-root")
            .arg(dir.path().join("host"))
            .arg("--state-dir")
            .arg(dir.path().join(if inside { "state-in" } else { "state-out" }))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let line = stderr
            .lines()
            .find(|l| l.contains("scan threads started"))
            .unwrap_or_else(|| panic!("no thread count logged: {stderr}"));
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        line["fields"]["threads"].as_u64().unwrap()
    };
    assert_eq!(threads_in(true), 1, "a quota of one CPU");
    assert_eq!(threads_in(false) as usize, host_cpus, "no quota: every core");
}
