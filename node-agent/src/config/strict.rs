//! Strict reading of a standalone file: the API server drops a field it does not know (and
//! `kubectl apply` warns); a local file has no such warning, so a typo such as `recursve: true`
//! would silently change what is monitored. Every key is checked against the CRD's own
//! structural schema (the one the API server prunes with), and an unknown one is refused with
//! its path and the nearest known name. Type errors are reported with the field's path, and the
//! schema's bounds (lengths, ranges, item counts) are enforced as the API server would, with
//! NUL refused in every string. The text itself is bounded before YAML sees it: its size, and
//! how deeply flow collections nest, checked in one linear pass.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// The fields of ObjectMeta a standalone file may set (the rest are the server's).
const METADATA: &[&str] = &["name", "namespace", "labels", "annotations"];

/// The largest standalone file read.
pub const MAX_BYTES: usize = 1 << 20;
/// How deeply `[` and `{` may nest.
pub const MAX_NESTING: usize = 64;

/// Refuses a text too large or too deeply nested for the parser, in one pass.
pub fn bounded(text: &str) -> Result<(), String> {
    if text.len() > MAX_BYTES {
        return Err(format!(
            "the file is {} bytes; at most {MAX_BYTES} are read",
            text.len()
        ));
    }
    let (mut depth, mut line) = (0usize, 1usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "line {line}: collections nest deeper than {MAX_NESTING} levels"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => line += 1,
            _ => {}
        }
    }
    Ok(())
}

/// Deserialises `value` as the custom resource `K`, refusing unknown fields and naming the path
/// of a field of the wrong type.
pub fn parse<K: DeserializeOwned + CustomResourceExt>(value: Value) -> Result<K, String> {
    let crd = K::crd();
    let schema = crd
        .spec
        .versions
        .iter()
        .find_map(|v| v.schema.as_ref()?.open_api_v3_schema.as_ref());
    let mut unknown = Vec::new();
    if let (Some(schema), Value::Mapping(top)) = (schema, &value) {
        for (key, child) in top {
            let Some(key) = key.as_str() else {
                unknown.push(format!("{key:?} is not a field name"));
                continue;
            };
            match key {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Value::Mapping(meta) = child {
                        for field in meta.keys().filter_map(Value::as_str) {
                            if !METADATA.contains(&field) {
                                unknown.push(describe(
                                    &format!("metadata.{field}"),
                                    field,
                                    METADATA.iter().copied(),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    let known: Vec<&str> = schema
                        .properties
                        .iter()
                        .flat_map(|p| p.keys().map(String::as_str))
                        .chain(["apiVersion", "kind", "metadata"])
                        .collect();
                    walk(
                        child,
                        schema.properties.as_ref().and_then(|p| p.get(key)),
                        key,
                        &mut unknown,
                        &known,
                    )
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(unknown.join("; "));
    }
    serde_path_to_error::deserialize::<_, K>(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

/// Checks `value` against `schema` (None: `path` is not a known field; `siblings` are the
/// names that are).
fn walk(
    value: &Value,
    schema: Option<&JSONSchemaProps>,
    path: &str,
    unknown: &mut Vec<String>,
    siblings: &[&str],
) {
    let Some(schema) = schema else {
        let field = path.rsplit('.').next().unwrap_or(path);
        unknown.push(describe(path, field, siblings.iter().copied()));
        return;
    };
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        return;
    }
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                let Some(key) = key.as_str() else {
                    unknown.push(format!("{path}: {key:?} is not a field name"));
                    continue;
                };
                let child_path = format!("{path}.{key}");
                match (&schema.properties, &schema.additional_properties) {
                    (Some(properties), _) => {
                        let known: Vec<&str> = properties.keys().map(String::as_str).collect();
                        walk(child, properties.get(key), &child_path, unknown, &known)
                    }
                    (None, Some(JSONSchemaPropsOrBool::Schema(values))) => {
                        walk(child, Some(values), &child_path, unknown, &[])
                    }
                    // Free-form (or a type error serde names below).
                    _ => {}
                }
            }
        }
        Value::String(text) => {
            let length = text.chars().count() as i64;
            if text.contains('\0') {
                unknown.push(format!("{path} holds a NUL character"));
            }
            if let Some(max) = schema.max_length.filter(|max| length > *max) {
                unknown.push(format!(
                    "{path} is {length} characters long; at most {max} are allowed"
                ));
            }
            if let Some(min) = schema.min_length.filter(|min| length < *min) {
                unknown.push(format!(
                    "{path} is {length} characters long; at least {min} are needed"
                ));
            }
        }
        Value::Number(number) => {
            if let Some(value) = number.as_f64() {
                if let Some(max) = schema.maximum.filter(|max| value > *max) {
                    unknown.push(format!("{path} is {number}; at most {max} is allowed"));
                }
                if let Some(min) = schema.minimum.filter(|min| value < *min) {
                    unknown.push(format!("{path} is {number}; at least {min} is needed"));
                }
            }
        }
        Value::Sequence(items) => {
            if let Some(max) = schema.max_items.filter(|max| items.len() as i64 > *max) {
                unknown.push(format!(
                    "{path} has {} items; at most {max} are allowed",
                    items.len()
                ));
            }
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for (index, child) in items.iter().enumerate() {
                    walk(child, Some(item), &format!("{path}[{index}]"), unknown, &[]);
                }
            }
        }
        _ => {}
    }
}

fn describe<'a>(path: &str, field: &str, known: impl Iterator<Item = &'a str>) -> String {
    let nearest = known
        .map(|name| (strsim::damerau_levenshtein(field, name), name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 3))
        .min();
    match nearest {
        Some((_, name)) => format!("unknown field {path}; did you mean {name}?"),
        None => format!("unknown field {path}"),
    }
}

#[cfg(test)]
mod tests {
    use kubefim_crds::{FimWorkspace, MonitoredEntity};

    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn a_misspelt_field_is_refused_with_its_path_and_the_nearest_name() {
        let error = parse::<MonitoredEntity>(yaml(
            "apiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: etc}\nspec: {workspace: local, type: LinuxFile, path: /etc, recursve: true}\n",
        ))
        .unwrap_err();
        assert_eq!(error, "unknown field spec.recursve; did you mean recursive?");
    }

    #[test]
    fn nested_and_metadata_typos_are_named_and_a_far_name_gets_no_guess() {
        let error = parse::<FimWorkspace>(yaml(
            "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: local, lables: {}}\nspec: {scan: {intervall: 5m}, zzzzzzzz: 1}\n",
        ))
        .unwrap_err();
        assert_eq!(
            error,
            "unknown field metadata.lables; did you mean labels?; unknown field spec.scan.intervall; did you mean interval?; unknown field spec.zzzzzzzz"
        );
    }

    #[test]
    fn a_type_error_names_the_field_path() {
        let error = parse::<MonitoredEntity>(yaml(
            "apiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: etc}\nspec: {workspace: local, type: LinuxFile, path: /etc, recursive: yes please}\n",
        ))
        .unwrap_err();
        assert_eq!(
            error,
            "spec.recursive: invalid type: string \"yes please\", expected a boolean"
        );
    }

    #[test]
    fn the_schemas_bounds_and_nul_are_enforced() {
        let long = "a".repeat(5000);
        let error = parse::<MonitoredEntity>(yaml(
            "apiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {name: x}\nspec: {workspace: local, type: LinuxFile, path: \"/opt/app\\0/bin\", recursive: true, maxDepth: 100000}\n"
        ))
        .unwrap_err();
        assert_eq!(
            error,
            "spec.path holds a NUL character; spec.maxDepth is 100000; at most 4096 is allowed"
        );
        let error = parse::<MonitoredEntity>(yaml(&format!(
            "apiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: x}}\nspec: {{workspace: local, type: LinuxFile, path: /{long}}}\n"
        )))
        .unwrap_err();
        assert_eq!(
            error,
            "spec.path is 5001 characters long; at most 1024 are allowed"
        );
    }

    #[test]
    fn deep_nesting_and_huge_files_are_refused_before_parsing() {
        let nested = "[".repeat(200_000);
        assert_eq!(
            bounded(&nested).unwrap_err(),
            "line 1: collections nest deeper than 64 levels"
        );
        assert!(
            bounded(&" ".repeat(MAX_BYTES + 1))
                .unwrap_err()
                .contains("at most 1048576 are read")
        );
        assert!(bounded("a: [1, {b: [2]}]\n").is_ok());
    }

    #[test]
    fn free_form_maps_take_any_key() {
        let workspace = parse::<FimWorkspace>(yaml(
            "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: local, labels: {team: a}}\nspec: {nodeSelector: {matchLabels: {anything: goes}}}\n",
        ))
        .unwrap();
        assert_eq!(workspace.metadata.labels.unwrap()["team"], "a");
    }
}
