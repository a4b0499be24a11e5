//! Content hashing of regular files, with BLAKE3 (default) or SHA-256.
//!
//! Files are read with read(2), never memory-mapped: a host file truncated under a mapping
//! raises SIGBUS, which would kill the agent. Small files go through one reusable buffer per
//! thread; large files are read in 4 MiB chunks, the next chunk read while the current one is
//! hashed on several threads (BLAKE3's rayon-parallel update). A file that changes while it is
//! read (size or times differ before and after) is read once more, then given up on for this
//! scan as `Changing`; a hash is only ever recorded together with the metadata it belongs to.

use std::{cell::RefCell, ffi::CStr, fs::File, io::Read as _, os::fd::OwnedFd};

use kubefim_crds::HashAlgorithm;
use sha2::Digest as _;

use crate::{
    hostfs::{self, FileMeta, FsErrorKind},
    resources::Throttle,
};

/// A content digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub algorithm: HashAlgorithm,
    pub bytes: [u8; 32],
}

impl Digest {
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.bytes.iter().fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }
}

/// What hashing a file produced.
#[derive(Debug)]
pub struct Hashed {
    /// None when the file is larger than the hash limit (tracked by metadata only).
    pub digest: Option<Digest>,
    /// The metadata the digest belongs to (fstat after reading).
    pub meta: FileMeta,
    pub bytes_read: u64,
    /// The content, when asked for and the file is within the content limit.
    pub content: Option<Vec<u8>>,
}

/// Limits for one hash.
#[derive(Clone, Copy, Debug)]
pub struct HashLimits {
    pub algorithm: HashAlgorithm,
    pub max_hash_size: u64,
    /// Keep the content of files up to this size (FileContent entities).
    pub keep_content_up_to: Option<u64>,
}

/// Files at least this large are hashed with several threads.
const PARALLEL_THRESHOLD: u64 = 8 << 20;
const SMALL_BUFFER: usize = 64 << 10;
const LARGE_BUFFER: usize = 4 << 20;

enum Hasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Blake3 => Self::Blake3(Box::new(blake3::Hasher::new())),
            HashAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8], parallel: bool) {
        match self {
            Self::Blake3(hasher) if parallel => {
                hasher.update_rayon(data);
            }
            Self::Blake3(hasher) => {
                hasher.update(data);
            }
            Self::Sha256(hasher) => hasher.update(data),
        }
    }

    fn finish(self, algorithm: HashAlgorithm) -> Digest {
        let bytes = match self {
            Self::Blake3(hasher) => *hasher.finalize().as_bytes(),
            Self::Sha256(hasher) => hasher.finalize().into(),
        };
        Digest { algorithm, bytes }
    }
}

thread_local! {
    /// The read buffer of small files, reused: allocating and zeroing 64 KiB per file costs
    /// more than hashing a small file.
    static SMALL: RefCell<Vec<u8>> = RefCell::new(vec![0u8; SMALL_BUFFER]);
}

fn io_kind(e: &std::io::Error) -> FsErrorKind {
    e.raw_os_error().map_or(FsErrorKind::Io, |c| {
        FsErrorKind::from_errno(rustix::io::Errno::from_raw_os_error(c))
    })
}

/// Reads until `buffer` is full or the file ends; returns how many bytes were read. With a
/// throttle, waits after the read until the read rate allows it.
fn read_full(file: &mut File, buffer: &mut [u8], throttle: Option<&Throttle>) -> Result<usize, FsErrorKind> {
    // A large file is read in many calls: a stop asked for meanwhile ends the read at once.
    if crate::stop::requested().is_some() {
        return Err(FsErrorKind::Stopped);
    }
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_kind(&e)),
        }
    }
    if let Some(throttle) = throttle {
        throttle.take(filled);
    }
    Ok(filled)
}

/// What one read of a file produced: the hasher fed with every byte, how many bytes there were,
/// whether the file grew past its size at open, and the content when asked for.
struct Read {
    hasher: Hasher,
    bytes: u64,
    grew: bool,
    content: Option<Vec<u8>>,
}

impl Read {
    /// Nothing read yet, with a hasher for `limits.algorithm`; the content is kept if `keep`.
    fn new(limits: HashLimits, keep: bool) -> Self {
        Self {
            hasher: Hasher::new(limits.algorithm),
            bytes: 0,
            grew: false,
            content: keep.then(Vec::new),
        }
    }

    /// Counts `n` more bytes read; true when they take the file past `size`, its size when
    /// opened (it grew: the read stops there).
    fn grows_past(&mut self, n: usize, size: u64) -> bool {
        self.bytes += n as u64;
        self.grew = self.bytes > size;
        self.grew
    }

    /// Hashes `chunk` (on several threads when `parallel`) and keeps it when asked to.
    fn feed(&mut self, chunk: &[u8], parallel: bool) {
        self.hasher.update(chunk, parallel);
        if let Some(content) = self.content.as_mut() {
            content.extend_from_slice(chunk);
        }
    }
}

/// Reads a small file through this thread's reusable buffer.
fn read_small(
    file: &mut File,
    size: u64,
    limits: HashLimits,
    keep: bool,
    throttle: Option<&Throttle>,
) -> Result<Read, FsErrorKind> {
    SMALL.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let mut read = Read::new(limits, keep);
        loop {
            let n = read_full(file, &mut buffer, throttle)?;
            if n == 0 {
                return Ok(read);
            }
            if read.grows_past(n, size) {
                return Ok(read);
            }
            read.feed(&buffer[..n], false);
        }
    })
}

/// Reads a large file in big chunks, reading the next chunk while the current one is hashed
/// on several threads (BLAKE3's rayon-parallel update): the read and the hash overlap.
fn read_large(
    file: &mut File,
    size: u64,
    limits: HashLimits,
    keep: bool,
    throttle: Option<&Throttle>,
) -> Result<Read, FsErrorKind> {
    let mut read = Read::new(limits, keep);
    let (mut current, mut next) = (vec![0u8; LARGE_BUFFER], vec![0u8; LARGE_BUFFER]);
    let mut n = read_full(file, &mut current, throttle)?;
    while n > 0 {
        if read.grows_past(n, size) {
            return Ok(read);
        }
        let chunk = &current[..n];
        let (_, following) = rayon::join(|| read.feed(chunk, true), || read_full(file, &mut next, throttle));
        n = following?;
        std::mem::swap(&mut current, &mut next);
    }
    Ok(read)
}

/// Hashes regular file `name` in `dir`, reading no faster than `throttle` allows.
pub fn hash_file(
    dir: &OwnedFd,
    name: &CStr,
    limits: HashLimits,
    throttle: Option<&Throttle>,
) -> Result<Hashed, FsErrorKind> {
    let mut bytes_read = 0;
    for _attempt in 0..2 {
        let (mut file, before) = hostfs::open_regular(dir, name).map_err(FsErrorKind::from_errno)?;
        if before.size > limits.max_hash_size {
            return Ok(Hashed {
                digest: None,
                meta: before,
                bytes_read,
                content: None,
            });
        }
        let keep = limits.keep_content_up_to.is_some_and(|max| before.size <= max);
        let read = if before.size >= PARALLEL_THRESHOLD && limits.algorithm == HashAlgorithm::Blake3 {
            read_large(&mut file, before.size, limits, keep, throttle)?
        } else {
            read_small(&mut file, before.size, limits, keep, throttle)?
        };
        bytes_read += read.bytes;
        let after = hostfs::fstat(&file).map_err(FsErrorKind::from_errno)?;
        if !read.grew && after.same_identity_and_times(&before) && read.bytes == after.size {
            return Ok(Hashed {
                digest: Some(read.hasher.finish(limits.algorithm)),
                meta: after,
                bytes_read,
                content: read.content,
            });
        }
    }
    Err(FsErrorKind::Changing)
}

#[cfg(test)]
mod tests {
    use std::{ffi::CString, fs};

    use super::*;

    fn open_dir(path: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap()
    }

    fn limits(algorithm: HashAlgorithm) -> HashLimits {
        HashLimits {
            algorithm,
            max_hash_size: 1 << 30,
            keep_content_up_to: None,
        }
    }

    #[test]
    fn digests_match_reference_implementations() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(dir.path().join("f"), &data).unwrap();
        let fd = open_dir(dir.path());
        let blake = hash_file(&fd, c"f", limits(HashAlgorithm::Blake3), None).unwrap();
        assert_eq!(blake.digest.unwrap().bytes, *blake3::hash(&data).as_bytes());
        let sha = hash_file(&fd, c"f", limits(HashAlgorithm::Sha256), None).unwrap();
        assert_eq!(
            sha.digest.unwrap().bytes,
            <[u8; 32]>::from(sha2::Sha256::digest(&data))
        );
        assert_eq!(sha.bytes_read, data.len() as u64);
    }

    #[test]
    fn large_files_hash_in_parallel_to_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(PARALLEL_THRESHOLD as u32 + 12345))
            .map(|i| (i % 253) as u8)
            .collect();
        fs::write(dir.path().join("big"), &data).unwrap();
        let hashed = hash_file(&open_dir(dir.path()), c"big", limits(HashAlgorithm::Blake3), None).unwrap();
        assert_eq!(hashed.digest.unwrap().bytes, *blake3::hash(&data).as_bytes());
    }

    #[test]
    fn files_over_the_limit_are_tracked_by_metadata_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), vec![1u8; 4096]).unwrap();
        let mut small_limit = limits(HashAlgorithm::Blake3);
        small_limit.max_hash_size = 1024;
        let hashed = hash_file(&open_dir(dir.path()), c"f", small_limit, None).unwrap();
        assert!(hashed.digest.is_none());
        assert_eq!((hashed.meta.size, hashed.bytes_read), (4096, 0));
    }

    #[test]
    fn a_fifo_is_never_opened_for_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = CString::new(dir.path().join("pipe").into_os_string().into_encoded_bytes()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.as_c_str(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Without O_NONBLOCK and the type check this would block forever waiting for a writer.
        let result = hash_file(
            &open_dir(dir.path()),
            c"pipe",
            limits(HashAlgorithm::Blake3),
            None,
        );
        assert!(result.is_err());
    }
}
