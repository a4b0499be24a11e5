//! Render benchmark (issue 6 targets): 5,000 nodes x 100 workspaces x 2,000 entities.
//! A full render revises every node; an incremental one re-renders the workspace of one
//! changed entity and revises the nodes that workspace selects. Run through scripts/bench.sh.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark panics on broken fixtures

use std::{hint::black_box, sync::Arc, time::Instant};

use k8s_openapi::api::core::v1::Node;
use kubefim_crds::{FimWorkspace, MonitoredEntity};
use kubefim_operator::render::RenderIndex;
use serde_json::json;

const NODES: usize = 5_000;
const WORKSPACES: usize = 100;
const ENTITIES: usize = 2_000;
const POOLS: usize = 20;

fn nodes() -> Vec<Arc<Node>> {
    (0..NODES)
        .map(|i| {
            let os = if i.is_multiple_of(50) { "windows" } else { "linux" };
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": format!("node-{i:05}"), "uid": format!("u{i}"),
                    "labels": {"pool": format!("p{}", i % POOLS), "zone": format!("z{}", i % 3), "kubernetes.io/os": os}}}))
                .unwrap(),
            )
        })
        .collect()
}

fn workspaces() -> Vec<Arc<FimWorkspace>> {
    (0..WORKSPACES)
        .map(|i| {
            let selector = if i.is_multiple_of(10) {
                json!({})
            } else {
                json!({"matchLabels": {"pool": format!("p{}", i % POOLS)},
                       "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z9"]}]})
            };
            Arc::new(
                serde_json::from_value(
                    json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "FimWorkspace",
                    "metadata": {"name": format!("ws-{i:03}"), "namespace": "fim", "uid": format!("w{i}")},
                    "spec": {"nodeSelector": selector, "recommended": {"exclude": ["opt-bin"]}}}),
                )
                .unwrap(),
            )
        })
        .collect()
}

fn entity(i: usize, path: &str) -> Arc<MonitoredEntity> {
    let entity_type = ["LinuxFile", "FileContent", "LinuxService", "WindowsFile"][i % 4];
    let path = match entity_type {
        "LinuxService" => format!("app{i}.service"),
        "WindowsFile" => format!("C:\\app{i}\\*"),
        _ => format!("{path}{i}"),
    };
    Arc::new(
        serde_json::from_value(json!({"apiVersion": "kubefim.dev/v1alpha1", "kind": "MonitoredEntity",
            "metadata": {"name": format!("entity-{i:04}"), "namespace": "fim"},
            "spec": {"workspace": format!("ws-{:03}", i % WORKSPACES), "type": entity_type, "path": path, "recursive": i.is_multiple_of(3)}}))
        .unwrap(),
    )
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let nodes = nodes();
    let workspaces = workspaces();
    let mut entities: Vec<Arc<MonitoredEntity>> = (0..ENTITIES).map(|i| entity(i, "/srv/app")).collect();

    let full: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let index = RenderIndex::build(&workspaces, &entities);
            for node in &nodes {
                black_box(index.revision(node));
            }
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();

    let with_yaml: Vec<f64> = (0..2)
        .map(|_| {
            let start = Instant::now();
            let index = RenderIndex::build(&workspaces, &entities);
            for node in &nodes {
                black_box(index.config(node).to_yaml().unwrap());
            }
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();

    let mut index = RenderIndex::build(&workspaces, &entities);
    let mut revised = 0;
    let incremental: Vec<f64> = (0..20)
        .map(|round| {
            let changed = (round * 37) % ENTITIES;
            entities[changed] = entity(changed, &format!("/srv/changed{round}/app"));
            let start = Instant::now();
            let workspace = &workspaces[changed % WORKSPACES];
            index.update_workspace(workspace, &workspaces, &entities);
            let key = ("fim".to_string(), workspace.metadata.name.clone().unwrap());
            let selected = index.nodes_selected_by(&key, &nodes);
            revised = selected.len();
            for node in selected {
                black_box(index.revision(node));
            }
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    // The incremental result must equal a full rebuild: the benchmark measures correct work.
    let rebuilt = RenderIndex::build(&workspaces, &entities);
    assert!(nodes.iter().all(|n| rebuilt.revision(n) == index.revision(n)));

    println!(
        "| render ({NODES} nodes, {WORKSPACES} workspaces, {ENTITIES} entities) | median (ms) | target (ms) |"
    );
    println!("|---|---|---|");
    println!(
        "| full render: every workspace rendered, every node revised | {:.1} | 2000 |",
        median(full)
    );
    println!(
        "| full render with every node's ConfigMap YAML (first start: all written) | {:.1} | – |",
        median(with_yaml)
    );
    println!(
        "| one entity changed: its workspace re-rendered, its {revised} nodes revised | {:.1} | 50 |",
        median(incremental)
    );
    let config = index.config(&nodes[1]);
    println!(
        "\nA node's configuration: {} workspaces, {} entities, {} bytes of YAML.",
        config.workspaces.len(),
        config.workspaces.iter().map(|w| w.entities.len()).sum::<usize>(),
        config.to_yaml().unwrap().len()
    );
}
