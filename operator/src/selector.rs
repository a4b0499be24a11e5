//! Label selector matching (`metav1.LabelSelector` semantics), for workspace `nodeSelector`s.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector that cannot be evaluated, with the offending operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nodeSelector operator {operator:?} on key {key:?} is not one of In, NotIn, Exists, DoesNotExist")]
pub struct InvalidSelector {
    pub key: String,
    pub operator: String,
}

/// Whether `labels` satisfy `selector`. An empty selector matches everything.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, InvalidSelector> {
    if let Some(required) = &selector.match_labels
        && !required.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return Ok(false);
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let value = labels.get(&requirement.key);
        let values = requirement.values.as_deref().unwrap_or_default();
        let ok = match requirement.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(InvalidSelector {
                    key: requirement.key.clone(),
                    operator: other.to_string(),
                });
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn selector_table() {
        let node = labels(&[("kubernetes.io/os", "linux"), ("pool", "gpu")]);
        let match_labels = |pairs: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(pairs)),
            ..Default::default()
        };
        let cases = [
            (LabelSelector::default(), true),
            (match_labels(&[("pool", "gpu")]), true),
            (match_labels(&[("pool", "cpu")]), false),
            (match_labels(&[("pool", "gpu"), ("zone", "a")]), false),
            (expression("pool", "In", &["gpu", "cpu"]), true),
            (expression("pool", "In", &["cpu"]), false),
            (expression("pool", "NotIn", &["cpu"]), true),
            (expression("zone", "NotIn", &["a"]), true),
            (expression("pool", "Exists", &[]), true),
            (expression("zone", "Exists", &[]), false),
            (expression("zone", "DoesNotExist", &[]), true),
        ];
        for (selector, expected) in cases {
            assert_eq!(matches(&selector, &node).unwrap(), expected, "{selector:?}");
        }
    }

    #[test]
    fn an_unknown_operator_is_an_error_naming_it() {
        let err = matches(&expression("pool", "Contains", &["g"]), &labels(&[])).unwrap_err();
        assert!(err.to_string().contains("\"Contains\""));
    }
}
