//! What /proc says of a process, read the moment its event arrives: each part on its own, so a
//! part the agent may not read (another process's `exe` needs CAP_SYS_PTRACE) is absent rather
//! than failing the rest, and a process already gone is said as such. Every read is bounded.

use std::{
    collections::HashMap,
    io::Read,
    path::Path,
    time::{Duration, Instant},
};

use kubefim_crds::filechange::Actor;

use super::cgroup;

/// A command line is cut here (ending in `…`).
pub const COMMAND_LINE_MAX: usize = 1024;
/// /proc/PID/status and /proc/PID/cgroup are read up to this much.
const SMALL_FILE_MAX: u64 = 64 << 10;
/// The host's passwd file is read up to this much.
const PASSWD_MAX: u64 = 4 << 20;
/// "Unset" for loginuid and sessionid.
const UNSET: u32 = u32::MAX;

fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn gone(error: &std::io::Error) -> bool {
    // ESRCH: the process exited between the open and the read.
    error.kind() == std::io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// The process `pid` as /proc under `proc` shows it now.
pub fn read(proc: &Path, pid: u32, users: &mut Users) -> Actor {
    let dir = proc.join(pid.to_string());
    let mut actor = Actor {
        pid,
        ..Actor::default()
    };
    // The parts a process loses first when it exits (its memory: executable, command line)
    // are read first; most writers are gone a moment after their write.
    actor.executable = executable(&dir);
    actor.command_line = read_bounded(&dir.join("cmdline"), COMMAND_LINE_MAX as u64 + 1)
        .ok()
        .filter(|bytes| !bytes.is_empty())
        .map(|bytes| command_line(&bytes));
    actor.name = std::fs::read_to_string(dir.join("comm"))
        .ok()
        .map(|name| name.trim_end_matches('\n').to_string())
        .filter(|name| !name.is_empty());
    let status = match read_bounded(&dir.join("status"), SMALL_FILE_MAX) {
        Ok(status) => String::from_utf8_lossy(&status).into_owned(),
        Err(e) if gone(&e) => {
            actor.exited = true;
            return actor;
        }
        Err(_) => String::new(),
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u32>().ok())
    };
    actor.uid = field("Uid:");
    actor.gid = field("Gid:");
    actor.parent_pid = field("PPid:").filter(|ppid| *ppid != 0);
    // A zombie (exited, not yet reaped) keeps its ids and parent, not its executable.
    let zombie = status
        .lines()
        .any(|line| line.starts_with("State:") && line.contains('Z'));
    let number = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|value| *value != UNSET)
    };
    actor.login_uid = number("loginuid");
    actor.session_id = number("sessionid");
    if let Some((path, placement)) = read_bounded(&dir.join("cgroup"), SMALL_FILE_MAX)
        .ok()
        .and_then(|text| cgroup::from_proc(&String::from_utf8_lossy(&text)))
        // An exited process has left its cgroup: "/" says nothing of where it ran.
        .filter(|_| !zombie)
    {
        actor.cgroup = Some(path);
        actor.container = placement.container;
        actor.pod = placement.pod;
    }
    actor.parent_executable = actor
        .parent_pid
        .and_then(|ppid| executable(&proc.join(ppid.to_string())));
    actor.user = actor.uid.and_then(|uid| users.name(uid));
    // Gone, or on its way out, before the reads were done: what was read stands, and says it
    // may be partial. A process loses its memory (executable, command line) in exit before it
    // becomes a zombie; only its stat flags say it is exiting then (seen under load: no
    // executable, no command line, the state still R).
    if zombie || exiting(&dir) {
        actor.exited = true;
    }
    actor
}

/// PF_EXITING in the kernel's task flags: the process is in exit.
const PF_EXITING: u64 = 0x4;

/// Whether `dir`'s process is exiting, exited or gone (its stat line unreadable), by its stat
/// line.
fn exiting(dir: &Path) -> bool {
    match read_bounded(&dir.join("stat"), SMALL_FILE_MAX) {
        Ok(stat) => stat_says_exiting(&String::from_utf8_lossy(&stat)),
        Err(_) => true,
    }
}

/// Reads state and flags of a /proc/PID/stat line, after the command name in parentheses
/// (which may itself hold spaces and parentheses); an unreadable line says nothing.
fn stat_says_exiting(stat: &str) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("");
    let flags = fields.get(6).and_then(|flags| flags.parse::<u64>().ok());
    matches!(state, "Z" | "X" | "x") || flags.is_some_and(|flags| flags & PF_EXITING != 0)
}

fn executable(dir: &Path) -> Option<String> {
    std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|path| path.to_string_lossy().into_owned())
}

/// Arguments joined by spaces, cut at [`COMMAND_LINE_MAX`] bytes on a character boundary.
pub fn command_line(bytes: &[u8]) -> String {
    let cut = bytes.len() > COMMAND_LINE_MAX;
    let bytes = &bytes[..bytes.len().min(COMMAND_LINE_MAX)];
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    let text: String = String::from_utf8_lossy(bytes).replace('\0', " ");
    if !cut {
        return text;
    }
    let mut end = text.len().min(COMMAND_LINE_MAX - '…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// User names from the host's /etc/passwd, read again at most every 30 s when a uid is not
/// in it (a user added since). The file is opened inside the host root, never following a
/// symlink out of it, and only if it is a regular file: root cannot make it a FIFO that hangs
/// the reader or a link to /proc.
#[derive(Debug)]
pub struct Users {
    root: std::os::fd::OwnedFd,
    names: HashMap<u32, String>,
    read_at: Option<Instant>,
}

impl Users {
    pub fn new(root: std::os::fd::OwnedFd) -> Self {
        Self {
            root,
            names: HashMap::new(),
            read_at: None,
        }
    }

    fn read_passwd(&self) -> std::io::Result<Vec<u8>> {
        use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
        let open = || {
            rustix::fs::openat2(
                &self.root,
                c"etc/passwd",
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
        };
        // EAGAIN: a rename anywhere raced the lookup (RESOLVE_IN_ROOT); it is safe to retry.
        let mut opened = open();
        for _ in 0..8 {
            if !matches!(opened, Err(rustix::io::Errno::AGAIN)) {
                break;
            }
            opened = open();
        }
        let fd = opened?;
        if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
            return Err(std::io::Error::other("not a regular file"));
        }
        let mut bytes = Vec::new();
        std::fs::File::from(fd).take(PASSWD_MAX).read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    pub fn name(&mut self, uid: u32) -> Option<String> {
        if !self.names.contains_key(&uid)
            && self
                .read_at
                .is_none_or(|at| at.elapsed() > Duration::from_secs(30))
        {
            self.read_at = Some(Instant::now());
            self.names = match self.read_passwd() {
                Ok(bytes) => parse_passwd(&String::from_utf8_lossy(&bytes)),
                Err(error) => {
                    tracing::debug!(%error, "the host's /etc/passwd cannot be read: actors carry uids without names");
                    HashMap::new()
                }
            };
        }
        self.names.get(&uid).cloned()
    }
}

/// `name:x:uid:...` lines; the first name of a uid wins, as getpwuid gives it.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [name, _, uid, ..] = fields.as_slice()
            && let Ok(uid) = uid.parse::<u32>()
            && !name.is_empty()
        {
            names.entry(uid).or_insert_with(|| (*name).to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn host_root() -> std::os::fd::OwnedFd {
        rustix::fs::open(
            "/",
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn this_process_is_read_whole() {
        let mut users = Users::new(host_root());
        let me = read(Path::new("/proc"), std::process::id(), &mut users);
        assert!(!me.exited);
        assert_eq!(me.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(
            me.executable.as_deref(),
            Some(std::env::current_exe().unwrap().to_str().unwrap())
        );
        assert!(me.command_line.is_some() && me.parent_pid.is_some() && me.cgroup.is_some());
        assert_eq!(me.user.as_deref(), Some("root"), "the tests run as root");
    }

    #[test]
    fn a_process_that_is_gone_is_said_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut users = Users::new(host_root());
        let actor = read(Path::new("/proc"), pid, &mut users);
        assert_eq!(
            actor,
            Actor {
                pid,
                exited: true,
                ..Actor::default()
            },
            "reaped: nothing is left to read"
        );
    }

    #[test]
    fn an_exited_process_not_yet_reaped_keeps_its_name_and_ids_and_is_said_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let zombie = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("State:\tZ"))
        };
        while !zombie(pid) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let actor = read(Path::new("/proc"), pid, &mut Users::new(host_root()));
        child.wait().unwrap();
        assert!(actor.exited, "{actor:?}");
        assert_eq!(actor.name.as_deref(), Some("true"));
        assert_eq!(actor.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(actor.parent_pid, Some(std::process::id()));
        assert_eq!(
            (actor.executable, actor.command_line, actor.cgroup),
            (None, None, None)
        );
    }

    #[test]
    fn a_stat_line_says_exiting_by_its_flags_or_state_whatever_the_name_holds() {
        // pid (comm) state ppid pgrp session tty_nr tpgid flags ...
        let running = "42 (sh) R 1 42 42 0 -1 4194560 120 0 0 0";
        assert!(!stat_says_exiting(running));
        let in_exit = "42 (sh) R 1 42 42 0 -1 4194564 120 0 0 0";
        assert!(stat_says_exiting(in_exit));
        assert!(stat_says_exiting("42 (sh) Z 1 42 42 0 -1 4194820 120 0 0 0"));
        assert!(!stat_says_exiting("42 (a) R (b) S 1 42 42 0 -1 4194560 1 0 0 0"));
        assert!(stat_says_exiting("42 (a) R (b) S 1 42 42 0 -1 4194564 1 0 0 0"));
        assert!(!stat_says_exiting("garbage"));
        // This process is not exiting.
        assert!(!exiting(Path::new(&format!("/proc/{}", std::process::id()))));
    }

    #[test]
    fn command_lines_join_arguments_and_are_cut_on_a_character() {
        assert_eq!(command_line(b"sh\0-c\0echo x >> f\0"), "sh -c echo x >> f");
        let long = "é".repeat(COMMAND_LINE_MAX);
        let cut = command_line(long.as_bytes());
        assert!(
            cut.ends_with('…') && cut.len() <= COMMAND_LINE_MAX,
            "{}",
            cut.len()
        );
    }

    #[test]
    fn passwd_lines_give_names_and_junk_is_skipped() {
        let names = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\ntoor:x:0:0::/:/bin/sh\n:x:5:5::/:\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1000).map(String::as_str), Some("alice"));
        assert_eq!(names.len(), 2);
    }
}
