//! `MonitoredEntity`: one thing to watch in a workspace (a path, a file's content, a service).
//! The admission rules here are the first line of defence against specs that cannot work;
//! whatever CEL cannot know (an environment variable that expands badly on one node) is
//! reported per node in status instead.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One item to monitor in a FimWorkspace: a Linux path (optionally recursive, with a wildcard
/// in its last segment), a file whose content changes are diffed, a service, or a Windows file,
/// registry key or service.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefim.dev",
    version = "v1alpha1",
    kind = "MonitoredEntity",
    namespaced,
    status = "MonitoredEntityStatus",
    shortname = "fiment",
    category = "kubefim",
    derive = "PartialEq",
    cel,
    validation = crate::name_length_rule("MonitoredEntity"),
    doc = "One item to monitor in a FimWorkspace: a Linux path, a file whose content is diffed, \
           a service, or a Windows file, registry key or service.",
    printcolumn(name = "Workspace", type_ = "string", json_path = ".spec.workspace"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path"),
    printcolumn(name = "Enabled", type_ = "boolean", json_path = ".spec.enabled"),
    printcolumn(name = "Files", type_ = "integer", json_path = ".status.filesMonitored"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"!(self.type in ['LinuxFile', 'FileContent']) || self.path.startsWith('/') || self.path.startsWith('$')"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' is not absolute: a ' + self.type + ' path starts with / or with an environment variable such as $HOME'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"self.type != 'WindowsFile' || self.path.matches('^([A-Za-z]:\\\\|%)')"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' is not absolute: a WindowsFile path starts with a drive such as C:\\ or a variable such as %windir%'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"self.type != 'WindowsRegistry' || self.path.matches('^(HKLM|HKCU|HKCR|HKU|HKCC|HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|HKEY_CLASSES_ROOT|HKEY_USERS|HKEY_CURRENT_CONFIG)\\\\')"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' is not a registry key: start it with a hive such as HKLM\\'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"!(self.type in ['LinuxService', 'WindowsService']) || !self.path.matches('[/\\\\]')"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' is not a service name: for ' + self.type + ' give a unit name or glob such as ssh.service or cron*, not a file path'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"!self.path.matches('[*?][^/\\\\]*[/\\\\]')"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' has a wildcard before its last segment: * and ? may appear only in the last segment, as in /etc/*.conf'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"!self.path.matches('(^|[/\\\\])[.][.]([/\\\\]|$)')"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' contains a .. segment: write the path without ..'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"self.allowBroad || !(self.path in ['/', '/*', '/**'] || (self.recursive && self.path.matches('^/usr/?$')) || self.path.matches('^[A-Za-z]:\\\\?(\\*(\\.\\*)?)?$'))"#
).message(kube::core::cel::Message::Expression(
    r#"'path ' + self.path + ' is too general to monitor: choose a narrower path, or set allowBroad: true if you mean it'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"!has(self.ignoreAttributes) || self.type != 'LinuxService' || self.ignoreAttributes.all(a, a in ['content', 'linkTarget', 'enablement', 'dropIns'])"#
).message(kube::core::cel::Message::Expression(
    r#"'ignoreAttributes names ' + self.ignoreAttributes.filter(a, !(a in ['content', 'linkTarget', 'enablement', 'dropIns']))[0] + ', which a LinuxService does not track: a service tracks content, linkTarget, enablement and dropIns'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    r#"!has(self.ignoreAttributes) || !(self.type in ['LinuxFile', 'FileContent']) || self.ignoreAttributes.all(a, !(a in ['enablement', 'dropIns']))"#
).message(kube::core::cel::Message::Expression(
    r#"'ignoreAttributes names ' + self.ignoreAttributes.filter(a, a in ['enablement', 'dropIns'])[0] + ', which only a LinuxService tracks'"#.into()
)))]
#[x_kube(validation = kube::core::cel::Rule::new(
    "!has(self.maxDepth) || self.recursive"
).message(
    "maxDepth is set but recursive is false: set recursive: true, or remove maxDepth"
))]
pub struct MonitoredEntitySpec {
    /// Name of the FimWorkspace (same namespace) this entity belongs to.
    #[schemars(length(min = 1, max = 253))]
    pub workspace: String,

    /// What the path names: LinuxFile, FileContent, LinuxService, WindowsFile, WindowsRegistry
    /// or WindowsService.
    #[serde(rename = "type")]
    pub entity_type: EntityType,

    /// The path to monitor. Linux: absolute, such as /etc/ssh or /etc/*.conf (a wildcard only
    /// in the last segment); $VAR and ${VAR} are expanded on the node. Services: a unit name or
    /// glob such as ssh.service. Windows: C:\..., %VAR%\..., or a registry key HKLM\....
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,

    /// Also monitor everything below the path.
    #[serde(default)]
    pub recursive: bool,

    /// With recursive: how many directory levels below the path to descend (0: the path's own
    /// entries only). Unset means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4096))]
    pub max_depth: Option<u32>,

    /// Glob patterns on the full path to leave out, such as /etc/ssh/*.bak or **/cache/**.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 1024)))]
    pub exclude: Vec<String>,

    /// Monitor this entity. false keeps its history but stops monitoring it.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Free text shown in `kubectl fim entities`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub description: String,

    /// Allow a very general path such as /, /* or a recursive /usr, which can flood a node
    /// with work and the cluster with changes.
    #[serde(default)]
    pub allow_broad: bool,

    /// Attributes whose changes are not reported for this entity, as AIDE's rules leave them
    /// out (such as `[mtime, ctime]`, or `[xattrs]` where a tool tags files). LinuxFile and
    /// FileContent track content, size, mode, owner, group, mtime, ctime, inode, linkTarget,
    /// fileType, mount, capabilities, xattrs, acl, selinux and flags; LinuxService tracks
    /// content, linkTarget, enablement and dropIns. A modification left with no reported
    /// attribute is not reported; the baseline still records the new state. Additions and
    /// removals are always reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ignore_attributes: Vec<crate::filechange::ChangedAttribute>,
}

/// What a MonitoredEntity's path names.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    /// Linux files and directories: attributes and content hash.
    LinuxFile,
    /// Linux files whose content is kept so changes carry a unified diff.
    FileContent,
    /// systemd units: unit files and their enablement.
    LinuxService,
    /// Windows files and directories.
    WindowsFile,
    /// Windows registry keys.
    WindowsRegistry,
    /// Windows services.
    WindowsService,
}

impl EntityType {
    /// Whether an agent on a Linux node can serve this type.
    pub fn is_linux(self) -> bool {
        matches!(self, Self::LinuxFile | Self::FileContent | Self::LinuxService)
    }

    /// The FileChange type that changes of this entity are reported as.
    pub fn change_type(self) -> crate::ChangeType {
        match self {
            Self::LinuxFile | Self::WindowsFile => crate::ChangeType::Files,
            Self::FileContent => crate::ChangeType::FileContent,
            Self::LinuxService | Self::WindowsService => crate::ChangeType::Services,
            Self::WindowsRegistry => crate::ChangeType::Registry,
        }
    }
}

impl std::fmt::Display for EntityType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What the operator observed for this entity across the workspace's nodes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitoredEntityStatus {
    /// Ready, and Invalid when the spec cannot be served (for example a missing workspace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Nodes on which the entity is being monitored without error.
    #[serde(default)]
    pub nodes_active: u32,
    /// Files monitored for this entity, summed over nodes.
    #[serde(default)]
    pub files_monitored: u64,
    /// Per-node errors (at most 20), such as a path that does not exist or a variable that is
    /// not set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<NodeError>,
    /// When the newest change of this entity was detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
}

/// An error one node reported for an entity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeError {
    /// The node.
    pub node: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

fn default_true() -> bool {
    true
}
