//! Package attribution around one workspace scan: the ledger brought up to date before the
//! snapshot is taken, each change passed through the workspace's attributor, the folded
//! reports sent at the end, and the packages the baseline has now seen recorded with it.

use kubefim_crds::{WorkspaceConfig, nodestatus::EntityState, workspace::AttributionMode};

use super::ScanOutcome;
use crate::{
    Error, Result,
    config::WorkspaceKey,
    diff::Change,
    hostfs::HostRoot,
    packages::{self, Attributor, PackageError},
    store::{BaselineStore, Snapshot, Update},
};

/// Refreshes the ledger when the workspace attributes; the databases that could not be read.
pub(super) fn prepare(
    root: &HostRoot,
    store: &BaselineStore,
    ws: &WorkspaceConfig,
) -> Result<Vec<PackageError>> {
    if ws.packages.attribution == AttributionMode::Off {
        return Ok(Vec::new());
    }
    packages::refresh(root, store)
}

/// The stage between the entity scans and the queue.
pub(super) struct Attribution<'s> {
    attributor: Option<Attributor<'s>>,
    error: Option<Error>,
}

impl<'s> Attribution<'s> {
    pub(super) fn open(
        root: &'s HostRoot,
        snapshot: &'s Snapshot<'s>,
        ws: &WorkspaceConfig,
        errors: Vec<PackageError>,
    ) -> Result<Self> {
        Ok(Self {
            attributor: Attributor::open(
                root,
                snapshot,
                &WorkspaceKey::of(ws),
                ws.packages.attribution,
                errors,
            )?,
            error: None,
        })
    }

    pub(super) fn push(&mut self, change: Change, sink: &mut dyn FnMut(Change)) {
        match self.attributor.as_mut() {
            Some(attributor) => {
                if let Err(e) = attributor.push(change, sink) {
                    self.error.get_or_insert(e);
                }
            }
            None => sink(change),
        }
    }

    /// Sends the folded reports, records what the baseline has seen (when the scan writes
    /// one), and puts the databases that could not be read on the outcome.
    pub(super) fn finish(
        self,
        ws: &WorkspaceConfig,
        update: Option<&Update<'_>>,
        outcome: &mut ScanOutcome,
        sink: &mut dyn FnMut(Change),
    ) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(attributor) = self.attributor else {
            return Ok(());
        };
        if let Some(update) = update {
            packages::remember(update, &WorkspaceKey::of(ws), attributor.installed())?;
        }
        let errors = attributor.errors.clone();
        attributor.finish(sink)?;
        report_errors(ws, outcome, &errors);
        Ok(())
    }
}

/// A database that could not be read is an error of the entities that monitor it, and counted
/// on every entity of the workspace (its changes went unexplained).
fn report_errors(ws: &WorkspaceConfig, outcome: &mut ScanOutcome, errors: &[PackageError]) {
    let Some(first) = errors.first() else { return };
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    for entity in &mut outcome.entities {
        *entity.errors.entry("package_database_unreadable").or_default() += 1;
        // The entity's path without its trailing slash: "" for an entity on `/`, which holds
        // every database file.
        let base = ws
            .entities
            .iter()
            .find(|e| e.name == entity.name)
            .map(|e| e.path.trim_end_matches('/'));
        let monitors_database = base.is_some_and(|base| {
            errors.iter().any(|e| {
                let file = e.file();
                file == base || file.starts_with(&format!("{base}/"))
            })
        });
        if monitors_database && entity.state == EntityState::Active {
            entity.state = EntityState::Error;
            entity.message = Some(message.clone());
        }
    }
    tracing::warn!(workspace = %ws.name, error = %first, "a package database could not be read; its changes are reported unexplained");
}
