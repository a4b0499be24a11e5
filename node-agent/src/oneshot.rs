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

/// Runs `command`, writing the listing (or JSON lines) to `out` and problems to `err`.
pub fn run(command: Command, options: &Options, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome> {
    let config = config::load_standalone(&options.local.config, &options.local.node)?;
    let root = HostRoot::open(&options.local.host_root)?;
    let (store, opened) = BaselineStore::open(&options.local.state_dir)?;
    if let crate::store::OpenOutcome::Rebuilt { reason, moved_to, .. } = &opened {
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
    let scanner = Scanner {
        root: &root,
        store: &store,
        env: &crate::env_var,
        outbox: None,
        walkers: crate::resources::walk_threads(),
    };
    let mode = match command {
        Command::Init => ScanMode::Init,
        Command::Check => ScanMode::Check,
        Command::Update => ScanMode::Accept,
    };
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
    if let Some(e) = write_error {
        return Err(e);
    }
    let failed = outcomes
        .iter()
        .flat_map(|r| r.entities.iter())
        .any(|e| e.state == EntityState::Error);
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
    Ok(if failed {
        Outcome::Failed
    } else if change_count > 0 {
        Outcome::Changed
    } else {
        Outcome::Clean
    })
}
