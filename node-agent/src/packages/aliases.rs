//! Where a package database's paths are on this host. On a merged-/usr system (Debian 12,
//! Ubuntu 22.04 and later, Fedora) /bin, /sbin, /lib, /lib64... are symlinks into /usr, while
//! dpkg still records much of the base system under the old names (coreutils' /bin/ls), and the
//! scanner, which never follows a symlink, finds that file as /usr/bin/ls. The aliases are read
//! from the host root's own symlinks (never assumed): a top-level name that is a symlink to a
//! directory under /usr maps its children there, and a name under /usr that is a symlink back to
//! the top level maps the other way. Each database path is taken to its canonical form before
//! the ledger keys it, so one file is one entry however the database spells it.

use std::ffi::CString;

use crate::hostfs::{self, HostRoot};

/// The names merged-/usr systems link.
const MERGED: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Path prefixes (`/bin`) and what they are on this host (`/usr/bin`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aliases(Vec<(Vec<u8>, Vec<u8>)>);

impl Aliases {
    /// Reads the host's links: `/<name>` → `usr/<name>` (or `/usr/<name>`), and `/usr/<name>`
    /// → `../<name>` (or `/<name>`). Anything else (a link elsewhere, through `..` further up,
    /// a missing or unreadable name) is no alias.
    pub fn of(root: &HostRoot) -> Self {
        let mut aliases = Vec::new();
        let top = root.dir().ok();
        let usr = root.open_dir(&[b"usr".to_vec()]).ok();
        for name in MERGED {
            let Ok(c_name) = CString::new(*name) else { continue };
            let link = |dir: &Option<rustix::fd::OwnedFd>| {
                dir.as_ref()
                    .and_then(|d| hostfs::read_link_at(d, &c_name).ok())
                    .map(|t| String::from_utf8_lossy(&t).trim_end_matches('/').to_string())
            };
            if let Some(target) = link(&top)
                && (target == format!("usr/{name}") || target == format!("/usr/{name}"))
            {
                aliases.push((
                    format!("/{name}").into_bytes(),
                    format!("/usr/{name}").into_bytes(),
                ));
            }
            if let Some(target) = link(&usr)
                && (target == format!("../{name}") || target == format!("/{name}"))
            {
                aliases.push((
                    format!("/usr/{name}").into_bytes(),
                    format!("/{name}").into_bytes(),
                ));
            }
        }
        Self(aliases)
    }

    /// `path` as the scanner finds it on this host: `/bin/ls` → `/usr/bin/ls` where /bin links
    /// to usr/bin. The link itself (`/bin`) stays what it is.
    pub fn canonical<'p>(&self, path: &'p [u8]) -> std::borrow::Cow<'p, [u8]> {
        for (from, to) in &self.0 {
            if let Some(rest) = path.strip_prefix(from.as_slice())
                && rest.first() == Some(&b'/')
            {
                return std::borrow::Cow::Owned([to.as_slice(), rest].concat());
            }
        }
        std::borrow::Cow::Borrowed(path)
    }

    /// A stable description, part of the ledger's fingerprint: a host whose links change has
    /// its databases read again.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(from, to)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(from),
                    String::from_utf8_lossy(to)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn host(links: &[(&str, &str)]) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("sbin")).unwrap();
        for (link, target) in links {
            std::os::unix::fs::symlink(target, dir.path().join(link)).unwrap();
        }
        let root = HostRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn merged_usr_links_map_the_old_names_into_usr_and_nothing_else() {
        let (_dir, root) = host(&[
            ("bin", "usr/bin"),
            ("lib", "/usr/lib"),
            ("usr/sbin", "../sbin"),
            ("lib64", "/opt/lib64"),
        ]);
        let aliases = Aliases::of(&root);
        assert_eq!(aliases.describe(), "/bin=/usr/bin,/usr/sbin=/sbin,/lib=/usr/lib");
        assert_eq!(aliases.canonical(b"/bin/ls").as_ref(), b"/usr/bin/ls");
        assert_eq!(aliases.canonical(b"/usr/sbin/init").as_ref(), b"/sbin/init");
        assert_eq!(
            aliases.canonical(b"/lib/x86_64-linux-gnu/libc.so.6").as_ref(),
            b"/usr/lib/x86_64-linux-gnu/libc.so.6"
        );
        assert_eq!(aliases.canonical(b"/bin").as_ref(), b"/bin", "the link itself");
        assert_eq!(aliases.canonical(b"/binary/x").as_ref(), b"/binary/x");
        assert_eq!(
            aliases.canonical(b"/lib64/ld.so").as_ref(),
            b"/lib64/ld.so",
            "a link out of /usr is no alias"
        );
    }

    #[test]
    fn a_host_without_links_has_no_aliases() {
        let (_dir, root) = host(&[]);
        assert_eq!(Aliases::of(&root), Aliases::default());
    }
}

/// dpkg's diversions (`dpkg-divert`, /var/lib/dpkg/diversions): the file a package ships at
/// `from` lives at `to` instead, and `from` belongs to the diverting package (None: a local
/// diversion by the administrator, owned by nobody).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diversions(std::collections::BTreeMap<Vec<u8>, (Vec<u8>, Option<String>)>);

/// The largest diversions file read.
const MAX_DIVERSIONS: u64 = 16 << 20;

impl Diversions {
    pub fn read(root: &HostRoot) -> Result<Self, super::PackageError> {
        let path = "/var/lib/dpkg/diversions";
        let Some(bytes) = super::installed::read_file(root, path, MAX_DIVERSIONS)? else {
            return Ok(Self::default());
        };
        Self::parse(&bytes).map_err(|reason| super::PackageError::Unreadable {
            file: path.to_string(),
            reason,
        })
    }

    /// Three lines per diversion: the diverted path, where it was moved, the diverting package
    /// (`:` for a local one).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let mut map = std::collections::BTreeMap::new();
        if text.is_empty() {
            return Ok(Self(map));
        }
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        for (index, triple) in lines.chunks(3).enumerate() {
            let line = index * 3 + 1;
            let [from, to, package] = triple else {
                return Err(format!(
                    "line {line}: a diversion needs three lines (from, to, package)"
                ));
            };
            if !from.starts_with(b"/") || !to.starts_with(b"/") {
                return Err(format!("line {line}: diversion paths are absolute"));
            }
            let package = match *package {
                b":" => None,
                name if !name.is_empty() && name.iter().all(u8::is_ascii_graphic) => {
                    Some(String::from_utf8_lossy(name).into_owned())
                }
                _ => return Err(format!("line {}: not a package name", line + 2)),
            };
            map.insert(from.to_vec(), (to.to_vec(), package));
        }
        Ok(Self(map))
    }

    /// Where `package`'s file `path` is: moved when another package (or the administrator)
    /// diverted it.
    pub fn place<'p>(&self, package: &str, path: &'p [u8]) -> std::borrow::Cow<'p, [u8]> {
        match self.0.get(path) {
            Some((to, diverter)) if diverter.as_deref() != Some(package) => {
                std::borrow::Cow::Owned(to.clone())
            }
            _ => std::borrow::Cow::Borrowed(path),
        }
    }
}

#[cfg(test)]
mod diversion_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_diverted_file_belongs_to_the_diverting_package_and_the_original_moves() {
        let diversions = Diversions::parse(
            b"/usr/bin/x\n/usr/bin/x.distrib\nshim\n/etc/local.conf\n/etc/local.conf.orig\n:\n",
        )
        .unwrap();
        assert_eq!(diversions.place("shim", b"/usr/bin/x").as_ref(), b"/usr/bin/x");
        assert_eq!(
            diversions.place("coreutils", b"/usr/bin/x").as_ref(),
            b"/usr/bin/x.distrib"
        );
        assert_eq!(
            diversions.place("base-files", b"/etc/local.conf").as_ref(),
            b"/etc/local.conf.orig"
        );
        assert_eq!(
            diversions.place("coreutils", b"/usr/bin/y").as_ref(),
            b"/usr/bin/y"
        );
    }

    #[test]
    fn a_malformed_diversions_file_is_an_error_naming_the_line() {
        assert_eq!(
            Diversions::parse(b"/usr/bin/x\n/usr/bin/x.distrib\n").unwrap_err(),
            "line 1: a diversion needs three lines (from, to, package)"
        );
        assert_eq!(
            Diversions::parse(b"usr/bin/x\n/a\np\n").unwrap_err(),
            "line 1: diversion paths are absolute"
        );
        assert_eq!(Diversions::parse(b"").unwrap(), Diversions::default());
    }
}
