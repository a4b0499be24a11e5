//! Safe access to the host filesystem. Everything the agent reads goes through here, and every
//! rule of docs/design.md, "Scanner safety" that concerns a single open or stat is enforced here:
//! - paths are resolved with `openat2(RESOLVE_IN_ROOT)`, so no symlink or `..` can lead out of
//!   the host root, whatever the host put there;
//! - the final component is never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`);
//! - only regular files are ever opened for reading, with `O_NONBLOCK` so a file swapped for a
//!   FIFO between stat and open cannot block, and the opened file is re-checked with fstat;
//! - `O_NOATIME` is used where the kernel permits it, so scans do not disturb access times.
//!
//! It never writes to the host.

use std::{
    ffi::{CStr, CString},
    fs::File,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use rustix::{
    fs::{AtFlags, FileType as RawType, Mode, OFlags, RawDir, ResolveFlags, Stat},
    io::Errno,
};

use crate::{Error, Result};

/// The metadata of one filesystem object, as the baseline records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub file_type: kubefim_crds::FileType,
    /// Permission bits including setuid, setgid and sticky (mode & 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub ino: u64,
    pub dev: u64,
    pub nlink: u64,
    /// The root of a mount (something is mounted here, over what the parent's filesystem
    /// holds at this name). Known from the walk's statx; false from a plain fstat.
    pub mount_root: bool,
    /// Inode flags set (immutable, append-only...), as statx reports them
    /// (`attributes::FLAGS`); 0 from a plain fstat. Recorded with the extended attributes.
    pub flags: u64,
}

impl FileMeta {
    pub fn from_stat(stat: &Stat) -> Self {
        Self {
            file_type: file_type_of(stat.st_mode),
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: (stat.st_mtime, clamp_nanos(stat.st_mtime_nsec)),
            ctime: (stat.st_ctime, clamp_nanos(stat.st_ctime_nsec)),
            ino: stat.st_ino,
            dev: stat.st_dev,
            #[allow(clippy::useless_conversion)] // nlink is u32 on some architectures
            nlink: u64::from(stat.st_nlink),
            mount_root: false,
            flags: 0,
        }
    }

    pub fn from_statx(stat: &rustix::fs::Statx) -> Self {
        Self {
            file_type: file_type_of(u32::from(stat.stx_mode)),
            mode: u32::from(stat.stx_mode) & 0o7777,
            uid: stat.stx_uid,
            gid: stat.stx_gid,
            size: stat.stx_size,
            mtime: (stat.stx_mtime.tv_sec, clamp_nanos(stat.stx_mtime.tv_nsec)),
            ctime: (stat.stx_ctime.tv_sec, clamp_nanos(stat.stx_ctime.tv_nsec)),
            ino: stat.stx_ino,
            dev: rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            nlink: u64::from(stat.stx_nlink),
            mount_root: stat
                .stx_attributes
                .contains(rustix::fs::StatxAttributes::MOUNT_ROOT),
            flags: crate::attributes::flags_of(stat),
        }
    }

    /// True when nothing that a content change must touch has changed: the fast path that lets
    /// a scan reuse the stored hash.
    pub fn same_identity_and_times(&self, other: &Self) -> bool {
        self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
            && self.ino == other.ino
            && self.dev == other.dev
    }
}

/// The file type an `st_mode` (or `stx_mode`) holds; anything unknown is a regular file.
fn file_type_of(mode: u32) -> kubefim_crds::FileType {
    use kubefim_crds::FileType as T;
    match RawType::from_raw_mode(mode) {
        RawType::Directory => T::Directory,
        RawType::Symlink => T::Symlink,
        RawType::Fifo => T::Fifo,
        RawType::Socket => T::Socket,
        RawType::CharacterDevice => T::CharDevice,
        RawType::BlockDevice => T::BlockDevice,
        _ => T::File,
    }
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // the field type varies by architecture
fn clamp_nanos(nanos: impl TryInto<u32>) -> u32 {
    nanos.try_into().unwrap_or(0).min(999_999_999)
}

/// Why a filesystem operation on the host failed, in the few classes the agent reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsErrorKind {
    /// The object disappeared between listing and use: not an error, the host is live.
    Vanished,
    /// Permission denied even with DAC_READ_SEARCH.
    PermissionDenied,
    /// Too many symlink levels, a loop, or a path that would leave the host root.
    Unresolvable,
    /// A directory deeper than the agent descends (resolve::HARD_MAX_LEVELS).
    TooDeep,
    /// A file that kept changing while it was hashed; the next scan tries again.
    Changing,
    /// A signal asked the agent to stop while the file was read (`stop`): not an error of the
    /// file, the scan is abandoned.
    Stopped,
    /// Anything else (I/O error, too many open files...).
    Io,
}

impl FsErrorKind {
    pub fn from_errno(errno: Errno) -> Self {
        match errno {
            Errno::NOENT | Errno::NOTDIR => Self::Vanished,
            Errno::ACCESS | Errno::PERM => Self::PermissionDenied,
            Errno::LOOP | Errno::XDEV => Self::Unresolvable,
            _ => Self::Io,
        }
    }

    /// The `reason` label value of kubefim_scan_errors_total.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Vanished => "vanished",
            Self::PermissionDenied => "permission_denied",
            Self::Unresolvable => "unresolvable",
            Self::TooDeep => "too_deep",
            Self::Changing => "changing",
            Self::Stopped => "stopped",
            Self::Io => "io",
        }
    }
}

/// The host root (`/` standalone, `/host` in the cluster), held open as a directory handle.
#[derive(Debug)]
pub struct HostRoot {
    fd: OwnedFd,
    path: PathBuf,
}

impl HostRoot {
    pub fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| Error::HostRoot {
            path: path.to_path_buf(),
            source: errno.into(),
        })?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the kernel says the held root is (absolute, symlinks resolved), as the mount
    /// table writes mount points: the path given may be relative or go through a symlink.
    pub fn mount_path(&self) -> std::io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// The host root itself as a directory handle.
    pub fn dir(&self) -> Result<OwnedFd, Errno> {
        rustix::fs::openat(
            &self.fd,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// Opens the directory at `components` (host view, no empty, `.` or `..` components),
    /// following intermediate symlinks only inside the host root.
    pub fn open_dir(&self, components: &[Vec<u8>]) -> Result<OwnedFd, Errno> {
        if components.is_empty() {
            return self.dir();
        }
        let relative = CString::new(components.join(&b'/')).map_err(|_| Errno::INVAL)?;
        let dir = rustix::fs::openat2(
            &self.fd,
            relative.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?;
        // A path through a symlink to /proc (or a procfs mounted elsewhere) resolves inside
        // the root and still leads to the kernel's pseudo files: refused as unresolvable.
        if is_pseudo_filesystem(&dir) {
            return Err(Errno::XDEV);
        }
        Ok(dir)
    }
}

/// lstat of `name` in `dir`, through statx so that a mount root is known (one syscall, as
/// fstatat). Never triggers an automount.
pub fn stat_at(dir: &OwnedFd, name: &CStr) -> Result<FileMeta, Errno> {
    use rustix::fs::StatxFlags;
    rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::BASIC_STATS,
    )
    .map(|stat| FileMeta::from_statx(&stat))
}

/// Whether the directory `dir` lies on a kernel pseudo filesystem (procfs, sysfs,
/// devpts, cgroup, debugfs, tracefs, securityfs, bpf...): a walk never enters one, however it
/// was reached (a symlink to /proc under a monitored path, a procfs mounted elsewhere).
pub fn is_pseudo_filesystem(dir: &OwnedFd) -> bool {
    const PSEUDO: [i64; 12] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x1cd1,      // devpts
        0x0027_e0eb, // cgroup
        0x6367_7270, // cgroup2
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x7363_6673, // securityfs
        0xcafe_4a11, // bpf
        0x4249_4e4d, // binfmt_misc
        0xf97c_ff8c, // selinuxfs
        0x6e73_6673, // nsfs
    ];
    match rustix::fs::fstatfs(dir) {
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // f_type's width varies
        Ok(fs) => PSEUDO.contains(&(fs.f_type as i64)),
        Err(_) => false,
    }
}

/// Opens subdirectory `name` of `dir` without following a symlink.
pub fn open_subdir(dir: &OwnedFd, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The target of symlink `name` in `dir`, as raw bytes.
pub fn read_link_at(dir: &OwnedFd, name: &CStr) -> Result<Vec<u8>, Errno> {
    rustix::fs::readlinkat(dir, name, Vec::new()).map(CString::into_bytes)
}

thread_local! {
    /// getdents64's buffer, reused: 32 KiB reads a directory of a few hundred names at once.
    static DIRENTS: std::cell::RefCell<Vec<std::mem::MaybeUninit<u8>>> =
        std::cell::RefCell::new(vec![std::mem::MaybeUninit::uninit(); 32 << 10]);
}

/// The names in directory `dir` (a fresh handle, read from its start), sorted bytewise, without
/// `.` and `..`.
pub fn list_sorted(dir: &OwnedFd) -> Result<Vec<CString>, Errno> {
    let mut names = Vec::new();
    DIRENTS.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let mut entries = RawDir::new(dir, &mut buffer);
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        Ok::<(), Errno>(())
    })?;
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Opens regular file `name` in `dir` for reading, and returns it with its fstat metadata.
/// Refuses anything that is not a regular file once opened (a FIFO, socket or device swapped in
/// after the walk's lstat is never read).
pub fn open_regular(dir: &OwnedFd, name: &CStr) -> Result<(File, FileMeta), Errno> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME needs ownership or CAP_FOWNER; the agent deliberately lacks the latter.
        Err(Errno::PERM) => rustix::fs::openat(dir, name, flags, Mode::empty())?,
        other => other?,
    };
    let meta = FileMeta::from_stat(&rustix::fs::fstat(&fd)?);
    if meta.file_type != kubefim_crds::FileType::File {
        return Err(Errno::INVAL);
    }
    Ok((File::from(fd), meta))
}

/// fstat of an open file.
pub fn fstat(file: &File) -> Result<FileMeta, Errno> {
    rustix::fs::fstat(file).map(|stat| FileMeta::from_stat(&stat))
}
