//! Where the in-cluster agent's configuration comes from: this node's ConfigMap, watched alone
//! (by field selector), and the copy of the last applied configuration in the state directory
//! that lets an agent started during an API outage monitor what it monitored before.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, runtime::watcher};
use kubefim_crds::{AgentConfig, keys};
use tokio::sync::watch;

use kubefim_telemetry::error_chain;

use crate::{Error, Result};

/// The file in the state directory that keeps the last configuration applied, so an agent that
/// starts while the API server is unreachable monitors what it monitored before.
pub const LAST_CONFIG_FILE: &str = "agent-config.yaml";

/// The last configuration this node applied, if any (and if it is this node's).
pub fn load_last_config(state_dir: &std::path::Path, node: &str) -> Option<AgentConfig> {
    let text = std::fs::read_to_string(state_dir.join(LAST_CONFIG_FILE)).ok()?;
    AgentConfig::from_yaml(&text).ok().filter(|c| c.node == node)
}

/// Keeps `config` as the last applied one (written to a temporary file, then renamed).
pub fn save_last_config(state_dir: &std::path::Path, config: &AgentConfig) -> Result<()> {
    let yaml = config.to_yaml().map_err(|e| Error::Config {
        path: state_dir.join(LAST_CONFIG_FILE),
        message: e.to_string(),
    })?;
    let temporary = state_dir.join(format!("{LAST_CONFIG_FILE}.tmp"));
    std::fs::write(&temporary, yaml)
        .and_then(|()| std::fs::rename(&temporary, state_dir.join(LAST_CONFIG_FILE)))
        .map_err(|source| Error::StateDir {
            path: state_dir.to_path_buf(),
            source,
        })
}

/// Follows this node's ConfigMap and publishes each configuration it holds. A ConfigMap that
/// disappears means no workspace; one that cannot be parsed is logged and the current
/// configuration kept.
pub async fn watch_config(
    client: Client,
    namespace: String,
    node: String,
    configs: watch::Sender<AgentConfig>,
) {
    let name = keys::node_config_map_name(&node);
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, config).boxed();
    while let Some(event) = events.next().await {
        let cm = match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => cm,
            Ok(watcher::Event::Delete(_)) => {
                tracing::warn!(configmap = %name, "configuration removed: monitoring nothing until the operator writes it again");
                let _ = configs.send(AgentConfig::new(node.clone(), Vec::new()));
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(configmap = %name, error = %e, "watching the configuration failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let yaml = cm
            .data
            .as_ref()
            .and_then(|d| d.get(keys::CONFIG_KEY))
            .cloned()
            .unwrap_or_default();
        match AgentConfig::from_yaml(&yaml) {
            Ok(config) if config.node == node => {
                if configs.borrow().revision != config.revision {
                    let _ = configs.send(config);
                }
            }
            Ok(config) => {
                tracing::error!(configmap = %name, for_node = %config.node, "configuration is for another node; ignored")
            }
            Err(e) => {
                tracing::error!(configmap = %name, error = %error_chain(&e), "configuration cannot be parsed; keeping the current one")
            }
        }
    }
}
