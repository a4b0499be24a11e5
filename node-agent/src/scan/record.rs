//! Recording: a current state compared with the stored one (through `diff`), the change it
//! makes emitted to the sink, and the new state written to the entity's tables. A silent scan
//! (a baseline being built) writes without emitting.

use kubefim_crds::{
    Attribution, AttributionKind, ChangeCategory, EntityType,
    filechange::{ChangedAttribute, ContentWithheld},
};

use super::EntityScan;
use crate::{
    Result,
    config::Settings,
    diff::{self, Change},
    records::Record,
    store::{EntityWriter, StoredEntity},
    walk,
};

/// The entity's tables during a scan: what was stored, and where the new state goes (nothing
/// in check mode).
pub(super) struct Tables<'s, 'u> {
    pub stored: &'s StoredEntity<'s>,
    pub writer: Option<&'s mut EntityWriter<'u>>,
}

/// A state observed now, ready to be compared and recorded.
pub(super) struct CurrentState {
    pub key: Vec<u8>,
    /// What the baseline will hold.
    pub record: Record,
    /// False when the file could not be hashed this time: `record` then carries the last known
    /// digest, which must not be reported as the current one.
    pub digest_known: bool,
    pub content: Option<Vec<u8>>,
}

/// Whether the content of `path` is withheld from diffs: a sensitive path, unless the
/// workspace reveals them.
pub(super) fn withheld(settings: &Settings, path: &str) -> bool {
    !settings.reveal_sensitive && kubefim_crds::sensitive::is_sensitive_path(path)
}

fn display_path(scan: &EntityScan<'_>, key: &[u8]) -> String {
    if scan.entity.entity_type == EntityType::LinuxService {
        String::from_utf8_lossy(key).into_owned()
    } else {
        walk::key_to_path(key)
    }
}

fn emit(
    scan: &mut EntityScan<'_>,
    category: ChangeCategory,
    key: &[u8],
    (previous, current): (Option<Record>, Option<Record>),
    changed: Vec<ChangedAttribute>,
    diff: Option<diff::ContentDiff>,
    sink: &mut dyn FnMut(Change),
) {
    scan.changes += 1;
    let path = display_path(scan, key);
    let content_withheld = (scan.entity.entity_type == EntityType::FileContent
        && withheld(&scan.settings, &path))
    .then_some(ContentWithheld::SensitivePath);
    sink(Change {
        namespace: scan.ws.namespace.clone(),
        workspace: scan.ws.name.clone(),
        entity: scan.entity.name.clone(),
        change_type: scan.entity.entity_type.change_type(),
        category,
        path,
        previous,
        current,
        changed,
        diff,
        detected_at: jiff::Timestamp::now(),
        source: scan.source,
        content_withheld,
        attribution: scan.accepting.as_ref().map(|revision| Attribution {
            kind: AttributionKind::BaselineAccepted,
            manager: None,
            package: None,
            from_version: None,
            to_version: None,
            digest_verified: false,
            revision: Some(revision.clone()).filter(|r| !r.is_empty()),
            operated_packages: Vec::new(),
        }),
        aggregated: None,
        mount: None,
        unexplained: None,
        actor: None,
    });
}

/// A stored object that is gone.
pub(super) fn removed(
    scan: &mut EntityScan<'_>,
    key: Vec<u8>,
    old: Record,
    tables: &mut Tables<'_, '_>,
    sink: &mut dyn FnMut(Change),
) -> Result<()> {
    if let Some(writer) = tables.writer.as_mut() {
        writer.remove(&key)?;
    }
    if !scan.silent {
        emit(
            scan,
            ChangeCategory::Removed,
            &key,
            (Some(old), None),
            Vec::new(),
            None,
            sink,
        );
    }
    Ok(())
}

/// A stored object a mount covers: kept, marked hidden, and reported by no change of its own
/// (the mount point's change says what covers it).
pub(super) fn hidden(key: Vec<u8>, old: Record, tables: &mut Tables<'_, '_>) -> Result<()> {
    if let Some(writer) = tables.writer.as_mut()
        && !old.hidden
    {
        writer.put(&key, &Record { hidden: true, ..old })?;
    }
    Ok(())
}

/// An object on the host, new or compared with its stored state.
pub(super) fn observed(
    scan: &mut EntityScan<'_>,
    current: CurrentState,
    old: Option<Record>,
    tables: &mut Tables<'_, '_>,
    sink: &mut dyn FnMut(Change),
) -> Result<()> {
    let CurrentState {
        key,
        record,
        digest_known,
        content,
    } = current;
    scan.files_scanned += 1;
    scan.outcome.files += 1;
    super::progress::file();
    let changed_record = old.as_ref() != Some(&record);
    // The store keeps the last known digest so that a change made while a file could not be
    // hashed is still caught later; what is reported says the digest is unknown now.
    let reported = if digest_known {
        record.clone()
    } else {
        Record {
            digest: None,
            hashed_at: 0,
            ..record.clone()
        }
    };
    match &old {
        None if !scan.silent => {
            emit(
                scan,
                ChangeCategory::Added,
                &key,
                (None, Some(reported)),
                Vec::new(),
                None,
                sink,
            );
        }
        Some(previous) => {
            let mut changed = diff::changed_attributes(previous, &reported);
            changed.retain(|a| !scan.entity.ignore_attributes.contains(a));
            if !changed.is_empty() && !scan.silent {
                let content_diff = match &content {
                    Some(new) if changed.contains(&ChangedAttribute::Content) => {
                        tables.stored.content(&key)?.and_then(|old| {
                            diff::unified_diff(&display_path(scan, &key), &old, new, scan.settings.diff_max)
                        })
                    }
                    _ => None,
                };
                emit(
                    scan,
                    ChangeCategory::Modified,
                    &key,
                    (old.clone(), Some(reported)),
                    changed,
                    content_diff,
                    sink,
                );
            }
        }
        None => {}
    }
    if let Some(writer) = tables.writer.as_mut() {
        if changed_record {
            writer.put(&key, &record)?;
        }
        match &content {
            Some(content) => writer.put_content(&key, content)?,
            // Content kept before the path was withheld (revealSensitive turned off) goes.
            None if scan.keeps_content() && withheld(&scan.settings, &display_path(scan, &key)) => {
                writer.remove_content(&key)?
            }
            None => {}
        }
    }
    Ok(())
}
