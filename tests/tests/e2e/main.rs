//! The end-to-end suite: against the cluster KUBECONFIG names, through scripts/e2e.sh (which
//! installs the chart once and removes it at the end), one test at a time, each in its own
//! namespace with Node objects it creates, and the operator and agents running as local
//! processes under their own service accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step fails the test

mod accept;
mod admission;
mod files;
mod health;
mod latency;
mod packages;
mod plugin;
mod reporting;
mod retention;
mod status;
mod tenancy;
