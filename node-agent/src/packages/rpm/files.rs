//! A package's files as its header lists them: each path joined from DIRNAMES, DIRINDEXES and
//! BASENAMES (or taken whole from OLDFILENAMES), and the per-file tags beside it, each of which
//! must give one value per file. Every path is bounded by PATH_MAX and the file count by the
//! caller's limit before anything is expanded.

use super::{
    DigestAlgorithm, RpmError, RpmFile, TAG_BASENAMES, TAG_DIRINDEXES, TAG_DIRNAMES, TAG_FILEDIGESTS,
    TAG_FILEFLAGS, TAG_FILELINKTOS, TAG_FILEMODES, TAG_FILESIZES, TAG_FILESTATES, TAG_LONGFILESIZES,
    TAG_OLDFILENAMES,
    header::{Entry, Header, TYPE_CHAR, TYPE_INT8, TYPE_INT32, TYPE_STRING_ARRAY, to_usize},
};
use crate::packages::hex_value;

/// The longest path accepted (Linux PATH_MAX, terminating NUL included). It bounds the memory
/// that DIRNAMES x BASENAMES can expand to: one long DIRNAMES entry is shared by every file.
const MAX_PATH_LEN: usize = 4096;

impl<'a> Header<'a> {
    /// The files: paths from BASENAMES/DIRNAMES/DIRINDEXES (or OLDFILENAMES), and the per-file
    /// tags, each of which must have one value per file when present.
    pub(super) fn files(
        &self,
        algorithm: DigestAlgorithm,
        max_files: usize,
    ) -> Result<Vec<RpmFile>, RpmError> {
        let paths: Vec<Vec<u8>> = self.paths(max_files)?;
        let files: usize = paths.len();
        let digests: Option<Vec<&'a [u8]>> =
            per_file(TAG_FILEDIGESTS, self.strings(TAG_FILEDIGESTS)?, files)?;
        let modes: Option<Vec<u16>> = per_file(TAG_FILEMODES, self.u16s(TAG_FILEMODES)?, files)?;
        let flags: Option<Vec<u32>> = per_file(TAG_FILEFLAGS, self.u32s(TAG_FILEFLAGS)?, files)?;
        let links: Option<Vec<&'a [u8]>> = per_file(TAG_FILELINKTOS, self.strings(TAG_FILELINKTOS)?, files)?;
        let states: Option<&'a [u8]> = match self.entry(TAG_FILESTATES, &[TYPE_CHAR, TYPE_INT8])? {
            Some(entry) => {
                let bytes: &'a [u8] = self.span(&entry)?;
                if bytes.len() != files {
                    return Err(RpmError::CountMismatch {
                        tag: TAG_FILESTATES,
                        count: bytes.len(),
                        files,
                    });
                }
                Some(bytes)
            }
            None => None,
        };
        let sizes: Option<Vec<u64>> = if self.tags.contains_key(&TAG_LONGFILESIZES) {
            per_file(TAG_LONGFILESIZES, self.u64s(TAG_LONGFILESIZES)?, files)?
        } else {
            let short: Option<Vec<u64>> = self
                .u32s(TAG_FILESIZES)?
                .map(|values| values.into_iter().map(u64::from).collect::<Vec<u64>>());
            per_file(TAG_FILESIZES, short, files)?
        };

        let mut out: Vec<RpmFile> = Vec::with_capacity(files);
        for (index, path) in paths.into_iter().enumerate() {
            let digest: Option<Vec<u8>> = match digests.as_ref().and_then(|all| all.get(index)) {
                Some(hex) if !hex.is_empty() => Some(decode_digest(index, hex, algorithm)?),
                _ => None,
            };
            let mode: u16 = modes
                .as_ref()
                .and_then(|all| all.get(index))
                .copied()
                .unwrap_or(0);
            let flag_bits: u32 = flags
                .as_ref()
                .and_then(|all| all.get(index))
                .copied()
                .unwrap_or(0);
            let link_to: Option<Vec<u8>> = match links.as_ref().and_then(|all| all.get(index)) {
                Some(target) if !target.is_empty() => Some(target.to_vec()),
                _ => None,
            };
            let state: Option<u8> = states.and_then(|all| all.get(index)).copied();
            let size: Option<u64> = sizes.as_ref().and_then(|all| all.get(index)).copied();
            out.push(RpmFile {
                path,
                digest,
                mode,
                flags: flag_bits,
                link_to,
                state,
                size,
            });
        }
        Ok(out)
    }

    /// The file paths, at most `max_files` of them.
    fn paths(&self, max_files: usize) -> Result<Vec<Vec<u8>>, RpmError> {
        let Some(base_entry) = self.entry(TAG_BASENAMES, &[TYPE_STRING_ARRAY])? else {
            // An old header: whole paths in OLDFILENAMES, or no files at all.
            let Some(old_entry) = self.entry(TAG_OLDFILENAMES, &[TYPE_STRING_ARRAY])? else {
                return Ok(Vec::new());
            };
            check_file_count(old_entry.count, max_files)?;
            let old: Vec<&'a [u8]> = self.strings_of(&old_entry)?;
            let mut paths: Vec<Vec<u8>> = Vec::with_capacity(old.len());
            for (file, path) in old.into_iter().enumerate() {
                if path.len() >= MAX_PATH_LEN {
                    return Err(RpmError::PathTooLong {
                        file,
                        len: path.len(),
                    });
                }
                paths.push(path.to_vec());
            }
            return Ok(paths);
        };
        let dirs_entry: Entry =
            self.entry(TAG_DIRNAMES, &[TYPE_STRING_ARRAY])?
                .ok_or(RpmError::MissingTag {
                    tag: TAG_DIRNAMES,
                    name: "DIRNAMES",
                })?;
        let indexes_entry: Entry =
            self.entry(TAG_DIRINDEXES, &[TYPE_INT32])?
                .ok_or(RpmError::MissingTag {
                    tag: TAG_DIRINDEXES,
                    name: "DIRINDEXES",
                })?;
        check_file_count(base_entry.count, max_files)?;
        let base: Vec<&'a [u8]> = self.strings_of(&base_entry)?;
        let dirs: Vec<&'a [u8]> = self.strings_of(&dirs_entry)?;
        let indexes: Vec<u32> = self.u32s_of(&indexes_entry)?;
        if indexes.len() != base.len() {
            return Err(RpmError::CountMismatch {
                tag: TAG_DIRINDEXES,
                count: indexes.len(),
                files: base.len(),
            });
        }
        let mut paths: Vec<Vec<u8>> = Vec::with_capacity(base.len());
        for (file, (name, dir_index)) in base.iter().zip(indexes.iter()).enumerate() {
            let dir: &[u8] = dirs
                .get(to_usize(*dir_index))
                .copied()
                .ok_or(RpmError::DirIndexOutOfRange {
                    file,
                    index: *dir_index,
                    dirs: dirs.len(),
                })?;
            let len: usize = dir.len().saturating_add(name.len());
            if len >= MAX_PATH_LEN {
                return Err(RpmError::PathTooLong { file, len });
            }
            let mut path: Vec<u8> = Vec::with_capacity(len);
            path.extend_from_slice(dir);
            path.extend_from_slice(name);
            paths.push(path);
        }
        Ok(paths)
    }
}

/// Requires a per-file tag, when present, to have one value per file.
fn per_file<T>(tag: u32, values: Option<Vec<T>>, files: usize) -> Result<Option<Vec<T>>, RpmError> {
    match values {
        Some(values) if values.len() != files => Err(RpmError::CountMismatch {
            tag,
            count: values.len(),
            files,
        }),
        other => Ok(other),
    }
}

fn check_file_count(files: usize, limit: usize) -> Result<(), RpmError> {
    if files > limit {
        return Err(RpmError::TooManyFiles { files, limit });
    }
    Ok(())
}

/// A hex digest (lowercase as rpm writes it; uppercase accepted) of file `file`, decoded.
fn decode_digest(file: usize, hex: &[u8], algorithm: DigestAlgorithm) -> Result<Vec<u8>, RpmError> {
    let expected: usize = algorithm.digest_len() * 2;
    if hex.len() != expected {
        return Err(RpmError::DigestLength {
            file,
            len: hex.len(),
            algorithm,
            expected,
        });
    }
    let mut out: Vec<u8> = Vec::with_capacity(expected / 2);
    for pair in hex.chunks_exact(2) {
        let &[high, low] = pair else {
            return Err(RpmError::DigestNotHex { file });
        };
        let (Some(high), Some(low)) = (hex_value(high), hex_value(low)) else {
            return Err(RpmError::DigestNotHex { file });
        };
        out.push((high << 4) | low);
    }
    Ok(out)
}
