//! Files, content and history: the node's configuration, the changes an agent reports (with
//! labels, owner, diff, realtime source), opt-outs, retention, folding, and an outage.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use kubefim_crds::{ChangeCategory, FimWorkspace, MonitoredEntity, keys};
use kubefim_e2e::{Env, eventually, kubectl, scenario::*};

#[tokio::test]
async fn a_workspace_with_recommended_items_and_a_custom_entity_renders_the_node_configmap() {
    let mut env = Env::new("render").await;
    let node = env.create_node("node").await;
    env.start_operator(&[]);
    let extra = "  scan: {interval: 5m}\n";
    apply_ok(
        &env,
        &workspace_yaml(&env, "ws", extra).replace(
            "recommended: {enabled: false}",
            "recommended: {enabled: true, exclude: [usr-bin]}",
        ),
    );
    apply_ok(&env, &entity_yaml("app", "ws", "LinuxFile", "/srv/app", true));
    // Wait for what the test depends on: a ConfigMap that already holds the entity (the
    // operator may write one before it has seen the entity applied right after).
    let (cm, config) = eventually(SLOW, "the node's ConfigMap with the custom entity", || async {
        node_config(&env, &node).await.filter(|(_, c)| {
            c.workspaces.len() == 1 && c.workspaces[0].entities.iter().any(|e| e.name == "app")
        })
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

    // Someone who may edit ConfigMaps in the install namespace drops the custom entity and
    // keeps the revision annotation: the operator restores what the workspaces say.
    let mut edited = config.clone();
    edited.workspaces[0].entities.retain(|e| e.name != "app");
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(env.client.clone(), &env.install);
    api.patch(
        &cm.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {keys::CONFIG_KEY: edited.to_yaml().unwrap()}})),
    )
    .await
    .unwrap();
    let (_, restored) = eventually(SLOW, "the edited ConfigMap restored", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces[0].entities.iter().any(|e| e.name == "app"))
    })
    .await;
    assert_eq!(restored, config);
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
        // Retention orders changes by creation time, which has a one-second resolution: changes
        // a second apart, so that the newest one is the one kept.
        tokio::time::sleep(Duration::from_millis(1100)).await;
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
    let offline = env.start_offline_agent(&node);
    let printed = |env: &Env| {
        env.agent_lines(&node)
            .iter()
            .any(|line| line["path"] == "/srv/app/during-outage")
    };
    // The offline agent detects the change (its JSON line) and can only queue it.
    eventually(SLOW, "the offline agent detecting the change", || {
        let seen = printed(&env);
        async move { seen.then_some(()) }
    })
    .await;
    env.stop(offline);
    assert!(
        change_at(&env, &node, "/srv/app/during-outage", ChangeCategory::Added)
            .await
            .is_none()
    );
    env.start_agent(&node, None, &[]);
    eventually(SLOW, "the change queued during the outage", || {
        change_at(&env, &node, "/srv/app/during-outage", ChangeCategory::Added)
    })
    .await;
    // The restarted agent found it in its baseline already: the FileChange is the queued one,
    // sent from the outbox, not a new detection.
    assert!(
        !printed(&env),
        "the restarted agent detected the change again instead of sending the queued one"
    );
}
