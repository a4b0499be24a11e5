//! Rendering each node's AgentConfig. `render_node_config` is the pure definition; `RenderIndex`
//! is the same computation organised for scale: each workspace is rendered once per OS with its
//! digest, and a node's revision combines the digests of the workspaces that select it, so
//! revising 5,000 nodes serializes nothing. Only a node whose revision changed is written.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::{api::core::v1::Node, apimachinery::pkg::apis::meta::v1::LabelSelector};
use kube::ResourceExt;
use kubefim_crds::{
    AgentConfig, FimWorkspace, MonitoredEntity, TargetOs, WorkspaceConfig,
    agent_config::{WorkspaceRef, node_revision, render_workspace, workspace_digest},
};

use crate::{
    selector::{self, InvalidSelector},
    validate::{self, ObjectKey},
};

/// The OS label of nodes.
pub const OS_LABEL: &str = "kubernetes.io/os";

/// The OS of a node, from its `kubernetes.io/os` label (absent means Linux).
pub fn node_os(node: &Node) -> TargetOs {
    TargetOs::from_node_label(node.labels().get(OS_LABEL).map(String::as_str))
}

#[derive(Debug, Clone)]
struct RenderedWorkspace {
    selector: LabelSelector,
    linux: (Arc<WorkspaceConfig>, [u8; 32]),
    windows: (Arc<WorkspaceConfig>, [u8; 32]),
}

impl RenderedWorkspace {
    fn for_os(&self, os: TargetOs) -> &(Arc<WorkspaceConfig>, [u8; 32]) {
        match os {
            TargetOs::Linux => &self.linux,
            TargetOs::Windows => &self.windows,
        }
    }
}

/// Every enabled workspace rendered for both operating systems.
#[derive(Debug, Clone, Default)]
pub struct RenderIndex {
    workspaces: BTreeMap<ObjectKey, RenderedWorkspace>,
    /// Workspaces whose nodeSelector cannot be evaluated: they select no node.
    pub invalid_selectors: BTreeMap<ObjectKey, InvalidSelector>,
}

fn render_both(
    workspace: &FimWorkspace,
    entities: &[(&str, &kubefim_crds::MonitoredEntitySpec)],
) -> RenderedWorkspace {
    let name = workspace.name_any();
    let namespace = workspace.namespace().unwrap_or_default();
    let uid = workspace.uid().unwrap_or_default();
    let reference = WorkspaceRef {
        name: &name,
        namespace: &namespace,
        uid: &uid,
        spec: &workspace.spec,
    };
    let render = |os| {
        let config = render_workspace(reference, entities.iter().copied(), os);
        let digest = workspace_digest(&config);
        (Arc::new(config), digest)
    };
    RenderedWorkspace {
        selector: workspace.spec.node_selector.clone(),
        linux: render(TargetOs::Linux),
        windows: render(TargetOs::Windows),
    }
}

impl RenderIndex {
    /// Renders every enabled workspace with its valid entities.
    pub fn build(workspaces: &[Arc<FimWorkspace>], entities: &[Arc<MonitoredEntity>]) -> Self {
        let problems = validate::entity_problems(workspaces, entities);
        let mut by_workspace: BTreeMap<ObjectKey, Vec<(String, &kubefim_crds::MonitoredEntitySpec)>> =
            BTreeMap::new();
        for entity in entities {
            let key = validate::key_of(entity.as_ref());
            if problems.contains_key(&key) {
                continue;
            }
            by_workspace
                .entry((key.0.clone(), entity.spec.workspace.clone()))
                .or_default()
                .push((key.1, &entity.spec));
        }
        let mut index = Self::default();
        for workspace in workspaces.iter().filter(|w| w.spec.enabled) {
            let key = validate::key_of(workspace.as_ref());
            let members = by_workspace.get(&key).map(Vec::as_slice).unwrap_or_default();
            let members: Vec<(&str, &kubefim_crds::MonitoredEntitySpec)> = members
                .iter()
                .map(|(name, spec)| (name.as_str(), *spec))
                .collect();
            if let Err(invalid) = selector::matches(&workspace.spec.node_selector, &BTreeMap::new()) {
                index.invalid_selectors.insert(key.clone(), invalid);
            }
            index.workspaces.insert(key, render_both(workspace, &members));
        }
        index
    }

    /// Re-renders one workspace after it or one of its entities changed; the others are kept.
    pub fn update_workspace(
        &mut self,
        workspace: &FimWorkspace,
        all_workspaces: &[Arc<FimWorkspace>],
        entities: &[Arc<MonitoredEntity>],
    ) {
        let key = validate::key_of(workspace);
        if !workspace.spec.enabled {
            self.workspaces.remove(&key);
            return;
        }
        let problems = validate::entity_problems(all_workspaces, entities);
        let members: Vec<(String, &kubefim_crds::MonitoredEntitySpec)> = entities
            .iter()
            .filter(|e| e.namespace().unwrap_or_default() == key.0 && e.spec.workspace == key.1)
            .filter(|e| !problems.contains_key(&validate::key_of(e.as_ref())))
            .map(|e| (e.name_any(), &e.spec))
            .collect();
        let members: Vec<(&str, &kubefim_crds::MonitoredEntitySpec)> =
            members.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        self.workspaces.insert(key, render_both(workspace, &members));
    }

    /// The workspaces that select `node`, in canonical order (namespace, name).
    pub fn selected<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a ObjectKey> + 'a {
        let labels = node.labels();
        self.workspaces
            .iter()
            .filter(move |(key, rendered)| {
                !self.invalid_selectors.contains_key(*key)
                    && selector::matches(&rendered.selector, labels).unwrap_or(false)
            })
            .map(|(key, _)| key)
    }

    /// The nodes (of `nodes`) that `workspace` selects.
    pub fn nodes_selected_by<'a>(&self, workspace: &ObjectKey, nodes: &'a [Arc<Node>]) -> Vec<&'a Arc<Node>> {
        let Some(rendered) = self.workspaces.get(workspace) else {
            return Vec::new();
        };
        if self.invalid_selectors.contains_key(workspace) {
            return Vec::new();
        }
        nodes
            .iter()
            .filter(|n| selector::matches(&rendered.selector, n.labels()).unwrap_or(false))
            .collect()
    }

    /// The revision `node`'s configuration has, without building it.
    pub fn revision(&self, node: &Node) -> String {
        let os = node_os(node);
        let digests: Vec<&[u8; 32]> = self
            .selected(node)
            .filter_map(|key| self.workspaces.get(key))
            .map(|r| &r.for_os(os).1)
            .collect();
        node_revision(&node.name_any(), digests)
    }

    /// The configuration of `node`.
    pub fn config(&self, node: &Node) -> AgentConfig {
        let os = node_os(node);
        let workspaces: Vec<WorkspaceConfig> = self
            .selected(node)
            .filter_map(|key| self.workspaces.get(key))
            .map(|r| r.for_os(os).0.as_ref().clone())
            .collect();
        AgentConfig::new(node.name_any(), workspaces)
    }

    /// Keys of the workspaces in the index.
    pub fn workspace_keys(&self) -> BTreeSet<ObjectKey> {
        self.workspaces.keys().cloned().collect()
    }
}

/// The configuration of one node: the enabled workspaces whose nodeSelector matches it, each
/// with the recommended items for the node's OS minus its exclusions and its valid, enabled
/// entities of a type the OS can serve, in a deterministic order with a revision digest.
pub fn render_node_config(
    node: &Node,
    workspaces: &[Arc<FimWorkspace>],
    entities: &[Arc<MonitoredEntity>],
) -> AgentConfig {
    RenderIndex::build(workspaces, entities).config(node)
}

#[cfg(test)]
mod tests {
    use kubefim_crds::{EntityType, FimWorkspaceSpec, MonitoredEntitySpec};

    use super::*;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        let mut node = Node::default();
        node.metadata.name = Some(name.into());
        node.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        node
    }

    fn workspace(name: &str, spec: serde_json::Value) -> Arc<FimWorkspace> {
        let spec: FimWorkspaceSpec = serde_json::from_value(spec).unwrap();
        let mut ws = FimWorkspace::new(name, spec);
        ws.metadata.namespace = Some("fim".into());
        ws.metadata.uid = Some(format!("uid-{name}"));
        Arc::new(ws)
    }

    fn entity(name: &str, workspace: &str, entity_type: EntityType, path: &str) -> Arc<MonitoredEntity> {
        let spec: MonitoredEntitySpec = serde_json::from_value(
            serde_json::json!({"workspace": workspace, "type": entity_type, "path": path}),
        )
        .unwrap();
        let mut entity = MonitoredEntity::new(name, spec);
        entity.metadata.namespace = Some("fim".into());
        Arc::new(entity)
    }

    fn names(config: &AgentConfig) -> Vec<String> {
        config.workspaces.iter().map(|w| w.name.clone()).collect()
    }

    fn entity_names(config: &AgentConfig, ws: &str) -> Vec<String> {
        config
            .workspaces
            .iter()
            .find(|w| w.name == ws)
            .unwrap()
            .entities
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    #[test]
    fn selectors_pick_workspaces_per_node() {
        let workspaces = [
            workspace("all", serde_json::json!({})),
            workspace(
                "gpu",
                serde_json::json!({"nodeSelector": {"matchLabels": {"pool": "gpu"}}}),
            ),
            workspace(
                "not-gpu",
                serde_json::json!({"nodeSelector": {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["gpu"]}]}}),
            ),
        ];
        let gpu = render_node_config(&node("n1", &[("pool", "gpu")]), &workspaces, &[]);
        assert_eq!(names(&gpu), ["all", "gpu"]);
        let cpu = render_node_config(&node("n2", &[("pool", "cpu")]), &workspaces, &[]);
        assert_eq!(names(&cpu), ["all", "not-gpu"]);
    }

    #[test]
    fn recommended_excludes_and_disabled_items_are_left_out() {
        let workspaces = [
            workspace(
                "ws",
                serde_json::json!({"recommended": {"exclude": ["usr-bin", "ssh"]}}),
            ),
            workspace("off", serde_json::json!({"enabled": false})),
            workspace("norec", serde_json::json!({"recommended": {"enabled": false}})),
        ];
        let mut disabled = entity("disabled", "ws", EntityType::LinuxFile, "/srv/off");
        Arc::make_mut(&mut disabled).spec.enabled = false;
        let entities = [
            entity("app", "ws", EntityType::LinuxFile, "/srv/app"),
            disabled,
            entity("x", "off", EntityType::LinuxFile, "/x"),
        ];
        let config = render_node_config(&node("n", &[]), &workspaces, &entities);
        assert_eq!(
            names(&config),
            ["norec", "ws"],
            "a disabled workspace monitors nothing"
        );
        let ws = entity_names(&config, "ws");
        assert!(!ws.contains(&"recommended.usr-bin".into()) && !ws.contains(&"recommended.ssh".into()));
        assert!(ws.contains(&"recommended.sudoers".into()) && ws.contains(&"app".into()));
        assert!(!ws.contains(&"disabled".into()));
        assert!(entity_names(&config, "norec").is_empty());
    }

    #[test]
    fn windows_and_linux_nodes_get_their_own_types() {
        let workspaces = [workspace("ws", serde_json::json!({}))];
        let entities = [
            entity("linux-app", "ws", EntityType::LinuxFile, "/srv/app"),
            entity("win-app", "ws", EntityType::WindowsFile, r"C:\app"),
        ];
        let linux = render_node_config(
            &node("l", &[("kubernetes.io/os", "linux")]),
            &workspaces,
            &entities,
        );
        let windows = render_node_config(
            &node("w", &[("kubernetes.io/os", "windows")]),
            &workspaces,
            &entities,
        );
        assert!(
            linux.workspaces[0]
                .entities
                .iter()
                .all(|e| e.entity_type.is_linux())
        );
        assert!(
            windows.workspaces[0]
                .entities
                .iter()
                .all(|e| !e.entity_type.is_linux())
        );
        assert!(entity_names(&windows, "ws").contains(&"win-app".into()));
        assert!(entity_names(&windows, "ws").contains(&"recommended.reg-run".into()));
    }

    #[test]
    fn no_matching_workspace_gives_an_empty_config() {
        let workspaces = [workspace(
            "gpu",
            serde_json::json!({"nodeSelector": {"matchLabels": {"pool": "gpu"}}}),
        )];
        let config = render_node_config(&node("n", &[("pool", "cpu")]), &workspaces, &[]);
        assert!(config.workspaces.is_empty());
        assert_eq!(config.node, "n");
    }

    #[test]
    fn revision_is_deterministic_and_matches_the_index() {
        let workspaces = [
            workspace("b", serde_json::json!({})),
            workspace("a", serde_json::json!({})),
        ];
        let reversed = [workspaces[1].clone(), workspaces[0].clone()];
        let entities = [
            entity("e1", "a", EntityType::LinuxFile, "/x"),
            entity("e2", "b", EntityType::FileContent, "/y"),
        ];
        let n = node("n", &[]);
        let one = render_node_config(&n, &workspaces, &entities);
        let two = render_node_config(&n, &reversed, &[entities[1].clone(), entities[0].clone()]);
        assert_eq!(one, two);
        assert_eq!(one.to_yaml().unwrap(), two.to_yaml().unwrap());
        assert_eq!(
            RenderIndex::build(&workspaces, &entities).revision(&n),
            one.revision
        );
        let changed = [
            entity("e1", "a", EntityType::LinuxFile, "/x2"),
            entities[1].clone(),
        ];
        assert_ne!(
            render_node_config(&n, &workspaces, &changed).revision,
            one.revision
        );
    }

    #[test]
    fn broken_entities_are_left_out_without_blocking_the_rest() {
        let workspaces = [workspace(
            "ws",
            serde_json::json!({"recommended": {"enabled": false}}),
        )];
        let entities = [
            entity("a-first", "ws", EntityType::LinuxFile, "/srv"),
            entity("b-duplicate", "ws", EntityType::LinuxFile, "/srv"),
            entity("lost", "nope", EntityType::LinuxFile, "/opt"),
            entity("fine", "ws", EntityType::LinuxFile, "/etc/app"),
        ];
        let config = render_node_config(&node("n", &[]), &workspaces, &entities);
        assert_eq!(entity_names(&config, "ws"), ["a-first", "fine"]);
        let problems = validate::entity_problems(&workspaces, &entities);
        assert_eq!(problems.len(), 2);
        assert!(
            problems[&("fim".into(), "b-duplicate".into())]
                .to_string()
                .contains("a-first")
        );
        assert_eq!(
            problems[&("fim".into(), "lost".into())].reason(),
            "WorkspaceNotFound"
        );
    }

    #[test]
    fn an_invalid_selector_selects_no_node() {
        let workspaces = [workspace(
            "bad",
            serde_json::json!({"nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Like"}]}}),
        )];
        let index = RenderIndex::build(&workspaces, &[]);
        assert!(
            index
                .invalid_selectors
                .contains_key(&("fim".into(), "bad".into()))
        );
        assert!(index.config(&node("n", &[("a", "b")])).workspaces.is_empty());
    }

    #[test]
    fn updating_one_workspace_matches_a_full_rebuild() {
        let workspaces = [
            workspace("a", serde_json::json!({})),
            workspace("b", serde_json::json!({})),
        ];
        let mut entities = vec![entity("e", "a", EntityType::LinuxFile, "/x")];
        let mut index = RenderIndex::build(&workspaces, &entities);
        entities.push(entity("f", "a", EntityType::LinuxFile, "/y"));
        index.update_workspace(&workspaces[0], &workspaces, &entities);
        let n = node("n", &[]);
        assert_eq!(
            index.revision(&n),
            RenderIndex::build(&workspaces, &entities).revision(&n)
        );
    }
}
