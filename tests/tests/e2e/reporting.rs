//! No silent blindness (issue 14): a change queued for a namespace that was deleted never holds
//! up the others, and two workspaces of one name in two namespaces each see every change.

use std::time::Duration;

use kubefim_crds::ChangeCategory;
use kubefim_e2e::{Env, eventually, free_port, kubectl_ok, scenario::*};

/// The operator serving the test's namespace and `other`; in each, workspace `workspace` (its
/// spec with `extra`) monitoring /srv/app; the agent of `node` started once both are in its
/// configuration, and its first scan of each done. Returns the agent's process index.
async fn one_workspace_name_in_two_namespaces(
    env: &mut Env,
    node: &str,
    other: &str,
    workspace: &str,
    extra: &str,
) -> usize {
    env.start_operator(&[&format!(
        "--workspace-namespaces={},{},{other}",
        env.install, env.namespace
    )]);
    for namespace in [env.namespace.as_str(), other] {
        apply_ok_in(env, namespace, &workspace_yaml(env, workspace, extra));
        apply_ok_in(
            env,
            namespace,
            &entity_yaml("app", workspace, "LinuxFile", "/srv/app", true),
        );
    }
    eventually(SLOW, "both workspaces on the node", || async {
        node_config(env, node)
            .await
            .filter(|(_, c)| c.workspaces.len() == 2)
    })
    .await;
    env.host_root(node);
    let agent = env.start_agent(node, None, &[]);
    for namespace in [env.namespace.as_str(), other] {
        eventually(SLOW, "the first scans", || {
            node_status_in(env, namespace, workspace, node)
        })
        .await;
    }
    agent
}

#[tokio::test]
async fn a_change_queued_for_a_deleted_namespace_is_refused_and_the_others_still_go_out() {
    let mut env = Env::new("deleted-namespace").await;
    let node = env.create_node("node").await;
    let doomed = env.create_namespace("fim-doomed", &[]);
    let agent = one_workspace_name_in_two_namespaces(&mut env, &node, &doomed, "ws", "").await;
    // The agent cannot reach the API server while the change happens: it stays queued.
    env.stop(agent);
    let offline = env.start_offline_agent(&node);
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::write(host_path(&env, &node, "/srv/app/queued"), "x").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.stop(offline);
    // The namespace of one of the two workspaces is deleted meanwhile.
    kubectl_ok(
        &["delete", "namespace", &doomed, "--wait=true", "--timeout=120s"],
        None,
    );
    let port = free_port();
    env.start_agent(&node, None, &[&format!("--metrics-addr=127.0.0.1:{port}")]);
    eventually(SLOW, "the other workspace's change", || {
        change_at(&env, &node, "/srv/app/queued", ChangeCategory::Added)
    })
    .await;
    let metrics = eventually(SLOW, "the refusal counted and the queue empty", || async {
        let text = scrape(port).await?;
        let rejected = metric_value(&text, "kubefim_reports_total", "result=\"rejected\"")?;
        let depth = metric_value(&text, "kubefim_outbox_depth", "")?;
        (rejected >= 1.0 && depth == 0.0).then_some(text)
    })
    .await;
    assert!(metric_value(&metrics, "kubefim_reports_total", "result=\"created\"").unwrap() >= 1.0);
    // Reporting goes on for later changes.
    std::fs::write(host_path(&env, &node, "/srv/app/later"), "x").unwrap();
    eventually(SLOW, "a later change", || {
        change_at(&env, &node, "/srv/app/later", ChangeCategory::Added)
    })
    .await;
    let log = env.agent_log(&node);
    assert!(log.contains("refused a change for good"), "the refusal is logged");
}

#[tokio::test]
async fn two_workspaces_of_one_name_in_two_namespaces_each_see_every_change() {
    let mut env = Env::new("same-name").await;
    let node = env.create_node("node").await;
    let other = env.create_namespace("fim-same-name", &[]);
    // Realtime off: the change must be found by a scan, which used to drop the other
    // workspace's baselines.
    let extra = "  scan: {interval: 1m, realtime: false}\n";
    one_workspace_name_in_two_namespaces(&mut env, &node, &other, "default", extra).await;
    std::fs::write(host_path(&env, &node, "/srv/app/between-scans"), "x").unwrap();
    for namespace in [&env.namespace, &other] {
        eventually(Duration::from_secs(150), "the change in each namespace", || {
            change_at_in(
                &env,
                namespace,
                &node,
                "/srv/app/between-scans",
                ChangeCategory::Added,
            )
        })
        .await;
    }
    // Each workspace was baselined once, not on every scan.
    let rebaselines = env
        .agent_log(&node)
        .lines()
        .filter(|l| l.contains("scan finished") && !l.contains("\"baselined_entities\":0"))
        .count();
    assert_eq!(
        rebaselines,
        2,
        "one silent baseline per workspace:\n{}",
        env.agent_log(&node)
    );
}
