//! The mount table, as the agent's own mount namespace shows it (`/proc/self/mountinfo`): the
//! scans see what is mounted there. In the cluster the host root is a recursive bind of the
//! host's / with host-to-container propagation, so a mount made on the host appears under it.
//! Mount points become keys of the host view (the host root's own path stripped); mounts
//! outside the host root are not the host's and are left out.
//!
//! Realtime detection polls the table (the kernel flags an open `/proc/self/mountinfo` with
//! POLLPRI when the namespace's mounts change): inotify never sees a mount, so a mount over or
//! under a watched path is learnt here, and its entities are rescanned and re-watched.

use std::{collections::BTreeSet, io::Read, os::fd::OwnedFd, path::Path, time::Duration};

use rustix::{
    event::{PollFd, PollFlags},
    fs::{Mode, OFlags},
    io::Errno,
};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// A table larger than this is refused rather than read without bound.
const MAX_TABLE_BYTES: u64 = 64 << 20;

/// One mount, as `mountinfo` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The mount's id (the first field; statx's `stx_mnt_id`).
    pub id: u64,
    /// Where it is mounted, as a key of the host view (components joined by NUL; empty for the
    /// host root itself).
    pub key: Vec<u8>,
    /// The filesystem type (`tmpfs`, `ext4`, `overlay`...).
    pub fs_type: String,
    /// The mount source (a device, `tmpfs`, `overlay`...).
    pub source: String,
    /// The directory of the source filesystem mounted there (`/` unless a bind mount of a
    /// subdirectory).
    pub root: String,
}

/// The mounts under the host root, in the table's order (a later mount at the same point is on
/// top of an earlier one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table(pub Vec<Mount>);

impl Table {
    /// The mount table of this namespace, as keys under `host_root`.
    pub fn read(host_root: &Path) -> std::io::Result<Self> {
        let mut text = Vec::new();
        std::fs::File::open(MOUNTINFO)?
            .take(MAX_TABLE_BYTES + 1)
            .read_to_end(&mut text)?;
        if text.len() as u64 > MAX_TABLE_BYTES {
            return Err(std::io::Error::other(format!(
                "{MOUNTINFO} is larger than {MAX_TABLE_BYTES} bytes"
            )));
        }
        Ok(Self::parse(&text, host_root))
    }

    /// Parses mountinfo text; lines that do not parse are skipped.
    pub fn parse(text: &[u8], host_root: &Path) -> Self {
        let root = host_root.as_os_str().as_encoded_bytes();
        let root = root.strip_suffix(b"/").unwrap_or(root);
        Self(
            text.split(|b| *b == b'\n')
                .filter_map(|line| parse_line(line, root))
                .collect(),
        )
    }

    /// The mount on top at `key`, if something is mounted exactly there.
    pub fn at(&self, key: &[u8]) -> Option<&Mount> {
        self.0.iter().rev().find(|m| m.key == key)
    }

    /// The mount points where something was mounted or unmounted from `self` to `now`.
    pub fn changed_points(&self, now: &Self) -> BTreeSet<Vec<u8>> {
        let ids = |t: &Self| t.0.iter().map(|m| (m.id, m.key.clone())).collect::<BTreeSet<_>>();
        let (before, after) = (ids(self), ids(now));
        before
            .symmetric_difference(&after)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

fn parse_line(line: &[u8], root: &[u8]) -> Option<Mount> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let separator = fields.iter().position(|f| *f == b"-")?;
    if separator < 6 || fields.len() < separator + 3 {
        return None;
    }
    let id = std::str::from_utf8(fields[0]).ok()?.parse().ok()?;
    let point = unescape(fields[4]);
    let rest = point.strip_prefix(root)?;
    if !(rest.is_empty() || rest.starts_with(b"/")) {
        return None;
    }
    let key = rest
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(&0u8);
    let text = |field: &[u8]| String::from_utf8_lossy(&unescape(field)).into_owned();
    Some(Mount {
        id,
        key,
        fs_type: text(fields[separator + 1]),
        source: text(fields[separator + 2]),
        root: text(fields[3]),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(digits) = field.get(i + 1..i + 4)
            && digits.iter().all(|b| (b'0'..=b'7').contains(b))
            && let Ok(byte) = u8::try_from(digits.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0')))
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// An open mountinfo, polled for changes of the mount table.
#[derive(Debug)]
pub struct Poller(OwnedFd);

impl Poller {
    pub fn open() -> Result<Self, Errno> {
        rustix::fs::open(MOUNTINFO, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map(Self)
    }

    /// Waits up to `timeout` for the mount table to change; true when it did (the flag is
    /// cleared by the poll that reports it).
    pub fn changed(&self, timeout: Duration) -> Result<bool, Errno> {
        let mut fds = [PollFd::new(&self.0, PollFlags::PRI | PollFlags::ERR)];
        let timeout = rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(n) => Ok(n > 0 && fds[0].revents().intersects(PollFlags::PRI | PollFlags::ERR)),
            Err(Errno::INTR) => Ok(false),
            Err(errno) => Err(errno),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
        40 22 0:35 / /tmp/host/opt\\040app rw - tmpfs tmpfs rw,size=1024k\n\
        41 22 8:1 /srv /tmp/host/etc/kubernetes rw - ext4 /dev/vda rw\n\
        42 22 0:36 / /tmp/hostile rw - tmpfs tmpfs rw\n\
        garbage line\n";

    #[test]
    fn mount_points_become_host_view_keys_and_outside_mounts_are_left_out() {
        let table = Table::parse(TABLE, Path::new("/tmp/host"));
        let keys: Vec<&[u8]> = table.0.iter().map(|m| m.key.as_slice()).collect();
        assert_eq!(keys, [b"opt app".as_slice(), b"etc\0kubernetes"]);
        let bind = table.at(b"etc\0kubernetes").expect("the bind mount");
        assert_eq!(
            (bind.fs_type.as_str(), bind.source.as_str(), bind.root.as_str()),
            ("ext4", "/dev/vda", "/srv")
        );
        assert_eq!(table.at(b"opt app").map(|m| m.id), Some(40));
    }

    #[test]
    fn the_host_root_slash_keeps_every_mount_and_the_root_is_the_empty_key() {
        let table = Table::parse(TABLE, Path::new("/"));
        assert_eq!(table.0.len(), 4);
        assert_eq!(table.0[0].key, b"");
        assert_eq!(table.0[3].key, b"tmp\0hostile");
    }

    #[test]
    fn changed_points_name_mounts_added_and_removed() {
        let before = Table::parse(TABLE, Path::new("/tmp/host"));
        let mut after = before.clone();
        after.0.remove(0);
        after.0.push(Mount {
            id: 50,
            key: b"usr\0lib".to_vec(),
            fs_type: "tmpfs".into(),
            source: "tmpfs".into(),
            root: "/".into(),
        });
        let changed: Vec<Vec<u8>> = before.changed_points(&after).into_iter().collect();
        assert_eq!(changed, [b"opt app".to_vec(), b"usr\0lib".to_vec()]);
        assert!(before.changed_points(&before).is_empty());
    }

    #[test]
    fn escapes_are_undone_and_a_truncated_escape_is_kept_as_is() {
        assert_eq!(unescape(b"a\\040b\\134c"), b"a b\\c");
        assert_eq!(unescape(b"x\\04"), b"x\\04");
        assert_eq!(unescape(b"\\777"), b"\\777");
    }
}
