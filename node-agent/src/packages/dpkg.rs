//! The dpkg database of a Debian-family node, parsed from bytes: the status file, its journal
//! (`/var/lib/dpkg/status`, `/var/lib/dpkg/updates/NNNN`) and the per-package info files
//! (`info/<name>.md5sums`, `info/<name>.list`). Pure: the caller reads the files; nothing here
//! touches the file system or runs dpkg.
//!
//! The files are hostile (root on a compromised node can write anything), so every parser is
//! bounded by [`Limits`], never panics, and in what it reads rejects what dpkg 1.21 (Debian 12)
//! rejects, with an error naming the line and the offending value. The rules are dpkg's own:
//! `lib/dpkg/parse.c` (`parse_stanza`, `pkg_parse_verify`, `parse_find_pkg_slot`),
//! `lib/dpkg/fields.c` (`f_conffiles`), `lib/dpkg/parsehelp.c` (the Status words,
//! `pkg_name_is_illegal`), `lib/dpkg/db-fsys-digest.c` (md5sums) and `lib/dpkg/db-fsys-files.c`
//! (list). Where dpkg is lax in a way that would make us guess, this module is stricter:
//!
//! - `\r` is data, not whitespace: a CRLF file fails on its first field (`amd64\r` is not an
//!   architecture) instead of being read differently from what dpkg reads. dpkg never writes CR.
//! - A path with a `..` component is an error: no package ships one, and joined to the host
//!   root it could point outside it.
//! - A status file may not hold two instances of a package unless all are `Multi-Arch: same`
//!   (dpkg refuses such a database too), so [`StatusEntry::info_name`] is unique.

mod database;
mod entry;
mod info;
mod paragraph;

use database::{Database, Source, merge_paragraphs};
use info::{absolute_path, check_path, decode_md5, info_lines, skip_slash_dotslash};

/// Bounds on the work and memory spent on one hostile file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Packages the database may hold, after each paragraph is merged.
    pub max_entries: usize,
    /// The longest field value of a paragraph, continuation lines included, in bytes.
    pub max_field_bytes: usize,
    /// Lines one md5sums or list file may have.
    pub max_lines: usize,
    /// The longest path, its leading `/` included, in bytes (Linux PATH_MAX).
    pub max_path_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_field_bytes: 1 << 20,
            max_lines: 1_000_000,
            max_path_bytes: 4096,
        }
    }
}

/// A package as the status database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// `Package`, lowercased as dpkg does: ASCII letters, digits and `+-._`, starting with a
    /// letter or digit, so it is safe in a file name.
    pub package: String,
    /// `Architecture` (`amd64`, `all`, ...): ASCII letters, digits and `-`. None when absent or
    /// empty (dpkg before 1.10.19 dropped it for config-files entries).
    pub architecture: Option<String>,
    /// `Multi-Arch: same`: several architectures may be installed, and the info files are named
    /// `<package>:<architecture>.<ext>`.
    pub multi_arch_same: bool,
    /// `Version`; None when absent or empty (a half-installed package may have none).
    pub version: Option<String>,
    /// The first word of `Status`: unknown, install, hold, deinstall or purge.
    pub want: String,
    /// The last word of `Status`: config-files, half-installed, unpacked, half-configured,
    /// triggers-awaited, triggers-pending or installed. Entries in state not-installed are
    /// dropped: dpkg keeps them only to remember a selection, they own no file. The middle word
    /// (ok or reinstreq) is checked but not kept: the state says how far dpkg got.
    pub state: String,
    pub conffiles: Vec<Conffile>,
}

/// One line of a `Conffiles` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conffile {
    /// Absolute, as raw bytes: a path need not be UTF-8.
    pub path: Vec<u8>,
    /// The MD5 of the file as the package shipped it. None for dpkg's markers `newconffile`
    /// (not configured yet), `nonexistent` and `-`: no digest is known.
    pub md5: Option<[u8; 16]>,
    /// The package no longer ships this conffile; the file stays on disk as the admin left it.
    pub obsolete: bool,
}

impl StatusEntry {
    /// The base name of its info files: `name:arch` for Multi-Arch: same, else `name`.
    pub fn info_name(&self) -> String {
        match (&self.architecture, self.multi_arch_same) {
            (Some(architecture), true) => format!("{}:{architecture}", self.package),
            _ => self.package.clone(),
        }
    }

    /// Whether the package's files are on disk as its md5sums and list say. True from unpacked
    /// on (unpacked, half-configured, triggers-awaited, triggers-pending, installed): every file
    /// is in place, though in unpacked and half-configured a new conffile may still wait beside
    /// the old one as `.dpkg-new`. False for half-installed (an unpack or removal stopped
    /// midway) and config-files (only conffiles remain).
    pub fn files_installed(&self) -> bool {
        matches!(
            self.state.as_str(),
            "unpacked" | "half-configured" | "triggers-awaited" | "triggers-pending" | "installed"
        )
    }
}

/// What is wrong with a dpkg database file. Lines count from 1 in the file being parsed: the
/// status file, one journal file, one md5sums or list file.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DpkgError {
    #[error("line {line}: a NUL byte, which no dpkg database file contains")]
    NulByte { line: usize },

    #[error("line {line}: the file does not end with a newline, as dpkg always writes it: truncated?")]
    MissingFinalNewline { line: usize },

    #[error("line {line}: {text:?} is not a field (`Name: value`)")]
    NotAField { line: usize, text: String },

    #[error("line {line}: a continuation line (starting with a space or tab) with no field to continue")]
    ContinuationWithoutField { line: usize },

    #[error("line {line}: a blank continuation line in field {field}; dpkg writes ` .` for an empty line")]
    BlankContinuation { line: usize, field: String },

    #[error("line {line}: field {field} appears twice in one paragraph")]
    DuplicateField { line: usize, field: String },

    #[error("line {line}: field {field} is longer than the limit of {limit} bytes")]
    FieldTooLong {
        line: usize,
        field: String,
        limit: usize,
    },

    #[error("line {line}: the paragraph starting here has no Package field")]
    MissingPackage { line: usize },

    #[error("line {line}: package {package} has no {field} field")]
    MissingField {
        line: usize,
        package: String,
        field: &'static str,
    },

    #[error("line {line}: field {field} is not valid UTF-8: {value:?}")]
    NotUtf8 {
        line: usize,
        field: &'static str,
        value: String,
    },

    #[error("line {line}: {name:?} is not a valid package name: {reason}")]
    BadPackageName {
        line: usize,
        name: String,
        reason: &'static str,
    },

    #[error(
        "line {line}: package {package}: architecture {value:?} is not ASCII letters, digits and - (not first)"
    )]
    BadArchitecture {
        line: usize,
        package: String,
        value: String,
    },

    #[error("line {line}: package {package}: version {value:?} contains whitespace")]
    BadVersion {
        line: usize,
        package: String,
        value: String,
    },

    #[error(
        "line {line}: package {package}: Status {value:?} is not `want flag state`, e.g. `install ok installed`"
    )]
    BadStatus {
        line: usize,
        package: String,
        value: String,
    },

    #[error("line {line}: package {package}: Multi-Arch {value:?} is not one of no, same, foreign, allowed")]
    BadMultiArch {
        line: usize,
        package: String,
        value: String,
    },

    #[error(
        "line {line}: package {package} is Multi-Arch: same with architecture {architecture:?}, not a real one"
    )]
    MultiArchSameWithoutArchitecture {
        line: usize,
        package: String,
        architecture: String,
    },

    #[error("line {line}: package {package}: Conffiles line {text:?}: {reason}")]
    BadConffile {
        line: usize,
        package: String,
        text: String,
        reason: &'static str,
    },

    #[error("line {line}: a path of {len} bytes, longer than the limit of {limit}")]
    PathTooLong { line: usize, len: usize, limit: usize },

    #[error("line {line}: path {path:?} has a `..` component, which no package ships")]
    ParentComponent { line: usize, path: String },

    #[error("line {line}: more than {limit} packages; raise the limit if the node really has that many")]
    TooManyEntries { line: usize, limit: usize },

    #[error(
        "package {package} has instances for {architectures}, not all Multi-Arch: same; dpkg refuses that"
    )]
    NotCoInstallable { package: String, architectures: String },

    #[error("more than {limit} lines")]
    TooManyLines { limit: usize },

    #[error("line {line}: {text:?} does not start with an MD5 (32 hexadecimal digits)")]
    BadDigest { line: usize, text: String },

    #[error("line {line}: {text:?}: the MD5 is not followed by two spaces")]
    MissingSeparator { line: usize, text: String },

    #[error("line {line}: an empty path")]
    EmptyPath { line: usize },

    #[error("line {line}: {path:?} is not an absolute path")]
    RelativePath { line: usize, path: String },
}

/// The longest value shown in an error message.
const SHOWN_BYTES: usize = 200;

/// Parses a status file: its packages in file order, not-installed entries dropped. Two
/// paragraphs for one (package, architecture): the last wins, in the place of the first, as
/// dpkg keeps one slot per architecture.
pub fn parse_status(bytes: &[u8], limits: &Limits) -> Result<Vec<StatusEntry>, DpkgError> {
    let mut database: Database = Database::default();
    merge_paragraphs(&mut database, bytes, Source::Status, limits)?;
    database.check_instances()?;
    Ok(database.into_entries())
}

/// Applies one journal file (`updates/NNNN`) to `entries`, as dpkg does when it reads the
/// database: each paragraph replaces the entry of the same package and architecture, or, when
/// the package has a single installed instance and they are not both Multi-Arch: same, that
/// instance (a cross-grade); a not-installed paragraph removes it; any other paragraph is
/// appended. Apply the journal files in [`update_file_order`]. On error `entries` is unchanged.
pub fn apply_update(entries: &mut Vec<StatusEntry>, update: &[u8], limits: &Limits) -> Result<(), DpkgError> {
    let mut database: Database = Database::default();
    for entry in entries.iter().cloned() {
        database.merge(entry, Source::Status);
    }
    merge_paragraphs(&mut database, update, Source::Journal, limits)?;
    database.check_instances()?;
    *entries = database.into_entries();
    Ok(())
}

/// The indexes of the journal files among the names of `updates/`, in the order dpkg applies
/// them: names of decimal digits only, by numeric value (then by name, so `1` and `0001` keep a
/// fixed order). Other names, such as dpkg's `tmp.i`, are not journal files. dpkg itself writes
/// four-digit names and refuses a directory mixing lengths; here no name is an error.
pub fn update_file_order(names: &[&[u8]]) -> Vec<usize> {
    let mut journal: Vec<(&[u8], usize)> = names
        .iter()
        .enumerate()
        .filter(|&(_, name)| !name.is_empty() && name.iter().all(u8::is_ascii_digit))
        .map(|(index, name)| (*name, index))
        .collect();
    journal.sort_by(|(a, _), (b, _)| numeric_key(a).cmp(&numeric_key(b)).then_with(|| a.cmp(b)));
    journal.into_iter().map(|(_, index)| index).collect()
}

/// A path (absolute) and the md5 of its content, as a `.md5sums` line gives them.
pub type Md5sum = (Vec<u8>, [u8; 16]);

/// Parses `info/<name>.md5sums`: `<32 hex digits><two spaces><path>` per line, the path
/// relative to `/` as dpkg writes it (a leading `/` or `./` is skipped, as dpkg does). Returns
/// absolute paths, a trailing `/` dropped, and their MD5s.
pub fn parse_md5sums(bytes: &[u8], limits: &Limits) -> Result<Vec<Md5sum>, DpkgError> {
    let mut files: Vec<(Vec<u8>, [u8; 16])> = Vec::new();
    for (line, text) in info_lines(bytes, limits)? {
        let md5: [u8; 16] = text
            .get(..32)
            .and_then(decode_md5)
            .ok_or_else(|| DpkgError::BadDigest {
                line,
                text: shown(text),
            })?;
        // Exactly two spaces, as dpkg requires (parse_filehash_buffer): everything after them,
        // spaces included, is the path.
        let Some([b' ', b' ', path @ ..]) = text.get(32..) else {
            return Err(DpkgError::MissingSeparator {
                line,
                text: shown(text),
            });
        };
        let relative: &[u8] = skip_slash_dotslash(path.strip_suffix(b"/").unwrap_or(path));
        if relative.is_empty() {
            return Err(DpkgError::EmptyPath { line });
        }
        files.push((absolute_path(relative, line, limits)?, md5));
    }
    Ok(files)
}

/// Parses `info/<name>.list`: one absolute path per line, directories and symlinks included,
/// a trailing `/` dropped. dpkg's `/.` line (the root directory) is skipped.
pub fn parse_list(bytes: &[u8], limits: &Limits) -> Result<Vec<Vec<u8>>, DpkgError> {
    let mut paths: Vec<Vec<u8>> = Vec::new();
    for (line, text) in info_lines(bytes, limits)? {
        let path: &[u8] = text.strip_suffix(b"/").unwrap_or(text);
        if path.is_empty() {
            return Err(DpkgError::EmptyPath { line });
        }
        if path == b"/." {
            continue;
        }
        if path.first() != Some(&b'/') {
            return Err(DpkgError::RelativePath {
                line,
                path: shown(path),
            });
        }
        check_path(path, line, limits)?;
        paths.push(path.to_vec());
    }
    Ok(paths)
}

// ---- shared by the readers -----------------------------------------------------------------

/// dpkg's files are text ending in a newline (`missing final newline` is a dpkg error): a NUL
/// byte or a cut last line means the file is not what dpkg wrote.
fn check_text(bytes: &[u8]) -> Result<(), DpkgError> {
    if let Some(offset) = bytes.iter().position(|&byte| byte == 0) {
        return Err(DpkgError::NulByte {
            line: line_at(bytes, offset),
        });
    }
    if bytes.last().is_some_and(|&byte| byte != b'\n') {
        return Err(DpkgError::MissingFinalNewline {
            line: line_at(bytes, bytes.len()),
        });
    }
    Ok(())
}

/// The number of the line holding byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes
        .get(..offset)
        .unwrap_or(bytes)
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// The significance of a journal file name: its digits without leading zeros, shorter first.
fn numeric_key(digits: &[u8]) -> (usize, &[u8]) {
    let significant: &[u8] = match digits.iter().position(|&digit| digit != b'0') {
        Some(first) => digits.get(first..).unwrap_or_default(),
        None => &[],
    };
    (significant.len(), significant)
}

/// Bytes for an error message: lossy UTF-8, cut so a hostile value cannot flood the log.
fn shown(bytes: &[u8]) -> String {
    match bytes.get(..SHOWN_BYTES) {
        Some(head) if bytes.len() > SHOWN_BYTES => format!("{}...", String::from_utf8_lossy(head)),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests;
