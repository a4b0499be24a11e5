//! What to monitor and how: a workspace's settings parsed once from its configuration (the
//! node's ConfigMap or a local file), and the configuration without a cluster: a local YAML
//! file holding the same FimWorkspace and MonitoredEntity objects one would `kubectl apply`
//! (several documents separated by `---`). Those are checked with the API's own CEL admission
//! rules, then rendered with the same function the operator uses, so a standalone agent
//! monitors exactly what a node would. Nothing here touches the host.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use kubefim_crds::{
    AgentConfig, FimWorkspace, MonitoredEntity, TargetOs, WorkspaceConfig,
    agent_config::{WorkspaceRef, render_workspace},
    units,
    workspace::{MAX_CONTENT_FILE_SIZE, MAX_DIFF_BYTES},
};
use serde::Deserialize;

use crate::{Error, Result, hash::HashLimits};

mod strict;

/// What a mode without a cluster works on: its configuration file, the host root, the state
/// directory and the name it reports as.
#[derive(Clone, Debug)]
pub struct LocalSetup {
    pub config: PathBuf,
    pub host_root: PathBuf,
    pub state_dir: PathBuf,
    pub node: String,
}

/// A workspace's identity on a node. Everything the agent keeps per workspace is keyed by it:
/// two workspaces of one name in two namespaces never share or drop each other's state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkspaceKey {
    pub namespace: String,
    pub name: String,
}

impl WorkspaceKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(workspace: &WorkspaceConfig) -> Self {
        Self::new(&workspace.namespace, &workspace.name)
    }
}

impl std::fmt::Display for WorkspaceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A workspace's scan settings, parsed once.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub interval: Duration,
    pub rehash_every: Duration,
    pub limits: HashLimits,
    pub content_max: u64,
    pub diff_max: usize,
    /// Diff sensitive paths too (`content.revealSensitive`).
    pub reveal_sensitive: bool,
    /// Bytes per second a scan of the workspace may read (`scan.maxReadRate`); 0 for no limit.
    pub max_read_rate: u64,
}

impl Settings {
    pub fn from_config(ws: &WorkspaceConfig) -> Result<Self> {
        let field = |field: &'static str| {
            let workspace = ws.name.clone();
            move |source| Error::Settings {
                workspace,
                field,
                source,
            }
        };
        Ok(Self {
            interval: units::parse_duration(&ws.scan.interval).map_err(field("scan.interval"))?,
            rehash_every: units::parse_duration(&ws.scan.rehash_every).map_err(field("scan.rehashEvery"))?,
            limits: HashLimits {
                algorithm: ws.scan.hash_algorithm,
                max_hash_size: units::parse_size(&ws.scan.max_hash_size)
                    .map_err(field("scan.maxHashSize"))?,
                keep_content_up_to: None,
            },
            // Admission bounds both; the agent holds to the same bounds whatever it is given.
            content_max: units::parse_size(&ws.content.max_file_size)
                .map_err(field("content.maxFileSize"))?
                .min(MAX_CONTENT_FILE_SIZE),
            diff_max: usize::try_from(
                units::parse_size(&ws.content.max_diff_bytes)
                    .map_err(field("content.maxDiffBytes"))?
                    .min(MAX_DIFF_BYTES),
            )
            .unwrap_or(usize::MAX),
            reveal_sensitive: ws.content.reveal_sensitive,
            max_read_rate: match &ws.scan.max_read_rate {
                Some(rate) => units::parse_size(rate).map_err(field("scan.maxReadRate"))?,
                None => 0,
            },
        })
    }
}

/// Loads and renders a standalone configuration file for this machine (`node`).
pub fn load_standalone(path: &Path, node: &str) -> Result<AgentConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    parse_standalone(&text, node).map_err(|message| Error::Config {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses the manifests in `text` into this machine's AgentConfig.
pub fn parse_standalone(text: &str, node: &str) -> Result<AgentConfig, String> {
    let mut workspaces: Vec<FimWorkspace> = Vec::new();
    let mut entities: Vec<MonitoredEntity> = Vec::new();
    strict::bounded(text)?;
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value =
            serde_yaml::Value::deserialize(document).map_err(|e| format!("document {}: {e}", index + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>")
            .to_string();
        let label = format!("document {} ({kind} {name})", index + 1);
        match kind.as_str() {
            "FimWorkspace" => {
                let workspace: FimWorkspace = strict::parse(value).map_err(|e| format!("{label}: {e}"))?;
                workspace
                    .validate_cel()
                    .map_err(|e| format!("{label} is refused: {}", messages(e)))?;
                workspaces.push(workspace);
            }
            "MonitoredEntity" => {
                let entity: MonitoredEntity = strict::parse(value).map_err(|e| format!("{label}: {e}"))?;
                entity
                    .validate_cel()
                    .map_err(|e| format!("{label} is refused: {}", messages(e)))?;
                entities.push(entity);
            }
            other => {
                return Err(format!(
                    "{label}: kind {other:?} is not understood here; a standalone file holds FimWorkspace and MonitoredEntity objects"
                ));
            }
        }
    }
    if workspaces.is_empty() {
        return Err("no FimWorkspace in the file; add one (see examples/standalone.yaml)".into());
    }
    refuse_duplicates(&workspaces, &entities)?;
    for entity in &entities {
        if !workspaces
            .iter()
            .any(|w| w.metadata.name.as_deref() == Some(entity.spec.workspace.as_str()))
        {
            return Err(format!(
                "MonitoredEntity {} names workspace {:?}, which is not in the file",
                entity.metadata.name.as_deref().unwrap_or_default(),
                entity.spec.workspace
            ));
        }
    }
    let rendered = workspaces
        .iter()
        .filter(|w| w.spec.enabled)
        .map(|w| {
            let name = w.metadata.name.as_deref().unwrap_or_default();
            let namespace = w.metadata.namespace.as_deref().unwrap_or("default");
            render_workspace(
                WorkspaceRef {
                    name,
                    namespace,
                    uid: "",
                    spec: &w.spec,
                },
                entities
                    .iter()
                    .map(|e| (e.metadata.name.as_deref().unwrap_or_default(), &e.spec)),
                TargetOs::Linux,
            )
        })
        .collect();
    Ok(AgentConfig::new(node, rendered))
}

/// Two objects of one kind with one name (the API server would keep only the last), and two
/// enabled entities of one workspace watching the same thing (refused as the operator refuses
/// them).
fn refuse_duplicates(workspaces: &[FimWorkspace], entities: &[MonitoredEntity]) -> Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for (kind, name) in workspaces
        .iter()
        .map(|w| ("FimWorkspace", w.metadata.name.as_deref().unwrap_or_default()))
        .chain(
            entities
                .iter()
                .map(|e| ("MonitoredEntity", e.metadata.name.as_deref().unwrap_or_default())),
        )
    {
        if !names.insert((kind, name)) {
            return Err(format!(
                "{kind} {name:?} appears twice in the file; give each object its own name"
            ));
        }
    }
    let mut watched: std::collections::BTreeMap<(&str, String, &str), &str> =
        std::collections::BTreeMap::new();
    let mut sorted: Vec<&MonitoredEntity> = entities.iter().filter(|e| e.spec.enabled).collect();
    sorted.sort_by_key(|e| e.metadata.name.clone());
    for entity in sorted {
        let name = entity.metadata.name.as_deref().unwrap_or_default();
        let identity = (
            entity.spec.workspace.as_str(),
            entity.spec.entity_type.to_string(),
            entity.spec.path.as_str(),
        );
        if let Some(first) = watched.insert(identity, name) {
            return Err(format!(
                "MonitoredEntity {name:?}: entity {first:?} of the same workspace already monitors {} {:?}; delete one of the two",
                entity.spec.entity_type, entity.spec.path
            ));
        }
    }
    Ok(())
}

fn messages(errors: kube::core::cel::ValidationErrors) -> String {
    errors
        .into_vec()
        .into_iter()
        .map(|e| e.message)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSPACE: &str = "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: local}\nspec:\n  recommended: {enabled: false}\n";

    #[test]
    fn workspace_and_entities_render_like_the_operator() {
        let text = format!(
            "{WORKSPACE}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: app}}\nspec: {{workspace: local, type: LinuxFile, path: /srv/app, recursive: true}}\n"
        );
        let config = parse_standalone(&text, "laptop").unwrap();
        assert_eq!(config.node, "laptop");
        assert_eq!(config.workspaces.len(), 1);
        assert_eq!(config.workspaces[0].entities.len(), 1);
        assert_eq!(config.workspaces[0].entities[0].path, "/srv/app");
    }

    #[test]
    fn a_spec_refused_by_admission_is_refused_here_with_the_same_message() {
        let text = format!(
            "{WORKSPACE}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: bad}}\nspec: {{workspace: local, type: LinuxFile, path: /etc/*/passwd}}\n"
        );
        let err = parse_standalone(&text, "n").unwrap_err();
        assert!(
            err.contains("MonitoredEntity bad") && err.contains("wildcard before its last segment"),
            "{err}"
        );
    }

    #[test]
    fn an_entity_of_a_missing_workspace_is_named() {
        let text = format!(
            "{WORKSPACE}---\napiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: lost}}\nspec: {{workspace: elsewhere, type: LinuxFile, path: /srv}}\n"
        );
        let err = parse_standalone(&text, "n").unwrap_err();
        assert!(err.contains("lost") && err.contains("\"elsewhere\""), "{err}");
    }

    #[test]
    fn unknown_kinds_and_empty_files_are_errors() {
        assert!(
            parse_standalone("kind: Deployment\nmetadata: {name: x}\n", "n")
                .unwrap_err()
                .contains("Deployment")
        );
        assert!(parse_standalone("", "n").unwrap_err().contains("no FimWorkspace"));
    }

    #[test]
    fn a_disabled_workspace_monitors_nothing() {
        let text = "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {name: off}\nspec: {enabled: false}\n";
        assert!(parse_standalone(text, "n").unwrap().workspaces.is_empty());
    }
}
