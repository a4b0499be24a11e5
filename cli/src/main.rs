//! `kubectl-fim`: on PATH it runs as `kubectl fim ...`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kubectl_fim::{
    Error, api,
    commands::{self, Scope},
    output::{Format, ReadFormat},
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
    /// kubeconfig file to use (defaults to $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// kubeconfig context to use (defaults to its current context).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// The workspace a command works on: `-w NAME`, `--workspace NAME`, or the NAME positional.
#[derive(clap::Args, Debug)]
struct WorkspaceArg {
    /// The workspace (the same as -w).
    #[arg(value_name = "WORKSPACE")]
    positional: Option<String>,
    /// The workspace.
    #[arg(short = 'w', long = "workspace", value_name = "WORKSPACE")]
    flag: Option<String>,
}

impl WorkspaceArg {
    fn get(self) -> Result<Option<String>, Error> {
        match (self.positional, self.flag) {
            (Some(a), Some(b)) if a != b => Err(Error::Usage(format!(
                "two workspaces given, {a:?} and -w {b:?}: give one"
            ))),
            (a, b) => Ok(a.or(b)),
        }
    }

    fn required(self) -> Result<String, Error> {
        self.get()?
            .ok_or_else(|| Error::Usage("name the workspace: -w WORKSPACE".into()))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Workspace dashboard: machines reporting, changes by type and category, busiest nodes.
    Status {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The period counted, such as 7d or 12h.
        #[arg(long, default_value = "7d")]
        since: String,
        /// table, wide (not cut to the terminal), json or yaml (the workspaces).
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: ReadFormat,
    },
    /// Changes, filtered and optionally counted (CSV export with -o csv).
    Changes {
        /// Only changes detected within this period, such as 14d or 12h.
        #[arg(long, default_value = "14d")]
        since: String,
        /// Only changes of this workspace.
        #[arg(short = 'w', long)]
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
        /// Only changes of this MonitoredEntity (or recommended.<id>).
        #[arg(long)]
        entity: Option<String>,
        /// Path glob, such as '/etc/**' or '/usr/bin/*'.
        #[arg(long)]
        path: Option<String>,
        /// Only changes nothing explains: no package operation the node's package database
        /// vouches for, no baseline accept (changes made during a package operation but not
        /// verifiable are listed).
        #[arg(long)]
        unexplained: bool,
        /// Only changes made by this process (realtime changes of workspaces with
        /// scan.actors On): a user name, a process name, an executable or its file name.
        #[arg(long)]
        actor: Option<String>,
        /// Only changes made from this pod, as NAMESPACE/NAME.
        #[arg(long)]
        pod: Option<String>,
        /// Count by node, type, category, entity, workspace, attribution (comma-separated).
        #[arg(long)]
        summarize_by: Option<String>,
        /// table, wide, json, yaml or csv.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Format,
    },
    /// One change: previous and current attributes side by side, and the diff.
    Show {
        /// The FileChange's name (the NAME column of `changes -o wide`).
        change: String,
        /// table, wide, json or yaml (the FileChange).
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: ReadFormat,
    },
    /// The servers: per node changes by type, last scan, files monitored, health.
    Nodes {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// table, wide, json or yaml (the FimNodeStatus objects).
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: ReadFormat,
    },
    /// The settings: recommended and custom items, enabled or not.
    Entities {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// table, wide, json or yaml (each workspace with its MonitoredEntities).
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: ReadFormat,
    },
    /// Enable or disable a MonitoredEntity.
    Entity {
        /// enable or disable.
        #[arg(value_parser = ["enable", "disable"])]
        action: String,
        /// The MonitoredEntity's name.
        name: String,
    },
    /// Opt a workspace out of (exclude) or back into (include) a recommended item.
    Recommended {
        /// exclude or include.
        #[arg(value_parser = ["exclude", "include"])]
        action: String,
        /// The recommended item's id (the ID column of `kubectl fim entities`).
        id: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Enable a workspace.
    Enable {
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Disable a workspace (its history is kept).
    Disable {
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Make every selected node accept its current state as the new baseline.
    Baseline {
        /// accept.
        #[arg(value_parser = ["accept"])]
        action: String,
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
}

/// Where the plugin talks to, for messages that must say so.
#[derive(Debug, Default, Clone)]
struct Target {
    kubeconfig: String,
    server: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server {} (from kubeconfig {})", self.server, self.kubeconfig)
    }
}

/// The kubeconfig file that applies: --kubeconfig, then $KUBECONFIG (its first file), then
/// ~/.kube/config.
fn kubeconfig_path(flag: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    flag.or_else(|| {
        std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .and_then(|v| std::env::split_paths(&v).next())
    })
    .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".kube/config")))
}

async fn client(
    kubeconfig: Option<std::path::PathBuf>,
    context: Option<String>,
) -> Result<(kube::Client, String, Target), Error> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let explicit = kubeconfig.is_some();
    let path = kubeconfig_path(kubeconfig);
    let from_file = match (&path, explicit) {
        (Some(path), true) => kube::config::Kubeconfig::read_from(path)
            .map_err(|e| Error::Usage(format!("cannot read kubeconfig {}: {e}", path.display())))
            .map(Some)?,
        (Some(path), false) if path.exists() => Some(
            kube::config::Kubeconfig::read()
                .map_err(|e| Error::Usage(format!("cannot read kubeconfig {}: {e}", path.display())))?,
        ),
        _ => None,
    };
    let label = path
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |p| p.display().to_string());
    let config = match from_file {
        Some(file) => kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|e| Error::Usage(format!("kubeconfig {label}: {e}")))?,
        None => kube::Config::incluster().map_err(|e| {
            Error::Usage(format!(
                "no kubeconfig at {label} and not in a pod ({e}): set KUBECONFIG or pass --kubeconfig"
            ))
        })?,
    };
    let target = Target {
        kubeconfig: label,
        server: config.cluster_url.to_string(),
    };
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(Error::Kube)?;
    Ok((client, namespace, target))
}

async fn run(cli: Cli, target: &mut Target) -> Result<String, Error> {
    let (client, default_namespace, reached) = client(cli.kubeconfig, cli.context).await?;
    *target = reached;
    let scope = Scope {
        namespace: if cli.all_namespaces {
            None
        } else {
            Some(cli.namespace.unwrap_or(default_namespace))
        },
    };
    let one = || scope.namespace.clone().unwrap_or_else(|| "default".into());
    match cli.command {
        Command::Status {
            workspace,
            since,
            output,
        } => commands::status(&client, &scope, workspace.get()?.as_deref(), &since, output).await,
        Command::Changes {
            since,
            workspace,
            node,
            change_type,
            category,
            entity,
            path,
            unexplained,
            actor,
            pod,
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
                actor,
                pod: pod.map(|p| query::pod_ref(&p)).transpose()?,
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
        Command::Show { change, output } => commands::show(&client, &scope, &change, output).await,
        Command::Nodes { workspace, output } => {
            commands::nodes(&client, &scope, workspace.get()?.as_deref(), output).await
        }
        Command::Entities { workspace, output } => {
            commands::entities(&client, &scope, workspace.get()?.as_deref(), output).await
        }
        Command::Entity { action, name } => {
            api::set_entity_enabled(&client, &one(), &name, action == "enable").await?;
            Ok(format!("monitoredentity {name} {action}d\n"))
        }
        Command::Recommended {
            action,
            id,
            workspace,
        } => {
            let workspace = workspace.required()?;
            let ws =
                api::set_recommended_excluded(&client, &one(), &workspace, &id, action == "exclude").await?;
            Ok(format!(
                "workspace {workspace}: recommended item {id} {action}d (excluded: {})\n",
                ws.spec.recommended.exclude.join(", ")
            ))
        }
        Command::Enable { workspace } => {
            let workspace = workspace.required()?;
            api::set_workspace_enabled(&client, &one(), &workspace, true).await?;
            Ok(format!("fimworkspace {workspace} enabled\n"))
        }
        Command::Disable { workspace } => {
            let workspace = workspace.required()?;
            api::set_workspace_enabled(&client, &one(), &workspace, false).await?;
            Ok(format!(
                "fimworkspace {workspace} disabled (its history is kept)\n"
            ))
        }
        Command::Baseline { workspace, .. } => {
            let workspace = workspace.required()?;
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
    let mut target = Target::default();
    match run(Cli::parse(), &mut target).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut message = kubefim_telemetry::error_chain(&e);
            if matches!(e, Error::Kube(_)) && !target.server.is_empty() {
                message.push_str(&format!(" [{target}]"));
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_argument_of_every_command_has_help() {
        let cli = Cli::command();
        for command in std::iter::once(&cli).chain(cli.get_subcommands()) {
            for arg in command.get_arguments() {
                if ["help", "version"].contains(&arg.get_id().as_str()) {
                    continue;
                }
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().trim().is_empty()),
                    "{} {} has no help",
                    command.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn the_workspace_is_positional_or_w_on_every_command_that_takes_one() {
        for args in [
            &["kubectl-fim", "status", "prod"][..],
            &["kubectl-fim", "status", "-w", "prod"],
            &["kubectl-fim", "nodes", "--workspace", "prod"],
            &["kubectl-fim", "entities", "-w", "prod"],
            &["kubectl-fim", "enable", "prod"],
            &["kubectl-fim", "disable", "-w", "prod"],
            &["kubectl-fim", "baseline", "accept", "-w", "prod"],
            &["kubectl-fim", "baseline", "accept", "prod"],
            &["kubectl-fim", "recommended", "exclude", "usr-bin", "prod"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let workspace = match cli.command {
                Command::Status { workspace, .. }
                | Command::Nodes { workspace, .. }
                | Command::Entities { workspace, .. }
                | Command::Enable { workspace }
                | Command::Disable { workspace }
                | Command::Baseline { workspace, .. }
                | Command::Recommended { workspace, .. } => workspace.get().unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(workspace.as_deref(), Some("prod"), "{args:?}");
        }
        let cli = Cli::try_parse_from(["kubectl-fim", "enable", "a", "-w", "b"]).unwrap();
        let Command::Enable { workspace } = cli.command else {
            panic!()
        };
        assert!(
            workspace
                .get()
                .unwrap_err()
                .to_string()
                .contains("two workspaces given")
        );
    }

    #[test]
    fn every_read_command_takes_o_json_and_yaml() {
        for verb in ["status", "nodes", "entities", "changes"] {
            for format in ["table", "wide", "json", "yaml"] {
                Cli::try_parse_from(["kubectl-fim", verb, "-o", format])
                    .unwrap_or_else(|e| panic!("{verb} -o {format}: {e}"));
            }
        }
        Cli::try_parse_from(["kubectl-fim", "show", "x", "-o", "yaml"]).unwrap();
        Cli::try_parse_from([
            "kubectl-fim",
            "--kubeconfig",
            "/k",
            "--context",
            "c",
            "-n",
            "ns",
            "nodes",
        ])
        .unwrap();
    }
}
