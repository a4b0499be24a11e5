//! `AgentConfig`: what the operator renders for one node and the node's agent applies. It is
//! the resolved form of the node's workspaces and entities: selection, enabled flags, the
//! recommended catalog and the OS split are already applied, so the agent needs no API reads
//! beyond its own ConfigMap. Standalone agents render the same shape from local manifests with
//! [`render_workspace`], so both paths share one definition of "what this node monitors".

use serde::{Deserialize, Serialize};

use crate::{
    EntityType, FimWorkspaceSpec, MonitoredEntitySpec, TargetOs, catalog,
    keys::RECOMMENDED_PREFIX,
    workspace::{ContentSpec, PackagesSpec, ReportingSpec, ScanSpec},
};

/// The configuration of one node's agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// The node this configuration is for.
    pub node: String,
    /// A digest of everything below; it changes exactly when the configuration does.
    #[serde(default)]
    pub revision: String,
    /// The enabled workspaces that select this node, ordered by namespace and name.
    #[serde(default)]
    pub workspaces: Vec<WorkspaceConfig>,
}

/// One workspace as one node applies it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceConfig {
    /// The FimWorkspace name.
    pub name: String,
    /// Its namespace, where the agent writes FileChange and FimNodeStatus objects.
    pub namespace: String,
    /// Its uid, for owner references on what the agent writes.
    #[serde(default)]
    pub uid: String,
    /// Scan settings.
    #[serde(default)]
    pub scan: ScanSpec,
    /// Reporting limits.
    #[serde(default)]
    pub reporting: ReportingSpec,
    /// FileContent limits.
    #[serde(default)]
    pub content: ContentSpec,
    /// Package attribution.
    #[serde(default)]
    pub packages: PackagesSpec,
    /// The workspace's baseline.revision.
    #[serde(default)]
    pub baseline_revision: String,
    /// The enabled entities this node serves, recommended items first, then by name.
    #[serde(default)]
    pub entities: Vec<EntityConfig>,
}

/// One entity as the agent resolves it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntityConfig {
    /// The MonitoredEntity name, or `recommended.<catalog id>`.
    pub name: String,
    /// What the path names.
    #[serde(rename = "type")]
    pub entity_type: EntityType,
    /// The path as written in the spec (variables not yet expanded).
    pub path: String,
    /// Everything below the path too.
    #[serde(default)]
    pub recursive: bool,
    /// Depth limit for recursive entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Globs on the full path to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Attributes whose changes are not reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_attributes: Vec<crate::filechange::ChangedAttribute>,
}

/// A workspace's identity and spec, as the renderer needs them.
#[derive(Clone, Copy, Debug)]
pub struct WorkspaceRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub spec: &'a FimWorkspaceSpec,
}

/// Resolves one workspace for a node of `os`: the recommended items for that OS minus the
/// excluded ids, then the enabled entities of a type the OS can serve, ordered by name. The
/// caller has already checked that the workspace is enabled and selects the node.
pub fn render_workspace<'a>(
    workspace: WorkspaceRef<'_>,
    entities: impl IntoIterator<Item = (&'a str, &'a MonitoredEntitySpec)>,
    os: TargetOs,
) -> WorkspaceConfig {
    let spec = workspace.spec;
    let mut resolved: Vec<EntityConfig> = Vec::new();
    if spec.recommended.enabled {
        resolved.extend(
            catalog::items_for(os, &spec.recommended.exclude).map(|item| EntityConfig {
                name: format!("{RECOMMENDED_PREFIX}{}", item.id),
                entity_type: item.entity_type,
                path: item.path.to_string(),
                recursive: item.recursive,
                max_depth: None,
                exclude: Vec::new(),
                ignore_attributes: Vec::new(),
            }),
        );
    }
    let mut custom: Vec<EntityConfig> = entities
        .into_iter()
        .filter(|(_, entity)| entity.enabled && entity.workspace == workspace.name)
        .filter(|(_, entity)| entity.entity_type.is_linux() == (os == TargetOs::Linux))
        .map(|(name, entity)| EntityConfig {
            name: name.to_string(),
            entity_type: entity.entity_type,
            path: entity.path.clone(),
            recursive: entity.recursive,
            max_depth: entity.max_depth,
            exclude: entity.exclude.clone(),
            ignore_attributes: entity.ignore_attributes.clone(),
        })
        .collect();
    custom.sort_by(|a, b| a.name.cmp(&b.name));
    resolved.extend(custom);
    WorkspaceConfig {
        name: workspace.name.to_string(),
        namespace: workspace.namespace.to_string(),
        uid: workspace.uid.to_string(),
        scan: spec.scan.clone(),
        reporting: spec.reporting.clone(),
        content: spec.content.clone(),
        packages: spec.packages.clone(),
        baseline_revision: spec.baseline.revision.clone(),
        entities: resolved,
    }
}

/// The digest of one rendered workspace. A node's revision combines the digests of its
/// workspaces, so an operator that renders a workspace once can revise thousands of nodes
/// without serializing any of them.
pub fn workspace_digest(workspace: &WorkspaceConfig) -> [u8; 32] {
    // Serializing plain structs of strings, numbers and vectors to JSON cannot fail.
    *blake3::hash(&serde_json::to_vec(workspace).unwrap_or_default()).as_bytes()
}

/// The revision of a node's configuration from its workspaces' digests, in canonical order.
pub fn node_revision<'a>(node: &str, digests: impl IntoIterator<Item = &'a [u8; 32]>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(node.as_bytes());
    for digest in digests {
        hasher.update(&[0]);
        hasher.update(digest);
    }
    hasher.finalize().to_hex()[..16].to_string()
}

/// The canonical order of workspaces in a node's configuration.
pub fn canonical_order(a: &WorkspaceConfig, b: &WorkspaceConfig) -> std::cmp::Ordering {
    (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
}

impl AgentConfig {
    /// Builds a node's configuration with its workspaces in a canonical order and its revision
    /// computed, so equal inputs always give byte-identical YAML.
    pub fn new(node: impl Into<String>, mut workspaces: Vec<WorkspaceConfig>) -> Self {
        workspaces.sort_by(canonical_order);
        let node = node.into();
        let digests: Vec<[u8; 32]> = workspaces.iter().map(workspace_digest).collect();
        let revision = node_revision(&node, &digests);
        Self {
            node,
            revision,
            workspaces,
        }
    }

    /// The YAML stored under `agent.yaml` in the node's ConfigMap.
    pub fn to_yaml(&self) -> crate::Result<String> {
        serde_yaml::to_string(self).map_err(crate::Error::AgentConfigYaml)
    }

    /// Parses the YAML of a node's ConfigMap.
    pub fn from_yaml(yaml: &str) -> crate::Result<Self> {
        serde_yaml::from_str(yaml).map_err(crate::Error::AgentConfigYaml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(workspace: &str, entity_type: EntityType, path: &str) -> MonitoredEntitySpec {
        MonitoredEntitySpec {
            workspace: workspace.into(),
            entity_type,
            path: path.into(),
            recursive: false,
            max_depth: None,
            exclude: vec![],
            ignore_attributes: vec![],
            enabled: true,
            description: String::new(),
            allow_broad: false,
        }
    }

    fn workspace_spec() -> FimWorkspaceSpec {
        serde_json::from_value(serde_json::json!({})).unwrap()
    }

    #[test]
    fn defaults_match_the_design() {
        let spec = workspace_spec();
        assert!(spec.enabled && spec.recommended.enabled && spec.scan.realtime);
        assert_eq!(spec.scan.interval, "15m");
        assert_eq!(spec.scan.rehash_every, "24h");
        assert_eq!(spec.scan.max_hash_size, "1Gi");
        assert_eq!(spec.reporting.max_changes_per_scan, 100);
        assert_eq!(spec.retention.max_age, "14d");
        assert_eq!(spec.retention.max_changes_per_node, 1000);
        assert_eq!(spec.content.max_file_size, "5Mi");
        assert_eq!(spec.content.max_diff_bytes, "16Ki");
    }

    #[test]
    fn render_keeps_recommended_minus_excludes_then_entities_by_name() {
        let mut spec = workspace_spec();
        spec.recommended.exclude = vec!["usr-bin".into()];
        let zeta = entity("prod", EntityType::FileContent, "/etc/hosts");
        let alpha = entity("prod", EntityType::LinuxFile, "/srv/app");
        let other_ws = entity("staging", EntityType::LinuxFile, "/srv/other");
        let mut disabled = entity("prod", EntityType::LinuxFile, "/srv/disabled");
        disabled.enabled = false;
        let windows = entity("prod", EntityType::WindowsFile, r"C:\app");
        let rendered = render_workspace(
            WorkspaceRef {
                name: "prod",
                namespace: "fim",
                uid: "u1",
                spec: &spec,
            },
            [
                ("zeta", &zeta),
                ("alpha", &alpha),
                ("other", &other_ws),
                ("off", &disabled),
                ("win", &windows),
            ],
            TargetOs::Linux,
        );
        let names: Vec<_> = rendered.entities.iter().map(|e| e.name.as_str()).collect();
        assert!(!names.contains(&"recommended.usr-bin"));
        assert!(names.contains(&"recommended.ssh"));
        assert_eq!(&names[names.len() - 2..], ["alpha", "zeta"]);
        assert!(
            !names
                .iter()
                .any(|n| ["other", "off", "win"].contains(n) || n.starts_with("recommended.win"))
        );
    }

    #[test]
    fn windows_nodes_get_windows_items_only() {
        let spec = workspace_spec();
        let linux = entity("prod", EntityType::LinuxFile, "/srv/app");
        let windows = entity("prod", EntityType::WindowsRegistry, r"HKLM\SOFTWARE\App");
        let rendered = render_workspace(
            WorkspaceRef {
                name: "prod",
                namespace: "fim",
                uid: "u1",
                spec: &spec,
            },
            [("linux", &linux), ("windows", &windows)],
            TargetOs::Windows,
        );
        assert!(rendered.entities.iter().all(|e| !e.entity_type.is_linux()));
        assert_eq!(rendered.entities.last().unwrap().name, "windows");
    }

    #[test]
    fn yaml_round_trip_preserves_config_and_revision_tracks_content() {
        let spec = workspace_spec();
        let app = entity("prod", EntityType::LinuxFile, "/srv/app");
        let ws = render_workspace(
            WorkspaceRef {
                name: "prod",
                namespace: "fim",
                uid: "u1",
                spec: &spec,
            },
            [("app", &app)],
            TargetOs::Linux,
        );
        let config = AgentConfig::new("node-a", vec![ws.clone()]);
        let parsed = AgentConfig::from_yaml(&config.to_yaml().unwrap()).unwrap();
        assert_eq!(parsed, config);
        assert_eq!(
            config.revision,
            AgentConfig::new("node-a", vec![ws.clone()]).revision
        );
        let mut changed = ws;
        changed.baseline_revision = "2".into();
        assert_ne!(
            config.revision,
            AgentConfig::new("node-a", vec![changed]).revision
        );
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_default() {
        assert!(AgentConfig::from_yaml("node: [unterminated").is_err());
        assert!(AgentConfig::from_yaml("workspaces: 3").is_err());
    }
}
