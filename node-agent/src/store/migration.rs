//! The one-time migration of a format-1 store, written before agent state was keyed by
//! namespace: each entity's baseline moves under the namespace of the configured workspace of
//! its name. An entity no configured workspace can own (none has that name, or two namespaces
//! have a workspace of that name holding that entity) is dropped and baselined again rather than
//! given to the wrong tenant. Queued records carry their namespace and are all kept.

use std::sync::atomic::Ordering;

use kubefim_crds::WorkspaceConfig;

use super::{
    BaselineStore, EntityKey, FORMAT, FORMAT_KEY,
    entity::{ENTITY_PREFIX, LegacyEntity},
    queue,
};
use crate::{Result, config::WorkspaceKey};

/// What a one-time migration of a format-1 store did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// Entities whose baseline now lives under their namespace.
    pub moved: Vec<EntityKey>,
    /// (workspace, entity) baselines dropped: no configured workspace, or two namespaces
    /// with a workspace of that name and entity could have owned them.
    pub dropped: Vec<(String, String)>,
}

/// The one configured workspace named `workspace` (holding `entity`, when given), if exactly
/// one can be told.
fn owner(workspaces: &[WorkspaceConfig], workspace: &str, entity: Option<&str>) -> Option<WorkspaceKey> {
    let named: Vec<&WorkspaceConfig> = workspaces.iter().filter(|w| w.name == workspace).collect();
    let holding: Vec<&&WorkspaceConfig> = named
        .iter()
        .filter(|w| entity.is_none_or(|e| w.entities.iter().any(|c| c.name == e)))
        .collect();
    match (named.as_slice(), holding.as_slice()) {
        ([only], _) => Some(WorkspaceKey::of(only)),
        (_, [only]) => Some(WorkspaceKey::of(only)),
        _ => None,
    }
}

impl BaselineStore {
    /// Whether this is a format-1 store not yet migrated.
    fn is_legacy(&self) -> bool {
        self.legacy.load(Ordering::Acquire)
    }

    /// Migrates a format-1 store once, with the namespaces `workspaces` give; None when there
    /// was nothing to migrate.
    pub fn migrate_legacy(&self, workspaces: &[WorkspaceConfig]) -> Result<Option<Migration>> {
        if !self.is_legacy() {
            return Ok(None);
        }
        let legacy: Vec<LegacyEntity> = self
            .meta_entries(ENTITY_PREFIX)?
            .iter()
            .filter_map(|(key, _)| LegacyEntity::from_meta_key(key))
            .collect();
        let update = self.update()?;
        let mut migration = Migration::default();
        for old in legacy {
            let identity = update.put_meta(&old.meta_key(), None)?;
            let Some(workspace) = owner(workspaces, &old.workspace, Some(&old.entity)) else {
                update.delete_table(&old.records_table())?;
                update.delete_table(&old.content_table())?;
                migration.dropped.push((old.workspace, old.entity));
                continue;
            };
            let new = EntityKey {
                workspace,
                entity: old.entity.clone(),
            };
            update.rename_table(&old.records_table(), &new.records_table())?;
            update.rename_table(&old.content_table(), &new.content_table())?;
            if let Some(identity) = identity {
                update.put_meta(&new.meta_key(), Some(&identity))?;
            }
            migration.moved.push(new);
        }
        update.put_meta(FORMAT_KEY, Some(FORMAT))?;
        queue::migrate_legacy(&update, &|workspace: &str| owner(workspaces, workspace, None))?;
        update.commit()?;
        self.legacy.store(false, Ordering::Release);
        Ok(Some(migration))
    }
}
