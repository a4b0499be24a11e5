//! Realtime detection through the real binary in standalone mode, on real temporary trees:
//! every change is seen between scans (the scan interval here is an hour), lost events and the
//! watch limit degrade to rescans without losing a change, and host writes under a read-only
//! bind mount are seen.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use common::{Mounted, assert_root};
use kubefim_crds::{ChangeCategory as C, ChangeSource, FileChangeSpec};

const WAIT: Duration = Duration::from_secs(10);

struct Agent {
    child: Child,
    changes: Receiver<FileChangeSpec>,
    logs: Receiver<String>,
    /// What the agent logged up to the end of its first scan.
    startup: Vec<String>,
    /// Changes received while waiting for another one.
    pending: std::cell::RefCell<Vec<FileChangeSpec>>,
}

const CONFIG: &str = "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: rt}\nspec: {recommended: {enabled: false}, scan: {interval: 1h}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: srv}\nspec: {workspace: rt, type: LinuxFile, path: /srv, recursive: true}\n";

/// The agent's configuration and state, outliving any one agent process.
fn work_dir() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("config.yaml"), CONFIG).unwrap();
    work
}

fn agent_command(verb: &str, host: &Path, work: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubefim-agent"));
    command
        .args(["--log-format", "json", verb, "--node-name", "rt-node", "--config"])
        .arg(work.join("config.yaml"))
        // Relative, as a user types it: what is matched against the mount table must not be.
        .current_dir(host.parent().unwrap())
        .arg("--host-root")
        .arg(host.file_name().unwrap())
        .arg("--state-dir")
        .arg(work.join("state"));
    command
}

impl Agent {
    /// Starts the agent on `host` (its root) watching /srv recursively, and waits for the first
    /// (silent) scan to finish.
    fn start(host: &Path, work: &Path, extra: &[&str]) -> Self {
        let mut child = agent_command("standalone", host, work)
            .args(["--metrics-addr", "none"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (change_tx, changes) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = change_tx.send(serde_json::from_str::<FileChangeSpec>(&line).unwrap());
            }
        });
        let (log_tx, logs) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
        let mut agent = Self {
            child,
            changes,
            logs,
            startup: Vec::new(),
            pending: Default::default(),
        };
        agent.startup = agent.wait_log("scan finished");
        agent
    }

    /// The log lines up to and including the first that contains `needle`.
    fn wait_log(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        loop {
            match self
                .logs
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let found = line.contains(needle);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(e) => panic!("no log line with {needle:?} ({e:?}) in {lines:#?}"),
            }
        }
    }

    /// Waits until a change at `path` of `category` arrives (or has arrived); returns it.
    fn expect(&self, path: &str, category: C) -> FileChangeSpec {
        let matches = |change: &FileChangeSpec| change.path == path && change.category == category;
        let found = {
            let mut pending = self.pending.borrow_mut();
            pending.iter().position(matches).map(|at| pending.remove(at))
        };
        let deadline = Instant::now() + WAIT;
        let change = match found {
            Some(change) => change,
            None => loop {
                match self
                    .changes
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    Ok(change) if matches(&change) => break change,
                    Ok(change) => self.pending.borrow_mut().push(change),
                    Err(e) => panic!(
                        "no {category:?} at {path} ({e:?}); saw {:#?}",
                        self.pending.borrow()
                    ),
                }
            },
        };
        assert_eq!(change.source, ChangeSource::Realtime, "{change:?}");
        change
    }

    /// Every change that arrives until none has come for `quiet`.
    fn drain(&self, quiet: Duration) -> Vec<FileChangeSpec> {
        let mut all = self.pending.take();
        loop {
            match self.changes.recv_timeout(quiet) {
                Ok(change) => all.push(change),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return all,
            }
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), signal).unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_with_tree() -> tempfile::TempDir {
    let host = tempfile::tempdir().unwrap();
    fs::create_dir_all(host.path().join("srv/sub")).unwrap();
    fs::write(host.path().join("srv/existing"), "v1").unwrap();
    fs::write(host.path().join("srv/sub/deep"), "v1").unwrap();
    host
}

#[test]
fn create_modify_chmod_rename_and_delete_are_seen_between_scans() {
    let host = host_with_tree();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    let srv = host.path().join("srv");

    fs::write(srv.join("created"), "new").unwrap();
    agent.expect("/srv/created", C::Added);

    fs::write(srv.join("sub/deep"), "v2, longer").unwrap();
    let modified = agent.expect("/srv/sub/deep", C::Modified);
    assert!(
        modified
            .changed_attributes
            .contains(&kubefim_crds::filechange::ChangedAttribute::Content)
    );

    fs::set_permissions(srv.join("existing"), fs::Permissions::from_mode(0o600)).unwrap();
    let chmod = agent.expect("/srv/existing", C::Modified);
    assert_eq!(chmod.current.unwrap().mode, "0600");

    fs::rename(srv.join("existing"), srv.join("renamed")).unwrap();
    agent.expect("/srv/existing", C::Removed);
    agent.expect("/srv/renamed", C::Added);

    fs::remove_file(srv.join("created")).unwrap();
    agent.expect("/srv/created", C::Removed);
}

#[test]
fn a_new_subdirectory_and_a_file_written_into_it_at_once_are_both_seen() {
    let host = host_with_tree();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    let fresh = host.path().join("srv/fresh/deeper");
    fs::create_dir_all(&fresh).unwrap();
    fs::write(fresh.join("payload"), "x").unwrap();
    agent.expect("/srv/fresh", C::Added);
    agent.expect("/srv/fresh/deeper", C::Added);
    agent.expect("/srv/fresh/deeper/payload", C::Added);
    // The new directory is watched from now on.
    fs::write(fresh.join("later"), "y").unwrap();
    agent.expect("/srv/fresh/deeper/later", C::Added);
}

#[test]
fn a_directory_moved_into_the_tree_is_scanned_and_one_removed_reports_its_contents() {
    let host = host_with_tree();
    fs::create_dir_all(host.path().join("outside/bundle")).unwrap();
    fs::write(host.path().join("outside/bundle/tool"), "t").unwrap();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    fs::rename(host.path().join("outside/bundle"), host.path().join("srv/bundle")).unwrap();
    agent.expect("/srv/bundle", C::Added);
    agent.expect("/srv/bundle/tool", C::Added);

    fs::remove_dir_all(host.path().join("srv/sub")).unwrap();
    agent.expect("/srv/sub/deep", C::Removed);
    agent.expect("/srv/sub", C::Removed);
}

#[test]
fn a_queue_overflow_is_recovered_with_no_missed_change() {
    let host = host_with_tree();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    let max_queued: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let count = max_queued + 500;
    // Freeze the agent so the kernel queue fills and overflows, for real.
    agent.signal(rustix::process::Signal::STOP);
    // Into a watched directory: each file raises several events, far more than the queue holds.
    let burst = host.path().join("srv");
    for i in 0..count {
        fs::write(burst.join(format!("burst{i}")), "x").unwrap();
    }
    agent.signal(rustix::process::Signal::CONT);
    agent.wait_log("overflowed");
    let changes = agent.drain(Duration::from_secs(3));
    let added: BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.category == C::Added && c.path.starts_with("/srv/burst"))
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(
        added.len(),
        count,
        "every file created while events were lost is reported"
    );
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.path.starts_with("/srv/burst"))
            .count(),
        count,
        "and only once"
    );
}

#[test]
fn the_watch_limit_degrades_to_scans_without_losing_changes() {
    let host = host_with_tree();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &["--max-watches", "1"]);
    assert!(
        agent.startup.iter().any(|l| l.contains("watch limit reached")),
        "{:#?}",
        agent.startup
    );
    // One watch: the anchor of /srv. Its subtree is left to the scans.
    fs::write(host.path().join("srv/sub/deep"), "changed while unwatched").unwrap();
    assert!(
        agent.drain(Duration::from_millis(800)).is_empty(),
        "realtime cannot see an unwatched directory"
    );
    drop(agent);
    // The next scan reports what realtime could not.
    let output = agent_command("check", host.path(), work.path())
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"path\":\"/srv/sub/deep\""));
}

#[test]
fn the_watch_limit_is_reported_in_metrics() {
    let host = host_with_tree();
    let work = work_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = agent_command("standalone", host.path(), work.path())
        .args([
            "--max-watches",
            "1",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        use std::io::{Read, Write};
        let text = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut stream| {
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut response = String::new();
                stream.read_to_string(&mut response).ok()?;
                Some(response)
            });
        if let Some(text) = text.filter(|t| t.contains("kubefim_last_scan_timestamp_seconds")) {
            break text;
        }
        assert!(Instant::now() < deadline, "metrics never served");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kubefim_realtime_degraded") && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kubefim_realtime_watches") && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[test]
fn host_writes_under_a_read_only_bind_mount_are_seen() {
    assert_root("bind-mount");
    let host = host_with_tree();
    let view = tempfile::tempdir().unwrap();
    let mount = |args: &[&str]| {
        assert!(
            Command::new("mount").args(args).status().unwrap().success(),
            "mount {args:?}"
        )
    };
    let view_path = view.path().to_str().unwrap();
    mount(&["--bind", host.path().to_str().unwrap(), view_path]);
    mount(&["-o", "remount,bind,ro", view_path]);
    let work = work_dir();
    let agent = Agent::start(view.path(), work.path(), &[]);
    assert!(
        fs::write(view.path().join("srv/try"), "x").is_err(),
        "the agent's view is read-only"
    );
    // The host writes through its own path; the agent watches the read-only view.
    fs::write(host.path().join("srv/from-host"), "x").unwrap();
    agent.expect("/srv/from-host", C::Added);
    drop(agent);
    let _ = Command::new("umount").arg(view_path).status();
}

#[test]
fn a_bind_mount_over_a_watched_directory_and_a_write_under_it_are_seen_then_its_unmount() {
    assert_root("bind-mount");
    let host = host_with_tree();
    let cover = tempfile::tempdir().unwrap();
    fs::write(cover.path().join("planted"), "evil").unwrap();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    let sub = host.path().join("srv/sub");
    let mount = Mounted::new(&["--bind", cover.path().to_str().unwrap()], &sub);

    // inotify sees no mount: the mount table does, and the rescan re-arms the watches.
    let point = agent.expect("/srv/sub", C::Modified);
    assert!(
        point
            .changed_attributes
            .contains(&kubefim_crds::filechange::ChangedAttribute::Mount)
    );
    assert_eq!(point.source, ChangeSource::Realtime);
    agent.expect("/srv/sub/planted", C::Added);
    fs::write(sub.join("written-later"), "x").unwrap();
    agent.expect("/srv/sub/written-later", C::Added);
    assert!(
        agent
            .drain(Duration::from_millis(300))
            .iter()
            .all(|c| c.path != "/srv/sub/deep"),
        "the covered file is hidden, not removed"
    );

    mount.unmount();
    agent.expect("/srv/sub/planted", C::Removed);
    let back = agent.expect("/srv/sub", C::Modified);
    assert!(
        back.changed_attributes
            .contains(&kubefim_crds::filechange::ChangedAttribute::Mount)
    );
    // The watches follow the uncovered directory again.
    fs::write(sub.join("deep"), "v2").unwrap();
    agent.expect("/srv/sub/deep", C::Modified);
}

#[test]
fn a_drop_in_written_for_a_unit_is_seen_between_scans() {
    let host = tempfile::tempdir().unwrap();
    let lib = host.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&lib).unwrap();
    fs::write(lib.join("ssh.service"), "[Service]\nExecStart=/usr/sbin/sshd\n").unwrap();
    fs::write(lib.join("cron.service"), "[Service]\nExecStart=/usr/sbin/cron\n").unwrap();
    let etc = host.path().join("etc/systemd/system");
    fs::create_dir_all(etc.join("ssh.service.d")).unwrap();
    let work = work_dir();
    fs::write(
        work.path().join("config.yaml"),
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: rt}\nspec: {recommended: {enabled: false}, scan: {interval: 1h}}\n---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: units}\nspec: {workspace: rt, type: LinuxService, path: '*'}\n",
    )
    .unwrap();
    let agent = Agent::start(host.path(), work.path(), &[]);
    let drop_ins = kubefim_crds::filechange::ChangedAttribute::DropIns;

    // Into a drop-in directory that existed at start.
    fs::write(
        etc.join("ssh.service.d/override.conf"),
        "[Service]\nExecStart=\nExecStart=/tmp/x\n",
    )
    .unwrap();
    let ssh = agent.expect("ssh.service", C::Modified);
    assert_eq!(ssh.changed_attributes, [drop_ins]);
    assert_eq!(
        ssh.changed_drop_ins,
        ["/etc/systemd/system/ssh.service.d/override.conf"]
    );

    // Into one created after: the directory is watched when its creation is seen.
    fs::create_dir_all(etc.join("cron.service.d")).unwrap();
    fs::write(
        etc.join("cron.service.d/env.conf"),
        "[Service]\nEnvironment=LD_PRELOAD=/tmp/x.so\n",
    )
    .unwrap();
    let cron = agent.expect("cron.service", C::Modified);
    assert_eq!(cron.changed_attributes, [drop_ins]);
    fs::write(
        etc.join("cron.service.d/env.conf"),
        "[Service]\nEnvironment=LD_PRELOAD=/tmp/y.so\n",
    )
    .unwrap();
    agent.expect("cron.service", C::Modified);
}

/// Capabilities, xattrs, ACLs and SELinux labels raise IN_ATTRIB and are seen at once. An inode
/// flag set alone (`chattr`, FS_IOC_SETFLAGS) raises no inotify event (kernel 6.18 here): the
/// next scan reports it, which the one-shot check here stands for.
#[test]
fn attribute_changes_are_seen_between_scans_by_their_kind_and_inode_flags_by_the_next_scan() {
    use common::attributes::{apply, judge, mutations, prepare};
    use kubefim_crds::filechange::ChangedAttribute as A;
    assert_root("set capabilities, security.* xattrs and inode flags");
    let host = host_with_tree();
    let srv = host.path().join("srv");
    let _unlock = prepare(&srv.join("attrs"));
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    apply(&srv.join("attrs"));
    let (flags, others): (Vec<_>, Vec<_>) = mutations().into_iter().partition(|m| m.changed == A::Flags);
    let mut wrong = Vec::new();
    for mutation in &others {
        let change = agent.expect(&format!("/srv/attrs/{}", mutation.file), C::Modified);
        if let Err(e) = judge(mutation, &change.changed_attributes, change.current.as_ref()) {
            wrong.push(e);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let unseen = agent.drain(Duration::from_millis(800));
    assert!(unseen.is_empty(), "chattr raised an event after all: {unseen:#?}");
    drop(agent);

    let output = agent_command("check", host.path(), work.path())
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let changes: Vec<FileChangeSpec> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(changes.len(), flags.len(), "{changes:#?}");
    for mutation in &flags {
        let change = changes
            .iter()
            .find(|c| c.path == format!("/srv/attrs/{}", mutation.file))
            .unwrap_or_else(|| panic!("{} not reported: {changes:#?}", mutation.file));
        judge(mutation, &change.changed_attributes, change.current.as_ref()).unwrap();
    }
}

/// A work directory whose workspace names the actors of its changes.
fn work_dir_with_actors() -> tempfile::TempDir {
    let work = work_dir();
    let config = CONFIG.replace("scan: {interval: 1h}", "scan: {interval: 1h, actors: On}");
    assert_ne!(config, CONFIG);
    fs::write(work.path().join("config.yaml"), config).unwrap();
    work
}

/// Runs `script` with sh (as `prefix` says, such as setpriv), waits for it, returns its pid.
fn shell(prefix: &[&str], script: &str) -> u32 {
    let (program, args) = match prefix.split_first() {
        Some((program, args)) => (*program, args.to_vec()),
        None => ("sh", vec![]),
    };
    let mut command = Command::new(program);
    command.args(args);
    if !prefix.is_empty() {
        command.arg("sh");
    }
    let mut child = command.args(["-c", script]).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{script}");
    pid
}

#[test]
fn with_actors_on_a_shells_write_names_its_pid_executable_command_line_and_user() {
    assert_root("use fanotify");
    let host = host_with_tree();
    // Names come from the host root's passwd, not the agent's.
    fs::create_dir_all(host.path().join("etc")).unwrap();
    let work = work_dir_with_actors();
    let agent = Agent::start(host.path(), work.path(), &[]);
    assert!(
        agent
            .startup
            .iter()
            .any(|l| l.contains("actors of realtime changes") && l.contains("Active")),
        "{:#?}",
        agent.startup
    );
    let file = host.path().join("srv/existing");
    let sh = fs::canonicalize("/bin/sh").unwrap();
    fs::write(
        host.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nhostnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();

    // A shell that stays a moment after its write, as an interactive one does.
    // (`; true` keeps sleep from being exec'd in the shell's place.)
    let script = format!("echo x >> {}; sleep 1; true", file.display());
    let pid = shell(&[], &script);
    let actor = agent
        .expect("/srv/existing", C::Modified)
        .actor
        .expect("an actor");
    assert_eq!(actor.pid, pid);
    assert_eq!(actor.executable.as_deref(), sh.to_str());
    assert_eq!(actor.command_line, Some(format!("sh -c {script}")));
    assert_eq!(
        (actor.uid, actor.user.as_deref(), actor.name.as_deref()),
        (Some(0), Some("root"), Some("sh"))
    );
    assert_eq!(actor.parent_pid, Some(std::process::id()), "the test started it");
    assert_eq!(
        actor.parent_executable,
        std::env::current_exe().ok().map(|p| p.display().to_string())
    );
    assert!(!actor.exited);

    // Another user's write (nobody, through setpriv).
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    agent.expect("/srv/existing", C::Modified);
    let pid = shell(
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
        &format!("echo y >> {}; sleep 1; true", file.display()),
    );
    let actor = agent
        .expect("/srv/existing", C::Modified)
        .actor
        .expect("an actor");
    assert_eq!((actor.pid, actor.uid, actor.gid), (pid, Some(65534), Some(65534)));
    assert_eq!(actor.user.as_deref(), Some("hostnobody"));

    // A shell that becomes another program right after its write: what it ran then is not
    // known, and is not guessed from what it runs now.
    let pid = shell(&[], &format!("echo w >> {}; exec sleep 1", file.display()));
    let actor = agent
        .expect("/srv/existing", C::Modified)
        .actor
        .expect("an actor");
    assert_eq!((actor.pid, actor.uid), (pid, Some(0)));
    assert!(actor.exec_after_change, "{actor:#?}");
    assert_eq!(
        (actor.executable, actor.name, actor.command_line),
        (None, None, None)
    );

    // A shell gone the moment it wrote, and reaped at once: its pid, and that it had exited
    // before it could be read, unless the agent won the race (then all of it).
    let pid = shell(&[], &format!("echo z >> {}", file.display()));
    let actor = agent
        .expect("/srv/existing", C::Modified)
        .actor
        .expect("an actor");
    assert_eq!(actor.pid, pid);
    assert!(
        (actor.executable.as_deref() == sh.to_str() && actor.uid == Some(0)) || actor.exited,
        "{actor:#?}"
    );
}

/// A cgroup made as the kubelet names a pod's container's; removed when dropped.
struct PodCgroup(std::path::PathBuf);

impl PodCgroup {
    fn new(relative: &str) -> Self {
        // cgroup v1's pids hierarchy where there is one (this machine), else the unified one.
        let base = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists())
            .expect("a cgroup hierarchy");
        let path = base.join(relative.trim_start_matches('/'));
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        let mut dir = self.0.as_path();
        while fs::remove_dir(dir).is_ok() {
            match dir.parent() {
                Some(parent) if !parent.ends_with("pids") && parent != Path::new("/sys/fs/cgroup") => {
                    dir = parent
                }
                _ => break,
            }
        }
    }
}

#[test]
fn a_write_from_a_pod_containers_cgroup_names_the_container_and_the_pod() {
    assert_root("make cgroups and use fanotify");
    let host = host_with_tree();
    let work = work_dir_with_actors();
    let agent = Agent::start(host.path(), work.path(), &[]);
    let file = host.path().join("srv/existing");
    let id = "f00dfeedc0ffee0123456789abcdef0123456789abcdef0123456789abcdef01";
    let uid = "0b7e3c1a-5d2f-4e6a-9c8b-7a6f5e4d3c2b";
    // Under a cgroup root of the test's own: on a machine that is also a node, the kubelet
    // removes pod cgroups under its /kubepods that belong to no pod it runs (seen on the real
    // node: the shell's move into the cgroup failed).
    let root = format!("kubefim-test-{}", std::process::id());
    for (driver, relative, runtime) in [
        (
            "cgroupfs",
            format!("{root}/kubepods/besteffort/pod{uid}/{id}"),
            None,
        ),
        (
            "systemd",
            format!(
                "{root}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
                uid.replace('-', "_")
            ),
            Some("containerd"),
        ),
    ] {
        let cgroup = PodCgroup::new(&relative);
        let pid = shell(
            &[],
            &format!(
                "echo $$ > {}/cgroup.procs && echo {driver} >> {} && sleep 1",
                cgroup.0.display(),
                file.display()
            ),
        );
        let actor = agent
            .expect("/srv/existing", C::Modified)
            .actor
            .expect("an actor");
        assert_eq!(actor.pid, pid, "{driver}");
        let container = actor.container.expect(driver);
        assert_eq!(
            (container.id.as_str(), container.runtime.as_deref()),
            (id, runtime),
            "{driver}"
        );
        let pod = actor.pod.expect(driver);
        assert_eq!(pod.uid, uid, "{driver}");
        assert_eq!(
            (pod.namespace, pod.name),
            (None, None),
            "standalone asks no API server"
        );
        assert_eq!(
            actor.cgroup.as_deref(),
            Some(format!("/{relative}").as_str()),
            "{driver}"
        );
    }
}

#[test]
fn a_fanotify_overflow_is_said_and_the_change_is_still_reported_without_an_actor() {
    assert_root("use fanotify");
    let host = host_with_tree();
    let work = work_dir_with_actors();
    let agent = Agent::start(host.path(), work.path(), &[]);
    // Unwatched, on the same filesystem: fanotify sees these, inotify does not.
    let scratch = host.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    agent.signal(rustix::process::Signal::STOP);
    for n in 0..20_000 {
        fs::File::create(scratch.join(format!("f{n}"))).unwrap();
    }
    fs::write(host.path().join("srv/existing"), "written while events were lost").unwrap();
    agent.signal(rustix::process::Signal::CONT);
    let change = agent.expect("/srv/existing", C::Modified);
    assert_eq!(change.actor, None, "{change:#?}");
    agent.wait_log("fanotify event queue overflowed");
    // What comes after the gap is named again.
    let pid = shell(
        &[],
        &format!(
            "echo after >> {}; sleep 1",
            host.path().join("srv/existing").display()
        ),
    );
    let actor = agent
        .expect("/srv/existing", C::Modified)
        .actor
        .expect("an actor after the gap");
    assert_eq!(actor.pid, pid);
}

#[test]
fn with_actors_off_changes_carry_none_and_the_log_says_nothing_of_them() {
    assert_root("use fanotify, were it on");
    let host = host_with_tree();
    let work = work_dir();
    let agent = Agent::start(host.path(), work.path(), &[]);
    shell(
        &[],
        &format!(
            "echo x >> {}; sleep 1",
            host.path().join("srv/existing").display()
        ),
    );
    let change = agent.expect("/srv/existing", C::Modified);
    assert_eq!(change.actor, None);
    assert!(
        !agent.startup.iter().any(|l| l.contains("actors")),
        "{:#?}",
        agent.startup
    );
}
