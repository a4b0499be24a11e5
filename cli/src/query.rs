//! Which FileChanges a query wants: the parts the API server can select (labels) and the parts
//! only the client can (time window, path glob). Pure.

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use kube::ResourceExt;
use kubefim_crds::{ChangeCategory, ChangeType, FileChange, keys};

use crate::{Error, Result};

/// A changes query, as `kubectl fim changes` flags describe it.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    pub workspace: Option<String>,
    pub since: Option<Duration>,
    pub nodes: Vec<String>,
    pub types: Vec<ChangeType>,
    pub categories: Vec<ChangeCategory>,
    pub entity: Option<String>,
    pub path: Option<GlobMatcher>,
    /// Only changes nothing explains (no package operation, no baseline accept).
    pub unexplained: bool,
    /// Only changes whose actor is this process: its user, its name, its executable or the
    /// executable's file name.
    pub actor: Option<String>,
    /// Only changes whose actor ran in this pod (namespace, name).
    pub pod: Option<(String, String)>,
}

/// `--pod NAMESPACE/NAME`, naming a bad value.
pub fn pod_ref(value: &str) -> Result<(String, String)> {
    match value.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((namespace.to_string(), name.to_string()))
        }
        _ => Err(Error::Usage(format!("--pod {value:?} is not NAMESPACE/NAME"))),
    }
}

/// Whether `actor` is the process `wanted` names.
fn is_actor(actor: &kubefim_crds::filechange::Actor, wanted: &str) -> bool {
    let executable = actor.executable.as_deref();
    actor.user.as_deref() == Some(wanted)
        || actor.name.as_deref() == Some(wanted)
        || executable == Some(wanted)
        || executable.and_then(|e| e.rsplit('/').next()) == Some(wanted)
}

fn set_requirement(key: &str, values: &[String]) -> Option<String> {
    match values {
        [] => None,
        [one] => Some(format!("{key}={one}")),
        many => Some(format!("{key} in ({})", many.join(","))),
    }
}

/// Parses a comma-separated list of enum values (as they appear in labels), naming a bad one.
pub fn parse_list<T: serde::de::DeserializeOwned>(flag: &str, value: &str, allowed: &str) -> Result<Vec<T>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_string()))
                .map_err(|_| Error::Usage(format!("{flag} {v:?} is not one of {allowed}")))
        })
        .collect()
}

/// A path glob (`*` stays within a path segment, `**` crosses them).
pub fn path_glob(pattern: &str) -> Result<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::Usage(format!("--path {pattern:?} is not a valid glob: {}", e.kind())))
}

impl ChangeQuery {
    /// The label selector the API server applies.
    pub fn label_selector(&self) -> String {
        let label = |v: String| v;
        [
            self.workspace
                .as_ref()
                .map(|w| format!("{}={w}", keys::LABEL_WORKSPACE)),
            set_requirement(keys::LABEL_NODE, &self.nodes),
            set_requirement(
                keys::LABEL_TYPE,
                &self
                    .types
                    .iter()
                    .map(|t| label(format!("{t:?}")))
                    .collect::<Vec<_>>(),
            ),
            set_requirement(
                keys::LABEL_CATEGORY,
                &self
                    .categories
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>(),
            ),
            self.entity
                .as_ref()
                .map(|e| format!("{}={e}", keys::LABEL_ENTITY)),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(",")
    }

    /// Whether a listed change also passes what only the client can check.
    pub fn matches(&self, change: &FileChange, now: jiff::Timestamp) -> bool {
        if let Some(since) = self.since {
            let detected: Option<jiff::Timestamp> = change.spec.detected_at.parse().ok();
            let at = detected.or_else(|| change.creation_timestamp().map(|t| t.0));
            let window = jiff::SignedDuration::try_from(since).unwrap_or(jiff::SignedDuration::MAX);
            if at.is_none_or(|at| now.duration_since(at) > window) {
                return false;
            }
        }
        // A change made during a package operation but not verifiable is still to review.
        if self.unexplained
            && change
                .spec
                .attribution
                .as_ref()
                .is_some_and(|a| a.kind != kubefim_crds::AttributionKind::OperationUnverified)
        {
            return false;
        }
        let actor = change.spec.actor.as_ref();
        if let Some(wanted) = &self.actor
            && !actor.is_some_and(|a| is_actor(a, wanted))
        {
            return false;
        }
        if let Some((namespace, name)) = &self.pod
            && !actor
                .and_then(|a| a.pod.as_ref())
                .is_some_and(|p| p.namespace.as_ref() == Some(namespace) && p.name.as_ref() == Some(name))
        {
            return false;
        }
        self.path
            .as_ref()
            .is_none_or(|glob| glob.is_match(&change.spec.path))
    }
}
