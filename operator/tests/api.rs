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
    aggregate, apply, controller, metrics::Metrics, reconcile, render::RenderIndex, retention,
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

fn context(
    client: Client,
    config_maps: Vec<ConfigMap>,
    reports: Vec<FimNodeStatus>,
    leader: bool,
) -> Arc<controller::Context> {
    let (_tx, rx) = watch::channel(leader);
    Arc::new(controller::context(
        client,
        "kubefim-system",
        guarded_store(vec![workspace()]),
        guarded_store(vec![entity()]),
        guarded_store(reports),
        cm_store(config_maps),
        rx,
        Arc::new(Metrics::new()),
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
    let existing = apply::node_config_map(&n1, &config, "kubefim-system").unwrap();
    let ctx = context(client, vec![existing], vec![], true);
    let reconcile = tokio::spawn(reconcile::reconcile_node(Arc::new(n1), ctx));
    nothing_more(&mut handle).await;
    reconcile.await.unwrap().unwrap();
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
    let ctx = controller::context(
        client,
        "kubefim-system",
        guarded_store(vec![workspace(), selective]),
        guarded_store(vec![entity()]),
        guarded_store(vec![]),
        cm_store(vec![]),
        rx,
        Arc::new(Metrics::new()),
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
