//! Status: what FimNodeStatus, FimWorkspace and MonitoredEntity say, from the agents' reports.

use kube::Api;
use kubefim_crds::{ChangeCategory, FimWorkspace, MonitoredEntity};
use kubefim_e2e::{eventually, scenario::*};

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
async fn a_node_that_runs_no_agent_is_unsupported_and_never_holds_readiness_back() {
    let mut env = kubefim_e2e::Env::new("unsupported").await;
    let linux = env.create_node("linux").await;
    let windows = env.create_node("windows").await;
    kubefim_e2e::kubectl_ok(
        &[
            "label",
            "node",
            &windows,
            "kubernetes.io/os=windows",
            "--overwrite",
        ],
        None,
    );
    env.start_operator(&[]);
    // Recommended items on: entitiesActive counts them, from the agent's report.
    apply_ok(
        &env,
        &workspace_yaml(&env, "ws", "")
            .replace("recommended: {enabled: false}", "recommended: {enabled: true}"),
    );
    apply_ok(
        &env,
        &entity_yaml(
            "registry",
            "ws",
            "WindowsRegistry",
            "'HKLM\\SOFTWARE\\App'",
            false,
        ),
    );
    eventually(SLOW, "the Linux node's configuration", || async {
        node_config(&env, &linux)
            .await
            .filter(|(_, c)| c.workspaces.len() == 1)
    })
    .await;
    env.start_agent(&linux, None, &[]);
    let workspaces: Api<FimWorkspace> = Api::namespaced(env.client.clone(), &env.namespace);
    let ws = eventually(
        SLOW,
        "the workspace to be Ready with one node unsupported",
        || async {
            workspaces.get("ws").await.ok().filter(|w| {
                w.status.as_ref().is_some_and(|s| {
                    s.nodes_unsupported == 1
                        && s.nodes_reporting == 1
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
        },
    )
    .await;
    let status = ws.status.unwrap();
    assert_eq!(status.nodes_selected, 2);
    assert_eq!(status.nodes_summary.as_deref(), Some("1/1"));
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(ready.message.contains(&windows), "{}", ready.message);
    let linux_items = kubefim_crds::catalog::items_for(kubefim_crds::TargetOs::Linux, &[]).count();
    assert_eq!(
        status.entities_active as usize, linux_items,
        "the recommended items are active"
    );
    let entities: Api<MonitoredEntity> = Api::namespaced(env.client.clone(), &env.namespace);
    let registry = eventually(SLOW, "the Windows entity's status", || async {
        entities.get("registry").await.ok().filter(|e| e.status.is_some())
    })
    .await;
    let ready = &registry.status.unwrap().conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Unsupported")
    );
}

#[tokio::test]
async fn workspace_and_entity_know_when_they_last_changed() {
    let (env, node) = monitored_node("last-change", "").await;
    std::fs::write(host_path(&env, &node, "/srv/app/dated"), "x").unwrap();
    let change = eventually(SLOW, "the change", || {
        change_at(&env, &node, "/srv/app/dated", ChangeCategory::Added)
    })
    .await;
    let detected: jiff::Timestamp = change.spec.detected_at.parse().unwrap();
    let entities: Api<MonitoredEntity> = Api::namespaced(env.client.clone(), &env.namespace);
    let entity = eventually(SLOW, "the entity's lastChangeTime", || async {
        entities
            .get("app")
            .await
            .ok()
            .and_then(|e| e.status?.last_change_time)
    })
    .await;
    assert!(
        entity.0 >= detected - jiff::SignedDuration::from_secs(1),
        "{entity:?} vs {detected}"
    );
    let workspaces: Api<FimWorkspace> = Api::namespaced(env.client.clone(), &env.namespace);
    let workspace = eventually(SLOW, "the workspace's lastChangeTime", || async {
        workspaces
            .get("ws")
            .await
            .ok()
            .and_then(|w| w.status?.last_change_time)
    })
    .await;
    assert_eq!(workspace, entity);
}
