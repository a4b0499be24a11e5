//! The workspace dashboard of `kubectl fim status`: a rendering of a workspace's status and of
//! the changes of a period (ages are counted from now), testable without a cluster.

use std::fmt::Write as _;

use kube::ResourceExt;
use kubefim_crds::{AttributionKind, FileChange, FimWorkspace};

use crate::{
    output::{self, Colour},
    summary::{self, Dimension},
};

/// The workspace dashboard: enabled, machines reporting / selected, changes in the period by
/// type and category, the busiest nodes.
pub fn render_dashboard(
    workspace: &FimWorkspace,
    changes: &[FileChange],
    period: &str,
    colour: bool,
) -> String {
    let status = workspace.status.clone().unwrap_or_default();
    let mut out = String::new();
    let enabled = if workspace.spec.enabled {
        output::paint("enabled", Colour::Good, colour)
    } else {
        output::paint("disabled", Colour::Warn, colour)
    };
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    let health = match ready {
        Some(c) if c.status == "True" => output::paint("Ready", Colour::Good, colour),
        Some(c) => output::paint(&format!("Not ready: {}", c.message), Colour::Bad, colour),
        None => "no status yet".into(),
    };
    let _ = writeln!(
        out,
        "Workspace {} (namespace {}): {enabled}, {health}",
        workspace.name_any(),
        workspace.namespace().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "  Machines reporting   {}/{}",
        status.nodes_reporting,
        status.nodes_selected.saturating_sub(status.nodes_unsupported)
    );
    if status.nodes_unsupported > 0 {
        let _ = writeln!(
            out,
            "  Unsupported nodes    {} (selected, but no agent runs there; not counted)",
            status.nodes_unsupported
        );
    }
    let _ = writeln!(out, "  Entities active      {}", status.entities_active);
    let last_change = status.last_change_time.as_ref().map(|t| t.0);
    let _ = writeln!(
        out,
        "  Last change          {}",
        last_change.map_or("-".to_string(), |t| format!(
            "{t} ({} ago)",
            output::age(Some(t), jiff::Timestamp::now())
        ))
    );
    if let Some(degraded) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded" && c.status == "True")
    {
        let _ = writeln!(
            out,
            "  {}",
            output::paint(
                &format!("Degraded: {} ({})", degraded.reason, degraded.message),
                Colour::Warn,
                colour
            )
        );
    }
    let total: u64 = changes.iter().map(summary::weight).sum();
    let _ = writeln!(out, "  Changes ({period})      {total}");
    let weight_of = |kind: Option<AttributionKind>| -> u64 {
        changes
            .iter()
            .filter(|c| c.spec.attribution.as_ref().map(|a| a.kind) == kind)
            .map(summary::weight)
            .sum()
    };
    let unexplained = weight_of(None);
    let _ = writeln!(
        out,
        "  Unexplained          {}, explained by packages {}, accepted {}, unverified during package operations {}",
        if unexplained > 0 {
            output::paint(&unexplained.to_string(), Colour::Bad, colour)
        } else {
            "0".to_string()
        },
        weight_of(Some(AttributionKind::Package)),
        weight_of(Some(AttributionKind::BaselineAccepted)),
        weight_of(Some(AttributionKind::OperationUnverified))
    );
    for (title, dimension) in [("By type", Dimension::Type), ("By category", Dimension::Category)] {
        let parts: Vec<String> = summary::summarize(changes, &[dimension])
            .into_iter()
            .map(|(k, n)| format!("{} {n}", k[0]))
            .collect();
        let _ = writeln!(
            out,
            "  {title:<20} {}",
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        );
    }
    let busiest: Vec<String> = summary::summarize(changes, &[Dimension::Node])
        .into_iter()
        .take(5)
        .map(|(k, n)| format!("{} ({n})", k[0]))
        .collect();
    let _ = writeln!(
        out,
        "  Busiest nodes        {}",
        if busiest.is_empty() {
            "-".into()
        } else {
            busiest.join(", ")
        }
    );
    out
}
