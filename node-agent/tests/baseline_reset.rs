//! A lost baseline is a finding: the store deleted, corrupted or replaced while the agent was
//! stopped gives BaselineReset (recorded, counted, announced by an Event, and Degraded in the
//! next FimNodeStatus) before any new baseline is built, and what the old file still had
//! queued is not lost where redb can read it. Against a tower-test ApiServerVerifier with real
//! host trees and stores.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::time::Duration;

use common::node::{Node, prod};
use http::Method;
use kube::{
    Client,
    runtime::events::{Recorder, Reporter as EventReporter},
};
use kubefim_agent::{
    cluster::{self, NodeFacts},
    config::WorkspaceKey,
    store::{FILE_NAME, OpenOutcome},
};
use kubefim_crds::{conditions, nodestatus::reasons};
use kubefim_testkit::{Handle, body_of, mock, next_request, nothing_more, respond, status_body};
use serde_json::json;

fn recorder(client: &Client) -> Recorder {
    Recorder::new(
        client.clone(),
        EventReporter {
            controller: "kubefim-agent".into(),
            instance: Some("n1".into()),
        },
    )
}

/// Answers the GET of this node's FimNodeStatus of fim/prod with `generation` (404 for None).
async fn answer_status(handle: &mut Handle, generation: Option<&str>) {
    let (request, send) = next_request(handle).await;
    assert_eq!(
        (request.method(), request.uri().to_string()),
        (
            &Method::GET,
            "/apis/kubefim.dev/v1alpha1/namespaces/fim/fimnodestatuses/prod.n1".to_string()
        )
    );
    match generation {
        Some(generation) => respond(
            send,
            200,
            json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "FimNodeStatus",
                "metadata": {"name": "prod.n1", "namespace": "fim"},
                "spec": {"workspace": "prod", "nodeName": "n1"},
                "status": {"storeGeneration": generation}}),
        ),
        None => respond(send, 404, status_body(404, "NotFound", "not found")),
    }
}

/// Runs the check the agent makes at start-up and answers it with what the cluster knew.
async fn check(node: &Node, known_generation: Option<&str>) -> Vec<serde_json::Value> {
    let (client, mut handle) = mock();
    let recorder = recorder(&client);
    let (access, metrics) = (node.access(), node.agent.metrics.clone());
    let task = tokio::spawn(async move {
        cluster::check_baseline_reset(&client, &access, &metrics, &recorder, "n1", &[prod()]).await
    });
    answer_status(&mut handle, known_generation).await;
    let mut events = Vec::new();
    while let Ok(Some((request, send))) =
        tokio::time::timeout(Duration::from_millis(500), handle.next_request()).await
    {
        assert_eq!(request.method(), Method::POST, "{}", request.uri());
        assert!(
            request
                .uri()
                .to_string()
                .starts_with("/apis/events.k8s.io/v1/namespaces/fim/events")
        );
        let body = body_of(request).await;
        respond(send, 201, body.clone());
        events.push(body);
    }
    task.await.unwrap().unwrap();
    nothing_more(&mut handle).await;
    events
}

/// A node that baselined fim/prod and has one change queued, and the generation the cluster
/// learned from its FimNodeStatus.
fn reported_node() -> (Node, String) {
    let node = Node::new();
    node.scan();
    node.write("/srv/app.conf", "v2\n");
    assert_eq!(node.scan(), 1, "/srv/app.conf modified");
    let generation = node.agent.store.generation().to_string();
    (node, generation)
}

async fn assert_reset(node: &Node, previous: &str, events: &[serde_json::Value]) {
    let resets = node.agent.store.resets().unwrap();
    let reset = resets
        .get(&WorkspaceKey::new("fim", "prod"))
        .expect("a reset is recorded");
    assert_eq!(reset.previous_generation, previous);
    assert_ne!(node.agent.store.generation(), previous);
    assert_eq!(node.agent.metrics.baseline_resets_total.get(), 1);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        (events[0]["type"].as_str(), events[0]["reason"].as_str()),
        (Some("Warning"), Some("BaselineReset"))
    );
    assert_eq!(events[0]["regarding"]["kind"], "FimWorkspace");
    assert!(events[0]["note"].as_str().unwrap().contains(previous));
    // The next FimNodeStatus says so, until a baseline is accepted.
    let facts = NodeFacts::gather(
        &node.access(),
        &WorkspaceKey::new("fim", "prod"),
        1000,
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    let done = kubefim_agent::schedule::ScanDone {
        workspace: prod(),
        config_revision: "r".into(),
        outcome: node.agent.scan_and_print(&prod()).unwrap(),
        realtime: Default::default(),
    };
    let status = cluster::node_status(&done, &facts, None, true, &[], jiff::Timestamp::now());
    let degraded = conditions::find(&status.conditions, "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", reasons::BASELINE_RESET)
    );
    assert_eq!(status.store_generation, node.agent.store.generation());
}

#[tokio::test]
async fn an_unchanged_store_or_a_first_report_is_no_reset() {
    let (node, generation) = reported_node();
    assert!(check(&node, Some(&generation)).await.is_empty());
    assert!(check(&node, None).await.is_empty());
    assert!(node.agent.store.resets().unwrap().is_empty());
    assert_eq!(node.agent.metrics.baseline_resets_total.get(), 0);
}

#[tokio::test]
async fn a_deleted_store_is_a_baseline_reset() {
    let (node, generation) = reported_node();
    let Node { host, state, agent } = node;
    drop(agent);
    std::fs::remove_file(state.path().join(FILE_NAME)).unwrap();
    let node = Node {
        agent: std::sync::Arc::new(Node::agent(&host, &state)),
        host,
        state,
    };
    let events = check(&node, Some(&generation)).await;
    assert_reset(&node, &generation, &events).await;
    assert_eq!(
        check(&node, Some(&generation)).await.len(),
        0,
        "a reset is announced once"
    );
}

#[tokio::test]
async fn a_store_redb_can_still_read_is_drained_before_it_is_moved_aside() {
    let (node, generation) = reported_node();
    let queued = node.depth();
    let Node { host, state, agent } = node;
    drop(agent);
    {
        // Damaged so that the agent cannot use it, but redb can still read it.
        let db = redb::Database::open(state.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("format", b"kubefim-baseline/99".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let (store, opened) = kubefim_agent::store::BaselineStore::open(state.path()).unwrap();
    assert!(
        matches!(opened, OpenOutcome::Rebuilt { salvaged, .. } if salvaged as u64 == queued),
        "{opened:?}"
    );
    drop(store);
    let node = Node {
        agent: std::sync::Arc::new(Node::agent(&host, &state)),
        host,
        state,
    };
    assert_eq!(node.depth(), queued, "no queued change is lost");
    let events = check(&node, Some(&generation)).await;
    assert_reset(&node, &generation, &events).await;
}

#[tokio::test]
async fn a_corrupted_store_is_a_baseline_reset() {
    let (node, generation) = reported_node();
    let Node { host, state, agent } = node;
    drop(agent);
    let path = state.path().join(FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    for byte in bytes.iter_mut().take(4096) {
        *byte = 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
    let node = Node {
        agent: std::sync::Arc::new(Node::agent(&host, &state)),
        host,
        state,
    };
    let events = check(&node, Some(&generation)).await;
    assert_reset(&node, &generation, &events).await;
}

#[tokio::test]
async fn a_store_replaced_by_another_one_is_a_baseline_reset() {
    let (node, generation) = reported_node();
    let elsewhere = Node::new();
    elsewhere.scan();
    let Node { host, state, agent } = node;
    drop(agent);
    let Node {
        state: other_state,
        agent: other_agent,
        ..
    } = elsewhere;
    drop(other_agent);
    std::fs::copy(other_state.path().join(FILE_NAME), state.path().join(FILE_NAME)).unwrap();
    let node = Node {
        agent: std::sync::Arc::new(Node::agent(&host, &state)),
        host,
        state,
    };
    let events = check(&node, Some(&generation)).await;
    assert_reset(&node, &generation, &events).await;
}
