//! Who may monitor what (issue 13): a namespace editor outside the allowed namespaces reaches
//! no node, secrets arrive without their content, and a namespace an admin labels is served.

use kube::Api;
use kubefim_crds::{ChangeCategory, FimWorkspace, filechange::ContentWithheld};
use kubefim_e2e::{Env, eventually, kubectl, kubectl_ok, scenario::*};

/// The Ready condition of workspace `name` in `namespace`, as (status, reason, message).
async fn ready(env: &Env, namespace: &str, name: &str) -> Option<(String, String, String)> {
    let api: Api<FimWorkspace> = Api::namespaced(env.client.clone(), namespace);
    let ws = api.get_opt(name).await.ok()??;
    let ready = ws.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((ready.status, ready.reason, ready.message))
}

/// Whether an Event of `reason` was published in `namespace`.
fn event_with_reason(namespace: &str, reason: &str) -> bool {
    let output = kubectl(
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            namespace,
            "-o",
            "jsonpath={.items[*].reason}",
        ],
        None,
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .any(|r| r == reason)
}

#[tokio::test]
async fn a_namespace_editor_outside_the_allowed_namespaces_reaches_no_node() {
    let (mut env, node) = monitored_node("tenancy", "").await;
    let team = env.create_namespace("fim-team", &[]);
    let alice = ["--as", "alice", "--as-group", "system:authenticated"];
    kubectl_ok(
        &[
            "create",
            "rolebinding",
            "alice-edit",
            "-n",
            &team,
            "--clusterrole=edit",
            "--user=alice",
        ],
        None,
    );
    let workspace = workspace_yaml(&env, "sneaky", "");
    // The built-in edit role does not carry kubefim-admin (no aggregation by default).
    let denied = kubectl(
        &[&["apply", "-n", &team, "-f", "-"][..], &alice[..]].concat(),
        Some(&workspace),
    );
    assert!(
        !denied.status.success(),
        "an editor created a FimWorkspace without kubefim-admin"
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("forbidden"));
    // Even with kubefim-admin bound, her namespace is not one the operator serves.
    kubectl_ok(
        &[
            "create",
            "rolebinding",
            "alice-fim",
            "-n",
            &team,
            "--clusterrole=kubefim-e2e-admin.kubefim-e2e",
            "--user=alice",
        ],
        None,
    );
    let shadow = entity_yaml("shadow", "sneaky", "FileContent", "/etc/shadow", false);
    for yaml in [&workspace, &shadow] {
        let output = kubectl(
            &[&["apply", "-n", &team, "-f", "-"][..], &alice[..]].concat(),
            Some(yaml),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (status, _, message) = eventually(SLOW, "the refusal in the workspace status", || async {
        ready(&env, &team, "sneaky")
            .await
            .filter(|(_, reason, _)| reason == "NamespaceNotAllowed")
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        message.contains(&team) && message.contains("workspaceNamespaces"),
        "{message}"
    );
    eventually(SLOW, "the Warning Event", || async {
        event_with_reason(&team, "NamespaceNotAllowed").then_some(())
    })
    .await;
    let (_, config) = node_config(&env, &node).await.unwrap();
    assert!(
        config.workspaces.iter().all(|w| w.namespace != team),
        "nothing of the refused workspace reaches the node: {config:?}"
    );
    std::fs::write(
        host_path(&env, &node, "/etc/shadow"),
        "root:$6$secret:19000::::::\n",
    )
    .unwrap();
    std::fs::write(host_path(&env, &node, "/srv/app/still-monitored"), "x").unwrap();
    eventually(SLOW, "the allowed workspace's change", || {
        change_at(&env, &node, "/srv/app/still-monitored", ChangeCategory::Added)
    })
    .await;
    assert!(changes_in(&env, &team, &node).await.is_empty());
}

#[tokio::test]
async fn a_secret_changes_without_its_content_being_diffed() {
    let (env, node) = monitored_node("secret", "").await;
    std::fs::create_dir_all(host_path(&env, &node, "/etc/kubernetes")).unwrap();
    std::fs::write(
        host_path(&env, &node, "/etc/kubernetes/admin.conf"),
        "token: before\n",
    )
    .unwrap();
    apply_ok(
        &env,
        &entity_yaml(
            "kubeconfig",
            "ws",
            "FileContent",
            "/etc/kubernetes/admin.conf",
            false,
        ),
    );
    eventually(SLOW, "the kubeconfig entity to be baselined", || async {
        node_status(&env, "ws", &node).await.filter(|s| {
            s.status
                .as_ref()
                .unwrap()
                .entities
                .iter()
                .any(|e| e.name == "kubeconfig")
        })
    })
    .await;
    std::fs::write(
        host_path(&env, &node, "/etc/kubernetes/admin.conf"),
        "token: after-rotation\n",
    )
    .unwrap();
    let change = eventually(SLOW, "the kubeconfig change", || {
        change_at(
            &env,
            &node,
            "/etc/kubernetes/admin.conf",
            ChangeCategory::Modified,
        )
    })
    .await;
    assert_eq!(change.spec.content_withheld, Some(ContentWithheld::SensitivePath));
    assert!(change.spec.content_diff.is_none());
    let (before, after) = (change.spec.previous.unwrap(), change.spec.current.unwrap());
    assert!(before.hash.is_some() && after.hash.is_some() && before.hash != after.hash);
}

#[tokio::test]
async fn a_namespace_an_admin_labels_is_served_and_unlabelled_is_not() {
    let mut env = Env::new("by-label").await;
    let node = env.create_node("node").await;
    let label = ("kubefim-e2e.dev/monitoring", env.namespace.clone());
    let selector = format!("--workspace-namespace-selector={}={}", label.0, label.1);
    let team = env.create_namespace("fim-labelled", &[]);
    env.start_operator(&[&selector]);
    apply_ok_in(&env, &team, &workspace_yaml(&env, "ws", ""));
    apply_ok_in(
        &env,
        &team,
        &entity_yaml("app", "ws", "LinuxFile", "/srv/app", true),
    );
    eventually(SLOW, "the refusal", || async {
        ready(&env, &team, "ws")
            .await
            .filter(|(_, reason, _)| reason == "NamespaceNotAllowed")
    })
    .await;
    kubectl_ok(
        &["label", "namespace", &team, &format!("{}={}", label.0, label.1)],
        None,
    );
    eventually(SLOW, "the labelled namespace's workspace on the node", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces.iter().any(|w| w.namespace == team))
    })
    .await;
    eventually(SLOW, "the refusal to end", || async {
        ready(&env, &team, "ws")
            .await
            .filter(|(_, reason, _)| reason != "NamespaceNotAllowed")
    })
    .await;
    kubectl_ok(&["label", "namespace", &team, &format!("{}-", label.0)], None);
    eventually(SLOW, "the workspace to leave the node", || async {
        node_config(&env, &node)
            .await
            .filter(|(_, c)| c.workspaces.iter().all(|w| w.namespace != team))
    })
    .await;
}
