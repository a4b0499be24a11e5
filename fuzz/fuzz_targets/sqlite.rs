//! A whole rpmdb.sqlite file, read as the agent reads it (its own SQLite reader).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubefim_agent::fuzzing::sqlite(data));
