//! LinuxService entities: systemd units read from the host's unit directories, without D-Bus.
//! A unit's state is its effective definition: the content hash of the unit file that wins by
//! systemd's precedence (or where it links to when masked or aliased), every drop-in that
//! applies to it, and whether it is enabled (linked from a `*.wants` or `*.requires` directory
//! under /etc/systemd/system).
//!
//! Drop-ins (`systemctl edit` writes `/etc/systemd/system/<unit>.d/override.conf`, which can
//! replace `ExecStart` of a trusted unit: MITRE ATT&CK T1543.002) are the `*.conf` files of the
//! unit's `.d` directories: `<unit>.d`, the template's `<name>@.<type>.d`, each dash prefix
//! (`foo-.service.d` for `foo-bar.service`) and the type's own (`service.d`), in every unit
//! directory. Of the files of one name the one of highest precedence applies: /etc over /run
//! over /lib over /usr/lib, then the most specific directory; a drop-in linked to /dev/null
//! masks the ones of its name below it.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::CString,
};

use globset::GlobMatcher;
use kubefim_crds::FileType;

use crate::{
    hash::{self, HashLimits},
    hostfs::{self, FsErrorKind, HostRoot},
    records::{DropIn, Record},
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

/// What could not be read while observing units: the unit whose state is therefore unknown, or
/// `None` when it could be any unit (a unit directory or the enablement links unreadable).
/// Either way its stored state is kept: not knowing is not the same as removed or changed.
#[derive(Debug, PartialEq, Eq)]
pub struct UnitError {
    pub unit: Option<String>,
    pub kind: FsErrorKind,
}

/// The units matching `pattern` whose state is known, sorted by name, plus what could not be
/// read. A unit with an error is left out of the first list; when any unit could be affected
/// (an unreadable unit directory or `*.wants` directory), the first list is empty.
pub fn observe_units(
    root: &HostRoot,
    pattern: &GlobMatcher,
    limits: HashLimits,
    now: i64,
) -> (Vec<ObservedUnit>, Vec<UnitError>) {
    let mut errors = Vec::new();
    let enabled = enabled_units(root, &mut errors);
    let mut drop_ins = DropIns::default();
    let mut units: BTreeMap<String, Record> = BTreeMap::new();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    for dir_name in UNIT_DIRS {
        let listed = root
            .open_dir(&components(dir_name))
            .and_then(|dir| hostfs::list_sorted(&dir).map(|names| (dir, names)));
        let (dir, names) = match listed {
            Ok(listed) => listed,
            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => continue,
            Err(errno) => {
                // Which units this directory holds, and so which copy of a unit wins, is unknown.
                errors.push(UnitError {
                    unit: None,
                    kind: FsErrorKind::from_errno(errno),
                });
                continue;
            }
        };
        drop_ins.note_dirs(dir_name, &names);
        for name in names {
            let unit = String::from_utf8_lossy(name.to_bytes()).into_owned();
            if !is_unit_name(&unit)
                || !pattern.is_match(&unit)
                || units.contains_key(&unit)
                || unknown.contains(&unit)
            {
                continue;
            }
            match observe_unit(&dir, &name, limits, now, enabled.contains(&unit)) {
                Ok(Some(record)) => {
                    units.insert(unit, record);
                }
                Ok(None) => {}
                // A lower-precedence copy must not stand in for the unreadable one.
                Err(kind) => {
                    unknown.insert(unit.clone());
                    errors.push(UnitError {
                        unit: Some(unit),
                        kind,
                    });
                }
            }
        }
    }
    if errors.iter().any(|e| e.unit.is_none()) {
        return (Vec::new(), errors);
    }
    let mut observed = Vec::with_capacity(units.len());
    for (name, mut record) in units {
        match drop_ins.of(root, &name, limits) {
            Ok(applying) => {
                record.drop_ins = applying;
                observed.push(ObservedUnit { name, record });
            }
            Err(kind) => errors.push(UnitError {
                unit: Some(name),
                kind,
            }),
        }
    }
    (observed, errors)
}

/// The drop-in directories of the unit directories, listed once per scan.
#[derive(Default)]
struct DropIns {
    /// Per unit directory (in precedence order), the names of its `*.d` entries.
    dirs: Vec<(&'static str, BTreeSet<String>)>,
    /// The `*.conf` names of each drop-in directory read so far, or why it could not be read.
    listed: BTreeMap<String, Result<Vec<CString>, FsErrorKind>>,
}

impl DropIns {
    fn note_dirs(&mut self, dir_name: &'static str, names: &[CString]) {
        let dirs = names
            .iter()
            .map(|n| String::from_utf8_lossy(n.to_bytes()).into_owned())
            .filter(|n| n.ends_with(".d"))
            .collect();
        self.dirs.push((dir_name, dirs));
    }

    /// The drop-ins that apply to `unit`, by file name; the first error met when one that may
    /// apply cannot be read (the unit's effective definition is then unknown).
    fn of(&mut self, root: &HostRoot, unit: &str, limits: HashLimits) -> Result<Vec<DropIn>, FsErrorKind> {
        let variants = drop_in_dir_names(unit);
        let mut applying: BTreeMap<Vec<u8>, DropIn> = BTreeMap::new();
        for (dir_name, present) in &self.dirs {
            for variant in variants.iter().filter(|v| present.contains(*v)) {
                let path = format!("{dir_name}/{variant}");
                let names = self
                    .listed
                    .entry(path.clone())
                    .or_insert_with(|| {
                        match root
                            .open_dir(&components(&path))
                            .and_then(|d| hostfs::list_sorted(&d))
                        {
                            Ok(names) => Ok(names
                                .into_iter()
                                .filter(|n| n.to_bytes().ends_with(b".conf"))
                                .collect()),
                            Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => {
                                Ok(Vec::new())
                            }
                            Err(errno) => Err(FsErrorKind::from_errno(errno)),
                        }
                    })
                    .clone()?;
                for name in names {
                    if applying.contains_key(name.to_bytes()) {
                        continue;
                    }
                    if let Some(drop_in) = observe_drop_in(root, &path, &name, limits)? {
                        applying.insert(name.to_bytes().to_vec(), drop_in);
                    }
                }
            }
        }
        Ok(applying.into_values().collect())
    }
}

/// The names of the directories whose drop-ins apply to `unit`, most specific first:
/// `foo-bar@x.service.d`, `foo-bar@.service.d`, `foo-bar-.service.d`, `foo-.service.d`,
/// `service.d`.
fn drop_in_dir_names(unit: &str) -> Vec<String> {
    let Some((stem, kind)) = unit.rsplit_once('.') else {
        return Vec::new();
    };
    let mut names = vec![format!("{unit}.d")];
    if let Some((template, _)) = stem.split_once('@') {
        names.push(format!("{template}@.{kind}.d"));
    }
    let prefix_of = stem.split_once('@').map_or(stem, |(template, _)| template);
    for (i, _) in prefix_of.match_indices('-').collect::<Vec<_>>().into_iter().rev() {
        names.push(format!("{}.{kind}.d", &prefix_of[..=i]));
    }
    names.push(format!("{kind}.d"));
    names
}

fn observe_drop_in(
    root: &HostRoot,
    dir_path: &str,
    name: &CString,
    limits: HashLimits,
) -> Result<Option<DropIn>, FsErrorKind> {
    let dir = match root.open_dir(&components(dir_path)) {
        Ok(dir) => dir,
        Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => return Ok(None),
        Err(errno) => return Err(FsErrorKind::from_errno(errno)),
    };
    let path = format!("/{dir_path}/{}", String::from_utf8_lossy(name.to_bytes()));
    let meta = match hostfs::stat_at(&dir, name) {
        Ok(meta) => meta,
        Err(errno) if FsErrorKind::from_errno(errno) == FsErrorKind::Vanished => return Ok(None),
        Err(errno) => return Err(FsErrorKind::from_errno(errno)),
    };
    Ok(match meta.file_type {
        FileType::File => Some(DropIn {
            path,
            digest: hash::hash_file(&dir, name, limits, None)?.digest,
            link_target: None,
        }),
        FileType::Symlink => Some(DropIn {
            path,
            digest: None,
            link_target: hostfs::read_link_at(&dir, name).ok(),
        }),
        _ => None,
    })
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
        drop_ins: Vec::new(),
        hidden: false,
        attributes: None,
    }))
}

/// Units linked from `*.wants` / `*.requires` under /etc/systemd/system. A link directory that
/// cannot be read leaves any unit's enablement unknown.
fn enabled_units(root: &HostRoot, errors: &mut Vec<UnitError>) -> BTreeSet<String> {
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
            Err(errno) => errors.push(UnitError {
                unit: None,
                kind: FsErrorKind::from_errno(errno),
            }),
        }
    }
    enabled
}
