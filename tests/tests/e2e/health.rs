//! The agent's liveness through a long scan (issue 27): `/healthz` and `/metrics` polled every
//! 0.2 s while the in-cluster agent, confined to a real cgroup of one CPU (the chart's limit),
//! runs its first full scan of 1,000,000 files and then a full re-hash, with realtime changes
//! flowing to the API server the whole time; and the heartbeats it writes meanwhile, read back
//! from its FimNodeStatus. A benchmark, ignored by default: `scripts/bench.sh health` runs it
//! (release binaries, as root for the cgroup) and prints the figures.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use kubefim_e2e::{free_port, scenario::*};

const FILES: usize = 1_000_000;
const PER_DIR: usize = 1_000;
const HEARTBEAT_SECONDS: u64 = 10;

/// Writes the tree: FILES files of 64 bytes, PER_DIR to a directory.
fn generate(root: &Path) {
    let dirs = FILES / PER_DIR;
    std::thread::scope(|threads| {
        for part in 0..2 {
            threads.spawn(move || {
                for d in (part..dirs).step_by(2) {
                    let dir = root.join(format!("d{d:04}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    for f in 0..PER_DIR {
                        std::fs::write(
                            dir.join(format!("f{f:04}")),
                            format!("{d:04}/{f:04} {:<54}\n", ""),
                        )
                        .unwrap();
                    }
                }
            });
        }
    });
}

/// A cgroup of the cpu controller limited to one CPU (cgroup v1 `cpu.cfs_quota_us`, or v2
/// `cpu.max`), removed on drop.
struct OneCpu(PathBuf);

impl OneCpu {
    fn new() -> Self {
        assert!(
            rustix::process::geteuid().is_root(),
            "the health benchmark makes a cgroup: run it as root"
        );
        let name = format!("kubefim-health-{}", std::process::id());
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let dir = if v2 {
            Path::new("/sys/fs/cgroup").join(name)
        } else {
            Path::new("/sys/fs/cgroup/cpu").join(name)
        };
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", dir.display()));
        if v2 {
            std::fs::write(dir.join("cpu.max"), "100000 100000").unwrap();
        } else {
            std::fs::write(dir.join("cpu.cfs_period_us"), "100000").unwrap();
            std::fs::write(dir.join("cpu.cfs_quota_us"), "100000").unwrap();
        }
        Self(dir)
    }

    /// A command prefix that moves itself into the cgroup, then runs its arguments.
    fn prefix(&self) -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            format!("echo $$ > {}/cgroup.procs && exec \"$@\"", self.0.display()),
            "sh".into(),
        ]
    }
}

impl Drop for OneCpu {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Milliseconds one GET of `path` took, or None when it failed or took over 5 s.
fn get(port: u16, path: &str) -> Option<f64> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).ok()?;
    body.starts_with(b"HTTP/1.")
        .then(|| start.elapsed().as_secs_f64() * 1000.0)
}

fn quantiles(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((q * samples.len() as f64) as usize).min(samples.len() - 1)];
    (pick(0.50), pick(0.99), samples[samples.len() - 1])
}

#[tokio::test]
#[ignore = "a benchmark: scripts/bench.sh health runs it"]
async fn healthz_metrics_and_heartbeat_stay_on_time_through_a_full_scan_of_a_million_files_on_one_cpu() {
    let mut env = kubefim_e2e::Env::new("health").await;
    let node = env.create_node("node").await;
    env.start_operator(&[]);
    apply_ok(
        &env,
        &workspace_yaml(&env, "ws", "  scan: {interval: 1m, rehashEvery: 1m}\n"),
    );
    apply_ok(&env, &entity_yaml("tree", "ws", "LinuxFile", "/tree", true));
    apply_ok(&env, &entity_yaml("app", "ws", "LinuxFile", "/srv/app", true));
    env.host_root(&node);
    let tree = host_path(&env, &node, "/tree");
    let app = host_path(&env, &node, "/srv/app");
    std::fs::create_dir_all(&app).unwrap();
    let started = Instant::now();
    tokio::task::spawn_blocking({
        let tree = tree.clone();
        move || generate(&tree)
    })
    .await
    .unwrap();
    eprintln!(
        "health: {FILES} files written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    kubefim_e2e::eventually(SLOW, "the node's configuration", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces.iter().any(|w| w.entities.len() == 2))
    })
    .await;

    let cgroup = OneCpu::new();
    let port = free_port();
    let metrics_addr = format!("--metrics-addr=127.0.0.1:{port}");
    let heartbeat = format!("--heartbeat-seconds={HEARTBEAT_SECONDS}");
    let prefix = cgroup.prefix();
    let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
    let agent = env.start_agent_under(
        &node,
        None,
        &[&metrics_addr, &heartbeat, "--reports-per-second=50"],
        &prefix,
    );

    // Pollers: the probes every 0.2 s, the heartbeat every second, a writer at 5 per second.
    let done = Arc::new(AtomicBool::new(false));
    let probes = std::thread::spawn({
        let done = done.clone();
        move || {
            let (mut healthz, mut metrics, mut failed) = (Vec::new(), Vec::new(), 0u32);
            while !done.load(Ordering::Acquire) {
                let tick = Instant::now();
                match (get(port, "/healthz"), get(port, "/metrics")) {
                    (Some(h), Some(m)) => {
                        healthz.push(h);
                        metrics.push(m);
                    }
                    _ if healthz.is_empty() => {} // not listening yet
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(200).saturating_sub(tick.elapsed()));
            }
            (healthz, metrics, failed)
        }
    });
    let writer = std::thread::spawn({
        let done = done.clone();
        let app = app.clone();
        move || {
            let mut written = 0u32;
            while !done.load(Ordering::Acquire) {
                std::fs::write(
                    app.join(format!("w{}", written % 100)),
                    format!("write {written}\n"),
                )
                .unwrap();
                written += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            written
        }
    });
    let mut heartbeats: Vec<jiff::Timestamp> = Vec::new();
    let mut scans = 0.0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut first_scan_said = false;
    let mut last_answer = Instant::now();
    while scans < 2.0 {
        assert!(
            Instant::now() < deadline,
            "two full scans did not finish in 30 minutes"
        );
        assert!(
            last_answer.elapsed() < Duration::from_secs(60),
            "the agent has not answered on its metrics port for 60 s; its log: {}",
            env.agent_log(&node)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(status) = node_status(&env, "ws", &node).await.and_then(|s| s.status)
            && let Some(at) = status.last_heartbeat_time
            && heartbeats.last() != Some(&at.0)
        {
            heartbeats.push(at.0);
        }
        if let Some(text) = scrape(port).await {
            last_answer = Instant::now();
            scans =
                metric_value(&text, "kubefim_scan_duration_seconds_count", "workspace=\"ws\"").unwrap_or(0.0);
            if scans >= 1.0 && !first_scan_said {
                first_scan_said = true;
                eprintln!("health: first full scan done");
            }
        }
    }
    done.store(true, Ordering::Release);
    // Out of the cgroup before it is removed (a cgroup with a process in it cannot be).
    env.stop(agent);
    let (mut healthz, mut metrics, failed) = probes.join().unwrap();
    let written = writer.join().unwrap();
    let reported = changes(&env, &node).await.len();
    let gaps: Vec<f64> = heartbeats
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .collect();
    let worst_gap = gaps.iter().copied().fold(0.0, f64::max);
    let (h50, h99, hmax) = quantiles(&mut healthz);
    let (m50, m99, mmax) = quantiles(&mut metrics);
    println!(
        "\n| during a full scan and a full re-hash of {FILES} files, 1 CPU (cgroup), {written} realtime writes, {reported} FileChanges reported | p50 (ms) | p99 (ms) | max (ms) | goal |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| GET /healthz ({} polls) | {h50:.1} | {h99:.1} | {hmax:.1} | max < 1000 ms |",
        healthz.len()
    );
    println!(
        "| GET /metrics ({} polls) | {m50:.1} | {m99:.1} | {mmax:.1} | max < 1000 ms |",
        metrics.len()
    );
    println!(
        "| FimNodeStatus heartbeat, `--heartbeat-seconds {HEARTBEAT_SECONDS}` ({} updates seen) | | | largest gap {worst_gap:.1} s | ≤ {} s |",
        heartbeats.len(),
        HEARTBEAT_SECONDS + 2
    );
    assert_eq!(failed, 0, "{failed} probe polls failed or took over 5 s");
    assert!(
        hmax < 1000.0 && mmax < 1000.0,
        "healthz max {hmax:.1} ms, metrics max {mmax:.1} ms"
    );
    assert!(heartbeats.len() >= 3, "heartbeats seen: {heartbeats:?}");
    assert!(
        worst_gap <= (HEARTBEAT_SECONDS + 2) as f64,
        "heartbeat gaps {gaps:?}"
    );
    assert!(
        reported > 0,
        "no FileChange reached the API server while the scans ran"
    );
}
