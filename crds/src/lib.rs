//! The kubefim API: the single source of truth for every resource shape, the per-node agent
//! configuration, the label and annotation keys, and the recommended catalog.
//!
//! Other crates import these types; none of them redefines a field. This crate performs no I/O
//! and talks to no cluster: it is shapes, defaults, admission rules and pure helpers.

// kube's `printcolumn(name = .., type_ = "string", ..)` repeats `type_ = "string"` once per
// column by design; clippy reads the repetition as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod agent_config;
pub mod catalog;
pub mod conditions;
pub mod entity;
pub mod filechange;
pub mod keys;
pub mod nodestatus;
pub mod sensitive;
pub mod units;
pub mod workspace;
pub mod yaml;

pub use agent_config::{AgentConfig, EntityConfig, WorkspaceConfig};
pub use catalog::{CatalogItem, RECOMMENDED, TargetOs};
pub use entity::{EntityType, MonitoredEntity, MonitoredEntitySpec, MonitoredEntityStatus};
pub use filechange::{
    Attribution, AttributionKind, ChangeCategory, ChangeSource, ChangeType, FileChange, FileChangeSpec,
    FileState, FileType, PackageManager,
};
pub use nodestatus::{FimNodeStatus, FimNodeStatusSpec, FimNodeStatusStatus};
pub use workspace::{FimWorkspace, FimWorkspaceSpec, FimWorkspaceStatus, HashAlgorithm};

/// The API group of every kubefim resource.
pub const GROUP: &str = "kubefim.dev";
/// The API version of every kubefim resource.
pub const VERSION: &str = "v1alpha1";

/// Errors from parsing kubefim values (durations, sizes, agent configuration).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid duration {value:?}: {reason}; write it like 90s, 15m, 1h30m or 14d")]
    InvalidDuration { value: String, reason: &'static str },

    #[error("invalid size {value:?}: {reason}; write it like 512, 16Ki, 5Mi or 1Gi")]
    InvalidSize { value: String, reason: &'static str },

    #[error("agent configuration is not valid YAML for kubefim {VERSION}")]
    AgentConfigYaml(#[source] serde_yaml::Error),

    #[error("a CRD could not be written as YAML")]
    CrdYaml(#[source] serde_yaml::Error),

    #[error("the CRD YAML would not say what the CRD says: {0}")]
    CrdYamlMeaning(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names of FimWorkspace and MonitoredEntity objects become label values on FileChanges, which
/// hold at most 63 characters: a longer name is refused at admission.
pub const MAX_NAME_LENGTH: usize = 63;

/// The message is static: the API server bounds the cost of a message expression, and the
/// name is unbounded in the schema; the server's error names the object anyway.
fn name_length_rule(kind: &str) -> kube::core::cel::Rule {
    kube::core::cel::Rule::new(format!("size(self.metadata.name) <= {MAX_NAME_LENGTH}")).message(kube::core::cel::Message::Message(format!(
        "a {kind} name may be at most {MAX_NAME_LENGTH} characters long, because it becomes a label value; choose a shorter name"
    )))
}

/// Every CustomResourceDefinition this crate defines, in the order crdgen writes them.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    let mut crds = vec![
        FimWorkspace::crd(),
        MonitoredEntity::crd(),
        FileChange::crd(),
        FimNodeStatus::crd(),
    ];
    for version in crds.iter_mut().flat_map(|crd| crd.spec.versions.iter_mut()) {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            drop_unknown_integer_formats(schema);
        }
    }
    crds
}

/// Integer formats schemars derives from Rust's widths that the API server does not know: it
/// answers every apply of such a CRD with `Warning: unrecognized format "uint64"`. Their bounds
/// stay in the schema as `minimum`; int32 and int64 are known and kept.
const UNKNOWN_INTEGER_FORMATS: [&str; 7] = ["uint", "uint8", "uint16", "uint32", "uint64", "int8", "int16"];

fn drop_unknown_integer_formats(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    if schema
        .format
        .as_deref()
        .is_some_and(|f| UNKNOWN_INTEGER_FORMATS.contains(&f))
    {
        schema.format = None;
    }
    let maps = [
        &mut schema.properties,
        &mut schema.pattern_properties,
        &mut schema.definitions,
    ];
    for map in maps.into_iter().flatten() {
        map.values_mut().for_each(drop_unknown_integer_formats);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        list.iter_mut().for_each(drop_unknown_integer_formats);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => drop_unknown_integer_formats(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(drop_unknown_integer_formats)
        }
        None => {}
    }
    for nested in [&mut schema.additional_properties, &mut schema.additional_items] {
        if let Some(JSONSchemaPropsOrBool::Schema(inner)) = nested {
            drop_unknown_integer_formats(inner);
        }
    }
    if let Some(not) = &mut schema.not {
        drop_unknown_integer_formats(not);
    }
}
