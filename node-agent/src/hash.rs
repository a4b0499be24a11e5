//! Content hashing of regular files, with BLAKE3 (default) or SHA-256.
//!
//! Files are read with read(2), never memory-mapped: a host file truncated under a mapping
//! raises SIGBUS, which would kill the agent. Large files still use several threads, by
//! feeding big read buffers to BLAKE3's rayon-parallel update. A file that changes while it is
//! read (size or times differ before and after) is read once more, then given up on for this
//! scan as `Changing`; a hash is only ever recorded together with the metadata it belongs to.

use std::{ffi::CStr, io::Read, os::fd::OwnedFd};

use kubefim_crds::HashAlgorithm;
use sha2::Digest as _;

use crate::hostfs::{self, FileMeta, FsErrorKind};

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

/// Hashes regular file `name` in `dir`.
pub fn hash_file(dir: &OwnedFd, name: &CStr, limits: HashLimits) -> Result<Hashed, FsErrorKind> {
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
        let parallel = before.size >= PARALLEL_THRESHOLD && limits.algorithm == HashAlgorithm::Blake3;
        let mut buffer = vec![0u8; if parallel { LARGE_BUFFER } else { SMALL_BUFFER }];
        let mut keep = limits
            .keep_content_up_to
            .filter(|max| before.size <= *max)
            .map(|_| Vec::new());
        let mut hasher = Hasher::new(limits.algorithm);
        let mut this_read: u64 = 0;
        let grew = loop {
            let n = match file.read(&mut buffer) {
                Ok(0) => break false,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(e.raw_os_error().map_or(FsErrorKind::Io, |c| {
                        FsErrorKind::from_errno(rustix::io::Errno::from_raw_os_error(c))
                    }));
                }
            };
            this_read += n as u64;
            if this_read > before.size {
                break true;
            }
            hasher.update(&buffer[..n], parallel);
            if let Some(content) = keep.as_mut() {
                content.extend_from_slice(&buffer[..n]);
            }
        };
        bytes_read += this_read;
        let after = hostfs::fstat(&file).map_err(FsErrorKind::from_errno)?;
        if !grew && after.same_identity_and_times(&before) && this_read == after.size {
            return Ok(Hashed {
                digest: Some(hasher.finish(limits.algorithm)),
                meta: after,
                bytes_read,
                content: keep,
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
        let blake = hash_file(&fd, c"f", limits(HashAlgorithm::Blake3)).unwrap();
        assert_eq!(blake.digest.unwrap().bytes, *blake3::hash(&data).as_bytes());
        let sha = hash_file(&fd, c"f", limits(HashAlgorithm::Sha256)).unwrap();
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
        let hashed = hash_file(&open_dir(dir.path()), c"big", limits(HashAlgorithm::Blake3)).unwrap();
        assert_eq!(hashed.digest.unwrap().bytes, *blake3::hash(&data).as_bytes());
    }

    #[test]
    fn files_over_the_limit_are_tracked_by_metadata_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), vec![1u8; 4096]).unwrap();
        let mut small_limit = limits(HashAlgorithm::Blake3);
        small_limit.max_hash_size = 1024;
        let hashed = hash_file(&open_dir(dir.path()), c"f", small_limit).unwrap();
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
        let result = hash_file(&open_dir(dir.path()), c"pipe", limits(HashAlgorithm::Blake3));
        assert!(result.is_err());
    }
}
