//! Alpine's installed-package database, `/lib/apk/db/installed`, parsed from bytes. Pure: the
//! caller reads the file; nothing here touches the file system or runs apk.
//!
//! The file is a sequence of paragraphs separated by blank lines, one per package, each line
//! `X:value` with a one-byte key (apk-tools `src/database.c`, `apk_db_fdb_read` and
//! `apk_db_fdb_write`): `P` name, `V` version, `A` architecture, `f` package flags, then per
//! directory an `F` line (its path relative to `/`, empty for `/` itself) with an optional `M`
//! line (its owner and mode), and per file of that directory an `R` line (its name) with
//! optional `a` (owner and mode) and `Z` lines (`Q1` and the base64 of the SHA-1 of its content,
//! or of its target for a symlink). Other keys describe the package and are skipped.
//!
//! The file is hostile (root on a compromised node can write anything): the parser is bounded
//! by [`Limits`], never panics and rejects what apk rejects, with an error naming the line, and
//! for file lines the package and the path. It is stricter than apk where apk's reading would
//! be a guess here:
//!
//! - `R`, `a`, `Z` and `M` lines need the `F` or `R` line they describe before them in the same
//!   package (apk: "FDB format error"); `F` needs the package's `P` line first.
//! - A `Z` value is `Q1` and the base64 of exactly 20 bytes. Older MD5 (hex) and newer SHA-256
//!   (`Q2`) values are errors, and so is the `S` package flag of apk-tools 3, with which a `Q1`
//!   value holds a truncated SHA-256, not a SHA-1.
//! - Paths are rebuilt from names: a `..` or `.` component, an empty one, or a `/` in a file
//!   name is an error, so no path leaves the root it is joined to.
//! - `\r` is data, as for apk: a CRLF file gives names ending in `\r`, not silently other ones.

mod base64;
mod paragraph;

use base64::encode_base64;
use paragraph::Reader;

/// Bounds on the work and memory spent on one hostile file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Packages the database may hold.
    pub max_packages: usize,
    /// Files of all packages together.
    pub max_files: usize,
    /// The longest line, without its newline, in bytes.
    pub max_line_bytes: usize,
    /// The longest path, its leading `/` included, in bytes (Linux PATH_MAX).
    pub max_path_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packages: 100_000,
            max_files: 2_000_000,
            max_line_bytes: 64 << 10,
            max_path_bytes: 4096,
        }
    }
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkPackage {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    /// In database order.
    pub files: Vec<ApkFile>,
    /// The package's directories (its `F` lines), absolute, in database order.
    pub dirs: Vec<Vec<u8>>,
}

/// A file of an installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkFile {
    /// Absolute: `/`, the directory, `/`, the name; raw bytes, as a path need not be UTF-8.
    pub path: Vec<u8>,
    /// The SHA-1 of the content (of the target, for a symlink); None without a `Z` line.
    pub sha1: Option<[u8; 20]>,
    /// The permission bits of its `a` line (at most 0o7777; the owner on that line is checked,
    /// not kept). None without one: apk then applies its default, 0644 owned by 0:0.
    pub mode: Option<u32>,
}

/// What is wrong with the database. Lines count from 1.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ApkError {
    #[error("line {line}: a NUL byte, which the apk database never contains")]
    NulByte { line: usize },

    #[error("line {line}: the file does not end with a newline, as apk always writes it: truncated?")]
    MissingFinalNewline { line: usize },

    #[error("line {line}: {len} bytes long, more than the limit of {limit}")]
    LineTooLong { line: usize, len: usize, limit: usize },

    #[error("line {line}: {text:?} is not a `X:value` line")]
    BadLine { line: usize, text: String },

    #[error("line {line}: a second {key}: line in one package")]
    DuplicateKey { line: usize, key: char },

    #[error("line {line}: an empty {key}: line")]
    EmptyValue { line: usize, key: char },

    #[error("line {line}: the {key}: value is not valid UTF-8: {value:?}")]
    NotUtf8 { line: usize, key: char, value: String },

    #[error("line {line}: the package starting here has no {key}: line")]
    MissingKey { line: usize, key: char },

    #[error("line {line}: a {key}: line with no {needs} line before it in its package")]
    Misplaced {
        line: usize,
        key: char,
        needs: &'static str,
    },

    #[error("line {line}: package {package}: {value:?} is not a valid path: {reason}")]
    BadPath {
        line: usize,
        package: String,
        value: String,
        reason: &'static str,
    },

    #[error("line {line}: package {package}: a path of {len} bytes, longer than the limit of {limit}")]
    PathTooLong {
        line: usize,
        package: String,
        len: usize,
        limit: usize,
    },

    #[error(
        "line {line}: package {package}, file {path:?}: checksum {value:?} is not Q1 + base64 of 20 bytes"
    )]
    BadChecksum {
        line: usize,
        package: String,
        path: String,
        value: String,
    },

    #[error(
        "line {line}: package {package}, {path:?}: {value:?} is not uid:gid:mode (octal mode, up to 7777)"
    )]
    BadAcl {
        line: usize,
        package: String,
        path: String,
        value: String,
    },

    #[error("line {line}: package {package}, file {path:?}: a second {key}: line")]
    DuplicateFileEntry {
        line: usize,
        package: String,
        path: String,
        key: char,
    },

    #[error(
        "line {line}: package flags {flags:?}: only f, s and x are understood (S: Q1 is truncated SHA-256)"
    )]
    UnsupportedFlags { line: usize, flags: String },

    #[error("line {line}: more than {limit} packages; raise the limit if the node really has that many")]
    TooManyPackages { line: usize, limit: usize },

    #[error("line {line}: more than {limit} files; raise the limit if the node really has that many")]
    TooManyFiles { line: usize, limit: usize },
}

/// The longest value shown in an error message.
const SHOWN_BYTES: usize = 200;

/// Parses the installed database: its packages in file order.
pub fn parse_installed(bytes: &[u8], limits: &Limits) -> Result<Vec<ApkPackage>, ApkError> {
    if let Some(offset) = bytes.iter().position(|&byte| byte == 0) {
        return Err(ApkError::NulByte {
            line: line_at(bytes, offset),
        });
    }
    if bytes.last().is_some_and(|&byte| byte != b'\n') {
        return Err(ApkError::MissingFinalNewline {
            line: line_at(bytes, bytes.len()),
        });
    }
    let lines: usize = bytes.iter().filter(|&&byte| byte == b'\n').count();
    let mut reader: Reader<'_> = Reader::new(limits);
    for (line, text) in (1..).zip(bytes.split(|&byte| byte == b'\n')).take(lines) {
        reader.read_line(line, text)?;
    }
    reader.finish()
}

/// The `Z` value apk writes for a file whose content has this SHA-1: `Q1` and its base64.
pub fn checksum_line(sha1: &[u8; 20]) -> String {
    format!("Q1{}", encode_base64(sha1))
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

/// Bytes for an error message: lossy UTF-8, cut so a hostile value cannot flood the log.
fn shown(bytes: &[u8]) -> String {
    match bytes.get(..SHOWN_BYTES) {
        Some(head) if bytes.len() > SHOWN_BYTES => format!("{}...", String::from_utf8_lossy(head)),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests;
