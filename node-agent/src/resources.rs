//! How much of the node the agent takes. A FIM agent shares every node with the workloads it
//! watches, so it is a good neighbour by default:
//! - its hashing threads, and its walking threads, each number the container's CPU quota
//!   (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), not the host's core count; walkers mostly
//!   wait on the kernel, and the quota itself caps the CPU time of both together;
//! - they run at the lowest CPU priority (nice 19) and in the idle I/O class, so a busy node
//!   gives the scan only what is left over (`--scan-priority normal` turns this off);
//! - a workspace's `scan.maxReadRate` caps the bytes per second its scans read, so a daily
//!   re-hash of a large `/usr` can be spread out ([`Throttle`]).
//!
//! Everything here is best effort: a node that refuses a priority change is logged, and the
//! scan goes on.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::lock;

/// The CPUs a quota of `quota` microseconds every `period` allows (at least 1); None for no
/// quota (`max`). Reads cgroup v2's `cpu.max` text (`"200000 100000"`, `"max 100000"`).
pub fn cpus_from_cpu_max(cpu_max: &str) -> Option<usize> {
    let mut parts = cpu_max.split_whitespace();
    let (quota, period) = (parts.next()?, parts.next().unwrap_or("100000"));
    let quota: u64 = quota.parse().ok()?;
    let period: u64 = period.parse().ok().filter(|p| *p > 0)?;
    Some(
        usize::try_from(quota.div_ceil(period))
            .unwrap_or(usize::MAX)
            .max(1),
    )
}

/// The CPUs cgroup v1's quota allows (`cpu.cfs_quota_us`, -1 for none, and `cpu.cfs_period_us`).
pub fn cpus_from_cfs(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok().filter(|q| *q > 0)?;
    let period: i64 = period.trim().parse().ok().filter(|p| *p > 0)?;
    Some(
        usize::try_from(quota.div_euclid(period) + i64::from(quota % period != 0))
            .unwrap_or(1)
            .max(1),
    )
}

/// The cgroup directories whose CPU quota bounds this process, from /proc/self/cgroup: its
/// own cgroup and every ancestor, for cgroup v2 (`0::/path`, at /sys/fs/cgroup or, on hybrid
/// hosts, /sys/fs/cgroup/unified) and for v1's cpu controller (`N:cpu,cpuacct:/path`).
fn quota_dirs(proc_self_cgroup: &str) -> Vec<(bool, std::path::PathBuf)> {
    let mut dirs = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (
            fields.next(),
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
        );
        let mut ancestors: Vec<&str> = vec![path];
        let mut current = path;
        while let Some((parent, _)) = current.rsplit_once('/') {
            ancestors.push(if parent.is_empty() { "/" } else { parent });
            current = parent;
        }
        if controllers.is_empty() {
            for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                dirs.extend(ancestors.iter().map(|a| (true, format!("{base}{a}").into())));
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for base in ["/sys/fs/cgroup/cpu", &format!("/sys/fs/cgroup/{controllers}")] {
                dirs.extend(ancestors.iter().map(|a| (false, format!("{base}{a}").into())));
            }
        }
    }
    dirs
}

/// Threads that walk an entity's subtrees ahead of its merge-join: the CPU budget, or none
/// (walk on the scan's own thread) with a single CPU.
pub fn walk_threads() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let budget = *BUDGET.get_or_init(cpu_budget);
    if budget >= 2 { budget } else { 0 }
}

/// The CPUs this process may use: the host's (or the affinity mask's) count, capped by the
/// tightest CPU quota of its cgroup and their ancestors.
pub fn cpu_budget() -> usize {
    let host = std::thread::available_parallelism().map_or(1, usize::from);
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).ok();
    let quota = quota_dirs(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default())
        .into_iter()
        .filter_map(|(v2, dir)| {
            if v2 {
                cpus_from_cpu_max(&read(dir.join("cpu.max"))?)
            } else {
                cpus_from_cfs(
                    &read(dir.join("cpu.cfs_quota_us"))?,
                    &read(dir.join("cpu.cfs_period_us"))?,
                )
            }
        })
        .min();
    quota.map_or(host, |cpus| cpus.min(host)).max(1)
}

/// How scan threads are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ScanPriority {
    /// Nice 19 and the idle I/O class: the scan gets what the node leaves over.
    #[default]
    Low,
    /// The process's own priority.
    Normal,
}

/// IOPRIO_WHO_PROCESS: with a thread id, one thread.
const IOPRIO_WHO_PROCESS: usize = 1;
/// IOPRIO_CLASS_IDLE in the class bits: I/O only when the device is otherwise idle.
const IOPRIO_IDLE: usize = 3 << 13;

/// Unsafe code (with [`tune_allocator`] and [`release_freed_memory`]): rustix has no
/// wrapper for ioprio_set(2). The call takes three integers and no pointer, so it cannot violate
/// memory safety whatever it returns.
#[allow(unsafe_code)]
fn set_idle_io_class(thread: i32) -> std::io::Result<()> {
    let tid = usize::try_from(thread).unwrap_or(0);
    // SAFETY: a raw syscall with integer arguments only; nothing is read or written through a
    // pointer, and the result is checked.
    let result = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_IDLE) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lowers the calling thread's CPU priority to nice 19 and its I/O class to idle.
pub fn lower_this_thread() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), 19) {
        tracing::debug!(error = %e, "cannot lower a scan thread's CPU priority");
    }
    if let Err(e) = set_idle_io_class(thread.as_raw_nonzero().get()) {
        tracing::debug!(error = %e, "cannot put a scan thread in the idle I/O class");
    }
}

static PRIORITY: std::sync::OnceLock<ScanPriority> = std::sync::OnceLock::new();

/// The priority scan threads run at (set once by [`init_scan_pool`]; low until then).
pub fn scan_priority() -> ScanPriority {
    PRIORITY.get().copied().unwrap_or_default()
}

/// Called first on every thread that scans: lowers it when the scan priority is low.
pub fn scan_thread_started() {
    if scan_priority() == ScanPriority::Low {
        lower_this_thread();
    }
}

/// Large buffers (the 4 MiB read buffers of large files) are mapped and unmapped rather than
/// kept in an arena: glibc raises its mmap threshold after the first such free, and from then
/// on each hashing thread would keep 8 MiB of freed buffers for good.
const MMAP_THRESHOLD: i32 = 256 << 10;

/// Tunes glibc's allocator for an agent that is idle most of the time (see [`MMAP_THRESHOLD`]).
/// Called once, first thing. With [`release_freed_memory`] the other unsafe code of the
/// project: mallopt(3) takes two integers and no pointer.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    // SAFETY: an FFI call with integer arguments, made before any other thread exists.
    let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    if accepted == 0 {
        tracing::debug!("glibc refused the mmap threshold; freed large buffers stay in arenas");
    }
}

/// Gives the memory a scan freed back to the system. glibc keeps freed memory in each thread's
/// arena; after a scan of a large tree that is tens of MiB an idle agent would hold for
/// nothing. malloc_trim(3) takes an integer and no pointer, and only releases memory no
/// allocation uses.
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    // SAFETY: an FFI call with an integer argument; glibc synchronises it with every arena.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `work` on a new thread that scans at the scan priority, for async callers: the
/// runtime's own threads keep their priority. Fails when the thread cannot start or panics.
pub async fn on_scan_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kubefim-scan".to_string())
        .spawn(move || {
            scan_thread_started();
            let result = work();
            release_freed_memory();
            let _ = sender.send(result);
        })
        .map_err(|e| format!("cannot start a scan thread: {e}"))?;
    receiver.await.map_err(|_| "the scan thread panicked".to_string())
}

/// Sets up the scan thread pool (hashing, and the stat of large directories): as many threads
/// as the CPU budget allows, at `priority`. Returns the thread count. Called once, before the
/// first scan; a second call keeps the first pool.
pub fn init_scan_pool(priority: ScanPriority) -> usize {
    let _ = PRIORITY.set(priority);
    let threads = cpu_budget();
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("kubefim-scan-{i}"))
        .start_handler(|_| scan_thread_started())
        .build_global();
    match built {
        Ok(()) => tracing::info!(threads, ?priority, "scan threads started"),
        Err(_) => tracing::debug!("the scan thread pool was already set up"),
    }
    rayon::current_num_threads()
}

/// Caps the bytes per second a scan reads, shared by every thread that reads for it: each read
/// waits until the budget allows it (a token bucket holding at most one second of reads).
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Throttle {
    /// None for an unlimited rate (0).
    pub fn per_second(bytes: u64) -> Option<Self> {
        (bytes > 0).then(|| Self {
            rate: bytes as f64,
            state: Mutex::new((bytes as f64, Instant::now())),
        })
    }

    /// Waits until `bytes` may be read.
    pub fn take(&self, bytes: usize) {
        let wait = {
            let mut state = lock(&self.state);
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.rate);
            *last = now;
            *tokens -= bytes as f64;
            // A negative balance is paid for by waiting; later readers queue behind it.
            (*tokens < 0.0).then(|| Duration::from_secs_f64(-*tokens / self.rate))
        };
        if let Some(wait) = wait {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_gives_whole_cpus_rounded_up() {
        assert_eq!(cpus_from_cpu_max("max 100000\n"), None);
        assert_eq!(cpus_from_cpu_max("100000 100000\n"), Some(1));
        assert_eq!(cpus_from_cpu_max("150000 100000"), Some(2));
        assert_eq!(
            cpus_from_cpu_max("50000 100000"),
            Some(1),
            "half a CPU is still one thread"
        );
        assert_eq!(cpus_from_cpu_max("400000 100000"), Some(4));
        assert_eq!(cpus_from_cfs("-1", "100000"), None);
        assert_eq!(cpus_from_cfs("250000\n", "100000\n"), Some(3));
    }

    #[test]
    fn the_quota_files_are_those_of_the_own_cgroup_and_its_ancestors() {
        let dirs = quota_dirs("4:memory:/x\n1:cpu,cpuacct:/kubepods/pod1\n0::/kubepods/pod1/c\n");
        let names: Vec<String> = dirs.iter().map(|(_, d)| d.display().to_string()).collect();
        for expected in [
            "/sys/fs/cgroup/cpu/kubepods/pod1",
            "/sys/fs/cgroup/cpu/kubepods",
            "/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1",
            "/sys/fs/cgroup/kubepods/pod1/c",
            "/sys/fs/cgroup/kubepods",
            "/sys/fs/cgroup/unified/kubepods/pod1/c",
        ] {
            assert!(names.contains(&expected.to_string()), "{expected} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("memory")));
    }

    #[test]
    fn the_throttle_holds_reads_to_its_rate_after_one_second_of_burst() {
        let throttle = Throttle::per_second(64 << 10).unwrap();
        let started = Instant::now();
        throttle.take(64 << 10);
        // The first second's worth passes at once; the next half second's worth waits for it.
        throttle.take(32 << 10);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(450), "waited only {waited:?}");
        assert!(Throttle::per_second(0).is_none(), "0 is no limit");
    }

    #[test]
    fn the_budget_is_at_least_one_and_at_most_the_host() {
        let budget = cpu_budget();
        assert!(budget >= 1);
        assert!(budget <= std::thread::available_parallelism().map_or(1, usize::from));
    }
}
