//! The baseline store on real files: state keyed by (namespace, workspace, entity), the
//! one-time migration of a store written by the previous format, and what happens to a store
//! that is corrupt, foreign or written by another format. The fixture
//! tests/fixtures/store-v1/baseline.redb was written by the agent before keys held the namespace
//! (see its README).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use common::{Fixture, node::cluster_workspace, only_change};
use kubefim_agent::{
    config::WorkspaceKey,
    scan::ScanMode,
    store::{BaselineStore, EntityKey, FILE_NAME, OpenOutcome},
};
use kubefim_crds::{ChangeCategory, WorkspaceConfig, filechange::ChangedAttribute};
use serde_json::json;

#[test]
fn two_workspaces_of_one_name_in_two_namespaces_keep_their_own_baselines() {
    let fx = Fixture::new();
    fx.write("/srv/app.conf", "v1\n");
    let (kubefim, team_b) = (
        cluster_workspace("kubefim-system", "default"),
        cluster_workspace("team-b", "default"),
    );
    fx.init(&kubefim);
    fx.init(&team_b);
    for round in 0..3 {
        // Each scan of one must leave the other's baseline alone: nothing is re-baselined.
        let (a, _) = fx.scan(&kubefim, ScanMode::Detect);
        let (b, _) = fx.scan(&team_b, ScanMode::Detect);
        assert!(
            !a.entities[0].baselined && !b.entities[0].baselined,
            "round {round}: a scan dropped the other workspace's baseline"
        );
    }
    fx.write("/srv/app.conf", "v2, changed\n");
    for ws in [&kubefim, &team_b] {
        let changes = fx.detect(ws);
        let change = only_change(&changes, "/srv/app.conf");
        assert_eq!(
            (change.namespace.as_str(), change.category),
            (ws.namespace.as_str(), ChangeCategory::Modified)
        );
    }
    let mut entities = fx.store.entities().unwrap();
    entities.sort();
    assert_eq!(
        entities,
        [
            EntityKey::new("kubefim-system", "default", "app"),
            EntityKey::new("team-b", "default", "app")
        ]
    );
}

/// The workspace the fixture was written for, now known to be in namespace `fim`.
fn fixture_workspace() -> WorkspaceConfig {
    serde_json::from_value(json!({
        "name": "prod", "namespace": "fim", "uid": "ws-uid",
        "entities": [
            {"name": "app", "type": "LinuxFile", "path": "/srv/app", "recursive": true},
            {"name": "hosts", "type": "FileContent", "path": "/etc/hosts"}
        ],
    }))
    .unwrap()
}

#[test]
fn a_store_of_the_previous_format_is_migrated_once_without_a_silent_rebaseline() {
    let Fixture {
        host,
        state,
        root,
        store,
    } = Fixture::new();
    drop(store);
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/store-v1/baseline.redb"
        ),
        state.path().join(FILE_NAME),
    )
    .unwrap();
    let (store, opened) = BaselineStore::open(state.path()).unwrap();
    assert_eq!(opened, OpenOutcome::Opened);
    let fx = Fixture {
        host,
        state,
        root,
        store,
    };
    // The host as the fixture last saw it: same contents, but new inodes and times.
    fx.write("/srv/app/a.conf", "alpha changed\n");
    fx.write("/srv/app/b.conf", "beta\n");
    fx.write("/etc/hosts", "127.0.0.1 localhost\n");
    let ws = fixture_workspace();
    let migration = fx
        .store
        .migrate_legacy(std::slice::from_ref(&ws))
        .unwrap()
        .unwrap();
    assert_eq!(migration.moved.len(), 2);
    assert!(migration.dropped.is_empty());
    assert_eq!(
        fx.store.migrate_legacy(std::slice::from_ref(&ws)).unwrap(),
        None,
        "only once"
    );

    let key = WorkspaceKey::new("fim", "prod");
    let outbox = fx.store.queue();
    assert_eq!(
        outbox.lanes().unwrap(),
        std::slice::from_ref(&key),
        "queued records moved to their lane"
    );
    assert_eq!(outbox.depth_of(&key).unwrap(), 2);
    let fixture_day: jiff::Timestamp = "2026-11-25T23:00:00Z".parse().unwrap();
    let counts = outbox.daily_counts(&key, fixture_day).unwrap();
    assert_eq!(counts.iter().map(|c| c.by_category.modified).sum::<u64>(), 2);

    let (outcome, changes) = fx.scan(&ws, ScanMode::Detect);
    assert!(
        outcome.entities.iter().all(|e| !e.baselined),
        "migrated entities keep their baseline: {outcome:#?}"
    );
    let a = only_change(&changes, "/srv/app/a.conf");
    assert!(
        !a.changed.contains(&ChangedAttribute::Content),
        "same content as the baseline: {a:?}"
    );
    let hosts = only_change(&changes, "/etc/hosts");
    assert!(
        hosts.diff.as_ref().unwrap().text.contains("-10.0.0.9 evil"),
        "the kept content moved too: {hosts:?}"
    );
}

#[test]
fn a_migration_drops_what_no_configured_workspace_can_own() {
    let Fixture { state, store, .. } = Fixture::new();
    drop(store);
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/store-v1/baseline.redb"
        ),
        state.path().join(FILE_NAME),
    )
    .unwrap();
    let (store, _) = BaselineStore::open(state.path()).unwrap();
    // Two namespaces with a workspace named prod and both entities: whose baseline was it?
    let mut other = fixture_workspace();
    other.namespace = "team-b".into();
    let migration = store
        .migrate_legacy(&[fixture_workspace(), other])
        .unwrap()
        .unwrap();
    assert!(migration.moved.is_empty());
    assert_eq!(migration.dropped.len(), 2);
    assert!(store.entities().unwrap().is_empty());
    assert_eq!(
        store.queue().depth().unwrap(),
        2,
        "queued records carry their namespace and are never dropped"
    );
}

#[test]
fn a_corrupt_store_is_moved_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(FILE_NAME),
        b"this is not a redb file, it is a note left by someone",
    )
    .unwrap();
    let (store, outcome) = BaselineStore::open(dir.path()).unwrap();
    let OpenOutcome::Rebuilt {
        moved_to, salvaged, ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(moved_to.exists());
    assert_eq!(salvaged, 0);
    assert!(store.entities().unwrap().is_empty());
    drop(store);
    assert_eq!(BaselineStore::open(dir.path()).unwrap().1, OpenOutcome::Opened);
}

#[test]
fn a_store_another_holder_has_open_is_refused_and_never_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (held, _) = BaselineStore::open(dir.path()).unwrap();
    let generation = held.generation().to_string();
    let refused = BaselineStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(refused, kubefim_agent::Error::StoreInUse { .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("another process"), "{refused}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, [FILE_NAME], "nothing moved aside, nothing created");
    drop(held);
    let (reopened, outcome) = BaselineStore::open(dir.path()).unwrap();
    assert_eq!(outcome, OpenOutcome::Opened);
    assert_eq!(reopened.generation(), generation, "the same store, no reset");
}

#[test]
fn a_store_of_another_format_is_rebuilt_with_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("format", b"someone-else/9".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let (store, outcome) = BaselineStore::open(dir.path()).unwrap();
    assert!(
        matches!(outcome, OpenOutcome::Rebuilt { ref reason, .. } if reason.contains("someone-else")),
        "{outcome:?}"
    );
    let generation = store.generation().to_string();
    drop(store);
    let (reopened, _) = BaselineStore::open(dir.path()).unwrap();
    assert_eq!(
        reopened.generation(),
        generation,
        "a generation is made once, with the store"
    );
}
