//! What a file carries beyond its stat, as AIDE's `caps`, `acl`, `selinux`, `xattrs` and
//! `e2fsattrs` check it: extended attributes (file capabilities, POSIX ACLs, the SELinux label,
//! IMA signatures and any other, by name with their values or digests) and inode flags
//! (immutable, append-only), with their decoded forms for reports.
//!
//! Reading is bounded whatever root on the node sets: at most [`MAX_XATTRS`] attributes per
//! file (the rest are counted, not read), values up to the kernel's 64 KiB, and only the values
//! whose format is known kept whole; every other value is kept as its digest and never shown.

use std::{
    ffi::{CStr, CString},
    os::fd::{AsRawFd, OwnedFd},
};

use rustix::{fs::StatxAttributes, io::Errno};

/// Extended attributes read per file at most; beyond, they are counted.
pub const MAX_XATTRS: usize = 256;
/// The kernel's own limits: a name list and a value are at most 64 KiB.
const XATTR_LIST_MAX: usize = 64 << 10;
const XATTR_SIZE_MAX: usize = 64 << 10;
/// A value of a known format up to this size is kept whole; any other by its digest.
const INLINE_MAX: usize = 4096;

pub const CAPABILITY: &[u8] = b"security.capability";
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";
pub const SELINUX: &[u8] = b"security.selinux";
pub const IMA: &[u8] = b"security.ima";

/// The names whose values are kept whole and decoded.
const DECODED: [&[u8]; 5] = [CAPABILITY, ACL_ACCESS, ACL_DEFAULT, SELINUX, IMA];

/// The inode flags reported, as statx gives them, with their names.
pub const FLAGS: [(StatxAttributes, &str); 7] = [
    (StatxAttributes::IMMUTABLE, "immutable"),
    (StatxAttributes::APPEND, "append"),
    (StatxAttributes::NODUMP, "nodump"),
    (StatxAttributes::COMPRESSED, "compressed"),
    (StatxAttributes::ENCRYPTED, "encrypted"),
    (StatxAttributes::VERITY, "verity"),
    (StatxAttributes::DAX, "dax"),
];

/// The reported flags of a statx: those the filesystem supports and are set.
pub fn flags_of(stat: &rustix::fs::Statx) -> u64 {
    let known = FLAGS.iter().fold(0, |all, (flag, _)| all | flag.bits());
    (stat.stx_attributes & stat.stx_attributes_mask).bits() & known
}

/// The names of the flags set in `flags`.
pub fn flag_names(flags: u64) -> Vec<String> {
    FLAGS
        .iter()
        .filter(|(flag, _)| flags & flag.bits() != 0)
        .map(|(_, name)| (*name).to_string())
        .collect()
}

/// A file's extended attributes and flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// statx attribute bits of [`FLAGS`].
    pub flags: u64,
    /// By name, in byte order.
    pub xattrs: Vec<Xattr>,
    /// Attributes beyond the first [`MAX_XATTRS`] names: not read.
    pub not_read: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Value,
}

/// A value whole (a known format, small), or its BLAKE3 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Whole(Vec<u8>),
    Digest([u8; 32]),
}

impl Value {
    fn of(name: &[u8], value: &[u8]) -> Self {
        if DECODED.contains(&name) && value.len() <= INLINE_MAX {
            Self::Whole(value.to_vec())
        } else {
            Self::Digest(*blake3::hash(value).as_bytes())
        }
    }

    pub fn digest(&self) -> [u8; 32] {
        match self {
            Self::Whole(bytes) => *blake3::hash(bytes).as_bytes(),
            Self::Digest(digest) => *digest,
        }
    }
}

/// Which of a file's attribute kinds differ between two readings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    pub capabilities: bool,
    pub acl: bool,
    pub selinux: bool,
    pub xattrs: bool,
    pub flags: bool,
}

impl Attributes {
    /// The value of attribute `name`, when the file has it.
    pub fn get(&self, name: &[u8]) -> Option<&Value> {
        self.xattrs.iter().find(|x| x.name == name).map(|x| &x.value)
    }

    fn whole(&self, name: &[u8]) -> Option<&[u8]> {
        match self.get(name)? {
            Value::Whole(bytes) => Some(bytes),
            Value::Digest(_) => None,
        }
    }

    pub fn differences(&self, other: &Self) -> Differences {
        let differs = |name: &[u8]| self.get(name) != other.get(name);
        let others = |a: &Self| -> Vec<Xattr> {
            a.xattrs
                .iter()
                .filter(|x| ![CAPABILITY, ACL_ACCESS, ACL_DEFAULT, SELINUX].contains(&x.name.as_slice()))
                .cloned()
                .collect()
        };
        Differences {
            capabilities: differs(CAPABILITY),
            acl: differs(ACL_ACCESS) || differs(ACL_DEFAULT),
            selinux: differs(SELINUX),
            xattrs: others(self) != others(other) || self.not_read != other.not_read,
            flags: self.flags != other.flags,
        }
    }

    /// The file capabilities, decoded (`cap_setuid+ep`).
    pub fn capabilities(&self) -> Option<String> {
        self.get(CAPABILITY).map(|value| match value {
            Value::Whole(bytes) => decode_capabilities(bytes),
            Value::Digest(_) => "unreadable: larger than any capability set".to_string(),
        })
    }

    pub fn acl(&self) -> Option<String> {
        self.get(ACL_ACCESS).map(decode_acl_value)
    }

    pub fn default_acl(&self) -> Option<String> {
        self.get(ACL_DEFAULT).map(decode_acl_value)
    }

    pub fn selinux(&self) -> Option<String> {
        self.whole(SELINUX).map(|label| {
            let label = label.strip_suffix(b"\0").unwrap_or(label);
            String::from_utf8_lossy(label).into_owned()
        })
    }

    /// `security.ima` decoded: a digest or a signature.
    pub fn ima(&self) -> Option<String> {
        self.whole(IMA).map(decode_ima)
    }
}

fn decode_acl_value(value: &Value) -> String {
    match value {
        Value::Whole(bytes) => decode_acl(bytes),
        Value::Digest(_) => "unreadable: larger than any ACL".to_string(),
    }
}

/// Reads the extended attributes of `name` in `dir` (never following it, whatever it is) and
/// takes `flags` from the walk's statx. A filesystem without extended attributes has none.
pub fn read(dir: &OwnedFd, name: &CStr, flags: u64) -> Result<Attributes, Errno> {
    // The directory is named through its descriptor, so no path above it is resolved again.
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = CString::new(path).map_err(|_| Errno::INVAL)?;
    let mut attributes = Attributes {
        flags,
        ..Attributes::default()
    };
    let list = match read_grown(XATTR_LIST_MAX, |buf| rustix::fs::llistxattr(&path, buf)) {
        Ok(list) => list,
        Err(Errno::NOTSUP) => return Ok(attributes),
        Err(errno) => return Err(errno),
    };
    let mut names: Vec<&[u8]> = list.split(|b| *b == 0).filter(|n| !n.is_empty()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() > MAX_XATTRS {
        attributes.not_read = u32::try_from(names.len() - MAX_XATTRS).unwrap_or(u32::MAX);
        // The decoded ones are always read: names sorting before `security.capability` cannot
        // push it past the bound.
        let (decoded, others): (Vec<&[u8]>, Vec<&[u8]>) =
            names.into_iter().partition(|name| DECODED.contains(name));
        let room = MAX_XATTRS - decoded.len();
        names = decoded.into_iter().chain(others.into_iter().take(room)).collect();
        names.sort_unstable();
    }
    for xattr in names {
        let Ok(cname) = CString::new(xattr) else {
            continue;
        };
        match read_grown(XATTR_SIZE_MAX, |buf| rustix::fs::lgetxattr(&path, &cname, buf)) {
            Ok(value) => attributes.xattrs.push(Xattr {
                name: xattr.to_vec(),
                value: Value::of(xattr, &value),
            }),
            // Removed since the list was read.
            Err(Errno::NODATA) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(attributes)
}

/// Calls `read` with a small buffer, then, when the kernel says it is too small, with one of
/// the size it asks for (at most `max`).
fn read_grown(max: usize, read: impl Fn(&mut [u8]) -> Result<usize, Errno>) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 1024];
    loop {
        match read(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Err(Errno::RANGE) if buf.len() < max => {
                let size = (buf.len() * 8).min(max);
                buf.resize(size, 0);
            }
            Err(errno) => return Err(errno),
        }
    }
}

/// Linux capability names by bit, as libcap writes them.
const CAPABILITY_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes)
}

/// A `security.capability` value (`vfs_cap_data`, revisions 1 to 3) as setcap takes it:
/// capabilities grouped by their sets, `cap_net_admin,cap_net_raw+ep cap_sys_time+i`, and a
/// namespaced set's root uid as `[rootid=N]`.
pub fn decode_capabilities(bytes: &[u8]) -> String {
    let Some(magic) = le32(bytes, 0) else {
        return format!("malformed: {} bytes", bytes.len());
    };
    let (words, rootid) = match (magic & 0xff00_0000, bytes.len()) {
        (0x0100_0000, 12) => (1, None),
        (0x0200_0000, 20) => (2, None),
        (0x0300_0000, 24) => (2, le32(bytes, 20)),
        (revision, len) => {
            return format!("malformed: revision {:#x}, {len} bytes", revision >> 24);
        }
    };
    let effective = magic & 1 != 0;
    let mut sets: Vec<(String, Vec<String>)> = Vec::new();
    for bit in 0..32 * words {
        let word = bit / 32;
        let (Some(permitted), Some(inheritable)) = (le32(bytes, 4 + word * 8), le32(bytes, 8 + word * 8))
        else {
            continue;
        };
        let mask = 1u32 << (bit % 32);
        let (p, i) = (permitted & mask != 0, inheritable & mask != 0);
        if !p && !i {
            continue;
        }
        let letters: String = [(effective, 'e'), (i, 'i'), (p, 'p')]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, letter)| *letter)
            .collect();
        let name = CAPABILITY_NAMES
            .get(bit)
            .map_or_else(|| format!("cap_{bit}"), |name| format!("cap_{name}"));
        match sets.iter_mut().find(|(l, _)| *l == letters) {
            Some((_, names)) => names.push(name),
            None => sets.push((letters, vec![name])),
        }
    }
    let mut text: Vec<String> = sets
        .into_iter()
        .map(|(letters, names)| format!("{}+{letters}", names.join(",")))
        .collect();
    if text.is_empty() {
        text.push("none".to_string());
    }
    if let Some(rootid) = rootid {
        text.push(format!("[rootid={rootid}]"));
    }
    text.join(" ")
}

/// A POSIX ACL xattr (version 2) as getfacl's short text, ids numeric:
/// `user::rw-,user:1000:r--,group::r--,mask::r--,other::r--`.
pub fn decode_acl(bytes: &[u8]) -> String {
    if le32(bytes, 0) != Some(2) || !(bytes.len() - 4).is_multiple_of(8) {
        return format!("malformed: {} bytes", bytes.len());
    }
    bytes[4..]
        .chunks_exact(8)
        .map(|entry| {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let perm = u16::from_le_bytes([entry[2], entry[3]]);
            let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let rwx: String = [(4, 'r'), (2, 'w'), (1, 'x')]
                .iter()
                .map(|(bit, c)| if perm & bit != 0 { *c } else { '-' })
                .collect();
            match tag {
                0x01 => format!("user::{rwx}"),
                0x02 => format!("user:{id}:{rwx}"),
                0x04 => format!("group::{rwx}"),
                0x08 => format!("group:{id}:{rwx}"),
                0x10 => format!("mask::{rwx}"),
                0x20 => format!("other::{rwx}"),
                other => format!("tag{other:#x}:{id}:{rwx}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn hash_algorithm(id: u8) -> String {
    match id {
        0 => "md4".into(),
        1 => "md5".into(),
        2 => "sha1".into(),
        3 => "rmd160".into(),
        4 => "sha256".into(),
        5 => "sha384".into(),
        6 => "sha512".into(),
        7 => "sha224".into(),
        17 => "sm3-256".into(),
        other => format!("algorithm {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `security.ima` value: a digest (`digest sha256:...`) or a signature
/// (`signature v2 sha256 keyid 1a2b3c4d`).
pub fn decode_ima(bytes: &[u8]) -> String {
    match bytes {
        [0x01, digest @ ..] => format!("digest sha1:{}", hex(digest)),
        [0x04, algorithm, digest @ ..] => format!("digest {}:{}", hash_algorithm(*algorithm), hex(digest)),
        [kind @ (0x03 | 0x05 | 0x06), 2, algorithm, keyid @ ..] if keyid.len() >= 6 => {
            let what = match kind {
                0x03 => "signature",
                0x05 => "portable EVM signature",
                _ => "fs-verity signature",
            };
            format!(
                "{what} v2 {} keyid {}",
                hash_algorithm(*algorithm),
                hex(&keyid[..4])
            )
        }
        [kind, ..] => format!("type {kind}, {} bytes", bytes.len()),
        [] => "empty".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `setcap cap_setuid+ep`: revision 2, effective, cap_setuid (bit 7) permitted.
    const SETUID_EP: [u8; 20] = [
        0x01, 0, 0, 0x02, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn capabilities_decode_as_setcap_writes_them() {
        assert_eq!(decode_capabilities(&SETUID_EP), "cap_setuid+ep");
        // cap_net_admin and cap_net_raw (bits 12, 13) permitted, cap_sys_time (25) inheritable,
        // not effective; bit 38 (perfmon) in the second word permitted.
        let mut bytes = [0u8; 20];
        bytes[3] = 0x02;
        bytes[4..8].copy_from_slice(&((1u32 << 12) | (1 << 13)).to_le_bytes());
        bytes[8..12].copy_from_slice(&(1u32 << 25).to_le_bytes());
        bytes[12..16].copy_from_slice(&(1u32 << 6).to_le_bytes());
        assert_eq!(
            decode_capabilities(&bytes),
            "cap_net_admin,cap_net_raw,cap_perfmon+p cap_sys_time+i"
        );
        let mut v3 = [0u8; 24];
        v3[..20].copy_from_slice(&SETUID_EP);
        v3[3] = 0x03;
        v3[20..].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(decode_capabilities(&v3), "cap_setuid+ep [rootid=1000]");
        assert_eq!(
            decode_capabilities(&SETUID_EP[..7]),
            "malformed: revision 0x2, 7 bytes"
        );
        assert_eq!(decode_capabilities(b""), "malformed: 0 bytes");
    }

    #[test]
    fn acls_decode_as_getfacl_short_text() {
        let entry = |tag: u16, perm: u16, id: u32| {
            [
                tag.to_le_bytes().as_slice(),
                &perm.to_le_bytes(),
                &id.to_le_bytes(),
            ]
            .concat()
        };
        let bytes = [
            2u32.to_le_bytes().to_vec(),
            entry(0x01, 6, u32::MAX),
            entry(0x02, 5, 1000),
            entry(0x04, 4, u32::MAX),
            entry(0x10, 5, u32::MAX),
            entry(0x20, 0, u32::MAX),
        ]
        .concat();
        assert_eq!(
            decode_acl(&bytes),
            "user::rw-,user:1000:r-x,group::r--,mask::r-x,other::---"
        );
        assert_eq!(decode_acl(&bytes[..7]), "malformed: 7 bytes");
    }

    #[test]
    fn ima_values_decode_to_their_digest_or_signing_key() {
        assert_eq!(decode_ima(&[0x04, 4, 0xab, 0xcd]), "digest sha256:abcd");
        assert_eq!(
            decode_ima(&[0x03, 2, 4, 0x1a, 0x2b, 0x3c, 0x4d, 0x01, 0x00, 0xff]),
            "signature v2 sha256 keyid 1a2b3c4d"
        );
        assert_eq!(decode_ima(&[0x09, 1]), "type 9, 2 bytes");
    }

    #[test]
    fn each_kind_of_attribute_is_told_apart_and_unknown_values_are_kept_only_as_digests() {
        let with = |xattrs: &[(&[u8], &[u8])]| Attributes {
            flags: 0,
            xattrs: xattrs
                .iter()
                .map(|(name, value)| Xattr {
                    name: name.to_vec(),
                    value: Value::of(name, value),
                })
                .collect(),
            not_read: 0,
        };
        let base = with(&[(b"user.origin", b"secret")]);
        assert!(
            matches!(base.get(b"user.origin"), Some(Value::Digest(_))),
            "never kept whole"
        );
        assert_eq!(base.differences(&base), Differences::default());
        let caps = with(&[(CAPABILITY, &SETUID_EP), (b"user.origin", b"secret")]);
        assert_eq!(
            base.differences(&caps),
            Differences {
                capabilities: true,
                ..Differences::default()
            }
        );
        assert_eq!(caps.capabilities().as_deref(), Some("cap_setuid+ep"));
        let labelled = with(&[
            (SELINUX, b"system_u:object_r:bin_t:s0\0"),
            (b"user.origin", b"secret"),
        ]);
        assert_eq!(labelled.selinux().as_deref(), Some("system_u:object_r:bin_t:s0"));
        assert!(base.differences(&labelled).selinux);
        let retagged = with(&[(b"user.origin", b"other")]);
        assert!(base.differences(&retagged).xattrs);
        let immutable = Attributes {
            flags: StatxAttributes::IMMUTABLE.bits(),
            ..base.clone()
        };
        assert!(base.differences(&immutable).flags);
        assert_eq!(flag_names(immutable.flags), ["immutable"]);
    }
}
