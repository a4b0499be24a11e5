//! What the reconcilers and the status round share: the admin's settings, the reflector
//! stores, the render index (rebuilt when workspaces, entities or namespace labels change),
//! leadership, metrics and the Event recorder.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apimachinery::pkg::apis::meta::v1::LabelSelector,
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Client, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        events::{Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use kubefim_crds::{FimNodeStatus, FimWorkspace, MonitoredEntity};
use tokio::sync::watch;

use crate::{metrics::Metrics, render::RenderIndex, tenancy::NamespacePolicy, validate::ObjectKey};

/// How often the periodic loops run.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// Workspace and entity status is recomputed (default 30 s).
    pub status: Duration,
    /// Retention deletes expired FileChanges (default 5 min).
    pub retention: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            status: Duration::from_secs(30),
            retention: Duration::from_secs(300),
        }
    }
}

/// What the cluster admin decided when installing the operator.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The install namespace, where node ConfigMaps and the Lease live.
    pub namespace: String,
    /// The namespaces allowed to hold FimWorkspaces.
    pub policy: NamespacePolicy,
    /// The nodes the agent DaemonSet runs on (its nodeSelector); a selected node outside it
    /// can never report and is counted as unsupported, not as silent.
    pub agent_nodes: LabelSelector,
    pub intervals: Intervals,
    /// What owns the node ConfigMaps: the chart's operator ServiceAccount, so `helm uninstall`
    /// takes them with it (a ConfigMap of a deleted node is removed by the operator itself).
    /// None: each is owned by its Node, as when the operator runs outside the chart.
    pub config_owner: Option<OwnerReference>,
}

impl Settings {
    /// The defaults of an install in `namespace`: workspaces there only, agents on Linux nodes.
    pub fn for_namespace(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            policy: NamespacePolicy::new([namespace.to_string()], "").unwrap_or_default(),
            agent_nodes: LabelSelector {
                match_labels: Some([("kubernetes.io/os".to_string(), "linux".to_string())].into()),
                ..Default::default()
            },
            intervals: Intervals::default(),
            config_owner: None,
        }
    }
}

/// The reflector stores the reconcilers read.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // reflector stores print nothing useful
pub struct Stores {
    pub workspaces: Store<DeserializeGuard<FimWorkspace>>,
    pub entities: Store<DeserializeGuard<MonitoredEntity>>,
    pub node_statuses: Store<DeserializeGuard<FimNodeStatus>>,
    pub config_maps: Store<ConfigMap>,
    /// Namespaces with their labels; filled only when the policy selects namespaces by label.
    pub namespaces: Store<Namespace>,
}

/// Everything the reconcilers share.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub stores: Stores,
    /// Set whenever a workspace, an entity or a namespace's labels change; the index is
    /// rebuilt before its next use.
    pub dirty: Arc<AtomicBool>,
    index: Mutex<Arc<RenderIndex>>,
    pub leader: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// (object, reason) pairs an Event was already published for.
    pub(crate) reported_problems: Mutex<BTreeSet<(ObjectKey, &'static str)>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("leader", &*self.leader.borrow())
            .finish()
    }
}

/// The objects of a store that deserialized; one malformed object never hides the others.
pub fn valid<K>(store: &Store<DeserializeGuard<K>>) -> Vec<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok().cloned().map(Arc::new))
        .collect()
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        stores: Stores,
        leader: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubefim-operator".into(),
                instance,
            },
        );
        Self {
            client,
            settings,
            stores,
            dirty: Arc::new(AtomicBool::new(true)),
            index: Mutex::new(Arc::new(RenderIndex::default())),
            leader,
            metrics,
            recorder,
            reported_problems: Mutex::new(BTreeSet::new()),
        }
    }

    /// Whether `namespace` may hold FimWorkspaces.
    pub fn allows(&self, namespace: &str) -> bool {
        let labels = self
            .stores
            .namespaces
            .get(&ObjectRef::new(namespace))
            .map(|ns| ns.labels().clone());
        self.settings.policy.allows(namespace, labels.as_ref())
    }

    /// The valid workspaces of every namespace. Retention goes by these: the FileChanges a
    /// workspace's nodes wrote while its namespace was allowed age out after it is refused too.
    pub fn valid_workspaces(&self) -> Vec<Arc<FimWorkspace>> {
        valid(&self.stores.workspaces)
    }

    /// The valid workspaces in allowed namespaces.
    pub fn served_workspaces(&self) -> Vec<Arc<FimWorkspace>> {
        valid(&self.stores.workspaces)
            .into_iter()
            .filter(|w| self.allows(&w.namespace().unwrap_or_default()))
            .collect()
    }

    /// The valid entities in allowed namespaces.
    pub fn served_entities(&self) -> Vec<Arc<MonitoredEntity>> {
        valid(&self.stores.entities)
            .into_iter()
            .filter(|e| self.allows(&e.namespace().unwrap_or_default()))
            .collect()
    }

    /// The render index of what is served, rebuilt first when anything it depends on changed.
    pub fn index(&self) -> Arc<RenderIndex> {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        if self.dirty.swap(false, Ordering::AcqRel) {
            *index = Arc::new(RenderIndex::build(
                &self.served_workspaces(),
                &self.served_entities(),
            ));
        }
        index.clone()
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Records that an Event was published for (object, reason); false when it already was.
    pub(crate) fn first_report(&self, object: ObjectKey, reason: &'static str) -> bool {
        self.reported_problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((object, reason))
    }
}
