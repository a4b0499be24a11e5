//! What a machine without a cluster keeps between runs, so that nothing is absorbed silently
//! while the standalone agent is stopped: the generation of the store it last used, in a file
//! beside the store (`generation`), and the changes `update` accepted, queued in the store's
//! outbox in the same transaction that accepted them. At its start the standalone agent says
//! whether the store it opens is the one it left (a vanished, rebuilt or replaced store is a
//! `BaselineReset` line), then prints what was accepted meanwhile (attribution
//! BaselineAccepted) and lets it go. The in-cluster agent reports the same queue to the API
//! server.

use std::{io::Write, path::Path};

use crate::{
    Error, Result,
    store::{BaselineStore, OpenOutcome, Settlement},
};

/// The file beside the store naming its generation.
pub const GENERATION_FILE: &str = "generation";

/// The generation the last run recorded in `state_dir`, if any.
pub fn recorded_generation(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(GENERATION_FILE))
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|g| !g.is_empty())
}

/// Records `store`'s generation beside it.
pub fn record_generation(state_dir: &Path, store: &BaselineStore) -> Result<()> {
    let path = state_dir.join(GENERATION_FILE);
    std::fs::write(&path, format!("{}\n", store.generation()))
        .map_err(|source| Error::StateDir { path, source })
}

/// Why the store opened is not the one the last run left (`previous`, its recorded
/// generation), or None when it is.
pub fn reset_reason(previous: Option<&str>, store: &BaselineStore, opened: &OpenOutcome) -> Option<String> {
    Some(match (previous, opened) {
        (_, OpenOutcome::Rebuilt { reason, moved_to, .. }) => {
            format!(
                "the store was unusable ({reason}); it was moved to {}",
                moved_to.display()
            )
        }
        (Some(previous), OpenOutcome::Created) => {
            format!("the store of generation {previous} is gone; a new one was created")
        }
        (Some(previous), OpenOutcome::Opened) if previous != store.generation() => {
            format!(
                "the store was replaced: generation {previous} was recorded, {} found",
                store.generation()
            )
        }
        _ => return None,
    })
}

/// The `BaselineReset` line of a start whose store is not the one the last run left, or None.
pub fn reset_line(
    node: &str,
    previous: Option<&str>,
    store: &BaselineStore,
    opened: &OpenOutcome,
) -> Option<String> {
    let reason = reset_reason(previous, store, opened)?;
    Some(
        serde_json::json!({
            "kind": "BaselineReset",
            "node": node,
            "previousGeneration": previous,
            "generation": store.generation(),
            "reason": reason,
            "consequence": "every entity is baselined again: what changed while no baseline was kept is not reported",
        })
        .to_string(),
    )
}

/// Prints every queued change as a JSON line (the FileChange spec) and removes it from the
/// queue once written. Returns how many.
pub fn drain(store: &BaselineStore, out: &mut dyn Write) -> Result<u64> {
    let queue = store.queue();
    let mut printed = 0;
    for lane in queue.lanes()? {
        loop {
            let batch = queue.pending(&lane, 500, &|_| false)?;
            if batch.is_empty() {
                break;
            }
            let mut settled = Vec::with_capacity(batch.len());
            for (seq, record) in batch {
                match record {
                    Ok(record) => {
                        crate::output::write_spec_line(out, &record.spec)?;
                        printed += 1;
                    }
                    Err(reason) => {
                        tracing::error!(seq, %reason, "a queued change cannot be read; it is dropped")
                    }
                }
                settled.push(Settlement::Acknowledged {
                    lane: lane.clone(),
                    seq,
                });
            }
            queue.settle(&settled, || ())?;
        }
    }
    Ok(printed)
}
