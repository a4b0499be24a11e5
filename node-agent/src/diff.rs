//! Change records: comparing two states of one path, building the unified diff of FileContent
//! entities, and turning an agent-side change into the FileChange spec of the API. Pure
//! functions, no I/O.

use kubefim_crds::{
    Attribution, ChangeCategory, ChangeSource, ChangeType, FileChangeSpec, FileState, FileType,
    filechange::{
        AggregatedChanges, ChangedAttribute, ContentWithheld, DropInState, MountedFilesystem, XattrState,
    },
};

use crate::{attributes::Attributes, records::Record};

/// One detected change, before it is reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub namespace: String,
    pub workspace: String,
    pub entity: String,
    pub change_type: ChangeType,
    pub category: ChangeCategory,
    pub path: String,
    pub previous: Option<Record>,
    pub current: Option<Record>,
    pub changed: Vec<ChangedAttribute>,
    pub diff: Option<ContentDiff>,
    pub detected_at: jiff::Timestamp,
    pub source: ChangeSource,
    /// Set when a FileContent change of a sensitive path carries no diff on purpose.
    pub content_withheld: Option<ContentWithheld>,
    /// What explains the change (a package operation), when something does.
    pub attribution: Option<Attribution>,
    /// Aggregated only: the changes it stands for.
    pub aggregated: Option<AggregatedChanges>,
    /// Mount changes: what is mounted at the path now.
    pub mount: Option<MountedFilesystem>,
    /// Why no package operation explains it, when the package databases know its path.
    pub unexplained: Option<String>,
    /// The process that made it (realtime, actors on).
    pub actor: Option<kubefim_crds::filechange::Actor>,
}

/// A unified diff, possibly cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentDiff {
    pub text: String,
    pub truncated: bool,
}

/// Which attributes differ between two states of the same path, in a stable order.
pub fn changed_attributes(old: &Record, new: &Record) -> Vec<ChangedAttribute> {
    use ChangedAttribute as A;
    let (o, n) = (&old.meta, &new.meta);
    let mut changed = Vec::new();
    let content_differs = match (&old.digest, &new.digest) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    };
    if o.file_type != n.file_type {
        changed.push(A::FileType);
    }
    if content_differs {
        changed.push(A::Content);
    }
    if o.file_type == FileType::Unit && n.file_type == FileType::Unit {
        // A unit's file metadata is the file entities' business; for services what matters is
        // its definition, where it points (masked, aliased) and whether it is enabled.
        if old.link_target != new.link_target {
            changed.push(A::LinkTarget);
        }
        if old.enabled != new.enabled {
            changed.push(A::Enablement);
        }
        if old.drop_ins != new.drop_ins {
            changed.push(A::DropIns);
        }
        return changed;
    }
    // A directory's size is an artefact of its entry table; its mtime already tells of entries.
    if o.size != n.size && n.file_type != FileType::Directory {
        changed.push(A::Size);
    }
    if o.mode != n.mode {
        changed.push(A::Mode);
    }
    if o.uid != n.uid {
        changed.push(A::Owner);
    }
    if o.gid != n.gid {
        changed.push(A::Group);
    }
    if o.mtime != n.mtime {
        changed.push(A::Mtime);
    }
    if o.ctime != n.ctime {
        changed.push(A::Ctime);
    }
    // A mount root's flag alone is no change (records from before it was kept lack it); a
    // mount appearing or going also changes the object at the path.
    if o.mount_root != n.mount_root && (o.ino, o.dev) != (n.ino, n.dev) {
        changed.push(A::Mount);
    }
    if o.ino != n.ino || o.dev != n.dev {
        changed.push(A::Inode);
    }
    if old.link_target != new.link_target {
        changed.push(A::LinkTarget);
    }
    // Attributes are compared only when both states read them: the first reading after an
    // upgrade of the agent, or one that failed, is no change.
    if let (Some(before), Some(after)) = (&old.attributes, &new.attributes) {
        let differences = before.differences(after);
        for (differs, attribute) in [
            (differences.capabilities, A::Capabilities),
            (differences.xattrs, A::Xattrs),
            (differences.acl, A::Acl),
            (differences.selinux, A::Selinux),
            (differences.flags, A::Flags),
        ] {
            if differs {
                changed.push(attribute);
            }
        }
    }
    changed
}

/// A unified diff of two text contents, cut at `max_bytes` on a line boundary. None when
/// either side is binary (a NUL byte, or not UTF-8).
pub fn unified_diff(path: &str, old: &[u8], new: &[u8], max_bytes: usize) -> Option<ContentDiff> {
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return None;
    };
    if old.contains('\0') || new.contains('\0') {
        return None;
    }
    let full = similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .to_string();
    if full.len() <= max_bytes {
        return Some(ContentDiff {
            text: full,
            truncated: false,
        });
    }
    let mut cut = full[..full.floor_char_boundary(max_bytes)].to_string();
    if let Some(last_newline) = cut.rfind('\n') {
        cut.truncate(last_newline + 1);
    }
    Some(ContentDiff {
        text: cut,
        truncated: true,
    })
}

fn timestamp(seconds: i64, nanos: u32) -> String {
    i32::try_from(nanos)
        .ok()
        .and_then(|nanos| jiff::Timestamp::new(seconds, nanos).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The API form of a recorded state.
pub fn file_state(record: &Record) -> FileState {
    let m = &record.meta;
    let attributes = record.attributes.as_ref();
    FileState {
        file_type: Some(m.file_type),
        size: m.size,
        mode: format!("{:04o}", m.mode),
        uid: m.uid,
        gid: m.gid,
        mtime: timestamp(m.mtime.0, m.mtime.1),
        ctime: timestamp(m.ctime.0, m.ctime.1),
        inode: m.ino,
        nlink: m.nlink,
        link_target: record
            .link_target
            .as_ref()
            .map(|t| String::from_utf8_lossy(t).into_owned()),
        hash: record.digest.map(|d| d.to_hex()),
        hash_algorithm: record.digest.map(|d| d.algorithm),
        enabled: record.enabled,
        mount_root: m.mount_root,
        capabilities: attributes.and_then(Attributes::capabilities),
        acl: attributes.and_then(Attributes::acl),
        default_acl: attributes.and_then(Attributes::default_acl),
        selinux: attributes.and_then(Attributes::selinux),
        xattrs: attributes.map_or_else(Vec::new, |a| {
            a.xattrs
                .iter()
                .map(|x| XattrState {
                    name: String::from_utf8_lossy(&x.name).into_owned(),
                    digest: blake3::Hash::from_bytes(x.value.digest()).to_hex().to_string(),
                    decoded: (x.name == crate::attributes::IMA).then(|| a.ima()).flatten(),
                })
                .collect()
        }),
        xattrs_not_read: attributes.map_or(0, |a| a.not_read),
        flags: attributes.map_or_else(Vec::new, |a| crate::attributes::flag_names(a.flags)),
        drop_ins: record
            .drop_ins
            .iter()
            .map(|d| DropInState {
                path: d.path.clone(),
                hash: d.digest.map(|h| h.to_hex()),
                link_target: d
                    .link_target
                    .as_ref()
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            })
            .collect(),
    }
}

/// The drop-ins that differ between two states of a unit (added, changed, masked, removed), by
/// path, in order.
pub fn changed_drop_ins(previous: Option<&Record>, current: Option<&Record>) -> Vec<String> {
    let (before, after) = (
        previous.map_or(&[][..], |r| r.drop_ins.as_slice()),
        current.map_or(&[][..], |r| r.drop_ins.as_slice()),
    );
    let mut paths: Vec<String> = before
        .iter()
        .filter(|d| !after.contains(d))
        .chain(after.iter().filter(|d| !before.contains(d)))
        .map(|d| d.path.clone())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

impl Change {
    /// The FileChange spec of this change, as created in the cluster and printed as a JSON line.
    pub fn to_spec(&self, node: &str) -> FileChangeSpec {
        FileChangeSpec {
            workspace: self.workspace.clone(),
            entity: self.entity.clone(),
            node_name: node.to_string(),
            change_type: self.change_type,
            category: self.category,
            path: self.path.clone(),
            detected_at: self.detected_at.to_string(),
            source: self.source,
            changed_attributes: self.changed.clone(),
            previous: self.previous.as_ref().map(file_state),
            current: self.current.as_ref().map(file_state),
            content_diff: self.diff.as_ref().map(|d| d.text.clone()),
            content_diff_truncated: self.diff.as_ref().is_some_and(|d| d.truncated),
            aggregated: self.aggregated.clone(),
            content_withheld: self.content_withheld,
            attribution: self.attribution.clone(),
            changed_drop_ins: changed_drop_ins(self.previous.as_ref(), self.current.as_ref()),
            mount: self.mount.clone(),
            unexplained: self.unexplained.clone(),
            actor: self.actor.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use kubefim_crds::HashAlgorithm;

    use super::*;
    use crate::{hash::Digest, hostfs::FileMeta};

    fn record() -> Record {
        Record {
            meta: FileMeta {
                file_type: FileType::File,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 10,
                mtime: (100, 5),
                ctime: (100, 5),
                ino: 7,
                dev: 1,
                nlink: 1,
                mount_root: false,
                flags: 0,
            },
            link_target: None,
            digest: Some(Digest {
                algorithm: HashAlgorithm::Blake3,
                bytes: [1; 32],
            }),
            hashed_at: 100,
            enabled: None,
            drop_ins: Vec::new(),
            hidden: false,
            attributes: None,
        }
    }

    #[test]
    fn each_attribute_is_named_when_it_differs() {
        use ChangedAttribute as A;
        let old = record();
        let mut new = old.clone();
        assert!(changed_attributes(&old, &new).is_empty());
        new.meta.mode = 0o4755;
        new.meta.uid = 1;
        new.meta.gid = 2;
        new.meta.ctime = (101, 0);
        assert_eq!(
            changed_attributes(&old, &new),
            [A::Mode, A::Owner, A::Group, A::Ctime]
        );
        let mut replaced = old.clone();
        replaced.digest = Some(Digest {
            algorithm: HashAlgorithm::Blake3,
            bytes: [2; 32],
        });
        replaced.meta.size = 11;
        replaced.meta.ino = 8;
        assert_eq!(
            changed_attributes(&old, &replaced),
            [A::Content, A::Size, A::Inode]
        );
    }

    #[test]
    fn unknown_content_is_not_reported_as_changed() {
        let old = record();
        let mut new = old.clone();
        new.digest = None;
        assert!(changed_attributes(&old, &new).is_empty());
    }

    #[test]
    fn diff_is_unified_and_cut_on_a_line_boundary() {
        let old = "a\nb\nc\n".repeat(50);
        let new = old.replace('b', "B");
        let full = unified_diff("/etc/x", old.as_bytes(), new.as_bytes(), 1 << 20).unwrap();
        assert!(!full.truncated && full.text.starts_with("--- /etc/x\n+++ /etc/x\n@@"));
        assert!(full.text.contains("-b\n+B\n"));
        let cut = unified_diff("/etc/x", old.as_bytes(), new.as_bytes(), 100).unwrap();
        assert!(cut.truncated && cut.text.len() <= 100 && cut.text.ends_with('\n'));
    }

    #[test]
    fn binary_content_gets_no_diff() {
        assert!(unified_diff("/bin/x", b"\x7fELF\0\x01", b"\x7fELF\0\x02", 1024).is_none());
        assert!(unified_diff("/x", b"\xff\xfe", b"ok", 1024).is_none());
    }

    #[test]
    fn spec_states_carry_octal_mode_and_nanosecond_times() {
        let state = file_state(&record());
        assert_eq!(state.mode, "0644");
        assert_eq!(state.mtime, "1970-01-01T00:01:40.000000005Z");
        assert_eq!(state.hash.unwrap().len(), 64);
    }
}
