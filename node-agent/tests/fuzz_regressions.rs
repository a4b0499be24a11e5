//! Every input the fuzz targets were seeded with from the repository and every input they
//! found failing (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`), replayed through the
//! same entry points (`kubefim_agent::fuzzing`), so that a fixed crash stays fixed. The
//! directories are read at test time: an input scripts/fuzz.sh copies there is replayed from
//! the next run on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic with the failure

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for kind in ["seeds", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for file in dir {
            let path = file.unwrap().path();
            entry(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_fuzz_input_kept_in_the_repository_is_read_without_a_panic() {
    use kubefim_agent::fuzzing;
    let replayed: usize = [
        replay("dpkg", fuzzing::dpkg),
        replay("rpm_header", fuzzing::rpm_header),
        replay("sqlite", fuzzing::sqlite),
        replay("apk", fuzzing::apk),
        replay("config", fuzzing::config),
    ]
    .iter()
    .sum();
    assert!(
        replayed >= 1,
        "fuzz/seeds/apk holds a seed: the directories were not found"
    );
}

#[test]
fn the_apk_seed_is_a_database_the_reader_accepts() {
    // A seed the reader refuses would fuzz the error path only.
    let seed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/apk/installed")).unwrap();
    let packages = kubefim_agent::packages::apk::parse_installed(&seed, &Default::default()).unwrap();
    assert_eq!(packages.len(), 3);
}
