//! Status aggregation: FimNodeStatus reports of the selected nodes folded into workspace and
//! entity status. Pure functions of the reports and the clock.

use std::sync::Arc;

use kube::ResourceExt;
use kubefim_crds::{
    FimNodeStatus, FimWorkspace, MonitoredEntity, MonitoredEntityStatus,
    conditions::condition,
    entity::NodeError,
    nodestatus::{self, EntityState},
    units,
    workspace::FimWorkspaceStatus,
};

use crate::validate::Problem;

/// At most this many per-node errors are kept in an entity's status.
pub const MAX_ENTITY_ERRORS: usize = 20;

/// A node reports while its heartbeat is fresh (the API crate's one freshness rule).
pub fn is_reporting(report: &FimNodeStatus, interval: std::time::Duration, now: jiff::Timestamp) -> bool {
    nodestatus::heartbeat_is_fresh(
        report
            .status
            .as_ref()
            .and_then(|s| s.last_heartbeat_time.as_ref()),
        interval,
        now,
    )
}

/// The status of a workspace from the reports of the nodes it selects.
pub fn workspace_status(
    workspace: &FimWorkspace,
    nodes_selected: u32,
    reports: &[Arc<FimNodeStatus>],
    entities_active: u32,
    now: jiff::Timestamp,
) -> FimWorkspaceStatus {
    let previous = workspace
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let interval =
        units::parse_duration(&workspace.spec.scan.interval).unwrap_or(std::time::Duration::from_secs(900));
    let nodes_reporting =
        u32::try_from(reports.iter().filter(|r| is_reporting(r, interval, now)).count()).unwrap_or(u32::MAX);
    let changes = nodestatus::last_7_days(
        reports
            .iter()
            .filter_map(|r| r.status.as_ref())
            .flat_map(|s| s.change_counts.iter()),
        now,
    );
    let entity_errors: usize = reports
        .iter()
        .filter_map(|r| r.status.as_ref())
        .flat_map(|s| s.entities.iter())
        .filter(|e| e.state == EntityState::Error)
        .count();
    let silent = nodes_selected.saturating_sub(nodes_reporting);
    let (degraded, reason, message) = if !workspace.spec.enabled {
        (
            false,
            "Disabled",
            "monitoring is disabled for this workspace".to_string(),
        )
    } else if silent > 0 {
        (
            true,
            "NodesNotReporting",
            format!(
                "{silent} of {nodes_selected} selected nodes sent no heartbeat within two scan intervals"
            ),
        )
    } else if entity_errors > 0 {
        (
            true,
            "EntityErrors",
            format!("{entity_errors} entity errors on the selected nodes; see kubectl fim entities"),
        )
    } else {
        (
            false,
            "AllNodesReporting",
            format!("{nodes_reporting} of {nodes_selected} selected nodes report"),
        )
    };
    FimWorkspaceStatus {
        conditions: vec![
            condition("Ready", !degraded, reason, message.clone(), &previous, now),
            condition("Degraded", degraded, reason, message, &previous, now),
        ],
        observed_generation: workspace.metadata.generation,
        nodes_selected,
        nodes_reporting,
        nodes_summary: Some(format!("{nodes_reporting}/{nodes_selected}")),
        entities_active,
        changes,
        last_change_time: workspace.status.as_ref().and_then(|s| s.last_change_time.clone()),
    }
}

/// The status of an entity from the reports of its workspace's nodes.
pub fn entity_status(
    entity: &MonitoredEntity,
    problem: Option<&Problem>,
    reports: &[Arc<FimNodeStatus>],
    now: jiff::Timestamp,
) -> MonitoredEntityStatus {
    let previous = entity
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let name = entity.name_any();
    let mut status = MonitoredEntityStatus::default();
    for report in reports {
        let Some(state) = report
            .status
            .as_ref()
            .and_then(|s| s.entities.iter().find(|e| e.name == name))
        else {
            continue;
        };
        status.files_monitored += state.files_monitored;
        match state.state {
            EntityState::Active => status.nodes_active += 1,
            EntityState::Error | EntityState::Unsupported if status.errors.len() < MAX_ENTITY_ERRORS => {
                status.errors.push(NodeError {
                    node: report.spec.node_name.clone(),
                    message: state
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("{:?}", state.state)),
                });
            }
            _ => {}
        }
    }
    let (ready, reason, message) = match problem {
        Some(problem) => (false, problem.reason(), problem.to_string()),
        None if !entity.spec.enabled => (false, "Disabled", "the entity is disabled".to_string()),
        None if !status.errors.is_empty() => (
            false,
            "NodeErrors",
            format!("{} nodes report errors", status.errors.len()),
        ),
        None => (
            true,
            "Monitored",
            format!("monitored on {} nodes", status.nodes_active),
        ),
    };
    status.conditions = vec![condition("Ready", ready, reason, message, &previous, now)];
    status.last_change_time = entity.status.as_ref().and_then(|s| s.last_change_time.clone());
    status
}

#[cfg(test)]
mod tests {
    use kubefim_crds::{
        FimNodeStatusSpec,
        nodestatus::{DailyChangeCount, EntityNodeState, FimNodeStatusStatus},
        workspace::{CategoryCounts, TypeCounts},
    };

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn report(
        node: &str,
        heartbeat_minutes_ago: i64,
        days: &[(&str, u64)],
        entities: Vec<EntityNodeState>,
    ) -> Arc<FimNodeStatus> {
        let mut status = FimNodeStatus::new(
            &format!("ws.{node}"),
            FimNodeStatusSpec {
                workspace: "ws".into(),
                node_name: node.into(),
            },
        );
        status.status = Some(FimNodeStatusStatus {
            last_heartbeat_time: Some(Time(
                now() - jiff::SignedDuration::from_mins(heartbeat_minutes_ago),
            )),
            change_counts: days
                .iter()
                .map(|(day, n)| DailyChangeCount {
                    day: day.to_string(),
                    by_category: CategoryCounts {
                        added: *n,
                        modified: 2 * n,
                        removed: 0,
                    },
                    by_type: TypeCounts {
                        files: 3 * n,
                        ..Default::default()
                    },
                })
                .collect(),
            entities,
            ..Default::default()
        });
        Arc::new(status)
    }

    fn workspace() -> FimWorkspace {
        FimWorkspace::new(
            "ws",
            serde_json::from_value(serde_json::json!({"scan": {"interval": "15m"}})).unwrap(),
        )
    }

    #[test]
    fn counts_the_last_seven_days_and_reporting_nodes() {
        let reports = [
            report(
                "a",
                5,
                &[("2026-11-25", 1), ("2026-11-19", 10), ("2026-11-18", 100)],
                vec![],
            ),
            report("b", 29, &[("2026-11-24", 2)], vec![]),
            report("c", 31, &[], vec![]),
        ];
        let status = workspace_status(&workspace(), 4, &reports, 3, now());
        assert_eq!((status.nodes_selected, status.nodes_reporting), (4, 2));
        assert_eq!(status.nodes_summary.as_deref(), Some("2/4"));
        assert_eq!(
            status.changes.by_category.added, 13,
            "2026-11-18 is eight days back"
        );
        assert_eq!(status.changes.by_category.modified, 26);
        assert_eq!(status.changes.last_7d, 39);
        assert_eq!(status.changes.by_type.files, 39);
        let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded").unwrap();
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "NodesNotReporting")
        );
    }

    #[test]
    fn all_nodes_reporting_is_ready_and_keeps_its_transition_time() {
        let reports = [report("a", 1, &[], vec![])];
        let mut ws = workspace();
        let first = workspace_status(&ws, 1, &reports, 1, now());
        ws.status = Some(first.clone());
        let later = workspace_status(&ws, 1, &reports, 1, now() + jiff::SignedDuration::from_mins(10));
        let ready =
            |s: &FimWorkspaceStatus| s.conditions.iter().find(|c| c.type_ == "Ready").cloned().unwrap();
        assert_eq!(ready(&first).status, "True");
        assert_eq!(
            ready(&first).last_transition_time,
            ready(&later).last_transition_time
        );
    }

    #[test]
    fn entity_status_sums_files_and_bounds_errors() {
        let state = |state, files, message: Option<&str>| EntityNodeState {
            name: "app".into(),
            entity_type: kubefim_crds::EntityType::LinuxFile,
            files_monitored: files,
            state,
            message: message.map(Into::into),
            last_change_time: None,
        };
        let mut reports = vec![report("a", 1, &[], vec![state(EntityState::Active, 10, None)])];
        for i in 0..30 {
            reports.push(report(
                &format!("e{i}"),
                1,
                &[],
                vec![state(EntityState::Error, 0, Some("variable HOME is not set"))],
            ));
        }
        let entity = MonitoredEntity::new(
            "app",
            serde_json::from_value(
                serde_json::json!({"workspace": "ws", "type": "LinuxFile", "path": "$HOME/app"}),
            )
            .unwrap(),
        );
        let status = entity_status(&entity, None, &reports, now());
        assert_eq!((status.nodes_active, status.files_monitored), (1, 10));
        assert_eq!(status.errors.len(), MAX_ENTITY_ERRORS);
        assert_eq!(status.conditions[0].reason, "NodeErrors");
        let problem = Problem::MissingWorkspace {
            namespace: "fim".into(),
            workspace: "ws".into(),
        };
        let invalid = entity_status(&entity, Some(&problem), &reports, now());
        assert_eq!(
            (
                invalid.conditions[0].status.as_str(),
                invalid.conditions[0].reason.as_str()
            ),
            ("False", "WorkspaceNotFound")
        );
    }
}
