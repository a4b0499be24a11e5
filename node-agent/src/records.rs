//! What the node's state is made of: the types the store persists (a baseline record, a queued
//! FileChange, a refused one, refusal counts, an entity's baseline identity, an unsettled
//! baseline reset), apart from how and where they are kept.
//!
//! A leaf: `diff`, `outbox`, `scan` and the cluster side use these types without the store, and
//! this module never opens a file, a table or a transaction.

mod baseline;
mod identity;
mod queued;

pub use baseline::{DropIn, Record};
pub use identity::{BaselineReset, EntityBaseline};
pub use queued::{DeadLetter, OutboxRecord, Rejections};

/// The JSON a store value is kept as; a failure is an error of its own, never empty bytes
/// written in its place.
pub(crate) fn encode_json<T: serde::Serialize>(what: &'static str, value: &T) -> crate::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| crate::Error::Encode { what, source })
}
