//! One paragraph checked as dpkg's `pkg_parse_verify` checks it and read as a [`StatusEntry`]:
//! package name, Status words, architecture, Multi-Arch, version and Conffiles.

use super::info::{absolute_path, decode_md5, skip_slash_dotslash};
use super::paragraph::{Field, Paragraph};
use super::{Conffile, DpkgError, Limits, StatusEntry, shown};

pub(super) const NOT_INSTALLED: &str = "not-installed";
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

pub(super) fn status_entry(paragraph: &Paragraph<'_>, limits: &Limits) -> Result<StatusEntry, DpkgError> {
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

/// `text` split at its last space, when neither side is empty.
fn split_last_word(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let space: usize = text.iter().rposition(|&byte| byte == b' ')?;
    let before: &[u8] = text.get(..space)?;
    let after: &[u8] = text.get(space + 1..)?;
    (!before.is_empty() && !after.is_empty()).then_some((before, after))
}
