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

use std::collections::{BTreeMap, HashSet};

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

const NOT_INSTALLED: &str = "not-installed";
const WANTS: [&str; 5] = ["unknown", "install", "hold", "deinstall", "purge"];
const FLAGS: [&str; 2] = ["ok", "reinstreq"];
const STATES: [&str; 8] = [
    NOT_INSTALLED,
    "config-files",
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
    "installed",
];
/// dpkg's conffile digests that stand for "no digest known" (lib/dpkg/dpkg.h).
const NO_DIGEST_MARKERS: [&[u8]; 3] = [b"newconffile", b"nonexistent", b"-"];
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

// ---- paragraphs ---------------------------------------------------------------------------

/// One field of a paragraph.
struct Field<'a> {
    name: &'a [u8],
    /// From the first non-blank byte after the colon to the end of the last continuation line,
    /// trailing blanks trimmed. Continuation lines keep their `\n` and leading blank, so the
    /// value's lines are the file's lines from `line` on.
    value: &'a [u8],
    line: usize,
}

/// A paragraph (dpkg's "stanza") and the line it starts on.
struct Paragraph<'a> {
    line: usize,
    fields: Vec<Field<'a>>,
}

impl<'a> Paragraph<'a> {
    fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// A field while its continuation lines are read: offsets of its value in the file.
struct OpenField<'a> {
    name: &'a [u8],
    line: usize,
    start: usize,
    end: usize,
}

/// Reads paragraphs as dpkg's `parse_stanza` does: blank lines separate them; a field is
/// `Name: value` (spaces allowed before the colon), continued by lines starting with a space or
/// tab; a continuation line of blanks only is an error, and so is a field given twice.
struct ParagraphReader<'a> {
    bytes: &'a [u8],
    /// The start of the next line.
    pos: usize,
    /// The number of the next line.
    line: usize,
    max_field_bytes: usize,
}

impl<'a> ParagraphReader<'a> {
    fn new(bytes: &'a [u8], limits: &Limits) -> Result<Self, DpkgError> {
        check_text(bytes)?;
        Ok(Self {
            bytes,
            pos: 0,
            line: 1,
            max_field_bytes: limits.max_field_bytes,
        })
    }

    fn next_paragraph(&mut self) -> Result<Option<Paragraph<'a>>, DpkgError> {
        while self.bytes.get(self.pos) == Some(&b'\n') {
            self.pos += 1;
            self.line += 1;
        }
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let mut paragraph: Paragraph<'a> = Paragraph {
            line: self.line,
            fields: Vec::new(),
        };
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut open: Option<OpenField<'a>> = None;
        // Each line here is non-empty: the loop stops before a blank line or the end.
        loop {
            let start: usize = self.pos;
            let (text, line) = self.take_line();
            if let Some(b' ' | b'\t') = text.first() {
                let Some(field) = open.as_mut() else {
                    return Err(DpkgError::ContinuationWithoutField { line });
                };
                if text.iter().all(|&byte| is_blank(byte)) {
                    return Err(DpkgError::BlankContinuation {
                        line,
                        field: shown(field.name),
                    });
                }
                field.end = start + text.len();
            } else {
                if let Some(field) = open.take() {
                    paragraph.fields.push(self.close(field));
                }
                open = Some(self.open_field(text, start, line, &mut seen)?);
            }
            if let Some(field) = &open
                && field.end.saturating_sub(field.start) > self.max_field_bytes
            {
                return Err(DpkgError::FieldTooLong {
                    line: field.line,
                    field: shown(field.name),
                    limit: self.max_field_bytes,
                });
            }
            if matches!(self.bytes.get(self.pos), None | Some(b'\n')) {
                break;
            }
        }
        if let Some(field) = open {
            paragraph.fields.push(self.close(field));
        }
        Ok(Some(paragraph))
    }

    /// The next line without its newline, and its number.
    fn take_line(&mut self) -> (&'a [u8], usize) {
        let bytes: &'a [u8] = self.bytes;
        let rest: &'a [u8] = bytes.get(self.pos..).unwrap_or_default();
        let text: &'a [u8] = rest.split(|&byte| byte == b'\n').next().unwrap_or_default();
        let line: usize = self.line;
        self.pos += text.len() + 1;
        self.line += 1;
        (text, line)
    }

    /// Starts a field from its first line, which starts at offset `start` of the file.
    fn open_field(
        &self,
        text: &'a [u8],
        start: usize,
        line: usize,
        seen: &mut HashSet<Vec<u8>>,
    ) -> Result<OpenField<'a>, DpkgError> {
        let not_a_field = || DpkgError::NotAField {
            line,
            text: shown(text),
        };
        let name_len: usize = text
            .iter()
            .position(|&byte| byte == b':' || byte.is_ascii_whitespace())
            .unwrap_or(text.len());
        let name: &'a [u8] = text.get(..name_len).unwrap_or_default();
        let after_name: &'a [u8] = trim_start_blanks(text.get(name_len..).unwrap_or_default());
        let Some((b':', value)) = after_name.split_first() else {
            return Err(not_a_field());
        };
        if name.is_empty() {
            return Err(not_a_field());
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(DpkgError::DuplicateField {
                line,
                field: shown(name),
            });
        }
        let value: &'a [u8] = trim_start_blanks(value);
        Ok(OpenField {
            name,
            line,
            start: start + (text.len() - value.len()),
            end: start + text.len(),
        })
    }

    fn close(&self, field: OpenField<'a>) -> Field<'a> {
        let bytes: &'a [u8] = self.bytes;
        let value: &'a [u8] = bytes.get(field.start..field.end).unwrap_or_default();
        let trimmed_len: usize = value
            .iter()
            .rposition(|&byte| !is_blank(byte))
            .map_or(0, |last| last + 1);
        Field {
            name: field.name,
            value: value.get(..trimmed_len).unwrap_or_default(),
            line: field.line,
        }
    }
}

// ---- entries ------------------------------------------------------------------------------

fn status_entry(paragraph: &Paragraph<'_>, limits: &Limits) -> Result<StatusEntry, DpkgError> {
    let Some(field) = paragraph.get("Package") else {
        return Err(DpkgError::MissingPackage { line: paragraph.line });
    };
    let package: String = utf8(field, "Package")?.to_ascii_lowercase();
    check_package_name(&package, field.line)?;

    let Some(status) = paragraph.get("Status") else {
        return Err(DpkgError::MissingField {
            line: paragraph.line,
            package,
            field: "Status",
        });
    };
    let (want, state) = parse_status_field(status, &package)?;

    let mut architecture: Option<String> = None;
    if let Some(field) = paragraph.get("Architecture")
        && !field.value.is_empty()
    {
        let value: String = utf8(field, "Architecture")?;
        if !is_architecture_name(&value) {
            return Err(DpkgError::BadArchitecture {
                line: field.line,
                package,
                value: shown(value.as_bytes()),
            });
        }
        architecture = Some(value);
    }

    let mut multi_arch_same: bool = false;
    if let Some(field) = paragraph.get("Multi-Arch") {
        multi_arch_same = match field.value.to_ascii_lowercase().as_slice() {
            b"same" => true,
            b"no" | b"foreign" | b"allowed" => false,
            _ => {
                return Err(DpkgError::BadMultiArch {
                    line: field.line,
                    package,
                    value: shown(field.value),
                });
            }
        };
        // pkg_parse_verify: the info files of a Multi-Arch: same package are named by arch.
        if multi_arch_same && matches!(architecture.as_deref(), None | Some("all")) {
            return Err(DpkgError::MultiArchSameWithoutArchitecture {
                line: field.line,
                package,
                architecture: architecture.unwrap_or_default(),
            });
        }
    }

    let mut version: Option<String> = None;
    if let Some(field) = paragraph.get("Version")
        && !field.value.is_empty()
    {
        let value: String = utf8(field, "Version")?;
        if value.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(DpkgError::BadVersion {
                line: field.line,
                package,
                value: shown(value.as_bytes()),
            });
        }
        version = Some(value);
    }

    let conffiles: Vec<Conffile> = match paragraph.get("Conffiles") {
        Some(field) => parse_conffiles(field, &package, limits)?,
        None => Vec::new(),
    };
    Ok(StatusEntry {
        package,
        architecture,
        multi_arch_same,
        version,
        want,
        state,
        conffiles,
    })
}

/// `want flag state`, each word one of dpkg's (compared ignoring ASCII case, as dpkg does).
fn parse_status_field(field: &Field<'_>, package: &str) -> Result<(String, String), DpkgError> {
    let bad = || DpkgError::BadStatus {
        line: field.line,
        package: package.to_owned(),
        value: shown(field.value),
    };
    let mut words = field
        .value
        .split(|byte| byte.is_ascii_whitespace())
        .filter(|word| !word.is_empty());
    let (Some(want), Some(flag), Some(state), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(bad());
    };
    match (
        known_word(want, &WANTS),
        known_word(flag, &FLAGS),
        known_word(state, &STATES),
    ) {
        (Some(want), Some(_), Some(state)) => Ok((want, state)),
        _ => Err(bad()),
    }
}

/// The name in `names` that `word` is, ignoring ASCII case.
fn known_word(word: &[u8], names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|name| name.as_bytes().eq_ignore_ascii_case(word))
        .map(|name| (*name).to_owned())
}

/// The `Conffiles` field as dpkg's `f_conffiles` reads it: per line, a space, the path (which
/// may hold spaces), a space, the digest, then optionally ` obsolete` and ` remove-on-upgrade`,
/// in that order, taken from the end of the line.
fn parse_conffiles(field: &Field<'_>, package: &str, limits: &Limits) -> Result<Vec<Conffile>, DpkgError> {
    let mut conffiles: Vec<Conffile> = Vec::new();
    for (line, text) in (field.line..).zip(field.value.split(|&byte| byte == b'\n')) {
        if text.is_empty() {
            continue;
        }
        let bad = |reason: &'static str| DpkgError::BadConffile {
            line,
            package: package.to_owned(),
            text: shown(text),
            reason,
        };
        let Some((b' ', entry)) = text.split_first() else {
            return Err(bad("a conffile line starts with one space"));
        };
        let malformed = || bad("expected a path, a space and a digest");
        let (mut path, mut word) = split_last_word(entry).ok_or_else(malformed)?;
        if word == b"remove-on-upgrade" {
            (path, word) = split_last_word(path).ok_or_else(malformed)?;
        }
        let obsolete: bool = word == b"obsolete";
        if obsolete {
            (path, word) = split_last_word(path).ok_or_else(malformed)?;
        }
        let md5: Option<[u8; 16]> = if NO_DIGEST_MARKERS.contains(&word) {
            None
        } else {
            Some(decode_md5(word).ok_or_else(|| bad("the digest is neither an MD5 nor newconffile"))?)
        };
        let relative: &[u8] = skip_slash_dotslash(path);
        if relative.is_empty() {
            return Err(bad("the root directory cannot be a conffile"));
        }
        conffiles.push(Conffile {
            path: absolute_path(relative, line, limits)?,
            md5,
            obsolete,
        });
    }
    Ok(conffiles)
}

fn utf8(field: &Field<'_>, name: &'static str) -> Result<String, DpkgError> {
    match std::str::from_utf8(field.value) {
        Ok(value) => Ok(value.to_owned()),
        Err(_) => Err(DpkgError::NotUtf8 {
            line: field.line,
            field: name,
            value: shown(field.value),
        }),
    }
}

/// dpkg's `pkg_name_is_illegal`.
fn check_package_name(name: &str, line: usize) -> Result<(), DpkgError> {
    let reason: Option<&'static str> = match name.as_bytes().first() {
        None => Some("it is empty"),
        Some(first) if !first.is_ascii_alphanumeric() => Some("it must start with an ASCII letter or digit"),
        Some(_)
            if !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"+-._".contains(&byte)) =>
        {
            Some("it may hold only ASCII letters, digits and + - . _")
        }
        Some(_) => None,
    };
    match reason {
        Some(reason) => Err(DpkgError::BadPackageName {
            line,
            name: shown(name.as_bytes()),
            reason,
        }),
        None => Ok(()),
    }
}

/// dpkg's `dpkg_arch_name_is_illegal`.
fn is_architecture_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

// ---- merging paragraphs -------------------------------------------------------------------

/// Where a paragraph comes from: dpkg places it differently (`parse_find_pkg_slot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Status,
    Journal,
}

/// The installed packages while paragraphs are merged in.
#[derive(Default)]
struct Database {
    /// In first-seen order; None where an entry was removed.
    slots: Vec<Option<StatusEntry>>,
    /// Package -> architecture -> index in `slots`, for the live entries.
    index: BTreeMap<String, BTreeMap<Option<String>, usize>>,
    live: usize,
}

impl Database {
    fn merge(&mut self, entry: StatusEntry, source: Source) {
        let replaced: Option<usize> = self.slot_of(&entry, source);
        if let Some(slot) = replaced {
            self.remove(slot);
        }
        if entry.state == NOT_INSTALLED {
            return;
        }
        let slot: usize = replaced.unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        self.index
            .entry(entry.package.clone())
            .or_default()
            .insert(entry.architecture.clone(), slot);
        if let Some(place) = self.slots.get_mut(slot) {
            *place = Some(entry);
        }
        self.live += 1;
    }

    /// The slot `entry` replaces: the package's instance of the same architecture; or, for a
    /// journal paragraph, the package's only instance unless both are Multi-Arch: same.
    fn slot_of(&self, entry: &StatusEntry, source: Source) -> Option<usize> {
        let instances = self.index.get(&entry.package)?;
        if source == Source::Journal
            && instances.len() == 1
            && let Some(&slot) = instances.values().next()
            && !(entry.multi_arch_same && self.get(slot).is_some_and(|old| old.multi_arch_same))
        {
            return Some(slot);
        }
        instances.get(&entry.architecture).copied()
    }

    fn get(&self, slot: usize) -> Option<&StatusEntry> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    fn remove(&mut self, slot: usize) {
        let Some(old) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if let Some(instances) = self.index.get_mut(&old.package) {
            instances.remove(&old.architecture);
            if instances.is_empty() {
                self.index.remove(&old.package);
            }
        }
        self.live = self.live.saturating_sub(1);
    }

    /// dpkg refuses several instances of a package unless all are Multi-Arch: same
    /// (`parse_find_set_slot`): they would share one set of info files.
    fn check_instances(&self) -> Result<(), DpkgError> {
        for (package, instances) in &self.index {
            let all_same: bool = instances
                .values()
                .all(|&slot| self.get(slot).is_some_and(|entry| entry.multi_arch_same));
            if instances.len() > 1 && !all_same {
                let architectures: Vec<&str> = instances
                    .keys()
                    .map(|architecture| architecture.as_deref().unwrap_or("no architecture"))
                    .collect();
                return Err(DpkgError::NotCoInstallable {
                    package: package.clone(),
                    architectures: architectures.join(", "),
                });
            }
        }
        Ok(())
    }

    fn into_entries(self) -> Vec<StatusEntry> {
        self.slots.into_iter().flatten().collect()
    }
}

fn merge_paragraphs(
    database: &mut Database,
    bytes: &[u8],
    source: Source,
    limits: &Limits,
) -> Result<(), DpkgError> {
    let mut reader: ParagraphReader<'_> = ParagraphReader::new(bytes, limits)?;
    while let Some(paragraph) = reader.next_paragraph()? {
        database.merge(status_entry(&paragraph, limits)?, source);
        if database.live > limits.max_entries {
            return Err(DpkgError::TooManyEntries {
                line: paragraph.line,
                limit: limits.max_entries,
            });
        }
    }
    Ok(())
}

// ---- bytes --------------------------------------------------------------------------------

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

/// The lines of an md5sums or list file, numbered, once the file is checked as text and its
/// line count against the limit.
fn info_lines<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<impl Iterator<Item = (usize, &'a [u8])>, DpkgError> {
    check_text(bytes)?;
    let lines: usize = bytes.iter().filter(|&&byte| byte == b'\n').count();
    if lines > limits.max_lines {
        return Err(DpkgError::TooManyLines {
            limit: limits.max_lines,
        });
    }
    Ok((1..).zip(bytes.split(|&byte| byte == b'\n')).take(lines))
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

/// `/` followed by `relative`, checked.
fn absolute_path(relative: &[u8], line: usize, limits: &Limits) -> Result<Vec<u8>, DpkgError> {
    let mut path: Vec<u8> = Vec::with_capacity(relative.len().saturating_add(1));
    path.push(b'/');
    path.extend_from_slice(relative);
    check_path(&path, line, limits)?;
    Ok(path)
}

fn check_path(path: &[u8], line: usize, limits: &Limits) -> Result<(), DpkgError> {
    if path.len() > limits.max_path_bytes {
        return Err(DpkgError::PathTooLong {
            line,
            len: path.len(),
            limit: limits.max_path_bytes,
        });
    }
    if path
        .split(|&byte| byte == b'/')
        .any(|component| component == b"..")
    {
        return Err(DpkgError::ParentComponent {
            line,
            path: shown(path),
        });
    }
    Ok(())
}

/// `path` without its leading `/` and `./`, as dpkg's `path_skip_slash_dotslash`.
fn skip_slash_dotslash(mut path: &[u8]) -> &[u8] {
    loop {
        if let Some(rest) = path.strip_prefix(b"/") {
            path = rest;
        } else if let Some(rest) = path.strip_prefix(b"./") {
            path = rest;
        } else {
            return path;
        }
    }
}

/// `text` split at its last space, when neither side is empty.
fn split_last_word(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let space: usize = text.iter().rposition(|&byte| byte == b' ')?;
    let before: &[u8] = text.get(..space)?;
    let after: &[u8] = text.get(space + 1..)?;
    (!before.is_empty() && !after.is_empty()).then_some((before, after))
}

/// 32 hexadecimal digits, either case.
fn decode_md5(hex: &[u8]) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut md5: [u8; 16] = [0; 16];
    for (byte, pair) in md5.iter_mut().zip(hex.chunks_exact(2)) {
        let [high, low] = pair else {
            return None;
        };
        *byte = (hex_value(*high)? << 4) | hex_value(*low)?;
    }
    Some(md5)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The significance of a journal file name: its digits without leading zeros, shorter first.
fn numeric_key(digits: &[u8]) -> (usize, &[u8]) {
    let significant: &[u8] = match digits.iter().position(|&digit| digit != b'0') {
        Some(first) => digits.get(first..).unwrap_or_default(),
        None => &[],
    };
    (significant.len(), significant)
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn trim_start_blanks(text: &[u8]) -> &[u8] {
    let start: usize = text
        .iter()
        .position(|&byte| !is_blank(byte))
        .unwrap_or(text.len());
    text.get(start..).unwrap_or_default()
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
