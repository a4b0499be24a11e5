//! How the status file and its journal combine: paragraphs merged into one set of installed
//! packages, each in the slot dpkg's `parse_find_pkg_slot` gives it.

use std::collections::BTreeMap;

use super::entry::{NOT_INSTALLED, status_entry};
use super::paragraph::ParagraphReader;
use super::{DpkgError, Limits, StatusEntry};

/// Where a paragraph comes from: dpkg places it differently (`parse_find_pkg_slot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Status,
    Journal,
}

/// The installed packages while paragraphs are merged in.
#[derive(Default)]
pub(super) struct Database {
    /// In first-seen order; None where an entry was removed.
    slots: Vec<Option<StatusEntry>>,
    /// Package -> architecture -> index in `slots`, for the live entries.
    index: BTreeMap<String, BTreeMap<Option<String>, usize>>,
    live: usize,
}

impl Database {
    pub(super) fn merge(&mut self, entry: StatusEntry, source: Source) {
        let replaced: Option<usize> = self.slot_of(&entry, source);
        if let Some(slot) = replaced {
            self.remove(slot);
        }
        if entry.state == NOT_INSTALLED {
            return;
        }
        let slot: usize = replaced.unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        self.index
            .entry(entry.package.clone())
            .or_default()
            .insert(entry.architecture.clone(), slot);
        if let Some(place) = self.slots.get_mut(slot) {
            *place = Some(entry);
        }
        self.live += 1;
    }

    /// The slot `entry` replaces: the package's instance of the same architecture; or, for a
    /// journal paragraph, the package's only instance unless both are Multi-Arch: same.
    fn slot_of(&self, entry: &StatusEntry, source: Source) -> Option<usize> {
        let instances = self.index.get(&entry.package)?;
        if source == Source::Journal
            && instances.len() == 1
            && let Some(&slot) = instances.values().next()
            && !(entry.multi_arch_same && self.get(slot).is_some_and(|old| old.multi_arch_same))
        {
            return Some(slot);
        }
        instances.get(&entry.architecture).copied()
    }

    fn get(&self, slot: usize) -> Option<&StatusEntry> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    fn remove(&mut self, slot: usize) {
        let Some(old) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if let Some(instances) = self.index.get_mut(&old.package) {
            instances.remove(&old.architecture);
            if instances.is_empty() {
                self.index.remove(&old.package);
            }
        }
        self.live = self.live.saturating_sub(1);
    }

    /// dpkg refuses several instances of a package unless all are Multi-Arch: same
    /// (`parse_find_set_slot`): they would share one set of info files.
    pub(super) fn check_instances(&self) -> Result<(), DpkgError> {
        for (package, instances) in &self.index {
            let all_same: bool = instances
                .values()
                .all(|&slot| self.get(slot).is_some_and(|entry| entry.multi_arch_same));
            if instances.len() > 1 && !all_same {
                let architectures: Vec<&str> = instances
                    .keys()
                    .map(|architecture| architecture.as_deref().unwrap_or("no architecture"))
                    .collect();
                return Err(DpkgError::NotCoInstallable {
                    package: package.clone(),
                    architectures: architectures.join(", "),
                });
            }
        }
        Ok(())
    }

    pub(super) fn into_entries(self) -> Vec<StatusEntry> {
        self.slots.into_iter().flatten().collect()
    }
}

pub(super) fn merge_paragraphs(
    database: &mut Database,
    bytes: &[u8],
    source: Source,
    limits: &Limits,
) -> Result<(), DpkgError> {
    let mut reader: ParagraphReader<'_> = ParagraphReader::new(bytes, limits)?;
    while let Some(paragraph) = reader.next_paragraph()? {
        database.merge(status_entry(&paragraph, limits)?, source);
        if database.live > limits.max_entries {
            return Err(DpkgError::TooManyEntries {
                line: paragraph.line,
                limit: limits.max_entries,
            });
        }
    }
    Ok(())
}
