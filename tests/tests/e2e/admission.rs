//! Admission: the CEL rules of the CRDs and the policy that binds an agent to its own node, on
//! the real API server.

use kube::{Api, Client, api::PostParams};
use kubefim_crds::FileChange;
use kubefim_e2e::{Env, Identity, eventually, scenario::*};

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
    // The agent's service account of the install, with its node in the token's extras.
    let kubeconfig = env.kubeconfig_as("agent.kubeconfig", &Identity::agent(&env.install, &own));
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let api: Api<FileChange> = Api::namespaced(Client::try_from(config).unwrap(), &env.namespace);
    let change = |node: &str, name: &str| -> FileChange {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubefim.dev/v1alpha1", "kind": "FileChange",
            "metadata": {"name": name, "labels": {"kubefim.dev/node": node}},
            "spec": {"workspace": "ws", "entity": "app", "nodeName": node, "type": "Files", "category": "Added",
                     "path": "/etc/x", "detectedAt": "2026-11-25T00:00:00Z", "source": "Scan"},
        }))
        .unwrap()
    };
    // The policy is installed once per run; it is in force by the time the suite starts, and
    // the refusal is awaited rather than raced.
    let refused = eventually(SLOW, "the admission policy to refuse", || async {
        match api
            .create(&PostParams::default(), &change(&other, "fc-other"))
            .await
        {
            Err(e) => Some(e),
            Ok(_) => {
                let _ = api.delete("fc-other", &Default::default()).await;
                None
            }
        }
    })
    .await;
    assert!(
        refused.to_string().contains("only write objects of its own node"),
        "{refused}"
    );
    api.create(&PostParams::default(), &change(&own, "fc-own"))
        .await
        .expect("an agent writes its own node's changes");
}
