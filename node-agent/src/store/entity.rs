//! What identifies an entity's baseline: the key its tables are named by, (namespace,
//! workspace, entity), and the identity (fingerprint and baseline revision) it was built for;
//! and which entities the store holds, recording and forgetting them.
//! Names are Kubernetes object names, which never hold a `/`, so `/` separates the parts.

use super::{BaselineStore, Update};
use crate::{
    Result,
    config::WorkspaceKey,
    records::{EntityBaseline, encode_json},
};

/// Which entity's tables: (namespace, workspace, entity).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntityKey {
    pub workspace: WorkspaceKey,
    pub entity: String,
}

/// The prefix of the meta keys naming entities.
pub(super) const ENTITY_PREFIX: &str = "entity/";

impl EntityKey {
    pub fn new(namespace: &str, workspace: &str, entity: &str) -> Self {
        Self {
            workspace: WorkspaceKey::new(namespace, workspace),
            entity: entity.to_string(),
        }
    }

    fn path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.workspace.namespace, self.workspace.name, self.entity
        )
    }

    pub(super) fn meta_key(&self) -> String {
        format!("{ENTITY_PREFIX}{}", self.path())
    }

    pub(super) fn records_table(&self) -> String {
        format!("base/{}", self.path())
    }

    pub(super) fn content_table(&self) -> String {
        format!("content/{}", self.path())
    }

    /// The key a meta entry names, in this format (`entity/<ns>/<ws>/<entity>`).
    pub(super) fn from_meta_key(key: &str) -> Option<Self> {
        let mut parts = key.strip_prefix(ENTITY_PREFIX)?.splitn(3, '/');
        let (namespace, workspace, entity) = (parts.next()?, parts.next()?, parts.next()?);
        (!entity.contains('/')).then(|| Self::new(namespace, workspace, entity))
    }
}

impl BaselineStore {
    /// The entities that have a baseline.
    pub fn entities(&self) -> Result<Vec<EntityKey>> {
        Ok(self
            .meta_entries(ENTITY_PREFIX)?
            .iter()
            .filter_map(|(key, _)| EntityKey::from_meta_key(key))
            .collect())
    }
}

impl Update<'_> {
    pub fn set_entity_baseline(&self, entity: &EntityKey, baseline: &EntityBaseline) -> Result<()> {
        let bytes = encode_json("an entity's baseline identity", baseline)?;
        self.put_meta(&entity.meta_key(), Some(&bytes)).map(|_| ())
    }

    /// Forgets an entity entirely (records, content, identity).
    pub fn drop_entity(&self, entity: &EntityKey) -> Result<()> {
        self.delete_table(&entity.records_table())?;
        self.delete_table(&entity.content_table())?;
        self.put_meta(&entity.meta_key(), None).map(|_| ())
    }

    /// Drops every entity `stale` says is no longer configured; returns how many were dropped.
    pub fn drop_entities_where(&self, stale: impl Fn(&EntityKey) -> bool) -> Result<usize> {
        let mut dropped = 0;
        for entity in self.store.entities()? {
            if stale(&entity) {
                self.drop_entity(&entity)?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// An entity of a store written before keys held the namespace (format 1):
/// `entity/<ws>/<entity>`, tables `base/<ws>/<entity>` and `content/<ws>/<entity>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LegacyEntity {
    pub workspace: String,
    pub entity: String,
}

impl LegacyEntity {
    pub(super) fn from_meta_key(key: &str) -> Option<Self> {
        let (workspace, entity) = key.strip_prefix(ENTITY_PREFIX)?.split_once('/')?;
        (!entity.contains('/')).then(|| Self {
            workspace: workspace.to_string(),
            entity: entity.to_string(),
        })
    }

    pub(super) fn meta_key(&self) -> String {
        format!("{ENTITY_PREFIX}{}/{}", self.workspace, self.entity)
    }

    pub(super) fn records_table(&self) -> String {
        format!("base/{}/{}", self.workspace, self.entity)
    }

    pub(super) fn content_table(&self) -> String {
        format!("content/{}/{}", self.workspace, self.entity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_round_trip_and_formats_are_told_apart() {
        let key = EntityKey::new("team-b", "default", "recommended.etc-conf");
        assert_eq!(key.meta_key(), "entity/team-b/default/recommended.etc-conf");
        assert_eq!(EntityKey::from_meta_key(&key.meta_key()), Some(key));
        let legacy = LegacyEntity::from_meta_key("entity/default/app").unwrap();
        assert_eq!(
            (legacy.workspace.as_str(), legacy.entity.as_str()),
            ("default", "app")
        );
        assert_eq!(LegacyEntity::from_meta_key("entity/a/b/c"), None);
        assert_eq!(EntityKey::from_meta_key("entity/a/b"), None);
    }
}
