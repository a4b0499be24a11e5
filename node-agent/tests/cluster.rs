//! The in-cluster agent's API conversations against a tower-test ApiServerVerifier, with a
//! real host tree and a real store: each scenario asserts method, URI and body.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use http::Method;
use kube::Client;
use kubefim_agent::{
    agent::Agent,
    cluster::{self, RateLimiter},
    hostfs::HostRoot,
    outbox::{ChangeOutbox, OutboxPolicy},
    schedule::ScanDone,
    store::BaselineStore,
};
use kubefim_crds::{AgentConfig, WorkspaceConfig, filechange::change_name};
use kubefim_testkit::{body_of, mock, next_request, nothing_more, respond};
use serde_json::{Value, json};

const FILECHANGES: &str = "/apis/kubefim.dev/v1alpha1/namespaces/fim/filechanges?&fieldManager=kubefim-agent";

fn workspace() -> WorkspaceConfig {
    serde_json::from_value(json!({
        "name": "prod", "namespace": "fim", "uid": "ws-uid",
        "entities": [{"name": "app", "type": "LinuxFile", "path": "/srv", "recursive": true}],
    }))
    .unwrap()
}

struct Node {
    host: tempfile::TempDir,
    state: tempfile::TempDir,
    agent: Agent,
}

impl Node {
    fn new() -> Self {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("srv")).unwrap();
        std::fs::write(host.path().join("srv/app.conf"), "v1\n").unwrap();
        let state = tempfile::tempdir().unwrap();
        let agent = Self::agent(&host, &state);
        Self { host, state, agent }
    }

    fn agent(host: &tempfile::TempDir, state: &tempfile::TempDir) -> Agent {
        let (store, _) = BaselineStore::open(state.path()).unwrap();
        let mut agent = Agent::new("n1", HostRoot::open(host.path()).unwrap(), store);
        agent.outbox = Some(OutboxPolicy {
            node: "n1".into(),
            bound: 100_000,
        });
        agent
    }

    /// Scans in full (silently the first time); returns how many changes were found.
    fn scan(&self) -> u64 {
        self.agent.scan_and_print(&workspace()).unwrap().changes
    }

    fn depth(&self) -> u64 {
        ChangeOutbox {
            store: &self.agent.store,
        }
        .depth()
        .unwrap()
    }

    async fn report(&self, client: &Client, timeout: Duration) -> Result<usize, cluster::ReportError> {
        let mut limiter = RateLimiter::per_second(100_000.0);
        cluster::report_pending(
            client,
            &self.agent.store,
            &mut limiter,
            &self.agent.metrics,
            1000,
            timeout,
        )
        .await
    }
}

fn created(body: &Value) -> Value {
    let mut created = body.clone();
    created["metadata"]["uid"] = json!("server-uid");
    created
}

#[tokio::test]
async fn the_config_watch_then_a_first_baseline_reports_nothing() {
    let (client, mut handle) = mock();
    let config = AgentConfig::new("n1", vec![workspace()]);
    let (sender, mut configs) = tokio::sync::watch::channel(AgentConfig::new("n1", vec![]));
    tokio::spawn(cluster::watch_config(
        client.clone(),
        "kubefim-system".into(),
        "n1".into(),
        sender,
    ));
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
    assert_eq!(node.report(&client, Duration::from_secs(5)).await.unwrap(), 0);
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn one_modification_gives_exactly_one_post_with_its_labels_and_owner() {
    let (client, mut handle) = mock();
    let node = Node::new();
    node.scan();
    std::fs::write(node.host.path().join("srv/app.conf"), "v2, changed\n").unwrap();
    assert_eq!(node.scan(), 1);
    let report = tokio::spawn({
        let client = client.clone();
        async move {
            let result = node
                .report(&client, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string());
            (result, node)
        }
    });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (&Method::POST, FILECHANGES.to_string())
    );
    let body = body_of(request).await;
    respond(send, 201, created(&body));
    let (result, node) = report.await.unwrap();
    assert_eq!(result.unwrap(), 1);
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
                node.report(&client, Duration::from_secs(5))
                    .await
                    .map_err(|e| e.to_string()),
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
    let (result, node) = report.await.unwrap();
    assert_eq!(result.unwrap() as u64, depth);
    assert_eq!(node.depth(), 0);
}

#[tokio::test]
async fn a_500_and_a_timeout_are_retried_under_the_same_name_until_created() {
    let (client, mut handle) = mock();
    let node = Arc::new(Node::new());
    node.scan();
    std::fs::write(node.host.path().join("srv/app.conf"), "v2\n").unwrap();
    node.scan();
    let attempt = |node: Arc<Node>, client: Client| {
        tokio::spawn(async move {
            node.report(&client, Duration::from_millis(300))
                .await
                .map_err(|e| e.to_string())
        })
    };
    let mut names = Vec::new();

    let first = attempt(node.clone(), client.clone());
    let (request, send) = next_request(&mut handle).await;
    names.push(body_of(request).await["metadata"]["name"].clone());
    respond(
        send,
        500,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "InternalError", "code": 500, "metadata": {}}),
    );
    assert!(first.await.unwrap().is_err());
    assert_eq!(node.depth(), 1, "a failed create keeps the change queued");

    let second = attempt(node.clone(), client.clone());
    let (request, _never_answered) = next_request(&mut handle).await;
    names.push(body_of(request).await["metadata"]["name"].clone());
    assert!(second.await.unwrap().unwrap_err().contains("did not answer"));
    assert_eq!(node.depth(), 1);

    let third = attempt(node.clone(), client.clone());
    let (request, send) = next_request(&mut handle).await;
    let body = body_of(request).await;
    names.push(body["metadata"]["name"].clone());
    respond(send, 201, created(&body));
    assert_eq!(third.await.unwrap().unwrap(), 1);
    assert_eq!(node.depth(), 0);
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
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
    let Node { host, state, agent } = node;
    drop(agent);
    let restarted = Node {
        agent: Node::agent(&host, &state),
        host,
        state,
    };
    assert_eq!(restarted.depth(), expected);
    let report = tokio::spawn({
        let client = client.clone();
        async move {
            (
                restarted
                    .report(&client, Duration::from_secs(5))
                    .await
                    .map_err(|e| e.to_string()),
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
    let (result, restarted) = report.await.unwrap();
    assert_eq!(result.unwrap() as u64, expected);
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
                node.report(&client, Duration::from_secs(5))
                    .await
                    .map_err(|e| e.to_string()),
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
    let (result, node) = report.await.unwrap();
    assert_eq!(result.unwrap(), 101);
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
            .with_label_values(&["prod", "app", "Files", "Added"])
            .get(),
        500,
        "metrics count every change"
    );
}

#[tokio::test]
async fn fim_node_status_is_created_then_its_status_applied() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let outcome = node.agent.scan_and_print(&workspace()).unwrap();
    let done = ScanDone {
        workspace: workspace(),
        config_revision: "rev-1".into(),
        outcome,
        realtime: Default::default(),
    };
    let counts = ChangeOutbox {
        store: &node.agent.store,
    }
    .daily_counts("prod", jiff::Timestamp::now())
    .unwrap();
    let status = cluster::node_status(&done, counts, jiff::Timestamp::now());
    let publish = tokio::spawn({
        let (client, status) = (client.clone(), status.clone());
        async move {
            let mut created = BTreeSet::new();
            cluster::publish_node_status(&client, &workspace(), "n1", &status, &mut created)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(created)
        }
    });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (
            &Method::POST,
            "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimnodestatuses?&fieldManager=kubefim-agent"
                .to_string()
        )
    );
    let body = body_of(request).await;
    assert_eq!(body["metadata"]["name"], "prod.n1");
    assert_eq!(body["spec"], json!({"workspace": "prod", "nodeName": "n1"}));
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "ws-uid");
    respond(send, 201, created(&body));

    let (request, send) = next_request(&mut handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (&Method::PATCH, "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimnodestatuses/prod.n1/status?&force=true&fieldManager=kubefim-agent".to_string())
    );
    let patch = body_of(request).await;
    assert_eq!(
        (patch["apiVersion"].as_str(), patch["kind"].as_str()),
        (Some("kubefim.dev/v1alpha1"), Some("FimNodeStatus"))
    );
    assert_eq!(patch["status"]["configRevision"], "rev-1");
    assert_eq!(patch["status"]["filesMonitored"], 2);
    assert_eq!(
        patch["status"]["entities"][0],
        json!({"name": "app", "type": "LinuxFile", "filesMonitored": 2, "state": "Active"})
    );
    assert!(
        patch["status"]["lastHeartbeatTime"].is_string()
            && patch["status"]["lastScan"]["startedAt"].is_string()
    );
    respond(send, 200, created(&body));
    let known = publish.await.unwrap().unwrap();
    assert!(known.contains("prod.n1"));

    // Known to exist: the next publication (a heartbeat) only applies the status.
    let heartbeat = tokio::spawn(async move {
        let mut known = known;
        cluster::publish_node_status(&client, &workspace(), "n1", &status, &mut known)
            .await
            .map_err(|e| e.to_string())
    });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(request.method(), Method::PATCH);
    respond(send, 200, created(&body));
    heartbeat.await.unwrap().unwrap();
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
    let changes = agent.scan_and_print(&workspace()).unwrap().changes;
    let pending = ChangeOutbox { store: &agent.store }.pending(100).unwrap();
    assert_eq!(
        pending.len() as u64,
        bound + 1,
        "the bound, plus one Aggregated record"
    );
    let folded = pending.last().unwrap().1.spec.aggregated.clone().unwrap();
    assert_eq!(folded.count, changes - bound);
}

#[test]
fn the_last_applied_configuration_survives_a_restart_and_only_for_its_node() {
    let state = tempfile::tempdir().unwrap();
    assert!(
        cluster::load_last_config(state.path(), "n1").is_none(),
        "a first start has none and waits for the operator"
    );
    let config = AgentConfig::new("n1", vec![workspace()]);
    cluster::save_last_config(state.path(), &config).unwrap();
    assert_eq!(cluster::load_last_config(state.path(), "n1"), Some(config));
    assert!(
        cluster::load_last_config(state.path(), "n2").is_none(),
        "a state directory moved to another node is not trusted"
    );
    std::fs::write(state.path().join(cluster::LAST_CONFIG_FILE), "not: [yaml").unwrap();
    assert!(cluster::load_last_config(state.path(), "n1").is_none());
}
