//! Who may monitor what (docs/design.md, "Security posture"): watching a host file is reading it, so FIM configuration is
//! a cluster-admin decision. The operator serves FimWorkspaces only in the namespaces the admin
//! allowed (`--workspace-namespaces`, by default the install namespace, and optionally the
//! namespaces a label selector matches); a workspace anywhere else is refused in its status and
//! nothing of it reaches a node. Pure: the namespace labels come from the caller.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::selector;

/// The condition and Event reason of a workspace (or entity) in a namespace not allowed.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";

/// The namespaces allowed to hold FimWorkspaces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespacePolicy {
    names: BTreeSet<String>,
    selector: Option<LabelSelector>,
    /// The selector as the admin wrote it, for messages.
    selector_text: String,
}

impl NamespacePolicy {
    /// Namespaces named in `names`, plus those whose labels match `selector` (kubectl's
    /// equality syntax: `k=v`, `k!=v`, `k`, `!k`, comma-separated; empty for none).
    pub fn new(names: impl IntoIterator<Item = String>, selector: &str) -> Result<Self, String> {
        let selector_text = selector.trim().to_string();
        Ok(Self {
            names: names
                .into_iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            selector: (!selector_text.is_empty())
                .then(|| parse_selector(&selector_text))
                .transpose()?,
            selector_text,
        })
    }

    /// Whether a selector is set (the operator then watches namespaces for their labels).
    pub fn uses_labels(&self) -> bool {
        self.selector.is_some()
    }

    /// Whether `namespace`, with `labels` (None when unknown), may hold FimWorkspaces.
    pub fn allows(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.names.contains(namespace)
            || match (&self.selector, labels) {
                (Some(selector), Some(labels)) => selector::matches(selector, labels).unwrap_or(false),
                _ => false,
            }
    }

    /// What a refused workspace's status says: why, and how an admin allows it.
    pub fn refusal(&self, namespace: &str) -> String {
        let allowed: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let by_label = if self.selector_text.is_empty() {
            String::new()
        } else {
            format!(" or namespaces labelled {}", self.selector_text)
        };
        format!(
            "namespace {namespace} may not hold FimWorkspaces: the operator serves only {}{by_label}. A cluster admin allows it by adding it to the chart value workspaceNamespaces, or by labelling it to match workspaceNamespaceSelector; nothing of this workspace reaches any node meanwhile",
            if allowed.is_empty() {
                "no listed namespace".to_string()
            } else {
                allowed.join(", ")
            }
        )
    }
}

/// Parses kubectl's equality-based selector syntax into a LabelSelector.
pub fn parse_selector(text: &str) -> Result<LabelSelector, String> {
    let mut selector = LabelSelector::default();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let requirement = |key: &str, operator: &str, value: Option<&str>| LabelSelectorRequirement {
            key: key.trim().to_string(),
            operator: operator.to_string(),
            values: value.map(|v| vec![v.trim().to_string()]),
        };
        let parsed = if let Some((key, value)) = term.split_once("!=") {
            requirement(key, "NotIn", Some(value))
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            requirement(key, "In", Some(value))
        } else if let Some(key) = term.strip_prefix('!') {
            requirement(key, "DoesNotExist", None)
        } else {
            requirement(term, "Exists", None)
        };
        let valid_key = !parsed.key.is_empty() && !parsed.key.contains(char::is_whitespace);
        let valid_value = parsed
            .values
            .iter()
            .flatten()
            .all(|v| !v.contains(char::is_whitespace) && !v.contains('='));
        if !valid_key || !valid_value {
            return Err(format!(
                "namespace selector term {term:?} is not understood: write key=value, key!=value, key or !key, separated by commas"
            ));
        }
        selector
            .match_expressions
            .get_or_insert_with(Vec::new)
            .push(parsed);
    }
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listed_namespaces_are_allowed_and_others_are_not() {
        let policy = NamespacePolicy::new(["kubefim-system".to_string()], "").unwrap();
        assert!(policy.allows("kubefim-system", None));
        assert!(!policy.allows("team-b", Some(&labels(&[("kubefim.dev/monitoring", "allowed")]))));
        assert!(!policy.uses_labels());
        let message = policy.refusal("team-b");
        assert!(
            message.contains("team-b")
                && message.contains("kubefim-system")
                && message.contains("workspaceNamespaces"),
            "{message}"
        );
    }

    #[test]
    fn a_selector_adds_the_namespaces_it_matches() {
        let policy = NamespacePolicy::new(
            ["kubefim-system".to_string()],
            "kubefim.dev/monitoring=allowed, !quarantine",
        )
        .unwrap();
        assert!(policy.uses_labels());
        assert!(policy.allows("team-a", Some(&labels(&[("kubefim.dev/monitoring", "allowed")]))));
        assert!(!policy.allows(
            "team-b",
            Some(&labels(&[
                ("kubefim.dev/monitoring", "allowed"),
                ("quarantine", "")
            ]))
        ));
        assert!(!policy.allows("team-c", Some(&labels(&[("kubefim.dev/monitoring", "no")]))));
        assert!(!policy.allows("team-d", None), "unknown labels allow nothing");
        assert!(
            policy
                .refusal("team-c")
                .contains("labelled kubefim.dev/monitoring=allowed")
        );
    }

    #[test]
    fn selector_terms_parse_like_kubectl_and_nonsense_is_named() {
        let selector = parse_selector("a=1,b!=2,c,!d,e==5").unwrap();
        let operators: Vec<&str> = selector
            .match_expressions
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.operator.as_str())
            .collect();
        assert_eq!(operators, ["In", "NotIn", "Exists", "DoesNotExist", "In"]);
        let err = parse_selector("team in (a, b)").unwrap_err();
        assert!(err.contains("\"team in (a\""), "{err}");
    }
}
