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

/// The revision `config`'s content gives, when it is not the one it carries: a configuration
/// edited by hand (only the operator writes it, and its revision is the digest of what it holds).
pub fn revision_mismatch(config: &AgentConfig) -> Option<String> {
    let computed = AgentConfig::new(config.node.clone(), config.workspaces.clone()).revision;
    (computed != config.revision).then_some(computed)
}

/// The last configuration this node applied, if any (and if it is this node's). A copy that
/// cannot be read or parsed, or that is another node's, is logged and not used: the agent then
/// waits for the API server, as on a first start.
pub fn load_last_config(state_dir: &std::path::Path, node: &str) -> Option<AgentConfig> {
    let path = state_dir.join(LAST_CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "the last applied configuration cannot be read; waiting for the API server");
            return None;
        }
    };
    match AgentConfig::from_yaml(&text) {
        Ok(config) if config.node == node => match revision_mismatch(&config) {
            None => Some(config),
            Some(computed) => {
                tracing::error!(path = %path.display(), revision = %config.revision, %computed,
                    "the last applied configuration does not match its revision (changed by hand?); waiting for the API server");
                None
            }
        },
        Ok(config) => {
            tracing::error!(path = %path.display(), for_node = %config.node, "the last applied configuration is another node's; waiting for the API server");
            None
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %error_chain(&e), "the last applied configuration cannot be parsed; waiting for the API server");
            None
        }
    }
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
/// disappears, or that a (re)list does not find (deleted while the agent was down or its watch
/// was broken), means no workspace; one that cannot be parsed is logged and the current
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
    let mut listed = false;
    let nothing = |why: &str| {
        if !configs.borrow().workspaces.is_empty() {
            tracing::warn!(configmap = %name, why, "monitoring nothing until the operator writes the configuration again");
            let _ = configs.send(AgentConfig::new(node.clone(), Vec::new()));
        }
    };
    while let Some(event) = events.next().await {
        let cm = match event {
            Ok(watcher::Event::Init) => {
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitApply(cm)) => {
                listed = true;
                cm
            }
            Ok(watcher::Event::InitDone) => {
                if !listed {
                    nothing("the configuration does not exist");
                }
                continue;
            }
            Ok(watcher::Event::Apply(cm)) => cm,
            Ok(watcher::Event::Delete(_)) => {
                nothing("the configuration was removed");
                continue;
            }
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
                if let Some(computed) = revision_mismatch(&config) {
                    // Only the operator writes it; it restores an edited one within seconds.
                    tracing::error!(configmap = %name, revision = %config.revision, %computed,
                        "the configuration does not match its revision: changed by something other than the operator; ignored, keeping the current one");
                    continue;
                }
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
