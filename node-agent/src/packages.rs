//! Package attribution (docs/design.md, "Package attribution"): the package databases of a node, read straight from the
//! host's files (never by running a package manager, never trusting what they say beyond what
//! is checked), so that a change a package operation explains is told apart from one nothing
//! explains.
//!
//! - `sqlite`, `rpm`, `dpkg`, `apk`: bounded parsers of each database format;
//! - `installed`: each manager's database under the host root, in one shape;
//! - `aliases`: the host's merged-/usr links, so that a path the database records as /bin/x is
//!   the /usr/bin/x the scanner finds;
//! - `alternatives`: dpkg's update-alternatives links and what each may point to;
//! - `ledger`: what the databases said, kept in the baseline store: who owns each path (and
//!   who did, for removed paths) and each workspace's view of the installed versions;
//! - `attribute`: deciding, change by change, whether a package operation explains it;
//! - `lock`: whether a package manager is in the middle of an operation.

mod aliases;
pub mod alternatives;
pub mod apk;
mod attribute;
pub mod dpkg;
pub mod installed;
mod ledger;
mod lock;
#[cfg(test)]
mod mutation;
pub mod rpm;
pub mod sqlite;
mod verify;

pub use attribute::{Attributor, describe};
pub use ledger::refresh;
pub use ledger::remember;
pub use lock::in_progress;
pub use rpm::DigestAlgorithm;

use kubefim_crds::PackageManager;

/// Why a package database could not be read. Never fatal to a scan: the changes it would
/// have explained are reported as unexplained, and the entity says why.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("{manager} database file {file} is malformed: {reason}", manager = manager.as_str())]
    Malformed {
        manager: PackageManager,
        file: String,
        reason: String,
    },
    #[error("package database file {file} is {size} bytes, more than the {limit} read")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("cannot read package database file {file}: {reason}")]
    Unreadable { file: String, reason: String },
}

impl PackageError {
    /// The database file in question.
    pub fn file(&self) -> &str {
        match self {
            Self::Malformed { file, .. } | Self::TooLarge { file, .. } | Self::Unreadable { file, .. } => {
                file
            }
        }
    }
}

/// The value of hexadecimal digit `digit` (either case), or `None` if it is not one.
pub(crate) fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}
