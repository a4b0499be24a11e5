//! What the agent prints: one JSON line per change (the FileChange spec, the same shape the
//! cluster stores) in every mode, and the readable listing of `check` and `update`, laid out
//! like AIDE's report so people who know AIDE can read it at a glance.

use std::{fmt::Write as _, io::Write};

use kubefim_crds::{AttributionKind, ChangeCategory, FileState, nodestatus::EntityState};

use crate::{
    Error, Result,
    diff::{Change, file_state},
    scan::ScanOutcome,
};

/// Writes `change` as one JSON line and flushes, so a consumer sees it at once.
pub fn write_json_line(out: &mut dyn Write, change: &Change, node: &str) -> Result<()> {
    write_spec_line(out, &change.to_spec(node))
}

/// Writes a FileChange spec as one JSON line and flushes.
pub fn write_spec_line(out: &mut dyn Write, spec: &kubefim_crds::FileChangeSpec) -> Result<()> {
    let line = serde_json::to_string(spec).map_err(|e| Error::Output(e.into()))?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// `text` with its control characters escaped as `ls -b` does (`\n`, `\t`, `\033`, and `\\`
/// for a backslash), so that a file named to look like a report line (a newline and a
/// verdict) or carrying terminal escapes prints as what it is. `keep_newlines` leaves line
/// breaks of a diff as line breaks.
pub fn escape_controls(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || c == '\\') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn type_letter(change: &Change) -> char {
    use kubefim_crds::FileType as T;
    match change
        .current
        .as_ref()
        .or(change.previous.as_ref())
        .map(|r| r.meta.file_type)
    {
        Some(T::Directory) => 'd',
        Some(T::Symlink) => 'l',
        Some(T::Fifo) => 'p',
        Some(T::Socket) => 's',
        Some(T::CharDevice) => 'c',
        Some(T::BlockDevice) => 'b',
        Some(T::Unit) => 'u',
        _ => 'f',
    }
}

/// "  explained: the dpkg upgrade of ... (digest verified)" for an attributed change, "  unexplained:
/// REASON" for one the package databases say why nothing explains.
fn explanation(change: &Change) -> String {
    if let Some(reason) = &change.unexplained {
        return format!("  unexplained: {}", escape_controls(reason, false));
    }
    change.attribution.as_ref().map_or(String::new(), |attribution| {
        format!(
            "  explained: {}{}",
            crate::packages::describe(attribution),
            verified(change)
        )
    })
}

fn verified(change: &Change) -> &'static str {
    match &change.attribution {
        Some(a) if a.digest_verified => " (digest verified)",
        _ => "",
    }
}

/// The readable listing of a one-shot run.
pub fn render_text(verb: &str, node: &str, outcomes: &[ScanOutcome], changes: &[Change]) -> String {
    let mut out = String::new();
    let count = |category| changes.iter().filter(|c| c.category == category).count();
    let scanned: u64 = outcomes.iter().map(|r| r.files_scanned).sum();
    let (added, removed, modified) = (
        count(ChangeCategory::Added),
        count(ChangeCategory::Removed),
        count(ChangeCategory::Modified),
    );
    let _ = writeln!(out, "kubefim {verb} on {node} at {}", jiff::Timestamp::now());
    if changes.is_empty() {
        let _ = writeln!(out, "\nNo changes: the scanned state matches the baseline.");
    } else {
        let count = |kind: Option<AttributionKind>| -> u64 {
            changes
                .iter()
                .filter(|c| c.attribution.as_ref().map(|a| a.kind) == kind)
                .map(|c| c.aggregated.as_ref().map_or(1, |a| a.count))
                .sum()
        };
        let (unexplained, packages, accepted, unverified) = (
            count(None),
            count(Some(AttributionKind::Package)),
            count(Some(AttributionKind::BaselineAccepted)),
            count(Some(AttributionKind::OperationUnverified)),
        );
        let during = match unverified {
            0 => String::new(),
            n => format!(", {n} made during package operations but not verifiable (review them)"),
        };
        if accepted > 0 {
            // An accepted change is still one nothing else explained: say how many, so a
            // planted file among routine ones is read, not waved through.
            let _ = writeln!(
                out,
                "\n{} changes found and accepted as the new baseline: {accepted} explained by nothing but this update (review each below), {packages} explained by package operations{during}, {unexplained} left unexplained.",
                unexplained + packages + accepted + unverified
            );
        } else {
            let _ = writeln!(
                out,
                "\n{} changes found: {unexplained} unexplained, {packages} explained by package operations{during}.",
                unexplained + packages + unverified
            );
        }
    }
    let _ = writeln!(
        out,
        "\nSummary:\n  Total number of entries:\t{scanned}\n  Added entries:\t\t{added}\n  Removed entries:\t\t{removed}\n  Changed entries:\t\t{modified}"
    );
    for (title, category) in [
        ("Added", ChangeCategory::Added),
        ("Removed", ChangeCategory::Removed),
        ("Changed", ChangeCategory::Modified),
    ] {
        let group: Vec<&Change> = changes.iter().filter(|c| c.category == category).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}\n{title} entries:\n{}", "-".repeat(51), "-".repeat(51));
        for change in group {
            let attributes = if change.changed.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = change.changed.iter().map(|a| a.as_str().to_string()).collect();
                format!("  ({})", names.join(", "))
            };
            let _ = writeln!(
                out,
                "{}: {}{attributes}  [{}/{}]{}",
                type_letter(change),
                escape_controls(&change.path, false),
                change.workspace,
                change.entity,
                explanation(change)
            );
        }
    }
    let folded: Vec<&Change> = changes
        .iter()
        .filter(|c| c.category == ChangeCategory::Aggregated)
        .collect();
    if !folded.is_empty() {
        let _ = writeln!(
            out,
            "\n{}\nExplained entries:\n{}",
            "-".repeat(51),
            "-".repeat(51)
        );
        for change in folded {
            let _ = writeln!(
                out,
                "{}  [{}/{}]{}",
                escape_controls(&change.path, false),
                change.workspace,
                change.entity,
                verified(change)
            );
            for path in change.aggregated.iter().flat_map(|a| &a.sample_paths) {
                let _ = writeln!(out, "  {}", escape_controls(path, false));
            }
        }
    }
    let detailed: Vec<&Change> = changes
        .iter()
        .filter(|c| c.category == ChangeCategory::Modified)
        .collect();
    if !detailed.is_empty() {
        let _ = writeln!(
            out,
            "\n{}\nDetailed information about changes:\n{}",
            "-".repeat(51),
            "-".repeat(51)
        );
        for change in detailed {
            let (Some(before), Some(after)) = (
                change.previous.as_ref().map(file_state),
                change.current.as_ref().map(file_state),
            ) else {
                continue;
            };
            let _ = writeln!(out, "\nPath: {}", escape_controls(&change.path, false));
            let xattrs = xattr_row(&before, &after);
            let rows = [
                ("Size", before.size.to_string(), after.size.to_string()),
                ("Perm", before.mode, after.mode),
                ("Uid", before.uid.to_string(), after.uid.to_string()),
                ("Gid", before.gid.to_string(), after.gid.to_string()),
                ("Mtime", before.mtime, after.mtime),
                ("Ctime", before.ctime, after.ctime),
                ("Inode", before.inode.to_string(), after.inode.to_string()),
                (
                    "Link",
                    before.link_target.unwrap_or_default(),
                    after.link_target.unwrap_or_default(),
                ),
                (
                    "Hash",
                    before.hash.unwrap_or_default(),
                    after.hash.unwrap_or_default(),
                ),
                ("Enabled", fmt_opt(before.enabled), fmt_opt(after.enabled)),
                (
                    "Caps",
                    before.capabilities.unwrap_or_default(),
                    after.capabilities.unwrap_or_default(),
                ),
                (
                    "ACL",
                    before.acl.unwrap_or_default(),
                    after.acl.unwrap_or_default(),
                ),
                (
                    "DefACL",
                    before.default_acl.unwrap_or_default(),
                    after.default_acl.unwrap_or_default(),
                ),
                (
                    "SELinux",
                    before.selinux.unwrap_or_default(),
                    after.selinux.unwrap_or_default(),
                ),
                xattrs,
                ("Flags", before.flags.join(","), after.flags.join(",")),
            ];
            for (name, old, new) in rows {
                if old != new {
                    let _ = writeln!(
                        out,
                        "  {name:<8}: {}\n  {:<8}  {}",
                        escape_controls(&old, false),
                        "",
                        escape_controls(&new, false)
                    );
                }
            }
            if let Some(diff) = &change.diff {
                let _ = writeln!(
                    out,
                    "{}{}",
                    escape_controls(&diff.text, true),
                    if diff.truncated {
                        "  (diff truncated)\n"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    let problems: Vec<String> = outcomes
        .iter()
        .flat_map(|r| r.entities.iter().map(move |e| (r, e)))
        .filter(|(_, e)| e.state != EntityState::Active || !e.errors.is_empty())
        .map(|(r, e)| {
            format!(
                "  {}/{} [{:?}]: {}",
                r.workspace,
                e.name,
                e.state,
                escape_controls(e.message.as_deref().unwrap_or(""), false)
            )
        })
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nEntities with problems:\n{}", problems.join("\n"));
    }
    out
}

/// The extended attributes that differ (other than those with rows of their own), each as
/// its name and the start of its value's digest (and its decoding, when known), with the count
/// of those not read.
fn xattr_row(before: &FileState, after: &FileState) -> (&'static str, String, String) {
    const OWN_ROWS: [&str; 4] = [
        "security.capability",
        "system.posix_acl_access",
        "system.posix_acl_default",
        "security.selinux",
    ];
    let differing = |one: &FileState, other: &FileState| -> String {
        let mut shown: Vec<String> = one
            .xattrs
            .iter()
            .filter(|x| !OWN_ROWS.contains(&x.name.as_str()) && !other.xattrs.contains(x))
            .map(|x| {
                let digest = x.digest.get(..16).unwrap_or(&x.digest);
                match &x.decoded {
                    Some(decoded) => format!("{}={digest}… ({decoded})", x.name),
                    None => format!("{}={digest}…", x.name),
                }
            })
            .collect();
        if one.xattrs_not_read != other.xattrs_not_read {
            shown.push(format!("{} not read", one.xattrs_not_read));
        }
        shown.join(", ")
    };
    ("XAttrs", differing(before, after), differing(after, before))
}

fn fmt_opt(value: Option<bool>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}
