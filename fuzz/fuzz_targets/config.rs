//! A standalone configuration file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kubefim_agent::fuzzing::config(data));
