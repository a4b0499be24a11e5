//! `FileChange`: one detected change, written by the agent of the node it happened on. Its name
//! is derived from what it describes, so a create retried after a lost response is idempotent.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One change detected on one node: a file, file content, service or registry key that was
/// added, modified or removed, with its attributes before and after. Aggregated changes stand for
/// many changes that exceeded a scan's reporting limit.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefim.dev",
    version = "v1alpha1",
    kind = "FileChange",
    namespaced,
    shortname = "fc",
    category = "kubefim",
    derive = "PartialEq",
    doc = "One change detected on one node: a file, file content, service or registry key that was \
           added, modified or removed, with its attributes before and after.",
    selectable = ".spec.nodeName",
    selectable = ".spec.category",
    selectable = ".spec.type",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeName"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Category", type_ = "string", json_path = ".spec.category"),
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path"),
    printcolumn(name = "Attribution", type_ = "string", json_path = ".spec.attribution.kind"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct FileChangeSpec {
    /// The FimWorkspace the change belongs to.
    pub workspace: String,
    /// The MonitoredEntity (or recommended item, prefixed `recommended.`) that covers the path.
    pub entity: String,
    /// The node the change happened on.
    pub node_name: String,
    /// Files, FileContent, Services or Registry.
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    /// Added, Modified, Removed, or Aggregated for a folded group of changes.
    pub category: ChangeCategory,
    /// The path on the node (a unit name for services). Bytes that are not UTF-8 are shown as
    /// U+FFFD.
    pub path: String,
    /// When the agent detected the change (RFC 3339, nanoseconds).
    pub detected_at: String,
    /// Scan for a scheduled scan, Realtime for a change seen as it happened.
    pub source: ChangeSource,
    /// Which attributes differ between previous and current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_attributes: Vec<ChangedAttribute>,
    /// The state before the change (absent for Added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<FileState>,
    /// The state after the change (absent for Removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<FileState>,
    /// FileContent only: a unified diff from previous to current content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_diff: Option<String>,
    /// The diff was cut at the workspace's content.maxDiffBytes.
    #[serde(default)]
    pub content_diff_truncated: bool,
    /// Aggregated only: what the folded changes were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregated: Option<AggregatedChanges>,
    /// Why the content diff was not taken although the entity is FileContent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_withheld: Option<ContentWithheld>,
    /// Services: the drop-ins added, changed, masked or removed, by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_drop_ins: Vec<String>,
    /// What explains the change, when something does: a package operation whose database
    /// vouches for the new state, or an accepted baseline. Absent: unexplained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// Mount changes: what is mounted at the path now (absent when it was unmounted, or when
    /// the mount was gone again before the node's mount table was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<MountedFilesystem>,
    /// Unexplained changes to a path the package databases know (a package owns it or did, or
    /// it is an update-alternatives link): why no package operation explains it, such as "its
    /// content does not match the digest dpkg records for coreutils".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexplained: Option<String>,
    /// Realtime changes of a workspace with `scan.actors: On`: the process that made the
    /// change, as fanotify and /proc on the node named it. Each part is absent when it could
    /// not be learned; the whole is absent when no event named a process (a scheduled scan, an
    /// event queue overflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// The process behind a change.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Its process id in the node's PID namespace.
    pub pid: u32,
    /// The path of its executable, as its own mount namespace sees it (a container's path
    /// inside the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Its name as the kernel keeps it (`comm`, at most 15 bytes): known for a moment after
    /// it exited, when its executable and command line no longer are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its command line, arguments joined by spaces, cut at 1 KiB (ending in `…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// Its real user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The user name of `uid` in the node's /etc/passwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its real group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The user id of its login session (audit loginuid), kept across su and sudo: who logged
    /// in. Absent for processes no login started (daemons, containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// Its audit session id, when it belongs to a login session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u32>,
    /// Its parent's process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
    /// Its parent's executable (a shell, sshd, containerd-shim...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_executable: Option<String>,
    /// Its cgroup path (the unified hierarchy's, or the first of cgroup v1's that names a
    /// container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The container it runs in, from its cgroup path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ActorContainer>,
    /// The pod of that container: its uid from the cgroup path, its namespace and name from the
    /// API server (pods of the agent's own node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ActorPod>,
    /// The process had exited before it could be read: only what is given was learned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exited: bool,
    /// The process ran another program (exec) within a second of the change, perhaps before it
    /// was read: what it ran when it made the change is not known, so its executable, name and
    /// command line are left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec_after_change: bool,
}

/// A container, as its runtime names it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ActorContainer {
    /// The container id (64 hex digits).
    pub id: String,
    /// containerd, cri-o or docker, as the cgroup path names it; absent where it names the
    /// container by its id alone (containerd and Docker under the cgroupfs driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

/// A pod.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ActorPod {
    /// The pod's uid, as its cgroup path names it.
    pub uid: String,
    /// Its namespace; absent when the API server had no pod of that uid on this node (gone,
    /// or not asked: standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name; absent as the namespace is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What explains a change.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    /// Package: the node's package database explains it. BaselineAccepted: a baseline accept
    /// (the workspace's baseline.revision, or the agent's `update`) took it as the new baseline.
    pub kind: AttributionKind,
    /// Package and OperationUnverified: the package manager whose database explains the change
    /// (for OperationUnverified, absent when packages of several managers were operated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<PackageManager>,
    /// Package: the package that owns the path (absent for a database file changed by an
    /// operation on several packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Package: its version when the baseline was taken (absent when it was not installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// Package: its version now (absent when it was removed); equal to fromVersion for a
    /// reinstall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    /// Package: the new content was hashed with the database's own algorithm and matches the
    /// digest the database records for the path. false: attributed by ownership alone (a
    /// directory, a symlink, a removed file, or a database file).
    #[serde(default)]
    pub digest_verified: bool,
    /// BaselineAccepted: the baseline revision that was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// OperationUnverified: the packages operated since the workspace's baseline last saw the
    /// package databases, by name (at most 16; `package` names it when there was one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operated_packages: Vec<String>,
}

/// What kind of explanation a change has.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttributionKind {
    /// A package install, upgrade, reinstall or removal.
    Package,
    /// A baseline accept.
    BaselineAccepted,
    /// A path no package owns changed while packages were operated (maintainer scripts and
    /// triggers write such files: ld.so.cache, /etc/shells, /etc/passwd, man-db caches): the
    /// operation is named, nothing vouches for the new state (digestVerified is false). Never
    /// given to a path a package owns. Also a package manager's empty lock file whose times
    /// alone changed: the manager took its lock (operatedPackages may then be empty).
    OperationUnverified,
}

/// A package manager whose database the agent reads.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    /// Debian and Ubuntu: /var/lib/dpkg.
    Dpkg,
    /// Fedora, RHEL, SUSE, Amazon Linux: /var/lib/rpm/rpmdb.sqlite.
    Rpm,
    /// Alpine: /lib/apk/db/installed.
    Apk,
}

impl PackageManager {
    /// Its name as it appears in metrics and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dpkg => "dpkg",
            Self::Rpm => "rpm",
            Self::Apk => "apk",
        }
    }
}

/// Why a FileContent change carries no diff.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentWithheld {
    /// The path holds a secret (see the workspace's content.revealSensitive); the change keeps
    /// its hashes.
    SensitivePath,
}

/// The kind of thing that changed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeType {
    /// A monitored file or directory.
    Files,
    /// A FileContent file; the change carries a diff.
    FileContent,
    /// A service unit or its enablement.
    Services,
    /// A Windows registry key.
    Registry,
}

/// What happened.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeCategory {
    /// It appeared.
    Added,
    /// Its content or attributes changed.
    Modified,
    /// It disappeared.
    Removed,
    /// Many changes folded into one because a scan exceeded reporting.maxChangesPerScan.
    Aggregated,
}

/// How the change was found.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeSource {
    /// A scheduled full scan.
    Scan,
    /// Realtime detection between scans.
    Realtime,
}

/// An attribute that can differ between two states.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum ChangedAttribute {
    /// The content hash.
    Content,
    /// The size in bytes.
    Size,
    /// Permission bits.
    Mode,
    /// The owning user id.
    Owner,
    /// The owning group id.
    Group,
    /// Modification time.
    Mtime,
    /// Inode change time.
    Ctime,
    /// Inode number (the file was replaced).
    Inode,
    /// Where a symbolic link points.
    LinkTarget,
    /// Regular file, directory, symlink...
    FileType,
    /// Whether a service is enabled.
    Enablement,
    /// Services: a drop-in that applies to the unit was added, changed, masked or removed
    /// (`changedDropIns` names them).
    DropIns,
    /// A filesystem was mounted over the path or unmounted from it (`mount` says what is
    /// mounted there now). What a mount covers is kept in the baseline, not reported removed.
    Mount,
    /// File capabilities (the `security.capability` extended attribute), such as
    /// `cap_setuid+ep`.
    Capabilities,
    /// Extended attributes other than capabilities, ACLs and the SELinux label: one added,
    /// removed, or with a new value.
    Xattrs,
    /// A POSIX ACL (`system.posix_acl_access` or `system.posix_acl_default`).
    Acl,
    /// The SELinux label (`security.selinux`).
    Selinux,
    /// Inode flags such as immutable or append-only (`chattr +i`, `+a`).
    Flags,
}

impl ChangedAttribute {
    /// Its name as the API writes it (`linkTarget`), for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Size => "size",
            Self::Mode => "mode",
            Self::Owner => "owner",
            Self::Group => "group",
            Self::Mtime => "mtime",
            Self::Ctime => "ctime",
            Self::Inode => "inode",
            Self::LinkTarget => "linkTarget",
            Self::FileType => "fileType",
            Self::Enablement => "enablement",
            Self::DropIns => "dropIns",
            Self::Mount => "mount",
            Self::Capabilities => "capabilities",
            Self::Xattrs => "xattrs",
            Self::Acl => "acl",
            Self::Selinux => "selinux",
            Self::Flags => "flags",
        }
    }
}

/// The type of a filesystem object.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe (never opened).
    Fifo,
    /// A Unix socket (never opened).
    Socket,
    /// A character device (never opened).
    CharDevice,
    /// A block device (never opened).
    BlockDevice,
    /// A systemd unit (services).
    Unit,
}

/// The attributes of a file (or unit) at one point in time.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FileState {
    /// File, directory, symlink, fifo, socket, charDevice, blockDevice or unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<FileType>,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Permission bits in octal, such as 0644.
    #[serde(default)]
    pub mode: String,
    /// Owning user id.
    #[serde(default)]
    pub uid: u32,
    /// Owning group id.
    #[serde(default)]
    pub gid: u32,
    /// Modification time (RFC 3339, nanoseconds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mtime: String,
    /// Inode change time (RFC 3339, nanoseconds).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ctime: String,
    /// Inode number.
    #[serde(default)]
    pub inode: u64,
    /// Number of hard links.
    #[serde(default)]
    pub nlink: u64,
    /// Where a symbolic link points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// Content hash in hex (regular files up to scan.maxHashSize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// blake3 or sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<crate::HashAlgorithm>,
    /// Services: whether the unit is enabled (linked from a .wants or .requires directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Services: the drop-ins that apply to the unit (`<unit>.d/*.conf` and the prefix and
    /// type-wide directories), of each file name the one of highest precedence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_ins: Vec<DropInState>,
    /// The path is the root of a mount (something is mounted there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mount_root: bool,
    /// File capabilities, decoded as setcap writes them (`cap_net_raw+ep`; a namespaced
    /// capability set adds `[rootid=N]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<String>,
    /// The access ACL beyond the mode bits, as text (`user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::r-x`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// A directory's default ACL, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_acl: Option<String>,
    /// The SELinux label (`system_u:object_r:bin_t:s0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Every extended attribute by name, with a digest of its value (capabilities, ACLs and
    /// the SELinux label included, decoded above).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<XattrState>,
    /// Extended attributes beyond the first 256 of the file, by count: their names and values
    /// were not read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub xattrs_not_read: u32,
    /// Inode flags set: immutable, append, nodump, compressed, encrypted, verity, dax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One extended attribute of a file.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct XattrState {
    /// Its name, such as `user.origin` or `security.ima`.
    pub name: String,
    /// The BLAKE3 digest of its value, in hex.
    pub digest: String,
    /// The value decoded, for the attributes whose format is known (`security.ima`: its digest
    /// or signature; capabilities, ACLs and the SELinux label are shown in their own fields).
    /// Other values are never shown: they may hold anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<String>,
}

/// A filesystem mounted at a path, as the node's mount table describes it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct MountedFilesystem {
    /// The filesystem type (tmpfs, ext4, overlay...).
    pub fs_type: String,
    /// The mount source (a device, tmpfs, overlay...).
    pub source: String,
    /// The directory of the source filesystem that is mounted (/ unless a bind mount of a
    /// subdirectory).
    pub root: String,
}

/// One drop-in of a unit.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DropInState {
    /// Its path on the node.
    pub path: String,
    /// Content hash in hex (a regular file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Where it links to (/dev/null masks the drop-ins of its name below it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

/// What an Aggregated FileChange stands for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedChanges {
    /// How many changes were folded.
    pub count: u64,
    /// The folded changes by category.
    pub by_category: crate::workspace::CategoryCounts,
    /// Up to 20 of the folded paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_paths: Vec<String>,
}

/// At most this many sample paths are kept in an Aggregated change.
pub const MAX_SAMPLE_PATHS: usize = 20;

/// The deterministic object name of a change: the same (node, path, category, detectedAt)
/// always yields the same name, so a retried create meets AlreadyExists instead of duplicating.
pub fn change_name(node: &str, path: &str, category: ChangeCategory, detected_at: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in [node, path, &format!("{category:?}"), detected_at] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    let hex = hasher.finalize().to_hex();
    format!("fc-{}", &hex[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_is_named_as_the_api_serialises_it() {
        for attribute in [
            ChangedAttribute::Content,
            ChangedAttribute::Size,
            ChangedAttribute::Mode,
            ChangedAttribute::Owner,
            ChangedAttribute::Group,
            ChangedAttribute::Mtime,
            ChangedAttribute::Ctime,
            ChangedAttribute::Inode,
            ChangedAttribute::LinkTarget,
            ChangedAttribute::FileType,
            ChangedAttribute::Enablement,
            ChangedAttribute::DropIns,
        ] {
            assert_eq!(serde_json::to_value(attribute).unwrap(), attribute.as_str());
        }
    }

    #[test]
    fn change_name_is_deterministic_and_distinguishes_each_input() {
        let base = change_name(
            "n1",
            "/etc/passwd",
            ChangeCategory::Modified,
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            base,
            change_name(
                "n1",
                "/etc/passwd",
                ChangeCategory::Modified,
                "2026-01-01T00:00:00Z"
            )
        );
        assert!(base.starts_with("fc-") && base.len() == 27);
        for other in [
            change_name(
                "n2",
                "/etc/passwd",
                ChangeCategory::Modified,
                "2026-01-01T00:00:00Z",
            ),
            change_name(
                "n1",
                "/etc/shadow",
                ChangeCategory::Modified,
                "2026-01-01T00:00:00Z",
            ),
            change_name(
                "n1",
                "/etc/passwd",
                ChangeCategory::Removed,
                "2026-01-01T00:00:00Z",
            ),
            change_name(
                "n1",
                "/etc/passwd",
                ChangeCategory::Modified,
                "2026-01-01T00:00:01Z",
            ),
        ] {
            assert_ne!(base, other);
        }
    }
}
