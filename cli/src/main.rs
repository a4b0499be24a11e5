//! `kubectl-fim`: on PATH it runs as `kubectl fim ...`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kubectl_fim::{
    Error, api,
    commands::{self, Scope},
    output::Format,
    query::{self, ChangeQuery},
    summary::Dimension,
};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl fim",
    bin_name = "kubectl fim",
    version,
    about = "Read kubefim's File Integrity Monitoring results and manage workspaces"
)]
struct Cli {
    /// Namespace of the workspaces (defaults to the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Look in every namespace.
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    /// kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Workspace dashboard: machines reporting, changes by type and category, busiest nodes.
    Status {
        workspace: Option<String>,
        /// The period counted.
        #[arg(long, default_value = "7d")]
        since: String,
    },
    /// Changes, filtered and optionally counted (CSV export with -o csv).
    Changes {
        /// Only changes detected within this period, such as 14d or 12h.
        #[arg(long, default_value = "14d")]
        since: String,
        #[arg(long)]
        workspace: Option<String>,
        /// Node names, comma-separated.
        #[arg(long)]
        node: Option<String>,
        /// Files, FileContent, Services, Registry (comma-separated).
        #[arg(long = "type")]
        change_type: Option<String>,
        /// Added, Modified, Removed, Aggregated (comma-separated).
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        entity: Option<String>,
        /// Path glob, such as '/etc/**' or '/usr/bin/*'.
        #[arg(long)]
        path: Option<String>,
        /// Only changes nothing explains: no package operation the node's package database
        /// vouches for, no baseline accept.
        #[arg(long)]
        unexplained: bool,
        /// Count by node, type, category, entity, workspace, attribution (comma-separated).
        #[arg(long)]
        summarize_by: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// One change: previous and current attributes side by side, and the diff.
    Show { change: String },
    /// The servers: per node changes by type, last scan, files monitored, health.
    Nodes { workspace: Option<String> },
    /// The settings: recommended and custom items, enabled or not.
    Entities { workspace: Option<String> },
    /// Enable or disable a MonitoredEntity.
    Entity {
        #[arg(value_parser = ["enable", "disable"])]
        action: String,
        name: String,
    },
    /// Opt a workspace out of (exclude) or back into (include) a recommended item.
    Recommended {
        #[arg(value_parser = ["exclude", "include"])]
        action: String,
        id: String,
        /// The workspace.
        #[arg(long, short = 'w')]
        workspace: String,
    },
    /// Enable a workspace.
    Enable { workspace: String },
    /// Disable a workspace (its history is kept).
    Disable { workspace: String },
    /// Make every selected node accept its current state as the new baseline.
    Baseline {
        #[arg(value_parser = ["accept"])]
        action: String,
        workspace: String,
    },
}

async fn client(context: Option<String>) -> Result<(kube::Client, String), Error> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = kube::Config::from_kubeconfig(&options)
        .await
        .or_else(|_| kube::Config::incluster())
        .map_err(|e| Error::Usage(format!("no usable kubeconfig ({e}); set KUBECONFIG or --context")))?;
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(Error::Kube)?;
    Ok((client, namespace))
}

async fn run(cli: Cli) -> Result<String, Error> {
    let (client, default_namespace) = client(cli.context).await?;
    let scope = Scope {
        namespace: if cli.all_namespaces {
            None
        } else {
            Some(cli.namespace.unwrap_or(default_namespace))
        },
    };
    let one = || scope.namespace.clone().unwrap_or_else(|| "default".into());
    match cli.command {
        Command::Status { workspace, since } => {
            commands::status(&client, &scope, workspace.as_deref(), &since).await
        }
        Command::Changes {
            since,
            workspace,
            node,
            change_type,
            category,
            entity,
            path,
            unexplained,
            summarize_by,
            output,
        } => {
            let since = kubefim_crds::units::parse_duration(&since)
                .map_err(|e| Error::Usage(format!("--since: {e}")))?;
            let query = ChangeQuery {
                workspace,
                since: Some(since),
                nodes: node
                    .map(|n| {
                        n.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                types: change_type
                    .map(|t| query::parse_list("--type", &t, "Files, FileContent, Services, Registry"))
                    .transpose()?
                    .unwrap_or_default(),
                categories: category
                    .map(|c| query::parse_list("--category", &c, "Added, Modified, Removed, Aggregated"))
                    .transpose()?
                    .unwrap_or_default(),
                entity,
                path: path.map(|p| query::path_glob(&p)).transpose()?,
                unexplained,
            };
            let by = summarize_by
                .map(|s| {
                    s.split(',')
                        .map(|d| Dimension::parse(d.trim()).ok_or_else(|| Error::Usage(format!("--summarize-by {d:?} is not one of node, type, category, entity, workspace, attribution"))))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            commands::changes(&client, &scope, &query, &by, output).await
        }
        Command::Show { change } => commands::show(&client, &scope, &change).await,
        Command::Nodes { workspace } => commands::nodes(&client, &scope, workspace.as_deref()).await,
        Command::Entities { workspace } => commands::entities(&client, &scope, workspace.as_deref()).await,
        Command::Entity { action, name } => {
            api::set_entity_enabled(&client, &one(), &name, action == "enable").await?;
            Ok(format!("monitoredentity {name} {action}d\n"))
        }
        Command::Recommended {
            action,
            id,
            workspace,
        } => {
            let ws =
                api::set_recommended_excluded(&client, &one(), &workspace, &id, action == "exclude").await?;
            Ok(format!(
                "workspace {workspace}: recommended item {id} {action}d (excluded: {})\n",
                ws.spec.recommended.exclude.join(", ")
            ))
        }
        Command::Enable { workspace } => {
            api::set_workspace_enabled(&client, &one(), &workspace, true).await?;
            Ok(format!("fimworkspace {workspace} enabled\n"))
        }
        Command::Disable { workspace } => {
            api::set_workspace_enabled(&client, &one(), &workspace, false).await?;
            Ok(format!(
                "fimworkspace {workspace} disabled (its history is kept)\n"
            ))
        }
        Command::Baseline { workspace, .. } => {
            let revision = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
            api::accept_baseline(&client, &one(), &workspace, &revision).await?;
            Ok(format!(
                "fimworkspace {workspace}: baseline revision {revision}; every selected node accepts its current state\n"
            ))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
