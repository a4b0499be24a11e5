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

/// The standard base64 alphabet (RFC 4648 section 4), as apk uses it.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
    let mut reader: Reader<'_> = Reader {
        limits,
        packages: Vec::new(),
        current: None,
        files: 0,
    };
    for (line, text) in (1..).zip(bytes.split(|&byte| byte == b'\n')).take(lines) {
        reader.read_line(line, text)?;
    }
    reader.end_package()?;
    Ok(reader.packages)
}

/// The `Z` value apk writes for a file whose content has this SHA-1: `Q1` and its base64.
pub fn checksum_line(sha1: &[u8; 20]) -> String {
    format!("Q1{}", encode_base64(sha1))
}

// ---- reading ------------------------------------------------------------------------------

struct Reader<'l> {
    limits: &'l Limits,
    packages: Vec<ApkPackage>,
    current: Option<Paragraph>,
    /// Files of all packages so far.
    files: usize,
}

/// A package while its lines are read.
struct Paragraph {
    /// The line it starts on.
    line: usize,
    name: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    files: Vec<ApkFile>,
    dirs: Vec<Vec<u8>>,
    /// The absolute path of the directory of the last `F` line.
    dir: Option<Vec<u8>>,
    /// Whether the last of `files` is the file of the last `R` line in that directory.
    in_file: bool,
}

impl Reader<'_> {
    fn read_line(&mut self, line: usize, text: &[u8]) -> Result<(), ApkError> {
        if text.len() > self.limits.max_line_bytes {
            return Err(ApkError::LineTooLong {
                line,
                len: text.len(),
                limit: self.limits.max_line_bytes,
            });
        }
        if text.is_empty() {
            return self.end_package();
        }
        let [key, b':', value @ ..] = text else {
            return Err(ApkError::BadLine {
                line,
                text: shown(text),
            });
        };
        if !key.is_ascii_alphanumeric() {
            return Err(ApkError::BadLine {
                line,
                text: shown(text),
            });
        }
        let limits: &Limits = self.limits;
        let paragraph: &mut Paragraph = self.current.get_or_insert_with(|| Paragraph::new(line));
        match *key {
            b'P' => set_text(&mut paragraph.name, line, 'P', value),
            b'V' => set_text(&mut paragraph.version, line, 'V', value),
            b'A' => set_text(&mut paragraph.arch, line, 'A', value),
            b'f' => check_flags(line, value),
            b'F' => paragraph.directory(line, value, limits),
            b'M' => paragraph.directory_acl(line, value),
            b'R' => {
                paragraph.file(line, value, limits)?;
                self.files += 1;
                if self.files > limits.max_files {
                    return Err(ApkError::TooManyFiles {
                        line,
                        limit: limits.max_files,
                    });
                }
                Ok(())
            }
            b'a' => paragraph.file_acl(line, value),
            b'Z' => paragraph.checksum(line, value),
            _ => Ok(()),
        }
    }

    fn end_package(&mut self) -> Result<(), ApkError> {
        let Some(paragraph) = self.current.take() else {
            return Ok(());
        };
        let Some(name) = paragraph.name else {
            return Err(ApkError::MissingKey {
                line: paragraph.line,
                key: 'P',
            });
        };
        let Some(version) = paragraph.version else {
            return Err(ApkError::MissingKey {
                line: paragraph.line,
                key: 'V',
            });
        };
        if self.packages.len() >= self.limits.max_packages {
            return Err(ApkError::TooManyPackages {
                line: paragraph.line,
                limit: self.limits.max_packages,
            });
        }
        self.packages.push(ApkPackage {
            name,
            version,
            arch: paragraph.arch,
            files: paragraph.files,
            dirs: paragraph.dirs,
        });
        Ok(())
    }
}

impl Paragraph {
    fn new(line: usize) -> Self {
        Self {
            line,
            name: None,
            version: None,
            arch: None,
            files: Vec::new(),
            dirs: Vec::new(),
            dir: None,
            in_file: false,
        }
    }

    /// `F`: the directory the next `R` lines are in.
    fn directory(&mut self, line: usize, value: &[u8], limits: &Limits) -> Result<(), ApkError> {
        if self.name.is_none() {
            return Err(ApkError::Misplaced {
                line,
                key: 'F',
                needs: "P:",
            });
        }
        if !value.is_empty() && !value.split(|&byte| byte == b'/').all(is_name) {
            return Err(ApkError::BadPath {
                line,
                package: package_name(self.name.as_deref()),
                value: shown(value),
                reason: "a directory is relative to / and made of names other than . and ..",
            });
        }
        let mut dir: Vec<u8> = Vec::with_capacity(value.len().saturating_add(1));
        dir.push(b'/');
        dir.extend_from_slice(value);
        check_length(&dir, line, self.name.as_deref(), limits)?;
        self.dirs.push(dir.clone());
        self.dir = Some(dir);
        self.in_file = false;
        Ok(())
    }

    /// `M`: the directory's owner and mode, checked but not kept.
    fn directory_acl(&self, line: usize, value: &[u8]) -> Result<(), ApkError> {
        let Some(dir) = &self.dir else {
            return Err(ApkError::Misplaced {
                line,
                key: 'M',
                needs: "F:",
            });
        };
        match parse_acl(value) {
            Some(_) => Ok(()),
            None => Err(ApkError::BadAcl {
                line,
                package: package_name(self.name.as_deref()),
                path: shown(dir),
                value: shown(value),
            }),
        }
    }

    /// `R`: a file of the current directory.
    fn file(&mut self, line: usize, name: &[u8], limits: &Limits) -> Result<(), ApkError> {
        let Some(dir) = &self.dir else {
            return Err(ApkError::Misplaced {
                line,
                key: 'R',
                needs: "F:",
            });
        };
        if !is_name(name) || name.contains(&b'/') {
            return Err(ApkError::BadPath {
                line,
                package: package_name(self.name.as_deref()),
                value: shown(name),
                reason: "a file name is one path component other than . and ..",
            });
        }
        let mut path: Vec<u8> = Vec::with_capacity(dir.len().saturating_add(name.len()).saturating_add(1));
        path.extend_from_slice(dir);
        if dir.as_slice() != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(name);
        check_length(&path, line, self.name.as_deref(), limits)?;
        self.files.push(ApkFile {
            path,
            sha1: None,
            mode: None,
        });
        self.in_file = true;
        Ok(())
    }

    /// `a`: the owner and mode of the current file.
    fn file_acl(&mut self, line: usize, value: &[u8]) -> Result<(), ApkError> {
        let file: &mut ApkFile = match self.files.last_mut() {
            Some(file) if self.in_file => file,
            _ => {
                return Err(ApkError::Misplaced {
                    line,
                    key: 'a',
                    needs: "R:",
                });
            }
        };
        let Some(mode) = parse_acl(value) else {
            return Err(ApkError::BadAcl {
                line,
                package: package_name(self.name.as_deref()),
                path: shown(&file.path),
                value: shown(value),
            });
        };
        if file.mode.is_some() {
            return Err(duplicate_file_entry(line, self.name.as_deref(), file, 'a'));
        }
        file.mode = Some(mode);
        Ok(())
    }

    /// `Z`: the checksum of the current file.
    fn checksum(&mut self, line: usize, value: &[u8]) -> Result<(), ApkError> {
        let file: &mut ApkFile = match self.files.last_mut() {
            Some(file) if self.in_file => file,
            _ => {
                return Err(ApkError::Misplaced {
                    line,
                    key: 'Z',
                    needs: "R:",
                });
            }
        };
        let Some(sha1) = decode_checksum(value) else {
            return Err(ApkError::BadChecksum {
                line,
                package: package_name(self.name.as_deref()),
                path: shown(&file.path),
                value: shown(value),
            });
        };
        if file.sha1.is_some() {
            return Err(duplicate_file_entry(line, self.name.as_deref(), file, 'Z'));
        }
        file.sha1 = Some(sha1);
        Ok(())
    }
}

/// `P`, `V` or `A`: given once, not empty, UTF-8.
fn set_text(slot: &mut Option<String>, line: usize, key: char, value: &[u8]) -> Result<(), ApkError> {
    if slot.is_some() {
        return Err(ApkError::DuplicateKey { line, key });
    }
    if value.is_empty() {
        return Err(ApkError::EmptyValue { line, key });
    }
    match std::str::from_utf8(value) {
        Ok(text) => {
            *slot = Some(text.to_owned());
            Ok(())
        }
        Err(_) => Err(ApkError::NotUtf8 {
            line,
            key,
            value: shown(value),
        }),
    }
}

/// `f`: the flags apk-tools 2 writes (f: files broken, s: script failed, x: xattrs broken) say
/// nothing about the recorded digests; any other may (apk-tools 3's `S`), so it is an error.
fn check_flags(line: usize, flags: &[u8]) -> Result<(), ApkError> {
    if flags.iter().all(|flag| b"fsx".contains(flag)) {
        Ok(())
    } else {
        Err(ApkError::UnsupportedFlags {
            line,
            flags: shown(flags),
        })
    }
}

fn duplicate_file_entry(line: usize, name: Option<&str>, file: &ApkFile, key: char) -> ApkError {
    ApkError::DuplicateFileEntry {
        line,
        package: package_name(name),
        path: shown(&file.path),
        key,
    }
}

fn check_length(path: &[u8], line: usize, name: Option<&str>, limits: &Limits) -> Result<(), ApkError> {
    if path.len() > limits.max_path_bytes {
        return Err(ApkError::PathTooLong {
            line,
            package: package_name(name),
            len: path.len(),
            limit: limits.max_path_bytes,
        });
    }
    Ok(())
}

/// A path component that names something: not empty, not `.` or `..`.
fn is_name(component: &[u8]) -> bool {
    !component.is_empty() && component != b"." && component != b".."
}

/// For error messages: the name is known wherever an `F` line was accepted.
fn package_name(name: Option<&str>) -> String {
    name.unwrap_or_default().to_owned()
}

/// `uid:gid:mode[:xattr checksum]` as `apk_db_fdb_read` reads it: uid and gid in decimal, the
/// mode in octal (apk keeps only the permission bits). The extended-attribute checksum is not
/// kept. Returns the mode.
fn parse_acl(value: &[u8]) -> Option<u32> {
    let mut parts = value.splitn(4, |&byte| byte == b':');
    parse_number(parts.next()?, 10)?;
    parse_number(parts.next()?, 10)?;
    let mode: u32 = parse_number(parts.next()?, 8)?;
    if mode > 0o7777 || parts.next().is_some_and(<[u8]>::is_empty) {
        return None;
    }
    Some(mode)
}

/// Digits only (no sign, no space), fitting in a u32.
fn parse_number(digits: &[u8], radix: u32) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(|&digit| char::from(digit).is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()
}

fn decode_checksum(value: &[u8]) -> Option<[u8; 20]> {
    let encoded: &[u8] = value.strip_prefix(b"Q1")?;
    decode_base64(encoded)?.try_into().ok()
}

/// Standard base64 with padding, strictly: whole groups of four, `=` only at the end, unused
/// bits zero, so that one byte string has one encoding.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let groups: usize = text.len() / 4;
    let mut bytes: Vec<u8> = Vec::with_capacity(groups.saturating_mul(3));
    for (index, group) in text.chunks_exact(4).enumerate() {
        let padding: usize = group.iter().rev().take_while(|&&symbol| symbol == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != groups) {
            return None;
        }
        let mut word: u32 = 0;
        for (position, &symbol) in group.iter().enumerate() {
            let value: u32 = if position + padding < 4 {
                base64_value(symbol)?
            } else {
                0
            };
            word = (word << 6) | value;
        }
        let [_, first, second, third] = word.to_be_bytes();
        let decoded: [u8; 3] = [first, second, third];
        let (kept, unused) = decoded.split_at_checked(3 - padding)?;
        if unused.iter().any(|&byte| byte != 0) {
            return None;
        }
        bytes.extend_from_slice(kept);
    }
    Some(bytes)
}

fn base64_value(symbol: u8) -> Option<u32> {
    let value: u8 = match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

fn encode_base64(bytes: &[u8]) -> String {
    let mut text: String = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for chunk in bytes.chunks(3) {
        let [first, second, third] =
            [chunk.first(), chunk.get(1), chunk.get(2)].map(|byte| byte.copied().unwrap_or(0));
        let word: u32 = (u32::from(first) << 16) | (u32::from(second) << 8) | u32::from(third);
        for position in 0..4_usize {
            // A chunk of n bytes fills n + 1 symbols; padding completes the four.
            if position <= chunk.len() {
                let shift: usize = 18 - 6 * position;
                let index: usize = usize::try_from((word >> shift) & 0x3f).unwrap_or(0);
                text.push(BASE64.get(index).map_or('=', |&symbol| char::from(symbol)));
            } else {
                text.push('=');
            }
        }
    }
    text
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
