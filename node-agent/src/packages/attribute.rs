//! Deciding, change by change, whether a package operation explains it, and folding what one
//! operation explains into one report (`Summarize`).
//!
//! A package is *operated* in a workspace's window when its version or stamp differs between
//! what the workspace's baseline saw and what the database says now (installed, upgraded,
//! reinstalled or removed). A change is explained only when:
//! - its path is owned (or, for a removal, was owned) by an operated package, and
//! - for a regular file added or modified: the database records a digest for it and the file's
//!   content, read again with the database's algorithm, matches it, and nothing but content,
//!   size, times and inode changed (a mode or owner change is never vouched for by a digest);
//! - for a directory or symlink (no digest): it was added, or only its times or inode changed,
//!   and a symlink points where the database says, when it says; a directory whose times alone
//!   changed is also explained by an operated package owning a path directly in it (replacing a
//!   file touches its directory, which the package may not own);
//! - for a package database file: some package of that manager was operated (for a file of one
//!   package, such as `info/<package>.md5sums`, that package, which the database must know).
//!
//! A digest mismatch is never explained; neither is anything seen before the workspace's
//! baseline had a view of the packages.
//!
//! A path that no package owns (nor owned) and that changed while packages were operated in the
//! window is *operation-unverified*: maintainer scripts and triggers write such files, and so
//! could anyone else at that moment. The change names the operation (`OperationUnverified`,
//! digestVerified false) and stays a change to review; it is never given to a path a package
//! owns, whose state the database either vouches for or not.

mod fold;

use std::collections::BTreeMap;

pub use fold::describe;
use fold::{Fold, FoldKey};
use kubefim_crds::{
    Attribution, AttributionKind, ChangeCategory, ChangeType, FileType, PackageManager,
    filechange::ChangedAttribute as A, workspace::AttributionMode,
};

use super::{
    PackageError,
    aliases::Aliases,
    alternatives::{ALTERNATIVES_DIR, Alternatives, Group, Link},
    installed::{APK_DIR, DPKG_DIR, RPM_DIR},
    ledger::{Installed, LedgerView, Owner, Versions},
    verify,
};
use crate::{Result, config::WorkspaceKey, diff::Change, hostfs::HostRoot, store::Snapshot};

/// Directories held back at most, waiting for a child's explanation; past it they are sent
/// unexplained at once.
const MAX_HELD: usize = 10_000;

/// Ledger entries read at most to find an operated package owning a path in a directory.
const MAX_CHILDREN_READ: usize = 100_000;

/// Attributes the changes of one workspace scan.
#[derive(Debug)]
pub struct Attributor<'s> {
    root: &'s HostRoot,
    mode: AttributionMode,
    ledger: LedgerView<'s>,
    now: Versions,
    then: Option<Versions>,
    folds: BTreeMap<FoldKey, Fold>,
    /// Directories whose times alone changed and that no package explained yet, with the
    /// operation they changed during, if any (their attribution when no child explains them).
    held: Vec<(Change, Option<Attribution>)>,
    /// The parent directories of explained changes, with the explanation.
    explained_parents: std::collections::HashMap<String, Attribution>,
    /// Databases that could not be read for this scan.
    pub errors: Vec<PackageError>,
    /// The host's merged-/usr links: a change reported at /bin/login (an entity's path through
    /// the /bin link) is the ledger's /usr/bin/login.
    aliases: Aliases,
    /// dpkg's alternatives database, read when a change first needs it.
    alternatives: std::cell::OnceCell<Result<Alternatives, PackageError>>,
}

impl<'s> Attributor<'s> {
    /// None when the workspace turned attribution off.
    pub fn open(
        root: &'s HostRoot,
        snapshot: &'s Snapshot<'s>,
        workspace: &WorkspaceKey,
        mode: AttributionMode,
        errors: Vec<PackageError>,
    ) -> Result<Option<Self>> {
        if mode == AttributionMode::Off {
            return Ok(None);
        }
        let ledger = LedgerView::new(snapshot);
        Ok(Some(Self {
            root,
            mode,
            now: ledger.installed()?,
            then: ledger.seen_by(workspace)?,
            ledger,
            folds: BTreeMap::new(),
            held: Vec::new(),
            explained_parents: Default::default(),
            errors,
            aliases: Aliases::of(root),
            alternatives: std::cell::OnceCell::new(),
        }))
    }

    /// The packages installed now: what the workspace's baseline has seen once this scan is
    /// committed.
    pub fn installed(&self) -> &Versions {
        &self.now
    }

    /// Sends `change` on, with its attribution (Report), folded into its operation's report
    /// (Summarize), or as it is when nothing explains it.
    pub fn push(&mut self, change: Change, sink: &mut dyn FnMut(Change)) -> Result<()> {
        if change.category == ChangeCategory::Aggregated || change.attribution.is_some() {
            sink(change);
            return Ok(());
        }
        let explained = self.explain(&change)?;
        let by_package = explained
            .as_ref()
            .is_some_and(|a| a.kind != AttributionKind::OperationUnverified);
        if !by_package && self.held.len() < MAX_HELD && only_times_of_a_directory(&change) {
            // Its children come later in the scan: an explained one explains it.
            self.held.push((change, explained));
            return Ok(());
        }
        let Some(attribution) = explained else {
            let mut change = change;
            change.unexplained = self.why_unexplained(&change)?;
            sink(change);
            return Ok(());
        };
        if by_package {
            self.explained_parents
                .insert(parent(&change.path).to_string(), attribution.clone());
        }
        self.deliver(change, attribution, sink);
        Ok(())
    }

    /// Sends an explained change on (Report) or folds it (Summarize).
    fn deliver(&mut self, mut change: Change, attribution: Attribution, sink: &mut dyn FnMut(Change)) {
        match self.mode {
            AttributionMode::Summarize => {
                let key = FoldKey::of(&attribution);
                // A package's own regular files carry the fold's verification; its database
                // files, directories and symlinks have no digest to verify.
                let package_file = database_file(&change.path).is_none()
                    && change
                        .current
                        .as_ref()
                        .is_some_and(|r| r.meta.file_type == FileType::File);
                let verified = package_file.then_some(attribution.digest_verified);
                self.folds
                    .entry(key)
                    .or_insert_with(|| Fold::new(&change, attribution))
                    .add(&change, verified);
            }
            _ => {
                change.attribution = Some(attribution);
                sink(change);
            }
        }
    }

    /// Sends the directories held back (explained by a child's operation, or not), then one
    /// Aggregated change per package operation folded.
    pub fn finish(mut self, sink: &mut dyn FnMut(Change)) -> Result<()> {
        for (change, during) in std::mem::take(&mut self.held) {
            let explained = match self.explained_parents.get(change.path.as_str()).cloned() {
                Some(attribution) => Some(attribution),
                // Its changed child may have been reported already (by a realtime rescan).
                None => self.operated_child(&change.path)?,
            };
            match explained.or(during) {
                Some(mut attribution) => {
                    attribution.digest_verified = false;
                    self.deliver(change, attribution, sink);
                }
                None => {
                    let mut change = change;
                    change.unexplained = self.why_unexplained(&change)?;
                    sink(change);
                }
            }
        }
        for (_, fold) in self.folds {
            sink(fold.into_change());
        }
        Ok(())
    }

    /// The attribution of an operated package that owns (or owned) a path directly in `dir`.
    fn operated_child(&self, dir: &str) -> Result<Option<Attribution>> {
        for owner in self
            .ledger
            .children(&self.aliases.canonical(dir.as_bytes()), MAX_CHILDREN_READ)?
        {
            if let Some(versions) = self.operated(owner.manager, &owner.package) {
                return Ok(Some(attribution(&owner, versions, false)));
            }
        }
        Ok(None)
    }

    /// Whether `package` of `manager` was operated in the window, and its versions then and now.
    fn operated(
        &self,
        manager: PackageManager,
        package: &str,
    ) -> Option<(Option<&Installed>, Option<&Installed>)> {
        let then = self.then.as_ref()?.get(&manager)?;
        let before = then.get(package);
        let after = self.now.get(&manager).and_then(|now| now.get(package));
        (before != after).then_some((before, after))
    }

    fn explain(&self, change: &Change) -> Result<Option<Attribution>> {
        // Units are named by unit, not path; and a lossy path cannot be looked up.
        if change.change_type == ChangeType::Services || change.path.contains('\u{FFFD}') {
            return Ok(None);
        }
        let path = self.aliases.canonical(change.path.as_bytes());
        let path = path.as_ref();
        if let Some(name) = group_file(&change.path) {
            return self.explain_group_file(change, name);
        }
        if let Some((manager, package)) = database_file(&change.path) {
            let explained = self.explain_database(manager, package);
            // A database that could not be read this scan vouches for nothing, a lock neither.
            if explained.is_none()
                && self.errors.is_empty()
                && let Some(manager) = lock_taken(change)
            {
                // apt takes and releases dpkg's lock several times in one run: a scan between
                // two of them sees the lock's times changed before any package is.
                return Ok(Some(self.operation_unverified().unwrap_or_else(|| {
                    of_manager(AttributionKind::OperationUnverified, manager)
                })));
            }
            return Ok(explained);
        }
        let Some(owner) = self.ledger.owner(path)? else {
            if let Some(link) = self.alternatives_link(change) {
                return self.explain_alternative(change, &link);
            }
            return Ok(self.operation_unverified());
        };
        let Some(versions) = self.operated(owner.manager, &owner.package) else {
            return Ok(None);
        };
        let explained = match change.category {
            ChangeCategory::Removed => !owner.present,
            ChangeCategory::Added | ChangeCategory::Modified if owner.present => {
                // Only a regular file's content is verified; a directory or symlink is vouched
                // for by ownership.
                let verified = owner.digest.is_some()
                    && change
                        .current
                        .as_ref()
                        .is_some_and(|r| r.meta.file_type == FileType::File);
                return Ok(self
                    .vouches(change, &owner)
                    .then(|| attribution(&owner, versions, verified)));
            }
            _ => false,
        };
        Ok(explained.then(|| attribution(&owner, versions, false)))
    }

    /// Whether the database vouches for the new state of an added or modified path.
    fn vouches(&self, change: &Change, owner: &Owner) -> bool {
        let Some(current) = &change.current else {
            return false;
        };
        let only = |allowed: &[A]| change.changed.iter().all(|a| allowed.contains(a));
        match current.meta.file_type {
            FileType::File => {
                let (Some(expected), Some(reported)) = (&owner.digest, &current.digest) else {
                    return false;
                };
                only(&[A::Content, A::Size, A::Mtime, A::Ctime, A::Inode])
                    && unrecorded_capabilities(change).is_none()
                    && verify::content_matches(self.root, change.path.as_bytes(), expected, reported)
            }
            FileType::Symlink => {
                let points_right = owner
                    .link_to
                    .as_ref()
                    .is_none_or(|target| current.link_target.as_ref() == Some(target));
                points_right
                    && (change.category == ChangeCategory::Added
                        || only(&[A::Mtime, A::Ctime, A::Inode])
                        || (owner.link_to.is_some() && only(&REPOINTED)))
            }
            FileType::Directory => {
                change.category == ChangeCategory::Added || only(&[A::Mtime, A::Ctime, A::Inode])
            }
            _ => false,
        }
    }

    /// What dpkg's alternatives database says of `change`'s path, when it is an alternatives
    /// link (and its group file could be read).
    fn alternatives_link(&self, change: &Change) -> Option<Link> {
        let path = self.aliases.canonical(change.path.as_bytes());
        self.alternatives()?.link(&path).cloned()
    }

    /// dpkg's alternatives database, read once per scan; None when it cannot be read at all.
    fn alternatives(&self) -> Option<&Alternatives> {
        let read = self.alternatives.get_or_init(|| {
            let read = Alternatives::read(self.root, &self.aliases);
            for error in read
                .as_ref()
                .map_or_else(|e| vec![e], |a| a.skipped.iter().collect())
            {
                tracing::warn!(%error, "alternatives group skipped: its links are explained by nothing");
            }
            read
        });
        read.as_ref().ok()
    }

    /// The package that ships `path` (lists it now), if one does.
    fn shipper(&self, path: &[u8]) -> Result<Option<Owner>> {
        Ok(self
            .ledger
            .owner(&self.aliases.canonical(path))?
            .filter(|owner| owner.present))
    }

    /// An alternatives link added, repointed or removed. Explained (`Package`, never verified)
    /// only when the whole chain ends in a file a package ships, and that package, or else one
    /// shipping another alternative of the group (the one chosen before may have been removed),
    /// was operated:
    /// - a per-name link (`/etc/alternatives/awk`) points to a target registered for it, and the
    ///   package that ships the alternative ships that target too (a slave's man page);
    /// - a group link (`/usr/bin/awk`) points to its per-name link, whose own target on the host
    ///   is such a target;
    /// - a per-name slave link some alternative lacks may be removed.
    ///
    /// The group files are as writable as the links, so what they register is never enough: a
    /// registered target no package ships, or shipped by another package than its alternative,
    /// explains nothing. Anything else is unexplained, operation or not.
    fn explain_alternative(&self, change: &Change, link: &Link) -> Result<Option<Attribution>> {
        if change.category == ChangeCategory::Removed {
            return if link.may_vanish() {
                self.operated_provider(&link.group)
            } else {
                Ok(None)
            };
        }
        let Some(shipper) = self.chain_end(change, link)?.1 else {
            return Ok(None);
        };
        if let Some(versions) = self.operated(shipper.manager, &shipper.package) {
            return Ok(Some(attribution(&shipper, versions, false)));
        }
        self.operated_provider(&link.group)
    }

    /// Where `change`'s link leads, and the package shipping both that target and its
    /// alternative when one does (None: not repointed only, not a symlink, unregistered, or
    /// not shipped).
    fn chain_end(&self, change: &Change, link: &Link) -> Result<(Option<Vec<u8>>, Option<Owner>)> {
        let Some(current) = change
            .current
            .as_ref()
            .filter(|c| c.meta.file_type == FileType::Symlink && repointed_only(change))
        else {
            return Ok((None, None));
        };
        let Some(target) = current.link_target.clone() else {
            return Ok((None, None));
        };
        let end = if link.per_name {
            target
        } else {
            if target != link.per_name_path() {
                return Ok((Some(target), None));
            }
            match self.read_link(&link.per_name_path()) {
                Some(end) => end,
                None => return Ok((Some(target), None)),
            }
        };
        let Some(alternative) = link.chosen_by(&end) else {
            return Ok((Some(end), None));
        };
        let (Some(ships_target), Some(ships_alternative)) = (self.shipper(&end)?, self.shipper(alternative)?)
        else {
            return Ok((Some(end), None));
        };
        let same = ships_target.manager == ships_alternative.manager
            && ships_target.package == ships_alternative.package;
        Ok((Some(end), same.then_some(ships_target)))
    }

    /// An operated package that ships an alternative of `group`.
    fn operated_provider(&self, group: &Group) -> Result<Option<Attribution>> {
        for provider in group.providers() {
            if let Some(owner) = self.shipper(provider)?
                && let Some(versions) = self.operated(owner.manager, &owner.package)
            {
                return Ok(Some(attribution(&owner, versions, false)));
            }
        }
        Ok(None)
    }

    /// A group file (`/var/lib/dpkg/alternatives/<name>`) added or changed: explained by an
    /// operation of a package that ships one of its alternatives; a removed one (its last
    /// alternative went) by any dpkg operation, like the other database files.
    fn explain_group_file(&self, change: &Change, name: &str) -> Result<Option<Attribution>> {
        if change.category == ChangeCategory::Removed {
            return Ok(self.explain_database(PackageManager::Dpkg, None));
        }
        match self.alternatives().and_then(|a| a.group(name)) {
            Some(group) => self.operated_provider(group),
            None => Ok(None),
        }
    }

    /// The target of symlink `path` on the host now.
    fn read_link(&self, path: &[u8]) -> Option<Vec<u8>> {
        let text = std::str::from_utf8(path).ok()?;
        let mut parts = super::installed::components(text);
        let name = std::ffi::CString::new(parts.pop()?).ok()?;
        let dir = self.root.open_dir(&parts).ok()?;
        crate::hostfs::read_link_at(&dir, &name).ok()
    }

    /// Why nothing explains `change`, when the package databases know something of its path:
    /// a package owns it (or did), or it is an alternatives link. None for a path they know
    /// nothing of.
    fn why_unexplained(&self, change: &Change) -> Result<Option<String>> {
        if change.change_type == ChangeType::Services || change.path.contains('\u{FFFD}') {
            return Ok(None);
        }
        if let Some(name) = group_file(&change.path) {
            return Ok(Some(match change.category {
                ChangeCategory::Removed => {
                    format!("the alternatives group file of {name}, removed while no dpkg operation ran")
                }
                _ if self.alternatives().and_then(|a| a.group(name)).is_none() => {
                    format!("the alternatives group file of {name}, which could not be read")
                }
                _ => format!(
                    "the alternatives group file of {name}, changed while no package shipping one of its alternatives was operated"
                ),
            }));
        }
        if database_file(&change.path).is_some() {
            return Ok(None);
        }
        let Some(owner) = self
            .ledger
            .owner(&self.aliases.canonical(change.path.as_bytes()))?
        else {
            return self.why_alternative_unexplained(change);
        };
        let (manager, package) = (owner.manager.as_str(), &owner.package);
        if let Some(error) = self.errors.first() {
            return Ok(Some(format!(
                "owned by {package} ({manager}), but a package database could not be read: {error}"
            )));
        }
        if self.then.is_none() {
            return Ok(Some(format!(
                "owned by {package} ({manager}), but the baseline had not seen the package databases yet"
            )));
        }
        if self.operated(owner.manager, package).is_none() {
            return Ok(Some(format!(
                "owned by {package} ({manager}), which no package operation changed since the baseline"
            )));
        }
        let Some(current) = &change.current else {
            return Ok(owner
                .present
                .then(|| format!("removed, but {package} ({manager}) still ships it")));
        };
        if !owner.present {
            return Ok(Some(format!("{package} ({manager}) no longer ships it")));
        }
        let beyond = |allowed: &[A]| {
            let others: Vec<&str> = change
                .changed
                .iter()
                .filter(|a| !allowed.contains(a))
                .map(|a| a.as_str())
                .collect();
            (!others.is_empty()).then(|| {
                format!(
                    "{} changed, which {package} ({manager}) does not vouch for",
                    others.join(", ")
                )
            })
        };
        if let Some(granted) = unrecorded_capabilities(change) {
            return Ok(Some(format!(
                "it carries file capabilities {granted}, which {manager} does not record for {package}"
            )));
        }
        let reason = match current.meta.file_type {
            FileType::File => match &owner.digest {
                None => Some(format!("{manager} records no digest of it for {package}")),
                Some(_) if current.digest.is_none() => Some(format!(
                    "its content was not read, so it cannot be checked against the digest {manager} records for {package}"
                )),
                Some(_) => beyond(&[A::Content, A::Size, A::Mtime, A::Ctime, A::Inode]).or_else(|| {
                    Some(format!(
                        "its content does not match the digest {manager} records for {package}"
                    ))
                }),
            },
            FileType::Symlink => {
                let now = shown(current.link_target.as_deref());
                match &owner.link_to {
                    Some(expected) if current.link_target.as_ref() != Some(expected) => Some(format!(
                        "the symlink points to {now}, {manager} records {} for {package}",
                        shown(Some(expected))
                    )),
                    None if change.changed.contains(&A::LinkTarget) => Some(format!(
                        "the symlink now points to {now} (was {}); {manager} records no symlink targets, so the new one cannot be checked against {package}",
                        shown(change.previous.as_ref().and_then(|p| p.link_target.as_deref()))
                    )),
                    _ => beyond(&REPOINTED),
                }
            }
            FileType::Directory => beyond(&[A::Mtime, A::Ctime, A::Inode]),
            other => Some(format!(
                "{package} ({manager}) ships no {}",
                format!("{other:?}").to_lowercase()
            )),
        };
        Ok(reason)
    }

    /// Why an alternatives link is unexplained: it points where its group registers nothing, it
    /// is no longer a symlink, or no package providing the group was operated.
    fn why_alternative_unexplained(&self, change: &Change) -> Result<Option<String>> {
        let Some(link) = self.alternatives_link(change) else {
            return Ok(None);
        };
        let group = &link.group.name;
        if self.then.is_none() {
            return Ok(Some(format!(
                "an alternatives link of group {group}, but the baseline had not seen the package databases yet"
            )));
        }
        let Some(current) = change.current.as_ref() else {
            return Ok(Some(match link.may_vanish() {
                true => format!(
                    "an alternatives link of group {group}, removed while no package shipping one of its alternatives was operated"
                ),
                false => format!(
                    "an alternatives link of group {group} removed, which update-alternatives removes only with its group"
                ),
            }));
        };
        if current.meta.file_type != FileType::Symlink {
            return Ok(Some(format!(
                "an alternatives link of group {group} that is no longer a symlink"
            )));
        }
        if !repointed_only(change) {
            let others: Vec<&str> = change
                .changed
                .iter()
                .filter(|a| !REPOINTED.contains(a))
                .map(|a| a.as_str())
                .collect();
            return Ok(Some(format!(
                "{} of an alternatives link of group {group} changed, which no alternative vouches for",
                others.join(", ")
            )));
        }
        let (end, shipper) = self.chain_end(change, &link)?;
        let now = shown(end.as_deref());
        Ok(Some(
            match (end.as_ref().and_then(|e| link.chosen_by(e)), shipper) {
                (None, _) if !link.per_name && current.link_target != Some(link.per_name_path()) => format!(
                    "an alternatives link of group {group} pointing to {}, not to {}",
                    shown(current.link_target.as_deref()),
                    shown(Some(&link.per_name_path()))
                ),
                (None, _) => format!(
                    "an alternatives link of group {group} leading to {now}, which the alternatives database does not register for it"
                ),
                (Some(_), None) => format!(
                    "an alternatives link of group {group} leading to {now}, registered for an alternative no package ships with it"
                ),
                (Some(_), Some(shipper)) => format!(
                    "an alternatives link of group {group} leading to {now} of {}, changed while no package shipping one of its alternatives was operated",
                    shipper.package
                ),
            },
        ))
    }

    /// The operation of the window, for a change to a path no package owns: None when no package
    /// was operated (or the baseline has not seen the databases yet).
    fn operation_unverified(&self) -> Option<Attribution> {
        const SHOWN: usize = 16;
        if !self.errors.is_empty() {
            // What was operated is not known while a database cannot be read.
            return None;
        }
        let operated: Vec<(PackageManager, &String)> = self
            .then
            .as_ref()?
            .keys()
            .flat_map(|manager| {
                self.operated_of(*manager)
                    .into_iter()
                    .map(|name| (*manager, name))
            })
            .collect();
        let (first_manager, first) = *operated.first()?;
        let one_manager = operated.iter().all(|(m, _)| *m == first_manager);
        let versions = (operated.len() == 1)
            .then(|| self.operated(first_manager, first))
            .flatten();
        Some(Attribution {
            kind: AttributionKind::OperationUnverified,
            manager: one_manager.then_some(first_manager),
            package: (operated.len() == 1).then(|| first.clone()),
            from_version: versions.and_then(|(before, _)| before.map(|i| i.version.clone())),
            to_version: versions.and_then(|(_, after)| after.map(|i| i.version.clone())),
            digest_verified: false,
            revision: None,
            operated_packages: operated
                .iter()
                .take(SHOWN)
                .map(|(_, name)| (*name).clone())
                .collect(),
        })
    }

    /// The packages of `manager` operated in the window, in name order of what the baseline saw
    /// then and, after them, of what is new (none when the baseline has not seen `manager`).
    fn operated_of(&self, manager: PackageManager) -> Vec<&String> {
        let Some(then) = self.then.as_ref().and_then(|then| then.get(&manager)) else {
            return Vec::new();
        };
        let now = self.now.get(&manager);
        let new = now.into_iter().flat_map(BTreeMap::keys);
        then.keys()
            .chain(new.filter(|name| !then.contains_key(*name)))
            .filter(|name| then.get(*name) != now.and_then(|now| now.get(*name)))
            .collect()
    }

    /// A database file changed: explained by an operation of that manager (of its package, for
    /// a file of one package).
    fn explain_database(&self, manager: PackageManager, package: Option<&str>) -> Option<Attribution> {
        let then = self.then.as_ref()?.get(&manager)?;
        let now = self.now.get(&manager);
        let operated = self.operated_of(manager);
        let owner = |name: &str| Owner {
            manager,
            package: name.to_string(),
            digest: None,
            link_to: None,
            present: true,
            gone_at: 0,
        };
        match package {
            Some(name) if then.contains_key(name) || now.is_some_and(|now| now.contains_key(name)) => {
                let versions = self.operated(manager, name)?;
                Some(attribution(&owner(name), versions, false))
            }
            // A file of a package the database never held (`info/evil.postinst`): planted.
            Some(_) => None,
            None => match operated.as_slice() {
                [] => None,
                [one] => {
                    let versions = self.operated(manager, one)?;
                    Some(attribution(&owner(one), versions, false))
                }
                _ => Some(of_manager(AttributionKind::Package, manager)),
            },
        }
    }
}

/// The lock files package managers take (empty files whose times change when taken).
const LOCK_FILES: [(&str, PackageManager); 5] = [
    ("/var/lib/dpkg/lock", PackageManager::Dpkg),
    ("/var/lib/dpkg/lock-frontend", PackageManager::Dpkg),
    ("/var/lib/dpkg/triggers/Lock", PackageManager::Dpkg),
    ("/var/lib/rpm/.rpm.lock", PackageManager::Rpm),
    ("/lib/apk/db/lock", PackageManager::Apk),
];

/// The manager whose lock `change` shows taken: one of its lock files, still an empty regular
/// file, with nothing but its times changed. Anything else about a lock file (content, mode,
/// owner, a symlink) is a change like any other.
fn lock_taken(change: &Change) -> Option<PackageManager> {
    let (_, manager) = LOCK_FILES.iter().find(|(path, _)| *path == change.path)?;
    let empty_file = |r: &crate::records::Record| r.meta.file_type == FileType::File && r.meta.size == 0;
    (change.category == ChangeCategory::Modified
        && change.changed.iter().all(|a| matches!(a, A::Mtime | A::Ctime))
        && change.previous.as_ref().is_some_and(empty_file)
        && change.current.as_ref().is_some_and(empty_file))
    .then_some(*manager)
}

/// A directory modified in its times only: what replacing a file in it does.
fn only_times_of_a_directory(change: &Change) -> bool {
    change.category == ChangeCategory::Modified
        && change
            .current
            .as_ref()
            .is_some_and(|r| r.meta.file_type == FileType::Directory)
        && change.changed.iter().all(|a| matches!(a, A::Mtime | A::Ctime))
}

/// What repointing a symlink changes.
/// The file capabilities an added file carries. No package database read here records them
/// (dpkg has no field for them; rpm's are not read yet), so a package never explains one: a
/// changed set is an unvouched attribute of a modified file, and an added file with any is
/// unexplained.
fn unrecorded_capabilities(change: &Change) -> Option<String> {
    if change.category != ChangeCategory::Added {
        return None;
    }
    change.current.as_ref()?.attributes.as_ref()?.capabilities()
}

const REPOINTED: [A; 5] = [A::LinkTarget, A::Size, A::Mtime, A::Ctime, A::Inode];

/// A change of a symlink's target, size, times or inode, and nothing else (or an added one).
fn repointed_only(change: &Change) -> bool {
    change.category == ChangeCategory::Added || change.changed.iter().all(|a| REPOINTED.contains(a))
}

/// A symlink target for a reason: lossy, and "nothing" when unknown.
fn shown(target: Option<&[u8]>) -> String {
    target.map_or_else(
        || "nothing".to_string(),
        |t| String::from_utf8_lossy(t).into_owned(),
    )
}

/// The parent directory of absolute `path` ("/" for a top-level path).
fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// An attribution naming only a manager: an operation on several packages, or its lock taken.
fn of_manager(kind: AttributionKind, manager: PackageManager) -> Attribution {
    Attribution {
        kind,
        manager: Some(manager),
        package: None,
        from_version: None,
        to_version: None,
        digest_verified: false,
        revision: None,
        operated_packages: Vec::new(),
    }
}

fn attribution(
    owner: &Owner,
    (before, after): (Option<&Installed>, Option<&Installed>),
    verified: bool,
) -> Attribution {
    Attribution {
        kind: AttributionKind::Package,
        manager: Some(owner.manager),
        package: Some(owner.package.clone()),
        from_version: before.map(|i| i.version.clone()),
        to_version: after.map(|i| i.version.clone()),
        digest_verified: verified,
        revision: None,
        operated_packages: Vec::new(),
    }
}

/// The group name of an update-alternatives group file.
fn group_file(path: &str) -> Option<&str> {
    path.strip_prefix(ALTERNATIVES_DIR)?
        .strip_prefix('/')
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// The manager whose database `path` belongs to, and the package for a file of one package
/// (dpkg's `info/<package>.<ext>`).
fn database_file(path: &str) -> Option<(PackageManager, Option<&str>)> {
    let within = |dir: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if within(DPKG_DIR) {
        let package = path
            .strip_prefix("/var/lib/dpkg/info/")
            .filter(|name| !name.contains('/'))
            .and_then(|name| name.rsplit_once('.'))
            .map(|(stem, _)| stem);
        return Some((PackageManager::Dpkg, package));
    }
    if within(RPM_DIR) {
        return Some((PackageManager::Rpm, None));
    }
    within(APK_DIR).then_some((PackageManager::Apk, None))
}
