//! The in-cluster agent's API conversations against a tower-test ApiServerVerifier, with a
//! real host tree and a real store: the configuration watch, the FileChange a change becomes
//! (body, labels, owner), folding, and the outbox across restarts. Each scenario asserts
//! method, URI and body.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::node::{Node, created, filechanges, prod};
use http::Method;
use kubefim_agent::{cluster, config::WorkspaceKey, outbox::OutboxPolicy};
use kubefim_crds::{AgentConfig, filechange::change_name};
use kubefim_testkit::{body_of, mock, next_request, nothing_more, respond};
use serde_json::json;

/// Node n1's configuration watch, started from `current`; what it publishes.
fn watching(client: &kube::Client, current: AgentConfig) -> tokio::sync::watch::Receiver<AgentConfig> {
    let (sender, configs) = tokio::sync::watch::channel(current);
    tokio::spawn(cluster::watch_config(
        client.clone(),
        "kubefim-system".into(),
        "n1".into(),
        sender,
    ));
    configs
}

#[tokio::test]
async fn the_config_watch_then_a_first_baseline_reports_nothing() {
    let (client, mut handle) = mock();
    let config = AgentConfig::new("n1", vec![prod()]);
    let mut configs = watching(&client, AgentConfig::new("n1", vec![]));
    let (list, send) = next_request(&mut handle).await;
    assert_eq!(list.method(), Method::GET);
    let uri = list.uri().to_string();
    assert!(
        uri.starts_with("/api/v1/namespaces/kubefim-system/configmaps?"),
        "{uri}"
    );
    assert!(
        uri.contains("fieldSelector=metadata.name%3Dkubefim-node-n1"),
        "only its own ConfigMap: {uri}"
    );
    respond(
        send,
        200,
        json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7"}, "items": [{
            "metadata": {"name": "kubefim-node-n1", "namespace": "kubefim-system", "resourceVersion": "7"},
            "data": {"agent.yaml": config.to_yaml().unwrap()},
        }]}),
    );
    let (watch, _held_open) = next_request(&mut handle).await;
    assert!(watch.uri().to_string().contains("watch=true"), "{}", watch.uri());
    tokio::time::timeout(Duration::from_secs(5), configs.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*configs.borrow(), config);

    let node = Node::new();
    assert_eq!(node.scan(), 0, "the first scan is a silent baseline");
    assert_eq!(node.depth(), 0);
    assert_eq!(node.report(&client, Duration::from_secs(5)).await.acknowledged, 0);
    nothing_more(&mut handle).await;
}

/// Started with the configuration it saved before (an API outage at start), the agent learns
/// from the first list that its ConfigMap was deleted meanwhile: no Delete event ever comes.
#[tokio::test]
async fn a_configmap_deleted_while_the_agent_was_down_empties_the_saved_configuration() {
    let (client, mut handle) = mock();
    let saved = AgentConfig::new("n1", vec![prod()]);
    let mut configs = watching(&client, saved);
    let (list, send) = next_request(&mut handle).await;
    assert!(
        list.uri()
            .to_string()
            .contains("fieldSelector=metadata.name%3Dkubefim-node-n1")
    );
    respond(
        send,
        200,
        json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "9"}, "items": []}),
    );
    let (_watch, _held_open) = next_request(&mut handle).await;
    tokio::time::timeout(Duration::from_secs(5), configs.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*configs.borrow(), AgentConfig::new("n1", vec![]));
}

#[tokio::test]
async fn one_modification_gives_exactly_one_post_with_its_labels_and_owner() {
    let (client, mut handle) = mock();
    let node = Node::new();
    node.scan();
    node.write("/srv/app.conf", "v2, changed\n");
    assert_eq!(node.scan(), 1);
    let report = tokio::spawn({
        let client = client.clone();
        async move {
            let pass = node.report(&client, Duration::from_secs(5)).await;
            (pass.acknowledged, node)
        }
    });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (&Method::POST, filechanges("fim"))
    );
    let body = body_of(request).await;
    respond(send, 201, created(&body));
    let (acknowledged, node) = report.await.unwrap();
    assert_eq!(acknowledged, 1);
    assert_eq!(node.depth(), 0, "acknowledged changes leave the outbox");
    nothing_more(&mut handle).await;

    let spec = &body["spec"];
    assert_eq!(body["kind"], "FileChange");
    assert_eq!(
        body["metadata"]["name"],
        change_name(
            "n1",
            "/srv/app.conf",
            kubefim_crds::ChangeCategory::Modified,
            spec["detectedAt"].as_str().unwrap()
        )
    );
    assert_eq!(
        body["metadata"]["labels"],
        json!({
            "kubefim.dev/workspace": "prod", "kubefim.dev/node": "n1", "kubefim.dev/entity": "app",
            "kubefim.dev/type": "Files", "kubefim.dev/category": "Modified",
        })
    );
    assert_eq!(
        body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace", "name": "prod", "uid": "ws-uid"}])
    );
    assert_eq!(
        (
            spec["path"].as_str(),
            spec["nodeName"].as_str(),
            spec["source"].as_str()
        ),
        (Some("/srv/app.conf"), Some("n1"), Some("Scan"))
    );
    assert!(
        spec["changedAttributes"]
            .as_array()
            .unwrap()
            .contains(&json!("content"))
    );
    assert_eq!(
        (
            spec["previous"]["size"].as_u64(),
            spec["current"]["size"].as_u64()
        ),
        (Some(3), Some(12))
    );
    assert_ne!(spec["previous"]["hash"], spec["current"]["hash"]);
}

#[tokio::test]
async fn already_exists_counts_as_success() {
    let (client, mut handle) = mock();
    let node = Node::new();
    node.scan();
    std::fs::write(node.host.path().join("srv/new"), "x").unwrap();
    node.scan();
    let depth = node.depth();
    let report = tokio::spawn({
        let client = client.clone();
        async move {
            (
                node.report(&client, Duration::from_secs(5)).await.acknowledged,
                node,
            )
        }
    });
    for _ in 0..depth {
        let (request, send) = next_request(&mut handle).await;
        assert_eq!(request.method(), Method::POST);
        respond(
            send,
            409,
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409, "metadata": {}}),
        );
    }
    let (acknowledged, node) = report.await.unwrap();
    assert_eq!(acknowledged as u64, depth);
    assert_eq!(node.reports("exists"), depth);
    assert_eq!(node.depth(), 0);
}

#[tokio::test]
async fn the_outbox_survives_a_restart_and_drains() {
    let (client, mut handle) = mock();
    let node = Node::new();
    node.scan();
    std::fs::remove_file(node.host.path().join("srv/app.conf")).unwrap();
    node.scan();
    let expected = node.depth();
    assert!(expected >= 1);
    // The agent stops with its changes unreported; a new one opens the same state directory.
    let restarted = node.restart();
    assert_eq!(restarted.depth(), expected);
    let report = tokio::spawn({
        let client = client.clone();
        async move {
            (
                restarted
                    .report(&client, Duration::from_secs(5))
                    .await
                    .acknowledged,
                restarted,
            )
        }
    });
    let mut categories = BTreeSet::new();
    for _ in 0..expected {
        let (request, send) = next_request(&mut handle).await;
        let body = body_of(request).await;
        categories.insert(body["spec"]["category"].as_str().unwrap().to_string());
        respond(send, 201, created(&body));
    }
    let (acknowledged, restarted) = report.await.unwrap();
    assert_eq!(acknowledged as u64, expected);
    assert!(categories.contains("Removed"), "{categories:?}");
    assert_eq!(restarted.depth(), 0);
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn a_burst_of_500_changes_gives_100_filechanges_and_one_aggregated() {
    let (client, mut handle) = mock();
    let node = Node::new();
    node.scan();
    for i in 0..500 {
        std::fs::write(node.host.path().join(format!("srv/burst{i:03}")), "x").unwrap();
    }
    let total = node.scan();
    assert!(total >= 500);
    assert_eq!(node.depth(), 101);
    let report = tokio::spawn({
        let client = client.clone();
        async move {
            (
                node.report(&client, Duration::from_secs(5)).await.acknowledged,
                node,
            )
        }
    });
    let mut individual = 0;
    let mut aggregated = Vec::new();
    for _ in 0..101 {
        let (request, send) = next_request(&mut handle).await;
        let body = body_of(request).await;
        match body["spec"]["category"].as_str().unwrap() {
            "Aggregated" => aggregated.push(body.clone()),
            _ => individual += 1,
        }
        respond(send, 201, created(&body));
    }
    let (acknowledged, node) = report.await.unwrap();
    assert_eq!(acknowledged, 101);
    assert_eq!((individual, aggregated.len()), (100, 1));
    let folded = &aggregated[0]["spec"]["aggregated"];
    assert_eq!(
        folded["count"].as_u64().unwrap(),
        total - 100,
        "every change is accounted for"
    );
    assert_eq!(folded["samplePaths"].as_array().unwrap().len(), 20);
    assert_eq!(
        aggregated[0]["metadata"]["labels"]["kubefim.dev/category"],
        "Aggregated"
    );
    assert_eq!(node.depth(), 0);
    assert_eq!(
        node.agent
            .metrics
            .changes_total
            .with_label_values(&["fim", "prod", "app", "Files", "Added", "none"])
            .get(),
        500,
        "metrics count every change"
    );
}

#[tokio::test]
async fn past_its_bound_the_outbox_folds_changes_instead_of_dropping_them() {
    let node = Node::new();
    node.scan();
    let (Node { host, state, agent }, bound) = (node, 5);
    drop(agent);
    let mut agent = Node::agent(&host, &state);
    agent.outbox = Some(OutboxPolicy {
        node: "n1".into(),
        bound,
    });
    for i in 0..12 {
        std::fs::write(host.path().join(format!("srv/f{i:02}")), "x").unwrap();
    }
    let changes = agent.scan_and_print(&prod()).unwrap().changes;
    let pending = agent
        .store
        .queue()
        .pending(&WorkspaceKey::new("fim", "prod"), 100, &|_| false)
        .unwrap();
    assert_eq!(
        pending.len() as u64,
        bound + 1,
        "the bound, plus one Aggregated record"
    );
    let folded = pending
        .last()
        .unwrap()
        .1
        .as_ref()
        .unwrap()
        .spec
        .aggregated
        .clone()
        .unwrap();
    assert_eq!(folded.count, changes - bound);
}

#[test]
fn the_last_applied_configuration_survives_a_restart_and_only_for_its_node() {
    let state = tempfile::tempdir().unwrap();
    assert!(
        cluster::load_last_config(state.path(), "n1").is_none(),
        "a first start has none and waits for the operator"
    );
    let config = AgentConfig::new("n1", vec![prod()]);
    cluster::save_last_config(state.path(), &config).unwrap();
    assert_eq!(
        cluster::load_last_config(state.path(), "n1"),
        Some(config.clone())
    );
    assert!(
        cluster::load_last_config(state.path(), "n2").is_none(),
        "a state directory moved to another node is not trusted"
    );
    std::fs::write(state.path().join(cluster::LAST_CONFIG_FILE), "not: [yaml").unwrap();
    assert!(cluster::load_last_config(state.path(), "n1").is_none());
    // Edited under its revision: its content no longer gives that revision.
    let mut edited = config.clone();
    edited.workspaces[0].entities.clear();
    cluster::save_last_config(state.path(), &edited).unwrap();
    assert!(cluster::revision_mismatch(&edited).is_some());
    assert!(cluster::load_last_config(state.path(), "n1").is_none());
}

/// A ConfigMap whose content was changed by hand (its revision annotation and field kept) is
/// not applied: the current configuration stays.
#[tokio::test]
async fn a_configuration_edited_under_its_revision_is_ignored() {
    let (client, mut handle) = mock();
    let current = AgentConfig::new("n1", vec![prod()]);
    let configs = watching(&client, current.clone());
    let mut edited = current.clone();
    edited.workspaces[0].entities.clear();
    let (_list, send) = next_request(&mut handle).await;
    respond(
        send,
        200,
        json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "7"}, "items": [{
            "metadata": {"name": "kubefim-node-n1", "namespace": "kubefim-system", "resourceVersion": "7"},
            "data": {"agent.yaml": edited.to_yaml().unwrap()},
        }]}),
    );
    let (_watch, _held_open) = next_request(&mut handle).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *configs.borrow(),
        current,
        "the edited configuration was not applied"
    );
}
