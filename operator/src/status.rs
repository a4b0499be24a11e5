//! Status aggregation: the FimNodeStatus reports of a workspace's nodes folded into workspace
//! and entity status. Pure functions of what the operator knows and the clock. Status never says
//! more than is known: no Ready for what no node serves, and every node's Degraded reason is
//! carried up with the node's name.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kubefim_crds::{
    EntityType, FimNodeStatus, FimWorkspace, MonitoredEntity, MonitoredEntityStatus,
    conditions::{self, condition},
    entity::NodeError,
    nodestatus::{self, EntityState, reasons},
    units,
    workspace::FimWorkspaceStatus,
};

use crate::validate::Problem;

/// At most this many per-node errors are kept in an entity's status.
pub const MAX_ENTITY_ERRORS: usize = 20;
/// At most this many nodes are named in a condition message.
const NAMED_NODES: usize = 10;

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

/// The workspace's scan interval, which sets how fresh a heartbeat must be. Admission refuses
/// an interval that does not parse (a CEL rule of the CRD); an object stored before that rule
/// existed is read with the schema's default, 15 minutes, here; the agents refuse a
/// configuration holding it, so its nodes show as not reporting.
pub fn scan_interval(workspace: &FimWorkspace) -> std::time::Duration {
    units::parse_duration(&workspace.spec.scan.interval).unwrap_or(std::time::Duration::from_secs(15 * 60))
}

/// Whether and where a workspace is served, before any report is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// Served on the `supported` selected nodes; the `unsupported` ones selected but outside the
    /// nodes the agent runs on (both by name).
    Nodes {
        supported: Vec<String>,
        unsupported: Vec<String>,
    },
    Disabled,
    /// Refused by the namespace policy, with the message telling how an admin allows it.
    NamespaceNotAllowed(String),
    /// The nodeSelector cannot be evaluated, with why.
    InvalidNodeSelector(String),
}

fn names(nodes: &[String]) -> String {
    let mut shown: Vec<&str> = nodes.iter().take(NAMED_NODES).map(String::as_str).collect();
    if nodes.len() > NAMED_NODES {
        shown.push("...");
    }
    shown.join(", ")
}

/// The severity order of node Degraded reasons, most serious first.
const NODE_REASONS: [&str; 6] = [
    reasons::BASELINE_RESET,
    reasons::REPORTS_REJECTED,
    reasons::OUTBOX_FULL,
    reasons::SCAN_STALLED,
    reasons::ENTITY_ERRORS,
    reasons::REALTIME_DEGRADED,
];

/// Each reported problem reason with the nodes that have it, most serious first.
fn node_problems(reports: &[Arc<FimNodeStatus>]) -> Vec<(&'static str, Vec<String>)> {
    let mut by_reason: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for report in reports {
        let Some(status) = &report.status else { continue };
        let degraded = conditions::find(&status.conditions, "Degraded").filter(|c| c.status == "True");
        let ready = conditions::find(&status.conditions, "Ready").filter(|c| c.status == "False");
        for condition in degraded.into_iter().chain(ready) {
            // A node's Degraded message names every reason that holds, its reason the first.
            for (rank, reason) in NODE_REASONS.iter().enumerate() {
                if condition.reason == *reason || condition.message.contains(&format!("{reason}:")) {
                    let nodes = by_reason.entry(rank).or_default();
                    if !nodes.contains(&report.spec.node_name) {
                        nodes.push(report.spec.node_name.clone());
                    }
                }
            }
        }
    }
    by_reason
        .into_iter()
        .map(|(rank, nodes)| (NODE_REASONS[rank], nodes))
        .collect()
}

/// The status of a workspace from how it is served and the reports of its supported nodes.
pub fn workspace_status(
    workspace: &FimWorkspace,
    serving: &Serving,
    reports: &[Arc<FimNodeStatus>],
    now: jiff::Timestamp,
) -> FimWorkspaceStatus {
    let previous = workspace
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let interval = scan_interval(workspace);
    let reporting: Vec<&Arc<FimNodeStatus>> = reports
        .iter()
        .filter(|r| is_reporting(r, interval, now))
        .collect();
    let nodes_reporting = u32::try_from(reporting.len()).unwrap_or(u32::MAX);
    let statuses = || reports.iter().filter_map(|r| r.status.as_ref());
    let changes = nodestatus::last_7_days(statuses().flat_map(|s| s.change_counts.iter()), now);
    let mut active: Vec<&str> = reporting
        .iter()
        .filter_map(|r| r.status.as_ref())
        .flat_map(|s| s.entities.iter())
        .filter(|e| e.state == EntityState::Active)
        .map(|e| e.name.as_str())
        .collect();
    active.sort_unstable();
    active.dedup();
    let last_change_time = statuses()
        .flat_map(|s| s.entities.iter())
        .filter_map(|e| e.last_change_time.as_ref())
        .max_by_key(|t| t.0)
        .cloned();
    let (supported_nodes, unsupported) = match serving {
        Serving::Nodes {
            supported,
            unsupported,
        } => (supported.clone(), unsupported.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    let supported = u32::try_from(supported_nodes.len()).unwrap_or(u32::MAX);
    let nodes_unsupported = u32::try_from(unsupported.len()).unwrap_or(u32::MAX);
    let unsupported_note = if unsupported.is_empty() {
        String::new()
    } else {
        format!(
            "; {} selected nodes run no agent and are not counted: {}",
            unsupported.len(),
            names(&unsupported)
        )
    };
    let (ready, ready_reason, ready_message) = match serving {
        Serving::Disabled => (
            false,
            "Disabled",
            "monitoring is disabled for this workspace".to_string(),
        ),
        Serving::NamespaceNotAllowed(message) => {
            (false, crate::tenancy::NAMESPACE_NOT_ALLOWED, message.clone())
        }
        Serving::InvalidNodeSelector(message) => (false, "InvalidNodeSelector", message.clone()),
        Serving::Nodes { .. } if supported == 0 => (
            false,
            "NoNodes",
            format!("the nodeSelector selects no node an agent runs on{unsupported_note}"),
        ),
        Serving::Nodes { .. } if nodes_reporting < supported => (
            false,
            "NodesNotReporting",
            format!(
                "{} of {supported} nodes sent no heartbeat within two scan intervals{unsupported_note}",
                supported - nodes_reporting
            ),
        ),
        Serving::Nodes { .. } => (
            true,
            "Monitoring",
            format!("{nodes_reporting} of {supported} nodes report{unsupported_note}"),
        ),
    };
    let mut problems = node_problems(reports);
    let silent: Vec<String> = supported_nodes
        .iter()
        .filter(|node| !reporting.iter().any(|r| &r.spec.node_name == *node))
        .cloned()
        .collect();
    if !silent.is_empty() {
        problems.insert(0, ("NodesNotReporting", silent));
    }
    let degraded_condition = match (matches!(serving, Serving::Nodes { .. }), problems.first()) {
        (true, Some((reason, _))) => {
            let message = problems
                .iter()
                .map(|(reason, nodes)| format!("{reason} on {}", names(nodes)))
                .collect::<Vec<_>>()
                .join("; ");
            condition("Degraded", true, reason, message, &previous, now)
        }
        _ => condition(
            "Degraded",
            false,
            "AsExpected",
            "no node reports a problem".into(),
            &previous,
            now,
        ),
    };
    FimWorkspaceStatus {
        conditions: vec![
            condition("Ready", ready, ready_reason, ready_message, &previous, now),
            degraded_condition,
        ],
        observed_generation: workspace.metadata.generation,
        nodes_selected: supported + nodes_unsupported,
        nodes_reporting,
        nodes_unsupported,
        nodes_summary: Some(format!("{nodes_reporting}/{supported}")),
        entities_active: u32::try_from(active.len()).unwrap_or(u32::MAX),
        changes,
        last_change_time,
    }
}

/// Whether and where an entity is served, before any report is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityServing<'p> {
    Served,
    /// Not rendered: the operator found a problem with it.
    Problem(&'p Problem),
    /// Its namespace may not hold FimWorkspaces, with the refusal message.
    NamespaceNotAllowed(String),
    /// Its workspace is disabled.
    WorkspaceDisabled,
    /// No node of its workspace runs an agent that serves its type.
    Unsupported(EntityType),
}

/// The status of an entity from how it is served and the reports of its workspace's nodes.
/// Only a node whose heartbeat is fresh (two scan `interval`s) counts as monitoring it or as
/// having an error: the last report of a node that went silent says what was, not what is.
pub fn entity_status(
    entity: &MonitoredEntity,
    serving: &EntityServing<'_>,
    reports: &[Arc<FimNodeStatus>],
    interval: std::time::Duration,
    now: jiff::Timestamp,
) -> MonitoredEntityStatus {
    let previous = entity
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let name = entity.name_any();
    let mut status = MonitoredEntityStatus::default();
    let (mut unsupported, mut silent, mut erring) = (0, 0, 0);
    for report in reports {
        let Some(state) = report
            .status
            .as_ref()
            .and_then(|s| s.entities.iter().find(|e| e.name == name))
        else {
            continue;
        };
        status.files_monitored += state.files_monitored;
        if let Some(time) = &state.last_change_time
            && status.last_change_time.as_ref().is_none_or(|t| t.0 < time.0)
        {
            status.last_change_time = Some(Time(time.0));
        }
        let fresh = is_reporting(report, interval, now);
        match state.state {
            EntityState::Unsupported => unsupported += 1,
            EntityState::Active | EntityState::Error if !fresh => silent += 1,
            EntityState::Active => status.nodes_active += 1,
            EntityState::Error => {
                erring += 1;
                if status.errors.len() < MAX_ENTITY_ERRORS {
                    status.errors.push(NodeError {
                        node: report.spec.node_name.clone(),
                        message: state.message.clone().unwrap_or_else(|| "Error".into()),
                    });
                }
            }
            EntityState::Disabled => {}
        }
    }
    let silent_note = if silent > 0 {
        format!("; {silent} more nodes that monitored it sent no heartbeat within two scan intervals")
    } else {
        String::new()
    };
    let (ready, reason, message) = match serving {
        EntityServing::Problem(problem) => (false, problem.reason(), problem.to_string()),
        EntityServing::NamespaceNotAllowed(message) => {
            (false, crate::tenancy::NAMESPACE_NOT_ALLOWED, message.clone())
        }
        EntityServing::WorkspaceDisabled => (false, "WorkspaceDisabled", "its workspace is disabled".into()),
        EntityServing::Unsupported(entity_type) => (
            false,
            "Unsupported",
            format!(
                "no node of workspace {} runs an agent that serves {entity_type} entities",
                entity.spec.workspace
            ),
        ),
        EntityServing::Served if !entity.spec.enabled => (false, "Disabled", "the entity is disabled".into()),
        EntityServing::Served if erring > 0 => (
            false,
            "NodeErrors",
            format!(
                "{erring} nodes report errors; status.errors lists {}",
                status.errors.len()
            ),
        ),
        EntityServing::Served if status.nodes_active == 0 && silent > 0 => (
            false,
            "NodesNotReporting",
            format!("the {silent} nodes that monitored it sent no heartbeat within two scan intervals"),
        ),
        EntityServing::Served if status.nodes_active == 0 && unsupported > 0 => (
            false,
            "Unsupported",
            format!(
                "the {unsupported} nodes of its workspace cannot serve {} entities",
                entity.spec.entity_type
            ),
        ),
        EntityServing::Served if status.nodes_active == 0 => {
            (false, "Pending", "no node has reported monitoring it yet".into())
        }
        EntityServing::Served => (
            true,
            "Monitored",
            format!("monitored on {} nodes{silent_note}", status.nodes_active),
        ),
    };
    status.conditions = vec![condition("Ready", ready, reason, message, &previous, now)];
    status
}
