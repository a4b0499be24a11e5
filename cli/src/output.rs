//! Rendering: aligned tables that fit the terminal, and JSON, YAML and CSV. Pure.

use std::io::IsTerminal;

use kubefim_crds::{AttributionKind, FileChange, PackageManager};
use serde::Serialize;

use crate::{Error, Result};

/// Output formats of `kubectl fim status`, `nodes`, `entities` and `show`: `wide` is the table
/// at its full width, whatever the terminal's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadFormat {
    Table,
    Wide,
    Json,
    Yaml,
}

impl ReadFormat {
    /// The width a table is fitted to.
    pub fn width(self) -> usize {
        match self {
            Self::Wide => usize::MAX,
            _ => terminal_width(),
        }
    }
}

/// `value` as JSON or YAML when `format` asks for one of them; None for a table.
pub fn structured(format: ReadFormat, value: &impl Serialize) -> Option<Result<String>> {
    match format {
        ReadFormat::Json => Some(json(value)),
        ReadFormat::Yaml => Some(yaml(value)),
        ReadFormat::Table | ReadFormat::Wide => None,
    }
}

/// Output formats of `kubectl fim changes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    Csv,
}

/// The terminal width, or a wide default when not a terminal (output is being redirected).
pub fn terminal_width() -> usize {
    if !std::io::stdout().is_terminal() {
        return usize::MAX;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

/// Whether to colour: only on a terminal, and never when NO_COLOR is set.
pub fn use_colour() -> bool {
    kubefim_telemetry::colour_on(&std::io::stdout())
}

/// How many terminal columns `text` takes (a CJK character two, a combining mark none, the
/// colour codes of [`paint`] none).
pub fn display_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => width += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0),
        }
    }
    width
}

/// Cuts `text` to `width` terminal columns, marking the cut with `…` at the start (paths end in
/// what matters).
fn fit(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    // Keep the longest tail that fits beside the one-column ellipsis.
    let mut tail = Vec::new();
    let mut used = 1;
    for c in text.chars().rev() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > width {
            break;
        }
        used += w;
        tail.push(c);
    }
    let tail: String = tail.into_iter().rev().collect();
    format!("…{tail}")
}

/// `cell` padded with spaces to `width` columns.
fn pad(cell: &str, width: usize) -> String {
    let mut out = cell.to_string();
    out.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(display_width(cell)),
    ));
    out
}

/// An aligned table; the last column gives way when the rows are wider than `width`. Widths
/// are counted in terminal columns, not characters.
pub fn table(headers: &[&str], rows: &[Vec<String>], width: usize) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| display_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(display_width(cell));
        }
    }
    let fixed: usize = widths[..columns - 1].iter().map(|w| w + 3).sum();
    if fixed + widths[columns - 1] > width {
        widths[columns - 1] = width.saturating_sub(fixed).max(8);
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let cell = fit(c, widths[i]);
                if i + 1 == columns {
                    cell
                } else {
                    pad(&cell, widths[i])
                }
            })
            .collect();
        parts.join("   ").trim_end().to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out.push('\n');
    out
}

/// "5m", "3h", "2d": how long ago.
pub fn age(at: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    let Some(at) = at else { return "-".into() };
    let seconds = now.duration_since(at).as_secs().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn detected(change: &FileChange) -> Option<jiff::Timestamp> {
    change.spec.detected_at.parse().ok()
}

/// The columns of the changes table (wide adds entity, workspace, attributes and the name).
pub fn change_rows(
    changes: &[FileChange],
    wide: bool,
    now: jiff::Timestamp,
) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let headers = if wide {
        vec![
            "NODE",
            "TYPE",
            "CATEGORY",
            "AGE",
            "WORKSPACE",
            "ENTITY",
            "ATTRIBUTES",
            "NAME",
            "EXPLAINED BY",
            "PATH",
        ]
    } else {
        vec!["NODE", "TYPE", "CATEGORY", "AGE", "EXPLAINED BY", "PATH"]
    };
    let rows = changes
        .iter()
        .map(|c| {
            let spec = &c.spec;
            let mut row = vec![
                spec.node_name.clone(),
                format!("{:?}", spec.change_type),
                format!("{:?}", spec.category),
                age(detected(c), now),
            ];
            if wide {
                let attributes: Vec<String> = spec
                    .changed_attributes
                    .iter()
                    .map(|a| serde_json::to_string(a).unwrap_or_default().replace('"', ""))
                    .collect();
                row.extend([
                    spec.workspace.clone(),
                    spec.entity.clone(),
                    if attributes.is_empty() {
                        "-".into()
                    } else {
                        attributes.join(",")
                    },
                    c.metadata.name.clone().unwrap_or_default(),
                ]);
            }
            row.push(explained_by(spec));
            row.push(spec.path.clone());
            row
        })
        .collect();
    (headers, rows)
}

/// What explains a change, in a table cell: "dpkg coreutils 9.1-1 -> 9.1-2", "accepted r7", or
/// "-" when nothing does.
pub fn explained_by(spec: &kubefim_crds::FileChangeSpec) -> String {
    let Some(a) = &spec.attribution else {
        return "-".into();
    };
    match a.kind {
        AttributionKind::BaselineAccepted => format!("accepted {}", a.revision.as_deref().unwrap_or(""))
            .trim_end()
            .to_string(),
        AttributionKind::OperationUnverified => format!(
            "unverified: during {} {}",
            a.manager.map_or("package", PackageManager::as_str),
            a.package.as_deref().unwrap_or("operation on several packages")
        ),
        AttributionKind::Package => {
            let manager = a.manager.map_or("package", PackageManager::as_str);
            let versions = match (&a.from_version, &a.to_version) {
                (Some(from), Some(to)) if from == to => format!("{to} reinstalled"),
                (Some(from), Some(to)) => format!("{from} -> {to}"),
                (None, Some(to)) => format!("{to} installed"),
                (Some(from), None) => format!("{from} removed"),
                (None, None) => String::new(),
            };
            format!(
                "{manager} {} {versions}",
                a.package.as_deref().unwrap_or("(several)")
            )
            .trim_end()
            .to_string()
        }
    }
}

/// One CSV record per change, with a header: what reports are built from.
pub fn changes_csv(changes: &[FileChange]) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "detectedAt",
            "node",
            "workspace",
            "entity",
            "type",
            "category",
            "path",
            "changedAttributes",
            "previousHash",
            "currentHash",
            "name",
            "attribution",
            "packageManager",
            "package",
            "fromVersion",
            "toVersion",
            "digestVerified",
            "acceptedRevision",
            "actorPid",
            "actorExecutable",
            "actorCommandLine",
            "actorUser",
            "actorContainer",
            "actorPod",
        ])
        .map_err(Error::Csv)?;
    for change in changes {
        let spec = &change.spec;
        let attribution = spec.attribution.as_ref();
        let actor = spec.actor.as_ref();
        let attributes: Vec<String> = spec
            .changed_attributes
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_default().replace('"', ""))
            .collect();
        writer
            .write_record([
                spec.detected_at.as_str(),
                &spec.node_name,
                &spec.workspace,
                &spec.entity,
                &format!("{:?}", spec.change_type),
                &format!("{:?}", spec.category),
                &spec.path,
                &attributes.join(" "),
                spec.previous
                    .as_ref()
                    .and_then(|s| s.hash.as_deref())
                    .unwrap_or(""),
                spec.current
                    .as_ref()
                    .and_then(|s| s.hash.as_deref())
                    .unwrap_or(""),
                change.metadata.name.as_deref().unwrap_or(""),
                &attribution.map_or(String::new(), |a| format!("{:?}", a.kind)),
                attribution
                    .and_then(|a| a.manager)
                    .map_or("", PackageManager::as_str),
                attribution.and_then(|a| a.package.as_deref()).unwrap_or(""),
                attribution.and_then(|a| a.from_version.as_deref()).unwrap_or(""),
                attribution.and_then(|a| a.to_version.as_deref()).unwrap_or(""),
                attribution.map_or("", |a| if a.digest_verified { "true" } else { "false" }),
                attribution.and_then(|a| a.revision.as_deref()).unwrap_or(""),
                &actor.map_or(String::new(), |a| a.pid.to_string()),
                actor
                    .and_then(|a| a.executable.as_deref().or(a.name.as_deref()))
                    .unwrap_or(""),
                actor.and_then(|a| a.command_line.as_deref()).unwrap_or(""),
                &actor.map_or(String::new(), |a| {
                    a.user
                        .clone()
                        .or_else(|| a.uid.map(|u| u.to_string()))
                        .unwrap_or_default()
                }),
                actor
                    .and_then(|a| a.container.as_ref())
                    .map_or("", |c| c.id.as_str()),
                &actor.and_then(|a| a.pod.as_ref()).map_or(String::new(), |p| {
                    match (&p.namespace, &p.name) {
                        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
                        _ => p.uid.clone(),
                    }
                }),
            ])
            .map_err(Error::Csv)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::Usage(format!("cannot finish the CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Usage(format!("CSV is not UTF-8: {e}")))
}

pub fn json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| Error::Usage(format!("cannot write JSON: {e}")))
}

pub fn yaml(value: &impl Serialize) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::Usage(format!("cannot write YAML: {e}")))
}

/// Green, yellow or red on a terminal; plain otherwise.
pub fn paint(text: &str, colour: Colour, enabled: bool) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match colour {
        Colour::Good => 32,
        Colour::Warn => 33,
        Colour::Bad => 31,
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Status colours.
#[derive(Debug, Clone, Copy)]
pub enum Colour {
    Good,
    Warn,
    Bad,
}
