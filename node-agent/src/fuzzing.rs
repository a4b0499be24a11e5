//! The entry points of the fuzz targets (`fuzz/`, run by scripts/fuzz.sh) and of their
//! regression test (`tests/fuzz_regressions.rs`): what root on the node can feed the agent,
//! read as the agent reads it. Each must return, whatever the bytes; an error is an answer, a
//! panic, a hang or unbounded memory is a finding.

use crate::packages::{alternatives, apk, dpkg, rpm, sqlite};

/// The first byte picks the file: a status database (with an update file applied over it when
/// the data holds a NUL to split on), an md5sums file, a list file or an update-alternatives
/// group file.
pub fn dpkg(data: &[u8]) {
    let limits = dpkg::Limits::default();
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let (status, update) = match rest.iter().position(|b| *b == 0) {
                Some(at) => (&rest[..at], Some(&rest[at + 1..])),
                None => (rest, None),
            };
            if let (Ok(mut entries), Some(update)) = (dpkg::parse_status(status, &limits), update) {
                let _ = dpkg::apply_update(&mut entries, update, &limits);
            }
        }
        1 => {
            let _ = dpkg::parse_md5sums(rest, &limits);
        }
        2 => {
            let _ = dpkg::parse_list(rest, &limits);
        }
        _ => {
            let _ = alternatives::Alternatives::parse_group("fuzzed", rest);
        }
    }
}

/// One header blob of rpmdb.sqlite's Packages table.
pub fn rpm_header(data: &[u8]) {
    if let Ok(package) = rpm::parse_header(data, 10_000) {
        let _ = package.evr();
    }
}

/// A whole rpmdb.sqlite, with the limits the agent reads it under scaled down so that one input
/// stays fast.
pub fn sqlite(data: &[u8]) {
    let limits = sqlite::Limits {
        max_pages_visited: 10_000,
        max_rows: 10_000,
        max_record_bytes: 1 << 20,
    };
    if let Ok(db) = sqlite::Database::open(data, None, limits) {
        let _ = rpm::packages(&db, 10_000);
        let _ = db.table_rows("sqlite_master");
    }
}

/// Alpine's installed database.
pub fn apk(data: &[u8]) {
    let _ = apk::parse_installed(data, &apk::Limits::default());
}

/// A standalone configuration file (UTF-8 only: the agent reads it as text).
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::parse_standalone(text, "fuzz-node");
    }
}
