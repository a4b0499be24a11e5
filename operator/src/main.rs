//! `kubefim-operator`: parses the command line and runs the operator.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kubefim_operator::{
    context, controller, metrics,
    tenancy::{self, NamespacePolicy},
};

#[derive(Parser, Debug)]
#[command(
    name = "kubefim-operator",
    version,
    about = "kubefim operator: per-node agent configuration, status and retention"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator against the cluster of the in-cluster config or KUBECONFIG.
    Run {
        /// Namespace of the per-node ConfigMaps and of the Lease (the install namespace).
        #[arg(long, env = "POD_NAMESPACE", default_value = "kubefim-system")]
        namespace: String,
        /// Identity in leader election; defaults to the pod (host) name.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_addr: String,
        /// Log format on stderr: text or json.
        #[arg(long, default_value = "json")]
        log_format: String,
        /// Seconds between recomputations of workspace and entity status.
        #[arg(long, default_value_t = 30)]
        status_interval_seconds: u64,
        /// Seconds between retention sweeps.
        #[arg(long, default_value_t = 300)]
        retention_interval_seconds: u64,
        /// Namespaces whose FimWorkspaces are served, comma-separated; by default only the
        /// install namespace. Watching a host file is reading it: this is a cluster-admin choice.
        #[arg(long, value_delimiter = ',')]
        workspace_namespaces: Vec<String>,
        /// Also serve namespaces whose labels match this selector (key=value, key!=value, key,
        /// !key, comma-separated).
        #[arg(long, default_value = "")]
        workspace_namespace_selector: String,
        /// The nodes the agent DaemonSet runs on (its nodeSelector, key=value,...); selected
        /// nodes outside it are counted as unsupported rather than as not reporting.
        #[arg(long, default_value = "kubernetes.io/os=linux")]
        agent_node_selector: String,
        /// The ServiceAccount (in the install namespace) that owns the node ConfigMaps, so that
        /// deleting it (helm uninstall) deletes them; the chart passes the operator's own. Without
        /// it each ConfigMap is owned by its Node.
        #[arg(long, env = "KUBEFIM_CONFIG_OWNER_SERVICE_ACCOUNT")]
        config_owner_service_account: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Run {
        namespace,
        identity,
        metrics_addr,
        log_format,
        status_interval_seconds,
        retention_interval_seconds,
        workspace_namespaces,
        workspace_namespace_selector,
        agent_node_selector,
        config_owner_service_account,
    } = Cli::parse().command;
    let allowed = if workspace_namespaces.is_empty() {
        vec![namespace.clone()]
    } else {
        workspace_namespaces
    };
    let settings = context::Settings {
        policy: NamespacePolicy::new(allowed, &workspace_namespace_selector)
            .map_err(|e| anyhow::anyhow!("--workspace-namespace-selector: {e}"))?,
        agent_nodes: tenancy::parse_selector(&agent_node_selector)
            .map_err(|e| anyhow::anyhow!("--agent-node-selector: {e}"))?,
        intervals: context::Intervals {
            status: std::time::Duration::from_secs(status_interval_seconds.max(1)),
            retention: std::time::Duration::from_secs(retention_interval_seconds.max(1)),
        },
        config_owner: None,
        namespace,
    };
    kubefim_telemetry::init_logging(log_format == "json");

    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API: set KUBECONFIG or run in a pod")?;
    let mut settings = settings;
    if let Some(name) = config_owner_service_account {
        settings.config_owner = Some(service_account_owner(&client, &settings.namespace, &name).await?);
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let listener = kubefim_telemetry::bind(&metrics_addr)
        .await
        .with_context(|| format!("cannot serve metrics on {metrics_addr}; pass another --metrics-addr"))?;
    tokio::spawn(kubefim_telemetry::serve(listener, metrics.clone()));
    let identity =
        identity.unwrap_or_else(|| std::env::var("HOSTNAME").unwrap_or_else(|_| "kubefim-operator".into()));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            term.recv().await;
        }
    };
    let stop = async move {
        tokio::select! { () = shutdown => {}, () = terminate => {} }
        tracing::info!("shutdown requested");
    };
    tracing::info!(?settings, "kubefim operator starting");
    controller::run(client, settings, identity, metrics, stop)
        .await
        .map_err(|e| anyhow::anyhow!(kubefim_telemetry::error_chain(&e)))
}

/// The owner reference of ServiceAccount `name` in `namespace`.
async fn service_account_owner(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    use kube::ResourceExt as _;
    let api: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(client.clone(), namespace);
    let account = api.get(name).await.with_context(|| {
        format!("cannot read ServiceAccount {namespace}/{name}, the owner of the node ConfigMaps (--config-owner-service-account)")
    })?;
    Ok(k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ServiceAccount".into(),
        name: name.to_string(),
        uid: account.uid().unwrap_or_default(),
        ..Default::default()
    })
}
