//! The parallel walk is the sequential walk, item for item, in the same order: the merge-join
//! against the baseline depends on it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

mod common;

use std::{fs, os::unix::fs::PermissionsExt};

use common::*;
use kubefim_agent::{
    resolve::{ResolvedEntity, resolve},
    walk::{ParallelWalk, WalkItem, Walker},
};
use kubefim_crds::{EntityType, HashAlgorithm};

/// What a walk yields, reduced to what the merge-join compares.
fn summary(item: &WalkItem) -> String {
    match item {
        WalkItem::Entry(entry) => format!(
            "{} {:?} {} {} {:?}",
            String::from_utf8_lossy(&entry.key),
            entry.meta.file_type,
            entry.meta.size,
            entry.depth,
            entry.link_target
        ),
        WalkItem::Unreadable { key, kind, .. } => {
            format!("{} unreadable {kind:?}", String::from_utf8_lossy(key))
        }
    }
}

fn resolved(path: &str, recursive: bool, exclude: &[&str]) -> ResolvedEntity {
    let mut config = entity("tree", EntityType::LinuxFile, path, recursive);
    config.exclude = exclude.iter().map(|e| e.to_string()).collect();
    resolve(&config, HashAlgorithm::Sha256, |_| None).unwrap()
}

fn both_ways(fx: &Fixture, entity: &ResolvedEntity, workers: usize) -> (Vec<String>, Vec<String>) {
    let sequential: Vec<String> = Walker::new(&fx.root, entity).map(|i| summary(&i)).collect();
    let parallel = std::thread::scope(|scope| {
        ParallelWalk::new(scope, &fx.root, entity, workers)
            .map(|i| summary(&i))
            .collect::<Vec<_>>()
    });
    (sequential, parallel)
}

/// A tree with wide and deep directories, symlinks, excluded names and an unreadable directory.
fn tree(fx: &Fixture) {
    for top in 0..40 {
        for sub in 0..(top % 7) {
            for file in 0..(top * 3 % 11) {
                fx.write(
                    &format!("/srv/d{top:02}/s{sub}/f{file}"),
                    format!("{top}{sub}{file}"),
                );
            }
            fx.write(&format!("/srv/d{top:02}/s{sub}/deep/er/still/leaf.conf"), "leaf");
        }
        fx.write(&format!("/srv/f{top:02}.log"), "top-level file");
    }
    fs::create_dir_all(fx.path("/srv/empty")).unwrap();
    std::os::unix::fs::symlink("d01", fx.path("/srv/link-to-dir")).unwrap();
    std::os::unix::fs::symlink("..", fx.path("/srv/d03/up")).unwrap();
    // Unreadable to an unprivileged run only: as root (CI) it is walked like any directory, and
    // the order of `Unreadable` items is checked by the safety tests' unreadable-directory case.
    fx.write("/srv/locked/secret", "x");
    fs::set_permissions(fx.path("/srv/locked"), fs::Permissions::from_mode(0o000)).unwrap();
}

#[test]
fn the_parallel_walk_yields_the_sequential_walk_in_order() {
    let fx = Fixture::new();
    tree(&fx);
    let entity = resolved("/srv", true, &["*.log", "/srv/d05"]);
    for workers in [0, 1, 2, 7] {
        let (sequential, parallel) = both_ways(&fx, &entity, workers);
        assert!(sequential.len() > 400, "the tree is walked: {}", sequential.len());
        assert_eq!(sequential, parallel, "{workers} workers");
    }
    fs::set_permissions(fx.path("/srv/locked"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_parallel_walk_keeps_patterns_and_single_levels() {
    let fx = Fixture::new();
    tree(&fx);
    for entity in [
        resolved("/srv/d1*", true, &[]),
        resolved("/srv", false, &[]),
        resolved("/srv/d02/s0/f1", false, &[]),
        resolved("/srv/missing", true, &[]),
    ] {
        let (sequential, parallel) = both_ways(&fx, &entity, 2);
        assert_eq!(sequential, parallel, "{}", entity.path);
    }
    fs::set_permissions(fx.path("/srv/locked"), fs::Permissions::from_mode(0o755)).unwrap();
}
