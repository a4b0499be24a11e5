//! Retention at scale (issue 15): how long the operator's retention pass takes over 100,000
//! FileChanges of one workspace on a real API server, once with nothing to delete (the
//! paginated metadata-only listing) and once deleting 90,000 of them (`retention.maxChanges`
//! 10,000). A benchmark, ignored by default; `scripts/bench.sh cluster-retention` runs it.

use std::time::Instant;

use futures::StreamExt;
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};
use kubefim_crds::{FileChange, FimWorkspace, keys};
use kubefim_e2e::Env;
use kubefim_operator::retention;
use serde_json::json;

const CHANGES: usize = 100_000;
const KEPT: usize = 10_000;
const NODES: usize = 10;

fn workspace(namespace: &str, max_changes: usize) -> FimWorkspace {
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace",
        "metadata": {"name": "ws", "namespace": namespace},
        "spec": {"retention": {"maxAge": "30d", "maxChangesPerNode": 100000, "maxChanges": max_changes}}
    }))
    .unwrap()
}

fn change(namespace: &str, i: usize) -> FileChange {
    let node = format!("node-{}", i % NODES);
    serde_json::from_value(json!({
        "apiVersion": "kubefim.dev/v1alpha1", "kind": "FileChange",
        "metadata": {"name": format!("fc-bench-{i:06}"), "namespace": namespace,
            "labels": {keys::LABEL_WORKSPACE: "ws", keys::LABEL_NODE: node}},
        "spec": {"workspace": "ws", "entity": "app", "nodeName": node, "type": "Files", "category": "Modified",
            "path": format!("/srv/app/f{i}"), "detectedAt": "2026-11-25T12:00:00Z", "source": "Scan",
            "changedAttributes": ["content"], "contentDiffTruncated": false}
    }))
    .unwrap()
}

#[tokio::test]
#[ignore = "a benchmark: scripts/bench.sh cluster-retention runs it"]
async fn retention_over_100000_filechanges() {
    let env = Env::new("retention").await;
    let api: Api<FileChange> = Api::namespaced(env.client.clone(), &env.namespace);
    let started = Instant::now();
    let created = futures::stream::iter(0..CHANGES)
        .map(|i| {
            let (api, change) = (api.clone(), change(&env.namespace, i));
            async move { api.create(&PostParams::default(), &change).await.is_ok() }
        })
        .buffer_unordered(32)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let creating = started.elapsed();
    assert_eq!(created, CHANGES, "every FileChange is created");

    let now = jiff::Timestamp::now();
    let started = Instant::now();
    let none = retention::sweep(&env.client, &workspace(&env.namespace, CHANGES), now)
        .await
        .unwrap();
    let listing = started.elapsed();
    assert_eq!(none, 0, "within every limit, nothing goes");

    let started = Instant::now();
    let deleted = retention::sweep(&env.client, &workspace(&env.namespace, KEPT), now)
        .await
        .unwrap();
    let deleting = started.elapsed();
    assert_eq!(deleted as usize, CHANGES - KEPT);
    let left = api
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(left, KEPT, "the newest maxChanges are kept");

    println!("\n| retention of one workspace, real API server | FileChanges | wall (s) |");
    println!("|---|---|---|");
    println!(
        "| creating them (32 creates in flight, for reference) | {CHANGES} | {:.1} |",
        creating.as_secs_f64()
    );
    println!(
        "| retention pass, nothing to delete (metadata pages of 500) | {CHANGES} | {:.1} |",
        listing.as_secs_f64()
    );
    println!(
        "| retention pass, `maxChanges` {KEPT}: {} deleted (16 deletes in flight) | {CHANGES} | {:.1} |",
        CHANGES - KEPT,
        deleting.as_secs_f64()
    );
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
}
