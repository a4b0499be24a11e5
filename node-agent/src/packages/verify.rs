//! Whether a file's content is what a package database says it should be: one read of the file
//! feeds both the database's algorithm and the workspace's, so the content checked is the
//! content the change reported (a file rewritten again since the scan fails the check and is
//! left to the next scan).

use std::{ffi::CString, io::Read as _};

use kubefim_crds::HashAlgorithm;
use sha2::Digest as _;

use super::{DigestAlgorithm, installed::FileDigest};
use crate::{
    hash::Digest,
    hostfs::{self, HostRoot},
};

enum PackageHasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl PackageHasher {
    fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Md5 => Self::Md5(md5::Md5::new()),
            DigestAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            DigestAlgorithm::Sha224 => Self::Sha224(sha2::Sha224::new()),
            DigestAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha384 => Self::Sha384(sha2::Sha384::new()),
            DigestAlgorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(h) => h.finalize().to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha224(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

enum OwnHasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
}

/// Whether regular file `path` (absolute, in the host root) hashes to `expected` with the
/// database's algorithm and to `reported` with the workspace's. Any failure to read is a no.
pub fn content_matches(root: &HostRoot, path: &[u8], expected: &FileDigest, reported: &Digest) -> bool {
    let mut components: Vec<Vec<u8>> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let Some(name) = components.pop().and_then(|n| CString::new(n).ok()) else {
        return false;
    };
    let Ok((mut file, _)) = root
        .open_dir(&components)
        .and_then(|dir| hostfs::open_regular(&dir, &name))
    else {
        return false;
    };
    let mut theirs = PackageHasher::new(expected.algorithm);
    let mut ours = match reported.algorithm {
        HashAlgorithm::Blake3 => OwnHasher::Blake3(Box::new(blake3::Hasher::new())),
        HashAlgorithm::Sha256 => OwnHasher::Sha256(sha2::Sha256::new()),
    };
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let Some(chunk) = buffer.get(..n) else {
                    return false;
                };
                theirs.update(chunk);
                match &mut ours {
                    OwnHasher::Blake3(h) => {
                        h.update(chunk);
                    }
                    OwnHasher::Sha256(h) => h.update(chunk),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    let ours: [u8; 32] = match ours {
        OwnHasher::Blake3(h) => *h.finalize().as_bytes(),
        OwnHasher::Sha256(h) => h.finalize().into(),
    };
    ours == reported.bytes && theirs.finish() == expected.bytes
}
