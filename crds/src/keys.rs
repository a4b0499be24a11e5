//! Label, annotation, field-manager and object-name conventions shared by the operator, the
//! agent and the kubectl plugin.

/// Label on FileChange and FimNodeStatus: the FimWorkspace name.
pub const LABEL_WORKSPACE: &str = "kubefim.dev/workspace";
/// Label on FileChange and FimNodeStatus: the node name.
pub const LABEL_NODE: &str = "kubefim.dev/node";
/// Label on FileChange: the MonitoredEntity name (or the recommended catalog id).
pub const LABEL_ENTITY: &str = "kubefim.dev/entity";
/// Label on FileChange: Files, FileContent, Services or Registry.
pub const LABEL_TYPE: &str = "kubefim.dev/type";
/// Label on FileChange: Added, Modified, Removed or Aggregated.
pub const LABEL_CATEGORY: &str = "kubefim.dev/category";
/// Label on the per-node agent ConfigMaps, so they can be listed together.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Value of [`LABEL_COMPONENT`] on the per-node agent ConfigMaps.
pub const COMPONENT_AGENT_CONFIG: &str = "agent-config";
/// Annotation on a node's ConfigMap: the revision of the AgentConfig it holds.
pub const ANNOTATION_REVISION: &str = "kubefim.dev/revision";
/// Key of the AgentConfig YAML inside the node's ConfigMap.
pub const CONFIG_KEY: &str = "agent.yaml";
/// Field manager of every server-side apply the operator makes.
pub const OPERATOR_MANAGER: &str = "kubefim-operator";
/// Field manager of every write the agent makes.
pub const AGENT_MANAGER: &str = "kubefim-agent";
/// Name of the Lease the operator replicas compete for.
pub const OPERATOR_LEASE: &str = "kubefim-operator";
/// Prefix of recommended-catalog entity names in FileChange labels and agent configuration.
pub const RECOMMENDED_PREFIX: &str = "recommended.";

/// Name of the ConfigMap holding the agent configuration of `node`.
pub fn node_config_map_name(node: &str) -> String {
    format!("kubefim-node-{node}")
}

/// Name of the FimNodeStatus of `node` for `workspace`.
pub fn node_status_name(workspace: &str, node: &str) -> String {
    format!("{workspace}.{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_follow_the_design() {
        assert_eq!(node_config_map_name("worker-1"), "kubefim-node-worker-1");
        assert_eq!(node_status_name("prod", "worker-1"), "prod.worker-1");
    }
}
