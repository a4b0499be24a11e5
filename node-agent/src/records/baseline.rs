//! The baseline record: the state of one filesystem object (or unit) as the store keeps it,
//! and its compact fixed-layout encoding. A million records must stay small and fast to compare,
//! and a record that does not decode is reported as corrupt, never guessed at.

use kubefim_crds::{FileType, HashAlgorithm};

use crate::{
    attributes::{Attributes, Value, Xattr},
    hash::Digest,
    hostfs::FileMeta,
};

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
    /// Services: the drop-ins that apply to the unit, by file name (empty for files).
    pub drop_ins: Vec<DropIn>,
    /// Kept while a mount covers it: the host shows something else at its path (or nothing),
    /// and it is neither compared nor reported removed until the mount goes (scan::merge).
    pub hidden: bool,
    /// Extended attributes and inode flags; None in a record written before they were
    /// tracked (or for a unit), which no change is reported against.
    pub attributes: Option<Attributes>,
}

/// Flags kept in the high bits of the file type byte (old records have them clear).
const MOUNT_ROOT: u8 = 0x80;
const HIDDEN: u8 = 0x40;
const TYPE_BITS: u8 = 0x3f;

/// A systemd drop-in (`<unit>.d/*.conf`) that applies to a unit: of the files of one name, the
/// one of highest precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropIn {
    /// Its host path.
    pub path: String,
    pub digest: Option<Digest>,
    /// Where it links to: `/dev/null` masks the drop-ins of that name below it.
    pub link_target: Option<Vec<u8>>,
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

/// Every record without drop-ins: nothing after the digest but a link target.
const RECORD_VERSION: u8 = 1;
/// A unit with drop-ins: length-prefixed link target, then the drop-ins.
const RECORD_WITH_DROP_INS: u8 = 2;
/// As with drop-ins, then the attributes: flags, the count not read, and each extended
/// attribute's name and value (whole, or its digest).
const RECORD_WITH_ATTRIBUTES: u8 = 3;

fn put_digest(out: &mut Vec<u8>, digest: Option<&Digest>) {
    match digest {
        None => out.push(0),
        Some(d) => {
            out.push(match d.algorithm {
                HashAlgorithm::Blake3 => 1,
                HashAlgorithm::Sha256 => 2,
            });
            out.extend_from_slice(&d.bytes);
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

impl Record {
    /// A compact fixed-layout encoding: a million records must stay small and fast to compare.
    pub fn encode(&self) -> Vec<u8> {
        let m = &self.meta;
        let mut out = Vec::with_capacity(96 + self.link_target.as_ref().map_or(0, Vec::len));
        out.push(match (&self.attributes, self.drop_ins.is_empty()) {
            (Some(_), _) => RECORD_WITH_ATTRIBUTES,
            (None, true) => RECORD_VERSION,
            (None, false) => RECORD_WITH_DROP_INS,
        });
        out.push(
            file_type_code(m.file_type)
                | if m.mount_root { MOUNT_ROOT } else { 0 }
                | if self.hidden { HIDDEN } else { 0 },
        );
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
        put_digest(&mut out, self.digest.as_ref());
        if self.drop_ins.is_empty() && self.attributes.is_none() {
            if let Some(target) = &self.link_target {
                out.extend_from_slice(target);
            }
            return out;
        }
        put_bytes(&mut out, self.link_target.as_deref());
        out.extend_from_slice(
            &u32::try_from(self.drop_ins.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for drop_in in &self.drop_ins {
            put_bytes(&mut out, Some(drop_in.path.as_bytes()));
            put_digest(&mut out, drop_in.digest.as_ref());
            put_bytes(&mut out, drop_in.link_target.as_deref());
        }
        if let Some(attributes) = &self.attributes {
            out.extend_from_slice(&attributes.flags.to_le_bytes());
            out.extend_from_slice(&attributes.not_read.to_le_bytes());
            out.extend_from_slice(
                &u32::try_from(attributes.xattrs.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            for xattr in &attributes.xattrs {
                put_bytes(&mut out, Some(&xattr.name));
                match &xattr.value {
                    Value::Whole(bytes) => {
                        out.push(0);
                        put_bytes(&mut out, Some(bytes));
                    }
                    Value::Digest(digest) => {
                        out.push(1);
                        out.extend_from_slice(digest);
                    }
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut cursor = Cursor(bytes);
        let version = cursor.u8()?;
        if !matches!(
            version,
            RECORD_VERSION | RECORD_WITH_DROP_INS | RECORD_WITH_ATTRIBUTES
        ) {
            return None;
        }
        let type_byte = cursor.u8()?;
        let file_type = file_type_from(type_byte & TYPE_BITS)?;
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
        let digest = cursor.digest()?;
        let (link_target, drop_ins, attributes) = if version == RECORD_VERSION {
            // Symlinks and masked or aliased units carry a target; an empty tail means none.
            let link = (!cursor.0.is_empty() || file_type == FileType::Symlink).then(|| cursor.0.to_vec());
            (link, Vec::new(), None)
        } else {
            let link = cursor.bytes()?;
            let count = usize::try_from(cursor.u32()?).ok()?;
            // Each drop-in takes at least 3 bytes: a count beyond what is left is corrupt.
            if count > cursor.0.len() / 3 {
                return None;
            }
            let mut drop_ins = Vec::with_capacity(count);
            for _ in 0..count {
                let path = String::from_utf8(cursor.bytes()??).ok()?;
                drop_ins.push(DropIn {
                    path,
                    digest: cursor.digest()?,
                    link_target: cursor.bytes()?,
                });
            }
            let attributes = match version {
                RECORD_WITH_ATTRIBUTES => Some(cursor.attributes()?),
                _ => None,
            };
            if !cursor.0.is_empty() {
                return None;
            }
            (link, drop_ins, attributes)
        };
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
                mount_root: type_byte & MOUNT_ROOT != 0,
                flags: attributes.as_ref().map_or(0, |a| a.flags),
            },
            link_target,
            digest,
            hashed_at,
            enabled,
            drop_ins,
            hidden: type_byte & HIDDEN != 0,
            attributes,
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
    /// An optional digest: Some(None) when absent, None when corrupt.
    fn digest(&mut self) -> Option<Option<Digest>> {
        Some(match self.u8()? {
            0 => None,
            code @ (1 | 2) => Some(Digest {
                algorithm: if code == 1 {
                    HashAlgorithm::Blake3
                } else {
                    HashAlgorithm::Sha256
                },
                bytes: self.take(32)?.try_into().ok()?,
            }),
            _ => return None,
        })
    }
    fn attributes(&mut self) -> Option<Attributes> {
        let flags = self.u64()?;
        let not_read = self.u32()?;
        let count = usize::try_from(self.u32()?).ok()?;
        // Each attribute takes at least 7 bytes: a count beyond what is left is corrupt.
        if count > self.0.len() / 7 {
            return None;
        }
        let mut xattrs = Vec::with_capacity(count);
        for _ in 0..count {
            let name = self.bytes()??;
            let value = match self.u8()? {
                0 => Value::Whole(self.bytes()??),
                1 => Value::Digest(self.take(32)?.try_into().ok()?),
                _ => return None,
            };
            xattrs.push(Xattr { name, value });
        }
        Some(Attributes {
            flags,
            xattrs,
            not_read,
        })
    }
    /// Optional length-prefixed bytes: Some(None) when absent, None when corrupt.
    fn bytes(&mut self) -> Option<Option<Vec<u8>>> {
        Some(match self.u8()? {
            0 => None,
            1 => {
                let len = usize::try_from(self.u32()?).ok()?;
                Some(self.take(len)?.to_vec())
            }
            _ => return None,
        })
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
                mount_root: false,
                flags: 0,
            },
            link_target: link.map(<[u8]>::to_vec),
            digest: Some(Digest {
                algorithm: HashAlgorithm::Sha256,
                bytes: [7; 32],
            }),
            hashed_at: 1_700_000_123,
            enabled: Some(true),
            drop_ins: Vec::new(),
            hidden: false,
            attributes: None,
        }
    }

    #[test]
    fn attributes_round_trip_with_every_layout_and_every_truncation_is_refused() {
        let mut file = record(FileType::File, None);
        file.meta.flags = 0x10;
        file.attributes = Some(Attributes {
            flags: 0x10,
            xattrs: vec![
                Xattr {
                    name: b"security.capability".to_vec(),
                    value: Value::Whole(vec![
                        1, 0, 0, 2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    ]),
                },
                Xattr {
                    name: b"user.\xff".to_vec(),
                    value: Value::Digest([9; 32]),
                },
            ],
            not_read: 3,
        });
        let mut link = record(FileType::Symlink, Some(b"target"));
        link.attributes = Some(Attributes::default());
        for original in [file, link] {
            let bytes = original.encode();
            assert_eq!(bytes[0], RECORD_WITH_ATTRIBUTES);
            assert_eq!(Record::decode(&bytes).as_ref(), Some(&original));
            for cut in 0..bytes.len() {
                assert_eq!(Record::decode(&bytes[..cut]), None, "cut at {cut}");
            }
        }
        // A record from before attributes were tracked keeps its layout and decodes to none.
        let old = record(FileType::File, None);
        assert_eq!(old.encode()[0], RECORD_VERSION);
        assert_eq!(Record::decode(&old.encode()).unwrap().attributes, None);
    }

    #[test]
    fn mount_root_and_hidden_round_trip_and_old_records_decode_without_them() {
        let mut original = record(FileType::Directory, None);
        original.meta.mount_root = true;
        original.hidden = true;
        let encoded = original.encode();
        assert_eq!(Record::decode(&encoded).unwrap(), original);
        // A record written before the flags existed has the type byte's high bits clear.
        let mut old = encoded.clone();
        old[1] &= TYPE_BITS;
        let decoded = Record::decode(&old).unwrap();
        assert!(!decoded.meta.mount_root && !decoded.hidden);
        assert_eq!(decoded.meta.file_type, FileType::Directory);
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

    #[test]
    fn a_unit_with_drop_ins_round_trips_and_every_truncation_is_refused() {
        let mut unit = record(FileType::Unit, Some(b"/dev/null"));
        unit.drop_ins = vec![
            DropIn {
                path: "/etc/systemd/system/ssh.service.d/override.conf".into(),
                digest: Some(Digest {
                    algorithm: HashAlgorithm::Blake3,
                    bytes: [3; 32],
                }),
                link_target: None,
            },
            DropIn {
                path: "/etc/systemd/system/ssh.service.d/zz-masked.conf".into(),
                digest: None,
                link_target: Some(b"/dev/null".to_vec()),
            },
        ];
        let bytes = unit.encode();
        assert_eq!(Record::decode(&bytes), Some(unit.clone()));
        for cut in 0..bytes.len() {
            assert_eq!(Record::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Record::decode(&longer), None, "trailing bytes");
        // A unit without drop-ins keeps the first layout: stores written before read as before.
        let plain = record(FileType::Unit, None);
        assert_eq!(plain.encode()[0], RECORD_VERSION);
    }
}
