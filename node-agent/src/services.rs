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
    store::{DropIn, Record},
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
    let mut drop_ins = DropIns::default();
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
        drop_ins.note_dirs(dir_name, &names);
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
        .map(|(name, mut record)| {
            record.drop_ins = drop_ins.of(root, &name, limits, &mut errors);
            ObservedUnit { name, record }
        })
        .collect();
    (units, errors)
}

/// The drop-in directories of the unit directories, listed once per scan.
#[derive(Default)]
struct DropIns {
    /// Per unit directory (in precedence order), the names of its `*.d` entries.
    dirs: Vec<(&'static str, BTreeSet<String>)>,
    /// The `*.conf` names of each drop-in directory read so far.
    listed: BTreeMap<String, Vec<CString>>,
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

    /// The drop-ins that apply to `unit`, by file name.
    fn of(
        &mut self,
        root: &HostRoot,
        unit: &str,
        limits: HashLimits,
        errors: &mut Vec<(String, FsErrorKind)>,
    ) -> Vec<DropIn> {
        let variants = drop_in_dir_names(unit);
        let mut applying: BTreeMap<Vec<u8>, DropIn> = BTreeMap::new();
        for (dir_name, present) in &self.dirs {
            for variant in variants.iter().filter(|v| present.contains(*v)) {
                let path = format!("{dir_name}/{variant}");
                let names = match self.listed.get(&path) {
                    Some(names) => names.clone(),
                    None => {
                        let names = match root
                            .open_dir(&components(&path))
                            .and_then(|d| hostfs::list_sorted(&d))
                        {
                            Ok(names) => names,
                            Err(errno) => {
                                if FsErrorKind::from_errno(errno) != FsErrorKind::Vanished {
                                    errors.push((format!("/{path}"), FsErrorKind::from_errno(errno)));
                                }
                                Vec::new()
                            }
                        };
                        let names: Vec<CString> = names
                            .into_iter()
                            .filter(|n| n.to_bytes().ends_with(b".conf"))
                            .collect();
                        self.listed.insert(path.clone(), names.clone());
                        names
                    }
                };
                for name in names {
                    if applying.contains_key(name.to_bytes()) {
                        continue;
                    }
                    match observe_drop_in(root, &path, &name, limits) {
                        Ok(Some(drop_in)) => {
                            applying.insert(name.to_bytes().to_vec(), drop_in);
                        }
                        Ok(None) => {}
                        Err(kind) => errors.push((
                            format!("/{path}/{}", String::from_utf8_lossy(name.to_bytes())),
                            kind,
                        )),
                    }
                }
            }
        }
        applying.into_values().collect()
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
