//! The baseline record: the state of one filesystem object (or unit) as the store keeps it,
//! and its compact fixed-layout encoding. A million records must stay small and fast to compare,
//! and a record that does not decode is reported as corrupt, never guessed at.

use kubefim_crds::{FileType, HashAlgorithm};

use crate::{hash::Digest, hostfs::FileMeta};

/// The state of one filesystem object (or unit) as recorded in the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub meta: FileMeta,
    pub link_target: Option<Vec<u8>>,
    pub digest: Option<Digest>,
    /// Unix seconds when the digest was computed (drives rehashEvery); 0 when never.
    pub hashed_at: i64,
    /// Services: whether the unit is enabled.
    pub enabled: Option<bool>,
}

fn file_type_code(file_type: FileType) -> u8 {
    match file_type {
        FileType::File => 0,
        FileType::Directory => 1,
        FileType::Symlink => 2,
        FileType::Fifo => 3,
        FileType::Socket => 4,
        FileType::CharDevice => 5,
        FileType::BlockDevice => 6,
        FileType::Unit => 7,
    }
}

fn file_type_from(code: u8) -> Option<FileType> {
    Some(match code {
        0 => FileType::File,
        1 => FileType::Directory,
        2 => FileType::Symlink,
        3 => FileType::Fifo,
        4 => FileType::Socket,
        5 => FileType::CharDevice,
        6 => FileType::BlockDevice,
        7 => FileType::Unit,
        _ => return None,
    })
}

const RECORD_VERSION: u8 = 1;

impl Record {
    /// A compact fixed-layout encoding: a million records must stay small and fast to compare.
    pub fn encode(&self) -> Vec<u8> {
        let m = &self.meta;
        let mut out = Vec::with_capacity(96 + self.link_target.as_ref().map_or(0, Vec::len));
        out.push(RECORD_VERSION);
        out.push(file_type_code(m.file_type));
        for v in [m.mode, m.uid, m.gid, m.mtime.1, m.ctime.1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [m.size, m.ino, m.dev, m.nlink] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [m.mtime.0, m.ctime.0, self.hashed_at] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(match self.enabled {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
        match &self.digest {
            None => out.push(0),
            Some(d) => {
                out.push(match d.algorithm {
                    HashAlgorithm::Blake3 => 1,
                    HashAlgorithm::Sha256 => 2,
                });
                out.extend_from_slice(&d.bytes);
            }
        }
        if let Some(target) = &self.link_target {
            out.extend_from_slice(target);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut cursor = Cursor(bytes);
        if cursor.u8()? != RECORD_VERSION {
            return None;
        }
        let file_type = file_type_from(cursor.u8()?)?;
        let (mode, uid, gid, mtime_ns, ctime_ns) = (
            cursor.u32()?,
            cursor.u32()?,
            cursor.u32()?,
            cursor.u32()?,
            cursor.u32()?,
        );
        let (size, ino, dev, nlink) = (cursor.u64()?, cursor.u64()?, cursor.u64()?, cursor.u64()?);
        let (mtime, ctime, hashed_at) = (cursor.i64()?, cursor.i64()?, cursor.i64()?);
        let enabled = match cursor.u8()? {
            0 => None,
            1 => Some(false),
            2 => Some(true),
            _ => return None,
        };
        let digest = match cursor.u8()? {
            0 => None,
            code @ (1 | 2) => Some(Digest {
                algorithm: if code == 1 {
                    HashAlgorithm::Blake3
                } else {
                    HashAlgorithm::Sha256
                },
                bytes: cursor.take(32)?.try_into().ok()?,
            }),
            _ => return None,
        };
        // Symlinks and masked or aliased units carry a target; an empty tail means none.
        let link_target = (!cursor.0.is_empty() || file_type == FileType::Symlink).then(|| cursor.0.to_vec());
        Some(Self {
            meta: FileMeta {
                file_type,
                mode,
                uid,
                gid,
                size,
                mtime: (mtime, mtime_ns),
                ctime: (ctime, ctime_ns),
                ino,
                dev,
                nlink,
            },
            link_target,
            digest,
            hashed_at,
            enabled,
        })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8)?.try_into().ok().map(i64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file_type: FileType, link: Option<&[u8]>) -> Record {
        Record {
            meta: FileMeta {
                file_type,
                mode: 0o4755,
                uid: 1000,
                gid: 100,
                size: 1 << 40,
                mtime: (-5, 999_999_999),
                ctime: (1_700_000_000, 1),
                ino: u64::MAX,
                dev: 42,
                nlink: 3,
            },
            link_target: link.map(<[u8]>::to_vec),
            digest: Some(Digest {
                algorithm: HashAlgorithm::Sha256,
                bytes: [7; 32],
            }),
            hashed_at: 1_700_000_123,
            enabled: Some(true),
        }
    }

    #[test]
    fn records_round_trip_including_non_utf8_link_targets() {
        for original in [
            record(FileType::File, None),
            record(FileType::Symlink, Some(b"../\xff\xfe/target")),
        ] {
            assert_eq!(Record::decode(&original.encode()).unwrap(), original);
        }
    }

    #[test]
    fn truncated_or_foreign_records_do_not_decode() {
        let bytes = record(FileType::File, None).encode();
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Record::decode(b"\x09garbage").is_none());
    }
}
