//! FimNodeStatus as the in-cluster agent publishes it, against a tower-test
//! ApiServerVerifier with a real host tree and store: created then applied, refreshed soon
//! after a realtime change (counts never wait for the next full scan), created again when it
//! disappeared, and a heartbeat that stops when the scan loop stalls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::node::{Node, created, prod};
use http::Method;
use kube::{
    Client,
    runtime::events::{Recorder, Reporter as EventReporter},
};
use kubefim_agent::{
    cluster::{self, Heartbeat, NodeFacts},
    config::WorkspaceKey,
    realtime::{Signal, Watcher},
    schedule::ScanDone,
};
use kubefim_crds::{AgentConfig, conditions, nodestatus::reasons};
use kubefim_testkit::{Handle, body_of, mock, next_request, nothing_more, respond, status_body};
use serde_json::{Value, json};

const STATUSES: &str = "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimnodestatuses";

fn status_uri() -> String {
    format!("{STATUSES}/prod.n1/status?&force=true&fieldManager=kubefim-agent")
}

fn heartbeat(client: &Client, node: &Node) -> Heartbeat {
    let recorder = Recorder::new(
        client.clone(),
        EventReporter {
            controller: "kubefim-agent".into(),
            instance: Some("n1".into()),
        },
    );
    let mut heartbeat = Heartbeat::new(
        client.clone(),
        node.access(),
        node.agent.metrics.clone(),
        node.agent.changes_seen.clone(),
        recorder,
        "n1",
        100_000,
    );
    // The store generation check has its own tests (baseline_reset.rs).
    heartbeat
        .generation_checked
        .insert(WorkspaceKey::new("fim", "prod"));
    heartbeat
}

fn scan_done(node: &Node) -> ScanDone {
    ScanDone {
        workspace: prod(),
        config_revision: "rev-1".into(),
        outcome: node.agent.scan_and_print(&prod()).unwrap(),
        realtime: Default::default(),
    }
}

/// A heartbeat that has published the node's first scan (its FimNodeStatus created, the
/// status applied), with the body of that status patch.
async fn first_published(client: &Client, node: &Node, handle: &mut Handle) -> (Heartbeat, Value) {
    let mut publisher = heartbeat(client, node);
    let done = scan_done(node);
    let task = tokio::spawn(async move {
        publisher.scanned(done).await;
        publisher
    });
    let patch = expect_create_then_patch(handle).await;
    (task.await.unwrap(), patch)
}

/// Answers the create and the status patch of a first publication; returns the patch body.
async fn expect_create_then_patch(handle: &mut Handle) -> Value {
    let (request, send) = next_request(handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (&Method::POST, format!("{STATUSES}?&fieldManager=kubefim-agent"))
    );
    let body = body_of(request).await;
    assert_eq!(body["metadata"]["name"], "prod.n1");
    assert_eq!(body["spec"], json!({"workspace": "prod", "nodeName": "n1"}));
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "ws-uid");
    respond(send, 201, created(&body));
    expect_patch(handle).await
}

async fn expect_patch(handle: &mut Handle) -> Value {
    let (request, send) = next_request(handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (&Method::PATCH, status_uri())
    );
    let patch = body_of(request).await;
    respond(
        send,
        200,
        json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "FimNodeStatus", "metadata": {"name": "prod.n1", "namespace": "fim"}, "spec": {"workspace": "prod", "nodeName": "n1"}}),
    );
    patch
}

fn condition<'a>(patch: &'a Value, type_: &str) -> &'a Value {
    patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

#[tokio::test]
async fn fim_node_status_is_created_then_its_status_applied() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let (mut publisher, patch) = first_published(&client, &node, &mut handle).await;
    assert_eq!(
        (patch["apiVersion"].as_str(), patch["kind"].as_str()),
        (Some("kubefim.dev/v1alpha1"), Some("FimNodeStatus"))
    );
    let status = &patch["status"];
    assert_eq!(status["configRevision"], "rev-1");
    assert_eq!(status["filesMonitored"], 2);
    assert_eq!(
        status["entities"][0],
        json!({"name": "app", "type": "LinuxFile", "filesMonitored": 2, "state": "Active"})
    );
    assert!(status["lastHeartbeatTime"].is_string() && status["lastScan"]["startedAt"].is_string());
    assert_eq!(status["storeGeneration"].as_str().unwrap().len(), 16);
    assert_eq!(status["reporting"], json!({"queued": 0, "rejected": 0}));
    assert_eq!(condition(&patch, "Ready")["status"], "True");
    assert_eq!(
        (
            condition(&patch, "Degraded")["status"].as_str(),
            condition(&patch, "Degraded")["reason"].as_str()
        ),
        (Some("False"), Some("AsExpected"))
    );

    // Known to exist: a heartbeat only applies the status.
    let config = AgentConfig::new("n1", vec![prod()]);
    let beat = tokio::spawn(async move { publisher.beat(&config).await });
    expect_patch(&mut handle).await;
    beat.await.unwrap();
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn counts_follow_a_realtime_change_without_waiting_for_a_full_scan() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let (mut publisher, first) = first_published(&client, &node, &mut handle).await;
    assert!(
        first["status"].get("changeCounts").is_none(),
        "a silent baseline counts nothing"
    );

    // A realtime rescan of the one file that changed; no full scan follows.
    node.write("/srv/app.conf", "v2, changed\n");
    let watcher = std::sync::Mutex::new(Watcher::new(16).unwrap());
    let mut signal = Signal::default();
    signal.targets.insert(
        (WorkspaceKey::new("fim", "prod"), "app".to_string()),
        BTreeSet::from([b"srv\0app.conf".to_vec()]),
    );
    node.agent
        .realtime_scan(&[prod()], &watcher, signal, None)
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), node.agent.changes_seen.notified())
        .await
        .expect("a realtime change asks for a status refresh");

    let config = AgentConfig::new("n1", vec![prod()]);
    let beat = tokio::spawn(async move { publisher.beat(&config).await });
    let patch = expect_patch(&mut handle).await;
    beat.await.unwrap();
    let status = &patch["status"];
    let today = &status["changeCounts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["byCategory"]["modified"], 1, "{status:#}");
    assert_eq!(today["byType"]["files"], 1);
    assert!(status["entities"][0]["lastChangeTime"].is_string(), "{status:#}");
    assert_eq!(status["reporting"]["queued"], 1, "the change waits in the outbox");
}

#[tokio::test]
async fn a_fim_node_status_that_disappeared_is_created_again() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let (mut publisher, _) = first_published(&client, &node, &mut handle).await;

    // The workspace was deleted and re-created: its FimNodeStatus went with it.
    let config = AgentConfig::new("n1", vec![prod()]);
    let beat = tokio::spawn(async move { publisher.beat(&config).await });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(request.uri().to_string(), status_uri());
    respond(
        send,
        404,
        status_body(
            404,
            "NotFound",
            "fimnodestatuses.kubefim.dev \"prod.n1\" not found",
        ),
    );
    let patch = expect_create_then_patch(&mut handle).await;
    beat.await.unwrap();
    assert_eq!(patch["status"]["configRevision"], "rev-1");
    nothing_more(&mut handle).await;
}

#[tokio::test]
async fn a_workspace_that_left_the_configuration_is_no_longer_published() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let (mut publisher, _) = first_published(&client, &node, &mut handle).await;
    publisher.beat(&AgentConfig::new("n1", vec![])).await;
    nothing_more(&mut handle).await;
}

#[test]
fn the_heartbeat_stops_and_ready_turns_false_when_no_scan_completes_for_two_intervals() {
    let node = Node::new();
    let mut done = scan_done(&node);
    let interval = Duration::from_secs(15 * 60);
    let now = jiff::Timestamp::now();
    done.outcome.started_at = now - jiff::SignedDuration::from_mins(29);
    assert!(cluster::scan_is_fresh(&done, interval, now));
    done.outcome.started_at = now - jiff::SignedDuration::from_mins(31);
    assert!(!cluster::scan_is_fresh(&done, interval, now));

    let last_beat = now - jiff::SignedDuration::from_mins(16);
    let facts = NodeFacts::default();
    let status = cluster::node_status(&done, &facts, Some(last_beat), false, &[], now);
    assert_eq!(
        status.last_heartbeat_time.map(|t| t.0),
        Some(last_beat),
        "the heartbeat keeps the last time the loop made progress"
    );
    let ready = conditions::find(&status.conditions, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reasons::SCAN_STALLED)
    );
}

#[test]
fn degraded_names_every_reason_that_holds_the_most_serious_first() {
    let node = Node::new();
    let mut done = scan_done(&node);
    done.realtime.degraded_reason = Some("watch limit reached".into());
    let now = jiff::Timestamp::now();
    let facts = NodeFacts {
        rejections: kubefim_agent::records::Rejections {
            count: 3,
            last_at: Some(now - jiff::SignedDuration::from_hours(1)),
        },
        outbox_full: true,
        ..Default::default()
    };
    let status = cluster::node_status(&done, &facts, Some(now), true, &[], now);
    let degraded = conditions::find(&status.conditions, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", reasons::REPORTS_REJECTED)
    );
    for reason in [
        reasons::REPORTS_REJECTED,
        reasons::OUTBOX_FULL,
        reasons::REALTIME_DEGRADED,
    ] {
        assert!(degraded.message.contains(reason), "{}", degraded.message);
    }
    assert_eq!(status.reporting.rejected, 3);

    let old = NodeFacts {
        rejections: kubefim_agent::records::Rejections {
            count: 3,
            last_at: Some(now - jiff::SignedDuration::from_hours(25)),
        },
        ..Default::default()
    };
    done.realtime.degraded_reason = None;
    let status = cluster::node_status(&done, &old, Some(now), true, &[], now);
    assert_eq!(
        conditions::find(&status.conditions, "Degraded").unwrap().status,
        "False",
        "a refusal older than a day no longer degrades"
    );
    assert_eq!(status.reporting.rejected, 3, "but it stays counted");
}

#[tokio::test]
async fn an_accepted_baseline_settles_a_reset() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let key = WorkspaceKey::new("fim", "prod");
    let reset = kubefim_agent::records::BaselineReset {
        previous_generation: "0123456789abcdef".into(),
        detected_at: jiff::Timestamp::now(),
        baseline_revision: String::new(),
    };
    node.agent.store.set_reset(&key, Some(&reset)).unwrap();
    let (mut publisher, patch) = first_published(&client, &node, &mut handle).await;
    assert_eq!(condition(&patch, "Degraded")["reason"], reasons::BASELINE_RESET);

    // kubectl fim baseline accept: a new baseline.revision reaches the node.
    let mut accepted = prod();
    accepted.baseline_revision = "2".into();
    let done = ScanDone {
        workspace: accepted.clone(),
        config_revision: "rev-2".into(),
        outcome: node.agent.scan_and_print(&accepted).unwrap(),
        realtime: Default::default(),
    };
    let task = tokio::spawn(async move {
        publisher.scanned(done).await;
        publisher
    });
    let patch = expect_patch(&mut handle).await;
    let publisher = task.await.unwrap();
    assert_eq!(condition(&patch, "Degraded")["status"], "False", "{patch:#}");
    // Cleared through the store's writer, which never holds up the status.
    publisher.access.flush().await;
    assert!(node.agent.store.resets().unwrap().is_empty());
}

#[tokio::test]
async fn an_accept_reports_what_it_accepted_with_a_normal_event_and_nothing_more() {
    let (client, mut handle) = mock();
    let node = Node::new();
    let (mut publisher, _) = first_published(&client, &node, &mut handle).await;

    // Realtime off; the file changes, then kubectl fim baseline accept lands before a scan.
    node.write("/srv/app.conf", "changed before the accept\n");
    let mut accepted = prod();
    accepted.baseline_revision = "2".into();
    let outcome = node.agent.scan_and_print(&accepted).unwrap();
    assert_eq!((outcome.changes, outcome.accepted), (1, 1));

    // The accepted change goes to the API server as a FileChange that says so.
    let report = tokio::spawn({
        let (node_client, agent, access) = (client.clone(), node.agent.clone(), node.access());
        async move {
            let mut reporter = cluster::Reporter::new(
                node_client,
                cluster::RateLimiter::per_second(100_000.0),
                1000,
                Duration::from_secs(5),
            );
            let pass = reporter.pass(&access, &agent.metrics).await.unwrap();
            access.flush().await;
            pass
        }
    });
    let (request, send) = next_request(&mut handle).await;
    assert_eq!(request.method(), Method::POST);
    let body = body_of(request).await;
    assert_eq!(body["spec"]["path"], "/srv/app.conf");
    assert_eq!(
        body["spec"]["attribution"],
        json!({"kind": "BaselineAccepted", "revision": "2", "digestVerified": false})
    );
    respond(send, 201, created(&body));
    assert_eq!(report.await.unwrap().acknowledged, 1);

    // The workspace hears of it once, in a Normal Event with the count.
    let done = ScanDone {
        workspace: accepted.clone(),
        config_revision: "rev-2".into(),
        outcome,
        realtime: Default::default(),
    };
    let task = tokio::spawn(async move { publisher.scanned(done).await });
    let (request, send) = next_request(&mut handle).await;
    assert!(
        request
            .uri()
            .to_string()
            .starts_with("/apis/events.k8s.io/v1/namespaces/fim/events"),
        "{}",
        request.uri()
    );
    let event = body_of(request).await;
    respond(send, 201, event.clone());
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("Normal"), Some("BaselineAccepted"))
    );
    assert_eq!(event["regarding"]["kind"], "FimWorkspace");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.contains("node n1") && note.contains("revision 2") && note.contains("accepted 1 difference"),
        "{note}"
    );
    expect_patch(&mut handle).await;
    task.await.unwrap();

    // Nothing more on the next scan.
    assert_eq!(node.agent.scan_and_print(&accepted).unwrap().changes, 0);
    nothing_more(&mut handle).await;
}
