//! What each package database under the host root says is installed, in one shape for every
//! manager: per package its version, a stamp that changes when the package is (re)installed,
//! and the paths it owns with the digest the database records for each. Read-only and bounded:
//! the host root is opened like any monitored path (never leaving it), every file is read up to
//! a size limit, and a database that cannot be parsed is an error naming it.

use std::{ffi::CString, io::Read as _};

use kubefim_crds::PackageManager;

use super::{
    PackageError, apk, dpkg,
    rpm::{self, DigestAlgorithm},
    sqlite,
};
use crate::hostfs::{self, FileMeta, HostRoot};

/// The largest database file read: rpmdb.sqlite of a large host is tens of MiB.
const MAX_DATABASE_BYTES: u64 = 512 << 20;
/// The largest dpkg info file (`.md5sums`, `.list`) or apk database read.
const MAX_INFO_BYTES: u64 = 64 << 20;
/// dpkg journal files read: dpkg folds them into status every few operations, so a node has a
/// handful; thousands would be an attempt to slow the reader down.
const MAX_JOURNAL_FILES: usize = 1000;
/// Files one rpm package may list.
const MAX_RPM_FILES: usize = 1_000_000;

pub(crate) const DPKG_DIR: &str = "/var/lib/dpkg";
pub(crate) const RPM_DIR: &str = "/var/lib/rpm";
pub(crate) const APK_DIR: &str = "/lib/apk/db";
const RPMDB: &str = "/var/lib/rpm/rpmdb.sqlite";
const APK_INSTALLED: &str = "/lib/apk/db/installed";

/// A digest a package database records for a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub algorithm: DigestAlgorithm,
    pub bytes: Vec<u8>,
}

/// A path a package owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedPath {
    /// Absolute, as bytes.
    pub path: Vec<u8>,
    /// The content digest, for regular files the database has one for.
    pub digest: Option<FileDigest>,
    /// Where a symlink points, when the database says (rpm).
    pub link_to: Option<Vec<u8>>,
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    /// Changes whenever the package is installed again, even at the same version: dpkg's
    /// `.list` change time, rpm's install transaction id; apk has none.
    pub stamp: Option<i64>,
    pub paths: Vec<OwnedPath>,
}

/// The package managers whose database is present under `root`.
pub fn present(root: &HostRoot) -> Vec<PackageManager> {
    [
        (PackageManager::Dpkg, "/var/lib/dpkg/status"),
        (PackageManager::Rpm, RPMDB),
        (PackageManager::Apk, APK_INSTALLED),
    ]
    .into_iter()
    .filter(|(_, path)| stat(root, path).is_ok_and(|meta| meta.is_some()))
    .map(|(manager, _)| manager)
    .collect()
}

/// Changes whenever anything the reader of `manager` reads changes: the size, times and inode
/// of each of its files. Cheap (a few thousand lstat for dpkg), so it is taken before every
/// scan that attributes.
pub fn fingerprint(root: &HostRoot, manager: PackageManager) -> Result<String, PackageError> {
    let mut hasher = blake3::Hasher::new();
    let mut add = |path: &str, meta: Option<FileMeta>| {
        hasher.update(path.as_bytes());
        if let Some(m) = meta {
            for n in [
                m.size as i64,
                m.mtime.0,
                i64::from(m.mtime.1),
                m.ctime.0,
                i64::from(m.ctime.1),
                m.ino as i64,
            ] {
                hasher.update(&n.to_le_bytes());
            }
        }
        hasher.update(&[0]);
    };
    match manager {
        PackageManager::Dpkg => {
            for dir in [DPKG_DIR, "/var/lib/dpkg/updates", "/var/lib/dpkg/info"] {
                let entries = list(root, dir)?;
                for name in entries {
                    let path = format!("{dir}/{}", String::from_utf8_lossy(name.as_bytes()));
                    add(&path, stat(root, &path)?);
                }
            }
        }
        PackageManager::Rpm => {
            for path in [RPMDB, "/var/lib/rpm/rpmdb.sqlite-wal"] {
                add(path, stat(root, path)?);
            }
        }
        PackageManager::Apk => add(APK_INSTALLED, stat(root, APK_INSTALLED)?),
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Reads the database of `manager`, handing each installed package to `each` in turn (for
/// dpkg and rpm one package in memory at a time; apk's single `installed` file is parsed whole,
/// within the size bound of its read).
pub fn read(
    root: &HostRoot,
    manager: PackageManager,
    each: &mut dyn FnMut(InstalledPackage),
) -> Result<(), PackageError> {
    match manager {
        PackageManager::Dpkg => read_dpkg(root, each),
        PackageManager::Rpm => read_rpm(root, each),
        PackageManager::Apk => read_apk(root, each),
    }
}

fn read_dpkg(root: &HostRoot, each: &mut dyn FnMut(InstalledPackage)) -> Result<(), PackageError> {
    let limits = dpkg::Limits::default();
    let bad = |file: &str| {
        let file = file.to_string();
        move |e: dpkg::DpkgError| PackageError::Malformed {
            manager: PackageManager::Dpkg,
            file,
            reason: e.to_string(),
        }
    };
    let status_path = "/var/lib/dpkg/status";
    let status = read_file(root, status_path, MAX_DATABASE_BYTES)?.unwrap_or_default();
    let mut entries = dpkg::parse_status(&status, &limits).map_err(bad(status_path))?;
    drop(status);
    // The journal of operations not yet folded into status, applied in order.
    let updates = list(root, "/var/lib/dpkg/updates")?;
    let names: Vec<&[u8]> = updates.iter().map(|n| n.as_bytes()).collect();
    let order = dpkg::update_file_order(&names);
    if order.len() > MAX_JOURNAL_FILES {
        return Err(PackageError::Malformed {
            manager: PackageManager::Dpkg,
            file: "/var/lib/dpkg/updates".to_string(),
            reason: format!(
                "{} journal files, more than the {MAX_JOURNAL_FILES} read",
                order.len()
            ),
        });
    }
    for index in order {
        let Some(name) = names.get(index) else { continue };
        let path = format!("/var/lib/dpkg/updates/{}", String::from_utf8_lossy(name));
        if let Some(update) = read_file(root, &path, MAX_INFO_BYTES)? {
            dpkg::apply_update(&mut entries, &update, &limits).map_err(bad(&path))?;
        }
    }
    for entry in entries.into_iter().filter(dpkg::StatusEntry::files_installed) {
        let Some(version) = entry.version.clone() else {
            continue;
        };
        let info = format!("/var/lib/dpkg/info/{}", entry.info_name());
        let list_path = format!("{info}.list");
        let md5sums_path = format!("{info}.md5sums");
        let stamp =
            stat(root, &list_path)?.map(|m| m.ctime.0.saturating_mul(1_000_000_000) + i64::from(m.ctime.1));
        let listed = match read_file(root, &list_path, MAX_INFO_BYTES)? {
            Some(bytes) => dpkg::parse_list(&bytes, &limits).map_err(bad(&list_path))?,
            None => Vec::new(),
        };
        let mut digests: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            match read_file(root, &md5sums_path, MAX_INFO_BYTES)? {
                Some(bytes) => dpkg::parse_md5sums(&bytes, &limits)
                    .map_err(bad(&md5sums_path))?
                    .into_iter()
                    .map(|(path, md5)| (path, md5.to_vec()))
                    .collect(),
                None => Default::default(),
            };
        // Conffiles are not in .md5sums; status records the digest of the shipped version.
        for conffile in &entry.conffiles {
            if let Some(md5) = conffile.md5.filter(|_| !conffile.obsolete) {
                digests.insert(conffile.path.clone(), md5.to_vec());
            }
        }
        let mut paths: Vec<OwnedPath> = listed
            .into_iter()
            .map(|path| {
                let digest = digests.remove(&path).map(|bytes| FileDigest {
                    algorithm: DigestAlgorithm::Md5,
                    bytes,
                });
                OwnedPath {
                    path,
                    digest,
                    link_to: None,
                }
            })
            .collect();
        // Digests of paths the .list does not name (a damaged list) still count.
        paths.extend(digests.into_iter().map(|(path, bytes)| OwnedPath {
            path,
            digest: Some(FileDigest {
                algorithm: DigestAlgorithm::Md5,
                bytes,
            }),
            link_to: None,
        }));
        let package = InstalledPackage {
            name: entry.info_name(),
            version,
            stamp,
            paths,
        };
        each(package);
    }
    Ok(())
}

/// rpm file states whose digest describes what is on disk: normal and netshared.
fn rpm_file_on_disk(state: Option<u8>) -> bool {
    matches!(state, None | Some(0) | Some(3))
}

/// %ghost: owned, but the package ships no content for it.
const RPMFILE_GHOST: u32 = 1 << 6;

fn read_rpm(root: &HostRoot, each: &mut dyn FnMut(InstalledPackage)) -> Result<(), PackageError> {
    let malformed = |reason: String| PackageError::Malformed {
        manager: PackageManager::Rpm,
        file: RPMDB.to_string(),
        reason,
    };
    let Some(main) = read_file(root, RPMDB, MAX_DATABASE_BYTES)? else {
        return Ok(());
    };
    let wal = read_file(root, "/var/lib/rpm/rpmdb.sqlite-wal", MAX_DATABASE_BYTES)?;
    let db = sqlite::Database::open(&main, wal.as_deref(), sqlite::Limits::default())
        .map_err(|e| malformed(e.to_string()))?;
    drop((main, wal));
    for parsed in rpm::packages(&db, MAX_RPM_FILES).map_err(|e| malformed(e.to_string()))? {
        let package = parsed.map_err(|(hnum, e)| malformed(format!("package header {hnum}: {e}")))?;
        let version = package.evr();
        let paths = package
            .files
            .into_iter()
            .filter(|file| rpm_file_on_disk(file.state))
            .map(|file| OwnedPath {
                digest: file
                    .digest
                    .filter(|_| file.flags & RPMFILE_GHOST == 0)
                    .map(|bytes| FileDigest {
                        algorithm: package.digest_algorithm,
                        bytes,
                    }),
                link_to: file.link_to,
                path: file.path,
            })
            .collect();
        let installed = InstalledPackage {
            name: match &package.arch {
                Some(arch) => format!("{}.{arch}", package.name),
                None => package.name.clone(),
            },
            version,
            stamp: package.install_tid.or(package.install_time).map(i64::from),
            paths,
        };
        each(installed);
    }
    Ok(())
}

fn read_apk(root: &HostRoot, each: &mut dyn FnMut(InstalledPackage)) -> Result<(), PackageError> {
    let Some(bytes) = read_file(root, APK_INSTALLED, MAX_INFO_BYTES)? else {
        return Ok(());
    };
    let packages =
        apk::parse_installed(&bytes, &apk::Limits::default()).map_err(|e| PackageError::Malformed {
            manager: PackageManager::Apk,
            file: APK_INSTALLED.to_string(),
            reason: e.to_string(),
        })?;
    for package in packages {
        let mut paths: Vec<OwnedPath> = package
            .dirs
            .into_iter()
            .map(|path| OwnedPath {
                path,
                digest: None,
                link_to: None,
            })
            .collect();
        paths.extend(package.files.into_iter().map(|file| OwnedPath {
            path: file.path,
            digest: file.sha1.map(|sha1| FileDigest {
                algorithm: DigestAlgorithm::Sha1,
                bytes: sha1.to_vec(),
            }),
            link_to: None,
        }));
        let installed = InstalledPackage {
            name: package.name,
            version: package.version,
            stamp: None,
            paths,
        };
        each(installed);
    }
    Ok(())
}

/// The components of absolute `path`.
pub(crate) fn components(path: &str) -> Vec<Vec<u8>> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(|c| c.as_bytes().to_vec())
        .collect()
}

fn unreadable(path: &str) -> impl Fn(rustix::io::Errno) -> PackageError + '_ {
    move |errno| PackageError::Unreadable {
        file: path.to_string(),
        reason: errno.to_string(),
    }
}

/// The metadata of `path` in the host root; None when it does not exist.
pub(crate) fn stat(root: &HostRoot, path: &str) -> Result<Option<FileMeta>, PackageError> {
    let mut parts = components(path);
    let Some(name) = parts.pop().and_then(|n| CString::new(n).ok()) else {
        return Ok(None);
    };
    let dir = match root.open_dir(&parts) {
        Ok(dir) => dir,
        Err(errno) if is_missing(errno) => return Ok(None),
        Err(errno) => return Err(unreadable(path)(errno)),
    };
    match hostfs::stat_at(&dir, &name) {
        Ok(meta) => Ok(Some(meta)),
        Err(errno) if is_missing(errno) => Ok(None),
        Err(errno) => Err(unreadable(path)(errno)),
    }
}

/// The names in directory `path`, sorted; empty when it does not exist.
fn list(root: &HostRoot, path: &str) -> Result<Vec<CString>, PackageError> {
    match root
        .open_dir(&components(path))
        .and_then(|dir| hostfs::list_sorted(&dir))
    {
        Ok(names) => Ok(names),
        Err(errno) if is_missing(errno) => Ok(Vec::new()),
        Err(errno) => Err(unreadable(path)(errno)),
    }
}

/// The content of regular file `path`, refused past `max` bytes; None when it does not exist.
pub(crate) fn read_file(root: &HostRoot, path: &str, max: u64) -> Result<Option<Vec<u8>>, PackageError> {
    let mut parts = components(path);
    let Some(name) = parts.pop().and_then(|n| CString::new(n).ok()) else {
        return Ok(None);
    };
    let opened = root
        .open_dir(&parts)
        .and_then(|dir| hostfs::open_regular(&dir, &name));
    let (file, meta) = match opened {
        Ok(opened) => opened,
        Err(errno) if is_missing(errno) => return Ok(None),
        Err(errno) => return Err(unreadable(path)(errno)),
    };
    if meta.size > max {
        return Err(PackageError::TooLarge {
            file: path.to_string(),
            size: meta.size,
            limit: max,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
    // A file that grows while it is read is cut at the limit and refused.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PackageError::Unreadable {
            file: path.to_string(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > max {
        return Err(PackageError::TooLarge {
            file: path.to_string(),
            size: bytes.len() as u64,
            limit: max,
        });
    }
    Ok(Some(bytes))
}

pub(crate) fn is_missing(errno: rustix::io::Errno) -> bool {
    matches!(errno, rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR)
}
