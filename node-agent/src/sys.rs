//! The system calls fanotify needs, which neither rustix nor the standard library wrap:
//! fanotify_init(2), fanotify_mark(2) and name_to_handle_at(2). With the three calls of
//! `resources.rs` they are the project's only unsafe code (the workspace denies it); each is
//! allowed here one by one and says why it is sound. Everything they return is checked before
//! it is used; the events themselves are read with rustix and parsed in safe Rust
//! (`actors/events.rs`).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// fanotify_init(2) flags and marks, from linux/fanotify.h.
pub mod fan {
    pub const CLOEXEC: u32 = 0x0000_0001;
    pub const NONBLOCK: u32 = 0x0000_0002;
    pub const CLASS_NOTIF: u32 = 0x0000_0000;
    pub const REPORT_DIR_FID: u32 = 0x0000_0400;
    pub const REPORT_NAME: u32 = 0x0000_0800;

    pub const MARK_ADD: u32 = 0x0000_0001;
    pub const MARK_FILESYSTEM: u32 = 0x0000_0100;

    pub const MODIFY: u64 = 0x0000_0002;
    pub const ATTRIB: u64 = 0x0000_0004;
    pub const OPEN_EXEC: u64 = 0x0000_1000;
    pub const MOVED_FROM: u64 = 0x0000_0040;
    pub const MOVED_TO: u64 = 0x0000_0080;
    pub const CREATE: u64 = 0x0000_0100;
    pub const DELETE: u64 = 0x0000_0200;
    pub const Q_OVERFLOW: u64 = 0x0000_4000;
    pub const ONDIR: u64 = 0x4000_0000;
}

/// A new fanotify group.
#[allow(unsafe_code)]
pub fn fanotify_init(flags: u32, event_f_flags: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: two integers in, an integer out; nothing is read or written through a pointer.
    let fd = unsafe { libc::fanotify_init(flags, event_f_flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Marks the whole filesystem holding `object` for `mask` in `group`.
#[allow(unsafe_code)]
pub fn fanotify_mark_filesystem(
    group: BorrowedFd<'_>,
    mask: u64,
    object: BorrowedFd<'_>,
) -> std::io::Result<()> {
    // SAFETY: integers, two descriptors we hold open for the call, and a null pathname, which
    // fanotify_mark(2) documents as "the object is `dirfd` itself": no memory is passed.
    let result = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            fan::MARK_ADD | fan::MARK_FILESYSTEM,
            mask,
            object.as_raw_fd(),
            std::ptr::null(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The largest file handle the kernel encodes (MAX_HANDLE_SZ).
const MAX_HANDLE_SZ: usize = 128;
const AT_EMPTY_PATH: libc::c_int = 0x1000;
/// A handle for identification only, as fanotify encodes them (Linux 6.5 and later).
const AT_HANDLE_FID: libc::c_int = 0x200;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// The file handle of an open object, as fanotify reports it in its events: (type, bytes).
#[allow(unsafe_code)]
pub fn handle_of(object: BorrowedFd<'_>) -> std::io::Result<(i32, Vec<u8>)> {
    let attempt = |flags: libc::c_int| {
        let mut raw = RawHandle {
            handle_bytes: MAX_HANDLE_SZ as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_SZ],
        };
        let mut mount_id: libc::c_int = 0;
        // SAFETY: the pathname is a NUL-terminated empty string (AT_EMPTY_PATH: the object is
        // the descriptor itself); `raw` is a `struct file_handle` whose `handle_bytes` says
        // how much room follows it, which the kernel never writes past; `mount_id` is an int.
        // All three outlive the call.
        let result = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                object.as_raw_fd(),
                c"".as_ptr(),
                &raw mut raw,
                &raw mut mount_id,
                AT_EMPTY_PATH | flags,
            )
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let len = (raw.handle_bytes as usize).min(MAX_HANDLE_SZ);
        Ok((raw.handle_type, raw.f_handle[..len].to_vec()))
    };
    // Kernels before 6.5 refuse AT_HANDLE_FID; their export handles are what fanotify reports.
    attempt(AT_HANDLE_FID).or_else(|e| match e.raw_os_error() {
        Some(libc::EINVAL) => attempt(0),
        _ => Err(e),
    })
}

/// The filesystem id of the filesystem holding `object`, as fanotify reports it (`fsid`, the
/// two words as one number, low word first).
pub fn fsid_of(object: BorrowedFd<'_>) -> std::io::Result<u64> {
    Ok(rustix::fs::fstatvfs(object)?.f_fsid)
}
