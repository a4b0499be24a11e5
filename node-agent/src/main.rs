//! `kubefim-agent`: parses the command line and hands over to the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};
use kubefim_agent::{
    cluster,
    config::LocalSetup,
    oneshot,
    resources::{self, ScanPriority},
    standalone, stop,
};

#[derive(Parser, Debug)]
#[command(
    name = "kubefim-agent",
    version,
    about = "kubefim node agent: File Integrity Monitoring for Kubernetes nodes"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "KUBEFIM_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// CPU and I/O priority of scanning: low (nice 19 and the idle I/O class, so a busy node
    /// gives the scan what is left over) or normal (the process's own).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "low",
        env = "KUBEFIM_SCAN_PRIORITY"
    )]
    scan_priority: ScanPriority,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run in the cluster: configuration from the node's ConfigMap, changes to FileChange objects.
    Run(RunArgs),
    /// Scan on each workspace's interval without a cluster: changes as JSON lines on stdout.
    Standalone(StandaloneArgs),
    /// Record the current state as the baseline.
    Init(InitArgs),
    /// Compare with the baseline without changing it. Exit 0: no change, 1: changes, 2: error.
    Check(OneShotArgs),
    /// Compare with the baseline, report, and accept the current state. Exit codes as check.
    Update(OneShotArgs),
}

#[derive(Args, Debug)]
struct Common {
    /// YAML file of FimWorkspace and MonitoredEntity objects (see examples/standalone.yaml).
    #[arg(long, short)]
    config: PathBuf,
    /// Where the host's / is; every monitored path is resolved inside it and never leaves it.
    #[arg(long, default_value = "/", env = "KUBEFIM_HOST_ROOT")]
    host_root: PathBuf,
    /// Directory of the baseline store.
    #[arg(long, default_value = "/var/lib/kubefim", env = "KUBEFIM_STATE_DIR")]
    state_dir: PathBuf,
    /// Node name in reports; defaults to the host name.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
}

#[derive(Args, Debug)]
struct StandaloneArgs {
    #[command(flatten)]
    common: Common,
    /// Address to serve /metrics on; "none" to serve nothing.
    #[arg(long, default_value = "127.0.0.1:9847")]
    metrics_addr: String,
    /// Scan every workspace once and exit.
    #[arg(long)]
    once: bool,
    /// The most inotify watches realtime detection adds; past it, periodic scans carry on alone.
    #[arg(long, default_value_t = 65536)]
    max_watches: usize,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// This node's name (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The install namespace, where the node's ConfigMap is.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubefim-system")]
    namespace: String,
    /// Where the host's / is mounted (read-only).
    #[arg(long, default_value = "/host", env = "KUBEFIM_HOST_ROOT")]
    host_root: PathBuf,
    /// Directory of the baseline store and outbox (a hostPath that survives restarts).
    #[arg(long, default_value = "/var/lib/kubefim", env = "KUBEFIM_STATE_DIR")]
    state_dir: PathBuf,
    /// Address to serve /metrics on; "none" to serve nothing.
    #[arg(long, default_value = "0.0.0.0:9847")]
    metrics_addr: String,
    /// The most inotify watches realtime detection adds.
    #[arg(long, default_value_t = 65536)]
    max_watches: usize,
    /// FileChange creates per second, at most.
    #[arg(long, default_value_t = 10.0)]
    reports_per_second: f64,
    /// Queued changes before further ones are folded into Aggregated records.
    #[arg(long, default_value_t = kubefim_agent::outbox::DEFAULT_BOUND)]
    outbox_bound: u64,
    /// Seconds between FimNodeStatus heartbeats.
    #[arg(long, default_value_t = 60)]
    heartbeat_seconds: u64,
    /// Seconds one API request may take before it is retried.
    #[arg(long, default_value_t = 10)]
    request_timeout_seconds: u64,
}

#[derive(Args, Debug)]
struct OneShotArgs {
    #[command(flatten)]
    common: Common,
    /// One JSON line per change instead of the readable report.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct InitArgs {
    #[command(flatten)]
    oneshot: OneShotArgs,
    /// Replace an existing baseline (without it, init refuses to, so that whatever changed
    /// since is never taken as the truth by accident).
    #[arg(long)]
    force: bool,
}

impl Common {
    fn into_setup(self) -> LocalSetup {
        let node = self
            .node_name
            .unwrap_or_else(|| rustix::system::uname().nodename().to_string_lossy().into_owned());
        LocalSetup {
            config: self.config,
            host_root: self.host_root,
            state_dir: self.state_dir,
            node,
        }
    }
}

/// Completes once a signal asked to stop (`stop::listen` logs it and stops the scan in
/// progress).
async fn shutdown_signal(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn main() -> ExitCode {
    resources::tune_allocator();
    let cli = Cli::parse();
    kubefim_telemetry::init_logging(matches!(cli.log_format, LogFormat::Json));
    resources::init_scan_pool(cli.scan_priority);
    let (stop_sender, stopping) = tokio::sync::watch::channel(false);
    if let Err(e) = stop::listen(move || {
        let _ = stop_sender.send(true);
    }) {
        eprintln!("error: cannot listen for SIGINT and SIGTERM: {e}");
        return ExitCode::from(2);
    }
    if matches!(cli.command, Command::Standalone(_) | Command::Run(_)) {
        kubefim_agent::scan::progress::log_every(std::time::Duration::from_secs(10));
    }
    let exit = match cli.command {
        Command::Standalone(args) => {
            let options = standalone::Options {
                local: args.common.into_setup(),
                metrics_addr: (args.metrics_addr != "none").then_some(args.metrics_addr),
                once: args.once,
                max_watches: args.max_watches,
            };
            block_on(standalone::run(options, shutdown_signal(stopping)))
        }
        Command::Run(args) => {
            let options = cluster::Options {
                node: args.node_name,
                namespace: args.namespace,
                host_root: args.host_root,
                state_dir: args.state_dir,
                metrics_addr: (args.metrics_addr != "none").then_some(args.metrics_addr),
                max_watches: args.max_watches,
                reports_per_second: args.reports_per_second,
                outbox_bound: args.outbox_bound,
                heartbeat: std::time::Duration::from_secs(args.heartbeat_seconds.max(1)),
                request_timeout: std::time::Duration::from_secs(args.request_timeout_seconds.max(1)),
            };
            block_on(cluster::run(options, shutdown_signal(stopping)))
        }
        Command::Init(args) => run_oneshot(oneshot::Command::Init, args.oneshot, args.force),
        Command::Check(args) => run_oneshot(oneshot::Command::Check, args, false),
        Command::Update(args) => run_oneshot(oneshot::Command::Update, args, false),
    };
    // Stopped by a signal: say so in the exit code, as a shell would.
    match stop::requested() {
        Some(signal) => ExitCode::from(stop::exit_code(signal)),
        None => exit,
    }
}

/// Runs an async mode to completion: exit 0 when it stopped cleanly, 2 on error.
fn block_on(mode: impl std::future::Future<Output = kubefim_agent::Result<()>>) -> ExitCode {
    // Sized from the CPU quota, the runtime would have a single worker under the chart's limit
    // of 1; a second keeps /healthz answering even while the other runs a long task.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(mode) {
        Ok(()) | Err(kubefim_agent::Error::Stopped { .. }) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", kubefim_telemetry::error_chain(&e));
            ExitCode::from(2)
        }
    }
}

fn run_oneshot(which: oneshot::Command, args: OneShotArgs, force: bool) -> ExitCode {
    // The whole process is the scan.
    resources::scan_thread_started();
    let options = oneshot::Options {
        local: args.common.into_setup(),
        json: args.json,
        force,
    };
    match oneshot::run(which, &options, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e @ kubefim_agent::Error::Stopped { .. }) => {
            eprintln!("kubefim-agent: {e}; the baseline is as it was");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", kubefim_telemetry::error_chain(&e));
            ExitCode::from(2)
        }
    }
}
