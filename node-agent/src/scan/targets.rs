//! Realtime rescans: only what lies at or below the keys inotify events point at, through the
//! same merge-join and recording as a full scan, so a change has one source of truth. An entity
//! without a current baseline is left to the next full scan.

use kubefim_crds::{ChangeSource, EntityType, WorkspaceConfig};

use super::{EntityScan, Queue, ScanMode, ScanOutcome, Scanner, attributing};
use crate::{Result, diff::Change, resolve, walk};

/// Sorted targets without those that lie below another target (already covered by it).
pub(super) fn minimal(targets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut sorted: Vec<Vec<u8>> = targets.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut minimal: Vec<Vec<u8>> = Vec::new();
    for target in sorted {
        if !minimal.iter().any(|outer| walk::key_within(&target, outer)) {
            minimal.push(target);
        }
    }
    minimal
}

impl Scanner<'_> {
    /// Rescans only what lies at or below `targets` (keys inside the entity) for one entity.
    pub fn scan_targets(
        &self,
        ws: &WorkspaceConfig,
        entity_name: &str,
        targets: &[Vec<u8>],
        source: ChangeSource,
        sink: &mut dyn FnMut(Change),
    ) -> Result<ScanOutcome> {
        let (settings, started, mut outcome) = ScanOutcome::begin(ws)?;
        let Some(entity) = ws.entities.iter().find(|e| e.name == entity_name) else {
            return Ok(outcome);
        };
        let Ok(resolved) = resolve::resolve(entity, settings.limits.algorithm, self.env) else {
            return Ok(outcome);
        };
        let package_errors = attributing::prepare(self.root, self.store, ws)?;
        let snapshot = self.store.snapshot()?;
        let mut scan = EntityScan::new(
            ws,
            entity,
            resolved,
            settings,
            ScanMode::Detect,
            source,
            outcome.started_at,
        );
        if snapshot.entity_baseline(&scan.key())? != Some(scan.identity()) {
            return Ok(outcome);
        }
        let update = self.store.update()?;
        // Services are keyed by unit name, not by path: any event rescans the whole entity.
        let scope = (entity.entity_type != EntityType::LinuxService).then_some(targets);
        let mut queue = Queue::open(Some(&update), self.outbox, ws, sink)?;
        let mut attribution = attributing::Attribution::open(self.root, &snapshot, ws, package_errors)?;
        self.scan_entity_in(&mut scan, &snapshot, Some(&update), scope, &mut |mut change| {
            super::describe_mount(self.root, &mut change);
            if let Some(actors) = self.actors {
                change.actor = actors.actor_of(ws, &change);
            }
            attribution.push(change, &mut |c| queue.push(c))
        })?;
        outcome.add(scan);
        // What the baseline has seen of the packages moves on with full scans only: the rest of
        // an operation's changes may still be ahead.
        attribution.finish(ws, None, &mut outcome, &mut |c| queue.push(c))?;
        queue.finish()?;
        update.commit()?;
        outcome.duration = started.elapsed();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_below_another_target_are_covered_by_it() {
        let key = |s: &[u8]| s.to_vec();
        let targets = [
            key(b"srv\0a\0b"),
            key(b"srv\0a"),
            key(b"srv\0ab"),
            key(b"srv\0a"),
            key(b"etc"),
        ];
        assert_eq!(minimal(&targets), [key(b"etc"), key(b"srv\0a"), key(b"srv\0ab")]);
    }
}
