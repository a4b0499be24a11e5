//! The operator's API conversations, against a tower-test ApiServerVerifier (the controller-rs
//! pattern): each scenario asserts the method, URI and body of every request and answers it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::sync::Arc;

use http::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::{
    Client,
    core::DeserializeGuard,
    runtime::{reflector, watcher},
};
use kubefim_crds::{FimNodeStatus, FimWorkspace, MonitoredEntity};
use kubefim_operator::{
    aggregate, apply,
    context::{Context, Settings, Stores},
    metrics::Metrics,
    reconcile,
    render::RenderIndex,
    retention,
    tenancy::NamespacePolicy,
};
use kubefim_testkit::{expect, mock, nothing_more};
use serde_json::{Value, json};
use tokio::sync::watch;

fn node(name: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"kubernetes.io/os": "linux"}}}))
        .unwrap()
}

fn workspace() -> FimWorkspace {
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace",
        "metadata": {"name": "prod", "namespace": "fim", "uid": "ws-uid", "generation": 3},
        "spec": {"recommended": {"enabled": false}, "retention": {"maxAge": "14d", "maxChangesPerNode": 2}},
    }))
    .unwrap()
}

fn entity() -> MonitoredEntity {
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "MonitoredEntity",
        "metadata": {"name": "app", "namespace": "fim"},
        "spec": {"workspace": "prod", "type": "LinuxFile", "path": "/srv/app"},
    }))
    .unwrap()
}

fn guarded_store<K: kube::Resource<DynamicType = ()> + Clone>(
    objects: Vec<K>,
) -> reflector::Store<DeserializeGuard<K>> {
    let (reader, mut writer) = reflector::store();
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(object))));
    }
    reader
}

fn cm_store(objects: Vec<ConfigMap>) -> reflector::Store<ConfigMap> {
    let (reader, mut writer) = reflector::store();
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    reader
}

fn stores(
    workspaces: Vec<FimWorkspace>,
    entities: Vec<MonitoredEntity>,
    reports: Vec<FimNodeStatus>,
    config_maps: Vec<ConfigMap>,
) -> Stores {
    Stores {
        workspaces: guarded_store(workspaces),
        entities: guarded_store(entities),
        node_statuses: guarded_store(reports),
        config_maps: cm_store(config_maps),
        namespaces: reflector::store().0,
    }
}

/// The settings of an install in kubefim-system that also serves namespace fim.
fn settings() -> Settings {
    let mut settings = Settings::for_namespace("kubefim-system");
    settings.policy = NamespacePolicy::new(["kubefim-system".to_string(), "fim".to_string()], "").unwrap();
    settings
}

fn context(
    client: Client,
    config_maps: Vec<ConfigMap>,
    reports: Vec<FimNodeStatus>,
    leader: bool,
) -> Arc<Context> {
    let (_tx, rx) = watch::channel(leader);
    Arc::new(Context::new(
        client,
        settings(),
        stores(vec![workspace()], vec![entity()], reports, config_maps),
        rx,
        Arc::new(Metrics::new()),
        None,
    ))
}

#[tokio::test]
async fn a_node_config_is_applied_by_server_side_apply_owned_by_the_node() {
    let (client, mut handle) = mock();
    let ctx = context(client, vec![], vec![], true);
    let n1 = Arc::new(node("n1"));
    let expected = RenderIndex::build(&[Arc::new(workspace())], &[Arc::new(entity())]).config(&n1);
    let reconcile = tokio::spawn(reconcile::reconcile_node(n1, ctx.clone()));
    let body = expect(&mut handle, Method::PATCH, "/api/v1/namespaces/kubefim-system/configmaps/kubefim-node-n1?&force=true&fieldManager=kubefim-operator", 200,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubefim-node-n1", "namespace": "kubefim-system"}}),
    )
    .await;
    reconcile.await.unwrap().unwrap();
    assert_eq!(body["kind"], "ConfigMap");
    assert_eq!(
        body["metadata"]["annotations"]["kubefim.dev/revision"],
        expected.revision.as_str()
    );
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/component"],
        "agent-config"
    );
    assert_eq!(
        body["metadata"]["ownerReferences"][0],
        json!({"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"})
    );
    let yaml = body["data"]["agent.yaml"].as_str().unwrap();
    assert_eq!(kubefim_crds::AgentConfig::from_yaml(yaml).unwrap(), expected);
    assert!(yaml.contains("path: /srv/app"));
    assert_eq!(ctx.metrics.configmaps_applied_total.get(), 1);
}

#[tokio::test]
async fn an_unchanged_revision_is_not_written_again() {
    let (client, mut handle) = mock();
    let n1 = node("n1");
    let config = RenderIndex::build(&[Arc::new(workspace())], &[Arc::new(entity())]).config(&n1);
    let existing = apply::node_config_map(&n1, &config, "kubefim-system", None).unwrap();
    let ctx = context(client, vec![existing], vec![], true);
    let reconcile = tokio::spawn(reconcile::reconcile_node(Arc::new(n1), ctx));
    nothing_more(&mut handle).await;
    reconcile.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_config_map_edited_by_hand_under_its_revision_is_restored() {
    let (client, mut handle) = mock();
    let n1 = node("n1");
    let config = RenderIndex::build(&[Arc::new(workspace())], &[Arc::new(entity())]).config(&n1);
    let mut edited = apply::node_config_map(&n1, &config, "kubefim-system", None).unwrap();
    // Someone who may edit ConfigMaps drops the entity, keeping the revision annotation.
    let yaml = edited.data.as_ref().unwrap()["agent.yaml"].replace("/srv/app", "/srv/elsewhere");
    edited.data = Some([("agent.yaml".to_string(), yaml)].into());
    let ctx = context(client, vec![edited], vec![], true);
    let reconcile = tokio::spawn(reconcile::reconcile_node(Arc::new(n1), ctx.clone()));
    let body = expect(&mut handle, Method::PATCH, "/api/v1/namespaces/kubefim-system/configmaps/kubefim-node-n1?&force=true&fieldManager=kubefim-operator", 200,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubefim-node-n1", "namespace": "kubefim-system"}}),
    )
    .await;
    reconcile.await.unwrap().unwrap();
    let restored =
        kubefim_crds::AgentConfig::from_yaml(body["data"]["agent.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        restored, config,
        "what the workspaces say, not what was edited in"
    );
    assert_eq!(ctx.metrics.configmaps_applied_total.get(), 1);
}

#[tokio::test]
async fn with_a_config_owner_the_config_maps_go_with_it_and_a_deleted_nodes_is_removed() {
    let (client, mut handle) = mock();
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: "kubefim-operator".into(),
        uid: "uid-sa".into(),
        ..Default::default()
    };
    let gone = node("gone");
    let config = RenderIndex::build(&[Arc::new(workspace())], &[Arc::new(entity())]).config(&gone);
    let orphan = apply::node_config_map(&gone, &config, "kubefim-system", Some(&owner)).unwrap();
    let (_tx, rx) = watch::channel(true);
    let mut owned = settings();
    owned.config_owner = Some(owner);
    let ctx = Arc::new(Context::new(
        client,
        owned,
        stores(vec![workspace()], vec![entity()], vec![], vec![orphan]),
        rx,
        Arc::new(Metrics::new()),
        None,
    ));
    let n1 = Arc::new(node("n1"));
    let reconcile = tokio::spawn(reconcile::reconcile_node(n1.clone(), ctx.clone()));
    let body = expect(&mut handle, Method::PATCH, "/api/v1/namespaces/kubefim-system/configmaps/kubefim-node-n1?&force=true&fieldManager=kubefim-operator", 200,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubefim-node-n1", "namespace": "kubefim-system"}}),
    )
    .await;
    reconcile.await.unwrap().unwrap();
    assert_eq!(
        body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "ServiceAccount", "name": "kubefim-operator", "uid": "uid-sa"}])
    );
    // Node "gone" no longer exists: its ConfigMap is removed by the operator.
    let sweep = tokio::spawn({
        let ctx = ctx.clone();
        async move { reconcile::remove_orphaned_configs(&ctx, &[n1]).await }
    });
    expect(
        &mut handle,
        Method::DELETE,
        "/api/v1/namespaces/kubefim-system/configmaps/kubefim-node-gone?",
        200,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
    .await;
    assert_eq!(sweep.await.unwrap().unwrap(), 1);
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn a_standby_replica_never_writes() {
    let (client, mut handle) = mock();
    let ctx = context(client, vec![], vec![], false);
    let reconcile = tokio::spawn(reconcile::reconcile_node(Arc::new(node("n1")), ctx.clone()));
    nothing_more(&mut handle).await;
    reconcile.await.unwrap().unwrap();
    assert_eq!(ctx.metrics.configmaps_applied_total.get(), 0);
}

#[tokio::test]
async fn workspace_and_entity_status_are_applied_from_node_reports() {
    let (client, mut handle) = mock();
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let report: FimNodeStatus = serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimNodeStatus",
        "metadata": {"name": "prod.n1", "namespace": "fim"},
        "spec": {"workspace": "prod", "nodeName": "n1"},
        "status": {
            "lastHeartbeatTime": "2026-11-25T11:59:00Z",
            "changeCounts": [{"day": "2026-11-25", "byCategory": {"added": 2, "modified": 3, "removed": 1}, "byType": {"files": 6}}],
            "entities": [{"name": "app", "type": "LinuxFile", "filesMonitored": 42, "state": "Active"}],
        },
    }))
    .unwrap();
    let ctx = context(client, vec![], vec![report], true);
    let nodes = vec![Arc::new(node("n1")), Arc::new(node("n2"))];
    let update = tokio::spawn({
        let ctx = ctx.clone();
        async move { aggregate::update_status(&ctx, &nodes, now).await }
    });
    let ws = expect(&mut handle, Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimworkspaces/prod/status?&force=true&fieldManager=kubefim-operator", 200,
        serde_json::to_value(workspace()).unwrap(),
    )
    .await;
    assert_eq!(
        (ws["apiVersion"].as_str(), ws["kind"].as_str()),
        (Some("kubefim.dev/v1alpha1"), Some("FimWorkspace"))
    );
    let status = &ws["status"];
    assert_eq!(
        (
            status["nodesSelected"].as_u64(),
            status["nodesReporting"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(status["nodesSummary"], "1/2");
    assert_eq!(status["changes"]["last7d"], 6);
    assert_eq!(
        status["changes"]["byCategory"],
        json!({"added": 2, "modified": 3, "removed": 1})
    );
    assert_eq!(status["entitiesActive"], 1);
    assert_eq!(status["observedGeneration"], 3);
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("NodesNotReporting"))
    );

    let entity_body = expect(&mut handle, Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/monitoredentities/app/status?&force=true&fieldManager=kubefim-operator", 200,
        serde_json::to_value(entity()).unwrap(),
    )
    .await;
    assert_eq!(
        (
            entity_body["status"]["nodesActive"].as_u64(),
            entity_body["status"]["filesMonitored"].as_u64()
        ),
        (Some(1), Some(42))
    );
    update.await.unwrap().unwrap();
    nothing_more(&mut handle).await;
    // The gauge the not-reporting alert reads: n2 is selected and sent no heartbeat.
    let gauge = |state: &str| ctx.metrics.nodes.with_label_values(&["fim", "prod", state]).get();
    assert_eq!(
        [
            gauge("selected"),
            gauge("reporting"),
            gauge("not_reporting"),
            gauge("unsupported")
        ],
        [2, 1, 1, 0]
    );
}

fn change_meta(name: &str, node: &str, created: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "fim", "creationTimestamp": created,
        "labels": {"kubefim.dev/workspace": "prod", "kubefim.dev/node": node}}})
}

#[tokio::test]
async fn retention_pages_through_metadata_and_deletes_only_expired_changes() {
    let (client, mut handle) = mock();
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let sweep = tokio::spawn(async move { retention::sweep(&client, &workspace(), now).await });
    let list = "/apis/kubefim.dev/v1alpha1/namespaces/fim/filechanges?&labelSelector=kubefim.dev%2Fworkspace%3Dprod&limit=500";
    expect(
        &mut handle,
        Method::GET,
        list,
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {"continue": "page2"}, "items": [
            change_meta("old", "n1", "2026-11-01T00:00:00Z"),
            change_meta("n1-newest", "n1", "2026-11-25T11:00:00Z"),
        ]}),
    )
    .await;
    expect(
        &mut handle,
        Method::GET,
        &format!("{list}&continue=page2"),
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": [
            change_meta("n1-middle", "n1", "2026-11-25T10:00:00Z"),
            change_meta("n1-oldest", "n1", "2026-11-25T09:00:00Z"),
            change_meta("n2-only", "n2", "2026-11-20T00:00:00Z"),
        ]}),
    )
    .await;
    for name in ["n1-oldest", "old"] {
        expect(
            &mut handle,
            Method::DELETE,
            &format!("/apis/kubefim.dev/v1alpha1/namespaces/fim/filechanges/{name}?"),
            200,
            json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "metadata": {}}),
        )
        .await;
    }
    assert_eq!(sweep.await.unwrap().unwrap(), 2);
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn an_entity_change_reconciles_only_the_nodes_its_workspace_selects() {
    let (client, _handle) = mock();
    let (_tx, rx) = watch::channel(true);
    let selective: FimWorkspace = serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace",
        "metadata": {"name": "gpu", "namespace": "fim"},
        "spec": {"nodeSelector": {"matchLabels": {"pool": "gpu"}}},
    }))
    .unwrap();
    let ctx = Context::new(
        client,
        settings(),
        stores(vec![workspace(), selective], vec![entity()], vec![], vec![]),
        rx,
        Arc::new(Metrics::new()),
        None,
    );
    let (nodes, mut writer) = reflector::store::<Node>();
    for (name, pool) in [("g1", "gpu"), ("c1", "cpu"), ("g2", "gpu")] {
        let mut n = node(name);
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("pool".into(), pool.into());
        writer.apply_watcher_event(&watcher::Event::Apply(n));
    }
    let names = |trigger| {
        let mut names: Vec<String> = reconcile::nodes_to_reconcile(&trigger, &ctx, &nodes)
            .into_iter()
            .map(|r| r.obj_ref.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(reconcile::Trigger::NodesOf(("fim".into(), "gpu".into()))),
        ["g1", "g2"]
    );
    assert_eq!(
        names(reconcile::Trigger::NodesOf(("fim".into(), "prod".into()))),
        ["c1", "g1", "g2"]
    );
    assert_eq!(names(reconcile::Trigger::AllNodes), ["c1", "g1", "g2"]);
    assert!(names(reconcile::Trigger::NodesOf(("fim".into(), "missing".into()))).is_empty());
}

#[tokio::test]
async fn a_workspace_in_a_namespace_not_allowed_is_refused_and_reaches_no_node() {
    let (client, mut handle) = mock();
    let (_tx, rx) = watch::channel(true);
    // An editor of namespace fim made a workspace; only kubefim-system is allowed.
    let n1 = node("n1");
    let nothing = kubefim_crds::AgentConfig::new("n1", vec![]);
    let existing = apply::node_config_map(&n1, &nothing, "kubefim-system", None).unwrap();
    let ctx = Arc::new(Context::new(
        client,
        Settings::for_namespace("kubefim-system"),
        stores(vec![workspace()], vec![entity()], vec![], vec![existing]),
        rx,
        Arc::new(Metrics::new()),
        None,
    ));
    assert!(
        ctx.index().workspace_keys().is_empty(),
        "nothing of it is rendered"
    );
    let reconcile = tokio::spawn(reconcile::reconcile_node(Arc::new(n1.clone()), ctx.clone()));
    nothing_more(&mut handle).await;
    reconcile.await.unwrap().unwrap();

    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let nodes = vec![Arc::new(n1)];
    let update = tokio::spawn({
        let ctx = ctx.clone();
        async move { aggregate::update_status(&ctx, &nodes, now).await }
    });
    let (event, send) = kubefim_testkit::next_request(&mut handle).await;
    assert_eq!(
        event.uri().to_string(),
        "/apis/events.k8s.io/v1/namespaces/fim/events?"
    );
    let event = kubefim_testkit::body_of(event).await;
    kubefim_testkit::respond(send, 201, event.clone());
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Warning"), Some("NamespaceNotAllowed"))
    );
    assert_eq!(event["regarding"]["name"], "prod");
    let ws = expect(&mut handle, Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimworkspaces/prod/status?&force=true&fieldManager=kubefim-operator", 200,
        serde_json::to_value(workspace()).unwrap(),
    )
    .await;
    let ready = &ws["status"]["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["status"].as_str()),
        (Some("Ready"), Some("False"))
    );
    assert_eq!(ready["reason"], "NamespaceNotAllowed");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("namespace fim") && message.contains("workspaceNamespaces"),
        "{message}"
    );
    assert_eq!(ws["status"]["nodesSelected"], 0);
    let entity = expect(&mut handle, Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/monitoredentities/app/status?&force=true&fieldManager=kubefim-operator", 200,
        serde_json::to_value(entity()).unwrap(),
    )
    .await;
    assert_eq!(entity["status"]["conditions"][0]["reason"], "NamespaceNotAllowed");
    update.await.unwrap().unwrap();
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn one_workspace_that_cannot_be_applied_does_not_stop_the_others() {
    let (client, mut handle) = mock();
    let (_tx, rx) = watch::channel(true);
    let mut second = workspace();
    second.metadata.name = Some("second".into());
    let ctx = Arc::new(Context::new(
        client,
        settings(),
        stores(vec![workspace(), second], vec![], vec![], vec![]),
        rx,
        Arc::new(Metrics::new()),
        None,
    ));
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let nodes = vec![Arc::new(node("n1"))];
    let update = tokio::spawn({
        let ctx = ctx.clone();
        async move { aggregate::update_status(&ctx, &nodes, now).await }
    });
    expect(&mut handle, Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimworkspaces/prod/status?&force=true&fieldManager=kubefim-operator", 500,
        kubefim_testkit::status_body(500, "InternalError", "etcd is unhappy"),
    )
    .await;
    let second = expect(&mut handle, Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimworkspaces/second/status?&force=true&fieldManager=kubefim-operator", 200,
        serde_json::to_value(workspace()).unwrap(),
    )
    .await;
    assert_eq!(second["status"]["nodesSelected"], 1);
    let error = update.await.unwrap().unwrap_err();
    assert!(kubefim_telemetry::error_chain(&error).contains("etcd is unhappy"));
}
