//! Pod names for actors: the pods of this node only (`spec.nodeName` field selector, metadata
//! only), listed when a change names a pod uid not yet known, at most every
//! [`LIST_AT_MOST_EVERY`], so a stream of changes from an unknown pod costs one list.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};

use crate::{actors::PodNames, lock};

const LIST_AT_MOST_EVERY: Duration = Duration::from_secs(2);
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Known {
    by_uid: HashMap<String, (String, String)>,
    listed_at: Option<Instant>,
}

/// The pods of one node, by uid.
pub struct NodePods {
    api: Api<Pod>,
    node: String,
    runtime: tokio::runtime::Handle,
    known: Mutex<Known>,
}

impl std::fmt::Debug for NodePods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePods")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodePods {
    /// Lists through `client` on `runtime` (names are asked for on the scan threads).
    pub fn new(client: Client, node: &str, runtime: tokio::runtime::Handle) -> Self {
        Self {
            api: Api::all(client),
            node: node.to_string(),
            runtime,
            known: Mutex::new(Known {
                by_uid: HashMap::new(),
                listed_at: None,
            }),
        }
    }

    fn list(&self) -> Result<HashMap<String, (String, String)>, String> {
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let listed = self
            .runtime
            .block_on(async { tokio::time::timeout(LIST_TIMEOUT, self.api.list_metadata(&params)).await });
        let pods = match listed {
            Ok(Ok(pods)) => pods,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err(format!("no answer in {LIST_TIMEOUT:?}")),
        };
        Ok(pods
            .items
            .into_iter()
            .filter_map(|pod| {
                let meta = pod.metadata;
                Some((meta.uid?, (meta.namespace?, meta.name?)))
            })
            .collect())
    }
}

impl PodNames for NodePods {
    fn name(&self, uid: &str) -> Option<(String, String)> {
        let mut known = lock(&self.known);
        if let Some(found) = known.by_uid.get(uid) {
            return Some(found.clone());
        }
        if known
            .listed_at
            .is_some_and(|at| at.elapsed() < LIST_AT_MOST_EVERY)
        {
            return None;
        }
        known.listed_at = Some(Instant::now());
        match self.list() {
            Ok(pods) => known.by_uid = pods,
            Err(error) => {
                tracing::warn!(%error, node = %self.node, "cannot list this node's pods: actors carry pod uids without names");
            }
        }
        known.by_uid.get(uid).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use http::Method;
    use kubefim_testkit::{mock, next_request, respond};
    use serde_json::json;

    use super::*;

    fn pod(uid: &str, namespace: &str, name: &str) -> serde_json::Value {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
               "metadata": {"uid": uid, "namespace": namespace, "name": name}})
    }

    /// Asked on a scan thread: lists this node's pods (metadata, field selector) once for a
    /// burst of unknown uids, answers known ones from what it listed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_come_from_one_list_of_this_nodes_pods_and_an_unknown_uid_lists_at_most_every_two_seconds()
    {
        let (client, mut handle) = mock();
        let pods = std::sync::Arc::new(NodePods::new(client, "node-a", tokio::runtime::Handle::current()));
        let asked = {
            let pods = pods.clone();
            std::thread::spawn(move || (pods.name("uid-1"), pods.name("uid-2"), pods.name("uid-9")))
        };
        let (request, send) = next_request(&mut handle).await;
        assert_eq!(request.method(), Method::GET);
        let uri = request.uri().to_string();
        assert!(uri.starts_with("/api/v1/pods?"), "{uri}");
        assert!(uri.contains("fieldSelector=spec.nodeName%3Dnode-a"), "{uri}");
        respond(
            send,
            200,
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
                   "items": [pod("uid-1", "team-a", "web-0"), pod("uid-2", "kube-system", "kube-proxy-x")]}),
        );
        let (one, two, nine) = tokio::task::spawn_blocking(move || asked.join().unwrap())
            .await
            .unwrap();
        assert_eq!(one, Some(("team-a".to_string(), "web-0".to_string())));
        assert_eq!(two, Some(("kube-system".to_string(), "kube-proxy-x".to_string())));
        assert_eq!(
            nine, None,
            "not on this node, and listed less than two seconds ago"
        );
        kubefim_testkit::nothing_more(&mut handle).await;
    }
}
