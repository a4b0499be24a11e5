//! dpkg's alternatives (`update-alternatives`, /var/lib/dpkg/alternatives/<name>): the links a
//! maintainer script makes for a group of interchangeable programs (awk, editor, pager). No
//! package owns them; the alternatives database says what each may point to:
//! - a group's link (`/usr/bin/awk`, and each slave link such as `/usr/bin/nawk`) points to
//!   `/etc/alternatives/<name>`;
//! - `/etc/alternatives/<name>` points to one of the registered alternatives (`/usr/bin/mawk`),
//!   or for a slave, to that alternative's slave path; the alternative's own path is what a
//!   package owns, and so names the package whose operation made the link.
//!
//! A group file is: the mode (`auto` or `manual`), the master link, pairs of slave name and
//! slave link, an empty line, then per alternative its path, its priority and one line per
//! slave (empty when it has none), and an empty line at the end.

use std::{collections::BTreeMap, sync::Arc};

use super::{PackageError, aliases::Aliases};
use crate::hostfs::{self, HostRoot};

pub const ALTERNATIVES_DIR: &str = "/var/lib/dpkg/alternatives";
/// Where the per-name links live.
const LINK_DIR: &str = "/etc/alternatives";

/// Group files read at most, bytes per file and in all.
const MAX_GROUPS: usize = 4096;
const MAX_GROUP_BYTES: u64 = 1 << 20;
const MAX_TOTAL_BYTES: u64 = 16 << 20;
/// Slaves and alternatives per group at most.
const MAX_SLAVES: usize = 1024;
const MAX_CHOICES: usize = 4096;

/// One group file, parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// (name, link) of the master, then of each slave.
    links: Vec<(Vec<u8>, Vec<u8>)>,
    choices: Vec<Choice>,
}

/// One alternative: its path, then its path for each slave (None: it has none).
type Choice = (Vec<u8>, Vec<Option<Vec<u8>>>);

impl Group {
    /// Every alternative's own path: what a package ships.
    pub fn providers(&self) -> impl Iterator<Item = &[u8]> {
        self.choices.iter().map(|(path, _)| path.as_slice())
    }
}

/// What the alternatives database says of one link: the group's `slave`th link (0: the
/// master), either the link itself (`/usr/bin/awk`, which points to its per-name link) or its
/// per-name link (`/etc/alternatives/awk`, which points to the chosen alternative).
#[derive(Clone, Debug)]
pub struct Link {
    pub group: Arc<Group>,
    slave: usize,
    pub per_name: bool,
}

impl Link {
    /// `/etc/alternatives/<name>` of this link's name.
    pub fn per_name_path(&self) -> Vec<u8> {
        let name = self.group.links.get(self.slave).map_or(&[][..], |(name, _)| name);
        [LINK_DIR.as_bytes(), b"/", name].concat()
    }

    /// The alternative (its own path, what a package ships) that a per-name link pointing to
    /// `target` stands for, when one is registered for it: the alternative itself for the
    /// master, its path for that slave for a slave.
    pub fn chosen_by(&self, target: &[u8]) -> Option<&[u8]> {
        self.group.choices.iter().find_map(|(path, slaves)| {
            let registered = match self.slave {
                0 => Some(path),
                slave => slaves.get(slave - 1)?.as_ref(),
            }?;
            (registered == target).then_some(path.as_slice())
        })
    }

    /// A per-name slave link that some alternative lacks: update-alternatives removes it while
    /// that one is chosen.
    pub fn may_vanish(&self) -> bool {
        self.per_name
            && self.slave > 0
            && self
                .group
                .choices
                .iter()
                .any(|(_, slaves)| slaves.get(self.slave - 1).is_none_or(Option::is_none))
    }
}

/// Every alternatives link of the host, by path, and the groups by name.
#[derive(Clone, Debug, Default)]
pub struct Alternatives {
    links: BTreeMap<Vec<u8>, Link>,
    groups: BTreeMap<String, Arc<Group>>,
    /// Group files that could not be read: their links are not known.
    pub skipped: Vec<PackageError>,
}

impl Alternatives {
    /// The host's alternatives database, each link at the path the scanner finds it
    /// (`aliases`); empty when it has none. A group file that cannot be read is skipped (and
    /// kept in `skipped`), as update-alternatives' own temporary and backup files are.
    pub fn read(root: &HostRoot, aliases: &Aliases) -> Result<Self, PackageError> {
        let components = super::installed::components(ALTERNATIVES_DIR);
        let dir = match root.open_dir(&components) {
            Ok(dir) => dir,
            Err(errno) if super::installed::is_missing(errno) => return Ok(Self::default()),
            Err(errno) => return Err(unreadable(ALTERNATIVES_DIR, errno.to_string())),
        };
        let names = hostfs::list_sorted(&dir).map_err(|e| unreadable(ALTERNATIVES_DIR, e.to_string()))?;
        if names.len() > MAX_GROUPS {
            return Err(unreadable(
                ALTERNATIVES_DIR,
                format!("{} groups, more than the {MAX_GROUPS} read", names.len()),
            ));
        }
        let mut alternatives = Self::default();
        let mut total = 0;
        for name in names {
            let group = String::from_utf8_lossy(name.as_bytes()).into_owned();
            if group.starts_with('.')
                || [".dpkg-tmp", ".dpkg-new", ".dpkg-old"]
                    .iter()
                    .any(|s| group.ends_with(s))
            {
                continue;
            }
            let path = format!("{ALTERNATIVES_DIR}/{group}");
            let bytes = match super::installed::read_file(
                root,
                &path,
                MAX_GROUP_BYTES.min(MAX_TOTAL_BYTES - total),
            ) {
                Ok(Some(bytes)) if !bytes.is_empty() => bytes,
                Ok(_) => continue,
                Err(error) => {
                    alternatives.skipped.push(error);
                    continue;
                }
            };
            total += bytes.len() as u64;
            match parse(&group, &bytes) {
                Ok(parsed) => alternatives.add(parsed, aliases),
                Err(reason) => alternatives.skipped.push(unreadable(&path, reason)),
            }
        }
        Ok(alternatives)
    }

    /// The group file `bytes` of group `name` alone (tests and fuzzing).
    pub fn parse_group(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let mut alternatives = Self::default();
        alternatives.add(parse(name, bytes)?, &Aliases::default());
        Ok(alternatives)
    }

    /// What the database says of the link at `path`, when it is one.
    pub fn link(&self, path: &[u8]) -> Option<&Link> {
        self.links.get(path)
    }

    /// The group of group file `name` (`/var/lib/dpkg/alternatives/<name>`), when it was read.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name).map(Arc::as_ref)
    }

    fn add(&mut self, group: Group, aliases: &Aliases) {
        let group = Arc::new(group);
        for (slave, (name, link)) in group.links.iter().enumerate() {
            let per_name = [LINK_DIR.as_bytes(), b"/", name].concat();
            for (path, is_per_name) in [(link.clone(), false), (per_name, true)] {
                self.links.insert(
                    aliases.canonical(&path).into_owned(),
                    Link {
                        group: Arc::clone(&group),
                        slave,
                        per_name: is_per_name,
                    },
                );
            }
        }
        self.groups.insert(group.name.clone(), group);
    }
}

fn parse(name: &str, bytes: &[u8]) -> Result<Group, String> {
    let mut lines = bytes.split(|b| *b == b'\n').enumerate().map(|(i, l)| (i + 1, l));
    let mut next = |what: &str| lines.next().ok_or_else(|| format!("ends before {what}"));
    let (line, mode) = next("the mode")?;
    if mode != b"auto" && mode != b"manual" {
        return Err(format!("line {line}: mode is not auto or manual"));
    }
    let absolute = |(line, path): (usize, &[u8]), what: &str| {
        if path.starts_with(b"/") && !path.contains(&0) {
            Ok(path.to_vec())
        } else {
            Err(format!("line {line}: {what} is not an absolute path"))
        }
    };
    let named = |(line, name): (usize, &[u8])| {
        if !name.is_empty() && !name.contains(&b'/') && !name.contains(&0) && name != b".." {
            Ok(name.to_vec())
        } else {
            Err(format!("line {line}: not an alternative name"))
        }
    };
    let master = absolute(next("the master link")?, "the master link")?;
    // The master's name is the group file's name.
    let mut links = vec![(name.as_bytes().to_vec(), master)];
    loop {
        let (line, name) = next("the end of the slaves")?;
        if name.is_empty() {
            break;
        }
        if links.len() > MAX_SLAVES {
            return Err(format!("line {line}: more than {MAX_SLAVES} slaves"));
        }
        let name = named((line, name))?;
        let link = absolute(next("a slave link")?, "a slave link")?;
        links.push((name, link));
    }
    let mut choices = Vec::new();
    loop {
        let (line, path) = next("the end of the alternatives")?;
        if path.is_empty() {
            break;
        }
        if choices.len() >= MAX_CHOICES {
            return Err(format!("line {line}: more than {MAX_CHOICES} alternatives"));
        }
        let path = absolute((line, path), "an alternative")?;
        let (line, priority) = next("a priority")?;
        if std::str::from_utf8(priority)
            .ok()
            .and_then(|p| p.parse::<i64>().ok())
            .is_none()
        {
            return Err(format!("line {line}: priority is not a number"));
        }
        let mut slaves = Vec::with_capacity(links.len() - 1);
        for _ in 1..links.len() {
            let slave = next("a slave path")?;
            slaves.push(match slave.1 {
                b"" => None,
                _ => Some(absolute(slave, "a slave path")?),
            });
        }
        choices.push((path, slaves));
    }
    Ok(Group {
        name: name.to_string(),
        links,
        choices,
    })
}

fn unreadable(file: &str, reason: String) -> PackageError {
    PackageError::Unreadable {
        file: file.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Debian bookworm's awk group, as update-alternatives wrote it, plus a gawk without a man
    /// page slave.
    const AWK: &[u8] = b"auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\nnawk.1.gz\n/usr/share/man/man1/nawk.1.gz\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/gawk\n10\n\n/usr/bin/gawk\n\n\n";

    #[test]
    fn a_group_link_points_to_its_name_and_the_name_to_a_registered_alternative() {
        let alternatives = Alternatives::parse_group("awk", AWK).unwrap();
        let master = alternatives.link(b"/usr/bin/awk").unwrap();
        assert_eq!(master.group.name, "awk");
        assert!(!master.per_name);
        assert_eq!(master.per_name_path(), b"/etc/alternatives/awk");
        let awk = alternatives.link(b"/etc/alternatives/awk").unwrap();
        assert!(awk.per_name);
        assert_eq!(awk.chosen_by(b"/usr/bin/mawk"), Some(&b"/usr/bin/mawk"[..]));
        assert_eq!(awk.chosen_by(b"/usr/bin/gawk"), Some(&b"/usr/bin/gawk"[..]));
        assert_eq!(awk.chosen_by(b"/usr/bin/bash"), None);
        // A slave points to the alternative's slave path; gawk has no man page slave.
        let man = alternatives.link(b"/etc/alternatives/awk.1.gz").unwrap();
        assert_eq!(
            man.chosen_by(b"/usr/share/man/man1/mawk.1.gz"),
            Some(&b"/usr/bin/mawk"[..])
        );
        assert!(man.may_vanish(), "gawk has no awk.1.gz");
        let nawk = alternatives.link(b"/etc/alternatives/nawk").unwrap();
        assert_eq!(nawk.chosen_by(b"/usr/bin/gawk"), Some(&b"/usr/bin/gawk"[..]));
        assert!(!nawk.may_vanish());
        assert!(!awk.may_vanish(), "a master is never removed while its group is");
        assert!(alternatives.link(b"/usr/bin/mawk").is_none());
        let group = alternatives.group("awk").unwrap();
        assert_eq!(
            group.providers().collect::<Vec<_>>(),
            [&b"/usr/bin/mawk"[..], b"/usr/bin/gawk"]
        );
    }

    #[test]
    fn a_bad_group_is_skipped_with_its_reason_and_update_alternatives_temporaries_are_not_groups() {
        let dir = tempfile::tempdir().unwrap();
        let groups = dir.path().join("var/lib/dpkg/alternatives");
        std::fs::create_dir_all(&groups).unwrap();
        std::fs::write(groups.join("awk"), AWK).unwrap();
        std::fs::write(groups.join("broken"), b"sometimes\n").unwrap();
        std::fs::write(groups.join("pager.dpkg-tmp"), b"garbage").unwrap();
        std::fs::write(groups.join("empty"), b"").unwrap();
        let root = HostRoot::open(dir.path()).unwrap();
        let alternatives = Alternatives::read(&root, &Aliases::default()).unwrap();
        assert!(
            alternatives.link(b"/usr/bin/awk").is_some(),
            "the good group is read"
        );
        assert!(alternatives.group("pager.dpkg-tmp").is_none());
        assert!(alternatives.group("empty").is_none());
        let skipped: Vec<String> = alternatives.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(
            skipped[0].contains("/var/lib/dpkg/alternatives/broken")
                && skipped[0].contains("line 1: mode is not auto or manual"),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_malformed_group_file_is_an_error_naming_the_line() {
        let err = |bytes: &[u8]| Alternatives::parse_group("x", bytes).unwrap_err();
        assert_eq!(
            err(b"sometimes\n/usr/bin/x\n\n\n"),
            "line 1: mode is not auto or manual"
        );
        assert_eq!(
            err(b"auto\nusr/bin/x\n\n\n"),
            "line 2: the master link is not an absolute path"
        );
        assert_eq!(
            err(b"auto\n/usr/bin/x\n../y\n/usr/bin/y\n\n"),
            "line 3: not an alternative name"
        );
        assert_eq!(
            err(b"auto\n/usr/bin/x\n\n/usr/bin/x1\nhigh\n\n"),
            "line 5: priority is not a number"
        );
        assert_eq!(
            err(b"auto\n/usr/bin/x\n\n/usr/bin/x1\n5"),
            "ends before the end of the alternatives"
        );
        assert_eq!(err(b""), "line 1: mode is not auto or manual");
    }
}
