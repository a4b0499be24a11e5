//! The end-to-end suite (issue 9): against the cluster KUBECONFIG names, through
//! scripts/e2e.sh, one test at a time, each in its own namespace with Node objects it creates
//! and the operator and agents running as local processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step fails the test

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use kubefim_crds::{
    AgentConfig, ChangeCategory, FileChange, FimNodeStatus, FimWorkspace, MonitoredEntity, keys,
};
use kubefim_e2e::{Env, binary, eventually, kubectl, unreachable_kubeconfig};

const SLOW: Duration = Duration::from_secs(90);

fn workspace_yaml(env: &Env, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {{name: {name}}}\nspec:\n  nodeSelector: {{matchLabels: {{{}: {}}}}}\n  recommended: {{enabled: false}}\n{extra}",
        env.node_label.0, env.node_label.1
    )
}

fn entity_yaml(name: &str, workspace: &str, entity_type: &str, path: &str, recursive: bool) -> String {
    format!(
        "apiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: {name}}}\nspec: {{workspace: {workspace}, type: {entity_type}, path: {path}, recursive: {recursive}}}\n"
    )
}

fn apply_ok(env: &Env, yaml: &str) {
    let output = env.apply(yaml);
    assert!(
        output.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn node_config(env: &Env, node: &str) -> Option<(ConfigMap, AgentConfig)> {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let cm = api.get_opt(&keys::node_config_map_name(node)).await.ok()??;
    let config = AgentConfig::from_yaml(cm.data.as_ref()?.get(keys::CONFIG_KEY)?).ok()?;
    Some((cm, config))
}

async fn changes(env: &Env, node: &str) -> Vec<FileChange> {
    let api: Api<FileChange> = Api::namespaced(env.client.clone(), &env.namespace);
    api.list(&ListParams::default().labels(&format!("{}={node}", keys::LABEL_NODE)))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

async fn change_at(env: &Env, node: &str, path: &str, category: ChangeCategory) -> Option<FileChange> {
    changes(env, node)
        .await
        .into_iter()
        .find(|c| c.spec.path == path && c.spec.category == category)
}

async fn node_status(env: &Env, workspace: &str, node: &str) -> Option<FimNodeStatus> {
    let api: Api<FimNodeStatus> = Api::namespaced(env.client.clone(), &env.namespace);
    api.get_opt(&keys::node_status_name(workspace, node))
        .await
        .ok()?
        .filter(|s| s.status.as_ref().is_some_and(|s| s.last_scan.is_some()))
}

/// A workspace monitoring /srv/app (recursive) and /etc/hosts (content), one node with an agent,
/// the operator, and the first (silent) scan done.
async fn monitored_node(test: &str, workspace_extra: &str) -> (Env, String) {
    let mut env = Env::new(test).await;
    let node = env.create_node("node").await;
    env.start_operator();
    apply_ok(&env, &workspace_yaml(&env, "ws", workspace_extra));
    apply_ok(&env, &entity_yaml("app", "ws", "LinuxFile", "/srv/app", true));
    apply_ok(
        &env,
        &entity_yaml("hosts", "ws", "FileContent", "/etc/hosts", false),
    );
    env.host_root(&node);
    std::fs::write(
        env.dir.path().join("hosts").join(&node).join("srv/app/old.txt"),
        "old\n",
    )
    .unwrap();
    eventually(SLOW, "the node's configuration", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces.iter().any(|w| w.entities.len() == 2))
    })
    .await;
    env.start_agent(&node, None);
    eventually(SLOW, "the first scan", || node_status(&env, "ws", &node)).await;
    (env, node)
}

fn host_path(env: &Env, node: &str, path: &str) -> std::path::PathBuf {
    env.dir
        .path()
        .join("hosts")
        .join(node)
        .join(path.trim_start_matches('/'))
}

#[tokio::test]
async fn a_workspace_with_recommended_items_and_a_custom_entity_renders_the_node_configmap() {
    let mut env = Env::new("render").await;
    let node = env.create_node("node").await;
    env.start_operator();
    let extra = "  scan: {interval: 5m}\n";
    apply_ok(
        &env,
        &workspace_yaml(&env, "ws", extra).replace(
            "recommended: {enabled: false}",
            "recommended: {enabled: true, exclude: [usr-bin]}",
        ),
    );
    apply_ok(&env, &entity_yaml("app", "ws", "LinuxFile", "/srv/app", true));
    let (cm, config) = eventually(SLOW, "the node's ConfigMap", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces.len() == 1)
    })
    .await;
    let names: Vec<&str> = config.workspaces[0]
        .entities
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        names.contains(&"recommended.ssh") && names.contains(&"app"),
        "{names:?}"
    );
    assert!(!names.contains(&"recommended.usr-bin"), "excluded items stay out");
    assert_eq!(config.workspaces[0].scan.interval, "5m");
    assert_eq!(
        cm.annotations().get(keys::ANNOTATION_REVISION),
        Some(&config.revision)
    );
    let owner = &cm.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", node.as_str())
    );
}

#[tokio::test]
async fn the_first_scan_reports_nothing_then_changes_come_with_fields_labels_and_owner() {
    let (env, node) = monitored_node("changes", "").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        changes(&env, &node).await.is_empty(),
        "a first scan builds the baseline silently"
    );

    std::fs::write(host_path(&env, &node, "/srv/app/new.conf"), "new\n").unwrap();
    std::fs::write(host_path(&env, &node, "/srv/app/config.yaml"), "replicas: 3\n").unwrap();
    std::fs::remove_file(host_path(&env, &node, "/srv/app/old.txt")).unwrap();
    let added = eventually(SLOW, "Added", || {
        change_at(&env, &node, "/srv/app/new.conf", ChangeCategory::Added)
    })
    .await;
    let modified = eventually(SLOW, "Modified", || {
        change_at(&env, &node, "/srv/app/config.yaml", ChangeCategory::Modified)
    })
    .await;
    eventually(SLOW, "Removed", || {
        change_at(&env, &node, "/srv/app/old.txt", ChangeCategory::Removed)
    })
    .await;

    let workspace = Api::<FimWorkspace>::namespaced(env.client.clone(), &env.namespace)
        .get("ws")
        .await
        .unwrap();
    for change in [&added, &modified] {
        let labels = change.labels();
        assert_eq!(labels.get(keys::LABEL_WORKSPACE).map(String::as_str), Some("ws"));
        assert_eq!(labels.get(keys::LABEL_NODE), Some(&node));
        assert_eq!(labels.get(keys::LABEL_ENTITY).map(String::as_str), Some("app"));
        assert_eq!(labels.get(keys::LABEL_TYPE).map(String::as_str), Some("Files"));
        let owner = &change.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("FimWorkspace", workspace.uid().unwrap().as_str())
        );
    }
    assert!(modified.spec.previous.is_some() && modified.spec.current.is_some());
    assert!(
        modified
            .spec
            .changed_attributes
            .contains(&kubefim_crds::filechange::ChangedAttribute::Content)
    );
    // The server answers field selectors on FileChange.
    let selected = kubectl(
        &[
            "get",
            "fc",
            "-n",
            &env.namespace,
            "--field-selector",
            &format!("spec.nodeName={node},spec.category=Added"),
            "-o",
            "name",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&selected.stdout).contains(&added.name_any()));
}

#[tokio::test]
async fn a_file_content_change_carries_its_diff() {
    let (env, node) = monitored_node("content", "").await;
    std::fs::write(
        host_path(&env, &node, "/etc/hosts"),
        "127.0.0.1 localhost\n10.6.6.6 bank.example\n",
    )
    .unwrap();
    let change = eventually(SLOW, "the FileContent change", || {
        change_at(&env, &node, "/etc/hosts", ChangeCategory::Modified)
    })
    .await;
    assert_eq!(change.spec.change_type, kubefim_crds::ChangeType::FileContent);
    assert!(
        change
            .spec
            .content_diff
            .unwrap()
            .contains("+10.6.6.6 bank.example")
    );
}

#[tokio::test]
async fn a_realtime_change_is_visible_within_two_seconds() {
    let (env, node) = monitored_node("realtime", "").await;
    let started = std::time::Instant::now();
    std::fs::write(host_path(&env, &node, "/srv/app/fast"), "x").unwrap();
    let change = eventually(Duration::from_secs(10), "the realtime change", || {
        change_at(&env, &node, "/srv/app/fast", ChangeCategory::Added)
    })
    .await;
    let elapsed = started.elapsed();
    assert_eq!(change.spec.source, kubefim_crds::ChangeSource::Realtime);
    assert!(elapsed <= Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn node_workspace_and_entity_status_are_counted() {
    let (env, node) = monitored_node("status", "").await;
    std::fs::write(host_path(&env, &node, "/srv/app/counted"), "x").unwrap();
    eventually(SLOW, "the change", || {
        change_at(&env, &node, "/srv/app/counted", ChangeCategory::Added)
    })
    .await;
    let report = eventually(SLOW, "the node's counts", || async {
        node_status(&env, "ws", &node).await.filter(|s| {
            s.status
                .as_ref()
                .unwrap()
                .change_counts
                .iter()
                .any(|c| c.by_category.added >= 1)
        })
    })
    .await;
    let status = report.status.unwrap();
    assert_eq!(status.entities.len(), 2);
    assert!(status.files_monitored >= 3);
    let workspaces: Api<FimWorkspace> = Api::namespaced(env.client.clone(), &env.namespace);
    let ws = eventually(SLOW, "the workspace status", || async {
        workspaces.get("ws").await.ok().filter(|w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.nodes_reporting == 1 && s.changes.last_7d >= 1)
        })
    })
    .await;
    let status = ws.status.unwrap();
    assert_eq!((status.nodes_selected, status.entities_active), (1, 2));
    let entities: Api<MonitoredEntity> = Api::namespaced(env.client.clone(), &env.namespace);
    eventually(SLOW, "the entity status", || async {
        entities.get("app").await.ok().filter(|e| {
            e.status
                .as_ref()
                .is_some_and(|s| s.nodes_active == 1 && s.files_monitored >= 2)
        })
    })
    .await;
}

#[tokio::test]
async fn a_disabled_entity_leaves_the_node_config_and_reports_nothing_more() {
    let (env, node) = monitored_node("disabled-entity", "").await;
    let entities: Api<MonitoredEntity> = Api::namespaced(env.client.clone(), &env.namespace);
    entities
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"enabled": false}})),
        )
        .await
        .unwrap();
    eventually(SLOW, "the entity to leave the config", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces[0].entities.iter().all(|e| e.name != "app"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::write(host_path(&env, &node, "/srv/app/ignored"), "x").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        change_at(&env, &node, "/srv/app/ignored", ChangeCategory::Added)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_disabled_workspace_empties_the_configs_and_a_deleted_one_takes_its_history() {
    let (env, node) = monitored_node("disabled-workspace", "").await;
    std::fs::write(host_path(&env, &node, "/srv/app/history"), "x").unwrap();
    eventually(SLOW, "a change", || {
        change_at(&env, &node, "/srv/app/history", ChangeCategory::Added)
    })
    .await;
    let workspaces: Api<FimWorkspace> = Api::namespaced(env.client.clone(), &env.namespace);
    workspaces
        .patch(
            "ws",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"enabled": false}})),
        )
        .await
        .unwrap();
    eventually(SLOW, "an empty configuration", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces.is_empty())
    })
    .await;
    assert!(
        !changes(&env, &node).await.is_empty(),
        "disabling keeps the history"
    );
    workspaces.delete("ws", &Default::default()).await.unwrap();
    eventually(SLOW, "the history to go with the workspace", || async {
        changes(&env, &node).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn retention_deletes_changes_beyond_the_per_node_limit() {
    let (env, node) = monitored_node("retention", "  retention: {maxAge: 14d, maxChangesPerNode: 1}\n").await;
    for name in ["r1", "r2", "r3"] {
        let path = format!("/srv/app/{name}");
        std::fs::write(host_path(&env, &node, &path), "x").unwrap();
        eventually(SLOW, name, || {
            change_at(&env, &node, &path, ChangeCategory::Added)
        })
        .await;
    }
    eventually(SLOW, "retention to keep one change", || async {
        (changes(&env, &node).await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_burst_gives_an_aggregated_change_accounting_for_every_change() {
    let (env, node) = monitored_node("burst", "  reporting: {maxChangesPerScan: 5}\n").await;
    for i in 0..40 {
        std::fs::write(host_path(&env, &node, &format!("/srv/app/burst{i:02}")), "x").unwrap();
    }
    let all = eventually(SLOW, "every burst change accounted for", || async {
        let all = changes(&env, &node).await;
        let accounted: u64 = all
            .iter()
            .map(|c| {
                c.spec
                    .aggregated
                    .as_ref()
                    .map_or(u64::from(c.spec.path.contains("burst")), |a| a.count)
            })
            .sum();
        (accounted >= 40).then_some(all)
    })
    .await;
    assert!(all.iter().any(|c| c.spec.category == ChangeCategory::Aggregated));
}

#[tokio::test]
async fn an_agent_restarted_while_the_api_server_is_unreachable_loses_no_change() {
    let (mut env, node) = monitored_node("outage", "").await;
    // The agent is the last process started by monitored_node.
    env.stop(1);
    std::fs::write(host_path(&env, &node, "/srv/app/during-outage"), "x").unwrap();
    let kubeconfig = std::env::var("KUBECONFIG").expect("scripts/e2e.sh sets KUBECONFIG");
    let unreachable = env.dir.path().join("unreachable.kubeconfig");
    std::fs::write(
        &unreachable,
        unreachable_kubeconfig(&std::fs::read_to_string(&kubeconfig).unwrap()),
    )
    .unwrap();
    let offline = env.start_agent(&node, Some(&unreachable));
    tokio::time::sleep(Duration::from_secs(8)).await;
    env.stop(offline);
    assert!(
        change_at(&env, &node, "/srv/app/during-outage", ChangeCategory::Added)
            .await
            .is_none()
    );
    env.start_agent(&node, None);
    eventually(SLOW, "the change queued during the outage", || {
        change_at(&env, &node, "/srv/app/during-outage", ChangeCategory::Added)
    })
    .await;
}

#[tokio::test]
async fn invalid_entities_are_refused_at_admission_with_the_expected_messages() {
    let env = Env::new("cel").await;
    apply_ok(&env, &workspace_yaml(&env, "ws", ""));
    for (path, entity_type, message) in [
        ("/etc/*/passwd", "LinuxFile", "wildcard before its last segment"),
        ("/", "LinuxFile", "too general"),
        ("etc/passwd", "LinuxFile", "is not absolute"),
        ("'C:\\*.*'", "WindowsFile", "too general"),
        ("/etc/../shadow", "LinuxFile", "contains a .. segment"),
    ] {
        let output = env.apply(&entity_yaml("bad", "ws", entity_type, path, false));
        assert!(!output.status.success(), "{path} was admitted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{path}: {stderr}");
    }
    apply_ok(
        &env,
        &entity_yaml("good", "ws", "LinuxFile", "/etc/*.conf", false),
    );
    apply_ok(
        &env,
        &entity_yaml("variable", "ws", "LinuxFile", "$HOME/.ssh", false),
    );
}

#[tokio::test]
async fn the_admission_policy_refuses_an_agent_writing_another_nodes_filechange() {
    let mut env = Env::new("admission").await;
    let (own, other) = (env.create_node("own").await, env.create_node("other").await);
    let mut config = kube::Config::infer().await.unwrap();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{}:kubefim-agent", env.namespace));
    config.auth_info.impersonate_user_extra = Some(std::collections::HashMap::from([(
        "authentication.kubernetes.io/node-name".to_string(),
        vec![own.clone()],
    )]));
    let agent = Client::try_from(config).unwrap();
    let api: Api<FileChange> = Api::namespaced(agent, &env.namespace);
    let change = |node: &str| -> FileChange {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubefim.dev/v1alpha1", "kind": "FileChange",
            "metadata": {"name": format!("fc-{node}"), "labels": {"kubefim.dev/node": node}},
            "spec": {"workspace": "ws", "entity": "app", "nodeName": node, "type": "Files", "category": "Added",
                     "path": "/etc/x", "detectedAt": "2026-11-25T00:00:00Z", "source": "Scan"},
        }))
        .unwrap()
    };
    let refused = api
        .create(&PostParams::default(), &change(&other))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("only write objects of its own node"),
        "{refused}"
    );
    api.create(&PostParams::default(), &change(&own))
        .await
        .expect("an agent writes its own node's changes");
}

#[tokio::test]
async fn kubectl_fim_reads_the_data_produced() {
    let (env, node) = monitored_node("plugin", "").await;
    std::fs::write(host_path(&env, &node, "/srv/app/plugin"), "x").unwrap();
    eventually(SLOW, "a change", || {
        change_at(&env, &node, "/srv/app/plugin", ChangeCategory::Added)
    })
    .await;
    let fim = |args: &[&str]| {
        let output = std::process::Command::new(binary("kubectl-fim"))
            .args(args)
            .args(["-n", &env.namespace])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl fim {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let status = eventually(SLOW, "the dashboard to show the node", || async {
        let text = fim(&["status", "ws"]);
        text.contains("Machines reporting   1/1").then_some(text)
    })
    .await;
    assert!(status.contains("Workspace ws"), "{status}");
    let csv = fim(&["changes", "--since", "1d", "-o", "csv"]);
    assert!(
        csv.starts_with("detectedAt,node,") && csv.contains("/srv/app/plugin"),
        "{csv}"
    );
    let summary = fim(&["changes", "--summarize-by", "node,type"]);
    assert!(summary.contains(&node), "{summary}");
    assert!(fim(&["nodes", "ws"]).contains(&node));
    let counts: BTreeMap<&str, usize> = BTreeMap::from([(
        "recommended",
        fim(&["entities", "ws"]).matches("recommended").count(),
    )]);
    assert!(counts["recommended"] > 10);
}
