//! The commands: each gathers with `api` and renders with pure functions of this module (or of
//! `dashboard`), so what a command prints is testable without a cluster.

use std::fmt::Write as _;

use kube::{Client, ResourceExt};
use kubefim_crds::{
    FileChange, FimNodeStatus, FimWorkspace, MonitoredEntity, TargetOs, catalog, nodestatus, units,
};

pub use crate::dashboard::render_dashboard;
use crate::{
    Result, api,
    output::{self, Colour, Format, ReadFormat},
    query::ChangeQuery,
    summary::{self, Dimension},
};

/// Where a command looks: one namespace, or all.
#[derive(Debug, Clone)]
pub struct Scope {
    pub namespace: Option<String>,
}

impl Scope {
    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The namespace a single named object is looked up in.
    fn one(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// The servers tab: one row per node of a workspace.
pub fn render_nodes(
    reports: &[FimNodeStatus],
    interval: std::time::Duration,
    now: jiff::Timestamp,
    width: usize,
    colour: bool,
) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut sorted: Vec<&FimNodeStatus> = reports.iter().collect();
    sorted.sort_by(|a, b| a.spec.node_name.cmp(&b.spec.node_name));
    for report in sorted {
        let status = report.status.clone().unwrap_or_default();
        let fresh = nodestatus::heartbeat_is_fresh(status.last_heartbeat_time.as_ref(), interval, now);
        let health = if fresh {
            output::paint("Reporting", Colour::Good, colour)
        } else {
            output::paint("Stale", Colour::Bad, colour)
        };
        let week = nodestatus::last_7_days(&status.change_counts, now).by_type;
        let errors = status
            .entities
            .iter()
            .filter(|e| e.state == nodestatus::EntityState::Error)
            .count();
        let realtime = match (&status.realtime.degraded_reason, status.realtime.active) {
            (Some(_), _) => output::paint("degraded", Colour::Warn, colour),
            (None, true) => "on".into(),
            (None, false) => "off".into(),
        };
        rows.push(vec![
            report.spec.node_name.clone(),
            health,
            output::age(status.last_scan.as_ref().map(|s| s.started_at.0), now),
            status.files_monitored.to_string(),
            week.files.to_string(),
            week.content.to_string(),
            week.services.to_string(),
            errors.to_string(),
            realtime,
        ]);
    }
    output::table(
        &[
            "NODE",
            "HEALTH",
            "LAST SCAN",
            "FILES",
            "FILES-7D",
            "CONTENT-7D",
            "SERVICES-7D",
            "ENTITY ERRORS",
            "REALTIME",
        ],
        &rows,
        width,
    )
}

/// The settings tab: recommended and custom items of a workspace, enabled or not.
pub fn render_entities(workspace: &FimWorkspace, entities: &[MonitoredEntity], width: usize) -> String {
    let spec = &workspace.spec;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for os in [TargetOs::Linux, TargetOs::Windows] {
        for item in catalog::RECOMMENDED.iter().filter(|i| i.os == os) {
            let enabled = spec.enabled
                && spec.recommended.enabled
                && !spec.recommended.exclude.iter().any(|e| e == item.id);
            rows.push(vec![
                item.id.to_string(),
                "recommended".into(),
                item.entity_type.to_string(),
                enabled.to_string(),
                item.recursive.to_string(),
                item.path.to_string(),
            ]);
        }
    }
    let mut custom: Vec<&MonitoredEntity> = entities
        .iter()
        .filter(|e| e.spec.workspace == workspace.name_any())
        .collect();
    custom.sort_by_key(|e| e.name_any());
    for entity in custom {
        rows.push(vec![
            entity.name_any(),
            "custom".into(),
            entity.spec.entity_type.to_string(),
            (spec.enabled && entity.spec.enabled).to_string(),
            entity.spec.recursive.to_string(),
            entity.spec.path.clone(),
        ]);
    }
    output::table(
        &["NAME", "SOURCE", "TYPE", "ENABLED", "RECURSIVE", "PATH"],
        &rows,
        width,
    )
}

/// An actor in one line: pid, what runs, who, where.
fn actor_line(actor: &kubefim_crds::filechange::Actor) -> String {
    let mut parts = vec![format!("pid {}", actor.pid)];
    if let Some(what) = actor.executable.as_deref().or(actor.name.as_deref()) {
        parts.push(what.to_string());
    }
    if let Some(command) = &actor.command_line {
        parts.push(format!("({command})"));
    }
    match (&actor.user, actor.uid) {
        (Some(user), Some(uid)) => parts.push(format!("user {user} ({uid})")),
        (None, Some(uid)) => parts.push(format!("uid {uid}")),
        _ => {}
    }
    if let Some(login) = actor.login_uid {
        parts.push(format!("login uid {login}"));
    }
    if let Some(parent) = &actor.parent_executable {
        parts.push(format!("parent {parent}"));
    }
    if let Some(pod) = &actor.pod {
        parts.push(match (&pod.namespace, &pod.name) {
            (Some(namespace), Some(name)) => format!("pod {namespace}/{name}"),
            _ => format!("pod uid {}", pod.uid),
        });
    } else if let Some(container) = &actor.container {
        parts.push(format!("container {}", container.id));
    }
    if actor.exited {
        parts.push("(had exited)".to_string());
    }
    parts.join(", ")
}

/// One change: previous and current attributes side by side, then the diff.
pub fn render_change(change: &FileChange, width: usize) -> String {
    let spec = &change.spec;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {:?} {:?} on {} ({}/{}), detected {} by {:?}",
        spec.path,
        spec.change_type,
        spec.category,
        spec.node_name,
        spec.workspace,
        spec.entity,
        spec.detected_at,
        spec.source
    );
    if let Some(aggregated) = &spec.aggregated {
        let _ = writeln!(
            out,
            "\n{} changes folded: {} added, {} modified, {} removed",
            aggregated.count,
            aggregated.by_category.added,
            aggregated.by_category.modified,
            aggregated.by_category.removed
        );
        for path in &aggregated.sample_paths {
            let _ = writeln!(out, "  {path}");
        }
        return out;
    }
    let value = |state: Option<&kubefim_crds::FileState>| serde_json::to_value(state).unwrap_or_default();
    let (before, after) = (value(spec.previous.as_ref()), value(spec.current.as_ref()));
    let fields = [
        "fileType",
        "size",
        "mode",
        "uid",
        "gid",
        "mtime",
        "ctime",
        "inode",
        "nlink",
        "linkTarget",
        "hash",
        "hashAlgorithm",
        "enabled",
        "capabilities",
        "acl",
        "defaultAcl",
        "selinux",
        "xattrs",
        "xattrsNotRead",
        "flags",
    ];
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            // Flags by name; xattrs as name=digest (the value itself is never in the API).
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| match (item.get("name"), item.get("digest")) {
                    (Some(name), Some(digest)) => {
                        let digest = text(digest);
                        format!("{}={}…", text(name), digest.get(..16).unwrap_or(&digest))
                    }
                    _ => text(item),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    }
    let changed: Vec<String> = spec
        .changed_attributes
        .iter()
        .map(|a| serde_json::to_string(a).unwrap_or_default().replace('"', ""))
        .collect();
    let rows: Vec<Vec<String>> = fields
        .iter()
        .filter(|f| !before[**f].is_null() || !after[**f].is_null())
        .map(|f| {
            let mark = if text(&before[*f]) != text(&after[*f]) {
                "*"
            } else {
                ""
            };
            vec![format!("{f}{mark}"), text(&before[*f]), text(&after[*f])]
        })
        .collect();
    let _ = writeln!(
        out,
        "\nChanged: {}\n",
        if changed.is_empty() {
            "-".into()
        } else {
            changed.join(", ")
        }
    );
    out.push_str(&output::table(
        &["ATTRIBUTE", "PREVIOUS", "CURRENT"],
        &rows,
        width,
    ));
    if let Some(actor) = &spec.actor {
        let _ = writeln!(out, "\nMade by: {}", actor_line(actor));
    }
    if let Some(diff) = &spec.content_diff {
        let _ = writeln!(
            out,
            "\n{diff}{}",
            if spec.content_diff_truncated {
                "(diff truncated)"
            } else {
                ""
            }
        );
    }
    out
}

/// `kubectl fim status [WORKSPACE]`.
pub async fn status(
    client: &Client,
    scope: &Scope,
    workspace: Option<&str>,
    since: &str,
    format: ReadFormat,
) -> Result<String> {
    let window = units::parse_duration(since).map_err(|e| crate::Error::Usage(format!("--since: {e}")))?;
    let workspaces = match workspace {
        Some(name) => vec![api::get_workspace(client, scope.one(), name).await?],
        None => api::workspaces(client, scope.ns()).await?,
    };
    if let Some(text) = output::structured(format, &workspaces) {
        return text;
    }
    if workspaces.is_empty() {
        return Ok("No FimWorkspace here: create one (examples/workspace.yaml) or pass -n / -A.\n".into());
    }
    let now = jiff::Timestamp::now();
    let mut out = String::new();
    for ws in &workspaces {
        let query = ChangeQuery {
            workspace: Some(ws.name_any()),
            since: Some(window),
            ..Default::default()
        };
        let changes = api::list_changes(client, ws.namespace().as_deref(), &query, now).await?;
        out.push_str(&render_dashboard(ws, &changes, since, output::use_colour()));
        out.push('\n');
    }
    Ok(out)
}

/// `kubectl fim changes`.
pub async fn changes(
    client: &Client,
    scope: &Scope,
    query: &ChangeQuery,
    summarize_by: &[Dimension],
    format: Format,
) -> Result<String> {
    let mut changes = api::list_changes(client, scope.ns(), query, jiff::Timestamp::now()).await?;
    summary::sort_for_details(&mut changes);
    if !summarize_by.is_empty() {
        let rows = summary::summarize(&changes, summarize_by);
        let mut headers: Vec<&str> = summarize_by.iter().map(|d| d.header()).collect();
        headers.push("CHANGES");
        return Ok(match format {
            Format::Json => output::json(&rows)?,
            Format::Yaml => output::yaml(&rows)?,
            Format::Csv => {
                let mut text = headers.join(",").to_lowercase() + "\n";
                for (keys, count) in rows {
                    text.push_str(&format!("{},{count}\n", keys.join(",")));
                }
                text
            }
            Format::Table | Format::Wide => {
                let rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|(mut k, n)| {
                        k.push(n.to_string());
                        k
                    })
                    .collect();
                output::table(&headers, &rows, output::terminal_width())
            }
        });
    }
    match format {
        Format::Json => output::json(&changes),
        Format::Yaml => output::yaml(&changes),
        Format::Csv => output::changes_csv(&changes),
        Format::Table | Format::Wide => {
            let (headers, rows) =
                output::change_rows(&changes, format == Format::Wide, jiff::Timestamp::now());
            if rows.is_empty() {
                return Ok("No changes match.\n".into());
            }
            Ok(output::table(&headers, &rows, output::terminal_width()))
        }
    }
}

/// `kubectl fim nodes [WORKSPACE]`.
pub async fn nodes(
    client: &Client,
    scope: &Scope,
    workspace: Option<&str>,
    format: ReadFormat,
) -> Result<String> {
    let reports = api::node_statuses(client, scope.ns(), workspace).await?;
    if let Some(text) = output::structured(format, &reports) {
        return text;
    }
    let interval = match workspace {
        Some(name) => units::parse_duration(
            &api::get_workspace(client, scope.one(), name)
                .await?
                .spec
                .scan
                .interval,
        )
        .ok(),
        None => None,
    }
    .unwrap_or(std::time::Duration::from_secs(900));
    Ok(render_nodes(
        &reports,
        interval,
        jiff::Timestamp::now(),
        format.width(),
        output::use_colour(),
    ))
}

/// `kubectl fim entities [WORKSPACE]`.
pub async fn entities(
    client: &Client,
    scope: &Scope,
    workspace: Option<&str>,
    format: ReadFormat,
) -> Result<String> {
    let workspaces = match workspace {
        Some(name) => vec![api::get_workspace(client, scope.one(), name).await?],
        None => api::workspaces(client, scope.ns()).await?,
    };
    let all = api::entities(client, scope.ns()).await?;
    let mine = |ws: &FimWorkspace| -> Vec<MonitoredEntity> {
        all.iter()
            .filter(|e| e.namespace() == ws.namespace() && e.spec.workspace == ws.name_any())
            .cloned()
            .collect()
    };
    if matches!(format, ReadFormat::Json | ReadFormat::Yaml) {
        let listed: Vec<serde_json::Value> = workspaces
            .iter()
            .map(|ws| serde_json::json!({"workspace": ws, "entities": mine(ws)}))
            .collect();
        if let Some(text) = output::structured(format, &listed) {
            return text;
        }
    }
    let mut out = String::new();
    for ws in &workspaces {
        let _ = writeln!(out, "Workspace {}:", ws.name_any());
        out.push_str(&render_entities(ws, &mine(ws), format.width()));
        out.push('\n');
    }
    Ok(out)
}

/// `kubectl fim show CHANGE`.
pub async fn show(client: &Client, scope: &Scope, name: &str, format: ReadFormat) -> Result<String> {
    let change = api::get_change(client, scope.one(), name).await?;
    output::structured(format, &change).unwrap_or_else(|| Ok(render_change(&change, format.width())))
}
