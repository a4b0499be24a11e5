//! LinuxService entities: systemd units read from the host's unit directories, without D-Bus.
//! A unit's state is its definition (the content hash of the unit file that wins by systemd's
//! precedence, or where it links to when masked or aliased) and whether it is enabled (linked
//! from a `*.wants` or `*.requires` directory under /etc/systemd/system).

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::CString,
};

use globset::GlobMatcher;
use kubefim_crds::FileType;

use crate::{
    hash::{self, HashLimits},
    hostfs::{self, FsErrorKind, HostRoot},
    store::Record,
};

/// Unit directories in systemd's precedence order (the first that has a unit wins).
pub const UNIT_DIRS: [&str; 4] = [
    "etc/systemd/system",
    "run/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
];
/// Where administrators enable units.
const ENABLEMENT_DIR: &str = "etc/systemd/system";
const UNIT_SUFFIXES: [&str; 10] = [
    ".service",
    ".socket",
    ".timer",
    ".target",
    ".path",
    ".mount",
    ".automount",
    ".swap",
    ".slice",
    ".scope",
];

fn components(dir: &str) -> Vec<Vec<u8>> {
    dir.split('/').map(|s| s.as_bytes().to_vec()).collect()
}

fn is_unit_name(name: &str) -> bool {
    UNIT_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// One unit as observed now.
#[derive(Debug)]
pub struct ObservedUnit {
    pub name: String,
    pub record: Record,
}

/// The units matching `pattern`, sorted by name, plus the errors met.
pub fn observe_units(
    root: &HostRoot,
    pattern: &GlobMatcher,
    limits: HashLimits,
    now: i64,
) -> (Vec<ObservedUnit>, Vec<(String, FsErrorKind)>) {
    let mut errors = Vec::new();
    let enabled = enabled_units(root, &mut errors);
    let mut units: BTreeMap<String, Record> = BTreeMap::new();
    for dir_name in UNIT_DIRS {
        let dir = match root.open_dir(&components(dir_name)) {
            Ok(dir) => dir,
            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => continue,
            Err(errno) => {
                errors.push((format!("/{dir_name}"), FsErrorKind::from_errno(errno)));
                continue;
            }
        };
        let names = match hostfs::list_sorted(&dir) {
            Ok(names) => names,
            Err(errno) => {
                errors.push((format!("/{dir_name}"), FsErrorKind::from_errno(errno)));
                continue;
            }
        };
        for name in names {
            let unit = String::from_utf8_lossy(name.to_bytes()).into_owned();
            if !is_unit_name(&unit) || !pattern.is_match(&unit) || units.contains_key(&unit) {
                continue;
            }
            match observe_unit(&dir, &name, limits, now, enabled.contains(&unit)) {
                Ok(Some(record)) => {
                    units.insert(unit, record);
                }
                Ok(None) => {}
                Err(kind) => errors.push((format!("/{dir_name}/{unit}"), kind)),
            }
        }
    }
    let units = units
        .into_iter()
        .map(|(name, record)| ObservedUnit { name, record })
        .collect();
    (units, errors)
}

fn observe_unit(
    dir: &std::os::fd::OwnedFd,
    name: &CString,
    limits: HashLimits,
    now: i64,
    enabled: bool,
) -> Result<Option<Record>, FsErrorKind> {
    let mut meta = match hostfs::stat_at(dir, name) {
        Ok(meta) => meta,
        Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => return Ok(None),
        Err(errno) => return Err(FsErrorKind::from_errno(errno)),
    };
    let (digest, link_target) = match meta.file_type {
        FileType::File => {
            // Unit files are a few hundred bytes: not worth a read rate.
            let hashed = hash::hash_file(dir, name, limits, None)?;
            meta = hashed.meta;
            (hashed.digest, None)
        }
        // Masked (-> /dev/null) or aliased units: where they point is their definition.
        FileType::Symlink => (None, hostfs::read_link_at(dir, name).ok()),
        _ => return Ok(None),
    };
    meta.file_type = FileType::Unit;
    Ok(Some(Record {
        meta,
        link_target,
        digest,
        hashed_at: now,
        enabled: Some(enabled),
    }))
}

/// Units linked from `*.wants` / `*.requires` under /etc/systemd/system.
fn enabled_units(root: &HostRoot, errors: &mut Vec<(String, FsErrorKind)>) -> BTreeSet<String> {
    let mut enabled = BTreeSet::new();
    let Ok(dir) = root.open_dir(&components(ENABLEMENT_DIR)) else {
        return enabled;
    };
    let Ok(names) = hostfs::list_sorted(&dir) else {
        return enabled;
    };
    for name in names {
        let text = String::from_utf8_lossy(name.to_bytes());
        if !(text.ends_with(".wants") || text.ends_with(".requires")) {
            continue;
        }
        match hostfs::open_subdir(&dir, &name).and_then(|sub| hostfs::list_sorted(&sub)) {
            Ok(links) => enabled.extend(
                links
                    .iter()
                    .map(|l| String::from_utf8_lossy(l.to_bytes()).into_owned()),
            ),
            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => {}
            Err(errno) => errors.push((
                format!("/{ENABLEMENT_DIR}/{text}"),
                FsErrorKind::from_errno(errno),
            )),
        }
    }
    enabled
}
