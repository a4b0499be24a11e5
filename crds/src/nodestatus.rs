//! `FimNodeStatus`: what one node's agent reports for one workspace. Only that node's agent
//! writes it; the operator reads it to aggregate workspace and entity status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EntityType;

/// The state of one workspace on one node, as that node's agent reports it: heartbeat, last
/// scan, files monitored, realtime detection, per-entity state and daily change counts.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefim.dev",
    version = "v1alpha1",
    kind = "FimNodeStatus",
    namespaced,
    status = "FimNodeStatusStatus",
    shortname = "fimns",
    category = "kubefim",
    derive = "PartialEq",
    doc = "The state of one workspace on one node, as that node's agent reports it.",
    selectable = ".spec.nodeName",
    printcolumn(name = "Workspace", type_ = "string", json_path = ".spec.workspace"),
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeName"),
    printcolumn(name = "Files", type_ = "integer", json_path = ".status.filesMonitored"),
    printcolumn(name = "Heartbeat", type_ = "date", json_path = ".status.lastHeartbeatTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct FimNodeStatusSpec {
    /// The FimWorkspace reported on.
    pub workspace: String,
    /// The node reporting.
    pub node_name: String,
}

/// One node's report for one workspace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FimNodeStatusStatus {
    /// Version of the agent binary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_version: String,
    /// Revision of the AgentConfig the agent applies.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_revision: String,
    /// The workspace baseline.revision the node's baseline was accepted at.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub baseline_revision: String,
    /// The last time the agent reported it is alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    /// The most recent completed scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan: Option<ScanSummary>,
    /// Files monitored across the workspace's entities.
    #[serde(default)]
    pub files_monitored: u64,
    /// Realtime detection state.
    #[serde(default)]
    pub realtime: RealtimeStatus,
    /// Per-entity state on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityNodeState>,
    /// Changes per UTC day for the last 8 days, refreshed at every heartbeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_counts: Vec<DailyChangeCount>,
    /// A random id made when the node's baseline store was created. A new id on a node that had
    /// one means the baseline was lost and rebuilt (see the BaselineReset condition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub store_generation: String,
    /// FileChanges of this workspace waiting on the node to be created, and those the API
    /// server refused.
    #[serde(default)]
    pub reporting: ReportingCounts,
    /// Ready (the scan loop makes progress) and Degraded, with the reason: RealtimeDegraded,
    /// EntityErrors, ReportsRejected, BaselineReset or OutboxFull.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The node's FileChange queue for one workspace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReportingCounts {
    /// Changes queued on the node, not yet created as FileChange objects.
    #[serde(default)]
    pub queued: u64,
    /// Changes the API server refused for good (kept in the node's dead-letter table and
    /// counted in kubefim_reports_total{result="rejected"}), since the store was created.
    #[serde(default)]
    pub rejected: u64,
}

/// Reasons of a FimNodeStatus Degraded condition, in the order they are reported when several
/// hold at once.
pub mod reasons {
    /// The node's baseline store was lost or replaced; changes made before it was rebuilt are
    /// unknown until a baseline is accepted.
    pub const BASELINE_RESET: &str = "BaselineReset";
    /// The API server refused some FileChanges for good.
    pub const REPORTS_REJECTED: &str = "ReportsRejected";
    /// The node's queue reached its bound and folds further changes into Aggregated ones.
    pub const OUTBOX_FULL: &str = "OutboxFull";
    /// Some entities cannot be monitored on this node.
    pub const ENTITY_ERRORS: &str = "EntityErrors";
    /// Realtime detection is degraded; periodic scans carry on.
    pub const REALTIME_DEGRADED: &str = "RealtimeDegraded";
    /// No scan of the workspace completed within two scan intervals.
    pub const SCAN_STALLED: &str = "ScanStalled";
}

/// One completed scan.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScanSummary {
    /// When the scan started.
    pub started_at: Time,
    /// How long it took.
    pub duration_seconds: f64,
    /// Filesystem objects examined.
    pub files_scanned: u64,
    /// Bytes read to compute content hashes.
    pub bytes_hashed: u64,
    /// Changes it found.
    pub changes: u64,
    /// Errors it met (unreadable files, vanished paths...).
    pub errors: u64,
}

/// Realtime detection state.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeStatus {
    /// Realtime detection is running.
    #[serde(default)]
    pub active: bool,
    /// inotify watches held.
    #[serde(default)]
    pub watches: u64,
    /// Why realtime detection is degraded (queue overflow, watch limit); scans go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_reason: Option<String>,
    /// Whether realtime changes name their process: Off (no workspace asks), Active, or
    /// Unavailable (asked, but fanotify could not be used; `actorsReason` says why).
    #[serde(default)]
    pub actors: ActorsState,
    /// Why actors are Unavailable, or where they cannot be learned while Active (a
    /// filesystem fanotify cannot mark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actors_reason: Option<String>,
    /// fanotify events lost to a queue overflow since the agent started: changes made then
    /// carry no actor.
    #[serde(default)]
    pub actor_events_lost: u64,
}

/// Whether actors are learned on a node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActorsState {
    #[default]
    Off,
    Active,
    Unavailable,
}

/// The state of one entity on this node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityNodeState {
    /// The MonitoredEntity name, or `recommended.<id>`.
    pub name: String,
    /// The entity type.
    #[serde(rename = "type")]
    pub entity_type: EntityType,
    /// Files monitored for it on this node.
    #[serde(default)]
    pub files_monitored: u64,
    /// Active, Error, Unsupported or Disabled.
    pub state: EntityState,
    /// Details for Error and Unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the newest change of this entity on this node was detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
}

/// The state of an entity on a node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityState {
    /// Monitored.
    Active,
    /// Cannot be monitored on this node; see the message.
    Error,
    /// This agent cannot serve the entity type (for example a Windows type on Linux).
    Unsupported,
    /// Disabled in its spec.
    Disabled,
}

/// The UTC day `days_ago` days before `at`, in the YYYY-MM-DD form of [`DailyChangeCount::day`].
pub fn utc_day(at: k8s_openapi::jiff::Timestamp, days_ago: i64) -> String {
    (at - k8s_openapi::jiff::SignedDuration::from_hours(24 * days_ago))
        .strftime("%Y-%m-%d")
        .to_string()
}

/// A node counts as reporting while its last heartbeat is newer than this many scan intervals.
pub const FRESH_HEARTBEAT_INTERVALS: u32 = 2;

/// Whether a node whose last heartbeat was at `heartbeat` still counts as reporting at `now`
/// for a workspace scanned every `interval`: the one freshness rule the operator's status and
/// the plugin's tables share.
pub fn heartbeat_is_fresh(
    heartbeat: Option<&Time>,
    interval: std::time::Duration,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    let Some(heartbeat) = heartbeat else {
        return false;
    };
    let window = k8s_openapi::jiff::SignedDuration::try_from(interval * FRESH_HEARTBEAT_INTERVALS)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    now.duration_since(heartbeat.0) <= window
}

/// The change counts of the seven UTC days ending with `now`'s day (today and the six before),
/// summed: the window of `status.changes.last7d`, shared by the operator and the plugin.
pub fn last_7_days<'a>(
    counts: impl IntoIterator<Item = &'a DailyChangeCount>,
    now: k8s_openapi::jiff::Timestamp,
) -> crate::workspace::ChangeSummary {
    let oldest_day = utc_day(now, 6);
    let mut summary = crate::workspace::ChangeSummary::default();
    for count in counts.into_iter().filter(|c| c.day >= oldest_day) {
        summary.by_category.added += count.by_category.added;
        summary.by_category.modified += count.by_category.modified;
        summary.by_category.removed += count.by_category.removed;
        summary.by_type.files += count.by_type.files;
        summary.by_type.content += count.by_type.content;
        summary.by_type.services += count.by_type.services;
        summary.by_type.registry += count.by_type.registry;
    }
    summary.last_7d = summary.by_category.added + summary.by_category.modified + summary.by_category.removed;
    summary
}

/// Change counts for one UTC day.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DailyChangeCount {
    /// The UTC day, YYYY-MM-DD.
    pub day: String,
    /// The day's changes by category.
    #[serde(default)]
    pub by_category: crate::workspace::CategoryCounts,
    /// The day's changes by type.
    #[serde(default)]
    pub by_type: crate::workspace::TypeCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, added: u64, files: u64) -> DailyChangeCount {
        DailyChangeCount {
            day: day.into(),
            by_category: crate::workspace::CategoryCounts {
                added,
                modified: 1,
                removed: 0,
            },
            by_type: crate::workspace::TypeCounts {
                files,
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_seven_day_window_is_today_and_the_six_days_before() {
        let now: k8s_openapi::jiff::Timestamp = "2026-11-25T23:59:00Z".parse().unwrap();
        let counts = [
            day("2026-11-25", 1, 10),
            day("2026-11-19", 2, 20),
            day("2026-11-18", 100, 1000),
        ];
        let summary = last_7_days(&counts, now);
        assert_eq!(summary.by_category.added, 3, "2026-11-18 is the eighth day back");
        assert_eq!(summary.by_category.modified, 2);
        assert_eq!(summary.by_type.files, 30);
        assert_eq!(summary.last_7d, 5);
    }

    #[test]
    fn a_heartbeat_is_fresh_for_two_intervals_and_absent_is_never_fresh() {
        let now: k8s_openapi::jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let ago = |minutes| Some(Time(now - k8s_openapi::jiff::SignedDuration::from_mins(minutes)));
        let interval = std::time::Duration::from_secs(15 * 60);
        assert!(heartbeat_is_fresh(ago(30).as_ref(), interval, now));
        assert!(!heartbeat_is_fresh(ago(31).as_ref(), interval, now));
        assert!(!heartbeat_is_fresh(None, interval, now));
    }

    #[test]
    fn utc_days_count_back_across_month_ends() {
        let at: k8s_openapi::jiff::Timestamp = "2026-12-01T00:30:00Z".parse().unwrap();
        assert_eq!(utc_day(at, 0), "2026-12-01");
        assert_eq!(utc_day(at, 1), "2026-11-30");
        assert_eq!(utc_day(at, 7), "2026-11-24");
    }
}
