//! Whether a package manager is in the middle of an operation on the host: it holds the lock
//! on its database. The probe only asks the kernel whether another process holds that lock
//! (`F_GETLK`); it never takes the lock itself.

use crate::hostfs::{FileMeta, HostRoot};

/// Whether a package manager is in the middle of an operation on `root`: it holds the POSIX lock
/// on its database (dpkg's `lock`, rpm's `.rpm.lock`). Files half-unpacked (dpkg's `.dpkg-new`)
/// are then on disk, so a scan waits for the operation to end. apk's lock is a `flock`, which
/// `F_GETLK` cannot see: an apk operation is not waited for (docs/packages.md).
pub fn in_progress(root: &HostRoot) -> bool {
    ["/var/lib/dpkg/lock", "/var/lib/rpm/.rpm.lock"]
        .iter()
        .any(|path| locked(root, path))
}

fn locked(root: &HostRoot, path: &str) -> bool {
    let mut components: Vec<Vec<u8>> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(|c| c.as_bytes().to_vec())
        .collect();
    let Some(name) = components.pop().and_then(|n| std::ffi::CString::new(n).ok()) else {
        return false;
    };
    let Ok((file, _)): std::result::Result<(std::fs::File, FileMeta), _> = root
        .open_dir(&components)
        .and_then(|dir| crate::hostfs::open_regular(&dir, &name))
    else {
        return false;
    };
    let probe = rustix::process::Flock {
        start: 0,
        length: 0,
        pid: None,
        typ: rustix::process::FlockType::WriteLock,
        offset_type: rustix::process::FlockOffsetType::Set,
    };
    matches!(rustix::process::fcntl_getlk(&file, &probe), Ok(Some(_)))
}
