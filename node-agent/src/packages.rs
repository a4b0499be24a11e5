//! The package databases of a node, read straight from the host's files (never by running a
//! package manager): what each package says it installed, so a change can be attributed to a
//! package update.

pub mod rpm;
pub mod sqlite;
