//! What the package databases said, kept in the baseline store so that a change can be judged
//! against both sides of a package operation with flat memory:
//! - `ledger/files`: per path, the package that owns it (the first to list it), the digest
//!   and link target its database records, and whether it still owns it. A path no package
//!   lists any more keeps its former owner for [`FORMER_OWNERS_KEPT`], so that a removal can
//!   be attributed by every workspace, whenever it scans next;
//! - `ledger/state`: per manager the fingerprint of its database files when last read, and
//!   the installed packages (version and stamp); per workspace, the installed packages as they
//!   were when that workspace last scanned (its baseline's view).
//!
//! The ledger is refreshed before a scan whenever a database's fingerprint changed. Both are
//! byte tables of the store: this module never sees how the store keeps them.

use std::collections::{BTreeMap, HashSet};

use kubefim_crds::PackageManager;
use serde::{Deserialize, Serialize};

use super::{
    DigestAlgorithm, PackageError,
    aliases::{Aliases, Diversions},
    installed::{self, FileDigest, InstalledPackage},
};
use crate::{
    Result,
    config::WorkspaceKey,
    hostfs::HostRoot,
    records::encode_json,
    store::{BaselineStore, KvTable, Snapshot, Update},
};

/// Path → [`Owner`].
const FILES: KvTable = KvTable::LedgerFiles;
/// [`fingerprint_key`], [`installed_key`] and [`seen_key`] → what they name.
const STATE: KvTable = KvTable::LedgerState;
/// How long a path no package owns any more remembers its former owner.
const FORMER_OWNERS_KEPT: i64 = 30 * 24 * 3600;
/// Encoding version of a FILES value.
const ENTRY_VERSION: u8 = 1;

/// A package's identity at one point in time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<i64>,
}

/// The installed packages of each manager.
pub type Versions = BTreeMap<PackageManager, BTreeMap<String, Installed>>;

/// What the ledger knows of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub manager: PackageManager,
    pub package: String,
    pub digest: Option<FileDigest>,
    pub link_to: Option<Vec<u8>>,
    /// The package still lists the path; false: it did (until `gone_at`).
    pub present: bool,
    pub gone_at: i64,
}

impl Owner {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![ENTRY_VERSION, manager_code(self.manager), u8::from(self.present)];
        out.extend_from_slice(&self.gone_at.to_le_bytes());
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(u32::try_from(bytes.len()).unwrap_or(u32::MAX)).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        field(self.package.as_bytes());
        match &self.digest {
            Some(digest) => {
                field(&[algorithm_code(digest.algorithm)]);
                field(&digest.bytes);
            }
            None => {
                field(&[]);
                field(&[]);
            }
        }
        field(self.link_to.as_deref().unwrap_or_default());
        out.push(u8::from(self.link_to.is_some()));
        out
    }

    /// None for a value this version cannot read (then the path is simply not known).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&[version, manager, present], rest) = bytes.split_first_chunk::<3>()?;
        if version != ENTRY_VERSION {
            return None;
        }
        let (gone_at, mut rest) = rest.split_first_chunk::<8>()?;
        let mut field = || -> Option<Vec<u8>> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            let (value, tail) = (tail.get(..len)?, tail.get(len..)?);
            rest = tail;
            Some(value.to_vec())
        };
        let package = String::from_utf8(field()?).ok()?;
        let (algorithm, digest) = (field()?, field()?);
        let link = field()?;
        let has_link = *rest.first()? == 1;
        Some(Self {
            manager: manager_from_code(manager)?,
            package,
            digest: match algorithm.first() {
                Some(code) => Some(FileDigest {
                    algorithm: algorithm_from_code(*code)?,
                    bytes: digest,
                }),
                None => None,
            },
            link_to: has_link.then_some(link),
            present: present == 1,
            gone_at: i64::from_le_bytes(*gone_at),
        })
    }
}

fn manager_code(manager: PackageManager) -> u8 {
    match manager {
        PackageManager::Dpkg => 1,
        PackageManager::Rpm => 2,
        PackageManager::Apk => 3,
    }
}

fn manager_from_code(code: u8) -> Option<PackageManager> {
    [PackageManager::Dpkg, PackageManager::Rpm, PackageManager::Apk]
        .into_iter()
        .find(|m| manager_code(*m) == code)
}

const ALGORITHMS: [DigestAlgorithm; 6] = [
    DigestAlgorithm::Md5,
    DigestAlgorithm::Sha1,
    DigestAlgorithm::Sha224,
    DigestAlgorithm::Sha256,
    DigestAlgorithm::Sha384,
    DigestAlgorithm::Sha512,
];

fn algorithm_code(algorithm: DigestAlgorithm) -> u8 {
    ALGORITHMS
        .iter()
        .position(|a| *a == algorithm)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

fn algorithm_from_code(code: u8) -> Option<DigestAlgorithm> {
    ALGORITHMS.get(usize::from(code)).copied()
}

fn fingerprint_key(manager: PackageManager) -> String {
    format!("fingerprint/{}", manager.as_str())
}

fn installed_key(manager: PackageManager) -> String {
    format!("installed/{}", manager.as_str())
}

fn seen_key(workspace: &WorkspaceKey) -> String {
    format!("seen/{workspace}")
}

/// Brings the ledger up to date with every package database under `root` whose files changed
/// since it was last read. Returns the databases that could not be read (their ledger is left
/// as it was); an error of the store itself is returned as such.
pub fn refresh(root: &HostRoot, store: &BaselineStore) -> Result<Vec<PackageError>> {
    let mut managers = installed::present(root);
    // A database that disappeared: everything it owned is now owned by nobody.
    for manager in known_managers(store)? {
        if !managers.contains(&manager) {
            managers.push(manager);
        }
    }
    let mut errors = Vec::new();
    let aliases = Aliases::of(root);
    for manager in managers {
        let fingerprint = match installed::fingerprint(root, manager) {
            // The host's merged-/usr links decide the ledger's keys: when they change, the
            // databases are read again.
            Ok(fingerprint) => format!("{fingerprint} aliases:{}", aliases.describe()),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if read_state(store, &fingerprint_key(manager))?.as_deref() == Some(fingerprint.as_bytes()) {
            continue;
        }
        let update = store.update()?;
        match rewrite(root, &update, manager, &aliases)? {
            Ok(()) => {
                put_state(&update, &fingerprint_key(manager), fingerprint.as_bytes())?;
                update.commit()?;
            }
            Err(e) => {
                update.abort()?;
                errors.push(e);
            }
        }
    }
    Ok(errors)
}

/// Managers the ledger has read before.
fn known_managers(store: &BaselineStore) -> Result<Vec<PackageManager>> {
    let mut known = Vec::new();
    for manager in [PackageManager::Dpkg, PackageManager::Rpm, PackageManager::Apk] {
        if read_state(store, &fingerprint_key(manager))?.is_some() {
            known.push(manager);
        }
    }
    Ok(known)
}

fn read_state(store: &BaselineStore, key: &str) -> Result<Option<Vec<u8>>> {
    store.kv_get(STATE, key.as_bytes())
}

fn put_state(update: &Update<'_>, key: &str, value: &[u8]) -> Result<()> {
    update.kv(STATE)?.insert(key.as_bytes(), value)
}

/// Rewrites what the ledger holds for `manager` from its database. The outer error is the
/// store's; the inner one the database's (nothing is committed then).
fn rewrite(
    root: &HostRoot,
    update: &Update<'_>,
    manager: PackageManager,
    aliases: &Aliases,
) -> Result<std::result::Result<(), PackageError>> {
    let now = jiff::Timestamp::now().as_second();
    let mut files = update.kv(FILES)?;
    let mut versions: BTreeMap<String, Installed> = BTreeMap::new();
    // Paths listed in this read, by hash: the first package to list a path owns it.
    let mut listed: HashSet<u64> = HashSet::new();
    let mut failure: Option<crate::Error> = None;
    let diversions = match manager {
        PackageManager::Dpkg => match Diversions::read(root) {
            Ok(diversions) => diversions,
            Err(e) => return Ok(Err(e)),
        },
        _ => Diversions::default(),
    };
    let mut each = |package: InstalledPackage| {
        if failure.is_some() {
            return;
        }
        versions.insert(
            package.name.clone(),
            Installed {
                version: package.version.clone(),
                stamp: package.stamp,
            },
        );
        for path in package.paths {
            // Keyed where the scanner finds it: /bin/ls is /usr/bin/ls on a merged-/usr host,
            // and a diverted file is where dpkg-divert moved it.
            let placed = diversions.place(&package.name, &path.path);
            let key = aliases.canonical(&placed).into_owned();
            if !listed.insert(path_hash(&key)) {
                continue;
            }
            let owner = Owner {
                manager,
                package: package.name.clone(),
                digest: path.digest,
                link_to: path.link_to,
                present: true,
                gone_at: 0,
            };
            let existing = match files.get(key.as_slice()) {
                Ok(value) => value.and_then(|v| Owner::decode(&v)),
                Err(e) => {
                    failure = Some(e);
                    return;
                }
            };
            // Another manager's present path stays theirs; an unchanged entry is not rewritten.
            let keep = existing
                .as_ref()
                .is_some_and(|e| *e == owner || (e.present && e.manager != manager));
            if !keep && let Err(e) = files.insert(key.as_slice(), owner.encode().as_slice()) {
                failure = Some(e);
                return;
            }
        }
    };
    if let Err(e) = installed::read(root, manager, &mut each) {
        return Ok(Err(e));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // What this manager listed before and no longer does: gone, or forgotten after a while.
    let mut gone: Vec<(Vec<u8>, Option<Owner>)> = Vec::new();
    files.for_each(|key, value| {
        let Some(owner) = Owner::decode(value) else {
            gone.push((key.to_vec(), None));
            return;
        };
        if owner.manager != manager {
            return;
        }
        if owner.present && !listed.contains(&path_hash(key)) {
            gone.push((
                key.to_vec(),
                Some(Owner {
                    present: false,
                    gone_at: now,
                    ..owner
                }),
            ));
        } else if !owner.present && now.saturating_sub(owner.gone_at) > FORMER_OWNERS_KEPT {
            gone.push((key.to_vec(), None));
        }
    })?;
    for (key, owner) in gone {
        match owner {
            Some(owner) => files.insert(key.as_slice(), owner.encode().as_slice()),
            None => files.remove(key.as_slice()),
        }?;
    }
    drop(files);
    let encoded = encode_json("the installed packages", &versions)?;
    put_state(update, &installed_key(manager), &encoded)?;
    Ok(Ok(()))
}

fn path_hash(path: &[u8]) -> u64 {
    let hash = blake3::hash(path);
    let (first, _) = hash.as_bytes().split_first_chunk::<8>().unwrap_or((&[0; 8], &[]));
    u64::from_le_bytes(*first)
}

/// The ledger as one scan reads it.
#[derive(Debug)]
pub struct LedgerView<'s> {
    snapshot: &'s Snapshot<'s>,
}

impl<'s> LedgerView<'s> {
    pub fn new(snapshot: &'s Snapshot<'s>) -> Self {
        Self { snapshot }
    }

    /// What the ledger knows of `path`.
    pub fn owner(&self, path: &[u8]) -> Result<Option<Owner>> {
        Ok(self
            .snapshot
            .kv(FILES)?
            .get(path)?
            .and_then(|v| Owner::decode(&v)))
    }

    /// What the ledger knows of the paths directly in directory `dir`, at most `limit` of them.
    pub fn children(&self, dir: &[u8], limit: usize) -> Result<Vec<Owner>> {
        let dir = if dir == b"/" { &b""[..] } else { dir };
        let (start, end) = ([dir, b"/"].concat(), [dir, b"0"].concat());
        let mut owners = Vec::new();
        for (key, value) in self.snapshot.kv(FILES)?.range(&start, &end, limit)? {
            let direct = key.get(start.len()..).is_some_and(|name| !name.contains(&b'/'));
            if let Some(owner) = Owner::decode(&value).filter(|_| direct) {
                owners.push(owner);
            }
        }
        Ok(owners)
    }

    /// The packages installed now (as of the last refresh).
    pub fn installed(&self) -> Result<Versions> {
        let mut versions = Versions::new();
        for manager in [PackageManager::Dpkg, PackageManager::Rpm, PackageManager::Apk] {
            if let Some(bytes) = self.state(&installed_key(manager))?
                && let Ok(packages) = serde_json::from_slice(&bytes)
            {
                versions.insert(manager, packages);
            }
        }
        Ok(versions)
    }

    /// The packages installed when `workspace` last scanned; None before its first scan.
    pub fn seen_by(&self, workspace: &WorkspaceKey) -> Result<Option<Versions>> {
        Ok(self
            .state(&seen_key(workspace))?
            .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    fn state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.snapshot.kv(STATE)?.get(key.as_bytes())
    }
}

/// Records `versions` as what `workspace`'s baseline has seen, in the scan's own update.
pub fn remember(update: &Update<'_>, workspace: &WorkspaceKey, versions: &Versions) -> Result<()> {
    put_state(
        update,
        &seen_key(workspace),
        &encode_json("the packages a baseline has seen", versions)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_survives_its_encoding_and_garbage_is_unknown() {
        let owner = Owner {
            manager: PackageManager::Rpm,
            package: "coreutils.x86_64".into(),
            digest: Some(FileDigest {
                algorithm: DigestAlgorithm::Sha256,
                bytes: vec![7; 32],
            }),
            link_to: Some(b"../lib/x".to_vec()),
            present: false,
            gone_at: 1_795_000_000,
        };
        assert_eq!(Owner::decode(&owner.encode()), Some(owner.clone()));
        let bare = Owner {
            digest: None,
            link_to: None,
            present: true,
            ..owner
        };
        assert_eq!(Owner::decode(&bare.encode()), Some(bare.clone()));
        let encoded = bare.encode();
        for cut in 0..encoded.len() {
            assert_eq!(Owner::decode(&encoded[..cut]), None, "cut at {cut}");
        }
        assert_eq!(Owner::decode(&[9, 1, 1]), None, "another encoding version");
    }
}
