//! The plugin's API calls: paginated lists with server-side label selection, and merge patches
//! with the field manager `kubectl-fim`.

use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use kubefim_crds::{FileChange, FimNodeStatus, FimWorkspace, MonitoredEntity, catalog};
use serde_json::json;

use crate::{Error, Result, query::ChangeQuery};

/// Page size of lists.
pub const PAGE: u32 = 500;
const MANAGER: &str = "kubectl-fim";

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn list_error(e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) if status.code == 404 => Error::CrdsMissing,
        e => Error::Kube(e),
    }
}

/// Every object of a kind (in `namespace`, or all namespaces), page by page.
pub async fn list_all<K>(client: &Client, namespace: Option<&str>, selector: &str) -> Result<Vec<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = api(client, namespace);
    let mut params = ListParams::default().limit(PAGE);
    if !selector.is_empty() {
        params = params.labels(selector);
    }
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await.map_err(list_error)?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// The FileChanges a query selects: labels on the server, time and path on the client.
pub async fn list_changes(
    client: &Client,
    namespace: Option<&str>,
    query: &ChangeQuery,
    now: jiff::Timestamp,
) -> Result<Vec<FileChange>> {
    let changes: Vec<FileChange> = list_all(client, namespace, &query.label_selector()).await?;
    Ok(changes.into_iter().filter(|c| query.matches(c, now)).collect())
}

pub async fn workspaces(client: &Client, namespace: Option<&str>) -> Result<Vec<FimWorkspace>> {
    list_all(client, namespace, "").await
}

pub async fn node_statuses(
    client: &Client,
    namespace: Option<&str>,
    workspace: Option<&str>,
) -> Result<Vec<FimNodeStatus>> {
    let selector = workspace
        .map(|w| format!("{}={w}", kubefim_crds::keys::LABEL_WORKSPACE))
        .unwrap_or_default();
    list_all(client, namespace, &selector).await
}

pub async fn entities(client: &Client, namespace: Option<&str>) -> Result<Vec<MonitoredEntity>> {
    list_all(client, namespace, "").await
}

fn not_found(
    kind: &'static str,
    plural: &'static str,
    name: &str,
    namespace: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let (name, namespace) = (name.to_string(), namespace.to_string());
    move |e| match e {
        kube::Error::Api(status) if status.code == 404 => Error::NotFound {
            kind,
            plural,
            name,
            namespace,
        },
        e => Error::Kube(e),
    }
}

async fn merge_patch<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    patch: serde_json::Value,
    kind: &'static str,
    plural: &'static str,
) -> Result<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(patch),
    )
    .await
    .map_err(not_found(kind, plural, name, namespace))
}

pub async fn get_workspace(client: &Client, namespace: &str, name: &str) -> Result<FimWorkspace> {
    Api::<FimWorkspace>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(not_found("FimWorkspace", "fimws", name, namespace))
}

pub async fn get_change(client: &Client, namespace: &str, name: &str) -> Result<FileChange> {
    Api::<FileChange>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(not_found("FileChange", "fc", name, namespace))
}

/// `kubectl fim entity enable|disable NAME`.
pub async fn set_entity_enabled(
    client: &Client,
    namespace: &str,
    name: &str,
    enabled: bool,
) -> Result<MonitoredEntity> {
    merge_patch(
        client,
        namespace,
        name,
        json!({"spec": {"enabled": enabled}}),
        "MonitoredEntity",
        "fiment",
    )
    .await
}

/// `kubectl fim enable|disable WORKSPACE`.
pub async fn set_workspace_enabled(
    client: &Client,
    namespace: &str,
    name: &str,
    enabled: bool,
) -> Result<FimWorkspace> {
    merge_patch(
        client,
        namespace,
        name,
        json!({"spec": {"enabled": enabled}}),
        "FimWorkspace",
        "fimws",
    )
    .await
}

/// `kubectl fim recommended exclude|include ID`: the workspace's exclude list with `id` added
/// or removed. Unknown ids are refused, naming the command that lists them.
pub async fn set_recommended_excluded(
    client: &Client,
    namespace: &str,
    workspace: &str,
    id: &str,
    excluded: bool,
) -> Result<FimWorkspace> {
    if catalog::find(id).is_none() {
        return Err(Error::Usage(format!(
            "{id:?} is not a recommended item; `kubectl fim entities {workspace}` lists their ids"
        )));
    }
    let current = get_workspace(client, namespace, workspace).await?;
    let mut exclude = current.spec.recommended.exclude.clone();
    exclude.retain(|e| e != id);
    if excluded {
        exclude.push(id.to_string());
        exclude.sort();
    }
    merge_patch(
        client,
        namespace,
        workspace,
        json!({"spec": {"recommended": {"exclude": exclude}}}),
        "FimWorkspace",
        "fimws",
    )
    .await
}

/// `kubectl fim baseline accept WORKSPACE`: a new baseline revision makes every selected node
/// accept its current state.
pub async fn accept_baseline(
    client: &Client,
    namespace: &str,
    workspace: &str,
    revision: &str,
) -> Result<FimWorkspace> {
    merge_patch(
        client,
        namespace,
        workspace,
        json!({"spec": {"baseline": {"revision": revision}}}),
        "FimWorkspace",
        "fimws",
    )
    .await
}
