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

use std::collections::BTreeMap;

use super::{PackageError, aliases::Aliases};
use crate::hostfs::{self, HostRoot};

pub const ALTERNATIVES_DIR: &str = "/var/lib/dpkg/alternatives";
/// Where the per-name links live.
const LINK_DIR: &str = "/etc/alternatives";

/// Group files read at most, and bytes per file.
const MAX_GROUPS: usize = 4096;
const MAX_GROUP_BYTES: u64 = 1 << 20;
/// Slaves and alternatives per group at most.
const MAX_SLAVES: usize = 1024;
const MAX_CHOICES: usize = 4096;

/// One target a link may have, and the alternative (the path a package owns) it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub target: Vec<u8>,
    pub provider: Vec<u8>,
}

/// What the alternatives database says of one link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub group: String,
    pub allowed: Vec<Allowed>,
    /// Every alternative of the group (a slave link some of them lack is removed while one of
    /// those is chosen).
    pub providers: Vec<Vec<u8>>,
}

/// Every alternatives link of the host, by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alternatives(BTreeMap<Vec<u8>, Link>);

/// One group file, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Group {
    /// (name, link) of the master, then of each slave.
    links: Vec<(Vec<u8>, Vec<u8>)>,
    choices: Vec<Choice>,
}

/// One alternative: its path, then its path for each slave (None: it has none).
type Choice = (Vec<u8>, Vec<Option<Vec<u8>>>);

impl Alternatives {
    /// The host's alternatives database, each link at the path the scanner finds it
    /// (`aliases`); empty when it has none.
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
        for name in names {
            let group = String::from_utf8_lossy(name.as_bytes()).into_owned();
            let path = format!("{ALTERNATIVES_DIR}/{group}");
            let Some(bytes) = super::installed::read_file(root, &path, MAX_GROUP_BYTES)? else {
                continue;
            };
            let parsed = parse(&group, &bytes).map_err(|reason| unreadable(&path, reason))?;
            alternatives.add(&group, parsed);
        }
        alternatives.0 = std::mem::take(&mut alternatives.0)
            .into_iter()
            .map(|(path, link)| (aliases.canonical(&path).into_owned(), link))
            .collect();
        Ok(alternatives)
    }

    /// The group file `bytes` of group `name` alone (tests and fuzzing).
    pub fn parse_group(name: &str, bytes: &[u8]) -> Result<Self, String> {
        let mut alternatives = Self::default();
        alternatives.add(name, parse(name, bytes)?);
        Ok(alternatives)
    }

    /// What the database says of the link at `path`, when it is one.
    pub fn link(&self, path: &[u8]) -> Option<&Link> {
        self.0.get(path)
    }

    fn add(&mut self, group: &str, parsed: Group) {
        for (index, (name, link)) in parsed.links.iter().enumerate() {
            let per_name = [LINK_DIR.as_bytes(), b"/", name].concat();
            let to_per_name = parsed
                .choices
                .iter()
                .map(|(provider, _)| Allowed {
                    target: per_name.clone(),
                    provider: provider.clone(),
                })
                .collect();
            // The master's per-name link points to the alternative itself, a slave's to the
            // alternative's path for that slave.
            let to_choice = parsed
                .choices
                .iter()
                .filter_map(|(provider, slaves)| {
                    let target = match index {
                        0 => Some(provider.clone()),
                        slave => slaves.get(slave - 1).cloned().flatten(),
                    }?;
                    Some(Allowed {
                        target,
                        provider: provider.clone(),
                    })
                })
                .collect();
            let group = group.to_string();
            let providers: Vec<Vec<u8>> = parsed.choices.iter().map(|(path, _)| path.clone()).collect();
            self.0.insert(
                link.clone(),
                Link {
                    group: group.clone(),
                    allowed: to_per_name,
                    providers: providers.clone(),
                },
            );
            self.0.insert(
                per_name,
                Link {
                    group,
                    allowed: to_choice,
                    providers,
                },
            );
        }
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
    Ok(Group { links, choices })
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

    /// Debian bookworm's awk group, as update-alternatives wrote it.
    const AWK: &[u8] = b"auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\nnawk.1.gz\n/usr/share/man/man1/nawk.1.gz\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/gawk\n10\n\n/usr/bin/gawk\n\n\n";

    fn targets(link: &Link) -> Vec<(&[u8], &[u8])> {
        link.allowed
            .iter()
            .map(|a| (a.target.as_slice(), a.provider.as_slice()))
            .collect()
    }

    #[test]
    fn a_group_link_points_to_its_name_and_the_name_to_a_registered_alternative() {
        let alternatives = Alternatives::parse_group("awk", AWK).unwrap();
        let master = alternatives.link(b"/usr/bin/awk").unwrap();
        assert_eq!(master.group, "awk");
        assert_eq!(
            targets(master),
            [
                (&b"/etc/alternatives/awk"[..], &b"/usr/bin/mawk"[..]),
                (b"/etc/alternatives/awk", b"/usr/bin/gawk")
            ]
        );
        assert_eq!(
            targets(alternatives.link(b"/etc/alternatives/awk").unwrap()),
            [
                (&b"/usr/bin/mawk"[..], &b"/usr/bin/mawk"[..]),
                (b"/usr/bin/gawk", b"/usr/bin/gawk")
            ]
        );
        // A slave points to the alternative's slave path; gawk has no man page slave.
        assert_eq!(
            targets(alternatives.link(b"/etc/alternatives/awk.1.gz").unwrap()),
            [(&b"/usr/share/man/man1/mawk.1.gz"[..], &b"/usr/bin/mawk"[..])]
        );
        assert_eq!(
            targets(alternatives.link(b"/etc/alternatives/nawk").unwrap()),
            [
                (&b"/usr/bin/mawk"[..], &b"/usr/bin/mawk"[..]),
                (b"/usr/bin/gawk", b"/usr/bin/gawk")
            ]
        );
        assert!(alternatives.link(b"/usr/bin/mawk").is_none());
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
