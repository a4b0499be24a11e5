//! What the scenarios share: manifests, and reads of what the operator and the agents wrote.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, api::ListParams};
use kubefim_crds::{AgentConfig, ChangeCategory, FileChange, FimNodeStatus, keys};

use crate::{Env, eventually};

/// How long a scenario waits for what an agent or the operator does.
pub const SLOW: std::time::Duration = std::time::Duration::from_secs(90);

/// A workspace selecting this test's nodes, recommended items off, scanned every minute (the
/// first scan of a cluster agent waits up to a tenth of the interval), with `extra` spec lines.
pub fn workspace_yaml(env: &Env, name: &str, extra: &str) -> String {
    let scan = if extra.contains("scan:") {
        ""
    } else {
        "  scan: {interval: 1m}\n"
    };
    format!(
        "apiVersion: kubefim.dev/v1alpha1\nkind: FimWorkspace\nmetadata: {{name: {name}}}\nspec:\n  nodeSelector: {{matchLabels: {{{}: {}}}}}\n  recommended: {{enabled: false}}\n{scan}{extra}",
        env.node_label.0, env.node_label.1
    )
}

pub fn entity_yaml(name: &str, workspace: &str, entity_type: &str, path: &str, recursive: bool) -> String {
    format!(
        "apiVersion: kubefim.dev/v1alpha1\nkind: MonitoredEntity\nmetadata: {{name: {name}}}\nspec: {{workspace: {workspace}, type: {entity_type}, path: {path}, recursive: {recursive}}}\n"
    )
}

/// Applies YAML in the test's namespace, failing the test when refused.
pub fn apply_ok(env: &Env, yaml: &str) {
    apply_ok_in(env, &env.namespace, yaml);
}

pub fn apply_ok_in(env: &Env, namespace: &str, yaml: &str) {
    let output = env.apply_in(namespace, yaml);
    assert!(
        output.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The node's ConfigMap and the configuration it holds.
pub async fn node_config(env: &Env, node: &str) -> Option<(ConfigMap, AgentConfig)> {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.install);
    let cm = api.get_opt(&keys::node_config_map_name(node)).await.ok()??;
    let config = AgentConfig::from_yaml(cm.data.as_ref()?.get(keys::CONFIG_KEY)?).ok()?;
    Some((cm, config))
}

/// The FileChanges of `node` in `namespace`.
pub async fn changes_in(env: &Env, namespace: &str, node: &str) -> Vec<FileChange> {
    let api: Api<FileChange> = Api::namespaced(env.client.clone(), namespace);
    api.list(&ListParams::default().labels(&format!("{}={node}", keys::LABEL_NODE)))
        .await
        .unwrap_or_else(|e| panic!("cannot list the FileChanges of {node} in {namespace}: {e}"))
        .items
}

/// The FileChanges of `node` in the test's namespace.
pub async fn changes(env: &Env, node: &str) -> Vec<FileChange> {
    changes_in(env, &env.namespace, node).await
}

pub async fn change_at(env: &Env, node: &str, path: &str, category: ChangeCategory) -> Option<FileChange> {
    change_at_in(env, &env.namespace, node, path, category).await
}

pub async fn change_at_in(
    env: &Env,
    namespace: &str,
    node: &str,
    path: &str,
    category: ChangeCategory,
) -> Option<FileChange> {
    changes_in(env, namespace, node)
        .await
        .into_iter()
        .find(|c| c.spec.path == path && c.spec.category == category)
}

/// This node's FimNodeStatus of `workspace`, once it holds a scan.
pub async fn node_status(env: &Env, workspace: &str, node: &str) -> Option<FimNodeStatus> {
    node_status_in(env, &env.namespace, workspace, node).await
}

pub async fn node_status_in(
    env: &Env,
    namespace: &str,
    workspace: &str,
    node: &str,
) -> Option<FimNodeStatus> {
    let api: Api<FimNodeStatus> = Api::namespaced(env.client.clone(), namespace);
    api.get_opt(&keys::node_status_name(workspace, node))
        .await
        .ok()?
        .filter(|s| s.status.as_ref().is_some_and(|s| s.last_scan.is_some()))
}

/// Where the host path `path` of `node` is on this machine.
pub fn host_path(env: &Env, node: &str, path: &str) -> std::path::PathBuf {
    env.dir
        .path()
        .join("hosts")
        .join(node)
        .join(path.trim_start_matches('/'))
}

/// A workspace `ws` monitoring /srv/app (recursive) and /etc/hosts (content), one node with an
/// agent, the operator, and the first (silent) scan done.
pub async fn monitored_node(test: &str, workspace_extra: &str) -> (Env, String) {
    let mut env = Env::new(test).await;
    let node = env.create_node("node").await;
    env.start_operator(&[]);
    apply_ok(&env, &workspace_yaml(&env, "ws", workspace_extra));
    apply_ok(&env, &entity_yaml("app", "ws", "LinuxFile", "/srv/app", true));
    apply_ok(
        &env,
        &entity_yaml("hosts", "ws", "FileContent", "/etc/hosts", false),
    );
    env.host_root(&node);
    std::fs::write(host_path(&env, &node, "/srv/app/old.txt"), "old\n").expect("seed file");
    start_agent_once_configured(&mut env, &node, 2).await;
    (env, node)
}

/// Once the configuration of `node` holds workspace `ws` with its `entities` entities, starts
/// the node's agent and waits for its first (silent) scan. Returns the agent's process index.
pub async fn start_agent_once_configured(env: &mut Env, node: &str, entities: usize) -> usize {
    eventually(SLOW, "the node's configuration", || async {
        node_config(env, node)
            .await
            .filter(|(_, c)| c.workspaces.iter().any(|w| w.entities.len() == entities))
    })
    .await;
    let agent = env.start_agent(node, None, &[]);
    eventually(SLOW, "the first scan", || node_status(env, "ws", node)).await;
    agent
}

/// The value of the first series of `metric` (with `labels` among its labels) in a Prometheus
/// text exposition.
pub fn metric_value(exposition: &str, metric: &str, labels: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes an agent's /metrics.
pub async fn scrape(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_value_is_read_by_name_and_labels() {
        let text = "# HELP x\nkubefim_reports_total{node=\"n\",result=\"created\"} 3\nkubefim_reports_total{node=\"n\",result=\"rejected\"} 1\nkubefim_outbox_depth{node=\"n\"} 0\nkubefim_outbox_depth_other 9\n";
        assert_eq!(
            metric_value(text, "kubefim_reports_total", "result=\"rejected\""),
            Some(1.0)
        );
        assert_eq!(metric_value(text, "kubefim_outbox_depth", ""), Some(0.0));
        assert_eq!(metric_value(text, "kubefim_missing", ""), None);
    }
}
