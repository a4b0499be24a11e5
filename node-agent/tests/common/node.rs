//! A node of the in-cluster agent for API-conversation tests: a real host tree and a real
//! state directory, an Agent with an outbox, and the reporter driven one pass at a time.

use std::{sync::Arc, time::Duration};

use kube::Client;
use kubefim_agent::{
    agent::Agent,
    cluster::{Pass, RateLimiter, Reporter, StoreAccess},
    config::WorkspaceKey,
    hostfs::HostRoot,
    outbox::OutboxPolicy,
    store::{BaselineStore, QueueView},
};
use kubefim_crds::WorkspaceConfig;
use serde_json::{Value, json};

/// The FileChange collection URI of namespace `ns`.
pub fn filechanges(ns: &str) -> String {
    format!("/apis/kubefim.dev/v1alpha1/namespaces/{ns}/filechanges?&fieldManager=kubefim-agent")
}

/// A workspace `name` in `namespace` monitoring /srv recursively as entity `app`.
pub fn cluster_workspace(namespace: &str, name: &str) -> WorkspaceConfig {
    serde_json::from_value(json!({
        "name": name, "namespace": namespace, "uid": format!("{namespace}-{name}-uid"),
        "entities": [{"name": "app", "type": "LinuxFile", "path": "/srv", "recursive": true}],
    }))
    .unwrap()
}

/// The workspace most tests use: fim/prod.
pub fn prod() -> WorkspaceConfig {
    let mut ws = cluster_workspace("fim", "prod");
    ws.uid = "ws-uid".into();
    ws
}

pub struct Node {
    pub host: tempfile::TempDir,
    pub state: tempfile::TempDir,
    /// Shared, as the in-cluster mode shares it between the scan loop and its tasks.
    pub agent: Arc<Agent>,
}

impl Node {
    pub fn new() -> Self {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("srv")).unwrap();
        std::fs::write(host.path().join("srv/app.conf"), "v1\n").unwrap();
        let state = tempfile::tempdir().unwrap();
        let agent = Arc::new(Self::agent(&host, &state));
        Self { host, state, agent }
    }

    pub fn agent(host: &tempfile::TempDir, state: &tempfile::TempDir) -> Agent {
        let (store, _) = BaselineStore::open(state.path()).unwrap();
        let mut agent = Agent::new("n1", HostRoot::open(host.path()).unwrap(), store);
        agent.outbox = Some(OutboxPolicy {
            node: "n1".into(),
            bound: 100_000,
        });
        agent
    }

    /// The same state directory opened again, as after a restart.
    pub fn restart(self) -> Self {
        let Node { host, state, agent } = self;
        drop(agent);
        Node {
            agent: Arc::new(Node::agent(&host, &state)),
            host,
            state,
        }
    }

    pub fn write(&self, path: &str, content: &str) {
        let real = self.host.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(real, content).unwrap();
    }

    /// Scans `ws` in full (silently the first time); returns how many changes were found.
    pub fn scan_workspace(&self, ws: &WorkspaceConfig) -> u64 {
        self.agent.scan_and_print(ws).unwrap().changes
    }

    /// Scans fim/prod.
    pub fn scan(&self) -> u64 {
        self.scan_workspace(&prod())
    }

    pub fn outbox(&self) -> QueueView<'_> {
        self.agent.store.queue()
    }

    /// The async side's access to this node's store, as the in-cluster mode makes it.
    pub fn access(&self) -> StoreAccess {
        StoreAccess::start(self.agent.store.clone()).unwrap()
    }

    pub fn depth(&self) -> u64 {
        self.outbox().depth().unwrap()
    }

    pub fn depth_of(&self, namespace: &str, name: &str) -> u64 {
        self.outbox()
            .depth_of(&WorkspaceKey::new(namespace, name))
            .unwrap()
    }

    /// One pass of a fresh reporter (no lane is backing off), its settlements written.
    pub async fn report(&self, client: &Client, timeout: Duration) -> Pass {
        let mut reporter = Reporter::new(client.clone(), RateLimiter::per_second(100_000.0), 1000, timeout);
        let access = self.access();
        let pass = reporter.pass(&access, &self.agent.metrics).await.unwrap();
        access.flush().await;
        pass
    }

    pub fn reports(&self, result: &str) -> u64 {
        self.agent
            .metrics
            .reports_total
            .with_label_values(&[result])
            .get()
    }

    pub fn gauge(&self) -> i64 {
        self.agent.metrics.outbox_depth.get()
    }
}

/// The object the API server returns for a created `body`.
pub fn created(body: &Value) -> Value {
    let mut created = body.clone();
    created["metadata"]["uid"] = json!("server-uid");
    created
}
