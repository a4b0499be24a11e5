//! The database's lines read one by one and gathered, a paragraph at a time, into packages: each
//! key's value checked, and each `R`, `a`, `Z` and `M` line against the lines before it.

use super::base64::decode_base64;
use super::{ApkError, ApkFile, ApkPackage, Limits, shown};

pub(super) struct Reader<'l> {
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

impl<'l> Reader<'l> {
    pub(super) fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            packages: Vec::new(),
            current: None,
            files: 0,
        }
    }

    pub(super) fn read_line(&mut self, line: usize, text: &[u8]) -> Result<(), ApkError> {
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

    /// Ends the last package and returns them all, in file order.
    pub(super) fn finish(mut self) -> Result<Vec<ApkPackage>, ApkError> {
        self.end_package()?;
        Ok(self.packages)
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
