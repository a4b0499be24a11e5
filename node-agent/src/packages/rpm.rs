//! RPM header blobs as rpm stores them in rpmdb.sqlite (`Packages.blob`): the package identity
//! and, per file, its path, digest and algorithm, mode, flags and link target. Read with rpm
//! 4.18's own bounds checks; a malformed blob is an error, never a panic or a guess.
//!
//! A blob has no lead and no magic (rpm-4.18 lib/header.c, `hdrblobInit`):
//!
//! ```text
//! il: u32be   dl: u32be   index: il x {tag u32be, type u32be, offset i32be, count u32be}   data: dl bytes
//! ```
//!
//! and is exactly `8 + 16*il + dl` bytes long. Offsets count from the start of `data`.
//! `index[0]` is normally a region entry (tag 63 HEADERIMMUTABLE; 61 and 62 are region tags
//! too): a 16-byte BIN entry pointing at a trailer in `data`, itself an index entry whose offset
//! is `-16*ril`, `ril` being the number of index entries in the immutable region (the region
//! entry included). Entries after the region are "dribble" entries rpm adds at install time
//! (INSTALLTIME, FILESTATES, INSTALLTID, ...); a dribble entry replaces a region entry with the
//! same tag, and a dribble BASENAMES drops OLDFILENAMES. When `index[0]`'s tag is 100 or more the
//! header is a legacy one without a region.
//!
//! Every entry is checked as rpm does (`hdrblobVerifyRegion`, `hdrblobVerifyInfo`): tag, type,
//! count, offset and alignment; data inside `dl`; strings terminated inside `dl`; region data
//! clear of the trailer; and each entry's data starting at or after the previous entry's end,
//! which also keeps the work linear in the blob's size. The tags this module reads are
//! type-checked when read. This is the Rust form of `rpmhdr.py`, the executable specification;
//! unlike it (and rpm, which falls back to MD5), an unknown FILEDIGESTALGO is an error: a digest
//! is never checked with a guessed algorithm.

mod files;
mod header;

use header::*;

use super::sqlite::{Database, SqliteError, Value};

// Tags (rpmtag.h).
const TAG_SHA256HEADER: u32 = 273;
const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_INSTALLTIME: u32 = 1008;
const TAG_ARCH: u32 = 1022;
const TAG_OLDFILENAMES: u32 = 1027;
const TAG_FILESIZES: u32 = 1028;
const TAG_FILESTATES: u32 = 1029;
const TAG_FILEMODES: u32 = 1030;
/// FILEDIGESTS, formerly FILEMD5S.
const TAG_FILEDIGESTS: u32 = 1035;
const TAG_FILELINKTOS: u32 = 1036;
const TAG_FILEFLAGS: u32 = 1037;
const TAG_DIRINDEXES: u32 = 1116;
const TAG_BASENAMES: u32 = 1117;
const TAG_DIRNAMES: u32 = 1118;
const TAG_INSTALLTID: u32 = 1128;
const TAG_LONGFILESIZES: u32 = 5008;
const TAG_FILEDIGESTALGO: u32 = 5011;

/// A file digest algorithm (FILEDIGESTALGO, rpmpgp.h pgpHashAlgo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Sha224,
}

impl DigestAlgorithm {
    /// The algorithm of a FILEDIGESTALGO value: 1 MD5, 2 SHA1, 8 SHA256, 9 SHA384, 10 SHA512,
    /// 11 SHA224. rpmbuild writes no other.
    pub fn from_rpm(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Md5),
            2 => Some(Self::Sha1),
            8 => Some(Self::Sha256),
            9 => Some(Self::Sha384),
            10 => Some(Self::Sha512),
            11 => Some(Self::Sha224),
            _ => None,
        }
    }

    /// The length of a digest, in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
            Self::Sha224 => 28,
        }
    }
}

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmFile {
    /// DIRNAMES[DIRINDEXES[i]] followed by BASENAMES[i] (or OLDFILENAMES[i] in old headers),
    /// as bytes: a path need not be UTF-8.
    pub path: Vec<u8>,
    /// The content digest (FILEDIGESTS, decoded from hex). None where rpm records "": for
    /// directories, symlinks, %ghost files and other files without content; also None when the
    /// header has no FILEDIGESTS.
    pub digest: Option<Vec<u8>>,
    /// st_mode with the file type bits (FILEMODES); 0 when the header has none, as rpm reads it.
    pub mode: u16,
    /// FILEFLAGS: 1 config, 2 doc, 8 missingok, 16 noreplace, 64 ghost, ...; 0 when absent.
    pub flags: u32,
    /// The symlink target (FILELINKTOS); None for "" (not a symlink) or when absent.
    pub link_to: Option<Vec<u8>>,
    /// FILESTATES: 0 normal, 1 replaced, 2 not installed, 3 net shared, 4 wrong color; None
    /// when absent. Only files in state 0 or 3 are on disk as this package installed them.
    pub state: Option<u8>,
    /// The size in bytes (LONGFILESIZES, else FILESIZES); None when absent.
    pub size: Option<u64>,
}

/// An installed package: its identity and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    pub name: String,
    /// EPOCH; None when the package has none (rpm prints that as 0).
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    /// ARCH; None when absent or empty (gpg-pubkey pseudo-packages have none).
    pub arch: Option<String>,
    /// INSTALLTIME: Unix seconds.
    pub install_time: Option<u32>,
    /// INSTALLTID: the transaction id, shared by every package of one transaction.
    pub install_tid: Option<u32>,
    /// SHA256HEADER: hex SHA-256 of the immutable header, a stable package identity (rpm
    /// --rebuilddb renumbers the Packages rows).
    pub sha256_header: Option<String>,
    /// The algorithm of every file digest (FILEDIGESTALGO; MD5 when absent).
    pub digest_algorithm: DigestAlgorithm,
    pub files: Vec<RpmFile>,
}

impl RpmPackage {
    /// "[epoch:]version-release"
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(epoch) => format!("{epoch}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

/// What is wrong with a header blob.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RpmError {
    #[error("the header blob has {len} bytes, fewer than the 8 of its il and dl fields")]
    Truncated { len: usize },

    #[error("the header has {il} index entries; rpm allows 1 to 65535")]
    BadIndexCount { il: u32 },

    #[error("the header declares {dl} data bytes; rpm allows at most 268435455")]
    BadDataLength { dl: u32 },

    #[error("the header blob has {len} bytes; rpm allows less than 256 MiB")]
    TooLarge { len: usize },

    #[error(
        "the header blob has {len} bytes, but 8 + 16 x {il} index entries + {dl} data bytes are {expected}"
    )]
    SizeMismatch {
        len: usize,
        il: u32,
        dl: u32,
        expected: u64,
    },

    #[error("the region entry (tag {tag}) is malformed: {reason}")]
    BadRegion { tag: u32, reason: &'static str },

    #[error("the first index entry has tag {tag}, neither a region tag nor a header tag")]
    BadFirstTag { tag: u32 },

    #[error("index entry {index} has tag {tag}, below the first header tag (100)")]
    IllegalTag { index: usize, tag: u32 },

    #[error("tag {tag} has the invalid type {kind}")]
    BadType { tag: u32, kind: u32 },

    #[error("tag {tag} has the invalid count {count}")]
    BadCount { tag: u32, count: u32 },

    #[error("tag {tag}: offset {offset} is outside the {dl} data bytes")]
    OffsetOutOfRange { tag: u32, offset: i32, dl: usize },

    #[error("tag {tag}: offset {offset} is not aligned for its type {kind}")]
    Misaligned { tag: u32, offset: i32, kind: u32 },

    #[error("tag {tag} is a STRING with count {count}, not 1")]
    StringCount { tag: u32, count: u32 },

    #[error("tag {tag}: a string is not terminated inside the data")]
    UnterminatedString { tag: u32 },

    #[error("tag {tag}: its data ends at {end}, past the {dl} data bytes")]
    DataOutOfRange { tag: u32, end: usize, dl: usize },

    #[error("index entry {index}: offset {offset} overlaps the previous entry's data, which ends at {end}")]
    Overlap { index: usize, offset: i32, end: i64 },

    #[error("index entry {index}: its data overlaps the region trailer")]
    OverlapsTrailer { index: usize },

    #[error("tag {tag} appears twice")]
    DuplicateTag { tag: u32 },

    #[error("tag {tag} ({name}) is missing")]
    MissingTag { tag: u32, name: &'static str },

    #[error("tag {tag} has type {kind}, which it cannot have")]
    WrongType { tag: u32, kind: u32 },

    #[error("tag {tag} has {count} values where one is expected")]
    NotScalar { tag: u32, count: usize },

    #[error("tag {tag} is not valid UTF-8")]
    NotUtf8 { tag: u32 },

    #[error("unknown file digest algorithm {0} (FILEDIGESTALGO)")]
    UnknownDigestAlgorithm(u32),

    #[error("the package has {files} files, more than the limit of {limit}")]
    TooManyFiles { files: usize, limit: usize },

    #[error("tag {tag} has {count} values for {files} files")]
    CountMismatch { tag: u32, count: usize, files: usize },

    #[error("file {file}: DIRINDEXES value {index} is not below the {dirs} DIRNAMES")]
    DirIndexOutOfRange { file: usize, index: u32, dirs: usize },

    #[error("file {file}: the path is {len} bytes long, longer than PATH_MAX")]
    PathTooLong { file: usize, len: usize },

    #[error("file {file}: the digest has {len} hex digits; {algorithm:?} digests have {expected}")]
    DigestLength {
        file: usize,
        len: usize,
        algorithm: DigestAlgorithm,
        expected: usize,
    },

    #[error("file {file}: the digest is not hexadecimal")]
    DigestNotHex { file: usize },

    #[error("the blob column is missing or is not a BLOB")]
    NotABlob,
}

/// A package of a database, or the error of the row (hnum) that did not parse.
pub type PackageResult = Result<RpmPackage, (i64, RpmError)>;

/// Parses one header blob (no lead, no magic: il, dl, entries, data), with bounds: at most
/// `max_files` files.
pub fn parse_header(blob: &[u8], max_files: usize) -> Result<RpmPackage, RpmError> {
    Header::parse(blob)?.package(max_files)
}

/// Every package of an rpmdb.sqlite image (already opened): rows of table Packages, column 1
/// the blob (column 0, hnum, is the rowid). A blob that does not parse is returned as an error
/// for that hnum, not for the whole database.
pub fn packages(db: &Database, max_files: usize) -> Result<Vec<PackageResult>, SqliteError> {
    let mut out: Vec<PackageResult> = Vec::new();
    db.for_each_row("Packages", |hnum: i64, columns: Vec<Value>| {
        let parsed: Result<RpmPackage, RpmError> = match columns.get(1) {
            Some(Value::Blob(blob)) => parse_header(blob, max_files),
            _ => Err(RpmError::NotABlob),
        };
        out.push(parsed.map_err(|error| (hnum, error)));
    })?;
    Ok(out)
}

impl<'a> Header<'a> {
    /// The package the header describes.
    fn package(&self, max_files: usize) -> Result<RpmPackage, RpmError> {
        let name: Option<&'a [u8]> = self.string(TAG_NAME)?;
        let version: Option<&'a [u8]> = self.string(TAG_VERSION)?;
        let release: Option<&'a [u8]> = self.string(TAG_RELEASE)?;
        let name: String = text(
            TAG_NAME,
            name.ok_or(RpmError::MissingTag {
                tag: TAG_NAME,
                name: "NAME",
            })?,
        )?;
        let version: String = text(
            TAG_VERSION,
            version.ok_or(RpmError::MissingTag {
                tag: TAG_VERSION,
                name: "VERSION",
            })?,
        )?;
        let release: String = text(
            TAG_RELEASE,
            release.ok_or(RpmError::MissingTag {
                tag: TAG_RELEASE,
                name: "RELEASE",
            })?,
        )?;
        let epoch: Option<u32> = self.scalar_u32(TAG_EPOCH)?;
        let arch: Option<String> = match self.string(TAG_ARCH)? {
            Some(arch) if !arch.is_empty() => Some(text(TAG_ARCH, arch)?),
            _ => None,
        };
        let install_time: Option<u32> = self.scalar_u32(TAG_INSTALLTIME)?;
        let install_tid: Option<u32> = self.scalar_u32(TAG_INSTALLTID)?;
        let sha256_header: Option<String> = self
            .string(TAG_SHA256HEADER)?
            .map(|hex| text(TAG_SHA256HEADER, hex))
            .transpose()?;
        let digest_algorithm: DigestAlgorithm = match self.scalar_u32(TAG_FILEDIGESTALGO)? {
            None => DigestAlgorithm::Md5,
            Some(value) => DigestAlgorithm::from_rpm(value).ok_or(RpmError::UnknownDigestAlgorithm(value))?,
        };
        let files: Vec<RpmFile> = self.files(digest_algorithm, max_files)?;
        Ok(RpmPackage {
            name,
            epoch,
            version,
            release,
            arch,
            install_time,
            install_tid,
            sha256_header,
            digest_algorithm,
            files,
        })
    }
}

fn text(tag: u32, bytes: &[u8]) -> Result<String, RpmError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| RpmError::NotUtf8 { tag })
}

#[cfg(test)]
mod tests;
