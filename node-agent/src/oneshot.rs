//! The AIDE-like one-shot modes: `init` records the baseline, `check` compares without writing,
//! `update` compares and accepts the current state. Exit codes (docs/design.md, "Agent modes"): 0 nothing
//! changed, 1 changes found, 2 error.

use std::io::Write;

use kubefim_crds::{ChangeSource, nodestatus::EntityState};

use crate::{
    Result,
    config::{self, LocalSetup},
    diff::Change,
    hostfs::HostRoot,
    output,
    scan::{ScanMode, ScanOutcome, Scanner},
    store::BaselineStore,
};

/// The most accepted changes `update` queues one by one for the next start to report (beyond
/// it they are folded, as the in-cluster outbox folds).
const ACCEPTED_BOUND: u64 = 100_000;

/// Which one-shot mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Init,
    Check,
    Update,
}

/// Options shared by the one-shot modes.
#[derive(Clone, Debug)]
pub struct Options {
    pub local: LocalSetup,
    /// One JSON line per change instead of the readable listing.
    pub json: bool,
    /// `init` replaces an existing baseline.
    pub force: bool,
}

/// How a one-shot run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Changed,
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Clean => 0,
            Self::Changed => 1,
            Self::Failed => 2,
        }
    }
}

/// What the configuration asked for and nothing on this host answered: an enabled workspace
/// with no entity, and an entity written in the file (not a recommended item, which may well be
/// absent on a host) that matched no file. Said before the report and in the exit code, so a
/// mistyped path is not mistaken for a quiet host.
fn unmonitored(config: &kubefim_crds::AgentConfig, outcomes: &[ScanOutcome]) -> Vec<String> {
    let mut problems = Vec::new();
    if config.workspaces.is_empty() {
        problems.push("no enabled FimWorkspace in the configuration: nothing is monitored".to_string());
    }
    for workspace in &config.workspaces {
        if workspace.entities.is_empty() {
            problems.push(format!(
                "workspace {} monitors nothing: it has no MonitoredEntity and no recommended item",
                workspace.name
            ));
        }
    }
    for outcome in outcomes {
        for entity in &outcome.entities {
            if entity.state == EntityState::Active && entity.matched_nothing() {
                problems.push(format!(
                    "entity {}/{} matched nothing on this host: check its path",
                    outcome.workspace, entity.name
                ));
            }
        }
    }
    problems
}

/// While it lives, a line on the terminal saying how far the scan is; on anything else, a log
/// line every 10 s instead.
#[derive(Debug)]
pub struct ProgressLine {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    pub fn start() -> Self {
        use std::{io::IsTerminal, sync::atomic::Ordering};
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            crate::scan::progress::log_every(std::time::Duration::from_secs(10));
            return Self { done, thread: None };
        }
        let flag = done.clone();
        let thread = std::thread::Builder::new()
            .name("progress-line".into())
            .spawn(move || {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                while !flag.load(Ordering::Acquire) {
                    if let Some(now) = crate::scan::progress::snapshot() {
                        bar.set_message(now.to_string());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                bar.finish_and_clear();
            })
            .ok();
        Self { done, thread }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `command`, writing the listing (or JSON lines) to `out` and problems to `err`.
pub fn run(command: Command, options: &Options, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome> {
    let config = config::load_standalone(&options.local.config, &options.local.node)?;
    let root = HostRoot::open(&options.local.host_root)?;
    let state_dir = &options.local.state_dir;
    match (command, BaselineStore::existing(state_dir)) {
        (Command::Check | Command::Update, None) => {
            return Err(crate::Error::NoBaseline {
                state_dir: state_dir.clone(),
            });
        }
        (Command::Init, Some(path)) if !options.force => return Err(crate::Error::BaselineExists { path }),
        _ => {}
    }
    let previous = crate::handover::recorded_generation(state_dir);
    let (store, opened) = BaselineStore::open(&options.local.state_dir)?;
    if let crate::store::OpenOutcome::Rebuilt { reason, moved_to, .. } = &opened {
        if command != Command::Init {
            // Nothing to compare with: the fresh store goes too, so that the next run says so
            // again instead of taking an empty store for a baseline.
            let path = store.path().to_path_buf();
            drop(store);
            let _ = std::fs::remove_file(&path);
            return Err(crate::Error::BaselineReset {
                reason: reason.clone(),
                moved_to: moved_to.clone(),
            });
        }
        let _ = writeln!(
            err,
            "warning: the baseline store was unusable ({reason}); it was moved to {} and a new one created",
            moved_to.display()
        );
    }
    if let Some(migration) = store.migrate_legacy(&config.workspaces)? {
        let _ = writeln!(
            err,
            "note: the baseline store was migrated to namespaced keys ({} entities kept their baseline, {} dropped)",
            migration.moved.len(),
            migration.dropped.len()
        );
    }
    if command != Command::Init
        && let Some(reason) = crate::handover::reset_reason(previous.as_deref(), &store, &opened)
    {
        let _ = writeln!(err, "warning: {reason} (in {})", state_dir.display());
    }
    // check writes nothing, not even this record.
    if command != Command::Check {
        crate::handover::record_generation(state_dir, &store)?;
    }
    // What update accepts is queued in the same transaction, for the next standalone start (or
    // the in-cluster agent) to report: accepted by hand is never absorbed without a trace.
    let policy = crate::outbox::OutboxPolicy {
        node: options.local.node.clone(),
        bound: ACCEPTED_BOUND,
    };
    let scanner = Scanner {
        root: &root,
        store: &store,
        env: &crate::env_var,
        outbox: (command == Command::Update).then_some(&policy),
        walkers: crate::resources::walk_threads(),
        actors: None,
    };
    let mode = match command {
        Command::Init => ScanMode::Init,
        Command::Check => ScanMode::Check,
        Command::Update => ScanMode::Accept,
    };
    let progress = ProgressLine::start();
    let mut outcomes: Vec<ScanOutcome> = Vec::new();
    let mut changes: Vec<Change> = Vec::new();
    let mut write_error = None;
    for workspace in &config.workspaces {
        let outcome = scanner.scan(workspace, mode, ChangeSource::Scan, &mut |change| {
            if options.json {
                if let Err(e) = output::write_json_line(out, &change, &options.local.node) {
                    write_error.get_or_insert(e);
                }
            } else {
                changes.push(change);
            }
        })?;
        outcomes.push(outcome);
    }
    drop(progress);
    if let Some(e) = write_error {
        return Err(e);
    }
    let failed = outcomes
        .iter()
        .flat_map(|r| r.entities.iter())
        .any(|e| e.state == EntityState::Error);
    let unmonitored = unmonitored(&config, &outcomes);
    for problem in &unmonitored {
        let _ = writeln!(err, "problem: {problem}");
    }
    let change_count: u64 = outcomes.iter().map(|r| r.changes).sum();
    match command {
        Command::Init => {
            let files: u64 = outcomes
                .iter()
                .flat_map(|r| r.entities.iter())
                .map(|e| e.files)
                .sum();
            let entities: usize = outcomes.iter().map(|r| r.entities.len()).sum();
            let _ = writeln!(
                out,
                "kubefim init: baseline of {files} entries in {entities} entities written to {}",
                store.path().display()
            );
        }
        _ if !options.json => {
            let verb = if command == Command::Check {
                "check"
            } else {
                "update"
            };
            write!(
                out,
                "{}",
                output::render_text(verb, &options.local.node, &outcomes, &changes)
            )
            .map_err(crate::Error::Output)?;
        }
        _ => {}
    }
    for (workspace, entity) in outcomes
        .iter()
        .flat_map(|r| r.entities.iter().map(move |e| (&r.workspace, e)))
    {
        if entity.state == EntityState::Error && options.json {
            let _ = writeln!(
                err,
                "error: {workspace}/{}: {}",
                entity.name,
                entity.message.as_deref().unwrap_or("")
            );
        }
    }
    Ok(if failed || !unmonitored.is_empty() {
        Outcome::Failed
    } else if change_count > 0 {
        Outcome::Changed
    } else {
        Outcome::Clean
    })
}
