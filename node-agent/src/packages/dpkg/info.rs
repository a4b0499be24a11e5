//! The lines of the info files (`.md5sums`, `.list`) and the pieces they share with the status
//! file's Conffiles: checked absolute paths and MD5 digests.

use super::{DpkgError, Limits, check_text, shown};
use crate::packages::hex_value;

/// The lines of an md5sums or list file, numbered, once the file is checked as text and its
/// line count against the limit.
pub(super) fn info_lines<'a>(
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

/// `/` followed by `relative`, checked.
pub(super) fn absolute_path(relative: &[u8], line: usize, limits: &Limits) -> Result<Vec<u8>, DpkgError> {
    let mut path: Vec<u8> = Vec::with_capacity(relative.len().saturating_add(1));
    path.push(b'/');
    path.extend_from_slice(relative);
    check_path(&path, line, limits)?;
    Ok(path)
}

pub(super) fn check_path(path: &[u8], line: usize, limits: &Limits) -> Result<(), DpkgError> {
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
pub(super) fn skip_slash_dotslash(mut path: &[u8]) -> &[u8] {
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

/// 32 hexadecimal digits, either case.
pub(super) fn decode_md5(hex: &[u8]) -> Option<[u8; 16]> {
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
