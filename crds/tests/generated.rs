//! The committed CRD YAML is exactly what crdgen produces, every field users can set or read
//! is documented for `kubectl explain`, and the examples parse and pass admission.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::path::PathBuf;

use kubefim_crds::{FimWorkspace, MonitoredEntity};
use serde::Deserialize;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where crdgen writes `crd` in the chart.
fn committed_crd_path(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> PathBuf {
    repo_root()
        .join("charts/kubefim/crds")
        .join(format!("{}.yaml", crd.spec.names.plural))
}

#[test]
fn committed_crds_match_crdgen_output() {
    for crd in kubefim_crds::crds() {
        let path = committed_crd_path(&crd);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo run -p kubefim-crds --bin crdgen`",
                path.display()
            )
        });
        let generated = kubefim_crds::yaml::crd_yaml(&crd).unwrap();
        assert!(
            committed == generated,
            "{} is out of date: run `cargo run -p kubefim-crds --bin crdgen` and commit the result",
            path.display()
        );
    }
}

/// kubectl and Helm read YAML 1.1, where a bare `Off` is `false`: the committed files must mean
/// to Kubernetes' own reader what crdgen meant (found when the API server refused the chart's
/// CRDs for `default: Off`). kubectl converts the file offline (`label --local`).
#[test]
fn committed_crds_mean_to_kubectl_what_crdgen_means() {
    for crd in kubefim_crds::crds() {
        let path = committed_crd_path(&crd);
        let output = std::process::Command::new("kubectl")
            .args(["label", "--local", "-o", "json", "-f"])
            .arg(&path)
            .arg("kubefim.dev/read-by=kubectl")
            .env_remove("KUBECONFIG")
            .output()
            .expect("kubectl runs (it is on every development and CI machine)");
        assert!(
            output.status.success(),
            "kubectl could not read {}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let mut read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let labels = read["metadata"].as_object_mut().unwrap().remove("labels");
        assert_eq!(
            labels,
            Some(serde_json::json!({"kubefim.dev/read-by": "kubectl"}))
        );
        let mut meant = serde_json::to_value(&crd).unwrap();
        // JSON does not tell 10000 from 10000.0 (schema bounds are f64 in k8s-openapi).
        numbers_as_f64(&mut read);
        numbers_as_f64(&mut meant);
        if read != meant {
            let read_text = serde_json::to_string_pretty(&read).unwrap();
            let meant_text = serde_json::to_string_pretty(&meant).unwrap();
            let first = read_text
                .lines()
                .zip(meant_text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "kubectl reads {} differently from crdgen, first at line {first}: kubectl {:?}, crdgen {:?}",
                path.display(),
                read_text.lines().nth(first),
                meant_text.lines().nth(first)
            );
        }
    }
}

fn numbers_as_f64(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().and_then(serde_json::Number::from_f64) {
                *n = f;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(numbers_as_f64),
        serde_json::Value::Object(map) => map.values_mut().for_each(numbers_as_f64),
        _ => {}
    }
}

/// Collects the JSON paths of properties that have no description.
fn undocumented(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for (name, property) in properties {
        let child = format!("{path}.{name}");
        // apiVersion, kind and metadata are the standard envelope documented by Kubernetes itself.
        let envelope = path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str());
        if !envelope
            && property
                .get("description")
                .and_then(|d| d.as_str())
                .is_none_or(str::is_empty)
        {
            out.push(child.clone());
        }
        undocumented(property, &child, out);
        if let Some(items) = property.get("items") {
            undocumented(items, &format!("{child}[]"), out);
        }
    }
}

#[test]
fn every_crd_field_has_a_description() {
    for crd in kubefim_crds::crds() {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let root = schema
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        assert!(
            !root.is_empty() && !root.starts_with("Auto-generated"),
            "{}: {root}",
            crd.spec.names.kind
        );
        let mut missing = Vec::new();
        undocumented(&schema, "", &mut missing);
        assert!(
            missing.is_empty(),
            "{}: fields without a description: {missing:?}",
            crd.spec.names.kind
        );
    }
}

#[test]
fn file_change_fields_are_selectable() {
    let crd = kubefim_crds::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "FileChange")
        .unwrap();
    let fields: Vec<_> = crd.spec.versions[0]
        .selectable_fields
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.json_path.as_str())
        .collect();
    assert_eq!(fields, [".spec.nodeName", ".spec.category", ".spec.type"]);
}

fn documents(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn example_workspace_parses_and_is_admitted() {
    let docs = documents("examples/workspace.yaml");
    assert_eq!(docs.len(), 1);
    let workspace: FimWorkspace = serde_yaml::from_value(docs[0].clone()).unwrap();
    workspace.validate_cel().unwrap();
    assert!(
        !workspace.spec.recommended.exclude.is_empty(),
        "the example shows an opt-out"
    );
}

#[test]
fn example_entities_cover_every_type_and_are_admitted() {
    let entities: Vec<MonitoredEntity> = documents("examples/entities.yaml")
        .into_iter()
        .map(|doc| serde_yaml::from_value(doc).unwrap())
        .collect();
    let mut types: Vec<_> = entities.iter().map(|e| e.spec.entity_type).collect();
    types.sort();
    types.dedup();
    assert_eq!(types.len(), 6, "one entity of each type: {types:?}");
    for entity in &entities {
        entity
            .validate_cel()
            .unwrap_or_else(|e| panic!("{:?}: {e:?}", entity.metadata.name));
    }
}

/// Collects every `format` in a schema, with the JSON path where it is, and checks that an
/// integer keeps a lower bound where it lost its unsigned format.
fn formats(schema: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(format) = map.get("format").and_then(|f| f.as_str()) {
                out.push((path.to_string(), format.to_string()));
            }
            for (key, value) in map {
                formats(value, &format!("{path}.{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                formats(value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The API server warns on every apply of a CRD whose schema names a format it does not know
/// (seen on kube-apiserver 1.36: `Warning: unrecognized format "uint64"`).
#[test]
fn every_schema_format_is_one_the_api_server_knows() {
    const KNOWN: [&str; 4] = ["int32", "int64", "double", "date-time"];
    let mut seen = Vec::new();
    for crd in kubefim_crds::crds() {
        let value = serde_json::to_value(&crd).unwrap();
        formats(&value, crd.spec.names.plural.as_str(), &mut seen);
    }
    let unknown: Vec<_> = seen
        .iter()
        .filter(|(_, f)| !KNOWN.contains(&f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "formats the API server does not know: {unknown:?}"
    );
    assert!(
        seen.iter().any(|(_, f)| f == "date-time"),
        "the walk found no format at all: {seen:?}"
    );
}

#[test]
fn unsigned_counts_keep_their_lower_bound_without_a_format() {
    let crd = kubefim_crds::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "FileChange")
        .unwrap();
    let value = serde_json::to_value(&crd).unwrap();
    let count = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["aggregated"]["properties"]["count"];
    assert_eq!(count["type"], "integer", "{count}");
    assert_eq!(count["minimum"], 0.0, "{count}");
    assert!(count.get("format").is_none(), "{count}");
}
