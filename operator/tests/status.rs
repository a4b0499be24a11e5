//! Workspace and entity status as pure functions of how they are served, the node reports and
//! the clock: what status may claim, and what it must not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kubefim_crds::{
    EntityType, FimNodeStatus, FimNodeStatusSpec, FimWorkspace, MonitoredEntity, conditions,
    nodestatus::{DailyChangeCount, EntityNodeState, EntityState, FimNodeStatusStatus},
    workspace::{CategoryCounts, FimWorkspaceStatus, TypeCounts},
};
use kubefim_operator::{
    status::{EntityServing, MAX_ENTITY_ERRORS, Serving, entity_status, workspace_status},
    validate::Problem,
};

/// The scan interval of the entities' workspace: a heartbeat older than two is stale.
const INTERVAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn now() -> jiff::Timestamp {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

fn state(name: &str, state: EntityState, files: u64, message: Option<&str>) -> EntityNodeState {
    EntityNodeState {
        name: name.into(),
        entity_type: EntityType::LinuxFile,
        files_monitored: files,
        state,
        message: message.map(Into::into),
        last_change_time: None,
    }
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

fn nodes(names: &[&str]) -> Serving {
    Serving::Nodes {
        supported: names.iter().map(|n| n.to_string()).collect(),
        unsupported: Vec::new(),
    }
}

fn condition(status: &FimWorkspaceStatus, type_: &str) -> (String, String, String) {
    let c = conditions::find(&status.conditions, type_).unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
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
    let status = workspace_status(&workspace(), &nodes(&["a", "b", "c", "d"]), &reports, now());
    assert_eq!((status.nodes_selected, status.nodes_reporting), (4, 2));
    assert_eq!(status.nodes_summary.as_deref(), Some("2/4"));
    assert_eq!(
        status.changes.by_category.added, 13,
        "2026-11-18 is eight days back"
    );
    assert_eq!(status.changes.by_category.modified, 26);
    assert_eq!(status.changes.last_7d, 39);
    assert_eq!(status.changes.by_type.files, 39);
    let (degraded, reason, message) = condition(&status, "Degraded");
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "NodesNotReporting")
    );
    assert!(message.contains("c, d"), "the silent nodes are named: {message}");
    assert_eq!(condition(&status, "Ready").0, "False");
}

#[test]
fn all_nodes_reporting_is_ready_and_keeps_its_transition_time() {
    let reports = [report("a", 1, &[], vec![])];
    let mut ws = workspace();
    let first = workspace_status(&ws, &nodes(&["a"]), &reports, now());
    ws.status = Some(first.clone());
    let later = workspace_status(
        &ws,
        &nodes(&["a"]),
        &reports,
        now() + jiff::SignedDuration::from_mins(10),
    );
    let ready = |s: &FimWorkspaceStatus| conditions::find(&s.conditions, "Ready").cloned().unwrap();
    assert_eq!(ready(&first).status, "True");
    assert_eq!(
        ready(&first).last_transition_time,
        ready(&later).last_transition_time
    );
}

#[test]
fn nodes_that_run_no_agent_are_listed_and_not_counted_against_readiness() {
    let serving = Serving::Nodes {
        supported: vec!["linux-1".into()],
        unsupported: vec!["win-1".into(), "win-2".into()],
    };
    let status = workspace_status(
        &workspace(),
        &serving,
        &[report("linux-1", 1, &[], vec![])],
        now(),
    );
    assert_eq!(
        (
            status.nodes_selected,
            status.nodes_unsupported,
            status.nodes_reporting
        ),
        (3, 2, 1)
    );
    assert_eq!(status.nodes_summary.as_deref(), Some("1/1"));
    let (ready, _, message) = condition(&status, "Ready");
    assert_eq!(ready, "True", "a mixed-OS cluster is not degraded for ever");
    assert!(message.contains("win-1, win-2"), "{message}");
    assert_eq!(condition(&status, "Degraded").0, "False");
}

#[test]
fn a_workspace_that_is_not_served_is_never_ready() {
    for (serving, reason) in [
        (Serving::Disabled, "Disabled"),
        (
            Serving::NamespaceNotAllowed("namespace x may not".into()),
            "NamespaceNotAllowed",
        ),
        (
            Serving::InvalidNodeSelector("operator \"Near\"".into()),
            "InvalidNodeSelector",
        ),
        (nodes(&[]), "NoNodes"),
    ] {
        let status = workspace_status(&workspace(), &serving, &[], now());
        let (ready, got, _) = condition(&status, "Ready");
        assert_eq!((ready.as_str(), got.as_str()), ("False", reason), "{serving:?}");
    }
}

#[test]
fn recommended_items_count_as_active_and_the_newest_change_is_the_workspaces() {
    let mut newer = state("recommended.etc-conf", EntityState::Active, 10, None);
    newer.last_change_time = Some(Time("2026-11-25T11:00:00Z".parse().unwrap()));
    let mut older = state("app", EntityState::Active, 3, None);
    older.last_change_time = Some(Time("2026-11-24T09:00:00Z".parse().unwrap()));
    let reports = [
        report(
            "a",
            1,
            &[],
            vec![
                newer,
                older,
                state("recommended.usr-bin", EntityState::Active, 100, None),
            ],
        ),
        report(
            "b",
            1,
            &[],
            vec![state("recommended.usr-bin", EntityState::Active, 90, None)],
        ),
    ];
    let status = workspace_status(&workspace(), &nodes(&["a", "b"]), &reports, now());
    assert_eq!(
        status.entities_active, 3,
        "distinct active entities, recommended items included"
    );
    assert_eq!(
        status.last_change_time.unwrap().0,
        "2026-11-25T11:00:00Z".parse::<jiff::Timestamp>().unwrap()
    );
}

#[test]
fn every_node_degraded_reason_is_carried_up_with_its_nodes() {
    let degraded = |node: &str, reason: &str, message: &str| {
        let mut r = (*report(node, 1, &[], vec![])).clone();
        r.status.as_mut().unwrap().conditions = vec![conditions::condition(
            "Degraded",
            true,
            reason,
            message.into(),
            &[],
            now(),
        )];
        Arc::new(r)
    };
    let reports = [
        degraded(
            "a",
            "EntityErrors",
            "EntityErrors: entities with errors on this node: app",
        ),
        degraded(
            "b",
            "BaselineReset",
            "BaselineReset: lost; ReportsRejected: refused 2",
        ),
        report("c", 1, &[], vec![]),
    ];
    let status = workspace_status(&workspace(), &nodes(&["a", "b", "c"]), &reports, now());
    let (degraded, reason, message) = condition(&status, "Degraded");
    assert_eq!(
        (degraded.as_str(), reason.as_str()),
        ("True", "BaselineReset"),
        "the most serious first"
    );
    assert!(message.contains("BaselineReset on b"), "{message}");
    assert!(message.contains("ReportsRejected on b"), "{message}");
    assert!(message.contains("EntityErrors on a"), "{message}");
    assert_eq!(
        condition(&status, "Ready").0,
        "True",
        "served, with problems to look at"
    );
}

fn entity(entity_type: &str, path: &str) -> MonitoredEntity {
    MonitoredEntity::new(
        "app",
        serde_json::from_value(serde_json::json!({"workspace": "ws", "type": entity_type, "path": path}))
            .unwrap(),
    )
}

#[test]
fn entity_status_sums_files_and_bounds_errors() {
    let mut reports = vec![report(
        "a",
        1,
        &[],
        vec![state("app", EntityState::Active, 10, None)],
    )];
    for i in 0..30 {
        reports.push(report(
            &format!("e{i}"),
            1,
            &[],
            vec![state(
                "app",
                EntityState::Error,
                0,
                Some("variable HOME is not set"),
            )],
        ));
    }
    let app = entity("LinuxFile", "$HOME/app");
    let status = entity_status(&app, &EntityServing::Served, &reports, INTERVAL, now());
    assert_eq!((status.nodes_active, status.files_monitored), (1, 10));
    assert_eq!(status.errors.len(), MAX_ENTITY_ERRORS);
    assert_eq!(status.conditions[0].reason, "NodeErrors");
    assert_eq!(
        status.conditions[0].message,
        format!("30 nodes report errors; status.errors lists {MAX_ENTITY_ERRORS}"),
        "every erring node is counted, not only those listed"
    );
    let problem = Problem::MissingWorkspace {
        namespace: "fim".into(),
        workspace: "ws".into(),
    };
    let invalid = entity_status(&app, &EntityServing::Problem(&problem), &reports, INTERVAL, now());
    assert_eq!(
        (
            invalid.conditions[0].status.as_str(),
            invalid.conditions[0].reason.as_str()
        ),
        ("False", "WorkspaceNotFound")
    );
}

#[test]
fn an_entity_no_node_serves_is_not_ready() {
    let registry = entity("WindowsRegistry", r"HKLM\SOFTWARE\App");
    let status = entity_status(
        &registry,
        &EntityServing::Unsupported(EntityType::WindowsRegistry),
        &[],
        INTERVAL,
        now(),
    );
    assert_eq!(
        (
            status.conditions[0].status.as_str(),
            status.conditions[0].reason.as_str()
        ),
        ("False", "Unsupported")
    );
    assert!(status.conditions[0].message.contains("WindowsRegistry"));
    // Reported Unsupported by every node: not Ready either, never "monitored on 0 nodes".
    let reports = [report(
        "a",
        1,
        &[],
        vec![state("app", EntityState::Unsupported, 0, Some("not on Linux"))],
    )];
    let status = entity_status(&registry, &EntityServing::Served, &reports, INTERVAL, now());
    assert_eq!(status.conditions[0].reason, "Unsupported");
    let pending = entity_status(
        &entity("LinuxFile", "/srv"),
        &EntityServing::Served,
        &[],
        INTERVAL,
        now(),
    );
    assert_eq!(
        (
            pending.conditions[0].status.as_str(),
            pending.conditions[0].reason.as_str()
        ),
        ("False", "Pending")
    );
}

#[test]
fn an_entity_keeps_the_time_of_its_newest_change_on_any_node() {
    let at = |s: &str| Some(Time(s.parse().unwrap()));
    let mut on_a = state("app", EntityState::Active, 1, None);
    on_a.last_change_time = at("2026-11-20T00:00:00Z");
    let mut on_b = state("app", EntityState::Active, 1, None);
    on_b.last_change_time = at("2026-11-22T00:00:00Z");
    let status = entity_status(
        &entity("LinuxFile", "/srv"),
        &EntityServing::Served,
        &[report("a", 1, &[], vec![on_a]), report("b", 1, &[], vec![on_b])],
        INTERVAL,
        now(),
    );
    assert_eq!(status.last_change_time, at("2026-11-22T00:00:00Z"));
    assert_eq!(
        (status.conditions[0].reason.as_str(), status.nodes_active),
        ("Monitored", 2)
    );
}

#[test]
fn an_entity_monitored_only_by_silent_nodes_is_not_ready() {
    let app = entity("LinuxFile", "/srv");
    // The only node's last report said Active an hour ago: two intervals (30 min) have passed.
    let silent = [report(
        "a",
        60,
        &[],
        vec![state("app", EntityState::Active, 10, None)],
    )];
    let status = entity_status(&app, &EntityServing::Served, &silent, INTERVAL, now());
    assert_eq!(
        (
            status.conditions[0].status.as_str(),
            status.conditions[0].reason.as_str(),
            status.nodes_active
        ),
        ("False", "NodesNotReporting", 0)
    );
    assert!(
        status.conditions[0].message.contains("the 1 nodes"),
        "{:?}",
        status.conditions[0]
    );
    // A silent node's old error is no longer known to hold either.
    let old_error = [report(
        "a",
        60,
        &[],
        vec![state("app", EntityState::Error, 0, Some("gone"))],
    )];
    let status = entity_status(&app, &EntityServing::Served, &old_error, INTERVAL, now());
    assert!(status.errors.is_empty(), "{:?}", status.errors);
    assert_eq!(status.conditions[0].reason, "NodesNotReporting");
    // One fresh node keeps it Ready, and the message names the silent ones.
    let mixed = [
        report("a", 60, &[], vec![state("app", EntityState::Active, 10, None)]),
        report("b", 1, &[], vec![state("app", EntityState::Active, 10, None)]),
    ];
    let status = entity_status(&app, &EntityServing::Served, &mixed, INTERVAL, now());
    assert_eq!(
        (
            status.conditions[0].status.as_str(),
            status.conditions[0].reason.as_str(),
            status.nodes_active
        ),
        ("True", "Monitored", 1)
    );
    assert!(
        status.conditions[0]
            .message
            .contains("1 more nodes that monitored it sent no heartbeat"),
        "{:?}",
        status.conditions[0]
    );
}
