//! `FimWorkspace`: the unit an operator enables, configures and reads back. It selects nodes,
//! turns on the recommended catalog, and sets scan, reporting, retention and content limits
//! for every MonitoredEntity that names it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A File Integrity Monitoring workspace: which nodes are monitored, which recommended items are
/// on, how often nodes are scanned, and how long detected changes are kept. MonitoredEntity
/// objects in the same namespace add custom items to it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefim.dev",
    version = "v1alpha1",
    kind = "FimWorkspace",
    namespaced,
    status = "FimWorkspaceStatus",
    shortname = "fimws",
    category = "kubefim",
    derive = "PartialEq",
    cel,
    validation = crate::name_length_rule("FimWorkspace"),
    doc = "A File Integrity Monitoring workspace: which nodes are monitored, which recommended items \
           are on, how often nodes are scanned, and how long detected changes are kept.",
    printcolumn(name = "Enabled", type_ = "boolean", json_path = ".spec.enabled"),
    printcolumn(
        name = "Nodes",
        type_ = "string",
        json_path = ".status.nodesSummary",
        description = "nodes reporting / nodes selected"
    ),
    printcolumn(name = "Changes-7d", type_ = "integer", json_path = ".status.changes.last7d"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct FimWorkspaceSpec {
    /// Monitoring is on for every selected node. false stops all scanning for this workspace but
    /// keeps its recorded changes.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Nodes this workspace monitors, by label. Empty selects every node.
    #[serde(default)]
    pub node_selector: LabelSelector,

    /// The built-in recommended items (sensitive binaries, configs, cron, sudoers, ssh keys,
    /// Kubernetes manifests) and the ones opted out of.
    #[serde(default)]
    pub recommended: RecommendedSpec,

    /// How and how often nodes are scanned.
    #[serde(default)]
    pub scan: ScanSpec,

    /// Limits on how many FileChange objects one scan of one node creates.
    #[serde(default)]
    pub reporting: ReportingSpec,

    /// How long FileChange history is kept.
    #[serde(default)]
    pub retention: RetentionSpec,

    /// Limits for FileContent entities, whose content is kept to produce diffs.
    #[serde(default)]
    pub content: ContentSpec,

    /// Attribution of changes to package operations, from each node's package database.
    #[serde(default)]
    pub packages: PackagesSpec,

    /// The baseline every selected node compares against.
    #[serde(default)]
    pub baseline: BaselineSpec,
}

/// The recommended catalog switch and its per-item opt-outs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedSpec {
    /// Monitor the recommended items of the node's operating system.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Catalog ids to leave out (see `kubectl fim entities`), like clearing a checkbox.
    #[serde(default)]
    #[schemars(length(max = 128), inner(length(max = 63)))]
    pub exclude: Vec<String>,
}

impl Default for RecommendedSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            exclude: Vec::new(),
        }
    }
}

/// Content hash used for change detection.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgorithm {
    /// BLAKE3: fast and parallel; the default.
    #[default]
    Blake3,
    /// SHA-256: for environments whose policy requires it.
    Sha256,
}

/// Scan schedule and hashing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanSpec {
    /// Time between full scans of a node, such as 15m or 1h; at least 1m.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::cel::Rule::new(
        "self.matches('^([0-9]+(h|m|s))+$') && duration(self) >= duration('1m')"
    ).message(kube::core::cel::Message::Expression(
        "'scan.interval ' + self + ' is not allowed: write a duration of at least 1m in h, m and s, such as 15m or 1h30m'".into()
    )))]
    pub interval: String,

    /// Report changes as they happen (inotify) between full scans.
    #[serde(default = "default_true")]
    pub realtime: bool,

    /// Re-hash every file after this long even when its metadata is unchanged, such as 24h.
    #[serde(default = "default_rehash_every")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = duration_rule("scan.rehashEvery"))]
    pub rehash_every: String,

    /// Content hash algorithm.
    #[serde(default)]
    pub hash_algorithm: HashAlgorithm,

    /// Files larger than this are tracked by metadata only, such as 1Gi.
    #[serde(default = "default_max_hash_size")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = size_rule("scan.maxHashSize"))]
    pub max_hash_size: String,

    /// At most this many bytes per second read by this workspace's scans on each node, such as
    /// 20Mi, to spread the re-hash of a large tree over time; unset for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = size_rule("scan.maxReadRate"))]
    pub max_read_rate: Option<String>,

    /// Name the process behind each change seen in realtime (its pid, executable, command
    /// line, user, login session, container and pod), from fanotify and /proc on the node. On
    /// only where the agent runs with what fanotify needs (the chart's `agent.actors.enabled`:
    /// CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH and the host's PID namespace); the
    /// node's FimNodeStatus says whether it is active. Changes found by a scheduled scan carry
    /// no actor: nothing saw them happen.
    #[serde(default)]
    pub actors: ActorsMode,
}

/// Whether realtime changes name the process that made them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActorsMode {
    #[default]
    Off,
    On,
}

impl Default for ScanSpec {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            realtime: true,
            rehash_every: default_rehash_every(),
            hash_algorithm: HashAlgorithm::default(),
            max_hash_size: default_max_hash_size(),
            max_read_rate: None,
            actors: ActorsMode::Off,
        }
    }
}

/// Reporting limits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportingSpec {
    /// At most this many FileChange objects per node per scan; the rest are folded into one
    /// Aggregated FileChange. Metrics still count every change.
    #[serde(default = "default_max_changes_per_scan")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_changes_per_scan: u32,
}

impl Default for ReportingSpec {
    fn default() -> Self {
        Self {
            max_changes_per_scan: default_max_changes_per_scan(),
        }
    }
}

/// History retention.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// FileChange objects older than this are deleted, such as 14d.
    #[serde(default = "default_max_age")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = duration_rule("retention.maxAge"))]
    pub max_age: String,

    /// At most this many FileChange objects are kept per node; the oldest go first.
    #[serde(default = "default_max_changes_per_node")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_changes_per_node: u32,

    /// At most this many FileChange objects are kept for the whole workspace; the oldest go
    /// first. etcd is not a log store: the JSON lines on the agents' stdout are the long-term
    /// record for a log pipeline.
    #[serde(default = "default_max_changes")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_changes: u32,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            max_age: default_max_age(),
            max_changes_per_node: default_max_changes_per_node(),
            max_changes: default_max_changes(),
        }
    }
}

/// The largest `content.maxFileSize`: content kept on the node for diffs, per file.
pub const MAX_CONTENT_FILE_SIZE: u64 = 5 << 20;
/// The largest `content.maxDiffBytes`: a FileChange stays far below what the API server
/// accepts (etcd's 1.5 MiB per object).
pub const MAX_DIFF_BYTES: u64 = 256 << 10;

/// FileContent limits, and whether secrets may be diffed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContentSpec {
    /// Content of FileContent files up to this size is kept to produce diffs, such as 1Mi; at
    /// most 5Mi.
    #[serde(default = "default_content_max_file_size")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = size_rule("content.maxFileSize"))]
    #[x_kube(validation = size_bound_rule("content.maxFileSize", MAX_CONTENT_FILE_SIZE, "5Mi"))]
    pub max_file_size: String,

    /// A diff longer than this is cut and flagged as truncated, such as 16Ki; at most 256Ki.
    #[serde(default = "default_max_diff_bytes")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = size_rule("content.maxDiffBytes"))]
    #[x_kube(validation = size_bound_rule("content.maxDiffBytes", MAX_DIFF_BYTES, "256Ki"))]
    pub max_diff_bytes: String,

    /// Diff the content of sensitive paths too (/etc/shadow, private keys, kubeconfigs,
    /// kubelet credentials, service account tokens). Off by default: their changes carry
    /// hashes and say contentWithheld: SensitivePath. Turning it on lets whoever can read this
    /// workspace's FileChanges read those secrets when they change.
    #[serde(default)]
    pub reveal_sensitive: bool,
}

impl Default for ContentSpec {
    fn default() -> Self {
        Self {
            max_file_size: default_content_max_file_size(),
            max_diff_bytes: default_max_diff_bytes(),
            reveal_sensitive: false,
        }
    }
}

/// What the agent does with changes that a package operation explains.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PackagesSpec {
    /// Summarize (default): the changes one package operation explains become one Aggregated
    /// FileChange carrying the attribution, every path counted. Report: one FileChange each,
    /// with its attribution. Off: package databases are not consulted.
    #[serde(default)]
    pub attribution: AttributionMode,
}

/// How attributed changes are reported.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttributionMode {
    /// One Aggregated FileChange per package operation.
    #[default]
    Summarize,
    /// One FileChange per change, with its attribution.
    Report,
    /// No attribution.
    Off,
}

/// Baseline control.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineSpec {
    /// Any new value makes every selected node accept its current state as the new baseline
    /// (`kubectl fim baseline accept`).
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub revision: String,
}

/// What the operator observed for this workspace across its nodes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FimWorkspaceStatus {
    /// Ready and Degraded, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Nodes the nodeSelector matches.
    #[serde(default)]
    pub nodes_selected: u32,
    /// Selected nodes whose agent sent a heartbeat within two scan intervals.
    #[serde(default)]
    pub nodes_reporting: u32,
    /// Selected nodes the agent does not run on (outside the agent DaemonSet's node selector,
    /// such as Windows nodes): they cannot report and do not count against readiness.
    #[serde(default)]
    pub nodes_unsupported: u32,
    /// `reporting/supported` (supported: selected nodes the agent runs on), for the printer
    /// column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_summary: Option<String>,
    /// Entities, recommended items included, that some reporting node monitors.
    #[serde(default)]
    pub entities_active: u32,
    /// Changes detected across the selected nodes.
    #[serde(default)]
    pub changes: ChangeSummary,
    /// When the newest change was detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
}

/// Change counts over the last seven days.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    /// Changes detected in the last seven days.
    #[serde(default, rename = "last7d")]
    pub last_7d: u64,
    /// The same changes by category.
    #[serde(default)]
    pub by_category: CategoryCounts,
    /// The same changes by type.
    #[serde(default)]
    pub by_type: TypeCounts,
}

/// Change counts by category.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CategoryCounts {
    /// Files, units or keys that appeared.
    #[serde(default)]
    pub added: u64,
    /// Files, units or keys whose content or attributes changed.
    #[serde(default)]
    pub modified: u64,
    /// Files, units or keys that disappeared.
    #[serde(default)]
    pub removed: u64,
}

/// Change counts by type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TypeCounts {
    /// Changes to monitored files and directories.
    #[serde(default)]
    pub files: u64,
    /// Changes to FileContent files (with diffs).
    #[serde(default)]
    pub content: u64,
    /// Changes to services.
    #[serde(default)]
    pub services: u64,
    /// Changes to Windows registry keys.
    #[serde(default)]
    pub registry: u64,
}

fn duration_rule(field: &str) -> kube::core::cel::Rule {
    kube::core::cel::Rule::new(format!("self.matches('{}')", crate::units::DURATION_PATTERN)).message(
        kube::core::cel::Message::Expression(format!(
            "'{field} ' + self + ' is not a duration: write it like 90s, 15m, 24h or 14d'"
        )),
    )
}

fn size_rule(field: &str) -> kube::core::cel::Rule {
    kube::core::cel::Rule::new(format!("self.matches('{}')", crate::units::SIZE_PATTERN)).message(
        kube::core::cel::Message::Expression(format!(
            "'{field} ' + self + ' is not a size: write it like 512, 16Ki, 5Mi or 1Gi'"
        )),
    )
}

fn size_bound_rule(field: &str, limit: u64, written: &str) -> kube::core::cel::Rule {
    kube::core::cel::Rule::new(format!(
        "!self.matches('{}') || self.matches('{}')",
        crate::units::SIZE_PATTERN,
        crate::units::size_at_most_pattern(limit)
    ))
    .message(kube::core::cel::Message::Expression(format!(
        "'{field} ' + self + ' is too large: it may be at most {written}'"
    )))
}

fn default_true() -> bool {
    true
}
fn default_interval() -> String {
    "15m".into()
}
fn default_rehash_every() -> String {
    "24h".into()
}
fn default_max_hash_size() -> String {
    "1Gi".into()
}
fn default_max_changes_per_scan() -> u32 {
    100
}
fn default_max_age() -> String {
    "14d".into()
}
fn default_max_changes_per_node() -> u32 {
    1000
}
fn default_max_changes() -> u32 {
    10000
}
fn default_content_max_file_size() -> String {
    "5Mi".into()
}
fn default_max_diff_bytes() -> String {
    "16Ki".into()
}
