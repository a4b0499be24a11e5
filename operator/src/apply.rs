//! Writes to the API server: the node's ConfigMap and the status of workspaces and entities,
//! all by server-side apply with the operator's one field manager. `node_config_map` is pure.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Node},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use kubefim_crds::{
    AgentConfig, FimWorkspace, MonitoredEntity, MonitoredEntityStatus, keys, workspace::FimWorkspaceStatus,
};
use serde_json::json;

use crate::{Error, Result};

/// The ConfigMap that carries `config` to `node`'s agent, owned by `owner` (the chart's
/// operator ServiceAccount, so an uninstall takes it) or, without one, by the Node.
pub fn node_config_map(
    node: &Node,
    config: &AgentConfig,
    namespace: &str,
    owner: Option<&OwnerReference>,
) -> Result<ConfigMap> {
    let yaml = config.to_yaml().map_err(|source| Error::Spec {
        object: format!("Node {}", node.name_any()),
        source,
    })?;
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(keys::node_config_map_name(&node.name_any()));
    cm.metadata.namespace = Some(namespace.to_string());
    cm.metadata.labels = Some(BTreeMap::from([
        (
            keys::LABEL_COMPONENT.to_string(),
            keys::COMPONENT_AGENT_CONFIG.to_string(),
        ),
        (keys::LABEL_NODE.to_string(), node.name_any()),
    ]));
    cm.metadata.annotations = Some(BTreeMap::from([(
        keys::ANNOTATION_REVISION.to_string(),
        config.revision.clone(),
    )]));
    cm.metadata.owner_references = Some(vec![owner.cloned().unwrap_or_else(|| OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.name_any(),
        uid: node.uid().unwrap_or_default(),
        ..Default::default()
    })]);
    cm.data = Some(BTreeMap::from([(keys::CONFIG_KEY.to_string(), yaml)]));
    Ok(cm)
}

/// Whether `current` carries exactly what `wanted` says: the configuration itself, its
/// revision and its owner. Anyone who may edit ConfigMaps in the install namespace could
/// otherwise change what a node monitors and keep the revision annotation.
pub fn holds(current: &ConfigMap, wanted: &ConfigMap) -> bool {
    current.data == wanted.data
        && applied_revision(current) == applied_revision(wanted)
        && current.metadata.owner_references == wanted.metadata.owner_references
}

/// Deletes a node's ConfigMap (its node is gone).
pub async fn delete_config_map(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The revision a node's ConfigMap holds.
pub fn applied_revision(cm: &ConfigMap) -> Option<&str> {
    cm.annotations()
        .get(keys::ANNOTATION_REVISION)
        .map(String::as_str)
}

fn apply_params() -> PatchParams {
    PatchParams::apply(keys::OPERATOR_MANAGER).force()
}

/// Server-side applies a node's ConfigMap.
pub async fn apply_config_map(client: &Client, cm: &ConfigMap) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(
        client.clone(),
        cm.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let mut body = serde_json::to_value(cm).map_err(Error::Serialize)?;
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("ConfigMap");
    api.patch(&cm.name_any(), &apply_params(), &Patch::Apply(body))
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

fn status_body<K: Resource<DynamicType = ()>>(status: &impl serde::Serialize) -> Result<serde_json::Value> {
    Ok(json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": serde_json::to_value(status).map_err(Error::Serialize)?,
    }))
}

/// Server-side applies a workspace's status.
pub async fn apply_workspace_status(
    client: &Client,
    workspace: &FimWorkspace,
    status: &FimWorkspaceStatus,
) -> Result<()> {
    let api: Api<FimWorkspace> = Api::namespaced(client.clone(), &workspace.namespace().unwrap_or_default());
    let body = status_body::<FimWorkspace>(status)?;
    api.patch_status(&workspace.name_any(), &apply_params(), &Patch::Apply(body))
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

/// Server-side applies an entity's status.
pub async fn apply_entity_status(
    client: &Client,
    entity: &MonitoredEntity,
    status: &MonitoredEntityStatus,
) -> Result<()> {
    let api: Api<MonitoredEntity> = Api::namespaced(client.clone(), &entity.namespace().unwrap_or_default());
    let body = status_body::<MonitoredEntity>(status)?;
    api.patch_status(&entity.name_any(), &apply_params(), &Patch::Apply(body))
        .await
        .map_err(Error::Kube)?;
    Ok(())
}
